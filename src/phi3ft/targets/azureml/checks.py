"""Prerequisite checks (``phi3ft check``; reused by ``submit`` before it spends money).

Seven ordered checks, each ending ``pass`` / ``warn`` / ``fail`` / ``skip`` with a one-line detail and,
when not passing, the exact fix (an ``az`` command, a job.yaml edit, or a portal step):

1. credential   2. subscription + resource group   3. region   4. resource providers
5. role on the resource group   6. hub and project   7. base model in the azureml registry

How it runs: the credential first (nothing else can work without a token); then every remote read
(resource group, four providers, role assignments, hub, project, registry model) at once on a thread
pool; then pure functions turn what was read into results, so the rules are unit-testable without a
backend. ``fix=True`` registers missing providers and polls until ``Registered``, reporting progress
through ``on_event``. Nothing here prints.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol

from phi3ft import catalog
from phi3ft.errors import NotFoundError, Phi3ftError, PrerequisiteError
from phi3ft.polling import Poll, PollTimeout, wait_until
from phi3ft.targets.azureml.sdk.prereqs import (
    AZURE_AI_DEVELOPER,
    BUILTIN_ROLE_NAMES,
    CONTRIBUTOR,
    OWNER,
    REQUIRED_PROVIDERS,
    ProviderState,
    ResourceGroupInfo,
    RoleAssignmentListing,
    RoleDefinitionInfo,
)
from phi3ft.targets.base import Identity, RegistryModel, Workspace

if TYPE_CHECKING:
    from phi3ft.config import JobConfig

Status = Literal["pass", "warn", "fail", "skip"]
_RANK: dict[str, int] = {"pass": 0, "skip": 1, "warn": 2, "fail": 3}

#: Roles that let the caller create a hub/project and submit fine-tunes (docs/architecture.md).
GRANTING_ROLES: dict[str, str] = {
    AZURE_AI_DEVELOPER: "Azure AI Developer",
    OWNER: "Owner",
    CONTRIBUTOR: "Contributor",
}
#: Creating a hub deploys an ARM template that writes a new storage account and key vault next to the
#: workspace: Azure AI Developer cannot (it may create projects, compute and connections, not hubs).
HUB_CREATING_ROLES: dict[str, str] = {OWNER: "Owner", CONTRIBUTOR: "Contributor"}
HUB_CREATE_ACTIONS: tuple[str, ...] = (
    "Microsoft.Resources/deployments/write",
    "Microsoft.MachineLearningServices/workspaces/write",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.KeyVault/vaults/write",
)
CHAT_TASK = "chat-completion"
#: How long ``--fix`` waits for a provider registration (ARM usually takes 1-5 minutes).
PROVIDER_WAIT_S = 900.0

CHECKS: tuple[tuple[str, str], ...] = (
    ("credential", "Azure credential"),
    ("resource-group", "Subscription and resource group"),
    ("region", "Region offers fine-tuning"),
    ("providers", "Resource providers registered"),
    ("role", "Role on the resource group"),
    ("workspace", "Hub and project"),
    ("model", "Base model in the azureml registry"),
)
TITLES = dict(CHECKS)


# ---- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    results: list[CheckResult]
    identity: Identity | None = None
    elapsed_s: float = 0.0
    fixed: list[str] = field(default_factory=list)  # providers registered by --fix

    @property
    def ok(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def get(self, check_id: str) -> CheckResult:
        return next(r for r in self.results if r.id == check_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [r.to_dict() for r in self.results],
            "identity": asdict(self.identity) if self.identity else None,
            "fixed": list(self.fixed),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class CheckEvent:
    """Progress for renderers: ``kind`` is ``started`` | ``result`` | ``fix``."""

    kind: str
    check_id: str | None = None
    message: str = ""
    result: CheckResult | None = None
    data: dict[str, Any] = field(default_factory=dict)


# ---- what to check -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckTarget:
    """The values of job.yaml that the checks read (decoupled from the config model for tests)."""

    subscription_id: str
    resource_group: str
    location: str
    hub: str
    project: str
    model: str  # catalog name, registry name or azureml:// id
    model_version: str | None = None  # None = latest
    hub_create: bool = True
    project_create: bool = True
    backend: str = "serverless"  # serverless | azureml-compute (what submit will run)
    cluster: str | None = None  # compute.cluster_name for azureml-compute

    @classmethod
    def from_config(cls, cfg: JobConfig | CheckTarget) -> CheckTarget:
        """From a :class:`phi3ft.config.JobConfig` (or anything shaped like it)."""
        if isinstance(cfg, CheckTarget):
            return cfg
        from phi3ft.targets.azureml.where import AzureTarget

        azure = AzureTarget.from_config(
            cfg,
            why=", so there is nothing in Azure to check",
            subscription_hint="Set azure.subscription_id in job.yaml or export AZURE_SUBSCRIPTION_ID "
            "(`az account show --query id`).",
        )
        model = cfg.model
        version = getattr(model, "pinned_version", None) or getattr(model, "version", None)
        return cls(
            subscription_id=azure.subscription_id,
            resource_group=azure.resource_group,
            location=azure.location.replace(" ", "").lower(),
            hub=str(azure.hub),
            project=str(azure.project),
            model=str(model.name),
            model_version=None if version in (None, "", "latest") else str(version),
            hub_create=azure.hub_create,
            project_create=azure.project_create,
            backend=str(getattr(cfg, "backend", None) or "serverless"),
            cluster=(
                str(compute.cluster_name)
                if getattr(cfg, "on_cluster", False) and (compute := getattr(cfg, "compute", None))
                else None
            ),
        )

    @property
    def profile(self) -> catalog.ModelProfile | None:
        try:
            return catalog.get_profile(self.registry_model_name)
        except KeyError:
            return None

    @property
    def registry_model_name(self) -> str:
        """The name in the registry: from an ``azureml://`` id, else the catalog's registry name."""
        name = self.model
        if name.startswith("azureml://"):
            parts = name.split("/")
            if "models" in parts:
                return parts[parts.index("models") + 1]
        try:
            return catalog.get_profile(name).registry_name
        except KeyError:
            return name


