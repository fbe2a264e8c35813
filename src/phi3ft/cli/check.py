"""``phi3ft check``: every Azure prerequisite verified live, with the fix for each (thin: parse, run, render)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

from phi3ft.cli.options import ConfigOpt, JsonOpt

if TYPE_CHECKING:
    from phi3ft.cli.context import AppContext
    from phi3ft.targets.azureml.checks import CheckEvent, CheckReport

AUTH_CHOICES = ("auto", "cli", "env", "managed-identity", "device-code")
SYMBOLS = {
    "pass": "[green]✓[/green]",
    "warn": "[yellow]![/yellow]",
    "fail": "[red]✗[/red]",
    "skip": "[dim]-[/dim]",
}

AuthOpt = Annotated[
    str | None,
    typer.Option(
        "--auth",
        click_type=click.Choice(AUTH_CHOICES),
        help="Credential to use, overriding azure.auth: auto (DefaultAzureCredential), cli (az login), "
        "env (AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET only; never probes managed identity), "
        "managed-identity, device-code.",
        show_default=False,
    ),
]
FixOpt = Annotated[
    bool,
    typer.Option(
        "--fix",
        help="Register missing resource providers and wait until they are Registered (needs the right to "
        "register providers on the subscription). Other fixes are printed, never applied.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``check`` to the root app."""

    @app.command("check")
    def check(
        ctx: typer.Context,
        config: ConfigOpt = Path("job.yaml"),
        fix: FixOpt = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Verify every Azure prerequisite of a fine-tune, live, in seconds, and print the fix for each.

        Checks, in order: 1 credential (who you are), 2 subscription and resource group, 3 region offers
        serverless fine-tuning for the model, 4 resource providers registered (MachineLearningServices,
        Network; Storage and KeyVault when a hub will be created), 5 the role for what submit will
        create on the resource group, inherited roles included (a new hub: Contributor or Owner; else
        Azure AI Developer), 6 hub and project (kind, hub link, region), 7 base model in the azureml
        registry (version, chat-completion fine-tuning, retirement). Network, proxy, DNS and TLS failures
        are reported as such, not as a login problem.

        Exit 0 when nothing fails (warnings allowed), 4 when a check fails or the subscription is the
        placeholder that `phi3ft init` writes, 3 for an invalid job.yaml.
        """
        from phi3ft.config import load_job_config
        from phi3ft.connect import open_backend
        from phi3ft.errors import PrerequisiteError
        from phi3ft.targets.azureml.checks import run_checks

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        path = config if config.is_absolute() else app_ctx.cwd / config
        # Data files are not needed to check Azure: check before the data is ready.
        cfg = load_job_config(path, env=app_ctx.env, check_files=False)
        backend = open_backend(app_ctx, cfg, auth=auth)

        def on_event(event: CheckEvent) -> None:
            if event.kind == "fix":
                out.info(f"  {event.message}")

        with out.status("Checking prerequisites..."):
            report = run_checks(backend, cfg, fix=fix, on_event=on_event)

        if json:
            out.emit_json(report.to_dict())
        else:
            render(out, report)
        if not report.ok:
            failed = report.failed
            names = ", ".join(f"{r.title.lower()}" for r in failed)
            where = (
                'the "fix" of each failed check in the JSON on stdout' if json else "the fixes listed above"
            )
            again = f"phi3ft check --config {shlex.quote(str(config))}" + (" --json" if json else "")
            raise PrerequisiteError(
                f"{len(failed)} of {len(report.results)} checks failed: {names}.",
                f"Apply {where} (`--fix` registers providers), then re-run: {again}",
            )


def render(out: Any, report: CheckReport) -> None:
    """The human report: a table on stdout, then the fixes, then a one-line summary on stderr."""
    from rich.table import Table

    from phi3ft.output import esc

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for number, result in enumerate(report.results, 1):
        table.add_row(SYMBOLS[result.status], esc(f"{number}. {result.title}"), esc(result.detail))
    out.print(table)
    fixes = [(n, r) for n, r in enumerate(report.results, 1) if r.fix and r.status in ("fail", "warn")]
    if fixes:
        out.print()
        out.print("[bold]Fixes[/bold]")
        for number, result in fixes:
            out.print(f"  {number}. {result.title}: {result.fix}", soft_wrap=True, markup=False)
    counts = {s: sum(r.status == s for r in report.results) for s in ("pass", "warn", "fail", "skip")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if report.fixed:
        summary += f"; registered {', '.join(report.fixed)}"
    line = f"{len(report.results)} checks: {summary} ({report.elapsed_s:.1f} s)"
    if report.ok:
        out.success(line)
    else:
        out.info(line)
