"""Convert common dataset shapes to chat-completion JSONL, streaming (``phi3ft convert``).

Containers (detected from the first bytes, then the name): JSON Lines, one JSON array document (parsed
incrementally, one element at a time), CSV / TSV, each optionally gzip-compressed (magic bytes ``1f 8b``),
and Parquet (magic ``PAR1``; needs the optional ``convert`` extra, pyarrow, imported only then).

Shapes of a record: OpenAI chat (``messages``; other keys are dropped), ShareGPT (``conversations`` of
``from``/``value``), Alpaca (``instruction``/``input``/``output``), prompt/completion, and table columns
mapped with ``--map user=COL assistant=COL [system=COL]``. ``auto`` picks the shape from the first records.

Every message content is stripped of surrounding whitespace (the template drops leading whitespace, and
trailing whitespace would be learned). A record that cannot become a valid chat example (an empty answer,
an unknown speaker, turns that do not alternate, ...) is skipped with its source line and the reason; a
file that cannot be read (malformed JSON, invalid UTF-8, unknown shape) stops the conversion with a
:class:`~phi3ft.errors.DataError` and leaves no output file. The output is written to a temporary file in
the target folder and renamed at the end, so an interrupted run leaves nothing behind. Never prints.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import os
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from phi3ft.data.scan import CONTROL
from phi3ft.errors import DataError, Phi3ftError, PrerequisiteError, UsageError

SHAPES = ("auto", "openai", "sharegpt", "alpaca", "prompt-completion", "table")
#: records looked at by ``--from auto``
DETECT_RECORDS = 20
#: a JSON array element larger than this is not one example (protects memory on a broken file)
MAX_ELEMENT_CHARS = 64 * 1024 * 1024
READ_CHUNK = 1 << 20
PARQUET_HINT = "pip install 'phi3ft[convert]' (from a checkout: pip install -e '.[convert]')"

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
#: table columns ``auto`` recognises, as (user column, assistant column)
TABLE_PAIRS = (
    ("question", "answer"),
    ("query", "response"),
    ("user", "assistant"),
    ("input", "output"),
    ("input", "target"),
    ("prompt", "response"),
)


@dataclass
class Skip:
    line: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class ConvertResult:
    source: Path
    output: Path
    container: str  # jsonl | json-array | csv | tsv | parquet
    compression: str | None
    shape: str
    detected: bool
    converted: int = 0
    system_added: int = 0
    skips: list[Skip] = field(default_factory=list)
    mapping: dict[str, str] | None = None

    @property
    def skipped(self) -> int:
        return len(self.skips)

    def skip_reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skips:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.source),
            "output": str(self.output),
            "container": self.container,
            "compression": self.compression,
            "shape": self.shape,
            "shape_detected": self.detected,
            "map": self.mapping,
            "converted": self.converted,
            "skipped": self.skipped,
            "system_added": self.system_added,
            "skip_reasons": self.skip_reasons(),
            "skips": [s.to_dict() for s in self.skips],
        }


# ---------------------------------------------------------------------------------------------------------
# Readers: each yields (source line, value); the value is whatever the container holds (usually a dict)
# ---------------------------------------------------------------------------------------------------------
def sniff(path: Path) -> tuple[str, str | None]:
    """``(container, compression)`` of ``path`` from its first bytes (and, for text tables, its name)."""
    with open(path, "rb") as f:
        head = f.read(4)
    compression = None
    name = path.name.lower()
    if head[:2] == b"\x1f\x8b":
        compression = "gzip"
        name = name.removesuffix(".gz")
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4096)
        except (OSError, EOFError) as exc:
            raise DataError(
                f"{path} is a damaged gzip file ({exc}).", f"Check the download: gzip -t {path}"
            ) from None
    else:
        with open(path, "rb") as f:
            head = f.read(4096)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(
            f"{path} is UTF-16 text; convert reads UTF-8.",
            f"Re-encode it: iconv -f utf-16 -t utf-8 {path} > utf8-{path.name}",
        )
    if head[:4] in (b"PK\x03\x04", b"\x28\xb5\x2f\xfd"):
        kind = "zip" if head[:2] == b"PK" else "zstd"
        raise DataError(
            f"{path} is a {kind} archive; convert reads plain or gzip-compressed files.",
            f"Unpack it first: {'unzip' if kind == 'zip' else 'zstd -d'} {path}",
        )
    if head[:4] == b"PAR1":
        if compression:
            raise DataError(f"{path} is a gzip-compressed Parquet file.", f"Decompress it: gunzip -k {path}")
        return "parquet", None
    if name.endswith(".parquet"):
        raise DataError(f"{path} is named .parquet but does not start with PAR1.", "Check the file.")
    if name.endswith(".tsv") or name.endswith(".tab"):
        return "tsv", compression
    if name.endswith(".csv"):
        return "csv", compression
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise DataError(f"{path} is empty.", "Pass a file with records.")
    if text[:1] == b"[":
        return "json-array", compression
    if text[:1] == b"{":
        return "jsonl", compression
    first = head.split(b"\n", 1)[0]
    return ("tsv" if b"\t" in first else "csv"), compression


def _open_binary(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _first_bad_line(path: Path, compression: str | None) -> int:
    """The 1-based line of the first invalid UTF-8 byte (a second pass, on the error path only)."""
    with _open_binary(path, compression) as f:
        for ln, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return ln
    return 0


def _utf8_error(path: Path, line: int, exc: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path}:{line}: invalid UTF-8 ({exc.reason}).",
        f"Re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > fixed{path.suffix}",
    )


def read_jsonl(path: Path, compression: str | None) -> Iterator[tuple[int, Any]]:
    with _open_binary(path, compression) as f:
        for ln, raw in enumerate(f, 1):
            body = raw.rstrip(b"\r\n")
            if ln == 1:
                body = body.removeprefix(b"\xef\xbb\xbf")
            if not body.strip():
                continue
            try:
                yield ln, orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as ude:
                    raise _utf8_error(path, ln, ude) from None
                if body.strip() == b"{":
                    raise DataError(
                        f"{path}:{ln}: a lone '{{': pretty-printed JSON objects, not JSON Lines.",
                        f"Write one object per line first: jq -c . {path} > {path.stem}.jsonl",
                    ) from None
                raise DataError(
                    f"{path}:{ln}: not valid JSON ({exc}).",
                    f"Fix or delete line {ln} (JSON Lines: one complete object per line), then re-run.",
                ) from None


def read_json_array(path: Path, compression: str | None) -> Iterator[tuple[int, Any]]:
    """The elements of one top-level JSON array, decoded one at a time (memory: one element + 1 MB)."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    buf = ""
    pos = 0
    line = 1  # line of buf[pos]
    eof = False
    started = False
    with _open_binary(path, compression) as f:

        def more() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = f.read(READ_CHUNK)
            try:
                text = utf8.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise _utf8_error(path, _first_bad_line(path, compression), exc) from None
            if not chunk:
                eof = True
            buf = buf[pos:] + text
            pos = 0
            return bool(chunk) or bool(text)

        def skip_ws() -> None:
            nonlocal pos, line
            while True:
                n = len(buf)
                start = pos
                while pos < n and buf[pos] in " \t\r\n\ufeff":
                    pos += 1
                line += buf.count("\n", start, pos)
                if pos < n or not more():
                    return

        def fail(what: str) -> DataError:
            return DataError(
                f"{path}:{line}: {what}.", "Check the JSON, e.g. `python -m json.tool FILE > /dev/null`."
            )

        skip_ws()
        if buf[pos : pos + 1] != "[":
            raise fail("not a JSON array")
        pos += 1
        started = True
        index = 0
        while started:
            skip_ws()
            if pos >= len(buf):
                raise fail("the array is not closed (file cut off?)")
            if buf[pos] == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise fail("data after the end of the array")
                return
            if index:
                if buf[pos] != ",":
                    raise fail("expected ',' between array elements")
                pos += 1
                skip_ws()
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if len(buf) - pos > MAX_ELEMENT_CHARS:
                        raise fail(f"element {index + 1} is not valid JSON ({exc.msg})") from None
                    if not more():
                        raise fail(f"element {index + 1} is not valid JSON ({exc.msg})") from None
                    continue
                if end == len(buf) and not eof and more():  # a number may continue in the next chunk
                    continue
                break
            index += 1
            yield line, value
            line += buf.count("\n", pos, end)
            pos = end


