"""Output sink: stdout carries data (``--json``), stderr carries everything meant for people.

Services never print; ``cli`` renders through one :class:`Output` so that ``--json`` stays parseable
and progress, warnings and hints never mix with data.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console

from phi3ft.errors import UsageError
from phi3ft.redact import redact


def esc(value: object) -> str:
    """``value`` as Rich markup that prints it literally (``[/]``, ``[bold]``, ``[y/N]`` stay text)."""
    from rich.markup import escape

    return escape(str(value))


class _RedactingStream:
    """A text stream that passes every write through :func:`phi3ft.redact.redact` (unless revealing)."""

    def __init__(self, raw: TextIO, owner: Output) -> None:
        self.raw = raw
        self._owner = owner

    def write(self, text: str) -> int:
        self.raw.write(text if self._owner._revealing else redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


class StatusLine:
    """The live line of :meth:`Output.status`: ``live`` on a TTY (``update`` redraws it), inert otherwise."""

    def __init__(self, status: Any | None) -> None:
        self._status = status

    @property
    def live(self) -> bool:
        return self._status is not None

    def update(self, message: str) -> None:
        if self._status is not None:
            self._status.update(esc(message))


class Output:
    """Where a command writes. ``json_mode`` switches the data channel to one JSON document."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        interactive: bool | None = None,
        terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self._stdout = stdout
        self._stderr = stderr
        self._interactive = interactive
        #: Tests: render as a terminal of ``width`` columns (Rich's force_terminal), e.g. the live watch line.
        self._terminal = terminal
        self._width = width
        #: The stderr console a live status line is drawn on; every stderr print goes through it meanwhile.
        self._pinned_err: Console | None = None
        no_color = bool(os.environ.get("NO_COLOR"))
        self._out_console: Console | None = None
        self._err_console: Console | None = None
        self._no_color = no_color
        self._revealing = False
        self._wrapped: dict[int, _RedactingStream] = {}
        #: JSON written on stdout so far: ``"document"`` or ``"lines"`` (an NDJSON stream), else ``None``.
        self.json_written: str | None = None

    # Streams are resolved lazily so CliRunner's swapped sys.stdout/sys.stderr are honoured. Both are
    # wrapped: whatever a command writes through them (tables, JSON, log text, progress) is redacted.
    def _wrap(self, raw: TextIO) -> TextIO:
        if isinstance(raw, _RedactingStream):
            return raw
        wrapped = self._wrapped.get(id(raw))
        if wrapped is None or wrapped.raw is not raw:
            wrapped = self._wrapped[id(raw)] = _RedactingStream(raw, self)
        return wrapped  # type: ignore[return-value]

    @property
    def stdout(self) -> TextIO:
        return self._wrap(self._stdout or sys.stdout)

    @property
    def stderr(self) -> TextIO:
        return self._wrap(self._stderr or sys.stderr)

    @contextmanager
    def unredacted(self) -> Iterator[None]:
        """Print secrets the user explicitly asked for (``keys --show``); nothing else uses it."""
        self._revealing = True
        try:
            yield
        finally:
            self._revealing = False

    @property
    def console(self) -> Console:
        """Rich console on stdout, for human reports (not used in JSON mode)."""
        if self._out_console is None or self._out_console.file is not self.stdout:
            self._out_console = Console(
                file=self.stdout, no_color=self._no_color, highlight=False, soft_wrap=False
            )
        return self._out_console

    @property
    def err(self) -> Console:
        """Rich console on stderr, for progress, warnings and hints."""
        if self._pinned_err is not None:
            # A live status line redirects sys.stderr while it runs: a console built on that proxy would
            # draw over the spinner ("...job keeps running)phi3ft-...: Queued"). Print on the live one.
            return self._pinned_err
        if self._err_console is None or self._err_console.file is not self.stderr:
            self._err_console = Console(
                file=self.stderr,
                no_color=self._no_color,
                highlight=False,
                soft_wrap=True,
                force_terminal=self._terminal,
                width=self._width,
            )
        return self._err_console

    @property
    def interactive(self) -> bool:
        if self._interactive is not None:
            return self._interactive
        try:
            return sys.stdin.isatty() and self.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    # ---- data channel -------------------------------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        """Write one JSON document to stdout."""
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")
        self.stdout.flush()
        self.json_written = "document"

    def emit_json_line(self, data: Any) -> None:
        """Write one compact JSON object per line (event streams with ``--json``)."""
        self.stdout.write(json.dumps(data, ensure_ascii=False, default=_json_default) + "\n")
        self.stdout.flush()
        self.json_written = self.json_written or "lines"

    def emit_json_error(self, code: str, message: str, hint: str | None, exit_code: int) -> None:
        """The failure as ``{"error": {...}}`` on stdout (``--json``), unless the command's own document
        already went out (``check --json`` prints its report, ``"ok": false``, then exits 4): stdout then
        still holds exactly one document. After an NDJSON stream the error is its last line."""
        if self.json_written == "document":
            return
        doc = {"error": {"code": code, "message": message, "hint": hint, "exit_code": exit_code}}
        if self.json_written == "lines":
            self.emit_json_line(doc)
        else:
            self.emit_json(doc)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Human data on stdout (reports, tables)."""
        self.console.print(*objects, **kwargs)

    # ---- people channel -----------------------------------------------------------------------------
    # Every message is plain text: user data and service text (paths, roles, regex patterns, ``[y/N]``)
    # hold square brackets that Rich would otherwise eat as markup or reject with a MarkupError. A caller
    # that styles part of a line passes ``markup=True`` and escapes what it interpolates (``esc``).
    def info(self, message: str, *, markup: bool = False) -> None:
        if not self.quiet:
            self.err.print(message if markup else esc(message))

    def success(self, message: str, *, markup: bool = False) -> None:
        if not self.quiet:
            self.err.print(f"[green]✓[/green] {message if markup else esc(message)}")

    def warn(self, message: str, *, markup: bool = False) -> None:
        self.err.print(f"[yellow]Warning:[/yellow] {message if markup else esc(message)}")

    def hint(self, message: str) -> None:
        """``message`` is plain text: square brackets (``pip install '.[train]'``) are printed as written."""
        self.err.print(f"[cyan]Hint:[/cyan] {esc(message)}")

    def error(self, message: str, hint: str | None = None) -> None:
        """Plain-text ``message`` and ``hint`` (never Rich markup: paths and service text may hold brackets)."""
        self.err.print(f"[red]Error:[/red] {esc(message)}", markup=True, highlight=False)
        if hint:
            self.hint(hint)

    @contextmanager
    def status(self, message: str) -> Iterator[StatusLine]:
        """A spinner on a TTY; a single line otherwise (CI logs stay readable).

        Yields a :class:`StatusLine`: ``update(text)`` rewrites the spinner's text in place on a TTY.
        Lines printed meanwhile (``info``, ``warn``) appear above the spinner, never on its line.
        """
        if self.quiet:
            yield StatusLine(None)
            return
        console = self.err
        if console.is_terminal:
            self._pinned_err = console
            try:
                with console.status(esc(message)) as live:
                    yield StatusLine(live)
            finally:
                self._pinned_err = None
        else:
            console.print(esc(message))
            yield StatusLine(None)

    def confirm(self, question: str, *, assume_yes: bool = False) -> bool:
        """Ask on a TTY; refuse with a usage error when nobody can answer (CI)."""
        if assume_yes:
            return True
        if not self.interactive:
            raise UsageError(
                f"{question} needs confirmation, and there is no terminal to ask.",
                "Pass --yes to confirm non-interactively (CI).",
            )
        self.err.print(f"{esc(question)} \\[y/N] ", end="")
        answer = sys.stdin.readline().strip().lower()
        return answer in {"y", "yes"}
