"""Prerequisite reads and fixes: identity, resource group, providers, role assignments, registry models,
and the hub/project lookup that ``phi3ft check`` needs.

Every operation here is a read except :meth:`PrereqOps.register_provider`. Reads report "missing" as
``None`` (never an exception), so the check service can turn absence into a failing check with its fix;
everything else (403, throttling after retries, unreachable) arrives as a :class:`phi3ft.errors.Phi3ftError`.
The operations are safe to call from several threads at once (the check service runs them concurrently).

Module import stays cheap: ``azure.*`` is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError
from phi3ft.targets.azureml.sdk._core import AzureSession, call, error_code, translate_errors
from phi3ft.targets.base import Identity, RegistryModel, Workspace

#: Role definition GUIDs (the same in every subscription). Compare GUIDs, never display names.
AZURE_AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
#: Built-in roles we can name without a request (for "you hold Reader, which is not enough").
BUILTIN_ROLE_NAMES: dict[str, str] = {
    AZURE_AI_DEVELOPER: "Azure AI Developer",
    OWNER: "Owner",
    CONTRIBUTOR: "Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f6c7c914-8db3-469d-8ca1-694a8f32e121": "AzureML Data Scientist",
    "b78c5d69-af96-48a3-bf8d-a8b4d589de94": "Azure AI Administrator",
}

#: Resource providers the flow needs, and why. ``hub_only``: needed to create a hub.
REQUIRED_PROVIDERS: tuple[tuple[str, str, bool], ...] = (
    ("Microsoft.MachineLearningServices", "hubs, projects, fine-tuning jobs and serverless endpoints", False),
    ("Microsoft.Network", "serverless fine-tuning and endpoints (named by the Phi fine-tuning docs)", False),
    ("Microsoft.Storage", "the storage account created with a new hub", True),
    ("Microsoft.KeyVault", "the key vault created with a new hub", True),
)


def role_guid(role_definition_id: str) -> str:
    """``/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/<GUID>`` -> lower-case GUID."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class ResourceGroupInfo:
    name: str
    location: str
    id: str


@dataclass(frozen=True)
class ProviderState:
    namespace: str
    registration_state: str  # NotRegistered | Registering | Registered | Unregistering

    @property
    def registered(self) -> bool:
        return self.registration_state.lower() == "registered"


@dataclass(frozen=True)
class RoleAssignmentInfo:
    scope: str
    role_definition_id: str
    principal_id: str | None = None
    principal_type: str | None = None

    @property
    def role_guid(self) -> str:
        return role_guid(self.role_definition_id)


@dataclass(frozen=True)
class RoleDefinitionInfo:
    id: str
    role_name: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleAssignmentListing:
    """Assignments returned for ``scope`` (the listing also returns ones above and below it)."""

    scope: str
    assignments: tuple[RoleAssignmentInfo, ...] = field(default_factory=tuple)


