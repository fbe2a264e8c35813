"""The one JSONL reader: ``validate``, ``split``, the trainer and ``eval`` all read chat JSONL through it.

What every consumer gets, the same way (``tests/unit/test_data_records.py`` reads one file per quirk
through each of them):

- **Lines** end at ``\\n`` (only): a ``\\r`` before it is dropped (CRLF files are accepted; ``validate``
  reports them as F13), and Unicode line separators inside a record (U+2028, U+0085, ...) are part of the
  record, as in JSON. The last line may lack its newline.
- **BOM**: a UTF-8 byte-order mark at the start of the file is stripped (``validate`` reports F06).
- **Blank lines** (empty or only ASCII whitespace) are skipped (``validate`` reports L03).
- **Encoding**: UTF-8 only. Invalid UTF-8 in a line is an error that names the line and the byte; a
  UTF-16/32 or compressed file is recognised from its first bytes and refused with the command that
  converts it (``validate``: F05 / F17).
- **JSON**: each non-blank line is one JSON value, parsed with orjson (so ``NaN`` and lone surrogates are
  errors everywhere; ``validate``: L01 / M15).

:func:`iter_lines` is the line splitter (what ``validate`` runs its line rules on); :func:`read_records`
adds the parsing and raises :class:`~phi3ft.errors.DataError` at the first line that is not a JSON object,
for the consumers that need every record (split, train, eval).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from phi3ft.errors import DataError

BOM = b"\xef\xbb\xbf"
#: Read size: validate reads blocks of this size (lines of a few kB make small reads expensive).
READ_BUFFER = 1 << 20
#: A line longer than this cannot be one sensible example (131k tokens are ~0.5 MB of text).
MAX_LINE_BYTES = 64 * 1024 * 1024


class Line(NamedTuple):
    """One line of a JSONL file. ``body`` has no newline, CR or BOM; ``offset`` is the file offset of
    ``body[0]``. ``body`` is None for a line over the length limit (skipped without being held)."""

    number: int
    offset: int
    body: bytes | None
    has_newline: bool
    crlf: bool
    bom: bool


def is_blank(body: bytes) -> bool:
    """Empty or only ASCII whitespace: skipped by every reader (``validate``: L03)."""
    return not body or body.isspace()


def iter_lines(
    f: IO[bytes],
    *,
    first_line: int = 1,
    start: int = 0,
    end: int | None = None,
    read_buffer: int = READ_BUFFER,
    max_line: int = MAX_LINE_BYTES,
    on_block: Callable[[int], None] | None = None,
) -> Iterator[Line]:
    """The lines of ``f`` from byte ``start`` (a line start, ``f`` positioned there) to ``end``.

    ``first_line`` is the number of the line at ``start``; a BOM is stripped only from line 1.
    ``on_block(offset)`` is called after each read with the file offset reached (progress).
    """
    read = f.read
    ln = first_line - 1
    stop = end if end is not None else 1 << 62
    buf = b""
    base = start  # file offset of buf[0]
    pos = 0  # next line start in buf
    searched = 0  # buf[pos:searched] has no newline
    eof = False
    while base + pos < stop:
        nl = buf.find(b"\n", max(pos, searched), pos + max_line)
        if nl < 0:
            if len(buf) - pos >= max_line:  # an overlong line: skip it without holding it
                ln += 1
                at = base + pos
                k = buf.find(b"\n", pos + max_line)
                while k < 0 and not eof:
                    base += len(buf)
                    buf = read(read_buffer)
                    eof = not buf
                    k = buf.find(b"\n")
                pos = searched = len(buf) if k < 0 else k + 1
                yield Line(ln, at, None, k >= 0, False, False)
                continue
            if not eof:
                more = read(max(read_buffer, len(buf) - pos))  # doubling: a long line is read once
                if more:
                    searched = len(buf) - pos
                    buf = buf[pos:] + more if pos < len(buf) else more
                    base += pos
                    pos = 0
                    if on_block is not None:
                        on_block(base)
                    continue
                eof = True
            if pos >= len(buf):
                break
            body = buf[pos:]
            has_newline = False
            crlf = False
            size = len(body)
        else:
            body = buf[pos:nl]
            has_newline = True
            size = len(body) + 1
            crlf = body[-1:] == b"\r"
            if crlf:
                body = body[:-1]
        ln += 1
        offset = base + pos
        pos += size
        searched = pos
        bom = ln == 1 and body[:3] == BOM
        if bom:
            body = body[3:]
            offset += 3
        yield Line(ln, offset, body, has_newline, crlf, bom)


class Record(NamedTuple):
    """One parsed record: the 1-based line, the file offset and bytes of the line (as :class:`Line`),
    and the JSON value."""

    line: int
    offset: int
    body: bytes
    value: Any


def utf8_error(body: bytes) -> UnicodeDecodeError | None:
    """Where ``body`` is not UTF-8, or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    return None


def _refuse_other_encodings(path: Path, hint: str) -> None:
    from phi3ft.data.scan import SNIFF_BYTES, conversion_command, sniff_file_kind

    with open(path, "rb") as f:
        kind = sniff_file_kind(f.read(SNIFF_BYTES))
    if kind is None:
        return
    command, _ = conversion_command(kind, path)
    what = (
        f"{kind.name} text, not UTF-8" if kind.kind == "text" else f"{kind.name}-compressed, not JSON Lines"
    )
    raise DataError(f"{path} is {what} ({kind.evidence}).", f"Convert it first: `{command}`. {hint}")


def read_records(path: Path, *, hint: str | None = None) -> Iterator[Record]:
    """Every non-blank line of ``path`` as a parsed :class:`Record`, in file order.

    Raises :class:`~phi3ft.errors.DataError` (``path:line: ...`` and ``hint``, default: run
    ``phi3ft validate``) for a missing or unreadable file, a UTF-16/32 or compressed file, invalid UTF-8,
    a line that is not JSON or not a JSON object, or a line over the length limit.
    """
    path = Path(path)
    hint = hint or f"Check the file with `phi3ft validate {shlex.quote(str(path))}`."
    if not path.exists():
        raise DataError(f"{path} does not exist.", hint)
    if not path.is_file():
        raise DataError(f"{path} is not a regular file.", hint)
    try:
        _refuse_other_encodings(path, hint)
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below (a generator)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}.", hint) from None
    loads = orjson.loads
    with f:
        for line in iter_lines(f):
            body = line.body
            if body is None:
                raise DataError(f"{path}:{line.number}: the line is over {MAX_LINE_BYTES // 2**20} MB.", hint)
            if is_blank(body):
                continue
            try:
                value = loads(body)
            except orjson.JSONDecodeError as exc:
                bad = utf8_error(body)
                if bad is not None:
                    raise DataError(
                        f"{path}:{line.number}: invalid UTF-8 at byte {bad.start} of the line "
                        f"(file offset {line.offset + bad.start}): {bad.reason}.",
                        hint,
                    ) from None
                raise DataError(f"{path}:{line.number}: not valid JSON ({exc.msg}).", hint) from None
            if type(value) is not dict:
                raise DataError(f"{path}:{line.number}: a JSON {type(value).__name__}, not an object.", hint)
            yield Record(line.number, line.offset, body, value)
