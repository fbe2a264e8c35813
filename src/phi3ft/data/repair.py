"""``phi3ft validate --fix``: a repaired copy of a dataset, decided by the validator's own findings.

Nothing here re-implements a rule. The validator runs once with every finding stored; each finding with
a line says what happens to that record:

- repaired without guessing: F06 (BOM), F13 (CRLF), F14 (no final newline), L03 (blank line, removed),
  M05 when the role is a letter-case or whitespace variant of system/user/assistant, M14 / Q05 (leading /
  trailing whitespace of the flagged content), M07 / M08 when the empty messages are the last ones
  (removed), and with ``redact_secrets`` Q08 / Q09 (each hit replaced by a typed placeholder, using the
  validator's detectors, :func:`phi3ft.data.scan.sensitive_spans`);
- removed: Q01 duplicates after the first copy (whitespace-normalised: the validator's duplicate key and
  index, :class:`phi3ft.data.scan.DuplicateIndex`, over the repaired records), and F11
  validation records that are also in training (dropped from the validation file, kept in training);
- dropped: every other record with an error (with ``strict``, warnings count as errors); C01-C08 on a
  record whose roles or messages were repaired are re-checked instead.

The repaired files are then validated again (same options); a record that still has an error is dropped
and the check repeats, so the result re-validates with no line errors. File-level findings (missing file,
a JSON document instead of JSON Lines, a failed tokenizer self-test, too few examples, ...) cannot be
repaired and are listed as such. The inputs are never modified; outputs are written to temporary files
and renamed at the end. Never prints.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from phi3ft.data.convert import publish
from phi3ft.data.records import is_blank, iter_lines
from phi3ft.data.scan import DuplicateIndex, dup_key, line_scan, sensitive_spans
from phi3ft.data.tokens import WHITESPACE
from phi3ft.data.validate import (
    DEFAULT_STORED_PER_RULE,
    ROLES,
    Issue,
    ValidationReport,
    validate_dataset,
)
from phi3ft.errors import Phi3ftError, UsageError

#: file-level findings that leave nothing to repair: no copy is written
BLOCKING = frozenset({"F01", "F02", "F03", "F07"})
#: repaired (or handled by the duplicate / overlap pass) wherever they are reported
ALWAYS_REPAIRED = frozenset({"F06", "F13", "F14", "L03", "Q01", "F11", "M14", "Q05"})
CONVERSATION = frozenset({"C01", "C02", "C03", "C04", "C05", "C06", "C07", "C08"})
#: placeholder per detector kind (scan.SECRET_PATTERNS names and the personal-data kinds)
PLACEHOLDERS = {
    "private key block": "<PRIVATE_KEY>",
    "storage account key": "<STORAGE_KEY>",
    "shared access signature": "<SAS_TOKEN>",
    "GitHub token": "<GITHUB_TOKEN>",
    "Slack token": "<SLACK_TOKEN>",
    "API key (sk-...)": "<API_KEY>",
    "AWS access key id": "<AWS_KEY>",
    "bearer token": "<BEARER_TOKEN>",
    "password in URL": "<URL_CREDENTIALS>",
    "e-mail address": "<EMAIL>",
    "phone number": "<PHONE>",
    "card number": "<CARD_NUMBER>",
    "IBAN": "<IBAN>",
}
#: changes listed in ``--json`` (the report file lists every change)
JSON_CHANGES = 10_000
#: re-validation rounds before giving up on line errors (one is normally enough)
MAX_ROUNDS = 4
_ALL = sys.maxsize


@dataclass(slots=True)
class Change:
    """One change: ``action`` is repaired, removed (duplicate / overlap / blank) or dropped (invalid)."""

    file: str
    line: int | None
    rule: str
    action: str
    detail: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "action": self.action,
            "path": self.path,
            "detail": self.detail,
        }


@dataclass
class FileFix:
    source: Path
    output: Path
    role: str
    records_in: int = 0
    records_out: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.source),
            "output": str(self.output),
            "role": self.role,
            "records_in": self.records_in,
            "records_out": self.records_out,
        }


@dataclass
class FixResult:
    original: ValidationReport
    final: ValidationReport | None
    files: list[FileFix]
    changes: list[Change] = field(default_factory=list)
    #: file-level findings --fix cannot repair (errors and warnings), from the last validation run
    not_repairable: list[Issue] = field(default_factory=list)
    report_path: Path | None = None
    written: bool = False

    @property
    def valid(self) -> bool:
        return self.written and self.final is not None and self.final.valid

    def by_rule(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for c in self.changes:
            slot = out.setdefault(c.rule, {})
            slot[c.action] = slot.get(c.action, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self, max_changes: int | None = None) -> dict[str, Any]:
        """The ``fix`` document; ``max_changes`` lists only the first N changes (the report file has all)."""
        shown = self.changes if max_changes is None else self.changes[:max_changes]
        return self.summary() | {
            "changes": [c.to_dict() for c in shown],
            "changes_truncated": len(shown) < len(self.changes),
        }

    def summary(self) -> dict[str, Any]:
        """Everything but the list of changes."""
        final = self.final
        return {
            "written": self.written,
            "valid": self.valid,
            "files": [f.to_dict() for f in self.files],
            "report": None if self.report_path is None else str(self.report_path),
            "by_rule": self.by_rule(),
            "not_repairable": [i.to_dict() for i in self.not_repairable],
            "revalidated": None
            if final is None
            else {
                "valid": final.valid,
                "errors": final.severity_counts.get("error", 0),
                "warnings": final.severity_counts.get("warning", 0),
                "by_rule": dict(sorted(final.counts.items())),
            },
        }


def capped_report(report: ValidationReport) -> ValidationReport:
    """``report`` with its stored findings capped as a plain ``validate`` stores them (200 a rule): fix
    validates with every finding kept, which ``--json`` need not print."""
    kept: list[Issue] = []
    per_rule: dict[str, int] = {}
    for issue in report.issues:
        n = per_rule.get(issue.rule, 0)
        if n < DEFAULT_STORED_PER_RULE:
            per_rule[issue.rule] = n + 1
            kept.append(issue)
    truncated = report.issues_truncated or len(kept) < len(report.issues)
    return dataclasses.replace(report, issues=kept, issues_truncated=truncated)


def default_report_path(output: Path) -> Path:
    """``train.fixed.jsonl`` -> ``train.fixed.report.json``."""
    name = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(name + ".report.json")


def fix_dataset(
    train: Path,
    output: Path,
    validation: Path | None = None,
    validation_output: Path | None = None,
    *,
    redact_secrets: bool = False,
    force: bool = False,
    report_path: Path | None = None,
    **validate_options: Any,
) -> FixResult:
    """Validate ``train`` (and ``validation``), write repaired copies and a JSON report of every change.

    ``validate_options`` go to :func:`~phi3ft.data.validate.validate_dataset` for every run (model,
    tokenizer, strict, allow_secrets, ...). Raises UsageError for unusable output paths.
    """
    validate_options.pop("max_errors", None)
    validate_options.pop("progress", None)
    if (validation is None) != (validation_output is None):
        raise UsageError(
            "--fix with --validation also needs --fix-validation OUT2 (the repaired validation file).",
            "Example: phi3ft validate train.jsonl --validation valid.jsonl --fix train.fixed.jsonl "
            "--fix-validation valid.fixed.jsonl",
        )
    report_path = report_path or default_report_path(output)
    outputs = [output, *([validation_output] if validation_output else []), report_path]
    inputs = [p.resolve() for p in (train, validation) if p is not None]
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise UsageError(
            "--fix, --fix-validation and the report must be different files.", "Pick other names."
        )
    for p in outputs:
        if p.resolve() in inputs:
            raise UsageError(
                f"{p} is an input file; --fix never modifies its input.", "Pass a new file name."
            )
        if p.is_dir():
            raise UsageError(f"{p} is a directory.", "Pass a file name, e.g. --fix train.fixed.jsonl")
        if p.exists() and not force:
            raise UsageError(
                f"{p} already exists; not overwriting.", "Pass --force to overwrite, or another name."
            )
    original = validate_dataset(train, validation, max_errors=_ALL, **validate_options)
    files = [FileFix(train, output, "train")]
    if validation is not None and validation_output is not None:
        files.append(FileFix(validation, validation_output, "validation"))
    result = FixResult(original, None, files, report_path=report_path)
    blocking = [i for i in original.issues if i.rule in BLOCKING and i.severity == "error"]
    if blocking or any(not f.get("read", True) for f in original.files):
        result.not_repairable = blocking or [
            i for i in original.issues if i.line is None and i.severity == "error"
        ]
        return result
    by_line: dict[tuple[str, int], list[Issue]] = {}
    for issue in original.issues:
        if issue.line is not None:
            by_line.setdefault((issue.file, issue.line), []).append(issue)
    tmps: list[Path] = []
    try:
        return _fix(result, by_line, tmps, redact_secrets, validate_options)
    except OSError as exc:  # the output folder is not writable, the disk is full, ...
        raise Phi3ftError(
            f"cannot write {output}: {exc.strerror or exc}.",
            "Pick a folder you can write to with enough free space.",
        ) from None
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


def _fix(
    result: FixResult,
    by_line: dict[tuple[str, int], list[Issue]],
    tmps: list[Path],
    redact_secrets: bool,
    validate_options: dict[str, Any],
) -> FixResult:
    files = result.files
    report_path = result.report_path
    assert report_path is not None
    index: DuplicateIndex | None = None
    maps: list[list[int]] = []
    try:
        for ff in files:
            folder = ff.output.parent
            folder.mkdir(parents=True, exist_ok=True)
            tmp = _temp(folder, ff.output.name)
            tmps.append(tmp)
            if ff.role == "train":
                index = DuplicateIndex(str(tmp))
            line_map = _repair_file(
                ff,
                tmp,
                by_line,
                redact=redact_secrets,
                index=index if ff.role == "train" else None,
                overlap=index if ff.role == "validation" else None,
                changes=result.changes,
            )
            maps.append(line_map)
    finally:
        if index is not None:
            index.close()
    final = _revalidate(files, tmps, maps, result.changes, validate_options)
    for ff, line_map in zip(files, maps, strict=False):
        ff.records_out = len(line_map)
    names = {str(t): str(f.output) for t, f in zip(tmps, files, strict=True)}
    names.update({t.name: f.output.name for t, f in zip(tmps, files, strict=True)})
    result.final = _renamed(final, names)
    result.not_repairable = [
        i for i in result.final.issues if i.line is None and i.severity in ("error", "warning")
    ]
    report_tmp = _temp(report_path.parent, report_path.name)
    tmps.append(report_tmp)
    _write_report(
        report_tmp, result.summary() | {"written": True, "valid": result.final.valid}, result.changes
    )
    for ff, tmp in zip(files, tmps, strict=False):
        publish(str(tmp), ff.output)
    publish(str(report_tmp), report_path)
    result.written = True
    return result


_STRIPPED = {"M14": "stripped leading whitespace", "Q05": "stripped trailing whitespace"}


def _write_report(path: Path, head: dict[str, Any], changes: list[Change]) -> None:
    """The report file: ``head``'s keys, then ``changes`` with one change a line (written as it goes)."""
    with open(path, "wb") as w:
        w.write(b"{\n")
        for key, value in head.items():
            w.write(b"  " + orjson.dumps(key) + b": " + orjson.dumps(value) + b",\n")
        w.write(b'  "changes": [')
        for i, c in enumerate(changes):
            w.write((b",\n    " if i else b"\n    ") + orjson.dumps(c.to_dict()))
        w.write(b"\n  ]\n}\n" if changes else b"]\n}\n")


