"""``backend: azureml-compute``: a GPU cluster, a training environment and a command job running ``phi3ft train``.

What goes to Azure (one ``submit``):

- **cluster**: ``AmlCompute`` (``min_instances`` 0 by default, so it costs nothing while idle;
  ``idle_time_before_scale_down`` and the VM size from ``compute:``, 0 s sent as ``PT0S``; the SSH port
  closed: ``remoteLoginPortPublicAccess: Disabled``). Get-or-create by name; the create is waited for with a
  timeout and a progress line (:meth:`ComputeOps.watch_compute`). An existing cluster is reused as it is
  (never changed) after :func:`check_reused_cluster`: too few nodes for the job or a failed cluster is
  refused (exit 4), another VM size or always-on nodes are warned about, with the fix.
- **environment** ``phi3ft-train``: a Docker build context, ``FROM`` the curated Azure ML PyTorch image
  (:data:`BASE_IMAGE`, which brings CUDA, NCCL, OpenMPI and the Azure ML runtime) plus ``pip install`` of
  phi3ft's own dependencies and its ``train`` extra (:func:`training_requirements`, read from the
  installed package's metadata, so the cluster gets the ranges this phi3ft was tested with; ``azure-*``
  is left out: training never imports it; ``mlflow-skinny`` + ``azureml-mlflow`` are added so the trainer
  logs its losses to the job's MLflow run). The version is a hash of the two files: an unchanged spec
  reuses the built image, a new phi3ft release builds once.
- **code**: phi3ft is not installed from PyPI on the cluster. The job's code snapshot is the phi3ft
  package folder of *this* installation (so the cluster runs exactly the submitting version) plus a
  generated ``phi3ft-job.yaml`` holding the ``training:`` block; ``python -m phi3ft`` imports it from the
  working directory. The snapshot is content-hashed by the SDK: an unchanged one is not uploaded again.
- **job**: ``command()`` with ``PyTorchDistribution(process_count_per_instance=processes_per_node)``,
  ``instance_count = max_nodes``, inputs ``train``/``validation`` bound to the uploaded data assets
  (``uri_file``), output ``adapter`` (``custom_model``, name = the output model name, version 1) which
  Azure ML registers as a model when the job completes. The command::

      PHI3FT_TRAIN=${{inputs.train}} PHI3FT_VALIDATION=${{inputs.validation}} \\
        python -m phi3ft train --config phi3ft-job.yaml --output-dir ${{outputs.adapter}} --json

Every process of the distribution runs that command; the trainer reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``,
trains data-parallel (DDP) and only rank 0 writes the adapter (:mod:`phi3ft.train.trainer`).

Contracts (shared rules in :mod:`phi3ft.targets.base`): ``ensure_*`` are get-or-create; ``delete_compute``
of a missing cluster returns ``False``; status / cancel / logs of the command job are the ordinary job
operations (:class:`phi3ft.targets.azureml.sdk.jobs.JobOps`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError, UsageError
from phi3ft.targets.azureml.sdk._core import (
    AzureSession,
    call,
    create_or_reattach,
    quiet_experimental_warnings,
)
from phi3ft.targets.base import JobInfo

#: Curated Azure ML PyTorch image the training environment starts from (pip upgrades torch to the
#: train extra's range when the image's is older).
BASE_IMAGE = "mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:latest"
ENVIRONMENT_NAME = "phi3ft-train"
JOB_CONFIG_NAME = "phi3ft-job.yaml"
TRAIN_COMMAND = (
    "python -m phi3ft train --config " + JOB_CONFIG_NAME + " --output-dir ${{outputs.adapter}} --json"
)
#: ``training:`` keys that name paths on the submitting machine; the cluster gets its own.
_LOCAL_ONLY_KEYS = ("output_dir", "tokenizer", "resume")


def training_requirements() -> list[str]:
    """phi3ft's runtime requirements plus its ``train`` extra, without Azure SDKs (sorted, deduplicated)."""
    try:
        declared = metadata.requires("phi3ft") or []
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        declared = []
    out: set[str] = set()
    for req in declared:
        spec, _, marker = req.partition(";")
        marker = marker.strip()
        if marker and marker.replace(" ", "").replace('"', "'") != "extra=='train'":
            continue
        spec = spec.strip()
        if spec.lower().startswith("azure-"):
            continue
        out.add(spec)
    return sorted(out, key=str.lower)


