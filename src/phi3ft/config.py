"""job.yaml: strict pydantic models, a loader that points at the YAML line, and the JSON Schema.

One file describes a whole fine-tune, in the order of the seed's steps: Azure hub and project, base model,
task, data, hyperparameters, output model name, deployment (content safety on by default), tags. Later
stages read their own blocks (``training``/``compute`` for the trainer backends, ``eval``, ``pricing``).

Errors are one line: ``job.yaml:12: hyperparameters -> epochs: unknown key; did you mean 'epochs'?``.
Leaf module: stdlib, pydantic, yaml and the catalog only.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from phi3ft import catalog
from phi3ft.catalog import AZURE_HYPERPARAMETER_NAMES, ModelProfile, format_decimal
from phi3ft.errors import ConfigError
from phi3ft.train.settings import LoraSettings, TrainingSettings

#: A URN, not a URL: the schema is served by `phi3ft schema`, not fetched from anywhere.
SCHEMA_ID = "urn:phi3ft:job-schema:1"
DEFAULT_LOCATION = "eastus2"
SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"

_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_WORKSPACE_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$"
_RESOURCE_GROUP = r"^[-\w._()]{1,90}$"
_ASSET_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$"
_ENDPOINT_NAME = r"^[a-zA-Z][a-zA-Z0-9-]{2,51}$"
_REGISTRY_ID = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?$"
)


# ------------------------------------------------------------------------------------------------------
# Scalar types: YAML hands us bools where people meant numbers (``epochs: yes``); refuse them.
def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


Num = Annotated[float, BeforeValidator(_no_bool)]
Int = Annotated[int, BeforeValidator(_no_bool)]


class _Strict(BaseModel):
    """Every block rejects unknown keys; the loader turns that into "did you mean ...?"."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


#: Longest file name (one path component) Linux, macOS and Windows file systems take, in bytes.
_MAX_NAME_BYTES = 255


def _resolve_path(value: Any, info: ValidationInfo) -> Any:
    """Relative paths resolve against the config file's folder (``context['base_dir']``)."""
    if value is None:
        return None
    text = str(value)
    if "\x00" in text:
        raise ValueError("a path cannot contain a NUL character")
    longest = max(
        (len(part.encode("utf-8", "surrogateescape")) for part in re.split(r"[/\\]", text)), default=0
    )
    if longest > _MAX_NAME_BYTES:
        raise ValueError(f"a file name in this path is {longest} bytes long (the limit is {_MAX_NAME_BYTES})")
    path = Path(text).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


# ------------------------------------------------------------------------------------------------------
class HubConfig(_Strict):
    """The Azure AI hub (the seed's "Hub"): a hub-based project is required for serverless fine-tuning."""

    name: str = Field(pattern=_WORKSPACE_NAME, description="Hub (workspace) name, unique in the group.")
    create_if_missing: bool = Field(True, description="Create the hub when it does not exist.")
    display_name: str | None = Field(None, description="Name shown in the Azure AI Foundry portal.")


class ProjectConfig(_Strict):
    """The hub-based project that owns data, jobs, models and endpoints."""

    name: str = Field(pattern=_WORKSPACE_NAME, description="Project (workspace) name.")
    create_if_missing: bool = Field(True, description="Create the project when it does not exist.")
    display_name: str | None = Field(None, description="Name shown in the portal.")


AuthMode = Literal["auto", "cli", "env", "managed-identity", "device-code"]


class AzureConfig(_Strict):
    """Where the fine-tune runs. The location must offer fine-tuning for the model (East US 2 for Phi)."""

    subscription_id: str | None = Field(
        None,
        pattern=_GUID,
        description=f"Subscription GUID; defaults to ${SUBSCRIPTION_ENV}.",
    )
    resource_group: str = Field(pattern=_RESOURCE_GROUP, description="Resource group (must exist).")
    location: str = Field(DEFAULT_LOCATION, description="Azure region of hub and project, e.g. eastus2.")
    hub: HubConfig
    project: ProjectConfig
    auth: AuthMode = Field(
        "auto",
        description="Credential: auto (DefaultAzureCredential), cli, env, managed-identity, device-code.",
    )

    @field_validator("location")
    @classmethod
    def _normalise_location(cls, value: str) -> str:
        """``East US 2`` and ``eastus2`` name the same region; Azure APIs want the latter."""
        return value.replace(" ", "").lower()


class ModelConfig(_Strict):
    """The base model: a catalog name (``phi3ft models``) or a full azureml registry id."""

    name: str = Field(
        description="Catalog name (phi-4-mini-instruct) or azureml://registries/azureml/models/<Name>[/versions/N]."
    )
    version: str = Field("latest", description="Registry version, or 'latest' (most recently created).")

    @field_validator("name")
    @classmethod
    def _known_model(cls, value: str) -> str:
        match = _REGISTRY_ID.match(value.strip())
        lookup = match.group("name") if match else value
        try:
            catalog.get_profile(lookup)
        except KeyError:
            close = catalog.suggest(lookup)
            tip = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown model '{value}'{tip} (list: phi3ft models)") from None
        return value.strip()

    @property
    def profile(self) -> ModelProfile:
        match = _REGISTRY_ID.match(self.name)
        return catalog.get_profile(match.group("name") if match else self.name)

    @property
    def pinned_version(self) -> str:
        """Version from the id when the id carries one, else ``version``."""
        match = _REGISTRY_ID.match(self.name)
        if match and match.group("version"):
            return match.group("version")
        return self.version

    @property
    def registry_id(self) -> str:
        """``azureml://registries/azureml/models/<Name>/versions/<v>`` or ``.../labels/latest``."""
        prefix = self.profile.registry_id_prefix
        match = _REGISTRY_ID.match(self.name)
        if match:
            prefix = f"azureml://registries/{match.group('registry')}/models/{match.group('name')}"
        version = self.pinned_version
        return f"{prefix}/labels/latest" if version == "latest" else f"{prefix}/versions/{version}"


class SplitConfig(_Strict):
    """Automatic validation split (the seed's "Division automatique des données d'entraînement")."""

    fraction: Num = Field(0.1, gt=0, le=0.5, description="Share of training examples held out (0-0.5].")
    seed: Int = Field(42, description="Shuffle seed: same seed, same split.")


