"""Submit a fine-tune and follow it: submit, watch, status, list, logs, metrics, cancel.

Service module: never prints. ``submit`` yields :class:`SubmitEvent` progress and returns its
:class:`SubmitResult` as the generator's return value (use :func:`run_submit` to drive it with a callback);
``watch`` reports through ``on_update``. The CLI renders both.

Resumability: every resource is written to the local ledger (:class:`phi3ft.state.StateStore`) the moment
the backend returns it, and every step is get-or-create on the remote side too, so a crash at any point
loses nothing and the next ``submit`` re-attaches: hub and project are looked up before creation, data
assets are content-addressed (``name:sha``), and the job name is derived from the config and data hashes
(``phi3ft-<model>-<hash>``, then ``-2``, ``-3``... only after a failed attempt or with ``force``).

Ledger records (kinds from :data:`phi3ft.state.KINDS`; ``deploy``/``delete`` read them):

- ``hub`` / ``project``: ``name, id, location, subscription_id, resource_group, created_by_phi3ft``
  (+ ``hub`` and ``workspace_id`` for projects);
- ``data`` keyed ``name:version``: ``asset_name, version, id, path, role, sha256, bytes, source, project``;
- ``job``: ``name, status, backend, project, hub, subscription_id, resource_group, location, model_id,
  output_model_name, output_model_version, endpoint_name, config_hash, training_hash, data_hashes,
  data_assets, config, phi3ft_version, created_by_phi3ft`` (``last_job`` points at it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from phi3ft import __version__
from phi3ft.errors import (
    DataError,
    NetworkError,
    NotFoundError,
    Phi3ftError,
    PrerequisiteError,
    RemoteJobFailed,
    UsageError,
)
from phi3ft.polling import Poll, default_schedule, wait_until
from phi3ft.state import CREATION_TAG, StateStore, utc_now
from phi3ft.targets.base import FAILED_STATUSES, SUCCESS_STATUSES, TERMINAL_STATUSES, JobInfo, MetricPoint

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobConfig, JobSpec, LocalJob
    from phi3ft.plan import Plan
    from phi3ft.records import JobRecord

#: Attempts ``-2`` .. ``-N`` for one config before giving up (each failed attempt is a paid job).
MAX_ATTEMPTS = 50
#: How often ``watch`` asks for the latest loss while a job runs (metrics cost extra requests).
METRICS_EVERY_S = 60.0
EXPERIMENT = "phi3ft"


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
#: Prerequisite checks that only concern Azure's serverless fine-tuning catalog (region offer, registry
#: lifecycle): a compute-cluster job trains the open weights, so their failures do not block it.
SERVERLESS_ONLY_CHECKS = frozenset({"region", "model"})


# ---- events and results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubmitEvent:
    """``kind``: ``step`` (a step starts), ``done`` (finished; ``data['created']`` says whether it paid for
    anything), ``note`` (information worth showing), ``warn``."""

    kind: str
    step: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SubmitResult:
    job: JobInfo
    resumed: bool  # True: re-attached to an existing job instead of creating one
    hub: dict[str, Any]
    project: dict[str, Any]
    data: list[dict[str, Any]]
    uploaded_bytes: int
    plan: dict[str, Any] | None = None

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
def _default_split(train: Path, fraction: float, seed: int, out_dir: Path, key: str) -> tuple[Path, Path]:
    """The ``phi3ft split`` logic (deterministic, duplicates kept on one side) into ``out_dir/<key>/``.

    ``key`` is derived from the training file's content, fraction and seed, so an existing pair is reused
    as is (a re-run after a crash does not split again).
    """
    from phi3ft.data.split import split_dataset

    target = out_dir / key
    train_out, val_out = target / "train.jsonl", target / "validation.jsonl"
    if train_out.is_file() and val_out.is_file():
        return train_out, val_out
    result = split_dataset(train, target, validation_fraction=fraction, seed=seed, force=True)
    return result.train_path, result.validation_path


#: Creating an AmlCompute cluster takes minutes on real Azure; stop waiting (it keeps going) after this.
DEFAULT_COMPUTE_TIMEOUT = 30 * 60.0


@dataclass
class SubmitOptions:
    force: bool = False
    skip_checks: bool = False
    today: date | None = None
    tokenizer: Path | None = None
    env: dict[str, str] | None = None
    #: Waits inside submit (the GPU cluster's creation): injected in tests, real time otherwise.
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    compute_timeout: float | None = DEFAULT_COMPUTE_TIMEOUT


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


def _require_train_extra() -> None:
    """The local trainer needs torch, transformers and peft; look for them without importing torch."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        from phi3ft.install import extra_install_command

        raise PrerequisiteError(
            f"backend local needs {', '.join(missing)} (the 'train' extra is not installed). "
            "Nothing was created.",
            f"{extra_install_command('train')}   (CPU only: pip install torch first), or use --backend serverless.",
        )


