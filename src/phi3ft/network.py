"""Tell network, proxy, DNS and TLS failures apart from credential failures, each with its own fix.

azure-identity wraps every failure of a token request in ``ClientAuthenticationError`` ("Authentication
failed: ('Unable to connect to proxy', ...)"), and ``DefaultAzureCredential`` flattens its chain into one
text, so both the exception chain and the text are read. Pure functions over an exception and the
environment: no Azure import, nothing printed (the Azure error translation and ``phi3ft check`` call them).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping

from phi3ft.errors import DnsError, NetworkError, ProxyError, TlsError

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
#: Hosts the proxy must let through (the token, ARM, the ML services and the workspace storage).
AZURE_HOSTS = "login.microsoftonline.com, management.azure.com, *.api.azureml.ms, *.blob.core.windows.net"
ENV_CREDENTIAL_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID")
ENV_CREDENTIAL_SECRETS = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
)

_DNS_TEXT = re.compile(
    r"Failed to resolve|Name or service not known|nodename nor servname|getaddrinfo failed|"
    r"Temporary failure in name resolution|No address associated with hostname|NameResolutionError",
    re.I,
)
_PROXY_TEXT = re.compile(r"Unable to connect to proxy|Tunnel connection failed|ProxyError", re.I)
_CA_TEXT = re.compile(r"Could not find a suitable TLS CA certificate bundle, invalid path: (\S+)", re.I)
_VERIFY_TEXT = re.compile(
    r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLCertVerificationError", re.I
)
_SSL_TEXT = re.compile(r"\bSSLError\b|\[SSL[:\]]|SSL: |WRONG_VERSION_NUMBER|TLSV1_ALERT", re.I)
_CONNECT_TEXT = re.compile(
    r"Connection refused|Failed to establish a new connection|Network is unreachable|No route to host|"
    r"Connection reset by peer|Max retries exceeded|(?:Read|Connect|connection) timed out|ConnectTimeout",
    re.I,
)
_HOST_TEXT = re.compile(r"host='([^']+)'(?:, port=(\d+))?")
_RESOLVE_HOST = re.compile(r"Failed to resolve '([^']+)'")
_TUNNEL_STATUS = re.compile(r"Tunnel connection failed: (\d{3}[^'\")]*)")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: azure-core's ``inner_exception``, ``__cause__``/``__context__``,
    and exceptions passed as arguments (urllib3's ``ProxyError(message, error)``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        node = todo.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        for child in (getattr(node, "inner_exception", None), node.__cause__, node.__context__, *node.args):
            if isinstance(child, BaseException):
                todo.append(child)


def _text(exc: BaseException) -> str:
    return " | ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))


def _proxy_setting(env: Mapping[str, str]) -> tuple[str, str] | None:
    for name in PROXY_VARIABLES:
        if env.get(name):
            return name, _without_credentials(env[name])
    return None


def _without_credentials(url: str) -> str:
    """``http://user:secret@proxy:8080`` -> ``http://proxy:8080`` (a proxy URL may carry a password)."""
    return re.sub(r"//[^/@]*@", "//", url)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_transport_failure(
    exc: BaseException, env: Mapping[str, str] | None = None, *, action: str = "call Azure"
) -> NetworkError | None:
    """The :class:`NetworkError` (with its own fix) when ``exc`` is a transport, proxy, DNS or TLS failure;
    ``None`` when it is something else (a refused credential, a service answer)."""
    env = os.environ if env is None else env
    chain = list(_chain(exc))
    text = _text(exc)
    where = f"while trying to {action}"

    # 1. TLS: a CA bundle path that does not exist (requests raises OSError before connecting)
    ca = _CA_TEXT.search(text)
    if ca:
        path = ca.group(1).rstrip(".,;)'\"")
        var = next((v for v in CA_VARIABLES if env.get(v) == path), None) or next(
            (v for v in CA_VARIABLES if env.get(v)), "REQUESTS_CA_BUNDLE"
        )
        return TlsError(
            f"TLS setup failed {where}: the CA bundle {path} does not exist ({var})",
            f"Point {var} at an existing PEM bundle (your proxy's CA, or `python -m certifi`), or unset it.",
        )
    # 2. TLS: certificate not trusted
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or _VERIFY_TEXT.search(text):
        in_use = next((v for v in CA_VARIABLES if env.get(v)), None)
        using = f"{in_use}={env[in_use]}" if in_use else "the default CA bundle (certifi)"
        return TlsError(
            f"TLS failed {where}: the server's certificate is not trusted by {using}",
            "If a TLS-inspecting proxy is in the way, set REQUESTS_CA_BUNDLE to a PEM bundle that includes its "
            "CA (phi3ft never turns certificate verification off).",
        )
    # 3. proxy: unreachable, or refusing the tunnel
    proxy = _proxy_setting(env)
    if _PROXY_TEXT.search(text) or any(type(e).__name__ == "ProxyError" for e in chain):
        name, url = proxy or ("HTTPS_PROXY", "the configured proxy")
        status = _TUNNEL_STATUS.search(text)
        if status:
            return ProxyError(
                f"The proxy {url} ({name}) refused the tunnel {where}: {status.group(1).strip()}",
                f"Ask for the proxy to allow {AZURE_HOSTS}, or add them to NO_PROXY, or unset {name}.",
            )
        return ProxyError(
            f"Could not connect to the proxy {url} ({name}) {where}: {_short(_reason(chain))}",
            f"Check that the proxy is running and {name} names it (host:port), or unset {name}.",
        )
    # 4. DNS
    if any(isinstance(e, socket.gaierror) for e in chain) or _DNS_TEXT.search(text):
        host = _RESOLVE_HOST.search(text) or _HOST_TEXT.search(text)
        name_ = host.group(1) if host else "an Azure host"
        return DnsError(
            f"Could not resolve {name_} {where} (DNS)",
            "Check the network connection and DNS (are you offline, or does this network need HTTPS_PROXY?), "
            "then re-run.",
        )
    # 5. other TLS errors (handshake, wrong protocol)
    if any(isinstance(e, ssl.SSLError) for e in chain) or _SSL_TEXT.search(text):
        return TlsError(
            f"TLS failed {where}: {_short(_reason(chain))}",
            "Check REQUESTS_CA_BUNDLE and any proxy that intercepts HTTPS, then re-run.",
        )
    # 6. connection refused / reset / timed out (not when Entra ID answered: that is a credential refusal)
    if "AADSTS" in text:
        return None
    if any(isinstance(e, (ConnectionError, TimeoutError)) for e in chain) or _CONNECT_TEXT.search(text):
        host = _HOST_TEXT.search(text)
        target = (
            f"{host.group(1)}:{host.group(2)}"
            if host and host.group(2)
            else (host.group(1) if host else "Azure")
        )
        return NetworkError(
            f"Could not connect to {target} {where}: {_short(_reason(chain))}",
            "Check the network, firewall or VPN (and HTTPS_PROXY if this network needs a proxy), then re-run; "
            "phi3ft resumes where it stopped.",
        )
    return None


