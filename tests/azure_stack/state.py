"""The stateful model behind the fake Azure: what exists, and the knobs tests turn.

Everything is guarded by ``State.lock`` (the server is threaded; the product checks concurrently).
Tests seed and inspect through the methods and attributes here; ``reset()`` restores the default
seed documented in tests/azure_stack/README.md.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .web import HttpError, Response

if TYPE_CHECKING:
    from .azurite import Azurite

# --- the default seed -------------------------------------------------------------------------

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION_ID = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-phi3ft"
LOCATION = "eastus2"
USER_OID = "11111111-2222-3333-4444-555555555555"
SP_CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SP_CLIENT_SECRET = "phi3ft-fake-secret"
STORAGE_ACCOUNT = "phi3ftstore"
STORAGE_POOL = (STORAGE_ACCOUNT, *(f"phi3ftstore{i}" for i in range(1, 8)))
REGISTRY_SUBSCRIPTION = "6c6683e9-e5fe-4038-8519-ce6ebec2ba15"
REGISTRY_RESOURCE_GROUP = "registry-builtin-prod-eastus-01"
REGISTRY_REGION = "eastus"

ROLE_AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
ROLE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
ROLE_OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
ROLE_READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_DEFINITIONS = {
    ROLE_AI_DEVELOPER: ("Azure AI Developer", "Can perform all actions within an Azure AI resource besides managing the resource itself."),
    ROLE_CONTRIBUTOR: ("Contributor", "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC."),
    ROLE_OWNER: ("Owner", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC."),
    ROLE_READER: ("Reader", "View all resources, but does not allow you to make any changes."),
}  # fmt: skip

DEFAULT_PROVIDERS = {
    "Microsoft.MachineLearningServices": "Registered",
    "Microsoft.Storage": "Registered",
    "Microsoft.KeyVault": "Registered",
    "Microsoft.Network": "Registered",
    "Microsoft.Resources": "Registered",
    "Microsoft.Authorization": "Registered",
    "Microsoft.ContainerRegistry": "NotRegistered",
    "Microsoft.Insights": "NotRegistered",
    "Microsoft.CognitiveServices": "NotRegistered",
}

PHI_DEPLOY_REGIONS = "eastus2,eastus,northcentralus,westus3,westus,southcentralus"
RETIRED_PHI3_TAGS = {
    "InferenceLegacyDate": "2025-06-09",
    "InferenceDeprecationDate": "2025-06-30",
    "InferenceRetirementDate": "2025-08-30",
    "FinetuneDeprecationDate": "2025-06-30",
    "FinetuneRetirementDate": "2025-08-30",
}

TERMINAL_JOB_STATES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
DEFAULT_JOB_SCRIPT = ("NotStarted", "Queued", "Running", "Completed")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def system_data() -> dict[str, Any]:
    ts = now_iso()
    return {
        "createdAt": ts,
        "createdBy": "dev@phi3ft.test",
        "createdByType": "User",
        "lastModifiedAt": ts,
        "lastModifiedBy": "dev@phi3ft.test",
        "lastModifiedByType": "User",
    }


def ws_arm_id(sub: str, rg: str, ws: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"


def not_found(kind: str, name: str, rg: str | None = None) -> HttpError:
    where = f" under resource group '{rg}'" if rg else ""
    return HttpError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}'{where} was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def aml_not_found(what: str) -> HttpError:
    return HttpError(
        404,
        "UserError",
        f"{what} not found.",
        details=[{"code": "NotFound", "message": f"{what} not found."}],
    )


# --- entities ---------------------------------------------------------------------------------


@dataclass
class Provider:
    namespace: str
    state: str
    reads_left: int = 0


@dataclass
class RoleAssignment:
    name: str
    scope: str
    role_definition_guid: str
    principal_id: str
    principal_type: str = "User"
    created: str = field(default_factory=now_iso)


@dataclass
class Workspace:
    sub: str
    rg: str
    name: str
    kind: str  # Hub | Project | Default
    location: str
    storage_account: str  # an Azurite account
    key_vault: str
    workspace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    hub_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    friendly_name: str = ""
    description: str = ""
    provisioning_state: str = "Succeeded"
    system_data: dict[str, Any] = field(default_factory=system_data)

    @property
    def id(self) -> str:
        return ws_arm_id(self.sub, self.rg, self.name)

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def blob_container(self) -> str:
        return f"azureml-blobstore-{self.workspace_id}"

    @property
    def artifact_container(self) -> str:
        return "azureml"

    def storage_id(self) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{self.rg}/providers/Microsoft.Storage/storageAccounts/{self.storage_account}"

    def key_vault_id(self) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{self.rg}/providers/Microsoft.KeyVault/vaults/{self.key_vault}"

    def body(self, state: State) -> dict[str, Any]:
        props: dict[str, Any] = {
            "friendlyName": self.friendly_name or self.name,
            "description": self.description,
            "storageAccount": self.storage_id(),
            "keyVault": self.key_vault_id(),
            "applicationInsights": None,
            "containerRegistry": None,
            "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
            "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.id}",
            "workspaceId": self.workspace_id,
            "provisioningState": self.provisioning_state,
            "publicNetworkAccess": "Enabled",
            "hbiWorkspace": False,
            "v1LegacyMode": False,
            "enableDataIsolation": self.kind != "Default",
            "managedNetwork": {"isolationMode": "Disabled", "status": {"status": "Inactive"}},
            "systemDatastoresAuthMode": "accesskey",
            "tenantId": state.tenant_id,
            "creationTime": self.system_data["createdAt"],
        }
        if self.kind == "Project":
            props["hubResourceId"] = self.hub_id
        if self.kind == "Hub":
            props["associatedWorkspaces"] = [
                w.id for w in state.workspaces.values() if (w.hub_id or "").lower() == self.key
            ]
            props["workspaceHubConfig"] = {
                "defaultWorkspaceResourceGroup": f"/subscriptions/{self.sub}/resourceGroups/{self.rg}"
            }
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": self.location,
            "kind": self.kind,
            "tags": dict(self.tags),
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.id)), "tenantId": state.tenant_id},
            "sku": {"name": "Basic", "tier": "Basic"},
            "systemData": self.system_data,
            "properties": props,
        }  # fmt: skip


@dataclass
class Job:
    ws: Workspace
    name: str
    body: dict[str, Any]
    script: list[str]
    idx: int = 0
    reads: int = 0
    created_mono: float = field(default_factory=time.monotonic)
    error: dict[str, Any] | None = None
    metrics: dict[str, list[float]] | None = None
    entered: dict[str, str] = field(default_factory=dict)  # status -> ISO time first seen

    @property
    def status(self) -> str:
        return self.script[self.idx]

    @property
    def properties(self) -> dict[str, Any]:
        return self.body["properties"]  # type: ignore[no-any-return]


@dataclass
class Endpoint:
    ws: Workspace
    name: str
    model_id: str
    location: str
    tags: dict[str, str]
    provisioning_state: str = "Creating"
    primary_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8])
    secondary_key: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8])
    auth_mode: str = "Key"
    content_safety: str = "Enabled"
    system_data: dict[str, Any] = field(default_factory=system_data)

    @property
    def uri(self) -> str:
        return f"https://{self.name}.{self.location}.models.ai.azure.com"

    @property
    def endpoint_state(self) -> str:
        return {
            "Creating": "Creating",
            "Succeeded": "Online",
            "Failed": "CreationFailed",
            "Deleting": "Deleting",
        }.get(self.provisioning_state, "Unknown")

    def body(self) -> dict[str, Any]:
        return {
            "id": f"{self.ws.id}/serverlessEndpoints/{self.name}",
            "name": self.name,
            "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints",
            "location": self.location,
            "tags": dict(self.tags),
            "sku": {"name": "Consumption"},
            "systemData": self.system_data,
            "properties": {
                "modelSettings": {"modelId": self.model_id},
                "authMode": self.auth_mode,
                "contentSafety": {"contentSafetyStatus": self.content_safety},
                "endpointState": self.endpoint_state,
                "inferenceEndpoint": {"uri": self.uri, "headers": {}},
                "marketplaceSubscriptionId": None,
                "provisioningState": self.provisioning_state,
            },
        }


@dataclass
class Operation:
    """An ARM async operation, shared by its ``Azure-AsyncOperation`` and ``Location`` URLs."""

    id: str
    kind: str
    remaining: int
    on_done: Callable[[], None] | None = None
    result: Callable[[], Response] | None = None
    status: str = "InProgress"
    error: dict[str, Any] | None = None
    start: str = field(default_factory=now_iso)
    end: str | None = None


@dataclass
class RegistryModelVersion:
    registry: str
    name: str
    version: str
    tags: dict[str, str]
    properties: dict[str, str]
    archived: bool = False
    created: str = "2024-01-01T00:00:00.000Z"
    description: str = ""

    def body(self) -> dict[str, Any]:
        # The registry data plane answers with the asset id, not an ARM id: azure-ai-ml parses it with
        # REGISTRY_VERSION_PATTERN (``^azureml://registries/...``) and rejects an ARM path.
        asset_id = f"azureml://registries/{self.registry}/models/{self.name}/versions/{self.version}"
        return {
            "id": asset_id,
            "name": self.version,
            "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "systemData": {"createdAt": self.created, "createdBy": "azureml", "createdByType": "Application",
                           "lastModifiedAt": self.created},
            "properties": {
                "description": self.description,
                "tags": dict(self.tags),
                "properties": dict(self.properties),
                "isArchived": self.archived,
                "isAnonymous": False,
                "modelType": "mlflow_model",
                "modelUri": f"azureml://registries/{self.registry}/models/{self.name}/versions/{self.version}",
                "flavors": {"transformers": {"data": {}}},
                "provisioningState": "Succeeded",
                "stage": "Archived" if self.archived else "Production",
            },
        }  # fmt: skip


# --- the state --------------------------------------------------------------------------------


class State:
    def __init__(self, azurite: Azurite | None = None) -> None:
        self.lock = threading.RLock()
        self.azurite = azurite
        self.reset()

    # knobs (documented in README) ------------------------------------------------------------
    def _default_knobs(self) -> None:
        self.jobs_advance_every = 2  # job reads per status step (ml.jobs.get sends two GETs)
        self.job_step_seconds: float | None = None  # if set: step by elapsed time instead of reads
        self.default_job_script: list[str] = list(DEFAULT_JOB_SCRIPT)
        self.fast_deployments = True  # ARM deployments answer Succeeded in the PUT (else 201 + async polling)
        self.lro_retry_after = "1"  # Retry-After on InProgress polls; "0" would make azure-core sleep 30 s
        self.lro_polls = 1  # polls (or resource reads) an LRO stays InProgress; 1 = done on first poll
        self.compute_create_polls: int | None = None  # reads a new cluster stays Creating (None: lro_polls)
        self.provider_register_reads = 1  # provider GETs still answering Registering after register
        self.refuse_hub_delete_with_projects = True
        self.datastore_secret_type = "Sas"  # or "AccountKey"
        self.caller_can_assign_roles = True
        self.inference_reply: str | None = None
        #: endpoint name (lower case) -> reply text, or a function of the last message's text
        self.inference_replies: dict[str, Any] = {}
        self.inference_logprobs = False  # per-token logprobs when a chat request asks for them
        self.taken_endpoint_names: set[str] = set()  # names "taken in the region" by someone else

    def reset(self) -> None:
        with self.lock:
            self._default_knobs()
            self.tenant_id = TENANT_ID
            self.user_oid = USER_OID
            self.subscriptions: dict[str, dict[str, Any]] = {
                SUBSCRIPTION_ID: {"displayName": "phi3ft test subscription", "state": "Enabled"}
            }
            self.resource_groups: dict[tuple[str, str], dict[str, Any]] = {}
            self.add_resource_group(RESOURCE_GROUP, LOCATION)
            self.providers: dict[tuple[str, str], Provider] = {}
            for ns, st in DEFAULT_PROVIDERS.items():
                self.set_provider(ns, st)
            self.role_definitions = dict(ROLE_DEFINITIONS)
            self.role_assignments: dict[str, RoleAssignment] = {}
            self.add_role_assignment(
                f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}",
                ROLE_AI_DEVELOPER,
                USER_OID,
            )
            self.service_principals: dict[str, dict[str, str]] = {
                SP_CLIENT_ID: {"secret": SP_CLIENT_SECRET, "oid": USER_OID, "tenant": TENANT_ID}
            }
            self.storage_accounts = list(STORAGE_POOL)
            self.workspaces: dict[str, Workspace] = {}
            self.deployments: dict[str, dict[str, Any]] = {}
            self.operations: dict[str, Operation] = {}
            self.data: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            self.jobs: dict[tuple[str, str], Job] = {}
            self.job_scripts: dict[str, tuple[list[str], dict[str, Any] | None]] = {}
            self.models: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            self.endpoints: dict[tuple[str, str], Endpoint] = {}
            self.marketplace: dict[str, dict[str, Any]] = {}
            # backend azureml-compute (compute.py): clusters, environment and code asset versions
            self.computes: dict[tuple[str, str], dict[str, Any]] = {}
            self.environments: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            self.codes: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            # what a completed command job "wrote" to each named output ({output: {relative path: bytes}}):
            # the files land in the workspace blob store under azureml/{job}/{output}/, where the model
            # registered from that output points (so `ml.models.download` fetches them)
            self.command_output_files: dict[str, dict[str, bytes]] = {}
            self.deleted_resources: list[str] = []
            self.registry: dict[tuple[str, str], dict[str, RegistryModelVersion]] = {}
            self._seed_registry()

    # --- seeding helpers ----------------------------------------------------------------------

    def add_resource_group(self, name: str, location: str = LOCATION, sub: str = SUBSCRIPTION_ID) -> None:
        with self.lock:
            self.resource_groups[(sub.lower(), name.lower())] = {
                "name": name,
                "location": location,
                "tags": {},
            }

    def set_provider(self, namespace: str, state: str, sub: str = SUBSCRIPTION_ID) -> None:
        with self.lock:
            self.providers[(sub.lower(), namespace.lower())] = Provider(namespace, state)

    def provider_state(self, namespace: str, sub: str = SUBSCRIPTION_ID) -> str:
        return self.providers[(sub.lower(), namespace.lower())].state

    def add_role_assignment(
        self,
        scope: str,
        role_guid: str,
        principal_id: str,
        principal_type: str = "User",
        name: str | None = None,
    ) -> RoleAssignment:
        with self.lock:
            ra = RoleAssignment(
                name or str(uuid.uuid4()), scope.rstrip("/"), role_guid.lower(), principal_id, principal_type
            )
            self.role_assignments[ra.name] = ra
            return ra

    def clear_role_assignments(self) -> None:
        with self.lock:
            self.role_assignments.clear()

    def next_storage_account(self) -> str:
        used = {w.storage_account for w in self.workspaces.values() if w.kind != "Project"}
        for acct in self.storage_accounts:
            if acct not in used:
                return acct
        return self.storage_accounts[len(self.workspaces) % len(self.storage_accounts)]

    def add_hub(self, name: str = "hub-phi3ft", location: str = LOCATION, rg: str = RESOURCE_GROUP,
                sub: str = SUBSCRIPTION_ID) -> Workspace:  # fmt: skip
        """Seed a hub directly (no ARM deployment)."""
        with self.lock:
            ws = Workspace(sub, rg, name, "Hub", location, self.next_storage_account(), f"kv{name[:8]}")
            self._store_workspace(ws)
            return ws

    def add_project(self, name: str = "proj-phi3ft", hub: str | Workspace = "hub-phi3ft", location: str | None = None,
                    rg: str = RESOURCE_GROUP, sub: str = SUBSCRIPTION_ID) -> Workspace:  # fmt: skip
        """Seed a hub-based project (creating the hub if it does not exist)."""
        with self.lock:
            hub_ws = (
                hub if isinstance(hub, Workspace) else self.workspaces.get(ws_arm_id(sub, rg, hub).lower())
            )
            if hub_ws is None:
                hub_ws = self.add_hub(str(hub), location or LOCATION, rg, sub)
            ws = Workspace(sub, rg, name, "Project", location or hub_ws.location, hub_ws.storage_account,
                           hub_ws.key_vault, hub_id=hub_ws.id)  # fmt: skip
            self._store_workspace(ws)
            return ws

    def _store_workspace(self, ws: Workspace) -> None:
        self.workspaces[ws.key] = ws
        if self.azurite is not None:
            self.azurite.ensure_container(ws.storage_account, ws.blob_container)

    def workspace(self, name: str, rg: str = RESOURCE_GROUP, sub: str = SUBSCRIPTION_ID) -> Workspace | None:
        return self.workspaces.get(ws_arm_id(sub, rg, name).lower())

    def add_registry_model(self, name: str, version: str, *, registry: str = "azureml", tags: dict[str, str] | None = None,
                           properties: dict[str, str] | None = None, archived: bool = False,
                           created: str | None = None) -> RegistryModelVersion:  # fmt: skip
        with self.lock:
            mv = RegistryModelVersion(registry, name, version, dict(tags or {}), dict(properties or {}), archived,
                                      created or now_iso())  # fmt: skip
            self.registry.setdefault((registry.lower(), name.lower()), {})[version] = mv
            return mv

    def _seed_registry(self) -> None:
        ft_props = {"finetuning-tasks": "chat-completion", "SharedComputeCapacityEnabled": "true"}
        self.add_registry_model(
            "Phi-3-mini-4k-instruct", "15", archived=True, created="2024-09-10T00:00:00.000Z",
            tags={**RETIRED_PHI3_TAGS, "maas-finetuning": "true", "maas-finetuning-regions": "eastus2",
                  "maas-finetuning-deploy-regions": "eastus2", "textContextWindow": "4096", "task": "chat-completion"},
            properties=ft_props,
        )  # fmt: skip
        self.add_registry_model(
            "Phi-3.5-mini-instruct", "6", created="2024-10-01T00:00:00.000Z",
            tags={**RETIRED_PHI3_TAGS, "maas-finetuning": "true", "maas-finetuning-regions": "eastus2",
                  "maas-finetuning-deploy-regions": PHI_DEPLOY_REGIONS, "textContextWindow": "131072",
                  "task": "chat-completion"},
            properties=ft_props,
        )  # fmt: skip
        self.add_registry_model(
            "Phi-4-mini-instruct", "1", created="2025-03-01T00:00:00.000Z",
            tags={"maas-finetuning": "true", "maas-finetuning-regions": "eastus2,eastus,northcentralus,swedencentral",
                  "maas-finetuning-deploy-regions": PHI_DEPLOY_REGIONS, "textContextWindow": "131072",
                  "maxOutputTokens": "4096", "task": "chat-completion", "license": "mit"},
            properties=ft_props,
        )  # fmt: skip

    # --- async operations ---------------------------------------------------------------------

    def new_operation(self, kind: str, on_done: Callable[[], None] | None = None,
                      result: Callable[[], Response] | None = None, remaining: int | None = None) -> Operation:  # fmt: skip
        op = Operation(
            str(uuid.uuid4()), kind, self.lro_polls if remaining is None else remaining, on_done, result
        )
        self.operations[op.id] = op
        if op.remaining <= 0:
            self.finish_operation(op)
        return op

    def poll_operation(self, op: Operation) -> Operation:
        if op.status == "InProgress":
            op.remaining -= 1
            if op.remaining <= 0:
                self.finish_operation(op)
        return op

    def finish_operation(self, op: Operation) -> None:
        if op.status != "InProgress":
            return
        op.status = "Succeeded"
        op.end = now_iso()
        if op.on_done is not None:
            op.on_done()

    # --- jobs ---------------------------------------------------------------------------------

    def set_job_script(self, name: str, statuses: list[str], error: dict[str, Any] | None = None) -> None:
        """Script a job's statuses (before or after submission); it steps through them on reads."""
        with self.lock:
            self.job_scripts[name.lower()] = (list(statuses), error)
            for job in self.jobs.values():
                if job.name.lower() == name.lower():
                    job.script, job.idx, job.reads = list(statuses), 0, 0
                    job.error = error or job.error
                    self._enter_job_status(job)

    def fail_job(self, name: str, *, code: str = "UserError", message: str | None = None,
                 after: tuple[str, ...] = ("NotStarted", "Queued", "Running")) -> None:  # fmt: skip
        self.set_job_script(name, [*after, "Failed"], self.job_error(code, message))

    @staticmethod
    def job_error(code: str = "UserError", message: str | None = None) -> dict[str, Any]:
        message = message or (
            "Training data validation failed: line 3: 'messages' must contain at least one 'assistant' turn."
        )
        return {
            "code": code,
            "severity": None,
            "message": message,
            "messageFormat": message,
            "messageParameters": {},
            "referenceCode": None,
            "detailsUri": None,
            "target": None,
            "details": [],
            "innerError": {"code": "DataValidation", "innerError": None},
            "debugInfo": None,
            "additionalInfo": None,
        }

    def find_job(self, name: str) -> Job:
        with self.lock:
            for job in self.jobs.values():
                if job.name.lower() == name.lower():
                    return job
        raise KeyError(name)

    def advance_job(self, name: str, to: str | None = None) -> Job:
        """Move a job one step (or straight to ``to``, appended to its script if absent)."""
        with self.lock:
            job = self.find_job(name)
            if to is None:
                job.idx = min(job.idx + 1, len(job.script) - 1)
            else:
                if to not in job.script[job.idx :]:
                    job.script = [*job.script[: job.idx + 1], to]
                job.idx = job.script.index(to, job.idx)
            self._enter_job_status(job)
            return job

    def touch_job(self, job: Job) -> Job:
        """One read of a job: advance its script by reads or by elapsed time."""
        job.reads += 1
        if job.status in TERMINAL_JOB_STATES:
            return job
        if self.job_step_seconds:
            target = int((time.monotonic() - job.created_mono) / self.job_step_seconds)
        else:
            target = job.reads // max(1, self.jobs_advance_every)
        new_idx = max(job.idx, min(target, len(job.script) - 1))
        while job.idx < new_idx:
            job.idx += 1
            self._enter_job_status(job)
            if job.status in TERMINAL_JOB_STATES:
                break
        return job

    def _enter_job_status(self, job: Job) -> None:
        status = job.status
        job.entered.setdefault(status, now_iso())
        job.properties["status"] = status
        if status == "Failed" and job.error is None:
            job.error = self.job_error()
        if status in ("Running", "Completed", "Failed", "Canceled"):
            self._write_job_logs(job)
        if status == "Completed":
            self._register_output_model(job)

    def _write_job_logs(self, job: Job) -> None:
        if self.azurite is None:
            return
        lines = [f"{ts} job {job.name}: {st}" for st, ts in job.entered.items()]
        if job.status == "Running" or job.status == "Completed":
            for i, loss in enumerate(self.job_metrics(job).get("train_loss", [])):
                lines.append(f"step {i + 1}: train_loss={loss:.4f}")
        if job.error:
            lines.append(f"ERROR {job.error['code']}: {job.error['message']}")
        self.azurite.put_blob(job.ws.storage_account, job.ws.artifact_container,
                              f"ExperimentRun/dcid.{job.name}/user_logs/std_log.txt",
                              ("\n".join(lines) + "\n").encode())  # fmt: skip

    def job_metrics(self, job: Job) -> dict[str, list[float]]:
        if job.metrics is not None:
            return job.metrics
        steps = 10
        fine_tuning = job.properties.get("fineTuningDetails", {})
        # a learning rate other than 2e-5 shifts the losses, deterministically: sweep points differ
        try:
            lr = float((fine_tuning.get("hyperParameters") or {}).get("learning_rate", "0.00002"))
            shift = round(0.1 * math.log10(lr / 2e-5), 4) if lr > 0 else 0.0
        except (TypeError, ValueError):
            shift = 0.0
        out = {"train_loss": [round(0.6 + shift + 1.6 * math.exp(-0.35 * s), 4) for s in range(1, steps + 1)]}
        if fine_tuning.get("validationData"):
            out["eval_loss"] = [round(0.75 + shift + 1.4 * math.exp(-0.3 * s * 5), 4) for s in range(1, 3)]
        return out

    def set_job_metrics(self, name: str, metrics: dict[str, list[float]]) -> None:
        with self.lock:
            self.find_job(name).metrics = metrics

    def _register_output_model(self, job: Job) -> None:
        if job.properties.get("jobType") == "Command":
            self._register_command_outputs(job)
            return
        out = (job.properties.get("outputs") or {}).get("registered_model") or {}
        prefix = out.get("assetName")
        if not prefix:
            return
        key = (job.ws.key, prefix.lower())
        versions = self.models.setdefault(key, {})
        if "1" in versions:
            return
        base = (job.properties.get("fineTuningDetails") or {}).get("model", {}).get("uri", "")
        versions["1"] = self.model_version_body(
            job.ws, prefix, "1",
            {"modelType": "custom_model", "modelUri": f"azureml://jobs/{job.name}/outputs/registered_model",
             "jobName": job.name, "properties": {"baseModelId": base, "azureml.finetuning.jobName": job.name},
             "tags": {}, "description": f"Fine-tuned from {base} by job {job.name}"},
        )  # fmt: skip

    def _register_command_outputs(self, job: Job) -> None:
        """A completed command job registers each named model output (``assetName``/``assetVersion``)."""
        for output_name, out in (job.properties.get("outputs") or {}).items():
            if not isinstance(out, dict) or out.get("jobOutputType") not in ("custom_model", "mlflow_model"):
                continue
            name, version = out.get("assetName"), str(out.get("assetVersion") or "1")
            if not name:
                continue
            versions = self.models.setdefault((job.ws.key, name.lower()), {})
            if version in versions:
                continue
            ws = job.ws
            # Azure ML's default output location, azureml://datastores/workspaceblobstore/paths/azureml/{job}/{output}/
            prefix = f"azureml/{job.name}/{output_name}"
            files = self.command_output_files.get(output_name) or {}
            if files and self.azurite is not None:
                for rel, data in files.items():
                    self.azurite.put_blob(ws.storage_account, ws.blob_container, f"{prefix}/{rel}", data)
            versions[version] = self.model_version_body(
                job.ws, name, version,
                {"modelType": out["jobOutputType"], "jobName": job.name,
                 "modelUri": f"azureml://subscriptions/{ws.sub}/resourcegroups/{ws.rg}/workspaces/{ws.name}"
                             f"/datastores/workspaceblobstore/paths/{prefix}/",
                 "properties": {"azureml.jobName": job.name}, "tags": {},
                 "description": f"Output {output_name} of command job {job.name}"},
            )  # fmt: skip

    def model_version_body(
        self, ws: Workspace, name: str, version: str, props: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": f"{ws.id}/models/{name}/versions/{version}",
            "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "systemData": system_data(),
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "isAnonymous": False,
                "flavors": {},
                "modelType": "custom_model",
                "provisioningState": "Succeeded",
                **props,
            },
        }

    # --- direct seeding of workspace resources (no SDK round trip) -----------------------------

    def add_data_version(
        self, ws: Workspace, name: str, version: str = "1", *, path: str | None = None
    ) -> dict[str, Any]:
        with self.lock:
            body = {
                "id": f"{ws.id}/data/{name}/versions/{version}",
                "name": version,
                "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
                "systemData": system_data(),
                "properties": {"dataType": "uri_file", "isArchived": False, "isAnonymous": False, "tags": {},
                               "properties": {}, "description": None,
                               "dataUri": path or f"azureml://subscriptions/{ws.sub}/resourcegroups/{ws.rg}/workspaces/"
                                                  f"{ws.name}/datastores/workspaceblobstore/paths/LocalUpload/seed/{name}.jsonl"},
            }  # fmt: skip
            self.data.setdefault((ws.key, name.lower()), {})[version] = body
            return body

    def add_model_version(self, ws: Workspace, name: str, version: str = "1", *,
                          base_model_id: str = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1",
                          job_name: str | None = None) -> dict[str, Any]:  # fmt: skip
        """A fine-tuned model in the workspace, as a completed job would register it."""
        with self.lock:
            body = self.model_version_body(ws, name, version, {
                "modelType": "custom_model", "modelUri": f"azureml://jobs/{job_name or 'seeded'}/outputs/registered_model",
                "jobName": job_name, "properties": {"baseModelId": base_model_id}})  # fmt: skip
            self.models.setdefault((ws.key, name.lower()), {})[version] = body
            return body

    def add_job(self, ws: Workspace, name: str, *, status: str = "Running", prefix: str = "phi4-ft",
                model: str = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1",
                script: list[str] | None = None) -> Job:  # fmt: skip
        """A serverless fine-tuning job already in ``status`` (its script continues from there)."""
        with self.lock:
            full = list(script or self.default_job_script)
            if status not in full:
                full = [*full[:-1], status] if status in TERMINAL_JOB_STATES else [status, *full[1:]]
            props = {
                "services": {
                    "Studio": {
                        "jobServiceType": "Studio",
                        "endpoint": f"https://ml.azure.com/runs/{name}?wsid={ws.id}&tid={self.tenant_id}",
                    }
                },
                "jobType": "FineTuning", "displayName": name, "experimentName": "phi3ft", "isArchived": False,
                "description": None, "tags": {}, "properties": {}, "status": full[0],
                "fineTuningDetails": {"taskType": "ChatCompletion", "modelProvider": "Custom",
                                      "model": {"uri": model, "jobInputType": "mlflow_model"},
                                      "trainingData": {"uri": f"{ws.id}/data/train/versions/1", "jobInputType": "uri_file"},
                                      "hyperParameters": {"learning_rate": "0.00002", "num_train_epochs": "1"}},
                "outputs": {"registered_model": {"assetName": prefix, "jobOutputType": "mlflow_model"}},
            }  # fmt: skip
            doc = {"id": f"{ws.id}/jobs/{name}", "name": name, "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                   "systemData": system_data(), "properties": props}  # fmt: skip
            job = Job(ws, name, doc, full)
            self.jobs[(ws.key, name.lower())] = job
            self._enter_job_status(job)
            while job.status != status:
                job.idx += 1
                self._enter_job_status(job)
            return job

    def add_endpoint(self, ws: Workspace, name: str, model_id: str | None = None, *,
                     provisioning_state: str = "Succeeded") -> Endpoint:  # fmt: skip
        """A serverless endpoint (default: for ``phi4-ft`` v1 of this workspace, seeded if missing)."""
        with self.lock:
            if model_id is None:
                if "1" not in self.model_versions(ws, "phi4-ft"):
                    self.add_model_version(ws, "phi4-ft")
                model_id = f"azureml://locations/{ws.location}/workspaces/{ws.workspace_id}/models/phi4-ft/versions/1"
            ep = Endpoint(ws, name, model_id, ws.location, {}, provisioning_state=provisioning_state)
            self.endpoints[(ws.key, name.lower())] = ep
            return ep

    # --- inspection shortcuts -----------------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint | None:
        with self.lock:
            return next((e for e in self.endpoints.values() if e.name.lower() == name.lower()), None)

    def model_versions(self, ws: Workspace, name: str) -> dict[str, dict[str, Any]]:
        return self.models.get((ws.key, name.lower()), {})

    def data_versions(self, ws: Workspace, name: str) -> dict[str, dict[str, Any]]:
        return self.data.get((ws.key, name.lower()), {})
