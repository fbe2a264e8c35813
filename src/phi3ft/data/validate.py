"""Validate chat-completion JSONL for Phi fine-tuning: every rule, one streaming pass, exact token counts.

Public API (stable)::

    from phi3ft.data.validate import validate_dataset, ValidationReport
    report = validate_dataset(Path("train.jsonl"), Path("valid.jsonl"), model="phi-4-mini-instruct")
    report.valid            # False when any error (warnings count as errors with strict=True)
    report.issues           # list[Issue]: rule, severity, file, line, path, message, hint
    report.counts           # {rule_id: number of findings}, complete even when issues are capped
    report.stats            # examples, messages, tokens {total, assistant, per_example{...}}, ...
    report.tokenizer        # {"name", "source", "origin", "exact": True} or {"name": None, "reason": ...}
    report.to_dict()        # the JSON document of ``phi3ft validate --format json`` (README "Validate")

Design: the file is streamed line by line (orjson on bytes; constant memory). What is kept grows only
with the number of examples, as fixed-size values: a 64-bit duplicate key and position per example
and a few integers per example for the percentile statistics. Token counts are exact: each distinct
message chunk is encoded once (phi3ft.data.counting). Services never print: progress is a callback.
Without a tokenizer, a large file is checked in byte ranges by worker processes (phi3ft.data.parallel) and
merged in range order into the same report.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import shlex
from array import array
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson

from phi3ft import catalog
from phi3ft.data import parallel
from phi3ft.data.counting import ChunkCounter, constant_counts
from phi3ft.data.engine import MESSAGE_CHECKS, RECORD_CHECKS, Conversation, MessageCheck
from phi3ft.data.records import MAX_LINE_BYTES, READ_BUFFER, is_blank, iter_lines, utf8_error
from phi3ft.data.rules import RULES, SEVERITY_ORDER, TOKEN_RULES
from phi3ft.data.scan import (
    G_ALL,
    G_CONTROL,
    G_SPECIAL,
    SNIFF_BYTES,
    CaseCounter,
    DuplicateIndex,
    LineScanner,
    conversion_command,
    dup_key,
    sensitive,
    sniff_file_kind,
)
from phi3ft.data.tokens import (
    RANK_FILES,
    ChatFormat,
    Encoder,
    TokenizerUnavailable,
    chat_format,
    load_tokenizer,
    self_test,
)
from phi3ft.errors import UsageError
from phi3ft.hub import download_commands

SCHEMA_VERSION = 1
MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 100
LARGE_FILE_BYTES = 512 * 1024 * 1024
#: Rule T09: without a tokenizer, examples longer than this many characters are flagged.
T09_CHARS = 10_000
#: What ``hf download`` needs to fetch for an exact tokenizer (chat special tokens included).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
#: The estimate used without a tokenizer (labelled as such everywhere it appears).
CHARS_PER_TOKEN = 4.0
#: Per-rule cap on stored findings when the caller does not set ``max_errors`` (counts stay complete).
DEFAULT_STORED_PER_RULE = 200
DUPLICATE_LINES_SHOWN = 10

ROLES = ("system", "user", "assistant")
ALLOWED_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight"})
TOOL_KEYS = frozenset({"tools", "functions", "tool_choice", "function_call", "parallel_tool_calls"})
OTHER_FORMAT_KEYS = frozenset({"prompt", "completion", "text", "chosen", "rejected", "input", "output"})
#: A first message's content at least this long has its digest (the token counter's key) remembered, in
#: two generations of DIGEST_CHARS characters each: long system prompts repeat (what follows them rarely).
DIGEST_MIN_CHARS = 256
DIGEST_CHARS = 500_000
#: first byte of a chunk's key for the token counter (the rest: the blake2b digest of the content)
_ROLE_TAG = {"system": b"s", "user": b"u", "assistant": b"a"}


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def _common_suffix(a: str, b: str) -> str:
    return _common_prefix(a[::-1], b[::-1])[::-1]


# ---------------------------------------------------------------------------------------------------------
# Report types
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Issue:
    """One finding. ``line`` is 1-based (None for file/dataset-level findings without a line)."""

    rule: str
    severity: str
    file: str
    line: int | None
    path: str | None
    message: str
    hint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


def _distribution(values: Iterable[int]) -> dict[str, float | int] | None:
    data = sorted(values)
    if not data:
        return None
    n = len(data)

    def pct(p: float) -> int:  # nearest-rank percentile: a value that occurs in the data
        k = max(1, -(-int(p * n * 1000) // 100000))
        return int(data[min(n, k) - 1])

    return {
        "min": int(data[0]),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": int(data[-1]),
        "mean": round(sum(data) / n, 1),
    }


@dataclass
class ValidationReport:
    """What ``validate_dataset`` found. ``to_dict()`` is the documented ``--format json`` document."""

    valid: bool
    model: str
    strict: bool
    files: list[dict[str, Any]]
    issues: list[Issue]
    counts: dict[str, int]
    severity_counts: dict[str, int]
    stats: dict[str, Any]
    tokenizer: dict[str, Any]
    skipped_rules: dict[str, str]
    issues_truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "valid": self.valid,
            "model": self.model,
            "strict": self.strict,
            "files": self.files,
            "summary": {
                "errors": self.severity_counts.get("error", 0),
                "warnings": self.severity_counts.get("warning", 0),
                "infos": self.severity_counts.get("info", 0),
                "by_rule": dict(sorted(self.counts.items())),
                "issues_truncated": self.issues_truncated,
            },
            "tokenizer": self.tokenizer,
            "skipped_rules": self.skipped_rules,
            "stats": self.stats,
            "issues": [i.to_dict() for i in self.issues],
        }


# ---------------------------------------------------------------------------------------------------------
# The validator
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _FileState:
    path: Path
    role: str  # "train" | "validation"
    size: int = 0
    lines: int = 0
    records: int = 0  # lines that parsed as JSON objects
    blank: int = 0
    crlf: int = 0
    bom: bool = False
    aborted: str | None = None


@dataclass
class _Stats:
    messages: array = field(default_factory=lambda: array("I"))
    tokens: array = field(default_factory=lambda: array("I"))
    assistant: array = field(default_factory=lambda: array("I"))
    chars: array = field(default_factory=lambda: array("Q"))
    per_role: dict[str, int] = field(default_factory=dict)
    no_system: list[int] = field(default_factory=list)  # first lines only
    no_system_count: int = 0
    examples: int = 0
    upper: int = 0
    lower: int = 0
    first_answer: str | None = None
    all_answers_same: bool = True
    answers: int = 0
    prefix: str | None = None
    suffix: str | None = None

    def merge(self, other: _Stats) -> None:
        """Add the statistics of the records that come after this one's (a later byte range)."""
        self.messages.extend(other.messages)
        self.tokens.extend(other.tokens)
        self.assistant.extend(other.assistant)
        self.chars.extend(other.chars)
        for role, n in other.per_role.items():
            self.per_role[role] = self.per_role.get(role, 0) + n
        self.no_system = (self.no_system + other.no_system)[:DUPLICATE_LINES_SHOWN]
        self.no_system_count += other.no_system_count
        self.examples += other.examples
        self.upper += other.upper
        self.lower += other.lower
        if other.answers:
            if not self.answers:
                self.first_answer, self.all_answers_same = other.first_answer, other.all_answers_same
                self.prefix, self.suffix = other.prefix, other.suffix
            else:
                if self.all_answers_same and (
                    not other.all_answers_same or other.first_answer != self.first_answer
                ):
                    self.all_answers_same, self.first_answer = False, None
                if self.prefix and other.prefix is not None:
                    self.prefix = _common_prefix(self.prefix, other.prefix)
                if self.suffix and other.suffix is not None:
                    self.suffix = _common_suffix(self.suffix, other.suffix)
            self.answers += other.answers


