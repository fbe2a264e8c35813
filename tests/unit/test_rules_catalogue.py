"""The rule catalogue: one registry, shown by `phi3ft rules` and committed as docs/validation-rules.md."""

from __future__ import annotations

import ast
import dataclasses
import json
import re

import pytest
from tests.conftest import REPO

from phi3ft.data import rules as rules_mod
from phi3ft.data.rules import RULES, catalogue_markdown

DOC = REPO / "docs" / "validation-rules.md"
DATA_SRC = REPO / "src" / "phi3ft" / "data"
RULE_ID = re.compile(r"^[FLMCTQ][0-9]{2}$")


def emitted_rule_ids() -> set[str]:
    """Every rule id written as a literal anywhere in the validator (``src/phi3ft/data/*.py``)."""
    ids: set[str] = set()
    for path in sorted(DATA_SRC.glob("*.py")):
        if path.name == "rules.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RULE_ID.match(node.value):
                ids.add(node.value)
    return ids


def test_the_committed_doc_is_generated_from_the_registry() -> None:
    assert DOC.read_text(encoding="utf-8") == catalogue_markdown(), (
        "docs/validation-rules.md is stale: regenerate it with "
        "`phi3ft rules --markdown > docs/validation-rules.md`"
    )


def test_every_emitted_id_is_in_the_registry_the_command_and_the_doc(run_cli) -> None:  # type: ignore[no-untyped-def]
    emitted = emitted_rule_ids()
    assert len(emitted) >= 60, emitted  # the scan found the validator's ids
    assert emitted <= set(RULES), f"ids the validator emits but the registry lacks: {emitted - set(RULES)}"
    code, out, _ = run_cli("rules", "--json")
    assert code == 0
    listed = {r["id"] for r in json.loads(out)}
    assert listed == set(RULES)
    doc_ids = set(re.findall(r"^\| ([FLMCTQ][0-9]{2}) \|", DOC.read_text(encoding="utf-8"), re.M))
    assert doc_ids == set(RULES)


def test_every_rule_is_documented_and_titled_by_its_problem() -> None:
    for r in RULES.values():
        assert r.title and r.catches and r.why and r.hint, r.id
        assert r.status in ("active", "retired"), r.id
        assert r.status == "active" or r.retired_note, f"{r.id}: a retired rule says why"
    # The titles that read backwards before (passing conditions) now name the problem.
    assert RULES["F01"].title == "file not found"
    assert RULES["L01"].title == "line is not valid JSON"
    assert RULES["T01"].title.startswith("no tokenizer")


def test_rules_lists_all_and_shows_one(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("rules")
    assert code == 0
    assert out.splitlines()[0].split() == ["F01", "error", "file", "not", "found"]
    assert len(out.splitlines()) == len(RULES) and "phi3ft rules T03" in err
    code, out, _ = run_cli("rules", "t03")
    assert code == 0
    assert out.startswith("T03  error  example longer than the model context\n")
    assert "catches:" in out and "why:" in out and RULES["T03"].hint in out
    code, out, _ = run_cli("rules", "Q08", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["id"] == "Q08" and d["severity"] == "error" and d["status"] == "active"
    assert set(d) >= {"id", "family", "severity", "title", "catches", "why", "fix", "status"}


def test_unknown_rule_id_is_a_usage_error_with_a_suggestion(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("rules", "T3")
    assert code == 2 and out == ""
    assert "unknown rule id 'T3'" in err and "Did you mean T03?" in err
    code, _, err = run_cli("rules", "Z99")
    assert code == 2 and "List the rules: phi3ft rules" in err and "Did you mean" not in err
    code, _, err = run_cli("rules", "T02")
    assert code == 2 and "not a finding" in err


def test_markdown_matches_the_doc_and_refuses_other_flags(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("rules", "--markdown")
    assert code == 0 and out == DOC.read_text(encoding="utf-8")
    assert run_cli("rules", "--markdown", "--json")[0] == 2


def test_a_retired_rule_stays_listed_as_retired(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    retired = dataclasses.replace(RULES["T07"], status="retired", retired_note="replaced by a usage error")
    monkeypatch.setitem(rules_mod.RULES, "T07", retired)
    assert "| T07 | error | tokenizer self-test failed (**retired**: replaced by a usage error) |" in (
        catalogue_markdown()
    )
    code, out, _ = run_cli("rules")
    assert code == 0 and "T07  error    tokenizer self-test failed  (retired)" in out
    code, out, _ = run_cli("rules", "T07", "--json")
    assert json.loads(out)["status"] == "retired"
