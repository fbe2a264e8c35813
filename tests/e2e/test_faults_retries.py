"""Retries and outages on the offline Azure stack (issue 20 §3): azure-core really makes ``retry_total``
tries, long waits ride out an outage longer than azure-core's retries, idempotent POSTs are repeated after
a dropped connection, Retry-After is capped. Counts and states, never wall time (faults answer with a
short Retry-After and the poll interval / outage window come from the environment)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import REPO, TOKENIZERS
from tests.e2e.faults_project import job_yaml, prepare

from phi3ft.state import StateStore
from phi3ft.targets.azureml.sdk._core import RETRY_ATTEMPTS
from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

pytestmark = pytest.mark.e2e

HUB, PROJECT = "hub-retry", "proj-retry"

JOB_YAML = job_yaml(HUB, PROJECT, "phi4-retry")


@pytest.fixture
def folder(tmp_path: Path, stack: Any) -> Path:
    return prepare(tmp_path, stack, JOB_YAML)


def backend_of(stack: Any) -> AzureMLBackend:
    return AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        project=PROJECT,
        hub=HUB,
        credential=stack.credential,
    )


def phi3ft(stack: Any, folder: Path, *args: str, **env: str) -> tuple[int, str, str]:
    full_env = {
        **stack.env,
        "PHI3FT_STATE_DIR": str(folder / ".phi3ft"),
        "PYTHONPATH": str(REPO / "src"),
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft", *args, "--auth", "env"],
        env=full_env, cwd=folder, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def hits(stack: Any, route: str) -> list[Any]:
    return [r for r in stack.requests.records if r.route == route]


def test_arm_calls_get_retry_total_tries_not_azure_cores_default_of_4(stack: Any) -> None:
    stack.state.add_hub(HUB)
    stack.faults.error("workspaces.get", status=503, times=RETRY_ATTEMPTS, retry_after=0.1)
    ws = backend_of(stack).get_workspace(HUB)
    assert ws is not None and ws.name == HUB
    assert len(hits(stack, "workspaces.get")) == RETRY_ATTEMPTS + 1  # 6 retries, not azure-core's 3


def seeded_job(stack: Any, folder: Path) -> str:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    job = stack.state.add_job(ws, "ft-retry-job", status="Running")
    StateStore(folder / ".phi3ft").record("job", job.name, project=PROJECT, hub=HUB, created_by_phi3ft=True)
    return str(job.name)


def test_watch_survives_a_503_burst_longer_than_azure_cores_retries(stack: Any, folder: Path) -> None:
    name = seeded_job(stack, folder)
    burst = 3 * (RETRY_ATTEMPTS + 1) + 2  # three failed polls (each after 7 tries), then 2 more 503s
    fault = stack.faults.error("jobs.get", status=503, times=burst, retry_after=0.1)
    code, _out, err = phi3ft(
        stack, folder, "watch", name, "-c", "job.yaml", PHI3FT_POLL_INTERVAL="0.2", PHI3FT_OUTAGE_WINDOW="120"
    )
    assert code == 0, err
    assert fault.hits == burst
    retries = re.findall(r"Azure returned 503; retrying in \d+ s \(attempt (\d+)\)", err)
    assert retries == ["1", "2", "3"], err
    assert stack.state.find_job(name).status == "Completed"


def test_watch_gives_up_after_the_outage_window_with_the_reattach_hint(stack: Any, folder: Path) -> None:
    name = seeded_job(stack, folder)
    stack.faults.error("jobs.get", status=503, times=None, retry_after=0.1)
    code, _out, err = phi3ft(
        stack, folder, "watch", name, "-c", "job.yaml", PHI3FT_POLL_INTERVAL="0.2", PHI3FT_OUTAGE_WINDOW="1"
    )
    assert code == 1, err
    assert "Azure returned 503; retrying in" in err
    assert f"phi3ft watch {name}` re-attaches" in " ".join(err.split())
    assert "Traceback" not in err


def test_a_dropped_list_secrets_during_submit_is_retried(stack: Any, folder: Path) -> None:
    fault = stack.faults.drop("datastores.list_secrets", times=1)
    code, _out, err = phi3ft(
        stack, folder, "submit", "-c", "job.yaml", "--yes", "--detach", "--skip-checks",
        "--tokenizer", str(TOKENIZERS / "phi4-mini"),
    )  # fmt: skip
    assert code == 0, err
    assert fault.hits == 1
    calls = hits(stack, "datastores.list_secrets")
    assert calls[0].fault == "drop" and any(c.status == 200 for c in calls[1:])
    assert len(stack.state.jobs) == 1


def test_a_dropped_inference_call_is_retried(stack: Any) -> None:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    stack.state.add_endpoint(ws, "ep-retry")
    client = backend_of(stack).chat_client("ep-retry")
    client.sleep = lambda _s: None
    fault = stack.faults.drop("inference.chat_completions", times=1)
    result = client.complete([{"role": "user", "content": "hello there"}])
    assert result.content
    assert fault.hits == 1 and result.retries == 1
    assert len(hits(stack, "inference.chat_completions")) == 2


def test_a_dropped_list_keys_is_retried(stack: Any) -> None:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    stack.state.add_endpoint(ws, "ep-keys")
    fault = stack.faults.drop("serverless_endpoints.list_keys", times=1)
    keys = backend_of(stack).get_endpoint_keys("ep-keys")
    assert keys.primary
    assert fault.hits == 1 and len(hits(stack, "serverless_endpoints.list_keys")) == 2


def test_retry_after_45_is_capped_and_announced(
    stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.state.add_hub(HUB)
    monkeypatch.setenv("PHI3FT_RETRY_AFTER_MAX", "0.5")
    slept: list[float] = []
    import azure.core.pipeline.transport._requests_basic as basic

    real_sleep = basic.RequestsTransport.sleep
    monkeypatch.setattr(
        basic.RequestsTransport, "sleep", lambda self, s: (slept.append(s), real_sleep(self, s))[1]
    )
    stack.faults.throttle("workspaces.get", retry_after=45, times=1)
    assert backend_of(stack).get_workspace(HUB) is not None
    assert slept == [0.5]
    assert len(hits(stack, "workspaces.get")) == 2


def test_retry_after_45_under_the_default_cap_is_announced(capsys: pytest.CaptureFixture[str]) -> None:
    from phi3ft.polling import cap_retry_after

    notes: list[str] = []
    assert cap_retry_after(45, notes.append) == 45
    assert cap_retry_after(600, notes.append) == 60
    assert cap_retry_after(1, notes.append) == 1
    assert notes == [
        "Azure asked to retry later; waiting 45 s",
        "Azure asked to retry later; waiting 60 s (capped from 600 s; PHI3FT_RETRY_AFTER_MAX)",
    ]