class PrereqOps:
    """Mixin of :class:`phi3ft.targets.azureml.sdk.backend.AzureMLBackend`; uses ``self.session``."""

    session: AzureSession
    _prereq_lock = threading.Lock()

    # ---- scopes ------------------------------------------------------------------------------------
    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.session.subscription_id}"

    @property
    def resource_group_scope(self) -> str:
        return f"{self.subscription_scope}/resourceGroups/{self.session.resource_group}"

    def warm_clients(self) -> None:
        """Build the management clients once, before threads race to build them (cheap, no requests).

        The workspace and registry reads go through ``rest.py``: no check needs azure-ai-ml."""
        with self._prereq_lock:
            _ = self.session.resources, self.session.authorization

    # ---- identity ----------------------------------------------------------------------------------
    def identity(self) -> Identity:
        """Obtain an ARM token and say who it belongs to. Raises PrerequisiteError when no credential works."""
        return self.session.identity()

    # ---- subscription / resource group -------------------------------------------------------------
    def get_resource_group(self) -> ResourceGroupInfo | None:
        """The configured resource group, or ``None`` when it does not exist.

        A missing or inaccessible *subscription* is not "missing": it raises PrerequisiteError.
        """
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        name = self.session.resource_group
        try:
            with translate_errors_passthrough():
                rg = self.session.resources.resource_groups.get(name)
        except ResourceNotFoundError as exc:
            code = error_code(exc) or ""
            if code in {"SubscriptionNotFound", "InvalidSubscriptionId"}:
                raise _subscription_error(self.session.subscription_id, exc) from None
            return None
        except HttpResponseError as exc:
            if (error_code(exc) or "") in {"SubscriptionNotFound", "InvalidSubscriptionId"}:
                raise _subscription_error(self.session.subscription_id, exc) from None
            with translate_errors(f"read resource group {name}"):
                raise
        return ResourceGroupInfo(name=str(rg.name), location=str(rg.location), id=str(rg.id))

    # ---- resource providers ------------------------------------------------------------------------
    def get_provider(self, namespace: str) -> ProviderState:
        """Registration state of one resource provider namespace in the subscription."""
        provider = call(
            f"read resource provider {namespace}",
            lambda: self.session.resources.providers.get(namespace),
        )
        return ProviderState(namespace, str(provider.registration_state or "NotRegistered"))

    def register_provider(self, namespace: str) -> ProviderState:
        """Start registering a namespace (idempotent: registering a registered one is a no-op in ARM).

        Returns the state ARM reports right away, usually ``Registering``; poll :meth:`get_provider`
        until ``Registered``. A caller without ``*/register/action`` gets PrerequisiteError (403).
        """
        provider = call(
            f"register resource provider {namespace}",
            lambda: self.session.resources.providers.register(namespace),
        )
        return ProviderState(namespace, str(provider.registration_state or "Registering"))

    # ---- roles -------------------------------------------------------------------------------------
    def list_role_assignments(self, object_id: str, scope: str) -> RoleAssignmentListing:
        """Role assignments of ``object_id`` (incl. through groups) returned for ``scope``.

        ARM returns assignments at, above and below the scope; callers decide which apply
        (:func:`phi3ft.targets.azureml.checks.assignment_applies`). Missing scope -> NotFoundError; 403 ->
        PrerequisiteError.
        """

        def _list() -> tuple[RoleAssignmentInfo, ...]:
            pages = self.session.authorization.role_assignments.list_for_scope(
                scope, filter=f"assignedTo('{object_id}')"
            )
            return tuple(
                RoleAssignmentInfo(
                    scope=str(a.scope or ""),
                    role_definition_id=str(a.role_definition_id or ""),
                    principal_id=a.principal_id,
                    principal_type=str(a.principal_type) if a.principal_type else None,
                )
                for a in pages
            )

        return RoleAssignmentListing(scope, call("list your role assignments", _list))

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionInfo:
        """Name and permissions of a role definition (custom roles have no well-known GUID)."""
        guid = role_guid(role_definition_id)
        if not role_definition_id.startswith("/"):
            role_definition_id = (
                f"{self.subscription_scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
            )
        definition = call(
            "read a role definition",
            lambda: self.session.authorization.role_definitions.get_by_id(role_definition_id),
        )
        actions: list[str] = []
        not_actions: list[str] = []
        for permission in definition.permissions or []:
            actions.extend(permission.actions or [])
            not_actions.extend(permission.not_actions or [])
        return RoleDefinitionInfo(
            id=role_definition_id,
            role_name=str(definition.role_name or BUILTIN_ROLE_NAMES.get(guid) or guid),
            actions=tuple(actions),
            not_actions=tuple(not_actions),
        )

    # ---- hub / project -----------------------------------------------------------------------------
    def find_workspace(self, name: str) -> Workspace | None:
        """A hub or project by name in the resource group, or ``None`` when absent (404)."""
        from phi3ft.targets.azureml.sdk.workspaces import read_workspace

        return read_workspace(self.session, name)

    # ---- registry model ----------------------------------------------------------------------------
    def resolve_registry_model(self, name: str, version: str | None = None) -> RegistryModel | None:
        """A model version in the ``azureml`` registry: ``version``, or the latest *created* one.

        Returns ``None`` when the name (or that version) does not exist. ``archived`` comes from the
        version's ``isArchived`` property (the public ``Model`` entity drops it), so the raw version is read
        (``rest.py``; no azure-ai-ml import).
        """
        from azure.core.exceptions import ResourceNotFoundError

        from phi3ft.targets.azureml.sdk.rest import rest_for

        rest = rest_for(self.session, project=False)
        what = f"look up {name}" + (f" version {version}" if version else "") + " in the azureml registry"

        def _resolve() -> RegistryModel | None:
            # The same reads as azure-ai-ml's ``get(label="latest")`` / ``_get`` (discovery, the newest
            # created version, that version) without importing it; the raw version keeps ``isArchived``.
            try:
                resolved = str(version) if version is not None else rest.latest_registry_version(name)
                if resolved is None:
                    return None  # no (active) version to call latest
                raw = rest.get_registry_version(name, resolved)
            except ResourceNotFoundError:
                return None
            except (
                KeyError,
                ValueError,
                TypeError,
                IndexError,
            ) as exc:  # an unreadable discovery/list answer
                raise AzureError(
                    f"Could not resolve {name} in the azureml registry: {type(exc).__name__}: {exc}"
                ) from None
            props = raw.get("properties") or {}
            resolved = str(raw.get("name") or resolved)
            return RegistryModel(
                name=name,
                version=resolved,
                id=f"azureml://registries/azureml/models/{name}/versions/{resolved}",
                tags={str(k): str(v) for k, v in (props.get("tags") or {}).items()},
                properties={str(k): str(v) for k, v in (props.get("properties") or {}).items()},
                archived=bool(props.get("isArchived") or False),
            )

        try:
            return call(what, _resolve)
        except NotFoundError:
            return None


@contextlib.contextmanager
def translate_errors_passthrough() -> Iterator[None]:
    """Let azure-core errors through untouched (the caller inspects codes), but map auth failures.

    ``ClientAuthenticationError`` can surface on any call when a token expires mid-run; it must still
    read as a credential problem, not as "missing".
    """
    from azure.core.exceptions import ClientAuthenticationError

    try:
        yield
    except ClientAuthenticationError as exc:
        with translate_errors("call Azure"):
            raise exc from None


def _subscription_error(subscription_id: str, exc: BaseException) -> PrerequisiteError:
    from phi3ft.targets.azureml.sdk._core import innermost_message

    return PrerequisiteError(
        f"Subscription {subscription_id} is not reachable with this identity: {innermost_message(exc)}",
        "Check azure.subscription_id in job.yaml (`az account list -o table` lists yours).",
    )
