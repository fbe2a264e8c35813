"""Issue 14's "one plan, executed": ``submit`` runs exactly the steps ``phi3ft plan`` printed, in its order.

For each backend, ``phi3ft plan --json`` (the real CLI, offline) prints the actions; then the real
``jobs.submit`` runs the real :func:`phi3ft.steps.apply` against the stack-backed Azure ML adapter (serverless,
azureml-compute) or the local target (its job fake: no trainer process), and the steps it ran (kind, target,
summary, params) must equal the printed actions. The stack's create requests follow the same order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.conftest import TOKENIZERS
from tests.e2e.helpers import chat_rows, grant_contributor

from phi3ft import jobs as svc
from phi3ft.cli.context import AppContext
from phi3ft.config import load_job_config
from phi3ft.connect import open_backend
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.targets.base import JobInfo

pytestmark = pytest.mark.e2e

TOKENIZER = TOKENIZERS / "phi4-mini"
JOB_YAML = f"""\
backend: serverless
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: hub-plan}}
  project: {{name: proj-plan}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl@VALIDATION@}}
hyperparameters: {{epochs: 1}}
training: {{epochs: 1, lora: {{r: 8, alpha: 16}}}}
compute: {{cluster_name: gpu-plan, max_nodes: 1}}
output: {{model_name: phi4-mini-plan}}
"""


def rows(n: int, tag: str) -> str:
    return chat_rows(n, lambda i: f"{tag} What is {i} plus {i}?", lambda i: f"{2 * i}")


class LocalJobs:
    """The local target's job operations, without starting a trainer process."""

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = jobs_dir
        self.created: list[str] = []

    def find_job(self, name: str) -> JobInfo | None:
        return None

    def create_local_job(self, *, name: str, **_: Any) -> JobInfo:
        self.created.append(name)
        out = self.jobs_dir / name / "output"
        return JobInfo(name=name, status="Running", backend="local",
                       extra={"output_dir": str(out), "job_dir": str(out.parent), "pid": 1})  # fmt: skip


def actions(doc: list[dict[str, Any]]) -> list[tuple[str, str, str, Any]]:
    return [(a["kind"], a["target"], a["summary"], a["params"]) for a in doc]


WORKSPACES = ["ensure_hub", "ensure_project"]
UPLOADS = ["upload_data", "upload_data"]


@pytest.mark.parametrize(
    ("backend", "validation", "kinds"),
    [
        # no validation file: split, then the two halves
        ("serverless", False, [*WORKSPACES, "split_data", *UPLOADS, "resolve_model", "submit_job"]),
        ("serverless", True, [*WORKSPACES, *UPLOADS, "resolve_model", "submit_job"]),
        ("azureml-compute", True, [*WORKSPACES, *UPLOADS, "ensure_compute", "ensure_environment", "submit_job"]),
        ("azureml-compute", False,
         [*WORKSPACES, "split_data", *UPLOADS, "ensure_compute", "ensure_environment", "submit_job"]),
        ("local", True, ["train_local"]),
    ],
)  # fmt: skip
def test_submit_runs_exactly_the_steps_plan_printed(
    stack: Any,
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
    backend: str,
    validation: bool,
    kinds: list[str],
) -> None:
    (tmp_path / "train.jsonl").write_text(rows(40, tmp_path.name))
    (tmp_path / "validation.jsonl").write_text(rows(5, "val" + tmp_path.name))
    text = JOB_YAML.replace("@VALIDATION@", ", validation: validation.jsonl" if validation else "")
    (tmp_path / "job.yaml").write_text(text.replace("backend: serverless", f"backend: {backend}"))
    grant_contributor(stack)
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ctx = AppContext(output=Output(interactive=False), env=env, cwd=tmp_path, clock=lambda: clock["now"],
                     sleep=sleep, credential_factory=lambda mode: stack.credential)  # fmt: skip

    # what `phi3ft plan` prints
    code, out, err = run_cli("plan", "-c", str(tmp_path / "job.yaml"), "--json", "--tokenizer", str(TOKENIZER),
                             ctx=ctx)  # fmt: skip
    assert code == 0, err
    printed = json.loads(out)
    assert [a["kind"] for a in printed["actions"]] == kinds
    assert printed["actions"] and all("phase" not in a["params"] for a in printed["actions"])

    # what `submit` runs
    cfg = load_job_config(tmp_path / "job.yaml", env=env)
    store = StateStore(tmp_path / ".phi3ft")
    target: Any = LocalJobs(store.dir / "jobs") if cfg.runs_locally else open_backend(ctx, cfg)
    options = svc.SubmitOptions(skip_checks=True, tokenizer=TOKENIZER, env=env, clock=ctx.clock, sleep=sleep)
    shown: list[Any] = []
    gen = svc.submit(cfg, target, store, confirm=lambda plan: shown.append(plan) or True, options=options)
    result = svc.run_submit(gen, lambda event: None)

    ran = [a.to_dict() for a in result.ran]
    assert actions(ran) == actions(printed["actions"])
    assert [a["step"] for a in ran] == list(range(1, len(ran) + 1))
    confirmed = [a.to_dict() for a in shown[0].actions]  # the plan the confirmation showed
    assert actions(confirmed) == actions(printed["actions"])

    # and the remote side saw the creates in that order
    if cfg.runs_locally:
        assert target.created == [printed["names"]["job"]]
        return
    route_of = {
        "ensure_hub": "deployments.create_or_update",
        "upload_data": "data.versions.create_or_update",
        "ensure_compute": "computes.create_or_update",
        "ensure_environment": "environments.versions.create_or_update",
        "submit_job": "jobs.create_or_update",
    }
    creates = [r.route for r in stack.requests.find() if r.route in route_of.values()]
    expected = [route_of[k] for k in kinds if k in route_of]
    expected.insert(1, "deployments.create_or_update")  # the project's ARM deployment follows the hub's
    assert creates == expected
    assert result.job.name == printed["names"]["job"]
