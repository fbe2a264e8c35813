"""The one injection point: an AppContext built by the root callback unless a test passed its own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3ft.output import Output


@dataclass
class AppContext:
    """Everything a command needs from the outside world.

    Tests build one with their own output streams, environment, clock, sleep and backend factory and
    pass it as ``obj=`` to ``CliRunner.invoke``; nothing is monkeypatched by dotted path.
    """

    output: Output = field(default_factory=Output)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path = field(default_factory=Path.cwd)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: Builds the cloud backend for a loaded job config; ``None`` means the default (Azure ML adapter).
    backend_factory: Callable[..., Any] | None = None
    #: Builds the Azure credential; ``None`` means the production chain chosen by ``--auth``.
    credential_factory: Callable[..., Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def for_command(self, *, json: bool = False) -> Output:
        """The command's output sink, switched to JSON mode when the command got ``--json``."""
        self.output.json_mode = json
        return self.output

    @property
    def state_dir(self) -> Path:
        """Local ledger folder: ``PHI3FT_STATE_DIR`` or ``./.phi3ft``."""
        configured = self.env.get("PHI3FT_STATE_DIR")
        return Path(configured) if configured else self.cwd / ".phi3ft"
