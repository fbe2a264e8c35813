"""The GPU cluster checks of ``backend: azureml-compute`` that need no Azure: reuse rules and the create wait."""

from __future__ import annotations

import re
from typing import Any

import pytest

from phi3ft.config import ComputeConfig
from phi3ft.errors import AzureError, ExitCode, PrerequisiteError
from phi3ft.polling import PollTimeout
from phi3ft.targets.azureml.sdk.compute import ComputeOps, _cluster_entity, check_reused_cluster


def cluster(**kw: Any) -> dict[str, Any]:
    base = {"name": "gpu", "vm_size": "Standard_NC24ads_A100_v4", "min_nodes": 0, "max_nodes": 2}
    return {**base, "state": "Succeeded", "ssh_public_access": "Disabled", **kw}


def test_a_matching_cluster_is_reused_silently() -> None:
    assert check_reused_cluster(cluster(), ComputeConfig(max_nodes=2)) == []
    assert check_reused_cluster(cluster(max_nodes=8), ComputeConfig(max_nodes=2)) == []


@pytest.mark.parametrize(
    ("found", "needs", "message"),
    [
        (
            cluster(max_nodes=2),
            {"max_nodes": 4},
            "exists with at most 2 node(s); the job asks for 4 instances",
        ),
        (cluster(state="Failed"), {}, "exists but is Failed"),
        (cluster(state="Deleting"), {}, "exists but is Deleting"),
    ],
)
def test_a_cluster_that_cannot_run_the_job_is_exit_4(
    found: dict[str, Any], needs: dict[str, Any], message: str
) -> None:
    with pytest.raises(PrerequisiteError, match=re.escape(message)) as err:
        check_reused_cluster(found, ComputeConfig(**needs))
    assert err.value.exit_code == ExitCode.PREREQ and err.value.hint


def test_other_size_always_on_nodes_and_open_ssh_are_warned() -> None:
    warnings = check_reused_cluster(
        cluster(vm_size="Standard_NC96ads_A100_v4", min_nodes=1, ssh_public_access="Enabled"), ComputeConfig()
    )
    assert len(warnings) == 3
    assert "Set compute.vm_size: Standard_NC96ads_A100_v4 to match it" in warnings[0]
    assert "--min-instances 0" in warnings[1] and "SSH port open" in warnings[2]


def test_the_created_cluster_entity() -> None:
    rest = _cluster_entity(
        "gpu",
        vm_size="Standard_NC24ads_A100_v4",
        min_nodes=0,
        max_nodes=2,
        idle_seconds=0,
        tags={"phi3ft": "1"},
    )._to_rest_object()
    inner = rest.properties.properties  # the wire body, as the SDK serialises it
    assert inner["remoteLoginPortPublicAccess"] == "Disabled"
    assert inner["scaleSettings"]["nodeIdleTimeBeforeScaleDown"] == "PT0S"
    rest = _cluster_entity(
        "gpu", vm_size="Standard_NC24ads_A100_v4", min_nodes=0, max_nodes=2, idle_seconds=90, tags=None
    )._to_rest_object()
    assert rest.properties.properties["scaleSettings"]["nodeIdleTimeBeforeScaleDown"] == "PT1M30S"


class FakeOps(ComputeOps):
    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.reads = 0

    def find_compute(self, name: str) -> dict[str, Any] | None:
        state = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        return cluster(name=name, state=state, errors="QuotaExceeded" if state == "Failed" else None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(ops: FakeOps, timeout: float | None) -> tuple[list[tuple[str, float]], Any]:
    clock = Clock()
    polls = ops.watch_compute("gpu", timeout=timeout, clock=clock, sleep=clock.sleep)
    seen = []
    while True:
        try:
            seen.append(next(polls))
        except StopIteration as stop:
            return seen, stop.value


def test_the_create_wait_reports_each_poll() -> None:
    seen, found = run(FakeOps(["Creating", "Creating", "Succeeded"]), timeout=600)
    assert [state for state, _ in seen] == ["Creating", "Creating", "Succeeded"]
    assert found["state"] == "Succeeded"


def test_the_create_wait_times_out() -> None:
    ops = FakeOps(["Creating"])
    with pytest.raises(PollTimeout, match="waiting for compute cluster 'gpu' \\(Creating\\)"):
        run(ops, timeout=60)
    assert ops.reads == 9  # at 0, 2, 4, 6, 8, 10, 20, 35, 57.5 s; the next wait would pass 60 s


def test_a_failed_create_is_an_azure_error_with_the_reason() -> None:
    with pytest.raises(AzureError, match="ended Failed while provisioning: QuotaExceeded"):
        run(FakeOps(["Creating", "Failed"]), timeout=600)
