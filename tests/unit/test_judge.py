"""The pairwise judge of ``eval --baseline --judge``: the shipped prompt, reading replies, both orders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from phi3ft.errors import AzureError
from phi3ft.judge import (
    JUDGE_PROMPT_SHA256,
    JUDGE_PROMPT_VERSION,
    JudgePair,
    judge_messages,
    judge_pairs,
    parse_judgement,
)


def test_prompt_text_is_pinned_to_its_version() -> None:
    # Changing the judge prompt changes what its scores mean: bump JUDGE_PROMPT_VERSION, then this hash.
    assert JUDGE_PROMPT_VERSION == "pairwise-v1"
    assert JUDGE_PROMPT_SHA256 == "0981c8f21d56cbcea0881c11af7469ae1a61a0ec781a0de7b6c8d51c64749556"


@pytest.mark.parametrize(
    ("reply", "winner", "rationale"),
    [
        ('{"winner": "A", "rationale": "closer to the reference"}', "A", "closer to the reference"),
        ('Sure.\n```json\n{"winner": "b", "rationale": "shorter"}\n```', "B", "shorter"),
        ('{"winner": "TIE", "rationale": ""}', "tie", ""),
        ("Winner: B - it is right.", "B", "Winner: B - it is right."),
    ],
)
def test_parse_judgement(reply: str, winner: str, rationale: str) -> None:
    assert parse_judgement(reply) == (winner, rationale)


@pytest.mark.parametrize("reply", ["", "I cannot decide.", '{"winner": "C"}', '{"verdict": "A"}'])
def test_parse_judgement_without_a_winner(reply: str) -> None:
    with pytest.raises(ValueError, match="names no winner"):
        parse_judgement(reply)


@dataclass
class Reply:
    content: str


class ScriptedJudge:
    """Answers by a rule on (answer A, answer B); records the messages it saw."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.seen: list[list[dict[str, str]]] = []

    def complete(self, messages: Any, **kw: Any) -> Reply:
        self.seen.append(list(messages))
        text = messages[-1]["content"]
        a = text.split("[Answer A]\n", 1)[1].split("\n\n", 1)[0]
        b = text.split("[Answer B]\n", 1)[1].split("\n\n", 1)[0]
        return Reply(self.rule(a, b))


PAIRS = [
    JudgePair(1, [{"role": "user", "content": "q1"}], "right", "right", "wrong"),
    JudgePair(2, [{"role": "user", "content": "q2"}], "right", "wrong", "right"),
    JudgePair(3, [{"role": "user", "content": "q3"}], "right", "right", None),  # the base call failed
]


def test_both_orders_agree_win_and_loss() -> None:
    judge = ScriptedJudge(lambda a, b: '{"winner": "%s", "rationale": "r"}' % ("A" if a == "right" else "B"))
    report = judge_pairs(judge, "j", PAIRS, concurrency=2)
    assert [v.verdict for v in report.verdicts] == ["win", "loss", "error"]
    assert report.counts == {"win": 1, "tie": 0, "loss": 1, "error": 1}
    assert report.inconsistent == 0 and report.win_rate == pytest.approx(0.5)
    assert len(judge.seen) == 4  # two orders of the two complete pairs; the failed one is not asked
    assert [v.calls[0].fine_tuned_as for v in report.verdicts[:2]] == ["A", "A"]
    assert [v.calls[1].fine_tuned_as for v in report.verdicts[:2]] == ["B", "B"]


def test_position_bias_becomes_ties_and_is_counted() -> None:
    report = judge_pairs(ScriptedJudge(lambda a, b: '{"winner": "A"}'), "j", PAIRS[:2])
    assert [v.verdict for v in report.verdicts] == ["tie", "tie"]
    assert report.inconsistent == 2 and report.preferred_a == 4 and report.decisive == 4


def test_a_failed_judge_call_is_an_error_for_that_example() -> None:
    class Failing:
        def complete(self, messages: Any, **kw: Any) -> Reply:
            raise AzureError("429 Too Many Requests", "retry later")

    report = judge_pairs(Failing(), "j", PAIRS[:1])
    assert report.counts["error"] == 1 and report.verdicts[0].calls[0].error == "429 Too Many Requests"


def test_judge_messages_swap_the_answers() -> None:
    first = judge_messages(PAIRS[0], fine_tuned_first=True)[-1]["content"]
    second = judge_messages(PAIRS[0], fine_tuned_first=False)[-1]["content"]
    assert "[Answer A]\nright\n\n[Answer B]\nwrong" in first
    assert "[Answer A]\nwrong\n\n[Answer B]\nright" in second
    assert "[Conversation]\nuser: q1" in first and "[Reference answer]\nright" in first
