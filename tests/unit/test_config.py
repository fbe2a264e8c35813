"""job.yaml: loading, interpolation, one-line errors with line + key path + "did you mean", hashes."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from tests.conftest import REPO

from phi3ft.config import (
    JobConfigError,
    config_hash,
    derived_names,
    did_you_mean,
    interpolate,
    load_job_config,
    parse_job_config,
    resolved_hyperparameters,
    to_azure_hyperparameters,
    training_hash,
)
from phi3ft.errors import ConfigError, ExitCode

EXAMPLE = REPO / "examples" / "job.yaml"

BASE = """\
azure:
  subscription_id: 11111111-2222-3333-4444-555555555555
  resource_group: rg-test
  hub:
    name: hub-test
  project:
    name: proj-test
model:
  name: phi-4-mini-instruct
data:
  train: train.jsonl
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    (tmp_path / "val.jsonl").write_text('{"messages": [{"role": "user"}]}\n', encoding="utf-8")
    return tmp_path


def write(folder: Path, text: str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(folder: Path, text: str, env: dict[str, str] | None = None) -> JobConfigError:
    path = write(folder, text)
    with pytest.raises(JobConfigError) as info:
        load_job_config(path, env=env or {})
    assert info.value.exit_code == ExitCode.INVALID
    assert "\n" not in info.value.message
    return info.value


# ---- happy paths --------------------------------------------------------------------------------------
def test_example_loads() -> None:
    cfg = load_job_config(EXAMPLE, env={})
    assert cfg.backend == "serverless"
    assert cfg.profile.name == "phi-4-mini-instruct"
    assert cfg.azure is not None and cfg.azure.subscription_id == "00000000-0000-0000-0000-000000000000"
    assert cfg.data.train == EXAMPLE.parent / "data" / "train.jsonl"
    assert cfg.deploy.content_safety is True
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    expected = next(
        i for i, line in enumerate(lines, 1) if line.strip().startswith("name: phi-4-mini-instruct")
    )
    assert cfg.line_of("model", "name") == expected


def test_defaults(folder: Path) -> None:
    cfg = load_job_config(write(folder, BASE), env={})
    assert cfg.azure is not None
    assert cfg.azure.location == "eastus2"
    assert cfg.azure.auth == "auto"
    assert cfg.azure.hub.create_if_missing is True
    assert cfg.task == "chat-completion"
    assert cfg.model.version == "latest"
    assert cfg.deploy.content_safety is True and cfg.deploy.auth_mode == "key"
    assert cfg.pricing is None
    hp = resolved_hyperparameters(cfg)
    assert set(hp.defaults_used) == {"learning_rate", "epochs", "batch_size"}
    assert to_azure_hyperparameters(cfg) == {
        "learning_rate": "0.00002",
        "num_train_epochs": "1",
        "per_device_train_batch_size": "1",
    }
    assert cfg.training.output_dir == folder / "runs" / "train"


def test_hyperparameters_go_to_azure_as_strings(folder: Path) -> None:
    cfg = load_job_config(
        write(folder, BASE + "hyperparameters:\n  learning_rate: 1e-5\n  epochs: 3\n  batch_size: 2\n"),
        env={},
    )
    # PyYAML reads 1e-5 (no dot) as a string: it must still be accepted as a number.
    assert cfg.hyperparameters.learning_rate == pytest.approx(1e-5)
    assert to_azure_hyperparameters(cfg) == {
        "learning_rate": "0.00001",
        "num_train_epochs": "3",
        "per_device_train_batch_size": "2",
    }


def test_location_is_normalised(folder: Path) -> None:
    cfg = load_job_config(write(folder, BASE.replace("  hub:", "  location: East US 2\n  hub:")), env={})
    assert cfg.azure is not None and cfg.azure.location == "eastus2"


def test_subscription_from_environment(folder: Path) -> None:
    text = BASE.replace("  subscription_id: 11111111-2222-3333-4444-555555555555\n", "")
    cfg = load_job_config(
        write(folder, text), env={"AZURE_SUBSCRIPTION_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
    )
    assert cfg.azure is not None and cfg.azure.subscription_id == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert cfg.subscription_from_env
    cfg = load_job_config(write(folder, text), env={})
    assert cfg.azure is not None and cfg.azure.subscription_id is None


def test_registry_id_model(folder: Path) -> None:
    text = BASE.replace(
        "  name: phi-4-mini-instruct",
        "  name: azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7",
    )
    cfg = load_job_config(write(folder, text), env={})
    assert cfg.profile.name == "phi-4-mini-instruct"
    assert cfg.model.pinned_version == "7"
    assert cfg.model.registry_id.endswith("/Phi-4-mini-instruct/versions/7")


def test_local_backend_needs_no_azure(folder: Path) -> None:
    text = "backend: local\nmodel:\n  name: phi-3-mini-4k-instruct\ndata:\n  train: train.jsonl\n"
    cfg = load_job_config(write(folder, text), env={})
    assert cfg.azure is None and cfg.backend == "local"


def test_compute_block(folder: Path) -> None:
    text = BASE.replace("model:", "backend: azureml-compute\ncompute:\n  max_nodes: 2\nmodel:")
    cfg = load_job_config(write(folder, text), env={})
    assert cfg.compute is not None
    assert cfg.compute.vm_size == "Standard_NC24ads_A100_v4"
    assert cfg.compute.min_nodes == 0 and cfg.compute.max_nodes == 2


# ---- interpolation ------------------------------------------------------------------------------------
def test_interpolate() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert interpolate("${A}", env) == "x"
    assert interpolate("pre-${A}-post", env) == "pre-x-post"
    assert interpolate("${B:-dflt}", env) == "dflt"
    assert interpolate("${EMPTY:-dflt}", env) == "dflt"
    assert interpolate("$${A}", env) == "${A}"
    assert interpolate("cost $5", env) == "cost $5"


def test_interpolation_in_config(folder: Path) -> None:
    text = BASE.replace("rg-test", "${RG:-rg-default}").replace("hub-test", "${HUB}")
    cfg = load_job_config(write(folder, text), env={"HUB": "hub-from-env"})
    assert cfg.azure is not None
    assert cfg.azure.resource_group == "rg-default"
    assert cfg.azure.hub.name == "hub-from-env"


def test_unset_variable_names_line_and_path(folder: Path) -> None:
    err = error_of(folder, BASE.replace("hub-test", "${HUB_NAME}"))
    assert err.message.endswith(
        "job.yaml:5: azure -> hub -> name: environment variable HUB_NAME is not set (used as ${HUB_NAME})"
    )
    assert "${VAR:-default}" in (err.hint or "")


@pytest.mark.parametrize("bad", ["${HUB", "${1HUB}", "${HUB NAME}"])
def test_bad_interpolation(folder: Path, bad: str) -> None:
    err = error_of(folder, BASE.replace("hub-test", f'"{bad}"'))
    assert ":5: azure -> hub -> name: bad interpolation" in err.message


# ---- errors: one line, YAML line, key path, did you mean ----------------------------------------------
@pytest.mark.parametrize("key", ["num_epochs", "num_train_epochs", "n_epochs", "epoch"])
def test_unknown_epochs_key_suggests_epochs(folder: Path, key: str) -> None:
    err = error_of(folder, BASE + f"hyperparameters:\n  {key}: 2\n")
    assert err.message.endswith(f"job.yaml:13: hyperparameters -> {key}: unknown key; did you mean 'epochs'?")
    assert "Rename the key" in (err.hint or "")


def test_unknown_key_without_close_match_lists_allowed(folder: Path) -> None:
    err = error_of(folder, BASE + "deploy:\n  zzz: 1\n")
    assert (
        "deploy -> zzz: unknown key (allowed: enabled, endpoint_name, content_safety, auth_mode)"
        in err.message
    )


def test_unknown_top_level_key(folder: Path) -> None:
    err = error_of(folder, BASE + "hyperparameter:\n  epochs: 1\n")
    assert "job.yaml:12: hyperparameter: unknown key; did you mean 'hyperparameters'?" in err.message


def test_wrong_type(folder: Path) -> None:
    err = error_of(folder, BASE + "hyperparameters:\n  epochs: three\n")
    assert "job.yaml:13: hyperparameters -> epochs: Input should be a valid integer" in err.message
    assert "(got 'three')" in err.message


def test_bool_is_not_a_number(folder: Path) -> None:
    err = error_of(folder, BASE + "hyperparameters:\n  batch_size: yes\n")
    assert "hyperparameters -> batch_size: expected a number, got true" in err.message


def test_learning_rate_out_of_model_range(folder: Path) -> None:
    err = error_of(folder, BASE + "hyperparameters:\n  learning_rate: 0.01\n")
    assert err.message.endswith(
        "job.yaml:13: hyperparameters -> learning_rate: 0.01 is outside 2e-06..0.0002 for "
        "Phi-4-mini-instruct (default 2e-05)"
    )


def test_learning_rate_range_follows_the_model(folder: Path) -> None:
    text = (
        BASE.replace("phi-4-mini-instruct", "phi-3-mini-4k-instruct")
        + "hyperparameters:\n  learning_rate: 1e-4\n"
    )
    err = error_of(folder, text)
    assert "outside 5e-07..5e-05 for Phi-3-mini-4k-instruct" in err.message


def test_missing_file(folder: Path) -> None:
    err = error_of(folder, BASE.replace("train.jsonl", "nope.jsonl"))
    assert f"job.yaml:11: data -> train: file {folder / 'nope.jsonl'} does not exist" in err.message
    assert "relative paths resolve" in (err.hint or "")


def test_missing_required_key(folder: Path) -> None:
    err = error_of(folder, BASE.replace("  resource_group: rg-test\n", ""))
    assert "job.yaml:1: azure -> resource_group: required key is missing" in err.message


def test_unknown_model_suggests(folder: Path) -> None:
    err = error_of(folder, BASE.replace("phi-4-mini-instruct", "phi-4-mni"))
    assert (
        "job.yaml:9: model -> name: unknown model 'phi-4-mni'; did you mean 'phi-4-mini-instruct'?"
        in err.message
    )


def test_invalid_subscription_from_env_says_so(folder: Path) -> None:
    text = BASE.replace("  subscription_id: 11111111-2222-3333-4444-555555555555\n", "")
    err = error_of(folder, text, env={"AZURE_SUBSCRIPTION_ID": "not-a-guid"})
    assert "azure -> subscription_id" in err.message and "(from ${AZURE_SUBSCRIPTION_ID}" in err.message
    assert "not-a-guid" not in err.message


def test_validation_and_split_are_exclusive(folder: Path) -> None:
    err = error_of(folder, BASE + "  validation: val.jsonl\n  split:\n    fraction: 0.2\n")
    assert "data -> split: give either validation or split, not both" in err.message


def test_serverless_needs_azure(folder: Path) -> None:
    err = error_of(folder, "model:\n  name: phi-4\ndata:\n  train: train.jsonl\n")
    assert "azure: required for backend serverless" in err.message


def test_duplicate_key(folder: Path) -> None:
    err = error_of(folder, BASE + "tags:\n  a: x\n  a: y\n")
    assert "job.yaml:14: tags -> a: duplicate key" in err.message


def test_invalid_yaml(folder: Path) -> None:
    err = error_of(folder, "model: [unclosed\n")
    assert "job.yaml:2: (top level): not valid YAML" in err.message


def test_not_a_mapping(folder: Path) -> None:
    err = error_of(folder, "- a\n- b\n")
    assert "must be a mapping" in err.message


def test_several_problems_in_one_line(folder: Path) -> None:
    err = error_of(folder, BASE + "hyperparameters:\n  num_epochs: 1\n  lr: 1\n  batch: 1\n  foo: 1\n")
    assert len(err.issues) == 4
    assert err.message.endswith("(+1 more)")
    assert "did you mean 'learning_rate'?" in err.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_job_config(tmp_path / "absent.yaml")
    assert "does not exist" in info.value.message
    assert "phi3ft init" in (info.value.hint or "")


def test_did_you_mean() -> None:
    assert did_you_mean("num_train_epochs", ["learning_rate", "epochs", "batch_size"]) == "epochs"
    assert (
        did_you_mean("per_device_train_batch_size", ["learning_rate", "epochs", "batch_size"]) == "batch_size"
    )
    assert did_you_mean("content_safty", ["content_safety", "enabled"]) == "content_safety"
    assert did_you_mean("zzz", ["epochs"]) is None


def test_parse_without_files() -> None:
    cfg = parse_job_config(BASE, check_files=False)
    assert cfg.data.train == Path("train.jsonl")


# ---- hashes and names ---------------------------------------------------------------------------------
def test_config_hash_depends_on_content_not_location(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = load_job_config(write(folder, BASE), env={})
    other = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(folder / "train.jsonl", other / "train.jsonl")
    second = load_job_config(write(other, BASE), env={})
    assert config_hash(first) == config_hash(second)
    assert len(config_hash(first)) == 64
    assert derived_names(first) == derived_names(second)

    (other / "train.jsonl").write_text('{"messages": [1]}\n', encoding="utf-8")
    changed = load_job_config(other / "job.yaml", env={})
    assert config_hash(changed) != config_hash(first)
    assert derived_names(changed).job != derived_names(first).job


def test_training_hash_ignores_eval_deploy_pricing_tags(folder: Path) -> None:
    base = load_job_config(write(folder, BASE), env={})
    extra = (
        BASE
        + "eval:\n  max_tokens: 99\ndeploy:\n  content_safety: false\ntags:\n  x: y\npricing:\n  hosting_per_hour: 1\n"
    )
    other = load_job_config(write(folder, extra, "other.yaml"), env={})
    assert config_hash(base) != config_hash(other)
    assert training_hash(base) == training_hash(other)
    epochs = load_job_config(write(folder, BASE + "hyperparameters:\n  epochs: 2\n", "e.yaml"), env={})
    assert training_hash(epochs) != training_hash(base)


def test_derived_names_are_valid_azure_names(folder: Path) -> None:
    names = derived_names(load_job_config(write(folder, BASE), env={}))
    assert names.job.startswith("phi3ft-phi-4-mini-")
    assert len(names.endpoint) <= 32 and names.endpoint[0].isalpha()
    assert names.output_model == names.endpoint  # both "<model>-ft-<hash8>" unless configured
