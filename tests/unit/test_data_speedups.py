"""The optional C extension ``phi3ft.data._speedups`` against the Python code it stands in for.

Each C function must return exactly what its Python counterpart returns (``scan.line_scan_py``,
``scan.case_counts_py``), and a whole validation must give the same report with and without it
(``PHI3FT_PURE_PYTHON=1``). ``scripts/test.sh`` sets ``PHI3FT_REQUIRE_SPEEDUPS=1`` so that a build that
silently fell back to Python fails here instead of skipping.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
from array import array
from pathlib import Path
from types import ModuleType

import pytest
from tests.unit.test_data_scan import _lines

from phi3ft.data import scan
from phi3ft.data.validate import _common_prefix, _common_suffix

ROOT = Path(__file__).resolve().parents[2]


def _speedups() -> ModuleType:
    if os.environ.get("PHI3FT_REQUIRE_SPEEDUPS") == "1":
        return importlib.import_module("phi3ft.data._speedups")
    return pytest.importorskip("phi3ft.data._speedups")


def test_extension_is_used_unless_pure_python_is_asked_for() -> None:
    _speedups()
    assert scan.ACCELERATED is (os.environ.get("PHI3FT_PURE_PYTHON", "") in ("", "0"))


# Pieces around every branch of line_gates: escapes, literal secret prefixes, card / IBAN shapes, buffer
# boundaries of the hashed bytes (lines over 4 kB).
RAW_PIECES = [
    b"\\u0041",
    b"\\u00e9",
    b"\\u0",
    b"\\/",
    b"\\b",
    b"\\f",
    b"\\n",
    b"\\t",
    b"\\\\",
    b"\\",
    b"Key=",
    b"ure=",
    b"sig=",
    b"=",
    b"sk-",
    b"xox",
    b"xoxb-",
    b"-----BEGIN",
    b"----BEGIN",
    b"-",
    b"gh",
    b"p_",
    b"ghp_",
    b"ghx_",
    b"github_pat_",
    b"github_pat",
    b"_",
    b"AKIA",
    b"ASIA",
    b"AKI",
    b"A",
    b"earer",
    b"Bearer ",
    b"://",
    b"@",
    b"+",
    b"+1",
    b"+\\",
    b"+\xc3\xa9",
    b"AB12",
    b"AB",
    b"12",
    b"1",
    b" ",
    b"-1",
    b"1 2 3 4-5 6 7 8 9 0 1 2 3",
    b"1234567890123",
    b"<",
    b"\x7f",
    b"\xe4\xb8\xad",
    b'"',
    b"\t",
    b"x" * 5000,
]


def _raw_lines(rng: random.Random, count: int) -> list[bytes]:
    return [b"".join(rng.choice(RAW_PIECES) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def _placed_lines() -> list[bytes]:
    """Each trigger piece at every offset of lines of several lengths: across the 32-byte steps of the
    AVX2 scan, its last full step and the byte-at-a-time tail."""
    out = []
    digit_runs = [  # card runs (13 digits, single spaces / dashes between) and near misses; IBAN shapes
        b"1 2 3 4 5 6 7 8 9 0 1 2",
        b"1-2-3-4-5-6-7-8-9-0-1-2-3",
        b"123456789012",
        b"1234567 89012  3",
        b"12 34 56 78 90 12 3",
        b"1" * 70,
        b"ZZ99",
        b"Z99",
    ]
    escapes = [b"\\u00", b"-\\u0041", b"\\u007f", b"\\u0080", b"\\u0099", b"\\\\u0041", b"\\\\\\/", b"\\\\"]
    for piece in [*RAW_PIECES[:-1], *digit_runs, *escapes, b"sk-", b"xoxb-", b"ghp_x", b"\\"]:
        for length in (40, 47, 64, 71, 100, 130):
            for at in range(0, length - len(piece) + 1):
                out.append(b"a" * at + piece + b"b" * (length - at - len(piece)))
    return out


def _digit_lines(rng: random.Random, count: int) -> list[bytes]:
    """Digits, separators and capitals in random proportions: card runs and IBAN shapes everywhere."""
    alphabet = [b"1", b"2", b"0", b" ", b"-", b"A", b"Z", b"a", b"  ", b"--", b"\\u00e9", b"x"]
    out = []
    for _ in range(count):
        weights = [rng.random() for _ in alphabet]
        out.append(b"".join(rng.choices(alphabet, weights=weights, k=rng.randint(0, 300))))
    return out


@pytest.mark.parametrize("simd", [True, False], ids=["avx2", "portable"])
def test_line_scan_matches_python(simd: bool) -> None:
    c = _speedups()
    before = c.simd(simd)
    try:
        if simd and not c.simd():
            pytest.skip("no AVX2 on this CPU (or not x86-64)")
        rng = random.Random(7)
        lines = _lines(rng) + _raw_lines(rng, 20000) + _placed_lines() + _digit_lines(rng, 20000)
        lines += [b"", b"\\", b"=", b"-", b"_", b"A", b"+", b"github_pat_" + b"a" * 40]
        lines += [b"-+\\xox\t", b"----BEGINxox", b"Key" * 20 + b"="]  # no wrap-around at the line start
        for path in sorted((ROOT / "examples").rglob("*.jsonl")):
            lines += path.read_bytes().splitlines()
        for line in lines:
            assert c.line_scan(line) == scan.line_scan_py(line), line[:200]
    finally:
        c.simd(before)


def test_line_scan_key_ignores_whitespace_like_dup_key() -> None:
    c = _speedups()
    a = b'{"messages": [{"role": "user", "content": "a  b\\n c"}]}'
    b = b'{"messages":[{"role":"user","content":"a b c"}]}'
    assert c.line_scan(a)[1] == c.line_scan(b)[1] == scan.dup_key(b, None, False)
    assert c.line_scan(b'{"a": "\\u0041"}') == (scan.G_ALL | scan.G_UESCAPE, -1)


def test_case_counts_match_python_for_every_code_point() -> None:
    c = _speedups()
    odd = scan._odd_chars()
    c.set_odd_case(
        odd.encode("utf-32-le"), bytes(x.lower() != x for x in odd), bytes(x.upper() != x for x in odd)
    )
    wrong = []
    for cp in range(0x110000):
        ch = chr(cp)
        if c.case_counts(ch) != (int(ch.lower() != ch), int(ch.upper() != ch)):
            wrong.append(hex(cp))
    assert not wrong, wrong[:20]
    rng = random.Random(3)
    alphabet = "aZß İﬁΣσςДжǅ中\u0345\U00010400\U0001e900x1 " + odd[:20]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        for variant in (text, text.encode("latin-1", "ignore").decode("latin-1"), "ascii " + text):
            assert c.case_counts(variant) == scan.case_counts_py(variant), variant
    # long ASCII runs (the AVX2 steps) broken by Latin-1 letters at every offset, with and without AVX2
    before = c.simd()
    try:
        for simd in (True, False):
            c.simd(simd)
            for length in (31, 32, 33, 64, 95, 200):
                for at in range(length):
                    base_text = "".join(rng.choice("aBcZz09 @[`{") for _ in range(length))
                    for odd_char in ("", "é", "É", "ß", "\xff", "\xb5"):
                        text = base_text[:at] + odd_char + base_text[at:]
                        assert c.case_counts(text) == scan.case_counts_py(text), (simd, text)
    finally:
        c.simd(before)


def test_walker_special_texts_without_a_leading_angle_bracket() -> None:
    c = _speedups()
    w = c.Walker(("[INST]",), False, _common_prefix, _common_suffix)
    rec = {"messages": [{"role": "user", "content": "q [INST]"}, {"role": "assistant", "content": "a"}]}
    assert w.walk(rec, True, True) is None  # M13 is Python's to report
    assert w.walk(rec, False, True) == (2, 9, False)
    assert w.take()[:4] == (1, 0, 1, True)


# ---- the whole validator, with and without the extension --------------------------------------------
ROLES = ["system", "user", "assistant", "assistant", "user", "tool", None, 3]
CONTENTS = [
    "How do I reset my controller?",
    "Hold the pairing button for 5 seconds.",
    " leading space",
    "trailing space ",
    "",
    "   ",
    "<|end|> in the text",
    "a < b and b > c",
    "Straße und Maß",
    "ǅ title case, ΣΑΣ and σς",
    "日本語のテキスト",
    "İstanbul ﬁ ligature",
    "x" * 10_500,
    "ok\u00a0",
    "\u2028separator",
    "card 4111 1111 1111 1111 and mail a@b.co",
    "control \x01 char",
    "All Caps ANSWER HERE",
    "Hold the pairing button for 5 seconds.",
    None,
    ["part"],
    7,
]


def _record(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.55:  # a valid-looking conversation, sometimes with one thing wrong
        msgs: list[dict[str, object]] = []
        if rng.random() < 0.5:
            msgs.append({"role": "system", "content": "You are a helpful support agent."})
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": rng.choice(CONTENTS[:4] + CONTENTS[6:12])})
            msgs.append(
                {"role": "assistant", "content": rng.choice(CONTENTS[1:2] + CONTENTS[7:14] + CONTENTS[17:19])}
            )
        if rng.random() < 0.3:
            m = rng.choice(msgs)
            what = rng.randrange(5)
            if what == 0:
                m["weight"] = rng.choice([0, 1, 2])
            elif what == 1:
                m["name"] = "bob"
            elif what == 2:
                m["content"] = rng.choice(CONTENTS)
            elif what == 3:
                m["role"] = rng.choice(ROLES)
            else:
                msgs.reverse()
        record: object = {"messages": msgs}
        if rng.random() < 0.05:
            record = {"messages": msgs, rng.choice(["tools", "prompt", "extra"]): 1}
    elif kind < 0.9:  # random roles and contents
        record = {
            "messages": [
                {"role": rng.choice(ROLES), "content": rng.choice(CONTENTS)} for _ in range(rng.randint(0, 5))
            ]
        }
    else:
        record = rng.choice(
            [[1, 2], {"prompt": "p", "completion": "c"}, {"messages": None}, {"messages": {}}]
        )
    text = json.dumps(record, ensure_ascii=rng.random() < 0.3)
    if rng.random() < 0.1:
        text = text.replace(" ", "  ").replace("/", "\\/")
    return text


def _report(path: Path, *args: str, pure: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PHI3FT_PURE_PYTHON"}
    if pure:
        env["PHI3FT_PURE_PYTHON"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "phi3ft",
            "validate",
            str(path),
            "--format",
            "json",
            "--max-errors",
            "100000",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode in (0, 3), proc.stderr
    report: dict[str, object] = json.loads(proc.stdout)
    return report


@pytest.mark.slow
def test_reports_are_the_same_with_and_without_the_extension(tmp_path: Path) -> None:
    _speedups()
    rng = random.Random(11)
    lines = [_record(rng) for _ in range(1500)]
    lines += rng.sample(lines, 100)  # exact duplicates
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    valid = tmp_path / "valid.jsonl"
    valid.write_text(
        "\n".join(rng.sample(lines, 40) + [_record(rng) for _ in range(40)]) + "\n", encoding="utf-8"
    )
    same = tmp_path / "same.jsonl"  # every answer the same: Q02, and a common prefix / suffix
    same.write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": "Maß OK"},
                    ]
                }
            )
            for i in range(60)
        )
        + "\n",
        encoding="utf-8",
    )
    cases = [
        (train, "--no-tokens", "--validation", str(valid)),
        (train, "--no-tokens", "--model", "phi-3-medium-4k-instruct", "--workers", "2"),
        (same, "--no-tokens"),
    ]
    for path, *args in cases:
        fast = _report(path, *args, pure=False)
        assert fast == _report(path, *args, pure=True), args
        assert fast["issues"], "the corpus must trip rules"


def test_walker_scan_takes_only_the_usual_valid_line() -> None:
    """The C line loop stops at each line the Python rules must see, and records the others in order."""
    import orjson

    c = _speedups()
    scan.ensure_odd_case()
    w = c.Walker(("<|end|>",), False, _common_prefix, _common_suffix)
    w.configure(orjson.loads, orjson.dumps, 50, 1 << 20, 10)

    def rec(user: str, answer: str) -> bytes:
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return json.dumps({"messages": msgs}).encode()

    ok = rec("q", "a")
    lines = [
        ok,
        ok,
        rec("q", "x" * 60),
        ok,
        ok + b"\r",
        ok,
        rec("mail a@b.co", "a"),
        b" " + ok,
        ok,
        b"[1]",
        ok,
    ]
    buf = b"\n".join(lines) + b"\n" + ok  # the last line has no newline: never the C loop's
    pos, line, stops = 0, 0, []
    while True:
        pos, line, status, chars = w.scan(buf, pos, len(buf), 1000, line, True)
        stops.append((line, status, chars))
        if status == 0:
            break
        if status == 1:  # what the Python path would do: record the line itself, go on after it
            w.record(-1, line + 1, 0, 0, 2, 2, False, True)
            pos = buf.index(b"\n", pos) + 1
            line += 1
    # T09 after line 3 (61 characters > 50); CR, '@', leading space, not an object: Python's; the tail: no newline
    assert stops == [(3, 2, 61), (4, 1, 0), (6, 1, 0), (7, 1, 0), (9, 1, 0), (11, 0, 0)]
    examples, messages, _chars, no_system, shown, keys, lines_b, offsets, _lengths = w.take_records()
    assert examples == 11 and no_system == 11 and shown == list(range(1, 11))
    assert array("Q", lines_b).tolist() == list(range(1, 12))
    assert array("I", messages).tolist() == [2] * 11
    assert array("Q", offsets).tolist()[:2] == [1000, 1000 + len(ok) + 1]
    assert array("q", keys).tolist()[4] == -1  # recorded by the stand-in for Python
    assert w.take_records()[0] == 0  # handed over once

    # a loads that fails with an ordinary exception sends the line to Python; Ctrl+C propagates
    def picky(b: object) -> object:
        if isinstance(b, memoryview):
            raise TypeError("no memoryview")
        return orjson.loads(b)  # type: ignore[arg-type]

    w.configure(picky, orjson.dumps, 50, 1 << 20, 10)
    assert w.scan(buf, 0, len(buf), 0, 0, True) == (0, 0, 1, 0)

    def interrupted(b: object) -> object:
        raise KeyboardInterrupt

    w.configure(interrupted, orjson.dumps, 50, 1 << 20, 10)
    with pytest.raises(KeyboardInterrupt):
        w.scan(buf, 0, len(buf), 0, 0, True)


def test_walker_scan_keys_escaped_lines_like_dup_key() -> None:
    """Lines with backslash-u escapes stay in the C loop; their key is dup_key's (re-serialised record)."""
    import orjson

    c = _speedups()
    scan.ensure_odd_case()
    w = c.Walker(("<|end|>",), False, _common_prefix, _common_suffix)
    w.configure(orjson.loads, orjson.dumps, 10_000, 1 << 20, 10)
    rng = random.Random(21)
    # no escape that sends the line to Python (\u0000-\u007f, \/, \b, \f), no leading whitespace
    words = [
        "Straße",
        "中文",
        "line\nbreak",
        "tab\there",
        "\\",
        "ntrf",
        "q\u2028r",
        "naïve",
        "\U0001f600",
        "cr\rlf",
    ]
    lines = []
    for _ in range(500):
        user = " ".join(rng.choices(words, k=rng.randint(1, 6)))
        answer = " ".join(rng.choices(words, k=rng.randint(1, 6)))
        record = {
            "messages": [
                {"role": "user", "content": "u " + user},
                {"role": "assistant", "content": answer + " ."},
            ]
        }
        lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.8).encode())
    buf = b"\n".join(lines) + b"\n"
    assert w.scan(buf, 0, len(buf), 0, 0, True) == (len(buf), len(lines), 0, 0)
    keys = array("q", w.take_records()[5]).tolist()
    assert keys == [scan.dup_key(line, json.loads(line)) for line in lines]
    assert sum(b"\\u" in line for line in lines) > 300  # most lines took the escaped-key path
