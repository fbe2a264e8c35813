"""wait_until: schedule, deadline, Retry-After; durations."""

from __future__ import annotations

import itertools

import pytest

from phi3ft.polling import PollTimeout, RetryLater, default_schedule, parse_duration, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_schedule_fast_then_slow_capped() -> None:
    got = list(itertools.islice(default_schedule(), 12))
    assert got[:5] == [2.0] * 5
    assert got[5] == 10.0
    assert max(got) <= 60.0 and got[-1] == 60.0


def test_wait_until_returns_when_done_and_honours_retry_after() -> None:
    clock = FakeClock()
    answers = iter([RetryLater(7), "Running", "Running", "Completed"])

    def fetch() -> str:
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    polls: list[str] = []
    out = wait_until(
        fetch,
        lambda s: s == "Completed",
        timeout=100,
        clock=clock,
        sleep=clock.sleep,
        on_poll=lambda p: polls.append(p.value),
    )
    assert out == "Completed"
    assert clock.sleeps == [7, 2.0, 2.0]
    assert polls == ["Running", "Running", "Completed"]


def test_wait_until_times_out() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeout) as exc:
        wait_until(
            lambda: "Running", lambda s: False, timeout=30, clock=clock, sleep=clock.sleep, what="job x"
        )
    assert "job x" in exc.value.message
    assert clock.now == pytest.approx(30)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "1h30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# ---- outages (issue 20 §3) -------------------------------------------------------------------------------
def _transient(status: int = 503) -> Exception:
    from phi3ft.errors import AzureError

    err = AzureError(f"Azure refused to read job 'j' (HTTP {status})", "Re-run the command.")
    err.transient = f"Azure returned {status}"  # type: ignore[attr-defined]
    return err


def test_wait_until_rides_out_transient_failures_within_the_window() -> None:
    now = [0.0]
    answers: list[object] = [
        _transient(),
        _transient(),
        _transient(500),
        "Running",
        _transient(),
        "Completed",
    ]
    notes: list[str] = []

    def fetch() -> str:
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return str(item)

    value = wait_until(
        fetch, lambda v: v == "Completed", timeout=None, clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s), schedule=iter([20.0] * 10), window=300, notify=notes.append,
    )  # fmt: skip
    assert value == "Completed"
    assert notes == [
        "Azure returned 503; retrying in 20 s (attempt 1)",
        "Azure returned 503; retrying in 20 s (attempt 2)",
        "Azure returned 500; retrying in 20 s (attempt 3)",
        "Azure returned 503; retrying in 20 s (attempt 1)",  # a good poll ended the first outage
    ]


def test_wait_until_gives_up_after_the_window_with_the_outage_hint() -> None:
    from phi3ft.errors import AzureError

    now = [0.0]

    def fetch() -> str:
        raise _transient()

    notes: list[str] = []
    with pytest.raises(AzureError) as info:
        wait_until(
            fetch, lambda v: True, timeout=None, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s),
            schedule=iter([20.0] * 100), window=100, notify=notes.append, outage_hint="`phi3ft watch j` re-attaches.",
        )  # fmt: skip
    assert info.value.hint == "`phi3ft watch j` re-attaches."
    assert len(notes) == 5 and notes[-1] == "Azure returned 503; retrying in 20 s (attempt 5)"


def test_wait_until_does_not_retry_a_permanent_error() -> None:
    from phi3ft.errors import NotFoundError

    def fetch() -> str:
        raise NotFoundError("gone")

    with pytest.raises(NotFoundError):
        wait_until(fetch, lambda v: True, timeout=None, clock=lambda: 0.0, sleep=lambda s: None, window=300)
