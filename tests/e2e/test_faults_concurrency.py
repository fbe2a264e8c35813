"""Two phi3ft runs in one folder (issue 20 §2): the phases that create or delete hold an exclusive lock on
``.phi3ft/lock``; a second run says who holds it and waits (``--no-wait``: exit 1); read-only commands
never take it. ``.phi3ft`` is 0700 and its files 0600 whatever the umask. phi3ft runs as a subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import REPO, TOKENIZERS
from tests.e2e.faults_project import job_yaml, prepare, rows

from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT = "hub-pair", "proj-pair"

JOB_YAML = job_yaml(HUB, PROJECT, "phi4-pair")


@pytest.fixture
def folder(tmp_path: Path, stack: Any) -> Path:
    return prepare(tmp_path, stack, JOB_YAML)


SUBMIT = ["submit", "-c", "job.yaml", "--yes", "--detach", "--skip-checks", "--tokenizer", str(TOKENIZERS / "phi4-mini")]  # fmt: skip


def spawn(
    stack: Any, folder: Path, args: list[str], stderr: Any = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    env = {**stack.env, "PHI3FT_STATE_DIR": str(folder / ".phi3ft"), "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "phi3ft", *args, "--auth", "env"]
    return subprocess.Popen(cmd, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=stderr)


def wire(stack: Any, route: str) -> int:
    return sum(1 for r in stack.requests.records if r.route == route and r.method in ("PUT", "POST"))


def test_two_concurrent_submits_in_one_folder_both_exit_0_with_one_job(stack: Any, folder: Path) -> None:
    procs = [spawn(stack, folder, SUBMIT) for _ in range(2)]
    results = [(p.wait(timeout=300), *(x.decode() for x in p.communicate())) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    assert len(stack.state.jobs) == 1
    assert wire(stack, "deployments.create_or_update") == 2  # hub once + project once
    assert wire(stack, "jobs.create_or_update") == 1
    assert wire(stack, "data.versions.create_or_update") == 2  # train + validation, once each
    names = {json.loads(out or "{}").get("job", {}).get("name") for _, out, _ in results if out.strip()} - {
        None
    }
    assert len(names) <= 1
    errs = "".join(err for _, _, err in results)
    assert "409" not in errs and "Traceback" not in errs


def test_a_second_run_waits_for_the_lock_and_says_who_holds_it(stack: Any, folder: Path) -> None:
    stack.state.add_project(PROJECT, stack.state.add_hub(HUB))  # so that `list` has a project to read
    store = StateStore(folder / ".phi3ft")
    log = folder / "second.err"
    with store.run_lock(), log.open("wb") as err:
        proc = spawn(stack, folder, SUBMIT, stderr=err)
        deadline = time.monotonic() + 120
        while "is changing .phi3ft; waiting" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert wire(stack, "data.versions.create_or_update") == 0  # nothing created while we hold it
        assert wire(stack, "jobs.create_or_update") == 0
        # read-only commands never take the lock
        status = spawn(stack, folder, ["list", "--json"])
        assert status.wait(timeout=120) == 0, status.communicate()
    assert proc.wait(timeout=300) == 0, log.read_text()
    text = log.read_text()
    assert text.count(f"another phi3ft run (pid {os.getpid()}) is changing .phi3ft; waiting") == 1
    assert len(stack.state.jobs) == 1


def test_no_wait_exits_1_with_the_message_and_a_hint(stack: Any, folder: Path) -> None:
    store = StateStore(folder / ".phi3ft")
    store.record("endpoint", "ep-pair", created_by_phi3ft=True)  # so that delete has something to do
    with store.run_lock():
        for args in ([*SUBMIT, "--no-wait"], ["delete", "--all", "--yes", "-c", "job.yaml", "--no-wait"]):
            proc = spawn(stack, folder, args)
            out, err = (x.decode() for x in proc.communicate(timeout=300))
            assert proc.returncode == 1, (args, out, err)
            assert f"another phi3ft run (pid {os.getpid()}) is changing .phi3ft" in err
            assert "Hint:" in err and "Traceback" not in err
    assert wire(stack, "deployments.create_or_update") == 0
    assert len(stack.state.jobs) == 0


def test_state_folder_and_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    code = (
        "import os, sys; os.umask(0o022); from pathlib import Path; from phi3ft.state import StateStore;"
        "s = StateStore(Path(sys.argv[1])); s.record('hub', 'h', created_by_phi3ft=True);"
        "s.run_lock().__enter__()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / ".phi3ft")], check=True, env=env)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / ".phi3ft") == 0o700
    for name in ("state.json", "lock", ".lock"):
        assert mode(tmp_path / ".phi3ft" / name) == 0o600, name


# ---- 409 "already exists" is a re-attach ------------------------------------------------------------------
def _backend(stack: Any) -> Any:
    from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

    return AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID, resource_group=RESOURCE_GROUP, project=PROJECT, hub=HUB,
        credential=stack.credential,
    )  # fmt: skip


def test_job_create_answered_409_reattaches_to_the_existing_job(stack: Any) -> None:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    existing = stack.state.add_job(ws, "ft-pair-job", status="Running")
    job = _backend(stack).create_finetuning_job(
        name="ft-pair-job",
        model_id="azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1",
        training_data="azureml:train:1", validation_data=None, hyperparameters={}, output_model_name="m",
    )  # fmt: skip
    assert job.name == existing.name and job.status == "Running"
    puts = [r for r in stack.requests.records if r.route == "jobs.create_or_update"]
    assert [r.status for r in puts] == [409]
    assert len(stack.state.jobs) == 1


def test_data_upload_answered_409_reattaches_to_the_existing_asset(stack: Any, tmp_path: Path) -> None:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    stack.state.add_data_version(ws, "train-pair", "abc")
    # another run created it between our GET and our PUT: the GET misses it, the PUT conflicts
    stack.faults.add("data.versions.get", status=404, code="UserError", message="Not found", times=1)
    stack.faults.error("data.versions.create_or_update", status=409, code="Conflict", times=1)
    (tmp_path / "t.jsonl").write_text(rows(3, "x"))
    asset = _backend(stack).upload_data(tmp_path / "t.jsonl", name="train-pair", version="abc")
    assert (asset.name, asset.version) == ("train-pair", "abc")