class _Keys:
    """Duplicate keys and positions of the records a worker saw, as compact arrays for the parent."""

    __slots__ = ("keys", "lengths", "lines", "offsets")

    def __init__(self) -> None:
        self.keys = array("Q")
        self.lines = array("Q")
        self.offsets = array("Q")
        self.lengths = array("Q")

    def add(self, key: int, line: int, offset: int, length: int) -> None:
        self.keys.append(key)
        self.lines.append(line)
        self.offsets.append(offset)
        self.lengths.append(length)


@dataclass
class _RangeResult:
    """What a worker found in one byte range of a file (merged by the parent in range order)."""

    issues: list[Issue]
    counts: dict[str, int]
    severity_counts: dict[str, int]
    truncated: bool
    lines: int
    records: int
    blank: int
    crlf: int
    bom: bool
    stats: _Stats
    keys: _Keys


@dataclass(frozen=True)
class _WorkerConfig:
    model: str
    strict: bool
    max_errors: int | None
    allow_truncation: bool
    allow_secrets: bool


def _scan_range(
    cfg: _WorkerConfig, path: str, role: str, start: int, end: int, first_line: int
) -> _RangeResult:
    """Worker process: every line rule on the lines in ``[start, end)`` of ``path`` (no tokenizer)."""
    profile = resolve_profile(cfg.model)
    v = _Validator(
        profile=profile,
        fmt=chat_format(profile.template),
        encoder=None,
        strict=cfg.strict,
        max_errors=cfg.max_errors,
        progress=None,
        allow_truncation=cfg.allow_truncation,
        allow_secrets=cfg.allow_secrets,
    )
    v._keys = _Keys()
    v._file, v._role = path, role
    state = _FileState(Path(path), role)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        v._scan_lines(f, state, first_line=first_line, start=start, end=end, detect_document=False)
    v.flush_cases()
    return _RangeResult(
        issues=v.issues,
        counts=v.counts,
        severity_counts=v.severity_counts,
        truncated=v.truncated,
        lines=state.lines,
        records=state.records,
        blank=state.blank,
        crlf=state.crlf,
        bom=state.bom,
        stats=v.stats,
        keys=v._keys,
    )


_DONE: Future[_RangeResult] = Future()