class PrereqBackend(Protocol):
    """The adapter operations the checks use (:class:`phi3ft.targets.azureml.sdk.prereqs.PrereqOps`)."""

    @property
    def subscription_scope(self) -> str: ...
    @property
    def resource_group_scope(self) -> str: ...
    def identity(self) -> Identity: ...
    def get_resource_group(self) -> ResourceGroupInfo | None: ...
    def get_provider(self, namespace: str) -> ProviderState: ...
    def register_provider(self, namespace: str) -> ProviderState: ...
    def list_role_assignments(self, object_id: str, scope: str) -> RoleAssignmentListing: ...
    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionInfo: ...
    def find_workspace(self, name: str) -> Workspace | None: ...
    def resolve_registry_model(self, name: str, version: str | None = None) -> RegistryModel | None: ...


# ---- reads ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """A remote read: its value, or the phi3ft error it raised (never both)."""

    value: Any = None
    error: Phi3ftError | None = None

    @classmethod
    def of(cls, fn: Callable[[], Any]) -> Outcome:
        try:
            return cls(fn())
        except Phi3ftError as exc:
            return cls(error=exc)


@dataclass
class Observed:
    """Everything read from the backend; the input of the pure ``evaluate_*`` functions."""

    identity: Identity | None = None
    resource_group: Outcome = field(default_factory=Outcome)
    providers: dict[str, Outcome] = field(default_factory=dict)
    roles: Outcome = field(default_factory=Outcome)  # RoleAssignmentListing
    role_definitions: dict[str, RoleDefinitionInfo] = field(default_factory=dict)
    hub: Outcome = field(default_factory=Outcome)
    project: Outcome = field(default_factory=Outcome)
    model: Outcome = field(default_factory=Outcome)


def _read_roles(backend: PrereqBackend, object_id: str) -> RoleAssignmentListing:
    """At the resource group; at the subscription when the group does not exist (so the result still
    says whether the caller could work there once it is created)."""
    try:
        return backend.list_role_assignments(object_id, backend.resource_group_scope)
    except NotFoundError:
        return backend.list_role_assignments(object_id, backend.subscription_scope)


def observe(
    backend: PrereqBackend, target: CheckTarget, identity: Identity, pool: ThreadPoolExecutor
) -> Observed:
    """Run every remote read concurrently (they are independent once we hold a token)."""
    obs = Observed(identity=identity)
    futures: dict[str, Future[Outcome]] = {
        "rg": pool.submit(Outcome.of, backend.get_resource_group),
        "hub": pool.submit(Outcome.of, lambda: backend.find_workspace(target.hub)),
        "project": pool.submit(Outcome.of, lambda: backend.find_workspace(target.project)),
        "model": pool.submit(
            Outcome.of,
            lambda: backend.resolve_registry_model(target.registry_model_name, target.model_version),
        ),
    }
    if identity.object_id:
        oid = identity.object_id
        futures["roles"] = pool.submit(Outcome.of, lambda: _read_roles(backend, oid))
    provider_futures = {
        ns: pool.submit(Outcome.of, functools.partial(backend.get_provider, ns))
        for ns, _, _ in REQUIRED_PROVIDERS
    }
    obs.resource_group = futures["rg"].result()
    obs.hub = futures["hub"].result()
    obs.project = futures["project"].result()
    obs.model = futures["model"].result()
    obs.providers = {ns: f.result() for ns, f in provider_futures.items()}
    if "roles" in futures:
        obs.roles = futures["roles"].result()
        listing = obs.roles.value
        need = access_needed(target, obs.hub, obs.project)
        if isinstance(listing, RoleAssignmentListing) and not _granting(listing, need.roles):
            # Name what the caller does hold, and look inside custom roles (best effort, concurrently).
            unknown = {
                a.role_definition_id
                for a in listing.assignments
                if a.role_guid not in BUILTIN_ROLE_NAMES and assignment_applies(a.scope, listing.scope)
            }
            defs = {
                rid: pool.submit(Outcome.of, functools.partial(backend.get_role_definition, rid))
                for rid in unknown
            }
            for rid, fut in defs.items():
                outcome = fut.result()
                if isinstance(outcome.value, RoleDefinitionInfo):
                    obs.role_definitions[rid.lower()] = outcome.value
    return obs


