"""Region data plane ({region}.api.azureml.ms), the model registry (cert-{region}.experiments.azureml.net),
serverless inference ({endpoint}.{region}.models.ai.azure.com) and the fake Entra ID
(login.microsoftonline.com)."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
import uuid
from typing import Any

from .aml import list_view, order_and_top
from .arm import WS, need_ws
from .credential import make_jwt, scope_to_aud
from .state import (
    REGISTRY_REGION,
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    TERMINAL_JOB_STATES,
    Job,
    State,
)
from .web import HttpError, Request, Response, RouteTable

REGION = "{region}.api.azureml.ms"
REGISTRY_HOST = "cert-{region}.experiments.azureml.net"
INFERENCE = "{ep}.{region}.models.ai.azure.com"
LOGIN = "login.microsoftonline.com"
MLFLOW = "/mlflow/v1.0" + WS + "/api/2.0/mlflow"


def _epoch_ms(iso: str | None) -> int | None:
    if not iso:
        return None
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def register(t: RouteTable, state: State) -> None:
    # --- discovery -----------------------------------------------------------------------------

    def discovery(r: Request) -> Response:
        base = f"https://{r.params['region']}.api.azureml.ms"
        keys = ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling",
                "modelmanagement", "pipelines", "studiometadata", "mlflow")  # fmt: skip
        return Response(200, {k: base for k in keys})

    t.add("discovery.get", "GET", REGION, "/discovery", discovery, auth=False)

    # --- run history: run details with log files ---------------------------------------------

    def need_job(r: Request) -> Job:
        ws = need_ws(state, r.params)
        run = r.params["run"]
        job = state.jobs.get((ws.key, run.lower()))
        if job is None:
            raise HttpError(
                404,
                "UserError",
                f"Run {run} was not found.",
                details=[{"code": "RunNotFound", "message": run}],
            )
        return job

    def log_files(job: Job) -> dict[str, str]:
        if state.azurite is None or job.status in ("NotStarted", "Queued"):
            return {}
        acct, container = job.ws.storage_account, job.ws.artifact_container
        sas = state.azurite.container_sas(acct, container, read_only=True)
        blob = f"ExperimentRun/dcid.{job.name}/user_logs/std_log.txt"
        return {"user_logs/std_log.txt": f"https://{acct}.blob.core.windows.net/{container}/{blob}?{sas}"}

    def run_details_body(job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {
            "runId": job.name,
            "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, job.ws.key + job.name)),
            "parentRunUuid": None,
            "rootRunUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, job.ws.key + job.name)),
            "target": "serverless",
            "status": job.status,
            "createdTimeUtc": job.body["systemData"]["createdAt"],
            "startTimeUtc": job.entered.get("Running"),
            "endTimeUtc": next((job.entered[s] for s in TERMINAL_JOB_STATES if s in job.entered), None),
            "error": {"error": job.error} if job.status == "Failed" and job.error else None,
            "warnings": [],
            "tags": job.properties.get("tags") or {},
            "properties": job.properties.get("properties") or {},
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": None,
            "logFiles": log_files(job),
            "jobCost": None,
            "revision": job.reads,
            "runTypeV2": {
                "orchestrator": None,
                "traits": [],
                "attribution": None,
                "computeType": "serverless",
            },
            "settings": {},
            "services": {},
        }
        return body

    def run_details(r: Request) -> Response:
        return Response(200, run_details_body(state.touch_job(need_job(r))))

    def run_get(r: Request) -> Response:
        job = state.touch_job(need_job(r))
        d = run_details_body(job)
        keep = ("runId", "runUuid", "parentRunUuid", "rootRunUuid", "target", "status", "createdTimeUtc",
                "startTimeUtc", "endTimeUtc", "error", "warnings", "tags", "properties")  # fmt: skip
        return Response(200, {k: d[k] for k in keep} | {"experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, "exp")),
                                                      "displayName": job.properties.get("displayName")})  # fmt: skip

    hist = "/history/v1.0" + WS
    t.add("run_history.details", "GET", REGION, hist + "/runs/{run}/details", run_details)
    t.add("run_history.get", "GET", REGION, hist + "/runs/{run}", run_get)
    t.add(
        "run_history.details_by_experiment",
        "GET",
        REGION,
        hist + "/experiments/{exp}/runs/{run}/details",
        run_details,
    )
    t.add("run_history.children", "GET", REGION, hist + "/runs/{run}/children",
          lambda r: Response(200, {"value": [], "continuationToken": None}))  # fmt: skip

    # --- MLflow REST: metrics (train_loss, eval_loss) ------------------------------------------

    def mlflow_runs(job: Job) -> list[dict[str, Any]]:
        metrics = state.job_metrics(job) if job.status in ("Running", *TERMINAL_JOB_STATES) else {}
        if job.status not in ("Completed",) and job.status != "Running":
            metrics = {k: v for k, v in metrics.items()} if job.status in TERMINAL_JOB_STATES else {}
        start = _epoch_ms(job.entered.get("Running")) or _epoch_ms(job.body["systemData"]["createdAt"]) or 0
        status = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}.get(
            job.status, "RUNNING"
        )
        exp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, job.ws.key + str(job.properties.get("experimentName"))))

        def run(run_id: str, tags: dict[str, str]) -> dict[str, Any]:
            latest = [{"key": k, "value": v[-1], "timestamp": start + 1000 * len(v), "step": len(v) - 1}
                      for k, v in metrics.items() if v]  # fmt: skip
            return {
                "info": {"run_id": run_id, "run_uuid": run_id, "run_name": run_id, "experiment_id": exp_id,
                         "status": status, "start_time": start, "end_time": None if status == "RUNNING" else start + 60000,
                         "artifact_uri": f"azureml://experiments/{job.properties.get('experimentName')}/runs/{run_id}/artifacts",
                         "lifecycle_stage": "active", "user_id": state.user_oid},
                "data": {"metrics": latest, "params": [],
                         "tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }  # fmt: skip

        return [
            run(job.name, {"mlflow.runName": job.name}),
            run(f"{job.name}_train", {"mlflow.rootRunId": job.name, "mlflow.parentRunId": job.name,
                                      "mlflow.runName": "train"}),
        ]  # fmt: skip

    def find_run(r: Request, run_id: str) -> tuple[Job, dict[str, Any]]:
        ws = need_ws(state, r.params)
        root = run_id[: -len("_train")] if run_id.endswith("_train") else run_id
        job = state.jobs.get((ws.key, root.lower()))
        if job is None:
            raise HttpError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
        return job, next(
            x for x in mlflow_runs(job) if x["info"]["run_id"] == run_id
        ) if run_id != root else mlflow_runs(job)[0]

    def mlflow_error(status: int, code: str, message: str) -> Response:
        return Response(status, {"error_code": code, "message": message})

    def runs_get(r: Request) -> Response:
        try:
            _, run = find_run(r, r.query.get("run_id") or r.query.get("run_uuid") or "")
        except HttpError as e:
            return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", e.message)
        return Response(200, {"run": run})

    def runs_search(r: Request) -> Response:
        ws = need_ws(state, r.params)
        flt = str(r.json().get("filter") or "")
        runs: list[dict[str, Any]] = []
        for (wk, _), job in state.jobs.items():
            if wk == ws.key:
                runs.extend(mlflow_runs(job))
        if "rootRunId" in flt or "parentRunId" in flt:
            target = flt.split("=")[-1].strip().strip("'\"")
            runs = [x for x in runs if any(tg["key"] in ("mlflow.rootRunId", "mlflow.parentRunId") and tg["value"] == target
                                           for tg in x["data"]["tags"])]  # fmt: skip
        return Response(200, {"runs": runs})

    def metric_history(r: Request) -> Response:
        run_id = r.query.get("run_id") or r.query.get("run_uuid") or ""
        key = r.query.get("metric_key", "")
        try:
            job, _ = find_run(r, run_id)
        except HttpError as e:
            return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST", e.message)
        values = (
            state.job_metrics(job).get(key, []) if job.status in ("Running", *TERMINAL_JOB_STATES) else []
        )
        start = _epoch_ms(job.entered.get("Running")) or 0
        return Response(200, {"metrics": [{"key": key, "value": v, "timestamp": start + 1000 * (i + 1), "step": i}
                                          for i, v in enumerate(values)]})  # fmt: skip

    def experiment_by_name(r: Request) -> Response:
        ws = need_ws(state, r.params)
        name = r.query.get("experiment_name", "Default")
        exp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, ws.key + name))
        return Response(200, {"experiment": {"experiment_id": exp_id, "name": name, "lifecycle_stage": "active",
                                             "artifact_location": f"azureml://experiments/{name}"}})  # fmt: skip

    t.add("mlflow.runs.get", "GET", REGION, MLFLOW + "/runs/get", runs_get)
    t.add("mlflow.runs.search", "POST", REGION, MLFLOW + "/runs/search", runs_search)
    t.add("mlflow.metrics.get_history", "GET", REGION, MLFLOW + "/metrics/get-history", metric_history)
    t.add(
        "mlflow.experiments.get_by_name",
        "GET",
        REGION,
        MLFLOW + "/experiments/get-by-name",
        experiment_by_name,
    )

    # --- registry -------------------------------------------------------------------------------

    def registry_discovery(r: Request) -> Response:
        reg = r.params["reg"]
        if not any(k[0] == reg.lower() for k in state.registry):
            raise HttpError(404, "UserError", f"Registry {reg} not found.")
        region = "eastus2" if reg.lower() == "azureml" else REGISTRY_REGION
        return Response(200, {
            "registryName": reg, "primaryRegion": region, "regions": [region],
            "primaryRegionResourceProviderUri": f"https://cert-{region}.experiments.azureml.net/",
            "subscriptionId": REGISTRY_SUBSCRIPTION, "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "registryId": str(uuid.uuid5(uuid.NAMESPACE_URL, reg)),
        })  # fmt: skip

    t.add(
        "registry.discovery",
        "GET",
        REGION,
        "/registrymanagement/v1.0/registries/{reg}/discovery",
        registry_discovery,
    )

    regbase = ("/mferp/managementfrontend/subscriptions/{sub}/resourceGroups/{rg}/providers/"
               "Microsoft.MachineLearningServices/registries/{reg}/models")  # fmt: skip

    def reg_versions(r: Request) -> dict[str, Any]:
        versions = state.registry.get((r.params["reg"].lower(), r.params["name"].lower()))
        if versions is None:
            raise HttpError(404, "UserError", f"Model container {r.params['name']} not found in registry {r.params['reg']}.",
                            details=[{"code": "NotFound", "message": "Not found"}])  # fmt: skip
        return versions

    def reg_version_get(r: Request) -> Response:
        mv = reg_versions(r).get(r.params["version"])
        if mv is None:
            raise HttpError(404, "UserError", f"Model {r.params['name']}:{r.params['version']} not found.")
        return Response(200, mv.body())

    def reg_versions_list(r: Request) -> Response:
        versions = state.registry.get((r.params["reg"].lower(), r.params["name"].lower()), {})
        bodies = list_view([(mv.body(), mv.archived) for mv in versions.values()], r.query)
        return Response(200, {"value": order_and_top(bodies, r.query), "nextLink": None})

    def reg_container(r: Request) -> Response:
        versions = reg_versions(r)
        latest = max(versions.values(), key=lambda v: v.created)
        return Response(200, {
            "id": latest.body()["id"].rsplit("/versions/", 1)[0], "name": latest.name,
            "type": "Microsoft.MachineLearningServices/registries/models",
            "properties": {"description": latest.description, "tags": {}, "properties": {},
                           "isArchived": all(v.archived for v in versions.values()),
                           "latestVersion": latest.version, "nextVersion": None},
        })  # fmt: skip

    def reg_list(r: Request) -> Response:
        out = []
        for (reg, _), versions in state.registry.items():
            if reg == r.params["reg"].lower():
                latest = max(versions.values(), key=lambda v: v.created)
                out.append({"id": latest.body()["id"].rsplit("/versions/", 1)[0], "name": latest.name,
                            "properties": {"latestVersion": latest.version,
                                           "isArchived": all(v.archived for v in versions.values())}})  # fmt: skip
        return Response(200, {"value": out, "nextLink": None})

    t.add("registry.models.list", "GET", REGISTRY_HOST, regbase, reg_list)
    t.add("registry.models.get", "GET", REGISTRY_HOST, regbase + "/{name}", reg_container)
    t.add(
        "registry.models.versions.list", "GET", REGISTRY_HOST, regbase + "/{name}/versions", reg_versions_list
    )
    t.add(
        "registry.models.versions.get",
        "GET",
        REGISTRY_HOST,
        regbase + "/{name}/versions/{version}",
        reg_version_get,
    )

    # --- serverless inference --------------------------------------------------------------------

    def chat(r: Request) -> Response:
        ep = next((e for e in state.endpoints.values() if e.name.lower() == r.params["ep"].lower()
                   and e.location.lower() == r.params["region"].lower()), None)  # fmt: skip
        if ep is None or ep.provisioning_state != "Succeeded":
            return Response(
                404, {"error": {"code": "NotFound", "message": "Endpoint not found.", "status": 404}}
            )
        auth = r.headers.get("authorization", "")
        key = r.headers.get("api-key") or (auth[7:] if auth.lower().startswith("bearer ") else auth)
        if key.strip() not in (ep.primary_key, ep.secondary_key):
            return Response(401, {"error": {"code": "Unauthorized", "status": 401, "message": "Access denied due to "
                                            "invalid subscription key or wrong API endpoint. Make sure to provide a "
                                            "valid key for an active subscription and use a correct regional API "
                                            "endpoint for your resource."}})  # fmt: skip
        body = r.json()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return Response(400, {"error": {"code": "Bad Request", "status": 400,
                                            "message": "'messages' is a required property and must be non-empty."}})  # fmt: skip
        last = str(messages[-1].get("content", ""))
        # Knob: a reply per endpoint (text, or a function of the last message), so a fine-tuned and a
        # base-model endpoint answer differently and deterministically; then the one reply for all.
        per_endpoint = state.inference_replies.get(ep.name.lower())
        if callable(per_endpoint):
            per_endpoint = per_endpoint(last)
        reply = per_endpoint or state.inference_reply or f"(fake {ep.name}) You said: {last[:200]}"
        words = sum(len(str(m.get("content", "")).split()) for m in messages) + 3 * len(messages)
        max_tokens = body.get("max_tokens")
        out_words = reply.split()
        finish = "stop"
        if isinstance(max_tokens, int) and len(out_words) > max_tokens:
            reply, finish = " ".join(out_words[:max_tokens]), "length"
        completion = len(reply.split())
        model = ep.model_id.rstrip("/").split("/models/")[-1].split("/")[0]
        # Knob (default off, like the service as far as we know): answer `logprobs: true` with per-token
        # log-probabilities, so eval's perplexity path can be exercised end to end.
        logprobs = None
        if body.get("logprobs") and getattr(state, "inference_logprobs", False):
            logprobs = {"content": [{"token": w, "logprob": -0.25, "bytes": None, "top_logprobs": []}
                                    for w in reply.split()]}  # fmt: skip
        return Response(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "tool_calls": None},
                         "finish_reason": finish, "logprobs": logprobs}],
            "usage": {"prompt_tokens": words, "completion_tokens": completion, "total_tokens": words + completion},
        })  # fmt: skip

    t.add("inference.chat_completions", "POST", INFERENCE, "/v1/chat/completions", chat, auth=False)
    t.add("inference.chat_completions_unversioned", "POST", INFERENCE, "/chat/completions", chat, auth=False)

    # --- fake Entra ID -----------------------------------------------------------------------------

    def aad_error(status: int, error: str, code: int, text: str) -> Response:
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        return Response(status, {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}",
            "error_codes": [code], "timestamp": ts, "trace_id": trace, "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        })  # fmt: skip

    def known_tenant(tenant: str) -> bool:
        return tenant.lower() in (
            state.tenant_id.lower(),
            "organizations",
            "common",
            "phi3ft.onmicrosoft.com",
        )

    def openid(r: Request) -> Response:
        tenant = r.params["tenant"]
        if not known_tenant(tenant):
            return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                             "have the correct tenant ID and are signing into the correct cloud.")  # fmt: skip
        base = f"https://{LOGIN}/{state.tenant_id}"
        return Response(200, {
            "token_endpoint": f"https://{LOGIN}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"https://{LOGIN}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"https://{LOGIN}/{tenant}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"https://{LOGIN}/{tenant}/oauth2/v2.0/logout",
            "issuer": f"{base}/v2.0", "jwks_uri": f"https://{LOGIN}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "NA", "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
        })  # fmt: skip

    def token(r: Request) -> Response:
        tenant = r.params["tenant"]
        if not known_tenant(tenant):
            return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(r.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type "
                             f"'{form.get('grant_type')}'.")  # fmt: skip
        client_id = form.get("client_id", "")
        sp = state.service_principals.get(client_id)
        if sp is None:
            return aad_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not "
                             f"found in the directory '{tenant}'. This can happen if the application has not been "
                             "installed by the administrator of the tenant or consented to by any user in the "
                             "tenant.")  # fmt: skip
        if form.get("client_secret") != sp["secret"]:
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                             f"sent in the request is the client secret value, not the client secret ID, for a "
                             f"secret added to app '{client_id}'.")  # fmt: skip
        scope = (form.get("scope") or "https://management.azure.com/.default").split()[0]
        access = make_jwt(aud=scope_to_aud(scope), oid=sp["oid"], tid=sp["tenant"], appid=client_id)
        return Response(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                              "access_token": access})  # fmt: skip

    def instance_discovery(r: Request) -> Response:
        return Response(200, {
            "tenant_discovery_endpoint": f"https://{LOGIN}/{{tenant}}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": LOGIN, "preferred_cache": "login.windows.net",
                          "aliases": [LOGIN, "login.windows.net", "login.microsoft.com", "sts.windows.net"]}],
        })  # fmt: skip

    t.add(
        "entra.instance_discovery", "GET", LOGIN, "/common/discovery/instance", instance_discovery, auth=False
    )
    t.add(
        "entra.openid_configuration",
        "GET",
        LOGIN,
        "/{tenant}/v2.0/.well-known/openid-configuration",
        openid,
        auth=False,
    )
    t.add("entra.token", "POST", LOGIN, "/{tenant}/oauth2/v2.0/token", token, auth=False)