def _fingerprint_of(plan: Plan, cfg: JobConfig) -> Fingerprint:
    """The plan's :class:`Fingerprint` (the data was hashed once, for the plan), else a fresh one."""
    from phi3ft.config import fingerprint

    return plan.fingerprint if plan.fingerprint is not None else fingerprint(cfg)


def _output_dir_configured(cfg: JobConfig) -> bool:
    """True when job.yaml names ``training.output_dir`` (anything but the default ``runs/train``)."""
    default = Path(type(cfg.training).model_fields["output_dir"].default)
    current = Path(cfg.training.output_dir)
    if not current.is_absolute():
        return current != default
    source = getattr(cfg, "source", None)
    base = Path(source).resolve().parent if source is not None else Path.cwd()
    return current != base / default


def _submit_local(
    cfg: LocalJob,
    backend: Any,
    store: StateStore,
    *,
    confirm: Callable[[Any], bool],
    opts: SubmitOptions,
    build_plan: Callable[..., Any] | None,
) -> Generator[SubmitEvent, None, SubmitResult]:
    """``backend: local``: validate, confirm, start the trainer detached; the ledger records the job."""
    from phi3ft.train.job import options_from_job_config

    plan = yield from _validate(cfg, opts, build_plan)
    if not opts.skip_checks:
        yield SubmitEvent("step", "check", "Checking the local trainer (torch, transformers, peft)")
        _require_train_extra()
        yield SubmitEvent("done", "check", "Trainer dependencies present")
    if not confirm(plan):
        raise Phi3ftError("Submit cancelled; nothing was created.")

    fp = _fingerprint_of(plan, cfg)
    names, hashes, data_hashes = fp.names, fp.hashes, dict(fp.data)
    yield SubmitEvent("step", "job", f"Starting local training job {names.job}")
    job, resumed, attempt = _create_or_attach(backend, store, names.job, opts.force)
    name = names.job if attempt == 1 else f"{names.job}-{attempt}"
    if job is None:
        # training.output_dir when the config sets it, else the job's own folder (attempts never collide)
        output_dir = None if _output_dir_configured(cfg) else store.dir / "jobs" / name / "output"
        options = options_from_job_config(cfg, output_dir=output_dir)
        job = backend.create_local_job(
            name=name,
            options=options,
            display_name=name,
            description=f"phi3ft {__version__}: {cfg.profile.name} LoRA from {cfg.data.train.name}",
            tags={
                **{str(k): str(v) for k, v in (cfg.tags or {}).items()},
                "phi3ft": __version__,
                "phi3ft.config_hash": hashes["config"][:16],
            },
        )
    store.record(
        "job",
        job.name,
        status=job.status,
        backend="local",
        model_id=cfg.training.base_model or cfg.profile.hf_repo,
        output_model_name=None,
        output_dir=job.extra.get("output_dir"),
        adapter_dir=str(Path(str(job.extra.get("output_dir"))) / "adapter"),
        job_dir=job.extra.get("job_dir"),
        pid=job.extra.get("pid"),
        config_hash=hashes["config"],
        training_hash=hashes["training"],
        data_hashes=data_hashes,
        config=str(cfg.source) if getattr(cfg, "source", None) else None,
        phi3ft_version=__version__,
        submitted_at=job.created_at or utc_now(),
        created_by_phi3ft=True,
    )
    yield SubmitEvent(
        "done",
        "job",
        (
            f"Re-attached to local job {job.name} ({job.status})"
            if resumed
            else f"Local job {job.name} started (pid {job.extra.get('pid')})"
        ),
        {"created": not resumed, "job": job.name, "status": job.status},
    )
    return SubmitResult(
        job=job, resumed=resumed, hub={}, project={}, data=[], uploaded_bytes=0, plan=plan.to_dict()
    )


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
    """Validate, check, confirm, ensure hub/project, upload, create (or re-attach to) the job.

    ``confirm(plan)`` is asked once, after validation and checks and before anything is created; it
    returns False to stop (nothing created). ``build_plan``/``run_checks``/``split`` default to the real
    services (tests may inject lighter ones).
    """
    opts = options or SubmitOptions()
    from phi3ft.config import LocalJob

    if isinstance(cfg, LocalJob):
        return (
            yield from _submit_local(cfg, backend, store, confirm=confirm, opts=opts, build_plan=build_plan)
        )
    compute_job = cfg.on_cluster
    azure = cfg.azure
    if azure is None:
        raise UsageError("job.yaml has no azure: section.", "Add one (see `phi3ft init`).")
    from phi3ft.connect import refuse_placeholder_subscription

    refuse_placeholder_subscription(azure.subscription_id)  # exit 4 before validating or any credential

    # 1. validate the data (exact tokens when the tokenizer is available) -> exit 3, nothing created
    plan = yield from _validate(cfg, opts, build_plan)
    plan_dict = plan.to_dict()
    fp = _fingerprint_of(plan, cfg)

    # 2. prerequisites -> exit 4, nothing created
    if opts.skip_checks:
        yield SubmitEvent("warn", "check", "Skipping prerequisite checks (--skip-checks)")
    else:
        yield SubmitEvent("step", "check", "Checking prerequisites")
        if run_checks is None:
            from phi3ft.targets.azureml.checks import run_checks as run_checks_default

            run_checks = run_checks_default
        report = run_checks(backend, cfg)
        failed = [r for r in report.failed if not (compute_job and r.id in SERVERLESS_ONLY_CHECKS)]
        if failed:
            first = failed[0]
            raise PrerequisiteError(
                f"{len(failed)} prerequisite check(s) failed; first: {first.title}: {first.detail}. "
                "Nothing was created.",
                first.fix or "Run `phi3ft check --config ...` for the full report.",
            )
        yield SubmitEvent("done", "check", "Prerequisites OK")

    # 3. confirmation (the CLI shows the plan)
    if not confirm(plan):
        raise Phi3ftError("Submit cancelled; nothing was created.")

    # 4.-6. create: one run at a time per .phi3ft, from the first create to the last ledger write
    with store.run_lock():
        return (yield from _create_resources(cfg, backend, store, opts, plan_dict, compute_job, split, fp))


