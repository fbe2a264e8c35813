"""phi3ft.steps: the one ledger rule of a create (intent, tag, record after) and apply's bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.jobs import Crash

from phi3ft.errors import AzureError, NetworkError, UsageError
from phi3ft.state import CREATING, StateStore
from phi3ft.steps import ApplyContext, Step, SubmitEvent, apply, create_owned


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / ".phi3ft")


def test_the_intent_is_written_before_the_create_and_its_id_is_the_tag(store: StateStore) -> None:
    seen: list[Any] = []

    def create(cid: str) -> str:
        seen.append((cid, store.get("hub", "h")))
        return "made"

    assert create_owned(store, "hub", "h", create, intent={"location": "eastus2"}) == "made"
    (cid, record), = seen  # fmt: skip
    assert record is not None and record["status"] == CREATING and record["creation_id"] == cid


def test_a_kill_mid_create_leaves_the_intent(store: StateStore) -> None:
    def create(cid: str) -> str:
        raise Crash("killed")

    with pytest.raises(Crash):
        create_owned(store, "job", "j", create, intent={}, forget_if_refused=True)
    assert (store.get("job", "j") or {}).get("status") == CREATING


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (UsageError("refused (400)"), False),  # a refusal: nothing exists, the intent goes
        (NetworkError("no answer"), True),  # unknown outcome: the next run reconciles
    ],
)
def test_only_a_refused_create_forgets_its_intent(store: StateStore, error: Exception, kept: bool) -> None:
    def create(cid: str) -> str:
        raise error

    with pytest.raises(type(error)):
        create_owned(store, "job", "j", create, intent={}, forget_if_refused=True)
    assert (store.get("job", "j") is not None) is kept


def test_without_forget_a_refused_create_keeps_its_intent(store: StateStore) -> None:
    def create(cid: str) -> str:
        raise AzureError("refused")

    with pytest.raises(AzureError):
        create_owned(store, "hub", "h", create, intent={})
    assert store.get("hub", "h") is not None


@dataclass(kw_only=True)
class Note(Step):
    kind = "note"
    fail: bool = False

    def run(self, ctx: ApplyContext) -> Iterator[SubmitEvent]:
        yield SubmitEvent("step", "note", self.summary)
        if self.fail:
            raise UsageError("stop")


def test_apply_runs_in_order_and_records_only_the_steps_that_finished(store: StateStore) -> None:
    ctx = ApplyContext(spec=None, backend=None, store=store, options=None, fingerprint=None)  # type: ignore[arg-type]
    steps = [
        Note(target="a", summary="one"),
        Note(target="b", summary="two", fail=True),
        Note(target="c", summary="x"),
    ]
    events: list[str] = []
    with pytest.raises(UsageError):
        for event in apply(steps, ctx):
            events.append(event.message)
    assert events == ["one", "two"]
    assert [(a.step, a.kind, a.target) for a in ctx.ran] == [(1, "note", "a")]
