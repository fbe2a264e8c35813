"""``phi3ft rules [ID]``: the validation rule catalogue, straight from the registry (phi3ft.data.rules).

Light on purpose: imports only the registry (no validator, no tokenizer, no azure).
"""

from __future__ import annotations

import difflib
from typing import Annotated

import typer

from phi3ft.cli.context import AppContext
from phi3ft.cli.options import JsonOpt
from phi3ft.errors import UsageError

#: Catalogue ids that are deliberately not findings (never reused for one).
NOT_FINDINGS: dict[str, str] = {
    "T02": "T02 is not a finding: every token rule counts with the model's own tokenizer and chat template.",
    "Q06": "Q06 is not a finding: the distribution statistics are the report's `stats`.",
    "Q07": "Q07 is not a finding: the findings per rule are the report's `summary.by_rule`.",
}


def _lookup(rule_id: str) -> str:
    from phi3ft.data.rules import RULES

    wanted = rule_id.strip().upper()
    if wanted in RULES:
        return wanted
    if wanted in NOT_FINDINGS:
        raise UsageError(NOT_FINDINGS[wanted], "List the rules: phi3ft rules")
    close = difflib.get_close_matches(wanted, sorted(RULES), n=3, cutoff=0.6)
    tip = f"Did you mean {' or '.join(close)}? " if close else ""
    raise UsageError(f"unknown rule id {rule_id!r}", f"{tip}List the rules: phi3ft rules")


def rules_cmd(
    ctx: typer.Context,
    rule_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="A rule id, e.g. T03 (case-insensitive); default: all."),
    ] = None,
    json: JsonOpt = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown", help="Print the catalogue as Markdown (the source of docs/validation-rules.md)."
        ),
    ] = False,
) -> None:
    """List the validation rules: id, severity, the problem each catches, why it matters, the fix.

    Ids are stable and never reused; a retired rule stays listed as retired. The same catalogue is
    docs/validation-rules.md. Exit codes: 0 ok, 2 unknown rule id.
    """
    from phi3ft.data.rules import RULES, catalogue, catalogue_markdown

    app_ctx: AppContext = ctx.obj
    out = app_ctx.for_command(json=json)
    if markdown and (json or rule_id):
        raise UsageError("--markdown prints the whole catalogue", "Use it alone: phi3ft rules --markdown")
    if markdown:
        out.stdout.write(catalogue_markdown())
        return
    if rule_id is not None:
        r = RULES[_lookup(rule_id)]
        if json:
            out.emit_json(r.to_dict())
            return
        status = "" if r.status == "active" else f"  (retired: {r.retired_note or 'never emitted'})"
        out.stdout.write(
            f"{r.id}  {r.severity}  {r.title}{status}\n"
            f"  catches: {r.catches}\n"
            f"  why:     {r.why}\n"
            f"  fix:     {r.hint}\n"
        )
        return
    rules = catalogue()
    if json:
        out.emit_json([r.to_dict() for r in rules])
        return
    width = max(len(r.severity) for r in rules)
    lines = [
        f"{r.id}  {r.severity:<{width}}  {r.title}" + ("" if r.status == "active" else "  (retired)")
        for r in rules
    ]
    out.stdout.write("\n".join(lines) + "\n")
    out.hint("One rule with what it catches, why and the fix: phi3ft rules T03")


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""
    app.command("rules")(rules_cmd)
