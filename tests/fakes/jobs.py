"""In-memory fake of the submit-side backend operations (``WorkspaceOps`` + ``JobOps`` + model lookup).

Follows the adapter's contracts: ensure_* reuse what exists (``created=False``), data assets are
get-or-create by name+version (``uploaded_bytes`` 0 when reused), ``find_job`` returns ``None`` for a
missing job, ``get_job`` raises ``NotFoundError``, cancel of a terminal job is a no-op. ``crash_at`` makes
an operation raise *after* its side effect (``"hub"``, ``"project"``, ``"upload:train"``, ``"job"``) or
before it (``"before:job"``), to test that a re-run resumes. The e2e tests run the same scenarios through
the real SDK on the offline Azure stack, and tests/contract runs one job-contract suite over this fake and
the adapter alike, which keeps this fake honest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from phi3ft.errors import NotFoundError, PrerequisiteError
from phi3ft.targets.base import (
    FAILED_STATUSES,
    TERMINAL_STATUSES,
    DataAsset,
    JobInfo,
    MetricPoint,
    RegistryModel,
    Workspace,
)

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-phi"


class Crash(BaseException):
    """Simulated process death (BaseException: nothing in phi3ft may swallow it)."""


def ws_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{name}"


@dataclass
class FakeJob:
    info: JobInfo
    statuses: list[str] = field(default_factory=list)  # future statuses, one per get_job
    error: str | None = None
    metrics: list[MetricPoint] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)


class FakeJobBackend:
    name = "serverless"

    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.data: dict[str, DataAsset] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.models = {
            "Phi-4-mini-instruct": RegistryModel(
                "Phi-4-mini-instruct",
                "3",
                "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3",
            )
        }
        self.calls: list[str] = []
        self.crash_at: set[str] = set()
        #: Statuses every new job goes through (one per get_job call), ending terminal.
        self.script: list[str] = ["Queued", "Running", "Running", "Completed"]
        self.script_error: str | None = None
        self.uploaded_bytes = 0

    def _crash(self, point: str) -> None:
        if point in self.crash_at:
            self.crash_at.discard(point)
            raise Crash(point)

    # ---- workspaces ---------------------------------------------------------------------------------------
    def get_workspace(self, name: str) -> Workspace | None:
        self.calls.append(f"get_workspace:{name}")
        return self.workspaces.get(name)

    def ensure_hub(self, name: str, *, location: str, create: bool = True, **_: Any) -> Workspace:
        existing = self.get_workspace(name)
        if existing is not None:
            return replace(existing, created=False)
        if not create:
            raise PrerequisiteError(f"Hub {name!r} does not exist.", "Set azure.hub.create_if_missing: true.")
        self.calls.append(f"create_hub:{name}")
        hub = Workspace(name=name, kind="hub", location=location, id=ws_id(name), created=True)
        self.workspaces[name] = replace(hub, created=False)
        self._crash("hub")
        return hub

    def ensure_project(
        self, name: str, *, hub: Workspace, location: str | None = None, create: bool = True, **_: Any
    ) -> Workspace:
        existing = self.get_workspace(name)
        if existing is not None:
            return replace(existing, created=False)
        if not create:
            raise PrerequisiteError(f"Project {name!r} does not exist.", "Set create_if_missing: true.")
        self.calls.append(f"create_project:{name}")
        proj = Workspace(
            name=name,
            kind="project",
            location=location or hub.location,
            id=ws_id(name),
            hub_id=hub.id,
            workspace_id="33333333-3333-3333-3333-333333333333",
            created=True,
        )
        self.workspaces[name] = replace(proj, created=False)
        self._crash("project")
        return proj

    # ---- data ---------------------------------------------------------------------------------------------
    def upload_data(self, path: Path, *, name: str, version: str, **_: Any) -> DataAsset:
        key = f"{name}:{version}"
        self.calls.append(f"get_data:{key}")
        if key in self.data:
            return replace(self.data[key], uploaded_bytes=0)
        role = "validation" if "validation" in name else "train"
        self._crash(f"before:upload:{role}")
        size = Path(path).stat().st_size
        self.calls.append(f"upload:{key}")
        self.uploaded_bytes += size
        asset = DataAsset(
            name, version, f"{ws_id('p')}/data/{name}/versions/{version}", f"azureml://x/{name}", size
        )
        self.data[key] = replace(asset, uploaded_bytes=0)
        self._crash(f"upload:{role}")
        return asset

    def archive_data(self, name: str, version: str) -> bool:
        return self.data.pop(f"{name}:{version}", None) is not None

    # ---- model --------------------------------------------------------------------------------------------
    def resolve_registry_model(self, name: str, version: str | None = None) -> RegistryModel | None:
        self.calls.append(f"model:{name}")
        model = self.models.get(name)
        if model is None or (version is not None and version != model.version):
            return None
        return model

    # ---- jobs ---------------------------------------------------------------------------------------------
    def create_finetuning_job(self, **kw: Any) -> JobInfo:
        name = kw["name"]
        self._crash("before:job")
        self.calls.append(f"create_job:{name}")
        if name in self.jobs:
            raise AssertionError(f"duplicate job {name}")  # the service must never PUT twice
        info = JobInfo(
            name=name,
            status="NotStarted",
            created_at=f"2026-01-01T00:00:{len(self.jobs):02d}Z",
            model_id=kw["model_id"],
            output_model_name=kw["output_model_name"],
            tags=dict(kw.get("tags") or {}),
        )
        self.jobs[name] = FakeJob(info, list(self.script), self.script_error, request=dict(kw))
        self._crash("job")
        return replace(info)

    def find_job(self, name: str) -> JobInfo | None:
        self.calls.append(f"find_job:{name}")
        job = self.jobs.get(name)
        return replace(job.info) if job else None

    def get_job(self, name: str, *, with_error: bool = True) -> JobInfo:
        self.calls.append(f"get_job:{name}")
        job = self.jobs.get(name)
        if job is None:
            raise NotFoundError(f"Not found while trying to read job {name!r}: job {name} not found")
        if job.statuses and job.info.status not in TERMINAL_STATUSES:
            job.info.status = job.statuses.pop(0)
        info = replace(job.info)
        if with_error and info.status in FAILED_STATUSES:
            info.error = job.error
        return info

    def list_jobs(self, *, max_results: int = 100) -> list[JobInfo]:
        """Newest first, as the adapter and the local backend list them."""
        self.calls.append("list_jobs")
        jobs = sorted(self.jobs.values(), key=lambda j: j.info.created_at or "", reverse=True)
        return [replace(j.info) for j in jobs][:max_results]

    def cancel_job(self, name: str) -> JobInfo:
        info = self.get_job(name, with_error=False)
        if info.terminal:
            return info
        self.calls.append(f"cancel:{name}")
        job = self.jobs[name]
        job.info.status = "Canceled"
        job.statuses = []
        return replace(job.info)

    def job_logs(self, name: str) -> Iterator[tuple[str, str]]:
        self.get_job(name, with_error=False)
        yield from sorted(self.jobs[name].logs.items())

    def job_metrics(self, name: str) -> list[MetricPoint]:
        self.get_job(name, with_error=False)
        return list(self.jobs[name].metrics)
