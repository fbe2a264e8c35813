"""Fine-tuned models and serverless endpoints: deploy, keys, invoke, delete (issue: deploy).

Contracts (shared rules in :mod:`phi3ft.targets.base`):

- ``create_endpoint`` sends one PUT and returns at once (no SDK poller: it sleeps 30 s between polls);
  the service polls :meth:`EndpointOps.get_endpoint` on its own schedule. The body is built by hand and
  sent through the *generated* client, because the ``ServerlessEndpoint`` entity silently drops
  ``authMode`` and never sends ``contentSafety`` (azure-ai-ml 1.35).
- ``delete_endpoint`` / ``delete_model`` are idempotent: already gone returns ``False`` / ``"absent"``.
- ``delete_model`` is a *hard* delete through the REST API (the SDK can only archive); it is refused by
  the service (409) while an endpoint still serves the model, which we translate to the seed's
  explanation and the command that fixes it.
- Keys are returned in an :class:`EndpointKeys` whose ``repr`` masks them; nothing here logs or stores them.
- :class:`ChatClient` talks to the inference URL with plain ``requests`` (it honours ``HTTPS_PROXY`` and
  ``REQUESTS_CA_BUNDLE`` from the environment) and retries 429/5xx honouring ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phi3ft.errors import AzureError, NotFoundError, Phi3ftError, PrerequisiteError, UsageError
from phi3ft.evaluation import ChatResult as ChatResult
from phi3ft.targets.azureml.sdk._core import AzureSession, call, quiet_experimental_warnings, translate_errors
from phi3ft.targets.azureml.sdk.rest import rest_for
from phi3ft.targets.base import EndpointInfo

#: Default inference path and the ``Authorization`` forms the CLI can choose.
DEFAULT_CHAT_PATH = "/v1/chat/completions"
AUTH_HEADER_FORMS = ("bearer", "raw", "api-key")
#: ``properties.authMode`` values of the REST model.
AUTH_MODES = ("Key", "AAD", "KeyAndAAD")
#: Terminal ``provisioningState`` values; compared case-insensitively.
ENDPOINT_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
#: azure-ai-ml versions whose private model-version delete we have read (the public ``models.archive`` only soft-deletes).
HARD_DELETE_SDK_PREFIXES = ("1.35.",)

MODEL_IN_USE_MESSAGE = (
    "The model {model} still has a deployment ({endpoints}). A custom model cannot be deleted while it "
    "has an existing deployment: delete the deployment first, then the model."
)


def fine_tuned_model_id(location: str, workspace_guid: str, name: str, version: str) -> str:
    """The serverless model id of a fine-tuned model."""
    return f"azureml://locations/{location}/workspaces/{workspace_guid}/models/{name}/versions/{version}"


def parse_model_id(model_id: str) -> tuple[str, str] | None:
    """``(name, version)`` from an ``azureml://.../models/{name}/versions/{v}`` id, else ``None``."""
    parts = model_id.rstrip("/").split("/")
    try:
        i = parts.index("models")
    except ValueError:
        return None
    if len(parts) >= i + 4 and parts[i + 2] == "versions":
        return parts[i + 1], parts[i + 3]
    if len(parts) >= i + 2:
        return parts[i + 1], ""
    return None


