"""The read-only Azure ML calls without azure-ai-ml: one azure-core pipeline, the wire shapes the SDK sends.

``import azure.ai.ml`` alone costs 1.2-2 s and ~100 MB (every one of its REST client modules goes through
the package ``__init__``), while ``status``, ``list``, ``logs``, ``keys``, ``invoke``, ``chat``, ``eval``,
``metrics`` and the re-attach check of ``submit`` need one or two GETs/POSTs each. They go through
:class:`AmlRest`: azure-core's pipeline (``RetryPolicy`` with the adapter's retry settings, so 429/5xx honour
``Retry-After``; ``BearerTokenCredentialPolicy`` with the session's one credential; the requests transport,
so ``HTTPS_PROXY`` and ``REQUESTS_CA_BUNDLE`` apply as for the SDK). Error answers become the same azure-core
exceptions the generated clients raise (401 ``ClientAuthenticationError``, 404 ``ResourceNotFoundError``,
409 ``ResourceExistsError``, else ``HttpResponseError`` with the ARM error envelope parsed), so
``_core.translate_errors`` gives the same messages and exit codes.

Wire (what azure-ai-ml 1.35 sends for the same reads):

| call | request | api-version |
|---|---|---|
| job | ``GET {WS}/jobs/{name}`` | 2024-10-01-preview |
| jobs | ``GET {WS}/jobs?jobType=FineTuning`` (+ ``nextLink`` pages) | 2024-10-01-preview |
| workspace | ``GET {WS}`` (``properties.discoveryUrl``) | 2024-10-01-preview |
| region API host | ``GET {discoveryUrl}`` (no auth), key ``api`` | - |
| run details | ``GET {api}/history/v1.0{WS}/runs/{name}/details`` | - |
| endpoint / endpoints / keys | ``GET {WS}/serverlessEndpoints[/{name}]``, ``POST .../{name}/listKeys`` | 2024-01-01-preview |
| hub / project | ``GET /subscriptions/{s}/resourceGroups/{rg}/providers/.../workspaces/{name}`` | 2024-10-01-preview |
| data asset | ``GET {WS}/data/{name}/versions/{version}`` | 2023-04-01-preview |
| registry model | ``GET {eastus}/registrymanagement/v1.0/registries/{reg}/discovery``, then on the host it names ``.../registries/{reg}/models/{name}/versions`` (``$orderBy=createdtime desc&$top=1``) and ``.../versions/{v}`` | 2021-10-01-dataplanepreview |

Creating anything (hub, project, data upload, job, endpoint) and deleting stays with azure-ai-ml.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ARM_HOST = "https://management.azure.com"
JOBS_API_VERSION = "2024-10-01-preview"
WORKSPACE_API_VERSION = "2024-10-01-preview"
ENDPOINTS_API_VERSION = "2024-01-01-preview"
DATA_API_VERSION = "2023-04-01-preview"
#: The registry discovery host of the public cloud (azure-ai-ml's ``registry_discovery_endpoint``).
REGISTRY_DISCOVERY_HOST = "https://eastus.api.azureml.ms"
REGISTRY_API_VERSION = "2021-10-01-dataplanepreview"

#: Counters for tests and the benchmark: pipelines built and requests sent by this process.
STATS = {"pipelines": 0, "requests": 0}


def _raise_for_status(response: Any) -> None:
    """The azure-core exception the generated ARM clients raise for this error answer."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        map_error,
    )
    from azure.mgmt.core.exceptions import ARMErrorFormat

    error_map = {401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError}
    map_error(status_code=response.status_code, response=response, error_map=error_map)
    raise HttpResponseError(response=response, error_format=ARMErrorFormat)