def read_table(path: Path, compression: str | None, delimiter: str) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    raw = _open_binary(path, compression)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    with text:
        reader = csv.DictReader(text, delimiter=delimiter)
        line = 1
        try:
            if reader.fieldnames is None:
                raise DataError(f"{path} is empty.", "Pass a file with a header row and records.")
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise DataError(f"{path}:{line}: {exc}.", "Check the quoting on that line.") from None
                yield line, row
        except UnicodeDecodeError as exc:
            raise _utf8_error(path, _first_bad_line(path, compression), exc) from None


def read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PrerequisiteError(
            f"{path} is Parquet, and reading Parquet needs pyarrow, which is not installed.", PARQUET_HINT
        ) from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise DataError(f"{path} is not a readable Parquet file ({exc}).", "Check the file.") from None
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def records(path: Path, container: str, compression: str | None) -> Iterator[tuple[int, Any]]:
    if container == "jsonl":
        return read_jsonl(path, compression)
    if container == "json-array":
        return read_json_array(path, compression)
    if container == "csv":
        return read_table(path, compression, ",")
    if container == "tsv":
        return read_table(path, compression, "\t")
    return read_parquet(path)


# ---------------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------------
class _Skip(Exception):
    """A record that cannot be converted (the message is the reason)."""