def endpoint_body(
    *,
    location: str,
    model_id: str,
    content_safety: bool,
    auth_mode: str,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The REST body for ``PUT .../serverlessEndpoints/{name}`` (2024-01-01-preview), with the two
    properties the SDK entity drops."""
    if auth_mode not in AUTH_MODES:
        raise UsageError(
            f"Unknown endpoint auth mode {auth_mode!r}.", f"Use one of: {', '.join(AUTH_MODES)}."
        )
    body: dict[str, Any] = {
        "location": location,
        "sku": {"name": "Consumption"},
        "properties": {
            "modelSettings": {"modelId": model_id},
            "authMode": auth_mode,
            "contentSafety": {"contentSafetyStatus": "Enabled" if content_safety else "Disabled"},
        },
    }
    if tags:
        body["tags"] = dict(tags)
    return body


def endpoint_from_rest(data: Mapping[str, Any]) -> EndpointInfo:
    """An :class:`EndpointInfo` from the raw REST JSON (camelCase keys, states as the service spells them)."""
    props = data.get("properties") or {}
    safety = (props.get("contentSafety") or {}).get("contentSafetyStatus")
    inference = props.get("inferenceEndpoint") or {}
    return EndpointInfo(
        name=str(data.get("name") or ""),
        provisioning_state=str(props.get("provisioningState") or "Unknown"),
        model_id=str((props.get("modelSettings") or {}).get("modelId") or ""),
        scoring_uri=inference.get("uri"),
        location=data.get("location"),
        content_safety=safety,
        auth_mode=props.get("authMode"),
        extra={
            "endpoint_state": props.get("endpointState"),
            "id": data.get("id"),
            "tags": dict(data.get("tags") or {}),
        },
    )


@dataclass(frozen=True)
class EndpointKeys:
    """Endpoint keys; ``repr``/``str`` never show them (logs, tracebacks, ``--json`` by accident)."""

    primary: str = field(repr=False)
    secondary: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from phi3ft.redact import register

        register(self.primary, self.secondary)  # masked in every later message (keys --show excepted)

    def __str__(self) -> str:
        return "EndpointKeys(****)"


# ---- inference ------------------------------------------------------------------------------------------


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` is either seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(response: Any) -> str:
    """The service's message from an error body (OpenAI-style or ARM-style), else the raw text."""
    try:
        data = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return text.splitlines()[0][:300] if text else f"HTTP {response.status_code}"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if data.get("message"):
            return str(data["message"])
    return json.dumps(data)[:300]


class _Dropped(Exception):
    """The connection dropped (or the read timed out) before an answer: the request may be repeated."""

    def __init__(self, error: Phi3ftError) -> None:
        super().__init__(error.message)
        self.error = error


def _repeatable_failures() -> tuple[type[BaseException], ...]:
    import requests

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )


