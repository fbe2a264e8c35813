"""``phi3ft submit`` (serverless) on the offline Azure stack reads each data file for hashing once.

The plan, the asset versions, the job name, the tags and the ledger's hashes all come from one
Fingerprint; a counting wrapper around ``phi3ft.config.file_sha256`` proves it (plan and local submit:
tests/unit/test_fingerprint.py).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import FakeTime, chat_rows, grant_contributor

from phi3ft import config as config_mod
from phi3ft import plan as plan_mod
from phi3ft.cli.context import AppContext
from phi3ft.config import fingerprint, load_job_config
from phi3ft.output import Output
from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

JOB_YAML = f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: hub-fp}}
  project: {{name: proj-fp}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
@VALIDATION@hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
"""


def rows(n: int, tag: str) -> str:
    return chat_rows(n, lambda i: f"{tag} What is {i} plus {i}?", lambda i: f"{2 * i}")


@pytest.mark.parametrize("validation", [True, False], ids=["validation-file", "split"])
def test_serverless_submit_reads_each_data_file_once(
    stack: Any, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch, validation: bool
) -> None:
    grant_contributor(stack)
    (tmp_path / "train.jsonl").write_text(rows(40, tmp_path.name))
    if validation:
        (tmp_path / "valid.jsonl").write_text(rows(8, tmp_path.name))
    config = tmp_path / "job.yaml"
    config.write_text(JOB_YAML.replace("@VALIDATION@", "  validation: valid.jsonl\n" if validation else ""))
    expected = fingerprint(load_job_config(config, env={}))

    counts: Counter[str] = Counter()
    original = config_mod.file_sha256

    def counting(path: Path, chunk: int = 1 << 20) -> str:
        counts[str(Path(path).resolve().relative_to(tmp_path.resolve()))] += 1
        return original(path, chunk)

    monkeypatch.setattr(config_mod, "file_sha256", counting)
    monkeypatch.setattr(plan_mod, "file_sha256", counting)
    clock = FakeTime()
    ctx = AppContext(
        output=Output(interactive=False),
        env=dict(os.environ),
        cwd=tmp_path,
        clock=clock,
        sleep=clock.sleep,
        credential_factory=lambda mode: stack.credential,
    )
    code, out, err = run_cli(
        "submit", "-c", str(config), "--tokenizer", str(TOKENIZERS / "phi4-mini"), "--yes", "--json", ctx=ctx
    )
    assert code == 0, err
    doc = json.loads(out)
    if validation:
        assert counts == {"train.jsonl": 1, "valid.jsonl": 1}
    else:  # the split's halves are new files (.phi3ft/split/<key>/): each is hashed once for the ledger
        assert counts["train.jsonl"] == 1 and len(counts) == 3 and set(counts.values()) == {1}, counts
    assert doc["job"]["name"] == expected.names.job
    record = StateStore(tmp_path / ".phi3ft").get("job", expected.names.job)
    assert record is not None and record["training_hash"] == expected.training
    if validation:
        assert record["data_hashes"] == dict(expected.data)
    tags = stack.state.find_job(expected.names.job).properties["tags"]
    assert tags["phi3ft.training_hash"] == expected.training[:16]
