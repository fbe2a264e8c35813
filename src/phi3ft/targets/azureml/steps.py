"""The Azure ML target's steps: what ``phi3ft plan`` prints and ``submit`` runs, in one order.

Serverless: hub, project, (split), uploads, resolve the registry model, submit the fine-tuning job.
Cluster (``azureml-compute``): hub, project, (split), uploads, the GPU cluster, the training environment,
submit the command job. Then (not run by submit): the job registers the model; ``phi3ft deploy`` creates the
endpoint and smoke-tests it.

Every create goes through :func:`phi3ft.steps.create_owned` (intent, creation-id tag, record after).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from phi3ft import __version__
from phi3ft.errors import PrerequisiteError, UsageError
from phi3ft.state import CREATION_TAG, utc_now
from phi3ft.steps import (
    ApplyContext,
    Step,
    SubmitEvent,
    attempt_name,
    create_or_attach,
    create_owned,
)

if TYPE_CHECKING:
    from phi3ft.config import AzureConfig, ComputeConfig, Fingerprint, JobSpec
    from phi3ft.steps import SubmitOptions

EXPERIMENT = "phi3ft"
#: Prerequisite checks that only concern Azure's serverless fine-tuning catalog (region offer, registry
#: lifecycle): a compute-cluster job trains the open weights, so their failures do not block it.
SERVERLESS_ONLY_CHECKS = frozenset({"region", "model"})
UNKNOWN = "exists? unknown offline: run `phi3ft check --config` to ask Azure"


def _azure(spec: JobSpec) -> AzureConfig:
    if spec.azure is None:
        raise UsageError("job.yaml has no azure: section.", "Add one (see `phi3ft init`).")
    return spec.azure


def _where(spec: JobSpec) -> dict[str, str]:
    azure = _azure(spec)
    return {"subscription_id": str(azure.subscription_id), "resource_group": str(azure.resource_group)}


def _compute(spec: JobSpec) -> ComputeConfig:
    from phi3ft.config import ComputeConfig

    return spec.compute or ComputeConfig()


def _reused(created: bool) -> str:
    return "created" if created else "exists, reused"


# ---- before anything is created ------------------------------------------------------------------------
def before_validate(spec: JobSpec) -> None:
    """Exit 2 without an azure: section, 4 for the placeholder subscription (before any credential)."""
    from phi3ft.targets.azureml.where import refuse_placeholder_subscription

    refuse_placeholder_subscription(_azure(spec).subscription_id)


def preflight(
    spec: JobSpec, backend: Any, opts: SubmitOptions, run_checks: Callable[..., Any] | None
) -> Iterator[SubmitEvent]:
    """The live prerequisite checks (``phi3ft check``) -> exit 4, nothing created."""
    if opts.skip_checks:
        yield SubmitEvent("warn", "check", "Skipping prerequisite checks (--skip-checks)")
        return
    yield SubmitEvent("step", "check", "Checking prerequisites")
    if run_checks is None:
        from phi3ft.targets.azureml.checks import run_checks as run_checks_default

        run_checks = run_checks_default
    report = run_checks(backend, spec)
    failed = [r for r in report.failed if not (spec.on_cluster and r.id in SERVERLESS_ONLY_CHECKS)]
    if failed:
        first = failed[0]
        raise PrerequisiteError(
            f"{len(failed)} prerequisite check(s) failed; first: {first.title}: {first.detail}. "
            "Nothing was created.",
            first.fix or "Run `phi3ft check --config ...` for the full report.",
        )
    yield SubmitEvent("done", "check", "Prerequisites OK")


# ---- workspaces ------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class EnsureHub(Step):
    kind = "ensure_hub"

    @classmethod
    def of(cls, spec: JobSpec) -> EnsureHub:
        azure = _azure(spec)
        hub = azure.hub
        return cls(
            target=hub.name,
            summary=f"ensure hub {hub.name} in resource group {azure.resource_group} ({azure.location})"
            + (" — create if missing" if hub.create_if_missing else " — must already exist"),
            params={
                "resource_group": azure.resource_group,
                "location": azure.location,
                "create_if_missing": hub.create_if_missing,
                "existence": UNKNOWN,
            },
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        azure, where, store = _azure(ctx.spec), _where(ctx.spec), ctx.store
        location, hub_cfg = str(azure.location), azure.hub
        yield SubmitEvent("step", "hub", f"Ensuring hub {hub_cfg.name} ({location})")
        hub = create_owned(
            store,
            "hub",
            hub_cfg.name,
            lambda cid: ctx.backend.ensure_hub(
                hub_cfg.name,
                location=location,
                create=bool(hub_cfg.create_if_missing),
                display_name=hub_cfg.display_name,
                tags={"phi3ft": __version__, CREATION_TAG: cid},
            ),
            intent={"location": location, **where},
        )
        ctx.hub = hub
        ctx.hub_record = store.record_resource(
            "hub", hub.name, created=hub.created, tags=hub.tags, id=hub.id, location=hub.location, **where
        )
        if hub.location and hub.location.replace(" ", "").lower() != location.replace(" ", "").lower():
            yield SubmitEvent(
                "warn", "hub", f"Hub {hub.name} is in {hub.location}, not {location}; reusing it"
            )
        yield SubmitEvent("done", "hub", f"Hub {hub.name} {_reused(hub.created)}", {"created": hub.created})


@dataclass(kw_only=True)
class EnsureProject(Step):
    kind = "ensure_project"

    @classmethod
    def of(cls, spec: JobSpec) -> EnsureProject:
        azure = _azure(spec)
        hub, project = azure.hub, azure.project
        return cls(
            target=project.name,
            summary=f"ensure hub-based project {project.name} in hub {hub.name}"
            + (" — create if missing" if project.create_if_missing else " — must already exist"),
            params={"hub": hub.name, "create_if_missing": project.create_if_missing, "existence": UNKNOWN},
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        azure, where, store = _azure(ctx.spec), _where(ctx.spec), ctx.store
        hub, project_cfg = ctx.hub, azure.project
        assert hub is not None  # EnsureHub ran first
        yield SubmitEvent("step", "project", f"Ensuring project {project_cfg.name}")
        project = create_owned(
            store,
            "project",
            project_cfg.name,
            lambda cid: ctx.backend.ensure_project(
                project_cfg.name,
                hub=hub,
                location=str(azure.location),
                create=bool(project_cfg.create_if_missing),
                display_name=project_cfg.display_name,
                tags={"phi3ft": __version__, CREATION_TAG: cid},
            ),
            intent={"hub": hub.name, **where},
        )
        ctx.project = project
        ctx.project_record = store.record_resource(
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
            f"Project {project.name} {_reused(project.created)}",
            {"created": project.created},
        )


# ---- data ------------------------------------------------------------------------------------------------
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


@dataclass(kw_only=True)
class SplitData(Step):
    kind = "split_data"
    train: Path
    fraction: float
    seed: int
    key: str  # the halves' asset version: f(train bytes, fraction, seed)
    configured: bool  # data.split is set (else the default hold-out: Azure needs a validation file)

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        note = "" if self.configured else " (no validation file given: Azure needs one)"
        yield SubmitEvent(
            "step",
            "split",
            f"Splitting {self.train.name}: {self.fraction:g} held out, seed {self.seed}{note}",
        )
        split_dir = ctx.store.dir / "split"
        t_out, v_out = (ctx.split or _default_split)(
            self.train, self.fraction, self.seed, split_dir, self.key
        )
        ctx.split_files = {"train": t_out, "validation": v_out}
        yield SubmitEvent(
            "done", "split", f"Split into {t_out.name} and {v_out.name}", {"dir": str(split_dir)}
        )


@dataclass(kw_only=True)
class UploadData(Step):
    kind = "upload_data"
    role: str
    asset_name: str
    version: str
    #: The data file to send and its hash; ``None`` for a half of the split (written by :class:`SplitData`).
    path: Path | None
    sha256: str | None

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        from phi3ft.config import file_sha256

        azure_where, store, role = _where(ctx.spec), ctx.store, self.role
        project = ctx.project
        assert project is not None  # EnsureProject ran first
        path = self.path if self.path is not None else ctx.split_files[role]
        key = f"{self.asset_name}:{self.version}"
        size = path.stat().st_size
        yield SubmitEvent(
            "step", "upload", f"Uploading {path.name} as {key} ({size:,} bytes)", {"role": role}
        )
        asset = create_owned(
            store,
            "data",
            key,
            lambda cid: ctx.backend.upload_data(
                path,
                name=self.asset_name,
                version=self.version,
                tags={"phi3ft": __version__, "role": role, CREATION_TAG: cid},
            ),
            intent={
                "asset_name": self.asset_name,
                "version": self.version,
                "role": role,
                "project": project.name,
                **azure_where,
                "created_by_phi3ft": True,  # content-addressed phi3ft names: nobody else makes them
            },
        )
        ctx.assets[role] = asset
        ctx.uploaded_bytes += int(asset.uploaded_bytes)
        # the split's halves are new files, hashed here once each; a data file reuses the fingerprint's hash
        ctx.data_hashes[role] = self.sha256 if self.path is not None and self.sha256 else file_sha256(path)
        ctx.data_records.append(
            store.record(
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
                **azure_where,
                created_by_phi3ft=True,
                status="ready",
            )
        )
        if asset.uploaded_bytes:
            what = f"uploaded {asset.uploaded_bytes:,} bytes"
        elif asset.reused_blob:
            what = "already uploaded (Azure had the file; 0 bytes sent)"
        else:
            what = "already there"
        yield SubmitEvent(
            "done",
            "upload",
            f"{key}: {what}",
            {
                "created": bool(asset.uploaded_bytes) or bool(asset.reused_blob),
                "uploaded_bytes": int(asset.uploaded_bytes),
            },
        )


def data_steps(spec: JobSpec, fp: Fingerprint) -> list[Step]:
    """The split (when there is no validation file) and the content-addressed uploads."""
    from phi3ft.config import data_asset_ref, effective_split, file_sha256, split_asset_refs

    train = spec.data.train
    train_sha = fp.data.get("train") or file_sha256(train)
    steps: list[Step] = []
    split = effective_split(spec)
    if split is not None:
        refs = split_asset_refs(train, train_sha, split.fraction, split.seed)
        steps.append(
            SplitData(
                target=train.name,
                summary=f"split {train.name}: {split.fraction:g} held out for validation (seed {split.seed}), "
                "deterministic",
                params={"fraction": split.fraction, "seed": split.seed},
                train=train,
                fraction=float(split.fraction),
                seed=int(split.seed),
                key=refs["train"][1],
                configured=spec.data.split is not None,
            )
        )
        files: list[tuple[str, Path, Path | None, str, str, str]] = [
            (role, train, None, *refs[role], train_sha) for role in ("train", "validation")
        ]
    else:
        files = []
        for role, path in (("train", train), ("validation", spec.data.validation)):
            if path is not None:
                sha = fp.data.get(role) or file_sha256(path)
                files.append((role, path, path, *data_asset_ref(role, path, sha), sha))
    for role, shown, path, name, version, sha in files:
        what = shown.name if path is not None else f"the split's {role} half of {shown.name}"
        steps.append(
            UploadData(
                target=f"{name}:{version}",
                summary=f"upload {what} as data asset {name} version {version} (skipped if that version exists)",
                params={
                    "role": role,
                    "path": str(shown),
                    "sha256": sha,
                    "asset_name": name,
                    "asset_version": version,
                },
                role=role,
                asset_name=name,
                version=version,
                path=path,
                sha256=sha if path is not None else None,
            )
        )
    return steps


# ---- model, cluster, environment -------------------------------------------------------------------------
@dataclass(kw_only=True)
class ResolveModel(Step):
    kind = "resolve_model"

    @classmethod
    def of(cls, spec: JobSpec) -> ResolveModel:
        profile, version = spec.profile, spec.model.pinned_version
        return cls(
            target=profile.registry_name,
            summary=f"resolve {profile.registry_name} ({version}) in the azureml registry to its exact model id",
            params={"registry": "azureml", "model_name": profile.registry_name, "version": version},
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        profile, version = ctx.spec.profile, ctx.spec.model.pinned_version
        yield SubmitEvent(
            "step", "model", f"Resolving {profile.registry_name} ({version}) in the azureml registry"
        )
        model = ctx.backend.resolve_registry_model(
            profile.registry_name, None if version == "latest" else version
        )
        if model is None:
            raise PrerequisiteError(
                f"Model {profile.registry_name} version {version} is not in the azureml registry.",
                "Run `phi3ft check --config ...`; pin model.version to one the registry lists.",
            )
        ctx.model_id = model.id
        yield SubmitEvent("done", "model", f"Base model {model.id}", {"model_id": model.id})


def _wait_for_cluster(ctx: ApplyContext, name: str) -> Iterator[SubmitEvent]:
    """Cluster creation, with a timeout and a progress line per poll (like the job and endpoint waits);
    the final cluster lands in ``ctx.compute["cluster"]``."""
    opts = ctx.options
    polls = ctx.backend.watch_compute(
        name,
        timeout=opts.compute_timeout,
        clock=opts.clock or time.monotonic,
        sleep=opts.sleep or time.sleep,
    )
    while True:
        try:
            state, elapsed = next(polls)
        except StopIteration as stop:
            ctx.compute["cluster"] = {**stop.value, "created": True}
            return
        yield SubmitEvent(
            "note",
            "compute",
            f"Cluster {name}: {state} ({int(elapsed)} s)",
            {"state": state, "elapsed_s": elapsed},
        )


@dataclass(kw_only=True)
class EnsureCompute(Step):
    kind = "ensure_compute"

    @classmethod
    def of(cls, spec: JobSpec) -> EnsureCompute:
        compute = _compute(spec)
        return cls(
            target=compute.cluster_name,
            summary=f"ensure compute cluster {compute.cluster_name} ({compute.vm_size}, "
            f"{compute.min_nodes}-{compute.max_nodes} nodes, scale down after "
            f"{compute.idle_seconds_before_scaledown} s idle)",
            params=compute.model_dump(mode="json"),
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        compute, where, store = _compute(ctx.spec), _where(ctx.spec), ctx.store
        project = ctx.project
        assert project is not None  # EnsureProject ran first
        yield SubmitEvent(
            "step",
            "compute",
            f"Ensuring compute cluster {compute.cluster_name} ({compute.vm_size}, "
            f"{compute.min_nodes}-{compute.max_nodes} nodes, idle scale-down {compute.idle_seconds_before_scaledown} s)",
        )
        cluster: dict[str, Any] = create_owned(
            store,
            "compute",
            compute.cluster_name,
            lambda cid: ctx.backend.ensure_compute(
                compute.cluster_name,
                vm_size=compute.vm_size,
                min_nodes=compute.min_nodes,
                max_nodes=compute.max_nodes,
                idle_seconds_before_scaledown=compute.idle_seconds_before_scaledown,
                tags={"phi3ft": __version__, CREATION_TAG: cid},
            ),
            intent={"project": project.name, **where},
        )
        store.record_resource(
            "compute",
            cluster["name"],
            created=bool(cluster.get("created")),
            tags=cluster.get("tags"),
            id=cluster.get("id"),
            vm_size=cluster.get("vm_size"),
            project=project.name,
            **where,
        )
        ctx.compute["cluster"] = cluster
        if cluster.get("created"):
            if str(cluster.get("state") or "").lower() != "succeeded":
                yield from _wait_for_cluster(ctx, cluster["name"])
                cluster = ctx.compute["cluster"]
        else:
            from phi3ft.targets.azureml.sdk.compute import check_reused_cluster

            for warning in check_reused_cluster(cluster, compute):  # exit 4 when it cannot run the job
                yield SubmitEvent("warn", "compute", warning)
        created = bool(cluster.get("created"))
        ctx.compute.update(
            compute=cluster["name"],
            instance_count=compute.max_nodes,
            process_count_per_instance=compute.processes_per_node,
        )
        yield SubmitEvent(
            "done", "compute", f"Cluster {cluster['name']} {_reused(created)}", {"created": created}
        )


@dataclass(kw_only=True)
class EnsureEnvironment(Step):
    kind = "ensure_environment"

    @classmethod
    def of(cls, spec: JobSpec) -> EnsureEnvironment:
        from phi3ft.targets.azureml.sdk.compute import ENVIRONMENT_NAME

        return cls(
            target=ENVIRONMENT_NAME,
            summary=f"ensure the training environment {ENVIRONMENT_NAME} (a curated PyTorch image + phi3ft's "
            "train requirements; versioned by its contents, reused when it exists)",
            params={"name": ENVIRONMENT_NAME},
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        yield SubmitEvent("step", "environment", "Ensuring the training environment")
        env = ctx.backend.ensure_training_environment()
        ctx.compute["environment"] = env["id"]
        yield SubmitEvent(
            "done",
            "environment",
            f"Environment {env['name']}:{env['version']} {_reused(bool(env.get('created')))}",
            {"created": bool(env.get("created"))},
        )


# ---- the job ---------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class _SubmitJob(Step):
    """The job: deterministic name, re-attach unless it failed (or ``--force``), else create it."""

    kind = "submit_job"
    what: ClassVar[str] = "fine-tuning"

    def _create(self, ctx: ApplyContext, name: str, output_model: str, tags: dict[str, str]) -> Any:
        raise NotImplementedError

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        spec, store, fp = ctx.spec, ctx.store, ctx.fingerprint
        azure, where = _azure(spec), _where(spec)
        hub, project = ctx.hub, ctx.project
        assert hub is not None and project is not None  # EnsureHub and EnsureProject ran first
        names, hashes = fp.names, fp.hashes
        tags = {
            **{str(k): str(v) for k, v in (spec.tags or {}).items()},
            "phi3ft": __version__,
            "phi3ft.config_hash": hashes["config"][:16],
            "phi3ft.training_hash": hashes["training"][:16],
            **{f"phi3ft.data.{role}": sha[:16] for role, sha in ctx.data_hashes.items()},
        }
        job, resumed, attempt = create_or_attach(ctx.backend, names.job, ctx.options.force)
        output_model = attempt_name(names.output_model, attempt)
        yield SubmitEvent("step", "job", f"Submitting {self.what} job {names.job}")
        job_fields = {
            "backend": spec.backend,
            "project": project.name,
            "hub": hub.name,
            **where,
            "location": project.location or str(azure.location),
            "auth": str(azure.auth),
            "model_id": ctx.model_id,
            "endpoint_name": attempt_name(names.endpoint, attempt),
            "config_hash": hashes["config"],
            "training_hash": hashes["training"],
            "data_hashes": dict(ctx.data_hashes),
            "data_assets": {role: f"{a.name}:{a.version}" for role, a in ctx.assets.items()},
            "config": str(spec.source) if spec.source else None,
            "phi3ft_version": __version__,
            "created_by_phi3ft": True,
        }
        if job is None:
            name = attempt_name(names.job, attempt)

            def create(cid: str) -> Any:
                return self._create(ctx, name, output_model, {**tags, CREATION_TAG: cid})

            job = create_owned(
                store,
                "job",
                name,
                create,
                intent={
                    "backend": spec.backend,
                    "project": project.name,
                    "hub": hub.name,
                    **where,
                    "output_model_name": output_model,
                    "created_by_phi3ft": True,  # phi3ft's deterministic name, checked absent just now
                },
                forget_if_refused=True,
            )
        fields = ("compute", "environment", "instance_count", "process_count_per_instance")
        compute_fields = {k: ctx.compute[k] for k in fields if k in ctx.compute}
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
        ctx.job, ctx.resumed = job, resumed
        yield SubmitEvent(
            "done",
            "job",
            f"Re-attached to job {job.name} ({job.status})"
            if resumed
            else f"Job {job.name} created ({job.status})",
            {"created": not resumed, "job": job.name, "status": job.status},
        )


@dataclass(kw_only=True)
class SubmitFineTune(_SubmitJob):
    @classmethod
    def of(cls, spec: JobSpec, fp: Fingerprint) -> SubmitFineTune:
        from phi3ft.config import to_azure_hyperparameters

        names, hp = fp.names, to_azure_hyperparameters(spec)
        return cls(
            target=names.job,
            summary=f"submit serverless fine-tuning job {names.job}: {spec.model.registry_id}, task {spec.task}, "
            + ", ".join(f"{k}={v}" for k, v in hp.items()),
            params={
                "model_id": spec.model.registry_id,
                "task": spec.task,
                "hyperparameters": hp,
                "output_model_name": names.output_model,
                "experiment_name": EXPERIMENT,
                "tags": dict(spec.tags),
            },
        )

    def _create(self, ctx: ApplyContext, name: str, output_model: str, tags: dict[str, str]) -> Any:
        from phi3ft.config import to_azure_hyperparameters

        spec, assets = ctx.spec, ctx.assets
        return ctx.backend.create_finetuning_job(
            name=name,
            model_id=ctx.model_id,
            training_data=assets["train"].id,
            validation_data=assets["validation"].id if "validation" in assets else None,
            hyperparameters=to_azure_hyperparameters(spec),
            output_model_name=output_model,
            experiment_name=EXPERIMENT,
            display_name=name,
            description=f"phi3ft {__version__}: {spec.profile.name} fine-tune from {spec.data.train.name}",
            tags=tags,
        )


@dataclass(kw_only=True)
class SubmitCommandJob(_SubmitJob):
    what = "command"

    @classmethod
    def of(cls, spec: JobSpec, fp: Fingerprint) -> SubmitCommandJob:
        names, cluster = fp.names, _compute(spec).cluster_name
        return cls(
            target=names.job,
            summary=f"submit command job {names.job} running `phi3ft train` on {cluster} "
            f"(LoRA r={spec.training.lora.r}, {spec.training.epochs:g} epoch(s))",
            params={
                "compute": cluster,
                "settings": spec.training.model_dump(mode="json"),
                "output_model_name": names.output_model,
                "tags": dict(spec.tags),
            },
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        # the cluster trains the open weights (Hugging Face), not the registry's serverless offer
        ctx.model_id = ctx.spec.training.base_model or ctx.spec.profile.hf_repo
        yield from super().run(ctx)

    def _create(self, ctx: ApplyContext, name: str, output_model: str, tags: dict[str, str]) -> Any:
        spec, assets, compute = ctx.spec, ctx.assets, ctx.compute
        return ctx.backend.create_command_job(
            name=name,
            model=spec.profile.name,
            training=spec.training,
            training_data=assets["train"].id,
            validation_data=assets["validation"].id if "validation" in assets else None,
            compute=compute["compute"],
            environment=compute["environment"],
            instance_count=compute["instance_count"],
            process_count_per_instance=compute["process_count_per_instance"],
            output_model_name=output_model,
            experiment_name=EXPERIMENT,
            display_name=name,
            description=f"phi3ft {__version__}: {spec.profile.name} LoRA on cluster from {spec.data.train.name}",
            tags=tags,
        )


# ---- the lists -----------------------------------------------------------------------------------------
def submit_steps(spec: JobSpec, fp: Fingerprint) -> list[Step]:
    """Every step ``submit`` runs for an Azure ML spec, in order (``phi3ft plan`` prints these)."""
    steps: list[Step] = [EnsureHub.of(spec), EnsureProject.of(spec), *data_steps(spec, fp)]
    if spec.on_cluster:
        steps += [EnsureCompute.of(spec), EnsureEnvironment.of(spec), SubmitCommandJob.of(spec, fp)]
    else:
        steps += [ResolveModel.of(spec), SubmitFineTune.of(spec, fp)]
    return steps


@dataclass(kw_only=True)
class RegisterModel(Step):
    """Done by the job itself (its output is registered as a model): shown after submit's steps."""

    kind = "register_model"


