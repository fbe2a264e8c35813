"""Config commands: ``init``, ``schema``, ``plan`` and ``models``. Thin: parse, one service call, render."""

from __future__ import annotations

import shlex
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from phi3ft.cli.context import AppContext
from phi3ft.cli.options import ConfigOpt, JsonOpt
from phi3ft.errors import ExitCode, Phi3ftError, UsageError
from phi3ft.output import Output

TokenizerOpt = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        help="tokenizer.json, a folder holding one, or a .tiktoken rank file (default: the Hugging Face cache).",
    ),
]


def _today(app_ctx: AppContext) -> date:
    """``PHI3FT_TODAY`` (ISO date) pins the lifecycle checks in tests and reproducible CI runs."""
    pinned = app_ctx.env.get("PHI3FT_TODAY")
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            raise UsageError(f"PHI3FT_TODAY={pinned!r} is not an ISO date", "Use YYYY-MM-DD.") from None
    return date.today()


def models_cmd(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List the built-in Phi model profiles: context, tokenizer, regions, lifecycle.

    Facts carry the date they were last known to hold; `phi3ft check` reads the live registry.
    """
    from phi3ft import catalog

    app_ctx: AppContext = ctx.obj
    out = app_ctx.for_command(json=json)
    today = _today(app_ctx)
    rows = [profile.to_dict(today) for profile in catalog.PROFILES]
    if json:
        out.emit_json({"today": today.isoformat(), "default": catalog.DEFAULT_MODEL, "models": rows})
        return
    from phi3ft.cli.tables import print_line, print_rows

    # Plain aligned rows at any width and when piped: a model name is an identifier users copy into
    # --model, so it is never folded over lines (a Rich table at 80 columns split it in three).
    table_rows = []
    for row in rows:
        lifecycle: dict[str, Any] = row["lifecycle"]  # type: ignore[assignment]
        status = str(row["status"])
        if status != "active" and lifecycle.get("finetune_retired"):
            status += f" ({lifecycle['finetune_retired']})"
        table_rows.append(
            (
                str(row["name"]) + (" (default)" if row["name"] == catalog.DEFAULT_MODEL else ""),
                f"{row['context_length']:,}",
                str(row["tokenizer_kind"]),
                "yes" if row["serverless_finetune"] else "no",
                status,
                str(lifecycle.get("replacement") or "-"),
                ",".join(row["finetune_regions"]) or "-",  # type: ignore[arg-type]
            )
        )
    print_line(out, f"Phi models (lifecycle on {today.isoformat()})")
    print_rows(
        out,
        ("MODEL", "CONTEXT", "TOKENIZER", "SERVERLESS FT", "STATUS", "REPLACEMENT", "FT REGIONS"),
        table_rows,
        right=(1,),
    )
    out.hint("Details per model (ranges, deploy regions, as-of dates): phi3ft models --json")


def schema_cmd(ctx: typer.Context) -> None:
    """Print the JSON Schema of job.yaml (also committed as configs/job.schema.json).

    Editors complete keys when job.yaml starts with `# yaml-language-server: $schema=<path or URL>`.
    """
    from phi3ft.config import job_json_schema_text

    app_ctx: AppContext = ctx.obj
    app_ctx.output.stdout.write(job_json_schema_text())


def init_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Catalog model (see `phi3ft models`).")] = "",
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Where to write the config.")] = Path(
        "job.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    project: Annotated[
        str,
        typer.Option(
            "--project",
            help="Name for the Azure project; the hub (hub-NAME), resource group (rg-NAME) and the "
            "project tag on every resource follow it.",
        ),
    ] = "phi-ft",
) -> None:
    """Write a commented starter job.yaml for a Phi model (refuses to overwrite without --force).

    A model whose serverless fine-tuning is retired or not offered gets backend: azureml-compute (a
    warning says why); the subscription is a placeholder until you set AZURE_SUBSCRIPTION_ID.
    """
    from phi3ft import catalog
    from phi3ft.config import render_starter_config, starter_backend

    app_ctx: AppContext = ctx.obj
    name = model or catalog.DEFAULT_MODEL
    try:
        profile = catalog.get_profile(name)
    except KeyError:
        close = catalog.suggest(name)
        raise UsageError(
            f"unknown model '{name}'" + (f"; did you mean '{close[0]}'?" if close else ""),
            "List the models with `phi3ft models`.",
        ) from None
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,28}[a-z0-9]", project):
        raise UsageError(
            f"--project {project!r}: use 3-30 lowercase letters, digits and hyphens (Azure resource names).",
            "For example: phi3ft init --project xbox-support",
        )
    target = out_path if out_path.is_absolute() else app_ctx.cwd / out_path
    if target.exists() and not force:
        raise Phi3ftError(f"{out_path} already exists", "Pass --force to overwrite it, or --out OTHER.yaml.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_starter_config(profile, project=project), encoding="utf-8")
    app_ctx.output.success(f"wrote {out_path} for {profile.registry_name}")
    if starter_backend(profile) != "serverless":
        lc = profile.lifecycle
        why = (
            f"serverless fine-tuning of {profile.registry_name} retired on {lc.finetune_retired.isoformat()}"
            if lc.finetune_retired is not None and profile.serverless_finetune
            else f"{profile.registry_name} is not offered for serverless fine-tuning"
        )
        app_ctx.output.warn(
            f"{why}, so {out_path} uses backend: azureml-compute (LoRA on your Azure ML GPU cluster; "
            "backend: local trains on this machine)"
            + (
                f"; for serverless fine-tuning run `phi3ft init --model {lc.replacement}`"
                if lc.replacement
                else ""
            )
        )
    app_ctx.output.hint(
        f"Put your JSONL files in {out_path.parent / 'data'}/, edit azure:, then run "
        f"`phi3ft plan --config {out_path}`."
    )


def plan_cmd(
    ctx: typer.Context,
    config: ConfigOpt = Path("job.yaml"),
    json: JsonOpt = False,
    tokenizer: TokenizerOpt = None,
) -> None:
    """Show what `phi3ft submit` would do, without calling Azure.

    Validates job.yaml and the data (exact token counts when the model's tokenizer is available).

    Lists the steps submit runs, in order (hub, project, data assets, model or cluster, job), what follows
    (model registration, deploy) and the billed tokens.

    Shows a cost only when job.yaml gives prices; warns about retired models and regions.

    With a sweep: block: every point (its values and job name) and the billed tokens of all of them.

    Exit 0 ok, 3 config or data invalid, 4 the plan cannot work (for example a retired model).
    """
    from phi3ft.config import load_job_config
    from phi3ft.plan import build_plan

    app_ctx: AppContext = ctx.obj
    out = app_ctx.for_command(json=json)
    path = config if config.is_absolute() else app_ctx.cwd / config
    cfg = load_job_config(path, env=app_ctx.env)
    if cfg.sweep is not None:  # every point, and the billed tokens of all of them
        from phi3ft.cli.sweep import plan_sweep

        code = plan_sweep(
            app_ctx, cfg, config_label=str(config), tokenizer=tokenizer, json=json, today=_today(app_ctx)
        )
        if code:
            raise typer.Exit(code)
        return
    with out.status(f"Validating data and counting tokens for {cfg.profile.registry_name}..."):
        plan = build_plan(cfg, today=_today(app_ctx), tokenizer=tokenizer, env=app_ctx.env)
    plan.config = str(config)  # as the user typed it
    if json:
        out.emit_json(plan.to_dict())
    else:
        _render_plan(out, plan.to_dict(), app_ctx.cwd)
    if plan.exit_code != ExitCode.OK:
        raise typer.Exit(int(plan.exit_code))


def _shown(path: str, cwd: Path) -> str:
    """A path relative to the working directory when it is below it (shorter lines)."""
    try:
        return str(Path(path).relative_to(cwd))
    except ValueError:
        return path


def _render_plan(out: Output, plan: dict[str, Any], cwd: Path) -> None:
    """Human report on stdout; plain text (no markup) so bracketed values print as they are."""
    lines: list[str] = []
    model, tokens, data = plan["model"], plan["tokens"], plan["data"]
    lines.append(f"Plan for {plan['config']} (backend {plan['backend']}; no Azure calls were made)")
    lines.append("")
    lifecycle = model["lifecycle"]
    lines.append(f"Model     {model['registry_name']}  {model['id']}")
    lines.append(
        f"          context {model['context_length']:,} tokens, lifecycle {lifecycle['status']} "
        f"(as of {lifecycle['as_of']})"
    )
    if model.get("hyperparameters"):
        hp = ", ".join(f"{k}={v}" for k, v in model["hyperparameters"].items())
        defaults = (
            f" (catalog defaults: {', '.join(model['defaults_used'])})" if model["defaults_used"] else ""
        )
        lines.append(f"          hyperparameters {hp}{defaults}")
    for role in ("train", "validation"):
        info = data.get(role)
        if not info:
            continue
        parts = [f"{info.get('examples', '?')} examples"]
        if info.get("tokens") is not None:
            parts.append(f"{info['tokens']:,} tokens")
        parts.append(f"sha256 {info['sha256'][:12]}")
        lines.append(f"Data      {role:<10} {_shown(info['path'], cwd)}  " + ", ".join(parts))
    if data.get("split"):
        lines.append(
            f"          automatic split: {data['split']['fraction']:g} held out, seed {data['split']['seed']}"
        )
    if tokens.get("billed") is not None:
        label = "exact" if tokens["exact"] else "ESTIMATE (tokenizer not available)"
        lines.append(
            f"Tokens    billed {tokens['billed']:,} = {tokens['formula']} "
            f"({tokens['train']:,} x {tokens['epochs']:g}); {label}"
        )
    cost = plan.get("cost")
    if cost:
        parts = []
        if "training" in cost:
            parts.append(f"training {cost['training']:.2f} {cost['currency']}")
        if "hosting_per_hour" in cost:
            parts.append(
                f"hosting {cost['hosting_per_hour']:g} {cost['currency']}/h "
                f"(~{cost['hosting_per_month']:.2f} per month)"
            )
        lines.append("Cost      " + "; ".join(parts) + " (estimate from your prices)")
    else:
        lines.append("Cost      not estimated (no prices in job.yaml)")
    lines.append("")
    cfg_arg = shlex.quote(str(plan.get("config") or "job.yaml"))  # as the user typed it: pasteable
    lines.append("Actions (what `phi3ft submit` would do, in order)")
    for action in plan["actions"]:
        lines.append(f"  {action['step']}. {action['summary']}")
    if any(a["kind"] in ("ensure_hub", "ensure_project") for a in plan["actions"]):
        lines.append(
            f"     (whether the hub and project exist cannot be known offline: `phi3ft check --config {cfg_arg}`)"
        )
    if plan.get("then"):
        lines.append("Then (not run by submit)")
        for action in plan["then"]:
            lines.append(f"  {action['step']}. {action['summary']}")
    findings = [*plan["blockers"], *plan["warnings"], *plan["notes"]]
    if findings:
        lines.append("")
    for finding in findings:
        where = f" [line {finding['line']}]" if finding.get("line") else ""
        tag = {"blocker": "BLOCKER", "warning": "warning", "info": "note"}[finding["severity"]]
        lines.append(f"{tag}: {finding['message']}{where}")
        if finding.get("hint"):
            lines.append(f"  fix: {finding['hint']}")
    validation = plan.get("validation") or {}
    if validation.get("issues"):
        lines.append("")
        lines.append(
            f"Data problems: {validation['errors']} error(s), {validation['warnings']} warning(s) "
            "(full report: phi3ft validate)"
        )
        estimated = any(w.get("code") == "tokens-estimated" for w in plan.get("warnings") or [])
        for issue in validation["issues"]:
            where = f"{Path(str(issue.get('file') or '')).name}:{issue['line']}" if issue.get("line") else ""
            message = issue["message"]
            if issue["rule"] == "T01" and estimated:  # its reason is the tokens-estimated warning above
                message = "token checks skipped (reason above)"
            lines.append(f"  {issue['severity']} {issue['rule']} {where} {message}".rstrip())
    lines.append("")
    verdict = {
        "ok": f"Plan OK (exit 0). Next: phi3ft check --config {cfg_arg}, then phi3ft submit --config {cfg_arg}",
        "invalid": "Data invalid (exit 3): fix the problems above (phi3ft validate shows all of them).",
        "blocked": "The plan cannot work (exit 4): see BLOCKER above.",
    }[plan["status"]]
    if plan["status"] == "ok" and any(f.get("code") == "placeholder-subscription" for f in findings):
        verdict = (
            "Plan OK (exit 0) as an offline preview. Next: set your subscription (see the warning above), "
            f"then phi3ft check --config {cfg_arg}, then phi3ft submit --config {cfg_arg}"
        )
    lines.append(verdict)
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init_cmd)
    app.command("schema")(schema_cmd)
    app.command("plan")(plan_cmd)
    app.command("models")(models_cmd)
