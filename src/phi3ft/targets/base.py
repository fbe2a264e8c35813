"""Backend-neutral types and the contracts services rely on.

Nothing outside ``phi3ft.targets`` knows it is talking to Azure: services use these dataclasses and
call a backend object. Each operation's docstring in the concrete backend states its contract
(idempotency, what is retried, what is terminal); the rules shared by all backends are here.

Shared contracts:
- Deletes are idempotent: deleting something already gone returns normally (``False`` = was absent).
- Transient failures (429, 500, 502, 503, 504, connection resets) are retried inside the backend with
  backoff that honours ``Retry-After``; what reaches a service is final.
- Backend errors are :class:`phi3ft.errors.Phi3ftError` subclasses with a one-line message (the innermost
  service message) and a hint; SDK exceptions never leak.

Leaf module: stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Job statuses of Azure ML. Completed = success; FAILED_STATUSES exit 5.
SUCCESS_STATUSES = frozenset({"Completed"})
FAILED_STATUSES = frozenset({"Failed", "Canceled", "NotResponding"})
TERMINAL_STATUSES = SUCCESS_STATUSES | FAILED_STATUSES | {"Paused"}
#: The statuses a job passes through before a terminal one (Azure ML's ``JobStatus``; the local backend
#: uses NotStarted and Running). ``Unknown`` is what a backend reports when the service sends none.
ACTIVE_STATUSES = frozenset(
    {
        "NotStarted",
        "Starting",
        "Provisioning",
        "Preparing",
        "Queued",
        "Running",
        "Finalizing",
        "CancelRequested",
    }
)
#: Every status a backend's ``JobInfo.status`` may hold (the backend-contract tests check it).
JOB_STATUSES = TERMINAL_STATUSES | ACTIVE_STATUSES | {"Unknown"}


@dataclass(frozen=True)
class Identity:
    """Who the credential is: ``kind`` is user | service_principal | managed_identity | unknown."""

    kind: str
    tenant_id: str | None
    object_id: str | None
    display_name: str | None = None
    source: str | None = None  # which credential produced the token (e.g. EnvironmentCredential)


@dataclass(frozen=True)
class Workspace:
    name: str
    kind: str  # "hub" | "project"
    location: str
    id: str
    hub_id: str | None = None
    workspace_id: str | None = None  # GUID; needed for fine-tuned model ids
    created: bool = False  # True when this call created it
    tags: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RegistryModel:
    name: str
    version: str
    id: str  # azureml://registries/azureml/models/{name}/versions/{version}
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    archived: bool = False


@dataclass(frozen=True)
class DataAsset:
    name: str
    version: str
    id: str
    path: str
    uploaded_bytes: int = 0  # what was sent: 0 when the content was already there
    reused_blob: bool = False  # the asset is new but Azure already had the blob (nothing sent)


@dataclass
class JobInfo:
    name: str
    status: str
    backend: str = "serverless"
    display_name: str | None = None
    created_at: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    model_id: str | None = None
    output_model_name: str | None = None
    error: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    studio_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class MetricPoint:
    name: str  # e.g. train_loss, eval_loss
    step: int
    value: float


@dataclass
class EndpointInfo:
    name: str
    provisioning_state: str
    model_id: str
    scoring_uri: str | None = None
    location: str | None = None
    content_safety: str | None = None
    auth_mode: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
