"""The local ledger: atomic writes, lenient reads, corrupt files set aside."""

from __future__ import annotations

import json
from pathlib import Path

from phi3ft.state import StateStore


def test_record_merge_and_last_job(tmp_path: Path) -> None:
    store = StateStore(tmp_path / ".phi3ft")
    store.record("hub", "hub-a", id="/x/hub-a", created_by_phi3ft=True)
    store.record("hub", "hub-a", location="eastus2")
    rec = store.get("hub", "hub-a")
    assert rec is not None
    assert rec["id"] == "/x/hub-a" and rec["location"] == "eastus2" and rec["created_by_phi3ft"] is True
    assert store.last_job is None
    store.record("job", "job-1", status="Queued")
    assert store.last_job == "job-1"
    store.remove("job", "job-1")
    assert store.last_job is None
    assert [r["name"] for r in store.list("hub")] == ["hub-a"]


def test_unknown_fields_survive(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "state.json").write_text(
        json.dumps({"version": 9, "future": {"x": 1}, "resources": {"job": {"j": {"name": "j", "new": 1}}}})
    )
    store = StateStore(d)
    store.record("job", "k")
    data = json.loads((d / "state.json").read_text())
    assert data["future"] == {"x": 1}
    assert data["resources"]["job"]["j"]["new"] == 1


def test_corrupt_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "state.json").write_text("{not json")
    store = StateStore(d)
    assert store.list("job") == []
    assert store.warnings and "moved to" in store.warnings[0]
    aside = list(d.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"


def test_no_temp_files_left(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for i in range(5):
        store.record("data", f"d{i}", version=str(i))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "state.json"]


def test_created_by_phi3ft_is_sticky(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.record_resource("hub", "h", created=False, id="x")["created_by_phi3ft"] is False
    assert store.record_resource("hub", "h", created=True)["created_by_phi3ft"] is True
    rec = store.record_resource("hub", "h", created=False, location="eastus2")  # a later run reuses it
    assert rec["created_by_phi3ft"] is True and rec["id"] == "x" and rec["location"] == "eastus2"
