"""Every data rule: one failing and one passing case each (validate_dataset, the library API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR, TOKENIZERS

from phi3ft.data.rules import RULES, TOKEN_RULES
from phi3ft.data.validate import validate_dataset
from phi3ft.errors import UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "data"
MINI = "phi-3-mini-4k-instruct"


def msgs(*pairs: tuple[str, Any], **extra: Any) -> str:
    record: dict[str, Any] = {"messages": [{"role": r, "content": c} for r, c in pairs], **extra}
    return json.dumps(record)


def good(i: int = 0) -> str:
    return msgs(
        ("system", "You are a support agent."),
        ("user", f"Question number {i}?"),
        ("assistant", f"The answer to question {i} is simple."),
    )


def base(n: int = 120) -> list[str]:
    return [good(i) for i in range(n)]


def run(
    tmp_path: Path,
    lines: list[str],
    *,
    model: str = MINI,
    tokenizer: Path | None = None,
    name: str = "train.jsonl",
    **kw: Any,
) -> Any:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return validate_dataset(path, model=model, tokenizer=tokenizer, env={"HF_HUB_OFFLINE": "1"}, **kw)


U, A, S = "user", "assistant", "system"

# rule -> (lines added to a clean base that must trigger it, lines that must not)
LINE_CASES: dict[str, tuple[list[str], list[str]]] = {
    "L02": (["[1, 2]"], [good(900)]),
    "L04": (['{"conversation": []}'], [good(900)]),
    "L05": (['{"messages": {"role": "user"}}'], [good(900)]),
    "L06": (['{"messages": []}'], [good(900)]),
    "L07": (['{"prompt": "a", "completion": "b"}'], [good(900)]),
    "L08": ([msgs((U, "hi"), (A, "hello there"), prompt_id="x")], [good(900)]),
    "L09": ([msgs((U, "hi"), (A, "hello there"), tools=[])], [good(900)]),
    "M01": (['{"messages": ["hi", {"role": "assistant", "content": "x y"}]}'], [good(900)]),
    "M02": (['{"messages": [{"content": "hi"}, {"role": "assistant", "content": "x y"}]}'], [good(900)]),
    "M03": (['{"messages": [{"role": "user"}, {"role": "assistant", "content": "x y"}]}'], [good(900)]),
    "M04": (
        ['{"messages": [{"role": 1, "content": "hi"}, {"role": "assistant", "content": "x y"}]}'],
        [good(900)],
    ),
    "M05": ([msgs(("tool", "hi"), (A, "hello there"))], [good(900)]),
    "M06": (
        [
            '{"messages": [{"role": "user", "content": [{"type": "text"}]}, {"role": "assistant", "content": "x"}]}'
        ],
        [good(900)],
    ),
    "M07": ([msgs((U, "hi"), (A, "   "))], [good(900)]),
    "M08": ([msgs((U, ""), (A, "hello there"))], [good(900)]),
    "M09": (
        [
            '{"messages": [{"role": "user", "contents": "x", "content": "hi"}, {"role": "assistant", "content": "x y"}]}'
        ],
        [good(900)],
    ),
    "M10": (
        [
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x y", "weight": 2}]}'
        ],
        [good(900)],
    ),
    "M11": (
        [
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x y", "weight": 1}]}'
        ],
        [good(900)],
    ),
    "M12": (
        [
            '{"messages": [{"role": "user", "content": "hi", "name": "bob"}, {"role": "assistant", "content": "x y"}]}'
        ],
        [good(900)],
    ),
    "M13": (
        [msgs((U, "say <|end|> now"), (A, "hello there"))],
        [msgs((U, "a < b and c > d"), (A, "yes it is"))],
    ),
    "M14": ([msgs((U, "  hi"), (A, "hello there"))], [good(900)]),
    "M15": (
        [msgs((U, "bad \u0000 char"), (A, "hello there"))],
        [msgs((U, "tab\tand\nnewline"), (A, "fine"))],
    ),
    "C01": ([msgs((U, "hi"), (U, "again"))], [good(900)]),
    "C02": ([msgs((U, "hi"), (S, "late system"), (A, "hello there"))], [good(900)]),
    "C03": ([msgs((S, "one"), (S, "two"), (U, "hi"), (A, "hello there"))], [good(900)]),
    "C04": ([msgs((S, "sys"), (A, "hello"), (U, "hi"), (A, "there"))], [good(900)]),
    "C05": ([msgs((U, "hi"), (U, "again"), (A, "hello there"))], [good(900)]),
    "C06": ([msgs((U, "hi"), (A, "hello there"), (U, "and?"))], [good(900)]),
    "C07": ([msgs((A, "hello there"))], [good(900)]),
    "C08": (
        [
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x y", "weight": 0}]}'
        ],
        [good(900)],
    ),
    "Q05": ([msgs((U, "hi"), (A, "hello there \n"))], [good(900)]),
    "Q08": (
        [msgs((U, "my key"), (A, "use AKIAABCDEFGHIJKLMNOP here"))],
        [msgs((U, "my key"), (A, "use the portal"))],
    ),
    "Q09": (
        [msgs((U, "mail"), (A, "write to jane.doe@example.com"))],
        [msgs((U, "mail"), (A, "write to support"))],
    ),
}


@pytest.mark.parametrize("rule_id", sorted(LINE_CASES))
def test_line_rule_fails_and_passes(tmp_path: Path, rule_id: str) -> None:
    bad, ok = LINE_CASES[rule_id]
    failing = run(tmp_path, [*base(), *bad], count_tokens=False, name="bad.jsonl")
    assert failing.counts.get(rule_id, 0) >= 1, failing.counts
    hit = next(i for i in failing.issues if i.rule == rule_id)
    assert hit.line == 121 and hit.file.endswith("bad.jsonl")
    assert hit.severity == RULES[rule_id].severity and hit.hint and hit.message
    passing = run(tmp_path, [*base(), *ok], count_tokens=False, name="ok.jsonl")
    assert rule_id not in passing.counts, passing.counts
    if RULES[rule_id].severity == "error":
        assert not failing.valid and passing.valid


def test_paths_point_inside_the_record(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        [*base(), '{"messages": [{"role": "user", "content": "hi"}, {"role": 7, "content": "x"}]}'],
        count_tokens=False,
    )
    m04 = next(i for i in r.issues if i.rule == "M04")
    assert m04.path == "messages[1].role"


# ---- dataset-level rules ----------------------------------------------------------------------------
def test_f09_f10_example_counts(tmp_path: Path) -> None:
    assert "F09" in run(tmp_path, base(5), count_tokens=False).counts
    r = run(tmp_path, base(50), count_tokens=False)
    assert "F10" in r.counts and "F09" not in r.counts and r.valid
    assert not {"F09", "F10"} & set(run(tmp_path, base(120), count_tokens=False).counts)


def test_f11_f12_overlap_and_missing_validation(tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text("".join(x + "\n" for x in base()), encoding="utf-8")
    val = tmp_path / "v.jsonl"
    val.write_text(good(5) + "\n" + good(999) + "\n", encoding="utf-8")
    r = validate_dataset(train, val, model=MINI, count_tokens=False)
    assert r.counts.get("F11") == 1 and "F12" not in r.counts
    assert r.stats["validation_overlap"] == 1
    val.write_text(good(999) + "\n", encoding="utf-8")
    assert "F11" not in validate_dataset(train, val, model=MINI, count_tokens=False).counts
    assert "F12" in validate_dataset(train, model=MINI, count_tokens=False).counts


def test_q01_exact_and_whitespace_duplicates(tmp_path: Path) -> None:
    spaced = good(3).replace("Question number", "Question  number")
    r = run(tmp_path, [*base(), good(3), spaced], count_tokens=False)
    q01 = [i for i in r.issues if i.rule == "Q01"]
    assert len(q01) == 1 and "4, 121, 122" in q01[0].message
    assert r.stats["duplicates"] == {"examples": 2, "exact": 1, "groups": 1}
    assert "Q01" not in run(tmp_path, base(), count_tokens=False).counts


def test_q02_q03_q04_c09(tmp_path: Path) -> None:
    same = [msgs((U, f"q{i}"), (A, "Same answer.")) for i in range(20)]
    r = run(tmp_path, same, count_tokens=False)
    assert {"Q02", "C09"} <= set(r.counts)
    shouting = [msgs((U, f"q{i}"), (A, f"THIS IS LOUD {i}")) for i in range(20)]
    assert "Q03" in run(tmp_path, shouting, count_tokens=False).counts
    prefixed = [msgs((S, "s"), (U, f"q{i}"), (A, f"Answer: item {i * 7919 % 101}")) for i in range(20)]
    r = run(tmp_path, prefixed, count_tokens=False)
    assert "Q04" in r.counts and "C09" not in r.counts
    varied = [
        msgs(
            (S, "s"),
            (U, f"q{i}"),
            (A, f"{'Yes' if i % 2 else 'No'}, item {i} {'works' if i % 3 else 'failed'}"),
        )
        for i in range(20)
    ]
    assert not {"Q02", "Q03", "Q04"} & set(run(tmp_path, varied, count_tokens=False).counts)


def test_c10_medium_drops_system(tmp_path: Path) -> None:
    r = run(tmp_path, base(), model="phi-3-medium-4k-instruct", count_tokens=False)
    assert r.counts.get("C10") == 120 and "C09" not in r.counts
    assert "C10" not in run(tmp_path, base(), count_tokens=False).counts


# ---- token rules ------------------------------------------------------------------------------------
def test_t03_t04_t06_t08_with_real_tokenizer(tmp_path: Path) -> None:
    long_answer = msgs((U, "tell me"), (A, "word " * 5000))
    long_prompt = msgs((U, "word " * 5000), (A, "ok then fine"))
    short = msgs((U, "hi"), (A, "Ok"))
    r = run(tmp_path, [*base(), long_answer, long_prompt, short], tokenizer=PHI3_TOKENIZER_DIR)
    t03 = [i for i in r.issues if i.rule == "T03"]
    assert [i.line for i in t03] == [121, 122]
    assert "4,096" in t03[0].message and "tokens" in t03[0].message
    assert [i.line for i in r.issues if i.rule == "T04"] == [122]
    assert [i.line for i in r.issues if i.rule == "T06"] == [123]
    assert r.counts.get("T08") == 1 and not r.valid
    clean = run(tmp_path, base(), tokenizer=PHI3_TOKENIZER_DIR, epochs=3)
    assert clean.valid and not {"T03", "T04", "T06", "T01"} & set(clean.counts)
    assert clean.stats["tokens"]["billed"] == 3 * clean.stats["tokens"]["total"]


def test_t05_over_max_seq_length(tmp_path: Path) -> None:
    mid = msgs((U, "tell me"), (A, "word " * 9000))
    r = run(tmp_path, [*base(), mid], model="phi-4-mini-instruct", tokenizer=TOKENIZERS / "phi4-mini")
    assert [i.line for i in r.issues if i.rule == "T05"] == [121] and "T03" not in r.counts
    assert (
        "T05"
        not in run(tmp_path, base(), model="phi-4-mini-instruct", tokenizer=TOKENIZERS / "phi4-mini").counts
    )


def test_t01_t09_without_tokenizer_are_labelled_estimates(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(x + "\n" for x in [*base(), msgs((U, "x"), (A, "y" * 12000))]), encoding="utf-8")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf")}
    r = validate_dataset(path, model=MINI, env=env)
    assert r.counts.get("T01") == 1 and r.counts.get("T09") == 1
    assert r.tokenizer["name"] is None and "HF_HUB_OFFLINE" in r.tokenizer["reason"]
    assert set(r.skipped_rules) >= {"T03", "T04", "T05", "T06", "T08"}
    assert r.stats["tokens"]["exact"] is False and "estimate" in r.stats["tokens"]["method"]
    assert r.valid  # a warning: valid, but never "passed" for token rules
    assert not validate_dataset(path, model=MINI, env=env, strict=True).valid
    exact = validate_dataset(path, model=MINI, env={"PHI3FT_TOKENIZER_DIR": str(PHI3_TOKENIZER_DIR)})
    assert not {"T01", "T09"} & set(exact.counts) and exact.tokenizer["origin"] == "PHI3FT_TOKENIZER_DIR"


def test_wrong_tokenizer_is_a_usage_error_before_any_data_is_read(tmp_path: Path) -> None:
    """Retired T07: another model's tokenizer is exit 2 (usage), never a finding on good data."""
    absent = tmp_path / "not-read.jsonl"  # never opened: the tokenizer is refused first
    seen: list[tuple[int, int]] = []
    with pytest.raises(UsageError) as caught:
        validate_dataset(
            absent,
            model="phi-4-mini-instruct",
            tokenizer=PHI3_TOKENIZER_DIR,
            env={"HF_HUB_OFFLINE": "1"},
            progress=lambda done, total: seen.append((done, total)),
        )
    assert caught.value.exit_code == 2 and seen == []
    message = str(caught.value)
    assert "does not belong to phi-4-mini-instruct" in message and "<|endofprompt|>" in message
    assert "None" not in message
    assert "`hf download microsoft/Phi-4-mini-instruct tokenizer.json" in (caught.value.hint or "")
    env_dir = {"HF_HUB_OFFLINE": "1", "PHI3FT_TOKENIZER_DIR": str(PHI3_TOKENIZER_DIR)}
    with pytest.raises(UsageError, match="from PHI3FT_TOKENIZER_DIR") as caught:
        validate_dataset(absent, model="phi-4-mini-instruct", env=env_dir)
    assert (caught.value.hint or "").startswith("Point PHI3FT_TOKENIZER_DIR at phi-4-mini-instruct's")
    r = run(tmp_path, base(), model="phi-4", tokenizer=TOKENIZERS / "phi4")
    assert r.valid and "T07" not in r.counts and r.stats["tokens"]["exact"] is True


