"""Per-route fault injection: throttling, server errors, dropped connections, latency."""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import State
    from .web import Request


@dataclass
class Fault:
    """One rule. ``route`` is an fnmatch pattern on route names (``jobs.get``, ``serverless_endpoints.*``,
    see ``stack.routes()``); ``host``/``path``/``method`` narrow it further (``path`` is a regex search).

    ``skip`` lets the first N matching requests through; ``times`` is how many it then affects
    (``None`` = every later match). ``hits`` counts the requests it affected. ``inner_code`` adds the
    Azure ML service's ``innerError: {code}`` to the envelope (``UserError`` / ``ModelNotSupportedByMaaS``).

    ``hold``: the stack **applies** the request (the handler runs, the state changes), sets ``held``,
    then keeps the connection open without answering until ``release()`` (or ``hold_timeout``), and
    then drops it: Azure processing a PUT whose client was killed before it saw the answer. Tests wait
    for ``held``, SIGKILL the client, then release.
    """

    route: str = "*"
    method: str | None = None
    host: str | None = None
    path: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    inner_code: str | None = None
    retry_after: float | None = None
    drop: bool = False
    latency: float = 0.0
    times: int | None = 1
    skip: int = 0
    hits: int = 0
    hold: bool = False
    hold_timeout: float = 60.0
    seen: int = field(default=0, repr=False)
    held: threading.Event = field(default_factory=threading.Event, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def release(self) -> None:
        self.released.set()

    def wait_held(self, timeout: float) -> bool:
        return self.held.wait(timeout)

    def matches(self, req: Request) -> bool:
        if not fnmatch.fnmatchcase(req.route, self.route):
            return False
        if self.method and self.method.upper() != req.method:
            return False
        if self.host and not fnmatch.fnmatch(req.host.lower(), self.host.lower()):
            return False
        return not (self.path and not re.search(self.path, req.path, re.I))


class Faults:
    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.rules: list[Fault] = []

    def add(self, route: str = "*", **kw: Any) -> Fault:
        fault = Fault(route=route, **kw)
        with self._lock:
            self.rules.append(fault)
        return fault

    # convenience shapes ---------------------------------------------------------------------
    def throttle(self, route: str, retry_after: float = 1, times: int | None = 1, **kw: Any) -> Fault:
        """429 ``TooManyRequests`` with ``Retry-After`` (seconds)."""
        return self.add(route, status=429, retry_after=retry_after, times=times, **kw)

    def error(self, route: str, status: int = 500, times: int | None = 1, **kw: Any) -> Fault:
        """A 5xx (or any status) with the ARM error envelope."""
        return self.add(route, status=status, times=times, **kw)

    def drop(self, route: str, times: int | None = 1, **kw: Any) -> Fault:
        """Close the connection without an answer."""
        return self.add(route, drop=True, times=times, **kw)

    def hold(self, route: str, skip: int = 0, times: int | None = 1, **kw: Any) -> Fault:
        """Apply the ``skip+1``-th matching request, then never answer it until ``release()``."""
        return self.add(route, hold=True, skip=skip, times=times, **kw)

    def slow(self, route: str, seconds: float, times: int | None = None, **kw: Any) -> Fault:
        """Add latency before the real answer."""
        return self.add(route, latency=seconds, times=times, **kw)

    def fail_job(self, name: str, code: str = "UserError", message: str | None = None) -> None:
        """The named job (submitted now or later) walks NotStarted -> Queued -> Running -> Failed."""
        self._state.fail_job(name, code=code, message=message)

    def clear(self) -> None:
        with self._lock:
            for f in self.rules:
                f.release()
            self.rules.clear()

    def match(self, req: Request) -> list[Fault]:
        out = []
        with self._lock:
            for f in self.rules:
                if not f.matches(req):
                    continue
                f.seen += 1
                if f.seen <= f.skip:
                    continue
                if f.times is not None and f.hits >= f.times:
                    continue
                f.hits += 1
                out.append(f)
        return out