class _Validator:
    def __init__(
        self,
        *,
        profile: catalog.ModelProfile,
        fmt: ChatFormat,
        encoder: Encoder | None,
        strict: bool,
        max_errors: int | None,
        progress: Callable[[int, int], None] | None,
        allow_truncation: bool = False,
        allow_secrets: bool = False,
    ) -> None:
        self.profile = profile
        self.allow_truncation = allow_truncation
        self.allow_secrets = allow_secrets
        self._rendered_roles = frozenset(r for r in ROLES if fmt.chunk(r, "") is not None)
        #: any special-token text (all start with '<', so the regex skips to each '<')
        self._special = re.compile("|".join(re.escape(t) for t in fmt.special_texts))
        self.fmt = fmt
        self.encoder = encoder
        self.strict = strict
        self.max_errors = max_errors
        self.progress = progress
        self.issues: list[Issue] = []
        self.counts: dict[str, int] = {}
        self.severity_counts: dict[str, int] = {"error": 0, "warning": 0, "info": 0}
        self._stored_per_rule: dict[str, int] = {}
        self.truncated = False
        self.stats = _Stats()
        # whitespace-normalised duplicates of the training file: first line -> all lines of the group
        self._index: DuplicateIndex | None = None
        self._dups: dict[int, list[int]] = {}
        self._exact_dups = 0
        self._overlap: list[tuple[int, int]] = []
        self._overlap_count = 0
        self.max_seq_length = 4096 if fmt.family in ("phi3-medium", "phi3-small") else 8192
        self._file = ""
        self._role = "train"
        self._bytes_done = 0
        self._bytes_total = 0
        self.counter: ChunkCounter | None = None
        #: in a worker process: duplicate keys are collected for the parent instead of indexed here
        self._keys: _Keys | None = None
        self._cases = CaseCounter()  # Q03 letter counts of training answers, summed in batches
        #: the pre-filters and duplicate key of each line (long first messages scanned once)
        self._lines = LineScanner(max_chars=500_000)
        #: long first-message content -> its digest, for the token counter's chunk keys (two generations)
        self._digests: dict[str, bytes] = {}
        self._digests_old: dict[str, bytes] = {}
        self._digest_chars = 0
        # the rule engine's checks, as registered when this validator starts (a forked worker's too)
        self._blank_checks = tuple(c for c in MESSAGE_CHECKS if c.applies != "text")
        self._text_checks = tuple(c for c in MESSAGE_CHECKS if c.applies != "blank")
        self._record_checks = tuple(RECORD_CHECKS)
        #: line gates -> (blank checks, text checks) that can find something on such a line
        self._checks_by_gates: dict[int, tuple[tuple[MessageCheck, ...], tuple[MessageCheck, ...]]] = {}
        if encoder is not None:
            self.prefix_n, self.suffix_n, self.header_n = constant_counts(fmt, encoder)
            self.counter = ChunkCounter(encoder, self._on_counted)

    def special_tokens_in(self, content: str) -> list[str]:
        """The chat template's special-token texts that occur in ``content`` (M13)."""
        if self._special.search(content) is None:
            return []
        return [t for t in self.fmt.special_texts if t in content]

    # ---- findings -----------------------------------------------------------------------------------
    def add(
        self,
        rule_id: str,
        line: int | None,
        path: str | None,
        message: str,
        *,
        file: str | None = None,
        hint: str | None = None,
        severity: str | None = None,
    ) -> None:
        r = RULES[rule_id]
        severity = severity or r.severity
        if self.strict and severity == "warning":
            severity = "error"
        self.counts[rule_id] = self.counts.get(rule_id, 0) + 1
        self.severity_counts[severity] += 1
        stored = self._stored_per_rule.get(rule_id, 0)
        if self.max_errors is not None:
            keep = len(self.issues) < self.max_errors
        else:
            keep = stored < DEFAULT_STORED_PER_RULE
        if keep:
            self._stored_per_rule[rule_id] = stored + 1
            self.issues.append(
                Issue(rule_id, severity, file or self._file, line, path, message, hint or r.hint)
            )
        else:
            self.truncated = True

    def absorb(self, part: _RangeResult) -> None:
        """Take a worker's findings as if ``add`` had been called for each, in order (same caps).

        A worker applies the same caps to its own range, so what it dropped would be dropped here too.
        """
        for rule_id, n in part.counts.items():
            self.counts[rule_id] = self.counts.get(rule_id, 0) + n
        for severity, n in part.severity_counts.items():
            self.severity_counts[severity] += n
        stored_per_rule = self._stored_per_rule
        for issue in part.issues:
            stored = stored_per_rule.get(issue.rule, 0)
            if self.max_errors is not None:
                keep = len(self.issues) < self.max_errors
            else:
                keep = stored < DEFAULT_STORED_PER_RULE
            if keep:
                stored_per_rule[issue.rule] = stored + 1
                self.issues.append(issue)
            else:
                self.truncated = True
        if part.truncated:
            self.truncated = True

    # ---- files --------------------------------------------------------------------------------------
    def check_path(self, path: Path, role: str) -> _FileState | None:
        self._file = str(path)
        state = _FileState(path, role)
        if not path.exists():
            self.add("F01", None, None, f"{path} does not exist.")
            return None
        if not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            self.add("F02", None, None, f"{path} is {kind}.")
            return None
        if not os.access(path, os.R_OK):
            self.add("F02", None, None, f"{path} is not readable.")
            return None
        state.size = path.stat().st_size
        if state.size and self._not_utf8_jsonl(state):
            return state
        if path.suffix.lower() != ".jsonl":
            self.add(
                "F04", None, None, f"{path.name} does not end in .jsonl; parsing it as JSON Lines anyway."
            )
        if state.size > LARGE_FILE_BYTES:
            self.add("F08", None, None, f"{path.name} is {state.size / 2**20:,.0f} MB (over 512 MB).")
        return state

    def _not_utf8_jsonl(self, state: _FileState) -> bool:
        """A UTF-16/32 or compressed file: one finding saying what it is and how to convert it.

        Found from the first bytes at file open, before any line rule (a UTF-16 file would otherwise
        read as blank lines with invalid UTF-8, a gzip file as garbage lines). ``state.aborted`` is set so
        nothing else is reported for the file.
        """
        path = state.path
        try:
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError:
            return False  # scan() reports it
        kind = sniff_file_kind(head)
        if kind is None:
            return False
        command, out = conversion_command(kind, path)
        then = f", then `phi3ft validate {shlex.quote(str(out))}`" if out is not None else ""
        if kind.kind == "text":
            self.add(
                "F05",
                None,
                None,
                f"{path.name} is {kind.name} text ({kind.evidence}), not UTF-8; no line was checked.",
                hint=f"Convert it to UTF-8: `{command}`{then}.",
            )
            state.aborted = "encoding"
        else:
            what = "a zip archive" if kind.name == "zip" else f"{kind.name}-compressed"
            self.add(
                "F17",
                None,
                None,
                f"{path.name} is {what} ({kind.evidence}), not JSON Lines; no line was checked.",
                hint=(
                    f"Extract it: `unzip -l {shlex.quote(str(path))}` lists the files inside, `{command}` "
                    "writes them here; then validate the .jsonl."
                    if kind.name == "zip"
                    else f"Decompress it: `{command}`{then}."
                ),
            )
            state.aborted = "compressed"
        return True

    def scan(self, state: _FileState) -> None:
        """Stream one file, running every line, message and conversation rule on each record."""
        self._file = str(state.path)
        self._role = state.role
        try:
            f = open(state.path, "rb", buffering=0)  # noqa: SIM115 - closed below; a context manager costs a level
        except OSError as exc:
            self.add("F02", None, None, f"cannot open {state.path}: {exc.strerror}.")
            state.aborted = "unreadable"
            return
        with f:
            self._scan_lines(f, state)
        self._bytes_done += state.size

    def _scan_lines(
        self,
        f: Any,
        state: _FileState,
        *,
        first_line: int = 1,
        start: int = 0,
        end: int | None = None,
        detect_document: bool = True,
    ) -> None:
        """Check the lines of ``f`` from byte ``start`` (a line start, ``f`` positioned there) to ``end``.

        ``first_line`` is the 1-based number of the line at ``start``; ``detect_document`` runs the
        whole-JSON-document check on the first non-blank line (only meaningful from the file's start).
        The lines come from the one JSONL reader (:func:`phi3ft.data.records.iter_lines`), so BOM, CRLF,
        blank-line and line-length handling is what ``split``, the trainer and ``eval`` see.
        """
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        ln = first_line - 1
        first_content_line = detect_document
        progress = self.progress
        on_block = None
        if progress is not None:
            last = [start]

            def on_block(offset: int) -> None:
                if offset - last[0] > 4_000_000:
                    last[0] = offset
                    progress(self._bytes_done + offset - start, self._bytes_total)

        max_line = MAX_LINE_BYTES
        for line in iter_lines(
            f,
            first_line=first_line,
            start=start,
            end=end,
            read_buffer=READ_BUFFER,
            max_line=max_line,
            on_block=on_block,
        ):
            ln = line.number
            body = line.body
            if body is None:
                self.add("F16", ln, None, f"line {ln} is over {max_line // 2**20} MB; it was skipped.")
                continue
            if line.crlf:
                state.crlf += 1
            if line.bom:
                state.bom = True
                self.add("F06", 1, None, "The file starts with a UTF-8 byte-order mark; it was stripped.")
            if is_blank(body):
                state.blank += 1
                self.add("L03", ln, None, f"line {ln} is blank.")
                continue
            if first_content_line:
                first_content_line = False
                head = body.lstrip()[:1]
                whole = head == b"[" or (head == b"{" and body.strip() == b"{")
                if whole and self._whole_document(body, ln, head):
                    state.aborted = "json-document"
                    return
            try:
                obj = loads(body)
            except decode_error as exc:
                self._parse_error(body, exc, ln, line.offset, line.has_newline)
                continue
            state.records += 1
            if not line.has_newline:
                self.add("F14", ln, None, "The last line has no newline at the end.")
            self._check_record(obj, ln, body, line.offset)
        state.lines = ln

    def scan_parallel(self, state: _FileState, pool: Any, cfg: _WorkerConfig, workers: int) -> bool:
        """:meth:`scan` split into byte ranges checked by worker processes; the same report.

        Returns False (nothing done) when the file must be scanned in one piece: unreadable, or its
        first content line is the start of a whole JSON document (F07 stops the scan there).
        """
        path = state.path
        try:
            if parallel.starts_like_document(path, MAX_LINE_BYTES) is not False:
                return False
        except OSError:
            return False
        self._file, self._role = str(path), state.role
        bounds = parallel.split_ranges(path, state.size, parallel.range_count(state.size, workers))
        ranges = list(itertools.pairwise(bounds))
        # Range 0 starts at line 1 and is checked at once; each next range is submitted as soon as this
        # process has counted the newlines of the one before it (a few ms a range), so every worker
        # starts at once.
        futures = [pool.submit(_scan_range, cfg, str(path), state.role, *ranges[0], 1)]
        first_line = 1
        for k in range(1, len(ranges)):
            first_line += parallel.count_newlines(str(path), ranges[k - 1][1], ranges[k - 1][0])
            futures.append(pool.submit(_scan_range, cfg, str(path), state.role, *ranges[k], first_line))
        for i in range(len(futures)):
            part: _RangeResult = futures[i].result()
            futures[i] = _DONE  # let the result go once merged
            self.absorb(part)
            self.stats.merge(part.stats)
            self.replay_keys(part.keys, state.role, path)
            state.lines = part.lines
            state.records += part.records
            state.blank += part.blank
            state.crlf += part.crlf
            state.bom = state.bom or part.bom
            if self.progress is not None:
                self.progress(self._bytes_done + ranges[i][1], self._bytes_total)
        self._bytes_done += state.size
        return True

    def _whole_document(self, body: bytes, ln: int, head: bytes) -> bool:
        if head == b"{":
            self.add(
                "F07",
                ln,
                None,
                "The file looks like pretty-printed JSON (a lone '{' on the first line), not JSON Lines.",
                hint="Write one object per line: `jq -c . data.json > data.jsonl` (or `jq -c '.[]'` for an array).",
            )
            return True
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            value = None
        if value is None or isinstance(value, list):
            self.add(
                "F07",
                ln,
                None,
                "The file is a JSON array, not JSON Lines (one object per line).",
                hint="Convert it: `jq -c '.[]' data.json > data.jsonl`.",
            )
            return True
        return False

    def _parse_error(self, body: bytes, exc: Exception, ln: int, start: int, has_newline: bool) -> None:
        text = str(exc)
        if "UTF-8" in text or "utf-8" in text:
            ude = utf8_error(body)
            if ude is not None:
                self.add(
                    "F05",
                    ln,
                    None,
                    f"line {ln}: invalid UTF-8 at byte {ude.start} of the line "
                    f"(file offset {start + ude.start}): {ude.reason}.",
                )
                return
        if "depth limit" in text or "recursion" in text:
            self.add("L10", ln, None, f"line {ln}: JSON nested more than 1,024 levels deep.")
            return
        if "surrogate" in text:
            self.add("M15", ln, None, f"line {ln}: a \\uD800-\\uDFFF escape is not part of a surrogate pair.")
            return
        if not has_newline:
            self.add(
                "F15",
                ln,
                None,
                f"line {ln} (the last line, no newline) is not complete JSON: {text}.",
            )
            return
        self.add("L01", ln, None, f"line {ln}: {text}.")

    # ---- records ------------------------------------------------------------------------------------
    def _check_record(self, obj: Any, ln: int, body: bytes, offset: int) -> None:
        first = None  # the first message's content, if any: LineScanner may know its bytes already
        if type(obj) is dict:
            msgs = obj.get("messages")
            if type(msgs) is list and msgs and type(msgs[0]) is dict:
                first = msgs[0].get("content")
        gates, key = self._lines.scan(body, first)
        add = self.add
        if type(obj) is not dict:
            add("L02", ln, None, f"line {ln} is a JSON {type(obj).__name__}, not an object.")
            return
        msgs = obj.get("messages")
        if msgs is None:
            if "messages" in obj:
                add("L05", ln, "messages", "`messages` is null; it must be a list of messages.")
                return
            other = sorted(OTHER_FORMAT_KEYS.intersection(obj))
            if other:
                add("L07", ln, None, f"line {ln} has {', '.join(other)} but no `messages` (another format).")
            else:
                add("L04", ln, None, f"line {ln} has no `messages` key (keys: {', '.join(sorted(obj)[:5])}).")
            return
        if len(obj) > 1:
            for name in obj:
                if name == "messages":
                    continue
                if name in TOOL_KEYS:
                    add("L09", ln, name, f"`{name}` is present; the Phi chat template does not render tools.")
                elif name in OTHER_FORMAT_KEYS - {"prompt"}:
                    add("L07", ln, name, f"`{name}` next to `messages` mixes two dataset formats.")
                else:
                    add("L08", ln, name, f"extra top-level key `{name}` is ignored.")
        if type(msgs) is not list:
            add("L05", ln, "messages", f"`messages` is a {type(msgs).__name__}, not a list.")
            return
        if not msgs:
            add("L06", ln, "messages", "`messages` is empty.")
            return
        roles: list[str | None] = []
        usable = True
        trained_any = False
        weight0 = 0
        assistants = 0
        n_chars = 0
        train = self._role == "train"
        pair = self._checks_by_gates.get(gates)
        if pair is None:
            pair = self._checks_by_gates[gates] = (
                tuple(c for c in self._blank_checks if not c.gate or gates & c.gate),
                tuple(c for c in self._text_checks if not c.gate or gates & c.gate),
            )
        blank_checks, text_checks = pair
        contents: list[str | None] = []
        # the token counter's view of each rendered message: key (role tag + content digest), whether it
        # is trained, (role, content); only used when the record is usable (every role known, every
        # content a string), so then it holds each rendered message in order
        counting = self.counter is not None
        rendered = self._rendered_roles
        digest = self._digest
        first_digest = self._first_digest
        chunk_keys: list[bytes] = []
        chunk_kinds: list[int] = []
        chunk_parts: list[tuple[str, str]] = []
        for i, m in enumerate(msgs):
            if type(m) is not dict:
                add("M01", ln, f"messages[{i}]", f"message {i} is a {type(m).__name__}, not an object.")
                roles.append(None)
                contents.append(None)
                usable = False
                continue
            role = m.get("role")
            content = m.get("content")
            if type(role) is not str or role not in ROLES:
                if role is None:
                    add("M02", ln, f"messages[{i}]", f"message {i} has no `role`.")
                elif type(role) is not str:
                    add("M04", ln, f"messages[{i}].role", f"`role` is a {type(role).__name__}, not a string.")
                    role = None
                else:
                    add("M05", ln, f"messages[{i}].role", f"role {role!r} is not system, user or assistant.")
                usable = False
            roles.append(role)
            if type(content) is not str:
                if content is None:
                    if "content" in m:
                        add("M06", ln, f"messages[{i}].content", "`content` is null; it must be text.")
                    else:
                        add("M03", ln, f"messages[{i}]", f"message {i} has no `content`.")
                else:
                    kind = "a list of parts" if type(content) is list else f"a {type(content).__name__}"
                    add("M06", ln, f"messages[{i}].content", f"`content` is {kind}, not a string.")
                    content = None
                usable = False
            contents.append(content)
            if len(m) > 2:
                self._message_keys(m, ln, i)
            if role == "assistant":
                assistants += 1
                if m.get("weight", 1) == 0:
                    weight0 += 1
                else:
                    trained_any = True
            if content is None:
                continue
            n_chars += len(content)
            if counting and role in rendered:
                chunk_keys.append(_ROLE_TAG[role] + (first_digest(content) if i == 0 else digest(content)))
                chunk_kinds.append(1 if role == "assistant" and m.get("weight", 1) != 0 else 0)
                chunk_parts.append((role, content))
            if not content or content.isspace():
                checks = blank_checks
            else:
                checks = text_checks
                if train and role == "assistant":
                    self._answer(content)
            for check in checks:
                found = check.run(self, role, content, gates)
                if found is not None:
                    add(check.rule, ln, f"messages[{i}].content", found)
                    if check.blocks_tokens:
                        usable = False
        conversation = Conversation(roles, assistants, weight0, trained_any)
        for rcheck in self._record_checks:
            for path, found in rcheck.run(self, conversation):
                add(rcheck.rule, ln, path, found)
        if gates & G_ALL & ~(G_SPECIAL | G_CONTROL):
            self._scan_sensitive(contents, ln, gates)
        self._record_done(obj, ln, body, offset, key, len(roles), n_chars, "system" in roles, usable)
        if usable and counting:
            chunk = self.fmt.chunk
            self.counter.submit_keyed(  # type: ignore[union-attr]
                (self._role, self._file, ln, chunk_kinds, roles),
                chunk_keys,
                lambda j: chunk(*chunk_parts[j]) or "",
            )

    def _record_done(
        self,
        obj: dict[str, Any],
        ln: int,
        body: bytes,
        offset: int,
        key: int,
        n_messages: int,
        n_chars: int,
        has_system: bool,
        usable: bool,
    ) -> None:
        """Dataset bookkeeping (duplicates, overlap, statistics) for one record."""
        if key < 0:  # a backslash-u escape: the key of the re-serialised record
            key = dup_key(body, obj, True)
        if self._role == "train":
            self._dataset_record(n_messages, has_system, ln, body, n_chars, offset, key)
        else:
            self._validation_record(ln, body, offset, key)

    @staticmethod
    def _digest(content: str) -> bytes:
        """blake2b digest (16 bytes) of ``content``'s UTF-8 bytes: with the role, the key of its chunk."""
        return blake2b(content.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _first_digest(self, content: str) -> bytes:
        """:meth:`_digest` of a first message's content, remembered for long ones."""
        if len(content) < DIGEST_MIN_CHARS:
            return blake2b(content.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        d = self._digests.get(content)
        if d is None:
            d = self._digests_old.get(content)
            if d is None:
                d = blake2b(content.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            self._digests[content] = d
            self._digest_chars += len(content)
            if self._digest_chars > DIGEST_CHARS:
                self._digests_old, self._digests, self._digest_chars = self._digests, {}, 0
        return d

    def _message_keys(self, m: dict[str, Any], ln: int, i: int) -> None:
        add = self.add
        for key in m:
            if key in ("role", "content"):
                continue
            if key == "weight":
                w = m["weight"]
                if type(w) is not int or w not in (0, 1):
                    add("M10", ln, f"messages[{i}].weight", f"`weight` is {w!r}; use 0 or 1.")
                else:
                    add("M11", ln, f"messages[{i}].weight", "`weight` is set.")
            elif key == "name":
                add("M12", ln, f"messages[{i}].name", "`name` is not rendered by the Phi template.")
            elif key not in ALLOWED_MESSAGE_KEYS:
                close = difflib.get_close_matches(str(key), ALLOWED_MESSAGE_KEYS, n=1)
                extra = f" (did you mean `{close[0]}`?)" if close else ""
                add("M09", ln, f"messages[{i}].{key}", f"unknown message key `{key}`{extra}.")

    def _answer(self, content: str) -> None:
        st = self.stats
        st.answers += 1
        self._cases.add(content)
        if st.all_answers_same:
            if st.first_answer is None:
                st.first_answer = content
            elif content != st.first_answer:
                st.all_answers_same = False
                st.first_answer = None
        if st.prefix is None:
            st.prefix = content
            st.suffix = content
            return
        if st.prefix and not content.startswith(st.prefix):
            st.prefix = _common_prefix(st.prefix, content)
        if st.suffix and not content.endswith(st.suffix):
            st.suffix = _common_suffix(st.suffix, content)

    def _scan_sensitive(self, contents: list[str | None], ln: int, gates: int) -> None:
        """Q08/Q09 on every string content; ``gates`` (raw-line pre-filters) skips what cannot match."""
        secret_severity = "warning" if self.allow_secrets else None
        for i, content in enumerate(contents):
            if not content:
                continue
            for _, rid, message in sensitive(content, gates):
                self.add(
                    rid,
                    ln,
                    f"messages[{i}].content",
                    message,
                    severity=secret_severity if rid == "Q08" else None,
                )

    # ---- dataset-level bookkeeping ------------------------------------------------------------------
    def _dataset_record(
        self,
        n_messages: int,
        has_system: bool,
        ln: int,
        body: bytes,
        n_chars: int,
        offset: int,
        key: int,
    ) -> None:
        st = self.stats
        st.examples += 1
        st.messages.append(min(n_messages, 2**32 - 1))
        st.chars.append(n_chars)
        if not has_system:
            st.no_system_count += 1
            if len(st.no_system) < DUPLICATE_LINES_SHOWN:
                st.no_system.append(ln)
        keys = self._keys
        if keys is not None:  # a worker: the parent builds the index from the keys (replay_keys)
            keys.add(key, ln, offset, len(body))
        else:
            if self._index is None:
                self._index = DuplicateIndex(self._file)
            hit = self._index.add(key, body, ln, offset)
            if hit is not None:
                self._duplicate(ln, hit)
        if self.counter is None and n_chars > T09_CHARS:
            self._t09(ln, n_chars)

    def _t09(self, ln: int, n_chars: int) -> None:
        self.add(
            "T09",
            ln,
            None,
            f"{n_chars:,} characters (~{int(n_chars / CHARS_PER_TOKEN):,} tokens, estimated at "
            f"{CHARS_PER_TOKEN:g} characters per token; no tokenizer loaded).",
        )

    def _duplicate(self, ln: int, hit: tuple[int, bool]) -> None:
        first, exact = hit
        group = self._dups.get(first)
        if group is None:
            group = self._dups[first] = [first]
        group.append(ln)
        if exact:
            self._exact_dups += 1

    def _validation_record(self, ln: int, body: bytes, offset: int, key: int) -> None:
        if self._keys is not None:
            self._keys.add(key, ln, offset, len(body))
            return
        if self._index is None:
            return
        self._overlapping(ln, self._index.find(key, body))

    def _overlapping(self, ln: int, first: int | None) -> None:
        if first is not None:
            self._overlap_count += 1
            if len(self._overlap) < DUPLICATE_LINES_SHOWN:
                self._overlap.append((first, ln))

    def replay_keys(self, keys: _Keys, role: str, path: Path) -> None:
        """The duplicate index (train) or overlap lookups (validation) for a worker's records, in order.

        Exactly what the single-process scan does per record; only a key hit re-reads the line (pread).
        """
        if not keys.keys:
            return
        if role == "train":
            if self._index is None:
                self._index = DuplicateIndex(str(path))
            for ln, hit in self._index.add_many(keys.keys, keys.lines, keys.offsets, keys.lengths):
                self._duplicate(ln, hit)
            return
        if self._index is None:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            find_at = self._index.find_at
            for key, ln, off, length in zip(keys.keys, keys.lines, keys.offsets, keys.lengths, strict=True):
                self._overlapping(ln, find_at(key, fd, off, length))
        finally:
            os.close(fd)

    # ---- tokens -------------------------------------------------------------------------------------
    def _on_counted(self, ctx: Any, counts: list[int]) -> None:
        role_kind, file, ln, kinds, roles = ctx
        total = self.prefix_n + sum(counts) + self.suffix_n
        header_a = self.header_n.get("assistant", 0)
        trainable = 0
        first_train: int | None = None
        first_train_end = 0
        pos = self.prefix_n
        short = False
        for n, kind in zip(counts, kinds, strict=False):
            if kind:
                body_n = n - header_a
                trainable += body_n
                if first_train is None:
                    first_train = pos + header_a
                    first_train_end = pos + n
                if body_n < 2 + (1 if self.fmt.footer.get("assistant") else 0):
                    short = True
            pos += n
        if trainable:
            trainable += self.suffix_n
        ctx_len = self.profile.context_length
        if role_kind == "train":
            st = self.stats
            st.tokens.append(total)
            st.assistant.append(trainable)
            per_role = st.per_role
            rendered = self._rendered_roles
            for r, n in zip([r for r in roles if r in rendered], counts, strict=False):
                per_role[r] = per_role.get(r, 0) + n
        if total > ctx_len:
            fits = first_train is not None and first_train_end <= ctx_len
            tolerated = self.allow_truncation and fits
            self.add(
                "T03",
                ln,
                None,
                f"{total:,} tokens, over the {ctx_len:,}-token context of {self.profile.registry_name}"
                + (
                    f"; the first assistant turn ends at token {first_train_end:,}, so it survives truncation."
                    if tolerated
                    else "."
                ),
                file=file,
                severity="warning" if tolerated else None,
            )
            if first_train is not None and first_train >= ctx_len:
                self.add(
                    "T04",
                    ln,
                    None,
                    f"the first assistant turn starts at token {first_train:,}, beyond the {ctx_len:,}-token context.",
                    file=file,
                )
        elif total > self.max_seq_length:
            self.add(
                "T05",
                ln,
                None,
                f"{total:,} tokens, over the job's default max_seq_length {self.max_seq_length:,}.",
                file=file,
            )
        if short:
            self.add("T06", ln, None, "an assistant answer has fewer than 2 tokens.", file=file)

    # ---- end of run ---------------------------------------------------------------------------------
    def flush_cases(self) -> None:
        self._cases.flush()
        self.stats.upper += self._cases.upper
        self.stats.lower += self._cases.lower
        self._cases = CaseCounter()

    def finish_dataset(self, train: _FileState | None, epochs: int, has_validation: bool) -> None:
        self.flush_cases()
        if self.counter is not None:
            self.counter.close()
        if self._index is not None:
            self._index.close()
        if train is None or train.aborted:
            return
        self._file = str(train.path)
        st = self.stats
        if train.records == 0:
            what = "0 bytes" if train.size == 0 else "only blank lines"
            self.add("F03", None, None, f"{train.path.name} is empty ({what}).")
        elif st.examples < MIN_EXAMPLES:
            self.add("F09", None, None, f"{st.examples} examples; at least {MIN_EXAMPLES} are required.")
        elif st.examples < RECOMMENDED_EXAMPLES:
            self.add("F10", None, None, f"{st.examples} examples; {RECOMMENDED_EXAMPLES}+ are recommended.")
        if not has_validation:
            self.add("F12", None, None, "no validation file; validation loss will not be reported.")
        for dup_lines in list(self._dups.values())[: DEFAULT_STORED_PER_RULE * 5]:
            shown = ", ".join(str(x) for x in dup_lines[:DUPLICATE_LINES_SHOWN])
            n = len(dup_lines)
            more = f" and {n - DUPLICATE_LINES_SHOWN} more" if n > DUPLICATE_LINES_SHOWN else ""
            self.add("Q01", dup_lines[0], None, f"{n} copies (whitespace-normalised) on lines {shown}{more}.")
        if st.answers > 1 and st.all_answers_same:
            self.add("Q02", None, None, f"all {st.answers} assistant answers are identical.")
        cased = st.upper + st.lower
        if cased and st.upper / cased > 1 / 3:
            self.add("Q03", None, None, f"{st.upper / cased:.0%} of assistant letters are upper-case.")
        if st.answers > 1 and st.examples >= 2:
            if st.prefix and st.prefix.strip():
                self.add("Q04", None, None, f"all assistant answers start with {st.prefix[:40]!r}.")
            if st.suffix and st.suffix.strip():
                self.add("Q04", None, None, f"all assistant answers end with {st.suffix[-40:]!r}.")
        if st.no_system_count and not self.fmt.drops_system:
            lines = ", ".join(str(x) for x in st.no_system)
            self.add(
                "C09",
                st.no_system[0],
                None,
                f"{st.no_system_count} of {st.examples} examples have no system message (first lines: {lines}).",
            )
        if self._overlap_count:
            pairs = ", ".join(f"train {a} = validation {b}" for a, b in self._overlap)
            self.add(
                "F11", None, None, f"{self._overlap_count} validation examples also in training ({pairs})."
            )
        if st.tokens:
            billed = sum(st.tokens) * epochs
            self.add(
                "T08",
                None,
                None,
                f"{billed:,} billed tokens ({sum(st.tokens):,} tokens x {epochs} epoch{'s' if epochs != 1 else ''}).",
            )

    def stats_dict(self, epochs: int, exact: bool) -> dict[str, Any]:
        st = self.stats
        dup_lines = sum(len(v) - 1 for v in self._dups.values())
        if exact and st.tokens:
            total, assistant = sum(st.tokens), sum(st.assistant)
            tokens: dict[str, Any] = {
                "exact": True,
                "method": f"{self.fmt.family} chat template + the model tokenizer",
                "total": total,
                "assistant": assistant,
                "per_example": _distribution(st.tokens),
                "assistant_per_example": _distribution(st.assistant),
                "per_role": dict(sorted(st.per_role.items())),
                "billed": total * epochs,
            }
        else:
            est = array("I", (int(c / CHARS_PER_TOKEN) for c in st.chars))
            total = sum(est)
            tokens = {
                "exact": False,
                "method": f"estimate: content characters / {CHARS_PER_TOKEN:g} (no tokenizer)",
                "total": total,
                "assistant": None,
                "per_example": _distribution(est),
                "assistant_per_example": None,
                "per_role": None,
                "billed": total * epochs,
            }
        return {
            "examples": st.examples,
            "messages_per_example": _distribution(st.messages),
            "no_system_share": round(st.no_system_count / st.examples, 4) if st.examples else None,
            "duplicates": {"examples": dup_lines, "exact": self._exact_dups, "groups": len(self._dups)},
            "validation_overlap": self._overlap_count,
            "epochs": epochs,
            "tokens": tokens,
        }


def resolve_profile(model: str) -> catalog.ModelProfile:
    """The catalog profile for ``model``; an unknown name is a usage error with a suggestion."""
    try:
        return catalog.get_profile(model)
    except KeyError:
        names = [p.name for p in catalog.PROFILES]
        close = difflib.get_close_matches(model.lower(), names, n=1, cutoff=0.5)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        raise UsageError(f"unknown model {model!r}.", hint + "Known models: " + ", ".join(names)) from None


def _tokenizer_hint(profile: catalog.ModelProfile) -> str:
    rank = f" or {RANK_FILES[profile.tokenizer_kind]}" if profile.tokenizer_kind in RANK_FILES else ""
    return (
        f"Pass --tokenizer DIR or set PHI3FT_TOKENIZER_DIR=DIR (a folder with tokenizer.json{rank}); "
        f"on a connected machine `{download_commands(profile.hf_repo, TOKENIZER_FILES)}` makes one."
    )


def _refuse_foreign_tokenizer(
    encoder: Encoder, origin: str, profile: catalog.ModelProfile, fmt: ChatFormat
) -> None:
    """A tokenizer without the template's control tokens belongs to another model: a usage error (exit 2).

    This replaced rule T07 (retired): the data is not at fault, and counts made with it would be wrong,
    so nothing is read.
    """
    missing = self_test(encoder, fmt)
    if not missing:
        return
    message = (
        f"the tokenizer from {origin} ({encoder.source}) does not belong to {profile.name}: "
        f"it does not encode {', '.join(missing)} as single tokens."
    )
    fix = (
        f"Pass {profile.name}'s own tokenizer (the folder with its tokenizer.json"
        + (f" or {RANK_FILES[profile.tokenizer_kind]}" if profile.tokenizer_kind in RANK_FILES else "")
        + f", e.g. from `{download_commands(profile.hf_repo, TOKENIZER_FILES)}`), or the --model this "
        "tokenizer belongs to."
    )
    if origin == "PHI3FT_TOKENIZER_DIR":
        fix = f"Point PHI3FT_TOKENIZER_DIR at {profile.name}'s tokenizer folder, or unset it. " + fix
    raise UsageError(message, fix)


def validate_dataset(
    train: Path,
    validation: Path | None = None,
    *,
    model: str = catalog.DEFAULT_MODEL,
    tokenizer: Path | None = None,
    env: Mapping[str, str] | None = None,
    epochs: int = 1,
    strict: bool = False,
    count_tokens: bool = True,
    max_errors: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_truncation: bool = False,
    allow_secrets: bool = False,
    workers: int | None = None,
) -> ValidationReport:
    """Validate a training file (and optionally a validation file) for fine-tuning ``model``.

    Every rule runs on every line in one streaming pass; all findings are counted (``report.counts``),
    and the stored ``report.issues`` are capped (``max_errors`` in total, else 200 per rule).
    ``strict`` promotes warnings to errors. ``count_tokens=False`` skips the tokenizer (token rules are
    then listed in ``skipped_rules`` and counts are labelled estimates). ``progress(done, total)`` gets
    byte positions. Raises :class:`~phi3ft.errors.UsageError` for an unknown model or an explicit
    ``tokenizer`` path that cannot be used; every problem *in the data* is a finding, never an exception.
    ``allow_truncation`` makes T03 a warning for examples whose first assistant turn still fits in the
    context; ``allow_secrets`` makes Q08 (credentials) a warning.

    Without a tokenizer (``count_tokens=False``, or none found), a file is split into byte ranges checked
    by ``workers`` processes (default: min(CPUs, 4) for files over 32 MB, else 1; pass 2+ to force it on
    any file); the report is identical to a single-process scan. Exact-token runs stay in one process
    (the tokenizer already uses every core, on a worker thread).
    """
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}.", "Pass --workers 1 or more.")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}.", "Pass --epochs 1 or more.")
    profile = resolve_profile(model)
    fmt = chat_format(profile.template)
    encoder: Encoder | None = None
    tok_info: dict[str, Any]
    skipped: dict[str, str] = {}
    if count_tokens:
        try:
            loaded = load_tokenizer(profile, tokenizer, env)
        except TokenizerUnavailable as exc:
            if tokenizer is not None:
                raise UsageError(
                    str(exc), "Pass a folder with tokenizer.json (or the .tiktoken rank file)."
                ) from None
            tok_info = {"name": None, "reason": str(exc), "exact": False}
        else:
            encoder = loaded.encoder
            tok_info = {
                "name": encoder.name,
                "source": encoder.source,
                "origin": loaded.origin,
                "exact": True,
            }
            _refuse_foreign_tokenizer(encoder, loaded.origin, profile, fmt)
    else:
        tok_info = {"name": None, "reason": "token counting disabled (--no-tokens)", "exact": False}
    v = _Validator(
        profile=profile,
        fmt=fmt,
        encoder=encoder,
        strict=strict,
        max_errors=max_errors,
        progress=progress,
        allow_truncation=allow_truncation,
        allow_secrets=allow_secrets,
    )
    if v.counter is None:
        reason = str(tok_info.get("reason"))
        for rid in TOKEN_RULES:
            skipped[rid] = reason
        if count_tokens and train.is_file():  # a missing file: F01 alone, not T01
            v._file = str(train)
            v.add(
                "T01",
                None,
                None,
                f"token checks skipped: {reason}. Counts below are estimates "
                f"({CHARS_PER_TOKEN:g} characters per token).",
                hint=_tokenizer_hint(profile),
            )
    else:
        skipped["T09"] = "exact token counts available"
    states: list[_FileState] = []
    train_state = v.check_path(train, "train")
    val_state = v.check_path(validation, "validation") if validation is not None else None
    v._bytes_total = sum(s.size for s in (train_state, val_state) if s is not None)
    cfg = _WorkerConfig(profile.name, strict, max_errors, allow_truncation, allow_secrets)
    pools: list[Any] = []

    def scan(state: _FileState) -> None:
        if state.aborted:  # not UTF-8 JSON Lines (F05 / F17 said what it is)
            return
        # no tokenizer at all: a loaded one (failed self-test) has started its threads, and forking
        # after that makes the tokenizers library warn in every child
        n = parallel.workers_for(state.size, workers) if encoder is None else 1
        if n > 1 and not pools:
            try:
                pools.append(parallel.make_pool(n))
            except (OSError, ImportError):  # no process support here (e.g. no sem_open): one process
                n = 1
        if n > 1 and v.scan_parallel(state, pools[0], cfg, n):
            return
        v.scan(state)

    try:
        if train_state is not None:
            scan(train_state)
            states.append(train_state)
            if train_state.crlf:
                v._file = str(train)
                v.add("F13", None, None, f"{train_state.crlf} lines end in CRLF (accepted).")
        if val_state is not None:
            scan(val_state)
            states.append(val_state)
            if val_state.records == 0 and not val_state.aborted:
                v.add("F03", None, None, f"{val_state.path.name} is empty.", file=str(val_state.path))
            if val_state.crlf:
                v.add(
                    "F13",
                    None,
                    None,
                    f"{val_state.crlf} lines end in CRLF (accepted).",
                    file=str(val_state.path),
                )
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
    v.finish_dataset(train_state, epochs, validation is not None)
    if progress is not None:
        progress(v._bytes_total, v._bytes_total)
    issues = sorted(
        v.issues,
        key=lambda i: (i.file != str(train), i.line is not None, i.line or 0, SEVERITY_ORDER[i.severity]),
    )
    files = [
        {
            "path": str(s.path),
            "role": s.role,
            "bytes": s.size,
            "lines": s.lines,
            "records": s.records,
            "blank_lines": s.blank,
            "crlf_lines": s.crlf,
            "bom": s.bom,
            "read": s.aborted is None,
        }
        for s in states
    ]
    return ValidationReport(
        valid=v.severity_counts["error"] == 0,
        model=profile.name,
        strict=strict,
        files=files,
        issues=issues,
        counts=v.counts,
        severity_counts=v.severity_counts,
        stats=v.stats_dict(epochs, v.counter is not None),
        tokenizer=tok_info,
        skipped_rules=skipped,
        issues_truncated=v.truncated,
    )
