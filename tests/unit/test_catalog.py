"""The Phi catalog: lookups, lifecycle on a given day, facts with their as-of dates."""

from __future__ import annotations

import json
from datetime import date

import pytest

from phi3ft import catalog
from phi3ft.catalog import PROFILES, format_decimal, get_profile, lifecycle_status


def test_names_and_aliases_are_unique() -> None:
    names = [p.name for p in PROFILES]
    assert len(names) == len(set(names))
    aliases = [a for p in PROFILES for a in p.aliases]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & set(names)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("phi-3-mini-4k-instruct", "phi-3-mini-4k-instruct"),
        ("Phi-3-mini-4k-instruct", "phi-3-mini-4k-instruct"),
        ("microsoft/Phi-4-mini-instruct", "phi-4-mini-instruct"),
        ("phi-4-mini", "phi-4-mini-instruct"),
        ("Phi-3-mini-128k-instruct", "phi-3-mini-128k-instruct"),  # the current snapshot wins
        ("phi-3-small", "phi-3-small-8k-instruct"),
    ],
)
def test_get_profile(query: str, expected: str) -> None:
    assert get_profile(query).name == expected


def test_unknown_model_raises_and_suggests() -> None:
    with pytest.raises(KeyError):
        get_profile("phi-4-mni")
    assert catalog.suggest("phi-4-mni") == ["phi-4-mini-instruct"]


def test_default_model_is_current() -> None:
    profile = get_profile(catalog.DEFAULT_MODEL)
    assert lifecycle_status(profile, date(2026, 11, 25)) == "active"
    assert profile.serverless_finetune


def test_phi3_lifecycle_dates() -> None:
    mini = get_profile("phi-3-mini-4k-instruct")
    assert lifecycle_status(mini, date(2025, 6, 29)) == "active"
    assert lifecycle_status(mini, date(2025, 6, 30)) == "deprecated"
    assert lifecycle_status(mini, date(2025, 8, 29)) == "deprecated"
    assert lifecycle_status(mini, date(2025, 8, 30)) == "retired"
    assert mini.lifecycle.replacement == "phi-4-mini-instruct"
    assert get_profile("phi-3-medium-4k-instruct").lifecycle.replacement == "phi-4"


def test_phi3_small_is_not_serverless_and_uses_cl100k() -> None:
    for name in ("phi-3-small-8k-instruct", "phi-3-small-128k-instruct"):
        profile = get_profile(name)
        assert not profile.serverless_finetune
        assert profile.tokenizer_kind == "tiktoken-cl100k"
        assert profile.template == "phi3-small"
    assert get_profile("phi-3-small-8k-instruct").context_length == 8192


def test_original_128k_template_option() -> None:
    profile = get_profile("phi-3-mini-128k-instruct-2024-05")
    assert profile.template == "phi3-original"
    assert profile.registry_name == "Phi-3-mini-128k-instruct"


def test_validator_interface_fields() -> None:
    """The validator reads these seven fields; keep them."""
    for profile in PROFILES:
        assert profile.name == profile.name.lower()
        assert profile.registry_name and profile.hf_repo.startswith("microsoft/")
        assert profile.context_length >= 4096
        assert profile.template and profile.tokenizer_kind


def test_every_fact_has_as_of_dates_and_ranges_hold_defaults() -> None:
    for profile in PROFILES:
        for value in vars(profile.as_of).values():
            assert isinstance(value, date)
        hp = profile.hyperparameters
        for rng in (hp.learning_rate, hp.epochs, hp.batch_size):
            assert rng.contains(rng.default), profile.name
        if profile.serverless_finetune:
            assert profile.finetune_regions and profile.deploy_regions


def test_to_dict_is_json_ready() -> None:
    for profile in PROFILES:
        data = profile.to_dict(date(2026, 1, 1))
        json.dumps(data)
        assert data["hyperparameters"]["epochs"]["azure_name"] == "num_train_epochs"  # type: ignore[index]
    assert get_profile("phi-3-mini-4k-instruct").to_dict(date(2026, 1, 1))["status"] == "retired"


@pytest.mark.parametrize(
    ("value", "text"),
    [(2e-5, "0.00002"), (5e-7, "0.0000005"), (0.0003, "0.0003"), (1.5e-4, "0.00015"), (1e-13, "1e-13")],
)
def test_format_decimal(value: float, text: str) -> None:
    assert format_decimal(value) == text
