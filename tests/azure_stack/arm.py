"""management.azure.com: subscriptions, resource groups, providers, RBAC, ARM deployments,
workspaces (hub/project) and their async operations."""

from __future__ import annotations

import re
import uuid
from typing import Any

from .credential import decode_jwt
from .state import (
    Operation,
    State,
    Workspace,
    not_found,
    now_iso,
    ws_arm_id,
)
from .web import HttpError, Request, Response, RouteTable

ARM = "management.azure.com"
SUB = "/subscriptions/{sub}"
RG = SUB + "/resourceGroups/{rg}"
WS = RG + "/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
ARM_BASE = f"https://{ARM}"
DEPENDENT_NAMESPACES = {
    "microsoft.storage",
    "microsoft.keyvault",
    "microsoft.containerregistry",
    "microsoft.insights",
}


# --- shared lookups -------------------------------------------------------------------------


def need_sub(state: State, sub: str) -> None:
    if sub not in state.subscriptions and sub.lower() not in {s.lower() for s in state.subscriptions}:
        raise HttpError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def need_rg(state: State, sub: str, rg: str) -> dict[str, Any]:
    need_sub(state, sub)
    found = state.resource_groups.get((sub.lower(), rg.lower()))
    if found is None:
        raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
    return found


def need_ws(state: State, p: dict[str, str]) -> Workspace:
    need_rg(state, p["sub"], p["rg"])
    ws = state.workspaces.get(ws_arm_id(p["sub"], p["rg"], p["ws"]).lower())
    if ws is None:
        raise not_found("Microsoft.MachineLearningServices/workspaces", p["ws"], p["rg"])
    if ws.provisioning_state == "Deleting":
        # reading a workspace being deleted completes its pending delete (reads drive LROs)
        for op in list(state.operations.values()):
            if op.kind == f"delete:{ws.key}":
                state.poll_operation(op)
        if ws.key not in state.workspaces:
            raise not_found("Microsoft.MachineLearningServices/workspaces", p["ws"], p["rg"])
    return ws


def lro_headers(op: Operation, sub: str, location: str, api_version: str) -> dict[str, str]:
    base = f"{ARM_BASE}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{location}"
    q = f"?api-version={api_version or '2024-10-01-preview'}"
    return {
        "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{op.id}{q}",
        "Location": f"{base}/mfeOperationResults/{op.id}{q}",
        "Retry-After": "0",
    }


def op_status_body(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": op.id,
        "name": op.id,
        "status": op.status,
        "startTime": op.start,
        "percentComplete": 100.0 if op.status != "InProgress" else 50.0,
    }
    if op.end:
        body["endTime"] = op.end
    if op.error:
        body["error"] = op.error
    return body


def page(items: list[dict[str, Any]]) -> Response:
    return Response(200, {"value": items, "nextLink": None})


