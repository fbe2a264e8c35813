"""``phi3ft submit`` and the job commands: ``watch``, ``status``, ``list``, ``logs``, ``metrics``, ``cancel``.

Thin: parse, open the backend, call one service in ``phi3ft.jobs``, render. Progress goes to stderr;
with ``--json`` stdout carries exactly one JSON document.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from phi3ft.cli.check import AuthOpt
from phi3ft.cli.context import AppContext
from phi3ft.cli.options import JsonOpt, NoWaitOpt, YesOpt
from phi3ft.cli.tables import print_line, print_rows
from phi3ft.errors import DataError, Interrupted, NotFoundError, Phi3ftError, UsageError
from phi3ft.output import esc

if TYPE_CHECKING:
    from phi3ft.plan import Plan

JobArg = Annotated[
    str | None,
    typer.Argument(help="Job name; default: the last job submitted from this folder.", show_default=False),
]
OptionalConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="job.yaml naming the Azure project; default: the project recorded when the job was submitted.",
        dir_okay=False,
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        help="Stop watching after this long (90s, 15m, 2h); the job keeps running. Default: no limit.",
        show_default=False,
    ),
]

SweepOpt = Annotated[
    bool,
    typer.Option("--sweep", help="The argument names a sweep (default: the last sweep), not a job."),
]

_NEXT = "Follow it: phi3ft watch {n}   Status: phi3ft status {n}   Stop it: phi3ft cancel {n}"


# ---- helpers -----------------------------------------------------------------------------------------
def _store(app_ctx: AppContext) -> Any:
    from phi3ft.state import StateStore

    return StateStore(app_ctx.state_dir)


def _timeout(text: str | None) -> float | None:
    if text is None:
        return None
    from phi3ft.polling import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}", "Use e.g. --timeout 90s, 15m or 2h.") from None


def _backend(app_ctx: AppContext, *, config: Path | None, job: str | None, auth: str | None) -> Any:
    """Backend for a job: from --config, else from the ledger record of ``job`` (or of the last job)."""
    from phi3ft.connect import open_backend, open_backend_for_record

    if config is not None:
        from phi3ft.config import load_job_config

        return open_backend(app_ctx, load_job_config(config, env=app_ctx.env, check_files=False), auth=auth)
    from phi3ft.records import JobRecord, get_record

    store = _store(app_ctx)
    name = job or store.last_job
    record = get_record(store, JobRecord, name) if name else None
    if record is None:
        default = app_ctx.cwd / "job.yaml"
        if default.is_file():
            from phi3ft.config import load_job_config

            return open_backend(
                app_ctx, load_job_config(default, env=app_ctx.env, check_files=False), auth=auth
            )
        raise UsageError(
            f"Job {name!r} was not submitted from this folder, so phi3ft does not know its project."
            if name
            else "No job was submitted from this folder, so phi3ft does not know which project to ask.",
            "Pass --config job.yaml (the file naming the Azure project).",
        )
    return open_backend_for_record(app_ctx, record, auth=auth)


def _is_sweep(store: Any, name: str | None) -> bool:
    from phi3ft.sweep import is_sweep

    return is_sweep(store, name)


def _job_row(job: Any) -> dict[str, Any]:
    from phi3ft.jobs import job_to_dict

    return job_to_dict(job)


def _fmt_elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _render_plan(out: Any, plan: Plan) -> None:
    """Compact plan on stderr before the confirmation (``phi3ft plan`` shows every detail)."""
    out.info("[bold]Plan[/bold]", markup=True)
    for action in plan.actions:
        out.info(f"  {action.step}. {action.summary}")
    for action in plan.then:  # not run by submit: the job's model registration, `phi3ft deploy`
        out.info(f"  then: {action.summary}")
    tokens = plan.tokens
    if tokens.get("billed") is not None:
        label = "" if tokens.get("exact") else " (estimate)"
        out.info(f"  Billed training tokens: {tokens['billed']:,}{label} = {tokens.get('formula')}")
    cost = plan.cost
    if cost and cost.get("training") is not None:
        out.info(f"  Training cost: {cost['training']} {cost.get('currency', '')}")
    for finding in plan.warnings:
        out.warn(finding.message)


#: Without a terminal (CI logs), ``watch`` prints a line when the status changes and, while it does not,
#: a heartbeat line at most this often (seconds of the command's clock).
HEARTBEAT_S = 60.0


def _watch(app_ctx: AppContext, backend: Any, store: Any, name: str, timeout: float | None) -> Any:
    """Follow ``name`` with a live line; Ctrl+C detaches (exit 130) and says how to come back.

    On a TTY the spinner line shows the status, elapsed time and loss, redrawn in place; a line is printed
    above it when the status changes. Piped, a line is printed on each change plus a heartbeat at most every
    :data:`HEARTBEAT_S` seconds, never one per poll.
    """
    from phi3ft import jobs as svc

    out = app_ctx.output
    detach = "Ctrl+C detaches; the job keeps running"
    printed_at: list[float | None] = [None]
    live: list[Any] = [None]
    attached_to: list[str] = []  # the status seen first: a job already past the queue was never queued here

    def on_update(update: svc.WatchUpdate) -> None:
        if not attached_to:
            attached_to.append(update.job.status)
        loss = "  ".join(f"{k} {v:.4f}" for k, v in sorted(update.latest.items()))
        was_queued = attached_to[0] not in ("Running", "Finalizing", "Completed")
        queued = (
            f"  queued {_fmt_elapsed(update.queued_s)}" if update.queued_s is not None and was_queued else ""
        )
        line = f"{update.job.name}: {update.job.status}  elapsed {_fmt_elapsed(update.elapsed_s)}{queued}"
        if loss:
            line += f"  {loss}"
        status_line = live[0]
        if status_line is not None and status_line.live:
            status_line.update(line)
            if update.changed:
                out.info(line)
            return
        now = app_ctx.clock()
        if update.changed or printed_at[0] is None or now - printed_at[0] >= HEARTBEAT_S:
            printed_at[0] = now
            out.info(line)

    try:
        with out.status(f"Watching {name} ({detach})") as status_line:
            if status_line.live:  # the spinner's text becomes the status line: say how to detach once
                out.info(f"Watching {name} ({detach})")
            live[0] = status_line
            return svc.watch(
                backend,
                store,
                name,
                timeout=timeout,
                clock=app_ctx.clock,
                sleep=app_ctx.sleep,
                on_update=on_update,
            )
    except KeyboardInterrupt:
        where = "on this machine" if getattr(backend, "name", "") == "local" else "in Azure"
        raise Interrupted(
            f"Detached from job {name}; it keeps running {where}.",
            f"Re-attach: phi3ft watch {name}   Stop it (billing stops): phi3ft cancel {name}",
        ) from None


def _with_times(backend: Any, info: Any) -> Any:
    """Fill ``start_time``/``end_time`` of an ended job from run history when the job resource lacks them."""
    read = getattr(backend, "_run_details", None)
    if (info.start_time and (info.end_time or not info.terminal)) or not callable(read):
        return info
    try:
        details = read(info.name)
    except Phi3ftError:
        return info
    start = details.get("start_time_utc") or details.get("startTimeUtc")
    end = details.get("end_time_utc") or details.get("endTimeUtc")
    info.start_time = info.start_time or (str(start) if start else None)
    if info.terminal:
        info.end_time = info.end_time or (str(end) if end else None)
    return info


def _one_based(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MLflow numbers logged points from 0; logs and ``phi3ft train`` count optimizer steps from 1."""
    if rows and min(int(r["step"]) for r in rows) == 0:
        return [{**r, "step": int(r["step"]) + 1} for r in rows]
    return rows


