"""The Phi model catalog: one profile per model, the facts phi3ft needs offline.

Leaf module (stdlib only). The live registry check (lifecycle tags, ``maas-finetuning-regions``) belongs to
``prereqs``: every fact here carries the date it was last known to hold (``as_of``), so a report can say
"as of 2025-08-30" instead of pretending to be current. Sources: the Azure AI Foundry model cards, the
``azureml`` registry specs and Microsoft's retirement announcements.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

#: Chat-template families (renderings: docs/architecture.md).
TemplateFamily = Literal["phi3", "phi3-original", "phi3-medium", "phi3-small", "phi4-mini", "phi4"]
#: How the tokenizer is built: a HF ``tokenizer.json``, or tiktoken ranks plus a special-token table.
TokenizerKind = Literal["hf", "tiktoken-cl100k", "tiktoken-o200k"]
#: Lifecycle of the *fine-tuning* offer (what phi3ft cares about); inference dates are kept too.
LifecycleStatus = Literal["active", "deprecated", "retired"]

#: Regions where fine-tuned Phi-3.5 / Phi-4-mini models can be deployed serverless (MaaS sample matrix).
_SIX_DEPLOY_REGIONS = ("eastus2", "eastus", "northcentralus", "westus3", "westus", "southcentralus")
#: Phi-4 family, Microsoft Learn as of 2026-02: serverless fine-tuning in these six regions; the fine-tuned
#: model deploys serverless there and in swedencentral.
_PHI4_FINETUNE_REGIONS = ("eastus2", "eastus", "northcentralus", "southcentralus", "westus", "westus3")
_PHI4_DEPLOY_REGIONS = (*_PHI4_FINETUNE_REGIONS, "swedencentral")
_PHI4_REGIONS_SOURCE = (
    "Microsoft Learn, Azure AI Foundry: fine-tune Phi models, region availability (2026-02)"
)
#: Phi-3-style attention/MLP projection names (Phi3ForCausalLM: Phi-3, Phi-3.5-mini, Phi-4-mini, Phi-4).
_PHI3_LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


@dataclass(frozen=True)
class Range:
    """A default and its allowed bounds (inclusive). ``None`` bound = not known to be limited."""

    default: float
    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        return f"{low}..{high}"


@dataclass(frozen=True)
class HyperparameterDefaults:
    """Serverless fine-tuning hyperparameters (registry ``model_specific_defaults``).

    Friendly names as in job.yaml; :data:`AZURE_HYPERPARAMETER_NAMES` maps them to the wire names.
    """

    learning_rate: Range
    epochs: Range = Range(1, 1, None)  # > 10 only warns (validation rule P04)
    batch_size: Range = Range(1, 1, None)


@dataclass(frozen=True)
class LoraDefaults:
    """LoRA defaults for the local / azureml-compute trainer, per model family."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = _PHI3_LORA_TARGETS


@dataclass(frozen=True)
class Lifecycle:
    """Azure AI Foundry lifecycle dates. ``None`` = no date announced as of ``as_of``."""

    legacy: date | None = None
    deprecated: date | None = None  # inference deprecation
    retired: date | None = None  # inference retirement
    finetune_deprecated: date | None = None
    finetune_retired: date | None = None
    replacement: str | None = None  # catalog name of the named successor


@dataclass(frozen=True)
class FactDates:
    """When each group of facts was last known to hold (the source's date, not when we copied it)."""

    model_card: date  # context length, tokenizer, template
    regions: date
    hyperparameters: date
    lifecycle: date


#: The three names the serverless backend is documented to accept, values as strings.
AZURE_HYPERPARAMETER_NAMES: dict[str, str] = {
    "learning_rate": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
}

_PHI3_LIFECYCLE = Lifecycle(
    legacy=date(2025, 6, 9),
    deprecated=date(2025, 6, 30),
    retired=date(2025, 8, 30),
    finetune_deprecated=date(2025, 6, 30),
    finetune_retired=date(2025, 8, 30),
    replacement="phi-4-mini-instruct",
)
_PHI3_MEDIUM_LIFECYCLE = Lifecycle(
    legacy=_PHI3_LIFECYCLE.legacy,
    deprecated=_PHI3_LIFECYCLE.deprecated,
    retired=_PHI3_LIFECYCLE.retired,
    finetune_deprecated=_PHI3_LIFECYCLE.finetune_deprecated,
    finetune_retired=_PHI3_LIFECYCLE.finetune_retired,
    replacement="phi-4",
)
_PHI3_FACTS = FactDates(
    model_card=date(2025, 6, 19),
    regions=date(2025, 6, 30),
    hyperparameters=date(2025, 6, 30),
    lifecycle=date(2025, 8, 30),
)
_PHI4_FACTS = FactDates(
    model_card=date(2025, 10, 24),
    regions=date(2026, 2, 1),
    hyperparameters=date(2025, 8, 30),
    lifecycle=date(2025, 8, 30),
)
_PHI3_MINI_HP = HyperparameterDefaults(learning_rate=Range(5e-6, 5e-7, 5e-5))
_PHI3_MEDIUM_HP = HyperparameterDefaults(learning_rate=Range(5e-6, 5e-7, 5e-5), batch_size=Range(4, 1, None))
_PHI35_HP = HyperparameterDefaults(learning_rate=Range(2e-5, 2e-6, 2e-4))


