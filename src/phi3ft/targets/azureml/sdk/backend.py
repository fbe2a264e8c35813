"""The Azure ML backend object that services receive (composed of one mixin per concern)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from phi3ft.targets.azureml.sdk._core import AzureSession
from phi3ft.targets.azureml.sdk.compute import ComputeOps
from phi3ft.targets.azureml.sdk.credentials import shared_credential
from phi3ft.targets.azureml.sdk.endpoints import EndpointOps
from phi3ft.targets.azureml.sdk.jobs import JobOps
from phi3ft.targets.azureml.sdk.prereqs import PrereqOps
from phi3ft.targets.azureml.sdk.workspaces import WorkspaceOps


class AzureMLBackend(PrereqOps, WorkspaceOps, JobOps, ComputeOps, EndpointOps):
    """Serverless fine-tuning, or a command job on a GPU cluster (``ComputeOps``), in an Azure AI Foundry
    hub project, through the real azure-ai-ml SDK.

    Each mixin documents its operations' contracts; the shared rules are in ``phi3ft.targets.base``.
    """

    name = "serverless"

    def __init__(
        self,
        session: AzureSession,
        *,
        hub: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.hub = hub
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def connect(
        cls,
        *,
        subscription_id: str,
        resource_group: str,
        location: str | None = None,
        hub: str | None = None,
        project: str | None = None,
        auth: str = "auto",
        credential: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> AzureMLBackend:
        """Build from plain settings; ``credential`` overrides the ``auth`` chain (tests, library users).

        Without one, every backend of the process shares one credential for ``auth`` (built once; tokens
        remembered in memory only): see ``credentials.py``.
        """
        session = AzureSession(
            credential if credential is not None else shared_credential(auth),
            subscription_id,
            resource_group,
            workspace=project,
            location=location,
            auth=auth,
        )
        return cls(session, hub=hub, clock=clock, sleep=sleep)