def _reason(chain: list[BaseException]) -> str:
    """The innermost readable reason (``[Errno 111] Connection refused``)."""
    for e in reversed(chain):
        text = str(e).strip()
        if text:
            return text.splitlines()[0]
    return type(chain[0]).__name__


def credential_hint(auth: str | None, env: Mapping[str, str] | None = None) -> str:
    """The fix for a credential that was refused or unavailable, for the ``--auth`` mode in use."""
    env = os.environ if env is None else env
    missing = [v for v in ENV_CREDENTIAL_VARIABLES if not env.get(v)]
    has_secret = any(env.get(v) for v in ENV_CREDENTIAL_SECRETS)
    if auth == "env":
        if missing or not has_secret:
            need = missing + ([] if has_secret else ["AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE)"])
            return f"Set {', '.join(need)} for --auth env, or use --auth cli after `az login`."
        return (
            "Microsoft Entra ID refused the service principal in AZURE_TENANT_ID / AZURE_CLIENT_ID: check "
            "those values and that its secret or federated credential is current "
            "(`az ad app credential list --id $AZURE_CLIENT_ID`)."
        )
    if auth == "managed-identity":
        return (
            "Run where a managed identity is assigned (VM, App Service, AKS), or use --auth cli / --auth env."
        )
    if auth == "device-code":
        return "Re-run and finish the device-code sign-in in a browser, or use --auth cli after `az login`."
    if auth == "cli":
        return "Run `az login` (and `az account set --subscription <id>`), then re-run."
    if not missing and has_secret:
        return (
            "The AZURE_TENANT_ID / AZURE_CLIENT_ID service principal was refused: check those values and its "
            "secret, or unset them and run `az login`."
        )
    return "Run `az login` (or set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and use --auth env)."
