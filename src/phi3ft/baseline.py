"""Did the fine-tune help? ``phi3ft deploy --baseline`` and ``phi3ft eval --baseline``.

The base model is scored exactly like the fine-tuned one (same held-out conversations, same prompts,
generation settings and concurrency, the same :func:`phi3ft.evaluation.evaluate` and the same chat client
kind), then :mod:`phi3ft.evaluate` compares the two score sets. Services never print; nothing here
imports Azure (the backend is duck-typed).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from phi3ft.errors import PrerequisiteError, UsageError
from phi3ft.evaluate import TIE_EPSILON, GainCheck, Verdict, check_gain, most_different, tally, verdicts
from phi3ft.evaluation import ChatBackend, EvalExample, EvalReport, evaluate
from phi3ft.state import StateStore
from phi3ft.targets.azureml.endpoints import DeployEvent, DeployResult, ModelRef, deploy_endpoint

if TYPE_CHECKING:
    from phi3ft.config import JobConfig

REGISTRY_ID_RE = re.compile(r"^azureml://registries/([^/]+)/models/([^/]+)(?:/versions/([^/]+))?$", re.I)
#: Registry tag listing the regions where the base model is offered as a serverless API, when present.
INFERENCE_REGIONS_TAG = "maas-inference-regions"
LOCAL_ALTERNATIVE = (
    "Compare locally instead: set backend: local in job.yaml, train with `phi3ft submit`, then "
    "`phi3ft eval --baseline` scores the base model and the adapter on this machine."
)


# ======================================================================================================
# Which base model, and is it offered serverless here?
# ======================================================================================================


@dataclass(frozen=True)
class BaseModel:
    registry: str
    name: str
    version: str | None

    @property
    def model_id(self) -> str:
        """The serverless model id of a registry model: no version (the service refuses one)."""
        return f"azureml://registries/{self.registry}/models/{self.name}"

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


def parse_registry_id(model_id: str) -> BaseModel | None:
    m = REGISTRY_ID_RE.match(model_id.strip())
    return BaseModel(m.group(1), m.group(2), m.group(3)) if m else None


def resolve_base_model(store: StateStore, ft: ModelRef, cfg: JobConfig | None = None) -> BaseModel:
    """The registry model the fine-tune started from: the job's ledger record (``model_id``), else
    job.yaml's model."""
    candidates: list[str] = []
    if ft.job:
        record = store.get("job", ft.job) or {}
        candidates.append(str(record.get("model_id") or ""))
    for text in candidates:
        base = parse_registry_id(text)
        if base is not None:
            return base
    if cfg is not None and getattr(cfg, "profile", None) is not None:
        version = getattr(getattr(cfg, "model", None), "pinned_version", None)
        return BaseModel(
            "azureml", cfg.profile.registry_name, None if version in (None, "latest") else version
        )
    raise UsageError(
        f"Cannot tell which base model {ft} was fine-tuned from.",
        "Run from the folder with job.yaml (its model: names the base), or pass --config job.yaml.",
    )


@dataclass(frozen=True)
class BaseOffer:
    offered: bool
    reason: str
    source: str  # "registry tag" | "phi3ft catalog" | "registry lifecycle tags"
    regions: tuple[str, ...] = ()


