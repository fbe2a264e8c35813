"""Local LoRA SFT trainer (``phi3ft train``).

Importing this package is cheap: torch, transformers and peft are imported only when a run starts
(:func:`run_training`), so ``phi3ft.config`` can import :mod:`phi3ft.train.settings` freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3ft.train.settings import LoraSettings, TrainingSettings
from phi3ft.train.types import TrainEvent, TrainOptions, TrainResult

if TYPE_CHECKING:
    from collections.abc import Callable


def run_training(options: TrainOptions, progress: Callable[[TrainEvent], None] | None = None) -> TrainResult:
    """Run LoRA SFT (see :mod:`phi3ft.train.trainer`); imports torch only now."""
    from phi3ft.train.trainer import run_training as _run

    return _run(options, progress)


__all__ = ["LoraSettings", "TrainEvent", "TrainOptions", "TrainResult", "TrainingSettings", "run_training"]
