"""Issue 15 item 12: user data and service text printed through Rich are never read as markup.

Every output path (Output methods, prompts, tables, the validate report, check's table, config errors)
is run with markup-like text; each must print it literally and never raise a MarkupError.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from phi3ft.errors import ExitCode
from phi3ft.output import Output, esc

MARKUP = ["[/]", "[bold]", "[y/N]", "'^[a-z]{2,32}$'", "[red]x[/red]", "[link=x]y"]


def _squash(text: str) -> str:
    return "".join(text.split())


def _out(**kw: object) -> tuple[Output, io.StringIO, io.StringIO]:
    so, se = io.StringIO(), io.StringIO()
    return Output(stdout=so, stderr=se, **kw), so, se  # type: ignore[arg-type]


@pytest.mark.parametrize("text", MARKUP)
def test_every_output_method_prints_markup_literally(text: str) -> None:
    out, _so, se = _out()
    out.info(f"info {text}")
    out.success(f"ok {text}")
    out.warn(f"warn {text}")
    out.hint(f"hint {text}")
    out.error(f"err {text}", f"fix {text}")
    with out.status(f"status {text}"):
        pass
    err = se.getvalue()
    for prefix in ("info", "ok", "warn", "hint", "err", "fix", "status"):
        assert f"{prefix} {text}" in err, (prefix, err)


@pytest.mark.parametrize("text", MARKUP)
def test_tables_and_escaped_markup_lines(text: str) -> None:
    from rich.table import Table

    out, so, _ = _out()
    table = Table()
    table.add_column("a")
    table.add_row(esc(text))
    out.print(table)
    out.print(f"[bold]{esc(text)}[/bold]")
    assert _squash(so.getvalue()).count(_squash(text)) == 2


def test_confirm_prompt_shows_y_n(monkeypatch: pytest.MonkeyPatch) -> None:
    out, _, se = _out(interactive=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert out.confirm("Submit this [bold] job?") is True
    assert "Submit this [bold] job? [y/N]" in se.getvalue()


def test_validate_report_with_markup_role_does_not_crash(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "x[bold].jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "[/]", "content": "a"}, {"role": "assistant", "content": "b"}]})
        + "\n",
        encoding="utf-8",
    )
    code, out, err = run_cli("validate", str(data))
    assert code == ExitCode.INVALID, err
    assert "Unexpected error" not in err
    assert "'[/]'" in out
    assert _squash("x[bold].jsonl") in _squash(out)


def test_config_error_keeps_square_brackets(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "job.yaml"
    code, _, err = run_cli("init", "-o", str(cfg))
    assert code == 0, err
    text = cfg.read_text(encoding="utf-8")
    import re

    cfg.write_text(re.sub(r"(\n  hub:\n    name: ).*", r'\1"x y"', text), encoding="utf-8")
    code, _, err = run_cli("plan", "-c", str(cfg))
    assert code == ExitCode.INVALID
    assert "[a-zA-Z0-9_-]{2,32}" in err


def test_check_table_escapes_details() -> None:
    from phi3ft.cli.check import render
    from phi3ft.targets.azureml.checks import CheckReport, CheckResult

    out, so, _ = _out()
    report = CheckReport(
        results=[
            CheckResult(
                id="x", title="Role [bold]", status="fail", detail="[Errno 1] [y/N] [/]", fix="run [x]"
            )
        ]
    )
    render(out, report)
    printed = _squash(so.getvalue())
    for text in ("Role[bold]", "[Errno1][y/N][/]", "run[x]"):
        assert text in printed


def test_convert_prints_paths_with_brackets(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in[bold].jsonl"
    src.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n", encoding="utf-8")
    dest = tmp_path / "out[/].jsonl"
    code, out, err = run_cli("convert", str(src), "-o", str(dest))
    assert code == 0, err
    assert "out[/].jsonl" in _squash(out + err)
