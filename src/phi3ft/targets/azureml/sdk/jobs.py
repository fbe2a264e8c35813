"""Fine-tuning jobs: create, get, list, cancel, logs, metrics (issue: submit).

Contracts (shared rules in :mod:`phi3ft.targets.base`):

- ``create_finetuning_job`` sends one ``PUT {WS}/jobs/{name}``. It builds ``CustomModelFineTuningJob``
  directly: ``create_finetuning_job(validation_data=None)`` raises UnboundLocalError (azure-ai-ml 1.35). The caller picks a
  deterministic name and checks :meth:`JobOps.find_job` first, so a re-run re-attaches instead of paying twice.
- ``get_job`` / ``find_job`` send **one** GET at 2024-10-01-preview (``ml.jobs.get`` sends two), and with
  ``list_jobs``, run details and workspace discovery go through ``rest.py`` (no azure-ai-ml import).
  The service's error message of a Failed job comes from run history (read once, only for failed jobs).
- ``cancel_job`` on a terminal job returns it unchanged (idempotent).
- ``job_logs`` / ``job_metrics`` read run history and the workspace MLflow endpoint; both may be empty
  while a job is queued, and serverless jobs may expose no user logs at all [unverified].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from phi3ft.errors import AzureError, NotFoundError, Phi3ftError
from phi3ft.targets.azureml.sdk._core import (
    ARM_SCOPE,
    AzureSession,
    call,
    create_or_reattach,
    quiet_experimental_warnings,
    retry_policy,
)
from phi3ft.targets.azureml.sdk.rest import rest_for
from phi3ft.targets.base import FAILED_STATUSES, TERMINAL_STATUSES, JobInfo, MetricPoint

T = TypeVar("T")

#: Hyphenated metric names some trainers log, mapped to the two series phi3ft shows.
_METRIC_ALIASES = {
    "loss": "train_loss",
    "train_loss": "train_loss",
    "training_loss": "train_loss",
    "eval_loss": "eval_loss",
    "validation_loss": "eval_loss",
    "val_loss": "eval_loss",
}


def _status_text(value: Any) -> str:
    """JobStatus enums and plain strings alike -> 'Running'."""
    text = getattr(value, "value", value)
    return str(text) if text else "Unknown"


def _job_info_from_rest(body: dict[str, Any]) -> JobInfo:
    """Parse a raw job resource (``as_dict()`` of the REST model, wire names)."""
    props = body.get("properties") or {}
    details = props.get("fineTuningDetails") or {}
    model = details.get("model") or {}
    outputs = props.get("outputs") or {}
    registered = outputs.get("registered_model") or {}
    services = props.get("services") or {}
    studio = (services.get("Studio") or {}).get("endpoint")
    system = body.get("systemData") or {}
    extra: dict[str, Any] = {}
    for key in ("hyperParameters", "trainingData", "validationData", "taskType"):
        if details.get(key) is not None:
            extra[key] = details[key]
    if props.get("experimentName"):
        extra["experiment_name"] = props["experimentName"]
    return JobInfo(
        name=str(body.get("name") or ""),
        status=_status_text(props.get("status")),
        # a Command job is phi3ft's cluster training (create_command_job says so too); else fine-tuning
        backend="azureml-compute" if props.get("jobType") == "Command" else "serverless",
        display_name=props.get("displayName"),
        created_at=system.get("createdAt"),
        model_id=model.get("uri"),
        output_model_name=registered.get("assetName"),
        tags=dict(props.get("tags") or {}),
        studio_url=studio,
        extra=extra,
    )


class JobOps:
    """Mixin of :class:`phi3ft.targets.azureml.sdk.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession

    # ---- create ---------------------------------------------------------------------------------------
    def create_finetuning_job(
        self,
        *,
        name: str,
        model_id: str,
        training_data: str,
        validation_data: str | None,
        hyperparameters: dict[str, str],
        output_model_name: str,
        experiment_name: str = "phi3ft",
        display_name: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> JobInfo:
        """Submit a serverless chat-completion fine-tune; data arguments are data asset ARM ids."""
        from azure.ai.ml import Input, Output
        from azure.ai.ml.constants import AssetTypes

        with quiet_experimental_warnings():
            from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import (
                CustomModelFineTuningJob,
            )

            job = CustomModelFineTuningJob(
                task="ChatCompletion",
                model=Input(type=AssetTypes.MLFLOW_MODEL, path=model_id),
                training_data=Input(type=AssetTypes.URI_FILE, path=training_data),
                validation_data=(
                    Input(type=AssetTypes.URI_FILE, path=validation_data) if validation_data else None
                ),
                hyperparameters={k: str(v) for k, v in hyperparameters.items()},
                outputs={"registered_model": Output(type="mlflow_model", name=output_model_name)},
                name=name,
                experiment_name=experiment_name,
                display_name=display_name or name,
                description=description,
                tags=dict(tags or {}),
            )
            created = create_or_reattach(
                f"create fine-tuning job {name!r}",
                lambda: self.session.ml.jobs.create_or_update(job),
                lambda: self._existing_job_entity(name),
            )
        return JobInfo(
            name=created.name or name,
            status=_status_text(getattr(created, "status", None) or "NotStarted"),
            display_name=getattr(created, "display_name", None),
            created_at=_created_at(created),
            model_id=model_id,
            output_model_name=output_model_name,
            tags=dict(getattr(created, "tags", None) or {}),
            studio_url=getattr(created, "studio_url", None),
        )

    def _existing_job_entity(self, name: str) -> Any:
        """The job ``name`` as an SDK entity, or None (after a 409 on create: re-attach to it)."""
        try:
            return call(f"read job {name!r}", lambda: self.session.ml.jobs.get(name))
        except NotFoundError:
            return None

    # ---- read -----------------------------------------------------------------------------------------
    def _raw_job(self, name: str) -> dict[str, Any]:
        """One ``GET {WS}/jobs/{name}`` at 2024-10-01-preview, without azure-ai-ml (``rest.py``)."""
        return rest_for(self.session).get_job(name)

    def find_job(self, name: str) -> JobInfo | None:
        """The job called ``name``, or ``None`` when there is none (one GET)."""
        try:
            return self.get_job(name, with_error=False)
        except NotFoundError:
            return None

    def get_job(self, name: str, *, with_error: bool = True) -> JobInfo:
        """Status and facts of job ``name``; raises :class:`NotFoundError` when it does not exist."""
        body = call(f"read job {name!r}", lambda: self._raw_job(name))
        info = _job_info_from_rest(body)
        if with_error and info.status in FAILED_STATUSES:
            info.error = self._run_error(name)
        return info

    def _run_error(self, name: str) -> str | None:
        """The innermost error message run history holds for a failed/canceled job (best effort: when run
        history cannot be read, the text says so and why instead of the reason)."""
        try:
            details = self._run_details(name)
        except NotFoundError:
            return None
        except Phi3ftError as exc:
            return f"(the reason could not be read from run history: {exc.message})"
        return _innermost_error(details.get("error"))

    def _run_details(self, name: str) -> dict[str, Any]:
        """Run history's record of job ``name``. Every step is inside the error translation: the first
        access of the SDK's run-history client discovers the region's API host (a request of its own)."""

        def read() -> dict[str, Any]:
            return rest_for(self.session).run_details(name)  # the SDK has no public run-details API

        try:
            return run_history_call(f"read the run history of job {name!r}", read)
        except NotFoundError as exc:
            raise NotFoundError(
                f"Run history has no record of job {name!r} ({exc.message})",
                f"It appears once the job starts: `phi3ft status {name}`, then re-run the command.",
            ) from None

    def list_jobs(self, *, max_results: int = 100) -> list[JobInfo]:
        """Fine-tuning jobs in the project, newest first (server-side ``jobType`` filter, one page)."""
        rest = rest_for(self.session)

        def fetch() -> list[JobInfo]:
            jobs: list[JobInfo] = []
            for item in rest.list_jobs(job_type="FineTuning"):
                body = dict(item)
                if (body.get("properties") or {}).get("jobType") not in (None, "FineTuning"):
                    continue
                jobs.append(_job_info_from_rest(body))
                if len(jobs) >= max_results:
                    break
            return jobs

        jobs = call("list fine-tuning jobs", fetch)
        jobs.sort(key=lambda j: j.created_at or "", reverse=True)
        return jobs

    # ---- cancel ---------------------------------------------------------------------------------------
    def cancel_job(self, name: str) -> JobInfo:
        """Ask the service to cancel; a job already in a terminal state is returned unchanged."""
        info = self.get_job(name, with_error=False)
        if info.status in TERMINAL_STATUSES:
            return info
        call(f"cancel job {name!r}", lambda: self.session.ml.jobs.begin_cancel(name).result())
        return self.get_job(name, with_error=False)

    # ---- logs -----------------------------------------------------------------------------------------
    def job_logs(self, name: str) -> Iterator[tuple[str, str]]:
        """``(log file name, text)`` for every log file run history lists for the job."""
        self.get_job(name, with_error=False)  # NotFoundError with the job's name, not a run-history 404
        details = self._run_details(name)
        files = details.get("logFiles") or {}
        if not files:
            return
        import requests

        for log_name in sorted(files):
            url = files[log_name]
            try:
                resp = requests.get(url, timeout=60)  # SAS URL: no bearer token
                resp.raise_for_status()
            except requests.RequestException as exc:
                raise AzureError(
                    f"Could not download log {log_name} of job {name!r}: {exc}", "Re-run `phi3ft logs`."
                ) from None
            yield log_name, resp.text

    # ---- metrics --------------------------------------------------------------------------------------
    def job_metrics(self, name: str) -> list[MetricPoint]:
        """Training / validation loss per step, from the workspace MLflow endpoint.

        The fine-tuning job is the MLflow root run; the trainer logs ``train_loss``/``eval_loss`` (or
        ``loss``/``validation_loss``) on the job run or its child runs.
        """
        self.get_job(name, with_error=False)  # NotFoundError names the job
        mlflow = _MlflowClient(self.session, self._api_url())
        root = mlflow.get_run(name)
        if root is None:
            return []
        runs = [root]
        experiment_id = (root.get("info") or {}).get("experiment_id")
        if experiment_id:
            runs.extend(mlflow.search_children(experiment_id, name))
        points: dict[tuple[str, int], MetricPoint] = {}
        for run in runs:
            run_id = str(
                (run.get("info") or {}).get("run_id") or (run.get("info") or {}).get("run_uuid") or ""
            )
            if not run_id:
                continue
            keys = {m.get("key") for m in (run.get("data") or {}).get("metrics") or [] if m.get("key")}
            for key in sorted(k for k in keys if k in _METRIC_ALIASES):
                for entry in mlflow.history(run_id, key):
                    series = _METRIC_ALIASES[key]
                    step = int(entry.get("step") or 0)
                    with contextlib.suppress(TypeError, ValueError):
                        points[(series, step)] = MetricPoint(series, step, float(entry["value"]))
        return sorted(points.values(), key=lambda p: (p.name, p.step))

    def _api_url(self) -> str:
        """Region API host from workspace discovery (cached for the session after the first call)."""
        return str(run_history_call("discover the workspace API endpoint", rest_for(self.session).api_url))


def run_history_call(action: str, fn: Callable[[], T]) -> T:
    """:func:`call` for run history and workspace discovery: the SDK's discovery step parses the answer
    itself and raises plain ``ValueError``/``KeyError`` on one it cannot read (a non-JSON error page, a
    proxy's HTML): that is Azure being unreachable, not a bug."""
    try:
        return call(action, fn)
    except (ValueError, KeyError) as exc:
        raise AzureError(
            f"Could not {action}: the workspace's region endpoint gave an unreadable answer "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})",
            "Check the network and proxy (HTTPS_PROXY), then re-run; "
            "the job itself is unaffected (`phi3ft status` reads it without run history).",
        ) from None


def _created_at(entity: Any) -> str | None:
    context = getattr(entity, "creation_context", None)
    created: Any = getattr(context, "created_at", None)
    if created is None:
        return None
    return str(created.isoformat()) if hasattr(created, "isoformat") else str(created)


def _innermost_error(node: Any) -> str | None:
    """Walk ``{"error": {"message", "details": [...], "innerError"...}}`` for the most specific message."""
    best: tuple[int, str] | None = None

    def walk(value: Any, depth: int) -> None:
        nonlocal best
        if isinstance(value, dict):
            message = value.get("message")
            if isinstance(message, str) and message and (best is None or depth > best[0]):
                best = (depth, message)
            for key in ("error", "details", "innerError", "inner_error"):
                walk(value.get(key), depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(node, 0)
    return best[1] if best else None


class _MlflowClient:
    """The three MLflow REST calls phi3ft needs, against ``{api}/mlflow/v1.0{WS}/api/2.0/mlflow``.

    Built on an azure-core pipeline: bearer token (ARM scope, like the SDK's run-history calls) and the
    same retry policy as every other client (429/503 honour ``Retry-After``).
    """

    def __init__(self, session: AzureSession, api_url: str) -> None:
        from azure.core import PipelineClient
        from azure.core.pipeline import policies

        self.base = (
            f"{api_url.rstrip('/')}/mlflow/v1.0/subscriptions/{session.subscription_id}"
            f"/resourceGroups/{session.resource_group}/providers/Microsoft.MachineLearningServices"
            f"/workspaces/{session.workspace}/api/2.0/mlflow"
        )
        self.client: Any = PipelineClient(
            base_url=api_url,
            policies=[
                policies.HeadersPolicy(),
                policies.UserAgentPolicy(sdk_moniker="phi3ft"),
                retry_policy(),
                policies.BearerTokenCredentialPolicy(session.credential, ARM_SCOPE),
                policies.ContentDecodePolicy(),
            ],
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        from azure.core.rest import HttpRequest

        def do() -> dict[str, Any] | None:
            resp = self.client.send_request(HttpRequest(method, f"{self.base}/{path}", **kwargs))
            if resp.status_code == 404:
                return None
            resp.raise_for_status()
            data = resp.json() if resp.content else {}
            return data if isinstance(data, dict) else {}

        return call(f"read MLflow {path.split('?')[0]}", do)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        data = self._send("GET", "runs/get", params={"run_id": run_id})
        return (data or {}).get("run")

    def search_children(self, experiment_id: str, root: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "filter": f"tags.mlflow.rootRunId = '{root}'",
                "max_results": 1000,
            }
            if token:
                body["page_token"] = token
            data = self._send("POST", "runs/search", json=body) or {}
            runs.extend(r for r in data.get("runs") or [] if (r.get("info") or {}).get("run_id") != root)
            token = data.get("next_page_token")
            if not token:
                return runs

    def history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        data = self._send("GET", "metrics/get-history", params={"run_id": run_id, "metric_key": key}) or {}
        return list(data.get("metrics") or [])
