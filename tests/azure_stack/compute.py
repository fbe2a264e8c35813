"""Azure ML compute clusters, environments, code assets and command jobs (``backend: azureml-compute``).

- ``computes``: PUT -> 201 + ``Azure-AsyncOperation`` (``Creating`` until the operation is polled, then
  ``Succeeded``); GET; DELETE -> 202 + ``Location`` (gone once polled), 204 when absent; list.
- ``environments/{name}/versions/{version}``: PUT (201 create, 200 same spec again), GET; containers GET/PUT.
- ``codes``: versions list with the SDK's ``hash`` filter (dedup of identical snapshots),
  ``startPendingUpload`` (a SAS for a fresh temporary container in Azurite, as the SDK expects a container
  URL), version PUT/GET; containers GET/PUT.
- Command jobs use the ordinary ``jobs`` routes (aml.py): ``jobType: Command`` is stored as sent, walks the
  same status script, and on ``Completed`` every named ``custom_model``/``mlflow_model`` output becomes a
  workspace model (state.py). A command job naming a missing compute or environment is refused with 400.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .arm import ARM, WS, lro_headers, need_ws, page
from .state import State, Workspace, aml_not_found, now_iso, system_data
from .web import HttpError, Request, Response, RouteTable


def _iso_seconds(value: Any) -> str:
    """``nodeIdleTimeBeforeScaleDown`` is an ISO 8601 duration (the SDK sends ``PT1800S``)."""
    return str(value) if value else "PT1800S"


def compute_body(ws: Workspace, name: str, record: dict[str, Any]) -> dict[str, Any]:
    props = copy.deepcopy(record.get("properties") or {})
    inner = props.get("properties") or {}
    scale = inner.get("scaleSettings") or {}
    inner.update(
        {
            "vmSize": inner.get("vmSize", "Standard_NC24ads_A100_v4"),
            "vmPriority": inner.get("vmPriority", "Dedicated"),
            "scaleSettings": {
                "maxNodeCount": int(scale.get("maxNodeCount", 1)),
                "minNodeCount": int(scale.get("minNodeCount", 0)),
                "nodeIdleTimeBeforeScaleDown": _iso_seconds(scale.get("nodeIdleTimeBeforeScaleDown")),
            },
            "osType": inner.get("osType", "Linux"),
            "allocationState": "Steady",
            "allocationStateTransitionTime": record["created"],
            "currentNodeCount": 0,
            "targetNodeCount": 0,
            "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": 0, "preparingNodeCount": 0,
                                "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0},
            "remoteLoginPortPublicAccess": inner.get("remoteLoginPortPublicAccess", "NotSpecified"),
            "enableNodePublicIp": inner.get("enableNodePublicIp", True),
        }
    )  # fmt: skip
    props.update(
        {
            "computeType": "AmlCompute",
            "computeLocation": props.get("computeLocation") or ws.location,
            "provisioningState": record["state"],
            "createdOn": record["created"],
            "modifiedOn": record["created"],
            "isAttachedCompute": False,
            "disableLocalAuth": props.get("disableLocalAuth", True),
            "properties": inner,
        }
    )
    return {
        "id": f"{ws.id}/computes/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/computes",
        "location": record.get("location") or ws.location,
        "tags": dict(record.get("tags") or {}),
        "identity": record.get("identity"),
        "systemData": record["systemData"],
        "properties": props,
    }


def register(t: RouteTable, state: State) -> None:
    # --- compute clusters ----------------------------------------------------------------------
    def poll_pending(ws: Workspace, name: str) -> None:
        for op in list(state.operations.values()):
            if op.kind in (
                f"compute-create:{ws.key}/{name.lower()}",
                f"compute-delete:{ws.key}/{name.lower()}",
            ):
                state.poll_operation(op)

    def put_compute(r: Request) -> Response:
        ws = need_ws(state, r.params)
        name = r.params["name"]
        body = r.json()
        props = body.get("properties") or {}
        if props.get("computeType") != "AmlCompute":
            raise HttpError(
                400, "UserError", f"The offline stack models AmlCompute only, not {props.get('computeType')}."
            )
        key = (ws.key, name.lower())
        existing = state.computes.get(key)
        if existing is not None:
            existing["properties"] = props
            existing["tags"] = body.get("tags") or existing.get("tags")
            return Response(200, compute_body(ws, name, existing))
        record = {"properties": props, "tags": body.get("tags") or {}, "location": body.get("location"),
                  "identity": body.get("identity"), "state": "Creating", "created": now_iso(),
                  "systemData": system_data(), "name": name}  # fmt: skip
        state.computes[key] = record

        def done() -> None:
            record["state"] = "Succeeded"

        op = state.new_operation(
            f"compute-create:{ws.key}/{name.lower()}", done, remaining=state.compute_create_polls
        )
        headers = lro_headers(op, ws.sub, ws.location, r.api_version)
        headers.pop("Location")
        return Response(201, compute_body(ws, name, record), headers)

    def get_compute(r: Request) -> Response:
        ws = need_ws(state, r.params)
        poll_pending(ws, r.params["name"])
        record = state.computes.get((ws.key, r.params["name"].lower()))
        if record is None:
            raise HttpError(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                            f"{ws.name}/computes/{r.params['name']}' under resource group '{ws.rg}' was not found.")  # fmt: skip
        return Response(200, compute_body(ws, record["name"], record))

    def list_computes(r: Request) -> Response:
        ws = need_ws(state, r.params)
        return page(
            [compute_body(ws, rec["name"], rec) for (wk, _), rec in state.computes.items() if wk == ws.key]
        )

    def delete_compute(r: Request) -> Response:
        ws = need_ws(state, r.params)
        key = (ws.key, r.params["name"].lower())
        record = state.computes.get(key)
        if record is None:
            return Response(204)
        record["state"] = "Deleting"

        def done() -> None:
            state.computes.pop(key, None)
            state.deleted_resources.append(f"{ws.id}/computes/{record['name']}")

        op = state.new_operation(f"compute-delete:{ws.key}/{r.params['name'].lower()}", done)
        return Response(202, None, lro_headers(op, ws.sub, ws.location, r.api_version))

    cbase = WS + "/computes"
    t.add("computes.list", "GET", ARM, cbase, list_computes)
    t.add("computes.get", "GET", ARM, cbase + "/{name}", get_compute)
    t.add("computes.create_or_update", "PUT", ARM, cbase + "/{name}", put_compute)
    t.add("computes.delete", "DELETE", ARM, cbase + "/{name}", delete_compute)

    # --- environments and code (versioned assets without content checks) ------------------------
    def versioned(kind: str, store_attr: str) -> None:
        seg = "environments" if kind == "environment" else "codes"

        def store() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
            return getattr(state, store_attr)  # type: ignore[no-any-return]  # reset() swaps the dicts

        def version_body(
            ws: Workspace, name: str, version: str, props: dict[str, Any], sd: dict[str, Any]
        ) -> dict[str, Any]:
            base: dict[str, Any] = {"description": None, "tags": {}, "properties": {}, "isArchived": False,
                                    "isAnonymous": False, "provisioningState": "Succeeded"}  # fmt: skip
            if kind == "environment":
                base.update({"environmentType": "UserCreated", "osType": "Linux", "autoRebuild": "Disabled"})
            return {"id": f"{ws.id}/{seg}/{name}/versions/{version}", "name": version,
                    "type": f"Microsoft.MachineLearningServices/workspaces/{seg}/versions",
                    "systemData": sd, "properties": {**base, **props}}  # fmt: skip

        def get_version(r: Request) -> Response:
            ws = need_ws(state, r.params)
            body = store().get((ws.key, r.params["name"].lower()), {}).get(r.params["version"])
            if body is None:
                raise aml_not_found(f"{kind.capitalize()} {r.params['name']}:{r.params['version']}")
            return Response(200, body)

        def put_version(r: Request) -> Response:
            ws = need_ws(state, r.params)
            versions = store().setdefault((ws.key, r.params["name"].lower()), {})
            existing = versions.get(r.params["version"])
            props = r.json().get("properties") or {}
            if kind == "environment" and existing is not None:
                for field in ("image", "build", "condaFile"):
                    if field in props and props[field] != existing["properties"].get(field):
                        raise HttpError(409, "UserError", f"Environment {r.params['name']}:{r.params['version']} "
                                        f"already exists with a different {field}; versions are immutable.")  # fmt: skip
            body = version_body(ws, r.params["name"], r.params["version"], props,
                                existing["systemData"] if existing else system_data())  # fmt: skip
            versions[r.params["version"]] = body
            return Response(200 if existing else 201, body)

        def list_versions(r: Request) -> Response:
            ws = need_ws(state, r.params)
            bodies = list(store().get((ws.key, r.params["name"].lower()), {}).values())
            wanted = r.query.get("hash")
            if wanted:
                bodies = [b for b in bodies if (b["properties"].get("properties") or {}).get("azureml.contentHash")
                          == wanted]  # fmt: skip
            return page(bodies)

        def container(r: Request) -> Response:
            ws = need_ws(state, r.params)
            versions = store().get((ws.key, r.params["name"].lower()))
            if versions is None and r.method == "GET":
                raise aml_not_found(f"{kind.capitalize()} container {r.params['name']}")
            if versions is None:
                versions = store().setdefault((ws.key, r.params["name"].lower()), {})
            latest = max(versions) if versions else None
            return Response(200, {"id": f"{ws.id}/{seg}/{r.params['name']}", "name": r.params["name"],
                                  "type": f"Microsoft.MachineLearningServices/workspaces/{seg}",
                                  "systemData": system_data(),
                                  "properties": {"description": None, "tags": {}, "properties": {},
                                                 "isArchived": False, "latestVersion": latest,
                                                 "nextVersion": "1", "provisioningState": "Succeeded"}})  # fmt: skip

        base = WS + f"/{seg}"
        t.add(f"{seg}.containers.get", "GET", ARM, base + "/{name}", container)
        t.add(f"{seg}.containers.create_or_update", "PUT", ARM, base + "/{name}", container)
        t.add(f"{seg}.versions.list", "GET", ARM, base + "/{name}/versions", list_versions)
        t.add(f"{seg}.versions.get", "GET", ARM, base + "/{name}/versions/{version}", get_version)
        t.add(
            f"{seg}.versions.create_or_update", "PUT", ARM, base + "/{name}/versions/{version}", put_version
        )

    versioned("environment", "environments")
    versioned("code", "codes")

    def start_pending_upload(r: Request) -> Response:
        ws = need_ws(state, r.params)
        if state.azurite is None:
            raise HttpError(500, "InternalServerError", "The offline stack runs without Azurite")
        # a temporary container per upload: azure-ai-ml opens the SAS URI with ContainerClient.from_container_url
        acct, container = ws.storage_account, f"pending-{uuid.uuid4().hex[:24]}"
        state.azurite.ensure_container(acct, container)
        blob_uri = f"https://{acct}.blob.core.windows.net/{container}"
        sas = state.azurite.container_sas(acct, container)
        return Response(200, {
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "storageAccountArmId": ws.storage_id(),
                "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
            },
            "pendingUploadId": r.params["version"], "pendingUploadType": "TemporaryBlobReference",
        })  # fmt: skip

    t.add("codes.versions.start_pending_upload", "POST", ARM,
          WS + "/codes/{name}/versions/{version}/startPendingUpload", start_pending_upload)  # fmt: skip


def check_command_job(state: State, ws: Workspace, props: dict[str, Any]) -> None:
    """What the service refuses at submit: a compute or an environment that does not exist."""
    compute = str(props.get("computeId") or "")
    if compute and "/computes/" in compute:
        name = compute.rsplit("/", 1)[-1].lower()
        if (ws.key, name) not in state.computes:
            raise HttpError(400, "UserError", f"Compute {name} was not found in workspace {ws.name}.",
                            details=[{"code": "ComputeNotFound", "message": f"Compute {name} not found."}])  # fmt: skip
    env = str(props.get("environmentId") or "")
    if "/environments/" in env and "/workspaces/" in env:
        parts = env.rstrip("/").split("/")
        name, version = parts[-3], parts[-1]
        if version not in state.environments.get((ws.key, name.lower()), {}):
            raise HttpError(400, "UserError", f"Environment {name}:{version} was not found in workspace {ws.name}.",
                            details=[{"code": "EnvironmentNotFound", "message": "Environment not found."}])  # fmt: skip
