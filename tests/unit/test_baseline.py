"""phi3ft.evaluate (the pure arithmetic) and phi3ft.baseline (offer, compare) without Azure; the eval
--baseline CLI's bad input on the in-memory fake."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.endpoints import FakeChatClient
from tests.unit.test_deploy_cli import World

from phi3ft import baseline
from phi3ft.errors import PrerequisiteError, UsageError
from phi3ft.evaluate import (
    check_gain,
    exact_match,
    most_different,
    parse_gain_metric,
    percentile,
    perplexity,
    tally,
    token_f1,
    verdict,
    verdicts,
)
from phi3ft.evaluation import EvalExample


def test_f1_em_percentiles_perplexity() -> None:
    assert exact_match("The answer!", "answer") and not exact_match("answers", "answer")
    assert token_f1("check the console cable", "restart the console and try again") == pytest.approx(0.25)
    assert token_f1("", "") == 1.0 and token_f1("a", "") == 1.0  # "a" is an article: normalised away
    assert token_f1("x", "") == 0.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert perplexity([]) is None and perplexity([-0.5, -0.5]) == pytest.approx(2.718281828**0.5)


def test_win_tie_loss_with_epsilon() -> None:
    assert verdict(0.50, 0.495) == "tie"  # within 0.01
    assert verdict(0.52, 0.50) == "win" and verdict(0.40, 0.50) == "loss"
    assert verdict(None, 0.5) == "error" and verdict(0.5, None) == "error"
    assert verdict(0.52, 0.50, epsilon=0.05) == "tie"
    items = verdicts({1: 1.0, 2: 0.5, 3: 0.0, 4: None}, {1: 0.0, 2: 0.5, 3: 0.25, 4: 0.3})
    assert [v.verdict for v in items] == ["win", "tie", "loss", "error"]
    assert tally(items) == {"win": 1, "tie": 1, "loss": 1, "error": 1}
    # most different: largest |delta| first, never the errors or the identical ones
    assert [v.line for v in most_different(items, 5)] == [1, 3]
    assert [v.line for v in most_different(items, 1)] == [1]
    assert items[0].to_json() == {
        "line": 1,
        "verdict": "win",
        "f1_fine_tuned": 1.0,
        "f1_base": 0.0,
        "delta_f1": 1.0,
    }


def test_min_gain_gate() -> None:
    ft = {"exact_match": 0.5, "f1": 0.62, "latency_p50_s": 0.8, "latency_p95_s": 2.0, "perplexity": None}
    base = {"exact_match": 0.25, "f1": 0.60, "latency_p50_s": 1.0, "latency_p95_s": 1.5, "perplexity": 3.0}
    assert check_gain("f1", 0.0, ft, base).passed
    gate = check_gain("f1", 0.05, ft, base)
    assert not gate.passed and gate.gain == pytest.approx(0.02)
    assert "fine-tuned 0.62, base 0.6, gain 0.02" in gate.describe()
    assert check_gain("em", 0.25, ft, base).passed  # alias; exactly DELTA passes
    # lower is better: the gain is base - fine-tuned
    assert check_gain("latency_p50", 0.2, ft, base).passed
    p95 = check_gain("latency_p95", 0.0, ft, base)
    assert not p95.passed and p95.gain == pytest.approx(-0.5) and "lower is better" in p95.describe()
    # a metric one side lacks never passes
    assert not check_gain("perplexity", 0.0, ft, base).passed
    with pytest.raises(UsageError, match="unknown metric 'bleu'") as exc:
        parse_gain_metric("bleu")
    assert "exact_match, f1, latency_p50, latency_p95, perplexity" in (exc.value.hint or "")


def test_serverless_offer_tags_win_over_the_catalog() -> None:
    phi4 = baseline.BaseModel("azureml", "Phi-4-mini-instruct", "1")
    today = date(2026, 12, 1)
    offer = baseline.serverless_offer(phi4, "eastus2", {}, today)
    assert offer.offered and offer.source == "phi3ft catalog"
    offer = baseline.serverless_offer(phi4, "eastus2", {"maas-inference-regions": "westus3"}, today)
    assert not offer.offered and "westus3" in offer.reason and "registry tag" in offer.reason
    offer = baseline.serverless_offer(phi4, "EastUS2", {"maas-inference-regions": "eastus2, westus"}, today)
    assert offer.offered
    retired = baseline.serverless_offer(phi4, "eastus2", {"InferenceRetirementDate": "2026-01-01"}, today)
    assert not retired.offered and "retired for inference on 2026-01-01" in retired.reason
    phi3 = baseline.BaseModel("azureml", "Phi-3-mini-4k-instruct", "15")
    offer = baseline.serverless_offer(phi3, "eastus2", {}, today)
    assert not offer.offered and "phi-4-mini-instruct" in offer.reason and offer.source == "phi3ft catalog"
    with pytest.raises(PrerequisiteError) as exc:
        baseline.require_offer(offer)
    assert exc.value.exit_code == 4 and "backend: local" in (exc.value.hint or "")
    unknown = baseline.serverless_offer(baseline.BaseModel("azureml", "Mystery", None), "eastus2", {}, today)
    assert not unknown.offered


def test_base_model_id_has_no_version_and_names_are_deterministic() -> None:
    base = baseline.parse_registry_id("azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7")
    assert base is not None and base.version == "7"
    assert base.model_id == "azureml://registries/azureml/models/Phi-4-mini-instruct"
    name = baseline.default_baseline_name(base, "proj")
    assert (
        name == baseline.default_baseline_name(base, "proj") != baseline.default_baseline_name(base, "other")
    )
    assert name.startswith("phi-4-mini-instruct-base-") and len(name) <= 52


def test_compare_same_prompts_and_settings_to_both() -> None:
    examples = [
        EvalExample(1, [{"role": "user", "content": "q1"}], "yes indeed"),
        EvalExample(2, [{"role": "user", "content": "q2"}], "no"),
        EvalExample(3, [{"role": "user", "content": "q3"}], "maybe"),
    ]
    ft = FakeChatClient({"q1": "yes indeed", "q2": "no"}, default="dunno")
    base = FakeChatClient({"q1": "yes", "q3": "maybe"}, default="dunno")
    report = baseline.compare(
        ft, base, examples, names=("ft", "b"), concurrency=2, max_tokens=9, min_gain=("f1", 0.0)
    )
    assert sorted(json.dumps(c["messages"]) for c in ft.calls) == sorted(
        json.dumps(c["messages"]) for c in base.calls
    )
    assert len(ft.calls) == len(base.calls) == 3
    assert report.counts == {"win": 2, "tie": 0, "loss": 1, "error": 0}
    assert report.fine_tuned.f1 == pytest.approx(2 / 3) and report.base.f1 == pytest.approx((2 / 3 + 1) / 3)
    assert report.gate is not None and report.gate.passed
    data = report.to_json()
    assert data["fine_tuned"]["endpoint"] == "ft" and data["base"]["endpoint"] == "b"
    assert [d["line"] for d in data["most_different"]] == [2, 3, 1]
    assert data["most_different"][0]["prompt"] == [{"role": "user", "content": "q2"}]


def test_compare_rejects_an_unknown_metric_before_any_request() -> None:
    ft, base = FakeChatClient(), FakeChatClient()
    with pytest.raises(UsageError):
        baseline.compare(
            ft, base, [EvalExample(1, [{"role": "user", "content": "q"}], "a")], min_gain=("bleu", 0)
        )
    assert ft.calls == [] and base.calls == []


# ---- CLI: bad input -> one line, a hint, the right exit code ------------------------------------------


def write_data(world: World) -> str:
    path = world.dir / "val.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "yes"}]})
        + "\n"
    )
    return str(path)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_cli_min_gain_without_baseline(run_cli: Any, world: World) -> None:
    code, _, err = run_cli("eval", "--data", write_data(world), "--min-gain", "f1", "0.05", ctx=world.ctx())
    assert code == 2 and "--min-gain compares with the base model and needs --baseline" in err
    assert "Traceback" not in err and "phi3ft eval --baseline --min-gain f1 0.05" in err
    code, _, err = run_cli("eval", "ft-ep", "other-ep", "--data", write_data(world), ctx=world.ctx())
    assert code == 2 and "BASE_ENDPOINT compares with the base model" in err


def test_cli_unknown_metric(run_cli: Any, world: World) -> None:
    code, _, err = run_cli(
        "eval", "--baseline", "--data", write_data(world), "--min-gain", "bleu", "0.1", ctx=world.ctx()
    )
    assert code == 2 and "unknown metric 'bleu'" in err and "exact_match, f1" in err
    assert world.targets == []  # refused before connecting


def test_cli_base_endpoint_not_found(run_cli: Any, world: World) -> None:
    run_cli("deploy", ctx=world.ctx())
    code, _, err = run_cli(
        "eval", "ft-ep", "--baseline", "missing-ep", "--data", write_data(world), ctx=world.ctx()
    )
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    code, _, err = run_cli(
        "eval", "ft-ep", "--baseline", "ft-ep", "--data", write_data(world), ctx=world.ctx()
    )
    assert code == 2 and "named twice" in err


def test_cli_plot_needs_png(run_cli: Any, world: World) -> None:
    code, _, err = run_cli(
        "eval", "--baseline", "--data", write_data(world), "--plot", "x.jpg", ctx=world.ctx()
    )
    assert code == 2 and "PNG" in err and world.targets == []


def test_baseline_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from phi3ft.charts import write_baseline_chart

    ft = {"endpoint": "ft", "exact_match": 0.75, "f1": 0.8, "latency_p50_s": 0.1, "latency_p95_s": 0.2}
    base = {"endpoint": "b", "exact_match": 0.25, "f1": 0.4, "latency_p50_s": 0.1, "latency_p95_s": None}
    path = write_baseline_chart(
        {"fine_tuned": ft, "base": base, "counts": {"win": 3, "tie": 0, "loss": 1}}, tmp_path / "c.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_baseline_refuses_flags_that_do_not_apply(run_cli: Any, world: World) -> None:
    code, _, err = run_cli("deploy", "--baseline", "--no-content-safety", ctx=world.ctx())
    assert code == 2 and "always has content safety on" in err
    code, _, err = run_cli(
        "eval", "--baseline", "--data", write_data(world), "--min-f1", "0.5", ctx=world.ctx()
    )
    assert code == 2 and "with --baseline the gate is --min-gain" in err


def test_plain_delete_of_the_job_takes_its_base_endpoint_too(world: World) -> None:
    from phi3ft.targets.azureml.endpoints import DeleteSelection, plan_delete, resolve_endpoint_name

    store = world.store
    store.record("endpoint", "ft-ep", created_by_phi3ft=True, model="ft:1", job="job-1", created_at="1")
    store.record(
        "endpoint",
        "base-ep",
        created_by_phi3ft=True,
        model="Phi-4-mini-instruct:1",
        job="job-1",
        baseline=True,
        baseline_for="ft-ep",
        created_at="2",
    )
    assert resolve_endpoint_name(store, None) == "ft-ep"  # newer, but a base-model endpoint
    assert baseline.find_baseline_endpoint(store, "ft-ep") == "base-ep"
    plan = plan_delete(store, world.backend, DeleteSelection())
    assert {(s.kind, s.name) for s in plan.actions} >= {("endpoint", "ft-ep"), ("endpoint", "base-ep")}
    assert not any(s.kind == "model" and s.name == "Phi-4-mini-instruct" for s in plan.steps)


def test_cli_adapter_options_need_baseline_and_a_job(run_cli: Any, world: World) -> None:
    for flag in ("--download-dir", "--base-model"):
        code, _, err = run_cli("eval", "--data", write_data(world), flag, "x", ctx=world.ctx())
        assert code == 2 and f"{flag} is for the comparison with the base model and needs --baseline" in err
        assert f"phi3ft eval --baseline {flag} DIR" in err and "Traceback" not in err
    run_cli("deploy", ctx=world.ctx())
    for flag in ("--download-dir", "--base-model"):
        code, _, err = run_cli("eval", "--baseline", "--data", write_data(world), flag, "x", ctx=world.ctx())
        assert code == 2 and "this comparison is of two endpoints" in err, err
