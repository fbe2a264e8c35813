"""Azure ML workspace resources on management.azure.com: datastores, data assets, jobs
(fine-tuning), models, serverless endpoints and marketplace subscriptions."""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

from .arm import ARM, WS, lro_headers, need_ws, page
from .state import (
    TERMINAL_JOB_STATES,
    Endpoint,
    Job,
    State,
    Workspace,
    aml_not_found,
    system_data,
)
from .web import HttpError, Request, Response, RouteTable

REGISTRY_MODEL_RE = re.compile(r"^azureml://registries/([^/]+)/models/([^/]+)(?:/versions/([^/]+))?$", re.I)
WS_MODEL_RE = re.compile(
    r"^azureml://locations/([^/]+)/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)$", re.I
)
DATA_ARM_RE = re.compile(r"/workspaces/([^/]+)/data/([^/]+)/versions/([^/]+)$", re.I)


def user_error(status: int, message: str, inner: str | None = None) -> HttpError:
    details = [{"code": inner, "message": message, "details": [], "additionalInfo": []}] if inner else []
    return HttpError(status, "UserError", message, details=details)


def list_view(items: list[tuple[dict[str, Any], bool]], query: dict[str, str]) -> list[dict[str, Any]]:
    view = query.get("listViewType", "ActiveOnly").lower()
    if view == "all":
        return [b for b, _ in items]
    if view == "archivedonly":
        return [b for b, archived in items if archived]
    return [b for b, archived in items if not archived]


