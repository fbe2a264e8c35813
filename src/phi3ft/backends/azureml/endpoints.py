"""Fine-tuned models and serverless endpoints: deploy, keys, invoke, delete (issue: deploy)."""

from __future__ import annotations

from phi3ft.backends.azureml._core import AzureSession


class EndpointOps:
    """Mixin of :class:`phi3ft.backends.azureml.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
