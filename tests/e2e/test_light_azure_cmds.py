"""Read-only Azure commands as whole processes (real ``EnvironmentCredential`` against the fake Entra ID):
they never import azure-ai-ml, build one credential, and send only the requests they need (counts, never
wall time; ``benchmarks/azure_cmds_bench.py`` measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.e2e.helpers import grant_contributor

from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT, JOB, ENDPOINT = "hub-phi3ft", "proj-phi3ft", "ft-light-1", "ep-light-1"

#: Runs the CLI in a subprocess and writes what it loaded and which credentials it built.
PROBE = """\
import json, sys
from phi3ft.cli.app import main
rc = main(sys.argv[2:])
from phi3ft.targets.azureml.sdk import credentials
doc = {"rc": rc, "azure_ai_ml": "azure.ai.ml" in sys.modules, "matplotlib": "matplotlib" in sys.modules,
       "config": "phi3ft.config" in sys.modules,
       "built": credentials.BUILT, "reports": credentials.credential_report()}
with open(sys.argv[1], "w") as fh:
    json.dump(doc, fh)
"""


@pytest.fixture
def folder(stack: Any, tmp_path: Path) -> Path:
    """A folder whose ledger knows a Completed job and a ready endpoint (no job.yaml)."""
    ws = stack.state.add_project(PROJECT, HUB)
    stack.state.add_job(ws, JOB, status="Completed")
    ep = stack.state.add_endpoint(ws, ENDPOINT)
    store = StateStore(tmp_path / ".phi3ft")
    where = {"subscription_id": SUBSCRIPTION_ID, "resource_group": RESOURCE_GROUP, "location": LOCATION}
    store.record("job", JOB, hub=HUB, project=PROJECT, auth="env", **where)
    store.record("endpoint", ENDPOINT, job=JOB, state="Succeeded", scoring_uri=ep.uri, **where)
    return tmp_path


def run(stack: Any, folder: Path, *args: str, stdin: str = "") -> tuple[dict[str, Any], list[str], str]:
    """(probe document, routes the stack saw without Entra ID's, stderr)."""
    stack.requests.clear()
    out = folder / "probe.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args, "--auth", "env"],
        cwd=folder, env=stack.env, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["rc"] == 0, proc.stderr
    routes = [str(r.route) for r in stack.requests if not str(r.route).startswith("entra.")]
    return doc, routes, proc.stderr


def entra_tokens(stack: Any) -> int:
    return len(stack.requests.find(route="entra.token"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # an ended job whose resource lacks start/end times: they come from run history (issue 15 item 18)
        (("status", JOB), ["jobs.get", "workspaces.get", "discovery.get", "run_history.details"]),
        (("list",), ["jobs.list"]),
        (("keys", ENDPOINT), ["serverless_endpoints.list_keys"]),
        (("invoke", ENDPOINT, "hello"), ["serverless_endpoints.list_keys", "inference.chat_completions"]),
        (("watch", JOB), ["jobs.get"]),  # already Completed: one GET, no metrics reads
        (("logs", JOB), ["jobs.get", "workspaces.get", "discovery.get", "run_history.details"]),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else None,
)
def test_read_only_commands_skip_azure_ai_ml(
    stack: Any, folder: Path, args: tuple[str, ...], expected: list[str]
) -> None:
    doc, routes, err = run(stack, folder, *args)
    assert routes == expected, err
    assert doc["azure_ai_ml"] is False
    assert doc["built"] == ["env"]  # one credential for the whole process
    assert entra_tokens(stack) == 1
    assert doc["reports"][0]["credential"] == "EnvironmentCredential"
    assert doc["reports"][0]["tokens_fetched"] == 1


def test_chat_reaches_its_first_prompt_with_one_request(stack: Any, folder: Path) -> None:
    doc, routes, err = run(stack, folder, "chat", ENDPOINT, stdin="/exit\n")
    assert "Chatting with ep-light-1" in err
    assert routes == ["serverless_endpoints.list_keys"]  # the scoring URI came from the ledger
    assert doc["azure_ai_ml"] is False and doc["built"] == ["env"]


def test_endpoint_commands_use_the_ledger_record_of_the_endpoint(stack: Any, folder: Path) -> None:
    """keys/invoke/chat find the endpoint's project in its ledger record (where it was deployed) before a
    job.yaml in the folder, so they parse no job.yaml (importing phi3ft.config costs 0.3-0.6 s)."""
    (folder / "job.yaml").write_text("this: [is not read")
    for args in (("keys", ENDPOINT), ("invoke", ENDPOINT, "hello")):
        doc, routes, err = run(stack, folder, *args)
        assert routes[0] == "serverless_endpoints.list_keys", err
        assert doc["config"] is False and doc["azure_ai_ml"] is False


def test_metrics_without_plot_imports_neither_sdk_nor_matplotlib(stack: Any, folder: Path) -> None:
    stack.state.set_job_metrics(JOB, {"train_loss": [2.0, 1.5]})
    doc, routes, err = run(stack, folder, "metrics", JOB)
    assert doc["azure_ai_ml"] is False and doc["matplotlib"] is False
    assert routes[:3] == ["jobs.get", "workspaces.get", "discovery.get"], err


def test_invoke_of_an_endpoint_deleted_behind_the_ledger_says_it_does_not_exist(
    stack: Any, folder: Path
) -> None:
    """The ledger's scoring URI saves the endpoint GET; a gone endpoint still gets the same error."""
    stack.state.endpoints.clear()
    stack.requests.clear()
    out = folder / "probe.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), "invoke", ENDPOINT, "hello", "--auth", "env"],
        cwd=folder, env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(out.read_text())["rc"] == 6 or proc.returncode in (0, 6)
    assert f"Error: Serverless endpoint {ENDPOINT} does not exist in project {PROJECT}." in proc.stderr
    assert "Hint: Deploy it with `phi3ft deploy`" in proc.stderr
    assert not stack.requests.find(route="inference.*")


def test_resubmit_builds_one_credential_and_asks_entra_once(stack: Any, tmp_path: Path) -> None:
    """A re-submit of the same config and data (re-attach) reads hub, project, data, registry model and job
    without azure-ai-ml; its clients (management SDKs for the checks, the light client) share one credential,
    which asks Entra ID for a token once."""
    grant_contributor(stack)
    rows = "".join(
        json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                 {"role": "assistant", "content": str(2 * i)}]}) + "\n"
        for i in range(30)
    )  # fmt: skip
    (tmp_path / "train.jsonl").write_text(rows)
    (tmp_path / "job.yaml").write_text(
        f"backend: serverless\nazure:\n  subscription_id: {SUBSCRIPTION_ID}\n  resource_group: {RESOURCE_GROUP}\n"
        f"  location: {LOCATION}\n  hub: {{name: {HUB}}}\n  project: {{name: {PROJECT}}}\n  auth: env\n"
        "model: {name: phi-4-mini-instruct}\ndata:\n  train: train.jsonl\noutput: {model_name: phi4-light}\n"
    )
    args = ("submit", "-c", "job.yaml", "--yes", "--detach")
    run(stack, tmp_path, *args)
    doc, routes, err = run(stack, tmp_path, *args)  # re-attach
    assert "jobs.create_or_update" not in routes and "jobs.get" in routes, err
    # check and submit both look at the hub, the project and the registry model: each is asked once
    assert routes.count("workspaces.get") == 2 and routes.count("registry.models.versions.get") == 1, routes
    assert doc["azure_ai_ml"] is False
    assert doc["built"] == ["env"]
    assert entra_tokens(stack) == 1, [
        (r.body, r.headers) for r in stack.requests.find(route="entra.token")
    ] + [doc]
    assert doc["reports"][0]["tokens_requested"] > doc["reports"][0]["tokens_fetched"] == 1


