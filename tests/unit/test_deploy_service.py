"""deploy / invoke / chat services against the in-memory fake (tests/fakes/endpoints.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from tests.fakes.endpoints import WORKSPACE_GUID, FakeChatClient, FakeEndpointBackend

from phi3ft.errors import AzureError, NotFoundError, PrerequisiteError, UsageError
from phi3ft.polling import PollTimeout
from phi3ft.state import StateStore
from phi3ft.targets.azureml.endpoints import (
    ChatSession,
    DeployEvent,
    ModelRef,
    default_endpoint_name,
    deploy_endpoint,
    invoke,
    parse_model_ref,
    resolve_endpoint_name,
    resolve_model,
)
from phi3ft.targets.base import JobInfo


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / ".phi3ft")
    s.record("job", "job-1", created_by_phi3ft=True, status="Completed", output_model_name="phi3-ft")
    return s


@pytest.fixture
def backend() -> FakeEndpointBackend:
    b = FakeEndpointBackend(models={("phi3-ft", "1")})
    b.jobs["job-1"] = JobInfo("job-1", "Completed", output_model_name="phi3-ft")
    return b


def _deploy(backend: FakeEndpointBackend, store: StateStore, **kw):  # type: ignore[no-untyped-def]
    clock = Clock()
    events: list[DeployEvent] = []
    model = kw.pop("model", None) or resolve_model(store, backend)
    result = deploy_endpoint(
        backend,
        store,
        model,
        endpoint_name=kw.pop("endpoint_name", "phi3-ft-ep"),
        clock=clock,
        sleep=clock.sleep,
        schedule=itertools.repeat(2.0),
        on_event=events.append,
        **kw,
    )
    return result, events, clock


def test_parse_model_ref() -> None:
    assert parse_model_ref("m:3") == ("m", "3")
    assert parse_model_ref("m") == ("m", "1")
    for bad in ("", ":1", "m:", "m:1:2"):
        with pytest.raises(UsageError):
            parse_model_ref(bad)


def test_resolve_model_from_last_job(store: StateStore, backend: FakeEndpointBackend) -> None:
    ref = resolve_model(store, backend)
    assert (ref.name, ref.version, ref.job, ref.created_by_phi3ft) == ("phi3-ft", "1", "job-1", True)


def test_resolve_model_refuses_unfinished_job(store: StateStore, backend: FakeEndpointBackend) -> None:
    backend.jobs["job-1"].status = "Running"
    with pytest.raises(PrerequisiteError, match="Running") as exc:
        resolve_model(store, backend)
    assert "phi3ft watch job-1" in (exc.value.hint or "")


def test_resolve_model_without_job(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no last job"):
        resolve_model(StateStore(tmp_path), None)


def test_deploy_creates_waits_and_records(store: StateStore, backend: FakeEndpointBackend) -> None:
    result, events, _clock = _deploy(backend, store)
    assert result.created and result.waited
    assert result.endpoint.provisioning_state == "Succeeded"
    assert result.endpoint.scoring_uri == "https://phi3-ft-ep.eastus2.models.ai.azure.com"
    assert result.model_id == (
        f"azureml://locations/eastus2/workspaces/{WORKSPACE_GUID}/models/phi3-ft/versions/1"
    )
    assert backend.endpoints["phi3-ft-ep"].content_safety == "Enabled"
    assert backend.endpoints["phi3-ft-ep"].auth_mode == "Key"
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["resolved", "creating", "accepted"] and kinds[-1] == "ready"
    assert "waiting" in kinds and "warning" not in kinds
    record = store.get("endpoint", "phi3-ft-ep")
    assert record and record["created_by_phi3ft"] is True and record["model"] == "phi3-ft:1"
    assert record["scoring_uri"] == result.endpoint.scoring_uri
    assert "key" not in " ".join(record.keys()).lower()  # keys are never stored
    assert store.get("model", "phi3-ft:1")["created_by_phi3ft"] is True  # type: ignore[index]


def test_deploy_without_content_safety_warns(store: StateStore, backend: FakeEndpointBackend) -> None:
    _result, events, _ = _deploy(backend, store, content_safety=False, auth_mode="key-and-aad")
    assert any(e.kind == "warning" and "Content safety is OFF" in e.message for e in events)
    assert backend.endpoints["phi3-ft-ep"].content_safety == "Disabled"
    assert backend.endpoints["phi3-ft-ep"].auth_mode == "KeyAndAAD"


def test_deploy_is_idempotent(store: StateStore, backend: FakeEndpointBackend) -> None:
    _deploy(backend, store)
    result, events, _ = _deploy(backend, store)
    assert not result.created and not result.waited
    assert [c for c in backend.calls if c[0] == "create_endpoint"] == [("create_endpoint", "phi3-ft-ep")]
    assert any(e.kind == "exists" for e in events)


def test_deploy_detach_returns_at_once(store: StateStore, backend: FakeEndpointBackend) -> None:
    result, _events, clock = _deploy(backend, store, wait=False)
    assert result.endpoint.provisioning_state == "Creating" and not result.waited
    assert clock.slept == []
    assert store.get("endpoint", "phi3-ft-ep") is not None  # recorded before any wait


def test_deploy_refuses_name_used_by_another_model(store: StateStore, backend: FakeEndpointBackend) -> None:
    backend.models.add(("other", "1"))
    _deploy(backend, store, model=ModelRef("other", "1"))
    with pytest.raises(PrerequisiteError, match="serves another model"):
        _deploy(backend, store)


def test_deploy_missing_model(store: StateStore, backend: FakeEndpointBackend) -> None:
    with pytest.raises(NotFoundError, match="nope:1 does not exist"):
        _deploy(backend, store, model=ModelRef("nope", "1"))


def test_deploy_failure_and_timeout(store: StateStore, backend: FakeEndpointBackend) -> None:
    backend.final_state = "Failed"
    with pytest.raises(AzureError, match="ended Failed"):
        _deploy(backend, store)
    assert store.get("endpoint", "phi3-ft-ep")["state"] == "Failed"  # type: ignore[index]
    backend.endpoints.clear()
    backend.final_state = "Succeeded"
    backend.creating_polls = 10_000
    with pytest.raises(PollTimeout):
        _deploy(backend, store, endpoint_name="ep-slow", timeout=60)


def test_default_endpoint_name_is_valid_and_stable() -> None:
    a = default_endpoint_name(ModelRef("Phi-3-mini_FT.v2", "1"), "sub/rg/proj")
    assert a == default_endpoint_name(ModelRef("Phi-3-mini_FT.v2", "1"), "sub/rg/proj")
    assert a != default_endpoint_name(ModelRef("Phi-3-mini_FT.v2", "1"), "sub/rg/other")
    assert a.startswith("phi-3-mini-ft-v2-") and len(a) <= 52
    assert default_endpoint_name(ModelRef("123", "1")).startswith("ep-123-")


def test_resolve_endpoint_name(store: StateStore) -> None:
    with pytest.raises(UsageError):
        resolve_endpoint_name(store, None)
    store.record("endpoint", "ep-a", created_by_phi3ft=True)
    assert resolve_endpoint_name(store, None) == "ep-a"
    assert resolve_endpoint_name(store, "x") == "x"


def test_invoke_and_chat_session() -> None:
    client = FakeChatClient({"hi": "hello", "again": "still here"})
    assert invoke(client, "hi", system="be brief").content == "hello"
    assert client.calls[-1]["messages"][0] == {"role": "system", "content": "be brief"}
    with pytest.raises(UsageError):
        invoke(client, "  ")
    chat = ChatSession(client, system="sys")
    chat.send("hi")
    chat.send("again")
    assert [m["role"] for m in client.calls[-1]["messages"]] == ["system", "user", "assistant", "user"]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "sys"}]
    client.fail_on.add("boom")
    with pytest.raises(AzureError):
        chat.send("boom")
    assert chat.messages == [{"role": "system", "content": "sys"}]  # a failed turn leaves no trace
