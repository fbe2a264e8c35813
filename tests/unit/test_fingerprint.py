"""Each data file is read for hashing once per command: ``plan`` and ``submit`` share one Fingerprint.

A counting wrapper replaces ``phi3ft.config.file_sha256`` (and the name ``phi3ft.plan`` imported); the
serverless submit on the offline Azure stack is in tests/e2e/test_fingerprint_stack.py.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TOKENIZERS

from phi3ft import config as config_mod
from phi3ft import jobs as svc
from phi3ft import plan as plan_mod
from phi3ft.cli.context import AppContext
from phi3ft.config import (
    ClusterJob,
    Fingerprint,
    LocalJob,
    ServerlessJob,
    config_hash,
    derived_names,
    fingerprint,
    load_job_config,
    training_hash,
)
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.targets.base import JobInfo

TOKENIZER = TOKENIZERS / "phi4-mini"

JOB_YAML = """\
backend: {backend}
azure:
  subscription_id: 00000000-0000-0000-0000-000000000001
  resource_group: rg-phi
  hub: {{name: hub-phi}}
  project: {{name: proj-phi}}
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
{validation}hyperparameters: {{epochs: 1}}
"""


def rows(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{2 * i}"},
                ]
            }
        )
        + "\n"
        for i in range(n)
    )


def write(folder: Path, backend: str = "serverless", *, validation: bool = True) -> Path:
    (folder / "train.jsonl").write_text(rows(40))
    if validation:
        (folder / "valid.jsonl").write_text(rows(8))
    path = folder / "job.yaml"
    path.write_text(
        JOB_YAML.format(backend=backend, validation="  validation: valid.jsonl\n" if validation else "")
    )
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts ``file_sha256`` calls per file name (every hashing read of a data file goes through it)."""
    counts: Counter[str] = Counter()
    original = config_mod.file_sha256

    def counting(path: Path, chunk: int = 1 << 20) -> str:
        counts[Path(path).name] += 1
        return original(path, chunk)

    monkeypatch.setattr(config_mod, "file_sha256", counting)
    monkeypatch.setattr(plan_mod, "file_sha256", counting)
    return counts


def test_spec_is_the_backend_member_of_the_union(tmp_path: Path) -> None:
    for backend, cls in (("serverless", ServerlessJob), ("azureml-compute", ClusterJob), ("local", LocalJob)):
        cfg = load_job_config(write(tmp_path, backend), env={})
        assert type(cfg) is cls and cfg.backend == backend
    moved = svc.apply_backend_override(load_job_config(write(tmp_path), env={}), "local")
    assert isinstance(moved, LocalJob) and moved.runs_locally and moved.line_of("data") == 8
    assert moved.source == tmp_path / "job.yaml"


def test_fingerprint_matches_the_separate_hashes(tmp_path: Path, reads: Counter[str]) -> None:
    cfg = load_job_config(write(tmp_path), env={})
    fp = fingerprint(cfg)
    assert reads == {"train.jsonl": 1, "valid.jsonl": 1}
    assert isinstance(fp, Fingerprint)
    assert fp.config == config_hash(cfg) and fp.training == training_hash(cfg)
    assert fp.names == derived_names(cfg)
    assert fp.data == {role: config_mod.file_sha256(p) for role, p in config_mod.data_files(cfg).items()}


@pytest.mark.parametrize("backend", ["serverless", "local", "azureml-compute"])
@pytest.mark.parametrize("validation", [True, False])
def test_plan_reads_each_data_file_once(
    tmp_path: Path, reads: Counter[str], run_cli: Callable[..., tuple[int, str, str]], backend: str,
    validation: bool,
) -> None:  # fmt: skip
    config = write(tmp_path, backend, validation=validation)
    ctx = AppContext(output=Output(interactive=False), env=dict(os.environ), cwd=tmp_path)
    code, out, err = run_cli("plan", "-c", str(config), "--tokenizer", str(TOKENIZER), "--json", ctx=ctx)
    assert code == 0, err
    assert json.loads(out)["hashes"]["training"]
    assert reads == ({"train.jsonl": 1, "valid.jsonl": 1} if validation else {"train.jsonl": 1})


class LocalFake:
    """The two calls ``submit`` makes on the local backend."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[dict[str, Any]] = []

    def find_job(self, name: str) -> JobInfo | None:
        return None

    def create_local_job(self, *, name: str, **kw: Any) -> JobInfo:
        self.created.append({"name": name, **kw})
        out = self.root / name
        return JobInfo(name=name, status="Running", backend="local", extra={"output_dir": str(out), "pid": 1})


def test_local_submit_reads_each_data_file_once(tmp_path: Path, reads: Counter[str]) -> None:
    cfg = load_job_config(write(tmp_path, "local"), env={})
    store = StateStore(tmp_path / ".phi3ft")
    backend = LocalFake(tmp_path / "jobs")
    options = svc.SubmitOptions(skip_checks=True, tokenizer=TOKENIZER, env={})
    result = svc.run_submit(
        svc.submit(cfg, backend, store, confirm=lambda plan: True, options=options),  # type: ignore[arg-type]
        lambda event: None,
    )
    assert reads == {"train.jsonl": 1, "valid.jsonl": 1}
    record = store.get("job", result.job.name)
    assert record is not None
    assert record["data_hashes"] == {
        "train": fingerprint(cfg).data["train"],
        "validation": fingerprint(cfg).data["validation"],
    }
    assert result.job.name == derived_names(cfg).job
