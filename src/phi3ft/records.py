"""Typed ledger records: what ``.phi3ft/state.json`` holds, one pydantic model per kind.

The storage layer (:class:`phi3ft.state.StateStore`: atomic writes, the lock, the JSON shape on disk) stays
untyped dicts; this module reads them as typed records. Reads are lenient like the store's: unknown fields
are kept (``extra="allow"``, a newer phi3ft may have written them), every field is optional, and a field of
the wrong type is dropped rather than failing the read (an older phi3ft, or a hand edit), so any
``state.json`` that loads today still loads. ``to_fields()`` gives back the dict ``StateStore.record`` takes.

Leaf module: stdlib, pydantic, the ledger store and (for what a backend means) the spec's registry.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from phi3ft.state import StateStore

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """Fields every record has (``StateStore.record`` sets ``name``, ``created_at``, ``updated_at``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    kind: ClassVar[str] = ""

    name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    #: False for what existed before and was only reused: ``delete`` leaves it alone.
    created_by_phi3ft: bool = False

    @classmethod
    def parse(cls: type[R], data: dict[str, Any]) -> R:
        """Leniently: a field of the wrong type is dropped and the rest of the record still reads."""
        values = dict(data)
        for _ in range(len(values) + 1):
            try:
                return cls.model_validate(values)
            except ValidationError as exc:
                bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
                if not bad:
                    raise
                for key in bad:
                    values.pop(str(key), None)
        return cls()  # pragma: no cover - every retry removes at least one key

    def to_fields(self) -> dict[str, Any]:
        """The record as the dict ``StateStore`` stores (unknown fields included, unset ones left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class _Azure(Record):
    """Where an Azure resource lives."""

    subscription_id: str | None = None
    resource_group: str | None = None


class HubRecord(_Azure):
    kind: ClassVar[str] = "hub"

    id: str | None = None
    location: str | None = None


class ProjectRecord(_Azure):
    kind: ClassVar[str] = "project"

    id: str | None = None
    hub: str | None = None
    location: str | None = None
    workspace_id: str | None = None


class DataRecord(_Azure):
    """Keyed ``asset_name:version`` (content-addressed)."""

    kind: ClassVar[str] = "data"

    asset_name: str | None = None
    version: str | None = None
    id: str | None = None
    path: str | None = None
    role: str | None = None
    source: str | None = None
    bytes: int | None = None
    project: str | None = None


class ComputeRecord(_Azure):
    """An Azure ML compute cluster (``backend: azureml-compute``)."""

    kind: ClassVar[str] = "compute"

    id: str | None = None
    vm_size: str | None = None
    project: str | None = None


class JobRecord(_Azure):
    """A training job, Azure (serverless, azureml-compute) or local."""

    kind: ClassVar[str] = "job"

    status: str | None = None
    backend: str | None = None
    project: str | None = None
    hub: str | None = None
    location: str | None = None
    auth: str | None = None
    model_id: str | None = None
    output_model_name: str | None = None
    output_model_version: str | None = None
    endpoint_name: str | None = None
    config_hash: str | None = None
    training_hash: str | None = None
    data_hashes: dict[str, str] | None = None
    data_assets: dict[str, str] | None = None
    config: str | None = None
    phi3ft_version: str | None = None
    submitted_at: str | None = None
    error: str | None = None
    # azureml-compute
    compute: str | None = None
    environment: str | None = None
    instance_count: int | None = None
    process_count_per_instance: int | None = None
    # local
    output_dir: str | None = None
    adapter_dir: str | None = None
    job_dir: str | None = None
    pid: int | None = None

    @property
    def runs_locally(self) -> bool:
        """Trained on this machine (the local backend's jobs live under ``.phi3ft/jobs``).

        The spec's registry answers (no backend names here); a record without ``backend`` is an Azure job.
        """
        from phi3ft.config import SPEC_CLASSES

        spec = SPEC_CLASSES.get(self.backend or "")
        return spec is not None and spec.runs_locally


class EndpointRecord(_Azure):
    kind: ClassVar[str] = "endpoint"

    model: str | None = None
    model_id: str | None = None
    job: str | None = None
    content_safety: bool | None = None
    auth_mode: str | None = None
    state: str | None = None
    scoring_uri: str | None = None
    project: str | None = None
    # deploy --baseline
    baseline: bool | None = None
    baseline_for: str | None = None
    fine_tuned_model: str | None = None
    base_model: str | None = None


class ModelRecord(Record):
    """A registered fine-tuned model (keyed ``name:version``)."""

    kind: ClassVar[str] = "model"

    version: str | None = None
    job: str | None = None


class SweepPointRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    index: int = 0
    values: dict[str, Any] = {}
    job: str | None = None
    output_model: str | None = None
    endpoint: str | None = None
    status: str | None = None


class SweepRecord(_Azure):
    kind: ClassVar[str] = "sweep"

    backend: str | None = None
    config: str | None = None
    max_parallel: int | None = None
    project: str | None = None
    points: list[SweepPointRecord] = []


#: Ledger kind -> its record model.
RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        HubRecord,
        ProjectRecord,
        DataRecord,
        ComputeRecord,
        JobRecord,
        EndpointRecord,
        ModelRecord,
        SweepRecord,
    )
}


def parse_record(kind: str, data: dict[str, Any]) -> Record:
    """One stored record as its kind's model (:class:`Record` for a kind this version does not know)."""
    return RECORD_TYPES.get(kind, Record).parse(data)


def get_record(store: StateStore, cls: type[R], key: str) -> R | None:
    """``store.get(cls.kind, key)`` as a typed record."""
    data = store.get(cls.kind, key)
    return cls.parse(data) if data is not None else None


def list_records(store: StateStore, cls: type[R]) -> list[R]:
    """``store.list(cls.kind)`` as typed records."""
    return [cls.parse(data) for data in store.list(cls.kind)]


def all_records(store: StateStore) -> dict[str, dict[str, Record]]:
    """Every record in the ledger, typed: ``{kind: {key: record}}``."""
    resources = store.load()["resources"]
    return {
        kind: {key: parse_record(kind, data) for key, data in records.items() if isinstance(data, dict)}
        for kind, records in resources.items()
    }
