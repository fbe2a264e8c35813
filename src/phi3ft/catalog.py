"""The Phi model catalog: one profile per model, the facts phi3ft needs offline.

Leaf module (stdlib only). The live registry check (lifecycle tags) belongs to ``prereqs``; facts here
carry the date they were last known to hold. Source: ../shared/docs/phi-models.md.

NOTE (foundation stub): the config/catalog issue extends this with lifecycle, regions and
hyperparameter ranges. The fields below are the stable interface the validator relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Chat-template families (docs/phi-models.md §5).
TemplateFamily = Literal["phi3", "phi3-original", "phi3-medium", "phi3-small", "phi4-mini", "phi4"]
#: How the tokenizer is built: a HF ``tokenizer.json``, or tiktoken ranks plus a special-token table.
TokenizerKind = Literal["hf", "tiktoken-cl100k", "tiktoken-o200k"]


@dataclass(frozen=True)
class ModelProfile:
    name: str  # catalog key, lower-case: "phi-3-mini-4k-instruct"
    registry_name: str  # name in the azureml registry: "Phi-3-mini-4k-instruct"
    hf_repo: str  # Hugging Face id: "microsoft/Phi-3-mini-4k-instruct"
    context_length: int
    template: TemplateFamily
    tokenizer_kind: TokenizerKind
    aliases: tuple[str, ...] = field(default_factory=tuple)


PROFILES: tuple[ModelProfile, ...] = (
    ModelProfile(
        "phi-3-mini-4k-instruct",
        "Phi-3-mini-4k-instruct",
        "microsoft/Phi-3-mini-4k-instruct",
        4096,
        "phi3",
        "hf",
        ("phi-3-mini", "phi3-mini"),
    ),
    ModelProfile(
        "phi-3-mini-128k-instruct",
        "Phi-3-mini-128k-instruct",
        "microsoft/Phi-3-mini-128k-instruct",
        131072,
        "phi3",
        "hf",
    ),
    ModelProfile(
        "phi-3-medium-4k-instruct",
        "Phi-3-medium-4k-instruct",
        "microsoft/Phi-3-medium-4k-instruct",
        4096,
        "phi3-medium",
        "hf",
    ),
    ModelProfile(
        "phi-3-medium-128k-instruct",
        "Phi-3-medium-128k-instruct",
        "microsoft/Phi-3-medium-128k-instruct",
        131072,
        "phi3-medium",
        "hf",
    ),
    ModelProfile(
        "phi-3.5-mini-instruct",
        "Phi-3.5-mini-instruct",
        "microsoft/Phi-3.5-mini-instruct",
        131072,
        "phi3",
        "hf",
        ("phi-3.5-mini",),
    ),
    ModelProfile(
        "phi-3.5-moe-instruct",
        "Phi-3.5-MoE-instruct",
        "microsoft/Phi-3.5-MoE-instruct",
        131072,
        "phi3",
        "hf",
        ("phi-3.5-moe",),
    ),
    ModelProfile(
        "phi-4-mini-instruct",
        "Phi-4-mini-instruct",
        "microsoft/Phi-4-mini-instruct",
        131072,
        "phi4-mini",
        "tiktoken-o200k",
        ("phi-4-mini",),
    ),
    ModelProfile("phi-4", "Phi-4", "microsoft/phi-4", 16384, "phi4", "tiktoken-cl100k"),
)

DEFAULT_MODEL = "phi-4-mini-instruct"


def get_profile(name: str) -> ModelProfile:
    """Look a model up by catalog key, alias, registry name or HF id (case-insensitive)."""
    key = name.strip().lower()
    for profile in PROFILES:
        candidates = {profile.name, profile.registry_name.lower(), profile.hf_repo.lower(), *profile.aliases}
        if key in candidates:
            return profile
    raise KeyError(name)