def _train_output_dir(app_ctx: AppContext, job: str | None) -> Path | None:
    """``job`` as a ``phi3ft train`` output folder (it exists as a directory), else None."""
    if not job:
        return None
    path = Path(job)
    if not path.is_absolute():
        path = app_ctx.cwd / path
    if not path.is_dir():
        return None
    if not (path / "metrics.jsonl").is_file():
        raise DataError(
            f"{job} is a folder without metrics.jsonl, so it is not a `phi3ft train` output folder.",
            f"Train into it first: phi3ft train --output-dir {job}   (or pass a job name: phi3ft list)",
        )
    return path


def _train_metrics_rows(folder: Path) -> list[dict[str, Any]]:
    """``[{step, train_loss?, eval_loss?}]`` from the trainer's metrics.jsonl (one JSON object a line)."""
    import json as json_lib

    rows: dict[int, dict[str, Any]] = {}
    path = folder / "metrics.jsonl"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json_lib.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            raise DataError(
                f"{path}:{number} is not a metrics record (a JSON object with a step).",
                f"It is written by `phi3ft train`; re-run the training into {folder} to rewrite it.",
            ) from None
        row = rows.setdefault(step, {"step": step})
        for key in ("train_loss", "eval_loss"):
            if record.get(key) is not None:
                row[key] = float(record[key])
    return [rows[s] for s in sorted(rows)]