class AmlRest:
    """GETs/POSTs against ARM and the workspace's region hosts for one project (one credential)."""

    def __init__(
        self,
        credential: Any,
        subscription_id: str,
        resource_group: str,
        workspace: str | None,
        *,
        arm_host: str = ARM_HOST,
    ) -> None:
        self.credential = credential
        self.arm_host = arm_host.rstrip("/")
        self.rg_path = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        self.ws_path = (
            f"{self.rg_path}/providers/Microsoft.MachineLearningServices/workspaces/{workspace or ''}"
        )
        self._registries: dict[str, str] = {}
        self._registry_answers: dict[tuple[str, ...], Any] = {}
        self._known_workspaces: dict[str, dict[str, Any]] = {}
        self._clients: dict[bool, Any] = {}
        self._api_url: str | None = None
        self._workspace: dict[str, Any] | None = None

    # ---- plumbing --------------------------------------------------------------------------------------
    def _client(self, auth: bool) -> Any:
        client = self._clients.get(auth)
        if client is None:
            from azure.core import PipelineClient
            from azure.core.pipeline import policies

            from phi3ft.targets.azureml.sdk._core import ARM_SCOPE, retry_policy

            chain: list[Any] = [
                policies.HeadersPolicy(),
                policies.UserAgentPolicy(sdk_moniker="phi3ft"),
                retry_policy(),  # listKeys/listSecrets retried on dropped connections, Retry-After capped
            ]
            if auth:
                chain.append(policies.BearerTokenCredentialPolicy(self.credential, ARM_SCOPE))
            chain += [
                policies.ContentDecodePolicy(),
                policies.HttpLoggingPolicy(),
                policies.NetworkTraceLoggingPolicy(),
            ]
            client = PipelineClient(base_url=self.arm_host, policies=chain)
            self._clients[auth] = client
            STATS["pipelines"] += 1
        return client

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        auth: bool = True,
    ) -> Any:
        """One request; the parsed JSON answer (``None`` for an empty body). Raises azure-core errors."""
        from azure.core.rest import HttpRequest

        if url.startswith("/"):
            url = self.arm_host + url
        kwargs: dict[str, Any] = {"params": params} if params else {}
        if json is not None:
            kwargs["json"] = json
        request = HttpRequest(method, url, headers={"Accept": "application/json"}, **kwargs)
        STATS["requests"] += 1
        response = self._client(auth).send_request(request)
        if response.status_code >= 400:
            response.read()
            _raise_for_status(response)
        response.read()
        return response.json() if response.content else None

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of an ARM list, following ``nextLink`` (which carries its own query)."""
        page = self.send("GET", path, params=params) or {}
        while True:
            yield from page.get("value") or []
            link = page.get("nextLink")
            if not link:
                return
            page = self.send("GET", link) or {}

    # ---- jobs ------------------------------------------------------------------------------------------
    def get_job(self, name: str) -> dict[str, Any]:
        return dict(self.send("GET", f"{self.ws_path}/jobs/{name}", params={"api-version": JOBS_API_VERSION}))

    def list_jobs(self, *, job_type: str = "FineTuning") -> Iterator[dict[str, Any]]:
        return self._pages(f"{self.ws_path}/jobs", {"api-version": JOBS_API_VERSION, "jobType": job_type})

    # ---- workspace discovery and run history -----------------------------------------------------------
    def workspace(self) -> dict[str, Any]:
        if self._workspace is None:
            self._workspace = dict(
                self.send("GET", self.ws_path, params={"api-version": WORKSPACE_API_VERSION}) or {}
            )
        return self._workspace

    def api_url(self) -> str:
        """The region's API host (``https://{region}.api.azureml.ms``), from the workspace's discovery URL.

        A discovery answer that is not the expected JSON raises ``ValueError``/``KeyError``, as the SDK's
        discovery step does (``jobs.run_history_call`` turns those into a clear error)."""
        if self._api_url is None:
            props = self.workspace().get("properties") or {}
            discovery = props.get("discoveryUrl")
            if not discovery:
                raise KeyError("discoveryUrl")
            answer = self._discovery(str(discovery))
            if not isinstance(answer, dict):
                raise ValueError("the discovery answer is not a JSON object")
            self._api_url = str(answer["api"]).rstrip("/")
        return self._api_url

    def _discovery(self, url: str) -> Any:
        """The discovery document. Like the SDK's discovery step, an error answer (a proxy's page, a 404)
        is an unreadable answer (``ValueError``), not an ARM error."""
        from azure.core.rest import HttpRequest

        STATS["requests"] += 1
        response = self._client(False).send_request(HttpRequest("GET", url))
        response.read()
        if response.status_code >= 400:
            text = (response.text() or "").strip()
            raise ValueError(
                f"HTTP {response.status_code}" + (f": {text.splitlines()[0][:200]}" if text else "")
            )
        return response.json()

    def run_details(self, name: str) -> dict[str, Any]:
        url = f"{self.api_url()}/history/v1.0{self.ws_path}/runs/{name}/details"
        return dict(self.send("GET", url) or {})

    # ---- hub / project / data (the reads of submit's re-attach path) -------------------------------------
    def get_workspace_by_name(self, name: str) -> dict[str, Any]:
        """The hub or project resource; an existing one is remembered for this client (``check`` and
        ``submit`` both read it), a missing one is asked again, ``forget_workspace`` drops it."""
        key = name.lower()
        found = self._known_workspaces.get(key)
        if found is None:
            path = f"{self.rg_path}/providers/Microsoft.MachineLearningServices/workspaces/{name}"
            found = dict(self.send("GET", path, params={"api-version": WORKSPACE_API_VERSION}) or {})
            self._known_workspaces[key] = found
        return dict(found)

    def forget_workspace(self, name: str) -> None:
        self._known_workspaces.pop(name.lower(), None)

    def get_data_version(self, name: str, version: str) -> dict[str, Any]:
        path = f"{self.ws_path}/data/{name}/versions/{version}"
        return dict(self.send("GET", path, params={"api-version": DATA_API_VERSION}) or {})

    # ---- the azureml model registry --------------------------------------------------------------------
    def _registry_models(self, registry: str) -> str:
        """``{host}/mferp/.../registries/{registry}/models`` from registry discovery (once per registry)."""
        base = self._registries.get(registry)
        if base is None:
            url = f"{REGISTRY_DISCOVERY_HOST}/registrymanagement/v1.0/registries/{registry}/discovery"
            found = self.send("GET", url, params={"api-version": "v1.0"}) or {}
            host = str(found["primaryRegionResourceProviderUri"]).rstrip("/")
            base = (
                f"{host}/mferp/managementfrontend/subscriptions/{found['subscriptionId']}"
                f"/resourceGroups/{found['resourceGroup']}/providers/Microsoft.MachineLearningServices"
                f"/registries/{registry}/models"
            )
            self._registries[registry] = base
        return base

    def latest_registry_version(self, name: str, registry: str = "azureml") -> str | None:
        """The most recently *created* version's name (what ``label="latest"`` resolves), or ``None``.
        Registry answers are remembered for this client (``check`` and ``submit`` both resolve the model)."""
        key = ("latest", registry, name.lower())
        if key not in self._registry_answers:
            url = f"{self._registry_models(registry)}/{name}/versions"
            params = {"api-version": REGISTRY_API_VERSION, "$orderBy": "createdtime desc", "$top": "1"}
            items = (self.send("GET", url, params=params) or {}).get("value") or []
            self._registry_answers[key] = str(items[0]["name"]) if items else None
        answer = self._registry_answers[key]
        return str(answer) if answer is not None else None

    def get_registry_version(self, name: str, version: str, registry: str = "azureml") -> dict[str, Any]:
        key = ("version", registry, name.lower(), version)
        if key not in self._registry_answers:
            url = f"{self._registry_models(registry)}/{name}/versions/{version}"
            self._registry_answers[key] = dict(
                self.send("GET", url, params={"api-version": REGISTRY_API_VERSION}) or {}
            )
        return dict(self._registry_answers[key])

    # ---- serverless endpoints --------------------------------------------------------------------------
    def _endpoint_path(self, name: str = "") -> str:
        return f"{self.ws_path}/serverlessEndpoints" + (f"/{name}" if name else "")

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return dict(
            self.send("GET", self._endpoint_path(name), params={"api-version": ENDPOINTS_API_VERSION}) or {}
        )

    def list_endpoints(self) -> list[dict[str, Any]]:
        return list(self._pages(self._endpoint_path(), {"api-version": ENDPOINTS_API_VERSION}))

    def list_endpoint_keys(self, name: str) -> dict[str, Any]:
        answer = self.send(
            "POST", self._endpoint_path(name) + "/listKeys", params={"api-version": ENDPOINTS_API_VERSION}
        )
        return dict(answer or {})


def rest_for(session: Any, *, project: bool = True) -> AmlRest:
    """The session's light client (one per session, built on first use); ``project=False`` for the calls
    that need no project (hub/project reads, the registry)."""
    if project and not session.workspace:
        from phi3ft.errors import PrerequisiteError

        raise PrerequisiteError("No project configured.", "Set azure.project.name in job.yaml.")
    found = session.__dict__.get("_aml_rest")
    if found is None:
        found = AmlRest(
            session.credential, session.subscription_id, session.resource_group, session.workspace
        )
        session.__dict__["_aml_rest"] = found
    return found