def cli(stack: Any, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phi3ft", *args, "--auth", "env"],
        cwd=folder, env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_light_client_errors_read_like_the_sdk_ones(stack: Any, folder: Path) -> None:
    """One error translation: 403, 409 and 404 answers to the light client give the messages, hints and
    exit codes of ``_core.translate_errors``."""
    stack.faults.error("serverless_endpoints.list_keys", status=403, code="AuthorizationFailed",
                       message="no listKeys here", times=None)  # fmt: skip
    proc = cli(stack, folder, "keys", ENDPOINT)
    assert proc.returncode == 4, proc.stderr
    assert (
        "Error: Permission denied while trying to read the keys of serverless endpoint ep-light-1: "
        "no listKeys here" in proc.stderr
    )
    assert "Hint: Ask an Owner of the resource group" in proc.stderr

    stack.faults.clear()
    stack.faults.error("jobs.get", status=409, code="Conflict", message="busy", times=None)
    proc = cli(stack, folder, "status", JOB)
    assert proc.returncode == 1, proc.stderr
    assert "Error: Azure refused to read job 'ft-light-1' (HTTP 409 Conflict): busy" in proc.stderr
    assert "Hint: Another operation is changing the same resource" in proc.stderr

    stack.faults.clear()
    stack.state.jobs.clear()  # gone behind the ledger's back
    proc = cli(stack, folder, "status", JOB)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: Not found while trying to read job 'ft-light-1'"), proc.stderr
    assert "Traceback" not in proc.stderr
