"""The whole life of a fine-tune on the offline Azure stack, through the real CLI and the real SDKs:

init -> validate -> check -> submit -> watch -> deploy -> invoke -> eval -> delete --all

After each step the stack's state is asserted; at the end nothing phi3ft created remains, in Azure or in
the local ledger. The walk's wall time and request count are printed (README "Deploy, evaluate, clean up").
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import FakeTime, chat_rows, grant_contributor

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL = "hub-life", "proj-life", "phi4-life-ft"
ANSWER = "Restart the console and try again."


def conversations(n: int, answer: str) -> str:
    return chat_rows(
        n,
        lambda i: f"My controller {i} does not connect.",
        lambda i: answer,
        system="You are an Xbox support agent.",
    )


def test_whole_life_leaves_nothing_behind(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    folder = tmp_path
    fake_time = FakeTime()
    steps: list[tuple[str, float, int]] = []
    walk_start = time.perf_counter()
    stack.requests.clear()

    def cli(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(folder / ".phi3ft")},
            cwd=folder,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        before, t0 = len(stack.requests), time.perf_counter()
        code, out, err = run_cli(*args, ctx=ctx)
        steps.append((args[0], time.perf_counter() - t0, len(stack.requests) - before))
        assert code == 0, f"phi3ft {' '.join(args)} exited {code}\n{err}"
        return code, out, err

    store = StateStore(folder / ".phi3ft")

    # 1. init: a starter job.yaml, then point it at the (offline) subscription
    cli("init", "-m", "phi-4-mini-instruct", "-o", str(folder / "job.yaml"))
    text = (folder / "job.yaml").read_text()
    for old, new in (
        (r"subscription_id: .*", f"subscription_id: {SUBSCRIPTION_ID}"),
        (r"resource_group: .*", f"resource_group: {RESOURCE_GROUP}"),
        (r"name: hub-phi-ft", f"name: {HUB}"),
        (r"name: phi-ft\n", f"name: {PROJECT}\n"),
        (r"model_name: .*", f"model_name: {MODEL}"),
        (r"auth: auto .*", "auth: env"),
    ):
        text, n = re.subn(old, new, text, count=1)
        assert n == 1, old
    (folder / "job.yaml").write_text(text)
    (folder / "data").mkdir()
    (folder / "data" / "train.jsonl").write_text(conversations(40, ANSWER))
    (folder / "data" / "validation.jsonl").write_text(
        conversations(6, ANSWER) + conversations(2, "Unplug it and plug it back in.")
    )
    assert stack.requests.records == []  # nothing touched Azure yet

    # 2. validate (offline)
    tok = str(TOKENIZERS / "phi4-mini")
    _, out, _ = cli(
        "validate",
        str(folder / "data" / "train.jsonl"),
        "-m",
        "phi-4-mini-instruct",
        "--tokenizer",
        tok,
        "-f",
        "json",
    )
    assert stack.requests.records == []

    # 3. check: live, read-only (submit creates the hub: a storage account and key vault need Contributor)
    grant_contributor(stack)
    _, out, _ = cli("check", "-c", str(folder / "job.yaml"), "--json")
    assert stack.state.workspace(HUB) is None  # check never creates anything
    assert not [r for r in stack.requests if r.method in ("PUT", "DELETE", "PATCH")]

    # 4. submit: hub, project, data assets, job; recorded in the ledger as phi3ft's
    _, out, _ = cli(
        "submit", "-c", str(folder / "job.yaml"), "--tokenizer", tok, "--yes", "--detach", "--json"
    )
    assert stack.state.workspace(HUB) is not None and stack.state.workspace(PROJECT) is not None
    ws = stack.state.workspace(PROJECT)
    assert len([k for k in stack.state.jobs if k[0] == ws.key]) == 1
    job = store.last_job
    assert job and store.get("job", job)["created_by_phi3ft"] is True  # type: ignore[index]
    assert {r["name"] for r in store.list("hub")} == {HUB} and len(store.list("data")) == 2

    # 5. watch until Completed: the job registers the fine-tuned model
    _, out, _ = cli("watch", job, "--json")
    assert stack.state.find_job(job).status == "Completed"
    assert "1" in stack.state.model_versions(ws, MODEL)

    # 6. deploy: serverless endpoint with content safety on; --dry-run first prints its steps, creates nothing
    puts = len([r for r in stack.requests if r.method == "PUT"])
    _, out, _ = cli("deploy", "--dry-run", "--json")
    planned = json.loads(out)
    assert planned["dry_run"] is True
    assert [a["kind"] for a in planned["actions"]] == ["resolve_model", "ensure_endpoint", "wait_endpoint"]
    assert len([r for r in stack.requests if r.method == "PUT"]) == puts and not stack.state.endpoints
    _, out, _ = cli("deploy", "--json")
    deployed = json.loads(out)
    endpoint = deployed["endpoint"]
    ep = stack.state.endpoint(endpoint)
    assert ep is not None and ep.provisioning_state == "Succeeded" and ep.content_safety == "Enabled"
    assert deployed["scoring_uri"] == ep.uri
    assert ep.model_id.endswith(f"/workspaces/{ws.workspace_id}/models/{MODEL}/versions/1")

    # 7. invoke: a smoke test over HTTPS
    stack.state.inference_reply = ANSWER
    _, out, _ = cli("invoke", "My controller does not connect.", "--json")
    assert json.loads(out)["answer"] == ANSWER

    # 8. eval with a CI gate
    _, out, _ = cli("eval", "--data", str(folder / "data" / "validation.jsonl"), "--min-f1", "0.6", "--json")
    report = json.loads(out)
    assert report["examples"] == 8 and report["errors"] == 0 and report["passed"] is True
    assert report["exact_match"] == pytest.approx(6 / 8)

    # 9. delete --all: endpoints, model, data, project, hub; nothing phi3ft created remains
    _, out, _ = cli("delete", "--all", "--yes", "--json")
    deleted = [(d["kind"], d["result"]) for d in json.loads(out)["deleted"]]
    assert [k for k, _ in deleted] == ["endpoint", "model", "data", "data", "project", "hub"]
    assert stack.state.endpoint(endpoint) is None
    assert stack.state.workspace(PROJECT) is None and stack.state.workspace(HUB) is None
    assert not any(k[0] == ws.key for k in list(stack.state.models) + list(stack.state.data))
    for kind in ("job", "endpoint", "model", "data", "project", "hub"):
        assert store.list(kind) == [], kind
    # and again: idempotent, nothing to do
    _, out, _ = cli("delete", "--all", "--yes", "--json")
    assert json.loads(out)["deleted"] == []

    wall = time.perf_counter() - walk_start
    total = len(stack.requests)
    print(f"\nlifecycle walk: {wall:.1f} s wall, {total} HTTPS requests to the fake ARM/AML/inference")
    for name, seconds, count in steps:
        print(f"  {name:<9} {seconds:6.2f} s  {count:4d} requests")