@dataclass(frozen=True)
class ModelProfile:
    """Everything phi3ft knows offline about one base model.

    The first seven fields are the stable interface of the validator (context and tokenizer); keep them.
    """

    name: str  # catalog key, lower-case: "phi-3-mini-4k-instruct"
    registry_name: str  # name in the azureml registry: "Phi-3-mini-4k-instruct"
    hf_repo: str  # Hugging Face id: "microsoft/Phi-3-mini-4k-instruct"
    context_length: int
    template: TemplateFamily
    tokenizer_kind: TokenizerKind
    aliases: tuple[str, ...] = field(default_factory=tuple)
    family: str = "phi-3"
    task: str = "chat-completion"
    #: Offered for serverless (pay-as-you-go, MaaS) fine-tuning at all. False for Phi-3-small.
    serverless_finetune: bool = True
    #: Hub regions where serverless fine-tuning is offered (``maas-finetuning-regions``).
    finetune_regions: tuple[str, ...] = ("eastus2",)
    #: Regions where the fine-tuned model can be deployed serverless (``maas-finetuning-deploy-regions``).
    deploy_regions: tuple[str, ...] = ("eastus2",)
    #: The region lists were read in a current Microsoft source (``regions_source``, ``as_of.regions``):
    #: ``plan`` blocks a region outside a verified list and only warns outside an unverified one.
    regions_verified: bool = False
    regions_source: str = "Microsoft Learn, Phi-3 fine-tuning and region availability pages"
    hyperparameters: HyperparameterDefaults = _PHI3_MINI_HP
    lora: LoraDefaults = LoraDefaults()
    #: Trainer default for ``training.max_seq_length`` (the registry pipeline's, capped by the context).
    max_seq_length: int = 4096
    lifecycle: Lifecycle = Lifecycle()
    as_of: FactDates = _PHI4_FACTS
    #: What is inferred rather than read in a source (shown by ``phi3ft models``).
    unverified: tuple[str, ...] = field(default_factory=tuple)
    notes: str = ""

    @property
    def registry_id_prefix(self) -> str:
        """``azureml://registries/azureml/models/<Name>``; append ``/versions/N`` or ``/labels/latest``."""
        return f"azureml://registries/azureml/models/{self.registry_name}"

    def regions_provenance(self) -> str:
        """``verified: <source>, as of <date>`` (or ``unverified: ...``) for messages."""
        state = "verified" if self.regions_verified else "unverified"
        return f"{state}: {self.regions_source}, as of {self.as_of.regions.isoformat()}"

    def to_dict(self, today: date | None = None) -> dict[str, object]:
        """JSON-ready view (``phi3ft models --json``); dates as ISO strings."""
        hp = self.hyperparameters
        data: dict[str, object] = {
            "name": self.name,
            "registry_name": self.registry_name,
            "hf_repo": self.hf_repo,
            "aliases": list(self.aliases),
            "family": self.family,
            "task": self.task,
            "context_length": self.context_length,
            "template": self.template,
            "tokenizer_kind": self.tokenizer_kind,
            "serverless_finetune": self.serverless_finetune,
            "finetune_regions": list(self.finetune_regions),
            "deploy_regions": list(self.deploy_regions),
            "regions_verified": self.regions_verified,
            "regions_source": self.regions_source,
            "hyperparameters": {
                key: {"default": rng.default, "min": rng.min, "max": rng.max, "azure_name": azure}
                for key, azure in AZURE_HYPERPARAMETER_NAMES.items()
                for rng in [getattr(hp, key)]
            },
            "lora": {
                "rank": self.lora.rank,
                "alpha": self.lora.alpha,
                "dropout": self.lora.dropout,
                "target_modules": list(self.lora.target_modules),
            },
            "max_seq_length": self.max_seq_length,
            "lifecycle": {
                key: (value.isoformat() if isinstance(value, date) else value)
                for key, value in vars(self.lifecycle).items()
            },
            "as_of": {key: value.isoformat() for key, value in vars(self.as_of).items()},
            "unverified": list(self.unverified),
            "notes": self.notes,
        }
        if today is not None:
            data["status"] = lifecycle_status(self, today)
        return data


