"""Validating in byte ranges on worker processes gives exactly the single-process report.

Every comparison is of the full ``to_dict()`` document: findings (lines, messages, order, caps), counts,
statistics (percentiles, duplicates, overlap, no-system lines, dataset rules Q02/Q04) and file facts
(lines, CRLF, BOM). The multi-process path is forced on small files with ``workers=`` and tiny ranges.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_data_golden import report as golden_report
from tests.unit.test_data_rules import LINE_CASES, good, msgs

from phi3ft.data import parallel
from phi3ft.data.validate import validate_dataset

U, A, S = "user", "assistant", "system"
BOM = "\ufeff"


SPLITS: list[int] = []


@pytest.fixture(autouse=True)
def _tiny_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to 4 ranges per worker even on a few kB, so boundaries fall everywhere; record the splits."""
    monkeypatch.setattr(parallel, "MIN_RANGE_BYTES", 512)
    split = parallel.split_ranges

    def recording(path: Path, size: int, n: int) -> list[int]:
        bounds = split(path, size, n)
        SPLITS.append(len(bounds) - 1)
        return bounds

    monkeypatch.setattr(parallel, "split_ranges", recording)
    SPLITS.clear()


def validate(path: Path, workers: int, val: Path | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("count_tokens", False)
    return validate_dataset(
        path, val, model="phi-3-mini-4k-instruct", env={"HF_HUB_OFFLINE": "1"}, workers=workers, **kw
    ).to_dict()


@pytest.mark.parametrize("mode", ["no_tokens", "strict_capped", "estimates"])
def test_golden_corpus_same_with_workers(tmp_path: Path, mode: str) -> None:
    kw: dict[str, Any] = {
        "no_tokens": {"count_tokens": False},
        "strict_capped": {"count_tokens": False, "strict": True, "max_errors": 40},
        # tokens requested, none found (offline, no cache): the estimate path (T01, T09) runs in workers
        "estimates": {},
    }[mode]
    one = golden_report(tmp_path, workers=1, **kw)
    assert not SPLITS
    for workers in (2, 3):
        assert golden_report(tmp_path, workers=workers, **kw) == one, workers
    assert SPLITS and min(SPLITS) >= 2  # the multi-process path ran, on several ranges


def messy_lines(rng: random.Random, n: int) -> list[str]:
    """Clean and broken records, duplicates (exact and whitespace variants) far apart, blank lines."""
    lines: list[str] = []
    answers = ["Yes.", "THE ANSWER IS NO.", "Réponse: ÉTÉ.", "Ответ: ДА", "答案：好。"]
    bad = [case for cases, _ in LINE_CASES.values() for case in cases]
    for i in range(n):
        r = rng.random()
        if r < 0.08 and lines:
            prior = rng.choice([x for x in lines if x.strip()] or [good(0)])
            lines.append(prior if rng.random() < 0.5 else prior.replace(": ", ":   ", 1))
        elif r < 0.12:
            lines.append(rng.choice(["", "   ", "\t"]))
        elif r < 0.2:
            lines.append(rng.choice(bad))
        elif r < 0.25:
            lines.append(msgs((U, f"mail me at user{i}@example.com"), (A, "noted, thanks")))
        elif r < 0.5:
            lines.append(msgs((U, f"Question {i}?"), (A, f"Prefix: {rng.choice(answers)} {i} :suffix")))
        else:
            lines.append(msgs((S, "You are terse."), (U, f"Q{i % 37}?"), (A, f"Prefix: {i % 37} :suffix")))
    return lines


def write(path: Path, lines: list[str], *, bom: bool, crlf_every: int, last_newline: bool) -> Path:
    parts = []
    for i, line in enumerate(lines):
        end = "\r\n" if crlf_every and i % crlf_every == 0 else "\n"
        parts.append(line + end)
    text = "".join(parts)
    if not last_newline:
        text = text.rstrip("\r\n")
    path.write_bytes((BOM if bom else "").encode() + text.encode())
    return path


@pytest.mark.parametrize("seed", range(6))
def test_generated_files_same_with_workers(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = messy_lines(rng, rng.randint(150, 400))
    train = write(
        tmp_path / "train.jsonl",
        lines,
        bom=seed % 2 == 0,
        crlf_every=[0, 3, 1][seed % 3],
        last_newline=seed % 3 != 1,
    )
    if seed == 5:  # a truncated last record
        train.write_bytes(train.read_bytes().rstrip(b"\r\n") + b"\n" + good(1)[:25].encode())
    val = write(
        tmp_path / "val.jsonl",
        [*rng.sample(lines, 30), *messy_lines(rng, 60)],
        bom=False,
        crlf_every=0,
        last_newline=True,
    )
    kws: list[dict[str, Any]] = [{}, {"strict": True, "max_errors": 25}, {"max_errors": 0}]
    for kw in kws:
        one = validate(train, 1, val, **kw)
        for workers in (2, 3, 5):
            got = validate(train, workers, val, **kw)
            assert got == one, (seed, kw, workers)
    assert len(SPLITS) == 2 * 3 * len(kws) and min(SPLITS) > 3  # train and validation files, split
    d = validate(train, 3, val)
    assert d["stats"]["duplicates"]["groups"] > 0 and d["stats"]["validation_overlap"] > 0


def test_identical_answers_and_common_prefix_across_ranges(tmp_path: Path) -> None:
    same = [msgs((U, f"q{i}"), (A, "Always this. OK")) for i in range(60)]
    p = write(tmp_path / "same.jsonl", same, bom=False, crlf_every=0, last_newline=True)
    one = validate(p, 1)
    assert one["summary"]["by_rule"].get("Q02") == 1 and validate(p, 3) == one
    p.write_text(p.read_text() + msgs((U, "q"), (A, "Always that. OK")) + "\n")
    one = validate(p, 1)
    assert "Q02" not in one["summary"]["by_rule"] and one["summary"]["by_rule"].get("Q04") == 2
    assert validate(p, 4) == one


def test_blank_start_and_document_fall_back_exactly(tmp_path: Path) -> None:
    p = tmp_path / "doc.jsonl"
    p.write_text("\n\n[\n" + "\n".join([good(i) for i in range(50)]) + "\n]\n")
    one = validate(p, 1)
    assert "F07" in one["summary"]["by_rule"] and validate(p, 3) == one
    p.write_text("\n \n" + "\n".join([good(i) for i in range(50)]) + "\n")
    assert validate(p, 3) == validate(p, 1)


def test_more_workers_than_lines_and_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "two.jsonl"
    p.write_text(good(1) + "\n" + good(1))
    assert validate(p, 8) == validate(p, 1)
    p.write_bytes(b"")
    assert validate(p, 3) == validate(p, 1)


def test_split_ranges_start_at_lines(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    data = b"".join(b"x" * (i % 13) + b"\n" for i in range(500))
    p.write_bytes(data)
    for n in (1, 2, 3, 7, 50, 2000):
        bounds = parallel.split_ranges(p, len(data), n)
        assert bounds[0] == 0 and bounds[-1] == len(data) and bounds == sorted(set(bounds))
        assert len(bounds) - 1 <= n
        assert all(data[b - 1 : b] == b"\n" for b in bounds[1:-1])
        counts = [parallel.count_newlines(str(p), b, a) for a, b in itertools.pairwise(bounds)]
        assert sum(counts) == 500


def test_count_newlines_any_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "_READ", 1000)  # the Python loop crosses its buffer too
    rng = random.Random(4)
    data = bytes(rng.choice(b"ab\n") for _ in range(20_000))
    p = tmp_path / "n.bin"
    p.write_bytes(data)
    for start, end in [(0, len(data)), (0, 0), (1, 63), (5, 64), (31, 5000), (999, 1001), (19_990, 30_000)]:
        assert parallel.count_newlines(str(p), end, start) == data[start:end].count(b"\n"), (start, end)


def test_default_workers() -> None:
    assert parallel.workers_for(1000, None) == 1
    assert parallel.workers_for(parallel.PARALLEL_MIN_BYTES + 1, None) == min(parallel.cpu_count(), 4)
    assert parallel.workers_for(10, 3) == 3


def test_pool_unavailable_falls_back_to_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path / "t.jsonl", [good(i) for i in range(30)], bom=False, crlf_every=0, last_newline=True)
    one = validate(p, 1)

    def broken(workers: int) -> Any:
        raise OSError("no semaphores")

    monkeypatch.setattr(parallel, "make_pool", broken)
    assert validate(p, 3) == one


def test_json_line_numbers_are_absolute(tmp_path: Path) -> None:
    lines = [good(i) for i in range(200)]
    lines[150] = "{not json"
    p = write(tmp_path / "n.jsonl", lines, bom=False, crlf_every=0, last_newline=True)
    t0 = time.perf_counter()
    d = validate(p, 3)
    assert time.perf_counter() - t0 < 30
    assert [i["line"] for i in d["issues"] if i["rule"] == "L01"] == [151]
    assert json.dumps(d) == json.dumps(validate(p, 1))


def test_spawned_workers_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start method used off Linux: workers import everything afresh (keys must not depend on it)."""
    rng = random.Random(9)
    lines = messy_lines(rng, 200)
    p = write(tmp_path / "s.jsonl", [*lines, *lines[:40]], bom=True, crlf_every=4, last_newline=False)
    one = validate(p, 1)
    monkeypatch.setattr(parallel, "START_METHOD", "spawn")
    assert validate(p, 2) == one and SPLITS and min(SPLITS) >= 2