def order_and_top(bodies: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    order = query.get("$orderBy", query.get("$orderby", "")).lower()
    if "createdtime" in order:
        bodies = sorted(
            bodies, key=lambda b: b.get("systemData", {}).get("createdAt", ""), reverse="desc" in order
        )
    top = query.get("$top")
    return bodies[: int(top)] if top and top.isdigit() else bodies


def retired(tags: dict[str, str]) -> bool:
    date = tags.get("FinetuneRetirementDate")
    return bool(date) and date <= dt.date.today().isoformat()


def register(t: RouteTable, state: State) -> None:
    # --- datastores ----------------------------------------------------------------------------

    def datastore_body(ws: Workspace, name: str) -> dict[str, Any]:
        if name.lower() not in ("workspaceblobstore", "workspaceartifactstore"):
            raise aml_not_found(f"Datastore {name}")
        container = ws.blob_container if name.lower() == "workspaceblobstore" else ws.artifact_container
        creds = "Sas" if state.datastore_secret_type == "Sas" else "AccountKey"
        return {
            "id": f"{ws.id}/datastores/{name.lower()}",
            "name": name.lower(),
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "systemData": ws.system_data,
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": ws.storage_account,
                "containerName": container,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "credentials": {"credentialsType": creds},
                "isDefault": name.lower() == "workspaceblobstore",
                "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
                "description": None,
                "tags": {},
                "properties": {},
                "subscriptionId": ws.sub,
                "resourceGroup": ws.rg,
            },
        }

    def get_datastore(r: Request) -> Response:
        return Response(200, datastore_body(need_ws(state, r.params), r.params["name"]))

    def list_datastores(r: Request) -> Response:
        ws = need_ws(state, r.params)
        bodies = [datastore_body(ws, n) for n in ("workspaceblobstore", "workspaceartifactstore")]
        if r.query.get("isDefault", "").lower() == "true":
            bodies = [b for b in bodies if b["properties"]["isDefault"]]
        return page(bodies)

    def list_secrets(r: Request) -> Response:
        ws = need_ws(state, r.params)
        body = datastore_body(ws, r.params["name"])
        acct, container = body["properties"]["accountName"], body["properties"]["containerName"]
        if state.azurite is None:
            raise HttpError(500, "InternalServerError", "The offline stack runs without Azurite")
        if state.datastore_secret_type == "Sas":
            hours = int(r.json().get("expireAfterHours") or 1) if r.body else 1
            return Response(
                200,
                {"secretsType": "Sas", "sasToken": state.azurite.container_sas(acct, container, hours=hours)},
            )
        return Response(200, {"secretsType": "AccountKey", "key": state.azurite.accounts[acct]})

    t.add("datastores.list", "GET", ARM, WS + "/datastores", list_datastores)
    t.add("datastores.get", "GET", ARM, WS + "/datastores/{name}", get_datastore)
    t.add("datastores.list_secrets", "POST", ARM, WS + "/datastores/{name}/listSecrets", list_secrets)

    # --- versioned assets (data, models) -------------------------------------------------------

    def asset_container_body(
        ws: Workspace, kind: str, name: str, versions: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        latest = max(versions.values(), key=lambda b: b["systemData"]["createdAt"]) if versions else None
        nums = [int(v) for v in versions if v.isdigit()]
        first = next(iter(versions.values()), {}).get("properties", {})
        props: dict[str, Any] = {
            "description": None,
            "tags": {},
            "properties": {},
            "isArchived": bool(versions)
            and all(b["properties"].get("isArchived") for b in versions.values()),
            "latestVersion": latest["name"] if latest else None,
            "nextVersion": str(max(nums) + 1) if nums else "1",
            "provisioningState": "Succeeded",
        }
        if kind == "data":
            props["dataType"] = first.get("dataType", "uri_file")
        return {
            "id": f"{ws.id}/{kind}/{name}",
            "name": name,
            "type": f"Microsoft.MachineLearningServices/workspaces/{kind}",
            "systemData": latest["systemData"] if latest else system_data(),
            "properties": props,
        }

    def asset_routes(kind: str, attr: str) -> None:
        def store() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
            return getattr(state, attr)  # type: ignore[no-any-return]  # reset() swaps the dicts

        def versions_of(ws: Workspace, name: str, must: bool = True) -> dict[str, dict[str, Any]]:
            found = store().get((ws.key, name.lower()))
            if found is None and must:
                raise aml_not_found(f"{'Data' if kind == 'data' else 'Model'} container {name}")
            return found if found is not None else {}

        def get_version(r: Request) -> Response:
            ws = need_ws(state, r.params)
            body = versions_of(ws, r.params["name"]).get(r.params["version"])
            if body is None:
                raise aml_not_found(
                    f"{'Data' if kind == 'data' else 'Model'} {r.params['name']}:{r.params['version']}"
                )
            return Response(200, body)

        def put_version(r: Request) -> Response:
            ws = need_ws(state, r.params)
            incoming = r.json().get("properties") or {}
            versions = store().setdefault((ws.key, r.params["name"].lower()), {})
            existing = versions.get(r.params["version"])
            if kind == "model" and existing is not None:
                # only mutable fields change (tags, description, isArchived, stage); the rest is immutable
                changed = {
                    k
                    for k in ("modelUri", "modelType")
                    if k in incoming and incoming[k] != existing["properties"].get(k)
                }
                if changed:
                    raise HttpError(409, "UserError", f"Model {r.params['name']}:{r.params['version']} already exists "
                                    f"with different {', '.join(sorted(changed))}; versions are immutable.")  # fmt: skip
            body = {
                "id": f"{ws.id}/{kind if kind == 'data' else 'models'}/{r.params['name']}/versions/{r.params['version']}",
                "name": r.params["version"],
                "type": f"Microsoft.MachineLearningServices/workspaces/{'data' if kind == 'data' else 'models'}/versions",
                "systemData": existing["systemData"] if existing else system_data(),
                "properties": {
                    "description": None,
                    "tags": {},
                    "properties": {},
                    "isArchived": False,
                    "isAnonymous": False,
                    **(
                        {"modelType": "custom_model", "flavors": {}, "provisioningState": "Succeeded"}
                        if kind != "data"
                        else {}
                    ),
                    **(existing["properties"] if existing else {}),
                    **incoming,
                },
            }
            versions[r.params["version"]] = body
            return Response(200 if existing else 201, body)

        def list_versions(r: Request) -> Response:
            ws = need_ws(state, r.params)
            versions = versions_of(ws, r.params["name"], must=False)
            bodies = list_view(
                [(b, bool(b["properties"].get("isArchived"))) for b in versions.values()], r.query
            )
            return page(order_and_top(bodies, r.query))

        def get_container(r: Request) -> Response:
            ws = need_ws(state, r.params)
            return Response(200, asset_container_body(ws, kind if kind == "data" else "models", r.params["name"],
                                                      versions_of(ws, r.params["name"])))  # fmt: skip

        def put_container(r: Request) -> Response:
            ws = need_ws(state, r.params)
            versions = store().setdefault((ws.key, r.params["name"].lower()), {})
            body = asset_container_body(ws, kind if kind == "data" else "models", r.params["name"], versions)
            archived = (r.json().get("properties") or {}).get("isArchived")
            if archived is not None:
                for b in versions.values():
                    b["properties"]["isArchived"] = bool(archived)
                body["properties"]["isArchived"] = bool(archived)
            return Response(200, body)

        def list_containers(r: Request) -> Response:
            ws = need_ws(state, r.params)
            out = []
            for (wk, _), versions in store().items():
                if wk == ws.key and versions:
                    name = next(iter(versions.values()))["id"].split("/")[-3]
                    b = asset_container_body(ws, kind if kind == "data" else "models", name, versions)
                    out.append((b, bool(b["properties"]["isArchived"])))
            return page(list_view(out, r.query))

        def in_use_by(ws: Workspace, name: str, version: str | None) -> list[str]:
            users = []
            for ep in state.endpoints.values():
                m = WS_MODEL_RE.match(ep.model_id)
                if (
                    m
                    and m.group(2).lower() == ws.workspace_id.lower()
                    and m.group(3).lower() == name.lower()
                    and (version is None or m.group(4) == version)
                ):
                    users.append(ep.name)
            return users

        def delete_version(r: Request) -> Response:
            ws = need_ws(state, r.params)
            versions = versions_of(ws, r.params["name"], must=False)
            if r.params["version"] not in versions:
                return Response(204)
            if kind == "model" and (users := in_use_by(ws, r.params["name"], r.params["version"])):
                raise HttpError(409, "UserError", f"Model {r.params['name']}:{r.params['version']} cannot be deleted "
                                f"because it is used by serverless endpoint(s): {', '.join(users)}. Delete the "
                                "endpoint(s) first.")  # fmt: skip
            versions.pop(r.params["version"])
            return Response(200)

        def delete_container(r: Request) -> Response:
            ws = need_ws(state, r.params)
            if (ws.key, r.params["name"].lower()) not in store():
                return Response(204)
            if kind == "model" and (users := in_use_by(ws, r.params["name"], None)):
                raise HttpError(409, "UserError", f"Model {r.params['name']} cannot be deleted because it is used by "
                                f"serverless endpoint(s): {', '.join(users)}.")  # fmt: skip
            store().pop((ws.key, r.params["name"].lower()))
            return Response(200)

        seg = "data" if kind == "data" else "models"
        base = WS + f"/{seg}"
        t.add(f"{seg}.list", "GET", ARM, base, list_containers)
        t.add(f"{seg}.containers.get", "GET", ARM, base + "/{name}", get_container)
        t.add(f"{seg}.containers.create_or_update", "PUT", ARM, base + "/{name}", put_container)
        t.add(f"{seg}.containers.delete", "DELETE", ARM, base + "/{name}", delete_container)
        t.add(f"{seg}.versions.list", "GET", ARM, base + "/{name}/versions", list_versions)
        t.add(f"{seg}.versions.get", "GET", ARM, base + "/{name}/versions/{version}", get_version)
        t.add(
            f"{seg}.versions.create_or_update", "PUT", ARM, base + "/{name}/versions/{version}", put_version
        )
        t.add(f"{seg}.versions.delete", "DELETE", ARM, base + "/{name}/versions/{version}", delete_version)

    asset_routes("data", "data")
    asset_routes("model", "models")

    # --- jobs ---------------------------------------------------------------------------------

    def need_job(ws: Workspace, name: str) -> Job:
        job = state.jobs.get((ws.key, name.lower()))
        if job is None:
            raise aml_not_found(f"Job {name}")
        return job

    def job_body(job: Job) -> dict[str, Any]:
        return copy.deepcopy(job.body)

    def check_finetuning(ws: Workspace, details: dict[str, Any]) -> None:
        uri = str((details.get("model") or {}).get("uri") or "")
        m = REGISTRY_MODEL_RE.match(uri)
        if m:
            versions = state.registry.get((m.group(1).lower(), m.group(2).lower()))
            mv = None
            if versions:
                mv = (
                    versions.get(m.group(3))
                    if m.group(3)
                    else max(versions.values(), key=lambda v: v.created)
                )
            if mv is None:
                raise user_error(400, f"Model {uri} was not found in registry {m.group(1)}.", "ModelNotFound")
            if retired(mv.tags) or mv.archived:
                raise user_error(400, f"Model {mv.name} version {mv.version} is retired for fine-tuning "
                                 f"(FinetuneRetirementDate {mv.tags.get('FinetuneRetirementDate', 'n/a')}).",
                                 "ModelRetired")  # fmt: skip
            regions = mv.tags.get("maas-finetuning-regions")
            if regions and ws.location.lower() not in [x.strip().lower() for x in regions.split(",")]:
                raise user_error(400, f"Model {mv.name} is not supported for serverless fine-tuning in region "
                                 f"'{ws.location}'. Supported regions: {regions}.", "ModelNotSupportedByMaaS")  # fmt: skip
            if "chat-completion" not in mv.properties.get("finetuning-tasks", "chat-completion") and \
                    str(details.get("taskType", "")).lower() == "chatcompletion":  # fmt: skip
                raise user_error(
                    400, f"Model {mv.name} does not support task chatCompletion.", "TaskNotSupported"
                )
        for key in ("trainingData", "validationData"):
            duri = str((details.get(key) or {}).get("uri") or "")
            dm = DATA_ARM_RE.search(duri)
            if dm and dm.group(3) not in state.data.get((ws.key, dm.group(2).lower()), {}):
                raise user_error(400, f"Data asset {dm.group(2)}:{dm.group(3)} ({key}) was not found in workspace "
                                 f"{ws.name}.", "DataNotFound")  # fmt: skip

    def put_job(r: Request) -> Response:
        ws = need_ws(state, r.params)
        name = r.params["name"]
        if (ws.key, name.lower()) in state.jobs:
            raise HttpError(
                409, "UserError", f"A job with name '{name}' already exists in workspace '{ws.name}'."
            )
        body = r.json()
        props = body.get("properties") or {}
        if props.get("jobType") == "FineTuning":
            check_finetuning(ws, props.get("fineTuningDetails") or {})
        if props.get("jobType") == "Command":
            from .compute import check_command_job

            check_command_job(state, ws, props)
        script, error = state.job_scripts.get(name.lower(), (list(state.default_job_script), None))
        props = {
            "description": None,
            "tags": {},
            "properties": {},
            "displayName": name,
            "experimentName": "Default",
            "isArchived": False,
            "computeId": None,
            "services": {"Studio": {"jobServiceType": "Studio", "status": None, "errorMessage": None,
                                    "endpoint": f"https://ml.azure.com/runs/{name}?wsid={ws.id}&tid={state.tenant_id}"}},
            **props,
            "status": script[0],
        }  # fmt: skip
        outputs = props.get("outputs") or {}
        for out in outputs.values():
            if isinstance(out, dict) and out.get("jobOutputType") in ("mlflow_model", "custom_model"):
                out.setdefault("assetVersion", "1")
        job_doc = {
            "id": f"{ws.id}/jobs/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "systemData": system_data(),
            "properties": props,
        }
        job = Job(ws, name, job_doc, list(script), error=error)
        state.jobs[(ws.key, name.lower())] = job
        state._enter_job_status(job)
        return Response(201, job_body(job))

    def get_job(r: Request) -> Response:
        ws = need_ws(state, r.params)
        return Response(200, job_body(state.touch_job(need_job(ws, r.params["name"]))))

    def list_jobs(r: Request) -> Response:
        ws = need_ws(state, r.params)
        jobs = [j for (wk, _), j in state.jobs.items() if wk == ws.key]
        if r.query.get("jobType"):
            jobs = [j for j in jobs if j.properties.get("jobType", "").lower() == r.query["jobType"].lower()]
        view = r.query.get("listViewType", "ActiveOnly").lower()
        if view != "all":
            jobs = [j for j in jobs if bool(j.properties.get("isArchived")) == (view == "archivedonly")]
        return page(
            [job_body(j) for j in sorted(jobs, key=lambda j: j.body["systemData"]["createdAt"], reverse=True)]
        )

    def cancel_job(r: Request) -> Response:
        ws = need_ws(state, r.params)
        job = need_job(ws, r.params["name"])
        if job.status not in TERMINAL_JOB_STATES and job.status != "CancelRequested":
            job.script = [*job.script[: job.idx + 1], "CancelRequested", "Canceled"]
            state.advance_job(job.name, "CancelRequested")
            job.reads = 0

        def done() -> None:
            if job.status == "CancelRequested":
                state.advance_job(job.name, "Canceled")

        op = state.new_operation(f"cancel:{ws.key}/{job.name}", done)
        return Response(202, None, lro_headers(op, ws.sub, ws.location, r.api_version))

    t.add("jobs.list", "GET", ARM, WS + "/jobs", list_jobs)
    t.add("jobs.get", "GET", ARM, WS + "/jobs/{name}", get_job)
    t.add("jobs.create_or_update", "PUT", ARM, WS + "/jobs/{name}", put_job)
    t.add("jobs.cancel", "POST", ARM, WS + "/jobs/{name}/cancel", cancel_job)

    # --- serverless endpoints ----------------------------------------------------------------

    sep = WS + "/serverlessEndpoints"

    def need_ep(ws: Workspace, name: str) -> Endpoint:
        ep = state.endpoints.get((ws.key, name.lower()))
        if ep is None:
            raise HttpError(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                            f"{ws.name}/serverlessEndpoints/{name}' under resource group '{ws.rg}' was not found.")  # fmt: skip
        for op in list(state.operations.values()):
            if op.kind in (f"ep-create:{ws.key}/{ep.name.lower()}", f"ep-delete:{ws.key}/{ep.name.lower()}"):
                state.poll_operation(op)
        if (ws.key, name.lower()) not in state.endpoints:
            raise HttpError(404, "ResourceNotFound", f"Serverless endpoint {name} was not found.")
        return ep

    def check_model_for_endpoint(ws: Workspace, model_id: str, location: str) -> None:
        if REGISTRY_MODEL_RE.match(model_id) and "/versions/" in model_id:
            raise user_error(
                400, "Model id must not include a version for registry models.", "InvalidModelId"
            )
        reg = REGISTRY_MODEL_RE.match(model_id)
        if reg:  # a base model offered as a serverless API
            versions = state.registry.get((reg.group(1).lower(), reg.group(2).lower()), {})
            active = [v for v in versions.values() if not v.archived]
            if not active:
                raise user_error(400, f"Model {reg.group(2)} is not available for serverless API deployment.",
                                 "ModelNotSupportedByMaaS")  # fmt: skip
            latest = max(active, key=lambda v: v.created)
            regions = latest.tags.get("maas-inference-regions")
            if regions and location.lower() not in [x.strip().lower() for x in regions.split(",")]:
                raise user_error(400, f"Model {reg.group(2)} is not offered as a serverless API in region "
                                 f"'{location}'. Supported: {regions}.", "ModelNotSupportedByMaaS")  # fmt: skip
        m = WS_MODEL_RE.match(model_id)
        if m:
            owner = next(
                (w for w in state.workspaces.values() if w.workspace_id.lower() == m.group(2).lower()), None
            )
            versions = state.models.get((owner.key, m.group(3).lower()), {}) if owner else {}
            mv = versions.get(m.group(4))
            if mv is None:
                raise user_error(400, f"Model {m.group(3)} version {m.group(4)} was not found in workspace "
                                 f"{m.group(2)}.", "ModelNotFound")  # fmt: skip
            base = REGISTRY_MODEL_RE.match(str(mv["properties"].get("properties", {}).get("baseModelId", "")))
            if base:
                regs = state.registry.get((base.group(1).lower(), base.group(2).lower()), {})
                mv_reg = regs.get(base.group(3)) if base.group(3) else next(iter(regs.values()), None)
                deploy = (mv_reg.tags.get("maas-finetuning-deploy-regions") if mv_reg else None) or ""
                if deploy and location.lower() not in [x.strip().lower() for x in deploy.split(",")]:
                    raise user_error(400, f"Fine-tuned {base.group(2)} models cannot be deployed as serverless "
                                     f"endpoints in region '{location}'. Supported: {deploy}.",
                                     "ModelNotSupportedByMaaS")  # fmt: skip

    def put_endpoint(r: Request) -> Response:
        ws = need_ws(state, r.params)
        body = r.json()
        name = r.params["name"]
        props = body.get("properties") or {}
        model_id = str((props.get("modelSettings") or {}).get("modelId") or "")
        location = body.get("location") or ws.location
        existing = state.endpoints.get((ws.key, name.lower()))
        if existing is not None:
            if model_id and model_id != existing.model_id:
                raise user_error(
                    400, "The model of a serverless endpoint cannot be changed.", "ModelIdImmutable"
                )
            existing.tags = body.get("tags") or existing.tags
            return Response(200, existing.body())
        taken = name.lower() in {n.lower() for n in state.taken_endpoint_names} or any(
            e.name.lower() == name.lower() and e.location.lower() == location.lower()
            for e in state.endpoints.values()
        )
        if taken:
            raise HttpError(409, "UserError", f"Serverless endpoint name {name} is not available in region {location}. "
                            "Endpoint names must be unique within a region; choose another name.",
                            details=[{"code": "Conflict", "message": "Endpoint name is not available."}])  # fmt: skip
        if not model_id:
            raise user_error(400, "properties.modelSettings.modelId is required.", "InvalidModelId")
        check_model_for_endpoint(ws, model_id, location)
        for e in state.endpoints.values():
            if e.ws.key == ws.key and e.model_id.lower() == model_id.lower():
                raise HttpError(409, "UserError", f"Model {model_id} is already deployed by serverless endpoint "
                                f"{e.name} in this project; one deployment per model per project.")  # fmt: skip
        ep = Endpoint(ws, name, model_id, location, dict(body.get("tags") or {}))
        if props.get("authMode"):
            ep.auth_mode = props["authMode"]
        if (props.get("contentSafety") or {}).get("contentSafetyStatus"):
            ep.content_safety = props["contentSafety"]["contentSafetyStatus"]
        state.endpoints[(ws.key, name.lower())] = ep

        def done() -> None:
            ep.provisioning_state = "Succeeded"

        op = state.new_operation(f"ep-create:{ws.key}/{name.lower()}", done, lambda: Response(200, ep.body()))
        headers = lro_headers(op, ws.sub, ws.location, r.api_version)
        headers.pop("Location")
        return Response(201, ep.body(), headers)

    def get_endpoint(r: Request) -> Response:
        ws = need_ws(state, r.params)
        return Response(200, need_ep(ws, r.params["name"]).body())

    def list_endpoints(r: Request) -> Response:
        ws = need_ws(state, r.params)
        return page([e.body() for (wk, _), e in state.endpoints.items() if wk == ws.key])

    def delete_endpoint(r: Request) -> Response:
        ws = need_ws(state, r.params)
        ep = state.endpoints.get((ws.key, r.params["name"].lower()))
        if ep is None:
            return Response(204)
        ep.provisioning_state = "Deleting"

        def done() -> None:
            state.endpoints.pop((ws.key, ep.name.lower()), None)

        op = state.new_operation(f"ep-delete:{ws.key}/{ep.name.lower()}", done)
        return Response(202, None, lro_headers(op, ws.sub, ws.location, r.api_version))

    def list_keys(r: Request) -> Response:
        ep = need_ep(need_ws(state, r.params), r.params["name"])
        return Response(200, {"primaryKey": ep.primary_key, "secondaryKey": ep.secondary_key})

    def regenerate_keys(r: Request) -> Response:
        import uuid

        ep = need_ep(need_ws(state, r.params), r.params["name"])
        which = str(r.json().get("keyType", "Primary")).lower()
        if which == "primary":
            ep.primary_key = uuid.uuid4().hex * 2
        else:
            ep.secondary_key = uuid.uuid4().hex * 2
        return Response(200, {"primaryKey": ep.primary_key, "secondaryKey": ep.secondary_key})

    t.add("serverless_endpoints.list", "GET", ARM, sep, list_endpoints)
    t.add("serverless_endpoints.get", "GET", ARM, sep + "/{name}", get_endpoint)
    t.add("serverless_endpoints.create_or_update", "PUT", ARM, sep + "/{name}", put_endpoint)
    t.add("serverless_endpoints.delete", "DELETE", ARM, sep + "/{name}", delete_endpoint)
    t.add("serverless_endpoints.list_keys", "POST", ARM, sep + "/{name}/listKeys", list_keys)
    t.add(
        "serverless_endpoints.regenerate_keys", "POST", ARM, sep + "/{name}/regenerateKeys", regenerate_keys
    )

    # --- marketplace subscriptions (third-party models only) ---------------------------------

    mps = WS + "/marketplaceSubscriptions"

    def mp_body(ws: Workspace, name: str, model_id: str) -> dict[str, Any]:
        return {
            "id": f"{ws.id}/marketplaceSubscriptions/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/marketplaceSubscriptions",
            "systemData": system_data(),
            "properties": {
                "modelId": model_id,
                "marketplacePlan": {
                    "publisherId": "fake-publisher",
                    "offerId": "fake-offer",
                    "planId": "fake-plan",
                },
                "marketplaceSubscriptionStatus": "Subscribed",
                "provisioningState": "Succeeded",
            },
        }

    def put_mp(r: Request) -> Response:
        ws = need_ws(state, r.params)
        model_id = str((r.json().get("properties") or {}).get("modelId") or "")
        m = REGISTRY_MODEL_RE.match(model_id)
        if m and m.group(1).lower() in ("azureml", "azureml-phi"):
            raise user_error(400, f"Model {model_id} is offered by Microsoft and does not need a marketplace "
                             "subscription.", "MarketplaceSubscriptionNotRequired")  # fmt: skip
        body = mp_body(ws, r.params["name"], model_id)
        state.marketplace[body["id"].lower()] = body
        return Response(201, body)

    def get_mp(r: Request) -> Response:
        ws = need_ws(state, r.params)
        body = state.marketplace.get(f"{ws.id}/marketplaceSubscriptions/{r.params['name']}".lower())
        if body is None:
            raise aml_not_found(f"Marketplace subscription {r.params['name']}")
        return Response(200, body)

    def delete_mp(r: Request) -> Response:
        ws = need_ws(state, r.params)
        found = state.marketplace.pop(f"{ws.id}/marketplaceSubscriptions/{r.params['name']}".lower(), None)
        return Response(202 if found else 204, None, {"Retry-After": "0"} if found else {})

    t.add("marketplace_subscriptions.create_or_update", "PUT", ARM, mps + "/{name}", put_mp)
    t.add("marketplace_subscriptions.get", "GET", ARM, mps + "/{name}", get_mp)
    t.add("marketplace_subscriptions.delete", "DELETE", ARM, mps + "/{name}", delete_mp)
