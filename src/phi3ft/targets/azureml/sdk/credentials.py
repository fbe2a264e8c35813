"""One Azure credential per process, shared by every client a command builds.

``--auth`` (or ``azure.auth``) names the credential: ``env``, ``cli``, ``managed-identity`` and
``device-code`` build that credential alone; only ``auto`` walks ``DefaultAzureCredential``'s chain.
The credential is built once per process (per auth mode and Azure environment variables) and wrapped in
:class:`SharedCredential`, which keeps the tokens it got **in memory only** until five minutes before
they expire, so the five or ten pipelines azure-ai-ml builds ask Entra ID (or spawn ``az``) once instead
of once each. Nothing is ever written to disk (no persistent token cache).

:func:`credential_report` says which credential answered and how long its first token took
(``phi3ft doctor`` shows it); :func:`probe_credential` asks for a token and returns that report.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

#: Refresh a remembered token this long before it expires.
REFRESH_MARGIN_S = 300
#: Environment variables that change what a credential does (which principal, which proxy / CA).
_ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_")
_ENV_NAMES = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

_LOCK = threading.Lock()
_SHARED: dict[tuple[Any, ...], SharedCredential] = {}
#: Every production credential built in this process, in order (tests assert there is one per command).
BUILT: list[str] = []


@dataclass
class CredentialReport:
    """Which credential produced the first token of this process, and how long that took."""

    auth: str  # the --auth mode
    credential: str | None = None  # the class that answered (e.g. EnvironmentCredential, AzureCliCredential)
    seconds: float | None = None  # wall time of the first token request
    tokens_requested: int = 0  # get_token calls the clients made
    tokens_fetched: int = 0  # of which went to the credential (the rest came from memory)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _env_key() -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES)
    )


class SharedCredential:
    """A ``TokenCredential`` (``get_token`` and ``get_token_info``) in front of the real one.

    Tokens are remembered per (scopes, tenant, CAE) in this object only, whichever of the two methods a
    client calls; a request with ``claims`` (a CAE challenge) always goes to the credential. Failures are
    not remembered.
    """

    def __init__(self, inner: Any, auth: str, *, clock: Any = time.time) -> None:
        self.inner = inner
        self.report = CredentialReport(auth=auth)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple[Any, ...], tuple[str, int]] = {}

    # azure-identity's chained credentials expose the member that answered; AzureSession.identity reads it.
    @property
    def _successful_credential(self) -> Any:
        return getattr(self.inner, "_successful_credential", None) or self.inner

    def _answered_by(self) -> str:
        return type(self._successful_credential).__name__

    def _fetch(self, key: tuple[Any, ...], fetch: Any) -> tuple[str, int]:
        """``(token, expires_on)`` from memory while it is fresh, else from the credential."""
        with self._lock:
            self.report.tokens_requested += 1
            cached = self._tokens.get(key)
            if cached is not None and cached[1] - REFRESH_MARGIN_S > self._clock():
                return cached
            start = time.perf_counter()
            try:
                token = fetch()
            except Exception as exc:
                if self.report.seconds is None:
                    text = str(exc).strip()
                    self.report.error = text.splitlines()[0] if text else type(exc).__name__
                raise
            self.report.tokens_fetched += 1
            if self.report.seconds is None:
                self.report.seconds = time.perf_counter() - start
                self.report.credential = self._answered_by()
                self.report.error = None
            value = (str(token.token), int(token.expires_on))
            self._tokens[key] = value
            return value

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        from azure.core.credentials import AccessToken

        def fetch() -> Any:
            return self.inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )

        if claims:
            return fetch()
        return AccessToken(*self._fetch((scopes, tenant_id, enable_cae), fetch))

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        opts = dict(options or {})

        def fetch() -> Any:
            if hasattr(self.inner, "get_token_info"):
                return self.inner.get_token_info(*scopes, options=options)
            return self.inner.get_token(
                *scopes,
                claims=opts.get("claims"),
                tenant_id=opts.get("tenant_id"),
                enable_cae=bool(opts.get("enable_cae", False)),
            )

        if opts.get("claims"):
            token = fetch()
            return AccessTokenInfo(str(token.token), int(token.expires_on))
        key = (scopes, opts.get("tenant_id"), bool(opts.get("enable_cae", False)))
        return AccessTokenInfo(*self._fetch(key, fetch))

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> SharedCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SharedCredential({type(self.inner).__name__}, auth={self.report.auth!r})"


def shared_credential(auth: str = "auto") -> SharedCredential:
    """The process's credential for ``auth`` (built on first use; unknown modes raise PrerequisiteError)."""
    from phi3ft.targets.azureml.sdk._core import build_credential

    key = (auth, _env_key())
    with _LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = SharedCredential(build_credential(auth), auth)
            _SHARED[key] = found
            BUILT.append(auth)
        return found


def credential_report() -> list[dict[str, Any]]:
    """What every credential of this process did: mode, which class answered, first-token seconds."""
    with _LOCK:
        return [c.report.to_dict() for c in _SHARED.values()]


def probe_credential(auth: str = "auto", scope: str | None = None) -> CredentialReport:
    """Ask for one ARM token now (``phi3ft doctor``): the report says which credential answered and how
    long it took. A failure raises the same translated error (message + fix) as any Azure command."""
    from phi3ft.targets.azureml.sdk._core import ARM_SCOPE, call

    credential = shared_credential(auth)
    call("obtain an Azure token", lambda: credential.get_token(scope or ARM_SCOPE), auth=auth)
    return credential.report


def reset_shared_credentials() -> None:
    """Forget every shared credential (tests)."""
    with _LOCK:
        for cred in _SHARED.values():
            with contextlib.suppress(Exception):  # closing is best effort
                cred.close()
        _SHARED.clear()
        BUILT.clear()
