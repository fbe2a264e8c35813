"""The exception hierarchy: every expected failure is a Phi3ftError carrying an exit code and a hint.

The CLI has one handler that prints ``Error: ...`` and ``Hint: ...`` to stderr and exits with the code.
Messages and hints pass through :func:`phi3ft.redact.redact` here, once: a SAS, token or key inside an
SDK's error text never reaches a terminal, a CI log or a JSON error document.
Leaf module: imports only the standard library (and phi3ft.redact, itself stdlib-only).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from phi3ft.redact import redact


class ExitCode(IntEnum):
    """Stable exit codes (docs: README "Exit codes"). Never an HTTP status."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INVALID = 3
    PREREQ = 4
    JOB_FAILED = 5
    INTERRUPTED = 130


class Phi3ftError(Exception):
    """An expected failure: one line of message, one line of hint (the command or step that fixes it)."""

    exit_code: ExitCode = ExitCode.ERROR
    #: Stable snake_case name of the error class: ``{"error": {"code": ...}}`` with ``--json`` (README
    #: "Errors with --json"). Never renamed; a new class gets a new code.
    code: ClassVar[str] = "error"

    def __init__(self, message: str, hint: str | None = None, *, exit_code: ExitCode | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.hint = redact(hint) if hint else hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(Phi3ftError):
    """Wrong arguments or options (exit 2)."""

    code = "usage"

    exit_code = ExitCode.USAGE


class InvalidInputError(Phi3ftError):
    """Data or config is invalid (exit 3)."""

    code = "invalid_input"

    exit_code = ExitCode.INVALID


class ConfigError(InvalidInputError):
    """job.yaml is invalid: the message names the key path and, where known, the YAML line."""

    code = "config_invalid"


class DataError(InvalidInputError):
    """A data file cannot be used as it is."""

    code = "data_invalid"


class PrerequisiteError(Phi3ftError):
    """A prerequisite is missing, or the plan cannot work (exit 4)."""

    code = "prerequisite_missing"

    exit_code = ExitCode.PREREQ


class RemoteJobFailed(Phi3ftError):
    """A remote job ended Failed / Canceled / NotResponding (exit 5)."""

    code = "job_failed"

    exit_code = ExitCode.JOB_FAILED


class AzureError(Phi3ftError):
    """An Azure call failed after retries; the message is the innermost service message."""

    code = "azure_error"


class NetworkError(AzureError):
    """Azure could not be reached (connection refused, timed out): a transport failure, not a credential one."""

    code = "network_error"


class DnsError(NetworkError):
    """A host name did not resolve (offline, DNS down, a typo in a custom endpoint)."""

    code = "dns_error"


class ProxyError(NetworkError):
    """The proxy in HTTPS_PROXY could not be reached or refused the tunnel."""

    code = "proxy_error"


class TlsError(NetworkError):
    """TLS failed: the CA bundle path does not exist, or the server's certificate is not trusted."""

    code = "tls_error"


class NotFoundError(Phi3ftError):
    """A named resource (job, endpoint, model) does not exist."""

    code = "not_found"


class Interrupted(Phi3ftError):
    """Ctrl+C: the message says what keeps running and how to re-attach (exit 130)."""

    code = "interrupted"

    exit_code = ExitCode.INTERRUPTED


#: Codes of failures that are not a Phi3ftError (click's own usage errors, Ctrl+C, a bug).
USAGE_CODE = "usage"
INTERRUPTED_CODE = "interrupted"
UNEXPECTED_CODE = "unexpected"


def error_codes() -> dict[str, str]:
    """Every ``--json`` error code with the class that raises it (README table; a test keeps them in sync)."""
    codes: dict[str, str] = {}
    pending: list[type[Phi3ftError]] = [Phi3ftError]
    while pending:
        cls = pending.pop(0)
        codes.setdefault(cls.code, cls.__name__)
        pending.extend(cls.__subclasses__())
    codes.setdefault(UNEXPECTED_CODE, "(any other exception)")
    return codes
