"""``phi3ft plan``: what ``submit`` would do, worked out offline from job.yaml and the data.

No Azure call is made: whether the hub or project already exists is unknowable here, so the plan says
"ensure (create if missing)" and points at ``phi3ft check``. Data is validated with exact token counts when
the model's tokenizer can be loaded, otherwise the numbers are labelled estimates. A cost appears only when
the config gives prices; phi3ft never invents one.

Service module: never prints. The CLI renders :class:`Plan` (human or ``--json``, schema in README "Plan").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from phi3ft import catalog
from phi3ft.config import (
    Fingerprint,
    JobConfig,
    JobSpec,
    effective_split,
    file_sha256,
    fingerprint,
    resolved_hyperparameters,
    to_azure_hyperparameters,
)
from phi3ft.errors import ExitCode
from phi3ft.steps import PlanAction

if TYPE_CHECKING:
    from phi3ft.steps import Step

PLAN_SCHEMA_VERSION = 1
#: Hours in an average month (8,760 / 12), the figure Azure's pricing calculator uses.
HOURS_PER_MONTH = 730
#: How many validator findings a plan carries (the full report is ``phi3ft validate``'s job).
MAX_ISSUES = 20

Severity = Literal["blocker", "warning", "info"]


@dataclass
class PlanFinding:
    code: str
    severity: Severity
    message: str
    hint: str | None = None
    line: int | None = None  # job.yaml line the finding is about

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "line": self.line,
        }


@dataclass
class Plan:
    config: str | None
    backend: str
    model: dict[str, Any]
    names: dict[str, str]
    data: dict[str, Any]
    tokens: dict[str, Any]
    cost: dict[str, Any] | None
    actions: list[PlanAction]
    findings: list[PlanFinding]
    validation: dict[str, Any] | None
    hashes: dict[str, str]
    #: What follows submit's steps and is not run by it (the job registers the model; ``phi3ft deploy``).
    then: list[PlanAction] = field(default_factory=list)
    #: The hashes and names the plan was built from; ``submit`` reuses them (no second read of the data).
    fingerprint: Fingerprint | None = field(default=None, repr=False, compare=False)
    #: The steps :attr:`actions` describes: ``submit`` runs exactly these (:func:`phi3ft.steps.apply`).
    steps: list[Step] | None = field(default=None, repr=False, compare=False)

    @property
    def blockers(self) -> list[PlanFinding]:
        return [f for f in self.findings if f.severity == "blocker"]

    @property
    def warnings(self) -> list[PlanFinding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def data_valid(self) -> bool:
        return self.validation is None or bool(self.validation.get("valid", True))

    @property
    def exit_code(self) -> ExitCode:
        """3 when the data is invalid (fix that first), 4 when the plan cannot work, else 0."""
        if not self.data_valid:
            return ExitCode.INVALID
        if self.blockers:
            return ExitCode.PREREQ
        return ExitCode.OK

    @property
    def status(self) -> str:
        return {ExitCode.OK: "ok", ExitCode.INVALID: "invalid", ExitCode.PREREQ: "blocked"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "status": self.status,
            "exit_code": int(self.exit_code),
            "config": self.config,
            "backend": self.backend,
            "azure_calls": False,
            "model": self.model,
            "names": self.names,
            "hashes": self.hashes,
            "data": self.data,
            "tokens": self.tokens,
            "cost": self.cost,
            "actions": [a.to_dict() for a in self.actions],
            "then": [a.to_dict() for a in self.then],
            "blockers": [f.to_dict() for f in self.blockers],
            "warnings": [f.to_dict() for f in self.warnings],
            "notes": [f.to_dict() for f in self.findings if f.severity == "info"],
            "validation": self.validation,
        }


# ------------------------------------------------------------------------------------------------------
ValidateFn = Callable[..., Any]


def _default_validate() -> ValidateFn:
    from phi3ft.data.validate import validate_dataset

    return validate_dataset


def _report_dict(report: Any) -> dict[str, Any]:
    data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    return data if isinstance(data, dict) else {}


def _token_summary(report: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], bool, str | None]:
    """Per-file examples/tokens, whether the counts are exact, and the tokenizer's label.

    The validator's ``stats`` describe the training file (what is billed); the validation file only
    contributes its record count (``files[].records``).
    """
    stats: Mapping[str, Any] = report.get("stats") or {}
    raw_tokens, raw_tok = stats.get("tokens"), report.get("tokenizer")
    tokens: Mapping[str, Any] = raw_tokens if isinstance(raw_tokens, Mapping) else {}
    tok: Mapping[str, Any] = raw_tok if isinstance(raw_tok, Mapping) else {}
    exact = bool(tokens.get("exact")) and bool(tok.get("exact", True))
    label = tok.get("name") or tok.get("reason")
    per_file: dict[str, dict[str, Any]] = {"train": {}}
    if isinstance(stats.get("examples"), int):
        per_file["train"]["examples"] = stats["examples"]
    if isinstance(tokens.get("total"), (int, float)):
        per_file["train"]["tokens"] = int(tokens["total"])
        if isinstance(tokens.get("assistant"), (int, float)):
            per_file["train"]["assistant_tokens"] = int(tokens["assistant"])
        per_file["train"]["tokens_per_example"] = tokens.get("per_example")
    for entry in report.get("files") or []:
        if isinstance(entry, Mapping) and entry.get("role") == "validation":
            per_file["validation"] = {"examples": entry.get("records")}
    return per_file, exact, str(label) if label else None


# ------------------------------------------------------------------------------------------------------
def build_plan(
    cfg: JobSpec,
    *,
    today: date,
    tokenizer: Path | None = None,
    env: Mapping[str, str] | None = None,
    validate: ValidateFn | None = None,
    progress: Callable[[str], None] | None = None,
    fingerprint_of: Fingerprint | None = None,
) -> Plan:
    """Work out every step of ``submit`` for ``cfg`` without calling Azure.

    ``validate`` defaults to :func:`phi3ft.data.validate.validate_dataset`; tests may pass another.
    ``fingerprint_of`` is the config's :class:`Fingerprint` when the caller has it (else computed here).
    """
    profile = cfg.profile
    findings: list[PlanFinding] = []
    fp = fingerprint_of or fingerprint(cfg)
    names = fp.names
    hp = resolved_hyperparameters(cfg)
    serverless = cfg.azure_finetune
    epochs: float = hp.epochs if serverless else cfg.training.epochs

    _model_findings(cfg, today, findings)
    _config_findings(cfg, findings)

    # ---- data: hashes, validation, tokens ------------------------------------------------------------
    hashes = {"train": fp.data.get("train") or file_sha256(cfg.data.train)}  # (file_sha256: its error)
    if cfg.data.validation is not None:
        hashes["validation"] = fp.data.get("validation") or file_sha256(cfg.data.validation)
    validate_fn = validate or _default_validate()
    if progress:
        progress(
            f"Validating {cfg.data.train.name} and counting tokens with {profile.registry_name}'s tokenizer"
        )
    report = validate_fn(
        cfg.data.train,
        cfg.data.validation,
        model=profile.name,
        tokenizer=tokenizer,
        env=dict(env) if env is not None else None,
        epochs=max(1, round(epochs)),
        count_tokens=True,
    )
    report_data = _report_dict(report)
    per_file, exact, tokenizer_label = _token_summary(report_data)
    issues = list(report_data.get("issues") or [])
    summary = report_data.get("summary") or {}
    validation = {
        "valid": bool(report_data.get("valid", getattr(report, "valid", True))),
        "errors": summary.get("errors", sum(1 for i in issues if i.get("severity") == "error")),
        "warnings": summary.get("warnings", sum(1 for i in issues if i.get("severity") == "warning")),
        "issues": [i for i in issues if i.get("severity") in ("error", "warning")][:MAX_ISSUES],
        "tokenizer": report_data.get("tokenizer"),
    }
    train_tokens = per_file["train"].get("tokens")
    billed = None
    split = effective_split(cfg)
    if split is not None and cfg.data.split is None:
        findings.append(
            PlanFinding(
                "default-split",
                "info",
                f"no validation file: submit holds out {split.fraction:g} of {cfg.data.train.name} "
                f"(seed {split.seed}) for validation",
                "Set data.validation, or data.split to choose the fraction and seed.",
                cfg.line_of("data"),
            )
        )
    if train_tokens is not None:
        share = 1.0 - split.fraction if split is not None else 1.0
        billed = round(train_tokens * share * epochs)
    tokens = {
        "exact": exact and billed is not None,
        "tokenizer": tokenizer_label,
        "train": train_tokens,
        "epochs": epochs,
        "billed": billed,
        "formula": (
            "train tokens x epochs"
            if split is None
            else f"train tokens x {1 - split.fraction:g} (split) x epochs"
        ),
    }
    if billed is not None and not tokens["exact"]:
        findings.append(
            PlanFinding(
                "tokens-estimated",
                "warning",
                f"token counts are estimates: {profile.registry_name}'s tokenizer was not available"
                + (f" ({tokenizer_label})" if tokenizer_label else ""),
                f"Pass --tokenizer PATH or download microsoft/{profile.hf_repo.split('/')[-1]} into the "
                "Hugging Face cache for exact counts.",
            )
        )

    data = {
        role: {
            "path": str(path),
            "sha256": hashes[role],
            "bytes": path.stat().st_size,
            **per_file.get(role, {}),
        }
        for role, path in (("train", cfg.data.train), ("validation", cfg.data.validation))
        if path is not None
    }
    if split is not None:
        data["split"] = {"fraction": split.fraction, "seed": split.seed}

    cost = _cost(cfg, billed, exact=bool(tokens["exact"]))
    if cfg.pricing is None or cfg.pricing.training_per_1k_tokens is None:
        findings.append(
            PlanFinding(
                "no-prices",
                "info",
                "cost not estimated: job.yaml gives no prices (phi3ft never invents them)",
                "Copy the prices from the portal's 'Pricing and terms' tab into pricing.training_per_1k_tokens "
                "and pricing.hosting_per_hour.",
                cfg.line_of("pricing"),
            )
        )

    from phi3ft.steps import describe
    from phi3ft.targets import target_of

    target = target_of(cfg)
    steps = target.submit_steps(cfg, fp)
    actions = describe(steps)
    then = describe(target.after_steps(cfg, fp), first=len(actions) + 1)
    model = {
        "name": profile.name,
        "registry_name": profile.registry_name,
        "id": cfg.model.registry_id,
        "version": cfg.model.pinned_version,
        "context_length": profile.context_length,
        "tokenizer_kind": profile.tokenizer_kind,
        "template": profile.template,
        "lifecycle": {
            "status": catalog.lifecycle_status(profile, today),
            "finetune_retired": _iso(profile.lifecycle.finetune_retired),
            "replacement": profile.lifecycle.replacement,
            "as_of": profile.as_of.lifecycle.isoformat(),
        },
        "serverless_finetune": profile.serverless_finetune,
        "finetune_regions": list(profile.finetune_regions),
        "deploy_regions": list(profile.deploy_regions),
        "hyperparameters": to_azure_hyperparameters(cfg) if serverless else None,
        "defaults_used": list(hp.defaults_used) if serverless else [],
    }
    return Plan(
        config=str(cfg.source) if cfg.source else None,
        backend=cfg.backend,
        model=model,
        names={"job": names.job, "output_model": names.output_model, "endpoint": names.endpoint},
        data=data,
        tokens=tokens,
        cost=cost,
        actions=actions,
        findings=findings,
        validation=validation,
        hashes=fp.hashes,
        then=then,
        fingerprint=fp,
        steps=steps,
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _model_findings(cfg: JobConfig, today: date, findings: list[PlanFinding]) -> None:
    profile = cfg.profile
    lc = profile.lifecycle
    status = catalog.lifecycle_status(profile, today)
    line = cfg.line_of("model", "name")
    as_of = profile.as_of.lifecycle.isoformat()
    replacement = lc.replacement
    other_backends = "backend: local or backend: azureml-compute can still fine-tune its open weights"
    if not cfg.azure_finetune:
        if status != "active":
            findings.append(
                PlanFinding(
                    "model-retired-in-azure" if status == "retired" else "model-deprecated-in-azure",
                    "info",
                    f"{profile.registry_name} is {status} in Azure AI Foundry (as of {as_of}); "
                    f"backend {cfg.backend} trains the open weights ({profile.hf_repo}), so it still works",
                    None,
                    line,
                )
            )
        return
    if not profile.serverless_finetune:
        findings.append(
            PlanFinding(
                "model-not-serverless",
                "blocker",
                f"{profile.registry_name} is not offered for serverless fine-tuning (as of "
                f"{profile.as_of.regions.isoformat()})",
                f"Use model.name: {replacement or catalog.DEFAULT_MODEL}, or set {other_backends}.",
                line,
            )
        )
    if status == "retired":
        when = lc.finetune_retired or lc.retired
        findings.append(
            PlanFinding(
                "model-retired",
                "blocker",
                f"{profile.registry_name}: serverless fine-tuning was retired on {_iso(when)} (as of {as_of})"
                + (f"; the replacement is {replacement}" if replacement else ""),
                (f"Set model.name: {replacement}, or " if replacement else "Set ") + f"{other_backends}.",
                line,
            )
        )
    elif status == "deprecated":
        findings.append(
            PlanFinding(
                "model-deprecated",
                "warning",
                f"{profile.registry_name} is deprecated since {_iso(lc.finetune_deprecated or lc.deprecated)} "
                f"and retires on {_iso(lc.finetune_retired or lc.retired)} (as of {as_of})",
                f"Plan a move to {replacement}." if replacement else None,
                line,
            )
        )
    assert cfg.azure is not None  # serverless requires it (config cross-check)
    location = cfg.azure.location
    provenance = profile.regions_provenance()
    if profile.serverless_finetune and location not in profile.finetune_regions:
        # A verified list: submit cannot succeed there (the service refuses with ModelNotSupportedByMaaS).
        findings.append(
            PlanFinding(
                "region-no-finetune",
                "blocker" if profile.regions_verified else "warning",
                f"{location} does not offer serverless fine-tuning of {profile.registry_name} "
                f"(offered in {', '.join(profile.finetune_regions)}; {provenance})",
                f"Set azure.location: {profile.finetune_regions[0]} (the hub and project are created there); "
                "`phi3ft check` reads the live maas-finetuning-regions tag.",
                cfg.line_of("azure", "location"),
            )
        )
    if cfg.deploy.enabled and profile.deploy_regions and location not in profile.deploy_regions:
        findings.append(
            PlanFinding(
                "region-no-deploy",
                "warning",
                f"a fine-tuned {profile.registry_name} cannot be deployed serverless in {location} "
                f"(deploys in {', '.join(profile.deploy_regions)}; {provenance})",
                "Use a project in one of those regions, or set deploy.enabled: false.",
                cfg.line_of("azure", "location"),
            )
        )


def _config_findings(cfg: JobConfig, findings: list[PlanFinding]) -> None:
    hp = resolved_hyperparameters(cfg)
    if cfg.azure_finetune:
        if hp.epochs > 10:
            findings.append(
                PlanFinding(
                    "many-epochs",
                    "warning",
                    f"{hp.epochs} epochs: every epoch is billed, and small datasets overfit quickly",
                    "Start with 1-3 epochs and compare validation loss.",
                    cfg.line_of("hyperparameters", "epochs"),
                )
            )
        if "training" in cfg.model_fields_set:
            findings.append(
                PlanFinding(
                    "training-ignored",
                    "warning",
                    "training: is ignored by backend serverless (Azure picks the trainer settings)",
                    "Remove it, or set backend: local / azureml-compute.",
                    cfg.line_of("training"),
                )
            )
    if cfg.compute is not None and not cfg.on_cluster:
        findings.append(
            PlanFinding(
                "compute-ignored",
                "warning",
                f"compute: is ignored by backend {cfg.backend}",
                "Remove it, or set backend: azureml-compute.",
                cfg.line_of("compute"),
            )
        )
    from phi3ft.connect import PLACEHOLDER_SUBSCRIPTION, SET_SUBSCRIPTION_HINT, is_placeholder_subscription

    if (
        cfg.azure is not None
        and not cfg.runs_locally
        and is_placeholder_subscription(cfg.azure.subscription_id)
    ):
        findings.append(
            PlanFinding(
                "placeholder-subscription",
                "warning",
                f"azure.subscription_id is the placeholder {PLACEHOLDER_SUBSCRIPTION}: this plan is an offline "
                "preview; `phi3ft check` and `phi3ft submit` refuse it until it is your subscription",
                SET_SUBSCRIPTION_HINT,
                cfg.line_of("azure", "subscription_id"),
            )
        )
    if cfg.azure is not None and not cfg.runs_locally and not cfg.azure.subscription_id:
        findings.append(
            PlanFinding(
                "no-subscription",
                "warning",
                "no subscription id: submit needs azure.subscription_id or $AZURE_SUBSCRIPTION_ID",
                "export AZURE_SUBSCRIPTION_ID=$(az account show --query id -o tsv)",
                cfg.line_of("azure"),
            )
        )
    if cfg.deploy.enabled and not cfg.deploy.content_safety and cfg.azure_finetune:
        findings.append(
            PlanFinding(
                "content-safety-off",
                "warning",
                "deploy.content_safety is false: prompts and completions will not be filtered",
                "Keep Azure AI Content Safety on unless another filter guards the endpoint.",
                cfg.line_of("deploy", "content_safety"),
            )
        )
    if cfg.deploy.enabled and not cfg.azure_finetune:
        findings.append(
            PlanFinding(
                "deploy-not-planned",
                "info",
                f"deploy: serverless endpoints serve Azure fine-tunes only; backend {cfg.backend} leaves "
                "the adapter for you to serve",
                "Set deploy.enabled: false to silence this.",
                cfg.line_of("deploy"),
            )
        )


def _cost(cfg: JobConfig, billed: int | None, *, exact: bool) -> dict[str, Any] | None:
    pricing = cfg.pricing
    if pricing is None or (pricing.training_per_1k_tokens is None and pricing.hosting_per_hour is None):
        return None
    cost: dict[str, Any] = {"currency": pricing.currency, "estimate": True, "exact_tokens": exact}
    if pricing.training_per_1k_tokens is not None and billed is not None:
        cost["training"] = round(billed / 1000 * pricing.training_per_1k_tokens, 4)
        cost["training_per_1k_tokens"] = pricing.training_per_1k_tokens
    if pricing.hosting_per_hour is not None and cfg.deploy.enabled:
        cost["hosting_per_hour"] = pricing.hosting_per_hour
        cost["hosting_per_day"] = round(pricing.hosting_per_hour * 24, 4)
        cost["hosting_per_month"] = round(pricing.hosting_per_hour * HOURS_PER_MONTH, 2)
    return cost
