"""The local target's step: start the trainer on this machine (detached), or re-attach to its job.

Before it (not a plan step: nothing is created), :func:`preflight` looks for the ``train`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3ft import __version__
from phi3ft.errors import PrerequisiteError
from phi3ft.state import utc_now
from phi3ft.steps import ApplyContext, Step, SubmitEvent, attempt_name, create_or_attach

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobSpec
    from phi3ft.steps import SubmitOptions


def before_validate(spec: JobSpec) -> None:
    """Nothing to refuse before validating: the local trainer needs no account."""


def require_train_extra() -> None:
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


def preflight(
    spec: JobSpec, backend: Any, opts: SubmitOptions, run_checks: Callable[..., Any] | None
) -> Iterator[SubmitEvent]:
    if opts.skip_checks:
        return
    yield SubmitEvent("step", "check", "Checking the local trainer (torch, transformers, peft)")
    require_train_extra()
    yield SubmitEvent("done", "check", "Trainer dependencies present")


@dataclass(kw_only=True)
class TrainLocal(Step):
    """Load the base model and train the LoRA adapter in a detached process (``.phi3ft/jobs/<name>/``)."""

    kind = "train_local"

    @classmethod
    def of(cls, spec: JobSpec, fp: Fingerprint) -> TrainLocal:
        from phi3ft.config import output_dir_configured

        training = spec.training
        base_model = training.base_model or spec.profile.hf_repo
        output = (
            str(training.output_dir) if output_dir_configured(spec) else f".phi3ft/jobs/{fp.names.job}/output"
        )
        return cls(
            target=fp.names.job,
            summary=f"start local training job {fp.names.job} on this machine: load {base_model} and its "
            f"tokenizer, LoRA r={training.lora.r} on {spec.data.train.name}, {training.epochs:g} epoch(s), "
            f"lr {training.learning_rate:g}; adapter written to {output}/adapter",
            params={
                "base_model": base_model,
                "output_dir": output,
                "settings": training.model_dump(mode="json"),
            },
        )

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        from phi3ft.config import output_dir_configured
        from phi3ft.train.job import options_from_job_config

        spec, store, backend, fp = ctx.spec, ctx.store, ctx.backend, ctx.fingerprint
        names, hashes = fp.names, fp.hashes
        yield SubmitEvent("step", "job", f"Starting local training job {names.job}")
        job, resumed, attempt = create_or_attach(backend, names.job, ctx.options.force)
        name = attempt_name(names.job, attempt)
        if job is None:
            # training.output_dir when the config sets it, else the job's own folder (attempts never collide)
            output_dir = None if output_dir_configured(spec) else store.dir / "jobs" / name / "output"
            options = options_from_job_config(spec, output_dir=output_dir)
            job = backend.create_local_job(
                name=name,
                options=options,
                display_name=name,
                description=f"phi3ft {__version__}: {spec.profile.name} LoRA from {spec.data.train.name}",
                tags={
                    **{str(k): str(v) for k, v in (spec.tags or {}).items()},
                    "phi3ft": __version__,
                    "phi3ft.config_hash": hashes["config"][:16],
                },
            )
        store.record(
            "job",
            job.name,
            status=job.status,
            backend=spec.backend,
            model_id=spec.training.base_model or spec.profile.hf_repo,
            output_model_name=None,
            output_dir=job.extra.get("output_dir"),
            adapter_dir=str(Path(str(job.extra.get("output_dir"))) / "adapter"),
            job_dir=job.extra.get("job_dir"),
            pid=job.extra.get("pid"),
            config_hash=hashes["config"],
            training_hash=hashes["training"],
            data_hashes=dict(fp.data),
            config=str(spec.source) if spec.source else None,
            phi3ft_version=__version__,
            submitted_at=job.created_at or utc_now(),
            created_by_phi3ft=True,
        )
        ctx.job, ctx.resumed = job, resumed
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


def submit_steps(spec: JobSpec, fp: Fingerprint) -> list[Step]:
    return [TrainLocal.of(spec, fp)]


def after_steps(spec: JobSpec, fp: Fingerprint) -> list[Step]:
    return []
