"""Issue 15 item 11: the live watch display.

On a terminal (Rich force_terminal, 80 columns, the bytes replayed through a small VT100 screen model)
the spinner line and the status lines never run together; piped, ``watch`` prints a line on each status
change plus a heartbeat at most once a minute, never one line per poll.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from phi3ft.cli.context import AppContext
from phi3ft.cli.jobs import HEARTBEAT_S, _watch
from phi3ft.output import Output
from phi3ft.targets.base import JobInfo

NAME = "phi3ft-phi-4-mini-0123456789ab"
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # Rich's "dots"


class Screen:
    """Enough of a VT100 to replay what Rich's Live writes: text, CR, LF, erase line, cursor up/down."""

    def __init__(self, width: int = 80) -> None:
        self.width = width
        self.rows: list[list[str]] = [[]]
        self.row = self.col = 0

    def _put(self, ch: str) -> None:
        if self.col >= self.width:
            self._newline()
        line = self.rows[self.row]
        line.extend(" " * (self.col + 1 - len(line)))
        line[self.col] = ch
        self.col += 1

    def _newline(self) -> None:
        self.row += 1
        self.col = 0
        while len(self.rows) <= self.row:
            self.rows.append([])

    def feed(self, data: str) -> None:
        for token in re.findall(r"\x1b\[[?0-9;]*[A-Za-z]|\x1b\][^\x07]*\x07|.", data, flags=re.S):
            if token.startswith("\x1b["):
                n = int(re.sub(r"\D", "", token[2:-1]) or 1) if not token.startswith("\x1b[?") else 0
                kind = token[-1]
                if kind == "A":
                    self.row = max(0, self.row - n)
                elif kind == "B":
                    self.row += n
                    while len(self.rows) <= self.row:
                        self.rows.append([])
                elif kind == "K":
                    self.rows[self.row] = []
                elif kind == "G":
                    self.col = n - 1
            elif token.startswith("\x1b]"):
                continue
            elif token == "\r":
                self.col = 0
            elif token == "\n":
                self._newline()
            else:
                self._put(token)

    def lines(self) -> list[str]:
        return ["".join(r).rstrip() for r in self.rows]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Backend:
    name = "serverless"

    def __init__(self, statuses: list[str], every: float) -> None:
        self.statuses = statuses
        self.every = every
        self.polls = 0

    def get_job(self, name: str, *, with_error: bool = True) -> JobInfo:
        self.polls += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return JobInfo(name=name, status=status)

    def job_metrics(self, name: str) -> list[Any]:
        return []

    def poll_schedule(self) -> Iterator[float]:
        return itertools.repeat(self.every)


def test_tty_spinner_and_status_lines_never_run_together(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.StringIO()
    monkeypatch.setattr("sys.stderr", raw)  # Rich's Live redirects sys.stderr while it runs
    out = Output(interactive=False, terminal=True, width=80)
    time = FakeTime()
    screens: list[list[str]] = []

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        screen = Screen(80)
        screen.feed(raw.getvalue())
        screens.append(screen.lines())

    ctx = AppContext(output=out, clock=time, sleep=sleep)
    backend = Backend(["Queued"] * 5 + ["Running"] * 5 + ["Completed"], every=2.0)
    assert _watch(ctx, backend, None, NAME, None).status == "Completed"
    final = Screen(80)
    final.feed(raw.getvalue())
    screens.append(final.lines())
    assert len(screens) > 5
    for screen in screens:
        for line in screen:
            # the spinner's text ends with the detach note; a status line starts with the job name
            assert not re.search(r"running\)\S", line), screen
            assert line.count(NAME) <= 1, screen
        spinners = [line for line in screen if line.startswith(tuple(SPINNER))]
        assert len(spinners) <= 1, screen  # redrawn in place, never stacked
    # each status change is printed once, on a line of its own; the transient spinner is gone at the end
    printed = [line for line in final.lines() if line.startswith(f"{NAME}: ")]
    assert [line.split()[1] for line in printed] == ["Queued", "Running", "Completed"]
    assert not any(line.startswith(tuple(SPINNER)) for line in final.lines())
    assert final.lines()[0] == f"Watching {NAME} (Ctrl+C detaches; the job keeps running)"
    # while it ran, the spinner line showed the live status and elapsed time
    shown = [line for screen in screens for line in screen if line.startswith(tuple(SPINNER))]
    assert any(f"{NAME}: Running  elapsed 0m1" in line for line in shown), screens


def test_piped_watch_prints_changes_and_a_heartbeat_per_minute() -> None:
    err = io.StringIO()
    out = Output(stderr=err, interactive=False)
    time = FakeTime()
    ctx = AppContext(output=out, clock=time, sleep=time.sleep)
    polls = 360  # an hour of polls every 10 s
    backend = Backend(["Queued"] * 30 + ["Running"] * (polls - 30) + ["Completed"], every=10.0)
    assert _watch(ctx, backend, None, NAME, None).status == "Completed"
    lines = err.getvalue().splitlines()
    assert backend.polls > polls
    status_lines = [line for line in lines if line.startswith(f"{NAME}: ")]
    minutes = time.now / HEARTBEAT_S
    assert len(status_lines) <= minutes + 3 + 1  # a heartbeat a minute, plus three changes
    assert len(status_lines) >= minutes - 1
    assert [line.split()[1] for line in status_lines].count("Completed") == 1
    assert lines[0].startswith(f"Watching {NAME}")
