"""Deterministic train/validation split that keeps duplicates together and copies records byte for byte.

Two streaming passes through the one JSONL reader (``phi3ft.data.records``: BOM, CRLF and blank lines as
``validate`` sees them): the first groups whitespace-normalised duplicates with the validator's own
duplicate key and index (``phi3ft.data.scan.dup_key`` / ``DuplicateIndex``: what Q01/F11 report is what
split keeps together), the second copies each record's bytes to its side. Groups of duplicates are
assigned as a unit, so no example can leak from training into validation.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from phi3ft.data.records import read_records
from phi3ft.data.scan import DuplicateIndex, dup_key
from phi3ft.errors import DataError, UsageError


@dataclass
class SplitResult:
    train_path: Path
    validation_path: Path
    train_examples: int
    validation_examples: int
    duplicate_groups: int
    seed: int
    validation_fraction: float

    def to_dict(self) -> dict[str, object]:
        return {
            "train": {"path": str(self.train_path), "examples": self.train_examples},
            "validation": {"path": str(self.validation_path), "examples": self.validation_examples},
            "duplicate_groups": self.duplicate_groups,
            "seed": self.seed,
            "validation_fraction": self.validation_fraction,
        }


def _groups(path: Path) -> tuple[int, dict[tuple[int, int], list[int]]]:
    """(record count, {(key, first line): lines of the group}): duplicates found as ``validate`` finds them.

    Raises DataError on a line that is not a JSON object (the shared reader's message).
    """
    hint = f"Run `phi3ft validate {path}` and fix the errors first; refusing to split."
    index = DuplicateIndex(str(path))
    groups: dict[int, list[int]] = {}  # first line -> lines
    keys: dict[int, int] = {}  # first line -> key
    n = 0
    try:
        for rec in read_records(path, hint=hint):
            n += 1
            key = dup_key(rec.body, rec.value)
            hit = index.add(key, rec.body, rec.line, rec.offset)
            if hit is None:
                groups[rec.line] = [rec.line]
                keys[rec.line] = key
            else:
                groups[hit[0]].append(rec.line)
    finally:
        index.close()
    return n, {(keys[first], first): lines for first, lines in groups.items()}


def split_dataset(
    source: Path,
    out_dir: Path,
    *,
    validation_fraction: float = 0.1,
    seed: int = 42,
    force: bool = False,
) -> SplitResult:
    """Split ``source`` into ``out_dir/train.jsonl`` and ``out_dir/validation.jsonl``.

    Deterministic for a given file, fraction and seed. Refuses to overwrite existing outputs unless
    ``force``. Output files are written atomically (temp file, fsync, rename).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise UsageError(
            f"--validation-fraction must be between 0 and 1, got {validation_fraction}.",
            "Use e.g. --validation-fraction 0.1.",
        )
    if not source.is_file():
        raise UsageError(f"{source} is not a file.", "Pass the JSONL training file to split.")
    train_path, val_path = out_dir / "train.jsonl", out_dir / "validation.jsonl"
    existing = [p for p in (train_path, val_path) if p.exists()]
    if existing and not force:
        raise UsageError(
            f"{existing[0]} already exists; not overwriting.",
            "Pass --force to overwrite, or choose another --out-dir.",
        )
    if source.resolve() in {train_path.resolve(), val_path.resolve()}:
        raise UsageError("the output would overwrite the input.", "Choose another --out-dir.")
    n_records, groups = _groups(source)
    if n_records < 2:
        raise DataError(f"{source} has {n_records} record(s); nothing to split.", "Add more examples.")
    # key order is content-defined (the line only breaks a tie between different records with one key),
    # so the result does not depend on the order of the file
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    target = max(1, round(n_records * validation_fraction))
    val_lines: set[int] = set()
    for group in order:
        if len(val_lines) >= target:
            break
        if len(val_lines) + len(groups[group]) > target and val_lines:
            continue
        val_lines.update(groups[group])
    if len(val_lines) >= n_records:
        raise DataError("every record is a copy of one example; cannot split.", "Remove the duplicates.")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = _write(source, out_dir, train_path, val_path, val_lines)
    return SplitResult(
        train_path,
        val_path,
        counts[0],
        counts[1],
        sum(1 for v in groups.values() if len(v) > 1),
        seed,
        validation_fraction,
    )


def _write(
    source: Path, out_dir: Path, train_path: Path, val_path: Path, val_lines: set[int]
) -> tuple[int, int]:
    tmp_train = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".train.", suffix=".tmp", delete=False)  # noqa: SIM115 - closed below
    tmp_val = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".validation.", suffix=".tmp", delete=False)  # noqa: SIM115
    n_train = n_val = 0
    try:
        with tmp_train, tmp_val:
            for rec in read_records(source):
                if rec.line in val_lines:
                    tmp_val.write(rec.body + b"\n")
                    n_val += 1
                else:
                    tmp_train.write(rec.body + b"\n")
                    n_train += 1
            for tmp in (tmp_train, tmp_val):
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_train.name, train_path)
        os.replace(tmp_val.name, val_path)
    finally:
        for name in (tmp_train.name, tmp_val.name):
            if os.path.exists(name):
                os.unlink(name)
    return n_train, n_val
