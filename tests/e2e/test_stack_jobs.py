"""Fine-tuning jobs, run details, metrics, models, serverless endpoints and inference through the
real azure-ai-ml SDK (and requests for the OpenAI-style route) against the offline stack."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from tests.azure_stack import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.azure_stack.stack import AzureStack
from tests.azure_stack.state import Workspace

pytestmark = pytest.mark.e2e
warnings.filterwarnings("ignore", message=".*experimental.*")
PHI4 = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"


def ml(stack: AzureStack, workspace: str = "proj-phi3ft") -> Any:
    from azure.ai.ml import MLClient

    return MLClient(stack.credential, SUBSCRIPTION_ID, RESOURCE_GROUP, workspace_name=workspace,
                    enable_telemetry=False, show_progress=False)  # fmt: skip


def upload(client: Any, tmp_path: Path, name: str) -> str:
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    f = tmp_path / f"{name}.jsonl"
    f.write_text('{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n')
    return str(
        client.data.create_or_update(Data(name=name, version="1", type=AssetTypes.URI_FILE, path=str(f))).id
    )


def submit(client: Any, name: str, train_id: str, val_id: str | None = None, model: str = PHI4) -> Any:
    from azure.ai.ml.entities import CustomModelFineTuningJob
    from azure.ai.ml.entities._inputs_outputs import Input, Output

    job = CustomModelFineTuningJob(
        task="ChatCompletion",
        model=Input(type="mlflow_model", path=model),
        training_data=Input(type="uri_file", path=train_id),
        validation_data=Input(type="uri_file", path=val_id) if val_id else None,
        hyperparameters={
            "learning_rate": "0.00002",
            "num_train_epochs": "1",
            "per_device_train_batch_size": "1",
        },
        outputs={"registered_model": Output(type="mlflow_model", name="phi4-ft")},
        name=name,
        experiment_name="phi3ft",
    )
    return client.jobs.create_or_update(job)


@pytest.fixture
def project(stack: AzureStack) -> Workspace:
    return stack.state.add_project("proj-phi3ft", "hub-phi3ft")


def test_finetuning_job_lifecycle_model_metrics_logs(
    stack: AzureStack, project: Workspace, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import CustomModelFineTuningJob

    client = ml(stack)
    train, val = upload(client, tmp_path, "train"), upload(client, tmp_path, "val")
    created = submit(client, "ft-job-1", train, val)
    assert isinstance(created, CustomModelFineTuningJob)
    assert created.status == "NotStarted"
    put = stack.requests.find(route="jobs.create_or_update")[0].body["properties"]
    assert put["jobType"] == "FineTuning" and put["fineTuningDetails"]["modelProvider"] == "Custom"
    seen = []
    for _ in range(10):
        job = client.jobs.get("ft-job-1")
        seen.append(job.status)
        if job.status == "Completed":
            break
    assert seen == ["Queued", "Running", "Completed"]
    assert isinstance(job, CustomModelFineTuningJob)
    # ml.jobs.get sends two GETs (2024-01-01-preview, then 2024-10-01-preview)
    versions = [r.query["api-version"] for r in stack.requests.find(route="jobs.get")][:2]
    assert versions == ["2024-01-01-preview", "2024-10-01-preview"]
    assert [j.name for j in client.jobs.list()] == ["ft-job-1"]

    model = client.models.get("phi4-ft", version="1")
    assert model.name == "phi4-ft" and model.version == "1"

    details = client.jobs._runs_operations.get_run_details("ft-job-1")
    assert details.status == "Completed"
    log_url = details.log_files["user_logs/std_log.txt"]
    log = requests.get(log_url, timeout=10).text  # SAS URL into Azurite, through the proxy
    assert "Completed" in log and "train_loss" in log

    ws = client.workspaces.get("proj-phi3ft")
    base = ws.mlflow_tracking_uri.replace("azureml://", "https://")
    hist = requests.get(f"{base}/api/2.0/mlflow/metrics/get-history", params={"run_id": "ft-job-1", "metric_key": "train_loss"},
                        headers={"Authorization": f"Bearer {stack.credential.get_token('https://management.azure.com/.default').token}"},
                        timeout=10).json()  # fmt: skip
    assert len(hist["metrics"]) == 10 and hist["metrics"][0]["value"] > hist["metrics"][-1]["value"]
    auth = {
        "Authorization": "Bearer " + stack.credential.get_token("https://management.azure.com/.default").token
    }
    evals = requests.get(f"{base}/api/2.0/mlflow/metrics/get-history", params={"run_id": "ft-job-1", "metric_key": "eval_loss"},
                         headers=auth, timeout=10).json()["metrics"]  # fmt: skip
    assert len(evals) == 2  # validation loss exists because the job had validation data
    search = requests.post(f"{base}/api/2.0/mlflow/runs/search", json={"filter": "tags.mlflow.rootRunId='ft-job-1'"},
                           headers=auth, timeout=10).json()["runs"]  # fmt: skip
    assert [r["info"]["run_id"] for r in search] == ["ft-job-1_train"]
    assert {m["key"] for m in search[0]["data"]["metrics"]} == {"train_loss", "eval_loss"}
    stack.assert_all_routed()


def test_job_failure_and_cancel(stack: AzureStack, project: Workspace, tmp_path: Path) -> None:
    client = ml(stack)
    train = upload(client, tmp_path, "train")
    stack.faults.fail_job("ft-bad", message="Training data has 0 valid rows.")
    submit(client, "ft-bad", train)
    while (job := client.jobs.get("ft-bad")).status != "Failed":
        pass
    details = client.jobs._runs_operations.get_run_details("ft-bad")
    assert details.error.error.message == "Training data has 0 valid rows."

    submit(client, "ft-cancel", train)
    client.jobs.begin_cancel("ft-cancel").result()
    statuses = {client.jobs.get("ft-cancel").status for _ in range(3)}
    assert "Canceled" in statuses
    with pytest.raises(ResourceNotFoundError):
        client.jobs.get("nope")
    with pytest.raises(ResourceExistsError):
        submit(client, "ft-cancel", train)
    assert job.status == "Failed"


def test_region_and_lifecycle_rules(stack: AzureStack, tmp_path: Path) -> None:
    stack.state.add_project("proj-west", "hub-west", location="westus3")
    client = ml(stack, "proj-west")
    train = upload(client, tmp_path, "train")
    with pytest.raises(HttpResponseError) as ei:
        submit(client, "ft-west", train)
    assert ei.value.status_code == 400 and ei.value.error.code == "UserError"
    assert ei.value.error.details[0].code == "ModelNotSupportedByMaaS"
    stack.state.add_project("proj-phi3ft", "hub-phi3ft")
    with pytest.raises(HttpResponseError, match="retired"):
        submit(ml(stack), "ft-old", upload(ml(stack), tmp_path, "t2"),
               model="azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15")  # fmt: skip


def test_serverless_endpoint_inference_and_teardown(
    stack: AzureStack, project: Workspace, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import ServerlessEndpoint

    client = ml(stack)
    submit(client, "ft-job", upload(client, tmp_path, "train"))
    stack.state.advance_job("ft-job", "Completed")
    model_id = (
        f"azureml://locations/{project.location}/workspaces/{project.workspace_id}/models/phi4-ft/versions/1"
    )
    ep = client.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="phi4-ft-ep", model_id=model_id)
    ).result()
    assert ep.provisioning_state.lower() == "succeeded"
    assert ep.scoring_uri == f"https://phi4-ft-ep.{project.location}.models.ai.azure.com"
    assert [e.name for e in client.serverless_endpoints.list()] == ["phi4-ft-ep"]
    keys = client.serverless_endpoints.get_keys("phi4-ft-ep")

    body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 20}
    url = f"{ep.scoring_uri}/v1/chat/completions"
    ok = requests.post(url, json=body, headers={"Authorization": f"Bearer {keys.primary_key}"}, timeout=10)
    assert ok.status_code == 200, ok.text
    answer = ok.json()
    assert answer["choices"][0]["message"]["content"] and answer["usage"]["total_tokens"] > 0
    assert (
        requests.post(url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code
        == 401
    )
    assert requests.post(url, json=body, timeout=10).status_code == 401

    # name taken in the region (another workspace)
    other = stack.state.add_project("proj-other", "hub-phi3ft")
    with pytest.raises(ResourceExistsError):
        ml(stack, "proj-other").serverless_endpoints.begin_create_or_update(
            ServerlessEndpoint(name="phi4-ft-ep", model_id=model_id)).result()  # fmt: skip
    assert other.name == "proj-other"

    # model delete refused while the endpoint uses it
    with pytest.raises(ResourceExistsError, match="used by serverless endpoint"):
        client.models._model_versions_operation.delete(
            resource_group_name=RESOURCE_GROUP, workspace_name="proj-phi3ft", name="phi4-ft", version="1")  # fmt: skip
    client.serverless_endpoints.begin_delete("phi4-ft-ep").result()
    with pytest.raises(ResourceNotFoundError):
        client.serverless_endpoints.get("phi4-ft-ep")
    assert (
        requests.post(
            url, json=body, headers={"Authorization": f"Bearer {keys.primary_key}"}, timeout=10
        ).status_code
        == 404
    )
    client.models.archive("phi4-ft", version="1")
    assert stack.state.model_versions(project, "phi4-ft")["1"]["properties"]["isArchived"] is True
    client.models._model_versions_operation.delete(
        resource_group_name=RESOURCE_GROUP, workspace_name="proj-phi3ft", name="phi4-ft", version="1")  # fmt: skip
    with pytest.raises(ResourceNotFoundError):
        client.models.get("phi4-ft", version="1")
    stack.assert_all_routed()


def test_seeded_resources_and_lists(stack: AzureStack, project: Workspace) -> None:
    """Direct seeding (no SDK round trip) for tests of listing, watching and cleanup."""
    stack.state.add_data_version(project, "train", "3")
    stack.state.add_job(project, "ft-running", status="Running")
    stack.state.add_job(project, "ft-done", status="Completed")
    stack.state.add_endpoint(project, "ep-seeded")
    client = ml(stack)
    assert [d.version for d in client.data.list("train")] == ["3"]
    assert {j.name: j.status for j in client.jobs.list()} == {"ft-running": "Running", "ft-done": "Completed"}
    assert client.models.get("phi4-ft", version="1").version == "1"
    ep = client.serverless_endpoints.get("ep-seeded")
    assert ep.scoring_uri == "https://ep-seeded.eastus2.models.ai.azure.com"
    client.jobs.stream("ft-done")  # discovery + run details; returns at once for a finished job
    assert stack.requests.find(route="run_history.details")
    stack.assert_all_routed()


def test_marketplace_subscription_refused_for_microsoft_models(stack: AzureStack, project: Workspace) -> None:
    from azure.ai.ml.entities import MarketplaceSubscription

    client = ml(stack)
    with pytest.raises(HttpResponseError) as ei:
        client.marketplace_subscriptions.begin_create_or_update(
            MarketplaceSubscription(
                name="phi", model_id="azureml://registries/azureml/models/Phi-4-mini-instruct"
            )
        ).result()
    assert ei.value.status_code == 400
    sub = client.marketplace_subscriptions.begin_create_or_update(
        MarketplaceSubscription(
            name="thirdparty", model_id="azureml://registries/azureml-meta/models/Llama-3"
        )
    ).result()
    assert sub.marketplace_plan.publisher_id == "fake-publisher"


def test_job_scripts_and_fake_clock(stack: AzureStack, project: Workspace) -> None:
    import time

    client = ml(stack)
    # a scripted job: extra states, read-driven (one ml.jobs.get per step)
    stack.state.set_job_script(
        "ft-scripted", ["NotStarted", "Preparing", "Queued", "Running", "Finalizing", "Completed"]
    )
    stack.state.add_job(project, "ft-scripted", status="NotStarted",
                        script=stack.state.job_scripts["ft-scripted"][0])  # fmt: skip
    assert [client.jobs.get("ft-scripted").status for _ in range(5)] == [
        "Preparing", "Queued", "Running", "Finalizing", "Completed"]  # fmt: skip
    # time-driven: a step every 0.5 s since submission, regardless of reads
    stack.state.job_step_seconds = 0.5
    stack.state.add_job(project, "ft-clock", status="NotStarted")
    assert client.jobs.get("ft-clock").status in ("NotStarted", "Queued")
    time.sleep(1.6)
    assert client.jobs.get("ft-clock").status == "Completed"


def test_slow_lro_shows_creating_then_succeeded(stack: AzureStack, project: Workspace) -> None:
    from azure.ai.ml.entities import ServerlessEndpoint

    stack.state.add_model_version(project, "phi4-ft")
    stack.state.lro_polls = 3
    model_id = (
        f"azureml://locations/{project.location}/workspaces/{project.workspace_id}/models/phi4-ft/versions/1"
    )
    client = ml(stack)
    poller = client.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="slow-ep", model_id=model_id)
    )
    ep = poller.result()
    assert ep.provisioning_state.lower() == "succeeded"
    states = [r.status for r in stack.requests.find(route="operations.status")]
    assert len(states) >= 1
    assert stack.state.endpoint("slow-ep").provisioning_state == "Succeeded"  # type: ignore[union-attr]