def _create_resources(
    cfg: JobSpec,
    backend: JobBackend,
    store: StateStore,
    opts: SubmitOptions,
    plan_dict: Any,
    compute_job: bool,
    split: Callable[..., tuple[Path, Path]] | None,
    fp: Fingerprint,
) -> Generator[SubmitEvent, None, SubmitResult]:
    """Hub, project, data, (cluster), job: each recorded as an intent before its create call and tagged
    with the intent's creation id, so a run killed mid-create still owns what it made."""
    from phi3ft import config as config_mod

    azure = cfg.azure
    assert azure is not None  # submit refused a config without azure: before validating
    location = str(azure.location)
    where = {"subscription_id": str(azure.subscription_id), "resource_group": str(azure.resource_group)}

    # 4. hub and project
    hub_cfg, project_cfg = azure.hub, azure.project
    yield SubmitEvent("step", "hub", f"Ensuring hub {hub_cfg.name} ({location})")
    hub_cid = store.intent("hub", hub_cfg.name, location=location, **where)
    hub = backend.ensure_hub(
        hub_cfg.name,
        location=location,
        create=bool(hub_cfg.create_if_missing),
        display_name=hub_cfg.display_name,
        tags={"phi3ft": __version__, CREATION_TAG: hub_cid},
    )
    hub_record = store.record_resource(
        "hub",
        hub.name,
        created=hub.created,
        tags=hub.tags,
        id=hub.id,
        location=hub.location,
        **where,
    )
    if hub.location and hub.location.replace(" ", "").lower() != location.replace(" ", "").lower():
        yield SubmitEvent("warn", "hub", f"Hub {hub.name} is in {hub.location}, not {location}; reusing it")
    yield SubmitEvent(
        "done",
        "hub",
        f"Hub {hub.name} " + ("created" if hub.created else "exists, reused"),
        {"created": hub.created},
    )

    yield SubmitEvent("step", "project", f"Ensuring project {project_cfg.name}")
    project_cid = store.intent("project", project_cfg.name, hub=hub.name, **where)
    project = backend.ensure_project(
        project_cfg.name,
        hub=hub,
        location=location,
        create=bool(project_cfg.create_if_missing),
        display_name=project_cfg.display_name,
        tags={"phi3ft": __version__, CREATION_TAG: project_cid},
    )
    project_record = store.record_resource(
        "project",
        project.name,
        created=project.created,
        tags=project.tags,
        id=project.id,
        hub=hub.name,
        location=project.location,
        workspace_id=project.workspace_id,
        **where,
    )
    yield SubmitEvent(
        "done",
        "project",
        f"Project {project.name} " + ("created" if project.created else "exists, reused"),
        {"created": project.created},
    )

    # 5. data: split when there is no validation file, then content-addressed uploads
    from phi3ft.plan import data_asset_ref, split_asset_refs

    train_path: Path = cfg.data.train
    val_path: Path | None = cfg.data.validation
    uploads: list[tuple[str, Path, str, str]] = []
    train_sha = fp.data.get("train") or config_mod.file_sha256(train_path)
    upload_sha: dict[str, str] = {}  # per role, when the uploaded file is a data file (already hashed)
    if val_path is None:
        split_cfg = cfg.data.split
        fraction = float(split_cfg.fraction) if split_cfg is not None else 0.1
        seed = int(split_cfg.seed) if split_cfg is not None else 42
        refs = split_asset_refs(train_path, train_sha, fraction, seed)
        note = "" if split_cfg is not None else " (no validation file given: Azure needs one)"
        yield SubmitEvent(
            "step", "split", f"Splitting {train_path.name}: {fraction:g} held out, seed {seed}{note}"
        )
        splitter = split or _default_split
        split_dir = store.dir / "split"
        t_out, v_out = splitter(train_path, fraction, seed, split_dir, refs["train"][1])
        uploads.append(("train", t_out, *refs["train"]))
        uploads.append(("validation", v_out, *refs["validation"]))
        yield SubmitEvent(
            "done", "split", f"Split into {t_out.name} and {v_out.name}", {"dir": str(split_dir)}
        )
    else:
        uploads.append(("train", train_path, *data_asset_ref("train", train_path, train_sha)))
        val_sha = fp.data.get("validation") or config_mod.file_sha256(val_path)
        upload_sha = {"train": train_sha, "validation": val_sha}
        uploads.append(("validation", val_path, *data_asset_ref("validation", val_path, val_sha)))

    assets: dict[str, Any] = {}
    data_records: list[dict[str, Any]] = []
    uploaded_total = 0
    for role, path, asset_name, version in uploads:
        key = f"{asset_name}:{version}"
        size = path.stat().st_size
        yield SubmitEvent(
            "step", "upload", f"Uploading {path.name} as {key} ({size:,} bytes)", {"role": role}
        )
        data_cid = store.intent(
            "data",
            key,
            asset_name=asset_name,
            version=version,
            role=role,
            project=project.name,
            **where,
            created_by_phi3ft=True,  # content-addressed phi3ft names: nobody else makes them
        )
        asset = backend.upload_data(
            path,
            name=asset_name,
            version=version,
            tags={"phi3ft": __version__, "role": role, CREATION_TAG: data_cid},
        )
        assets[role] = asset
        uploaded_total += int(asset.uploaded_bytes)
        record = store.record(
            "data",
            key,
            asset_name=asset.name,
            version=asset.version,
            id=asset.id,
            path=asset.path,
            role=role,
            source=str(path),
            bytes=size,
            project=project.name,
            **where,
            created_by_phi3ft=True,
            status="ready",
        )
        data_records.append(record)
        yield SubmitEvent(
            "done",
            "upload",
            f"{key}: "
            + (
                f"uploaded {asset.uploaded_bytes:,} bytes"
                if asset.uploaded_bytes
                else "already uploaded (Azure had the file; 0 bytes sent)"
                if getattr(asset, "reused_blob", False)
                else "already there"
            ),
            {
                "created": bool(asset.uploaded_bytes) or bool(getattr(asset, "reused_blob", False)),
                "uploaded_bytes": int(asset.uploaded_bytes),
            },
        )

    # 6. the job: exact model id, deterministic name, re-attach unless it failed (or --force)
    names = fp.names
    profile = cfg.profile
    version = cfg.model.pinned_version
    if compute_job:
        # the cluster trains the open weights (Hugging Face), not the registry's serverless offer
        model_id = cfg.training.base_model or profile.hf_repo
    else:
        yield SubmitEvent(
            "step", "model", f"Resolving {profile.registry_name} ({version}) in the azureml registry"
        )
        model = backend.resolve_registry_model(
            profile.registry_name, None if version == "latest" else version
        )
        if model is None:
            raise PrerequisiteError(
                f"Model {profile.registry_name} version {version} is not in the azureml registry.",
                "Run `phi3ft check --config ...`; pin model.version to one the registry lists.",
            )
        model_id = model.id
        yield SubmitEvent("done", "model", f"Base model {model.id}", {"model_id": model.id})

    hashes = fp.hashes
    # the split's halves are new files, hashed here once each; a data file reuses the fingerprint's hash
    data_hashes = {role: upload_sha.get(role) or config_mod.file_sha256(p) for role, p, _, _ in uploads}
    tags = {
        **{str(k): str(v) for k, v in (cfg.tags or {}).items()},
        "phi3ft": __version__,
        "phi3ft.config_hash": hashes["config"][:16],
        "phi3ft.training_hash": hashes["training"][:16],
        **{f"phi3ft.data.{role}": sha[:16] for role, sha in data_hashes.items()},
    }
    job, resumed, attempt = _create_or_attach(backend, store, names.job, opts.force)
    output_model = names.output_model if attempt == 1 else f"{names.output_model}-{attempt}"
    compute_fields: dict[str, Any] = {}
    if compute_job and job is None:
        compute_fields = yield from _ensure_cluster_and_environment(
            cfg, backend, store, where, project.name, opts
        )
    yield SubmitEvent(
        "step", "job", f"Submitting {'command' if compute_job else 'fine-tuning'} job {names.job}"
    )
    job_fields = {
        "backend": cfg.backend,
        "project": project.name,
        "hub": hub.name,
        **where,
        "location": project.location or location,
        "auth": str(getattr(azure, "auth", "auto")),
        "model_id": model_id,
        "endpoint_name": names.endpoint if attempt == 1 else f"{names.endpoint}-{attempt}",
        "config_hash": hashes["config"],
        "training_hash": hashes["training"],
        "data_hashes": data_hashes,
        "data_assets": {role: f"{a.name}:{a.version}" for role, a in assets.items()},
        "config": str(cfg.source) if getattr(cfg, "source", None) else None,
        "phi3ft_version": __version__,
        "created_by_phi3ft": True,
    }
    job_cid = None
    if job is None:
        name = names.job if attempt == 1 else f"{names.job}-{attempt}"
        job_cid = store.intent(
            "job",
            name,
            backend=cfg.backend,
            project=project.name,
            hub=hub.name,
            **where,
            output_model_name=output_model,
            created_by_phi3ft=True,  # phi3ft's deterministic name, checked absent just now
        )
        tags[CREATION_TAG] = job_cid
    try:
        if job is None and compute_job:
            name = names.job if attempt == 1 else f"{names.job}-{attempt}"
            job = backend.create_command_job(
                name=name,
                model=profile.name,
                training=cfg.training,
                training_data=assets["train"].id,
                validation_data=assets["validation"].id if "validation" in assets else None,
                compute=compute_fields["compute"],
                environment=compute_fields["environment"],
                instance_count=compute_fields["instance_count"],
                process_count_per_instance=compute_fields["process_count_per_instance"],
                output_model_name=output_model,
                experiment_name=EXPERIMENT,
                display_name=name,
                description=f"phi3ft {__version__}: {profile.name} LoRA on cluster from {train_path.name}",
                tags=tags,
            )
        elif job is None:
            name = names.job if attempt == 1 else f"{names.job}-{attempt}"
            job = backend.create_finetuning_job(
                name=name,
                model_id=model_id,
                training_data=assets["train"].id,
                validation_data=assets["validation"].id if "validation" in assets else None,
                hyperparameters=config_mod.to_azure_hyperparameters(cfg),
                output_model_name=output_model,
                experiment_name=EXPERIMENT,
                display_name=name,
                description=f"phi3ft {__version__}: {profile.name} fine-tune from {train_path.name}",
                tags=tags,
            )
    except Phi3ftError as exc:
        # the service refused the job (a 4xx): it does not exist, so its intent goes; when the outcome
        # is unknown (no answer, 5xx) the intent stays for the next run to reconcile
        if job_cid and getattr(exc, "transient", None) is None and not isinstance(exc, NetworkError):
            store.remove_intent("job", name)
        raise
    store.record(
        "job",
        job.name,
        status=job.status,
        output_model_name=job.output_model_name or output_model,
        output_model_version="1",
        submitted_at=job.created_at or utc_now(),
        **compute_fields,
        **job_fields,
    )
    yield SubmitEvent(
        "done",
        "job",
        (
            f"Re-attached to job {job.name} ({job.status})"
            if resumed
            else f"Job {job.name} created ({job.status})"
        ),
        {"created": not resumed, "job": job.name, "status": job.status},
    )
    return SubmitResult(
        job=job,
        resumed=resumed,
        hub=dict(hub_record),
        project=dict(project_record),
        data=data_records,
        uploaded_bytes=uploaded_total,
        plan=plan_dict,
    )


