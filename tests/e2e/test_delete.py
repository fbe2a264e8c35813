"""delete end to end: the seed's order on the wire, the model's true REST delete and its 409 while an
endpoint serves it, ledger ownership, and idempotent re-runs, against the offline Azure stack."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID

from phi3ft.errors import PrerequisiteError
from phi3ft.state import StateStore
from phi3ft.targets.azureml.endpoints import (
    DeleteSelection,
    ModelRef,
    deploy_endpoint,
    execute_delete,
    plan_delete,
)
from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL, EP = "hub-phi3ft", "proj-phi3ft", "phi4-ft", "phi4-ft-ep"
WHERE = {"subscription_id": SUBSCRIPTION_ID, "resource_group": RESOURCE_GROUP}


def connect(stack: Any) -> AzureMLBackend:
    return AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        hub=HUB,
        project=PROJECT,
        credential=stack.credential,
        sleep=lambda s: None,
    )


def world(stack: Any, tmp_path: Path) -> tuple[AzureMLBackend, StateStore, Any]:
    """Hub + project + uploaded data + a fine-tuned model + an endpoint, all recorded as phi3ft's."""
    ws = stack.state.add_project(PROJECT, HUB)
    base = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
    stack.state.models[(ws.key, MODEL.lower())] = {
        "1": stack.state.model_version_body(ws, MODEL, "1", {"properties": {"baseModelId": base}})
    }
    backend, store = connect(stack), StateStore(tmp_path / ".phi3ft")
    store.record("hub", HUB, created_by_phi3ft=True, **WHERE)
    store.record("project", PROJECT, created_by_phi3ft=True, hub=HUB, **WHERE)
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    asset = backend.upload_data(train, name="train", version="abc123")
    store.record(
        "data", "train:abc123", asset_name="train", version="abc123", created_by_phi3ft=True, project=PROJECT
    )
    store.record(
        "job",
        "job-1",
        created_by_phi3ft=True,
        status="Completed",
        output_model_name=MODEL,
        project=PROJECT,
        **WHERE,
    )
    deploy_endpoint(
        backend,
        store,
        ModelRef(MODEL, "1", "job-1", created_by_phi3ft=True),
        endpoint_name=EP,
        sleep=lambda s: None,
        schedule=itertools.repeat(0.0),
    )
    assert asset.name == "train"
    return backend, store, ws


def test_delete_all_goes_in_the_seed_order_and_leaves_nothing(stack: Any, tmp_path: Path) -> None:
    backend, store, _ws = world(stack, tmp_path)
    stack.requests.clear()
    plan = plan_delete(store, backend, DeleteSelection(all=True))
    outcomes = execute_delete(plan, backend, store)
    assert [(o.step.kind, o.result) for o in outcomes] == [
        ("endpoint", "deleted"),
        ("model", "deleted"),
        ("data", "archived"),
        ("project", "deleted"),
        ("hub", "deleted"),
    ]
    # the wire, in order: endpoint DELETE, model version DELETE (true delete), data archive PUT, project, hub
    mutating = [
        r for r in stack.requests if r.method in ("PUT", "DELETE") and r.host == "management.azure.com"
    ]
    routes = [r.route for r in mutating]
    firsts = [
        routes.index(x)
        for x in ("serverless_endpoints.delete", "models.versions.delete", "data.versions.create_or_update")
    ]
    assert firsts == sorted(firsts)
    ws_deletes = [r.path.rsplit("/", 1)[-1] for r in mutating if r.route == "workspaces.delete"]
    assert ws_deletes == [PROJECT, HUB]
    assert stack.requests.find(route="models.versions.delete")[0].status == 200
    # nothing left in the stack, nothing left in the ledger
    assert stack.state.endpoint(EP) is None
    assert stack.state.workspace(PROJECT) is None and stack.state.workspace(HUB) is None
    assert any(d.endswith(f"{HUB}?forceToPurge=true") for d in stack.state.deleted_resources)
    for kind in ("job", "endpoint", "model", "data", "project", "hub"):
        assert store.list(kind) == [], kind


def test_delete_is_idempotent(stack: Any, tmp_path: Path) -> None:
    backend, store, _ = world(stack, tmp_path)
    execute_delete(plan_delete(store, backend, DeleteSelection(endpoints=[EP])), backend, store)
    # the ledger forgot it; a forced re-run by name finds it gone and succeeds
    again = execute_delete(
        plan_delete(store, backend, DeleteSelection(endpoints=[EP], force=True)), backend, store
    )
    assert [o.result for o in again] == ["absent"]
    assert backend.delete_endpoint(EP) is False
    assert backend.delete_model(MODEL, "1") == "deleted"
    assert backend.delete_model(MODEL, "1") == "absent"


def test_model_delete_refused_while_endpoint_serves_it(stack: Any, tmp_path: Path) -> None:
    backend, store, ws = world(stack, tmp_path)
    # planned: refused before anything is touched
    with pytest.raises(PrerequisiteError, match=r"still has a deployment \(phi4-ft-ep\)") as exc:
        plan_delete(store, backend, DeleteSelection(models=[f"{MODEL}:1"]))
    assert f"phi3ft delete --endpoint {EP} --yes" in (exc.value.hint or "")
    # straight to the adapter: the service's 409 becomes the seed's explanation
    with pytest.raises(PrerequisiteError, match="delete the deployment first") as exc2:
        backend.delete_model(MODEL, "1")
    assert EP in exc2.value.message and f"phi3ft delete --endpoint {EP}" in (exc2.value.hint or "")
    assert stack.requests.find(route="models.versions.delete", status=409)
    assert "1" in stack.state.model_versions(ws, MODEL)


def test_resources_phi3ft_did_not_create_are_left_alone(stack: Any, tmp_path: Path) -> None:
    backend, store, _ = world(stack, tmp_path)
    store.record("hub", HUB, created_by_phi3ft=False)  # it existed before: reused
    outcomes = execute_delete(plan_delete(store, backend, DeleteSelection(all=True)), backend, store)
    assert [(o.step.kind, o.result) for o in outcomes][-1] == ("hub", "skipped")
    assert stack.state.workspace(HUB) is not None and stack.state.workspace(PROJECT) is None
