"""Issue 15 item 17: with --json every failure prints one {"error": {...}} document on stdout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from phi3ft.cli import app
from phi3ft.cli.app import json_requested
from phi3ft.errors import ExitCode, PrerequisiteError, error_codes
from phi3ft.polling import PollTimeout

REPO = Path(__file__).resolve().parents[2]


def _error_doc(out: str) -> dict[str, object]:
    doc = json.loads(out)  # exactly one document: json.loads rejects trailing text
    assert set(doc) == {"error"}
    err = doc["error"]
    assert set(err) == {"code", "message", "hint", "exit_code"}
    return err


@pytest.mark.parametrize("command", ["plan", "check", "submit", "status"])
def test_config_error_before_the_body_is_json(run_cli, tmp_path: Path, command: str) -> None:  # type: ignore[no-untyped-def]
    args = [command, "-c", str(tmp_path / "typo.yaml"), "--json"]
    if command == "status":
        args.insert(1, "some-job")
    code, out, err = run_cli(*args)
    assert code == ExitCode.INVALID, (out, err)
    doc = _error_doc(out)
    assert doc["code"] == "config_invalid"
    assert doc["exit_code"] == ExitCode.INVALID
    assert "typo.yaml" in str(doc["message"])
    assert "Error:" in err


def test_click_usage_error_is_json(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("plan", "--no-such-option", "--json")
    assert code == ExitCode.USAGE
    doc = _error_doc(out)
    assert doc == {
        "code": "usage",
        "message": "No such option '--no-such-option'.",
        "hint": "phi3ft plan --help",
        "exit_code": 2,
    }


def test_root_usage_error_is_json(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("--no-such-root-option", "plan", "--json")
    assert code == ExitCode.USAGE
    assert _error_doc(out)["code"] == "usage"


def test_without_json_stdout_stays_empty(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("plan", "-c", str(tmp_path / "typo.yaml"))
    assert code == ExitCode.INVALID
    assert out == ""
    assert "Error:" in err


def _with_command(func: Callable[..., None], run_cli, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    app.command("_json-fail-for-test", hidden=True)(func)
    try:
        return run_cli("_json-fail-for-test", *args)
    finally:
        app.registered_commands = [c for c in app.registered_commands if c.name != "_json-fail-for-test"]


def test_phi3ft_error_interrupt_and_bug_codes(run_cli) -> None:  # type: ignore[no-untyped-def]
    def prereq(json: bool = False) -> None:
        raise PrerequisiteError("no quota", "request quota")

    code, out, _ = _with_command(prereq, run_cli, "--json")
    assert code == ExitCode.PREREQ
    assert _error_doc(out) == {
        "code": "prerequisite_missing",
        "message": "no quota",
        "hint": "request quota",
        "exit_code": 4,
    }

    def interrupted(json: bool = False) -> None:
        raise KeyboardInterrupt

    code, out, _ = _with_command(interrupted, run_cli, "--json")
    assert code == ExitCode.INTERRUPTED
    assert _error_doc(out)["code"] == "interrupted"

    def bug(json: bool = False) -> None:
        raise RuntimeError("kaput")

    code, out, err = _with_command(bug, run_cli, "--json")
    assert code == ExitCode.ERROR
    assert _error_doc(out)["code"] == "unexpected"
    assert "Traceback" not in err


def test_json_requested_reads_the_raw_arguments() -> None:
    assert json_requested(["plan", "--json"])
    assert json_requested(["validate", "x.jsonl", "--format", "json"])
    assert json_requested(["validate", "x.jsonl", "-f", "json"])
    assert not json_requested(["validate", "x.jsonl", "--format", "github"])
    assert not json_requested(["chat", "--", "--json"])


def test_every_code_is_snake_case_and_listed_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Errors with `--json`", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
    assert PollTimeout.code == "timeout"
    codes = set(error_codes())
    assert codes == listed
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", c) for c in codes)
