"""A 2-point sweep (two learning rates) on the offline Azure stack, through the real CLI and the real SDKs:

plan -> submit -> watch --sweep -> compare -> deploy --best -> delete --all

The comparison's numbers are checked against the metrics the fake jobs reported (the stack derives them from
each job's learning rate), and at the end nothing phi3ft created remains, in Azure or in the local ledger.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import FakeTime, chat_rows, grant_contributor

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL = "hub-sweep", "proj-sweep", "phi4-sweep-ft"
TOKENIZER = str(TOKENIZERS / "phi4-mini")

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
data: {{train: train.jsonl, validation: validation.jsonl}}
hyperparameters: {{epochs: 1}}
output: {{model_name: {MODEL}}}
pricing: {{currency: USD, training_per_1k_tokens: 0.01}}
sweep:
  learning_rate: [0.00002, 0.0001]
"""


def conversations(n: int, answer: str) -> str:
    return chat_rows(
        n,
        lambda i: f"My controller {i} does not connect.",
        lambda i: answer,
        system="You are an Xbox support agent.",
    )


@pytest.fixture
def cli(stack: Any, tmp_path: Path, run_cli: Any) -> Any:
    fake_time = FakeTime()

    def run(*args: str, expect: int = 0) -> tuple[int, str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(tmp_path / ".phi3ft")},
            cwd=tmp_path,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        code, out, err = run_cli(*args, ctx=ctx)
        assert code == expect, f"phi3ft {' '.join(args)} exited {code}\n{err}"
        return code, out, err

    (tmp_path / "job.yaml").write_text(JOB_YAML)
    # submit creates the hub (a storage account and key vault): that needs Contributor on the group
    grant_contributor(stack)
    (tmp_path / "train.jsonl").write_text(conversations(40, "Restart the console and try again."))
    (tmp_path / "validation.jsonl").write_text(conversations(6, "Restart the console and try again."))
    return run


def test_sweep_submit_watch_compare_deploy_best_delete_all(stack: Any, cli: Any, tmp_path: Path) -> None:
    config = str(tmp_path / "job.yaml")
    store = StateStore(tmp_path / ".phi3ft")
    stack.requests.clear()

    # 1. plan: every point, its name and the billed tokens of all of them, offline
    _, out, _ = cli("plan", "-c", config, "--json", "--tokenizer", TOKENIZER)
    planned = json.loads(out)["sweep"]
    assert [p["values"] for p in planned["points"]] == [{"learning_rate": 0.00002}, {"learning_rate": 0.0001}]
    assert planned["billed_tokens"] == sum(p["billed_tokens"] for p in planned["points"]) > 0
    assert planned["cost"] == pytest.approx(sum(p["cost"] for p in planned["points"]))
    assert stack.requests.records == []
    _, out, _ = cli("plan", "-c", config, "--tokenizer", TOKENIZER)
    assert planned["points"][1]["job"] in out and "in total over all points" in out

    # 2. submit: one hub, one project, the data once, one job per point
    _, out, err = cli("submit", "-c", config, "--tokenizer", TOKENIZER, "--yes", "--detach", "--json")
    submitted = json.loads(out)
    jobs = [p["job"] for p in submitted["points"]]
    assert jobs == [p["job"] for p in planned["points"]]
    ws = stack.state.workspace(PROJECT)
    assert ws is not None and len([k for k in stack.state.jobs if k[0] == ws.key]) == 2
    assert len(stack.requests.find(route="jobs.create_or_update")) == 2
    assert len(store.list("data")) == 2 and {r["name"] for r in store.list("hub")} == {HUB}
    rates = [
        stack.state.find_job(j).properties["fineTuningDetails"]["hyperParameters"]["learning_rate"]
        for j in jobs
    ]
    assert rates == ["0.00002", "0.0001"]
    outputs = [p["output_model"] for p in submitted["points"]]
    assert len(set(outputs)) == 2 and all(o.startswith(f"{MODEL}-") for o in outputs)

    # re-run: every point re-attaches, nothing is created again
    stack.requests.clear()
    cli("submit", "-c", config, "--tokenizer", TOKENIZER, "--yes", "--detach", "--json")
    assert not [r for r in stack.requests if r.method in ("PUT", "POST") and "jobs" in r.route]

    # 3. watch the whole sweep (non-TTY: a line per change)
    _, out, err = cli("watch", "--sweep", "--json")
    watched = json.loads(out)
    assert [r["status"] for r in watched["points"]] == ["Completed", "Completed"]
    assert all(f"{j}: Completed" in err for j in jobs)

    # 4. compare: the numbers the fake jobs reported; the best by validation loss
    _, out, _ = cli("compare", "--json")
    report = json.loads(out)
    for point in report["points"]:
        reported = stack.state.job_metrics(stack.state.find_job(point["job"]))
        assert point["train_loss"] == pytest.approx(reported["train_loss"][-1])
        assert point["eval_loss"] == pytest.approx(reported["eval_loss"][-1])
    losses = {p["job"]: p["eval_loss"] for p in report["points"]}
    assert losses[jobs[0]] != losses[jobs[1]]
    best = min(losses, key=lambda j: losses[j])
    assert report["best"] == best and [p["best"] for p in report["points"]].count(True) == 1
    best_model = next(p["output_model"] for p in report["points"] if p["job"] == best)
    _, text, _ = cli("compare")
    assert f"* best by validation loss: {best}" in text and f"{losses[best]:.4f}" in text
    print(f"\n{text}")

    # 5. deploy --best: the best point's model, content safety on
    _, out, _ = cli("deploy", "--best", "--json")
    deployed = json.loads(out)
    ep = stack.state.endpoint(deployed["endpoint"])
    assert ep is not None and ep.provisioning_state == "Succeeded" and ep.content_safety == "Enabled"
    assert ep.model_id.endswith(f"/models/{best_model}/versions/1")

    # 5b. the base model of the best point, then eval --baseline with the gate: the fake fine-tuned endpoint
    # answers the reference, the base one something else, so the numbers are known in advance
    _, out, _ = cli("deploy", "--best", "--baseline", "--yes", "--json")
    base = json.loads(out)
    assert base["baseline"] is True and stack.state.endpoint(base["endpoint"]).content_safety == "Enabled"
    stack.state.inference_replies[deployed["endpoint"].lower()] = "Restart the console and try again."
    stack.state.inference_replies[base["endpoint"].lower()] = "Check the cable."
    _, out, _ = cli(
        "eval", deployed["endpoint"], base["endpoint"], "--baseline", "--data", str(tmp_path / "validation.jsonl"),
        "--min-gain", "f1", "0.0", "--json",
    )  # fmt: skip
    scored = json.loads(out)
    assert scored["passed"] is True
    assert scored["fine_tuned"]["exact_match"] == 1.0 and scored["base"]["exact_match"] == 0.0
    assert scored["counts"]["win"] == 6 and scored["counts"]["loss"] == 0

    # 6. delete --all: endpoint, both models, data, project, hub; the ledger forgets the sweep too
    _, out, _ = cli("delete", "--all", "--yes", "--json")
    deleted = [(d["kind"], d["result"]) for d in json.loads(out)["deleted"]]
    assert sorted(k for k, _ in deleted) == sorted(
        ["endpoint", "endpoint", "model", "model", "data", "data", "project", "hub"]
    )
    assert stack.state.endpoint(deployed["endpoint"]) is None
    assert stack.state.workspace(PROJECT) is None and stack.state.workspace(HUB) is None
    assert not any(k[0] == ws.key for k in list(stack.state.models) + list(stack.state.data))
    for kind in ("job", "endpoint", "model", "data", "project", "hub", "sweep"):
        assert store.list(kind) == [], kind