def _wait_for_cluster(
    backend: Any, name: str, opts: SubmitOptions
) -> Generator[SubmitEvent, None, dict[str, Any]]:
    """Cluster creation, with a timeout and a progress line per poll (like the job and endpoint waits)."""
    polls = backend.watch_compute(
        name,
        timeout=opts.compute_timeout,
        clock=opts.clock or time.monotonic,
        sleep=opts.sleep or time.sleep,
    )
    while True:
        try:
            state, elapsed = next(polls)
        except StopIteration as stop:
            return {**stop.value, "created": True}
        yield SubmitEvent(
            "note",
            "compute",
            f"Cluster {name}: {state} ({int(elapsed)} s)",
            {"state": state, "elapsed_s": elapsed},
        )


def _ensure_cluster_and_environment(
    cfg: JobConfig, backend: Any, store: StateStore, where: dict[str, str], project: str, opts: SubmitOptions
) -> Generator[SubmitEvent, None, dict[str, Any]]:
    """``backend: azureml-compute``: the GPU cluster (scales to zero) and the training environment."""
    from phi3ft.config import ComputeConfig

    compute = cfg.compute or ComputeConfig()
    yield SubmitEvent(
        "step",
        "compute",
        f"Ensuring compute cluster {compute.cluster_name} ({compute.vm_size}, "
        f"{compute.min_nodes}-{compute.max_nodes} nodes, idle scale-down {compute.idle_seconds_before_scaledown} s)",
    )
    cid = store.intent("compute", compute.cluster_name, project=project, **where)
    cluster = backend.ensure_compute(
        compute.cluster_name,
        vm_size=compute.vm_size,
        min_nodes=compute.min_nodes,
        max_nodes=compute.max_nodes,
        idle_seconds_before_scaledown=compute.idle_seconds_before_scaledown,
        tags={"phi3ft": __version__, CREATION_TAG: cid},
    )
    store.record_resource(
        "compute",
        cluster["name"],
        created=bool(cluster.get("created")),
        tags=cluster.get("tags"),
        id=cluster.get("id"),
        vm_size=cluster.get("vm_size"),
        project=project,
        **where,
    )
    if cluster.get("created"):
        if str(cluster.get("state") or "").lower() != "succeeded":
            cluster = yield from _wait_for_cluster(backend, cluster["name"], opts)
    else:
        from phi3ft.targets.azureml.sdk.compute import check_reused_cluster

        for warning in check_reused_cluster(cluster, compute):  # exit 4 when it cannot run the job
            yield SubmitEvent("warn", "compute", warning)
    yield SubmitEvent(
        "done",
        "compute",
        f"Cluster {cluster['name']} " + ("created" if cluster.get("created") else "exists, reused"),
        {"created": bool(cluster.get("created"))},
    )
    yield SubmitEvent("step", "environment", "Ensuring the training environment")
    env = backend.ensure_training_environment()
    yield SubmitEvent(
        "done",
        "environment",
        f"Environment {env['name']}:{env['version']} "
        + ("created" if env.get("created") else "exists, reused"),
        {"created": bool(env.get("created"))},
    )
    return {
        "compute": cluster["name"],
        "environment": env["id"],
        "instance_count": compute.max_nodes,
        "process_count_per_instance": compute.processes_per_node,
    }


def _create_or_attach(
    backend: JobBackend, store: StateStore, base: str, force: bool
) -> tuple[JobInfo | None, bool, int]:
    """``(existing job or None, resumed, attempt)``: the first name whose job is absent or reusable.

    A job that exists and did not fail is reused (re-attach) unless ``force``; a failed/canceled one is
    skipped, so the next attempt gets ``-2``, ``-3``...
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = base if attempt == 1 else f"{base}-{attempt}"
        existing = backend.find_job(name)
        if existing is None:
            return None, False, attempt
        if not force and existing.status not in FAILED_STATUSES:
            return existing, True, attempt
    raise PrerequisiteError(
        f"{MAX_ATTEMPTS} jobs named {base}[-N] already exist.",
        "Change the config (e.g. output.model_name) or delete old jobs with `phi3ft delete`.",
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


def require_job(backend: JobBackend, name: str) -> JobInfo:
    job = backend.find_job(name)
    if job is None:
        raise NotFoundError(f"Job {name!r} not found in the project.", "List jobs with `phi3ft list`.")
    return job
