"""Unit tests of the check service against the in-memory fake (fast; the rules, not the wire)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

import pytest
from tests.fakes.prereqs import OID, RG, SUB, FakePrereqBackend, phi_model, role_id, workspace_id

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError
from phi3ft.targets.azureml.checks import (
    CheckEvent,
    CheckTarget,
    assignment_applies,
    ensure_prerequisites,
    run_checks,
)
from phi3ft.targets.azureml.sdk.prereqs import (
    AZURE_AI_DEVELOPER,
    CONTRIBUTOR,
    OWNER,
    RoleAssignmentInfo,
    RoleDefinitionInfo,
)
from phi3ft.targets.base import Workspace

TODAY = date(2026, 3, 1)
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/{RG}"


def target(**kw: object) -> CheckTarget:
    base = CheckTarget(
        subscription_id=SUB,
        resource_group=RG,
        location="eastus2",
        hub="hub-phi",
        project="proj-phi",
        model="phi-4-mini-instruct",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def check(backend: FakePrereqBackend, tgt: CheckTarget | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return run_checks(backend, tgt or target(), today=TODAY, **kw)  # type: ignore[arg-type]


def statuses(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.id: r.status for r in report.results}


def hub(name: str = "hub-phi", location: str = "eastus2", kind: str = "hub") -> Workspace:
    return Workspace(name, kind, location, workspace_id(name))


def project(name: str = "proj-phi", hub_name: str = "hub-phi", location: str = "eastus2") -> Workspace:
    return Workspace(name, "project", location, workspace_id(name), hub_id=workspace_id(hub_name))


# ---- the happy path ---------------------------------------------------------------------------------
def contributor() -> list[RoleAssignmentInfo]:
    return [RoleAssignmentInfo(RG_SCOPE, role_id(CONTRIBUTOR), OID, "User")]


def test_all_pass_in_order_with_identity_and_json_shape() -> None:
    report = check(FakePrereqBackend(assignments=contributor()))
    assert [r.id for r in report.results] == [
        "credential",
        "resource-group",
        "region",
        "providers",
        "role",
        "workspace",
        "model",
    ]
    assert set(statuses(report).values()) == {"pass"}
    assert report.ok
    assert "user dev@contoso.com" in report.get("credential").detail
    assert OID in report.get("credential").detail
    assert "will be created" in report.get("workspace").detail
    data = report.to_dict()
    assert data["ok"] is True
    assert data["identity"]["object_id"] == OID
    assert {"id", "title", "status", "detail", "fix"} == set(data["checks"][0])
    assert all(c["fix"] is None for c in data["checks"])


def test_reads_run_concurrently() -> None:
    """The four provider reads must be in flight together (a barrier of 4 would time out otherwise)."""
    barrier = threading.Barrier(4, timeout=5)

    class Concurrent(FakePrereqBackend):
        def get_provider(self, namespace: str):  # type: ignore[no-untyped-def]
            barrier.wait()
            return super().get_provider(namespace)

    report = check(Concurrent())
    assert report.get("providers").status == "pass"


# ---- 1. credential ---------------------------------------------------------------------------------
def test_credential_failure_fails_and_skips_the_rest() -> None:
    backend = FakePrereqBackend(
        identity_value=PrerequisiteError(
            "Azure authentication failed: AADSTS7000215: Invalid client secret provided.", "Run `az login`."
        )
    )
    report = check(backend)
    assert statuses(report) == {
        "credential": "fail",
        "resource-group": "skip",
        "region": "skip",
        "providers": "skip",
        "role": "skip",
        "workspace": "skip",
        "model": "skip",
    }
    assert "AADSTS7000215" in report.get("credential").detail
    assert report.get("credential").fix == "Run `az login`."
    assert backend.calls == ["identity"]
    assert not report.ok


# ---- 2. resource group ----------------------------------------------------------------------------
def test_missing_resource_group_fails_with_az_group_create_and_roles_fall_back_to_subscription() -> None:
    backend = FakePrereqBackend(
        rg=None,
        assignments=[RoleAssignmentInfo(f"/subscriptions/{SUB}", role_id(CONTRIBUTOR), OID, "User")],
    )
    report = check(backend)
    rg = report.get("resource-group")
    assert rg.status == "fail"
    assert rg.fix == f"az group create --subscription {SUB} --name {RG} --location eastus2"
    assert report.get("workspace").status == "skip"
    assert report.get("role").status == "pass"
    assert "subscription (inherited)" in report.get("role").detail
    assert f"list_role_assignments /subscriptions/{SUB}" in backend.calls


def test_unreachable_subscription_fails_check_2() -> None:
    backend = FakePrereqBackend(
        rg=PrerequisiteError(
            "Subscription x is not reachable with this identity", "Check azure.subscription_id"
        )
    )
    report = check(backend)
    assert report.get("resource-group").status == "fail"
    assert report.get("resource-group").fix == "Check azure.subscription_id"


# ---- 3. region -------------------------------------------------------------------------------------
def test_wrong_region_fails_and_names_the_right_one() -> None:
    report = check(FakePrereqBackend(), target(location="westeurope"))
    region = report.get("region")
    assert region.status == "fail"
    assert "westeurope does not offer" in region.detail
    assert "registry tag" in region.detail
    assert region.fix == "Set azure.location: eastus2 in job.yaml (the hub and project are created there)."


def test_region_read_from_registry_tag_beats_catalog() -> None:
    backend = FakePrereqBackend(models=[phi_model(**{"maas-finetuning-regions": "eastus2, swedencentral"})])
    report = check(backend, target(location="swedencentral"))
    assert report.get("region").status in {"pass", "warn"}
    assert "swedencentral offers" in report.get("region").detail


def test_region_falls_back_to_catalog_without_tag() -> None:
    model = phi_model()
    model.tags.pop("maas-finetuning-regions")
    report = check(FakePrereqBackend(models=[model]), target(location="westeurope"))
    assert report.get("region").status == "fail"
    assert "phi3ft catalog" in report.get("region").detail


def test_model_without_serverless_finetuning_fails_region() -> None:
    backend = FakePrereqBackend(models=[phi_model("Phi-3-small-8k-instruct", "4")])
    report = check(backend, target(model="phi-3-small-8k-instruct"))
    assert report.get("region").status == "fail"
    assert "not offered for serverless fine-tuning" in report.get("region").detail


# ---- 4. providers ----------------------------------------------------------------------------------
def test_unregistered_network_provider_fails_with_register_command() -> None:
    backend = FakePrereqBackend()
    backend.providers["Microsoft.Network"] = "NotRegistered"
    report = check(backend)
    providers = report.get("providers")
    assert providers.status == "fail"
    assert "Microsoft.Network is NotRegistered" in providers.detail
    assert providers.fix is not None
    assert f"az provider register --subscription {SUB} --namespace Microsoft.Network --wait" in providers.fix
    assert "Microsoft.Storage" not in providers.fix


def test_fix_registers_and_waits_with_progress_events() -> None:
    backend = FakePrereqBackend(registering_polls=3, assignments=contributor())
    backend.providers["Microsoft.Network"] = "NotRegistered"
    events: list[CheckEvent] = []
    report = check(backend, fix=True, on_event=events.append)
    assert report.get("providers").status == "pass"
    assert "Microsoft.Network (registered by --fix)" in report.get("providers").detail
    assert report.fixed == ["Microsoft.Network"]
    assert "register_provider Microsoft.Network" in backend.calls
    fix_messages = [e.message for e in events if e.kind == "fix"]
    assert any("registering Microsoft.Network" in m for m in fix_messages)
    assert any(m.startswith("waiting") for m in fix_messages)
    assert backend.clock.sleeps, "waited through the injected sleep"
    assert report.ok


def test_fix_without_register_permission_fails() -> None:
    backend = FakePrereqBackend(
        register_errors={"Microsoft.Network": PrerequisiteError("Permission denied while trying to register")}
    )
    backend.providers["Microsoft.Network"] = "NotRegistered"
    report = check(backend, fix=True)
    assert report.get("providers").status == "fail"
    assert "Permission denied" in report.get("providers").detail


def test_storage_and_keyvault_only_matter_when_the_hub_will_be_created() -> None:
    backend = FakePrereqBackend(workspaces={"hub-phi": hub()})
    backend.providers["Microsoft.KeyVault"] = "NotRegistered"
    assert check(backend).get("providers").status == "warn"
    backend = FakePrereqBackend()
    backend.providers["Microsoft.KeyVault"] = "NotRegistered"
    report = check(backend)
    assert report.get("providers").status == "fail"
    assert "key vault" in report.get("providers").detail


def test_unreadable_provider_is_a_warning() -> None:
    backend = FakePrereqBackend(provider_errors={"Microsoft.Network": AzureError("Azure refused (HTTP 500)")})
    assert check(backend).get("providers").status == "warn"


# ---- 5. role ---------------------------------------------------------------------------------------
def test_missing_role_fails_naming_what_is_held() -> None:
    backend = FakePrereqBackend(
        workspaces={"hub-phi": hub()},
        assignments=[
            RoleAssignmentInfo(RG_SCOPE, role_id("acdd72a7-3385-48ef-bd42-f606fba81ae7"), OID, "User"),
        ],
    )
    report = check(backend)
    role = report.get("role")
    assert role.status == "fail"
    assert "you hold Reader at the resource group" in role.detail
    assert role.fix is not None
    assert f'--role "Azure AI Developer" --scope {RG_SCOPE}' in role.fix
    assert f"--assignee-object-id {OID} --assignee-principal-type User" in role.fix


def test_role_inherited_from_subscription_passes() -> None:
    backend = FakePrereqBackend(
        assignments=[RoleAssignmentInfo(f"/subscriptions/{SUB}", role_id(OWNER).upper(), OID, "User")]
    )
    role = check(backend).get("role")
    assert role.status == "pass"
    assert role.detail == "Owner at the subscription (inherited)"


def test_role_on_a_child_resource_does_not_count() -> None:
    child = f"{RG_SCOPE}/providers/Microsoft.Storage/storageAccounts/sa1"
    backend = FakePrereqBackend(assignments=[RoleAssignmentInfo(child, role_id(CONTRIBUTOR), OID, "User")])
    assert check(backend).get("role").status == "fail"


def test_role_matched_by_guid_not_by_name() -> None:
    other_sub = "99999999-0000-0000-0000-000000000000"
    backend = FakePrereqBackend(
        workspaces={"hub-phi": hub()},
        assignments=[RoleAssignmentInfo(RG_SCOPE, role_id(AZURE_AI_DEVELOPER, other_sub), OID, "User")],
    )
    assert check(backend).get("role").status == "pass"


def test_custom_role_with_wide_actions_is_a_warning() -> None:
    custom = role_id("c0ffee00-0000-0000-0000-000000000000")
    backend = FakePrereqBackend(
        workspaces={"hub-phi": hub()},
        assignments=[RoleAssignmentInfo(RG_SCOPE, custom, OID, "User")],
        role_definitions={
            custom.lower(): RoleDefinitionInfo(
                custom, "ML Power User", ("Microsoft.MachineLearningServices/*",)
            )
        },
    )
    role = check(backend).get("role")
    assert role.status == "warn"
    assert "ML Power User" in role.detail


def test_ai_developer_cannot_create_the_hub_the_plan_creates() -> None:
    """Creating a hub writes a storage account and key vault: Azure AI Developer passes only when the hub
    exists; the fix names Contributor and the actions, and the detail says what submit will create."""
    report = check(FakePrereqBackend())  # Azure AI Developer on the group, no hub yet
    role = report.get("role")
    assert role.status == "fail" and not report.ok
    assert role.detail.startswith(
        "submit will create hub hub-phi (a new storage account and key vault), project proj-phi: "
        "that needs Contributor or Owner on the resource group"
    )
    assert "Microsoft.Storage/storageAccounts/write" in role.detail
    assert "Microsoft.KeyVault/vaults/write" in role.detail
    assert "you hold Azure AI Developer at the resource group" in role.detail
    assert "(enough for an existing hub, not for creating one)" in role.detail
    assert role.fix is not None and f'--role "Contributor" --scope {RG_SCOPE}' in role.fix
    assert "az ml workspace create --kind hub" in role.fix
    assert report.get("workspace").status == "pass"  # the hub *can* be created, by the right role


@pytest.mark.parametrize(
    ("workspaces", "backend_kind", "status"),
    [
        ({"hub-phi": "hub"}, "serverless", "pass"),  # project only
        ({"hub-phi": "hub", "proj-phi": "project"}, "serverless", "pass"),  # nothing created
        ({"hub-phi": "hub", "proj-phi": "project"}, "azureml-compute", "pass"),  # compute cluster
        ({}, "azureml-compute", "fail"),  # a new hub, whatever the backend
    ],
)
def test_ai_developer_is_enough_without_a_new_hub(
    workspaces: dict[str, str], backend_kind: str, status: str
) -> None:
    ws = {name: hub() if kind == "hub" else project() for name, kind in workspaces.items()}
    tgt = target(backend=backend_kind, cluster="gpu" if backend_kind == "azureml-compute" else None)
    assert check(FakePrereqBackend(workspaces=ws), tgt).get("role").status == status


@pytest.mark.parametrize("guid", [CONTRIBUTOR, OWNER])
def test_contributor_or_owner_may_create_the_hub(guid: str) -> None:
    backend = FakePrereqBackend(assignments=[RoleAssignmentInfo(RG_SCOPE, role_id(guid), OID, "User")])
    assert check(backend).get("role").status == "pass"


def test_hub_not_created_when_create_if_missing_is_false_needs_no_contributor() -> None:
    role = check(FakePrereqBackend(), target(hub_create=False)).get("role")
    assert role.status == "pass"


def test_custom_role_for_a_new_hub_names_the_missing_actions() -> None:
    custom = role_id("c0ffee00-0000-0000-0000-000000000001")
    definition = RoleDefinitionInfo(
        custom,
        "ML Builder",
        ("Microsoft.MachineLearningServices/*", "Microsoft.Resources/deployments/*"),
        ("Microsoft.MachineLearningServices/workspaces/delete",),
    )
    backend = FakePrereqBackend(
        assignments=[RoleAssignmentInfo(RG_SCOPE, custom, OID, "User")],
        role_definitions={custom.lower(): definition},
    )
    role = check(backend).get("role")
    assert role.status == "fail"
    assert "(actions Microsoft.KeyVault/vaults/write, Microsoft.Storage/storageAccounts/write)" in role.detail
    wide = replace(definition, actions=("*",), not_actions=())
    backend = FakePrereqBackend(
        assignments=[RoleAssignmentInfo(RG_SCOPE, custom, OID, "User")],
        role_definitions={custom.lower(): wide},
    )
    assert check(backend).get("role").status == "warn"


def test_forbidden_role_listing_is_a_warning_not_a_crash() -> None:
    backend = FakePrereqBackend(
        roles_error=PrerequisiteError("Permission denied while trying to list your role assignments: 403")
    )
    report = check(backend)
    assert report.get("role").status == "warn"
    assert "could not read your role assignments" in report.get("role").detail
    assert report.ok


@pytest.mark.parametrize(
    ("assignment", "target_scope", "applies"),
    [
        ("/", RG_SCOPE, True),
        (f"/subscriptions/{SUB}", RG_SCOPE, True),
        (f"/SUBSCRIPTIONS/{SUB}/resourcegroups/{RG.upper()}", RG_SCOPE, True),
        (f"/subscriptions/{SUB}/resourceGroups/{RG}-2", RG_SCOPE, False),
        (f"{RG_SCOPE}/providers/Microsoft.KeyVault/vaults/kv", RG_SCOPE, False),
        ("/providers/Microsoft.Management/managementGroups/root", RG_SCOPE, True),
    ],
)
def test_assignment_inheritance(assignment: str, target_scope: str, applies: bool) -> None:
    assert assignment_applies(assignment, target_scope) is applies


# ---- 6. hub and project ----------------------------------------------------------------------------
def test_existing_hub_and_project_pass() -> None:
    backend = FakePrereqBackend(workspaces={"hub-phi": hub(), "proj-phi": project()})
    ws = check(backend).get("workspace")
    assert ws.status == "pass"
    assert ws.detail == "hub hub-phi exists in eastus2; project proj-phi exists in hub hub-phi"


@pytest.mark.parametrize(
    ("workspaces", "needle"),
    [
        ({"hub-phi": hub(location="westus")}, "hub hub-phi is in westus, not eastus2"),
        ({"hub-phi": hub(kind="default")}, "not a hub"),
        ({"hub-phi": hub(), "proj-phi": project(hub_name="other-hub")}, "belongs to hub other-hub"),
        ({"hub-phi": hub(), "proj-phi": hub("proj-phi")}, "not a project"),
    ],
)
def test_workspace_failures(workspaces: dict[str, Workspace], needle: str) -> None:
    ws = check(FakePrereqBackend(workspaces=workspaces)).get("workspace")
    assert ws.status == "fail"
    assert needle in ws.detail
    assert ws.fix


def test_missing_hub_without_create_fails() -> None:
    ws = check(FakePrereqBackend(), target(hub_create=False)).get("workspace")
    assert ws.status == "fail"
    assert ws.fix is not None and "az ml workspace create --kind hub" in ws.fix


# ---- 7. model --------------------------------------------------------------------------------------
def test_retired_model_fails_naming_the_replacement() -> None:
    backend = FakePrereqBackend(
        models=[
            phi_model(
                "Phi-3-mini-4k-instruct",
                "15",
                FinetuneDeprecationDate="2025-06-30",
                FinetuneRetirementDate="2025-08-30",
            )
        ]
    )
    model = check(backend, target(model="phi-3-mini-4k-instruct")).get("model")
    assert model.status == "fail"
    assert "retired on 2025-08-30" in model.detail
    assert "replacement: phi-4-mini-instruct" in model.detail
    assert model.fix == "Set model.name: phi-4-mini-instruct in job.yaml (its named replacement)."


def test_retirement_falls_back_to_the_catalog_without_tags() -> None:
    backend = FakePrereqBackend(models=[phi_model("Phi-3-mini-4k-instruct", "15")])
    model = check(backend, target(model="phi-3-mini-4k-instruct")).get("model")
    assert model.status == "fail"
    assert "phi3ft catalog" in model.detail


def test_deprecated_model_warns() -> None:
    backend = FakePrereqBackend(
        models=[phi_model(FinetuneDeprecationDate="2026-01-01", FinetuneRetirementDate="2026-12-31")]
    )
    model = check(backend).get("model")
    assert model.status == "warn"
    assert "deprecated since 2026-01-01, retires 2026-12-31" in model.detail


def test_archived_version_warns() -> None:
    model = check(FakePrereqBackend(models=[phi_model(archived=True)])).get("model")
    assert model.status == "warn"
    assert "archived" in model.detail


def test_unknown_version_fails() -> None:
    report = check(FakePrereqBackend(), target(model_version="99"))
    model = report.get("model")
    assert model.status == "fail"
    assert "Phi-4-mini-instruct version 99 was not found" in model.detail
    assert model.fix is not None and "az ml model list --registry-name azureml" in model.fix


def test_model_without_chat_completion_task_fails() -> None:
    m = phi_model()
    m.properties["finetuning-tasks"] = "text-classification"
    assert check(FakePrereqBackend(models=[m])).get("model").status == "fail"


def test_latest_resolves_most_recently_created() -> None:
    backend = FakePrereqBackend(models=[phi_model(version="5"), phi_model(version="3")])
    assert "Phi-4-mini-instruct:3 (latest)" in check(backend).get("model").detail


def test_registry_error_fails_model_and_warns_region_source() -> None:
    backend = FakePrereqBackend(model_error=AzureError("Could not reach Azure"))
    report = check(backend)
    assert report.get("model").status == "fail"
    assert report.get("region").status == "pass"  # catalog fallback
    assert "phi3ft catalog" in report.get("region").detail


# ---- submit's entry point and config ----------------------------------------------------------------
def test_ensure_prerequisites_raises_exit_4() -> None:
    backend = FakePrereqBackend(rg=None)
    with pytest.raises(PrerequisiteError) as info:
        ensure_prerequisites(backend, target(), today=TODAY)
    assert "does not exist" in info.value.message
    assert info.value.hint and "az group create" in info.value.hint


def test_target_from_job_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from phi3ft.config import parse_job_config

    text = f"""
azure:
  subscription_id: {SUB}
  resource_group: {RG}
  location: East US 2
  hub: {{name: hub-phi, create_if_missing: false}}
  project: {{name: proj-phi}}
model: {{name: phi-3-mini-4k-instruct, version: "15"}}
data: {{train: train.jsonl}}
"""
    cfg = parse_job_config(text, base_dir=tmp_path, check_files=False)
    tgt = CheckTarget.from_config(cfg)
    assert tgt.location == "eastus2"
    assert tgt.hub_create is False
    assert tgt.project_create is True
    assert tgt.model_version == "15"
    assert tgt.registry_model_name == "Phi-3-mini-4k-instruct"


def test_not_found_on_role_listing_at_rg_falls_back() -> None:
    class Flaky(FakePrereqBackend):
        def list_role_assignments(self, object_id: str, scope: str):  # type: ignore[no-untyped-def]
            if scope.endswith(RG):
                raise NotFoundError("ResourceGroupNotFound")
            return super().list_role_assignments(object_id, scope)

    backend = Flaky(assignments=[RoleAssignmentInfo(f"/subscriptions/{SUB}", role_id(OWNER), OID, "User")])
    assert check(backend).get("role").status == "pass"
