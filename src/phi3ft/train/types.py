"""What goes into a training run, what it reports while running, and what it returns.

Torch-free pydantic models: a parent process (``submit`` with ``backend: local``) can serialise
:class:`TrainOptions` to JSON, start ``python -m phi3ft.train OPTIONS.json`` and read
:class:`TrainEvent` JSON lines back from the child's stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from phi3ft.train.settings import TrainingSettings


class TrainOptions(BaseModel):
    """One run: which model, which data, which settings, which device."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "phi-3-mini-4k-instruct",
        description="Catalog model name: picks the chat template, LoRA defaults and (by default) the weights.",
    )
    train_file: Path
    validation_file: Path | None = None
    validation_fraction: float | None = Field(
        None, gt=0, le=0.5, description="Without a validation file: hold out this share of train (seeded)."
    )
    validation_seed: int = 42
    settings: TrainingSettings = Field(default_factory=TrainingSettings)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class TrainEvent(BaseModel):
    """A progress report: start, step, eval, checkpoint, done."""

    kind: Literal["start", "step", "eval", "checkpoint", "done"]
    step: int
    total_steps: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    eval_loss: float | None = None
    perplexity: float | None = None
    path: str | None = None
    message: str | None = None


class TrainResult(BaseModel):
    """Where the run wrote its outputs, and its headline numbers."""

    output_dir: Path
    adapter_dir: Path
    merged_dir: Path | None
    metrics_file: Path
    chart_file: Path | None
    steps: int
    resumed_from_step: int | None
    train_loss: float | None
    eval_loss: float | None
    eval_perplexity: float | None
    train_tokens: int = Field(
        description="Real (non-padding) tokens processed (all ranks together under DDP)."
    )
    tokens_per_s: float
    runtime_s: float
    peak_memory_bytes: int = Field(description="CUDA: max allocated; CPU: peak RSS of the process.")
    device: str
    bf16: bool
    conversations: int
    truncated: int
    rank: int = Field(0, description="This process's rank; only rank 0 writes the outputs.")
    world_size: int = Field(1, description="Data-parallel processes (WORLD_SIZE); 1 = a single process.")
