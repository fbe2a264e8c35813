"""Sweeps: several settings, one command (job.yaml ``sweep:``).

A sweep expands to points: every combination of its lists, each the base config with that point's
values. A point is an ordinary job: its name comes from its own training hash (:func:`derived_names`), so
``submit`` is idempotent per point (a re-run re-attaches) and hub, project and data assets are shared
(get-or-create, content-addressed). At most ``max_parallel`` points train at once (default: 1 on the local
backend, all on Azure); the others wait as ``Pending`` and :func:`watch_sweep` starts them as slots free.

Ledger: one ``sweep`` record per sweep (``name, backend, config, max_parallel, points``), each point
``{index, values, job, output_model, endpoint, status}``; the points' jobs are ordinary ``job`` records.

Service module: never prints.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3ft.config import output_dir_configured
from phi3ft.errors import Phi3ftError, PrerequisiteError, RemoteJobFailed, UsageError
from phi3ft.state import StateStore
from phi3ft.targets.base import FAILED_STATUSES, TERMINAL_STATUSES, JobInfo

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobConfig, JobSpec
    from phi3ft.records import SweepRecord

PENDING = "Pending"
#: Sweep key -> where it goes in the config, per backend family.
_SERVERLESS_TARGET = {"learning_rate": "learning_rate", "epochs": "epochs", "batch_size": "batch_size"}
_TRAINER_TARGET = {
    "learning_rate": "learning_rate",
    "epochs": "epochs",
    "batch_size": "per_device_batch_size",
}


@dataclass
class SweepPoint:
    index: int
    values: dict[str, Any]
    cfg: JobSpec  # the point's config (no sweep: block)
    job: str
    output_model: str
    endpoint: str
    #: The point's hashes and names (the sweep's data files are hashed once for all points).
    fingerprint: Fingerprint | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "values": dict(self.values),
            "job": self.job,
            "output_model": self.output_model,
            "endpoint": self.endpoint,
        }


@dataclass
class Sweep:
    name: str
    backend: str
    max_parallel: int
    points: list[SweepPoint]


def _apply(cfg: JobConfig, values: dict[str, Any]) -> None:
    if cfg.azure_finetune:
        for key, value in values.items():
            target = _SERVERLESS_TARGET[key]
            setattr(cfg.hyperparameters, target, int(value) if key != "learning_rate" else float(value))
        return
    for key, value in values.items():
        if key in ("r", "alpha"):
            setattr(cfg.training.lora, key, int(value))
        else:
            target = _TRAINER_TARGET[key]
            setattr(cfg.training, target, int(value) if key == "batch_size" else float(value))


def expand(cfg: JobSpec) -> Sweep:
    """The sweep's points, in the order of the lists (first key slowest). ``cfg.sweep`` must be set."""
    from phi3ft import config as config_mod

    spec = cfg.sweep
    if spec is None:
        raise UsageError("job.yaml has no sweep: block.", "Add one (see README, 'Sweeps').")
    problems = config_mod.sweep_problems(cfg)  # again: --backend may have changed the backend
    if problems:
        path, message = problems[0]
        line = cfg.line_of(*path, nearest=True)
        raise config_mod.JobConfigError(
            [config_mod.ConfigIssue(str(cfg.source or "job.yaml"), line, path, message)]
        )
    varied = spec.varied()
    keys = list(varied)
    points: list[SweepPoint] = []
    data = config_mod.data_hashes(cfg)  # the points share the data files: hash them once
    for index, combo in enumerate(itertools.product(*(varied[k] for k in keys)), start=1):
        values = {
            k: int(v) if k != "learning_rate" and float(v).is_integer() else v
            for k, v in zip(keys, combo, strict=True)
        }
        point = cfg.model_copy(deep=True)
        point.sweep = None
        _apply(point, values)
        digest = config_mod.training_hash(point, hashes=data)[:8]
        # names the user fixed in job.yaml get the point's hash, so points never share a model/endpoint
        if cfg.output.model_name:
            point.output.model_name = f"{cfg.output.model_name[:240]}-{digest}"
        if cfg.deploy.endpoint_name:
            point.deploy.endpoint_name = f"{cfg.deploy.endpoint_name[:43]}-{digest}"
        if not point.azure_finetune and output_dir_configured(cfg):
            point.training.output_dir = Path(cfg.training.output_dir) / f"point-{digest}"
        fp = config_mod.fingerprint(point, data=data)
        names = fp.names
        points.append(SweepPoint(index, values, point, names.job, names.output_model, names.endpoint, fp))
    joined = "\n".join(p.job for p in points)
    short = config_mod._slug(cfg.profile.name.removesuffix("-instruct"), 16)
    name = f"sweep-{short}-{hashlib.sha256(joined.encode()).hexdigest()[:10]}"
    default_parallel = 1 if cfg.runs_locally else len(points)
    return Sweep(name, cfg.backend, int(spec.max_parallel or default_parallel), points)


