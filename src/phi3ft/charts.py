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
