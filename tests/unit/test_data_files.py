"""File-level cases a user will hit: every one is a finding with a line, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.unit.test_data_rules import base, good

from phi3ft.data.validate import validate_dataset

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data"


def check(path: Path, **kw: object):  # type: ignore[no-untyped-def]
    return validate_dataset(path, model="phi-3-mini-4k-instruct", count_tokens=False, **kw)  # type: ignore[arg-type]


def body(n: int = 120) -> bytes:
    return "".join(x + "\n" for x in base(n)).encode()


def test_missing_path_and_directory(tmp_path: Path) -> None:
    r = check(tmp_path / "nope.jsonl")
    assert not r.valid and r.counts == {"F01": 1} and r.files == []
    r = check(tmp_path)
    assert not r.valid and r.counts == {"F02": 1}


def test_empty_and_blank_only(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"")
    r = check(p)
    assert "F03" in r.counts and not r.valid
    p.write_bytes(b"\n  \n\n")
    r = check(p)
    assert "F03" in r.counts and r.counts["L03"] == 3


def test_invalid_utf8_reports_line_and_offset(tmp_path: Path) -> None:
    p = tmp_path / "u.jsonl"
    data = body(12)
    bad = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'
    p.write_bytes(data + bad)
    r = check(p)
    f05 = next(i for i in r.issues if i.rule == "F05")
    offset = len(data) + bad.index(b"\xe9")
    assert f05.line == 13 and f"file offset {offset}" in f05.message
    assert not r.valid


def test_bom_is_accepted_and_noted(tmp_path: Path) -> None:
    p = tmp_path / "b.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + body())
    r = check(p)
    assert r.valid and r.counts.get("F06") == 1 and r.stats["examples"] == 120 and r.files[0]["bom"]


def test_crlf_and_no_trailing_newline(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_bytes(body().replace(b"\n", b"\r\n").rstrip(b"\r\n"))
    r = check(p)
    assert r.valid and r.counts.get("F13") == 1 and r.counts.get("F14") == 1 and r.stats["examples"] == 120
    assert r.files[0]["crlf_lines"] == 119


def test_truncated_last_line(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(body() + good(1).encode()[:30])
    r = check(p)
    assert [i.line for i in r.issues if i.rule == "F15"] == [121] and not r.valid
    assert "L01" not in r.counts


def test_invalid_json_line_has_column(tmp_path: Path) -> None:
    p = tmp_path / "j.jsonl"
    p.write_bytes(body() + b'{"messages": [}\n' + body(1))
    r = check(p)
    l01 = next(i for i in r.issues if i.rule == "L01")
    assert l01.line == 121 and "column" in l01.message
    assert r.stats["examples"] == 121  # the next line was still checked


@pytest.mark.parametrize("name", ["array.json", "pretty.json"])
def test_json_document_instead_of_jsonl(name: str) -> None:
    r = check(FIXTURES / name)
    f07 = next(i for i in r.issues if i.rule == "F07")
    assert "jq -c" in f07.hint and not r.valid
    assert "L01" not in r.counts and "F04" in r.counts


def test_blank_lines_inside(tmp_path: Path) -> None:
    p = tmp_path / "bl.jsonl"
    p.write_bytes(body(60) + b"\n   \n" + body(60))
    r = check(p)
    assert [i.line for i in r.issues if i.rule == "L03"] == [61, 62] and r.stats["examples"] == 120


def test_extremely_long_line_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import phi3ft.data.validate as v

    monkeypatch.setattr(v, "MAX_LINE_BYTES", 4096)
    p = tmp_path / "l.jsonl"
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 20000}]}).encode() + b"\n"
    p.write_bytes(body(60) + huge + body(60))
    r = check(p)
    assert [i.line for i in r.issues if i.rule == "F16"] == [61] and r.stats["examples"] == 120


def _mixed_file(path: Path) -> None:
    """Every kind of line the block reader must cut right: a BOM, CRLF, blank, long (several read blocks),
    overlong (skipped) in the middle, a parse error, an overlong last line without a newline."""
    long = json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y" * 2500}]}
    ).encode()
    over = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    rows = base(40)
    path.write_bytes(
        b"\xef\xbb\xbf"
        + "".join(x + "\n" for x in rows[:10]).encode()
        + "".join(x + "\r\n" for x in rows[10:15]).encode()
        + b"\n   \n"
        + long
        + b"\n"
        + over
        + b"\n"
        + "".join(x + "\n" for x in rows[15:30]).encode()
        + b'{"messages": [\n'
        + (long + b"\n") * 3
        + "".join(x + "\n" for x in rows[30:]).encode()
        + over
    )


@pytest.mark.parametrize("accelerated", [True, False])
def test_block_reads_cut_lines_like_one_big_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accelerated: bool
) -> None:
    """The report does not depend on where the read blocks end (tiny blocks: every line crosses one)."""
    import phi3ft.data.validate as v

    if not accelerated:
        monkeypatch.setattr(v, "new_walker", lambda *a: None)
    monkeypatch.setattr(v, "MAX_LINE_BYTES", 4096)
    p = tmp_path / "mixed.jsonl"
    _mixed_file(p)
    size = p.stat().st_size
    seen: list[tuple[int, int]] = []
    whole = check(p, progress=lambda done, total: seen.append((done, total))).to_dict()
    assert [(i["rule"], i["line"]) for i in whole["issues"] if i["rule"] in ("F06", "F16", "L01", "L03")] == [
        ("F06", 1),
        ("L03", 16),
        ("L03", 17),
        ("F16", 19),
        ("L01", 35),
        ("F16", 49),
    ]
    assert whole["files"][0]["lines"] == 49 and whole["files"][0]["crlf_lines"] == 5
    assert whole["stats"]["examples"] == 40 + 1 + 3
    assert seen[-1] == (size, size) and seen == sorted(seen)
    for block in (1, 7, 100, 2600):
        monkeypatch.setattr(v, "READ_BUFFER", block)
        assert check(p).to_dict() == whole, block
    for workers in (2, 3):  # ranges start at line starts; the same report
        assert check(p, workers=workers).to_dict() == whole, workers


def test_pathological_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    p = tmp_path / "n.jsonl"
    p.write_bytes(body() + b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    r = check(p)
    assert [i.line for i in r.issues if i.rule == "L10"] == [121] and not r.valid


def test_lone_surrogate_escape(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_bytes(body() + b'{"messages": [{"role": "user", "content": "\\ud800"}]}\n')
    assert [i.line for i in check(p).issues if i.rule == "M15"] == [121]


def test_extension_and_size_warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import phi3ft.data.validate as v

    p = tmp_path / "data.txt"
    p.write_bytes(body())
    assert "F04" in check(p).counts
    monkeypatch.setattr(v, "LARGE_FILE_BYTES", 100)
    q = tmp_path / "d.jsonl"
    q.write_bytes(body())
    assert "F08" in check(q).counts


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read everything")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_bytes(body())
    p.chmod(0)
    assert "F02" in check(p).counts


def test_fixtures_are_valid() -> None:
    r = check(FIXTURES / "valid_100.jsonl")
    assert r.valid and r.stats["examples"] == 120


def test_duplicates_are_confirmed_from_the_right_bytes(tmp_path: Path) -> None:
    """The duplicate index re-reads earlier records by offset: BOM and CRLF must not shift it."""
    p = tmp_path / "dup.jsonl"
    lines = [x.encode() for x in base(120)]
    data = b"\xef\xbb\xbf" + lines[0] + b"\r\n" + b"\r\n".join(lines[1:]) + b"\r\n" + lines[0] + b"\r\n"
    p.write_bytes(data + lines[7].replace(b'"Question', b'"  Question') + b"\n")
    r = check(p)
    q01 = sorted(i.message for i in r.issues if i.rule == "Q01")
    assert q01 == [
        "2 copies (whitespace-normalised) on lines 1, 121.",
        "2 copies (whitespace-normalised) on lines 8, 122.",
    ]
    assert r.stats["duplicates"] == {"examples": 2, "exact": 1, "groups": 2}
