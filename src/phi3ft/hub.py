"""Fail-fast Hugging Face hub look-ups: one request, no retries, and the real reason when it fails.

huggingface_hub and transformers retry a failed request with back-off (1, 2, 4, 8, 8 s): an offline
``from_pretrained`` of a hub id takes ~50 s (18 connection attempts) before it says "check your
connection". Every hub look-up of phi3ft (tokenizer download, base model and tokenizer of the trainer)
first asks :func:`hub_unreachable`: ``HF_HUB_OFFLINE`` set, or one HEAD request (``PROBE_TIMEOUT``
seconds, no redirect followed, no retry) that fails with no HTTP answer. Only when the hub answers does
the library's own download run. The reason names what failed: the DNS lookup, the proxy, the TLS
handshake, a refused connection, a timeout, or an HTTP 5xx/429 answer.

Leaf module: stdlib only (``certifi`` when installed, for the same CA bundle as huggingface_hub's client).
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Seconds for the probe's connect and for its answer.
PROBE_TIMEOUT = 5.0
_TRUE = {"1", "true", "yes", "on"}


def hub_endpoint(env: Mapping[str, str]) -> str:
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_flag(env: Mapping[str, str]) -> bool:
    """``HF_HUB_OFFLINE`` (or transformers' ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(
        env.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _without_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy ``url`` goes through under ``env`` (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, minus
    ``NO_PROXY``), as httpx (huggingface_hub's client) picks it."""
    parts = urllib.parse.urlsplit(url)
    lower = {k.lower(): v for k, v in env.items() if v}
    proxy = lower.get(f"{parts.scheme}_proxy") or lower.get("all_proxy")
    if not proxy:
        return None
    no_proxy = lower.get("no_proxy", "")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if no_proxy and bypass(parts.hostname or "", {"no": no_proxy}):
        return None
    return proxy


def _ssl_context(env: Mapping[str, str]) -> ssl.SSLContext:
    cafile = env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE") or None
    if cafile is None:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    return ssl.create_default_context(cafile=cafile)  # verification stays on


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer: the hub is reachable


def _reason(exc: BaseException, url: str, proxy: str | None) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    shown_proxy = _without_userinfo(proxy) if proxy else None
    cause: BaseException = exc
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        cause = exc.reason
    detail = " ".join(str(cause).split()) or type(cause).__name__
    if isinstance(cause, socket.gaierror):
        if proxy:
            return f"DNS lookup of the proxy {shown_proxy} failed: {detail}"
        return f"DNS lookup of {host} failed: {detail}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {host} failed: {detail}"
    if isinstance(cause, TimeoutError):
        via = f" through the proxy {shown_proxy}" if proxy else ""
        return f"no answer from {host}{via} within {PROBE_TIMEOUT:g} s"
    if isinstance(cause, ConnectionRefusedError):
        if proxy:
            return f"the proxy {shown_proxy} refused the connection ({detail})"
        return f"{hub_host_port(url)} refused the connection ({detail})"
    if proxy and "tunnel" in detail.lower():
        return f"the proxy {shown_proxy} refused the tunnel to {host}: {detail}"
    return f"{type(cause).__name__}: {detail}"


def hub_host_port(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def hub_unreachable(
    repo_id: str, filename: str, env: Mapping[str, str] | None = None, *, timeout: float = PROBE_TIMEOUT
) -> str | None:
    """Why ``repo_id``/``filename`` cannot be fetched right now, in one line; None when the hub answers.

    At most one connection attempt (none with ``HF_HUB_OFFLINE``). Any HTTP answer below 500 (200, a
    redirect, 401 for a gated repo, 404) counts as reachable: the library's own call then reports it.
    """
    env = os.environ if env is None else env
    if offline_flag(env):
        return "HF_HUB_OFFLINE is set"
    endpoint = hub_endpoint(env)
    url = f"{endpoint}/{repo_id}/resolve/main/{urllib.parse.quote(filename)}"
    proxy = _proxy_for(url, env)
    scheme = urllib.parse.urlsplit(url).scheme
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({scheme: proxy} if proxy else {}),
        urllib.request.HTTPSHandler(context=_ssl_context(env)),
        _NoRedirect(),
    )
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "phi3ft-probe"})
    try:
        with opener.open(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        if exc.code < 500 and exc.code != 429:
            return None
        return f"{endpoint} answered HTTP {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: a malformed HF_ENDPOINT
        return _reason(exc, url, proxy)


def download_commands(repo_id: str, files: tuple[str, ...] = ()) -> str:
    """The command that fetches ``repo_id`` (or just ``files``) into a folder on a connected machine."""
    listed = "".join(f" {name}" for name in files)
    return f"hf download {repo_id}{listed} --local-dir DIR"


__all__ = [
    "DEFAULT_ENDPOINT",
    "PROBE_TIMEOUT",
    "download_commands",
    "hub_endpoint",
    "hub_unreachable",
    "offline_flag",
]
