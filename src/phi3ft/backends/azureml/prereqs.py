"""Prerequisite reads and fixes: resource group, providers, role assignments, registry models (issue: check)."""

from __future__ import annotations

from phi3ft.backends.azureml._core import AzureSession


class PrereqOps:
    """Mixin of :class:`phi3ft.backends.azureml.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
