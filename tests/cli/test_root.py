"""The root app: --help, --version, exit codes of the shared error handler."""

from __future__ import annotations

import subprocess
import sys

import typer

from phi3ft.cli import app
from phi3ft.errors import ConfigError, ExitCode


def test_version_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "phi3ft", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("phi3ft ")


def test_unknown_command_is_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run_cli("no-such-command")
    assert code == ExitCode.USAGE
    assert "No such command" in err


def test_phi3ft_error_becomes_one_line_and_exit_code(run_cli) -> None:  # type: ignore[no-untyped-def]
    @app.command("_raise-for-test", hidden=True)
    def _raise() -> None:
        raise ConfigError("bad key 'x'", "rename it to 'y'")

    try:
        code, out, err = run_cli("_raise-for-test")
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "_raise-for-test"]
    assert code == ExitCode.INVALID
    assert out == ""
    assert "Error: bad key 'x'" in err
    assert "Hint: rename it to 'y'" in err
    assert "Traceback" not in err


def test_unexpected_exception_has_no_traceback(run_cli) -> None:  # type: ignore[no-untyped-def]
    @app.command("_boom-for-test", hidden=True)
    def _boom() -> None:
        raise RuntimeError("kaput")

    try:
        code, _out, err = run_cli("_boom-for-test")
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "_boom-for-test"]
    assert code == ExitCode.ERROR
    assert "Unexpected error: RuntimeError: kaput" in err
    assert "Traceback" not in err
    assert isinstance(app, typer.Typer)


def test_closed_pipe_is_not_an_unexpected_error() -> None:
    """`phi3ft models | head -1`: the reader goes away mid-write; no 'Unexpected error', no traceback."""
    code = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "os.close(r)\n"  # nobody reads: every write to w raises BrokenPipeError
        "os.dup2(w, 1)\n"
        "from phi3ft.cli import main\n"
        "sys.exit(main(['models']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "Unexpected error" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 1)
