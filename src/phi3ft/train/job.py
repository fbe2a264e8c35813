"""job.yaml -> :class:`TrainOptions` (torch-free; used by ``phi3ft train`` and the local backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3ft.train.types import TrainOptions

if TYPE_CHECKING:
    from phi3ft.config import JobConfig


def options_from_job_config(cfg: JobConfig, *, device: str = "auto", **overrides: Any) -> TrainOptions:
    """Build run options from a loaded ``JobConfig``; ``overrides`` replace ``training:`` fields.

    Relative ``output_dir`` / ``tokenizer`` / local ``base_model`` paths resolve against the config
    file's folder, like the data paths do.
    """
    settings = cfg.training
    base = cfg.source.parent if cfg.source is not None else Path.cwd()
    updates: dict[str, Any] = {}
    if not settings.output_dir.is_absolute():
        updates["output_dir"] = base / settings.output_dir
    if settings.tokenizer is not None and not settings.tokenizer.is_absolute():
        updates["tokenizer"] = base / settings.tokenizer
    if settings.base_model and settings.base_model.startswith((".", "/")):
        updates["base_model"] = str((base / settings.base_model).resolve())
    updates.update({k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update=updates)
    settings = type(settings).model_validate(settings.model_dump())  # re-check overridden values
    split = cfg.data.split
    return TrainOptions(
        model=cfg.profile.name,
        train_file=cfg.data.train,
        validation_file=cfg.data.validation,
        validation_fraction=split.fraction if (split is not None and cfg.data.validation is None) else None,
        validation_seed=split.seed if split is not None else 42,
        settings=settings,
        device=device,
    )