class DataConfig(_Strict):
    """Chat-completion JSONL files; relative paths resolve against the config file's folder."""

    train: Path = Field(description="Training JSONL.")
    validation: Path | None = Field(None, description="Validation JSONL (or use split).")
    split: SplitConfig | None = Field(
        None, description="Hold out part of train instead of a validation file."
    )

    @field_validator("train", "validation", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_path(value, info)


class Hyperparameters(_Strict):
    """Serverless fine-tuning hyperparameters; unset = the model's default (``phi3ft models``).

    Sent to Azure as strings under ``learning_rate``, ``num_train_epochs``, ``per_device_train_batch_size``.
    """

    learning_rate: Num | None = Field(None, gt=0, lt=1, description="Absolute learning rate, e.g. 2e-5.")
    epochs: Int | None = Field(None, ge=1, description="Passes over the training data (billed per epoch).")
    batch_size: Int | None = Field(None, ge=1, description="Per-device training batch size.")


class ComputeConfig(_Strict):
    """Azure ML compute cluster for ``backend: azureml-compute``."""

    cluster_name: str = Field("phi3ft-gpu", pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,23}$")
    vm_size: str = Field("Standard_NC24ads_A100_v4", description="GPU VM size (A100 recommended).")
    min_nodes: Int = Field(0, ge=0, description="0 = no cost while idle.")
    max_nodes: Int = Field(1, ge=1)
    idle_seconds_before_scaledown: Int = Field(1800, ge=0)
    processes_per_node: Int = Field(1, ge=1, description="Usually the GPU count of the VM size.")


class OutputConfig(_Strict):
    """The fine-tuned model (the seed's "Nom du modèle affiné")."""

    model_name: str | None = Field(
        None, pattern=_ASSET_NAME, description="Registered model name; default derived from model + data."
    )


class DeployConfig(_Strict):
    """Serverless endpoint for the fine-tuned model. Content safety is on unless you turn it off."""

    enabled: bool = Field(True, description="Deploy after training.")
    endpoint_name: str | None = Field(
        None, pattern=_ENDPOINT_NAME, description="Unique in the region; default derived."
    )
    content_safety: bool = Field(True, description="Azure AI Content Safety on prompts and completions.")
    auth_mode: Literal["key", "aad", "key-and-aad"] = "key"


class EvalConfig(_Strict):
    """Smoke test and evaluation of the deployed endpoint."""

    data: Path | None = Field(None, description="Examples to score (default: the validation data).")
    max_tokens: Int = Field(256, ge=1, le=32768)
    concurrency: Int = Field(4, ge=1, le=64)
    min_f1: Num | None = Field(None, ge=0, le=1, description="Fail the eval gate below this token F1 (0-1).")

    @field_validator("data", mode="before")
    @classmethod
    def _paths(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_path(value, info)


class PricingConfig(_Strict):
    """Your prices (see the portal's "Pricing and terms" tab). phi3ft never invents a price."""

    currency: str = Field("USD", min_length=3, max_length=3)
    training_per_1k_tokens: Num | None = Field(None, ge=0, description="Price per 1,000 billed tokens.")
    hosting_per_hour: Num | None = Field(None, ge=0, description="Fine-tuned model hosting per hour.")


Backend = Literal["serverless", "local", "azureml-compute"]

#: Most points one ``sweep:`` block may expand to (each point is a paid training job).
MAX_SWEEP_POINTS = 64
#: ``sweep:`` keys that vary a setting (``max_parallel`` does not).
SWEEP_KEYS = ("learning_rate", "epochs", "batch_size", "r", "alpha")


class SweepConfig(_Strict):
    """Several settings, one command: every combination of the lists is one training job (a point).

    ``learning_rate``/``epochs``/``batch_size`` replace ``hyperparameters:`` (serverless) or ``training:``
    (local, azureml-compute); ``r``/``alpha`` (LoRA) only exist for local and azureml-compute.
    """

    learning_rate: list[Num] | None = Field(
        None, min_length=1, description="Learning rates to try (each within the model's range)."
    )
    epochs: list[Num] | None = Field(None, min_length=1, description="Epoch counts to try.")
    batch_size: list[Int] | None = Field(None, min_length=1, description="Per-device batch sizes to try.")
    r: list[Int] | None = Field(None, min_length=1, description="LoRA ranks (local, azureml-compute).")
    alpha: list[Int] | None = Field(None, min_length=1, description="LoRA alphas (local, azureml-compute).")
    max_parallel: Int | None = Field(
        None, ge=1, description="Points training at once (default: 1 local, all on Azure)."
    )

    @field_validator("learning_rate", "epochs", "batch_size", "r", "alpha")
    @classmethod
    def _distinct(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("lists a value twice (each point must differ)")
        return values

    def varied(self) -> dict[str, list[Any]]:
        """``{key: values}`` for the keys the sweep varies, in :data:`SWEEP_KEYS` order."""
        return {key: list(getattr(self, key)) for key in SWEEP_KEYS if getattr(self, key) is not None}

    def size(self) -> int:
        total = 1
        for values in self.varied().values():
            total *= len(values)
        return total


class JobConfig(_Strict):
    """A whole fine-tune, from data to a deployed endpoint."""

    model_config = ConfigDict(
        extra="forbid",
        validate_default=True,
        title="phi3ft job.yaml",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    backend: Backend = Field("serverless", description="Where training runs.")
    azure: AzureConfig | None = Field(None, description="Required for serverless and azureml-compute.")
    model: ModelConfig
    task: Literal["chat-completion"] = "chat-completion"
    data: DataConfig
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    training: TrainingSettings = Field(
        default_factory=TrainingSettings,
        description="LoRA trainer settings (backend local / azureml-compute).",
    )
    compute: ComputeConfig | None = None
    output: OutputConfig = Field(default_factory=OutputConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    pricing: PricingConfig | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    sweep: SweepConfig | None = Field(
        None, description="Train every combination of these values (one job per point; phi3ft compare)."
    )

    _source: Path | None = PrivateAttr(None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)
    _env_subscription: bool = PrivateAttr(False)

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None when built in code)."""
        return self._source

    @property
    def subscription_from_env(self) -> bool:
        return self._env_subscription

    def line_of(self, *path: str | int, nearest: bool = False) -> int | None:
        """YAML line of a key path; ``None`` when absent (or the nearest parent's with ``nearest``)."""
        if nearest:
            return _nearest_line(self._lines, tuple(path))
        return self._lines.get(tuple(path))

    @property
    def profile(self) -> ModelProfile:
        return self.model.profile

    #: What the backend means for the rest of the code, so nothing outside this module compares
    #: ``backend`` strings. Set by each :data:`JobSpec` member (the loader never returns a bare JobConfig).
    #: Azure fine-tunes the model itself: ``hyperparameters:`` apply, ``training:``/``compute:`` do not.
    azure_finetune: ClassVar[bool]
    #: Trains on this machine (no ``azure:`` needed).
    runs_locally: ClassVar[bool]
    #: Trains phi3ft's LoRA trainer on an Azure ML GPU cluster (``compute:``).
    on_cluster: ClassVar[bool]

    @property
    def needs_azure(self) -> bool:
        """The backend creates Azure resources (hub, project, data, job): ``azure:`` is required."""
        return not self.runs_locally


class ServerlessJob(JobConfig):
    """``backend: serverless``: Azure AI Foundry's pay-as-you-go fine-tuning."""

    backend: Literal["serverless"] = Field("serverless", description="Where training runs.")
    azure_finetune: ClassVar[bool] = True
    runs_locally: ClassVar[bool] = False
    on_cluster: ClassVar[bool] = False


class ClusterJob(JobConfig):
    """``backend: azureml-compute``: phi3ft's LoRA trainer as a command job on an Azure ML GPU cluster."""

    backend: Literal["azureml-compute"] = Field("azureml-compute", description="Where training runs.")
    azure_finetune: ClassVar[bool] = False
    runs_locally: ClassVar[bool] = False
    on_cluster: ClassVar[bool] = True


class LocalJob(JobConfig):
    """``backend: local``: phi3ft's LoRA trainer on this machine."""

    backend: Literal["local"] = Field("local", description="Where training runs.")
    azure_finetune: ClassVar[bool] = False
    runs_locally: ClassVar[bool] = True
    on_cluster: ClassVar[bool] = False


#: A loaded job.yaml: one member per backend, told apart by ``backend`` (the discriminator).
JobSpec = Annotated[ServerlessJob | ClusterJob | LocalJob, Field(discriminator="backend")]
#: ``backend`` value -> its :data:`JobSpec` member (the loader's and ``--backend``'s registry).
SPEC_CLASSES: dict[str, type[ServerlessJob | ClusterJob | LocalJob]] = {
    "serverless": ServerlessJob,
    "azureml-compute": ClusterJob,
    "local": LocalJob,
}


def with_backend(cfg: JobConfig, backend: str) -> JobSpec:
    """The same job.yaml read as another backend (``submit --backend``): no re-validation, same lines."""
    cls = SPEC_CLASSES[backend]
    values = {name: getattr(cfg, name) for name in JobConfig.model_fields}
    values["backend"] = backend
    spec = cls.model_construct(_fields_set=set(cfg.model_fields_set) | {"backend"}, **values)
    spec._source, spec._lines, spec._env_subscription = cfg._source, dict(cfg._lines), cfg._env_subscription
    return spec


# ------------------------------------------------------------------------------------------------------
# Derived values: hyperparameters, names, hashes.
@dataclass(frozen=True)
class ResolvedHyperparameters:
    learning_rate: float
    epochs: int
    batch_size: int
    defaults_used: tuple[str, ...]


def resolved_hyperparameters(cfg: JobConfig) -> ResolvedHyperparameters:
    """The values that will be sent: the config's, or the catalog default for each unset one."""
    hp, defaults = cfg.hyperparameters, cfg.profile.hyperparameters
    used = tuple(key for key in AZURE_HYPERPARAMETER_NAMES if getattr(hp, key) is None)
    return ResolvedHyperparameters(
        learning_rate=hp.learning_rate if hp.learning_rate is not None else defaults.learning_rate.default,
        epochs=hp.epochs if hp.epochs is not None else int(defaults.epochs.default),
        batch_size=hp.batch_size if hp.batch_size is not None else int(defaults.batch_size.default),
        defaults_used=used,
    )


def to_azure_hyperparameters(cfg: JobConfig) -> dict[str, str]:
    """``{"learning_rate": "0.00002", "num_train_epochs": "1", "per_device_train_batch_size": "1"}``.

    The serverless API takes ``Dict[str, str]`` (docs/architecture.md, "Azure: facts the code relies on").
    """
    hp = resolved_hyperparameters(cfg)
    return {
        AZURE_HYPERPARAMETER_NAMES["learning_rate"]: format_decimal(hp.learning_rate),
        AZURE_HYPERPARAMETER_NAMES["epochs"]: str(hp.epochs),
        AZURE_HYPERPARAMETER_NAMES["batch_size"]: str(hp.batch_size),
    }


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash of a data file (data asset versions are content-addressed)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_files(cfg: JobConfig) -> dict[str, Path]:
    """``{"train": ..., "validation": ...}`` (validation only when a file is given)."""
    files = {"train": cfg.data.train}
    if cfg.data.validation is not None:
        files["validation"] = cfg.data.validation
    return files


def data_hashes(cfg: JobConfig) -> dict[str, str]:
    """sha256 per data role, for files that exist."""
    return {role: file_sha256(path) for role, path in data_files(cfg).items() if _path_kind(path) == "file"}


def _normalised(
    cfg: JobConfig, *, include: set[str] | None = None, hashes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Config as canonical JSON data: paths to data files become content hashes (machine-independent)."""
    data = cfg.model_dump(mode="json", include=include)
    data.pop("sweep", None)  # a sweep point is the config without it; hashes of other configs unchanged
    if "data" in data:
        hashes = data_hashes(cfg) if hashes is None else hashes
        for role in ("train", "validation"):
            if data["data"].get(role) is not None:
                data["data"][role] = {"sha256": hashes.get(role, "missing")}
    if "model" in data:
        data["model"] = {"id": cfg.model.registry_id}
    for key in ("training", "eval"):  # local paths: keep only the name, so two checkouts agree
        block = data.get(key) or {}
        for name in ("output_dir", "tokenizer", "data"):
            if block.get(name):
                block[name] = Path(block[name]).name
    return data


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(cfg: JobConfig, *, hashes: Mapping[str, str] | None = None) -> str:
    """Stable sha256 of the whole normalised config (data by content, not by path).

    ``hashes`` (:func:`data_hashes`, e.g. a :class:`Fingerprint`'s) saves reading the data files again.
    """
    return _digest(_normalised(cfg, hashes=hashes))


#: What defines the trained model: changing eval/deploy/pricing/tags must not start a new paid job.
_TRAINING_KEYS = {
    "backend",
    "azure",
    "model",
    "task",
    "data",
    "hyperparameters",
    "training",
    "compute",
    "output",
}


def training_hash(cfg: JobConfig, *, hashes: Mapping[str, str] | None = None) -> str:
    """sha256 over the blocks that define the training job (names for submit come from this)."""
    data = _normalised(cfg, include=_TRAINING_KEYS, hashes=hashes)
    if cfg.azure_finetune:
        data.pop("training", None)
        data.pop("compute", None)
    if data.get("azure"):
        data["azure"] = {k: data["azure"][k] for k in ("location", "resource_group") if k in data["azure"]}
        data["azure"]["project"] = cfg.azure.project.name if cfg.azure else None
    return _digest(data)


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-")


@dataclass(frozen=True)
class DerivedNames:
    job: str
    output_model: str
    endpoint: str


def derived_names(cfg: JobConfig, *, digest: str | None = None) -> DerivedNames:
    """Deterministic names: the same config and data give the same names, so a re-run resumes.

    ``digest`` is the config's :func:`training_hash` when the caller has it (a :class:`Fingerprint`).
    """
    digest = training_hash(cfg) if digest is None else digest
    short = _slug(cfg.profile.name.removesuffix("-instruct"), 16)
    output_model = cfg.output.model_name or f"{short}-ft-{digest[:8]}"
    endpoint = cfg.deploy.endpoint_name or f"{short}-ft-{digest[:8]}"
    return DerivedNames(job=f"phi3ft-{short}-{digest[:12]}", output_model=output_model, endpoint=endpoint)


@dataclass(frozen=True)
class Fingerprint:
    """What a command derives from the config and the data, computed once and passed down.

    ``data`` is the sha256 of each data file that exists (``{"train": ..., "validation": ...}``): each file
    is read for hashing once per command (``plan``, ``submit``), however many names and hashes come from it.
    """

    data: Mapping[str, str]
    config: str
    training: str
    names: DerivedNames

    @property
    def hashes(self) -> dict[str, str]:
        """``{"config": ..., "training": ...}`` (the plan's and the ledger's ``hashes``)."""
        return {"config": self.config, "training": self.training}


def fingerprint(cfg: JobConfig, *, data: Mapping[str, str] | None = None) -> Fingerprint:
    """Hash each data file once, then derive the config hash, the training hash and the names from it.

    ``data`` is :func:`data_hashes` when the caller already has it (a sweep's points share the files).
    """
    data = data_hashes(cfg) if data is None else data
    training = training_hash(cfg, hashes=data)
    return Fingerprint(
        data=data,
        config=config_hash(cfg, hashes=data),
        training=training,
        names=derived_names(cfg, digest=training),
    )


# ------------------------------------------------------------------------------------------------------
# Loading: YAML with line numbers, ${VAR} interpolation, pydantic, then cross-field checks.
class JobConfigError(ConfigError):
    """job.yaml is invalid. ``issues`` lists every problem; the message shows the first ones on one line."""

    def __init__(self, issues: list[ConfigIssue], hint: str | None = None) -> None:
        self.issues = issues
        shown = "; ".join(issue.format() for issue in issues[:3])
        more = f" (+{len(issues) - 3} more)" if len(issues) > 3 else ""
        super().__init__(shown + more, hint or _default_hint(issues))


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: tuple[str | int, ...]
    message: str

    @property
    def key_path(self) -> str:
        return " -> ".join(str(part) for part in self.path) or "(top level)"

    def format(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key_path}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "path": list(self.path), "message": self.message}


_STRUCTURE_PROBLEMS = ("not valid YAML", "tag ", "recursive alias", "aliases expand to", "'<<' takes")


def _default_hint(issues: list[ConfigIssue]) -> str:
    if any("did you mean" in issue.message for issue in issues):
        return "Rename the key as suggested; `phi3ft schema` lists every key and type."
    if any("is not set" in issue.message for issue in issues):
        return "Export the variable, or give a default with ${VAR:-default}."
    if any(issue.path == ("training", "base_model") for issue in issues):
        return (
            "Set training.base_model to a folder with config.json and the weights (relative to job.yaml's "
            "folder, e.g. ./tiny), or a Hugging Face id such as microsoft/Phi-3-mini-4k-instruct."
        )
    if any("does not exist" in issue.message for issue in issues):
        return "Fix the path (relative paths resolve against the config file's folder)."
    if any(issue.message.startswith(_STRUCTURE_PROBLEMS) for issue in issues):
        return (
            "Fix the YAML at that line: job.yaml takes plain mappings, lists and values "
            "(no tags, no anchors that repeat or contain themselves); `phi3ft init` writes a starter file."
        )
    return "Fix the value in job.yaml; `phi3ft schema` lists every key, type and range."


#: Names people bring from other tools, mapped to ours.
_KEY_ALIASES = {
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "n_epochs": "epochs",
    "epoch": "epochs",
    "lr": "learning_rate",
    "learning_rate_multiplier": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "batch_size_multiplier": "batch_size",
    "batch": "batch_size",
    "subscription": "subscription_id",
    "region": "location",
    "rg": "resource_group",
    "resource_group_name": "resource_group",
    "training_file": "train",
    "training_data": "train",
    "train_file": "train",
    "validation_file": "validation",
    "validation_data": "validation",
    "endpoint": "endpoint_name",
    "name": "model_name",
    "lora_r": "r",
    "rank": "r",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
}


def _model_class_at(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``path`` (for "did you mean")."""
    cls: type[BaseModel] = JobConfig
    for part in path:
        if isinstance(part, int):
            continue
        info = cls.model_fields.get(part)
        if info is None:
            return None
        found = _model_in(info.annotation)
        if found is None:
            return None
        cls = found
    return cls


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType) or origin is Annotated:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def did_you_mean(key: str, choices: list[str]) -> str | None:
    """Closest allowed key: known aliases first (``num_train_epochs`` -> ``epochs``), then difflib."""
    alias = _KEY_ALIASES.get(key.lower())
    if alias in choices:
        return alias
    close = difflib.get_close_matches(key.lower(), choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _nearest_line(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


_INTERPOLATION = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _InterpolationError(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str], used: list[str] | None = None) -> str:
    """``${VAR}``, ``${VAR:-default}`` (default when unset or empty); ``$${`` is a literal ``${``.

    ``used`` (when given) collects the names whose *environment* value went into the result; a default
    the file spells out is the user's own text and is not listed.
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        body = match.group("body")
        if body is None:
            raise _InterpolationError(f"bad interpolation in '{text}': '${{' is never closed")
        name, sep, default = body.partition(":-")
        if not _VAR_NAME.fullmatch(name):
            raise _InterpolationError(
                f"bad interpolation '${{{body}}}': use ${{VAR}} or ${{VAR:-default}} (letters, digits, _)"
            )
        value = env.get(name)
        if value is None or (sep and value == ""):
            if sep:
                return default
            raise _InterpolationError(f"environment variable {name} is not set (used as ${{{name}}})")
        if used is not None:
            used.append(name)
        return value

    return _INTERPOLATION.sub(replace, text)


class _YamlProblem(Exception):
    def __init__(self, line: int | None, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


#: Hostile-input bounds. A real job.yaml is a few kB, ~10 levels deep and a few hundred values.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 10_000
_MAX_INT_DIGITS = 30
_YAML_TAG = "tag:yaml.org,2002:"
#: The only tags job.yaml may carry (what plain YAML resolves to); ``!custom``, ``!!python/...``,
#: ``!!binary``, ``!!set`` and friends are refused before anything is constructed.
_ALLOWED_TAGS = frozenset(
    _YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)
_MERGE_TAG = _YAML_TAG + "merge"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than :data:`MAX_YAML_DEPTH`.

    PyYAML composes recursively, so 2,000 nested ``[`` end in RecursionError without this bound.
    Aliases are not expanded here: the composed graph shares the anchored node, and ``_read_yaml``'s walk
    counts every value it produces through them.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead over every open "[" / "{" (quadratic in their number): stop it at the bound.
        if self.flow_level >= MAX_YAML_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._nodes += 1
        if self._nodes > MAX_YAML_VALUES:  # stop parsing a huge document early (PyYAML is pure Python here)
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_VALUES:,} values", self.peek_event().start_mark
            )
        if self.check_event(yaml.AliasEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


def _read_yaml(
    text: str, env: Mapping[str, str]
) -> tuple[Any, dict[tuple[str | int, ...], int], list[ConfigIssue], dict[tuple[str | int, ...], list[str]]]:
    """Parse YAML keeping each key's line, interpolating string scalars; collect problems.

    Bounded for hostile input: nesting depth, values produced (aliases included), allowed tags, integer
    length; every failure is a :class:`_YamlProblem` or a collected problem, never an exception from
    PyYAML. Also returns, per key path, the environment variables whose values went into it.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    expanded: dict[tuple[str | int, ...], list[str]] = {}
    problems: list[tuple[int | None, tuple[str | int, ...], str]] = []
    produced = 0
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else -1
        what = "a NUL byte" if code == 0 else f"control character U+{code:04X}" if code >= 0 else "a byte"
        raise _YamlProblem(line, (), f"not valid YAML: {what} is not allowed in YAML text") from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise _YamlProblem(
                mark.line + 1 if mark else None, (), f"not valid YAML: {exc.problem or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise _YamlProblem(None, (), f"not valid YAML: {exc}") from None

        def scalar(node: yaml.ScalarNode, path: tuple[str | int, ...]) -> Any:
            line = node.start_mark.line + 1
            if node.tag == _YAML_TAG + "int" and len(node.value) > _MAX_INT_DIGITS:
                raise _YamlProblem(line, path, f"integer with {len(node.value):,} digits is out of range")
            try:
                value = loader.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                reason = getattr(exc, "problem", None) or str(exc)
                raise _YamlProblem(line, path, f"not valid YAML: {reason}") from None
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
                raise _YamlProblem(line, path, f"integer {node.value} is out of range (64-bit)")
            return value

        def build(node: yaml.Node, path: tuple[str | int, ...], stack: tuple[int, ...]) -> Any:
            nonlocal produced
            line = node.start_mark.line + 1
            lines.setdefault(path, line)
            produced += 1
            if produced > MAX_YAML_VALUES:  # only aliases get here: the composer bounds the document itself
                raise _YamlProblem(
                    line,
                    path,
                    f"aliases expand to more than {MAX_YAML_VALUES:,} values (aliases repeating aliases?)",
                )
            if id(node) in stack:
                raise _YamlProblem(line, path, "recursive alias: the anchor contains itself")
            if len(path) > MAX_YAML_DEPTH:
                raise _YamlProblem(line, path, f"nested deeper than {MAX_YAML_DEPTH} levels")
            if node.tag not in _ALLOWED_TAGS:
                raise _YamlProblem(
                    line, path, f"tag {_tag_name(node.tag)} is not allowed (job.yaml takes plain values only)"
                )
            inner = (*stack, id(node))
            if isinstance(node, yaml.MappingNode):
                out: dict[str, Any] = {}
                merged: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    key_line = key_node.start_mark.line + 1
                    if key_node.tag == _MERGE_TAG:
                        sources = (
                            value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                        )
                        for source in sources:
                            if not isinstance(source, yaml.MappingNode):
                                raise _YamlProblem(
                                    key_line,
                                    path,
                                    "'<<' takes a mapping or a list of mappings (e.g. <<: *defaults)",
                                )
                            for sub_key, sub_value in build(source, path, inner).items():
                                merged.setdefault(sub_key, sub_value)
                        continue
                    if not isinstance(key_node, yaml.ScalarNode):
                        problems.append((key_line, path, "a key must be a plain string"))
                        continue
                    if key_node.tag not in _ALLOWED_TAGS:
                        raise _YamlProblem(key_line, path, f"tag {_tag_name(key_node.tag)} is not allowed")
                    key = scalar(key_node, path)
                    if not isinstance(key, str):
                        problems.append((key_line, path, f"key {key!r} is not a string"))
                        continue
                    if key in out:
                        problems.append((key_line, (*path, key), "duplicate key"))
                    lines[(*path, key)] = key_line
                    out[key] = build(value_node, (*path, key), inner)
                for key, value in merged.items():
                    out.setdefault(key, value)
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(item, (*path, index), inner) for index, item in enumerate(node.value)]
            assert isinstance(node, yaml.ScalarNode)
            value = scalar(node, path)
            if isinstance(value, str) and "$" in value:
                used: list[str] = []
                try:
                    value = interpolate(value, env, used)
                except _InterpolationError as exc:
                    problems.append((line, path, str(exc)))
                if used:
                    expanded[path] = used
            return value

        data = build(node, (), ()) if node is not None else None
    finally:
        loader.dispose()
    issues = [ConfigIssue("", line, path, message) for line, path, message in problems]
    return data, lines, issues, expanded


def _hide_expanded(message: str, value: Any, names: list[str], env: Mapping[str, str]) -> str:
    """A message about a value that came from the environment, without that value.

    phi3ft never echoes what a ``${VAR}`` expanded to: ``${AZURE_CLIENT_SECRET}`` pasted into the wrong key
    must not land in a CI log (secret-looking names or not: a value from the environment is never the
    user's literal text). The message names the variable(s) instead.
    """
    label = ", ".join(f"${{{name}}}" for name in dict.fromkeys(names))
    forms = {env[name] for name in names if env.get(name, "").strip()}
    if isinstance(value, str) and value.strip():
        forms.update({value, value.strip(), repr(value), repr(value.strip())})
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            forms.update({f"{number:g}", str(number), repr(number)})
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        forms.update({f"{value:g}", str(value), repr(value)})
    for form in sorted(forms, key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(form)}(?![\w.])", label, message)
    return f"{message} (from {label}; value not shown)"


def _pydantic_issue(
    error: Any, lines: Mapping[tuple[str | int, ...], int], *, echo: bool = True
) -> tuple[int | None, tuple, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_class_at(loc[:-1])
        choices = list(parent.model_fields) if parent else []
        suggestion = did_you_mean(str(loc[-1]), choices)
        tip = f"; did you mean '{suggestion}'?" if suggestion else f" (allowed: {', '.join(choices)})"
        return _nearest_line(lines, loc), loc, f"unknown key{tip}"
    if kind == "missing":
        return _nearest_line(lines, loc[:-1]), loc, "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if echo and kind not in {"value_error"} and not isinstance(value, (dict, list)):
        message += f" (got {value!r})"
    return _nearest_line(lines, loc), loc, message


def _cross_checks(cfg: JobConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Checks that need two blocks at once: ranges from the model profile, exclusive options."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    profile = cfg.profile
    ranges = profile.hyperparameters
    hp = cfg.hyperparameters
    if hp.learning_rate is not None and not ranges.learning_rate.contains(hp.learning_rate):
        found.append(
            (
                ("hyperparameters", "learning_rate"),
                f"{hp.learning_rate:g} is outside {ranges.learning_rate.describe()} for {profile.registry_name} "
                f"(default {ranges.learning_rate.default:g})",
            )
        )
    for key in ("epochs", "batch_size"):
        value = getattr(hp, key)
        rng = getattr(ranges, key)
        if value is not None and not rng.contains(value):
            found.append((("hyperparameters", key), f"{value} is outside {rng.describe()}"))
    if cfg.data.validation is not None and cfg.data.split is not None:
        found.append((("data", "split"), "give either validation or split, not both"))
    if cfg.needs_azure and cfg.azure is None:
        found.append((("azure",), f"required for backend {cfg.backend} (hub, project, resource group)"))
    match = _REGISTRY_ID.match(cfg.model.name)
    if match and match.group("version") and cfg.model.version not in ("latest", match.group("version")):
        found.append((("model", "version"), "conflicts with the version in the registry id"))
    compute = cfg.compute
    if compute is not None and compute.min_nodes > compute.max_nodes:
        found.append((("compute", "min_nodes"), "is larger than max_nodes"))
    return found + sweep_problems(cfg)


def sweep_problems(cfg: JobConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """``sweep:`` values against the backend and the model's ranges (run again after ``--backend``)."""
    sweep = cfg.sweep
    if sweep is None:
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    varied = sweep.varied()
    if not varied:
        keys = ", ".join(SWEEP_KEYS)
        return [(("sweep",), f"lists no values to try (give at least one of {keys})")]
    if sweep.size() > MAX_SWEEP_POINTS:
        found.append((("sweep",), f"expands to {sweep.size()} points; at most {MAX_SWEEP_POINTS}"))
    serverless = cfg.azure_finetune
    ranges = cfg.profile.hyperparameters
    training = TrainingSettings.model_fields
    for key, values in varied.items():
        if serverless and key in ("r", "alpha"):
            found.append(
                (
                    ("sweep", key),
                    f"LoRA {key} is set by Azure for backend serverless; sweep it with backend local or "
                    "azureml-compute (serverless sweeps learning_rate, epochs, batch_size)",
                )
            )
            continue
        for index, value in enumerate(values):
            problem = None
            if serverless:
                rng = getattr(ranges, key)
                if key == "epochs" and value != int(value):
                    problem = f"{value:g}: serverless epochs are whole numbers"
                elif not rng.contains(value):
                    problem = f"{value:g} is outside {rng.describe()}" + (
                        f" for {cfg.profile.registry_name} (default {rng.default:g})"
                        if key == "learning_rate"
                        else ""
                    )
            else:
                field_name = {"batch_size": "per_device_batch_size"}.get(key, key)
                info = LoraSettings.model_fields[key] if key in ("r", "alpha") else training[field_name]
                problem = _bounds_problem(value, info)
            if problem:
                found.append((("sweep", key, index), problem))
    return found


def _path_kind(path: Path) -> str:
    """``file``, ``other`` (exists, not a regular file), ``missing``, or the OS's reason it cannot be used."""
    try:
        if path.is_file():
            return "file"
        return "other" if path.exists() else "missing"
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, EACCES on a parent...
        return getattr(exc, "strerror", None) or str(exc)


def _bounds_problem(value: float, info: Any) -> str | None:
    """``value`` against a pydantic field's gt/ge/lt/le constraints (the ``training:`` model's own)."""
    for meta in info.metadata:
        for attr, ok, word in (
            ("gt", lambda v, b: v > b, "greater than"),
            ("ge", lambda v, b: v >= b, "at least"),
            ("lt", lambda v, b: v < b, "less than"),
            ("le", lambda v, b: v <= b, "at most"),
        ):
            bound = getattr(meta, attr, None)
            if bound is not None and not ok(value, bound):
                return f"{value:g} must be {word} {bound:g}"
    return None


def _file_checks(cfg: JobConfig) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    for role, path in data_files(cfg).items():
        kind = _path_kind(path)
        if kind == "missing":
            found.append((("data", role), f"file {path} does not exist"))
        elif kind == "other":
            found.append((("data", role), f"{path} is not a file"))
        elif kind != "file":
            found.append((("data", role), f"cannot use {path}: {kind}"))
    if cfg.eval.data is not None and (kind := _path_kind(cfg.eval.data)) != "file":
        reason = "does not exist" if kind in ("missing", "other") else f"cannot be used: {kind}"
        found.append((("eval", "data"), f"file {cfg.eval.data} {reason}"))
    tokenizer = cfg.training.tokenizer
    if not cfg.azure_finetune and tokenizer is not None and _path_kind(tokenizer) == "missing":
        found.append((("training", "tokenizer"), f"{tokenizer} does not exist"))
    base_model = cfg.training.base_model
    if not cfg.azure_finetune and base_model:
        problem = base_model_problem(base_model)
        if problem:
            found.append((("training", "base_model"), problem))
    return found


#: ``owner/name`` as the Hugging Face hub spells repo ids (huggingface_hub's ``validate_repo_id``).
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def base_model_problem(base_model: str) -> str | None:
    """Why ``training.base_model`` (already resolved by the loader) can be neither loaded nor downloaded."""
    path = Path(base_model)
    if path.is_absolute():
        if not path.exists():
            return f"folder {base_model} does not exist"
        if not path.is_dir():
            return f"{base_model} is not a folder (give the folder with config.json and the weights)"
        return None
    if _HF_REPO_ID.match(base_model) and "--" not in base_model and ".." not in base_model:
        return None
    return (
        f"{base_model!r} is neither a folder (relative paths resolve against job.yaml's folder) "
        "nor a Hugging Face id like microsoft/Phi-3-mini-4k-instruct"
    )


def _resolve_training_paths(training: TrainingSettings, base_dir: Path | None) -> None:
    """``training:`` is the trainer's own model (no validation context): resolve its paths here."""
    if base_dir is None:
        return
    if not training.output_dir.expanduser().is_absolute():
        training.output_dir = base_dir / training.output_dir
    if training.tokenizer is not None and not training.tokenizer.expanduser().is_absolute():
        training.tokenizer = base_dir / training.tokenizer
    base_model = training.base_model
    if base_model:
        local = Path(base_model).expanduser()
        candidate = local if local.is_absolute() else base_dir / local
        # A folder next to job.yaml wins over a Hugging Face id of the same spelling; an explicit
        # path (./, ../, ~, /) is a path even when it does not exist yet (the file check reports it).
        if base_model.startswith((".", "~", "/")) or candidate.exists():
            training.base_model = str(candidate.resolve())


def parse_job_config(
    text: str,
    *,
    source: str = "job.yaml",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    check_files: bool = True,
) -> JobSpec:
    """Validate job.yaml text. Raises :class:`JobConfigError` (exit 3) listing every problem found."""
    env = {} if env is None else env
    try:
        data, lines, problems, expanded = _read_yaml(text, env)
    except _YamlProblem as exc:
        raise JobConfigError([ConfigIssue(source, exc.line, exc.path, exc.message)]) from None
    issues = [ConfigIssue(source, p.line, p.path, p.message) for p in problems]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise JobConfigError(
            [ConfigIssue(source, 1, (), "the file must be a mapping of keys (model:, data:, ...)")]
        )

    data.setdefault("eval", {})  # its default path resolves with the context too
    from_env = False
    azure = data.get("azure")
    if isinstance(azure, dict) and azure.get("subscription_id") in (None, "") and env.get(SUBSCRIPTION_ENV):
        azure["subscription_id"] = env[SUBSCRIPTION_ENV]
        expanded[("azure", "subscription_id")] = [SUBSCRIPTION_ENV]
        from_env = True
    if issues:
        raise JobConfigError(issues)

    def env_names(loc: tuple[str | int, ...]) -> list[str]:
        for end in range(len(loc), 0, -1):
            if loc[:end] in expanded:
                return expanded[loc[:end]]
        return []

    def hide(loc: tuple[str | int, ...], message: str) -> str:
        names = env_names(loc)
        if not names:
            return message
        value: Any = data
        for part in loc:
            value = value.get(part) if isinstance(value, dict) else None
        return _hide_expanded(message, value, names, env)

    # the member of JobSpec for the backend asked for; an unknown backend fails validation on the base
    # model with today's message ("Input should be 'serverless', 'local' or 'azureml-compute'")
    backend = data.get("backend", "serverless")
    spec_class: type[JobConfig] = (
        SPEC_CLASSES.get(backend, JobConfig) if isinstance(backend, str) else JobConfig
    )
    try:
        cfg = spec_class.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            line, loc, message = _pydantic_issue(error, lines, echo=not env_names(loc))
            issues.append(ConfigIssue(source, line, loc, hide(loc, message)))
        issues.sort(key=lambda issue: issue.line or 0)
        raise JobConfigError(issues) from None

    assert isinstance(cfg, (ServerlessJob, ClusterJob, LocalJob))  # the base model refused the backend
    _resolve_training_paths(cfg.training, base_dir)
    checks = _cross_checks(cfg) + (_file_checks(cfg) if check_files else [])
    if checks:
        issues = [
            ConfigIssue(source, _nearest_line(lines, path), path, hide(path, message))
            for path, message in checks
        ]
        raise JobConfigError(sorted(issues, key=lambda issue: issue.line or 0))
    cfg._lines = dict(lines)
    cfg._env_subscription = from_env
    return cfg


def _read_config_text(path: Path) -> str:
    """The config's text, refusing what no job.yaml is before reading it.

    ``/dev/zero``, a FIFO, a socket or a directory is refused from ``stat`` (exit 3, like any config that
    cannot be used); so is a file over :data:`MAX_CONFIG_BYTES`. The read itself is bounded too, in case the
    file grows between ``stat`` and ``read``.
    """
    import os
    import stat

    limit = f"{MAX_CONFIG_BYTES // (1 << 20)} MB"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", "Create one with `phi3ft init --out job.yaml`."
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, pipe or socket)"
        raise ConfigError(f"config {path} is {kind}", "Pass the path of a job.yaml file with --config.")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is {info.st_size:,} bytes; a job.yaml is at most {limit}",
            "Pass the path of a job.yaml file with --config (a data file goes under data: in it).",
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is larger than {limit}", "Pass the path of a job.yaml file with --config."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            "Save job.yaml as UTF-8.",
        ) from None


def load_job_config(path: Path, *, env: Mapping[str, str] | None = None, check_files: bool = True) -> JobSpec:
    """Read and validate a job.yaml; relative paths inside resolve against its folder."""
    path = Path(path)
    text = _read_config_text(path)
    cfg = parse_job_config(
        text, source=str(path), base_dir=path.resolve().parent, env=env, check_files=check_files
    )
    cfg._source = path
    return cfg


# ------------------------------------------------------------------------------------------------------
def job_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of job.yaml, for editors (``# yaml-language-server: $schema=...``)."""
    schema = JobConfig.model_json_schema(mode="validation")
    ordered = {"$schema": schema.pop("$schema"), "$id": schema.pop("$id")}
    ordered.update(schema)
    return ordered


def job_json_schema_text() -> str:
    """The exact text of ``configs/job.schema.json`` (tests compare it with the committed file)."""
    return json.dumps(job_json_schema(), indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------------
def starter_backend(profile: ModelProfile) -> str:
    """The backend a starter config for ``profile`` uses: serverless where Azure offers it, else
    azureml-compute (phi3ft's LoRA trainer on an Azure ML cluster: the open weights stay trainable) for a
    model whose serverless fine-tuning has a retirement date or was never offered."""
    if not profile.serverless_finetune or profile.lifecycle.finetune_retired is not None:
        return "azureml-compute"
    return "serverless"


def render_starter_config(
    profile: ModelProfile,
    *,
    schema_ref: str = "job.schema.json",
    schema_exists: bool = False,
    train: str = "data/train.jsonl",
    validation: str = "data/validation.jsonl",
    project: str = "phi-ft",
) -> str:
    """A commented job.yaml for ``profile`` (``phi3ft init`` and the ``configs/`` templates)."""
    hp = profile.hyperparameters
    lr = hp.learning_rate
    lr_range = f" (allowed {lr.describe()})" if lr.min is not None or lr.max is not None else ""
    location = profile.finetune_regions[0] if profile.finetune_regions else DEFAULT_LOCATION
    short = _slug(profile.name.removesuffix("-instruct").replace(".", ""), 40)
    status_note = ""
    backend = starter_backend(profile)
    if profile.lifecycle.finetune_retired is not None and profile.serverless_finetune:
        status_note = (
            f"# NOTE: serverless fine-tuning of {profile.registry_name} retired on "
            f"{profile.lifecycle.finetune_retired.isoformat()} (replacement: {profile.lifecycle.replacement}),\n"
            "# so this file uses backend: azureml-compute (LoRA on your Azure ML GPU cluster); backend: local\n"
            "# trains on this machine. For serverless fine-tuning use the replacement model.\n"
        )
    elif not profile.serverless_finetune:
        status_note = (
            f"# NOTE: {profile.registry_name} is not offered for serverless fine-tuning, so this file uses\n"
            "# backend: azureml-compute (your Azure ML GPU cluster); backend: local trains on this machine.\n"
        )
    schema_note = (
        "" if schema_exists else f"# (editor completion: create it with `phi3ft schema > {schema_ref}`)\n"
    )
    return f"""# yaml-language-server: $schema={schema_ref}
{schema_note}# phi3ft job: fine-tune {profile.registry_name} ({profile.context_length:,} tokens of context).
# Check it offline with `phi3ft plan --config <this file>`; every key: `phi3ft schema`.
{status_note}
# serverless (Azure pay-as-you-go fine-tuning) | local (this machine's GPU) | azureml-compute (your cluster)
backend: {backend}

azure:
  # Subscription GUID; ${{VAR}} and ${{VAR:-default}} read the environment.
  subscription_id: ${{AZURE_SUBSCRIPTION_ID:-00000000-0000-0000-0000-000000000000}}
  resource_group: rg-{project}
  # Serverless fine-tuning of Phi models needs a hub in a fine-tuning region ({", ".join(profile.finetune_regions) or "none"}).
  location: {location}
  hub:
    name: hub-{project}
    create_if_missing: true
  project:
    name: {project}
  auth: auto              # auto | cli | env | managed-identity | device-code

model:
  name: {profile.name}
  version: latest         # or a registry version number

task: chat-completion

data:
  # Chat-completion JSONL: {{"messages": [{{"role": "system"|"user"|"assistant", "content": "..."}}]}}
  # Relative paths resolve against this file's folder.
  train: {train}
  validation: {validation}
  # Or hold out part of train instead of a validation file:
  # split: {{fraction: 0.1, seed: 42}}

hyperparameters:         # unset = the model's default; sent as num_train_epochs etc.
  learning_rate: {lr.default:.1e}   # default {lr.default:g}{lr_range}
  epochs: {int(hp.epochs.default)}
  batch_size: {int(hp.batch_size.default)}

output:
  model_name: {short}-ft   # the fine-tuned model's name in the project

deploy:
  enabled: true
  # endpoint_name: {short}-ft   # default: derived from the model and data (unique in the region, stable)
  content_safety: true    # Azure AI Content Safety filters prompts and completions
  auth_mode: key

eval:
  max_tokens: 256
  concurrency: 4
  # min_f1: 0.5

# Your prices from the portal's "Pricing and terms" tab; without them the plan shows no cost.
# pricing:
#   currency: USD
#   training_per_1k_tokens: 0.0
#   hosting_per_hour: 0.0

tags:
  project: {project}
"""


# ---- data asset names (content-addressed) and the split submit makes -------------------------------
def _asset_slug(text: str) -> str:
    return _slug(text, 40) or "data"


def data_asset_ref(role: str, path: Path, sha256: str) -> tuple[str, str]:
    """(name, version) of the data asset for a file: named after the file, versioned by its content.

    The same bytes always map to the same version, so a re-run finds the asset instead of uploading again.
    """
    return f"phi3ft-{_asset_slug(path.stem)}", sha256[:16]


def split_asset_refs(train: Path, train_sha: str, fraction: float, seed: int) -> dict[str, tuple[str, str]]:
    """Asset refs of the two halves of an automatic split (content = f(train bytes, fraction, seed))."""
    key = hashlib.sha256(f"{train_sha}:{fraction!r}:{seed}".encode()).hexdigest()[:16]
    stem = _asset_slug(train.stem)
    return {
        "train": (f"phi3ft-{stem}-split-train", key),
        "validation": (f"phi3ft-{stem}-split-validation", key),
    }


def effective_split(cfg: JobConfig) -> SplitConfig | None:
    """The split submit will make: the configured one, or the default when Azure would get no validation file.

    An Azure submit (serverless or cluster) always sends validation data, so without ``data.validation`` it
    holds out ``SplitConfig()`` (10 %, seed 42) of train; the local trainer splits on its own (``data.split``).
    """
    if cfg.data.split is not None:
        return cfg.data.split
    if cfg.data.validation is None and not cfg.runs_locally:
        return SplitConfig()
    return None


def output_dir_configured(cfg: JobConfig) -> bool:
    """True when job.yaml names ``training.output_dir`` (anything but the default ``runs/train``)."""
    default = Path(type(cfg.training).model_fields["output_dir"].default)
    current = Path(cfg.training.output_dir)
    if not current.is_absolute():
        return current != default
    source = getattr(cfg, "source", None)
    base = Path(source).resolve().parent if source is not None else Path.cwd()
    return current != base / default