#: Cluster-only packages: the trainer logs train_loss/eval_loss to the job's MLflow run when mlflow imports;
#: azureml-mlflow is the plugin that resolves the ``azureml://`` MLFLOW_TRACKING_URI Azure ML sets.
CLUSTER_REQUIREMENTS = ("mlflow-skinny>=2.10,<4", "azureml-mlflow>=1.55,<2")


def environment_files() -> dict[str, str]:
    """The Docker build context of the training environment: ``Dockerfile`` and ``requirements.txt``."""
    requirements = "\n".join([*training_requirements(), *CLUSTER_REQUIREMENTS]) + "\n"
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        "COPY requirements.txt /tmp/phi3ft-requirements.txt\n"
        "RUN pip install --no-cache-dir -r /tmp/phi3ft-requirements.txt\n"
    )
    return {"Dockerfile": dockerfile, "requirements.txt": requirements}


def environment_version(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16]


def cluster_job_config(model: str, training: Any, *, validation: bool) -> dict[str, Any]:
    """The job.yaml the cluster reads: ``backend: local`` (it *is* the machine), data from the inputs."""
    settings = training.model_dump(mode="json", exclude=set(_LOCAL_ONLY_KEYS))
    base_model = settings.get("base_model")
    if base_model and (base_model.startswith(("/", ".", "~")) or Path(base_model).exists()):
        raise UsageError(
            f"training.base_model is a folder on this machine ({base_model}); the cluster cannot read it.",
            "Use a Hugging Face model id, or leave base_model unset to train the catalog model's weights.",
        )
    data = {"train": "${PHI3FT_TRAIN}"}
    if validation:
        data["validation"] = "${PHI3FT_VALIDATION}"
    return {"backend": "local", "model": {"name": model}, "data": data, "training": settings}


def write_code_snapshot(dest: Path, job_config: dict[str, Any]) -> Path:
    """phi3ft's package folder (no caches) plus ``phi3ft-job.yaml``, in ``dest``."""
    import yaml

    import phi3ft

    package = Path(phi3ft.__file__).resolve().parent
    shutil.copytree(package, dest / "phi3ft", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / JOB_CONFIG_NAME).write_text(
        "# Generated by phi3ft submit (backend: azureml-compute); data paths come from the job inputs.\n"
        + yaml.safe_dump(job_config, sort_keys=False),
        encoding="utf-8",
    )
    return dest


