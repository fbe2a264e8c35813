"""The loss chart (PNG): training loss per step and evaluation loss where measured.

Shared by ``phi3ft train`` and ``phi3ft metrics --plot``. matplotlib is imported lazily with the Agg
backend, so importing this module costs nothing and no display is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def write_loss_chart(points: Iterable[Mapping[str, Any]], path: Path, title: str = "Loss") -> Path:
    """Plot ``[{step, train_loss?, eval_loss?}, ...]`` to ``path`` (PNG) and return the path.

    Points without a value for a series are skipped for that series, so one list can mix training
    lines and evaluation lines (the shape of ``metrics.jsonl``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(p["step"], p["train_loss"]) for p in points if p.get("train_loss") is not None]
    evals = [(p["step"], p["eval_loss"]) for p in points if p.get("eval_loss") is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", linewidth=1.2)
        if evals:
            ax.plot(*zip(*evals, strict=True), label="eval loss", marker="o", linewidth=1.5)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (nats / token)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if train or evals:
            ax.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