def _new_lines(seen: list[str], text: str) -> list[str]:
    """Lines of ``text`` not printed yet: the tail when the file grew, else the lines not seen before."""
    lines = text.splitlines()
    if lines[: len(seen)] == seen:
        return lines[len(seen) :]
    known = set(seen)
    return [line for line in lines if line not in known]


def _follow_logs(app_ctx: AppContext, backend: Any, store: Any, name: str) -> None:
    """``logs --follow``: print new log lines as they appear; end (like watch) when the job ends."""
    from phi3ft import jobs as svc

    out = app_ctx.output
    printed: dict[str, list[str]] = {}
    own = getattr(backend, "poll_schedule", None)
    if callable(own):
        schedule = own()
    else:
        from phi3ft.polling import default_schedule

        schedule = default_schedule()

    def drain() -> None:
        try:
            files = list(svc.logs(backend, name))
        except NotFoundError:  # run history has no record while the job is queued
            return
        for log_name, text in files:
            seen = printed.setdefault(log_name, [])
            fresh = _new_lines(seen, text)
            if not fresh:
                continue
            if len(printed) > 1 or len(files) > 1:
                out.info(f"[bold]==> {log_name} <==[/bold]")
            out.stdout.write("".join(line + "\n" for line in fresh))
            out.stdout.flush()
            seen.extend(fresh)

    try:
        while True:
            job = backend.get_job(name, with_error=False)
            drain()
            if job.terminal:
                break
            app_ctx.sleep(next(schedule))
    except KeyboardInterrupt:
        raise Interrupted(
            f"Stopped following the logs of {name}; the job keeps running.",
            f"Follow again: phi3ft logs {name} --follow   Stop it (billing stops): phi3ft cancel {name}",
        ) from None
    final = svc.finish(backend, store, job)
    out.success(f"Job {final.name} {final.status}.")


