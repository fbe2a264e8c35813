"""Submit a fine-tune and follow it: submit, watch, status, list, logs, metrics, cancel.

Service module: never prints. ``submit`` yields :class:`SubmitEvent` progress and returns its
:class:`SubmitResult` as the generator's return value (use :func:`run_submit` to drive it with a callback);
``watch`` reports through ``on_update``. The CLI renders both.

``submit`` creates nothing itself: it validates, runs the target's checks, asks, then runs the plan's steps
(:mod:`phi3ft.steps`, the target's list in ``phi3ft.targets.<target>.steps``), the same list ``phi3ft plan``
prints. Resumability lives there: every resource is written to the local ledger
(:class:`phi3ft.state.StateStore`) the moment the backend returns it, and every step is get-or-create on the
remote side too, so a crash at any point loses nothing and the next ``submit`` re-attaches: hub and project
are looked up before creation, data assets are content-addressed (``name:sha``), and the job name is derived
from the config and data hashes (``phi3ft-<model>-<hash>``, then ``-2``, ``-3``... only after a failed attempt
or with ``force``).

Ledger records (kinds from :data:`phi3ft.state.KINDS`; ``deploy``/``delete`` read them):

- ``hub`` / ``project``: ``name, id, location, subscription_id, resource_group, created_by_phi3ft``
  (+ ``hub`` and ``workspace_id`` for projects);
- ``data`` keyed ``name:version``: ``asset_name, version, id, path, role, sha256, bytes, source, project``;
- ``job``: ``name, status, backend, project, hub, subscription_id, resource_group, location, model_id,
  output_model_name, output_model_version, endpoint_name, config_hash, training_hash, data_hashes,
  data_assets, config, phi3ft_version, created_by_phi3ft`` (``last_job`` points at it).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from phi3ft.errors import (
    DataError,
    Phi3ftError,
    PrerequisiteError,
    RemoteJobFailed,
    UsageError,
)
from phi3ft.polling import Poll, default_schedule, wait_until
from phi3ft.state import StateStore
from phi3ft.steps import DEFAULT_COMPUTE_TIMEOUT as DEFAULT_COMPUTE_TIMEOUT
from phi3ft.steps import MAX_ATTEMPTS as MAX_ATTEMPTS  # re-exported: both live in phi3ft.steps
from phi3ft.steps import SubmitEvent as SubmitEvent
from phi3ft.steps import SubmitOptions as SubmitOptions
from phi3ft.targets.base import FAILED_STATUSES, SUCCESS_STATUSES, TERMINAL_STATUSES, JobInfo, MetricPoint

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobConfig, JobSpec
    from phi3ft.plan import Plan, PlanAction
    from phi3ft.records import JobRecord

#: How often ``watch`` asks for the latest loss while a job runs (metrics cost extra requests).
METRICS_EVERY_S = 60.0


class JobBackend(Protocol):
    """What these services need from a backend (``AzureMLBackend``; ``tests/fakes/jobs.py``)."""

    name: str

    def ensure_hub(self, name: str, **kw: Any) -> Any: ...
    def ensure_project(self, name: str, **kw: Any) -> Any: ...
    def upload_data(self, path: Path, **kw: Any) -> Any: ...
    def resolve_registry_model(self, name: str, version: str | None = None) -> Any: ...
    def create_finetuning_job(self, **kw: Any) -> JobInfo: ...
    def find_job(self, name: str) -> JobInfo | None: ...
    def get_job(self, name: str, *, with_error: bool = True) -> JobInfo: ...
    def list_jobs(self, *, max_results: int = 100) -> list[JobInfo]: ...
    def cancel_job(self, name: str) -> JobInfo: ...
    def job_logs(self, name: str) -> Iterator[tuple[str, str]]: ...
    def job_metrics(self, name: str) -> list[MetricPoint]: ...
    # backend: azureml-compute (AzureMLBackend's ComputeOps)
    def ensure_compute(self, name: str, **kw: Any) -> dict[str, Any]: ...
    def ensure_training_environment(self) -> dict[str, Any]: ...
    def create_command_job(self, **kw: Any) -> JobInfo: ...


#: ``backend:`` values and what runs the training.
BACKENDS = ("serverless", "local", "azureml-compute")


# ---- events and results --------------------------------------------------------------------------------
@dataclass
class SubmitResult:
    job: JobInfo
    resumed: bool  # True: re-attached to an existing job instead of creating one
    hub: dict[str, Any]
    project: dict[str, Any]
    data: list[dict[str, Any]]
    uploaded_bytes: int
    plan: dict[str, Any] | None = None
    #: The plan actions of the steps that ran, in order (the plan's ``actions``, when all went well).
    ran: list[PlanAction] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": job_to_dict(self.job),
            "resumed": self.resumed,
            "hub": self.hub,
            "project": self.project,
            "data": self.data,
            "uploaded_bytes": self.uploaded_bytes,
        }


def job_to_dict(job: JobInfo) -> dict[str, Any]:
    data = asdict(job)
    data["terminal"] = job.terminal
    return data


@dataclass(frozen=True)
class WatchUpdate:
    job: JobInfo
    elapsed_s: float
    queued_s: float | None  # time spent before the job first reached Running
    latest: dict[str, float] = field(default_factory=dict)  # series -> latest value (loss)
    changed: bool = False  # status differs from the previous update


# ---- submit -----------------------------------------------------------------------------------------------
#: Creating an AmlCompute cluster takes minutes on real Azure; stop waiting (it keeps going) after this.


def apply_backend_override(cfg: JobSpec, backend: str | None) -> JobSpec:
    """``submit --backend``: replace ``cfg.backend`` (same checks as job.yaml: Azure backends need azure:)."""
    from phi3ft.config import SPEC_CLASSES, with_backend

    if backend is None:
        return cfg
    spec_class = SPEC_CLASSES.get(backend)
    if spec_class is None:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}.")
    if isinstance(cfg, spec_class):
        return cfg
    if not spec_class.runs_locally and cfg.azure is None:
        raise UsageError(
            f"--backend {backend} needs an azure: section in job.yaml (hub, project, resource group).",
            "Add one (see `phi3ft init`), or use --backend local.",
        )
    return with_backend(cfg, backend)


def _validate(
    cfg: JobSpec, opts: SubmitOptions, build_plan: Callable[..., Plan] | None
) -> Generator[SubmitEvent, None, Plan]:
    """Step 1 of every backend: validate the data (exact tokens when the tokenizer is available) -> exit 3."""
    yield SubmitEvent("step", "validate", f"Validating {cfg.data.train.name}")
    if build_plan is None:
        from phi3ft.plan import build_plan as build_plan_default

        build_plan = build_plan_default
    plan = build_plan(cfg, today=opts.today or date.today(), tokenizer=opts.tokenizer, env=opts.env)
    if not plan.data_valid:
        validation = plan.validation or {}
        first = next(iter(validation.get("issues") or []), None)
        detail = f": {first.get('message')}" if isinstance(first, dict) and first.get("message") else ""
        raise DataError(
            f"The data is invalid ({validation.get('errors', '?')} error(s)){detail}. Nothing was created.",
            f"Run `phi3ft validate {cfg.data.train}` for the full report.",
        )
    if plan.blockers:
        raise PrerequisiteError(
            f"The plan cannot work: {plan.blockers[0].message}. Nothing was created.",
            plan.blockers[0].hint or "Run `phi3ft plan --config ...` for details.",
        )
    yield SubmitEvent("done", "validate", "Data is valid", {"tokens": plan.tokens})
    return plan


def _fingerprint_of(plan: Plan, cfg: JobConfig) -> Fingerprint:
    """The plan's :class:`Fingerprint` (the data was hashed once, for the plan), else a fresh one."""
    from phi3ft.config import fingerprint

    return plan.fingerprint if plan.fingerprint is not None else fingerprint(cfg)


