"""Charts for people who would rather look than read: the loss PNG of ``phi3ft metrics --plot``.

One implementation for every loss chart: this delegates to :func:`phi3ft.train.chart.write_loss_chart`
(shared with ``phi3ft train``), which imports matplotlib lazily with the Agg backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from phi3ft.errors import UsageError


def write_metrics_chart(rows: Iterable[Mapping[str, Any]], path: Path, *, title: str = "Loss") -> Path:
    """Plot ``[{step, train_loss?, eval_loss?}]`` (the shape of ``phi3ft metrics --json``) to a PNG."""
    if Path(path).suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG; {path} does not end in .png.", "Use e.g. --plot loss.png.")
    from phi3ft.install import extra_install_command

    try:
        from phi3ft.train.chart import write_loss_chart
    except ImportError as exc:  # matplotlib missing: it is the optional [plot] extra
        raise UsageError(
            f"--plot needs matplotlib ({exc}).", f"Install it: {extra_install_command('plot')}."
        ) from None
    try:
        return write_loss_chart(list(rows), Path(path), title=title)
    except ImportError as exc:
        raise UsageError(
            f"--plot needs matplotlib ({exc}).", f"Install it: {extra_install_command('plot')}."
        ) from None


def write_baseline_chart(report: Mapping[str, Any], path: Path) -> Path:
    """``phi3ft eval --baseline --plot``: exact match and token F1 side by side, latency p50/p95, and the
    per-example win/tie/loss counts, from the shape of ``eval --baseline --json``."""
    if Path(path).suffix.lower() != ".png":
        raise UsageError(
            f"--plot writes a PNG; {path} does not end in .png.", "Use e.g. --plot baseline.png."
        )
    from phi3ft.install import extra_install_command

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # matplotlib missing: it is the optional [plot] extra
        raise UsageError(
            f"--plot needs matplotlib ({exc}).", f"Install it: {extra_install_command('plot')}."
        ) from None
    ft, base = report["fine_tuned"], report["base"]

    def v(d: Mapping[str, Any], key: str) -> float:
        return float(d.get(key) or 0.0)

    fig, axes = plt.subplots(1, 3, figsize=(11, 4), dpi=100)
    try:
        width = 0.38
        for ax, keys, labels, ylabel in (
            (axes[0], ("exact_match", "f1"), ("exact match", "token F1"), "score (0-1)"),
            (axes[1], ("latency_p50_s", "latency_p95_s"), ("p50", "p95"), "latency (s)"),
        ):
            xs = range(len(keys))
            ax.bar([x - width / 2 for x in xs], [v(ft, k) for k in keys], width, label="fine-tuned")
            ax.bar([x + width / 2 for x in xs], [v(base, k) for k in keys], width, label="base")
            ax.set_xticks(list(xs), labels)
            ax.set_ylabel(ylabel)
            ax.grid(True, axis="y", alpha=0.3)
            ax.legend()
        counts = report.get("counts") or {}
        names = ["win", "tie", "loss"]
        axes[2].bar(names, [int(counts.get(n, 0)) for n in names], color=["tab:green", "tab:gray", "tab:red"])
        axes[2].set_title("fine-tuned vs base, per example")
        axes[0].set_title("quality")
        axes[1].set_title("latency")
        fig.suptitle(f"{ft.get('endpoint')} vs {base.get('endpoint')}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
