"""TrainingSettings: the training: block of job.yaml (no torch needed)."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from phi3ft.train.settings import LoraSettings, TrainingSettings, default_target_modules


def test_defaults_are_valid_and_documented() -> None:
    settings = TrainingSettings()
    assert settings.lora.r == 16 and settings.lora.alpha == 32
    assert settings.lr_scheduler == "cosine" and settings.bf16 == "auto" and settings.batching == "bucketed"
    for name, field in TrainingSettings.model_fields.items():
        assert field.description, f"training.{name} has no description"


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TrainingSettings.model_validate({"lr": 1e-4})
    with pytest.raises(ValidationError):
        TrainingSettings.model_validate({"lora": {"rank": 8}})


def test_target_modules_per_family() -> None:
    fused = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert LoraSettings().resolved_target_modules("phi-3-mini-4k-instruct") == fused
    assert LoraSettings().resolved_target_modules("phi-4-mini-instruct") == fused
    assert "q_proj" in default_target_modules("phi-3.5-moe-instruct")
    assert LoraSettings(target_modules=["o_proj"]).resolved_target_modules("phi-4") == ["o_proj"]


def test_resume_accepts_flag_or_path() -> None:
    assert TrainingSettings.model_validate({"resume": True}).resume is True
    assert TrainingSettings.model_validate({"resume": "runs/x/checkpoint-4"}).resume == "runs/x/checkpoint-4"


def test_token_budget_must_hold_one_sequence() -> None:
    with pytest.raises(ValidationError, match="max_tokens_per_batch"):
        TrainingSettings(max_tokens_per_batch=100, max_seq_length=200)


def test_settings_import_does_not_load_torch() -> None:
    import subprocess

    code = "import sys, phi3ft.train, phi3ft.train.job, phi3ft.cli.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