# ---- pure evaluation -----------------------------------------------------------------------------
def _result(check_id: str, status: Status, detail: str, fix: str | None = None) -> CheckResult:
    return CheckResult(check_id, TITLES[check_id], status, detail, fix if status != "pass" else None)


def evaluate_credential(identity: Identity | None, error: Phi3ftError | None) -> CheckResult:
    if identity is None:
        message = error.message if error else "no token"
        return _result(
            "credential",
            "fail",
            message,
            (error.hint if error and error.hint else None)
            or "Run `az login` (or set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and pass --auth env).",
        )
    kind = identity.kind.replace("_", " ")
    who = f"{kind} {identity.display_name}" if identity.display_name else kind
    via = f" via {identity.source}" if identity.source else ""
    detail = f"{who} (object id {identity.object_id or '?'}, tenant {identity.tenant_id or '?'}){via}"
    if not identity.object_id:
        return _result(
            "credential",
            "warn",
            detail + "; the token has no object id, so the role check cannot run",
            "Use a user, service principal or managed identity credential (az login / --auth env).",
        )
    return _result("credential", "pass", detail)


def evaluate_resource_group(target: CheckTarget, rg: Outcome) -> CheckResult:
    if rg.error is not None:
        return _result("resource-group", "fail", rg.error.message, rg.error.hint)
    info: ResourceGroupInfo | None = rg.value
    if info is None:
        return _result(
            "resource-group",
            "fail",
            f"resource group {target.resource_group} does not exist in subscription {target.subscription_id}",
            f"az group create --subscription {target.subscription_id} --name {target.resource_group} "
            f"--location {target.location}",
        )
    return _result(
        "resource-group",
        "pass",
        f"subscription {target.subscription_id} reachable; resource group {info.name} in {info.location}",
    )


def _split_regions(value: str) -> tuple[str, ...]:
    return tuple(r.strip().replace(" ", "").lower() for r in value.replace(";", ",").split(",") if r.strip())


def finetune_regions(target: CheckTarget, model: RegistryModel | None) -> tuple[tuple[str, ...], str]:
    """Where serverless fine-tuning is offered, and where that list came from."""
    if model is not None and model.tags.get("maas-finetuning-regions"):
        return _split_regions(
            model.tags["maas-finetuning-regions"]
        ), f"registry tag of {model.name}:{model.version}"
    profile = target.profile
    if profile is not None:
        return tuple(profile.finetune_regions), f"phi3ft catalog (as of {profile.as_of.regions.isoformat()})"
    return (), "unknown"


def evaluate_region(target: CheckTarget, model: Outcome) -> CheckResult:
    registry_model = model.value if isinstance(model.value, RegistryModel) else None
    profile = target.profile
    if profile is not None and not profile.serverless_finetune:
        return _result(
            "region",
            "fail",
            f"{profile.registry_name} is not offered for serverless fine-tuning in any region",
            "Pick a model that is (`phi3ft models`), e.g. model.name: phi-4-mini-instruct.",
        )
    regions, source = finetune_regions(target, registry_model)
    if not regions:
        return _result(
            "region",
            "warn",
            f"no fine-tuning region list for {target.registry_model_name}; cannot confirm {target.location}",
            "Check the model card in the Azure AI Foundry portal (Fine-tune -> regions).",
        )
    if target.location not in regions:
        return _result(
            "region",
            "fail",
            f"{target.location} does not offer serverless fine-tuning of {target.registry_model_name} "
            f"(offered in {', '.join(regions)}; {source})",
            f"Set azure.location: {regions[0]} in job.yaml (the hub and project are created there).",
        )
    detail = f"{target.location} offers fine-tuning of {target.registry_model_name} ({source})"
    deploy = registry_model.tags.get("maas-finetuning-deploy-regions") if registry_model else None
    deploy_regions = _split_regions(deploy) if deploy else (tuple(profile.deploy_regions) if profile else ())
    if deploy_regions and target.location not in deploy_regions:
        return _result(
            "region",
            "warn",
            detail + f"; but the fine-tuned model deploys serverless only in {', '.join(deploy_regions)}",
            f"Use azure.location: {deploy_regions[0]} if you plan to deploy.",
        )
    return _result("region", "pass", detail)


