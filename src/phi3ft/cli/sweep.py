"""Sweeps on the command line: ``submit``/``watch``/``cancel`` of a whole sweep, ``plan``'s sweep section and
``phi3ft compare`` (per point final train and validation loss, the best by validation loss marked).

``submit``, ``watch``, ``cancel``, ``plan``, ``deploy --best`` and ``delete --sweep`` call the helpers here,
so the single-job code paths stay as they were.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phi3ft.cli.check import AuthOpt
from phi3ft.cli.options import JsonOpt
from phi3ft.output import esc

if TYPE_CHECKING:
    from phi3ft.cli.context import AppContext
    from phi3ft.config import JobSpec
    from phi3ft.records import SweepRecord

SweepArg = Annotated[
    str | None,
    typer.Argument(
        help="Sweep name; default: the last sweep submitted from this folder.", show_default=False
    ),
]


def _fmt_values(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# ---- plan --------------------------------------------------------------------------------------------------
def plan_sweep(
    app_ctx: AppContext, cfg: JobSpec, *, config_label: str, tokenizer: Path | None, json: bool, today: Any
) -> int:
    """``phi3ft plan`` for a config with ``sweep:``: every point, its values and names, billed tokens in total."""
    from phi3ft.plan import build_plan
    from phi3ft.sweep import expand, sweep_plan

    out = app_ctx.output
    sweep = expand(cfg)
    with out.status(f"Validating data and counting tokens for {len(sweep.points)} sweep points..."):
        plans = [
            build_plan(p.cfg, today=today, tokenizer=tokenizer, env=app_ctx.env, fingerprint_of=p.fingerprint)
            for p in sweep.points
        ]
    summary = sweep_plan(sweep, plans)
    worst = max(int(p.exit_code) for p in plans)
    if json:
        first = plans[0].to_dict()
        first["config"] = config_label
        first["sweep"] = summary
        out.emit_json(first)
        return worst
    lines = [
        f"Sweep {summary['name']} for {config_label} (backend {summary['backend']}; no Azure calls were made)",
        f"{len(sweep.points)} points, at most {summary['max_parallel']} training at once",
        "",
    ]
    lines.extend(_points_table(summary["points"], with_tokens=True))
    lines.append("")
    if summary["billed_tokens"] is not None:
        label = "exact" if summary["exact_tokens"] else "ESTIMATE (tokenizer not available)"
        lines.append(f"Tokens    billed {summary['billed_tokens']:,} in total over all points; {label}")
    if summary["cost"] is not None:
        lines.append(
            f"Cost      training {summary['cost']:.2f} {summary['currency']} in total (estimate from your prices)"
        )
    else:
        lines.append("Cost      not estimated (no prices in job.yaml)")
    findings: dict[tuple[str, str], Any] = {}
    for plan in plans:
        for f in plan.findings:
            findings.setdefault((f.severity, f.message), f)
    for (severity, message), f in findings.items():
        tag = {"blocker": "BLOCKER", "warning": "warning", "info": "note"}[severity]
        lines.append(f"{tag}: {message}")
        if f.hint:
            lines.append(f"  fix: {f.hint}")
    lines.append("")
    lines.append(
        f"Plan OK (exit 0). Next: phi3ft submit --config {shlex.quote(config_label)} (submits every point), "
        "then phi3ft compare"
        if worst == 0
        else f"The plan cannot work as it is (exit {worst}): see above; `phi3ft plan` without sweep: shows details."
    )
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    return worst


def _points_table(points: list[dict[str, Any]], *, with_tokens: bool = False) -> list[str]:
    header = ["#", "VALUES", "JOB"] + (["BILLED TOKENS", "COST"] if with_tokens else [])
    rows = [header]
    for p in points:
        row = [str(p["index"]), _fmt_values(p["values"]), str(p["job"])]
        if with_tokens:
            row.append("?" if p.get("billed_tokens") is None else f"{p['billed_tokens']:,}")
            row.append("-" if p.get("cost") is None else f"{p['cost']:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# ---- submit / watch ----------------------------------------------------------------------------------------
def submit_sweep_cmd(
    app_ctx: AppContext,
    cfg: JobSpec,
    backend: Any,
    store: Any,
    *,
    yes: bool,
    detach: bool,
    timeout: float | None,
    options: Any,
    on_event: Any,
    json: bool,
) -> None:
    from phi3ft.sweep import submit_sweep

    out = app_ctx.output

    def confirm(summary: dict[str, Any]) -> bool:
        out.info(f"[bold]Sweep {esc(summary['name'])}[/bold]: {len(summary['points'])} points", markup=True)
        for line in _points_table(summary["points"], with_tokens=True):
            out.err.print(line, markup=False, highlight=False)
        if summary["billed_tokens"] is not None:
            out.info(f"  Billed training tokens, all points: {summary['billed_tokens']:,}")
        if summary["cost"] is not None:
            out.info(f"  Training cost, all points: {summary['cost']} {summary['currency']}")
        where = "on this machine" if cfg.runs_locally else "in Azure"
        return bool(out.confirm(f"Train these {len(summary['points'])} points {where}", assume_yes=yes))

    sweep, start, _ = submit_sweep(cfg, backend, store, confirm=confirm, options=options, on_event=on_event)
    rows = None
    if not detach:
        rows = watch_sweep_cmd(app_ctx, backend, store, sweep.name, timeout, sweep=sweep, start=start)
    record = store.get("sweep", sweep.name) or {}
    if json:
        out.emit_json(
            {
                "sweep": sweep.name,
                "backend": sweep.backend,
                "max_parallel": sweep.max_parallel,
                "points": rows if rows is not None else record.get("points") or [],
                "detached": detach,
            }
        )
    if detach:
        pending = sum(1 for p in record.get("points") or [] if p.get("status") == "Pending")
        more = f"; {pending} wait their turn (`phi3ft watch --sweep` starts them)" if pending else ""
        out.info(f"Sweep {sweep.name} submitted{more}.")
        out.hint(f"Follow it: phi3ft watch --sweep {sweep.name}   Compare: phi3ft compare {sweep.name}")
    else:
        out.success(f"Sweep {sweep.name}: all {len(sweep.points)} points Completed.")
        out.hint(f"Compare: phi3ft compare {sweep.name}   Deploy the best: phi3ft deploy --best")


def resume_starter(app_ctx: AppContext, record: SweepRecord, backend: Any, store: Any) -> tuple[Any, Any]:
    """``(sweep, start)`` to start a sweep's pending points from ``watch`` (the config of the submit)."""
    if not any(p.status == "Pending" for p in record.points):
        return None, None
    from phi3ft import jobs as svc
    from phi3ft.config import load_job_config
    from phi3ft.errors import UsageError
    from phi3ft.sweep import expand

    source = record.config
    if not source or not Path(str(source)).is_file():
        raise UsageError(
            f"Sweep {record.name} has points waiting to start, and its job.yaml ({source}) is gone.",
            "Re-run `phi3ft submit --config job.yaml` from the original config to start them.",
        )
    cfg = svc.apply_backend_override(
        load_job_config(Path(str(source)), env=app_ctx.env), str(record.backend or "") or None
    )
    sweep = expand(cfg)
    out = app_ctx.output

    def start(point: Any) -> Any:
        options = svc.SubmitOptions(skip_checks=True, env=dict(app_ctx.env))
        gen = svc.submit(point.cfg, backend, store, confirm=lambda _plan: True, options=options)
        result = svc.run_submit(gen, lambda event: out.info(event.message) if event.kind == "done" else None)
        return result.job

    return sweep, start


