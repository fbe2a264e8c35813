"""The fast path's building blocks: pre-filters never hide a finding, casing and duplicate semantics."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.unit.test_data_golden import SENSITIVE
from tests.unit.test_data_rules import msgs

from phi3ft.data.scan import (
    CONTROL,
    G_ALL,
    G_CONTROL,
    G_SECRET,
    G_SPECIAL,
    CaseCounter,
    DuplicateIndex,
    LineScanner,
    case_counts,
    dup_key,
    line_gates,
    line_scan,
    normalised_form,
    sensitive,
)

PIECES = [
    *SENSITIVE,
    "plain words",
    "x + y = z",
    "+",
    "+٣",
    "١٢",
    "4111 1111",
    " 1111 1111",
    "-1111-",
    "  1111",
    "11 ",
    "DE89",
    " 3704 0044",
    "AKIA",
    "IOSFODNN7EXAMPLE",
    "github_pat_11ABCDEFG0123456789abcdefghijklmnop",
    "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    "Bearer",
    " abcdefghijklmnopqrstuvwxyz",
    "sk-",
    "abcdefghijklmnopqrstuvwx",
    "user:pw@",
    "http://",
    "<|end|>",
    "<",
    "\x7f",
    "\x01",
    "\x0c",
    "\b",
    "é",
    "Д",
    "中",
    "/",
    "\n",
    "\t",
    '"',
    "\\",
]


def _lines(rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(3000):
        content = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))
        line = msgs(("user", "q"), ("assistant", content))
        choice = rng.random()
        if choice < 0.3:
            line = json.dumps(json.loads(line), ensure_ascii=True)
        elif choice < 0.4:
            line = line.replace("/", "\\/")
        elif choice < 0.5:
            line = line.replace("<", "\\u003c").replace("@", "\\u0040")
        out.append(line.encode())
    return out


def test_line_gates_are_necessary_conditions() -> None:
    """With the pre-filters on, exactly the findings of the unfiltered precise checks."""
    for raw in _lines(random.Random(5)):
        gates = line_gates(raw)
        for m in json.loads(raw)["messages"]:
            content = m["content"]
            assert sensitive(content, gates) == sensitive(content, G_ALL), (raw, gates)
            if CONTROL.search(content):
                assert gates & G_CONTROL, raw
            if "<|end|>" in content:
                assert gates & G_SPECIAL, raw


def test_case_counts_match_str_methods() -> None:
    rng = random.Random(2)
    alphabet = "aZ éÉßẞİıΣσςЁёДд中文ǅǆΩΩ\n1"

    def ref(t: str) -> tuple[int, int]:
        return sum(1 for c in t if c.lower() != c), sum(1 for c in t if c.upper() != c)

    for _ in range(2000):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        assert case_counts(t) == ref(t), t
    assert case_counts("ВСЁ ХОРОШО") == (9, 0) and case_counts("Straße") == (1, 5)
    assert case_counts("中文 ABC") == (3, 0)
    mixed = "ﬁ İ ᾈ ß Straße ẞ " * 50 + "ÉTÉ ŉ"  # length-changing characters among ordinary ones
    assert case_counts(mixed) == ref(mixed)


def test_case_counter_sums_batches_exactly() -> None:
    rng = random.Random(3)
    words = ["Straße", "ÉTÉ", "ВСЁ", "ok", "ﬁne", "İstanbul", "中文", "ǅemal", "ALL CAPS", "x" * 5000]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 40))) for _ in range(3000)]
    counter = CaseCounter()
    for t in texts:
        counter.add(t)
    counter.flush()
    assert (counter.upper, counter.lower) == tuple(map(sum, zip(*map(case_counts, texts), strict=True)))


def test_whitespace_normalised_duplicates_collapse_runs(tmp_path: Path) -> None:
    forms = [
        b'{"messages": [{"role": "user", "content": "a  b\\n\\nc"}]}',
        b'{"messages":[{"role":"user","content":" a b c "}]}',
        b'{"messages": [{"role": "user", "content": "a\\tb c"}]}',
        b'{"messages": [{"role": "\\u0075ser", "content": "a b\\u0020c"}]}',
    ]
    different = [b'{"messages": [{"role": "user", "content": "ab c"}]}']
    assert len({normalised_form(f) for f in forms}) == 1
    assert normalised_form(different[0]) != normalised_form(forms[0])
    keys = {dup_key(f, json.loads(f)) for f in forms}
    assert len(keys) == 1  # the index key is equal for every duplicate
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(forms + different + [forms[0]]) + b"\n")
    index = DuplicateIndex(str(path))
    offset = 0
    hits = []
    for ln, f in enumerate([*forms, *different, forms[0]], 1):
        hits.append(index.add(dup_key(f, json.loads(f)), f, ln, offset))
        offset += len(f) + 1
    index.close()
    assert hits == [None, (1, False), (1, False), (1, False), None, (1, True)]


def test_dup_key_equal_for_every_whitespace_and_escape_spelling() -> None:
    """Records that normalise to the same form get the same key, however their whitespace runs are spelt
    (space, tab, newline, CR, form feed, vertical tab) and whether or not non-ASCII text is escaped."""
    rng = random.Random(12)
    words = ["a", "é", "中", "\\", "u000b", "\\u000b", '"', "\x01", "ntrf", "x\x85y", "\xa0"]
    runs = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", " \t\x0b "]
    for _ in range(2000):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 8))]

        def spell(parts: list[str] = parts) -> str:
            edge = rng.choice(["", " ", "\n"])
            return (
                edge + "".join(p + rng.choice(runs) for p in parts[:-1]) + parts[-1] + rng.choice(["", "\t"])
            )

        record = lambda text: {"messages": [{"role": "user", "content": text}]}  # noqa: E731
        a, b = record(spell()), record(spell())
        lines = [json.dumps(a).encode(), json.dumps(b, ensure_ascii=False).encode(), json.dumps(b).encode()]
        assert len({normalised_form(x) for x in lines}) == 1
        assert len({dup_key(x, json.loads(x)) for x in lines}) == 1, lines


def test_github_tokens_pass_the_pre_filter() -> None:
    """Regression: the pre-filter looked for "ghithub_pat_", so fine-grained GitHub tokens were never
    reported."""
    token = "github_pat_11ABCDEFG0123456789abcdefghijklmnop"
    line = msgs(("user", f"my token is {token}"), ("assistant", "ok")).encode()
    gates = line_gates(line)
    assert gates & G_SECRET
    assert [rule for _, rule, _ in sensitive(f"my token is {token}", gates)] == ["Q08"]


def test_line_scanner_same_key_and_necessary_gates() -> None:
    """LineScanner (long first messages scanned once): the key of line_scan bit for bit, gates that keep
    every finding of the unfiltered checks and set no bit line_gates does not, over lines that share long
    first messages written every way (escapes, role orders, spacing, duplicate keys) with random second
    messages."""
    rng = random.Random(11)
    scanner = LineScanner(max_chars=20_000)  # small: generations turn over during the test
    # half of them without characters json.dumps escapes as backslash-u (those are never spliced)
    plain = [p for p in PIECES if (p.isprintable() and p.isascii()) or p in "éД中\n\t"]
    firsts = [
        "".join(rng.choice(PIECES if k % 2 else plain) for _ in range(rng.randint(40, 120)))
        for k in range(12)
    ]
    for _ in range(1500):
        first = rng.choice(firsts)
        second = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
        role = rng.choice(["system", "user", "assistant"])
        choice = rng.random()
        if choice < 0.55:
            line = json.dumps(
                {"messages": [{"role": role, "content": first}, {"role": "assistant", "content": second}]},
                ensure_ascii=False,
            )
        elif choice < 0.65:
            line = json.dumps(
                {"messages": [{"role": role, "content": first}, {"role": "user", "content": second}]}
            )
        elif choice < 0.75:  # backslash-u escapes everywhere
            line = json.dumps(
                {"messages": [{"role": role, "content": first}, {"role": "user", "content": second}]},
                ensure_ascii=True,
            )
        elif choice < 0.82:  # content before role: never spliced
            line = json.dumps(
                {"messages": [{"content": first, "role": role}, {"role": "user", "content": second}]},
                ensure_ascii=False,
            )
        elif choice < 0.9:  # the first content string written twice: the parsed value is the second
            other = rng.choice(firsts)
            inner = json.dumps(first, ensure_ascii=False)
            line = (
                f'{{"messages":[{{"role":"{role}","content":{inner},"content":'
                f"{json.dumps(other, ensure_ascii=False)}}},"
                f'{{"role":"user","content":{json.dumps(second, ensure_ascii=False)}}}]}}'
            )
        else:  # spacing between the tokens
            line = json.dumps(
                {"messages": [{"role": role, "content": first}, {"role": "user", "content": second}]},
                ensure_ascii=False,
                indent=None,
                separators=(" , ", " : "),
            )
        raw = line.encode()
        value = json.loads(raw)
        parsed_first = value["messages"][0]["content"]
        want_gates, want_key = line_scan(raw)
        gates, key = scanner.scan(raw, parsed_first)
        assert key == want_key, line
        assert gates & ~want_gates == 0, line
        for m in value["messages"]:
            content = m["content"]
            assert sensitive(content, gates) == sensitive(content, G_ALL), (line, gates)
            if CONTROL.search(content):
                assert gates & G_CONTROL, line
            if "<|end|>" in content:
                assert gates & G_SPECIAL, line
        if key >= 0:
            assert key == dup_key(raw, value), line
    remembered = [*scanner._young.values(), *scanner._old.values()]
    assert any(e is not None for e in remembered)  # some lines were spliced
