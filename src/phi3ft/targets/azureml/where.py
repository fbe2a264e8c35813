"""Where a job's Azure resources live: the one typed reading of job.yaml's ``azure:`` block (or of a ledger
record), and the placeholder subscription that ``phi3ft init`` writes. Stdlib and phi3ft.errors only: no
Azure import, so ``plan`` and the commands read it without the SDK."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from phi3ft.errors import PrerequisiteError, UsageError

if TYPE_CHECKING:
    from phi3ft.config import JobConfig
    from phi3ft.records import JobRecord

#: The all-zero subscription that ``phi3ft init`` and examples/job.yaml write, so that ``plan`` runs without an
#: Azure account. No real subscription has it: Azure commands refuse it before trying a credential.
PLACEHOLDER_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SET_SUBSCRIPTION_HINT = (
    "export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv) (job.yaml reads "
    "${AZURE_SUBSCRIPTION_ID:-...}), or set azure.subscription_id; `az account list -o table` lists yours."
)


def is_placeholder_subscription(value: object) -> bool:
    return str(value or "").strip().lower() == PLACEHOLDER_SUBSCRIPTION


def refuse_placeholder_subscription(value: object) -> None:
    """Exit 4 at once for the placeholder subscription (before any credential is tried)."""
    if is_placeholder_subscription(value):
        raise PrerequisiteError(
            f"azure.subscription_id is the placeholder {PLACEHOLDER_SUBSCRIPTION} that `phi3ft init` writes; "
            "this command needs your Azure subscription.",
            SET_SUBSCRIPTION_HINT,
        )


@dataclass(frozen=True)
class AzureTarget:
    """Where the Azure resources live: enough to reconnect without the job.yaml.

    The one typed reading of job.yaml's ``azure:`` block: :meth:`from_config` is also where
    :class:`phi3ft.targets.azureml.checks.CheckTarget` gets its Azure half (same checks, same errors).
    """

    subscription_id: str
    resource_group: str
    location: str
    hub: str | None
    project: str | None
    auth: str = "auto"
    hub_create: bool = True
    project_create: bool = True

    @classmethod
    def from_config(
        cls,
        cfg: JobConfig,
        *,
        why: str = "",
        subscription_hint: str = "Set azure.subscription_id in job.yaml or export AZURE_SUBSCRIPTION_ID.",
    ) -> AzureTarget:
        """From a loaded job.yaml; ``why`` ends the "no azure: section" message (``check`` says why)."""
        azure = getattr(cfg, "azure", None)
        if azure is None:
            raise UsageError(
                f"job.yaml has no azure: section{why}.",
                "Add azure: {subscription_id, resource_group, hub, project} (see `phi3ft init`).",
            )
        if not azure.subscription_id:
            raise UsageError(
                "No subscription: azure.subscription_id is empty and AZURE_SUBSCRIPTION_ID is not set.",
                subscription_hint,
            )
        refuse_placeholder_subscription(azure.subscription_id)
        return cls(
            subscription_id=str(azure.subscription_id),
            resource_group=str(azure.resource_group),
            location=str(azure.location),
            hub=azure.hub.name,
            project=azure.project.name,
            auth=str(getattr(azure, "auth", None) or "auto"),
            hub_create=bool(getattr(azure.hub, "create_if_missing", getattr(azure.hub, "create", True))),
            project_create=bool(
                getattr(azure.project, "create_if_missing", getattr(azure.project, "create", True))
            ),
        )

    @classmethod
    def from_record(cls, record: JobRecord) -> AzureTarget:
        """From a ledger record written by ``submit`` (subscription_id, resource_group, project, ...)."""
        missing = [k for k in ("subscription_id", "resource_group", "project") if not getattr(record, k)]
        if missing:
            raise UsageError(
                f"The local record of {record.name or 'this job'!r} lacks {', '.join(missing)}.",
                "Pass --config job.yaml so phi3ft knows which Azure project to ask.",
            )
        return cls(
            subscription_id=str(record.subscription_id),
            resource_group=str(record.resource_group),
            location=str(record.location or ""),
            hub=record.hub,
            project=record.project,
            auth=str(record.auth or "auto"),
        )
