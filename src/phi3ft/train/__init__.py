"""Local LoRA SFT trainer (``phi3ft train``).

Importing this package is cheap: torch, transformers and peft are imported only when a run starts
(:func:`run_training`), so ``phi3ft.config`` can import :mod:`phi3ft.train.settings` freely.
"""

from __future__ import annotations

from phi3ft.train.settings import LoraSettings, TrainingSettings

__all__ = ["LoraSettings", "TrainingSettings"]