def submit(
    cfg: JobSpec,
    backend: JobBackend,
    store: StateStore,
    *,
    confirm: Callable[[Any], bool],
    options: SubmitOptions | None = None,
    build_plan: Callable[..., Any] | None = None,
    run_checks: Callable[..., Any] | None = None,
    split: Callable[..., tuple[Path, Path]] | None = None,
) -> Generator[SubmitEvent, None, SubmitResult]:
    """Validate, check, confirm, then run the plan's steps (:func:`phi3ft.steps.apply`).

    ``confirm(plan)`` is asked once, after validation and checks and before anything is created; it
    returns False to stop (nothing created). The steps are the plan's own (``phi3ft plan`` prints them),
    from the target of ``cfg`` (:func:`phi3ft.targets.target_of`). ``build_plan``/``run_checks``/``split``
    default to the real services (tests may inject lighter ones).
    """
    from phi3ft.steps import ApplyContext, apply
    from phi3ft.targets import target_of

    opts = options or SubmitOptions()
    target = target_of(cfg)
    target.before_validate(cfg)  # e.g. exit 4 for the placeholder subscription, before any credential
    # 1. validate the data (exact tokens when the tokenizer is available) -> exit 3, nothing created
    plan = yield from _validate(cfg, opts, build_plan)
    # 2. prerequisites -> exit 4, nothing created
    yield from target.preflight(cfg, backend, opts, run_checks)
    # 3. confirmation (the CLI shows the plan)
    if not confirm(plan):
        raise Phi3ftError("Submit cancelled; nothing was created.")
    # 4. the plan's steps, in order
    fp = _fingerprint_of(plan, cfg)
    steps = plan.steps if plan.steps is not None else target.submit_steps(cfg, fp)
    ctx = ApplyContext(spec=cfg, backend=backend, store=store, options=opts, fingerprint=fp, split=split)
    yield from apply(steps, ctx)
    if ctx.job is None:  # pragma: no cover - every target's list ends with its job step
        raise Phi3ftError("The plan has no job step; nothing was submitted.")
    return SubmitResult(
        job=ctx.job,
        resumed=ctx.resumed,
        hub=dict(ctx.hub_record),
        project=dict(ctx.project_record),
        data=list(ctx.data_records),
        uploaded_bytes=ctx.uploaded_bytes,
        plan=plan.to_dict(),
        ran=list(ctx.ran),
    )


