"""Shared plumbing of the Azure ML adapter: credentials, SDK clients, error translation.

Every ``azure.*`` import is inside a function so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, TypeVar

from phi3ft.errors import AzureError, NotFoundError, Phi3ftError, PrerequisiteError
from phi3ft.targets.base import Identity

T = TypeVar("T")

ARM_SCOPE = "https://management.azure.com/.default"
AUTH_MODES = ("auto", "cli", "env", "managed-identity", "device-code")

#: azure-core retry settings for every client we build: honours Retry-After (capped, see
#: :class:`Phi3ftRetryPolicy`), backs off otherwise. ``retry_total`` alone has no effect: azure-core's
#: per-kind defaults (``retry_status``/``retry_connect``/``retry_read`` = 3) win, so all are set.
RETRY_ATTEMPTS = 6
RETRY_KWARGS: dict[str, Any] = {
    "retry_total": RETRY_ATTEMPTS,
    "retry_status": RETRY_ATTEMPTS,
    "retry_connect": RETRY_ATTEMPTS,
    "retry_read": RETRY_ATTEMPTS,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 60,
}

#: POSTs that only read (or regenerate nothing) and are safe to repeat after a dropped connection:
#: ``datastores/{name}/listSecrets`` and ``serverlessEndpoints/{name}/listKeys``. Every other POST
#: (``jobs/{name}/cancel``, ``regenerateKeys``, provider ``register``, the Entra token request...) is
#: retried by azure-core only on a 500/503/504 answer, never on a dropped connection.
IDEMPOTENT_POST_SUFFIXES = ("/listsecrets", "/listkeys")


def retry_policy() -> Any:
    """A fresh :class:`Phi3ftRetryPolicy` with :data:`RETRY_KWARGS` (built lazily: azure-core import)."""
    from azure.core.pipeline.policies import RetryPolicy

    class Phi3ftRetryPolicy(RetryPolicy):
        """azure-core's policy, plus: idempotent POSTs retried on dropped connections, and Retry-After
        capped at ``PHI3FT_RETRY_AFTER_MAX`` seconds (default 60) with a stderr line when the wait is long."""

        def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
            import urllib.parse

            method = str(getattr(request, "method", "")).upper()
            path = urllib.parse.urlsplit(str(getattr(request, "url", ""))).path.lower().rstrip("/")
            if method == "POST" and path.endswith(IDEMPOTENT_POST_SUFFIXES):
                return True
            return bool(super()._is_method_retryable(settings, request, response=response))

        def get_retry_after(self, response: Any) -> float | None:
            from phi3ft.polling import cap_retry_after

            value = super().get_retry_after(response)
            return None if value is None else cap_retry_after(float(value))

    return Phi3ftRetryPolicy(**RETRY_KWARGS)


def client_retry_kwargs() -> dict[str, Any]:
    """Keyword arguments for an azure-core based client: the settings and the policy itself."""
    return {**RETRY_KWARGS, "retry_policy": retry_policy()}


def build_credential(auth: str = "auto") -> Any:
    """The production credential chain for ``--auth``.

    ``env`` selects ``EnvironmentCredential`` alone, so a misconfigured CI run fails fast instead of
    probing the managed-identity endpoint.
    """
    from azure import identity

    if auth == "auto":
        return identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)
    if auth == "cli":
        return identity.AzureCliCredential()
    if auth == "env":
        return identity.EnvironmentCredential()
    if auth == "managed-identity":
        return identity.ManagedIdentityCredential()
    if auth == "device-code":
        return identity.DeviceCodeCredential()
    raise PrerequisiteError(f"Unknown auth mode {auth!r}.", f"Use one of: {', '.join(AUTH_MODES)}.")


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT without verifying it (we only read who we are: oid, tid, idtyp)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


def identity_from_claims(claims: dict[str, Any], source: str | None = None) -> Identity:
    idtyp = str(claims.get("idtyp", "")).lower()
    if idtyp == "user" or "upn" in claims or "unique_name" in claims:
        kind = "user"
    elif idtyp == "app" or claims.get("appid") or claims.get("azp"):
        xms_mirid = str(claims.get("xms_mirid", ""))
        kind = "managed_identity" if "managedidentit" in xms_mirid.lower() else "service_principal"
    else:
        kind = "unknown"
    name = claims.get("upn") or claims.get("unique_name") or claims.get("name") or claims.get("appid")
    return Identity(
        kind=kind,
        tenant_id=claims.get("tid"),
        object_id=claims.get("oid"),
        display_name=str(name) if name else None,
        source=source,
    )


def innermost_message(exc: BaseException) -> str:
    """The most specific message in an ARM error envelope (details / additionalInfo nest the reason)."""
    error = getattr(exc, "error", None)
    best = None
    depth_best = -1

    def walk(node: Any, depth: int) -> None:
        nonlocal best, depth_best
        if node is None:
            return
        message = getattr(node, "message", None) if not isinstance(node, dict) else node.get("message")
        if message and depth > depth_best:
            best, depth_best = str(message), depth
        details = getattr(node, "details", None) if not isinstance(node, dict) else node.get("details")
        for child in details or []:
            walk(child, depth + 1)

    walk(error, 0)
    if best:
        return best
    text = str(getattr(exc, "message", None) or exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first


def error_code(exc: BaseException) -> str | None:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code else None


def _response_json(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        text = response.text()
    except Exception:  # a streamed or already-closed body: no codes to read
        return None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def service_error_codes(exc: BaseException) -> list[str]:
    """Every error code in the envelope, outermost first: ``error.code``, then ``details[].code`` and the
    Azure ML service's ``innerError.code`` chain (``UserError`` -> ``ModelNotSupportedByMaaS``). azure-core
    parses only ``innererror`` (lower case), so the raw body is read as well."""
    codes: list[str] = []

    def add(code: Any) -> None:
        if code and str(code) not in codes:
            codes.append(str(code))

    def walk(node: Any, depth: int = 0) -> None:
        if node is None or depth > 8:
            return
        if isinstance(node, dict):
            add(node.get("code"))
            for key in ("details", "innerError", "innererror", "inner_error", "error"):
                walk(node.get(key), depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        else:
            add(getattr(node, "code", None))
            walk(getattr(node, "details", None), depth + 1)
            walk(getattr(node, "innererror", None), depth + 1)

    walk(getattr(exc, "error", None))
    body = _response_json(exc)
    if isinstance(body, dict):
        walk(body.get("error", body))
    return codes


#: Service error codes (any level of the envelope) -> what they mean for the user.
REGION_CODES = frozenset(
    {
        "ModelNotSupportedByMaaS",
        "ModelNotSupportedInRegion",
        "RegionNotSupported",
        "UnsupportedRegion",
        "LocationNotAvailableForResourceType",
        "LocationNotSupported",
        "ServerlessFineTuningNotSupported",
    }
)
QUOTA_CODES = frozenset(
    {
        "QuotaExceeded",
        "InsufficientQuota",
        "ResourceQuotaExceeded",
        "SubscriptionQuotaExceeded",
        "OperationNotAllowedQuotaExceeded",
        "ServerlessQuotaExceeded",
    }
)
AUTHORIZATION_CODES = frozenset(
    {
        "AuthorizationFailed",
        "LinkedAuthorizationFailed",
        "InsufficientPermissions",
        "Forbidden",
        "RoleAssignmentRequired",
        "UserNotAuthorized",
    }
)
CONFLICT_CODES = frozenset({"Conflict", "ResourceExists", "AnotherOperationInProgress", "OperationConflict"})
LOCK_CODES = frozenset({"ScopeLocked"})

REGION_FIX = (
    "Set azure.location in job.yaml to a region that offers it for this model "
    "(`phi3ft check` reads the live list; `phi3ft models` shows the catalog's); the hub and project are "
    "created there."
)
QUOTA_FIX = (
    "Request more quota (Azure AI Foundry portal -> Management center -> Quota, or Azure portal -> "
    "Subscriptions -> Usage + quotas), or use another region; then re-run (phi3ft resumes)."
)
ROLE_FIX = (
    "Ask an Owner of the resource group to grant you the role `phi3ft check` names "
    "(Azure AI Developer; Contributor when phi3ft creates the hub)."
)
CONFLICT_FIX = (
    "Another operation is changing the same resource: wait for it to finish (`phi3ft status` / the portal), "
    "then re-run; phi3ft resumes where it stopped."
)
LOCK_FIX = (
    "A resource lock blocks the change: ask an Owner to remove it (`az lock list --resource-group <rg>`)."
)


def classify_http_error(action: str, exc: BaseException) -> Phi3ftError:
    """The phi3ft error (exit code + fix) for an HTTP error answer of an Azure service."""
    status = getattr(exc, "status_code", None)
    message = innermost_message(exc)
    codes = service_error_codes(exc)
    code_set = set(codes)
    label = (f"HTTP {status}" if status else "error") + (f" {'/'.join(codes)}" if codes else "")
    lower = message.lower()
    if code_set & REGION_CODES or (
        status == 400 and "not supported in" in lower and ("region" in lower or "finetuning" in lower)
    ):
        return PrerequisiteError(f"Azure refused to {action} ({label}): {message}", REGION_FIX)
    if code_set & QUOTA_CODES or (status in (400, 403, 409) and "quota" in lower):
        return PrerequisiteError(f"Not enough quota to {action} ({label}): {message}", QUOTA_FIX)
    if "MissingSubscriptionRegistration" in code_set:
        return PrerequisiteError(
            f"A resource provider is not registered ({action}): {message}",
            "Run `phi3ft check --fix` to register the providers the flow needs.",
        )
    if status == 403 or code_set & AUTHORIZATION_CODES:
        return PrerequisiteError(f"Permission denied while trying to {action}: {message}", ROLE_FIX)
    if code_set & LOCK_CODES:
        return AzureError(f"Azure refused to {action} ({label}): {message}", LOCK_FIX)
    if status == 409 or code_set & CONFLICT_CODES:
        return AzureError(f"Azure refused to {action} ({label}): {message}", CONFLICT_FIX)
    if status == 429:
        return AzureError(
            f"Azure kept throttling requests while trying to {action} (429 after retries): {message}",
            "Wait a few minutes and re-run; phi3ft resumes where it stopped.",
        )
    hint = "Re-run the command; phi3ft resumes where it stopped." if status and status >= 500 else None
    return AzureError(f"Azure refused to {action} ({label}): {message}", hint)


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _classify_http_error(action: str, exc: BaseException) -> Phi3ftError:
    """:func:`classify_http_error`, marking 429/5xx answers ``transient`` (long waits retry those)."""
    err = classify_http_error(action, exc)
    status = getattr(exc, "status_code", None)
    if status in TRANSIENT_STATUSES:
        err.transient = f"Azure returned {status}"  # type: ignore[attr-defined]
    return err


def credential_error(action: str, exc: BaseException, auth: str | None = None) -> Phi3ftError:
    """A failed token request: a network/proxy/DNS/TLS failure (azure-identity wraps those too) gets its
    own error and fix; a refused or unavailable credential gets the fix for the ``--auth`` mode in use."""
    from phi3ft.network import classify_transport_failure, credential_hint

    network = classify_transport_failure(exc, action=action)
    if network is not None:
        return network
    return PrerequisiteError(
        f"Azure authentication failed while trying to {action}: {innermost_message(exc)}",
        credential_hint(auth),
    )


def transport_error(action: str, exc: BaseException) -> Phi3ftError:
    """A request that never got an answer: the kind of failure (proxy, DNS, TLS, connect) and its fix."""
    from phi3ft.errors import NetworkError
    from phi3ft.network import classify_transport_failure

    return classify_transport_failure(exc, action=action) or NetworkError(
        f"Could not reach Azure while trying to {action}: {innermost_message(exc)}",
        "Check the network, proxy (HTTPS_PROXY) and CA settings (REQUESTS_CA_BUNDLE), then re-run.",
    )


@contextlib.contextmanager
def translate_errors(action: str, *, auth: str | None = None) -> Iterator[None]:
    """Map SDK exceptions to phi3ft errors with a hint; ``action`` says what we were doing, ``auth`` the
    ``--auth`` mode (for the credential fix)."""
    from azure.core import exceptions as ace

    try:
        yield
    except Phi3ftError:
        raise
    except ace.ClientAuthenticationError as exc:
        raise credential_error(action, exc, auth) from None
    except ace.ResourceNotFoundError as exc:
        raise NotFoundError(f"Not found while trying to {action}: {innermost_message(exc)}") from None
    except ace.HttpResponseError as exc:
        raise _classify_http_error(action, exc) from None
    except (ace.ServiceRequestError, ace.ServiceResponseError) as exc:
        err = transport_error(action, exc)
        err.transient = "Azure could not be reached"  # type: ignore[attr-defined]
        raise err from None
    except (
        OSError
    ) as exc:  # requests' "Could not find a suitable TLS CA certificate bundle" is a bare OSError
        from phi3ft.network import classify_transport_failure

        network = classify_transport_failure(exc, action=action)
        if network is None:
            raise
        raise network from None


def call(action: str, fn: Callable[[], T], *, auth: str | None = None) -> T:
    """Run one SDK call under :func:`translate_errors`."""
    with translate_errors(action, auth=auth):
        return fn()


def is_conflict(exc: BaseException) -> bool:
    """An HTTP 409 "already exists" answer (ResourceExistsError, or any HttpResponseError with 409)."""
    return getattr(exc, "status_code", None) == 409


def create_or_reattach(action: str, create: Callable[[], T], fetch: Callable[[], T | None]) -> T:
    """``create()``; on the service's 409 "already exists" (another run, or a killed one, created it
    first) ``fetch()`` the existing resource and continue with it: a re-attach, never a failure."""
    from azure.core.exceptions import HttpResponseError

    def attempt() -> T | None:
        try:
            return create()
        except HttpResponseError as exc:
            if is_conflict(exc):
                return None
            raise

    created = call(action, attempt)
    if created is not None:
        return created
    existing = fetch()
    if existing is None:  # 409 but not readable yet: one more create (the SDK skips finished blobs)
        return call(action, create)
    return existing


class AzureSession:
    """Credential + lazily-built SDK clients for one subscription / resource group / project.

    Build registry clients lazily: ``MLClient(registry_name=...)`` sends a discovery request in its
    constructor.
    """

    def __init__(
        self,
        credential: Any,
        subscription_id: str,
        resource_group: str,
        *,
        workspace: str | None = None,
        location: str | None = None,
        auth: str | None = None,
    ) -> None:
        self.credential = credential
        self.auth = auth  # the --auth mode that built the credential (None: given by the caller)
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.location = location

    # ---- identity ----------------------------------------------------------------------------------
    def identity(self) -> Identity:
        """Obtain an ARM token and read who we are from its claims (no signature check needed)."""
        token = call("obtain an Azure token", lambda: self.credential.get_token(ARM_SCOPE), auth=self.auth)
        source = None
        with contextlib.suppress(AttributeError):
            source = type(
                getattr(self.credential, "_successful_credential", None) or self.credential
            ).__name__
        return identity_from_claims(decode_jwt_claims(token.token), source)

    # ---- clients -----------------------------------------------------------------------------------
    @cached_property
    def resources(self) -> Any:
        from azure.mgmt.resource.resources import ResourceManagementClient

        return ResourceManagementClient(self.credential, self.subscription_id, **client_retry_kwargs())

    @cached_property
    def authorization(self) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        return AuthorizationManagementClient(self.credential, self.subscription_id, **client_retry_kwargs())

    def _ml_client(self, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from azure.ai.ml import MLClient

            return MLClient(
                self.credential,
                enable_telemetry=False,
                show_progress=False,
                **client_retry_kwargs(),
                **kwargs,
            )

    @cached_property
    def rg_ml(self) -> Any:
        """Resource-group-level client: hub/project create and delete."""
        return self._ml_client(subscription_id=self.subscription_id, resource_group_name=self.resource_group)

    @cached_property
    def ml(self) -> Any:
        """Project-level client: data, jobs, models, endpoints."""
        if not self.workspace:
            raise PrerequisiteError("No project configured.", "Set azure.project.name in job.yaml.")
        return self._ml_client(
            subscription_id=self.subscription_id,
            resource_group_name=self.resource_group,
            workspace_name=self.workspace,
        )

    @cached_property
    def registry(self) -> Any:
        """Client for the ``azureml`` system registry (sends discovery on construction)."""
        return call("open the azureml model registry", lambda: self._ml_client(registry_name="azureml"))


@contextlib.contextmanager
def quiet_experimental_warnings() -> Iterator[None]:
    """``create_finetuning_job``, ``ServerlessEndpoint`` & co. are @experimental and warn on use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