# ---- plan ---------------------------------------------------------------------------------------------------
def sweep_plan(sweep: Sweep, plans: list[Any]) -> dict[str, Any]:
    """The sweep part of ``plan --json``: every point, its values and names, the billed tokens in total."""
    rows = []
    billed_total: int | None = 0
    cost_total: float | None = 0.0
    currency = None
    exact = True
    for point, plan in zip(sweep.points, plans, strict=True):
        doc = plan.to_dict()
        tokens = doc.get("tokens") or {}
        billed = tokens.get("billed")
        exact = exact and bool(tokens.get("exact"))
        cost = (doc.get("cost") or {}).get("training")
        currency = (doc.get("cost") or {}).get("currency", currency)
        billed_total = None if billed is None or billed_total is None else billed_total + int(billed)
        cost_total = None if cost is None or cost_total is None else cost_total + float(cost)
        rows.append({**point.to_dict(), "billed_tokens": billed, "cost": cost, "status": doc["status"]})
    return {
        "name": sweep.name,
        "backend": sweep.backend,
        "max_parallel": sweep.max_parallel,
        "points": rows,
        "billed_tokens": billed_total,
        "exact_tokens": exact,
        "cost": None if cost_total is None else round(cost_total, 4),
        "currency": currency,
    }


# ---- ledger ---------------------------------------------------------------------------------------------------
def record_sweep(store: StateStore, sweep: Sweep, *, config: str | None, where: dict[str, Any]) -> None:
    current = store.get("sweep", sweep.name) or {}
    known = {int(p.get("index", 0)): p for p in current.get("points") or []}
    points = []
    for point in sweep.points:
        old = known.get(point.index, {})
        points.append(
            {**point.to_dict(), "job": old.get("job") or point.job, "status": old.get("status") or PENDING}
        )
    store.record(
        "sweep",
        sweep.name,
        backend=sweep.backend,
        config=config,
        max_parallel=sweep.max_parallel,
        points=points,
        created_by_phi3ft=True,
        **where,
    )


def update_point(store: StateStore, sweep_name: str, index: int, **fields: Any) -> None:
    record = store.get("sweep", sweep_name) or {}
    points = [dict(p) for p in record.get("points") or []]
    for p in points:
        if int(p.get("index", 0)) == index:
            p.update(fields)
    store.record("sweep", sweep_name, points=points)


def resolve_sweep(store: StateStore, name: str | None) -> SweepRecord:
    """The sweep record named ``name``, or the most recently created one."""
    from phi3ft.records import SweepRecord, get_record, list_records

    if name:
        record = get_record(store, SweepRecord, name)
        if record is None:
            raise UsageError(
                f"The local ledger has no sweep {name!r}.",
                "List sweeps with `phi3ft compare` (the latest) or run `phi3ft submit` on a job.yaml with sweep:.",
            )
        return record
    records = sorted(list_records(store, SweepRecord), key=lambda r: str(r.created_at or ""))
    if not records:
        raise UsageError(
            "No sweep was submitted from this folder.",
            "Add a sweep: block to job.yaml and run `phi3ft submit --config job.yaml`.",
        )
    return records[-1]


def is_sweep(store: StateStore, name: str | None) -> bool:
    return bool(name) and store.get("sweep", str(name)) is not None


def point_jobs(record: SweepRecord) -> list[str]:
    """Job names of the points that were started (pending ones have none yet)."""
    return [str(p.job) for p in record.points if p.status != PENDING and p.job]


# ---- submit and watch ---------------------------------------------------------------------------------------
StartPoint = Callable[[SweepPoint], JobInfo]


def start_points(sweep: Sweep, store: StateStore, start: StartPoint) -> list[JobInfo]:
    """Submit points in order until ``max_parallel`` are active; re-attaches to those already there."""
    record = store.get("sweep", sweep.name) or {}
    recorded = {int(p.get("index", 0)): p for p in record.get("points") or []}
    active = 0
    started: list[JobInfo] = []
    cap = sweep.max_parallel
    for point in sweep.points:
        old = recorded.get(point.index, {})
        if old.get("status") not in (None, PENDING):
            status = str(old.get("status"))
            if status not in TERMINAL_STATUSES:
                active += 1
            continue
        if active >= cap:
            continue
        job = start(point)
        update_point(store, sweep.name, point.index, job=job.name, status=job.status)
        started.append(job)
        if job.status not in TERMINAL_STATUSES:
            active += 1
    return started


