"""``phi3ft check`` end to end: the real azure-identity / azure-mgmt-resource / azure-mgmt-authorization /
azure-ai-ml SDKs over HTTPS (through the CONNECT proxy) against the offline Azure stack.

Each check has a passing and a failing scenario here; the rules themselves are unit-tested against the
in-memory fake (tests/unit/test_prereqs.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import (
    LOCATION,
    RESOURCE_GROUP,
    ROLE_CONTRIBUTOR,
    ROLE_READER,
    SP_CLIENT_ID,
    SP_CLIENT_SECRET,
    SUBSCRIPTION_ID,
    TENANT_ID,
    USER_OID,
)

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.targets.azureml.checks import CheckReport, CheckTarget, run_checks
from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

pytestmark = pytest.mark.e2e

TODAY = date(2026, 3, 1)
HUB, PROJECT = "hub-phi3ft", "proj-phi3ft"
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"


def target(**kw: Any) -> CheckTarget:
    values: dict[str, Any] = {
        "subscription_id": SUBSCRIPTION_ID,
        "resource_group": RESOURCE_GROUP,
        "location": LOCATION,
        "hub": HUB,
        "project": PROJECT,
        "model": "phi-4-mini-instruct",
    }
    values.update(kw)
    return CheckTarget(**values)


def connect(stack: Any, tgt: CheckTarget, **kw: Any) -> AzureMLBackend:
    credential = kw.pop("credential", stack.credential)
    return AzureMLBackend.connect(
        subscription_id=tgt.subscription_id,
        resource_group=tgt.resource_group,
        location=tgt.location,
        hub=tgt.hub,
        project=tgt.project,
        credential=credential,
        sleep=lambda s: None,
        **kw,
    )


def check(stack: Any, tgt: CheckTarget | None = None, **kw: Any) -> CheckReport:
    tgt = tgt or target()
    backend_kw = {k: kw.pop(k) for k in ("credential", "auth") if k in kw}
    return run_checks(connect(stack, tgt, **backend_kw), tgt, today=TODAY, **kw)


def status(report: CheckReport) -> dict[str, str]:
    return {r.id: r.status for r in report.results}


# ---- everything passes ---------------------------------------------------------------------------
def test_full_check_passes_against_the_stack(stack: Any) -> None:
    stack.state.add_project(PROJECT, HUB)
    report = check(stack)
    assert status(report) == dict.fromkeys(status(report), "pass"), [
        r for r in report.results if r.status != "pass"
    ]
    assert report.get("credential").detail.find(USER_OID) >= 0
    assert (
        report.get("workspace").detail
        == f"hub {HUB} exists in eastus2; project {PROJECT} exists in hub {HUB}"
    )
    assert "Phi-4-mini-instruct:1 (latest)" in report.get("model").detail
    assert "registry tag" in report.get("region").detail
    assert report.get("role").detail == "Azure AI Developer at the resource group"


# ---- 1. credential -------------------------------------------------------------------------------
def test_credential_env_real_chain_passes(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT_ID)
    monkeypatch.setenv("AZURE_CLIENT_ID", SP_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SP_CLIENT_SECRET)
    stack.state.add_hub(HUB)  # Azure AI Developer suffices for an existing hub
    report = check(stack, credential=None, auth="env")
    cred = report.get("credential")
    assert cred.status == "pass", cred
    assert USER_OID in cred.detail and TENANT_ID in cred.detail
    assert report.ok


def test_credential_failure_fails_and_skips_the_rest(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT_ID)
    monkeypatch.setenv("AZURE_CLIENT_ID", SP_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong-secret")
    report = check(stack, credential=None, auth="env")
    cred = report.get("credential")
    assert cred.status == "fail"
    assert "AADSTS7000215" in cred.detail
    # --auth env with the variables set: the fix is about their values, not about setting them
    assert cred.fix and "check those values" in cred.fix and "Set AZURE_" not in cred.fix
    assert set(status(report).values()) == {"fail", "skip"}


# ---- 2. resource group ---------------------------------------------------------------------------
def test_missing_resource_group_fails(stack: Any) -> None:
    report = check(stack, target(resource_group="rg-missing"))
    rg = report.get("resource-group")
    assert rg.status == "fail"
    assert rg.fix == f"az group create --subscription {SUBSCRIPTION_ID} --name rg-missing --location eastus2"
    assert report.get("workspace").status == "skip"


def test_unknown_subscription_fails(stack: Any) -> None:
    other = "99999999-1111-2222-3333-444444444444"
    rg = check(stack, target(subscription_id=other)).get("resource-group")
    assert rg.status == "fail"
    assert f"Subscription {other} is not reachable" in rg.detail


# ---- 3. region -----------------------------------------------------------------------------------
def test_wrong_region_fails(stack: Any) -> None:
    region = check(stack, target(location="westeurope")).get("region")
    assert region.status == "fail"
    assert "westeurope does not offer serverless fine-tuning of Phi-4-mini-instruct" in region.detail
    assert region.fix == "Set azure.location: eastus2 in job.yaml (the hub and project are created there)."


# ---- 4. providers --------------------------------------------------------------------------------
def test_unregistered_provider_fails(stack: Any) -> None:
    stack.state.set_provider("Microsoft.Network", "NotRegistered")
    providers = check(stack).get("providers")
    assert providers.status == "fail"
    assert "Microsoft.Network is NotRegistered" in providers.detail
    assert providers.fix and "az provider register" in providers.fix


def test_fix_registers_the_provider_in_the_stack(stack: Any) -> None:
    stack.state.set_provider("Microsoft.Network", "NotRegistered")
    stack.state.provider_register_reads = 2
    events: list[str] = []
    report = check(stack, fix=True, on_event=lambda e: events.append(e.message) if e.kind == "fix" else None)
    assert report.get("providers").status == "pass"
    assert report.fixed == ["Microsoft.Network"]
    assert stack.state.provider_state("Microsoft.Network") == "Registered"
    assert any("registering Microsoft.Network" in m for m in events)
    assert any(m.startswith("waiting") for m in events)


# ---- 5. role -------------------------------------------------------------------------------------
def test_missing_role_fails(stack: Any) -> None:
    stack.state.clear_role_assignments()
    stack.state.add_role_assignment(RG_SCOPE, ROLE_READER, USER_OID)
    stack.state.add_hub(HUB)
    role = check(stack).get("role")
    assert role.status == "fail"
    assert "you hold Reader at the resource group" in role.detail
    assert role.fix and '--role "Azure AI Developer"' in role.fix


def test_ai_developer_with_a_hub_to_create_fails_naming_contributor(
    stack: Any, run_cli: Any, tmp_path: Path
) -> None:
    """The default seed: Azure AI Developer on the group, no hub. Creating the hub (a storage account and
    key vault) needs Contributor or Owner, so check exits 4 and its fix names Contributor."""
    role = check(stack).get("role")
    assert role.status == "fail"
    assert "submit will create hub hub-phi3ft (a new storage account and key vault)" in role.detail
    assert "you hold Azure AI Developer at the resource group" in role.detail
    assert role.fix and f'--role "Contributor" --scope {RG_SCOPE}' in role.fix
    ctx = AppContext(
        output=Output(interactive=False),
        env=dict(os.environ),
        cwd=tmp_path,
        credential_factory=lambda mode: stack.credential,
        sleep=lambda s: None,
    )
    code, out, err = run_cli("check", "-c", str(write_job(tmp_path)), "--json", ctx=ctx)
    assert code == 4, err
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert checks["role"]["status"] == "fail" and '--role "Contributor"' in checks["role"]["fix"]
    assert [c for c, v in checks.items() if v["status"] == "fail"] == ["role"]
    # once the hub exists, Azure AI Developer is enough
    stack.state.add_hub(HUB)
    assert check(stack).get("role").status == "pass"


def test_role_inherited_from_the_subscription_passes(stack: Any) -> None:
    stack.state.clear_role_assignments()
    stack.state.add_role_assignment(f"/subscriptions/{SUBSCRIPTION_ID}", ROLE_CONTRIBUTOR, USER_OID)
    role = check(stack).get("role")
    assert role.status == "pass"
    assert role.detail == "Contributor at the subscription (inherited)"


def test_forbidden_role_listing_is_a_warning(stack: Any) -> None:
    stack.faults.error(
        "role_assignments.list_for_scope",
        status=403,
        code="AuthorizationFailed",
        message="The client does not have authorization to perform action "
        "'Microsoft.Authorization/roleAssignments/read'.",
        times=None,
    )
    report = check(stack)
    role = report.get("role")
    assert role.status == "warn"
    assert "could not read your role assignments" in role.detail
    assert report.ok


# ---- 6. hub and project --------------------------------------------------------------------------
def test_missing_hub_and_project_will_be_created(stack: Any) -> None:
    ws = check(stack).get("workspace")
    assert ws.status == "pass"
    assert (
        ws.detail == f"hub {HUB} will be created in eastus2; project {PROJECT} will be created in hub {HUB}"
    )


def test_hub_in_another_region_fails(stack: Any) -> None:
    stack.state.add_hub(HUB, location="westus")
    ws = check(stack).get("workspace")
    assert ws.status == "fail"
    assert f"hub {HUB} is in westus, not eastus2" in ws.detail


def test_project_of_another_hub_fails(stack: Any) -> None:
    stack.state.add_hub(HUB)
    stack.state.add_project(PROJECT, "hub-other")
    ws = check(stack).get("workspace")
    assert ws.status == "fail"
    assert "belongs to hub hub-other" in ws.detail


# ---- 7. model ------------------------------------------------------------------------------------
def test_retired_model_fails_with_the_replacement(stack: Any) -> None:
    """Version 15 is seeded archived with the real lifecycle tags: the tags say retired."""
    model = check(stack, target(model="phi-3-mini-4k-instruct", model_version="15")).get("model")
    assert model.status == "fail"
    assert (
        "Phi-3-mini-4k-instruct:15 fine-tuning retired on 2025-08-30 (registry lifecycle tags)"
        in model.detail
    )
    assert "replacement: phi-4-mini-instruct" in model.detail
    assert model.fix == "Set model.name: phi-4-mini-instruct in job.yaml (its named replacement)."


def test_retired_model_without_an_active_version_fails_with_the_replacement(stack: Any) -> None:
    """``label=latest`` finds no active version of an archived model: the catalog names the retirement."""
    model = check(stack, target(model="phi-3-mini-4k-instruct")).get("model")
    assert model.status == "fail"
    assert (
        "Phi-3-mini-4k-instruct was not found in the azureml registry: its fine-tuning retired on 2025-08-30"
        in (model.detail)
    )
    assert "replacement: phi-4-mini-instruct" in model.detail


def test_pinned_version_resolves_and_unknown_version_fails(stack: Any) -> None:
    assert "Phi-4-mini-instruct:1 found" in check(stack, target(model_version="1")).get("model").detail
    model = check(stack, target(model_version="42")).get("model")
    assert model.status == "fail"
    assert "version 42 was not found" in model.detail


def test_archived_version_warns(stack: Any) -> None:
    stack.state.add_registry_model(
        "Phi-4-mini-instruct",
        "2",
        tags={"maas-finetuning-regions": "eastus2"},
        properties={"finetuning-tasks": "chat-completion"},
        archived=True,
    )
    model = check(stack, target(model_version="2")).get("model")
    assert model.status == "warn"
    assert "archived" in model.detail


# ---- the CLI, in process and as a subprocess ----------------------------------------------------
def write_job(tmp_path: Path, **azure: str) -> Path:
    values = {"location": LOCATION, "resource_group": RESOURCE_GROUP, **azure}
    path = tmp_path / "job.yaml"
    path.write_text(
        f"""