def test_t07_is_retired_and_kept() -> None:
    assert RULES["T07"].status == "retired" and "usage error (exit 2)" in RULES["T07"].retired_note
    assert "T07" not in TOKEN_RULES
    assert [rid for rid, r in RULES.items() if r.status == "retired"] == ["T07"]


def test_strict_promotes_warnings(tmp_path: Path) -> None:
    lines = [*base(), msgs((U, "say <|end|> now"), (A, "hello there"))]
    assert run(tmp_path, lines, count_tokens=False).valid
    strict = run(tmp_path, lines, count_tokens=False, strict=True)
    assert not strict.valid and next(i for i in strict.issues if i.rule == "M13").severity == "error"


def test_max_errors_caps_stored_issues_but_counts_all(tmp_path: Path) -> None:
    r = run(tmp_path, [*base(), *(["[1]"] * 30)], count_tokens=False, max_errors=5)
    assert len(r.issues) == 5 and r.counts["L02"] == 30 and r.issues_truncated


def test_every_registered_rule_is_covered() -> None:
    covered = set(LINE_CASES) | {"F01", "F02", "F03", "F04", "F05", "F06", "F07", "F08", "F09", "F10", "F11"}
    covered |= {
        "F12",
        "F13",
        "F14",
        "F15",
        "F16",
        "F17",  # tests/unit/test_data_files.py
        "L01",
        "L03",
        "L10",
        "Q01",
        "Q02",
        "Q03",
        "Q04",
        "C09",
        "C10",
    }
    covered |= {"T01", "T03", "T04", "T05", "T06", "T08", "T09"}
    assert {rid for rid, r in RULES.items() if r.status == "active"} == covered


