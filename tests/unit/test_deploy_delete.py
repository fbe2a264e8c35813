"""delete: the seed's order, ledger ownership, --force, idempotency, model-in-use refusal, dry-run plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.endpoints import FakeEndpoint, FakeEndpointBackend

from phi3ft.errors import NotFoundError, PrerequisiteError, UsageError
from phi3ft.state import StateStore
from phi3ft.targets.azureml.endpoints import DeleteSelection, execute_delete, plan_delete
from phi3ft.targets.base import JobInfo


def _model_id(name: str) -> str:
    return f"azureml://locations/eastus2/workspaces/g/models/{name}/versions/1"


@pytest.fixture
def world(tmp_path: Path) -> tuple[StateStore, FakeEndpointBackend]:
    store = StateStore(tmp_path / ".phi3ft")
    store.record("hub", "hub1", created_by_phi3ft=True)
    store.record("project", "proj", created_by_phi3ft=True, hub="hub1")
    store.record(
        "data", "train:abc", asset_name="train", version="abc", created_by_phi3ft=True, project="proj"
    )
    store.record("data", "val:def", asset_name="val", version="def", created_by_phi3ft=True, project="proj")
    store.record(
        "job", "job-1", created_by_phi3ft=True, status="Completed", output_model_name="ft", project="proj"
    )
    store.record("endpoint", "ep-1", created_by_phi3ft=True, model="ft:1", job="job-1", project="proj")
    backend = FakeEndpointBackend(
        models={("ft", "1")},
        data={("train", "abc"), ("val", "def")},
        workspaces={"hub1": "hub", "proj": "project"},
    )
    backend.endpoints["ep-1"] = FakeEndpoint("ep-1", _model_id("ft"), "Enabled", "Key", 0)
    backend.jobs["job-1"] = JobInfo("job-1", "Completed", output_model_name="ft")
    return store, backend


def _run(store: StateStore, backend: FakeEndpointBackend, **sel: object) -> list[tuple[str, str, str]]:
    plan = plan_delete(store, backend, DeleteSelection(**sel))  # type: ignore[arg-type]
    return [(o.step.kind, o.step.label, o.result) for o in execute_delete(plan, backend, store)]


def test_all_deletes_in_the_seed_order_and_leaves_nothing(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    done = _run(store, backend, all=True)
    assert [(k, r) for k, _, r in done] == [
        ("endpoint", "deleted"),
        ("model", "deleted"),
        ("data", "archived"),
        ("data", "archived"),
        ("project", "deleted"),
        ("hub", "deleted"),
    ]
    assert [c[0] for c in backend.calls] == [
        "delete_endpoint",
        "delete_model",
        "archive_data",
        "archive_data",
        "delete_project",
        "delete_hub",
    ]
    assert not backend.workspaces and not backend.endpoints and not backend.models
    for kind in ("job", "endpoint", "model", "data", "project", "hub"):
        assert store.list(kind) == [], kind


def test_cluster_phi3ft_created_goes_before_the_project(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    store.record("compute", "gpu-a100", created_by_phi3ft=True, project="proj")
    store.record("compute", "shared-gpu", created_by_phi3ft=False, project="proj")
    backend.computes |= {"gpu-a100", "shared-gpu"}
    done = _run(store, backend, all=True)
    kinds = [k for k, _, _ in done]
    assert kinds.index("compute") < kinds.index("project")
    assert ("compute", "gpu-a100", "deleted") in done
    assert ("compute", "shared-gpu", "skipped") in done  # reused, not created: left alone
    assert backend.computes == {"shared-gpu"}
    assert [r["name"] for r in store.list("compute")] == ["shared-gpu"]  # only what phi3ft made is forgotten
    # already gone is success on a forced re-run
    store.record("compute", "gpu-a100", created_by_phi3ft=True, project="proj")
    assert _run(store, backend, project=True, force=True, project_name="proj")[0] == (
        "compute",
        "gpu-a100",
        "absent",
    )


def test_delete_all_twice_is_idempotent(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    _run(store, backend, all=True)
    # ledger is empty now: a second --all plans nothing and succeeds
    assert _run(store, backend, all=True) == []
    # forcing by name against resources that are already gone: "absent" is success
    again = _run(
        store,
        backend,
        endpoints=["ep-1"],
        models=["ft:1"],
        project=True,
        hub=True,
        force=True,
        project_name="proj",
        hub_name="hub1",
    )
    assert {r for _, _, r in again} == {"absent"}


def test_ledger_gone_remote_is_success(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    backend.endpoints.clear()
    backend.models.clear()
    done = _run(store, backend)
    assert done == [("endpoint", "ep-1", "absent"), ("model", "ft:1", "absent")]
    assert store.get("endpoint", "ep-1") is None


def test_default_is_last_jobs_endpoints_and_model(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    assert _run(store, backend) == [("endpoint", "ep-1", "deleted"), ("model", "ft:1", "deleted")]
    assert backend.workspaces and backend.data  # data, project, hub need flags


def test_only_ledger_created_resources_unless_force(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    store.record("hub", "hub1", created_by_phi3ft=False)  # reused, not created
    backend.endpoints["foreign"] = FakeEndpoint("foreign", _model_id("other"), "Enabled", "Key", 0)
    plan = plan_delete(store, backend, DeleteSelection(endpoints=["foreign"], hub=True))
    assert [(s.kind, s.action) for s in plan.steps] == [("endpoint", "skip"), ("hub", "skip")]
    assert "no record in the local ledger" in (plan.steps[0].skip_reason or "")
    assert "existed before phi3ft" in (plan.steps[1].skip_reason or "")
    done = _run(store, backend, endpoints=["foreign"], hub=True)
    assert [r for _, _, r in done] == ["skipped", "skipped"] and "foreign" in backend.endpoints
    assert _run(store, backend, endpoints=["foreign"], force=True) == [("endpoint", "foreign", "deleted")]


def test_model_with_a_live_endpoint_is_refused_with_the_fix(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    with pytest.raises(PrerequisiteError) as exc:
        plan_delete(store, backend, DeleteSelection(models=["ft:1"]))
    assert "still has a deployment (ep-1)" in exc.value.message
    assert "delete the deployment first" in exc.value.message
    assert "phi3ft delete --endpoint ep-1 --yes" in (exc.value.hint or "")
    assert backend.calls == []  # refused before touching anything
    # naming the endpoint too makes it legal: endpoint first, then the model
    assert _run(store, backend, models=["ft:1"], endpoints=["ep-1"]) == [
        ("endpoint", "ep-1", "deleted"),
        ("model", "ft:1", "deleted"),
    ]


def test_running_job_is_canceled_first_with_all(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    store.record("job", "job-2", created_by_phi3ft=True, status="Running", project="proj")
    backend.jobs["job-2"] = JobInfo("job-2", "Running")
    done = _run(store, backend, all=True)
    assert done[0] == ("job", "job-2", "canceled") and backend.calls[0] == ("cancel_job", "job-2")


def test_failure_stops_and_says_what_was_left(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    backend.workspaces["other-proj"] = "project"  # the fake hub refuses while a project remains
    with pytest.raises(Exception, match=r"still has projects.*stopped before: nothing"):
        _run(store, backend, all=True)
    assert store.get("hub", "hub1") is not None  # not deleted, still in the ledger


def test_usage_errors(tmp_path: Path) -> None:
    empty = StateStore(tmp_path / "s")
    with pytest.raises(UsageError, match="Nothing to delete"):
        plan_delete(empty, FakeEndpointBackend(), DeleteSelection())
    with pytest.raises(NotFoundError, match="no job nope"):
        plan_delete(empty, FakeEndpointBackend(), DeleteSelection(job="nope"))


def test_plan_json_shape(world) -> None:  # type: ignore[no-untyped-def]
    store, backend = world
    plan = plan_delete(store, backend, DeleteSelection(all=True))
    assert plan.to_json()[0] == {
        "kind": "endpoint",
        "name": "ep-1",
        "version": None,
        "action": "delete",
        "reason": None,
    }
    assert backend.calls == []  # planning only reads