class ChatClient:
    """OpenAI-style chat completions against one serverless endpoint, safe to share between threads.

    Retries 429 and 500/502/503/504 up to ``max_retries`` times, sleeping ``Retry-After`` when the
    service sends it (capped at ``PHI3FT_RETRY_AFTER_MAX``, default 60 s, said on stderr when over 2 s)
    and an exponential backoff (1, 2, 4, ... s, capped at 30 s) otherwise. A dropped connection or a
    read timeout is retried the same way: a chat completion is safe to repeat (it reads the model; a
    repeat only costs tokens). TLS failures are not retried. The key only ever goes into a request header.
    """

    RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        scoring_uri: str,
        key: str,
        *,
        endpoint_name: str = "",
        path: str = DEFAULT_CHAT_PATH,
        auth_header: str = "bearer",
        max_retries: int = 5,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session_factory: Callable[[], Any] | None = None,
    ) -> None:
        if auth_header not in AUTH_HEADER_FORMS:
            raise UsageError(
                f"Unknown auth header form {auth_header!r}.", f"Use one of: {', '.join(AUTH_HEADER_FORMS)}."
            )
        self.endpoint_name = endpoint_name
        self.url = self._join(scoring_uri, path)
        self._key = key
        self.auth_header = auth_header
        self.max_retries = max_retries
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self._session_factory = session_factory
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ChatClient(url={self.url!r}, auth_header={self.auth_header!r})"

    @staticmethod
    def _join(base: str, path: str) -> str:
        base = base.rstrip("/")
        if not path:
            return base
        path = "/" + path.lstrip("/")
        # A scoring URI that already names the route (some services return the full URL) is kept as is.
        return base if base.endswith(path) else base + path

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            if self._session_factory is not None:
                session = self._session_factory()
            else:
                import requests

                session = requests.Session()  # trust_env: HTTPS_PROXY, REQUESTS_CA_BUNDLE are honoured
            self._local.session = session
        return session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_header == "bearer":
            headers["Authorization"] = f"Bearer {self._key}"
        elif self.auth_header == "raw":
            headers["Authorization"] = self._key
        else:
            headers["api-key"] = self._key
        return headers

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        logprobs: bool = False,
    ) -> ChatResult:
        """Send one conversation; return the assistant's answer. Raises a :class:`Phi3ftError` subclass."""
        body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
        if stop:
            body["stop"] = list(stop)
        if logprobs:
            body["logprobs"] = True
        payload = json.dumps(body)
        retries = 0
        start = self.clock()
        while True:
            try:
                response = self._post(payload)
            except _Dropped as dropped:
                if retries >= self.max_retries:
                    raise dropped.error from None
                self.sleep(min(30.0, 2.0**retries))
                retries += 1
                continue
            status = response.status_code
            if status in self.RETRY_STATUSES and retries < self.max_retries:
                wait = _retry_after_seconds(response.headers.get("Retry-After"))
                if wait is None:
                    wait = min(30.0, 2.0**retries)
                else:
                    from phi3ft.polling import cap_retry_after

                    wait = cap_retry_after(wait)
                retries += 1
                self.sleep(wait)
                continue
            if status >= 400:
                raise self._http_error(status, response, retries)
            try:
                data = response.json()
            except ValueError:
                raise AzureError(
                    f"The endpoint {self.endpoint_name or self.url} answered with something that is not JSON.",
                    "Check --path: the chat completions route is usually /v1/chat/completions.",
                ) from None
            result = self._parse(data)
            result.latency_s = self.clock() - start
            result.retries = retries
            return result

    def _post(self, payload: str) -> Any:
        import requests

        try:
            return self._session().post(
                self.url, data=payload.encode("utf-8"), headers=self._headers(), timeout=(15.0, self.timeout)
            )
        except requests.exceptions.SSLError as exc:
            raise AzureError(
                f"TLS verification failed for {self.url}: {exc}",
                "Check REQUESTS_CA_BUNDLE (a corporate proxy needs its CA bundle there).",
            ) from None
        except requests.exceptions.RequestException as exc:
            error = AzureError(
                f"Could not reach the endpoint {self.url}: {type(exc).__name__}",
                "Check the network and proxy settings (HTTPS_PROXY, NO_PROXY), then re-run.",
            )
            if isinstance(exc, _repeatable_failures()):  # SSLError was handled above
                raise _Dropped(error) from None
            raise error from None

    def _http_error(self, status: int, response: Any, retries: int) -> Phi3ftError:
        message = _error_text(response)
        name = self.endpoint_name or self.url
        if status in (401, 403):
            return PrerequisiteError(
                f"The endpoint {name} refused the key (HTTP {status}): {message}",
                "Try another header form with --auth-header (bearer, raw, api-key), or check the endpoint's "
                "auth mode with `phi3ft keys " + (self.endpoint_name or "ENDPOINT") + "`.",
            )
        if status == 404:
            return NotFoundError(
                f"The endpoint {name} has no route {self.url} (HTTP 404): {message}",
                "Wait until `phi3ft deploy` reports the endpoint as ready, or check --path.",
            )
        if status == 429:
            return AzureError(
                f"The endpoint {name} kept throttling requests (HTTP 429 after {retries} retries): {message}",
                "Lower --concurrency, or wait a minute: serverless endpoints allow about 1,000 requests/min.",
            )
        if status >= 500:
            return AzureError(
                f"The endpoint {name} failed (HTTP {status} after {retries} retries): {message}",
                "Re-run in a few minutes; if it persists, check the endpoint in Azure AI Foundry.",
            )
        error = AzureError(f"The endpoint {name} rejected the request (HTTP {status}): {message}")
        error.status_code = status  # type: ignore[attr-defined]
        return error

    @staticmethod
    def _parse(data: Any) -> ChatResult:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            raise AzureError(
                "The endpoint's answer has no choices.", "Check --path and the endpoint's model."
            )
        choice = choices[0] or {}
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        token_logprobs: list[float] | None = None
        lp = choice.get("logprobs")
        if isinstance(lp, dict):
            content = lp.get("content")
            if isinstance(content, list):
                values = [t.get("logprob") for t in content if isinstance(t, dict)]
                token_logprobs = [float(v) for v in values if isinstance(v, (int, float))]
            elif isinstance(lp.get("token_logprobs"), list):  # completions-style shape
                token_logprobs = [float(v) for v in lp["token_logprobs"] if isinstance(v, (int, float))]
        return ChatResult(
            content=str(message.get("content") or ""),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            token_logprobs=token_logprobs,
            model=data.get("model"),
        )


