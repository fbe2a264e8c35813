"""Hub/project creation (ARM template deployments), workspace get/update/delete, registry reads,
data upload to Azurite, through the real azure-ai-ml MLClient."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from tests.azure_stack import LOCATION, RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.azure_stack.stack import AzureStack

pytestmark = pytest.mark.e2e
warnings.filterwarnings("ignore", message=".*experimental.*")


def ml(stack: AzureStack, workspace: str | None = None, **kw: Any) -> Any:
    from azure.ai.ml import MLClient

    return MLClient(stack.credential, SUBSCRIPTION_ID, RESOURCE_GROUP, workspace_name=workspace,
                    enable_telemetry=False, show_progress=False, **kw)  # fmt: skip


def test_hub_and_project_creation_via_arm_deployments(stack: AzureStack) -> None:
    from azure.ai.ml.entities import Hub, Project

    rg_ml = ml(stack)
    hub = rg_ml.workspaces.begin_create(Hub(name="hub-new", location=LOCATION)).result()
    assert hub.name == "hub-new" and hub.location == LOCATION
    assert stack.requests.find(route="deployments.create_or_update")
    proj = rg_ml.workspaces.begin_create(Project(name="proj-new", hub_id=hub.id, location=LOCATION)).result()
    assert proj.hub_id.lower() == hub.id.lower()
    ws = ml(stack, "proj-new").workspaces.get("proj-new")
    assert ws.location == LOCATION
    assert ws.discovery_url == f"https://{LOCATION}.api.azureml.ms/discovery"
    assert ws._workspace_id == stack.state.workspace("proj-new").workspace_id
    kinds = {w.name: w._kind for w in rg_ml.workspaces.list()}
    assert kinds == {"hub-new": "hub", "proj-new": "project"}
    stack.assert_all_routed()


def test_hub_creation_with_async_deployment_polling(stack: AzureStack) -> None:
    from azure.ai.ml.entities import Hub

    stack.state.fast_deployments = False  # realistic 201 + Azure-AsyncOperation (costs one 5 s SDK sleep)
    hub = ml(stack).workspaces.begin_create(Hub(name="hub-slow", location=LOCATION)).result()
    assert hub.name == "hub-slow"
    assert stack.requests.find(route="deployments.operation_status")
    assert stack.requests.find(route="deployments.operations")


def test_hub_creation_with_unregistered_provider_is_auto_registered(
    stack: AzureStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ARM answers 409 MissingSubscriptionRegistration; azure-mgmt-core's policy registers and retries."""
    import types

    from azure.ai.ml.entities import Hub
    from azure.mgmt.core.policies import _base

    sleeps: list[float] = []
    # the policy sleeps 10 s before each provider GET; only its own module's clock is replaced
    monkeypatch.setattr(_base, "time", types.SimpleNamespace(sleep=sleeps.append))
    stack.state.set_provider("Microsoft.KeyVault", "NotRegistered")
    stack.state.provider_register_reads = 1
    ml(stack).workspaces.begin_create(Hub(name="hub-x", location=LOCATION)).result()
    assert stack.state.provider_state("Microsoft.KeyVault") == "Registered"
    assert [r.status for r in stack.requests.find(route="deployments.create_or_update")] == [409, 200]
    assert stack.requests.find(route="providers.register")
    assert sleeps == [10, 10]  # one Registering answer, then Registered


def test_workspace_update_and_delete_lro(stack: AzureStack) -> None:
    stack.state.add_project("proj-phi3ft", "hub-phi3ft")
    rg_ml = ml(stack)
    ws = rg_ml.workspaces.get("proj-phi3ft")
    ws.description = "updated"
    updated = rg_ml.workspaces.begin_update(ws).result()
    assert updated.description == "updated"
    # hub delete refused while a project exists
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as ei:
        rg_ml.workspaces.begin_delete(
            "hub-phi3ft", delete_dependent_resources=True, permanently_delete=True
        ).result()
    assert ei.value.status_code == 409
    rg_ml.workspaces.begin_delete(
        "proj-phi3ft", delete_dependent_resources=False, permanently_delete=True
    ).result()
    with pytest.raises(ResourceNotFoundError):
        rg_ml.workspaces.get("proj-phi3ft")
    rg_ml.workspaces.begin_delete(
        "hub-phi3ft", delete_dependent_resources=True, permanently_delete=True
    ).result()
    with pytest.raises(ResourceNotFoundError):
        rg_ml.workspaces.get("hub-phi3ft")
    deleted = " ".join(stack.state.deleted_resources)
    assert "Microsoft.Storage/storageAccounts" in deleted and "Microsoft.KeyVault/vaults" in deleted
    assert "hub-phi3ft?forceToPurge=true" in deleted
    stack.assert_all_routed()


def test_registry_model_lookup_and_lifecycle_tags(stack: AzureStack) -> None:
    from azure.ai.ml.constants import ListViewType

    reg = ml(stack, registry_name="azureml")
    m = reg.models.get("Phi-4-mini-instruct", label="latest")
    assert m.id == "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
    assert "eastus2" in m.tags["maas-finetuning-regions"]
    assert m.properties["finetuning-tasks"] == "chat-completion"
    old = reg.models.get("Phi-3.5-mini-instruct", version="6")
    assert old.tags["FinetuneRetirementDate"] == "2025-08-30"
    p3 = reg.models.get("Phi-3-mini-4k-instruct", version="15")
    assert p3.tags["FinetuneRetirementDate"] == "2025-08-30"
    active = [x.version for x in reg.models.list("Phi-3-mini-4k-instruct")]
    every = [x.version for x in reg.models.list("Phi-3-mini-4k-instruct", list_view_type=ListViewType.ALL)]
    # azure-ai-ml sends no listViewType to registries, so both listings are the default (active-only) view
    assert active == every == []
    assert all(
        "listViewType" not in r.query for r in stack.requests.find(route="registry.models.versions.list")
    )
    with pytest.raises(ResourceNotFoundError):
        reg.models.get("Phi-9", version="1")
    stack.assert_all_routed()


def test_data_upload_lands_in_azurite(stack: AzureStack, tmp_path: Path) -> None:
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    proj = stack.state.add_project("proj-phi3ft", "hub-phi3ft")
    client = ml(stack, "proj-phi3ft")
    f = tmp_path / "train.jsonl"
    payload = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n' * 1000
    f.write_bytes(payload)
    d = client.data.create_or_update(Data(name="train", version="1", type=AssetTypes.URI_FILE, path=str(f)))
    assert d.id.endswith("/data/train/versions/1")
    assert d.path.startswith("azureml://") and d.path.endswith("train.jsonl")
    blobs = stack.azurite.list_blobs(proj.storage_account, proj.blob_container)  # type: ignore[union-attr]
    name = next(b for b in blobs if b.endswith("train.jsonl"))
    assert stack.blob_bytes(proj.storage_account, proj.blob_container, name) == payload
    got = client.data.get("train", version="1")
    assert got.path == d.path
    # second create of the same file: upload skipped (HEAD says completed), version updated (200)
    client.data.create_or_update(Data(name="train", version="2", type=AssetTypes.URI_FILE, path=str(f)))
    assert [v.version for v in client.data.list("train")] and len(
        stack.state.data_versions(proj, "train")
    ) == 2
    client.data.archive("train", version="1")
    assert stack.state.data_versions(proj, "train")["1"]["properties"]["isArchived"] is True
    assert stack.requests.find(route="datastores.list_secrets")
    assert (f"{proj.storage_account}.blob.core.windows.net", 443) in stack.connects
    stack.assert_all_routed()
