"""The Azure ML adapter: the only code that imports ``azure.*``, always lazily inside functions.

``azure-ai-ml`` alone takes ~2 s to import, so nothing here imports it at module level; ``phi3ft --help``
and ``phi3ft validate`` never load it.
"""

from __future__ import annotations

import contextlib


def import_sdk_loggers() -> None:
    """Import azure-ai-ml now, so the loggers it sets up at import time exist.

    azure-ai-ml gives some loggers a handler of its own (bound to the stderr of import time) and stops their
    propagation; ``--verbose`` (``phi3ft.cli.app.sdk_logging``) reroutes them through its one redacting
    handler, which it can only do once they exist. Without the Azure extra installed this does nothing.
    This package's public API for code outside the adapter (the CLI); its modules are internals."""
    with contextlib.suppress(ImportError):  # an install without the Azure extra
        import azure.ai.ml  # noqa: F401


__all__ = ["import_sdk_loggers"]
