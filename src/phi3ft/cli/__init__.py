"""The thin CLI layer: parse, call one service, render. No business logic lives here."""

from __future__ import annotations

import sys

from phi3ft.cli.app import app
from phi3ft.cli.app import main as _run

#: Loaded by the commands that need azure-ai-ml's object model (submit, deploy, delete, check): tearing
#: down its ~2,000 modules at exit costs 0.2-0.5 s on a 2-core machine for nothing.
_HEAVY_MODULES = ("azure.ai.ml",)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``phi3ft`` and ``python -m phi3ft``); returns the exit code.

    As a whole process (``argv`` is None) that loaded azure-ai-ml, it ends once the command is done
    without the interpreter's module teardown: the exit handlers still run (logging, thread pools,
    multiprocessing), stdout/stderr are flushed, then the process exits with the code. Everything the
    command writes (ledger, reports) is written and closed before its function returns.
    """
    rc = _run(argv)
    if argv is None and any(name in sys.modules for name in _HEAVY_MODULES):
        _exit_now(rc)
    return rc


def _exit_now(rc: int) -> None:
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(rc)


__all__ = ["app", "main"]
