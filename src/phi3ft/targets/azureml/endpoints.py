"""Services from a fine-tuned model to a clean subscription: deploy, invoke, chat, delete.

The eval loop itself is target-agnostic (:mod:`phi3ft.evaluation`): ``phi3ft eval`` runs it over the
chat client of an endpoint deployed here.

Services never print: long operations report through an ``on_event`` callback and return a result
object that the CLI renders. The backend is duck-typed (``phi3ft.targets.azureml.sdk`` in production, an
in-memory fake in unit tests); nothing here imports Azure.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from phi3ft.errors import (
    AzureError,
    NotFoundError,
    Phi3ftError,
    PrerequisiteError,
    UsageError,
)
from phi3ft.evaluation import ChatBackend
from phi3ft.polling import Poll, retry_transient, wait_until
from phi3ft.state import CREATING, CREATION_TAG, StateStore
from phi3ft.steps import Described, PlanAction
from phi3ft.targets.base import TERMINAL_STATUSES, EndpointInfo

#: job.yaml spelling -> REST ``properties.authMode``.
AUTH_MODE_REST = {"key": "Key", "aad": "AAD", "key-and-aad": "KeyAndAAD"}
ENDPOINT_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{2,51}$")
DEFAULT_DEPLOY_TIMEOUT = 3600.0

MODEL_IN_USE = (
    "Model {model} still has a deployment ({endpoints}). You cannot delete a custom model while it has an "
    "existing deployment: delete the deployment first, then the model."
)


# ======================================================================================================
# Models and endpoints: resolving names
# ======================================================================================================


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    job: str | None = None
    #: True when the ledger says phi3ft produced it (a job phi3ft submitted).
    created_by_phi3ft: bool = False

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


def parse_model_ref(text: str) -> tuple[str, str]:
    """``NAME:VERSION`` (or ``NAME``, version 1: a fine-tune registers version 1)."""
    name, _, version = text.strip().partition(":")
    if not name or (":" in version) or (_ and not version):
        raise UsageError(
            f"--model {text!r} is not NAME:VERSION.", "Example: --model phi-3-mini-ft-1a2b3c4d:1"
        )
    return name, version or "1"


def _job_output_model(record: Mapping[str, Any]) -> str | None:
    for key in ("output_model_name", "output_model", "model_name", "registered_model"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def resolve_model(
    store: StateStore, backend: Any, *, job: str | None = None, model: str | None = None
) -> ModelRef:
    """The fine-tuned model to deploy: ``--model`` wins, else the job's output model (``JOB`` or the last job)."""
    if model:
        name, version = parse_model_ref(model)
        ledger = store.get("model", f"{name}:{version}") or {}
        return ModelRef(name, version, ledger.get("job"), bool(ledger.get("created_by_phi3ft")))
    job_name = job or store.last_job
    if not job_name:
        raise UsageError(
            "No job given and the local ledger has no last job.",
            "Pass the job name (`phi3ft deploy JOB`) or the model (`phi3ft deploy --model NAME:VERSION`).",
        )
    record = store.get("job", job_name) or {}
    output = _job_output_model(record)
    status = record.get("status")
    if backend is not None and hasattr(backend, "find_job"):
        info = backend.find_job(job_name)
        if info is None and not record:
            raise NotFoundError(
                f"Job {job_name} does not exist in the project.", "List jobs with `phi3ft status --all`."
            )
        if info is not None:
            status = info.status
            output = info.output_model_name or output
    if status and status != "Completed":
        hint = (
            f"Wait for it: `phi3ft watch {job_name}`."
            if status not in TERMINAL_STATUSES
            else f"See why with `phi3ft logs {job_name}`, fix, and submit again."
        )
        raise PrerequisiteError(
            f"Job {job_name} is {status}; only a Completed job has a model to deploy.", hint
        )
    if not output:
        raise NotFoundError(
            f"Job {job_name} names no output model.", "Pass the model explicitly: --model NAME:VERSION."
        )
    version = str(record.get("output_model_version") or "1")
    return ModelRef(output, version, job_name, bool(record.get("created_by_phi3ft", bool(record))))


def default_endpoint_name(model: ModelRef, scope: str = "") -> str:
    """Deterministic but unique per region (serverless endpoint names are unique per region)."""
    digest = hashlib.sha256(f"{scope}|{model.key}".encode()).hexdigest()[:6]
    slug = re.sub(r"[^a-z0-9]+", "-", model.name.lower()).strip("-") or "phi3ft"
    if not slug[0].isalpha():
        slug = "ep-" + slug
    return f"{slug[:44].rstrip('-')}-{digest}"


