"""One plan, executed: the :class:`Step` objects that ``phi3ft plan`` prints and ``submit`` runs.

A target (``phi3ft.targets``) turns a spec and its :class:`~phi3ft.config.Fingerprint` into a list of steps;
:meth:`Step.describe` is the plan's :class:`~phi3ft.plan.PlanAction` (offline, no backend call) and
:meth:`Step.run` performs the step, yielding :class:`SubmitEvent` progress and handing its results on
through the :class:`ApplyContext`. :func:`apply` runs a list in order and records which steps ran, so the
plan and the run cannot drift apart (``tests/e2e/test_plan_is_submit.py``). ``deploy`` is a plan of
such steps too (:func:`phi3ft.targets.azureml.endpoints.deploy_steps`), and ``delete`` one of
:class:`~phi3ft.targets.azureml.endpoints.DeleteStep` items.

Idempotency and resume: every step is get-or-create on the remote side (hub and project are looked up,
data assets are content-addressed, the job name is derived from the hashes and re-attached), so a re-run
after a crash runs the same list and finds what the killed run made. What a create leaves in the ledger is
one rule, :func:`create_owned`: an intent before the call, its creation id as a tag on the resource, the
intent dropped only when the service refused the create (a kill mid-create still leaves the resource
owned), the record written by the step once the resource exists.

Generic: no Azure, no backend names (those live in ``phi3ft.targets``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from phi3ft.errors import NetworkError, Phi3ftError, PrerequisiteError
from phi3ft.targets.base import FAILED_STATUSES, DataAsset, JobInfo, Workspace

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobSpec
    from phi3ft.state import StateStore

#: Attempts ``-2`` .. ``-N`` for one config before giving up (each failed attempt is a paid job).
MAX_ATTEMPTS = 50

T = TypeVar("T")

DEFAULT_COMPUTE_TIMEOUT = 30 * 60.0


@dataclass
class PlanAction:
    step: int
    kind: str  # ensure_hub | ensure_project | split_data | upload_data | resolve_model | ensure_compute | ...
    target: str
    summary: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "target": self.target,
            "summary": self.summary,
            "params": self.params,
        }


@dataclass
class SubmitOptions:
    force: bool = False
    skip_checks: bool = False
    today: date | None = None
    tokenizer: Path | None = None
    env: dict[str, str] | None = None
    #: Waits inside submit (the GPU cluster's creation): injected in tests, real time otherwise.
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    compute_timeout: float | None = DEFAULT_COMPUTE_TIMEOUT


@dataclass(frozen=True)
class SubmitEvent:
    """``kind``: ``step`` (a step starts), ``done`` (finished; ``data['created']`` says whether it paid for
    anything), ``note`` (information worth showing), ``warn``."""

    kind: str
    step: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApplyContext:
    """What :func:`apply`'s steps share: the inputs, and the results each step hands to the next."""

    spec: JobSpec
    backend: Any  # the target's backend object (tests pass fakes with the same operations)
    store: StateStore
    options: SubmitOptions
    fingerprint: Fingerprint
    #: ``split(train, fraction, seed, out_dir, key) -> (train, validation)``; None: ``phi3ft split``'s logic.
    split: Callable[..., tuple[Path, Path]] | None = None
    # ---- handed on by the steps ------------------------------------------------------------------------
    hub: Workspace | None = None
    hub_record: dict[str, Any] = field(default_factory=dict)
    project: Workspace | None = None
    project_record: dict[str, Any] = field(default_factory=dict)
    split_files: dict[str, Path] = field(default_factory=dict)  # role -> file the split wrote
    assets: dict[str, DataAsset] = field(default_factory=dict)  # role -> uploaded data asset
    data_records: list[dict[str, Any]] = field(default_factory=list)
    data_hashes: dict[str, str] = field(default_factory=dict)  # role -> sha256 of the file sent
    uploaded_bytes: int = 0
    model_id: str | None = None
    compute: dict[str, Any] = field(default_factory=dict)  # cluster, environment, instance counts
    job: JobInfo | None = None
    resumed: bool = False
    #: The plan actions of the steps that ran to the end, in order (what a test compares with the plan).
    ran: list[PlanAction] = field(default_factory=list)


@dataclass(kw_only=True)
class Described:
    """What every step of a plan (submit's, deploy's) has: a kind, a target, a one-line summary, params."""

    kind: ClassVar[str] = ""
    target: str
    summary: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self, number: int) -> PlanAction:
        return PlanAction(number, self.kind, self.target, self.summary, dict(self.params))


@dataclass(kw_only=True)
class Step(Described):
    """One idempotent step of submit: ``describe()`` for the plan, ``run(ctx)`` for submit."""

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        raise NotImplementedError(f"{type(self).__name__} is described by the plan but not run by submit")


def describe(steps: Sequence[Described], *, first: int = 1) -> list[PlanAction]:
    """The plan's actions for ``steps``, numbered from ``first``."""
    return [step.describe(number) for number, step in enumerate(steps, start=first)]


def apply(steps: Sequence[Step], ctx: ApplyContext) -> Iterator[SubmitEvent]:
    """Run ``steps`` in order (one run at a time per ``.phi3ft``, from the first create to the last ledger
    write), yielding their events; each step that ran to the end is appended to ``ctx.ran``."""
    with ctx.store.run_lock():
        for number, step in enumerate(steps, start=1):
            yield from step.run(ctx)
            ctx.ran.append(step.describe(number))


def refused(exc: Phi3ftError) -> bool:
    """The service answered the create with a refusal (a 4xx): the resource does not exist. No answer or a
    5xx leaves the outcome unknown."""
    return getattr(exc, "transient", None) is None and not isinstance(exc, NetworkError)


def create_owned(
    store: StateStore,
    kind: str,
    key: str,
    create: Callable[[str], T],
    *,
    intent: Mapping[str, Any],
    forget_if_refused: bool = False,
) -> T:
    """The ledger rule of every create: record an intent, call ``create(creation_id)`` (which tags the
    resource with it), and, with ``forget_if_refused``, drop the intent when the service refused.

    The caller records the resource once ``create`` returns (its own fields); a kill in between leaves the
    intent, and the tag proves ownership to the next run (:meth:`StateStore.record_resource`).
    """
    cid = store.intent(kind, key, **intent)
    try:
        return create(cid)
    except Phi3ftError as exc:
        if forget_if_refused and refused(exc):
            store.remove_intent(kind, key)
        raise


def attempt_name(base: str, attempt: int) -> str:
    return base if attempt == 1 else f"{base}-{attempt}"


def create_or_attach(backend: Any, base: str, force: bool) -> tuple[JobInfo | None, bool, int]:
    """``(existing job or None, resumed, attempt)``: the first name whose job is absent or reusable.

    A job that exists and did not fail is reused (re-attach) unless ``force``; a failed/canceled one is
    skipped, so the next attempt gets ``-2``, ``-3``...
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        existing = backend.find_job(attempt_name(base, attempt))
        if existing is None:
            return None, False, attempt
        if not force and existing.status not in FAILED_STATUSES:
            return existing, True, attempt
    raise PrerequisiteError(
        f"{MAX_ATTEMPTS} jobs named {base}[-N] already exist.",
        "Change the config (e.g. output.model_name) or delete old jobs with `phi3ft delete`.",
    )
