"""What the cluster runs, run here: the code snapshot ``create_command_job`` uploads, with the job's command
(inputs substituted) executed from the snapshot folder on the tiny random Phi-3 (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.conftest import PHI3_TOKENIZER_DIR
from tests.train.conftest import TRAIN_FILE, VALID_FILE, build_tiny_phi3

from phi3ft.errors import UsageError
from phi3ft.targets.azureml.sdk.compute import (
    JOB_CONFIG_NAME,
    TRAIN_COMMAND,
    cluster_job_config,
    environment_files,
    training_requirements,
    write_code_snapshot,
)
from phi3ft.train.settings import TrainingSettings


def test_cluster_config_drops_local_paths_and_refuses_a_local_base_model(tmp_path: Path) -> None:
    settings = TrainingSettings(epochs=2, output_dir=tmp_path / "x", tokenizer=tmp_path / "t.json")
    doc = cluster_job_config("phi-4-mini-instruct", settings, validation=True)
    assert doc["data"] == {"train": "${PHI3FT_TRAIN}", "validation": "${PHI3FT_VALIDATION}"}
    assert "output_dir" not in doc["training"] and "tokenizer" not in doc["training"]
    assert doc["training"]["epochs"] == 2 and doc["backend"] == "local"
    with pytest.raises(UsageError, match="cannot read it"):
        cluster_job_config(
            "phi-4-mini-instruct", TrainingSettings(base_model=str(tmp_path)), validation=False
        )


def test_environment_installs_the_train_extra_without_azure() -> None:
    reqs = training_requirements()
    names = {r.split("<")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in reqs}
    assert {"torch", "transformers", "peft", "typer", "pydantic"} <= names
    assert not any(n.startswith("azure") for n in names)
    assert environment_files()["Dockerfile"].startswith("FROM mcr.microsoft.com/azureml/curated/")


def test_the_job_command_trains_from_the_snapshot(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    model = build_tiny_phi3(tmp_path / "tiny")
    code = write_code_snapshot(
        tmp_path / "code",
        cluster_job_config("phi-3-mini-4k-instruct", TrainingSettings(max_steps=2, max_seq_length=256),
                           validation=True),
    )  # fmt: skip
    assert (code / "phi3ft" / "__main__.py").is_file() and not list(code.rglob("__pycache__"))
    # stand-ins for what the cluster has: the weights (downloaded there) and the mounted inputs
    doc = yaml.safe_load((code / JOB_CONFIG_NAME).read_text())
    doc["training"].update(base_model=str(model), tokenizer=str(PHI3_TOKENIZER_DIR))
    (code / JOB_CONFIG_NAME).write_text(yaml.safe_dump(doc))
    out_dir = tmp_path / "adapter-output"
    command = TRAIN_COMMAND.replace("${{outputs.adapter}}", str(out_dir))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PHI3FT_TRAIN=str(TRAIN_FILE), PHI3FT_VALIDATION=str(VALID_FILE), HF_HUB_OFFLINE="1")
    argv = command.split()
    argv[0] = sys.executable
    proc = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["steps"] == 2 and result["eval_loss"] is not None
    assert (out_dir / "adapter" / "adapter_config.json").is_file()
