"""Issue 15 item 13: SDK logging is silent by default (``-q`` or not); ``--verbose``/PHI3FT_DEBUG=1 show it."""

from __future__ import annotations

import logging
import sys

from phi3ft.cli import app

SECRET_URL = (
    "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abcdefghijklmnopqrstuvwxyz0123456789ABCD%3D"
)


def _own_handler_logger() -> logging.Logger:
    """Like azure-ai-ml's initialize_logger_info: INFO, its own stderr handler, no propagation."""
    logger = logging.getLogger("azure.ai.ml._fake_arm_deployments")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(sys.stderr))
    return logger


def _noisy() -> None:
    logging.getLogger("azure.identity._credentials.chained").warning(
        "DefaultAzureCredential failed to retrieve a token from the included credentials."
    )
    logging.getLogger("azure.ai.ml._utils._experimental").warning(
        "Class FineTuningJob: This is an experimental class"
    )
    logging.getLogger("msal.application").warning("msal says hi")
    logging.getLogger("urllib3.connectionpool").warning("Retrying %s", SECRET_URL)
    logging.getLogger("azure.core").debug("debug detail")
    _own_handler_logger().info("Creating AzureML Workspace (hub-x)  Done (1s)")


def _run(run_cli, *args: str, env: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    app.command("_noisy-for-test", hidden=True)(_noisy)
    try:
        code, out, err = run_cli(*args, "_noisy-for-test", env=env)
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "_noisy-for-test"]
    assert code == 0, err
    assert out == ""
    return str(err)


def test_sdk_logs_are_silent_by_default(run_cli) -> None:  # type: ignore[no-untyped-def]
    for args in ((), ("-q",)):
        err = _run(run_cli, *args, env={"PHI3FT_DEBUG": ""})
        for text in ("DefaultAzureCredential", "experimental", "msal", "Retrying", "Creating AzureML"):
            assert text not in err, (args, err)


def test_verbose_shows_sdk_logs_redacted(run_cli) -> None:  # type: ignore[no-untyped-def]
    err = _run(run_cli, "--verbose", env={"PHI3FT_DEBUG": ""})
    for text in ("DefaultAzureCredential failed", "experimental class", "msal says hi", "Creating AzureML"):
        assert text in err, err
    assert "sig=abcdefghij" not in err and "Retrying" in err
    assert "debug detail" not in err


def test_phi3ft_debug_shows_debug_lines(run_cli) -> None:  # type: ignore[no-untyped-def]
    err = _run(run_cli, env={"PHI3FT_DEBUG": "1"})
    assert "debug detail" in err and "DefaultAzureCredential failed" in err


def test_logging_state_is_restored_after_a_command(run_cli) -> None:  # type: ignore[no-untyped-def]
    before = logging.root.manager.disable
    _run(run_cli, env={"PHI3FT_DEBUG": ""})
    assert logging.root.manager.disable == before
    _run(run_cli, "--verbose", env={"PHI3FT_DEBUG": ""})
    assert logging.getLogger("azure.ai.ml._fake_arm_deployments").propagate is False
