"""``phi3ft validate`` and ``phi3ft split``: thin wrappers over phi3ft.data (parse, one call, render).

Never imports Azure (tests/test_imports.py); heavy modules (tokenizers, tiktoken) load inside the command.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phi3ft.cli.context import AppContext
from phi3ft.errors import ExitCode, UsageError
from phi3ft.output import esc

if TYPE_CHECKING:
    from phi3ft.data.validate import ValidationReport
    from phi3ft.output import Output


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


_SEV_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


#: File-level findings that mean nothing could be read: reported as one ``Error:`` line, not a report.
_UNREADABLE = ("F01", "F02")


def _unreadable_files(out: Output, report: ValidationReport) -> bool:
    """Print one error line (and the fix) per input that could not be read; True when there was one."""
    from phi3ft.data.rules import RULES

    fatal = [i for i in report.issues if i.rule in _UNREADABLE and i.line is None]
    for issue in fatal:
        detail = issue.file if issue.rule == "F01" else issue.message
        out.error(f"{issue.rule} {RULES[issue.rule].title}: {detail}", issue.hint)
    return bool(fatal)


def _render_text(
    out: Output, report: ValidationReport, max_errors: int, shown_reasons: set[str] | None = None
) -> None:
    """The human report. ``shown_reasons``: T01 messages already printed in this run (printed once)."""
    from rich.table import Table

    from phi3ft.data.report import group_issues

    shown_reasons = set() if shown_reasons is None else shown_reasons

    d = report.to_dict()
    stats = d["stats"]
    tok = d["tokenizer"]
    verdict = "[green]VALID[/green]" if report.valid else "[red]INVALID[/red]"
    for f in d["files"]:
        out.print(
            f"[bold]{esc(f['role'])}[/bold] {esc(f['path'])}  ({f['bytes']:,} bytes, {f['lines']:,} lines)"
        )
    out.print(
        f"{verdict} for {esc(report.model)}: {d['summary']['errors']} errors, {d['summary']['warnings']} warnings, "
        f"{d['summary']['infos']} notes"
        + (" [dim](--strict: warnings count as errors)[/dim]" if report.strict else "")
    )
    if tok.get("exact"):
        out.print(esc(f"Tokens: exact, {tok['name']} tokenizer from {tok['source']} ({tok['origin']})"))
    elif "T01" in report.counts:  # the reason is the T01 finding's message, printed once below
        out.print(
            f"[yellow]Tokens: ESTIMATES ({esc(stats['tokens']['method'])})[/yellow]: no tokenizer loaded (T01)"
        )
    else:
        out.print(
            f"[yellow]Tokens: ESTIMATES ({esc(stats['tokens']['method'])})[/yellow] — {esc(tok.get('reason'))}"
        )
    if report.skipped_rules:
        skipped = [r for r in report.skipped_rules if not r.startswith("T09")]
        if skipped:
            out.print(f"[yellow]Skipped rules:[/yellow] {esc(', '.join(skipped))} (not run, so not passed)")

    table = Table(title="Statistics", show_header=True, header_style="bold")
    for col in ("", "min", "p50", "p90", "p99", "max", "mean"):
        table.add_column(col, justify="right" if col else "left")

    def row(label: str, dist: dict[str, Any] | None) -> None:
        if dist:
            table.add_row(label, *(f"{dist[k]:,}" for k in ("min", "p50", "p90", "p99", "max", "mean")))

    row("messages / example", stats["messages_per_example"])
    label = "tokens / example" + ("" if stats["tokens"]["exact"] else " (est.)")
    row(label, stats["tokens"]["per_example"])
    row("assistant tokens / example", stats["tokens"].get("assistant_per_example"))
    out.print(table)
    t = stats["tokens"]
    approx = "" if t["exact"] else "~"
    out.print(
        f"Examples: {stats['examples']:,}   tokens: {approx}{t['total']:,}"
        + (f" (assistant {t['assistant']:,})" if t.get("assistant") is not None else "")
        + f"   billed ({stats['epochs']} epoch{'s' if stats['epochs'] != 1 else ''}): {approx}{t['billed']:,}"
    )
    if stats["no_system_share"] is not None:
        out.print(
            f"Without system prompt: {stats['no_system_share']:.0%}   duplicates: "
            f"{stats['duplicates']['examples']:,}   train/validation overlap: {stats['validation_overlap']:,}"
        )
    groups = group_issues(report)
    if not groups:
        out.print("[green]No findings.[/green]")
        return
    findings = Table(title="Findings by rule", show_header=True, header_style="bold", show_lines=False)
    findings.add_column("rule")
    findings.add_column("severity")
    findings.add_column("count", justify="right")
    findings.add_column("problem")
    findings.add_column("first lines")
    for g in groups:
        style = _SEV_STYLE[g.severity]
        lines = ", ".join(str(x) for x in g.first_lines) or "-"
        findings.add_row(esc(g.rule), f"[{style}]{g.severity}[/{style}]", f"{g.count:,}", esc(g.title), lines)
    out.print(findings)
    shown = 0
    for issue in report.issues:
        if issue.severity == "info":
            continue
        if shown >= max_errors:
            break
        shown += 1
        where = f":{issue.line}" if issue.line else ""
        path = f" {issue.path}" if issue.path else ""
        style = _SEV_STYLE[issue.severity]
        if issue.rule == "T01" and issue.message in shown_reasons:
            out.print(
                f"[{style}]{issue.rule}[/{style}] {esc(issue.file)}: token checks skipped (reason above)"
            )
            continue
        if issue.rule == "T01":
            shown_reasons.add(issue.message)
        out.print(
            f"[{style}]{issue.rule}[/{style}] {esc(issue.file)}{where}{esc(path)}: {esc(issue.message)}",
            markup=True,
        )
        out.print(f"      [dim]hint: {esc(issue.hint)}[/dim]")
    total = report.severity_counts["error"] + report.severity_counts["warning"]
    if total > shown:
        out.print(
            f"[dim]... {total - shown:,} more errors/warnings not shown (--max-errors {max_errors}).[/dim]"
        )


def _warn_validation_as_training(out: Output, files: list[Path]) -> None:
    """``validate train.jsonl validation.jsonl``: every FILE is training data; say how to pass validation."""
    import re
    import shlex

    looks = [
        f
        for f in files[1:]
        if re.search(r"(^|[^a-z])(val|valid|validation|dev|eval|test)([^a-z]|$)", f.stem.lower())
    ]
    if not looks:
        return
    train = " ".join(shlex.quote(str(f)) for f in files if f not in looks)
    for f in looks:
        out.warn(
            f"{f} is checked as training data (every FILE is); to check it as validation data (overlap "
            f"with training, F12), pass it with --validation: phi3ft validate {train} --validation {shlex.quote(str(f))}"
        )


def validate_cmd(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Training JSONL file(s), one chat example per line.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Target model (catalog name); sets tokenizer, template and context."
        ),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option("--validation", help="Validation JSONL; also checked for overlap with training."),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="text (tables), json (schema in README), github (annotations)."),
    ] = ReportFormat.text,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    max_errors: Annotated[
        int, typer.Option("--max-errors", min=0, help="Print at most N findings (all are still counted).")
    ] = 50,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors (exit 3).")] = False,
    tokenizer: Annotated[
        Path | None,
        typer.Option("--tokenizer", help="tokenizer.json, a .tiktoken rank file, or a folder with one."),
    ] = None,
    no_tokens: Annotated[
        bool, typer.Option("--no-tokens", help="Skip the tokenizer (token rules are skipped).")
    ] = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs for the billed-token estimate.")] = 1,
    allow_truncation: Annotated[
        bool,
        typer.Option(
            "--allow-truncation",
            help="T03 (example longer than the context) is a warning, not an error, when the first "
            "assistant turn still fits; T04 stays an error.",
        ),
    ] = False,
    allow_secrets: Annotated[
        bool,
        typer.Option(
            "--allow-secrets",
            help="Q08 (credentials in content) is a warning, not an error: for data whose keys are "
            "deliberate fakes. --strict makes it an error again.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes for the checks without a tokenizer (--no-tokens or none found); default "
            "min(CPUs, 4) for files over 32 MB, else 1. Same report for any value.",
        ),
    ] = None,
    fix: Annotated[
        Path | None,
        typer.Option(
            "--fix",
            metavar="OUT",
            help="Write a repaired copy of the training file to OUT (the input is never modified), plus "
            "OUT's name with .report.json listing every change by rule and line: repairs BOM, CRLF, blank "
            "lines, role letter case, surrounding whitespace, empty trailing messages; removes duplicates "
            "(first copy kept); drops records with other errors. The copy is validated again; exit 0 "
            "when it is valid.",
        ),
    ] = None,
    fix_validation: Annotated[
        Path | None,
        typer.Option(
            "--fix-validation",
            metavar="OUT2",
            help="With --fix and --validation: where the repaired validation file goes (required then). "
            "Records also in training are removed from it (kept in training).",
        ),
    ] = None,
    redact_secrets: Annotated[
        bool,
        typer.Option(
            "--redact-secrets",
            help="With --fix: replace the credentials (Q08) and personal data (Q09) found with typed "
            "placeholders such as <EMAIL> or <AWS_KEY> instead of dropping the record.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --fix: overwrite OUT, OUT2 and the report if they exist.")
    ] = False,
) -> None:
    """Check chat-completion JSONL before you pay for a fine-tune.

    Runs every rule (file, line, message, conversation, token and quality checks; ids and fixes: `phi3ft rules`) on
    every line in one streaming pass, with exact token counts from the model's own tokenizer and chat
    template. Tokenizer: --tokenizer PATH, else $PHI3FT_TOKENIZER_DIR, else the Hugging Face hub cache.

    --fix OUT writes a repaired copy and re-validates it (see the --fix options); file-level problems
    (missing file, a JSON document instead of JSON Lines, a wrong tokenizer, too few examples) are not
    repairable and are listed as such.

    Exit codes: 0 valid (warnings allowed unless --strict; with --fix: the repaired copy is valid),
    3 invalid, 2 usage error.
    """
    from phi3ft import catalog
    from phi3ft.data.report import github_annotations
    from phi3ft.data.validate import validate_dataset

    app_ctx: AppContext = ctx.obj
    out = app_ctx.output
    if json_out:
        if fmt is ReportFormat.github:
            raise UsageError("--json and --format github conflict.", "Pass one of them.")
        fmt = ReportFormat.json
    out.json_mode = fmt is ReportFormat.json
    if validation is None and len(files) > 1:
        _warn_validation_as_training(out, files)
    if fix is None and (fix_validation is not None or redact_secrets or force):
        raise UsageError(
            "--fix-validation, --redact-secrets and --force only work with --fix OUT.",
            "Example: phi3ft validate train.jsonl --fix train.fixed.jsonl --redact-secrets",
        )
    if fix is not None:
        if len(files) != 1:
            raise UsageError("--fix repairs one training file at a time.", "Pass one FILE with --fix.")
        if fmt is ReportFormat.github:
            raise UsageError("--fix and --format github conflict.", "Use --format text or --json with --fix.")
        _fix(
            app_ctx,
            files[0],
            fix,
            validation,
            fix_validation,
            max_errors=max_errors,
            redact_secrets=redact_secrets,
            force=force,
            options={
                "model": model or catalog.DEFAULT_MODEL,
                "tokenizer": tokenizer,
                "env": app_ctx.env,
                "epochs": epochs,
                "strict": strict,
                "count_tokens": not no_tokens,
                "allow_truncation": allow_truncation,
                "allow_secrets": allow_secrets,
                "workers": workers,
            },
        )
        return
    reports = []
    for path in files:
        path = path if path.is_absolute() else app_ctx.cwd / path
        val = (
            None
            if validation is None
            else (validation if validation.is_absolute() else app_ctx.cwd / validation)
        )
        progress_cb, finish = _progress(out, path)
        try:
            report = validate_dataset(
                path,
                val,
                model=model or catalog.DEFAULT_MODEL,
                tokenizer=tokenizer,
                env=app_ctx.env,
                epochs=epochs,
                strict=strict,
                count_tokens=not no_tokens,
                max_errors=None,
                progress=progress_cb,
                allow_truncation=allow_truncation,
                allow_secrets=allow_secrets,
                workers=workers,
            )
        finally:
            finish()
        reports.append(report)
    if fmt is ReportFormat.json:
        if len(reports) == 1:
            out.emit_json(reports[0].to_dict())
        else:
            out.emit_json({"valid": all(r.valid for r in reports), "reports": [r.to_dict() for r in reports]})
    elif fmt is ReportFormat.github:
        for report in reports:
            for line in github_annotations(report, max_errors):
                out.stdout.write(line + "\n")
            verdict = "valid" if report.valid else "INVALID"
            out.stdout.write(
                f"phi3ft validate: {report.files[0]['path'] if report.files else ''} {verdict} "
                f"({report.severity_counts['error']} errors, {report.severity_counts['warning']} warnings)\n"
            )
    else:
        shown_reasons: set[str] = set()
        for report in reports:
            if not _unreadable_files(out, report):
                _render_text(out, report, max_errors, shown_reasons)
    if not all(r.valid for r in reports):
        raise typer.Exit(int(ExitCode.INVALID))


def _fix(
    app_ctx: AppContext,
    file: Path,
    fix: Path,
    validation: Path | None,
    fix_validation: Path | None,
    *,
    max_errors: int,
    redact_secrets: bool,
    force: bool,
    options: dict[str, Any],
) -> None:
    """``validate --fix``: the original report, then what was changed and the re-validation verdict."""
    from rich.table import Table

    from phi3ft.data.repair import JSON_CHANGES, capped_report, fix_dataset

    out = app_ctx.output

    def absolute(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else app_ctx.cwd / p)

    result = fix_dataset(
        absolute(file),  # type: ignore[arg-type]
        absolute(fix),  # type: ignore[arg-type]
        absolute(validation),
        absolute(fix_validation),
        redact_secrets=redact_secrets,
        force=force,
        **options,
    )
    if out.json_mode:
        out.emit_json(
            {
                "valid": result.valid,
                "report": capped_report(result.original).to_dict(),
                "fix": result.to_dict(max_changes=JSON_CHANGES),
            }
        )
    else:
        _render_text(out, result.original, max_errors)
        out.print("")
        if not result.written:
            out.print(
                "[red]Not repaired[/red]: nothing can be repaired while these file-level errors remain:"
            )
            for issue in result.not_repairable:
                out.print(f"  {issue.rule} {issue.file}: {issue.message}", markup=False)
                out.print(f"      [dim]hint: {esc(issue.hint)}[/dim]")
            if any(i.rule == "F07" for i in result.not_repairable):
                out.hint(f"a JSON document converts to JSON Lines with: phi3ft convert {file} -o {fix}")
        else:
            for ff in result.files:
                out.print(
                    f"[bold]repaired {esc(ff.role)}[/bold] {esc(ff.output)}  ({ff.records_out:,} of {ff.records_in:,} records kept)"
                )
            by_rule = result.by_rule()
            if by_rule:
                table = Table(title="Changes by rule", show_header=True, header_style="bold")
                for col in ("rule", "repaired", "removed", "dropped", "first lines"):
                    table.add_column(col, justify="left" if col in ("rule", "first lines") else "right")
                for rid, counts in by_rule.items():
                    lines = sorted({c.line for c in result.changes if c.rule == rid and c.line is not None})
                    table.add_row(
                        rid,
                        *(f"{counts.get(a, 0):,}" for a in ("repaired", "removed", "dropped")),
                        ", ".join(str(x) for x in lines[:5]) or "-",
                    )
                out.print(table)
            else:
                out.print("No changes were needed.")
            for change in result.changes[:max_errors]:
                where = f":{change.line}" if change.line else ""
                out.print(
                    f"  {change.rule} {change.action} {Path(change.file).name}{where}: {change.detail}",
                    markup=False,
                    soft_wrap=True,
                )
            if len(result.changes) > max_errors:
                out.print(
                    f"  [dim]... {len(result.changes) - max_errors:,} more changes in {esc(result.report_path)}[/dim]"
                )
            for issue in result.not_repairable:
                out.print(f"  not repairable: {issue.rule} {issue.message}", markup=False)
            final = result.final
            if final is not None:
                verdict = "[green]VALID[/green]" if final.valid else "[red]INVALID[/red]"
                out.print(
                    f"Re-validated: {verdict} ({final.severity_counts['error']} errors, "
                    f"{final.severity_counts['warning']} warnings)"
                )
            out.print(f"Every change: {esc(result.report_path)}")
    if not result.valid:
        raise typer.Exit(int(ExitCode.INVALID))
    out.hint(f"phi3ft validate {result.files[0].output}")


def _progress(out: Output, path: Path) -> tuple[Any, Any]:
    """A rich progress bar on stderr when it is a terminal (and not --quiet); otherwise nothing."""
    if out.quiet or not out.err.is_terminal:
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out.err,
        transient=True,
    )
    task = bar.add_task(f"validating {path.name}", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def split_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The JSONL file to split.")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            "-o",
            help="Folder for train.jsonl and validation.jsonl (default: the input file's folder).",
            show_default=False,
        ),
    ] = None,
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of examples for validation (0-1).")
    ] = 0.1,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: the same file, fraction and seed give the same split.")
    ] = 42,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Split a JSONL file into train.jsonl and validation.jsonl, deterministically.

    Duplicates (whitespace-normalised) always land on the same side, so validation never leaks into
    training. Records are copied byte for byte; blank lines are dropped. Refuses to overwrite without --force.
    """
    from phi3ft.data.split import split_dataset

    app_ctx: AppContext = ctx.obj
    out = app_ctx.output
    out.json_mode = json_out
    src = file if file.is_absolute() else app_ctx.cwd / file
    if out_dir is None:
        dest = src.parent
        if src.name in ("train.jsonl", "validation.jsonl"):
            from phi3ft.errors import UsageError

            raise UsageError(
                f"Splitting {file} into its own folder would overwrite it with the new {src.name}.",
                f"Pass another folder: phi3ft split {file} --out-dir {src.parent / 'split'}",
            )
    else:
        dest = out_dir if out_dir.is_absolute() else app_ctx.cwd / out_dir
    result = split_dataset(src, dest, validation_fraction=validation_fraction, seed=seed, force=force)
    if json_out:
        out.emit_json(result.to_dict())
        return
    out.print(f"train       {esc(result.train_path)}  {result.train_examples:,} examples")
    out.print(f"validation  {esc(result.validation_path)}  {result.validation_examples:,} examples")
    if result.duplicate_groups:
        out.info(f"{result.duplicate_groups} groups of duplicates were kept on one side each.")
    out.hint(f"phi3ft validate {result.train_path} --validation {result.validation_path}")


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``split`` to the root app."""
    app.command("validate")(validate_cmd)
    app.command("split")(split_cmd)