def submit_sweep(
    cfg: JobSpec,
    backend: Any,
    store: StateStore,
    *,
    confirm: Callable[[dict[str, Any]], bool],
    options: Any,
    on_event: Callable[[Any], None],
    build_plan: Callable[..., Any] | None = None,
) -> tuple[Sweep, StartPoint, list[Any]]:
    """Expand, plan every point (offline), then submit up to ``max_parallel`` of them.

    The first point that starts runs the full submit (validation, prerequisite checks, hub, project, data)
    and asks ``confirm(sweep plan)`` once, before anything is created; the others reuse what it made.
    Returns the sweep, the function that starts a point (``watch_sweep`` starts pending ones with it), and
    the points' plans.
    """
    from dataclasses import replace
    from datetime import date

    from phi3ft import jobs as svc

    if build_plan is None:
        from phi3ft.plan import build_plan as build_plan_default

        build_plan = build_plan_default
    sweep = expand(cfg)
    plans = [
        build_plan(
            p.cfg,
            today=options.today or date.today(),
            tokenizer=options.tokenizer,
            env=options.env,
            fingerprint_of=p.fingerprint,
        )
        for p in sweep.points
    ]
    summary = sweep_plan(sweep, plans)
    azure = cfg.azure
    where = (
        {
            "subscription_id": str(azure.subscription_id),
            "resource_group": str(azure.resource_group),
            "project": azure.project.name,
        }
        if azure is not None and not cfg.runs_locally
        else {}
    )
    state = {"confirmed": False}
    config = str(Path(cfg.source).resolve()) if cfg.source else None  # watch --sweep reloads it from anywhere

    def start(point: SweepPoint) -> JobInfo:
        def ask(_plan: Any) -> bool:
            if state["confirmed"]:
                return True
            state["confirmed"] = bool(confirm(summary))
            if state["confirmed"]:  # the ledger knows the sweep before its first job exists
                record_sweep(store, sweep, config=config, where=where)
            return state["confirmed"]

        opts = replace(options, skip_checks=options.skip_checks or state["confirmed"])
        plan = plans[point.index - 1]
        gen = svc.submit(
            point.cfg, backend, store, confirm=ask, options=opts, build_plan=lambda *a, **k: plan
        )
        result = svc.run_submit(gen, on_event)
        return result.job

    # like a single job's re-run: a failed or canceled point gets a new attempt (all of them with --force)
    for p in (store.get("sweep", sweep.name) or {}).get("points") or []:
        if options.force or str(p.get("status")) in FAILED_STATUSES:
            update_point(store, sweep.name, int(p["index"]), status=PENDING)
    start_points(sweep, store, start)
    return sweep, start, plans


@dataclass(frozen=True)
class SweepUpdate:
    rows: list[dict[str, Any]]
    elapsed_s: float
    changed: list[str] = field(default_factory=list)  # jobs whose status changed in this poll