# ---- the mixin ------------------------------------------------------------------------------------------


class EndpointOps:
    """Mixin of :class:`phi3ft.targets.azureml.sdk.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
    sleep: Callable[[float], None]
    clock: Callable[[], float]

    #: Poll interval handed to the SDK's delete poller (it otherwise sleeps 30 s unless Retry-After).
    delete_polling_interval: float = 5.0

    # ---- fine-tuned model ----------------------------------------------------------------------------
    def _project_location_and_guid(self) -> tuple[str, str]:
        cached: tuple[str, str] | None = getattr(self, "_project_guid_cache", None)
        if cached:
            return cached
        ml = self.session.ml
        ws = call(f"read project {self.session.workspace}", lambda: ml.workspaces.get(self.session.workspace))
        guid = getattr(ws, "_workspace_id", None)
        if not guid:
            raise AzureError(
                f"Project {self.session.workspace} did not report its workspace id.",
                "Re-run; if it persists, pass the model id with --model-id.",
            )
        value = (str(ws.location), str(guid))
        self._project_guid_cache = value
        return value

    def project_location(self) -> str:
        """The project's region (where its serverless endpoints live)."""
        return self._project_location_and_guid()[0]

    def fine_tuned_model_id(self, name: str, version: str) -> str:
        """``azureml://locations/{loc}/workspaces/{guid}/models/{name}/versions/{v}``."""
        location, guid = self._project_location_and_guid()
        return fine_tuned_model_id(location, guid, name, version)

    def model_exists(self, name: str, version: str) -> bool:
        """Whether the workspace model version exists (archived versions count as existing)."""
        ml = self.session.ml
        s = self.session
        ops = getattr(ml.models, "_model_versions_operation", None)

        def read() -> Any:
            # The generated client returns the raw resource; the entity parser (models.get) crashes on
            # bodies whose optional fields are null (e.g. "flavors": null) and we need no entity here.
            if ops is not None and callable(getattr(ops, "get", None)):
                return ops.get(s.resource_group, s.workspace, name, version)
            return ml.models.get(name, version=version)

        try:
            call(f"read model {name}:{version}", read)
        except NotFoundError:
            return False
        return True

    # ---- endpoints -----------------------------------------------------------------------------------
    def _endpoints_client(self) -> Any:
        return self.session.ml.serverless_endpoints._service_client

    def create_endpoint(
        self,
        name: str,
        *,
        model_id: str,
        content_safety: bool = True,
        auth_mode: str = "Key",
        tags: Mapping[str, str] | None = None,
        location: str | None = None,
    ) -> EndpointInfo:
        """PUT the endpoint with ``contentSafety`` and ``authMode`` in the body; return without waiting.

        A PUT on an existing name updates it (ARM semantics); the deploy service checks first.
        """
        if location is None:
            location = self._project_location_and_guid()[0]
        body = endpoint_body(
            location=location,
            model_id=model_id,
            content_safety=content_safety,
            auth_mode=auth_mode,
            tags=tags,
        )
        client = self._endpoints_client()
        s = self.session
        try:
            with translate_errors(f"create serverless endpoint {name}"):
                poller = client.begin_create_or_update(
                    s.resource_group,
                    s.workspace,
                    name,
                    body,
                    polling=False,  # we poll get_endpoint on our own schedule (the SDK sleeps 30 s)
                    cls=lambda pipeline_response, deserialized, headers: deserialized,
                )
                try:
                    data = poller.result().as_dict()
                except (ValueError, AttributeError):  # an empty 201 body: the PUT was still accepted
                    data = {}
        except AzureError as exc:
            lowered = exc.message.lower()
            if "not available" in lowered or "already exists" in lowered:
                raise PrerequisiteError(
                    f"The serverless endpoint name {name} is not available: {exc.message}",
                    "Endpoint names are unique per region; choose another with --endpoint-name.",
                ) from None
            if "deployment/write" in lowered or "msi" in lowered:
                raise PrerequisiteError(
                    exc.message,
                    "The hub's managed identity needs permission to deploy: grant it 'Azure AI Developer' on the "
                    "resource group, then re-run `phi3ft deploy`.",
                ) from None
            raise
        if not isinstance(data, dict) or "properties" not in data:
            data = {"name": name, "location": location, "properties": {"provisioningState": "Creating"}}
        data.setdefault("name", name)
        info = endpoint_from_rest(data)
        if not info.model_id:
            info.model_id = model_id
        return info

    def get_endpoint(self, name: str) -> EndpointInfo | None:
        """The endpoint as the service reports it now, or ``None`` when it does not exist (one GET,
        through ``rest.py``: no azure-ai-ml import)."""
        rest = rest_for(self.session)
        try:
            data = call(f"read serverless endpoint {name}", lambda: rest.get_endpoint(name))
        except NotFoundError:
            return None
        return endpoint_from_rest(data)

    def list_endpoints(self) -> list[EndpointInfo]:
        """Every serverless endpoint of the project (any model, any creator)."""
        rest = rest_for(self.session)
        items = call("list serverless endpoints", rest.list_endpoints)
        return [endpoint_from_rest(item) for item in items]

    def get_endpoint_keys(self, name: str) -> EndpointKeys:
        """``POST .../listKeys`` (through ``rest.py``). Never log the result."""
        rest = rest_for(self.session)
        data = call(f"read the keys of serverless endpoint {name}", lambda: rest.list_endpoint_keys(name))
        primary = (data or {}).get("primaryKey") or (data or {}).get("keys", {}).get("primaryKey")
        if not primary:
            raise PrerequisiteError(
                f"Serverless endpoint {name} returned no key (is its auth mode AAD only?).",
                "Redeploy with key auth (deploy.auth_mode: Key) or call it with an Entra ID token.",
            )
        return EndpointKeys(primary=str(primary), secondary=(data or {}).get("secondaryKey"))

    def delete_endpoint(self, name: str) -> bool:
        """DELETE (202/204, then the SDK polls ``Location``). ``False`` when it was already gone.

        ARM answers 204 both for "deleted at once" and "was not there", so one GET first tells them apart
        and lets ``delete`` print exactly what it deleted.
        """
        ml = self.session.ml
        if self.get_endpoint(name) is None:
            return False
        try:
            with translate_errors(f"delete serverless endpoint {name}"):
                with quiet_experimental_warnings():
                    poller = ml.serverless_endpoints.begin_delete(
                        name, polling_interval=self.delete_polling_interval
                    )
                poller.result()
        except NotFoundError:
            return False
        return True

    def chat_client(
        self,
        endpoint_name: str,
        *,
        path: str = DEFAULT_CHAT_PATH,
        auth_header: str = "bearer",
        max_retries: int = 5,
        scoring_uri: str | None = None,
    ) -> ChatClient:
        """A client for the endpoint's inference URL, with its key fetched now (never stored).

        ``scoring_uri`` (the ledger's record of the endpoint) saves the endpoint GET: the key is then the
        only request (``listKeys``), and an endpoint that is gone gives the same error as without it.
        """
        if scoring_uri is None:
            info = self.get_endpoint(endpoint_name)
            if info is None:
                raise self._no_endpoint(endpoint_name)
            if not info.scoring_uri:
                raise PrerequisiteError(
                    f"Serverless endpoint {endpoint_name} has no inference URL yet (state {info.provisioning_state}).",
                    f"Wait for it: `phi3ft deploy --endpoint-name {endpoint_name}` re-attaches and waits.",
                )
            scoring_uri = info.scoring_uri
        try:
            keys = self.get_endpoint_keys(endpoint_name)
        except NotFoundError:
            raise self._no_endpoint(endpoint_name) from None
        return ChatClient(
            scoring_uri,
            keys.primary,
            endpoint_name=endpoint_name,
            path=path,
            auth_header=auth_header,
            max_retries=max_retries,
            sleep=self.sleep,
            clock=self.clock,
        )

    def _no_endpoint(self, endpoint_name: str) -> NotFoundError:
        return NotFoundError(
            f"Serverless endpoint {endpoint_name} does not exist in project {self.session.workspace}.",
            "Deploy it with `phi3ft deploy`, or list what the ledger knows with `phi3ft status`.",
        )

    # ---- model delete --------------------------------------------------------------------------------
    def delete_model(self, name: str, version: str) -> str:
        """Hard-delete a workspace model version: ``"deleted"``, ``"archived"`` (fallback) or ``"absent"``.

        The SDK has no public hard delete (``models.archive`` only flags it, and the name+version can never
        be registered again). We call the generated client the SDK itself holds, on SDK versions whose
        signature we have read; on any other version we archive instead, and say so.
        """
        from azure.core.exceptions import HttpResponseError

        ml = self.session.ml
        s = self.session
        ops: Any = getattr(ml.models, "_model_versions_operation", None)
        if ops is None or not _hard_delete_supported(ops):
            try:
                call(f"archive model {name}:{version}", lambda: ml.models.archive(name, version=version))
            except NotFoundError:
                return "absent"
            return "archived"
        try:
            with translate_errors(f"delete model {name}:{version}"):
                try:
                    status = ops.delete(
                        resource_group_name=s.resource_group,
                        workspace_name=s.workspace,
                        name=name,
                        version=version,
                        cls=lambda pipeline_response, deserialized, headers: (
                            pipeline_response.http_response.status_code
                        ),
                    )
                except HttpResponseError as exc:
                    if getattr(exc, "status_code", None) != 409:
                        raise
                    users = [
                        e.name for e in self.list_endpoints() if parse_model_id(e.model_id) == (name, version)
                    ]
                    raise PrerequisiteError(
                        MODEL_IN_USE_MESSAGE.format(
                            model=f"{name}:{version}", endpoints=", ".join(users) or "see Azure AI Foundry"
                        ),
                        "Delete the endpoint first: `phi3ft delete --endpoint "
                        + (users[0] if users else "ENDPOINT")
                        + "`, then re-run.",
                    ) from None
        except NotFoundError:
            return "absent"
        return "absent" if status == 204 else "deleted"  # ARM: 204 = there was nothing to delete


def _hard_delete_supported(ops: Any) -> bool:
    """The version guard: the private operation must exist and the SDK be one we have read."""
    if ops is None or not callable(getattr(ops, "delete", None)):
        return False
    try:
        from azure.ai.ml import __version__ as sdk_version
    except ImportError:  # pragma: no cover
        return False
    return str(sdk_version).startswith(HARD_DELETE_SDK_PREFIXES)
