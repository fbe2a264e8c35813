"""In-memory fake of the prerequisite operations (``PrereqOps``) for fast unit tests of ``phi3ft.targets.azureml.checks``.

It follows the adapter's contract: absence is ``None``, failures are ``Phi3ftError``s, provider
registration goes NotRegistered -> Registering -> Registered after ``registering_polls`` reads. The
end-to-end tests (tests/e2e/test_check*.py) run the same scenarios through the real SDK against the
offline Azure stack, which keeps this fake honest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from phi3ft.errors import NotFoundError, Phi3ftError
from phi3ft.targets.azureml.sdk.prereqs import (
    AZURE_AI_DEVELOPER,
    CONTRIBUTOR,
    ProviderState,
    ResourceGroupInfo,
    RoleAssignmentInfo,
    RoleAssignmentListing,
    RoleDefinitionInfo,
)
from phi3ft.targets.base import Identity, RegistryModel, Workspace

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-phi"
OID = "11111111-1111-1111-1111-111111111111"
TID = "22222222-2222-2222-2222-222222222222"


def role_id(guid: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def contributor_on_rg(sub: str = SUB, rg: str = RG, oid: str = OID) -> list[RoleAssignmentInfo]:
    """Contributor on the group: what creating a hub needs (the default fake holds Azure AI Developer)."""
    return [
        RoleAssignmentInfo(
            f"/subscriptions/{sub}/resourceGroups/{rg}", role_id(CONTRIBUTOR, sub), oid, "User"
        )
    ]


def workspace_id(name: str, sub: str = SUB, rg: str = RG) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}"


def phi_model(
    name: str = "Phi-4-mini-instruct", version: str = "3", *, archived: bool = False, **tags: str
) -> RegistryModel:
    return RegistryModel(
        name=name,
        version=version,
        id=f"azureml://registries/azureml/models/{name}/versions/{version}",
        tags={"maas-finetuning-regions": "eastus2", **tags},
        properties={"finetuning-tasks": "chat-completion"},
        archived=archived,
    )


@dataclass
class FakeClock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakePrereqBackend:
    subscription_id: str = SUB
    resource_group: str = RG
    identity_value: Identity | Phi3ftError = field(
        default_factory=lambda: Identity("user", TID, OID, "dev@contoso.com", "AzureCliCredential")
    )
    rg: ResourceGroupInfo | Phi3ftError | None = field(
        default_factory=lambda: ResourceGroupInfo(RG, "eastus2", f"/subscriptions/{SUB}/resourceGroups/{RG}")
    )
    providers: dict[str, str] = field(
        default_factory=lambda: {
            "Microsoft.MachineLearningServices": "Registered",
            "Microsoft.Network": "Registered",
            "Microsoft.Storage": "Registered",
            "Microsoft.KeyVault": "Registered",
        }
    )
    provider_errors: dict[str, Phi3ftError] = field(default_factory=dict)
    register_errors: dict[str, Phi3ftError] = field(default_factory=dict)
    registering_polls: int = 2
    assignments: list[RoleAssignmentInfo] = field(
        default_factory=lambda: [
            RoleAssignmentInfo(
                f"/subscriptions/{SUB}/resourceGroups/{RG}", role_id(AZURE_AI_DEVELOPER), OID, "User"
            )
        ]
    )
    roles_error: Phi3ftError | None = None
    role_definitions: dict[str, RoleDefinitionInfo] = field(default_factory=dict)
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    models: list[RegistryModel] = field(default_factory=lambda: [phi_model()])
    model_error: Phi3ftError | None = None
    clock: FakeClock = field(default_factory=FakeClock)
    calls: list[str] = field(default_factory=list)
    _polls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sleep(self, seconds: float) -> None:  # the service reads backend.clock / backend.sleep
        self.clock.sleep(seconds)

    def _log(self, call: str) -> None:
        with self._lock:
            self.calls.append(call)

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def resource_group_scope(self) -> str:
        return f"{self.subscription_scope}/resourceGroups/{self.resource_group}"

    def identity(self) -> Identity:
        self._log("identity")
        if isinstance(self.identity_value, Phi3ftError):
            raise self.identity_value
        return self.identity_value

    def get_resource_group(self) -> ResourceGroupInfo | None:
        self._log("get_resource_group")
        if isinstance(self.rg, Phi3ftError):
            raise self.rg
        return self.rg

    def get_provider(self, namespace: str) -> ProviderState:
        self._log(f"get_provider {namespace}")
        if namespace in self.provider_errors:
            raise self.provider_errors[namespace]
        with self._lock:
            state = self.providers.get(namespace, "NotRegistered")
            if state == "Registering":
                self._polls[namespace] = self._polls.get(namespace, 0) + 1
                if self._polls[namespace] >= self.registering_polls:
                    state = self.providers[namespace] = "Registered"
        return ProviderState(namespace, state)

    def register_provider(self, namespace: str) -> ProviderState:
        self._log(f"register_provider {namespace}")
        if namespace in self.register_errors:
            raise self.register_errors[namespace]
        with self._lock:
            if self.providers.get(namespace) != "Registered":
                self.providers[namespace] = "Registering"
            return ProviderState(namespace, self.providers[namespace])

    def list_role_assignments(self, object_id: str, scope: str) -> RoleAssignmentListing:
        self._log(f"list_role_assignments {scope}")
        if self.roles_error is not None:
            raise self.roles_error
        if scope == self.resource_group_scope and self.rg is None:
            raise NotFoundError(f"Resource group '{self.resource_group}' could not be found.")
        return RoleAssignmentListing(scope, tuple(a for a in self.assignments if a.principal_id == object_id))

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionInfo:
        self._log(f"get_role_definition {role_definition_id}")
        try:
            return self.role_definitions[role_definition_id.lower()]
        except KeyError:
            raise NotFoundError(f"role definition {role_definition_id} not found") from None

    def find_workspace(self, name: str) -> Workspace | None:
        self._log(f"find_workspace {name}")
        return self.workspaces.get(name)

    def resolve_registry_model(self, name: str, version: str | None = None) -> RegistryModel | None:
        self._log(f"resolve_registry_model {name} {version}")
        if self.model_error is not None:
            raise self.model_error
        found = [m for m in self.models if m.name.lower() == name.lower()]
        if version is not None:
            found = [m for m in found if m.version == version]
        return found[-1] if found else None  # last = most recently created