PROFILES: tuple[ModelProfile, ...] = (
    ModelProfile(
        "phi-3-mini-4k-instruct",
        "Phi-3-mini-4k-instruct",
        "microsoft/Phi-3-mini-4k-instruct",
        4096,
        "phi3",
        "hf",
        ("phi-3-mini", "phi3-mini"),
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
    ),
    ModelProfile(
        "phi-3-mini-128k-instruct",
        "Phi-3-mini-128k-instruct",
        "microsoft/Phi-3-mini-128k-instruct",
        131072,
        "phi3",
        "hf",
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        unverified=("template: later HF revisions are assumed to match mini-4k",),
    ),
    ModelProfile(
        "phi-3-mini-128k-instruct-2024-05",
        "Phi-3-mini-128k-instruct",
        "microsoft/Phi-3-mini-128k-instruct",
        131072,
        "phi3-original",
        "hf",
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        notes="May-2024 snapshot: <s> + user/assistant turns, system dropped (token counts for old exports).",
    ),
    ModelProfile(
        "phi-3-small-8k-instruct",
        "Phi-3-small-8k-instruct",
        "microsoft/Phi-3-small-8k-instruct",
        8192,
        "phi3-small",
        "tiktoken-cl100k",
        ("phi-3-small",),
        serverless_finetune=False,
        finetune_regions=(),
        deploy_regions=(),
        hyperparameters=HyperparameterDefaults(learning_rate=Range(5e-6), batch_size=Range(4, 1, None)),
        lora=LoraDefaults(target_modules=("query_key_value", "dense", "up_proj", "down_proj")),
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        notes="Not offered for serverless fine-tuning (managed compute only).",
    ),
    ModelProfile(
        "phi-3-small-128k-instruct",
        "Phi-3-small-128k-instruct",
        "microsoft/Phi-3-small-128k-instruct",
        131072,
        "phi3-small",
        "tiktoken-cl100k",
        serverless_finetune=False,
        finetune_regions=(),
        deploy_regions=(),
        hyperparameters=HyperparameterDefaults(learning_rate=Range(5e-6), batch_size=Range(4, 1, None)),
        lora=LoraDefaults(target_modules=("query_key_value", "dense", "up_proj", "down_proj")),
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        notes="Not offered for serverless fine-tuning (managed compute only).",
    ),
    ModelProfile(
        "phi-3-medium-4k-instruct",
        "Phi-3-medium-4k-instruct",
        "microsoft/Phi-3-medium-4k-instruct",
        4096,
        "phi3-medium",
        "hf",
        ("phi-3-medium",),
        hyperparameters=_PHI3_MEDIUM_HP,
        lifecycle=_PHI3_MEDIUM_LIFECYCLE,
        as_of=_PHI3_FACTS,
    ),
    ModelProfile(
        "phi-3-medium-128k-instruct",
        "Phi-3-medium-128k-instruct",
        "microsoft/Phi-3-medium-128k-instruct",
        131072,
        "phi3-medium",
        "hf",
        deploy_regions=("eastus2", "swedencentral"),
        hyperparameters=_PHI3_MEDIUM_HP,
        lifecycle=_PHI3_MEDIUM_LIFECYCLE,
        as_of=_PHI3_FACTS,
        unverified=("gradient accumulation, LoRA and max_seq_length of the registry pipeline",),
    ),
    ModelProfile(
        "phi-3.5-mini-instruct",
        "Phi-3.5-mini-instruct",
        "microsoft/Phi-3.5-mini-instruct",
        131072,
        "phi3",
        "hf",
        ("phi-3.5-mini",),
        family="phi-3.5",
        deploy_regions=_SIX_DEPLOY_REGIONS,
        hyperparameters=_PHI35_HP,
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        unverified=("fine-tuning regions may be wider than eastus2 (azureml-assets PR #4018)",),
    ),
    ModelProfile(
        "phi-3.5-moe-instruct",
        "Phi-3.5-MoE-instruct",
        "microsoft/Phi-3.5-MoE-instruct",
        131072,
        "phi3",
        "hf",
        ("phi-3.5-moe",),
        family="phi-3.5",
        deploy_regions=_SIX_DEPLOY_REGIONS,
        hyperparameters=_PHI35_HP,
        lora=LoraDefaults(target_modules=("q_proj", "k_proj", "v_proj", "o_proj")),
        lifecycle=_PHI3_LIFECYCLE,
        as_of=_PHI3_FACTS,
        unverified=("tokenizer and template assumed identical to Phi-3-mini",),
    ),
    ModelProfile(
        "phi-4-mini-instruct",
        "Phi-4-mini-instruct",
        "microsoft/Phi-4-mini-instruct",
        131072,
        "phi4-mini",
        "tiktoken-o200k",
        ("phi-4-mini",),
        family="phi-4",
        finetune_regions=_PHI4_FINETUNE_REGIONS,
        deploy_regions=_PHI4_DEPLOY_REGIONS,
        regions_verified=True,
        regions_source=_PHI4_REGIONS_SOURCE,
        hyperparameters=_PHI35_HP,
        max_seq_length=8192,
        unverified=("hyperparameter range assumed equal to Phi-3.5-mini",),
        notes="Named replacement for the retired Phi-3 / Phi-3.5 models.",
    ),
    ModelProfile(
        "phi-4-multimodal-instruct",
        "Phi-4-multimodal-instruct",
        "microsoft/Phi-4-multimodal-instruct",
        131072,
        "phi4-mini",
        "tiktoken-o200k",
        ("phi-4-multimodal",),
        family="phi-4",
        finetune_regions=_PHI4_FINETUNE_REGIONS,
        deploy_regions=_PHI4_DEPLOY_REGIONS,
        regions_verified=True,
        regions_source=_PHI4_REGIONS_SOURCE,
        hyperparameters=_PHI35_HP,
        max_seq_length=8192,
        lora=LoraDefaults(target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj")),
        unverified=(
            "text-only chat data: tokenizer and template assumed equal to Phi-4-mini-instruct",
            "hyperparameter range assumed equal to Phi-3.5-mini",
        ),
        notes="Text, image and audio model; phi3ft fine-tunes and validates its text chat format.",
    ),
    ModelProfile(
        "phi-4",
        "Phi-4",
        "microsoft/phi-4",
        16384,
        "phi4",
        "tiktoken-cl100k",
        family="phi-4",
        finetune_regions=_PHI4_FINETUNE_REGIONS,
        deploy_regions=_PHI4_DEPLOY_REGIONS,
        regions_verified=True,
        regions_source=_PHI4_REGIONS_SOURCE,
        hyperparameters=_PHI35_HP,
        max_seq_length=8192,
        unverified=("hyperparameter range assumed equal to Phi-3.5-mini",),
        notes="14B; named replacement for Phi-3-medium.",
    ),
)

DEFAULT_MODEL = "phi-4-mini-instruct"


def get_profile(name: str) -> ModelProfile:
    """Look a model up by catalog key, alias, registry name or HF id (case-insensitive).

    A registry name shared by two profiles (Phi-3-mini-128k and its May-2024 snapshot) resolves to the
    first (current) one. Raises ``KeyError`` when unknown; :func:`suggest` offers close names.
    """
    key = name.strip().lower()
    for profile in PROFILES:
        candidates = {profile.name, profile.registry_name.lower(), profile.hf_repo.lower(), *profile.aliases}
        if key in candidates:
            return profile
    raise KeyError(name)


def all_names() -> list[str]:
    """Every accepted spelling (catalog keys first), for "did you mean" and completion."""
    names = [p.name for p in PROFILES]
    for profile in PROFILES:
        names.extend(alias for alias in profile.aliases if alias not in names)
    return names


def suggest(name: str, n: int = 1) -> list[str]:
    """Closest catalog keys to a misspelled model name."""
    key = name.strip().lower()
    spellings: dict[str, str] = {}
    for profile in PROFILES:
        for spelling in (profile.name, *profile.aliases, profile.registry_name.lower()):
            spellings.setdefault(spelling, profile.name)
    close: list[str] = []
    for match in difflib.get_close_matches(key, list(spellings), n=len(spellings), cutoff=0.5):
        if spellings[match] not in close:
            close.append(spellings[match])
    if not close:
        close = [p.name for p in PROFILES if key and (key in p.name or p.name in key)]
    return close[:n]


def lifecycle_status(profile: ModelProfile, today: date) -> LifecycleStatus:
    """Fine-tuning lifecycle on ``today``: retired once fine-tuning (or inference) retirement has passed.

    Azure refuses jobs on or after the retirement date, so the date itself counts as retired.
    """
    lc = profile.lifecycle
    retired = [d for d in (lc.finetune_retired, lc.retired) if d is not None]
    if any(today >= d for d in retired):
        return "retired"
    deprecated = [d for d in (lc.finetune_deprecated, lc.deprecated) if d is not None]
    if any(today >= d for d in deprecated):
        return "deprecated"
    return "active"


def format_decimal(value: float) -> str:
    """A float as Azure's samples write it: ``2e-05`` -> ``"0.00002"`` (no exponent, no trailing zeros)."""
    text = format(value, ".12f").rstrip("0").rstrip(".")
    if text in {"", "-0", "0"} and value != 0:
        return repr(value)
    return text