def register(t: RouteTable, state: State) -> None:
    # --- subscriptions and resource groups ---------------------------------------------------

    def sub_body(sid: str) -> dict[str, Any]:
        s = state.subscriptions[sid]
        return {
            "id": f"/subscriptions/{sid}",
            "subscriptionId": sid,
            "tenantId": state.tenant_id,
            "displayName": s["displayName"],
            "state": s["state"],
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"},
            "authorizationSource": "RoleBased",
        }  # fmt: skip

    t.add(
        "subscriptions.list",
        "GET",
        ARM,
        "/subscriptions",
        lambda r: page([sub_body(s) for s in state.subscriptions]),
    )

    def get_sub(r: Request) -> Response:
        need_sub(r_state := state, r.params["sub"])
        sid = next(s for s in r_state.subscriptions if s.lower() == r.params["sub"].lower())
        return Response(200, sub_body(sid))

    t.add("subscriptions.get", "GET", ARM, SUB, get_sub)

    def rg_body(sub: str, rg: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub}/resourceGroups/{rg['name']}",
            "name": rg["name"],
            "type": "Microsoft.Resources/resourceGroups",
            "location": rg["location"],
            "tags": rg["tags"],
            "properties": {"provisioningState": "Succeeded"},
        }

    def get_rg(r: Request) -> Response:
        return Response(200, rg_body(r.params["sub"], need_rg(state, r.params["sub"], r.params["rg"])))

    def head_rg(r: Request) -> Response:
        need_sub(state, r.params["sub"])
        exists = (r.params["sub"].lower(), r.params["rg"].lower()) in state.resource_groups
        return Response(204 if exists else 404)

    def put_rg(r: Request) -> Response:
        need_sub(state, r.params["sub"])
        body = r.json()
        key = (r.params["sub"].lower(), r.params["rg"].lower())
        existed = key in state.resource_groups
        if not existed:
            if not body.get("location"):
                raise HttpError(
                    400, "LocationRequired", "The location property is required for this definition."
                )
            state.add_resource_group(r.params["rg"], body["location"], r.params["sub"])
        state.resource_groups[key]["tags"] = body.get("tags") or state.resource_groups[key]["tags"]
        return Response(200 if existed else 201, rg_body(r.params["sub"], state.resource_groups[key]))

    def list_rgs(r: Request) -> Response:
        need_sub(state, r.params["sub"])
        sub = r.params["sub"].lower()
        return page([rg_body(r.params["sub"], v) for (s, _), v in state.resource_groups.items() if s == sub])

    t.add("resource_groups.get", "GET", ARM, RG, get_rg)
    t.add("resource_groups.check_existence", "HEAD", ARM, RG, head_rg)
    t.add("resource_groups.create_or_update", "PUT", ARM, RG, put_rg)
    t.add("resource_groups.list", "GET", ARM, SUB + "/resourcegroups", list_rgs)

    # --- resource providers ------------------------------------------------------------------

    def provider_body(sub: str, p: Any) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub}/providers/{p.namespace}",
            "namespace": p.namespace,
            "registrationState": p.state,
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": [{"resourceType": "operations", "locations": [], "apiVersions": ["2025-04-01"]}],
        }

    def need_provider(sub: str, ns: str) -> Any:
        need_sub(state, sub)
        p = state.providers.get((sub.lower(), ns.lower()))
        if p is None:
            raise HttpError(404, "InvalidResourceNamespace", f"The resource namespace '{ns}' is invalid.")
        return p

    def get_provider(r: Request) -> Response:
        p = need_provider(r.params["sub"], r.params["ns"])
        if p.state == "Registering":
            if p.reads_left > 0:
                p.reads_left -= 1
            else:
                p.state = "Registered"
        return Response(200, provider_body(r.params["sub"], p))

    def register_provider(r: Request) -> Response:
        p = need_provider(r.params["sub"], r.params["ns"])
        if p.state in ("NotRegistered", "Unregistering"):
            p.state, p.reads_left = "Registering", state.provider_register_reads
        return Response(200, provider_body(r.params["sub"], p))

    def unregister_provider(r: Request) -> Response:
        p = need_provider(r.params["sub"], r.params["ns"])
        p.state = "NotRegistered"
        return Response(200, provider_body(r.params["sub"], p))

    def list_providers(r: Request) -> Response:
        need_sub(state, r.params["sub"])
        sub = r.params["sub"].lower()
        return page([provider_body(r.params["sub"], p) for (s, _), p in state.providers.items() if s == sub])

    t.add("providers.list", "GET", ARM, SUB + "/providers", list_providers)
    t.add("providers.get", "GET", ARM, SUB + "/providers/{ns}", get_provider)
    t.add("providers.register", "POST", ARM, SUB + "/providers/{ns}/register", register_provider)
    t.add("providers.unregister", "POST", ARM, SUB + "/providers/{ns}/unregister", unregister_provider)

    # --- role definitions and assignments ----------------------------------------------------

    def role_def_body(scope: str, guid: str) -> dict[str, Any]:
        name, desc = state.role_definitions[guid]
        sub = re.match(r"/subscriptions/([^/]+)", scope)
        prefix = f"/subscriptions/{sub.group(1)}" if sub else ""
        return {
            "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "name": guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": name,
                "type": "BuiltInRole",
                "description": desc,
                "assignableScopes": ["/"],
                "permissions": [{"actions": ["*"] if name in ("Owner", "Contributor") else [], "notActions": [],
                                 "dataActions": [], "notDataActions": []}],
            },
        }  # fmt: skip

    def get_role_def(r: Request) -> Response:
        guid = r.params["guid"].lower()
        if guid not in state.role_definitions:
            raise HttpError(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID "
                            f"'{guid}' does not exist.")  # fmt: skip
        return Response(200, role_def_body(r.params["scope"], guid))

    def list_role_defs(r: Request) -> Response:
        flt = r.query.get("$filter", "")
        m = re.search(r"roleName\s+eq\s+'([^']+)'", flt, re.I)
        guids = [
            g for g, (n, _) in state.role_definitions.items() if not m or n.lower() == m.group(1).lower()
        ]
        return page([role_def_body(r.params["scope"], g) for g in guids])

    t.add("role_definitions.get", "GET", ARM, "{scope*}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
          get_role_def)  # fmt: skip
    t.add("role_definitions.list", "GET", ARM, "{scope*}/providers/Microsoft.Authorization/roleDefinitions",
          list_role_defs)  # fmt: skip

    def ra_body(ra: Any) -> dict[str, Any]:
        sub = re.match(r"/subscriptions/([^/]+)", ra.scope)
        prefix = f"/subscriptions/{sub.group(1)}" if sub else ""
        return {
            "id": f"{ra.scope}/providers/Microsoft.Authorization/roleAssignments/{ra.name}",
            "name": ra.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{ra.role_definition_guid}",
                "principalId": ra.principal_id,
                "principalType": ra.principal_type,
                "scope": ra.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": ra.created,
                "updatedOn": ra.created,
                "createdBy": None,
                "updatedBy": None,
                "delegatedManagedIdentityResourceId": None,
                "description": None,
            },
        }

    def list_ras(r: Request) -> Response:
        scope = r.params["scope"].rstrip("/").lower()
        flt = r.query.get("$filter", "")
        assigned = re.search(r"assignedTo\('([^']+)'\)", flt, re.I)
        principal = re.search(r"principalId\s+eq\s+'([^']+)'", flt, re.I)
        at_scope = "atscope()" in flt.lower().replace(" ", "")
        out = []
        for ra in state.role_assignments.values():
            s = ra.scope.lower()
            above = scope == s or scope.startswith(s + "/")
            below = s.startswith(scope + "/")
            if at_scope and not above:
                continue
            if not (above or below):
                continue
            pid = (assigned or principal).group(1).lower() if (assigned or principal) else None
            if pid and ra.principal_id.lower() != pid:
                continue
            out.append(ra_body(ra))
        return page(out)

    def put_ra(r: Request) -> Response:
        props = r.json().get("properties") or {}
        scope = r.params["scope"].rstrip("/")
        guid = str(props.get("roleDefinitionId", "")).rstrip("/").split("/")[-1].lower()
        if not state.caller_can_assign_roles:
            raise HttpError(403, "AuthorizationFailed", f"The client '{decode_jwt(r.bearer or '').get('oid', state.user_oid)}' "
                            "does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/"
                            f"write' over scope '{scope}' or the scope is invalid.")  # fmt: skip
        if guid not in state.role_definitions:
            raise HttpError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{guid}' does not exist.",
            )
        pid = props.get("principalId")
        if not pid:
            raise HttpError(
                400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment."
            )
        for ra in state.role_assignments.values():
            if (
                ra.scope.lower() == scope.lower()
                and ra.role_definition_guid == guid
                and ra.principal_id.lower() == pid.lower()
            ):
                raise HttpError(409, "RoleAssignmentExists", "The role assignment already exists.")
        if r.params["name"] in state.role_assignments:
            raise HttpError(409, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and "
                            "scope are not allowed to be updated.")  # fmt: skip
        ra = state.add_role_assignment(
            scope, guid, pid, props.get("principalType") or "User", r.params["name"]
        )
        return Response(201, ra_body(ra))

    def get_ra(r: Request) -> Response:
        ra = state.role_assignments.get(r.params["name"])
        if ra is None:
            raise HttpError(
                404,
                "RoleAssignmentNotFound",
                "The role assignment '{}' is not found.".format(r.params["name"]),
            )
        return Response(200, ra_body(ra))

    def delete_ra(r: Request) -> Response:
        ra = state.role_assignments.pop(r.params["name"], None)
        return Response(200, ra_body(ra)) if ra else Response(204)

    ra_path = "{scope*}/providers/Microsoft.Authorization/roleAssignments"
    t.add("role_assignments.list_for_scope", "GET", ARM, ra_path, list_ras)
    t.add("role_assignments.create", "PUT", ARM, ra_path + "/{name}", put_ra)
    t.add("role_assignments.get", "GET", ARM, ra_path + "/{name}", get_ra)
    t.add("role_assignments.delete", "DELETE", ARM, ra_path + "/{name}", delete_ra)

    # --- ARM template deployments (hub / project creation) -----------------------------------

    dep_path = RG + "/providers/Microsoft.Resources/deployments/{dep}"

    def dep_key(p: dict[str, str]) -> str:
        return f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/deployments/{p['dep']}".lower()

    def dep_body(p: dict[str, str], d: dict[str, Any]) -> dict[str, Any]:
        op: Operation = d["op"]
        status = {"InProgress": "Running"}.get(op.status, op.status)
        props: dict[str, Any] = {
            "provisioningState": status,
            "mode": d["mode"],
            "timestamp": now_iso(),
            "duration": "PT1S",
            "correlationId": d["correlation"],
            "parameters": d["parameters"],
            "templateHash": "1234567890",
            "outputs": {},
            "outputResources": [{"id": i} for i in d["resources"]] if status == "Succeeded" else [],
        }
        if d.get("error"):
            props["error"] = d["error"]
        return {
            "id": f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.Resources/deployments/{p['dep']}",
            "name": p["dep"],
            "type": "Microsoft.Resources/deployments",
            "properties": props,
        }

    def param(params: dict[str, Any], *names: str) -> Any:
        for n in names:
            v = params.get(n)
            if isinstance(v, dict) and v.get("value") not in (None, ""):
                return v["value"]
        return None

    def put_deployment(r: Request) -> Response:
        p = dict(r.params)
        rg = need_rg(state, p["sub"], p["rg"])
        props = r.json().get("properties") or {}
        params = props.get("parameters") or {}
        name = param(params, "workspaceName")
        kind = str(param(params, "kind") or "default").capitalize()
        location = param(params, "location") or rg["location"]
        hub_id = param(params, "workspace_hub", "hubResourceId")
        for ns in ("Microsoft.MachineLearningServices", "Microsoft.Storage", "Microsoft.KeyVault"):
            prov = state.providers.get((p["sub"].lower(), ns.lower()))
            if kind != "Project" and prov is not None and prov.state != "Registered":
                raise HttpError(409, "MissingSubscriptionRegistration",
                                f"The subscription is not registered to use namespace '{ns}'. See "
                                "https://aka.ms/rps-not-found for how to register subscriptions.",
                                details=[{"code": "MissingSubscriptionRegistration", "target": ns,
                                          "message": f"The subscription is not registered to use namespace '{ns}'."}])  # fmt: skip
        if kind == "Project":
            hub = state.workspaces.get(str(hub_id or "").lower())
            if hub is None:
                raise HttpError(400, "InvalidTemplateDeployment", "The template deployment failed: hub workspace "
                                f"'{hub_id}' was not found.")  # fmt: skip
        resources = [ws_arm_id(p["sub"], p["rg"], name)]
        d: dict[str, Any] = {"mode": props.get("mode", "Incremental"), "parameters": params,
                             "correlation": str(uuid.uuid4()), "resources": resources}  # fmt: skip

        def materialise() -> None:
            if kind == "Project":
                state.add_project(name, state.workspaces[str(hub_id).lower()], location, p["rg"], p["sub"])
            else:
                ws = Workspace(p["sub"], p["rg"], name, kind, location, state.next_storage_account(),
                               str(param(params, "keyVaultName") or f"kv{name[:8]}"))  # fmt: skip
                state._store_workspace(ws)
            ws2 = state.workspace(name, p["rg"], p["sub"])
            if ws2 is not None:
                ws2.friendly_name = param(params, "friendlyName") or name
                ws2.description = param(params, "description") or ""
                ws2.tags = dict(param(params, "tagValues") or {})

        fast = state.fast_deployments
        d["op"] = state.new_operation(f"deployment:{dep_key(p)}", materialise, remaining=0 if fast else None)
        state.deployments[dep_key(p)] = d
        if fast:
            # terminal in the PUT answer: azure-ai-ml's deployment loop then skips its 5 s sleep
            return Response(200, dep_body(p, d))
        q = "?api-version=" + (r.api_version or "2020-06-01")
        base = ARM_BASE + dep_body(p, d)["id"]
        return Response(201, dep_body(p, d), {"Azure-AsyncOperation": f"{base}/operationStatuses/{d['op'].id}{q}",
                                              "Retry-After": "0"})  # fmt: skip

    def need_dep(p: dict[str, str]) -> dict[str, Any]:
        d = state.deployments.get(dep_key(p))
        if d is None:
            raise HttpError(404, "DeploymentNotFound", f"Deployment '{p['dep']}' could not be found.")
        return d

    def get_deployment(r: Request) -> Response:
        d = need_dep(r.params)
        state.poll_operation(d["op"])
        return Response(200, dep_body(r.params, d))

    def dep_status(r: Request) -> Response:
        d = need_dep(r.params)
        op = state.poll_operation(d["op"])
        headers = {"Retry-After": state.lro_retry_after} if op.status == "InProgress" else {}
        return Response(200, {"status": {"InProgress": "Running"}.get(op.status, op.status)}, headers)

    def dep_operations(r: Request) -> Response:
        d = need_dep(r.params)
        st = {"InProgress": "Running"}.get(d["op"].status, d["op"].status)
        items = []
        for rid in d["resources"]:
            items.append({
                "id": f"{dep_body(r.params, d)['id']}/operations/{uuid.uuid5(uuid.NAMESPACE_URL, rid).hex[:16].upper()}",
                "operationId": uuid.uuid5(uuid.NAMESPACE_URL, rid).hex[:16].upper(),
                "properties": {"provisioningOperation": "Create", "provisioningState": st, "timestamp": now_iso(),
                               "duration": "PT1S", "trackingId": str(uuid.uuid4()), "statusCode": "OK",
                               "targetResource": {"id": rid, "resourceType": "Microsoft.MachineLearningServices/workspaces",
                                                  "resourceName": rid.split("/")[-1]}},
            })  # fmt: skip
        return page(items)

    t.add("deployments.create_or_update", "PUT", ARM, dep_path, put_deployment)
    t.add("deployments.get", "GET", ARM, dep_path, get_deployment)
    t.add("deployments.operation_status", "GET", ARM, dep_path + "/operationStatuses/{op}", dep_status)
    t.add("deployments.operations", "GET", ARM, dep_path + "/operations", dep_operations)
    # the deployment executor azure-ai-ml vendors lists operations on the provider-less legacy path
    t.add("deployments.operations", "GET", ARM, RG + "/deployments/{dep}/operations", dep_operations)

    # --- workspaces ----------------------------------------------------------------------------

    def get_ws(r: Request) -> Response:
        return Response(200, need_ws(state, r.params).body(state))

    def list_ws(r: Request) -> Response:
        need_rg(state, r.params["sub"], r.params["rg"])
        prefix = f"/subscriptions/{r.params['sub']}/resourceGroups/{r.params['rg']}/".lower()
        kind = re.search(r"kind\s+eq\s+'([^']+)'", r.query.get("kind", "") + r.query.get("$filter", ""), re.I)
        return page([w.body(state) for w in state.workspaces.values() if w.key.startswith(prefix)
                     and w.provisioning_state != "Deleting" and (not kind or w.kind.lower() == kind.group(1).lower())])  # fmt: skip

    def list_ws_sub(r: Request) -> Response:
        need_sub(state, r.params["sub"])
        prefix = f"/subscriptions/{r.params['sub']}/".lower()
        return page([w.body(state) for w in state.workspaces.values() if w.key.startswith(prefix)])

    def put_ws(r: Request) -> Response:
        """Direct workspace PUT (the SDK uses ARM deployments; other clients may PUT)."""
        rg = need_rg(state, r.params["sub"], r.params["rg"])
        body = r.json()
        existing = state.workspace(r.params["ws"], r.params["rg"], r.params["sub"])
        if existing is None:
            props = body.get("properties") or {}
            kind = str(body.get("kind") or "Default").capitalize()
            loc = body.get("location") or rg["location"]
            if kind == "Project":
                existing = state.add_project(r.params["ws"], state.workspaces[str(props.get("hubResourceId")).lower()],
                                             loc, r.params["rg"], r.params["sub"])  # fmt: skip
            else:
                existing = Workspace(r.params["sub"], r.params["rg"], r.params["ws"], kind, loc,
                                     state.next_storage_account(), f"kv{r.params['ws'][:8]}")  # fmt: skip
                state._store_workspace(existing)
            existing.tags = body.get("tags") or {}
            return Response(201, existing.body(state))
        existing.tags = body.get("tags") or existing.tags
        return Response(200, existing.body(state))

    def patch_ws(r: Request) -> Response:
        ws = need_ws(state, r.params)
        body = r.json()
        props = body.get("properties") or {}
        if "tags" in body:
            ws.tags = dict(body["tags"] or {})
        if "friendlyName" in props:
            ws.friendly_name = props["friendlyName"] or ""
        if "description" in props:
            ws.description = props["description"] or ""
        ws.provisioning_state = "Updating"

        def done() -> None:
            ws.provisioning_state = "Succeeded"

        op = state.new_operation(f"update:{ws.key}", done, lambda: Response(200, ws.body(state)))
        return Response(202, None, lro_headers(op, ws.sub, ws.location, r.api_version))

    def delete_ws(r: Request) -> Response:
        need_rg(state, r.params["sub"], r.params["rg"])
        ws = state.workspace(r.params["ws"], r.params["rg"], r.params["sub"])
        if ws is None:
            return Response(204)
        if ws.kind == "Hub" and state.refuse_hub_delete_with_projects:
            projects = [w.name for w in state.workspaces.values() if (w.hub_id or "").lower() == ws.key]
            if projects:
                raise HttpError(409, "Conflict", f"Hub workspace '{ws.name}' still has project workspaces: "
                                f"{', '.join(sorted(projects))}. Delete the projects first.")  # fmt: skip
        ws.provisioning_state = "Deleting"
        purge = r.query.get("forceToPurge", "false").lower() == "true"

        def done() -> None:
            state.workspaces.pop(ws.key, None)
            state.deleted_resources.append(ws.id + ("?forceToPurge=true" if purge else ""))
            for coll in (state.jobs, state.endpoints, state.data, state.models):
                for k in [k for k in coll if k[0] == ws.key]:
                    coll.pop(k)  # type: ignore[attr-defined]

        op = state.new_operation(f"delete:{ws.key}", done)
        return Response(202, None, lro_headers(op, ws.sub, ws.location, r.api_version))

    t.add("workspaces.list_by_resource_group", "GET", ARM, RG + "/providers/Microsoft.MachineLearningServices/workspaces",
          list_ws)  # fmt: skip
    t.add("workspaces.list_by_subscription", "GET", ARM, SUB + "/providers/Microsoft.MachineLearningServices/workspaces",
          list_ws_sub)  # fmt: skip
    t.add("workspaces.get", "GET", ARM, WS, get_ws)
    t.add("workspaces.create_or_update", "PUT", ARM, WS, put_ws)
    t.add("workspaces.update", "PATCH", ARM, WS, patch_ws)
    t.add("workspaces.delete", "DELETE", ARM, WS, delete_ws)

    # --- async operations (all MachineLearningServices LROs) ---------------------------------

    ops = SUB + "/providers/Microsoft.MachineLearningServices/locations/{loc}"

    def need_op(op_id: str) -> Operation:
        op = state.operations.get(op_id)
        if op is None:
            raise HttpError(404, "ResourceNotFound", f"Operation '{op_id}' was not found.")
        return op

    def op_status(r: Request) -> Response:
        op = state.poll_operation(need_op(r.params["op"]))
        # azure-core treats "Retry-After: 0" as absent (falsy delay) and sleeps its default 30 s
        return Response(
            200,
            op_status_body(op),
            {"Retry-After": state.lro_retry_after} if op.status == "InProgress" else {},
        )

    def op_result(r: Request) -> Response:
        op = state.poll_operation(need_op(r.params["op"]))
        if op.status == "InProgress":
            return Response(
                202,
                None,
                {
                    "Location": f"{ARM_BASE}{r.path}?api-version={r.api_version}",
                    "Retry-After": state.lro_retry_after,
                },
            )
        if op.status == "Failed":
            raise HttpError(
                400, (op.error or {}).get("code", "UserError"), (op.error or {}).get("message", "failed")
            )
        return op.result() if op.result else Response(204)

    t.add("operations.status", "GET", ARM, ops + "/mfeOperationsStatus/{op}", op_status)
    t.add("operations.result", "GET", ARM, ops + "/mfeOperationResults/{op}", op_result)

    # --- dependent resources the SDK deletes with a hub --------------------------------------

    def delete_dependent(r: Request) -> Response:
        need_rg(state, r.params["sub"], r.params["rg"])
        if r.params["ns"].lower() not in DEPENDENT_NAMESPACES:
            raise HttpError(
                404,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for {r.params['ns']}.",
            )
        rid = f"/subscriptions/{r.params['sub']}/resourceGroups/{r.params['rg']}/providers/{r.params['ns']}/{r.params['type']}/{r.params['name']}"
        state.deleted_resources.append(rid)
        return Response(200)

    t.add("dependents.delete", "DELETE", ARM, RG + "/providers/{ns}/{type}/{name}", delete_dependent)
