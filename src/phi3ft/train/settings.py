"""The ``training:`` block of job.yaml: LoRA SFT hyperparameters for ``phi3ft train``.

Leaf module: stdlib and pydantic only (no torch), so ``phi3ft.config`` can import it and
``phi3ft validate`` / ``--help`` stay fast. Defaults follow the registry specs in
the registry's ``model_specific_defaults`` where they exist (1 epoch, per-device batch 1, gradient accumulation 1,
cosine schedule) and common LoRA practice where the registry only says "LoRA on".

Example::

    training:
      lora: {r: 16, alpha: 32, dropout: 0.05}
      learning_rate: 2.0e-4
      epochs: 2
      batching: packed
      max_seq_length: 2048
      output_dir: runs/support-bot
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: LoRA target modules per architecture. Phi-3, Phi-3.5-mini, Phi-4-mini and Phi-4 are all
#: ``Phi3ForCausalLM`` with fused attention (``qkv_proj``) and a fused MLP (``gate_up_proj``).
TARGET_MODULES_BY_ARCH: dict[str, tuple[str, ...]] = {
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    # Phi-3.5-MoE (PhimoeForCausalLM): separate q/k/v; experts are w1/w2/w3.
    "phimoe": ("q_proj", "k_proj", "v_proj", "o_proj"),
    # Phi-3-small (custom Phi3SmallForCausalLM code).
    "phi3small": ("query_key_value", "dense", "up_proj", "down_proj"),
}

#: Catalog model name (``phi3ft.catalog``) -> architecture key above. Unknown names fall back to "phi3".
ARCH_BY_MODEL: dict[str, str] = {
    "phi-3.5-moe-instruct": "phimoe",
    "phi-3-small-8k-instruct": "phi3small",
    "phi-3-small-128k-instruct": "phi3small",
}

BatchingMode = Literal["packed", "bucketed", "padded"]


def default_target_modules(model_name: str) -> tuple[str, ...]:
    """LoRA target modules for a catalog model name (fused Phi-3 projections unless known otherwise)."""
    return TARGET_MODULES_BY_ARCH[ARCH_BY_MODEL.get(model_name.strip().lower(), "phi3")]


class LoraSettings(BaseModel):
    """LoRA adapter shape (peft ``LoraConfig``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, le=1024, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | None = Field(
        None,
        description=(
            "Module names to adapt. Default per model family: Phi-3/3.5/4 use the fused "
            "qkv_proj, o_proj, gate_up_proj, down_proj."
        ),
    )

    def resolved_target_modules(self, model_name: str) -> list[str]:
        """The configured modules, or the family default for ``model_name``."""
        if self.target_modules:
            return list(self.target_modules)
        return list(default_target_modules(model_name))


class TrainingSettings(BaseModel):
    """Hyperparameters and outputs of a local LoRA SFT run (``phi3ft train``).

    Loss is computed on assistant tokens only (each assistant message's content and its end-of-turn
    token); system/user turns and template tokens are masked.
    """

    model_config = ConfigDict(extra="forbid")

    # ---- adapter -------------------------------------------------------------------------------------
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter shape.")

    # ---- optimisation --------------------------------------------------------------------------------
    learning_rate: float = Field(
        2e-4,
        gt=0,
        le=1.0,
        description=(
            "Peak AdamW learning rate. The registry's 5e-6 default is for Azure's managed pipeline; "
            "LoRA adapters usually need 1e-4..3e-4 (2e-4 is the top of Phi-3.5's registry range)."
        ),
    )
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the training data (fractions allowed).")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs for the schedule)."
    )
    per_device_batch_size: int = Field(
        1,
        ge=1,
        le=4096,
        description=(
            "Conversations per micro-batch in 'padded'/'bucketed' mode. In 'packed' mode it sizes the "
            "token budget instead (see max_tokens_per_batch)."
        ),
    )
    max_tokens_per_batch: int | None = Field(
        None,
        ge=16,
        description=(
            "Token budget per micro-batch (real tokens plus padding). Default: per_device_batch_size x "
            "the longest training sequence, so a step never holds more tokens than a padded batch would."
        ),
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=4096, description="Micro-batches per optimizer step."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps with linear warmup.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Learning-rate decay after warmup."
    )
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW decoupled weight decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; null disables it.")

    # ---- memory / speed ------------------------------------------------------------------------------
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass: less memory, ~30% more compute."
    )
    bf16: bool | Literal["auto"] = Field(
        "auto", description="bfloat16 autocast: 'auto' = on CUDA GPUs that support it, off on CPU."
    )
    batching: BatchingMode = Field(
        "bucketed",
        description=(
            "'bucketed': batches of similar length (order shuffled), padded to the longest; attention "
            "costs sum(len^2). 'packed': several conversations per row, position ids restart per "
            "conversation and attention is block-diagonal (no padding, no cross-talk) but costs row_len^2 "
            "without varlen kernels. 'padded': shuffled batches padded to the longest (the plain Hugging "
            "Face behaviour; for comparison). See README 'Train locally' for measurements."
        ),
    )
    pack_length: int | None = Field(
        None,
        ge=16,
        description=(
            "Row length in 'packed' mode. Default: twice the median conversation length (at least 256, "
            "at most the longest): short rows keep the row_len^2 attention cost low; a longer "
            "conversation gets a row of its own."
        ),
    )
    max_seq_length: int | None = Field(
        None,
        ge=16,
        description="Longer conversations are truncated to this many tokens. Default: the model's context.",
    )

    # ---- evaluation / checkpoints --------------------------------------------------------------------
    eval_every_steps: int | None = Field(
        None, ge=1, description="Also evaluate every N optimizer steps (always at the end of each epoch)."
    )
    save_every_steps: int | None = Field(
        None, ge=1, description="Save an adapter checkpoint every N optimizer steps (always at epoch end)."
    )
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept in output_dir (oldest removed).")
    logging_every_steps: int = Field(1, ge=1, description="Write a metrics line every N optimizer steps.")
    seed: int = Field(42, description="Seeds data order, dropout and adapter initialisation.")

    # ---- paths ---------------------------------------------------------------------------------------
    output_dir: Path = Field(
        Path("runs/train"),
        description="Checkpoints, final adapter (adapter/), metrics.jsonl, loss.png, merged model (merged/).",
    )
    base_model: str | None = Field(
        None,
        description=(
            "Local folder or Hugging Face id (owner/name) to load instead of the catalog model's hf_repo "
            "(the catalog model still picks the chat template and LoRA defaults). A relative folder "
            "resolves against job.yaml's folder; a value that is neither an existing folder nor an "
            "owner/name id is a config error."
        ),
    )
    tokenizer: Path | None = Field(
        None, description="tokenizer.json (or a folder with one). Default: the one next to the base model."
    )
    resume: bool | str = Field(
        False,
        description="true: continue from the newest checkpoint in output_dir; a path: from that checkpoint.",
    )
    merge: bool = Field(False, description="Also export the base model with the adapter merged (merged/).")

    @model_validator(mode="after")
    def _check_budget(self) -> TrainingSettings:
        if (
            self.max_tokens_per_batch is not None
            and self.max_seq_length is not None
            and self.max_tokens_per_batch < self.max_seq_length
        ):
            raise ValueError(
                f"max_tokens_per_batch ({self.max_tokens_per_batch}) must be at least max_seq_length "
                f"({self.max_seq_length}) so one full-length conversation fits a micro-batch"
            )
        return self


__all__ = [
    "ARCH_BY_MODEL",
    "TARGET_MODULES_BY_ARCH",
    "BatchingMode",
    "LoraSettings",
    "TrainingSettings",
    "default_target_modules",
]
