"""Waiting on remote work: fast then slow polling against a monotonic deadline, honouring Retry-After.

Services call :func:`wait_until` with injected ``clock``/``sleep`` so tests run instantly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from phi3ft.errors import Phi3ftError

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
    """2 s x5, then 10 s growing by half each poll, capped at 60 s."""
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
) -> T:
    """Call ``fetch`` until ``done(value)``; raise :class:`PollTimeout` after ``timeout`` seconds."""
    delays = schedule if schedule is not None else default_schedule()
    start = clock()
    deadline = None if timeout is None else start + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            value = fetch()
        except RetryLater as later:
            wait = max(0.0, later.retry_after)
        else:
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
