"""The rule engine: a rule registered in one place fires on every validation path (issue 14 item 5).

The C fast path this replaced decided that a line passes by encoding the negation of the message and
conversation rules, so a rule added in Python never saw the lines it passed (20 findings in pure Python, 0
with the extension). Now every path runs the same registered checks: with exact tokens, without, in one
process and in worker processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR

import phi3ft.data
from phi3ft.data import engine
from phi3ft.data.rules import RULES, Rule
from phi3ft.data.validate import validate_dataset

MODEL = "phi-3-mini-4k-instruct"


def _clean_records(n: int = 20) -> str:
    rows = []
    for i in range(n):
        rows.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "You answer questions about invoices."},
                        {"role": "user", "content": f"What is the total of invoice {i}?"},
                        {
                            "role": "assistant",
                            "content": f"The total of invoice {i} is {i * 7 + 3} euros. TODO",
                        },
                    ]
                }
            )
        )
    return "".join(r + "\n" for r in rows)


@pytest.fixture
def todo_rule() -> Iterator[str]:
    """A synthetic message rule, registered in one place for the test's duration."""

    def todo(ctx: engine.CheckContext, role: str | None, content: str, gates: int) -> str | None:
        return "content has a TODO left in it." if "TODO" in content else None

    rule = Rule("Q90", "warning", "TODO left in content", "Finish the answer.")
    engine.register(rule, engine.MessageCheck("Q90", todo))
    try:
        yield "Q90"
    finally:
        engine.unregister("Q90")
    assert "Q90" not in RULES and "Q90" not in engine.checked_rules()


@pytest.fixture
def long_rule() -> Iterator[str]:
    """A synthetic conversation rule (more than 2 messages)."""

    def many(ctx: engine.CheckContext, c: engine.Conversation) -> Iterable[tuple[str | None, str]]:
        return [("messages", f"{len(c.roles)} messages.")] if len(c.roles) > 2 else ()

    engine.register(
        Rule("C90", "info", "long conversation", "Nothing to do."), engine.RecordCheck("C90", many)
    )
    try:
        yield "C90"
    finally:
        engine.unregister("C90")


PATHS = [
    pytest.param({"count_tokens": False, "workers": 1}, id="no-tokens-workers-1"),
    pytest.param({"count_tokens": False, "workers": 2}, id="no-tokens-workers-2"),
    pytest.param({"tokenizer": PHI3_TOKENIZER_DIR}, id="exact-tokens"),
]


@pytest.mark.parametrize("kw", PATHS)
def test_synthetic_message_rule_fires_on_every_path(
    tmp_path: Path, todo_rule: str, kw: dict[str, object]
) -> None:
    p = tmp_path / "train.jsonl"
    p.write_text(_clean_records(20), encoding="utf-8")
    report = validate_dataset(p, model=MODEL, **kw)  # type: ignore[arg-type]
    assert report.counts.get(todo_rule) == 20, report.counts
    hits = [i for i in report.issues if i.rule == todo_rule]
    assert [i.line for i in hits] == list(range(1, 21))
    assert {i.path for i in hits} == {"messages[2].content"}
    assert report.to_dict()["summary"]["by_rule"][todo_rule] == 20


@pytest.mark.parametrize("kw", PATHS)
def test_synthetic_record_rule_fires_on_every_path(
    tmp_path: Path, long_rule: str, kw: dict[str, object]
) -> None:
    p = tmp_path / "train.jsonl"
    p.write_text(_clean_records(20), encoding="utf-8")
    report = validate_dataset(p, model=MODEL, **kw)  # type: ignore[arg-type]
    assert report.counts.get(long_rule) == 20


def test_synthetic_rule_through_the_cli(tmp_path: Path, todo_rule: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "train.jsonl"
    p.write_text(_clean_records(20), encoding="utf-8")
    for extra in (["--no-tokens", "--workers", "1"], ["--no-tokens", "--workers", "2"]):
        _code, out, _ = run_cli("validate", str(p), "--model", MODEL, "--format", "json", *extra)
        assert json.loads(out)["summary"]["by_rule"][todo_rule] == 20, extra


def test_each_rule_has_at_most_one_check_and_metadata() -> None:
    ids = engine.checked_rules()
    assert len(ids) == len(set(ids))
    assert all(r in RULES for r in ids)
    with pytest.raises(ValueError, match="already has a check"):
        engine.message_check("M14")(lambda *a: None)
    rule = Rule("Q91", "info", "x", "y")
    engine.register(rule, engine.MessageCheck("Q91", lambda *a: None))
    try:
        with pytest.raises(ValueError, match="already exists"):
            engine.register(rule, engine.MessageCheck("Q91", lambda *a: None))
    finally:
        engine.unregister("Q91")
    assert "Q91" not in RULES and engine.checked_rules() == ids


def test_no_native_code_in_the_data_package() -> None:
    """The rules have one implementation: there is no compiled extension to hold a second one."""
    folder = Path(phi3ft.data.__file__).parent
    assert not [p.name for p in folder.iterdir() if p.suffix in (".c", ".so", ".pyd", ".pyi")]