def watch_sweep_cmd(
    app_ctx: AppContext,
    backend: Any,
    store: Any,
    name: str,
    timeout: float | None,
    *,
    sweep: Any = None,
    start: Any = None,
) -> list[dict[str, Any]]:
    """One table for every point: live on a TTY, a line per status change otherwise; Ctrl+C detaches."""
    from phi3ft import sweep as svc
    from phi3ft.errors import Interrupted

    out = app_ctx.output
    if sweep is None:
        sweep, start = resume_starter(app_ctx, svc.resolve_sweep(store, name), backend, store)
    live: Any = None
    if out.interactive and out.err.is_terminal and not out.quiet:
        from rich.live import Live

        live = Live(console=out.err, auto_refresh=False, transient=False)

    def on_update(update: svc.SweepUpdate) -> None:
        if live is not None:
            live.update(sweep_table(update.rows, elapsed=update.elapsed_s), refresh=True)
            return
        for row in update.rows:
            if row["job"] in update.changed:
                out.info(
                    f"{row['job']}: {row['status']}  {_fmt_values(row['values'])}  "
                    f"train_loss {_fmt_loss(row['train_loss'])}  eval_loss {_fmt_loss(row['eval_loss'])}"
                )

    try:
        if live is not None:
            live.start()
        return svc.watch_sweep(
            backend,
            store,
            sweep,
            name,
            start=start,
            timeout=timeout,
            clock=app_ctx.clock,
            sleep=app_ctx.sleep,
            on_update=on_update,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"Detached from sweep {name}; its jobs keep running.",
            f"Re-attach: phi3ft watch --sweep {name}   Stop them: phi3ft cancel --sweep {name}",
        ) from None
    finally:
        if live is not None:
            live.stop()


def sweep_table(rows: list[dict[str, Any]], *, elapsed: float | None = None) -> Any:
    """The sweep watch table (a Rich renderable): a row per point."""
    from rich.table import Table

    from phi3ft.cli.jobs import _fmt_elapsed

    title = f"elapsed {_fmt_elapsed(elapsed)}" if elapsed is not None else None
    table = Table(box=None, pad_edge=False, title=title, title_justify="left")
    for col in ("#", "JOB", "STATUS", "VALUES", "TRAIN LOSS", "VALIDATION LOSS"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["index"]),
            str(row["job"]),
            str(row["status"]),
            _fmt_values(row["values"]),
            _fmt_loss(row.get("train_loss")),
            _fmt_loss(row.get("eval_loss")),
        )
    return table