azure:
  subscription_id: {SUBSCRIPTION_ID}
  resource_group: {values["resource_group"]}
  location: {values["location"]}
  hub: {{name: {HUB}}}
  project: {{name: {PROJECT}}}
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl}}
""",
        encoding="utf-8",
    )
    return path


def test_cli_check_json_in_process(stack: Any, run_cli: Any, tmp_path: Path) -> None:
    stack.state.set_provider("Microsoft.Network", "NotRegistered")
    ctx = AppContext(
        output=Output(interactive=False),
        env=dict(os.environ),
        cwd=tmp_path,
        credential_factory=lambda mode: stack.credential,
        sleep=lambda s: None,
    )
    code, out, err = run_cli("check", "-c", str(write_job(tmp_path)), "--json", ctx=ctx)
    assert code == 4, err
    data = json.loads(out)
    assert {c["id"]: c["status"] for c in data["checks"]}["providers"] == "fail"
    assert data["identity"]["object_id"] == USER_OID


def test_cli_subprocess_real_credential_chain(stack: Any, tmp_path: Path) -> None:
    """The shipped binary with ``--auth env``: EnvironmentCredential -> MSAL -> fake Entra ID."""
    env = {
        **os.environ,
        **stack.env,
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": SP_CLIENT_ID,
        "AZURE_CLIENT_SECRET": SP_CLIENT_SECRET,
        "NO_COLOR": "1",
    }
    job = write_job(tmp_path)
    stack.state.add_role_assignment(RG_SCOPE, ROLE_CONTRIBUTOR, USER_OID)  # the hub is to be created
    before = len(stack.requests)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft", "check", "-c", str(job), "--auth", "env", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    wall = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True
    assert [c["status"] for c in data["checks"]] == ["pass"] * 7
    requests = len(stack.requests) - before
    # Recorded for the README ("Check prerequisites"): requests and wall time of one full check.
    print(
        f"\nfull check: {requests} HTTP requests, {wall:.2f} s wall (subprocess), {data['elapsed_s']} s in checks"
    )
    assert requests <= 20


def test_cli_subprocess_missing_ca_bundle_is_a_tls_failure_not_a_login_one(
    stack: Any, tmp_path: Path
) -> None:
    """The shipped binary with ``--auth env`` and the variables set, but REQUESTS_CA_BUNDLE pointing nowhere:
    the credential check names the TLS setting, and does not tell the user to log in or set the variables."""
    missing = tmp_path / "no-such-ca.pem"
    env = {
        **os.environ,
        **stack.env,
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": SP_CLIENT_ID,
        "AZURE_CLIENT_SECRET": SP_CLIENT_SECRET,
        "REQUESTS_CA_BUNDLE": str(missing),
        "NO_COLOR": "1",
    }
    before = len(stack.requests)
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft", "check", "-c", str(write_job(tmp_path)), "--auth", "env", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    cred = json.loads(proc.stdout)["checks"][0]
    assert cred["status"] == "fail"
    assert f"the CA bundle {missing} does not exist (REQUESTS_CA_BUNDLE)" in cred["detail"]
    assert cred["fix"].startswith("Point REQUESTS_CA_BUNDLE at an existing PEM bundle")
    assert "az login" not in proc.stdout + proc.stderr and "Set AZURE_" not in cred["fix"]
    assert len(stack.requests) == before  # nothing was sent