def evaluate_providers(
    target: CheckTarget,
    providers: dict[str, Outcome],
    hub_will_be_created: bool,
    fixed: Iterable[str] = (),
) -> CheckResult:
    fixed = set(fixed)
    missing: list[str] = []  # needed and not registered
    optional: list[str] = []  # only needed for hub creation, hub exists
    errors: list[str] = []
    registered: list[str] = []
    for namespace, why, hub_only in REQUIRED_PROVIDERS:
        outcome = providers.get(namespace, Outcome())
        if outcome.error is not None:
            errors.append(f"{namespace}: {outcome.error.message}")
            continue
        state: ProviderState | None = outcome.value
        if state is None:
            errors.append(f"{namespace}: not read")
        elif state.registered:
            registered.append(namespace + (" (registered by --fix)" if namespace in fixed else ""))
        elif hub_only and not hub_will_be_created:
            optional.append(f"{namespace} is {state.registration_state} (needed only to create a hub: {why})")
        else:
            missing.append(f"{namespace} is {state.registration_state}: needed for {why}")
    register_all = " && ".join(
        f"az provider register --subscription {target.subscription_id} --namespace {ns} --wait"
        for ns, _, _ in REQUIRED_PROVIDERS
        if any(item.startswith(ns + " ") or item.startswith(ns + ":") for item in missing + optional + errors)
    )
    fix = f"phi3ft check --fix (or: {register_all})" if register_all else None
    if missing:
        return _result("providers", "fail", "; ".join(missing), fix)
    if errors:
        return _result(
            "providers",
            "warn",
            "could not read " + "; ".join(errors),
            "Ask for Reader on the subscription, or check the providers in the portal "
            "(Subscription -> Resource providers).",
        )
    if optional:
        return _result("providers", "warn", "; ".join(optional), fix)
    return _result("providers", "pass", "registered: " + ", ".join(registered))


def assignment_applies(assignment_scope: str, target_scope: str) -> bool:
    """An assignment applies at ``target_scope`` when it is there or above it (inheritance):
    ``/``, a management group, the subscription, or the group itself; not a child resource."""
    a = assignment_scope.rstrip("/").lower()
    t = target_scope.rstrip("/").lower()
    if a in ("", "/"):
        return True
    if a.startswith("/providers/microsoft.management/managementgroups/"):
        return True  # we cannot see the hierarchy; a management-group grant covers its subscriptions
    return t == a or t.startswith(a + "/")