def cancel_sweep_cmd(app_ctx: AppContext, backend: Any, store: Any, record: SweepRecord, json: bool) -> None:
    """Cancel every point still running; pending points will not start."""
    from phi3ft import jobs as svc
    from phi3ft.sweep import PENDING, update_point
    from phi3ft.targets.base import TERMINAL_STATUSES

    out = app_ctx.output
    results = []
    for p in record.points:
        status = str(p.status or PENDING)
        if status == PENDING:
            update_point(store, str(record.name), int(p.index), status="Canceled")
            results.append({"job": p.job, "status": "Canceled", "was": PENDING})
            continue
        info = backend.get_job(str(p.job), with_error=False)
        if info.status not in TERMINAL_STATUSES:
            info = svc.cancel(backend, store, str(p.job))
        update_point(store, str(record.name), int(p.index), status=info.status)
        results.append({"job": info.name, "status": info.status, "was": status})
    if json:
        out.emit_json({"sweep": record.name, "points": results})
        return
    for r in results:
        out.success(f"{r['job']}: {r['status']}")


def best_job_of(app_ctx: AppContext, store: Any, name: str | None, open_backend: Any) -> str:
    """``deploy --best``: the job of the sweep's point with the lowest validation loss."""
    from phi3ft import sweep as svc

    record = svc.resolve_sweep(store, name)
    jobs = svc.point_jobs(record)
    backend = open_backend(jobs[0] if jobs else None)
    best = svc.best_job(svc.compare(backend, store, record))
    app_ctx.output.info(f"Best point of sweep {record.name} by validation loss: {best}")
    return best


def delete_selection_jobs(store: Any, name: str | None) -> tuple[str, list[str]]:
    """``delete --sweep``: the sweep's name and its started points' jobs."""
    from phi3ft import sweep as svc

    record = svc.resolve_sweep(store, name)
    return str(record.name), svc.point_jobs(record)


# ---- compare -----------------------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        ctx: typer.Context,
        sweep: SweepArg = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Compare a sweep's points: final train and validation loss per point, the best (lowest validation loss) marked.

        The losses are the jobs' own metrics, as `phi3ft metrics JOB` shows them. Deploy the best with
        `phi3ft deploy --best`.
        """
        from phi3ft import sweep as svc
        from phi3ft.cli.jobs import _backend, _store

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        record = svc.resolve_sweep(store, sweep)
        jobs = svc.point_jobs(record)
        backend = _backend(app_ctx, config=None, job=jobs[0] if jobs else None, auth=auth)
        report = svc.compare(backend, store, record)
        if json:
            out.emit_json(report)
            return
        out.print(render_compare(report), markup=False, highlight=False, soft_wrap=True)


def render_compare(report: dict[str, Any]) -> str:
    """Plain-text comparison: one row per point, ``*`` on the best."""
    header = ["", "#", "JOB", "STATUS", "VALUES", "STEPS", "TRAIN LOSS", "VALIDATION LOSS"]
    rows = [header]
    for r in report["points"]:
        rows.append(
            [
                "*" if r["best"] else "",
                str(r["index"]),
                str(r["job"]),
                str(r["status"]),
                _fmt_values(r["values"]),
                str(r["steps"]),
                _fmt_loss(r["train_loss"]),
                _fmt_loss(r["eval_loss"]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"Sweep {report['sweep']} (backend {report['backend']})"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if report["best"]:
        lines.append(f"* best by validation loss: {report['best']}   Deploy it: phi3ft deploy --best")
    else:
        lines.append("No point has completed with a validation loss yet.")
    return "\n".join(lines)


# ---- delete ------------------------------------------------------------------------------------------------
def delete_plan_of_sweep(store: Any, backend: Any, selection: Any) -> tuple[str, Any]:
    """``delete --sweep``: each started point's plan (its endpoints and model, plus what the flags add),
    merged in delete order; points still running are canceled first."""
    from dataclasses import replace

    from phi3ft import sweep as sweep_svc
    from phi3ft.targets.azureml import endpoints as svc
    from phi3ft.targets.base import TERMINAL_STATUSES

    record = sweep_svc.resolve_sweep(store, selection.job)
    steps: list[Any] = []
    for job in sweep_svc.point_jobs(record):
        rec = store.get("job", job) or {}
        if rec and str(rec.get("status") or "") not in TERMINAL_STATUSES:
            steps.append(svc.DeleteStep("job", job, None, None, job))
        if not rec:
            continue
        for step in svc.plan_delete(store, backend, replace(selection, job=job)).steps:
            if not any(s.kind == step.kind and s.record_key == step.record_key for s in steps):
                steps.append(step)
    steps.sort(key=lambda s: svc.DELETE_ORDER.index(s.kind))
    return str(record.name), svc.DeletePlan(steps)


def forget_sweeps(store: Any, name: str | None) -> None:
    """Remove sweep records from the ledger: ``name``, or (``delete --all``) every one."""
    from phi3ft.targets.azureml.endpoints import ledger_items

    for key, _ in ledger_items(store, "sweep"):
        if name is None or key == name:
            store.remove("sweep", key)