def check_endpoint_name(name: str) -> str:
    if not ENDPOINT_NAME_RE.match(name):
        raise UsageError(
            f"Endpoint name {name!r} is not valid.",
            "Use 3-52 letters, digits or hyphens, starting with a letter.",
        )
    return name


def resolve_endpoint_name(store: StateStore, name: str | None) -> str:
    """``ENDPOINT`` or, when omitted, the endpoint the ledger recorded most recently."""
    if name:
        return name
    # a base-model endpoint (``deploy --baseline``) is never "the" endpoint
    records = sorted(
        (r for r in store.list("endpoint") if not r.get("baseline")),
        key=lambda r: str(r.get("created_at", "")),
    )
    if not records:
        raise UsageError(
            "No endpoint given and the local ledger has none.",
            "Pass the endpoint name, or deploy one first with `phi3ft deploy`.",
        )
    return str(records[-1]["name"])


def same_model(model_id: str, model: ModelRef) -> bool:
    parts = model_id.rstrip("/").split("/")
    try:
        i = parts.index("models")
    except ValueError:
        return False
    version = parts[i + 3] if len(parts) > i + 3 and parts[i + 2] == "versions" else ""
    return parts[i + 1 : i + 2] == [model.name] and version in ("", model.version)


# ======================================================================================================
# Deploy
# ======================================================================================================