def _granting(listing: RoleAssignmentListing, roles: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(role name, scope) of each applying assignment whose role is one of ``roles`` (default: the roles
    that allow the no-hub-creation path)."""
    roles = GRANTING_ROLES if roles is None else roles
    return [
        (roles[a.role_guid], a.scope)
        for a in listing.assignments
        if a.role_guid in roles and assignment_applies(a.scope, listing.scope)
    ]


@dataclass(frozen=True)
class AccessNeed:
    """What submit will create, and which roles (any one, on the resource group or above) allow it."""

    creates: tuple[str, ...]  # "hub H (a new storage account and key vault)", "project P", ...
    roles: dict[str, str]  # role definition GUID -> name
    grant: str  # the least role to ask for
    actions: tuple[str, ...] = ()  # the ARM actions a custom role must allow (hub creation only)

    @property
    def creates_hub(self) -> bool:
        return bool(self.actions)

    def what(self) -> str:
        return ", ".join(self.creates) if self.creates else "nothing new (hub and project exist)"


def access_needed(target: CheckTarget, hub: Outcome, project: Outcome) -> AccessNeed:
    """The role the plan needs, from what submit will create (a pure function of what was read).

    A new hub: Contributor or Owner (its template writes a storage account and a key vault). A new
    project in an existing hub, a compute cluster, data assets, jobs and endpoints: Azure AI Developer is
    enough (so are Contributor and Owner).
    """
    creates: list[str] = []
    hub_new = _hub_will_be_created(target, hub)
    if hub_new:
        creates.append(f"hub {target.hub} (a new storage account and key vault)")
    if project.error is None and project.value is None and target.project_create:
        creates.append(f"project {target.project}")
    if target.cluster:  # set for azureml-compute only
        creates.append(f"compute cluster {target.cluster} (if missing)")
    if hub_new:
        return AccessNeed(tuple(creates), dict(HUB_CREATING_ROLES), "Contributor", HUB_CREATE_ACTIONS)
    return AccessNeed(tuple(creates), dict(GRANTING_ROLES), "Azure AI Developer")


def _action_allowed(definition: RoleDefinitionInfo, action: str) -> bool:
    """``action`` matches an allowed pattern of the role and no NotActions pattern (ARM wildcards)."""
    import fnmatch

    wanted = action.lower()
    allowed = any(fnmatch.fnmatchcase(wanted, a.lower()) for a in definition.actions)
    return allowed and not any(fnmatch.fnmatchcase(wanted, n.lower()) for n in definition.not_actions)


def _scope_label(scope: str, target: CheckTarget) -> str:
    s = scope.rstrip("/").lower()
    if s in ("", "/"):
        return "root (/)"
    if s == f"/subscriptions/{target.subscription_id}".lower():
        return "the subscription (inherited)"
    if s == f"/subscriptions/{target.subscription_id}/resourcegroups/{target.resource_group}".lower():
        return "the resource group"
    if "managementgroups/" in s:
        return f"management group {scope.rsplit('/', 1)[-1]} (inherited)"
    return scope


def _custom_role_may_grant(definition: RoleDefinitionInfo) -> bool:
    wide = {"*", "microsoft.machinelearningservices/*", "microsoft.machinelearningservices/workspaces/*"}
    actions = {a.lower() for a in definition.actions}
    blocked = {a.lower() for a in definition.not_actions}
    return bool(actions & wide) and not (blocked & wide)


def evaluate_role(target: CheckTarget, identity: Identity | None, obs: Observed) -> CheckResult:
    oid = identity.object_id if identity else None
    principal_type = {
        "user": "User",
        "service_principal": "ServicePrincipal",
        "managed_identity": "ServicePrincipal",
    }
    assignee = (
        f"--assignee-object-id {oid} --assignee-principal-type {principal_type.get(identity.kind, 'User')}"
        if identity and oid
        else "--assignee <your-object-id>"
    )
    rg_scope = f"/subscriptions/{target.subscription_id}/resourceGroups/{target.resource_group}"
    need = access_needed(target, obs.hub, obs.project)
    names = " or ".join(sorted(set(need.roles.values())))
    fix = (
        f"Ask an Owner of the resource group to run: az role assignment create {assignee} "
        f'--role "{need.grant}" --scope {rg_scope}'
    )
    if need.creates_hub:
        fix += (
            f"; or have someone who can create hub {target.hub} once (az ml workspace create --kind hub "
            f"--resource-group {target.resource_group} --name {target.hub} --location {target.location}), "
            "after which Azure AI Developer is enough"
        )
    if not oid:
        return _result("role", "skip", "no object id in the token, so assignments cannot be listed", fix)
    if obs.roles.error is not None:
        return _result(
            "role",
            "warn",
            f"could not read your role assignments ({obs.roles.error.message}); "
            f"{names} on the group is needed to create {need.what()}",
            "Ask an Owner to confirm your role (portal: resource group -> Access control (IAM) -> Check access).",
        )
    listing: RoleAssignmentListing | None = obs.roles.value
    if listing is None:
        return _result("role", "skip", "role assignments were not read", fix)
    granting = _granting(listing, need.roles)
    if granting:
        name, scope = granting[0]
        return _result("role", "pass", f"{name} at {_scope_label(scope, target)}")
    held: list[str] = []
    custom_ok: list[str] = []
    custom_missing: set[str] = set()
    for a in listing.assignments:
        if not assignment_applies(a.scope, listing.scope):
            continue
        definition = obs.role_definitions.get(a.role_definition_id.lower())
        name = BUILTIN_ROLE_NAMES.get(a.role_guid) or (definition.role_name if definition else a.role_guid)
        held.append(f"{name} at {_scope_label(a.scope, target)}")
        if definition is None:
            continue
        if need.creates_hub:
            missing = [act for act in need.actions if not _action_allowed(definition, act)]
            if missing:
                custom_missing.update(missing)
            else:
                custom_ok.append(name)
        elif _custom_role_may_grant(definition):
            custom_ok.append(name)
    if custom_ok:
        return _result(
            "role",
            "warn",
            f"custom role {', '.join(sorted(set(custom_ok)))} may be enough to create {need.what()} "
            f"(not {names})",
            fix,
        )
    where = "the resource group" if listing.scope.lower() == rg_scope.lower() else "the subscription"
    holding = f"you hold {', '.join(sorted(set(held)))}" if held else "you hold no role there"
    if need.creates_hub:
        lacking = sorted(custom_missing) if custom_missing else list(need.actions)
        detail = (
            f"submit will create {need.what()}: that needs {names} on {where} "
            f"(actions {', '.join(lacking)}); {holding}"
        )
        if _granting(listing):
            detail += " (enough for an existing hub, not for creating one)"
        return _result("role", "fail", detail, fix)
    detail = f"no Azure AI Developer, Owner or Contributor on {where}; {holding}"
    return _result("role", "fail", detail, fix)


def _same_id(a: str | None, b: str | None) -> bool:
    return bool(a and b) and str(a).rstrip("/").lower() == str(b).rstrip("/").lower()


def evaluate_workspace(target: CheckTarget, rg: Outcome, hub_o: Outcome, project_o: Outcome) -> CheckResult:
    if rg.error is not None or rg.value is None:
        return _result("workspace", "skip", "the resource group is missing or unreadable (check 2)")
    for outcome in (hub_o, project_o):
        if outcome.error is not None:
            return _result("workspace", "fail", outcome.error.message, outcome.error.hint)
    hub: Workspace | None = hub_o.value
    project: Workspace | None = project_o.value
    notes: list[str] = []
    worst: Status = "pass"
    fix: str | None = None

    def bad(status: Status, text: str, how: str) -> None:
        nonlocal worst, fix
        notes.append(text)
        if _RANK[status] > _RANK[worst]:
            worst, fix = status, how

    create_hub = (
        f"az ml workspace create --kind hub --resource-group {target.resource_group} "
        f"--name {target.hub} --location {target.location}"
    )
    if hub is None:
        if target.hub_create:
            notes.append(f"hub {target.hub} will be created in {target.location}")
        else:
            bad(
                "fail",
                f"hub {target.hub} does not exist and azure.hub.create_if_missing is false",
                f"Set azure.hub.create_if_missing: true, or create it: {create_hub}",
            )
    elif hub.kind != "hub":
        bad(
            "fail",
            f"{target.hub} is a {hub.kind} workspace, not a hub (serverless fine-tuning needs a hub-based project)",
            "Set azure.hub.name to a hub, or to a new name that phi3ft will create.",
        )
    elif hub.location != target.location:
        bad(
            "fail",
            f"hub {target.hub} is in {hub.location}, not {target.location}",
            f"Use a hub in {target.location} (set azure.hub.name to a new name to create one).",
        )
    else:
        notes.append(f"hub {target.hub} exists in {hub.location}")

    if project is None:
        if target.project_create:
            notes.append(f"project {target.project} will be created in hub {target.hub}")
        else:
            bad(
                "fail",
                f"project {target.project} does not exist and azure.project.create_if_missing is false",
                "Set azure.project.create_if_missing: true, or create it in the Azure AI Foundry portal.",
            )
    elif project.kind != "project":
        bad(
            "fail",
            f"{target.project} is a {project.kind} workspace, not a project",
            "Set azure.project.name to a project of the hub, or to a new name.",
        )
    else:
        belongs = hub is not None and (
            _same_id(project.hub_id, hub.id)
            or (project.hub_id or "").rstrip("/").lower().endswith(f"/workspaces/{target.hub}".lower())
        )
        if not belongs:
            owner = (project.hub_id or "?").rstrip("/").rsplit("/", 1)[-1]
            bad(
                "fail",
                f"project {target.project} belongs to hub {owner}, not {target.hub}",
                f"Set azure.hub.name: {owner}, or choose another project name.",
            )
        elif project.location != (hub.location if hub else target.location):
            bad(
                "fail",
                f"project {target.project} is in {project.location}, its hub in {hub.location if hub else '?'}",
                "Use a project in the hub's region.",
            )
        else:
            notes.append(f"project {target.project} exists in hub {target.hub}")
    return _result("workspace", worst, "; ".join(notes), fix)


def _tag_date(tags: dict[str, str], key: str) -> date | None:
    value = tags.get(key)
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def evaluate_model(target: CheckTarget, model_o: Outcome, today: date) -> CheckResult:
    name = target.registry_model_name
    version = target.model_version or "latest"
    profile = target.profile
    replacement = profile.lifecycle.replacement if profile else None
    use_instead = (
        f"Set model.name: {replacement} in job.yaml (its named replacement)."
        if replacement
        else "Pick a current model (`phi3ft models`)."
    )
    if model_o.error is not None:
        return _result("model", "fail", model_o.error.message, model_o.error.hint)
    model: RegistryModel | None = model_o.value
    if model is None:
        what = f"{name} version {version}" if target.model_version else name
        lc = profile.lifecycle if profile else None
        retired = (lc.finetune_retired or lc.retired) if lc else None
        if retired is not None and today >= retired:
            instead = f"; replacement: {replacement}" if replacement else ""
            return _result(
                "model",
                "fail",
                f"{what} was not found in the azureml registry: its fine-tuning retired on "
                f"{retired.isoformat()} (phi3ft catalog, as of {profile.as_of.lifecycle.isoformat()}){instead}"
                if profile
                else f"{what} was not found in the azureml registry",
                use_instead,
            )
        return _result(
            "model",
            "fail",
            f"{what} was not found in the azureml registry",
            f"Set model.version: latest, or list versions: az ml model list --registry-name azureml --name {name}"
            if target.model_version
            else use_instead,
        )
    label = f"{model.name}:{model.version}" + (" (latest)" if not target.model_version else "")
    tasks = model.properties.get("finetuning-tasks")
    if tasks is not None and CHAT_TASK not in {t.strip().lower() for t in tasks.split(",")}:
        return _result(
            "model",
            "fail",
            f"{label} does not offer {CHAT_TASK} fine-tuning (finetuning-tasks: {tasks})",
            use_instead,
        )
    retire = _tag_date(model.tags, "FinetuneRetirementDate") or _tag_date(
        model.tags, "InferenceRetirementDate"
    )
    deprecate = _tag_date(model.tags, "FinetuneDeprecationDate")
    source = "registry lifecycle tags"
    if retire is None and deprecate is None and profile is not None:
        lc = profile.lifecycle
        retire, deprecate = lc.finetune_retired or lc.retired, lc.finetune_deprecated or lc.deprecated
        source = f"phi3ft catalog (as of {profile.as_of.lifecycle.isoformat()})"
    if retire is not None and today >= retire:
        instead = f"; replacement: {replacement}" if replacement else ""
        return _result(
            "model",
            "fail",
            f"{label} fine-tuning retired on {retire.isoformat()} ({source}){instead}",
            use_instead,
        )
    notes = [f"{label} found" + ("" if tasks is None else f", offers {CHAT_TASK} fine-tuning")]
    status: Status = "pass"
    fix: str | None = None
    if deprecate is not None and today >= deprecate:
        status, fix = "warn", use_instead
        notes.append(
            f"deprecated since {deprecate.isoformat()}"
            + (f", retires {retire.isoformat()}" if retire else "")
            + f" ({source})"
        )
    elif retire is not None:
        notes.append(f"fine-tuning until {retire.isoformat()}")
    if model.archived:
        status, fix = "warn", use_instead
        notes.append("this version is archived in the registry")
    if tasks is None:
        notes.append("no finetuning-tasks property to confirm chat-completion")
    return _result("model", status, "; ".join(notes), fix)


def _hub_will_be_created(target: CheckTarget, hub: Outcome) -> bool:
    return hub.error is None and hub.value is None and target.hub_create


# ---- --fix -----------------------------------------------------------------------------------------
def register_providers(
    backend: PrereqBackend,
    namespaces: list[str],
    *,
    pool: ThreadPoolExecutor,
    emit: Callable[[CheckEvent], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timeout: float = PROVIDER_WAIT_S,
) -> dict[str, Outcome]:
    """Register each namespace, then poll until all are Registered (or fail/time out).

    Returns the final state per namespace. Registration is idempotent in ARM, so a re-run is harmless.
    """
    started = {
        ns: pool.submit(Outcome.of, functools.partial(backend.register_provider, ns)) for ns in namespaces
    }
    pending: list[str] = []
    final: dict[str, Outcome] = {}
    for ns, fut in started.items():
        outcome = fut.result()
        if outcome.error is not None:
            final[ns] = outcome
            emit(
                CheckEvent(
                    "fix",
                    "providers",
                    f"could not register {ns}: {outcome.error.message}",
                    data={"namespace": ns},
                )
            )
        else:
            emit(
                CheckEvent(
                    "fix",
                    "providers",
                    f"registering {ns} ({outcome.value.registration_state})",
                    data={"namespace": ns, "state": outcome.value.registration_state},
                )
            )
            pending.append(ns)
    if not pending:
        return final

    def fetch() -> dict[str, Outcome]:
        return {ns: Outcome.of(functools.partial(backend.get_provider, ns)) for ns in pending}

    def done(states: dict[str, Outcome]) -> bool:
        return all(
            o.error is not None or (o.value is not None and o.value.registered) for o in states.values()
        )

    def progress(poll: Poll[dict[str, Outcome]]) -> None:
        summary = ", ".join(
            f"{ns} {o.value.registration_state if o.value else 'error'}" for ns, o in poll.value.items()
        )
        emit(
            CheckEvent(
                "fix",
                "providers",
                f"waiting ({int(poll.elapsed)} s): {summary}",
                data={"elapsed_s": poll.elapsed, "attempt": poll.attempt},
            )
        )

    try:
        states = wait_until(
            fetch,
            done,
            timeout=timeout,
            clock=clock,
            sleep=sleep,
            on_poll=progress,
            what="resource provider registration",
        )
    except PollTimeout as exc:
        states = fetch()
        emit(CheckEvent("fix", "providers", exc.message))
    final.update(states)
    return final


# ---- the entry point -------------------------------------------------------------------------------
def run_checks(
    backend: Any,
    cfg: JobConfig | CheckTarget,
    *,
    fix: bool = False,
    today: date | None = None,
    on_event: Callable[[CheckEvent], None] | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    max_workers: int = 8,
) -> CheckReport:
    """Run all seven checks against ``backend`` for ``cfg`` (a JobConfig or :class:`CheckTarget`).

    ``fix`` registers missing resource providers and waits for them. ``clock``/``sleep`` default to the
    backend's (injected by tests), then to the real ones. Never raises for a failing check: the report
    says what failed; only a config without an azure section raises UsageError.
    """
    target = CheckTarget.from_config(cfg)
    today = today or date.today()
    clock = clock or getattr(backend, "clock", None) or time.monotonic
    sleep = sleep or getattr(backend, "sleep", None) or time.sleep
    wall = time.monotonic()

    def emit(event: CheckEvent) -> None:
        if on_event is not None:
            on_event(event)

    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="phi3ft-check")
    try:
        return _run(
            backend, target, pool, fix=fix, today=today, emit=emit, clock=clock, sleep=sleep, wall=wall
        )
    finally:
        pool.shutdown(wait=False)


def _run(
    backend: Any,
    target: CheckTarget,
    pool: ThreadPoolExecutor,
    *,
    fix: bool,
    today: date,
    emit: Callable[[CheckEvent], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    wall: float,
) -> CheckReport:
    def done(result: CheckResult) -> CheckResult:
        emit(CheckEvent("result", result.id, result.detail, result))
        return result

    # Building the SDK clients imports azure-ai-ml (~2 s): do it while the credential fetches a token.
    warm = getattr(backend, "warm_clients", None)
    warming = pool.submit(Outcome.of, warm) if callable(warm) else None
    emit(CheckEvent("started", "credential", "obtaining a token"))
    try:
        identity: Identity | None = backend.identity()
        cred_error: Phi3ftError | None = None
    except Phi3ftError as exc:
        identity, cred_error = None, exc
    credential = done(evaluate_credential(identity, cred_error))
    if identity is None:
        skipped = [
            done(_result(cid, "skip", "needs a working credential (check 1)")) for cid, _ in CHECKS[1:]
        ]
        return CheckReport([credential, *skipped], None, time.monotonic() - wall)
    if warming is not None:
        warming.result()  # errors surface again in the individual reads
    emit(CheckEvent("started", None, "reading subscription, providers, roles, hub, project and model"))
    obs = observe(backend, target, identity, pool)
    hub_created = _hub_will_be_created(target, obs.hub)
    providers = evaluate_providers(target, obs.providers, hub_created)
    fixed: list[str] = []
    if fix and providers.status in ("fail", "warn"):
        to_register = [
            ns
            for ns, _, _ in REQUIRED_PROVIDERS
            if isinstance(obs.providers.get(ns, Outcome()).value, ProviderState)
            and not obs.providers[ns].value.registered
        ]
        if to_register:
            emit(CheckEvent("fix", "providers", f"registering {', '.join(to_register)}"))
            final = register_providers(backend, to_register, pool=pool, emit=emit, clock=clock, sleep=sleep)
            for ns, outcome in final.items():
                obs.providers[ns] = outcome
                if isinstance(outcome.value, ProviderState) and outcome.value.registered:
                    fixed.append(ns)
            providers = evaluate_providers(target, obs.providers, hub_created, fixed)
            register_errors = [o.error for ns, o in final.items() if o.error is not None]
            if register_errors and providers.status != "fail":
                providers = _result(
                    "providers",
                    "fail",
                    "; ".join(e.message for e in register_errors),
                    "Ask an Owner to run `az provider register --namespace <ns>` for the namespaces above.",
                )
    results = [
        credential,
        done(evaluate_resource_group(target, obs.resource_group)),
        done(evaluate_region(target, obs.model)),
        done(providers),
        done(evaluate_role(target, identity, obs)),
        done(evaluate_workspace(target, obs.resource_group, obs.hub, obs.project)),
        done(evaluate_model(target, obs.model, today)),
    ]
    return CheckReport(results, identity, time.monotonic() - wall, fixed)


def ensure_prerequisites(backend: Any, cfg: JobConfig | CheckTarget, **kwargs: Any) -> CheckReport:
    """For ``submit``: run the checks and raise PrerequisiteError (exit 4) naming the first failure."""
    report = run_checks(backend, cfg, **kwargs)
    if not report.ok:
        first = report.failed[0]
        others = len(report.failed) - 1
        more = f" (and {others} more; run `phi3ft check`)" if others else ""
        raise PrerequisiteError(f"{first.title}: {first.detail}{more}", first.fix)
    return report


@dataclass(frozen=True)
class CredentialProbe:
    """``phi3ft doctor``'s credential line: which member of the chain answered and who it is, or why not."""

    credential: str | None = None
    identity: Identity | None = None
    error: Phi3ftError | None = None


def probe_credential(mode: str, credential_factory: Callable[[str], Any] | None = None) -> CredentialProbe:
    """Build the credential chain for ``--auth mode`` (or ``credential_factory(mode)``, tests) and ask for one
    ARM token now. A failure is returned translated (message + fix), never raised; the chain's own log of
    every failed member is kept quiet (the probe's error says it once)."""
    import logging

    from phi3ft.targets.azureml.sdk._core import (
        ARM_SCOPE,
        build_credential,
        credential_error,
        decode_jwt_claims,
        identity_from_claims,
    )

    quiet = logging.getLogger("azure.identity")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        try:
            credential = (
                credential_factory(mode) if credential_factory is not None else build_credential(mode)
            )
            token = credential.get_token(ARM_SCOPE)
        except Phi3ftError as exc:
            return CredentialProbe(error=exc)
        except Exception as exc:
            return CredentialProbe(error=credential_error("obtain an Azure token", exc, auth=mode))
    finally:
        quiet.setLevel(level)
    chosen = getattr(credential, "_successful_credential", None) or credential
    name = type(chosen).__name__
    return CredentialProbe(name, identity_from_claims(decode_jwt_claims(token.token), name))
