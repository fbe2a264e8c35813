"""``deploy`` -> ``deploy --baseline`` -> ``eval --baseline --min-gain`` -> ``delete --all`` through the real
CLI and SDKs on the offline stack. The two fake endpoints answer differently (the fine-tuned one with the
reference, the base one with something else), so the report's numbers are known in advance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.azure_stack.state import RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.e2e.helpers import FakeTime

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore

pytestmark = pytest.mark.e2e

HUB, PROJECT, MODEL, JOB = "hub-base", "proj-base", "phi4-base-ft", "phi4-base-job"
BASE_ID = "azureml://registries/azureml/models/Phi-4-mini-instruct"
RIGHT = "Restart the console and try again."
#: the base model's fixed answer: shares "the" (an article, dropped) and "console" with RIGHT
BASE_ANSWER = "Check the console cable."


def setup(stack: Any, folder: Path) -> tuple[Any, StateStore]:
    ws = stack.state.add_project(PROJECT, HUB)
    stack.state.add_job(ws, JOB, status="Completed", prefix=MODEL)
    stack.state.add_model_version(ws, MODEL, job_name=JOB)
    store = StateStore(folder / ".phi3ft")
    store.record(
        "job",
        JOB,
        status="Completed",
        backend="serverless",
        project=PROJECT,
        hub=HUB,
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        location="eastus2",
        auth="env",
        model_id=BASE_ID + "/versions/1",
        output_model_name=MODEL,
        output_model_version="1",
        created_by_phi3ft=True,
    )
    rows = [(f"My controller {i} does not connect.", RIGHT) for i in range(3)]
    rows.append(("Does the console need a cable?", BASE_ANSWER))  # the one the base gets right
    (folder / "val.jsonl").write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            + "\n"
            for q, a in rows
        )
    )
    return ws, store


def make_cli(stack: Any, folder: Path, run_cli: Any) -> Any:
    fake_time = FakeTime()

    def cli(*args: str, code: int = 0) -> tuple[str, str]:
        ctx = AppContext(
            output=Output(interactive=False),
            env={**os.environ, "PHI3FT_STATE_DIR": str(folder / ".phi3ft")},
            cwd=folder,
            clock=fake_time,
            sleep=fake_time.sleep,
            credential_factory=lambda mode: stack.credential,
        )
        got, out, err = run_cli(*args, ctx=ctx)
        assert got == code, f"phi3ft {' '.join(args)} exited {got}, wanted {code}\n{out}\n{err}"
        return out, err

    return cli


def test_deploy_baseline_eval_min_gain_delete_all(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    ws, store = setup(stack, tmp_path)
    cli = make_cli(stack, tmp_path, run_cli)

    out, _ = cli("deploy", "--json")
    ft = json.loads(out)["endpoint"]

    # without a terminal and without --yes, a billed resource is not created
    _, err = cli("deploy", "--baseline", code=2)
    assert "will create serverless endpoint" in err.lower() and "bills per token" in err
    assert "--yes" in err
    assert len(stack.state.endpoints) == 1

    # --dry-run: the same steps deploy runs, the registry model named, nothing created
    out, _ = cli("deploy", "--baseline", "--dry-run", "--json")
    planned = json.loads(out)["actions"]
    assert [a["kind"] for a in planned] == ["resolve_model", "ensure_endpoint", "wait_endpoint"]
    assert planned[0]["params"]["model_id"] == BASE_ID and len(stack.state.endpoints) == 1

    out, _ = cli("deploy", "--baseline", "--yes", "--json")
    base = json.loads(out)
    assert base["baseline"] is True and base["base_model"] == BASE_ID
    ep = stack.state.endpoint(base["endpoint"])
    assert ep.model_id == BASE_ID and ep.content_safety == "Enabled"
    record = store.get("endpoint", base["endpoint"])
    assert record and record["created_by_phi3ft"] is True and record["baseline"] is True
    assert record["baseline_for"] == ft
    assert store.get("model", "Phi-4-mini-instruct:1") is None  # the base model is never ours to delete
    # a re-run re-attaches: one PUT per endpoint
    cli("deploy", "--baseline", "--yes", "--json")
    assert len(stack.requests.find(route="serverless_endpoints.create_or_update")) == 2

    # the fine-tuned endpoint answers the reference, the base one a fixed answer
    stack.state.inference_replies[ft.lower()] = RIGHT
    stack.state.inference_replies[base["endpoint"].lower()] = BASE_ANSWER

    # plain `eval` still picks the fine-tuned endpoint (the base one is never "the last deployed")
    out, _ = cli("eval", "--data", str(tmp_path / "val.jsonl"), "--json")
    assert json.loads(out)["endpoint"] == ft

    stack.requests.clear()
    stack.state.inference_logprobs = True  # both fake endpoints return -0.25 per generated token
    out, _ = cli(
        "eval", "--baseline", "--data", str(tmp_path / "val.jsonl"), "--min-gain", "f1", "0.0", "--json"
    )
    report = json.loads(out)
    calls = stack.requests.find(route="inference.chat_completions")
    assert sorted(c.host.split(".")[0] for c in calls) == sorted([ft] * 4 + [base["endpoint"]] * 4)
    # the same prompts and settings went to both
    by_host: dict[str, list[Any]] = {}
    for c in calls:
        by_host.setdefault(c.host.split(".")[0], []).append(
            (json.dumps(c.body["messages"]), c.body["max_tokens"], c.body["temperature"])
        )
    assert sorted(by_host[ft]) == sorted(by_host[base["endpoint"]])

    f1_base_wrong = 2 * (1 / 3) * (1 / 5) / (1 / 3 + 1 / 5)  # "console" in common: 3 vs 5 tokens
    assert report["fine_tuned"]["endpoint"] == ft and report["base"]["endpoint"] == base["endpoint"]
    assert report["fine_tuned"]["exact_match"] == pytest.approx(3 / 4)
    assert report["base"]["exact_match"] == pytest.approx(1 / 4)
    assert report["fine_tuned"]["f1"] == pytest.approx((3 + f1_base_wrong) / 4)
    assert report["base"]["f1"] == pytest.approx((3 * f1_base_wrong + 1) / 4)
    assert report["counts"] == {"win": 3, "tie": 0, "loss": 1, "error": 0}
    assert [v["verdict"] for v in report["verdicts"]] == ["win", "win", "win", "loss"]
    assert report["fine_tuned"]["completion_tokens"] == 4 * 6  # what the fake endpoints returned
    assert report["base"]["completion_tokens"] == 4 * 4
    assert report["fine_tuned"]["perplexity"] == pytest.approx(2.718281828**0.25)
    assert report["base"]["perplexity"] == pytest.approx(2.718281828**0.25)
    assert report["gate"]["metric"] == "f1" and report["gate"]["passed"] is True and report["passed"] is True
    assert len(report["most_different"]) == 3
    first = report["most_different"][0]
    assert first["fine_tuned_answer"] == RIGHT and first["base_answer"] == BASE_ANSWER

    # the human report: side by side, the verdicts, the examples that differ most
    out, _ = cli("eval", ft, "--baseline", base["endpoint"], "--data", str(tmp_path / "val.jsonl"))
    assert "fine-tuned" in out and "token F1" in out and "3 wins, 0 ties, 1 loss" in out
    assert "where they differ most" in out and BASE_ANSWER in out

    # a gate the fine-tune misses: exit 1 with the numbers
    _, err = cli(
        "eval",
        "--baseline",
        "--data",
        str(tmp_path / "val.jsonl"),
        "--min-gain",
        "exact_match",
        "0.9",
        code=1,
    )
    assert "--min-gain not met: exact_match: fine-tuned 0.75, base 0.25, gain 0.5" in err

    # delete --all: both endpoints and the fine-tuned model; the base model stays in the registry
    out, _ = cli("delete", "--all", "--yes", "--json")
    deleted = sorted((d["kind"], d["name"]) for d in json.loads(out)["deleted"])
    assert deleted == sorted([("endpoint", ft), ("endpoint", base["endpoint"]), ("model", MODEL)])
    assert stack.state.endpoints == {}
    assert stack.state.model_versions(ws, MODEL) == {}
    assert store.list("endpoint") == [] and store.list("model") == []
    assert stack.state.registry[("azureml", "phi-4-mini-instruct")]


def test_base_model_not_offered_says_so_with_the_local_alternative(
    stack: Any, tmp_path: Path, run_cli: Any
) -> None:
    setup(stack, tmp_path)
    stack.state.registry[("azureml", "phi-4-mini-instruct")]["1"].tags["maas-inference-regions"] = "westus3"
    cli = make_cli(stack, tmp_path, run_cli)
    _, err = cli("deploy", "--baseline", "--yes", code=4)
    assert "not offered as a serverless API in eastus2" in err and "westus3" in err
    assert "backend: local" in err
    assert stack.state.endpoints == {}


def test_eval_baseline_errors(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    setup(stack, tmp_path)
    cli = make_cli(stack, tmp_path, run_cli)
    ft = json.loads(cli("deploy", "--json")[0])["endpoint"]
    data = str(tmp_path / "val.jsonl")
    # no base endpoint yet: exit 4, with the command that makes one
    _, err = cli("eval", "--baseline", "--data", data, code=4)
    assert "No base-model endpoint" in err and "phi3ft deploy --baseline" in err
    # a named base endpoint that does not exist
    _, err = cli("eval", ft, "--baseline", "nope-endpoint", "--data", data, code=1)
    assert "nope-endpoint does not exist" in err and "Traceback" not in err


def test_base_model_missing_from_the_registry(stack: Any, tmp_path: Path, run_cli: Any) -> None:
    _, store = setup(stack, tmp_path)
    store.record("job", JOB, model_id="azureml://registries/azureml/models/Phi-9-imaginary/versions/1")
    cli = make_cli(stack, tmp_path, run_cli)
    _, err = cli("deploy", "--baseline", "--yes", code=4)
    assert "Phi-9-imaginary:1 is not in the azureml registry" in err and "backend: local" in err
    assert stack.state.endpoints == {}


def _answers(last: str) -> tuple[str, str, str]:
    """(reference, answer A, answer B) out of the judge prompt phi3ft sent."""

    def part(name: str) -> str:
        return last.split(f"[{name}]\n", 1)[1].split("\n\n", 1)[0]

    return part("Reference answer"), part("Answer A"), part("Answer B")


def fair_judge(last: str) -> str:
    """Picks the answer equal to the reference (ties when both or neither are), with a rationale."""
    reference, a, b = _answers(last)
    winner = "tie" if (a == reference) == (b == reference) else ("A" if a == reference else "B")
    return json.dumps({"winner": winner, "rationale": f"{winner} matches the reference '{reference}'."})


def test_eval_baseline_judge_scores_both_orders_and_keeps_the_rationale(
    stack: Any, tmp_path: Path, run_cli: Any
) -> None:
    from phi3ft.judge import JUDGE_PROMPT_SHA256, JUDGE_PROMPT_VERSION, JUDGE_SYSTEM

    ws, _store = setup(stack, tmp_path)
    cli = make_cli(stack, tmp_path, run_cli)
    ft = json.loads(cli("deploy", "--json")[0])["endpoint"]
    base = json.loads(cli("deploy", "--baseline", "--yes", "--json")[0])["endpoint"]
    judge = "judge-gpt"
    stack.state.add_endpoint(ws, judge)  # an existing chat deployment, not phi3ft's
    stack.state.inference_replies[ft.lower()] = RIGHT
    stack.state.inference_replies[base.lower()] = BASE_ANSWER
    stack.state.inference_replies[judge] = fair_judge
    data = str(tmp_path / "val.jsonl")

    stack.requests.clear()
    out, err = cli("eval", "--baseline", "--data", data, "--judge", judge, "--json")
    judged = json.loads(out)["judge"]
    calls = [c for c in stack.requests.find(route="inference.chat_completions") if c.host.startswith(judge)]
    assert len(calls) == 8  # 4 examples x 2 orders
    assert all(c.body["messages"][0] == {"role": "system", "content": JUDGE_SYSTEM} for c in calls)
    assert all(c.body["temperature"] == 0.0 for c in calls)
    orders = sorted(_answers(c.body["messages"][-1]["content"])[1:] for c in calls)
    assert orders.count((RIGHT, BASE_ANSWER)) == 4 and orders.count((BASE_ANSWER, RIGHT)) == 4
    assert judged["deployment"] == judge and judged["prompt_version"] == JUDGE_PROMPT_VERSION
    assert judged["prompt_sha256"] == JUDGE_PROMPT_SHA256
    # the fine-tune gives the reference on lines 1-3; line 4's reference is the base's answer
    assert judged["counts"] == {"win": 3, "tie": 0, "loss": 1, "error": 0}
    assert [v["verdict"] for v in judged["verdicts"]] == ["win", "win", "win", "loss"]
    assert judged["inconsistent"] == 0 and judged["win_rate"] == pytest.approx(0.75)
    assert judged["position_a_preferred"] == 4 and judged["decisive_replies"] == 8
    first = judged["verdicts"][0]
    assert {o["fine_tuned_as"] for o in first["orders"]} == {"A", "B"}
    assert {o["rationale"] for o in first["orders"]} == {
        f"A matches the reference '{RIGHT}'.",
        f"B matches the reference '{RIGHT}'.",
    }
    assert "Judging 4 pairs with judge-gpt (prompt pairwise-v1, both orders)" in err

    # a judge that always prefers position A: every verdict flips with the order, so all are ties
    stack.state.inference_replies[judge] = lambda last: '{"winner": "A", "rationale": "A reads better."}'
    out, _ = cli("eval", "--baseline", "--data", data, "--judge", judge)
    compact = "".join(out.split())
    assert "judgejudge-gpt(promptpairwise-v1,bothorders):0won,4tied,0lost;winrate0.50" in compact
    assert "4changedwiththeorder,positionApreferredin8/8decisivereplies" in compact
    assert "line1:tie(thetwoordersdisagreed):Areadsbetter." in compact

    # replies without a verdict are errors, named; the judge may not be one of the compared endpoints
    stack.state.inference_replies[judge] = "I cannot decide."
    _, err = cli("eval", "--baseline", "--data", data, "--judge", judge, code=1)
    assert "The judge judge-gpt gave no usable verdict: the judge's reply names no winner" in err
    _, err = cli("eval", "--baseline", "--data", data, "--judge", base, code=2)
    assert "is one of the two models being compared" in err
    _, err = cli("eval", "--data", data, "--judge", judge, code=2)
    assert "--judge is for the comparison with the base model and needs --baseline" in err