@dataclass(kw_only=True)
class Deploy(Step):
    """``phi3ft deploy``: a separate command, shown after submit's steps."""

    kind = "deploy_endpoint"


@dataclass(kw_only=True)
class SmokeTest(Step):
    """``phi3ft deploy``'s smoke test of the new endpoint."""

    kind = "smoke_test"


def after_steps(spec: JobSpec, fp: Fingerprint) -> list[Step]:
    """What follows the submit (the job's own model registration, ``phi3ft deploy``): described, not run."""
    names, azure = fp.names, _azure(spec)
    steps: list[Step] = [
        RegisterModel(
            target=f"{names.output_model}:1",
            summary=f"the job registers the fine-tuned model {names.output_model} version 1",
            params={"model_name": names.output_model},
        )
    ]
    if spec.azure_finetune and spec.deploy.enabled:
        deploy, eval_cfg = spec.deploy, spec.eval
        steps.append(
            Deploy(
                target=names.endpoint,
                summary=f"`phi3ft deploy`: create serverless endpoint {names.endpoint} for {names.output_model} "
                f"(content safety {'on' if deploy.content_safety else 'OFF'}, auth {deploy.auth_mode})",
                params={
                    "model_id": f"azureml://locations/{azure.location}/workspaces/<project workspace id>/models/"
                    f"{names.output_model}/versions/1",
                    "content_safety": deploy.content_safety,
                    "auth_mode": deploy.auth_mode,
                },
            )
        )
        eval_data = eval_cfg.data or spec.data.validation
        steps.append(
            SmokeTest(
                target=names.endpoint,
                summary=f"`phi3ft deploy`'s smoke test: send {eval_data.name if eval_data else 'the held-out'} "
                "examples to the endpoint "
                f"(max_tokens {eval_cfg.max_tokens}, concurrency {eval_cfg.concurrency}"
                + (f", fail below F1 {eval_cfg.min_f1:g}" if eval_cfg.min_f1 is not None else "")
                + ")",
                params={
                    "max_tokens": eval_cfg.max_tokens,
                    "concurrency": eval_cfg.concurrency,
                    "min_f1": eval_cfg.min_f1,
                },
            )
        )
    return steps


__all__ = [
    "SERVERLESS_ONLY_CHECKS",
    "Deploy",
    "EnsureCompute",
    "EnsureEnvironment",
    "EnsureHub",
    "EnsureProject",
    "RegisterModel",
    "ResolveModel",
    "SmokeTest",
    "SplitData",
    "SubmitCommandJob",
    "SubmitFineTune",
    "UploadData",
    "after_steps",
    "before_validate",
    "data_steps",
    "preflight",
    "submit_steps",
]
