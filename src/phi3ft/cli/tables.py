"""Plain aligned tables for lists of identifiers (jobs, endpoints, models).

Rich tables fit the terminal by wrapping or cutting cells (``phi3ft-phi-3-mini-4…``); an identifier a user
copies must never be cut or wrapped. These tables pad columns to the widest value and print each row on one
line, at any terminal width and when piped: a line longer than the terminal is soft-wrapped by the terminal
itself, so selecting it still copies the whole value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_rows(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> str:
    """``headers`` and ``rows`` as text: columns separated by two spaces, no cell truncated or wrapped."""
    cells = [[str(h) for h in headers], *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def print_rows(
    out: Any, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()
) -> None:
    """Write :func:`format_rows` to the command's stdout (redacted like everything else)."""
    out.stdout.write(format_rows(headers, rows, right=right))
    out.stdout.flush()


def print_line(out: Any, text: str) -> None:
    """One line of data on stdout, never wrapped or interpreted as markup (URLs, names, service text)."""
    out.stdout.write(text + "\n")
    out.stdout.flush()
