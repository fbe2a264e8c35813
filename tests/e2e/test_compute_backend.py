"""``backend: azureml-compute`` end to end: the real azure-ai-ml SDK creates the cluster, the environment, the
code snapshot and the command job on the offline Azure stack; the job's output is registered as a model.
Asserts the wire body of the job, then watch / status / logs / cancel on command jobs."""

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

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.targets.azureml.sdk.compute import ENVIRONMENT_NAME, environment_files, environment_version

pytestmark = pytest.mark.e2e

HUB, PROJECT, CLUSTER = "hub-phi3ft", "proj-phi3ft", "gpu-a100"
TOKENIZER = TOKENIZERS / "phi4-mini"

JOB_YAML = f"""\
backend: serverless   # the tests pick azureml-compute with --backend
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {RESOURCE_GROUP}
  location: {LOCATION}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
  auth: env
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl, validation: validation.jsonl}}
training: {{epochs: 2, learning_rate: 0.0001, lora: {{r: 8, alpha: 16}}}}
compute:
  cluster_name: {CLUSTER}
  vm_size: Standard_NC48ads_A100_v4
  max_nodes: 2
  processes_per_node: 2
  idle_seconds_before_scaledown: 600
output: {{model_name: phi4-mini-cluster}}
"""


def rows(n: int, tag: str) -> str:
    return chat_rows(n, lambda i: f"{tag} What is {i} plus {i}?", lambda i: f"{2 * i}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(rows(40, tmp_path.name))
    (tmp_path / "validation.jsonl").write_text(rows(5, "val" + tmp_path.name))
    (tmp_path / "job.yaml").write_text(JOB_YAML)
    return tmp_path


@pytest.fixture
def cli(
    stack: Any, folder: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> Callable[..., tuple[int, str, str]]:
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    def run(*args: str) -> tuple[int, str, str]:
        ctx = AppContext(output=Output(interactive=False), env=dict(os.environ), cwd=folder,
                         clock=lambda: clock["now"], sleep=sleep,
                         credential_factory=lambda mode: stack.credential)  # fmt: skip
        return run_cli(*args, ctx=ctx)  # type: ignore[no-any-return]

    return run


def submit(cli: Callable[..., tuple[int, str, str]], folder: Path, *extra: str) -> tuple[int, str, str]:
    return cli("submit", "-c", str(folder / "job.yaml"), "--backend", "azureml-compute", "--yes",
               "--tokenizer", str(TOKENIZER), *extra)  # fmt: skip


def test_cluster_path_submits_the_right_job_and_registers_the_adapter(
    stack: Any, cli: Any, folder: Path
) -> None:
    grant_contributor(stack)
    code, out, err = submit(cli, folder, "--json")
    assert code == 0, err
    doc = json.loads(out)
    name = doc["job"]["name"]
    assert doc["job"]["status"] == "Completed" and doc["job"]["backend"] == "azureml-compute"
    assert "not offered" not in err  # serverless-only checks do not block a cluster job

    # the cluster: scale to zero, size and idle time from compute:
    (put,) = stack.requests.find(route="computes.create_or_update")
    cprops = put.body["properties"]
    assert cprops["computeType"] == "AmlCompute"
    assert cprops["properties"]["vmSize"] == "Standard_NC48ads_A100_v4"
    assert cprops["properties"]["scaleSettings"] == {
        "maxNodeCount": 2, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT10M"
    }  # fmt: skip

    # the environment: curated PyTorch image + phi3ft's train requirements, versioned by content
    version = environment_version(environment_files())
    (env_put,) = stack.requests.find(route="environments.versions.create_or_update")
    assert env_put.path.endswith(f"/environments/{ENVIRONMENT_NAME}/versions/{version}")
    assert env_put.body["properties"]["build"]["dockerfilePath"] == "Dockerfile"

    # the job, as sent
    (job_put,) = stack.requests.find(route="jobs.create_or_update")
    props = job_put.body["properties"]
    ws = stack.state.workspace(PROJECT)
    assert props["jobType"] == "Command"
    assert props["command"] == (
        "PHI3FT_TRAIN=${{inputs.train}} PHI3FT_VALIDATION=${{inputs.validation}} "
        "python -m phi3ft train --config phi3ft-job.yaml --output-dir ${{outputs.adapter}} --json"
    )
    assert props["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 2}
    assert props["resources"]["instanceCount"] == 2
    assert props["computeId"] == f"{ws.id}/computes/{CLUSTER}"
    assert props["environmentId"] == f"{ws.id}/environments/{ENVIRONMENT_NAME}/versions/{version}"
    assets = {r["role"]: r for r in doc["data"]}
    for role in ("train", "validation"):
        assert props["inputs"][role]["jobInputType"] == "uri_file"
        assert props["inputs"][role]["uri"] == assets[role]["id"]
    adapter = props["outputs"]["adapter"]
    assert adapter["jobOutputType"] == "custom_model"
    assert adapter["assetName"] == "phi4-mini-cluster" and adapter["assetVersion"] == "1"
    assert "/codes/" in props["codeId"]

    # the code snapshot holds phi3ft and the generated training config
    (code_put,) = stack.requests.find(route="codes.versions.create_or_update")
    assert code_put.body["properties"]["codeUri"]
    # on completion the adapter is a workspace model
    model = stack.state.model_versions(ws, "phi4-mini-cluster")["1"]
    assert model["properties"]["jobName"] == name

    record = StateStore(folder / ".phi3ft").get("job", name)
    assert record is not None and record["backend"] == "azureml-compute"
    assert record["compute"] == CLUSTER and record["output_model_name"] == "phi4-mini-cluster"
    cluster = StateStore(folder / ".phi3ft").get("compute", CLUSTER)
    assert cluster is not None and cluster["created_by_phi3ft"] is True

    code, out, err = cli("status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["status"] == "Completed" and status["backend"] == "azureml-compute"
    assert status["output_model_name"] == "phi4-mini-cluster"
    code, _, err = cli("logs", name)
    assert code == 0, err

    # a second submit re-attaches: no new cluster, environment, code or job
    stack.requests.clear()
    code, out, err = submit(cli, folder, "--json", "--skip-checks")
    assert code == 0, err
    assert json.loads(out)["resumed"] is True
    assert not [r for r in stack.requests if r.method in ("PUT", "POST") and r.route != "<unrouted>"
                and not r.route.startswith("entra")]  # fmt: skip
    stack.assert_all_routed()
    stack.assert_no_server_errors()


def test_existing_cluster_is_reused_and_watch_cancel_work(stack: Any, cli: Any, folder: Path) -> None:
    stack.state.default_job_script = ["NotStarted", "Queued", *["Running"] * 50, "Completed"]
    code, out, err = submit(cli, folder, "--detach", "--json", "--skip-checks")
    assert code == 0, err
    name = json.loads(out)["job"]["name"]
    assert len(stack.requests.find(route="computes.create_or_update")) == 1

    code, out, err = cli("cancel", name, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] in ("CancelRequested", "Canceled")
    code, _, err = cli("watch", name)
    assert code == 5 and "Canceled" in err
    stack.assert_no_server_errors()

    # a new attempt (the first was canceled) reuses the cluster and the environment
    stack.requests.clear()
    stack.state.default_job_script = ["NotStarted", "Running", "Completed"]
    code, out, err = submit(cli, folder, "--json", "--skip-checks")
    assert code == 0, err
    assert json.loads(out)["job"]["name"] == f"{name}-2"
    assert not stack.requests.find(route="computes.create_or_update")
    assert not stack.requests.find(route="environments.versions.create_or_update")
    ws = stack.state.workspace(PROJECT)
    assert "1" in stack.state.model_versions(ws, "phi4-mini-cluster-2")


# ---- the cluster phi3ft creates, and the one it reuses ---------------------------------------------------
def test_new_cluster_closes_ssh_sends_zero_idle_and_reports_progress(
    stack: Any, cli: Any, folder: Path
) -> None:
    (folder / "job.yaml").write_text(
        JOB_YAML.replace("idle_seconds_before_scaledown: 600", "idle_seconds_before_scaledown: 0")
    )
    stack.state.compute_create_polls = 4  # the cluster reads Creating a few times, as on real Azure
    code, _out, err = submit(cli, folder, "--detach", "--json", "--skip-checks")
    assert code == 0, err
    (put,) = stack.requests.find(route="computes.create_or_update")
    inner = put.body["properties"]["properties"]
    assert inner["remoteLoginPortPublicAccess"] == "Disabled"  # phi3ft never needs SSH
    assert inner["scaleSettings"] == {
        "maxNodeCount": 2,
        "minNodeCount": 0,
        "nodeIdleTimeBeforeScaleDown": "PT0S",
    }
    assert inner["vmSize"] == "Standard_NC48ads_A100_v4" and inner["osType"] == "Linux"
    progress = [line for line in err.splitlines() if line.startswith(f"Cluster {CLUSTER}: ")]
    assert progress and all("Creating (" in line for line in progress[:-1])
    assert progress[-1].startswith(f"Cluster {CLUSTER}: Succeeded (")
    assert len(stack.requests.find(route="computes.get")) >= 4  # watched by GETs, not by an SDK poller thread
    assert len(stack.requests.find(route="jobs.create_or_update")) == 1


def test_cluster_creation_times_out_with_a_hint_and_stays_in_the_ledger(
    stack: Any, cli: Any, folder: Path
) -> None:
    stack.state.compute_create_polls = 10**6  # never finishes
    code, _out, err = submit(cli, folder, "--skip-checks")
    assert code == 1, err
    assert "Timed out after 1" in err and f"waiting for compute cluster '{CLUSTER}' (Creating)" in err
    assert "re-run `phi3ft submit` later (it reuses the cluster)" in err
    assert not stack.requests.find(route="jobs.create_or_update")
    record = StateStore(folder / ".phi3ft").get("compute", CLUSTER)
    assert record is not None and record["created_by_phi3ft"] is True  # delete --all removes it


def test_reused_cluster_smaller_than_the_job_is_refused(stack: Any, cli: Any, folder: Path) -> None:
    (folder / "job.yaml").write_text(JOB_YAML.replace("max_nodes: 2", "max_nodes: 1"))
    code, _out, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 0, err
    # the job now asks for 4 instances on the existing 1-node cluster
    (folder / "job.yaml").write_text(JOB_YAML.replace("max_nodes: 2", "max_nodes: 4"))
    stack.requests.clear()
    code, _out, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 4, err
    assert f"Compute cluster {CLUSTER} exists with at most 1 node(s); the job asks for 4 instances" in err
    assert (
        f"Set compute.max_nodes: 1 in job.yaml, or raise the cluster's limit: `az ml compute update --name {CLUSTER} --max-instances 4`"
        in err
    )
    assert not stack.requests.find(route="jobs.create_or_update")
    assert not stack.requests.find(route="computes.create_or_update")  # never resized behind the user's back


def test_reused_cluster_of_another_size_is_warned_with_the_fix(stack: Any, cli: Any, folder: Path) -> None:
    (folder / "job.yaml").write_text(JOB_YAML.replace("max_nodes: 2", "max_nodes: 2\n  min_nodes: 1"))
    code, _out, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 0, err
    (folder / "job.yaml").write_text(JOB_YAML.replace("Standard_NC48ads_A100_v4", "Standard_NC24ads_A100_v4"))
    code, _out, err = submit(cli, folder, "--detach", "--skip-checks")
    assert code == 0, err
    assert (
        f"Cluster {CLUSTER} exists with VM size Standard_NC48ads_A100_v4, not Standard_NC24ads_A100_v4; reusing it"
        in err
    )
    assert "Set compute.vm_size: Standard_NC48ads_A100_v4 to match it" in err
    assert "keeps 1 node(s) running while idle" in err and "--min-instances 0" in err
    assert len(stack.requests.find(route="computes.create_or_update")) == 1