def run_submit(
    gen: Generator[SubmitEvent, None, SubmitResult], on_event: Callable[[SubmitEvent], None]
) -> SubmitResult:
    """Drive a :func:`submit` generator, passing each event to ``on_event``; returns its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        on_event(event)


# ---- watch ------------------------------------------------------------------------------------------------
def watch(
    backend: JobBackend,
    store: StateStore | None,
    name: str,
    *,
    timeout: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_update: Callable[[WatchUpdate], None] | None = None,
    schedule: Iterator[float] | None = None,
    metrics_every: float = METRICS_EVERY_S,
) -> JobInfo:
    """Poll ``name`` until it ends (fast then slow, against ``timeout``); raise on a bad ending.

    Completed returns the job; Failed / Canceled / NotResponding raise :class:`RemoteJobFailed` (exit 5)
    with the service's message. Ctrl+C (KeyboardInterrupt) propagates: the job keeps running.
    """
    start = clock()
    state: dict[str, Any] = {"last": None, "running_at": None, "metrics_at": None, "latest": {}}
    metrics_every = float(getattr(backend, "metrics_every_s", metrics_every))

    def fetch() -> JobInfo:
        return backend.get_job(name, with_error=False)

    def on_poll(poll: Poll[JobInfo]) -> None:
        job = poll.value
        now = clock()
        if job.status == "Running" and state["running_at"] is None:
            state["running_at"] = now
        already_over = poll.attempt == 1 and job.status in TERMINAL_STATUSES  # one GET, no metrics reads
        if (
            job.status in ("Running", "Finalizing", "Completed")
            and not already_over
            and (state["metrics_at"] is None or now - state["metrics_at"] >= metrics_every)
        ):
            state["metrics_at"] = now
            state["latest"] = latest_losses(backend, name)
        changed = job.status != state["last"]
        state["last"] = job.status
        if store is not None and changed:
            store.record("job", name, status=job.status)
        queued = (state["running_at"] - start) if state["running_at"] is not None else None
        if on_update is not None:
            on_update(WatchUpdate(job, now - start, queued, dict(state["latest"]), changed))

    job = wait_until(
        fetch,
        lambda j: j.status in TERMINAL_STATUSES,
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        schedule=schedule or _schedule_of(backend),
        on_poll=on_poll,
        what=f"job {name}",
        outage_hint=f"Azure kept failing longer than the outage window (PHI3FT_OUTAGE_WINDOW); the job keeps "
        f"running: `phi3ft watch {name}` re-attaches.",
    )
    return finish(backend, store, job)


def _schedule_of(backend: Any) -> Iterator[float]:
    """The backend's polling schedule (the local backend polls every second: file reads are free)."""
    own = getattr(backend, "poll_schedule", None)
    return own() if callable(own) else default_schedule()