@dataclass
class DeployEvent:
    """``kind``: resolved | exists | creating | accepted | waiting | ready | warning."""

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeployResult:
    endpoint: EndpointInfo
    model: ModelRef
    model_id: str
    created: bool
    waited: bool
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        e = self.endpoint
        return {
            "endpoint": e.name,
            "scoring_uri": e.scoring_uri,
            "provisioning_state": e.provisioning_state,
            "endpoint_state": e.extra.get("endpoint_state"),
            "model": self.model.key,
            "model_id": self.model_id,
            "content_safety": e.content_safety,
            "auth_mode": e.auth_mode,
            "created": self.created,
            "waited": self.waited,
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class DeployContext:
    """What the deploy steps share: the inputs, and what each step hands to the next."""

    backend: Any
    store: StateStore
    model: ModelRef
    endpoint_name: str
    content_safety: bool
    rest_auth: str
    tags: Mapping[str, str] | None
    extra: dict[str, Any]
    timeout: float | None
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    schedule: Iterator[float] | None
    #: Where the steps' progress goes, as it happens (the CLI prints it).
    emit: Callable[[DeployEvent], None]
    model_id: str | None = None
    info: EndpointInfo | None = None
    created: bool = False
    waited: bool = False
    #: The plan actions of the steps that ran to the end, in order (what a test compares with the plan).
    ran: list[PlanAction] = field(default_factory=list)


@dataclass(kw_only=True)
class DeployStep(Described):
    """One step of ``phi3ft deploy``: described by ``deploy --dry-run``, run by ``deploy``."""

    def run(self, ctx: DeployContext) -> None:
        raise NotImplementedError(type(self).__name__)


@dataclass(kw_only=True)
class ResolveEndpointModel(DeployStep):
    """The serverless model id to serve: the fine-tuned model of the project, or a given registry model."""

    kind: ClassVar[str] = "resolve_model"

    def run(self, ctx: DeployContext) -> None:
        model, backend = ctx.model, ctx.backend
        if ctx.model_id is None:  # a fine-tuned model of the project (``model_id`` given: a registry model)
            if hasattr(backend, "model_exists") and not backend.model_exists(model.name, model.version):
                raise NotFoundError(
                    f"Model {model} does not exist in the project.",
                    "A fine-tune registers its model when the job completes: check `phi3ft status"
                    + (f" {model.job}" if model.job else "")
                    + "`, or pass --model NAME:VERSION.",
                )
            ctx.model_id = backend.fine_tuned_model_id(model.name, model.version)
        ctx.emit(
            DeployEvent(
                "resolved", f"Model {model} -> {ctx.model_id}", {"model": model.key, "model_id": ctx.model_id}
            )
        )
        if not ctx.content_safety:
            ctx.emit(
                DeployEvent(
                    "warning",
                    "Content safety is OFF for this endpoint: prompts and completions are not screened for "
                    "harmful content. Keep it on for anything users can reach.",
                )
            )


@dataclass(kw_only=True)
class EnsureEndpoint(DeployStep):
    """Create the endpoint, or re-attach to one of that name serving this model (never a second one)."""

    kind: ClassVar[str] = "ensure_endpoint"

    def run(self, ctx: DeployContext) -> None:
        assert ctx.model_id is not None  # ResolveEndpointModel ran first
        with ctx.store.run_lock():  # one run per .phi3ft from the lookup to the ledger write (not the wait)
            ctx.info, ctx.created = _create_or_reattach_endpoint(
                ctx.backend,
                ctx.store,
                ctx.model,
                endpoint_name=ctx.endpoint_name,
                model_id=ctx.model_id,
                content_safety=ctx.content_safety,
                rest_auth=ctx.rest_auth,
                tags=ctx.tags,
                extra=ctx.extra,
                emit=ctx.emit,
            )
        model, store = ctx.model, ctx.store
        if model.created_by_phi3ft and store.get("model", model.key) is None:
            store.record(
                "model",
                model.key,
                name=model.name,
                version=model.version,
                job=model.job,
                created_by_phi3ft=True,
            )


@dataclass(kw_only=True)
class WaitEndpoint(DeployStep):
    """Poll the endpoint until it is ready (or failed), riding out Azure's transient errors."""

    kind: ClassVar[str] = "wait_endpoint"

    def run(self, ctx: DeployContext) -> None:
        info, name = ctx.info, ctx.endpoint_name
        assert info is not None  # EnsureEndpoint ran first
        if info.provisioning_state.lower() == "succeeded":
            return
        ctx.waited = True
        model_id = str(ctx.model_id)

        def fetch() -> EndpointInfo:
            current = ctx.backend.get_endpoint(name)
            return current if current is not None else EndpointInfo(name, "Creating", model_id)

        def on_poll(poll: Poll[EndpointInfo]) -> None:
            e = poll.value
            ctx.emit(
                DeployEvent(
                    "waiting",
                    f"{e.provisioning_state} ({int(poll.elapsed)} s)",
                    {
                        "state": e.provisioning_state,
                        "elapsed_s": round(poll.elapsed, 1),
                        "attempt": poll.attempt,
                    },
                )
            )

        info = wait_until(
            fetch,
            lambda e: e.provisioning_state.lower() in {"succeeded", "failed", "canceled"},
            timeout=ctx.timeout,
            clock=ctx.clock,
            sleep=ctx.sleep,
            schedule=ctx.schedule,
            on_poll=on_poll,
            what=f"endpoint {name}",
            outage_hint="Azure kept failing longer than the outage window (PHI3FT_OUTAGE_WINDOW); the endpoint "
            "keeps provisioning: re-run `phi3ft deploy` to re-attach.",
        )
        ctx.info = info
        if info.provisioning_state.lower() != "succeeded":
            ctx.store.record("endpoint", name, state=info.provisioning_state)
            raise AzureError(
                f"Endpoint {name} ended {info.provisioning_state} while provisioning.",
                f"Delete it and deploy again: `phi3ft delete --endpoint {name} --yes`; if it fails "
                "again, check that the project region may host this fine-tuned model.",
            )


def deploy_steps(
    model: ModelRef,
    *,
    endpoint_name: str,
    content_safety: bool = True,
    auth_mode: str = "key",
    wait: bool = True,
    model_id: str | None = None,
) -> list[DeployStep]:
    """The steps ``phi3ft deploy`` runs, in order; ``deploy --dry-run`` prints exactly these (offline)."""
    rest_auth = AUTH_MODE_REST.get(auth_mode.lower(), auth_mode)
    steps: list[DeployStep] = [
        ResolveEndpointModel(
            target=model.key,
            summary=(
                f"serve registry model {model_id}"
                if model_id
                else f"look up the fine-tuned model {model} in the project and its serverless model id"
            ),
            params={"model": model.key, "model_id": model_id},
        ),
        EnsureEndpoint(
            target=endpoint_name,
            summary=f"create serverless endpoint {endpoint_name} for {model} (content safety "
            f"{'on' if content_safety else 'OFF'}, auth {rest_auth}); re-attach if it already serves it",
            params={"content_safety": content_safety, "auth_mode": rest_auth},
        ),
    ]
    if wait:
        steps.append(
            WaitEndpoint(
                target=endpoint_name,
                summary=f"wait until {endpoint_name} is ready and print its scoring URI",
                params={},
            )
        )
    return steps


def deploy_endpoint(
    backend: Any,
    store: StateStore,
    model: ModelRef,
    *,
    endpoint_name: str,
    content_safety: bool = True,
    auth_mode: str = "key",
    tags: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float | None = DEFAULT_DEPLOY_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    schedule: Iterator[float] | None = None,
    on_event: Callable[[DeployEvent], None] | None = None,
    ledger_fields: Mapping[str, Any] | None = None,
    model_id: str | None = None,
    ran: list[PlanAction] | None = None,
) -> DeployResult:
    """Create (or re-attach to) a serverless endpoint for ``model`` and wait until it is ready: the
    :func:`deploy_steps`, run in order (``ran``, when given, receives the actions of the steps that ran).

    Idempotent: an endpoint of that name already serving this model is reused, never re-created, so a
    re-run after Ctrl+C or ``--detach`` simply waits again. The ledger records the endpoint the moment
    the service accepts the PUT.
    """
    emit = on_event or (lambda event: None)
    check_endpoint_name(endpoint_name)
    start = clock()
    steps = deploy_steps(
        model, endpoint_name=endpoint_name, content_safety=content_safety, auth_mode=auth_mode, wait=wait,
        model_id=model_id,
    )  # fmt: skip
    ctx = DeployContext(
        backend=backend,
        store=store,
        model=model,
        endpoint_name=endpoint_name,
        content_safety=content_safety,
        rest_auth=AUTH_MODE_REST.get(auth_mode.lower(), auth_mode),
        tags=tags,
        extra=dict(ledger_fields or {}),
        timeout=timeout,
        clock=clock,
        sleep=sleep,
        schedule=schedule,
        emit=emit,
        model_id=model_id,
        ran=ran if ran is not None else [],
    )
    for number, step in enumerate(steps, start=1):
        step.run(ctx)
        ctx.ran.append(step.describe(number))
    info = ctx.info
    assert info is not None and ctx.model_id is not None
    store.record("endpoint", endpoint_name, state=info.provisioning_state, scoring_uri=info.scoring_uri)
    if info.provisioning_state.lower() == "succeeded":
        emit(DeployEvent("ready", f"Endpoint {endpoint_name} is ready: {info.scoring_uri}", {}))
    return DeployResult(info, model, ctx.model_id, ctx.created, ctx.waited, clock() - start)


def _create_or_reattach_endpoint(
    backend: Any,
    store: StateStore,
    model: ModelRef,
    *,
    endpoint_name: str,
    model_id: str,
    content_safety: bool,
    rest_auth: str,
    tags: Mapping[str, str] | None,
    extra: dict[str, Any],
    emit: Callable[[DeployEvent], None],
) -> tuple[EndpointInfo, bool]:
    """The endpoint (existing or created now) and whether this call created it. The intent (with a
    creation id the endpoint is tagged with) is recorded before the PUT, so a run killed before its
    ledger write still owns the endpoint: the re-run re-attaches and records it as phi3ft's."""
    existing = backend.get_endpoint(endpoint_name)
    created = False
    if existing is not None:
        if not same_model(existing.model_id, model):
            raise PrerequisiteError(
                f"Endpoint {endpoint_name} already exists and serves another model ({existing.model_id}).",
                "Choose another name with --endpoint-name, or delete it: `phi3ft delete --endpoint "
                f"{endpoint_name}`.",
            )
        if existing.provisioning_state.lower() == "failed":
            raise AzureError(
                f"Endpoint {endpoint_name} exists but its provisioning failed.",
                f"Delete it and deploy again: `phi3ft delete --endpoint {endpoint_name} --yes`.",
            )
        emit(DeployEvent("exists", f"Endpoint {endpoint_name} already exists; re-attaching.", {}))
        current = store.get("endpoint", endpoint_name)
        if current is None or current.get("status") == CREATING:
            # an intent whose creation id the endpoint carries: a killed run created it (ours)
            store.record_resource(
                "endpoint",
                endpoint_name,
                created=False,
                tags=existing.extra.get("tags"),
                model=model.key,
                model_id=model_id,
                job=model.job,
                **extra,
            )
        info = existing
        if content_safety and (existing.content_safety or "").lower() == "disabled":
            emit(DeployEvent("warning", f"Endpoint {endpoint_name} was created with content safety OFF.", {}))
    else:
        emit(
            DeployEvent(
                "creating",
                f"Creating serverless endpoint {endpoint_name} (content safety "
                f"{'on' if content_safety else 'OFF'}, auth {rest_auth})",
                {"endpoint": endpoint_name},
            )
        )
        cid = store.intent(
            "endpoint", endpoint_name, model=model.key, model_id=model_id, job=model.job, **extra
        )
        info = backend.create_endpoint(
            endpoint_name,
            model_id=model_id,
            content_safety=content_safety,
            auth_mode=rest_auth,
            tags={**dict(tags or {}), CREATION_TAG: cid},
        )
        created = True
        store.record(
            "endpoint",
            endpoint_name,
            created_by_phi3ft=True,
            status="ready",
            model=model.key,
            model_id=model_id,
            job=model.job,
            content_safety=content_safety,
            auth_mode=rest_auth,
            state=info.provisioning_state,
            **extra,
        )
        emit(
            DeployEvent(
                "accepted", f"Accepted ({info.provisioning_state})", {"state": info.provisioning_state}
            )
        )
    return info, created


# ======================================================================================================
# Invoke and chat
# ======================================================================================================


def build_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return messages


def invoke(
    client: ChatBackend,
    prompt: str,
    *,
    system: str | None = None,
    max_tokens: int | None = 256,
    temperature: float | None = None,
) -> Any:
    """One prompt, one answer (the smoke test)."""
    if not prompt.strip():
        raise UsageError("The prompt is empty.", 'Example: phi3ft invoke "How do I reset my controller?"')
    return client.complete(build_messages(prompt, system), max_tokens=max_tokens, temperature=temperature)


class ChatSession:
    """A conversation with history; ``/reset`` starts over (keeping the system prompt)."""

    def __init__(
        self, client: ChatBackend, *, system: str | None = None, max_tokens: int | None = 512
    ) -> None:
        self.client = client
        self.system = system
        self.max_tokens = max_tokens
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def send(self, text: str) -> Any:
        self.messages.append({"role": "user", "content": text})
        try:
            result = self.client.complete(self.messages, max_tokens=self.max_tokens)
        except Exception:
            self.messages.pop()  # a failed turn leaves the history as it was
            raise
        self.messages.append({"role": "assistant", "content": result.content})
        return result


# ======================================================================================================
# Delete
# ======================================================================================================

#: The seed's order: endpoints, then the model, then data assets, then the project, then the hub.
#: A compute cluster (backend azureml-compute) lives in the project, so it goes just before it.
DELETE_ORDER = ("job", "endpoint", "model", "data", "compute", "project", "hub")


@dataclass
class DeleteStep:
    kind: str  # job (cancel) | endpoint | model | data | compute | project | hub
    name: str
    version: str | None = None
    skip_reason: str | None = None
    record_key: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name

    @property
    def action(self) -> str:
        if self.skip_reason:
            return "skip"
        return "cancel" if self.kind == "job" else "delete"


@dataclass
class DeleteOutcome:
    step: DeleteStep
    result: str  # deleted | absent | archived | canceled | not-running | skipped
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.step.kind,
            "name": self.step.name,
            "version": self.step.version,
            "result": self.result,
            "detail": self.detail,
        }


