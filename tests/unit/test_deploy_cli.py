"""The deploy/keys/invoke/chat/eval/delete commands through the real Typer app, on the in-memory fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.endpoints import FakeChatClient, FakeEndpointBackend

from phi3ft.cli.context import AppContext
from phi3ft.output import Output
from phi3ft.state import StateStore
from phi3ft.targets.base import JobInfo


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.store = StateStore(tmp_path / ".phi3ft")
        where = {"subscription_id": "sub", "resource_group": "rg", "project": "proj"}
        self.store.record("hub", "hub1", created_by_phi3ft=True, subscription_id="sub", resource_group="rg")
        self.store.record(
            "project", "proj", created_by_phi3ft=True, hub="hub1", subscription_id="sub", resource_group="rg"
        )
        self.store.record(
            "data", "train:abc", asset_name="train", version="abc", created_by_phi3ft=True, project="proj"
        )
        self.store.record(
            "job",
            "job-1",
            created_by_phi3ft=True,
            status="Completed",
            output_model_name="ft",
            output_model_version="1",
            endpoint_name="ft-ep",
            data_assets={"train": "train:abc"},
            **where,
        )
        self.backend = FakeEndpointBackend(
            models={("ft", "1")}, data={("train", "abc")}, workspaces={"hub1": "hub", "proj": "project"}
        )
        self.backend.jobs["job-1"] = JobInfo("job-1", "Completed", output_model_name="ft")
        self.backend.chat = FakeChatClient({"q1": "yes indeed", "q2": "no"}, default="hello there")
        self.targets: list[Any] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def ctx(self, stdin_tty: bool = False) -> AppContext:
        def factory(target: Any) -> FakeEndpointBackend:
            self.targets.append(target)
            return self.backend

        return AppContext(
            output=Output(interactive=stdin_tty),
            env={"PHI3FT_STATE_DIR": str(self.dir / ".phi3ft")},
            cwd=self.dir,
            clock=lambda: self.now,
            sleep=self.sleep,
            backend_factory=factory,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_deploy_json_and_human(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("deploy", "--json", ctx=world.ctx())
    assert code == 0, err
    data = json.loads(out)
    assert data["endpoint"] == "ft-ep" and data["provisioning_state"] == "Succeeded"
    assert data["scoring_uri"] == "https://ft-ep.eastus2.models.ai.azure.com"
    assert data["content_safety"] == "Enabled" and data["created"] is True
    assert world.targets[0].project == "proj"  # reconnected from the ledger, no job.yaml
    code, out, err = run_cli("deploy", ctx=world.ctx())
    assert code == 0 and out.strip() == "https://ft-ep.eastus2.models.ai.azure.com"
    assert "already exists" in err


def test_deploy_no_content_safety_warns(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("deploy", "--no-content-safety", "--endpoint-name", "ep-open", ctx=world.ctx())
    assert code == 0 and "Content safety is OFF" in err
    assert world.backend.endpoints["ep-open"].content_safety == "Disabled"


def test_deploy_detach_and_bad_timeout(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("deploy", "--detach", "--json", ctx=world.ctx())
    assert code == 0 and json.loads(out)["provisioning_state"] == "Creating"
    code, _, err = run_cli("deploy", "--timeout", "soon", ctx=world.ctx())
    assert code == 2 and "--timeout" in err


def test_keys_hidden_unless_show(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, _ = run_cli("keys", ctx=world.ctx())
    assert code == 0 and "k-primary-secret" not in out and "hidden" in out
    code, out, err = run_cli("keys", "ft-ep", "--show", "--json", ctx=world.ctx())
    assert code == 0 and json.loads(out)["primary_key"] == "k-primary-secret" and "Warning" in err
    assert "k-primary-secret" not in (world.dir / ".phi3ft" / "state.json").read_text()


def test_invoke(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, _ = run_cli("invoke", "q1", ctx=world.ctx())
    assert code == 0 and out.strip() == "yes indeed"
    code, out, _ = run_cli(
        "invoke", "ft-ep", "q2", "--system", "s", "--max-tokens", "5", "--json", ctx=world.ctx()
    )
    data = json.loads(out)
    assert code == 0 and data["answer"] == "no" and data["endpoint"] == "ft-ep"
    assert run_cli("invoke", "a", "b", "c", ctx=world.ctx())[0] == 2
    code, _, err = run_cli("invoke", "missing-ep", "q", ctx=world.ctx())
    assert code == 1 and "does not exist" in err


def test_chat_keeps_history_and_resets(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, _ = run_cli("chat", input="q1\nq2\n/reset\nq1\n/exit\nignored\n", ctx=world.ctx())
    assert code == 0 and out.split("\n")[:3] == ["yes indeed", "no", "yes indeed"]
    calls = world.backend.chat.calls
    assert [len(c["messages"]) for c in calls] == [1, 3, 1]


def _jsonl(path: Path, pairs: list[tuple[str, str]]) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_eval_gate(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    data = _jsonl(world.dir / "val.jsonl", [("q1", "yes indeed"), ("q2", "no"), ("q3", "something else")])
    code, out, err = run_cli("eval", "--data", str(data), "--json", "--concurrency", "2", ctx=world.ctx())
    assert code == 0, err
    report = json.loads(out)
    assert report["examples"] == 3 and report["errors"] == 0
    assert report["exact_match"] == pytest.approx(2 / 3) and report["perplexity"] is None
    assert "returned no log-probabilities" in report["perplexity_note"]
    code, out, err = run_cli("eval", "--data", str(data), "--min-f1", "0.9", ctx=world.ctx())
    assert code == 1 and "F1 0.67 < --min-f1 0.90" in err
    assert "token F1" in out and "latency p95" in out
    code, _, err = run_cli("eval", "--data", str(world.dir / "nope.jsonl"), ctx=world.ctx())
    assert code == 3 and "does not exist" in err


def test_delete_dry_run_then_all(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, err = run_cli("delete", "--all", "--dry-run", "--json", ctx=world.ctx())
    assert code == 0
    plan = json.loads(out)["plan"]
    assert [p["kind"] for p in plan] == ["endpoint", "model", "data", "project", "hub"]
    assert world.backend.calls == [("create_endpoint", "ft-ep")]
    code, _, err = run_cli("delete", "--all", ctx=world.ctx())  # no TTY, no --yes: refuse
    assert code == 2 and "--yes" in err
    code, out, err = run_cli("delete", "--all", "--yes", ctx=world.ctx())
    assert code == 0, err
    assert out.splitlines() == [
        "deleted endpoint ft-ep",
        "deleted model ft:1",
        "archived data train:abc",
        "deleted project proj",
        "deleted hub hub1",
    ]
    code, out, err = run_cli("delete", "--all", "--yes", "--json", ctx=world.ctx())
    assert code == 0 and json.loads(out)["deleted"] == []


def test_delete_model_in_use_is_refused(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, _, err = run_cli("delete", "--model", "ft:1", "--yes", ctx=world.ctx())
    assert code == 4
    assert "delete the deployment first" in err and "phi3ft delete --endpoint ft-ep --yes" in err
    assert ("delete_model", "ft:1") not in world.backend.calls
