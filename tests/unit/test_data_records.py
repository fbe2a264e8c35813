"""One JSONL reader (issue 14 item 4): one file per quirk, read through every consumer, same records or errors.

Consumers: ``validate`` (the line rules), ``split``, the trainer's ``read_conversations`` and ``eval``'s
``load_eval_examples``. Before the shared reader, ``validate`` accepted a BOM that the trainer rejected, the
trainer raised a raw UnicodeDecodeError on invalid UTF-8, and ``eval`` split records at U+2028.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from phi3ft.data.records import read_records
from phi3ft.data.split import split_dataset
from phi3ft.data.validate import validate_dataset
from phi3ft.errors import DataError
from phi3ft.evaluation import load_eval_examples
from phi3ft.train.data import read_conversations

N = 12


def _record(i: int, answer: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": answer or f"It is {2 * i}."},
        ]
    }


def _lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in records]


def _plain() -> list[bytes]:
    return _lines([_record(i) for i in range(N)])


#: quirk -> (file bytes, the 1-based lines that hold records)
def _quirks() -> dict[str, tuple[bytes, list[int]]]:
    plain = _plain()
    blank = [plain[0], b"", plain[1], b"   \t", *plain[2:6], b"", b"", *plain[6:], b"", b""]
    sep = _lines([_record(i, "first line\u2028second line\x85third" if i == 2 else None) for i in range(N)])
    return {
        "bom": (b"\xef\xbb\xbf" + b"\n".join(plain) + b"\n", list(range(1, N + 1))),
        "crlf": (b"\r\n".join(plain) + b"\r\n", list(range(1, N + 1))),
        "blank-lines": (
            b"\n".join(blank) + b"\n",
            [n for n, line in enumerate(blank, 1) if line.strip()],
        ),
        "no-final-newline": (b"\n".join(plain), list(range(1, N + 1))),
        "unicode-line-separators": (b"\n".join(sep) + b"\n", list(range(1, N + 1))),
    }


def _bad_utf8() -> bytes:
    rows = _plain()
    rows[4] = rows[4].replace(b"What", b"Wh\xffat")
    return b"\n".join(rows) + b"\n"


def _consumers(tmp_path: Path) -> dict[str, Callable[[Path], list[int]]]:
    """Each consumer as ``path -> the line numbers of the records it read`` (or it raises DataError)."""

    def split(p: Path) -> list[int]:
        out = tmp_path / f"split-{p.stem}"
        result = split_dataset(p, out, validation_fraction=0.25, seed=1)
        got = [
            orjson.loads(x)
            for side in ("train", "validation")
            for x in (out / f"{side}.jsonl").read_bytes().splitlines()
        ]
        assert result.train_examples + result.validation_examples == len(got)
        expected = [r.value for r in read_records(p)]
        assert sorted(map(orjson.dumps, got)) == sorted(map(orjson.dumps, expected))  # byte-for-byte records
        return [r.line for r in read_records(p)]

    def train(p: Path) -> list[int]:
        conversations = read_conversations(p)
        records = list(read_records(p))
        assert conversations == [r.value["messages"] for r in records]
        return [r.line for r in records]

    def evaluate(p: Path) -> list[int]:
        examples = load_eval_examples(p)
        for ex, r in zip(examples, read_records(p), strict=True):
            assert ex.reference == r.value["messages"][-1]["content"]
        return [ex.line for ex in examples]

    def validate(p: Path) -> list[int]:
        report = validate_dataset(p, count_tokens=False, workers=1)
        errors = [i for i in report.issues if i.severity == "error"]
        if errors:
            raise DataError(f"{p}:{errors[0].line}: {errors[0].rule} {errors[0].message}")
        blank = {i.line for i in report.issues if i.rule == "L03"}
        records = [n for n in range(1, report.files[0]["lines"] + 1) if n not in blank]
        assert len(records) == report.files[0]["records"] == report.stats["examples"]
        return records

    return {"validate": validate, "split": split, "train": train, "eval": evaluate}


@pytest.mark.parametrize("quirk", list(_quirks()))
def test_every_consumer_reads_the_same_records(tmp_path: Path, quirk: str) -> None:
    data, lines = _quirks()[quirk]
    p = tmp_path / f"{quirk}.jsonl"
    p.write_bytes(data)
    assert [r.line for r in read_records(p)] == lines
    for name, consume in _consumers(tmp_path).items():
        assert consume(p) == lines, name
    report = validate_dataset(p, count_tokens=False).to_dict()
    assert report["files"][0]["records"] == len(lines)
    rules = report["summary"]["by_rule"]
    assert ("F06" in rules) == (quirk == "bom")
    assert ("F13" in rules) == (quirk == "crlf")
    assert rules.get("L03", 0) == (6 if quirk == "blank-lines" else 0)
    assert ("F14" in rules) == (quirk == "no-final-newline")


def test_invalid_utf8_is_the_same_error_everywhere(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(_bad_utf8())
    report = validate_dataset(p, count_tokens=False)
    (f05,) = [i for i in report.issues if i.rule == "F05"]
    assert f05.line == 5 and "invalid UTF-8 at byte 45 of the line (file offset 477)" in f05.message
    where = f05.message.split(": ", 1)[1]  # "invalid UTF-8 at byte 45 of the line (file offset 477): ..."
    for name, consume in _consumers(tmp_path).items():
        if name == "validate":
            continue
        with pytest.raises(DataError) as err:
            consume(p)
        assert err.value.message == f"{p}:5: {where}", name
        assert "phi3ft validate" in (err.value.hint or ""), name


def test_utf16_file_is_refused_everywhere_with_the_conversion(tmp_path: Path) -> None:
    p = tmp_path / "utf16.jsonl"
    p.write_bytes(("\n".join(x.decode() for x in _plain()) + "\n").encode("utf-16"))
    report = validate_dataset(p, count_tokens=False)
    assert [i.rule for i in report.issues if i.severity == "error"] == ["F05"]
    for name, consume in _consumers(tmp_path).items():
        if name == "validate":
            continue
        with pytest.raises(DataError) as err:
            consume(p)
        assert "is UTF-16LE text, not UTF-8" in err.value.message, name
        assert "iconv -f UTF-16 -t UTF-8" in (err.value.hint or ""), name


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    rows = _plain()
    rows[2] = b'{"messages": [}'
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b"\n".join(rows) + b"\n")
    for name in ("split", "train", "eval"):
        with pytest.raises(DataError, match=r":3: not valid JSON"):
            _consumers(tmp_path)[name](p)
    rows[2] = b"[1, 2]"
    p.write_bytes(b"\n".join(rows) + b"\n")
    for name in ("split", "train", "eval"):
        with pytest.raises(DataError, match=r":3: a JSON list, not an object"):
            _consumers(tmp_path)[name](p)
