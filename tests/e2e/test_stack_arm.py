"""ARM basics through azure-mgmt-resource / azure-mgmt-authorization against the offline stack."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from tests.azure_stack import (
    LOCATION,
    RESOURCE_GROUP,
    ROLE_AI_DEVELOPER,
    ROLE_OWNER,
    SUBSCRIPTION_ID,
    USER_OID,
)
from tests.azure_stack.stack import AzureStack

pytestmark = pytest.mark.e2e
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"


def resource_client(stack: AzureStack):  # type: ignore[no-untyped-def]
    from azure.mgmt.resource.resources import ResourceManagementClient

    return ResourceManagementClient(stack.credential, SUBSCRIPTION_ID)


def auth_client(stack: AzureStack):  # type: ignore[no-untyped-def]
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient(stack.credential, SUBSCRIPTION_ID)


def test_resource_group_get_and_missing(stack: AzureStack) -> None:
    rc = resource_client(stack)
    rg = rc.resource_groups.get(RESOURCE_GROUP)
    assert rg.location == LOCATION and rg.name == RESOURCE_GROUP
    assert rc.resource_groups.check_existence(RESOURCE_GROUP) is True
    assert rc.resource_groups.check_existence("nope") is False
    with pytest.raises(ResourceNotFoundError) as ei:
        rc.resource_groups.get("nope")
    assert ei.value.error.code == "ResourceGroupNotFound"
    created = rc.resource_groups.create_or_update("rg-new", {"location": "westus3"})
    assert created.location == "westus3"
    assert {g.name for g in rc.resource_groups.list()} == {RESOURCE_GROUP, "rg-new"}


def test_provider_registration_state_machine(stack: AzureStack) -> None:
    rc = resource_client(stack)
    assert rc.providers.get("Microsoft.Network").registration_state == "Registered"
    stack.state.set_provider("Microsoft.Network", "NotRegistered")
    assert rc.providers.get("Microsoft.Network").registration_state == "NotRegistered"
    assert rc.providers.register("Microsoft.Network").registration_state == "Registering"
    stack.state.provider_register_reads = 1
    assert rc.providers.get("Microsoft.Network").registration_state == "Registering"
    assert rc.providers.get("Microsoft.Network").registration_state == "Registered"
    with pytest.raises(ResourceNotFoundError):
        rc.providers.get("Microsoft.Nope")
    assert "Microsoft.Storage" in {p.namespace for p in rc.providers.list()}


def test_role_assignments_list_inherited_and_create(stack: AzureStack) -> None:
    ac = auth_client(stack)
    found = list(ac.role_assignments.list_for_scope(RG_SCOPE, filter=f"assignedTo('{USER_OID}')"))
    assert [a.role_definition_id.rsplit("/", 1)[-1] for a in found] == [ROLE_AI_DEVELOPER]
    assert found[0].principal_id == USER_OID

    # inherited from the subscription scope
    stack.state.clear_role_assignments()
    stack.state.add_role_assignment(f"/subscriptions/{SUBSCRIPTION_ID}", ROLE_OWNER, USER_OID)
    found = list(ac.role_assignments.list_for_scope(RG_SCOPE, filter=f"assignedTo('{USER_OID}')"))
    assert [a.scope for a in found] == [f"/subscriptions/{SUBSCRIPTION_ID}"]
    assert list(ac.role_assignments.list_for_scope(RG_SCOPE, filter="assignedTo('someone-else')")) == []

    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    params = RoleAssignmentCreateParameters(
        role_definition_id=f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_AI_DEVELOPER}",
        principal_id=USER_OID,
        principal_type="User",
    )
    created = ac.role_assignments.create(RG_SCOPE, str(uuid.uuid4()), params)
    assert created.principal_id == USER_OID and created.scope == RG_SCOPE
    with pytest.raises(ResourceExistsError):
        ac.role_assignments.create(RG_SCOPE, str(uuid.uuid4()), params)
    stack.state.caller_can_assign_roles = False
    with pytest.raises(HttpResponseError) as ei:
        ac.role_assignments.create(RG_SCOPE, str(uuid.uuid4()), params)
    assert ei.value.status_code == 403 and ei.value.error.code == "AuthorizationFailed"


def test_role_definition_get(stack: AzureStack) -> None:
    ac = auth_client(stack)
    rd = ac.role_definitions.get_by_id(
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_AI_DEVELOPER}"
    )
    assert rd.role_name == "Azure AI Developer"
    rd2 = ac.role_definitions.get(RG_SCOPE, ROLE_OWNER)
    assert rd2.role_name == "Owner"
    names = {d.role_name for d in ac.role_definitions.list(RG_SCOPE, filter="roleName eq 'Contributor'")}
    assert names == {"Contributor"}


def test_every_request_was_routed_and_authenticated(stack: AzureStack) -> None:
    rc = resource_client(stack)
    rc.resource_groups.get(RESOURCE_GROUP)
    stack.assert_all_routed()
    assert all(r.oid == USER_OID for r in stack.requests.find(host="management.azure.com"))