def detect_shape(samples: Sequence[Any], mapping: Mapping[str, str] | None) -> str | None:
    """The shape of the first records (majority of the objects among them), or None."""
    if mapping:
        return "table"
    votes: dict[str, int] = {}
    for rec in samples:
        if not isinstance(rec, dict):
            continue
        shape = _shape_of(rec)
        if shape:
            votes[shape] = votes.get(shape, 0) + 1
    if not votes:
        return None
    return max(votes.items(), key=lambda kv: kv[1])[0]


def _shape_of(rec: dict[str, Any]) -> str | None:
    if "messages" in rec:
        return "openai"
    if "conversations" in rec:
        return "sharegpt"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    if "prompt" in rec and "completion" in rec:
        return "prompt-completion"
    if table_columns(rec) is not None:
        return "table"
    return None


def table_columns(rec: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``--map`` that ``auto`` uses for a table whose columns are a known pair, or None."""
    lower = {str(k).lower(): str(k) for k in rec}
    for user, assistant in TABLE_PAIRS:
        if user in lower and assistant in lower:
            found = {"user": lower[user], "assistant": lower[assistant]}
            if "system" in lower:
                found["system"] = lower["system"]
            return found
    return None


def parse_map(items: Sequence[str]) -> dict[str, str]:
    """``["user=question", "assistant=answer"]`` -> ``{"user": "question", "assistant": "answer"}``."""
    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            role, sep, column = part.partition("=")
            role = role.strip().lower()
            if not sep or not column.strip() or role not in ("user", "assistant", "system"):
                raise UsageError(
                    f"--map {part!r} is not ROLE=COLUMN with ROLE user, assistant or system.",
                    "Example: --map user=question --map assistant=answer [--map system=context]",
                )
            out[role] = column.strip()
    if out and not {"user", "assistant"} <= set(out):
        raise UsageError(
            "--map needs both user=COLUMN and assistant=COLUMN.",
            "Example: --map user=question --map assistant=answer",
        )
    return out


def _text(value: Any, what: str) -> str:
    if value is None:
        raise _Skip(f"{what} is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Skip(f"{what} is a {type(value).__name__}, not text")
    return str(value).strip()


def _from_openai(rec: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise _Skip("`messages` is not a list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _Skip(f"messages[{i}] is not an object")
        role = m.get("role")
        if not isinstance(role, str) or role.strip().lower() not in ("system", "user", "assistant"):
            raise _Skip(f"messages[{i}] has role {role!r}, not system/user/assistant")
        msg: dict[str, Any] = {
            "role": role.strip().lower(),
            "content": _text(m.get("content"), f"messages[{i}].content"),
        }
        if "weight" in m:
            msg["weight"] = m["weight"]
        out.append(msg)
    return out


def _from_sharegpt(rec: dict[str, Any]) -> list[dict[str, Any]]:
    conv = rec.get("conversations")
    if not isinstance(conv, list):
        raise _Skip("`conversations` is missing or not a list")
    out = []
    system = rec.get("system")
    if isinstance(system, str) and system.strip():
        out.append({"role": "system", "content": system.strip()})
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise _Skip(f"conversations[{i}] is not an object")
        speaker = turn.get("from", turn.get("role"))
        role = SHAREGPT_ROLES.get(str(speaker).strip().lower()) if speaker is not None else None
        if role is None:
            raise _Skip(f"conversations[{i}] is from {speaker!r} (not human/gpt/system)")
        value = turn["value"] if "value" in turn else turn.get("content")
        out.append({"role": role, "content": _text(value, f"conversations[{i}].value")})
    return out


def _from_alpaca(rec: dict[str, Any]) -> list[dict[str, Any]]:
    instruction = _text(rec.get("instruction"), "`instruction`")
    extra = rec.get("input")
    extra_text = _text(extra, "`input`") if extra not in (None, "") else ""
    out: list[dict[str, Any]] = []
    system = rec.get("system")
    if isinstance(system, str) and system.strip():
        out.append({"role": "system", "content": system.strip()})
    history = rec.get("history")
    if isinstance(history, list):
        for i, pair in enumerate(history):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _Skip(f"history[{i}] is not a [question, answer] pair")
            out.append({"role": "user", "content": _text(pair[0], f"history[{i}][0]")})
            out.append({"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")})
    user = f"{instruction}\n\n{extra_text}" if instruction and extra_text else instruction or extra_text
    out.append({"role": "user", "content": user})
    out.append({"role": "assistant", "content": _text(rec.get("output"), "`output`")})
    return out


def _from_prompt_completion(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": _text(rec.get("prompt"), "`prompt`")},
        {"role": "assistant", "content": _text(rec.get("completion"), "`completion`")},
    ]


def _table(mapping: Mapping[str, str]) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    def convert(rec: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for role in ("system", "user", "assistant"):
            column = mapping.get(role)
            if column is None:
                continue
            if column not in rec:
                raise _Skip(f"column {column!r} is missing")
            value = rec[column]
            if role == "system" and (value is None or value == ""):
                continue
            out.append({"role": role, "content": _text(value, f"column {column!r}")})
        return out

    return convert


def _problem(messages: list[dict[str, Any]]) -> str | None:
    """Why these messages are not one trainable chat example, or None."""
    if not messages:
        return "no messages"
    roles = [m["role"] for m in messages]
    for m in messages:
        if not m["content"]:
            return f"empty {m['role']} content"
        bad = CONTROL.search(m["content"])
        if bad is not None:
            return f"control character U+{ord(bad.group(0)):04X} in {m['role']} content"
    if roles.count("system") > 1 or ("system" in roles and roles[0] != "system"):
        return "system message not (only) at the start"
    turns = roles[1:] if roles[0] == "system" else roles
    if not turns or turns[0] != "user":
        return "the conversation does not start with a user turn"
    for a, b in itertools.pairwise(turns):
        if a == b:
            return f"two {a} turns in a row"
    if turns[-1] != "assistant":
        return "the conversation does not end with an assistant turn"
    return None


# ---------------------------------------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------------------------------------
def default_output(source: Path) -> Path:
    """``data.csv`` -> ``data.chat.jsonl`` (``.gz`` and the extension dropped), next to the input."""
    name = source.name
    for suffix in (".gz",):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return source.with_name(f"{stem}.chat.jsonl")


def convert_file(
    source: Path,
    output: Path | None = None,
    *,
    shape: str = "auto",
    mapping: Mapping[str, str] | None = None,
    system: str | None = None,
    force: bool = False,
) -> ConvertResult:
    """Convert ``source`` to chat JSONL at ``output`` (default :func:`default_output`); see the module doc."""
    if shape not in SHAPES:
        raise UsageError(f"--from {shape!r} is not one of {', '.join(SHAPES)}.", "Use --from auto.")
    if not source.exists():
        raise UsageError(f"{source} does not exist.", "Check the path of the file to convert.")
    if not source.is_file():
        raise UsageError(f"{source} is not a file.", "Pass the dataset file to convert.")
    dest = output if output is not None else default_output(source)
    if dest.exists() and source.resolve() == dest.resolve():
        raise UsageError("the output would overwrite the input.", "Pass another -o/--output path.")
    if dest.exists() and not force:
        raise UsageError(
            f"{dest} already exists; not overwriting.", "Pass --force to overwrite, or -o OTHER.jsonl."
        )
    if dest.is_dir():
        raise UsageError(f"{dest} is a directory.", "Pass a file path to -o/--output.")
    if source.stat().st_size == 0:
        raise DataError(f"{source} is empty (0 bytes).", "Pass a file with records.")
    mapping = dict(mapping or {})
    if shape == "table" and not mapping:
        raise UsageError("--from table needs --map.", "Example: --map user=question --map assistant=answer")
    container, compression = sniff(source)
    try:
        return _convert(source, dest, container, compression, shape, mapping, system)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{source} is a damaged gzip file ({type(exc).__name__}: {exc}).",
            f"Check the download: gzip -t {source}",
        ) from None
    except OSError as exc:  # the output folder is not writable, the disk is full, ...
        raise Phi3ftError(
            f"cannot write {dest}: {exc.strerror or exc}.",
            "Pick a folder you can write to with enough free space (-o PATH).",
        ) from None


def _convert(
    source: Path,
    dest: Path,
    container: str,
    compression: str | None,
    shape: str,
    mapping: dict[str, str],
    system: str | None,
) -> ConvertResult:
    it = records(source, container, compression)
    head: list[tuple[int, Any]] = []
    for item in it:
        head.append(item)
        if len(head) >= DETECT_RECORDS:
            break
    detected = shape == "auto"
    if detected:
        picked = detect_shape([rec for _, rec in head], mapping)
        if picked is None:
            keys = sorted({str(k) for _, rec in head if isinstance(rec, dict) for k in rec})[:8]
            raise DataError(
                f"cannot tell the shape of {source.name} from its first records"
                + (f" (keys/columns: {', '.join(keys)})." if keys else " (no records)."),
                "Pass --from sharegpt|alpaca|prompt-completion|openai, or --map user=COLUMN assistant=COLUMN.",
            )
        shape = picked
    first_rec: dict[str, Any] | None = next((rec for _, rec in head if isinstance(rec, dict)), None)
    if shape == "table" and not mapping:
        mapping = table_columns(first_rec or {}) or {}
    if shape == "table":
        first = first_rec
        if first is not None:
            missing = [c for c in mapping.values() if c not in first]
            if missing:
                cols = ", ".join(str(k) for k in first)
                raise DataError(
                    f"--map column {missing[0]!r} is not in {source.name} (columns: {cols}).",
                    "Use the column names of the header row, e.g. --map user=question assistant=answer",
                )
    converter: Callable[[dict[str, Any]], list[dict[str, Any]]] = {
        "openai": _from_openai,
        "sharegpt": _from_sharegpt,
        "alpaca": _from_alpaca,
        "prompt-completion": _from_prompt_completion,
        "table": _table(mapping),
    }[shape]
    result = ConvertResult(
        source, dest, container, compression, shape, detected, mapping=mapping if shape == "table" else None
    )
    system_text = system.strip() if system else None
    folder = dest.parent if str(dest.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{dest.name}.", suffix=".tmp", delete=False)  # noqa: SIM115 - closed below
    try:
        with tmp:
            write = tmp.write
            for ln, rec in _chain(head, it):
                if not isinstance(rec, dict):
                    result.skips.append(Skip(ln, f"not an object ({type(rec).__name__})"))
                    continue
                try:
                    messages = converter(rec)
                except _Skip as exc:
                    result.skips.append(Skip(ln, str(exc)))
                    continue
                added = bool(system_text) and not (messages and messages[0]["role"] == "system")
                if added:
                    messages.insert(0, {"role": "system", "content": system_text})
                problem = _problem(messages)
                if problem:
                    result.skips.append(Skip(ln, problem))
                    continue
                try:
                    line = orjson.dumps({"messages": messages})
                except orjson.JSONEncodeError:  # a lone surrogate (\ud800-\udfff) from a JSON array
                    result.skips.append(Skip(ln, "text with an unpaired surrogate escape"))
                    continue
                write(line + b"\n")
                result.converted += 1
                result.system_added += added
            tmp.flush()
            os.fsync(tmp.fileno())
        if result.converted == 0:
            reasons = result.skip_reasons()
            common = next(iter(reasons), "no records")
            raise DataError(
                f"no record of {source.name} could be converted as {shape} ({result.skipped} skipped; "
                f"most common reason: {common}).",
                "Check --from / --map against the file's keys or columns.",
            )
        publish(tmp.name, dest)
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    return result


def publish(tmp: str, dest: Path) -> None:
    """Give a finished temporary file the usual permissions (umask, not 0600) and rename it to ``dest``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def _chain(head: list[tuple[int, Any]], rest: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    yield from head
    yield from rest
