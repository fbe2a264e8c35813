"""Waiting on remote work: fast then slow polling against a monotonic deadline, honouring Retry-After.

Services call :func:`wait_until` with injected ``clock``/``sleep`` so tests run instantly.

Outages: a poll that fails with a transient error (HTTP 429/500/502/503/504 after azure-core's own
retries, or a dropped connection; errors carry ``transient``) does not end a long wait. The wait keeps
polling, printing ``Azure returned 503; retrying in 20 s (attempt 3)`` to stderr each time, for an outage
window of ``PHI3FT_OUTAGE_WINDOW`` seconds (default 300) counted from the first failed poll in a row;
after that the error is raised with a hint on how to re-attach. ``Retry-After`` is capped at
``PHI3FT_RETRY_AFTER_MAX`` seconds (default 60), and a wait over 2 s is announced on stderr.
``PHI3FT_POLL_INTERVAL`` (seconds) replaces the default fast-then-slow schedule with a fixed interval.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from phi3ft.errors import Phi3ftError

DEFAULT_OUTAGE_WINDOW_S = 300.0
DEFAULT_RETRY_AFTER_MAX_S = 60.0
#: Waits longer than this are announced on stderr.
ANNOUNCE_WAIT_S = 2.0


def _env_seconds(name: str, default: float | None) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return max(0.0, parse_duration(text))
    except ValueError:
        return default


def outage_window() -> float:
    """Seconds a long wait rides out failed polls (``PHI3FT_OUTAGE_WINDOW``, default 300)."""
    return float(_env_seconds("PHI3FT_OUTAGE_WINDOW", DEFAULT_OUTAGE_WINDOW_S) or 0.0)


def retry_after_max() -> float:
    """The most phi3ft waits for one ``Retry-After`` (``PHI3FT_RETRY_AFTER_MAX``, default 60 s)."""
    return float(_env_seconds("PHI3FT_RETRY_AFTER_MAX", DEFAULT_RETRY_AFTER_MAX_S) or 0.0)


def stderr_notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cap_retry_after(seconds: float, notify: Callable[[str], None] | None = None) -> float:
    """``min(seconds, retry_after_max())``; says on stderr when the wait is longer than 2 s."""
    capped = max(0.0, min(float(seconds), retry_after_max()))
    if capped > ANNOUNCE_WAIT_S:
        note = "" if capped == seconds else f" (capped from {seconds:g} s; PHI3FT_RETRY_AFTER_MAX)"
        (notify or stderr_notice)(f"Azure asked to retry later; waiting {capped:g} s{note}")
    return capped


def transient_reason(exc: BaseException) -> str | None:
    """``"Azure returned 503"`` / ``"Azure could not be reached"`` for a failure worth retrying."""
    reason = getattr(exc, "transient", None)
    return str(reason) if reason else None


T = TypeVar("T")


class PollTimeout(Phi3ftError):
    """The deadline passed before the remote work reached a terminal state."""

    code = "timeout"


class RetryLater(Exception):
    """Raised by a fetch function when the service asked to wait (429 / 503 with Retry-After)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


def default_schedule(
    fast: float = 2.0, fast_count: int = 5, slow: float = 10.0, cap: float = 60.0
) -> Iterator[float]:
    """2 s x5, then 10 s growing by half each poll, capped at 60 s (``PHI3FT_POLL_INTERVAL``: fixed)."""
    fixed = _env_seconds("PHI3FT_POLL_INTERVAL", None)
    if fixed is not None:
        while True:
            yield fixed
    for _ in range(fast_count):
        yield fast
    delay = slow
    while True:
        yield delay
        delay = min(cap, delay * 1.5)


@dataclass
class Poll(Generic[T]):
    value: T
    elapsed: float
    attempt: int


def wait_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    schedule: Iterator[float] | None = None,
    on_poll: Callable[[Poll[T]], None] | None = None,
    what: str = "the operation",
    window: float | None = None,
    notify: Callable[[str], None] | None = None,
    outage_hint: str | None = None,
) -> T:
    """Call ``fetch`` until ``done(value)``; raise :class:`PollTimeout` after ``timeout`` seconds.

    Transient fetch failures are retried for ``window`` seconds in a row (default
    :func:`outage_window`), each announced through ``notify`` (default stderr); after that the error
    is raised with ``outage_hint`` (when given) as its hint.
    """
    delays = schedule if schedule is not None else default_schedule()
    window = outage_window() if window is None else window
    say = notify or stderr_notice
    start = clock()
    deadline = None if timeout is None else start + timeout
    attempt = 0
    outage_start: float | None = None
    failures = 0
    while True:
        attempt += 1
        try:
            value = fetch()
        except RetryLater as later:
            wait = cap_retry_after(later.retry_after, say)
        except Phi3ftError as exc:
            reason = transient_reason(exc)
            if reason is None:
                raise
            now = clock()
            outage_start = now if outage_start is None else outage_start
            failures += 1
            left = outage_start + window - now
            if left <= 0:
                if outage_hint:
                    exc.hint = outage_hint
                raise
            wait = min(next(delays), left)
            say(f"{reason}; retrying in {wait:.0f} s (attempt {failures})")
        else:
            outage_start, failures = None, 0
            if on_poll is not None:
                on_poll(Poll(value, clock() - start, attempt))
            if done(value):
                return value
            wait = next(delays)
        now = clock()
        if deadline is not None and now + wait > deadline:
            if now >= deadline:
                raise PollTimeout(
                    f"Timed out after {int(now - start)} s waiting for {what}.",
                    "The remote work keeps running; re-attach later or raise --timeout.",
                )
            wait = max(0.0, deadline - now)
        sleep(wait)


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '1h30m' -> seconds. Raises ValueError on anything else."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    if s.replace(".", "", 1).isdigit():
        return float(s)
    total = 0.0
    number = ""
    for ch in s:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h)")
    if number:
        raise ValueError(f"not a duration: {text!r} (a number needs a unit: s, m, h, d)")
    return total


def retry_transient(
    fn: Callable[[], T],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    window: float | None = None,
    notify: Callable[[str], None] | None = None,
    schedule: Iterator[float] | None = None,
) -> T:
    """``fn()``, repeated on transient failures for ``window`` seconds (only for idempotent work:
    a delete where "already gone" counts as done)."""
    return wait_until(
        fn, lambda _value: True, timeout=None, clock=clock, sleep=sleep, schedule=schedule,
        window=window, notify=notify,
    )  # fmt: skip