def test_allow_truncation_and_allow_secrets(tmp_path: Path) -> None:
    long_answer = msgs((U, "tell me"), (A, "word " * 5000))  # first assistant turn itself too long
    long_tail = msgs((U, "q"), (A, "short answer"), (U, "word " * 5000), (A, "ok"))  # first turn fits
    lines = [*base(), long_answer, long_tail]
    r = run(tmp_path, lines, tokenizer=PHI3_TOKENIZER_DIR)
    assert [(i.line, i.severity) for i in r.issues if i.rule == "T03"] == [(121, "error"), (122, "error")]
    r = run(tmp_path, lines, tokenizer=PHI3_TOKENIZER_DIR, allow_truncation=True)
    assert [(i.line, i.severity) for i in r.issues if i.rule == "T03"] == [(121, "error"), (122, "warning")]
    assert "survives truncation" in next(i for i in r.issues if i.line == 122).message
    r = run(tmp_path, [*base(), long_tail], tokenizer=PHI3_TOKENIZER_DIR, allow_truncation=True)
    assert r.valid and r.counts["T03"] == 1
    secret = [*base(), msgs((U, "key?"), (A, "use AKIAABCDEFGHIJKLMNOP here"))]
    assert not run(tmp_path, secret, count_tokens=False).valid
    r = run(tmp_path, secret, count_tokens=False, allow_secrets=True)
    assert r.valid and next(i for i in r.issues if i.rule == "Q08").severity == "warning"
    assert not run(tmp_path, secret, count_tokens=False, allow_secrets=True, strict=True).valid


def test_q03_counts_unicode_letters(tmp_path: Path) -> None:
    shouting = [msgs((U, f"q{i}"), (A, f"ВСЁ ОЧЕНЬ ГРОМКО {i}")) for i in range(20)]
    assert "Q03" in run(tmp_path, shouting, count_tokens=False).counts
    calm = [msgs((U, f"q{i}"), (A, f"Всё очень тихо, Анна {i}")) for i in range(20)]
    assert "Q03" not in run(tmp_path, calm, count_tokens=False).counts
