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


# ---- intents, ownership, the run lock (issue 20 §1, §2) ---------------------------------------------------
def test_intent_issues_a_sticky_creation_id_and_a_found_resource_with_it_is_ours(tmp_path: Path) -> None:
    from phi3ft.state import CREATION_TAG, StateStore

    store = StateStore(tmp_path / ".phi3ft")
    cid = store.intent("hub", "hub-a", location="eastus2")
    assert store.intent("hub", "hub-a") == cid  # a re-run after a kill reuses it
    record = store.get("hub", "hub-a")
    assert record and record["status"] == "creating" and record["created_by_phi3ft"] is False
    # the re-run finds the hub (created=False) carrying the id: ours, and no longer "creating"
    rec = store.record_resource("hub", "hub-a", created=False, tags={CREATION_TAG: cid, "phi3ft": "1"})
    assert rec["created_by_phi3ft"] is True and rec["status"] == "ready"


def test_a_found_resource_without_our_creation_id_stays_not_ours(tmp_path: Path) -> None:
    from phi3ft.state import CREATION_TAG, StateStore

    store = StateStore(tmp_path / ".phi3ft")
    store.intent("project", "p")
    rec = store.record_resource("project", "p", created=False, tags={CREATION_TAG: "someone-else"})
    assert rec["created_by_phi3ft"] is False
    assert not store.owns("project", "p", {})


def test_run_lock_is_reentrant_in_a_process_and_refuses_another_without_wait(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import phi3ft
    from phi3ft.state import StateStore

    store = StateStore(tmp_path / ".phi3ft")
    child = (
        "import sys; from pathlib import Path; from phi3ft.state import StateStore, LockBusy\n"
        "try:\n    StateStore(Path(sys.argv[1])).run_lock(wait=False).__enter__()\n"
        "except LockBusy as e:\n    print(e.message); sys.exit(1)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(phi3ft.__file__).parent.parent)}
    with store.run_lock(), store.run_lock():  # nested: the same process does not deadlock
        store.record("job", "j", status="Running")  # ledger writes use their own lock file
        busy = subprocess.run(
            [sys.executable, "-c", child, str(store.dir)], capture_output=True, text=True, env=env
        )
    assert busy.returncode == 1
    assert f"another phi3ft run (pid {os.getpid()}) is changing .phi3ft" in busy.stdout
    free = subprocess.run(
        [sys.executable, "-c", child, str(store.dir)], capture_output=True, text=True, env=env
    )
    assert free.returncode == 0, free.stdout + free.stderr