def _temp(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp.jsonl")
    os.close(fd)
    return Path(tmp)


def _index(path: str | None) -> int | None:
    """``messages[3].content`` -> 3."""
    if not path or not path.startswith("messages["):
        return None
    end = path.find("]")
    try:
        return int(path[9:end])
    except ValueError:
        return None


def _empty(m: Any) -> bool:
    c = m.get("content") if isinstance(m, dict) else None
    return isinstance(c, str) and (not c or c.isspace())


def _redact(text: str) -> tuple[str, list[str]]:
    """``text`` with every Q08/Q09 hit replaced by its placeholder; overlapping hits become one (the
    kind of the one that starts first), so no part of either is left."""
    merged: list[list[Any]] = []
    for start, end, _rule, kind in sensitive_spans(text):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    out = text
    for start, end, kind in reversed(merged):
        out = out[:start] + PLACEHOLDERS.get(kind, "<REDACTED>") + out[end:]
    return out, [kind for _, _, kind in merged]


def _repair_record(
    obj: Any, issues: list[Issue], redact: bool, file: str, ln: int
) -> tuple[list[Change] | None, list[Issue], bool]:
    """Apply the repairs the findings allow. Returns (changes, fatal findings, structure changed)."""
    changes: list[Change] = []
    fatal: list[Issue] = []
    structural = False
    msgs = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(msgs, list):
        return None, [i for i in issues if i.severity == "error"], False
    n = len(msgs)
    trailing_empty = n
    while trailing_empty > 0 and _empty(msgs[trailing_empty - 1]):
        trailing_empty -= 1
    conversation: list[Issue] = []
    redacted: set[int] = set()
    for issue in issues:
        rid = issue.rule
        i = _index(issue.path)
        m = msgs[i] if i is not None and 0 <= i < n and isinstance(msgs[i], dict) else None
        if rid in ("F06", "F14", "L03", "Q01", "F11"):
            continue  # handled for the line as a whole
        if rid == "M05" and m is not None and isinstance(m.get("role"), str):
            fixed = m["role"].strip().lower()
            if fixed in ROLES:
                changes.append(
                    Change(file, ln, rid, "repaired", f"role {m['role']!r} -> {fixed!r}", issue.path)
                )
                m["role"] = fixed
                structural = True
                continue
        elif rid in ("M14", "Q05") and m is not None and isinstance(m.get("content"), str):
            before = m["content"]
            after = before.lstrip(WHITESPACE) if rid == "M14" else before.rstrip(WHITESPACE)
            if after != before and after:
                m["content"] = after
                changes.append(Change(file, ln, rid, "repaired", _STRIPPED[rid], issue.path))
            continue
        elif rid in ("M07", "M08") and i is not None and i >= trailing_empty and trailing_empty > 0:
            continue  # removed below, with the other trailing empty messages
        elif rid in ("Q08", "Q09") and redact and m is not None and isinstance(m.get("content"), str):
            if i not in redacted and i is not None:
                redacted.add(i)
                text, kinds = _redact(m["content"])
                if kinds:
                    m["content"] = text
                    what = ", ".join(f"{k} -> {PLACEHOLDERS.get(k, '<REDACTED>')}" for k in kinds)
                    changes.append(Change(file, ln, rid, "repaired", f"redacted {what}", issue.path))
            continue
        elif rid in CONVERSATION:
            conversation.append(issue)
            continue
        if issue.severity == "error":
            fatal.append(issue)
    if trailing_empty < n and any(
        i.rule in ("M07", "M08") and (_index(i.path) or 0) >= trailing_empty for i in issues
    ):
        removed = n - trailing_empty
        del msgs[trailing_empty:]
        structural = True
        rid = next(i.rule for i in issues if i.rule in ("M07", "M08"))
        changes.append(
            Change(file, ln, rid, "repaired", f"removed {removed} empty trailing message(s)", "messages")
        )
    if conversation and not structural:
        fatal.extend(i for i in conversation if i.severity == "error")
    return changes, fatal, structural


def _repair_file(
    ff: FileFix,
    tmp: Path,
    by_line: dict[tuple[str, int], list[Issue]],
    *,
    redact: bool,
    index: DuplicateIndex | None,
    overlap: DuplicateIndex | None,
    changes: list[Change],
) -> list[int]:
    """Write the repaired records of ``ff.source`` to ``tmp``; returns the source line of each output line.

    ``index`` (training): duplicates of a record already written are removed; ``overlap`` (validation):
    records found in the training index are removed. Keys as in the validator (``line_scan``/``dup_key``);
    a key hit is confirmed by re-reading the earlier record from ``tmp``.
    """
    file = str(ff.source)
    line_map: list[int] = []
    crlf: list[int] = []
    keys: set[int] = set()
    offset = 0
    with open(ff.source, "rb", buffering=0) as f, open(tmp, "wb") as w:
        for line in iter_lines(f):  # the one JSONL reader: BOM, CRLF and blank lines as validate sees them
            ln, body = line.number, line.body
            if body is None:  # over the line-length limit: validate skipped it (F16), so does the copy
                changes.append(Change(file, ln, "F16", "dropped", "line over the length limit"))
                continue
            if line.crlf:
                crlf.append(ln)
            if line.bom:
                changes.append(Change(file, 1, "F06", "repaired", "removed the UTF-8 byte-order mark"))
            if is_blank(body):
                changes.append(Change(file, ln, "L03", "removed", "blank line"))
                continue
            ff.records_in += 1
            issues = by_line.get((file, ln), [])
            out = body
            if issues:
                try:
                    obj = orjson.loads(body)
                except orjson.JSONDecodeError:
                    obj = None
                fixes, fatal, _ = (
                    _repair_record(obj, issues, redact, file, ln)
                    if obj is not None
                    else (None, [i for i in issues if i.severity == "error"], False)
                )
                if fatal or fixes is None:
                    first = fatal[0] if fatal else issues[0]
                    also = sorted({i.rule for i in fatal} - {first.rule})
                    detail = first.message + (f" (also {', '.join(also)})" if also else "")
                    changes.append(Change(file, ln, first.rule, "dropped", detail, first.path))
                    continue
                if fixes:
                    changes.extend(fixes)
                    out = orjson.dumps(obj)
            key = line_scan(out)[1]
            if key < 0:  # a backslash-u escape: the key of the re-serialised record, as the validator does
                key = dup_key(out, orjson.loads(out), True)
            if index is not None:
                if key in keys:
                    w.flush()  # the index re-reads the earlier record from tmp to confirm
                    hit = index.add(key, out, ln, offset)
                    if hit is not None:
                        changes.append(Change(file, ln, "Q01", "removed", f"duplicate of line {hit[0]}"))
                        continue
                else:
                    keys.add(key)
                    index.add(key, out, ln, offset)
            if overlap is not None:
                first_ln = overlap.find(key, out)
                if first_ln is not None:
                    changes.append(
                        Change(file, ln, "F11", "removed", f"also in training (line {first_ln}); kept there")
                    )
                    continue
            if not line.has_newline:
                changes.append(Change(file, ln, "F14", "repaired", "added the final newline"))
            w.write(out + b"\n")
            offset += len(out) + 1
            line_map.append(ln)
    if crlf:
        shown = ", ".join(str(x) for x in crlf[:10]) + (" ..." if len(crlf) > 10 else "")
        changes.append(
            Change(file, None, "F13", "repaired", f"{len(crlf)} CRLF line endings -> LF (lines {shown})")
        )
    return line_map


def _revalidate(
    files: list[FileFix],
    tmps: list[Path],
    maps: list[list[int]],
    changes: list[Change],
    options: dict[str, Any],
) -> ValidationReport:
    """Validate the repaired files; drop records that still have errors; repeat until none is left."""
    for _ in range(MAX_ROUNDS):
        report = validate_dataset(tmps[0], tmps[1] if len(tmps) > 1 else None, max_errors=_ALL, **options)
        bad: dict[str, dict[int, Issue]] = {}
        for issue in report.issues:
            if issue.line is not None and issue.severity == "error":
                bad.setdefault(issue.file, {}).setdefault(issue.line, issue)
        if not bad:
            return report
        for k, (ff, tmp) in enumerate(zip(files, tmps, strict=True)):
            lines = bad.get(str(tmp))
            if lines:
                maps[k] = _drop_lines(tmp, lines, maps[k], str(ff.source), changes)
    return report


def _drop_lines(
    tmp: Path, lines: dict[int, Issue], line_map: list[int], file: str, changes: list[Change]
) -> list[int]:
    kept: list[int] = []
    new = tmp.with_name(tmp.name + ".next")
    with open(tmp, "rb") as f, open(new, "wb") as w:
        for out_ln, raw in enumerate(f, 1):
            issue = lines.get(out_ln)
            src = line_map[out_ln - 1]
            if issue is not None:
                changes.append(
                    Change(file, src, issue.rule, "dropped", f"after repair: {issue.message}", issue.path)
                )
                continue
            w.write(raw)
            kept.append(src)
    os.replace(new, tmp)
    return kept


def _renamed(report: ValidationReport, names: dict[str, str]) -> ValidationReport:
    """The report with the temporary file names replaced by the final ones."""

    def fix(text: str) -> str:
        for old, new in names.items():
            text = text.replace(old, new)
        return text

    for issue in report.issues:
        issue.file = fix(issue.file)
        issue.message = fix(issue.message)
    for f in report.files:
        f["path"] = fix(str(f["path"]))
    return report
