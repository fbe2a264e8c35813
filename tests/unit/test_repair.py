"""validate --fix (phi3ft.data.repair): every record-level rule fixture is repaired, kept or dropped as
documented, the copy re-validates with no errors, the input is never modified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.unit.test_data_rules import LINE_CASES, MINI, A, S, U, base, good, msgs

from phi3ft.data.repair import PLACEHOLDERS, fix_dataset
from phi3ft.data.validate import validate_dataset
from phi3ft.errors import UsageError

OPTS: dict[str, Any] = {"model": MINI, "count_tokens": False, "env": {"HF_HUB_OFFLINE": "1"}}

#: what --fix does with the record each LINE_CASES fixture adds (after a clean base of 120)
EXPECTED = {
    "L02": "dropped",
    "L04": "dropped",
    "L05": "dropped",
    "L06": "dropped",
    "L07": "dropped",
    "L08": "kept",  # info: extra keys are ignored, the record stays as it is
    "L09": "kept",  # warning: removing tools would be guessing
    "M01": "dropped",
    "M02": "dropped",
    "M03": "dropped",
    "M04": "dropped",
    "M05": "dropped",  # "tool" is not a letter-case variant of a role
    "M06": "dropped",
    "M07": "dropped",  # the empty trailing answer is removed; a lone user turn is left: C01 -> dropped
    "M08": "kept",  # an empty user turn at the start is a warning, not trailing: kept
    "M09": "kept",
    "M10": "dropped",
    "M11": "kept",
    "M12": "kept",
    "M13": "kept",
    "M14": "repaired",
    "M15": "dropped",
    "C01": "dropped",
    "C02": "dropped",
    "C03": "dropped",
    "C04": "dropped",
    "C05": "dropped",
    "C06": "dropped",
    "C07": "dropped",
    "C08": "dropped",
    "Q05": "repaired",
    "Q08": "dropped",
    "Q09": "kept",
}


def write(path: Path, lines: list[str], *, end: str = "\n") -> Path:
    path.write_text("".join(line + end for line in lines), encoding="utf-8")
    return path


def fix(tmp_path: Path, lines: list[str], **kw: Any) -> Any:
    src = write(tmp_path / "train.jsonl", lines)
    return fix_dataset(src, tmp_path / "out.jsonl", **{**OPTS, **kw})


def outcome(result: Any, line: int) -> str:
    actions = {c.action for c in result.changes if c.line == line}
    if "dropped" in actions:
        return "dropped"
    if "removed" in actions:
        return "removed"
    return "repaired" if actions else "kept"


def test_every_line_rule_fixture_has_an_expected_outcome() -> None:
    assert set(EXPECTED) == set(LINE_CASES)


@pytest.mark.parametrize("rule_id", sorted(LINE_CASES))
def test_line_rule_fixture_is_repaired_or_dropped(tmp_path: Path, rule_id: str) -> None:
    bad = LINE_CASES[rule_id][0]
    src = write(tmp_path / "train.jsonl", [*base(), *bad])
    before = src.read_bytes()
    original = validate_dataset(src, **OPTS)
    assert rule_id in original.counts
    result = fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert src.read_bytes() == before  # the input is never modified
    assert result.written and result.valid, [c.to_dict() for c in result.changes]
    assert outcome(result, 121) == EXPECTED[rule_id], [c.to_dict() for c in result.changes]
    again = validate_dataset(tmp_path / "out.jsonl", **OPTS)
    assert again.valid and again.severity_counts["error"] == 0
    kept = EXPECTED[rule_id] != "dropped"
    assert again.stats["examples"] == 120 + (1 if kept else 0)
    if EXPECTED[rule_id] == "repaired":
        assert rule_id not in again.counts
    if EXPECTED[rule_id] == "dropped":
        change = next(c for c in result.changes if c.line == 121)
        assert change.rule in original.counts and change.detail


def test_repairs_without_guessing(tmp_path: Path) -> None:
    lines = [
        *base(20),
        msgs(("User", "Hi there"), ("ASSISTANT ", "Hello!")),  # 21 role case
        msgs((U, "  padded question"), (A, "answer with trailing space \n")),  # 22 whitespace
        msgs((U, "q"), (A, "a b"), (U, "")),  # 23 empty trailing user turn
        msgs((U, "q2"), (A, "a c"), (U, "  "), (A, "")),  # 24 two empty trailing messages
    ]
    src = tmp_path / "train.jsonl"
    src.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n\r\n\n").encode("utf-8"))
    result = fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert result.valid
    by = result.by_rule()
    assert by["F06"] == {"repaired": 1} and by["F13"] == {"repaired": 1}
    assert by["L03"] == {"removed": 2} and by["M05"] == {"repaired": 2}
    assert by["M14"] == {"repaired": 1} and by["Q05"] == {"repaired": 1}
    assert {c.line for c in result.changes if c.rule in ("M07", "M08")} == {23, 24}
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(out) == 24
    assert [m["role"] for m in out[20]["messages"]] == ["user", "assistant"]
    assert out[21]["messages"][0]["content"] == "padded question"
    assert out[21]["messages"][1]["content"] == "answer with trailing space"
    assert [m["role"] for m in out[22]["messages"]] == ["user", "assistant"]
    assert [m["role"] for m in out[23]["messages"]] == ["user", "assistant"]
    raw = (tmp_path / "out.jsonl").read_bytes()
    assert b"\r" not in raw and not raw.startswith(b"\xef\xbb\xbf") and raw.endswith(b"}\n")
    # records without findings are copied byte for byte
    assert raw.split(b"\n")[1] == lines[1].encode()


def test_exact_and_whitespace_duplicates_keep_the_first(tmp_path: Path) -> None:
    spaced = good(3).replace("Question number", "Question   number")
    escaped = good(8).replace("Question", "\\u0051uestion")
    near = good(9).replace("Question number", "Questionnumber")  # not a duplicate: "a b" != "ab"
    result = fix(tmp_path, [*base(), good(3), spaced, good(7), escaped, near])
    assert result.valid
    removed = [c for c in result.changes if c.rule == "Q01"]
    assert [(c.line, c.action) for c in removed] == [(n, "removed") for n in (121, 122, 123, 124)]
    assert [c.detail for c in removed] == [f"duplicate of line {n}" for n in (4, 4, 8, 9)]
    again = validate_dataset(tmp_path / "out.jsonl", **OPTS)
    assert "Q01" not in again.counts and again.stats["examples"] == 121


def test_overlap_is_dropped_from_validation_and_kept_in_training(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", base())
    val = write(tmp_path / "valid.jsonl", [good(5), good(900), good(901)])
    result = fix_dataset(train, tmp_path / "t.out.jsonl", val, tmp_path / "v.out.jsonl", **OPTS)
    assert result.valid
    assert [(c.file, c.line, c.rule, c.action) for c in result.changes] == [(str(val), 1, "F11", "removed")]
    assert [f.records_out for f in result.files] == [120, 2]
    again = validate_dataset(tmp_path / "t.out.jsonl", tmp_path / "v.out.jsonl", **OPTS)
    assert "F11" not in again.counts and again.stats["examples"] == 120


def test_validation_needs_its_own_output(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", base())
    val = write(tmp_path / "valid.jsonl", [good(900)])
    with pytest.raises(UsageError, match="--fix-validation"):
        fix_dataset(train, tmp_path / "out.jsonl", val, None, **OPTS)


def test_redact_secrets_replaces_with_typed_placeholders(tmp_path: Path) -> None:
    secret = msgs(
        (U, "How do I connect?"),
        (A, "Use key AKIAABCDEFGHIJKLMNOP, mail jane.doe@example.com or call +44 20 7946 0958."),
    )
    pii = msgs((U, "Who to ask?"), (A, "Write to ops-team@example.org."))
    dropped = fix(tmp_path, [*base(), secret, pii])
    assert outcome(dropped, 121) == "dropped" and outcome(dropped, 122) == "kept"
    result = fix_dataset(tmp_path / "train.jsonl", tmp_path / "r.jsonl", **OPTS, redact_secrets=True)
    assert result.valid
    out = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    answer = json.loads(out[120])["messages"][1]["content"]
    assert answer == "Use key <AWS_KEY>, mail <EMAIL> or call <PHONE>."
    assert json.loads(out[121])["messages"][1]["content"] == "Write to <EMAIL>."
    again = validate_dataset(tmp_path / "r.jsonl", **OPTS)
    assert not {"Q08", "Q09"} & set(again.counts)
    assert {"<AWS_KEY>", "<EMAIL>", "<PHONE>"} <= set(PLACEHOLDERS.values())


def test_strict_drops_records_with_warnings(tmp_path: Path) -> None:
    lines = [*base(), msgs((U, "say <|end|> now"), (A, "hello there"))]
    assert outcome(fix(tmp_path, lines), 121) == "kept"
    result = fix_dataset(tmp_path / "train.jsonl", tmp_path / "s.jsonl", **OPTS, strict=True)
    assert outcome(result, 121) == "dropped" and result.valid


def test_file_level_rules_are_not_repairable(tmp_path: Path) -> None:
    missing = fix_dataset(tmp_path / "none.jsonl", tmp_path / "out.jsonl", **OPTS)
    assert not missing.written and [i.rule for i in missing.not_repairable] == ["F01"]
    assert not (tmp_path / "out.jsonl").exists()
    array = tmp_path / "array.json"
    array.write_text(json.dumps([json.loads(x) for x in base(12)]), encoding="utf-8")
    doc = fix_dataset(array, tmp_path / "out.jsonl", **OPTS)
    assert not doc.written and [i.rule for i in doc.not_repairable] == ["F07"]
    few = fix(tmp_path, [*base(5), "[1]"])
    assert few.written and not few.valid
    assert "F09" in [i.rule for i in few.not_repairable] and outcome(few, 6) == "dropped"
    assert list(tmp_path.glob(".*.tmp*")) == []


def test_wrong_tokenizer_is_not_repairable(tmp_path: Path) -> None:
    """A tokenizer of another model is a usage error before any data is read: nothing to repair, no output."""
    src = write(tmp_path / "train.jsonl", base())
    with pytest.raises(UsageError, match="does not belong to phi-4"):
        fix_dataset(
            src,
            tmp_path / "out.jsonl",
            model="phi-4",
            tokenizer=PHI3_TOKENIZER_DIR,
            env={"HF_HUB_OFFLINE": "1"},
        )
    assert not (tmp_path / "out.jsonl").exists()


def test_token_rules_drop_overlong_examples(tmp_path: Path) -> None:
    lines = [*base(), msgs((U, "tell me"), (A, "word " * 5000))]
    result = fix(tmp_path, lines, count_tokens=True, tokenizer=PHI3_TOKENIZER_DIR)
    assert result.valid and outcome(result, 121) == "dropped"
    assert next(c for c in result.changes if c.line == 121).rule == "T03"


def test_refuses_to_overwrite_and_never_writes_the_input(tmp_path: Path) -> None:
    src = write(tmp_path / "train.jsonl", base())
    with pytest.raises(UsageError, match="never modifies"):
        fix_dataset(src, src, **OPTS)
    (tmp_path / "out.jsonl").write_text("old\n", encoding="utf-8")
    with pytest.raises(UsageError, match="already exists"):
        fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "old\n"
    assert fix_dataset(src, tmp_path / "out.jsonl", force=True, **OPTS).valid
    assert json.loads((tmp_path / "out.report.json").read_text(encoding="utf-8"))["changes"] == []


def test_report_file_lists_every_change(tmp_path: Path) -> None:
    result = fix(tmp_path, [*base(), "[1]", msgs((S, "s"), (U, " q"), (A, "a b"))])
    report = json.loads((tmp_path / "out.report.json").read_text(encoding="utf-8"))
    assert result.report_path == tmp_path / "out.report.json"
    assert report["valid"] is True and report["written"] is True
    assert [(c["line"], c["rule"], c["action"]) for c in report["changes"]] == [
        (121, "L02", "dropped"),
        (122, "M14", "repaired"),
    ]
    assert report["by_rule"] == {"L02": {"dropped": 1}, "M14": {"repaired": 1}}
    assert report["files"][0]["records_in"] == 122 and report["files"][0]["records_out"] == 121


def test_interrupt_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phi3ft.data import repair

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    src = write(tmp_path / "train.jsonl", [*base(), "[1]"])
    monkeypatch.setattr(repair, "_revalidate", boom)
    with pytest.raises(KeyboardInterrupt):
        fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]


def test_unparsable_lines_are_dropped(tmp_path: Path) -> None:
    src = tmp_path / "train.jsonl"
    lines = [x.encode() for x in base()]
    lines += [
        b'{"messages": [{"role": "user", "content": "hi"},',  # 121 L01
        b'{"messages": [{"role": "user", "content": "Caf\xe9"}]}',  # 122 F05
        b"[" * 1100 + b"]" * 1100,  # 123 L10
        b'{"messages": [{"role": "user", "content": "cut off',  # 124 F15 (no final newline)
    ]
    src.write_bytes(b"\n".join(lines))
    result = fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert result.valid
    assert [(c.line, c.rule, c.action) for c in result.changes] == [
        (121, "L01", "dropped"),
        (122, "F05", "dropped"),
        (123, "L10", "dropped"),
        (124, "F15", "dropped"),
    ]
    assert validate_dataset(tmp_path / "out.jsonl", **OPTS).stats["examples"] == 120


def test_missing_final_newline_is_added(tmp_path: Path) -> None:
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(base()), encoding="utf-8")
    result = fix_dataset(src, tmp_path / "out.jsonl", **OPTS)
    assert [(c.line, c.rule, c.action) for c in result.changes] == [(120, "F14", "repaired")]
    assert (tmp_path / "out.jsonl").read_bytes() == src.read_bytes() + b"\n"


def test_overlapping_hits_are_redacted_as_one() -> None:
    from phi3ft.data.repair import _redact

    text, kinds = _redact("clone https://deploy:hunter2@example.com/repo.git, mail ops@example.org")
    assert text == "clone <URL_CREDENTIALS>/repo.git, mail <EMAIL>"  # the e-mail match overlaps the URL
    assert "hunter2" not in text and kinds == ["password in URL", "e-mail address"]


def test_unwritable_output_is_a_one_line_error(tmp_path: Path) -> None:
    from phi3ft.errors import Phi3ftError

    src = write(tmp_path / "train.jsonl", base())
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(Phi3ftError, match="cannot write") as info:
        fix_dataset(src, blocker / "out.jsonl", **OPTS)
    assert info.value.exit_code == 1


def test_every_detector_kind_has_a_placeholder() -> None:
    from phi3ft.data.scan import SECRET_PATTERNS, sensitive, sensitive_spans

    kinds = {name for name, _ in SECRET_PATTERNS} | {"e-mail address", "phone number", "card number", "IBAN"}
    assert kinds == set(PLACEHOLDERS)
    text = "card 4111 1111 1111 1111, IBAN DE89370400440532013000, ghp_" + "a" * 36
    spans = sensitive_spans(text)
    assert [k for *_, k in spans] == ["card number", "IBAN", "GitHub token"]
    assert [s[0] for s in spans] == [p for p, _, _ in sensitive(text)]  # the validator's positions