def watch_sweep(
    backend: Any,
    store: StateStore,
    sweep: Sweep | None,
    name: str,
    *,
    start: StartPoint | None,
    timeout: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_update: Callable[[SweepUpdate], None] | None = None,
    schedule: Iterator[float] | None = None,
) -> list[dict[str, Any]]:
    """Poll every point until all ended, starting pending points as slots free (needs ``sweep``+``start``).

    Returns the final rows; raises :class:`RemoteJobFailed` (exit 5) when a point did not complete.
    """
    from phi3ft.jobs import METRICS_EVERY_S, _schedule_of, latest_losses
    from phi3ft.polling import wait_until

    t0 = clock()
    last: dict[str, str] = {}
    # losses cost requests on Azure: at most once per ``metrics_every_s`` per point, and once at its end
    metrics_every = float(getattr(backend, "metrics_every_s", METRICS_EVERY_S))
    losses: dict[str, tuple[float, str, dict[str, float]]] = {}  # job -> (read at, status then, latest)

    def latest_of(job: str, status: str) -> dict[str, float]:
        now = clock()
        seen = losses.get(job)
        if (
            seen is None
            or (status != seen[1] and status in TERMINAL_STATUSES)
            or now - seen[0] >= metrics_every
        ):
            seen = (now, status, latest_losses(backend, job))
            losses[job] = seen
        return seen[2]

    def fetch() -> list[dict[str, Any]]:
        if sweep is not None and start is not None:
            start_points(sweep, store, start)
        record = store.get("sweep", name) or {}
        rows: list[dict[str, Any]] = []
        changed: list[str] = []
        for p in record.get("points") or []:
            row = {"index": p.get("index"), "values": p.get("values") or {}, "job": p.get("job")}
            status = str(p.get("status") or PENDING)
            latest: dict[str, float] = {}
            if status != PENDING:
                if status not in TERMINAL_STATUSES:
                    status = backend.get_job(str(p["job"]), with_error=False).status
                    if status != p.get("status"):  # the ledger is written on changes only
                        update_point(store, name, int(p["index"]), status=status)
                        store.record("job", str(p["job"]), status=status)
                if status in ("Running", "Finalizing", "Completed"):
                    latest = latest_of(str(p["job"]), status)
            row["status"] = status
            row["train_loss"] = latest.get("train_loss")
            row["eval_loss"] = latest.get("eval_loss")
            if last.get(str(row["job"])) != status:
                changed.append(str(row["job"]))
                last[str(row["job"])] = status
            rows.append(row)
        if on_update is not None:
            on_update(SweepUpdate(rows, clock() - t0, changed))
        return rows

    rows = wait_until(
        fetch,
        lambda rs: all(r["status"] in TERMINAL_STATUSES for r in rs),
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        schedule=schedule or _schedule_of(backend),
        what=f"sweep {name}",
    )
    bad = [r for r in rows if r["status"] != "Completed"]
    if bad:
        listed = ", ".join(f"{r['job']} {r['status']}" for r in bad)
        raise RemoteJobFailed(
            f"{len(bad)} of {len(rows)} sweep points did not complete: {listed}",
            f"Compare the others: phi3ft compare {name}   Read why: phi3ft logs {bad[0]['job']}",
        )
    return rows


# ---- compare ------------------------------------------------------------------------------------------------
def compare(backend: Any, store: StateStore, record: SweepRecord) -> dict[str, Any]:
    """Per point: status, values, final train and validation loss (the job's metrics); the best by eval loss."""
    from phi3ft.jobs import metrics_table

    rows: list[dict[str, Any]] = []
    for p in record.points:
        row: dict[str, Any] = {
            "index": p.index,
            "values": p.values or {},
            "job": p.job,
            "output_model": p.output_model,
            "status": p.status or PENDING,
            "train_loss": None,
            "eval_loss": None,
            "steps": 0,
            "best": False,
        }
        if row["status"] != PENDING and row["job"]:
            try:
                info = backend.get_job(str(row["job"]), with_error=False)
                row["status"] = info.status
                if info.output_model_name:
                    row["output_model"] = info.output_model_name
                table = metrics_table(backend.job_metrics(str(row["job"])))
            except Phi3ftError as exc:
                row["error"] = exc.message
                table = []
            train = [r for r in table if "train_loss" in r]
            evals = [r for r in table if "eval_loss" in r]
            row["train_loss"] = train[-1]["train_loss"] if train else None
            row["eval_loss"] = evals[-1]["eval_loss"] if evals else None
            row["steps"] = table[-1]["step"] if table else 0
        rows.append(row)
    candidates = [r for r in rows if r["status"] == "Completed" and r["eval_loss"] is not None]
    best = min(candidates, key=lambda r: (r["eval_loss"], r["index"])) if candidates else None
    if best is not None:
        best["best"] = True
    return {
        "sweep": record.name,
        "backend": record.backend,
        "points": rows,
        "best": best["job"] if best else None,
        "best_by": "eval_loss",
    }


def best_job(report: dict[str, Any]) -> str:
    """The best point's job; :class:`PrerequisiteError` (exit 4) while no point has a validation loss."""
    if report.get("best"):
        return str(report["best"])
    points = report["points"]
    done = sum(1 for r in points if r["status"] == "Completed")
    failed = [r for r in points if r["status"] in FAILED_STATUSES]
    running = [r for r in points if r["status"] not in TERMINAL_STATUSES]
    hint = (
        f"Wait for it: phi3ft watch --sweep {report['sweep']}   Then: phi3ft compare {report['sweep']}"
        if running
        else f"Read why: phi3ft logs {failed[0]['job']}; fix, then `phi3ft submit` starts new attempts."
        if failed
        else "Give data.validation (or data.split) so the points report a validation loss."
    )
    raise PrerequisiteError(
        f"Sweep {report['sweep']} has no best point: {done} of {len(points)} completed with a "
        f"validation loss" + (f", {len(failed)} failed or canceled" if failed else "") + ".",
        hint,
    )
