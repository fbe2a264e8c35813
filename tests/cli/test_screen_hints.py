"""Issue 15 items 15, 16, 18 for init / plan / models / validate / split / train / Ctrl+C: hints that work
when pasted, identifiers printed whole."""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import REPO, TOKENIZERS

from phi3ft import catalog
from phi3ft.cli.context import AppContext
from phi3ft.output import Output

RunCli = Callable[..., tuple[int, str, str]]
EXAMPLE = REPO / "examples" / "job.yaml"
TODAY = {"PHI3FT_TODAY": "2026-11-25", "HF_HUB_OFFLINE": "1"}


def test_plan_next_steps_name_the_real_config(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "plan", "--config", str(EXAMPLE), "--tokenizer", str(TOKENIZERS / "phi4-mini"), env=TODAY
    )
    assert code == 0
    assert "--config ..." not in out
    last = out.rstrip().splitlines()[-1]
    assert f"phi3ft check --config {shlex.quote(str(EXAMPLE))}" in last
    assert f"phi3ft submit --config {shlex.quote(str(EXAMPLE))}" in last


def test_models_never_splits_a_model_name_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream in (Tty(), io.StringIO()):  # a terminal of 80 columns, then piped
        monkeypatch.setenv("COLUMNS", "80")
        ctx = AppContext(output=Output(stdout=stream, interactive=False), env=dict(TODAY))
        code, _, _ = run_cli("models", ctx=ctx)
        assert code == 0
        text = stream.getvalue()
        for profile in catalog.PROFILES:
            assert any(line.split()[0] == profile.name for line in text.splitlines()[1:]), profile.name


def test_init_project_names_hub_group_and_tag(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    code, _, err = run_cli("init", "--project", "xbox-support", "-o", str(target))
    assert code == 0, err
    text = target.read_text()
    assert "tags:\n  project: xbox-support\n" in text
    assert "name: hub-xbox-support" in text and "resource_group: rg-xbox-support" in text
    code, _, err = run_cli("init", "--project", "Bad_Name", "-o", str(tmp_path / "b.yaml"), "--force")
    assert code == 2 and "phi3ft init --project" in err


def test_ctrl_c_hint_does_not_promise_a_resume(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    import phi3ft.cli.validate as validate_cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate_cli, "_render_text", interrupted)  # Ctrl+C while the report prints
    code, _, err = run_cli(
        "validate", str(REPO / "tests" / "fixtures" / "data" / "valid_100.jsonl"), "--no-tokens"
    )
    assert code == 130
    assert "resume" not in err and "Error:" not in err
    assert "Interrupted." in err


def test_check_json_failure_hint_points_at_the_json(run_cli: RunCli, tmp_path: Path) -> None:
    from tests.fakes.prereqs import RG, SUB, FakePrereqBackend

    job = tmp_path / "job.yaml"
    job.write_text(
        f"azure:\n  subscription_id: {SUB}\n  resource_group: {RG}\n  location: eastus2\n"
        "  hub: {name: hub-phi}\n  project: {name: proj-phi}\nmodel: {name: phi-4-mini-instruct}\n"
        "data: {train: train.jsonl}\n"
    )
    backend = FakePrereqBackend(rg=None)
    ctx = AppContext(
        output=Output(interactive=False), env={}, cwd=tmp_path, backend_factory=lambda c: backend
    )
    code, out, err = run_cli("check", "-c", str(job), "--json", ctx=ctx)
    assert code == 4
    assert json.loads(out)["ok"] is False
    text = " ".join(err.split())
    assert "listed above" not in text
    assert 'the "fix" of each failed check in the JSON on stdout' in text
    assert f"phi3ft check --config {shlex.quote(str(job))} --json" in text


def test_sweep_plan_next_step_names_the_real_config(run_cli: RunCli) -> None:
    sweep = REPO / "examples" / "sweep.yaml"
    code, out, err = run_cli("plan", "--config", str(sweep), env=TODAY)
    assert code == 0, err
    assert "--config ..." not in out + err
    assert f"phi3ft submit --config {shlex.quote(str(sweep))}" in out
