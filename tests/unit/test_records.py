"""Typed ledger records read today's ``.phi3ft/state.json`` (written by main at 9d7e9f9, every kind)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO

from phi3ft.records import (
    ComputeRecord,
    DataRecord,
    EndpointRecord,
    HubRecord,
    JobRecord,
    ModelRecord,
    ProjectRecord,
    Record,
    SweepRecord,
    all_records,
    get_record,
    list_records,
    parse_record,
)
from phi3ft.state import StateStore

FIXTURE = REPO / "tests" / "fixtures" / "state" / "state-main-9d7e9f9.json"
TYPES = {
    "hub": HubRecord,
    "project": ProjectRecord,
    "data": DataRecord,
    "compute": ComputeRecord,
    "job": JobRecord,
    "endpoint": EndpointRecord,
    "model": ModelRecord,
    "sweep": SweepRecord,
}


def store_with_fixture(tmp_path: Path) -> StateStore:
    (tmp_path / ".phi3ft").mkdir()
    shutil.copy(FIXTURE, tmp_path / ".phi3ft" / "state.json")
    return StateStore(tmp_path / ".phi3ft")


def test_state_json_written_by_main_loads_typed_and_round_trips(tmp_path: Path) -> None:
    store = store_with_fixture(tmp_path)
    raw = json.loads(FIXTURE.read_text())["resources"]
    typed = all_records(store)
    assert set(typed) == set(TYPES)
    for kind, records in typed.items():
        assert records, kind
        for key, record in records.items():
            assert type(record) is TYPES[kind]
            assert record.name and record.created_at
            assert not record.model_extra, (kind, record.model_extra)  # every field main writes is modelled
            assert record.to_fields() == raw[kind][key]  # nothing lost, nothing added
    assert store.warnings == []


def test_typed_accessors(tmp_path: Path) -> None:
    store = store_with_fixture(tmp_path)
    last = store.last_job
    assert last is not None
    job = get_record(store, JobRecord, last)
    assert job is not None and job.runs_locally and job.pid == 4242 and job.data_hashes
    azure = [j for j in list_records(store, JobRecord) if not j.runs_locally]
    assert len(azure) == 2 and all(j.subscription_id and j.project and j.data_assets for j in azure)
    (sweep,) = list_records(store, SweepRecord)
    assert [p.index for p in sweep.points] == [1, 2] and all(p.job for p in sweep.points)
    assert {j.name for j in azure} == {p.job for p in sweep.points}  # point 1 is the job above
    (endpoint,) = list_records(store, EndpointRecord)
    assert endpoint.content_safety is True and endpoint.job
    assert get_record(store, HubRecord, "missing") is None


def test_records_read_leniently() -> None:
    newer = parse_record("job", {"name": "j", "status": "Running", "from_the_future": {"x": 1}})
    assert isinstance(newer, JobRecord) and newer.model_extra == {"from_the_future": {"x": 1}}
    assert newer.to_fields() == {"name": "j", "status": "Running", "from_the_future": {"x": 1}}
    odd = parse_record("job", {"name": "j", "pid": "not a pid", "status": "Completed"})
    assert isinstance(odd, JobRecord) and odd.pid is None and odd.status == "Completed"
    unknown = parse_record("gizmo", {"name": "g", "anything": 1})
    assert type(unknown) is Record and unknown.to_fields() == {"name": "g", "anything": 1}