# ---- commands ----------------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    """Add submit, watch, status, list, logs, metrics and cancel to the root app."""

    @app.command("submit")
    def submit(
        ctx: typer.Context,
        config: Annotated[
            Path, typer.Option("--config", "-c", help="Path to job.yaml.", dir_okay=False)
        ] = Path("job.yaml"),
        yes: YesOpt = False,
        detach: Annotated[
            bool, typer.Option("--detach", help="Return once the job is created; print how to follow it.")
        ] = False,
        timeout: TimeoutOpt = None,
        skip_checks: Annotated[
            bool, typer.Option("--skip-checks", help="Skip `phi3ft check` (you ran it already).")
        ] = False,
        force: Annotated[
            bool,
            typer.Option(
                "--force",
                help="Submit a new job even if one for this config and data exists and did not fail.",
            ),
        ] = False,
        tokenizer: Annotated[
            Path | None,
            typer.Option(
                "--tokenizer", help="Tokenizer folder/file for exact token counts.", show_default=False
            ),
        ] = None,
        backend_name: Annotated[
            str | None,
            typer.Option(
                "--backend",
                help="Where training runs, overriding job.yaml's backend: serverless (Azure fine-tuning), "
                "local (this machine, detached), azureml-compute (your Azure ML GPU cluster).",
                show_default=False,
            ),
        ] = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        """Fine-tune: validate, check, confirm, then run on the configured backend and watch.

        serverless: ensure hub+project, upload, submit an Azure fine-tuning job. azureml-compute: the same
        plus a GPU cluster (scales to zero) and a command job running `phi3ft train`; the adapter is
        registered as a model. local: start `phi3ft train` detached on this machine (status, watch,
        logs, metrics and cancel work on it like on the others).

        Idempotent and resumable: everything is recorded in ./.phi3ft the moment it exists; re-running
        after a crash resumes, and re-running for the same config and data re-attaches to the job instead
        of paying twice (--force submits anew). With a sweep: block in job.yaml, one job per point (asked
        once; at most sweep.max_parallel at a time), then `phi3ft compare`. Exit codes: 3 invalid data, 4 prerequisites, 5 job failed,
        130 detached with Ctrl+C (the job keeps running).
        """
        from phi3ft import jobs as svc
        from phi3ft.config import load_job_config
        from phi3ft.connect import open_backend

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        wait = _timeout(timeout)
        cfg = svc.apply_backend_override(load_job_config(config, env=app_ctx.env), backend_name)
        backend = open_backend(app_ctx, cfg, auth=auth)
        store = _store(app_ctx)
        store.wait_for_lock = not no_wait

        def confirm(plan: Plan) -> bool:
            _render_plan(out, plan)
            question = (
                "Start this training job on this machine"
                if cfg.runs_locally
                else "Submit this fine-tuning job"
            )
            return bool(out.confirm(question, assume_yes=yes))

        def on_event(event: svc.SubmitEvent) -> None:
            if event.kind == "step":
                out.info(f"[dim]•[/dim] {esc(event.message)}", markup=True)
            elif event.kind == "done":
                out.success(event.message)
            elif event.kind == "warn":
                out.warn(event.message)
            else:
                out.info(event.message)

        options = svc.SubmitOptions(
            force=force,
            skip_checks=skip_checks,
            tokenizer=tokenizer,
            env=dict(app_ctx.env),
            clock=app_ctx.clock,
            sleep=app_ctx.sleep,
        )
        if cfg.sweep is not None:  # one job per point (phi3ft.sweep)
            from phi3ft.cli.sweep import submit_sweep_cmd

            submit_sweep_cmd(
                app_ctx, cfg, backend, store, yes=yes, detach=detach, timeout=wait, options=options,
                on_event=on_event, json=json,
            )  # fmt: skip
            return
        result = svc.run_submit(svc.submit(cfg, backend, store, confirm=confirm, options=options), on_event)
        job = result.job
        if detach or job.terminal:
            final = job
            if job.terminal and not detach:
                final = svc.finish(backend, store, job)
        else:
            final = _watch(app_ctx, backend, store, job.name, wait)
        from phi3ft.records import JobRecord, get_record

        svc.with_record(final, get_record(store, JobRecord, final.name))
        if json:
            doc = result.to_dict()
            doc["job"] = _job_row(final)
            doc["detached"] = detach
            out.emit_json(doc)
        if detach:
            out.info(f"Job {job.name} submitted ({job.status}).")
            out.hint(_NEXT.format(n=job.name))
        elif cfg.runs_locally:
            out.success(f"Job {final.name} {final.status}. Adapter: {final.output_model_name or '-'}")
            out.hint(f"Loss per step: phi3ft metrics {final.name}")
        else:
            out.success(f"Job {final.name} {final.status}. Output model: {final.output_model_name or '-'}")
            out.hint("Deploy it: phi3ft deploy")

    @app.command("watch")
    def watch(
        ctx: typer.Context,
        job: JobArg = None,
        config: OptionalConfigOpt = None,
        timeout: TimeoutOpt = None,
        sweep: SweepOpt = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Follow a job until it ends: phase, elapsed, time queued, latest loss.

        Polls fast, then slowly (2 s x5, then 10-60 s), honouring Retry-After. On a terminal one live line;
        piped, a line per status change plus a heartbeat at most once a minute. Ctrl+C detaches and the
        job keeps running. Exit 0 on Completed, 5 on Failed / Canceled / NotResponding. With --sweep (or a
        sweep's name) every point in one table, starting waiting points as others finish.
        """
        from phi3ft.jobs import resolve_job_name

        app_ctx: AppContext = ctx.obj
        app_ctx.output.json_mode = json
        store = _store(app_ctx)
        if sweep or _is_sweep(store, job):
            from phi3ft import sweep as sweep_svc
            from phi3ft.cli.sweep import watch_sweep_cmd

            record = sweep_svc.resolve_sweep(store, job)
            jobs = sweep_svc.point_jobs(record)
            backend = _backend(app_ctx, config=config, job=jobs[0] if jobs else None, auth=auth)
            rows = watch_sweep_cmd(app_ctx, backend, store, str(record.name), _timeout(timeout))
            if json:
                app_ctx.output.emit_json({"sweep": record.name, "points": rows})
            app_ctx.output.success(f"Sweep {record.name}: all {len(rows)} points Completed.")
            return
        name = resolve_job_name(store, job)
        backend = _backend(app_ctx, config=config, job=name, auth=auth)
        final = _watch(app_ctx, backend, store, name, _timeout(timeout))
        from phi3ft.jobs import with_record
        from phi3ft.records import JobRecord, get_record

        with_record(final, get_record(store, JobRecord, name))
        if json:
            app_ctx.output.emit_json(_job_row(final))
        app_ctx.output.success(f"Job {final.name} Completed. Output model: {final.output_model_name or '-'}")

    @app.command("status")
    def status(
        ctx: typer.Context,
        job: JobArg = None,
        config: OptionalConfigOpt = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Show a job's status once (and the service's error message if it failed)."""
        from phi3ft import jobs as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        name = svc.resolve_job_name(store, job)
        backend = _backend(app_ctx, config=config, job=name, auth=auth)
        info = _with_times(backend, svc.status(backend, store, name))
        if json:
            out.emit_json(_job_row(info))
            return
        print_line(out, f"{info.name}: {info.status}")
        for label, value in (
            ("created", info.created_at),
            ("started", info.start_time),
            ("ended", info.end_time),
            ("base model", info.model_id),
            ("output model", info.output_model_name),
            ("error", info.error),
            ("studio", info.studio_url),
        ):
            if value:
                print_line(out, f"  {label}: {value}")  # whole, on one line: URLs and ids are copied

    @app.command("list")
    def list_(
        ctx: typer.Context,
        config: OptionalConfigOpt = None,
        wide: Annotated[
            bool, typer.Option("--wide", help="Also show the base model, the backend and the job.yaml.")
        ] = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Fine-tuning jobs in the project, joined with what this folder submitted (LOCAL column).

        Names are printed whole at any terminal width and when piped (copy them into other commands).
        """
        from phi3ft import jobs as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        backend = _backend(app_ctx, config=config, job=None, auth=auth)
        try:
            rows = svc.list_jobs(backend, store)
        except NotFoundError:
            # the project is gone (`phi3ft delete --all`) or was never created: say that, not ARM's 404 text
            session = getattr(backend, "session", None)
            project = getattr(session, "workspace", None) or "the project"
            group = getattr(session, "resource_group", None)
            where = f" in resource group {group}" if group else ""
            again = f" --config {config}" if config is not None else ""
            raise NotFoundError(
                f"Project {project} does not exist{where} (deleted, or not created yet), so it has no jobs.",
                f"Create it by submitting a job: phi3ft submit{again}   (or fix azure.project in job.yaml)",
            ) from None
        if json:
            out.emit_json({"jobs": rows})
            return
        if not rows:
            out.info("No fine-tuning jobs in this project.")
            return
        headers = ["NAME", "STATUS", "CREATED", "OUTPUT MODEL", "LOCAL"]
        if wide:
            headers += ["BASE MODEL", "BACKEND", "CONFIG"]
        table_rows = []
        for row in rows:
            cells = [
                row["name"],
                row["status"] or "-",
                row["created_at"] or "-",
                row["output_model_name"] or "-",
                "yes" if row["local"] else "",
            ]
            if wide:
                record = store.get("job", row["name"]) or {}
                cells += [row.get("model_id") or "-", record.get("backend") or "-", row.get("config") or "-"]
            table_rows.append(cells)
        print_rows(out, headers, table_rows)

    @app.command("logs")
    def logs(
        ctx: typer.Context,
        job: JobArg = None,
        config: OptionalConfigOpt = None,
        follow: Annotated[
            bool,
            typer.Option(
                "--follow",
                "-f",
                help="Keep printing new log lines until the job ends (exit codes as watch; Ctrl+C stops "
                "following, the job keeps running).",
            ),
        ] = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Print the log files run history holds for a job (may be empty while it is queued).

        With --follow, new lines are printed as the job writes them, until it reaches a terminal state:
        exit 0 Completed, 5 Failed / Canceled / NotResponding, 130 Ctrl+C.
        """
        from phi3ft import jobs as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        name = svc.resolve_job_name(store, job)
        backend = _backend(app_ctx, config=config, job=name, auth=auth)
        if follow:
            if json:
                raise UsageError("--follow streams text; it cannot be combined with --json.",
                                 f"Follow it: phi3ft logs {name} --follow   All logs as JSON: phi3ft logs {name} --json")  # fmt: skip
            _follow_logs(app_ctx, backend, store, name)
            return
        files = list(svc.logs(backend, name))
        if json:
            out.emit_json({"job": name, "logs": [{"name": n, "text": t} for n, t in files]})
            return
        if not files:
            out.info(f"No logs for {name} yet.")
            return
        for log_name, text in files:
            out.info(f"[bold]==> {esc(log_name)} <==[/bold]", markup=True)
            out.stdout.write(text if text.endswith("\n") else text + "\n")
        out.stdout.flush()

    @app.command("metrics")
    def metrics(
        ctx: typer.Context,
        job: Annotated[
            str | None,
            typer.Argument(
                help="Job name, or the output folder of `phi3ft train` (reads its metrics.jsonl); "
                "default: the last job submitted from this folder.",
                show_default=False,
            ),
        ] = None,
        config: OptionalConfigOpt = None,
        plot: Annotated[
            Path | None,
            typer.Option("--plot", help="Also write a PNG chart of the losses to this file.", dir_okay=False),
        ] = None,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Training and validation loss per step (table, --json, or a --plot PNG).

        Steps count optimizer steps from 1, as `phi3ft logs` and `phi3ft train` do. JOB may be a
        `phi3ft train` output folder: its metrics.jsonl is read, nothing is asked of Azure.
        """
        from phi3ft import jobs as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        folder = _train_output_dir(app_ctx, job)
        if folder is not None:
            name = str(folder)
            rows = _train_metrics_rows(folder)
        else:
            store = _store(app_ctx)
            name = svc.resolve_job_name(store, job)
            backend = _backend(app_ctx, config=config, job=name, auth=auth)
            rows = _one_based(svc.metrics_table(svc.metrics(backend, name)))
        if plot is not None:
            from phi3ft.charts import write_metrics_chart

            write_metrics_chart(rows, plot, title=f"{name} loss")
            out.success(f"Chart written to {plot}")
        if json:
            out.emit_json({"job": name, "metrics": rows})
            return
        if not rows:
            out.info(f"No loss metrics for {name} yet.")
            return
        print_rows(
            out,
            ("STEP", "TRAIN LOSS", "VALIDATION LOSS"),
            [
                (
                    row["step"],
                    f"{row['train_loss']:.4f}" if row.get("train_loss") is not None else "",
                    f"{row['eval_loss']:.4f}" if row.get("eval_loss") is not None else "",
                )
                for row in rows
            ],
            right=(0, 1, 2),
        )

    @app.command("cancel")
    def cancel(
        ctx: typer.Context,
        job: JobArg = None,
        config: OptionalConfigOpt = None,
        sweep: SweepOpt = False,
        yes: YesOpt = False,
        auth: AuthOpt = None,
        json: JsonOpt = False,
    ) -> None:
        """Cancel a running job (billing stops); a job that already ended is left as it is.

        With --sweep (or a sweep's name): every running point; waiting points never start.
        """
        from phi3ft import jobs as svc

        app_ctx: AppContext = ctx.obj
        out = app_ctx.for_command(json=json)
        store = _store(app_ctx)
        if sweep or _is_sweep(store, job):
            from phi3ft import sweep as sweep_svc
            from phi3ft.cli.sweep import cancel_sweep_cmd

            record = sweep_svc.resolve_sweep(store, job)
            if job is None and not out.confirm(f"Cancel every point of sweep {record.name}?", assume_yes=yes):
                raise UsageError("Not canceled.")
            jobs = sweep_svc.point_jobs(record)
            backend = _backend(app_ctx, config=config, job=jobs[0] if jobs else None, auth=auth)
            cancel_sweep_cmd(app_ctx, backend, store, record, json)
            return
        name = svc.resolve_job_name(store, job)
        backend = _backend(app_ctx, config=config, job=name, auth=auth)
        if job is None:
            current = backend.get_job(name, with_error=False)
            if current.terminal:  # nothing to cancel: no question to answer
                if json:
                    out.emit_json(_job_row(current))
                    return
                out.success(f"Job {name} already ended ({current.status}); nothing to cancel.")
                return
            if not out.confirm(f"Cancel the last job, {name}?", assume_yes=yes):
                raise UsageError("Not canceled.")
        info = svc.cancel(backend, store, name)
        if json:
            out.emit_json(_job_row(info))
            return
        out.success(f"Job {info.name}: {info.status}")
