"""init / schema / plan / models through the real Typer app: exit codes, one-line errors, --json shapes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import PHI3_TOKENIZER_DIR, REPO, TOKENIZERS

from phi3ft import catalog
from phi3ft.config import load_job_config, render_starter_config

RunCli = Callable[..., tuple[int, str, str]]
EXAMPLE = REPO / "examples" / "job.yaml"
CONFIGS = REPO / "configs"
PHI4_MINI_TOKENIZER = TOKENIZERS / "phi4-mini"
TODAY = {"PHI3FT_TODAY": "2026-11-25"}

PLAN_KEYS = {
    "schema_version",
    "status",
    "exit_code",
    "config",
    "backend",
    "azure_calls",
    "then",
    "model",
    "names",
    "hashes",
    "data",
    "tokens",
    "cost",
    "actions",
    "blockers",
    "warnings",
    "notes",
    "validation",
}


def needs(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"test fixture missing: {path} (see tests/fixtures/tokenizers/README.md)")


# ---- models ------------------------------------------------------------------------------------------
def test_models_json(run_cli: RunCli) -> None:
    code, out, _err = run_cli("models", "--json", env=TODAY)
    assert code == 0
    data = json.loads(out)
    assert data["default"] == "phi-4-mini-instruct"
    by_name = {m["name"]: m for m in data["models"]}
    assert set(by_name) == {p.name for p in catalog.PROFILES}
    assert by_name["phi-3-mini-4k-instruct"]["status"] == "retired"
    assert by_name["phi-3-mini-4k-instruct"]["lifecycle"]["replacement"] == "phi-4-mini-instruct"
    assert by_name["phi-4-mini-instruct"]["status"] == "active"
    assert by_name["phi-3-small-8k-instruct"]["serverless_finetune"] is False
    assert by_name["phi-4-mini-instruct"]["as_of"]["regions"]


def test_models_table(run_cli: RunCli) -> None:
    code, out, _err = run_cli("models", env=TODAY)
    assert code == 0
    assert "phi-4-mini-instruct (default)" in out
    assert "retired (2025-08-30)" in out


# ---- schema and templates ----------------------------------------------------------------------------
def test_schema_is_current(run_cli: RunCli) -> None:
    code, out, _err = run_cli("schema")
    assert code == 0
    committed = (CONFIGS / "job.schema.json").read_text(encoding="utf-8")
    assert out == committed, "configs/job.schema.json is stale: phi3ft schema > configs/job.schema.json"
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    assert {
        "azure",
        "model",
        "data",
        "hyperparameters",
        "deploy",
        "training",
        "compute",
        "eval",
        "pricing",
    } <= set(schema["properties"])


@pytest.mark.parametrize("profile", catalog.PROFILES, ids=lambda p: p.name)
def test_template_is_current(profile: catalog.ModelProfile) -> None:
    expected = render_starter_config(
        profile,
        schema_ref="job.schema.json",
        schema_exists=True,
        train="../examples/data/train.jsonl",
        validation="../examples/data/validation.jsonl",
    )
    path = CONFIGS / f"{profile.name}.yaml"
    if os.environ.get("PHI3FT_UPDATE_TEMPLATES") == "1":
        path.write_text(expected, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.name} is stale: PHI3FT_UPDATE_TEMPLATES=1 pytest tests/cli/test_config_cmds.py"
    )


@pytest.mark.parametrize("profile", catalog.PROFILES, ids=lambda p: p.name)
def test_every_template_loads_and_plans(run_cli: RunCli, profile: catalog.ModelProfile) -> None:
    path = CONFIGS / f"{profile.name}.yaml"
    cfg = load_job_config(path, env={})
    assert cfg.profile == profile
    code, out, err = run_cli("plan", "--config", str(path), "--json", env=TODAY)
    plan = json.loads(out)
    assert set(plan) == PLAN_KEYS
    if profile.name.startswith("phi-4"):
        assert code == 0, err
        assert plan["status"] == "ok" and plan["backend"] == "serverless"
    else:  # Phi-3 / 3.5 serverless fine-tuning is retired: the template trains on an Azure ML cluster
        assert code == 0, err
        assert plan["status"] == "ok" and plan["backend"] == "azureml-compute"
        note = next(n for n in plan["notes"] if n["code"] == "model-retired-in-azure")
        assert profile.hf_repo in note["message"]
        assert "Error" not in err


# ---- init --------------------------------------------------------------------------------------------
def test_init_writes_a_loadable_config_and_refuses_to_overwrite(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    code, out, err = run_cli("init", "--out", str(target))
    assert code == 0 and out == ""
    assert "wrote" in err
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=")
    cfg = load_job_config(target, env={}, check_files=False)
    assert cfg.profile.name == catalog.DEFAULT_MODEL
    assert cfg.deploy.content_safety is True

    code, _out, err = run_cli("init", "--out", str(target), "--model", "phi-4")
    assert code == 1
    assert "already exists" in err and "--force" in err
    assert target.read_text(encoding="utf-8") == text

    code, _out, _err = run_cli("init", "--out", str(target), "--model", "phi-4", "--force")
    assert code == 0
    assert load_job_config(target, env={}, check_files=False).profile.name == "phi-4"


@pytest.mark.parametrize("model", ["phi-3-mini-4k-instruct", "phi-3-small-8k-instruct"])
def test_init_for_a_model_without_serverless_fine_tuning_picks_azureml_compute_and_says_why(
    run_cli: RunCli, tmp_path: Path, model: str
) -> None:
    target = tmp_path / "job.yaml"
    code, _out, err = run_cli("init", "--out", str(target), "--model", model)
    assert code == 0, err
    cfg = load_job_config(target, env={}, check_files=False)
    assert cfg.backend == "azureml-compute"
    assert "uses backend: azureml-compute" in err
    reason = "retired on 2025-08-30" if "mini" in model else "not offered for serverless fine-tuning"
    assert reason in err
    if "mini" in model:
        assert "`phi3ft init --model phi-4-mini-instruct`" in err
    shutil.copytree(REPO / "examples" / "data", tmp_path / "data")
    code, _out, err = run_cli("plan", "--config", str(target), "--json", env=TODAY)
    assert code == 0, err  # no retired-model blocker: the cluster trains the open weights


def test_init_for_a_current_model_stays_serverless_without_a_warning(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    code, _out, err = run_cli("init", "--out", str(target), "--model", "phi-4-multimodal-instruct")
    assert code == 0 and "Warning" not in err and "azureml-compute" not in err
    assert load_job_config(target, env={}, check_files=False).backend == "serverless"


def test_init_then_plan_without_data_is_exit_3(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "job.yaml"
    assert run_cli("init", "--out", str(target))[0] == 0
    code, out, err = run_cli("plan", "--config", str(target))
    assert code == 3 and out == ""
    assert "data -> train: file" in err and "does not exist" in err


def test_init_unknown_model(run_cli: RunCli, tmp_path: Path) -> None:
    code, _out, err = run_cli("init", "--model", "phi-4-mni", "--out", str(tmp_path / "x.yaml"))
    assert code == 2
    assert "did you mean 'phi-4-mini-instruct'?" in err
    assert not (tmp_path / "x.yaml").exists()


# ---- plan --------------------------------------------------------------------------------------------
def test_plan_example_exact_tokens(run_cli: RunCli) -> None:
    needs(PHI4_MINI_TOKENIZER)
    code, out, err = run_cli(
        "plan", "--config", str(EXAMPLE), "--json", "--tokenizer", str(PHI4_MINI_TOKENIZER), env=TODAY
    )
    assert code == 0, err
    plan = json.loads(out)
    assert set(plan) == PLAN_KEYS
    assert plan["status"] == "ok" and plan["blockers"] == [] and plan["azure_calls"] is False
    assert plan["model"]["name"] == "phi-4-mini-instruct"
    assert plan["model"]["hyperparameters"] == {
        "learning_rate": "0.00002",
        "num_train_epochs": "3",
        "per_device_train_batch_size": "1",
    }
    assert plan["data"]["train"]["examples"] >= 120
    assert plan["data"]["validation"]["examples"] >= 20
    tokens = plan["tokens"]
    assert tokens["exact"] is True
    assert tokens["billed"] == tokens["train"] * 3
    assert plan["cost"] is None
    assert [a["kind"] for a in plan["actions"]] == [
        "ensure_hub",
        "ensure_project",
        "upload_data",
        "upload_data",
        "resolve_model",
        "submit_job",
    ]
    assert [a["kind"] for a in plan["then"]] == ["register_model", "deploy_endpoint", "smoke_test"]
    assert plan["validation"]["valid"] is True and plan["validation"]["errors"] == 0
    # the example's all-zero subscription: an offline preview, said plainly (check/submit refuse it)
    assert {w["code"] for w in plan["warnings"]} == {"placeholder-subscription"}


def test_plan_example_without_tokenizer_is_labelled_estimate(run_cli: RunCli) -> None:
    code, out, _err = run_cli(
        "plan", "--config", str(EXAMPLE), "--json", env={**TODAY, "HF_HUB_OFFLINE": "1"}
    )
    assert code == 0
    plan = json.loads(out)
    assert plan["tokens"]["exact"] is False and plan["tokens"]["billed"] > 0
    assert "tokens-estimated" in {w["code"] for w in plan["warnings"]}


def test_plan_without_tokenizer_gives_the_reason_once(run_cli: RunCli, tmp_path: Path) -> None:
    env = {**TODAY, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PHI3FT_TOKENIZER_DIR": ""}
    code, out, err = run_cli("plan", "--config", str(EXAMPLE), env=env)
    assert code == 0
    assert (out + err).count("HF_HUB_OFFLINE") == 1
    assert "T01  token checks skipped (reason above)" in out + err


def test_plan_human_report(run_cli: RunCli) -> None:
    needs(PHI4_MINI_TOKENIZER)
    code, out, _err = run_cli(
        "plan", "--config", str(EXAMPLE), "--tokenizer", str(PHI4_MINI_TOKENIZER), env=TODAY
    )
    assert code == 0
    assert "no Azure calls were made" in out
    assert "1. ensure hub hub-xbox-support" in out and "create if missing" in out
    assert "phi3ft check" in out
    assert "; exact" in out
    assert "Cost      not estimated" in out
    assert "warning: azure.subscription_id is the placeholder 00000000-0000-0000-0000-000000000000" in out
    assert "export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv)" in out
    assert out.rstrip().splitlines()[-1].startswith("Plan OK (exit 0) as an offline preview")


def test_plan_phi3_template_with_tokenizer_exits_4(run_cli: RunCli, tmp_path: Path) -> None:
    needs(PHI3_TOKENIZER_DIR)
    text = (CONFIGS / "phi-3-mini-4k-instruct.yaml").read_text(encoding="utf-8")
    path = tmp_path / "job.yaml"  # the template uses azureml-compute; serverless is the retired offer
    path.write_text(
        text.replace("backend: azureml-compute", "backend: serverless").replace(
            "../examples/", f"{EXAMPLE.parent}/"
        ),
        encoding="utf-8",
    )
    code, out, _err = run_cli(
        "plan", "--config", str(path), "--tokenizer", str(PHI3_TOKENIZER_DIR), env=TODAY
    )
    assert code == 4
    assert "BLOCKER: Phi-3-mini-4k-instruct: serverless fine-tuning was retired on 2025-08-30" in out
    assert "the replacement is phi-4-mini-instruct" in out
    assert "; exact" in out


def test_plan_with_prices_shows_cost(run_cli: RunCli, tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "data", tmp_path / "data")
    text = EXAMPLE.read_text(encoding="utf-8") + "pricing:\n  currency: USD\n  training_per_1k_tokens: 0.01\n"
    (tmp_path / "job.yaml").write_text(text, encoding="utf-8")
    code, out, _err = run_cli("plan", "--config", str(tmp_path / "job.yaml"), "--json", env=TODAY)
    assert code == 0
    plan = json.loads(out)
    assert plan["cost"]["training"] == pytest.approx(plan["tokens"]["billed"] / 1000 * 0.01, abs=1e-4)
    assert "hosting_per_hour" not in plan["cost"]


BAD_CONFIGS = {
    "unknown key": (
        "  epochs: 3\n",
        "  num_train_epochs: 3\n",
        "hyperparameters -> num_train_epochs: unknown key; did you mean 'epochs'?",
    ),
    "wrong type": (
        "  epochs: 3\n",
        "  epochs: trois\n",
        "hyperparameters -> epochs: Input should be a valid integer",
    ),
    "learning rate out of range": (
        "  learning_rate: 2.0e-5\n",
        "  learning_rate: 0.5\n",
        "hyperparameters -> learning_rate: 0.5 is outside 2e-06..0.0002",
    ),
    "missing file": ("data/train.jsonl", "data/absent.jsonl", "data -> train: file"),
    "bad interpolation": (
        "${AZURE_SUBSCRIPTION_ID:-00000000-0000-0000-0000-000000000000}",
        "${AZURE_SUBSCRIPTION_ID",
        "azure -> subscription_id: bad interpolation",
    ),
    "unset variable": (
        "rg-xbox-support",
        "${PHI3FT_TEST_UNSET_RG}",
        "azure -> resource_group: environment variable PHI3FT_TEST_UNSET_RG is not set",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_bad_config_is_one_line_error_exit_3(run_cli: RunCli, tmp_path: Path, case: str) -> None:
    old, new, expected = BAD_CONFIGS[case]
    shutil.copytree(REPO / "examples" / "data", tmp_path / "data")
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    bad = text.replace(old, new, 1)
    path = tmp_path / "job.yaml"
    path.write_text(bad, encoding="utf-8")
    line = next(i for i, row in enumerate(bad.splitlines(), 1) if new.strip() in row)
    code, out, err = run_cli("plan", "--config", str(path), "--json")
    assert code == 3
    assert json.loads(out)["error"]["code"] == "config_invalid"  # --json: one error document (issue 15)
    error_lines = [row for row in err.splitlines() if row.startswith("Error: ")]
    assert len(error_lines) == 1
    assert f"job.yaml:{line}: {expected}" in error_lines[0]
    assert "Hint: " in err
    assert "Traceback" not in err


def test_plan_missing_config_file(run_cli: RunCli, tmp_path: Path) -> None:
    code, _out, err = run_cli("plan", "--config", str(tmp_path / "absent.yaml"))
    assert code == 3
    assert "does not exist" in err and "phi3ft init" in err


# ---- training.base_model (issue 19 item 2) -----------------------------------------------------------
def _local_job(tmp_path: Path, base_model: str) -> Path:
    shutil.copytree(REPO / "examples" / "data", tmp_path / "data")
    text = EXAMPLE.read_text(encoding="utf-8").replace("backend: serverless", "backend: local", 1)
    text += f"training:\n  base_model: {base_model}\n"
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_relative_base_model_is_the_folder_next_to_job_yaml(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text("{}", encoding="utf-8")
    path = _local_job(tmp_path, "tiny")
    monkeypatch.chdir(REPO)  # not the config's folder: the path must resolve against job.yaml
    code, out, err = run_cli("plan", "--config", str(path), "--json", env=TODAY)
    assert code == 0, err
    load = json.loads(out)["actions"][0]
    assert load["kind"] == "train_local"
    assert load["params"]["base_model"] == str((tmp_path / "tiny").resolve())
    assert load_job_config(path).training.base_model == str((tmp_path / "tiny").resolve())


def test_plan_keeps_a_hugging_face_id_as_an_id(run_cli: RunCli, tmp_path: Path) -> None:
    path = _local_job(tmp_path, "microsoft/Phi-4-mini-instruct")
    code, out, err = run_cli("plan", "--config", str(path), "--json", env=TODAY)
    assert code == 0, err
    assert json.loads(out)["actions"][0]["params"]["base_model"] == "microsoft/Phi-4-mini-instruct"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "tiny",
            "'tiny' is neither a folder (relative paths resolve against job.yaml's folder) nor a Hugging",
        ),
        ("./tiny", "folder {tmp}/tiny does not exist"),
        ("not a/repo id", "'not a/repo id' is neither a folder"),
    ],
    ids=["bare-name", "missing-folder", "bad-id"],
)
def test_plan_base_model_neither_folder_nor_repo_id_is_exit_3(
    run_cli: RunCli, tmp_path: Path, value: str, expected: str
) -> None:
    path = _local_job(tmp_path, value)
    code, out, err = run_cli("plan", "--config", str(path), "--json", env=TODAY)
    assert code == 3, err
    assert json.loads(out)["error"]["exit_code"] == 3  # --json: one error document (issue 15)
    error = next(row for row in err.splitlines() if row.startswith("Error: "))
    assert "training -> base_model: " + expected.format(tmp=tmp_path.resolve()) in error
    assert "Hint: Set training.base_model to a folder" in err
    assert "Traceback" not in err
