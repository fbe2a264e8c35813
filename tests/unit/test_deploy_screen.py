"""Issue 15 items 16 and 18 for deploy / chat / delete, on the in-memory fake of test_deploy_cli."""

# ruff: noqa: F811
from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.unit.test_deploy_cli import World, world  # noqa: F401  (fixture)

JOB = """\
azure:
  subscription_id: 00000000-0000-0000-0000-000000000001
  resource_group: rg
  location: eastus2
  hub: {name: hub1}
  project: {name: proj}
model: {name: phi-4-mini-instruct}
data:
  train: data/train.jsonl
  validation: data/validation.jsonl
output: {model_name: ft}
"""


def test_deploy_hint_scores_the_real_validation_file(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    (world.dir / "job.yaml").write_text(JOB)
    code, _, err = run_cli("deploy", "--config", str(world.dir / "job.yaml"), ctx=world.ctx())
    assert code == 0, err
    hint = " ".join(err.split())
    assert "phi3ft eval ft-ep --data data/validation.jsonl" in hint, hint
    assert "--data validation.jsonl" not in hint


def test_deploy_hint_without_a_validation_file_names_no_file(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("deploy", ctx=world.ctx())
    assert code == 0, err
    assert 'phi3ft invoke ft-ep "Hello"' in err and "validation.jsonl" not in err


def test_eval_without_data_names_the_endpoint_in_its_hint(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, _, err = run_cli("eval", ctx=world.ctx())
    assert code == 2
    assert f"phi3ft eval {shlex.quote('ft-ep')} --data" in " ".join(err.split())


def test_chat_help_is_answered_locally(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, err = run_cli("chat", input="/help\n/nosuch\nq1\n/exit\n", ctx=world.ctx())
    assert code == 0
    assert out.split("\n")[0] == "yes indeed"
    assert [c["messages"][-1]["content"] for c in world.backend.chat.calls] == ["q1"]  # /help never sent
    assert "Commands: /reset" in err and "Unknown command /nosuch" in err


def test_delete_lists_each_resource_once_and_does_not_count_archived(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, err = run_cli("delete", "--all", "--yes", ctx=world.ctx())
    assert code == 0, err
    for label in ("ft-ep", "ft:1", "train:abc", "proj", "hub1"):
        assert [line.split()[-1] for line in out.splitlines()].count(label) == 1, (label, out)
        assert not [line for line in err.splitlines() if line.split()[-1:] == [label]], (label, err)
    assert "4 deleted, 1 archived" in err and "5 deleted" not in err


def test_delete_json_still_lists_archived_versions(run_cli, world: World) -> None:  # type: ignore[no-untyped-def]
    run_cli("deploy", ctx=world.ctx())
    code, out, _ = run_cli("delete", "--all", "--yes", "--json", ctx=world.ctx())
    assert code == 0
    assert [(d["kind"], d["result"]) for d in json.loads(out)["deleted"]][2] == ("data", "archived")
    assert isinstance(Path, type)
