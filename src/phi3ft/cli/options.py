"""Annotated option aliases shared by commands, so flags read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (progress goes to stderr).")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Answer yes to confirmations (required without a TTY, e.g. CI).")
]
ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path to job.yaml.", dir_okay=False, show_default=True),
]
NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="If another phi3ft run is changing ./.phi3ft (creating or deleting), exit 1 at once instead "
        "of waiting for it to finish.",
    ),
]