def _iso_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def serverless_offer(
    base: BaseModel, region: str, tags: Mapping[str, str] | None, today: date | None = None
) -> BaseOffer:
    """Whether ``base`` is offered as a serverless API in ``region``.

    The registry model's tags win (``InferenceRetirementDate``, and ``maas-inference-regions`` when the
    version carries it); otherwise the phi3ft catalog: its inference retirement date and the regions
    where the family is deployed serverless.
    """
    from phi3ft import catalog

    today = today or date.today()
    tags = dict(tags or {})
    try:
        profile: Any = catalog.get_profile(base.name)
    except KeyError:
        profile = None
    region_l = region.strip().lower()
    retired = _iso_date(tags.get("InferenceRetirementDate"))
    source = "registry lifecycle tags"
    if retired is None and profile is not None:
        retired, source = profile.lifecycle.retired, "phi3ft catalog"
    if retired is not None and today >= retired:
        replacement = profile.lifecycle.replacement if profile is not None else None
        return BaseOffer(
            False,
            f"{base.label} was retired for inference on {retired.isoformat()} ({source})"
            + (f"; its replacement is {replacement}" if replacement else ""),
            source,
        )
    listed = tags.get(INFERENCE_REGIONS_TAG)
    if listed:
        regions = tuple(r.strip().lower() for r in listed.split(",") if r.strip())
        source = f"registry tag {INFERENCE_REGIONS_TAG}"
    elif profile is not None:
        regions = tuple(profile.deploy_regions)
        source = "phi3ft catalog"
    else:
        return BaseOffer(
            False,
            f"{base.label} is neither tagged with its serverless regions nor in the phi3ft catalog",
            "none",
        )
    if region_l not in regions:
        return BaseOffer(
            False,
            f"{base.label} is not offered as a serverless API in {region} ({source}: "
            + (", ".join(regions) or "no region")
            + ")",
            source,
            regions,
        )
    return BaseOffer(
        True, f"{base.label} is offered as a serverless API in {region} ({source})", source, regions
    )


def require_offer(offer: BaseOffer) -> None:
    if not offer.offered:
        raise PrerequisiteError(f"No serverless base-model endpoint: {offer.reason}.", LOCAL_ALTERNATIVE)


def default_baseline_name(base: BaseModel, scope: str = "") -> str:
    """Deterministic per project and base model (serverless endpoint names are unique per region)."""
    digest = hashlib.sha256(f"{scope}|baseline|{base.registry}/{base.name}".encode()).hexdigest()[:6]
    slug = re.sub(r"[^a-z0-9]+", "-", base.name.lower()).strip("-") or "base"
    return f"{slug[:36].rstrip('-')}-base-{digest}"


# ======================================================================================================
# Deploy the base model
# ======================================================================================================


