"""The backends the contract suite runs against, each behind a small harness that knows how to make a job
(or an endpoint) exist and how to move it along, so one set of tests reads the same on all of them.

- ``azureml``: the real :class:`~phi3ft.targets.azureml.sdk.backend.AzureMLBackend`, real SDK over HTTPS
  against the offline Azure stack (``stack`` fixture; marked ``e2e``).
- ``fake-jobs``: :class:`tests.fakes.jobs.FakeJobBackend` (what the submit/watch unit tests use).
- ``fake-endpoints``: :class:`tests.fakes.endpoints.FakeEndpointBackend` (deploy/eval/delete unit tests); its
  job half is the teardown subset only (``find_job``, ``cancel_job``).
- ``local``: :class:`~phi3ft.targets.local.backend.LocalBackend` with a stand-in trainer (no torch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from phi3ft.targets.base import TERMINAL_STATUSES, JobInfo

HUB, PROJECT = "hub-contract", "proj-contract"
BASE_MODEL = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
FT_MODEL = "contract-ft"
TAGS = {"phi3ft": "contract"}


@dataclass
class JobHarness:
    """``create(name, outcome)`` makes a job that will end ``outcome`` (``Completed`` | ``Failed`` | ``slow``,
    the last one staying active long enough to be canceled); ``settle(name)`` reads it until terminal."""

    kind: str
    backend: Any
    create: Callable[[str, str], JobInfo]
    #: Reads of ``get_job`` allowed before a job must be terminal (status advances on reads in the fakes).
    max_reads: int = 60
    read_pause_s: float = 0.0
    failure_message: str = "Training data has 0 valid rows."
    #: A completed job has loss points and log files (the fakes have none unless a test gives them some).
    trained: bool = True
    #: ``JobInfo.backend`` of its jobs.
    backend_name: str = "serverless"
    #: ``list_jobs`` lists these jobs. Not the adapter's command jobs: its ``list_jobs`` asks the service
    #: for ``jobType=FineTuning`` only, and ``phi3ft list`` shows cluster jobs from the ledger.
    in_list_jobs: bool = True

    def settle(self, name: str) -> JobInfo:
        info = self.backend.get_job(name)
        for _ in range(self.max_reads):
            if info.status in TERMINAL_STATUSES:
                return info
            if self.read_pause_s:
                time.sleep(self.read_pause_s)
            info = self.backend.get_job(name)
        raise AssertionError(f"{self.kind}: job {name} still {info.status} after {self.max_reads} reads")


# ---- azureml on the offline stack -------------------------------------------------------------------------
def azureml_backend(stack: Any) -> Any:
    from tests.azure_stack import RESOURCE_GROUP, SUBSCRIPTION_ID

    from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

    return AzureMLBackend.connect(
        subscription_id=SUBSCRIPTION_ID,
        resource_group=RESOURCE_GROUP,
        hub=HUB,
        project=PROJECT,
        credential=stack.credential,
        sleep=lambda s: None,
    )


def script_outcome(stack: Any, harness: JobHarness, name: str, outcome: str) -> None:
    """Make the stack's job ``name`` end as ``outcome`` (Completed is its default; "slow" runs long)."""
    if outcome == "Failed":
        stack.faults.fail_job(name, message=harness.failure_message)
    elif outcome == "slow":
        stack.state.set_job_script(name, ["NotStarted", "Queued", *["Running"] * 50, "Completed"])


def azureml_jobs(stack: Any, tmp_path: Path) -> JobHarness:
    stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    backend = azureml_backend(stack)
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n')
    asset = backend.upload_data(data, name="contract-train", version="1")
    harness = JobHarness("azureml", backend, lambda name, outcome: JobInfo(name, "?"))

    def create(name: str, outcome: str) -> JobInfo:
        script_outcome(stack, harness, name, outcome)
        return backend.create_finetuning_job(  # type: ignore[no-any-return]
            name=name,
            model_id=BASE_MODEL,
            training_data=asset.id,
            validation_data=None,
            hyperparameters={"num_train_epochs": "1"},
            output_model_name=FT_MODEL,
            tags=dict(TAGS),
        )

    harness.create = create
    return harness


def azureml_compute_jobs(stack: Any, tmp_path: Path) -> JobHarness:
    """Command jobs on a cluster (``backend: azureml-compute``): same job contract, other create call."""
    from phi3ft.train.settings import TrainingSettings

    harness = azureml_jobs(stack, tmp_path)
    harness.kind, harness.backend_name, harness.in_list_jobs = "azureml-compute", "azureml-compute", False
    backend = harness.backend
    backend.ensure_compute("contract-gpu", vm_size="Standard_NC24ads_A100_v4")
    environment = backend.ensure_training_environment()["id"]
    asset = backend.find_data("contract-train", "1")

    def create(name: str, outcome: str) -> JobInfo:
        script_outcome(stack, harness, name, outcome)
        return backend.create_command_job(  # type: ignore[no-any-return]
            name=name,
            model="phi-3-mini-4k-instruct",
            training=TrainingSettings(),
            training_data=asset.id,
            validation_data=None,
            compute="contract-gpu",
            environment=environment,
            instance_count=1,
            process_count_per_instance=1,
            output_model_name=FT_MODEL,
            tags=dict(TAGS),
        )

    harness.create = create
    return harness


