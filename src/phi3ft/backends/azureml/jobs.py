"""Fine-tuning jobs: create, get, list, cancel, logs, metrics (issue: submit)."""

from __future__ import annotations

from phi3ft.backends.azureml._core import AzureSession


class JobOps:
    """Mixin of :class:`phi3ft.backends.azureml.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