def finish(backend: JobBackend, store: StateStore | None, job: JobInfo) -> JobInfo:
    """Record the final status; raise :class:`RemoteJobFailed` (exit 5) unless it Completed."""
    if job.status in SUCCESS_STATUSES:
        if store is not None:
            store.record("job", job.name, status=job.status)
        return job
    if job.error is None and job.status in FAILED_STATUSES:
        job = backend.get_job(job.name)  # reads the service's error message
    if store is not None:
        store.record("job", job.name, status=job.status, error=job.error)
    reason = f": {job.error}" if job.error else ""
    hints = {
        "Failed": "Read `phi3ft logs {n}`; fix the data or config, then re-run `phi3ft submit` (it starts a new attempt).",
        "Canceled": "The job was canceled; re-run `phi3ft submit` to start a new attempt.",
        "NotResponding": "The service stopped responding for this job; re-run `phi3ft submit` to start a new attempt.",
        "Paused": "The job is paused; resume it in the Azure AI Foundry portal, then `phi3ft watch {n}`.",
    }
    hint = hints.get(job.status, "Run `phi3ft status {n}`.").format(n=job.name)
    raise RemoteJobFailed(f"Job {job.name} ended {job.status}{reason}", hint)


def latest_losses(backend: JobBackend, name: str) -> dict[str, float]:
    """Latest value per loss series, or ``{}`` when metrics are not available (never fails a watch)."""
    try:
        points = backend.job_metrics(name)
    except Phi3ftError:
        return {}
    latest: dict[str, tuple[int, float]] = {}
    for p in points:
        if p.name not in latest or p.step >= latest[p.name][0]:
            latest[p.name] = (p.step, p.value)
    return {k: v for k, (_, v) in latest.items()}


# ---- one-shot commands ------------------------------------------------------------------------------------
def resolve_job_name(store: StateStore, name: str | None) -> str:
    """``name``, or the last job submitted from this folder."""
    if name:
        return name
    last = store.last_job
    if not last:
        raise UsageError(
            "No job given and none was submitted from this folder.",
            "Pass the job name (see `phi3ft list`), or run `phi3ft submit --config job.yaml` first.",
        )
    return last


def status(backend: JobBackend, store: StateStore | None, name: str) -> JobInfo:
    job = backend.get_job(name)
    from phi3ft.records import JobRecord, get_record

    record = get_record(store, JobRecord, name) if store is not None else None
    if store is not None and record is not None:
        store.record("job", name, status=job.status, **({"error": job.error} if job.error else {}))
        with_record(job, record)
    return job


def with_record(job: JobInfo, record: JobRecord | None) -> JobInfo:
    """Fill what the service does not say from the ledger: which backend ran it, its output model."""
    if record is None:
        return job
    if record.backend:
        job.backend = str(record.backend)
    if not job.output_model_name and record.output_model_name:
        job.output_model_name = str(record.output_model_name)
    return job


def list_jobs(
    backend: JobBackend | None, store: StateStore, *, max_results: int = 100
) -> list[dict[str, Any]]:
    """Workspace fine-tuning jobs joined with the ledger: ``local`` (recorded here) and ``remote`` flags."""
    local = {r["name"]: r for r in store.list("job") if r.get("name")}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for job in backend.list_jobs(max_results=max_results) if backend is not None else []:
        record = local.get(job.name, {})
        rows.append(
            {
                "name": job.name,
                "status": job.status,
                "created_at": job.created_at,
                "model_id": job.model_id,
                "output_model_name": job.output_model_name or record.get("output_model_name"),
                "phi3ft": "phi3ft" in job.tags,
                "local": bool(record),
                "remote": True,
                "config": record.get("config"),
            }
        )
        seen.add(job.name)
    for name, record in local.items():
        if name in seen:
            continue
        rows.append(
            {
                "name": name,
                "status": record.get("status"),
                "created_at": record.get("submitted_at") or record.get("created_at"),
                "model_id": record.get("model_id"),
                "output_model_name": record.get("output_model_name"),
                "phi3ft": True,
                "local": True,
                "remote": False,
                "config": record.get("config"),
            }
        )
    rows.sort(key=lambda r: r.get("created_at") or "", reverse=True)
    return rows


def logs(backend: JobBackend, name: str) -> Iterator[tuple[str, str]]:
    return backend.job_logs(name)


def metrics(backend: JobBackend, name: str) -> list[MetricPoint]:
    return backend.job_metrics(name)


def metrics_table(points: list[MetricPoint]) -> list[dict[str, Any]]:
    """``[{step, train_loss?, eval_loss?}]`` sorted by step: the shape of the chart and of ``--json``."""
    rows: dict[int, dict[str, Any]] = {}
    for p in points:
        rows.setdefault(p.step, {"step": p.step})[p.name] = p.value
    return [rows[s] for s in sorted(rows)]


def cancel(backend: JobBackend, store: StateStore | None, name: str) -> JobInfo:
    job = backend.cancel_job(name)
    if store is not None and store.get("job", name) is not None:
        store.record("job", name, status=job.status)
    return job
