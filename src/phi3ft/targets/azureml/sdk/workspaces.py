"""Hub and project (ensure/get/delete) and data assets (content-addressed upload/archive) (issue: submit).

Contracts (shared rules in :mod:`phi3ft.targets.base`):

- ``ensure_hub`` / ``ensure_project`` GET first: ``begin_create`` on an existing name silently turns into
  an update, so an existing workspace is reused untouched and reported ``created=False``.
- ``upload_data`` is get-or-create by ``name`` + ``version``; callers pass a content hash as the version,
  so an unchanged file costs one GET and zero bytes. A crash mid-upload leaves no data asset (the asset PUT
  comes last), so the next call uploads again; the SDK skips a blob already marked ``upload_status=completed``,
  and ``uploaded_bytes`` then says 0 (what was sent, not the file size).
- ``archive_data`` and ``delete_workspace`` return ``False`` when the resource is already gone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phi3ft.errors import NotFoundError, PrerequisiteError
from phi3ft.targets.azureml.sdk._core import (
    AzureSession,
    call,
    create_or_reattach,
    quiet_experimental_warnings,
)
from phi3ft.targets.azureml.sdk.rest import rest_for
from phi3ft.targets.base import DataAsset, Workspace


def workspace_from_entity(entity: Any, *, created: bool = False) -> Workspace:
    """azure-ai-ml Workspace/Hub/Project entity -> backend-neutral :class:`Workspace`."""
    kind = str(getattr(entity, "_kind", "") or getattr(entity, "kind", "") or "").lower() or (
        "project" if getattr(entity, "hub_id", None) else "default"
    )
    return Workspace(
        name=str(entity.name),
        kind=kind,
        location=str(entity.location or "").replace(" ", "").lower(),
        id=str(entity.id or ""),
        hub_id=getattr(entity, "hub_id", None),
        workspace_id=getattr(entity, "_workspace_id", None),
        created=created,
        tags={str(k): str(v) for k, v in (getattr(entity, "tags", None) or {}).items()},
    )


def workspace_from_rest(body: dict[str, Any]) -> Workspace:
    """The raw workspace resource (what ``workspaces.get`` parses) -> :class:`Workspace`."""
    props = body.get("properties") or {}
    hub_id = props.get("hubResourceId")
    kind = str(body.get("kind") or "").lower() or ("project" if hub_id else "default")
    return Workspace(
        name=str(body.get("name") or ""),
        kind=kind,
        location=str(body.get("location") or "").replace(" ", "").lower(),
        id=str(body.get("id") or ""),
        hub_id=hub_id,
        workspace_id=props.get("workspaceId"),
        # the creation-id tag is how a killed run's resource is recognised as phi3ft's (issue 20 §1)
        tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
    )


def read_workspace(session: AzureSession, name: str) -> Workspace | None:
    """The hub or project called ``name`` in the resource group, or ``None`` (one GET, through
    ``rest.py``: reading needs no azure-ai-ml)."""
    rest = rest_for(session, project=False)
    try:
        body = call(f"read workspace {name!r}", lambda: rest.get_workspace_by_name(name))
    except NotFoundError:
        return None
    return workspace_from_rest(body) if body else None


def _data_from_entity(entity: Any, *, uploaded_bytes: int = 0, reused_blob: bool = False) -> DataAsset:
    return DataAsset(
        name=entity.name,
        version=str(entity.version),
        id=str(entity.id or ""),
        path=str(entity.path or ""),
        uploaded_bytes=uploaded_bytes,
        reused_blob=reused_blob,
    )


def _same_id(a: str | None, b: str | None) -> bool:
    return bool(a and b) and str(a).rstrip("/").lower() == str(b).rstrip("/").lower()


class WorkspaceOps:
    """Mixin of :class:`phi3ft.targets.azureml.sdk.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession

    # ---- workspaces -----------------------------------------------------------------------------------
    def get_workspace(self, name: str) -> Workspace | None:
        """The hub or project called ``name`` in the resource group, or ``None`` (one GET)."""
        return read_workspace(self.session, name)

    def ensure_hub(
        self,
        name: str,
        *,
        location: str,
        create: bool = True,
        display_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Workspace:
        """Reuse hub ``name`` or create it (an ARM deployment that takes minutes on real Azure).

        Raises :class:`PrerequisiteError` when the name belongs to a workspace that is not a hub, or when
        the hub is missing and ``create`` is False.
        """
        existing = self.get_workspace(name)
        if existing is not None:
            if existing.kind != "hub":
                raise PrerequisiteError(
                    f"Workspace {name!r} exists but is a {existing.kind}, not a hub.",
                    "Pick another azure.hub.name in job.yaml (serverless fine-tuning needs a hub-based project).",
                )
            return existing
        if not create:
            raise PrerequisiteError(
                f"Hub {name!r} does not exist in resource group {self.session.resource_group!r}.",
                "Set azure.hub.create: true in job.yaml, or create the hub in the Azure AI Foundry portal.",
            )
        from azure.ai.ml.entities import Hub

        hub = Hub(name=name, location=location, display_name=display_name or name, tags=tags or {})
        entity = call(
            f"create hub {name!r}",
            lambda: self.session.rg_ml.workspaces.begin_create(hub).result(),
        )
        return workspace_from_entity(entity, created=True)

    def ensure_project(
        self,
        name: str,
        *,
        hub: Workspace,
        location: str | None = None,
        create: bool = True,
        display_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Workspace:
        """Reuse project ``name`` (it must belong to ``hub``) or create it in the hub's region."""
        existing = self.get_workspace(name)
        if existing is not None:
            if existing.kind != "project":
                raise PrerequisiteError(
                    f"Workspace {name!r} exists but is a {existing.kind}, not a hub-based project.",
                    "Pick another azure.project.name in job.yaml.",
                )
            if existing.hub_id and hub.id and not _same_id(existing.hub_id, hub.id):
                raise PrerequisiteError(
                    f"Project {name!r} belongs to another hub ({existing.hub_id.rsplit('/', 1)[-1]}).",
                    f"Pick another azure.project.name, or set azure.hub.name to that hub instead of {hub.name!r}.",
                )
            return existing
        if not create:
            raise PrerequisiteError(
                f"Project {name!r} does not exist in hub {hub.name!r}.",
                "Set azure.project.create_if_missing: true in job.yaml, or create the project in the portal.",
            )
        from azure.ai.ml.entities import Project

        project = Project(
            name=name,
            hub_id=hub.id,
            location=location or hub.location,
            display_name=display_name or name,
            tags=tags or {},
        )
        entity = call(
            f"create project {name!r}",
            lambda: self.session.rg_ml.workspaces.begin_create(project).result(),
        )
        return workspace_from_entity(entity, created=True)

    def delete_workspace(
        self, name: str, *, delete_dependent_resources: bool, permanently_delete: bool = False
    ) -> bool:
        """Delete a project or hub (projects before their hub); ``False`` when it was already gone."""
        if self.get_workspace(name) is None:
            return False
        rest_for(self.session, project=False).forget_workspace(name)
        try:
            call(
                f"delete workspace {name!r}",
                lambda: self.session.rg_ml.workspaces.begin_delete(
                    name,
                    delete_dependent_resources=delete_dependent_resources,
                    permanently_delete=permanently_delete,
                ).result(),
            )
        except NotFoundError:
            return False
        return True

    # ---- data assets ----------------------------------------------------------------------------------
    def find_data(self, name: str, version: str) -> DataAsset | None:
        """The data asset ``name:version`` in the project, or ``None`` (one GET)."""
        rest = rest_for(self.session)
        try:
            body = call(f"read data asset {name}:{version}", lambda: rest.get_data_version(name, version))
        except NotFoundError:
            return None
        return DataAsset(
            name=name,
            version=str(body.get("name") or version),
            id=str(body.get("id") or ""),
            path=str((body.get("properties") or {}).get("dataUri") or ""),
        )

    def _existing_data_entity(self, name: str, version: str) -> Any:
        try:
            return call(
                f"read data asset {name}:{version}", lambda: self.session.ml.data.get(name, version=version)
            )
        except NotFoundError:
            return None

    def upload_data(
        self,
        path: Path,
        *,
        name: str,
        version: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> DataAsset:
        """Get-or-create data asset ``name:version`` from the local file ``path`` (``uri_file``).

        ``uploaded_bytes`` is what was sent: the file size when the SDK uploaded the blob, 0 when the asset
        already existed or Azure already had the blob (a previous run stopped after the blob, before the
        asset); ``reused_blob`` says which.
        """
        found = self.find_data(name, version)
        if found is not None:
            return found
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import Data

        data = Data(
            name=name,
            version=version,
            type=AssetTypes.URI_FILE,
            path=str(path),
            description=description,
            tags=tags or {},
        )
        with quiet_experimental_warnings(), count_sent_files() as sent:
            entity = create_or_reattach(  # 409 "blob/asset already exists": another run got there first
                f"upload {path.name} as data asset {name}:{version}",
                lambda: self.session.ml.data.create_or_update(data),
                lambda: self._existing_data_entity(name, version),
            )
        uploaded = os.path.getsize(path) if sent is None else sum(sent)
        return _data_from_entity(entity, uploaded_bytes=uploaded, reused_blob=sent is not None and not sent)

    def archive_data(self, name: str, version: str) -> bool:
        """Soft-delete (archive) a data asset version; ``False`` when it does not exist.

        Azure has no hard delete for data versions; an archived name+version cannot be registered again,
        which content-addressed versions never need.
        """
        try:
            call(
                f"archive data asset {name}:{version}",
                lambda: self.session.ml.data.archive(name, version=version),
            )
        except NotFoundError:
            return False
        return True


# ---- what the SDK really sent ---------------------------------------------------------------------------
_sent = threading.local()
_hook_lock = threading.Lock()
_HOOKED = "_phi3ft_counts_sent"
#: azure-ai-ml modules that import ``upload_file`` by name (blob and ADLS Gen2 datastores).
_UPLOAD_MODULES = (
    "azure.ai.ml._artifacts._blob_storage_helper",
    "azure.ai.ml._artifacts._gen2_storage_helper",
)


def _install_upload_counter() -> bool:
    """Wrap azure-ai-ml's per-file ``upload_file`` (once) so a caller can see which files it really sent.

    The SDK calls it only when the blob is missing or unconfirmed; when Azure already holds the blob marked
    ``upload_status=completed`` it skips it. The wrapper records into a thread-local list and changes
    nothing else. Returns False when the helper has moved (callers then fall back to the file size).
    """
    import importlib

    with _hook_lock:
        installed = False
        for module_name in _UPLOAD_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            original = getattr(module, "upload_file", None)
            if original is None:
                continue
            if getattr(original, _HOOKED, False):
                installed = True
                continue

            def counting(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                result = __original(*args, **kwargs)
                record = getattr(_sent, "sizes", None)
                if record is not None:
                    source = kwargs.get("source", args[1] if len(args) > 1 else None)
                    with contextlib.suppress(OSError, TypeError):
                        record.append(os.path.getsize(str(source)))
                return result

            setattr(counting, _HOOKED, True)
            module.upload_file = counting  # type: ignore[attr-defined]
            installed = True
        return installed


@contextlib.contextmanager
def count_sent_files() -> Iterator[list[int] | None]:
    """Sizes of the files azure-ai-ml uploads in this thread inside the block; ``None`` when unknowable."""
    if not _install_upload_counter():
        yield None
        return
    previous = getattr(_sent, "sizes", None)
    sizes: list[int] = []
    _sent.sizes = sizes
    try:
        yield sizes
    finally:
        _sent.sizes = previous
