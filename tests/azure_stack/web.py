"""Tiny HTTP vocabulary for the fake: requests, responses, ARM errors and the route table.

Routes are ``(name, method, host template, path template, handler)``; templates use ``{param}``
(one segment/label) and ``{param*}`` (one or more segments). Paths match case-insensitively,
as ARM does. Adding an operation (compute, environments, command jobs, ...) is one ``add`` call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DROP = object()
"""Returned by a fault: close the connection without answering."""


@dataclass
class Request:
    host: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    route: str = ""

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc

    @property
    def api_version(self) -> str:
        return self.query.get("api-version", "")

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", ""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


class HttpError(Exception):
    """Raised by handlers; rendered as the ARM error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        additional_info: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.additional_info = additional_info or []
        self.headers = headers or {}

    def response(self) -> Response:
        return arm_error(
            self.status, self.code, self.message, self.details, self.headers, self.additional_info
        )


def arm_error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    additional_info: list[dict[str, Any]] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "additionalInfo": additional_info or [],
        }
    }
    return Response(
        status, body, {"x-ms-failure-cause": "gateway" if status >= 500 else "service", **(headers or {})}
    )


Handler = Callable[[Request], Response]


def _compile(template: str, sep: str, flags: int) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\{[a-zA-Z_]+\*?\})", template):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("*"):
                out.append(f"(?P<{name[:-1]}>.+?)")
            else:
                out.append(f"(?P<{name}>[^{re.escape(sep)}]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + ("/?$" if sep == "/" else "$"), flags)


@dataclass
class Route:
    name: str
    method: str
    host: re.Pattern[str]
    path: re.Pattern[str]
    handler: Handler
    auth: bool


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, name: str, method: str, host: str, path: str, handler: Handler, *, auth: bool = True
    ) -> None:
        self.routes.append(
            Route(name, method.upper(), _compile(host, ".", re.I), _compile(path, "/", re.I), handler, auth)
        )

    def match(self, method: str, host: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            hm = route.host.match(host)
            if not hm:
                continue
            pm = route.path.match(path)
            if pm:
                return route, {**hm.groupdict(), **pm.groupdict()}
        return None

    def names(self) -> list[str]:
        return sorted({r.name for r in self.routes})