# ---- the in-memory fakes ----------------------------------------------------------------------------------
def fake_jobs(tmp_path: Path) -> JobHarness:
    from tests.fakes.jobs import FakeJobBackend

    backend = FakeJobBackend()
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    asset = backend.upload_data(data, name="contract-train", version="1")
    harness = JobHarness("fake-jobs", backend, lambda name, outcome: JobInfo(name, "?"), trained=False)

    def create(name: str, outcome: str) -> JobInfo:
        backend.script = {
            "Completed": ["Queued", "Running", "Completed"],
            "Failed": ["Queued", "Running", "Failed"],
            "slow": ["Queued", *["Running"] * 50, "Completed"],
        }[outcome]
        backend.script_error = harness.failure_message if outcome == "Failed" else None
        return backend.create_finetuning_job(
            name=name,
            model_id=BASE_MODEL,
            training_data=asset.id,
            validation_data=None,
            hyperparameters={"num_train_epochs": "1"},
            output_model_name=FT_MODEL,
            tags=dict(TAGS),
        )

    harness.create = create
    return harness


def fake_endpoint_jobs() -> JobHarness:
    """The teardown subset: ``delete`` finds a job and cancels it; jobs are put in the dict directly."""
    from tests.fakes.endpoints import FakeEndpointBackend

    backend = FakeEndpointBackend()

    def create(name: str, outcome: str) -> JobInfo:
        status = "Running" if outcome == "slow" else outcome
        backend.jobs[name] = JobInfo(name, status, tags=dict(TAGS))
        return replace(backend.jobs[name])

    harness = JobHarness("fake-endpoints", backend, create, trained=False)
    harness.settle = lambda name: replace(backend.jobs[name])  # type: ignore[method-assign]
    return harness


# ---- local ------------------------------------------------------------------------------------------------
#: A stand-in for ``python -m phi3ft.train OPTIONS.json``: the trainer's stdout protocol and metrics.jsonl.
STAND_IN_TRAINER = r"""
import json, sys, time, pathlib
opts = json.loads(pathlib.Path(sys.argv[1]).read_text())
out = pathlib.Path(opts["settings"]["output_dir"]); out.mkdir(parents=True, exist_ok=True)
mode = pathlib.Path(opts["train_file"]).read_text().strip()
def emit(**kw): print(json.dumps(kw), flush=True)
emit(kind="start", step=0, total_steps=2, message="stand-in")
with (out / "metrics.jsonl").open("w") as m:
    for step in (1, 2):
        m.write(json.dumps({"step": step, "train_loss": 2.0 / step}) + "\n"); m.flush()
        emit(kind="step", step=step, total_steps=2, loss=2.0 / step)
        if mode == "slow":
            time.sleep(60)
if mode == "Failed":
    emit(kind="error", message=MESSAGE, hint="run validate")
    sys.exit(3)
(out / "adapter").mkdir(exist_ok=True)
emit(kind="result", output_dir=str(out), adapter_dir=str(out / "adapter"), steps=2)
"""


def local_jobs(tmp_path: Path) -> JobHarness:
    from phi3ft.targets.local.backend import LocalBackend
    from phi3ft.train.types import TrainOptions

    harness = JobHarness(
        "local",
        None,
        lambda name, outcome: JobInfo(name, "?"),
        max_reads=600,
        read_pause_s=0.05,
        backend_name="local",
    )
    script = tmp_path / "stand_in_trainer.py"
    script.write_text(STAND_IN_TRAINER.replace("MESSAGE", repr(harness.failure_message)))
    backend = LocalBackend(tmp_path / "jobs", trainer=[sys.executable, str(script)])
    harness.backend = backend

    def create(name: str, outcome: str) -> JobInfo:
        train = tmp_path / f"{name}.txt"
        train.write_text(outcome)
        options = TrainOptions(train_file=train)
        options.settings.output_dir = tmp_path / "out" / name
        info = backend.create_local_job(name=name, options=options, tags=dict(TAGS))
        if outcome == "slow":  # cancel once it is training (the runner and trainer both started)
            deadline = time.monotonic() + 30
            while backend.get_job(name).extra.get("progress", {}).get("step") != 1:
                assert time.monotonic() < deadline, "the stand-in trainer did not start"
                time.sleep(0.05)
        return info

    harness.create = create
    return harness


# ---- endpoints --------------------------------------------------------------------------------------------
@dataclass
class EndpointHarness:
    """``model_id`` is a fine-tuned model the backend can serve; ``settle(name)`` reads until provisioned."""

    kind: str
    backend: Any
    model_id: str
    max_reads: int = 20

    def settle(self, name: str) -> Any:
        info = self.backend.get_endpoint(name)
        for _ in range(self.max_reads):
            if info is not None and info.provisioning_state in ("Succeeded", "Failed", "Canceled"):
                return info
            info = self.backend.get_endpoint(name)
        raise AssertionError(f"{self.kind}: endpoint {name} still {info and info.provisioning_state}")


def azureml_endpoints(stack: Any) -> EndpointHarness:
    ws = stack.state.add_project(PROJECT, stack.state.add_hub(HUB))
    stack.state.models[(ws.key, FT_MODEL.lower())] = {
        "1": stack.state.model_version_body(ws, FT_MODEL, "1", {"properties": {"baseModelId": BASE_MODEL}})
    }
    backend = azureml_backend(stack)
    return EndpointHarness("azureml", backend, backend.fine_tuned_model_id(FT_MODEL, "1"))


def fake_endpoints() -> EndpointHarness:
    from tests.fakes.endpoints import FakeEndpointBackend

    backend = FakeEndpointBackend(models={(FT_MODEL, "1")})
    return EndpointHarness("fake-endpoints", backend, backend.fine_tuned_model_id(FT_MODEL, "1"))