def test_cancel_and_delete_a_running_sweep(stack: Any, cli: Any, tmp_path: Path) -> None:
    config = str(tmp_path / "job.yaml")
    store = StateStore(tmp_path / ".phi3ft")
    stack.state.default_job_script = ["NotStarted", "Queued", *["Running"] * 50, "Completed"]
    _, out, _ = cli("submit", "-c", config, "--tokenizer", TOKENIZER, "--yes", "--detach", "--json")
    jobs = [p["job"] for p in json.loads(out)["points"]]

    _, out, _ = cli("cancel", "--sweep", "--yes", "--json")
    assert [p["status"] for p in json.loads(out)["points"]] == ["Canceled", "Canceled"]
    assert [stack.state.find_job(j).status for j in jobs] == ["Canceled", "Canceled"]
    cli("compare", "--json")
    cli("deploy", "--best", expect=4)  # no point completed: nothing to deploy (exit 4, the reason)
    _, out, _ = cli(
        "delete", "--sweep", "--dry-run", "--json"
    )  # canceled: no endpoint; models as for one job
    assert {s["kind"] for s in json.loads(out)["plan"]} == {"model"} and len(store.list("sweep")) == 1

    # re-run: like a single job, a canceled point gets a new attempt (-2); the data is not uploaded again
    _, out, _ = cli("submit", "-c", config, "--tokenizer", TOKENIZER, "--yes", "--detach", "--json")
    assert [p["job"] for p in json.loads(out)["points"]] == [f"{j}-2" for j in jobs]
    assert json.loads(out)["points"][0]["status"] != "Canceled"

    # delete --sweep: the running attempts are canceled, the sweep record goes
    _, out, _ = cli("delete", "--sweep", "--yes", "--json")
    canceled = [d["name"] for d in json.loads(out)["deleted"] if d["kind"] == "job"]
    assert sorted(canceled) == sorted(f"{j}-2" for j in jobs)
    assert [stack.state.find_job(f"{j}-2").status for j in jobs] == ["Canceled", "Canceled"]
    assert store.list("sweep") == []
    cli("delete", "--all", "--yes")
    assert stack.state.workspace(PROJECT) is None and stack.state.workspace(HUB) is None


def test_a_failed_point_exits_5_and_the_others_still_compare(stack: Any, cli: Any, tmp_path: Path) -> None:
    from phi3ft.config import load_job_config
    from phi3ft.sweep import expand

    points = expand(load_job_config(tmp_path / "job.yaml", env={})).points
    stack.faults.fail_job(points[1].job, message="Training data validation failed.")
    _, _, err = cli("submit", "-c", str(tmp_path / "job.yaml"), "--tokenizer", TOKENIZER, "--yes", expect=5)
    assert f"1 of 2 sweep points did not complete: {points[1].job} Failed" in err
    _, out, _ = cli("compare", "--json")
    report = json.loads(out)
    assert [p["status"] for p in report["points"]] == ["Completed", "Failed"]
    assert report["best"] == points[0].job
    cli("delete", "--all", "--yes")
    assert stack.state.workspace(PROJECT) is None and stack.state.workspace(HUB) is None
