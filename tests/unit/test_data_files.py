"""File-level cases a user will hit: every one is a finding with a line, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


def test_block_reads_cut_lines_like_one_big_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report does not depend on where the read blocks end (tiny blocks: every line crosses one)."""
    import phi3ft.data.validate as v

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


# ---- not UTF-8 JSON Lines at all (issue 19 item 5): one file-level finding, before any line rule ----------
def _zip(data: bytes) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train.jsonl", data)
    return buf.getvalue()


def _encoders() -> dict[str, tuple[str, Any, str, str, str]]:
    """case -> (file name, bytes -> file bytes, rule, what the message says, the command in the hint)."""
    import bz2
    import gzip
    import lzma

    return {
        "utf16-bom": ("t.jsonl", lambda b: b.decode().encode("utf-16"), "F05",
                      "is UTF-16LE text (byte-order mark FF FE)", "iconv -f UTF-16 -t UTF-8 "),
        "utf16be-bom": ("t.jsonl", lambda b: b"\xfe\xff" + b.decode().encode("utf-16-be"), "F05",
                        "is UTF-16BE text (byte-order mark FE FF)", "iconv -f UTF-16 -t UTF-8 "),
        "utf16le-nobom": ("t.jsonl", lambda b: b.decode().encode("utf-16-le"), "F05",
                          "is UTF-16LE text (no byte-order mark", "iconv -f UTF-16LE -t UTF-8 "),
        "utf16be-nobom": ("t.jsonl", lambda b: b.decode().encode("utf-16-be"), "F05",
                          "is UTF-16BE text (no byte-order mark", "iconv -f UTF-16BE -t UTF-8 "),
        "utf32-bom": ("t.jsonl", lambda b: b.decode().encode("utf-32"), "F05",
                      "is UTF-32LE text (byte-order mark FF FE 00 00)", "iconv -f UTF-32 -t UTF-8 "),
        "utf32be-nobom": ("t.jsonl", lambda b: b.decode().encode("utf-32-be"), "F05",
                          "is UTF-32BE text (no byte-order mark", "iconv -f UTF-32BE -t UTF-8 "),
        "gzip": ("t.jsonl.gz", gzip.compress, "F17", "is gzip-compressed (magic bytes 1F 8B)", "gunzip -k "),
        "gzip-as-jsonl": ("t.jsonl", gzip.compress, "F17", "is gzip-compressed", "gzip -dc "),
        "zip": ("t.zip", _zip, "F17", "is a zip archive (magic bytes 50 4B 03 04)", "unzip "),
        # a zstd frame header: magic, then any payload (detection reads only the magic)
        "zstd": ("t.jsonl.zst", lambda b: b"\x28\xb5\x2f\xfd" + b[:64], "F17",
                 "is zstd-compressed (magic bytes 28 B5 2F FD)", "zstd -d "),
        "bzip2": ("t.jsonl.bz2", bz2.compress, "F17", "is bzip2-compressed", "bunzip2 -k "),
        "xz": ("t.jsonl.xz", lzma.compress, "F17", "is xz-compressed", "unxz -k "),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_encoders()))
def test_other_encodings_and_compressed_files_are_named_with_the_command(tmp_path: Path, case: str) -> None:
    name, encode, rule, said, command = _encoders()[case]
    p = tmp_path / name
    p.write_bytes(encode(body(300)))  # ~36 KB of UTF-8 JSON Lines before encoding
    r = check(p)
    assert r.counts == {rule: 1} and not r.valid  # no F03 "empty", no F04, no line findings
    (issue,) = r.issues
    assert issue.line is None and issue.severity == "error"
    assert said in issue.message and "no line was checked" in issue.message
    assert f"`{command}" in issue.hint
    assert r.files[0]["read"] is False and r.files[0]["records"] == 0


def test_a_compressed_validation_file_is_named_too(tmp_path: Path) -> None:
    import gzip

    train = tmp_path / "train.jsonl"
    train.write_bytes(body())
    val = tmp_path / "valid.jsonl.gz"
    val.write_bytes(gzip.compress(body(20)))
    r = check(train, validation=val)
    assert r.counts.get("F17") == 1 and "F03" not in r.counts and not r.valid
    assert next(i for i in r.issues if i.rule == "F17").file == str(val)


@pytest.mark.parametrize("case", ["utf16-bom", "utf16le-nobom", "utf32-bom", "gzip", "gzip-as-jsonl"])
def test_the_hinted_command_gives_a_valid_file(tmp_path: Path, case: str) -> None:
    import shlex
    import shutil
    import subprocess

    name, encode, _rule, _said, _command = _encoders()[case]
    tool = "iconv" if case.startswith("utf") else "gzip"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    p = tmp_path / name
    p.write_bytes(encode("".join(x + "\n" for x in base(120)).replace("answer", "réponse é").encode()))
    hint = check(p).issues[0].hint
    command = hint.split("`")[1]
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)  # the hint, as a user pastes it
    out = Path(shlex.split(hint.split("`")[3])[-1])  # "then `phi3ft validate OUT`"
    r = check(out)
    assert r.valid and r.stats["examples"] == 120 and "F06" not in r.counts, r.counts


def test_sniff_leaves_utf8_and_lookalikes_alone() -> None:
    from phi3ft.data.scan import sniff_file_kind

    utf8 = body(5)
    assert sniff_file_kind(utf8) is None
    assert sniff_file_kind(b"\xef\xbb\xbf" + utf8) is None  # UTF-8 BOM: F06 and the lines, as before
    assert sniff_file_kind("é".encode() * 100) is None
    assert sniff_file_kind(b"BZh9 is not a bzip2 stream\n") is None
    assert sniff_file_kind(b"") is None and sniff_file_kind(b"{}") is None
    assert sniff_file_kind("{}\n{}\n".encode("utf-16-le")) is not None  # short, but the pattern holds
