"""eval: example loading, SQuAD-style scores, percentiles, concurrency, 429 retries, perplexity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.fakes.endpoints import FakeChatClient

from phi3ft.errors import DataError
from phi3ft.evaluate import exact_match, normalize_answer, percentile, token_f1
from phi3ft.evaluation import evaluate, load_eval_examples


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _conv(question: str, answer: str, *, system: bool = True) -> dict[str, object]:
    msgs = [{"role": "system", "content": "Be helpful."}] if system else []
    msgs += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": msgs}


def test_normalisation_and_scores() -> None:
    assert normalize_answer("The  Xbox, is GREAT!") == "xbox is great"
    assert exact_match("the answer.", "Answer")
    assert not exact_match("answer two", "answer")
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (2 / 2 + 2 / 3))
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("x b b", "b b c") == pytest.approx(2 / 3)  # counts matter


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def test_load_examples_prompt_is_everything_before_last_assistant(tmp_path: Path) -> None:
    multi = {
        "messages": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"},
        ]
    }
    examples = load_eval_examples(_write(tmp_path / "v.jsonl", [_conv("q", "a"), multi]))
    assert [m["content"] for m in examples[1].prompt] == ["q1", "a1", "q2"]
    assert examples[1].reference == "a2" and examples[1].line == 2
    assert examples[0].prompt[0]["role"] == "system"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json\n", "not valid JSON"),
        ('{"x": 1}\n', "no 'messages'"),
        ('{"messages": [{"role": "user", "content": "q"}]}\n', "no assistant turn"),
        ("\n\n", "has no conversations"),
    ],
)
def test_load_examples_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_eval_examples(path)
    with pytest.raises(DataError, match="does not exist"):
        load_eval_examples(tmp_path / "missing.jsonl")


def test_evaluate_scores_latency_and_bounded_concurrency(tmp_path: Path) -> None:
    rows = [_conv(f"q{i}", f"answer number {i}") for i in range(12)]
    examples = load_eval_examples(_write(tmp_path / "v.jsonl", rows))
    answers = {f"q{i}": (f"answer number {i}" if i < 6 else f"answer {i}") for i in range(12)}
    client = FakeChatClient(answers, latency=0.02)
    seen: list[int] = []
    report = evaluate(
        client, examples, concurrency=3, logprobs=False, min_f1=0.95, on_result=lambda r, n, t: seen.append(n)
    )
    assert client.max_in_flight <= 3 and client.max_in_flight >= 2
    assert report.examples == 12 and report.scored == 12 and report.errors == 0
    assert report.exact_match == pytest.approx(0.5)
    assert report.f1 == pytest.approx((6 * 1.0 + 6 * 0.8) / 12)
    assert report.latency_p50_s == pytest.approx(0.02) and report.latency_p95_s == pytest.approx(0.02)
    assert not report.passed  # 0.95 gate
    assert seen == list(range(1, 13))
    assert report.perplexity is None and "--no-logprobs" in report.perplexity_note
    data = report.to_json()
    assert data["passed"] is False and len(data["results"]) == 12 and data["results"][0]["line"] == 1


def test_evaluate_retries_429_and_counts_errors(tmp_path: Path) -> None:
    examples = load_eval_examples(_write(tmp_path / "v.jsonl", [_conv(f"q{i}", "x") for i in range(4)]))
    client = FakeChatClient(
        {"q0": "x", "q1": "x", "q2": "x"}, throttle_first=3, retry_after=2.5, fail_on={"q3"}
    )
    report = evaluate(client, examples, concurrency=2, logprobs=False)
    assert report.retries == 3 and client.slept == [2.5, 2.5, 2.5]  # Retry-After honoured
    assert report.errors == 1 and report.scored == 3 and report.f1 == 1.0
    assert report.results[3].error and "HTTP 500" in report.results[3].error


def test_perplexity_when_logprobs_are_returned(tmp_path: Path) -> None:
    examples = load_eval_examples(_write(tmp_path / "v.jsonl", [_conv("q", "two words")]))
    report = evaluate(FakeChatClient({"q": "two words"}, logprobs="ok"), examples)
    assert report.perplexity == pytest.approx(math.exp(0.5))
    assert "2 generated tokens" in report.perplexity_note


def test_perplexity_not_returned_or_rejected_says_why(tmp_path: Path) -> None:
    examples = load_eval_examples(_write(tmp_path / "v.jsonl", [_conv(f"q{i}", "a") for i in range(3)]))
    ignored = evaluate(FakeChatClient(logprobs="ignore"), examples)
    assert ignored.perplexity is None and "returned no log-probabilities" in ignored.perplexity_note
    client = FakeChatClient(logprobs="reject")
    rejected = evaluate(client, examples, concurrency=2)
    assert rejected.errors == 0 and rejected.perplexity is None
    assert "rejected the `logprobs` parameter" in rejected.perplexity_note
    assert [c["logprobs"] for c in client.calls] == [
        True,
        False,
        False,
        False,
    ]  # probe once, then stop asking
