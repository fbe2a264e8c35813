"""``phi3ft submit`` end to end: the real azure-ai-ml / azure-storage-blob SDKs over HTTPS through the CONNECT
proxy against the offline Azure stack (stateful fake ARM/AML + Azurite).

In-process runs use the stack's fake credential through ``AppContext.credential_factory``; the "kill the
process" tests run ``python -m phi3ft submit --auth env`` as a subprocess (real credential chain against
the fake Entra ID) and SIGKILL it while the stack holds the request that follows the step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import REPO, TOKENIZERS
from tests.e2e.helpers import FakeTime, chat_rows, grant_contributor

from phi3ft.cli.context import AppContext
from phi3ft.config import derived_names, load_job_config
from phi3ft.output import Output
from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT = "hub-phi3ft", "proj-phi3ft"
TOKENIZER = TOKENIZERS / "phi4-mini"

JOB_YAML = f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data:
  train: train.jsonl
hyperparameters: {{epochs: 1, learning_rate: 0.00002}}
output: {{model_name: phi4-mini-e2e}}
"""


def rows(n: int, tag: str = "") -> str:
    return chat_rows(
        n,
        lambda i: f"{tag}What is {i} plus {i}?",
        lambda i: f"{2 * i}",
        system="You answer arithmetic questions.",
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(rows(60, tag=tmp_path.name))
    (tmp_path / "job.yaml").write_text(JOB_YAML)
    return tmp_path


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def cli(
    stack: Any, folder: Path, fake_time: FakeTime, run_cli: Callable[..., tuple[int, str, str]]
) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env=dict(os.environ),
            cwd=folder,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    return run


def submit(cli: Callable[..., tuple[int, str, str]], folder: Path, *extra: str) -> tuple[int, str, str]:
    return cli("submit", "-c", str(folder / "job.yaml"), "--tokenizer", str(TOKENIZER), "--yes", *extra)


def wire(stack: Any) -> list[str]:
    return [f"{r.method} {r.route}" for r in stack.requests]


def blob_snapshot(stack: Any) -> dict[tuple[str, str], Any]:
    """(container, blob) -> etag for every blob in the hub's storage account."""
    ws = stack.state.workspace(HUB)
    service = stack.azurite.service(ws.storage_account)
    out: dict[tuple[str, str], Any] = {}
    for container in service.list_containers():
        for blob in service.get_container_client(container.name).list_blobs():
            out[(container.name, blob.name)] = blob.etag
    return out


# ---- in-process -----------------------------------------------------------------------------------------
def test_submit_end_to_end_then_resubmit_reattaches_and_uploads_nothing(
    stack: Any, cli: Any, folder: Path
) -> None:
    grant_contributor(stack)
    code, out, err = submit(cli, folder, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["job"]["status"] == "Completed"
    assert doc["uploaded_bytes"] > 0
    name = doc["job"]["name"]
    job = stack.state.find_job(name)
    details = job.properties["fineTuningDetails"]
    assert (
        details["model"]["uri"]
        == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/"
        + (details["model"]["uri"].rsplit("/", 1)[-1])
    )
    assert "/labels/" not in details["model"]["uri"]
    assert details["hyperParameters"] == {
        "learning_rate": "0.00002",
        "num_train_epochs": "1",
        "per_device_train_batch_size": "1",
    }
    assert details["validationData"]["uri"].endswith(details["validationData"]["uri"].rsplit("/", 1)[-1])
    assert job.properties["tags"]["phi3ft.config_hash"]
    record = StateStore(folder / ".phi3ft").get("job", name)
    assert record is not None and record["status"] == "Completed"
    assert record["output_model_name"] == "phi4-mini-e2e"

    blobs = blob_snapshot(stack)
    stack.requests.clear()
    code, out, err = submit(cli, folder, "--json", "--skip-checks")
    assert code == 0, err
    again = json.loads(out)
    assert again["resumed"] is True and again["uploaded_bytes"] == 0
    calls = wire(stack)
    assert not [c for c in calls if c.startswith(("PUT", "POST"))], calls
    assert blob_snapshot(stack) == blobs


def test_resubmit_after_the_blob_but_before_the_asset_reports_zero_bytes_sent(
    stack: Any, cli: Any, folder: Path
) -> None:
    """A run that stopped after the blob upload but before the data-asset PUT: Azure has the blob, so the
    SDK sends nothing on the next submit, and phi3ft says so (not the file size)."""
    code, out, err = submit(cli, folder, "--json", "--detach", "--skip-checks")
    assert code == 0, err
    first = json.loads(out)
    assert first["uploaded_bytes"] == (folder / "train.jsonl").stat().st_size
    with stack.state.lock:
        stack.state.data.clear()  # the assets are gone, the blobs stay
    blobs = blob_snapshot(stack)
    code, out, err = submit(cli, folder, "--json", "--detach", "--skip-checks")
    assert code == 0, err
    again = json.loads(out)
    assert again["uploaded_bytes"] == 0
    assert err.count("already uploaded (Azure had the file; 0 bytes sent)") == 2, err
    assert "uploaded 0 bytes" not in err and "bytes\n" not in err.replace("bytes sent", "")
    assert len(stack.requests.find(route="data.versions.create_or_update", method="PUT")) >= 2
    assert blob_snapshot(stack) == blobs  # no blob written again


def test_failed_job_exits_5_with_the_service_message(stack: Any, cli: Any, folder: Path) -> None:
    name = derived_names(load_job_config(folder / "job.yaml")).job
    stack.faults.fail_job(name, message="Training data validation failed: line 7: no assistant turn.")
    grant_contributor(stack)
    code, _, err = submit(cli, folder)
    assert code == 5
    assert f"Job {name} ended Failed: Training data validation failed: line 7: no assistant turn." in err
    code, out, _ = cli("status", "--json")
    assert code == 0 and json.loads(out)["error"].startswith("Training data validation failed")


def test_logs_and_status_when_run_history_cannot_be_reached(stack: Any, cli: Any, folder: Path) -> None:
    """Run history lives behind the workspace's region discovery: when that fails, ``logs`` says so in one
    line with a fix, and ``status`` of a Failed job still answers (never "Unexpected error")."""
    name = derived_names(load_job_config(folder / "job.yaml")).job
    stack.state.fail_job(name, after=())  # Failed at the first read
    code, out, err = submit(cli, folder, "--json", "--detach", "--skip-checks")
    assert code == 0, err
    stack.faults.error("discovery.get", status=404, message="no such region endpoint", times=None)
    code, out, err = cli("logs", name)
    assert code == 1, err
    assert "Unexpected error" not in err and "issue tracker" not in err, err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"Error: Could not read the run history of job {name!r}"), err
    assert lines[-1].startswith("Hint: Check the network and proxy"), err

    code, out, err = cli("status", name, "--json")
    assert "Unexpected error" not in err, err
    doc = json.loads(out)
    assert doc["status"] == "Failed"
    assert doc["error"].startswith("(the reason could not be read from run history: Could not read"), doc
    code, out, err = cli("watch", name)
    assert code == 5 and "Unexpected error" not in err, err
    assert "the reason could not be read from run history" in err

    stack.faults.clear()
    stack.faults.error(
        "run_history.details", status=404, code="RunNotFound", message="Run not found", times=None
    )
    code, out, err = cli("logs", name)
    assert code == 1 and "Unexpected error" not in err, err
    assert f"Run history has no record of job {name!r}" in err
    assert f"Hint: It appears once the job starts: `phi3ft status {name}`" in err


def test_service_refusing_the_region_exits_4_with_the_region_fix(stack: Any, cli: Any, folder: Path) -> None:
    """The service's own refusal (``UserError`` / inner ``ModelNotSupportedByMaaS``) reads like phi3ft's
    region check: exit 4 and the azure.location fix, not exit 1 without a hint."""
    stack.faults.error(
        "jobs.create_or_update",
        status=400,
        code="UserError",
        inner_code="ModelNotSupportedByMaaS",
        message="Serverless FineTuning not supported in westus",
        times=None,
    )
    code, _, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 4, err
    assert (
        "UserError/ModelNotSupportedByMaaS" in err and "Serverless FineTuning not supported in westus" in err
    )
    assert "Hint: Set azure.location in job.yaml to a region that offers it" in err
    assert stack.requests.find(route="jobs.create_or_update")[0].status == 400


def test_429_and_503_are_retried_with_backoff(stack: Any, cli: Any, folder: Path) -> None:
    stack.faults.throttle("jobs.create_or_update", retry_after=1, times=1)
    stack.faults.error("data.versions.get", status=503, times=1)
    code, _, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 0, err
    assert [r.status for r in stack.requests.find(route="jobs.create_or_update")] == [429, 201]
    assert stack.requests.find(route="data.versions.get")[0].status == 503


def test_ctrl_c_during_watch_detaches_and_the_job_keeps_running(
    stack: Any, cli: Any, folder: Path, fake_time: FakeTime
) -> None:
    stack.state.default_job_script = ["NotStarted", "Queued", *["Running"] * 50, "Completed"]
    fake_time.interrupt_after = 2
    code, _, err = submit(cli, folder, "--skip-checks")
    assert code == 130
    name = StateStore(folder / ".phi3ft").last_job
    assert name and f"phi3ft watch {name}" in err
    assert not stack.requests.find(route="jobs.cancel")
    assert stack.state.find_job(name).status not in ("Canceled", "CancelRequested")


def test_status_list_logs_metrics_cancel(stack: Any, cli: Any, folder: Path, tmp_path: Path) -> None:
    code, out, err = submit(cli, folder, "--json", "--skip-checks")
    assert code == 0, err
    name = json.loads(out)["job"]["name"]
    code, out, _ = cli("list", "--json")
    assert code == 0 and any(r["name"] == name and r["local"] for r in json.loads(out)["jobs"])
    code, out, err = cli("logs", name)
    assert code == 0, err
    chart = tmp_path / "loss.png"
    code, out, err = cli("metrics", name, "--json", "--plot", str(chart))
    assert code == 0, err
    metrics = json.loads(out)["metrics"]
    assert metrics and "train_loss" in metrics[0]
    assert chart.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = cli("cancel", name, "--json")
    assert code == 0 and json.loads(out)["status"] == "Completed"  # already ended: left as it is


# ---- kill the process at a precise point, then re-run ----------------------------------------------------
def _spawn(stack: Any, folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**stack.env, "PHI3FT_STATE_DIR": str(folder / ".phi3ft"), "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "phi3ft", "submit", "-c", str(folder / "job.yaml"), "--yes", "--auth", "env"]
    cmd += ["--tokenizer", str(TOKENIZER), "--skip-checks", *extra]
    return subprocess.Popen(cmd, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], fault: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while fault.hits < 1:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"submit ended before the kill point: {proc.returncode}\n{err.decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "route", "kw"),
    [
        ("after hub creation", "workspaces.get", {"path": PROJECT}),
        ("during upload", "data.versions.create_or_update", {"path": "validation"}),
        ("right after job creation", "jobs.get", {"skip": 1}),
    ],
)
def test_killed_submit_resumes_without_duplicates(
    stack: Any, folder: Path, point: str, route: str, kw: dict[str, Any]
) -> None:
    fault = stack.faults.slow(route, 30, times=1, **kw)
    proc = _spawn(stack, folder)
    _kill_when(proc, fault)
    stack.faults.clear()
    before = blob_snapshot(stack) if stack.state.workspace(HUB) else {}
    first_run = wire(stack)
    stack.requests.clear()

    proc = _spawn(stack, folder, "--detach", "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    calls = wire(stack)
    assert "PUT deployments.create_or_update" in first_run
    # the hub is reused; only the project is still missing when the kill came right after the hub
    assert calls.count("PUT deployments.create_or_update") == (1 if point == "after hub creation" else 0)
    jobs = [j for j in stack.state.jobs.values()]
    assert len(jobs) == 1, [j.name for j in jobs]
    assert doc["job"]["name"] == jobs[0].name
    if "PUT jobs.create_or_update" in first_run:
        assert "PUT jobs.create_or_update" not in calls
        assert doc["resumed"] is True
    after = blob_snapshot(stack)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing complete re-uploaded
    store = StateStore(folder / ".phi3ft")
    assert store.get("hub", HUB) and store.get("project", PROJECT) and len(store.list("data")) == 2
