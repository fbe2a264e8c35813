"""Open the backend for a job.yaml (or for a job the local ledger remembers).

The one place a command turns settings into a backend object: it honours ``AppContext.backend_factory``
(tests pass an in-memory or stack-backed backend) and ``credential_factory`` (tests pass a fake credential),
and otherwise builds the Azure ML adapter with the production credential chain chosen by ``--auth``.
Importing this module imports no Azure code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The typed reading of job.yaml's azure: block lives with the Azure target (targets/azureml/where.py);
# re-exported here, where the commands open backends.
from phi3ft.targets.azureml.where import PLACEHOLDER_SUBSCRIPTION as PLACEHOLDER_SUBSCRIPTION
from phi3ft.targets.azureml.where import SET_SUBSCRIPTION_HINT as SET_SUBSCRIPTION_HINT
from phi3ft.targets.azureml.where import AzureTarget as AzureTarget
from phi3ft.targets.azureml.where import is_placeholder_subscription as is_placeholder_subscription
from phi3ft.targets.azureml.where import refuse_placeholder_subscription as refuse_placeholder_subscription

if TYPE_CHECKING:
    from phi3ft.config import JobSpec
    from phi3ft.records import JobRecord


def open_local_backend(app_ctx: Any) -> Any:
    """The local trainer backend: jobs live under ``<state dir>/jobs/`` (no Azure)."""
    from phi3ft.targets.local.backend import LocalBackend

    return LocalBackend(
        app_ctx.state_dir / "jobs", env=dict(app_ctx.env), clock=app_ctx.clock, sleep=app_ctx.sleep
    )


def open_backend_for_record(app_ctx: Any, record: JobRecord, *, auth: str | None = None) -> Any:
    """The backend that ran the job a ledger record describes (``backend`` key; Azure when absent)."""
    if record.runs_locally:
        return open_local_backend(app_ctx)
    return open_backend(app_ctx, AzureTarget.from_record(record), auth=auth)


def open_backend(app_ctx: Any, cfg: JobSpec | AzureTarget, *, auth: str | None = None) -> Any:
    """The backend for ``cfg`` (a JobConfig or an :class:`AzureTarget`); ``auth`` overrides the config's.

    ``backend: local`` gets the local trainer backend; serverless and azureml-compute share the Azure ML
    adapter (it has the fine-tuning and the compute-cluster operations).
    """
    if app_ctx.backend_factory is not None:
        return app_ctx.backend_factory(cfg)
    if not isinstance(cfg, AzureTarget) and cfg.runs_locally:
        return open_local_backend(app_ctx)
    target = cfg if isinstance(cfg, AzureTarget) else AzureTarget.from_config(cfg)
    mode = auth or target.auth
    credential = app_ctx.credential_factory(mode) if app_ctx.credential_factory is not None else None
    from phi3ft.targets.azureml.sdk.backend import AzureMLBackend

    return AzureMLBackend.connect(
        subscription_id=target.subscription_id,
        resource_group=target.resource_group,
        location=target.location or None,
        hub=target.hub,
        project=target.project,
        auth=mode,
        credential=credential,
        clock=app_ctx.clock,
        sleep=app_ctx.sleep,
    )
