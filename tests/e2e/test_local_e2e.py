"""``backend: local`` end to end on CPU: the real CLI starts the real trainer (a tiny random Phi-3) detached,
then ``watch``, ``status``, ``metrics``, ``logs`` and ``cancel`` work on it through the ledger."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE, VALID_FILE, build_tiny_phi3

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

# backend: serverless on purpose: every test picks the local backend with --backend local
JOB_YAML = """\
backend: serverless
azure:
  subscription_id: 00000000-1111-2222-3333-444444444444
  resource_group: rg-phi3ft
  hub: {{name: hub-phi3ft}}
  project: {{name: proj-phi3ft}}
model: {{name: phi-3-mini-4k-instruct}}
data: {{train: {train}, validation: {valid}}}
deploy: {{enabled: false}}
training:
  base_model: {model}
  tokenizer: {tokenizer}
  max_steps: {steps}
  max_seq_length: 256
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))


@pytest.fixture
def cli(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(output=Output(interactive=False), env=dict(os.environ), cwd=tmp_path)
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    return run


def write_config(folder: Path, model: Path, steps: int, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(
        JOB_YAML.format(
            train=TRAIN_FILE, valid=VALID_FILE, model=model, tokenizer=PHI3_TOKENIZER_DIR, steps=steps
        )
    )
    return path


def test_submit_watch_status_metrics_logs(cli: Callable[..., tuple[int, str, str]], tiny_model: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    config = write_config(tmp_path, tiny_model, steps=3)
    t0 = time.monotonic()
    code, out, err = cli(
        "submit", "-c", str(config), "--backend", "local", "--yes", "--detach", "--json",
        "--tokenizer", str(PHI3_TOKENIZER_DIR),
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    name = doc["job"]["name"]
    assert doc["job"]["backend"] == "local" and doc["uploaded_bytes"] == 0
    assert f"phi3ft watch {name}" in err

    code, out, err = cli("watch", name, "--json", "--timeout", "120s")
    assert code == 0, err
    watched = json.loads(out)
    assert watched["status"] == "Completed"
    wall = time.monotonic() - t0
    adapter = Path(watched["output_model_name"])
    assert (adapter / "adapter_config.json").is_file()
    assert adapter.parent == tmp_path / ".phi3ft" / "jobs" / name / "output"

    code, out, err = cli("status", "--json")  # the last job, from the ledger
    assert code == 0, err
    status = json.loads(out)
    assert status["name"] == name and status["status"] == "Completed" and status["backend"] == "local"
    assert status["extra"]["result"]["steps"] == 3

    code, out, err = cli("metrics", name, "--json")
    assert code == 0, err
    rows = json.loads(out)["metrics"]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all("train_loss" in r for r in rows) and "eval_loss" in rows[-1]

    code, out, err = cli("logs", name)
    assert code == 0, err and '"kind": "result"' in out

    record = StateStore(tmp_path / ".phi3ft").get("job", name)
    assert record is not None and record["backend"] == "local" and record["status"] == "Completed"

    # same config again: re-attaches to the finished job instead of training twice
    code, out, err = cli("submit", "-c", str(config), "--backend", "local", "--yes", "--json",
                         "--tokenizer", str(PHI3_TOKENIZER_DIR))  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["resumed"] is True
    print(f"local backend: submit -> Completed in {wall:.1f} s (3 steps, tiny Phi-3, CPU)")


def test_cancel_kills_a_running_local_job(cli: Callable[..., tuple[int, str, str]], tiny_model: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    config = write_config(tmp_path, tiny_model, steps=100000)
    code, out, err = cli("submit", "-c", str(config), "--backend", "local", "--yes", "--detach", "--json",
                         "--skip-checks", "--tokenizer", str(PHI3_TOKENIZER_DIR))  # fmt: skip
    assert code == 0, err
    name = json.loads(out)["job"]["name"]
    code, out, _ = cli("status", name, "--json")
    assert json.loads(out)["status"] == "Running"
    pid = int(json.loads(out)["extra"]["pid"])

    code, out, err = cli("cancel", name, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "Canceled"
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    code, _, err = cli("watch", name)
    assert code == 5 and "Canceled" in err
