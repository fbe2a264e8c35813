"""Hub and project (ensure/get/delete) and data assets (content-addressed upload/delete) (issue: submit)."""

from __future__ import annotations

from phi3ft.backends.azureml._core import AzureSession


class WorkspaceOps:
    """Mixin of :class:`phi3ft.backends.azureml.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
