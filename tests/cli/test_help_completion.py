"""Issue 15: shell completion, did-you-mean once, --help never truncates option text or keeps docstring
hard-wraps (80 columns and piped)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tests.conftest import REPO

from phi3ft.cli import app


def _phi3ft(*args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    return subprocess.run(
        [sys.executable, "-m", "phi3ft", *args], capture_output=True, text=True, env=env, check=False
    )


def test_show_completion_bash_prints_the_script() -> None:
    proc = _phi3ft("--show-completion", "bash")
    assert proc.returncode == 0, proc.stderr
    assert "_PHI3FT_COMPLETE=complete_bash" in proc.stdout
    assert "complete -o default -F _phi3ft_completion phi3ft" in proc.stdout


def test_completion_options_are_listed_in_help(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("--help")
    assert code == 0
    assert "--install-completion" in out and "--show-completion" in out


def test_completion_answers_subcommands() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
        "_PHI3FT_COMPLETE": "complete_bash",
        "COMP_WORDS": "phi3ft val",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from phi3ft.cli.app import main; main()"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert "validate" in proc.stdout.split()


def test_did_you_mean_is_printed_once() -> None:
    proc = _phi3ft("valdate")
    assert proc.returncode == 2
    assert proc.stderr.count("Did you mean") == 1, proc.stderr


@pytest.mark.parametrize("columns", ["80", "200"])
@pytest.mark.parametrize("command", [None, *sorted(c.name or "" for c in app.registered_commands)])
def test_help_never_truncates(command: str | None, columns: str) -> None:
    proc = _phi3ft(*([command] if command else []), "--help", columns=columns)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout, proc.stdout
    commands = proc.stdout.partition("\nCommands:\n")[2]
    assert not [line for line in commands.splitlines() if line.rstrip().endswith("...")], commands


def test_help_reflows_docstrings_and_keeps_whole_options() -> None:
    out = _phi3ft("check", "--help").stdout
    assert "(AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET" in out
    # the docstring's ~110-column hard wraps are gone: every line fits 80 columns
    assert max(len(line) for line in out.splitlines()) <= 80
    deploy = _phi3ft("deploy", "--help").stdout
    assert "--content-safety / --no-content-safety" in deploy