def deploy_baseline(
    backend: Any,
    store: StateStore,
    base: BaseModel,
    *,
    endpoint_name: str,
    fine_tuned: ModelRef,
    for_endpoint: str | None = None,
    on_event: Callable[[DeployEvent], None] | None = None,
    ledger_fields: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> DeployResult:
    """A serverless endpoint for the registry base model, content safety always on, recorded in the
    ledger as phi3ft's (``baseline: true``, tied to the fine-tune's job) so ``delete`` removes it. The
    base model itself is never recorded, so nothing ever deletes it."""
    kwargs.pop("content_safety", None)
    return deploy_endpoint(
        backend,
        store,
        ModelRef(base.name, base.version or "1", fine_tuned.job, created_by_phi3ft=False),
        endpoint_name=endpoint_name,
        content_safety=True,
        on_event=on_event,
        model_id=base.model_id,
        ledger_fields={
            **dict(ledger_fields or {}),
            "baseline": True,
            "baseline_for": for_endpoint,
            "fine_tuned_model": fine_tuned.key,
            "base_model": base.model_id,
        },
        **kwargs,
    )


def find_baseline_endpoint(store: StateStore, fine_tuned_endpoint: str) -> str | None:
    """The base-model endpoint the ledger recorded for this fine-tuned endpoint (or its job)."""
    ft = store.get("endpoint", fine_tuned_endpoint) or {}
    records = [r for r in store.list("endpoint") if r.get("baseline")]
    for rec in records:
        if rec.get("baseline_for") == fine_tuned_endpoint:
            return str(rec["name"])
    for rec in records:
        if ft.get("job") and rec.get("job") == ft.get("job"):
            return str(rec["name"])
    return str(records[-1]["name"]) if len(records) == 1 else None


# ======================================================================================================
# Compare
# ======================================================================================================


@dataclass
class Difference:
    line: int
    prompt: list[dict[str, str]]
    reference: str
    fine_tuned_answer: str | None
    base_answer: str | None
    f1_fine_tuned: float | None
    f1_base: float | None
    verdict: str

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class BaselineReport:
    fine_tuned: EvalReport
    base: EvalReport
    verdicts: list[Verdict]
    counts: dict[str, int]
    differences: list[Difference]
    epsilon: float = TIE_EPSILON
    gate: GainCheck | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed

    def to_json(self) -> dict[str, Any]:
        return {
            "fine_tuned": self.fine_tuned.to_json(),
            "base": self.base.to_json(),
            "tie_epsilon": self.epsilon,
            "counts": dict(self.counts),
            "verdicts": [v.to_json() for v in self.verdicts],
            "most_different": [d.to_json() for d in self.differences],
            "gate": self.gate.to_json() if self.gate else None,
            "passed": self.passed,
            **self.extra,
        }


def compare(
    fine_tuned: ChatBackend,
    base: ChatBackend,
    examples: Sequence[EvalExample],
    *,
    names: tuple[str, str] = ("fine-tuned", "base"),
    data_name: str = "",
    concurrency: int = 4,
    max_tokens: int | None = 256,
    temperature: float | None = 0.0,
    logprobs: bool = True,
    show: int = 3,
    epsilon: float = TIE_EPSILON,
    min_gain: tuple[str, float] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_result: Callable[[str, Any, int, int], None] | None = None,
) -> BaselineReport:
    """Score both clients on the same ``examples`` with the same settings, then compare.

    ``fine_tuned`` and ``base`` are anything with the chat client's ``complete`` (a serverless endpoint
    client, a local transformers model); ``names`` labels them in the report (endpoint names or URIs).
    """
    if min_gain is not None:
        check_gain(min_gain[0], min_gain[1], {}, {})  # an unknown metric fails before any request

    def run(client: ChatBackend, which: str, name: str) -> EvalReport:
        def progress(item: Any, done: int, total: int) -> None:
            if on_result is not None:
                on_result(which, item, done, total)

        return evaluate(
            client,
            examples,
            endpoint=name,
            data_name=data_name,
            concurrency=concurrency,
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=logprobs,
            clock=clock,
            on_result=progress,
        )

    ft_report = run(fine_tuned, "fine-tuned", names[0])
    base_report = run(base, "base", names[1])
    ft_by_line = {r.line: r for r in ft_report.results}
    base_by_line = {r.line: r for r in base_report.results}
    items = verdicts(
        {line: r.f1 for line, r in ft_by_line.items()},
        {line: r.f1 for line, r in base_by_line.items()},
        epsilon,
    )
    by_line = {e.line: e for e in examples}
    differences = [
        Difference(
            v.line,
            by_line[v.line].prompt,
            by_line[v.line].reference,
            ft_by_line[v.line].answer,
            base_by_line[v.line].answer,
            v.f1_fine_tuned,
            v.f1_base,
            v.verdict,
        )
        for v in most_different(items, show)
    ]
    gate = None
    if min_gain is not None:
        gate = check_gain(min_gain[0], min_gain[1], ft_report.to_json(), base_report.to_json())
    return BaselineReport(ft_report, base_report, items, tally(items), differences, epsilon, gate)


def compare_endpoints(
    client_for: Callable[[str], ChatBackend],
    fine_tuned: str,
    base: str,
    examples: Sequence[EvalExample],
    **kwargs: Any,
) -> BaselineReport:
    """:func:`compare` for two endpoints named (or addressed by URI) ``fine_tuned`` and ``base``;
    ``client_for`` builds a chat client the way ``invoke`` does (the CLI passes its own)."""
    return compare(client_for(fine_tuned), client_for(base), examples, names=(fine_tuned, base), **kwargs)


__all__ = [
    "BaseModel",
    "BaseOffer",
    "BaselineReport",
    "compare",
    "compare_endpoints",
    "default_baseline_name",
    "deploy_baseline",
    "find_baseline_endpoint",
    "resolve_base_model",
    "serverless_offer",
]