@dataclass
class DeletePlan:
    steps: list[DeleteStep]

    @property
    def actions(self) -> list[DeleteStep]:
        return [s for s in self.steps if not s.skip_reason]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": s.kind,
                "name": s.name,
                "version": s.version,
                "action": s.action,
                "reason": s.skip_reason,
            }
            for s in self.steps
        ]


@dataclass
class DeleteSelection:
    job: str | None = None
    endpoints: Sequence[str] = ()
    models: Sequence[str] = ()
    data: bool = False
    project: bool = False
    hub: bool = False
    all: bool = False
    force: bool = False
    #: Project and hub named by job.yaml (used when the ledger has no record of them).
    project_name: str | None = None
    hub_name: str | None = None


def _owned(record: Mapping[str, Any] | None) -> bool:
    return bool(record) and bool(record.get("created_by_phi3ft", False))  # type: ignore[union-attr]


def _not_ours(kind: str, name: str) -> str:
    return f"not created by phi3ft (the local ledger has no record of this {kind}); use --force to delete it anyway"


def ledger_items(store: StateStore, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """``(key, record)`` pairs of one kind (``StateStore.list`` drops the keys)."""
    bucket = store.load()["resources"].get(kind, {})
    return [(str(k), dict(v)) for k, v in bucket.items() if isinstance(v, dict)]


def plan_delete(store: StateStore, backend: Any, sel: DeleteSelection) -> DeletePlan:
    """Work out what to delete, in the seed's order, keeping only what phi3ft created (unless ``force``).

    Nothing named (just ``[JOB]``, default the last job): that job's endpoints and its model, the things
    that keep costing money. ``--data``, ``--project``, ``--hub`` add those; ``--all`` is everything the
    ledger says phi3ft created. Refuses (``PrerequisiteError``) to delete a model that an endpoint outside
    the plan still serves.
    """
    steps: list[DeleteStep] = []
    nothing_named = not (sel.endpoints or sel.models or sel.data or sel.project or sel.hub or sel.all)
    job_name = sel.job or (store.last_job if (nothing_named or sel.data) else None)
    job_record = store.get("job", job_name) if job_name else None
    if sel.job and job_record is None and not sel.force:
        raise NotFoundError(
            f"The local ledger has no job {sel.job}.",
            "Run from the folder that holds .phi3ft/ (or set PHI3FT_STATE_DIR), or name resources explicitly "
            "(--endpoint, --model) and add --force.",
        )
    if nothing_named and job_record is None:
        raise UsageError(
            "Nothing to delete: no job given and the local ledger has no last job.",
            "Name what to delete: --endpoint NAME, --model NAME:VERSION, --data, --project, --hub, or --all.",
        )
    job_model = _job_output_model(job_record or {})

    def add(kind: str, name: str, version: str | None = None, key: str | None = None) -> None:
        key = key or (f"{name}:{version}" if version else name)
        if any(s.kind == kind and s.record_key == key for s in steps):
            return
        record = store.get(kind, key)
        if record is not None and record.get("status") == CREATING and not _owned(record):
            record = _reconcile_intent(backend, store, kind, name, key, record)
        reason = None
        if not sel.force and record is None:
            reason = f"not created by phi3ft (no record in the local ledger); use --force to delete this {kind} anyway"
        elif not sel.force and not _owned(record):
            reason = "existed before phi3ft (reused, not created); use --force to delete it anyway"
        steps.append(DeleteStep(kind, name, version, reason, key))

    # a still-running job is canceled before the project goes (only with --all)
    if sel.all:
        for key, rec in ledger_items(store, "job"):
            if _owned(rec) and str(rec.get("status") or "") not in TERMINAL_STATUSES:
                steps.append(DeleteStep("job", str(rec.get("name") or key), None, None, key))

    # endpoints
    if sel.all:
        for key, rec in ledger_items(store, "endpoint"):
            add("endpoint", str(rec.get("name") or key), key=key)
    for name in sel.endpoints:
        add("endpoint", name)
    if nothing_named and job_name:
        for key, rec in ledger_items(store, "endpoint"):
            model = str(rec.get("model") or "")
            if rec.get("job") == job_name or (job_model and model.split(":")[0] == job_model):
                add("endpoint", str(rec.get("name") or key), key=key)

    # models
    refs: list[tuple[str, str]] = []
    if sel.all:
        refs += [_model_of_record(rec, key) for key, rec in ledger_items(store, "model")]
        refs += [
            (m, "1") for m in (_job_output_model(r) for _, r in ledger_items(store, "job") if _owned(r)) if m
        ]
    refs += [parse_model_ref(text) for text in sel.models]
    if nothing_named and job_model:
        refs.append((job_model, "1"))
    owned_job_models = {
        m for m in (_job_output_model(r) for _, r in ledger_items(store, "job") if _owned(r)) if m
    }
    for name, version in refs:
        key = f"{name}:{version}"
        if store.get("model", key) is None and name in owned_job_models and version == "1":
            # registered by a job phi3ft submitted: ours even before any model record exists
            if not any(s.kind == "model" and s.record_key == key for s in steps):
                steps.append(DeleteStep("model", name, version, None, key))
            continue
        add("model", name, version, key)

    # data assets
    if sel.data or sel.all:
        for key, rec in ledger_items(store, "data"):
            if sel.all or not job_name or _data_belongs_to(rec, key, job_name, job_record):
                name, version = _data_of_record(rec, key)
                add("data", name, version, key)

    # compute clusters phi3ft created (backend azureml-compute): with --all or --project
    if sel.all or sel.project:
        for key, rec in ledger_items(store, "compute"):
            add("compute", str(rec.get("name") or key), key=key)

    # workspaces: project before hub
    for kind, wanted, configured in (
        ("project", sel.project, sel.project_name),
        ("hub", sel.hub, sel.hub_name),
    ):
        if not (wanted or sel.all):
            continue
        items = ledger_items(store, kind)
        for key, rec in items:
            add(kind, str(rec.get("name") or key), key=key)
        if wanted and not items and configured:
            add(kind, configured)

    steps.sort(key=lambda s: DELETE_ORDER.index(s.kind))
    _refuse_models_in_use(backend, steps)
    return DeletePlan(steps)


def _reconcile_intent(
    backend: Any, store: StateStore, kind: str, name: str, key: str, record: dict[str, Any]
) -> dict[str, Any]:
    """An intent left by a run killed mid-create: phi3ft's when the resource carries its creation id,
    or when it does not exist at all (the step then finds it gone and drops the record)."""
    tags: Any = None
    try:
        if kind in ("hub", "project"):
            found = backend.get_workspace(name)
            tags = None if found is None else getattr(found, "tags", None) or {}
        elif kind == "endpoint":
            found = backend.get_endpoint(name)
            tags = None if found is None else found.extra.get("tags") or {}
        elif kind == "compute":
            found = backend.find_compute(name)
            tags = None if found is None else found.get("tags") or {}
        else:
            return record
    except (AttributeError, NotFoundError):
        return record
    if tags is None or store.owns(kind, key, tags):
        return store.record(kind, key, created_by_phi3ft=True)
    return store.record(kind, key, status="ready")  # it existed before: not ours


def _model_of_record(rec: Mapping[str, Any], key: str = "") -> tuple[str, str]:
    name = str(rec.get("model_name") or rec.get("name") or key)
    version = str(rec.get("version") or "")
    if ":" in name:
        name, _, v = name.partition(":")
        version = version or v
    return name, version or "1"


def _data_of_record(rec: Mapping[str, Any], key: str = "") -> tuple[str, str]:
    name = str(rec.get("asset_name") or rec.get("name") or key)
    version = str(rec.get("version") or "")
    if ":" in name:
        name, _, v = name.partition(":")
        version = version or v
    return name, version or "1"


def _data_belongs_to(
    rec: Mapping[str, Any], key: str, job_name: str, job_record: Mapping[str, Any] | None
) -> bool:
    if rec.get("job") == job_name:
        return True
    if not job_record:
        return False
    name, version = _data_of_record(rec, key)
    names = {key, name, f"{name}:{version}", str(rec.get("id") or "")}
    for k, v in job_record.items():
        if "data" not in k:
            continue
        values = v if isinstance(v, (list, tuple)) else (v.values() if isinstance(v, dict) else [v])
        if names & {str(x) for x in values}:
            return True
    return False


def _refuse_models_in_use(backend: Any, steps: list[DeleteStep]) -> None:
    models = [s for s in steps if s.kind == "model" and not s.skip_reason]
    if not models or not hasattr(backend, "list_endpoints"):
        return
    # A project being deleted takes its endpoints with it, but Azure still refuses the model DELETE first.
    leaving = {s.name for s in steps if s.kind == "endpoint" and not s.skip_reason}
    try:
        live = backend.list_endpoints()
    except NotFoundError:  # the project is already gone: nothing can use the model
        return
    for step in models:
        users = [
            e.name
            for e in live
            if e.name not in leaving and same_model(e.model_id, ModelRef(step.name, step.version or "1"))
        ]
        if users:
            raise PrerequisiteError(
                MODEL_IN_USE.format(model=step.label, endpoints=", ".join(users)),
                "Delete the endpoint first: "
                + " && ".join(f"`phi3ft delete --endpoint {u} --yes`" for u in users)
                + " (add --force for an endpoint phi3ft did not create).",
            )


def execute_delete(
    plan: DeletePlan,
    backend: Any,
    store: StateStore,
    *,
    on_outcome: Callable[[DeleteOutcome], None] | None = None,
) -> list[DeleteOutcome]:
    """Run the plan in order. Already-gone counts as success; the first real failure stops the run (later
    steps depend on earlier ones: a hub never goes before its project), after reporting what was done."""
    outcomes: list[DeleteOutcome] = []

    def report(outcome: DeleteOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    with store.run_lock():
        _execute_steps(plan, backend, store, report)
    return outcomes


def _forget_contents(store: StateStore, projects: set[str]) -> None:
    """Jobs, models, data, endpoints and clusters live inside the project: they went with it."""
    for kind in ("job", "model", "data", "endpoint", "compute"):
        for key, rec in ledger_items(store, kind):
            if _owned(rec) and (rec.get("project") in projects or not rec.get("project")):
                store.remove(kind, key)


def _execute_steps(
    plan: DeletePlan, backend: Any, store: StateStore, report: Callable[[DeleteOutcome], None]
) -> None:
    deleted_projects: set[str] = set()
    for step in plan.steps:
        if step.skip_reason:
            report(DeleteOutcome(step, "skipped", step.skip_reason))
            continue
        try:  # a delete is idempotent ("already gone" is success): ride out a transient outage
            result, detail = retry_transient(
                lambda step=step: _delete_one(backend, step),  # type: ignore[misc]
                clock=time.monotonic,
                sleep=time.sleep,
            )
        except Phi3ftError as exc:
            exc.message = (
                f"{exc.message} (stopped before: "
                + (
                    ", ".join(
                        f"{s.kind} {s.label}"
                        for s in plan.steps[plan.steps.index(step) + 1 :]
                        if not s.skip_reason
                    )
                    or "nothing"
                )
                + ")"
            )
            raise
        if step.kind == "project" and result in ("deleted", "absent"):
            deleted_projects.add(step.name)
            # its contents' records go before the project's own: a kill in between leaves the project
            # record, so the next delete finds it gone and finishes (no stale job records)
            _forget_contents(store, {step.name})
        if step.kind == "job":
            if result == "canceled":
                store.record("job", step.record_key or step.name, status="Canceled")
        elif step.record_key:
            store.remove(step.kind, step.record_key)
        report(DeleteOutcome(step, result, detail))
    if deleted_projects:
        _forget_contents(store, deleted_projects)
    if any(s.kind in ("project", "hub") for s in plan.steps):
        # a delete killed after its project record went: records of a project the ledger no longer
        # knows are stale (the project and everything in it is gone)
        known = {str(r.get("name") or k) for k, r in ledger_items(store, "project")}
        for kind in ("job", "model", "data", "endpoint", "compute"):
            for key, rec in ledger_items(store, kind):
                if _owned(rec) and rec.get("project") and rec.get("project") not in known:
                    store.remove(kind, key)


def _delete_one(backend: Any, step: DeleteStep) -> tuple[str, str]:
    if step.kind == "job":
        info = backend.find_job(step.name) if hasattr(backend, "find_job") else None
        if info is None or info.status in TERMINAL_STATUSES:
            return "not-running", f"job {step.name} is {info.status if info else 'gone'}; nothing to cancel"
        backend.cancel_job(step.name)
        return "canceled", f"job {step.name} canceled"
    if step.kind == "endpoint":
        gone = not backend.delete_endpoint(step.name)
        return ("absent", "already gone") if gone else ("deleted", "serverless endpoint deleted")
    if step.kind == "model":
        result = backend.delete_model(step.name, step.version or "1")
        detail = {
            "deleted": "hard-deleted through the REST API (the SDK itself can only archive)",
            "archived": "archived only: this azure-ai-ml version offers no hard delete we trust",
            "absent": "already gone",
        }.get(result, result)
        return result, detail
    if step.kind == "data":
        existed = backend.archive_data(step.name, step.version or "1")
        return (
            (
                "archived",
                "archived (Azure has no hard delete for data versions; the project delete removes it)",
            )
            if existed
            else ("absent", "already gone")
        )
    if step.kind == "compute":
        existed = backend.delete_compute(step.name)
        return ("deleted", "compute cluster deleted") if existed else ("absent", "already gone")
    if step.kind in ("project", "hub"):
        is_hub = step.kind == "hub"
        existed = backend.delete_workspace(
            step.name, delete_dependent_resources=is_hub, permanently_delete=is_hub
        )
        what = "hub, with its storage account and key vault" if is_hub else "project"
        return ("deleted", f"{what} deleted") if existed else ("absent", "already gone")
    raise UsageError(f"Unknown resource kind {step.kind!r}.")  # pragma: no cover


__all__ = [
    "AzureError",
    "ChatBackend",
    "ChatSession",
    "DeletePlan",
    "DeleteSelection",
    "DeployResult",
    "ModelRef",
    "deploy_endpoint",
    "execute_delete",
    "plan_delete",
]
