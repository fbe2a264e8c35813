"""``phi3ft check`` through the real Typer app, with the in-memory fake injected via AppContext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes.prereqs import RG, SUB, FakePrereqBackend, contributor_on_rg

from phi3ft.cli.context import AppContext
from phi3ft.output import Output

JOB = f"""
azure:
  subscription_id: {SUB}
  resource_group: {RG}
  location: eastus2
  hub: {{name: hub-phi}}
  project: {{name: proj-phi}}
model: {{name: phi-4-mini-instruct}}
data: {{train: train.jsonl}}
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB, encoding="utf-8")
    return path


def ctx_with(backend: FakePrereqBackend, tmp_path: Path) -> AppContext:
    return AppContext(
        output=Output(interactive=False), env={}, cwd=tmp_path, backend_factory=lambda cfg: backend
    )


def test_check_json_all_pass(run_cli, job: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli(
        "check",
        "--config",
        str(job),
        "--json",
        ctx=ctx_with(FakePrereqBackend(assignments=contributor_on_rg()), tmp_path),
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True
    assert [c["id"] for c in data["checks"]] == [
        "credential",
        "resource-group",
        "region",
        "providers",
        "role",
        "workspace",
        "model",
    ]
    assert data["identity"]["kind"] == "user"
    assert isinstance(data["elapsed_s"], float)


def test_check_human_failure_exits_4_with_fixes(run_cli, job: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = FakePrereqBackend(rg=None)
    backend.providers["Microsoft.Network"] = "NotRegistered"
    code, out, err = run_cli("check", "-c", str(job), ctx=ctx_with(backend, tmp_path))
    assert code == 4
    assert "✗" in out and "Subscription and resource group" in out
    assert "Fixes" in out
    assert f"az group create --subscription {SUB} --name {RG} --location eastus2" in out
    assert "az provider register" in out
    assert "Error: 3 of 7 checks failed: subscription and resource group" in " ".join(err.split())
    assert "Hint:" in err


def test_check_json_failure_keeps_stdout_parseable(run_cli, job: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli(
        "check", "-c", str(job), "--json", ctx=ctx_with(FakePrereqBackend(rg=None), tmp_path)
    )
    assert code == 4
    data = json.loads(out)
    assert data["ok"] is False
    assert {c["id"]: c["status"] for c in data["checks"]}["resource-group"] == "fail"
    assert "Error:" in err


def test_check_ai_developer_and_a_hub_to_create_exits_4_naming_contributor(
    run_cli, job: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("check", "-c", str(job), ctx=ctx_with(FakePrereqBackend(), tmp_path))
    assert code == 4, err
    text = " ".join(out.split())  # the table folds long details
    assert "needs Contributor or Owner on the resource group" in text
    assert '--role "Contributor"' in text


def test_check_fix_reports_progress_on_stderr(run_cli, job: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend = FakePrereqBackend(assignments=contributor_on_rg())
    backend.providers["Microsoft.Network"] = "NotRegistered"
    code, _, err = run_cli("check", "-c", str(job), "--fix", ctx=ctx_with(backend, tmp_path))
    assert code == 0, err
    assert "registering Microsoft.Network" in err
    assert "registered Microsoft.Network" in err
    assert backend.providers["Microsoft.Network"] == "Registered"


def test_check_missing_config_exits_3(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(
        "check", "-c", str(tmp_path / "nope.yaml"), ctx=ctx_with(FakePrereqBackend(), tmp_path)
    )
    assert code == 3
    assert "does not exist" in err


def test_check_bad_auth_is_a_usage_error(run_cli, job: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(
        "check", "-c", str(job), "--auth", "magic", ctx=ctx_with(FakePrereqBackend(), tmp_path)
    )
    assert code == 2
    assert "magic" in err


def test_check_help_explains(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("check", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    for word in ("--fix", "--json", "--auth", "Azure AI Developer", "Exit 0"):
        assert word in text


PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("command", ["check", "submit"])
def test_placeholder_subscription_is_refused_before_any_credential(
    run_cli, tmp_path: Path, command: str
) -> None:  # type: ignore[no-untyped-def]
    """The all-zero subscription of `phi3ft init`: exit 4 at once, no credential built or tried."""
    (tmp_path / "train.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n',
        encoding="utf-8",
    )
    path = tmp_path / "job.yaml"
    path.write_text(JOB.replace(SUB, PLACEHOLDER), encoding="utf-8")
    tried: list[str] = []

    def credential(mode: str) -> object:
        tried.append(mode)
        raise AssertionError("a credential was built")

    ctx = AppContext(output=Output(interactive=False), env={}, cwd=tmp_path, credential_factory=credential)
    args = [command, "-c", str(path)] + (["--yes"] if command == "submit" else [])
    code, _out, err = run_cli(*args, ctx=ctx)
    assert code == 4, err
    assert f"Error: azure.subscription_id is the placeholder {PLACEHOLDER}" in err
    assert "Hint: export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv)" in err
    assert tried == []


def test_placeholder_subscription_is_refused_by_the_check_service_too() -> None:
    from phi3ft.errors import PrerequisiteError
    from phi3ft.targets.azureml.checks import CheckTarget

    class Cfg:
        class azure:
            subscription_id = PLACEHOLDER
            resource_group = RG
            location = "eastus2"

            class hub:
                name = "hub-phi"

            class project:
                name = "proj-phi"

        class model:
            name = "phi-4-mini-instruct"

    with pytest.raises(PrerequisiteError):
        CheckTarget.from_config(Cfg)