class ComputeOps:
    """Mixin of :class:`phi3ft.targets.azureml.sdk.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession

    # ---- cluster --------------------------------------------------------------------------------------
    def find_compute(self, name: str) -> dict[str, Any] | None:
        """The cluster called ``name`` as ``{name, id, vm_size, min_nodes, max_nodes, state}``, or None."""
        try:
            found = call(f"read compute {name!r}", lambda: self.session.ml.compute.get(name))
        except NotFoundError:
            return None
        return _compute_dict(found, created=False)

    def ensure_compute(
        self,
        name: str,
        *,
        vm_size: str,
        min_nodes: int = 0,
        max_nodes: int = 1,
        idle_seconds_before_scaledown: int = 1800,
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Get-or-create an AmlCompute cluster (``created`` says whether this call made it).

        Returns once the create is accepted (``state`` ``Creating`` on real Azure): wait for it with
        :meth:`watch_compute`, which polls against a timeout and reports progress.
        """
        existing = self.find_compute(name)
        if existing is not None:
            return existing
        cluster = _cluster_entity(
            name,
            vm_size=vm_size,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            idle_seconds=idle_seconds_before_scaledown,
            tags=tags,
        )
        ops = self.session.ml.compute
        generated = getattr(ops, "_operation", None)
        if generated is None:  # pragma: no cover - older/newer SDK layout: its poller thread waits alone
            call(f"create compute cluster {name!r}", lambda: ops.begin_create_or_update(cluster))
        else:
            # The SDK's own begin_create_or_update starts a poller thread that cannot be stopped; send the
            # same body (the SDK's _to_rest_object) with polling=False and wait in watch_compute instead.
            cluster.location = call("read the project's region", ops._get_workspace_location)
            body = cluster._to_rest_object()
            call(
                f"create compute cluster {name!r}",
                lambda: generated.begin_create_or_update(
                    self.session.resource_group,
                    self.session.workspace,
                    compute_name=name,
                    parameters=body,
                    polling=False,
                ).result(),
            )
        found = self.find_compute(name)
        if found is None:  # pragma: no cover - the PUT was accepted, so a GET finds it
            raise AzureError(
                f"Compute cluster {name!r} was accepted but cannot be read back.", "Re-run submit."
            )
        return {**found, "created": True}

    def watch_compute(
        self,
        name: str,
        *,
        timeout: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        schedule: Iterator[float] | None = None,
    ) -> Generator[tuple[str, float], None, dict[str, Any]]:
        """Poll the cluster until its provisioning ends: yields ``(state, elapsed_s)`` after each GET.

        Returns the cluster; raises :class:`PollTimeout` after ``timeout`` seconds (the create keeps going
        in Azure) and :class:`AzureError` when provisioning ends Failed/Canceled.
        """
        from phi3ft.polling import PollTimeout, default_schedule

        delays = schedule if schedule is not None else default_schedule()
        start = clock()
        while True:
            found = self.find_compute(name)
            state = str((found or {}).get("state") or "Creating")
            elapsed = clock() - start
            yield state, elapsed
            if found is not None and state.lower() in _DONE_STATES:
                break
            wait = next(delays)
            if timeout is not None and elapsed + wait > timeout:
                raise PollTimeout(
                    f"Timed out after {int(elapsed)} s waiting for compute cluster {name!r} ({state}).",
                    "Azure keeps creating it: re-run `phi3ft submit` later (it reuses the cluster), or check it "
                    "in the Azure ML studio (Compute > Compute clusters).",
                )
            sleep(wait)
        if state.lower() != "succeeded":
            errors = (found or {}).get("errors") or ""
            raise AzureError(
                f"Compute cluster {name!r} ended {state} while provisioning"
                + (f": {errors}" if errors else "."),
                f"Delete it (`az ml compute delete --name {name} --yes`) and re-run submit; if it fails again, "
                "check the VM size's quota in the region (`az ml compute list-usage`).",
            )
        return found or {}

    def delete_compute(self, name: str) -> bool:
        """Delete the cluster; ``False`` when it was already gone (idempotent)."""
        if self.find_compute(name) is None:
            return False
        call(f"delete compute cluster {name!r}", lambda: self.session.ml.compute.begin_delete(name).result())
        return True

    # ---- environment ----------------------------------------------------------------------------------
    def ensure_training_environment(self) -> dict[str, Any]:
        """Get-or-create ``phi3ft-train:<spec hash>``: ``{name, version, id, created}``."""
        files = environment_files()
        version = environment_version(files)
        ml = self.session.ml
        try:
            found = call(
                "read the training environment", lambda: ml.environments.get(ENVIRONMENT_NAME, version)
            )
            return {"name": ENVIRONMENT_NAME, "version": version, "id": found.id, "created": False}
        except NotFoundError:
            pass
        from azure.ai.ml.entities import BuildContext, Environment

        with tempfile.TemporaryDirectory(prefix="phi3ft-env-") as tmp:
            for file_name, text in files.items():
                (Path(tmp) / file_name).write_text(text, encoding="utf-8")
            env = Environment(
                name=ENVIRONMENT_NAME,
                version=version,
                build=BuildContext(path=tmp, dockerfile_path="Dockerfile"),
                description=f"phi3ft trainer: {BASE_IMAGE} + phi3ft[train] requirements",
                tags={"phi3ft": "train"},
            )
            created = call("create the training environment", lambda: ml.environments.create_or_update(env))
        return {"name": ENVIRONMENT_NAME, "version": version, "id": created.id, "created": True}

    # ---- command job ----------------------------------------------------------------------------------
    def create_command_job(
        self,
        *,
        name: str,
        model: str,
        training: Any,
        training_data: str,
        validation_data: str | None,
        compute: str,
        environment: str,
        instance_count: int,
        process_count_per_instance: int,
        output_model_name: str,
        experiment_name: str = "phi3ft",
        display_name: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> JobInfo:
        """Submit ``phi3ft train`` on ``compute`` (one PUT of a ``Command`` job after the code upload)."""
        from azure.ai.ml import Input, Output, PyTorchDistribution, command
        from azure.ai.ml.constants import AssetTypes

        job_config = cluster_job_config(model, training, validation=validation_data is not None)
        inputs = {"train": Input(type=AssetTypes.URI_FILE, path=training_data)}
        if validation_data is not None:
            inputs["validation"] = Input(type=AssetTypes.URI_FILE, path=validation_data)
        text = "PHI3FT_TRAIN=${{inputs.train}} "
        if validation_data is not None:
            text += "PHI3FT_VALIDATION=${{inputs.validation}} "
        text += TRAIN_COMMAND
        with tempfile.TemporaryDirectory(prefix="phi3ft-code-") as tmp:
            code = write_code_snapshot(Path(tmp), job_config)
            job = command(
                name=name,
                display_name=display_name or name,
                description=description,
                experiment_name=experiment_name,
                tags=dict(tags or {}),
                code=str(code),
                command=text,
                environment=environment,
                compute=compute,
                instance_count=instance_count,
                distribution=PyTorchDistribution(process_count_per_instance=process_count_per_instance),
                inputs=inputs,
                outputs={
                    "adapter": Output(type=AssetTypes.CUSTOM_MODEL, name=output_model_name, version="1")
                },
                environment_variables={"HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"},
            )
            with quiet_experimental_warnings():
                created = create_or_reattach(
                    f"create command job {name!r}",
                    lambda: self.session.ml.jobs.create_or_update(job),
                    lambda: self._existing_job_entity(name),  # type: ignore[attr-defined]
                )
        status = getattr(created, "status", None)
        return JobInfo(
            name=getattr(created, "name", None) or name,
            status=str(getattr(status, "value", status) or "NotStarted"),
            backend="azureml-compute",
            display_name=getattr(created, "display_name", None),
            model_id=model,
            output_model_name=output_model_name,
            tags=dict(getattr(created, "tags", None) or {}),
            studio_url=getattr(created, "studio_url", None),
            extra={"compute": compute, "environment": environment},
        )


_DONE_STATES = {"succeeded", "failed", "canceled"}


def _cluster_entity(
    name: str, *, vm_size: str, min_nodes: int, max_nodes: int, idle_seconds: int, tags: dict[str, str] | None
) -> Any:
    """The ``AmlCompute`` phi3ft creates: SSH port closed, the idle time as given (0 included)."""
    from azure.ai.ml.entities import AmlCompute

    class _Cluster(AmlCompute):
        def _to_rest_object(self) -> Any:
            rest: Any = super()._to_rest_object()
            if idle_seconds == 0:  # the SDK drops a falsy idle time, and the service default (not 0) applies
                rest.properties.properties.scale_settings.node_idle_time_before_scale_down = "PT0S"
            return rest

    return _Cluster(
        name=name,
        size=vm_size,
        min_instances=min_nodes,
        max_instances=max_nodes,
        idle_time_before_scale_down=idle_seconds,
        # phi3ft never needs SSH: without this the SDK sends NotSpecified, which (no VNet) leaves the SSH
        # port open on every public node.
        ssh_public_access_enabled=False,
        tags=dict(tags or {}),
    )


def check_reused_cluster(cluster: dict[str, Any], compute: Any) -> list[str]:
    """A cluster that already exists, against ``compute:`` of job.yaml: warnings, or PrerequisiteError.

    Refused (exit 4): fewer nodes than the job asks instances for (``instance_count`` is
    ``compute.max_nodes``: the job would queue for nodes the cluster can never have), or a cluster whose
    provisioning failed. Warned: another VM size (``processes_per_node`` may not match its GPUs), nodes
    kept running while idle (``min_nodes`` > 0 bills around the clock), SSH open to the internet.
    """
    name = cluster.get("name")
    state = str(cluster.get("state") or "")
    if state.lower() in {"failed", "canceled", "deleting"}:
        raise PrerequisiteError(
            f"Compute cluster {name} exists but is {state}.",
            f"Delete it (`az ml compute delete --name {name} --yes`) and re-run submit, or set "
            "compute.cluster_name to another cluster.",
        )
    limit = cluster.get("max_nodes")
    if isinstance(limit, int) and limit < compute.max_nodes:
        raise PrerequisiteError(
            f"Compute cluster {name} exists with at most {limit} node(s); the job asks for "
            f"{compute.max_nodes} instances (compute.max_nodes).",
            f"Set compute.max_nodes: {limit} in job.yaml, or raise the cluster's limit: "
            f"`az ml compute update --name {name} --max-instances {compute.max_nodes}`.",
        )
    warnings = []
    size = cluster.get("vm_size")
    if size and str(size).lower() != compute.vm_size.lower():
        warnings.append(
            f"Cluster {name} exists with VM size {size}, not {compute.vm_size}; reusing it as is "
            f"(compute.processes_per_node {compute.processes_per_node} must match its GPUs). Set "
            f"compute.vm_size: {size} to match it, or pick another compute.cluster_name for a {compute.vm_size} "
            "cluster."
        )
    floor = cluster.get("min_nodes")
    if isinstance(floor, int) and floor > compute.min_nodes:
        warnings.append(
            f"Cluster {name} keeps {floor} node(s) running while idle (min nodes {floor}): it bills even "
            f"when no job runs. Scale it to zero: `az ml compute update --name {name} --min-instances 0`."
        )
    if cluster.get("ssh_public_access") == "Enabled":
        warnings.append(f"Cluster {name} has its SSH port open to the internet; phi3ft does not need it.")
    return warnings


def _text(value: Any) -> str | None:
    """An SDK enum (``ProvisioningState.SUCCEEDED``) or a string, as the service's string (``Succeeded``)."""
    value = getattr(value, "value", value)
    return None if value is None else str(value)


def _compute_dict(entity: Any, *, created: bool) -> dict[str, Any]:
    errors = getattr(entity, "provisioning_errors", None)
    ssh = getattr(entity, "ssh_public_access_enabled", None)
    return {
        "errors": errors,
        "ssh_public_access": None if ssh is None else ("Enabled" if ssh else "Disabled"),
        "name": entity.name,
        "id": getattr(entity, "id", None),
        "vm_size": getattr(entity, "size", None),
        "min_nodes": getattr(entity, "min_instances", None),
        "max_nodes": getattr(entity, "max_instances", None),
        "idle_seconds_before_scaledown": getattr(entity, "idle_time_before_scale_down", None),
        "state": _text(getattr(entity, "provisioning_state", None)),
        "created": created,
        "tags": {str(k): str(v) for k, v in (getattr(entity, "tags", None) or {}).items()},
    }
