"""The one place secrets are taken out of text phi3ft prints or stores.

Used by :class:`phi3ft.errors.Phi3ftError` (every error message and hint), by :class:`phi3ft.output.Output`
(its stdout and stderr streams, so tables, JSON documents, log text and progress lines all pass through it),
by the ledger writer (``.phi3ft/state.json``), by the ``PHI3FT_DEBUG=1`` traceback and, through
:class:`RedactingFilter` (:func:`install_log_redaction`, called by the CLI), by Python logging's handlers. ``keys --show`` is
the one deliberate exception (:meth:`phi3ft.output.Output.unredacted`).

What goes: URL query secrets (SAS ``sig``/``se``/``skoid``/``sktid``/``skt``/``ske``/``sks``/``skv``, ``sv``
next to a ``sig``, ``code``, ``key``, tokens), ``Bearer ...``, JWTs, ``AccountKey=``/``SharedAccessKey=``/
``SharedAccessSignature=``/``Password=`` in connection strings, ``api-key:`` headers, JSON fields that carry
keys or tokens, and every value registered with :func:`register` (endpoint keys phi3ft fetched) or found in a
secret-looking environment variable (``AZURE_CLIENT_SECRET``, ``*_KEY``, ``*_TOKEN``, ``*PASSWORD``...).
Leaf module: standard library only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "REDACTED"

#: Query parameters whose value is a secret (or part of a SAS signature's scope) wherever they appear.
_QUERY_SECRETS = (
    "sig",
    "se",
    "skoid",
    "sktid",
    "skt",
    "ske",
    "sks",
    "skv",
    "code",
    "key",
    "api-key",
    "api_key",
    "apikey",
    "subscription-key",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "client_assertion",
    "password",
    "secret",
)
_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(k) for k in _QUERY_SECRETS) + r")=)[^&\s'\"<>#)\]]+")
_SAS_VERSION = re.compile(r"(?i)([?&]sv=)[^&\s'\"<>#)\]]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_CONNECTION = re.compile(
    r"(?i)\b((?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|AccessKey)=)[^;\s'\"`]+"
)
_HEADER = re.compile(
    r"(?i)\b((?:api-key|x-api-key|ocp-apim-subscription-key)[\"']?\s*[:=]\s*[\"']?)[^\s'\",}]{8,}"
)
_SHARED_KEY = re.compile(r"\b(SharedKey(?:Lite)?\s+[\w-]+:)[A-Za-z0-9+/=]{10,}")
#: JSON/dict fields that carry secrets in service bodies (camelCase as ARM/AML send them).
_FIELD = re.compile(
    r"(?i)([\"'](?:primaryKey|secondaryKey|accountKey|key1|key2|clientSecret|client_secret|accessToken|"
    r"access_token|refreshToken|refresh_token|password|connectionString|sasToken|sas_token|secret)[\"']\s*:\s*[\"'])"
    r"[^\"']+"
)
#: Environment variables whose values are secrets (never printed, whatever key they end up in).
SECRET_NAME = re.compile(r"SECRET|KEY|TOKEN|PASSWORD|PASSWD|CONNECTION_STRING|SAS|CREDENTIAL", re.IGNORECASE)
_MIN_SECRET = 8  # shorter values are not worth masking (and would mask ordinary words)

_lock = threading.Lock()
_known: set[str] = set()


def register(*secrets: str | None) -> None:
    """Mask these exact values from now on (endpoint keys, fetched tokens): the patterns cannot spot them."""
    with _lock:
        _known.update(s for s in secrets if s and len(s) >= _MIN_SECRET)


_env_names: tuple[frozenset[Any], list[str]] = (frozenset(), [])


def _environment_secrets(env: Mapping[str, str] | None) -> list[str]:
    """Values of secret-looking variables (the name scan is cached until the set of names changes)."""
    global _env_names
    if env is not None:
        return [v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= _MIN_SECRET]
    seen, names = _env_names
    raw = getattr(os.environ, "_data", None)  # CPython's undecoded dict: comparing its keys costs ~1 us
    if raw is None or raw.keys() != seen:
        current = frozenset(raw if raw is not None else os.environ)
        names = [k for k in os.environ if SECRET_NAME.search(k)]
        _env_names = (current, names)
    values = (os.environ.get(name) for name in names)
    return [v for v in values if v and len(v) >= _MIN_SECRET]


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret phi3ft knows how to recognise replaced by ``REDACTED``.

    ``env`` defaults to ``os.environ``. Each pattern runs only when a cheap marker is in the text, so an
    ordinary line costs a few microseconds (``validate`` prints thousands).
    """
    if not text:
        return text
    with _lock:
        known = list(_known)
    for secret in (*known, *_environment_secrets(env)):
        if secret in text:
            text = text.replace(secret, MASK)
    low = text.lower()
    if "=" in text:
        if "sig=" in low:
            text = _SAS_VERSION.sub(rf"\1{MASK}", text)
        if "?" in text or "&" in text:
            text = _QUERY.sub(rf"\1{MASK}", text)
        if ";" in text or any(m in low for m in ("key=", "password=", "pwd=", "signature=", "secret=")):
            text = _CONNECTION.sub(rf"\1{MASK}", text)
    if "eyJ" in text:
        text = _JWT.sub(MASK, text)
    if "bearer" in low:
        text = _BEARER.sub(rf"\1{MASK}", text)
    if "key" in low:
        text = _HEADER.sub(rf"\1{MASK}", text)
        if "sharedkey" in low:
            text = _SHARED_KEY.sub(rf"\1{MASK}", text)
    if ":" in text and ('"' in text or "'" in text):
        text = _FIELD.sub(rf"\1{MASK}", text)
    return text


def redact_data(value: Any) -> Any:
    """:func:`redact` applied to every string in a JSON-like structure (keys kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (put it on every handler that prints)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Redact what Python's logging prints: the root logger's handlers and ``logging.lastResort`` (which
    prints SDK warnings to stderr when no handler is configured). Idempotent."""
    handlers = [*logging.getLogger().handlers, logging.lastResort]
    for handler in handlers:
        if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


__all__ = [
    "MASK",
    "SECRET_NAME",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "redact_data",
    "register",
]
