"""The job-backend contract (``phi3ft.targets.base`` and each backend's docstrings), one set of tests run
against the Azure ML adapter on the offline stack, the in-memory fakes and the local backend.

What services rely on: ``find_job`` of an absent name is ``None`` and ``get_job`` raises ``NotFoundError``;
a created job is seen by ``get_job``/``find_job``/``list_jobs`` under its name, with its tags and a status
from ``JOB_STATUSES``; ``list_jobs`` is newest first and keeps ``max_results``; ``cancel_job`` moves an
active job to ``CancelRequested`` or a failed status and leaves a terminal job as it is; a failed job's
``get_job`` carries its error; ``job_metrics`` is sorted ``MetricPoint``s and ``job_logs`` yields
``(file name, text)``; both raise ``NotFoundError`` for an absent job.
"""

from __future__ import annotations

import pytest
from tests.contract.backends import TAGS, JobHarness

from phi3ft.errors import NotFoundError
from phi3ft.targets.base import (
    ACTIVE_STATUSES,
    FAILED_STATUSES,
    JOB_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    JobInfo,
    MetricPoint,
)


def _known(info: JobInfo) -> None:
    assert info.status in JOB_STATUSES, info.status
    assert info.terminal == (info.status in TERMINAL_STATUSES)


def test_the_status_sets_are_consistent() -> None:
    assert SUCCESS_STATUSES <= TERMINAL_STATUSES and FAILED_STATUSES <= TERMINAL_STATUSES
    assert not SUCCESS_STATUSES & FAILED_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    assert JOB_STATUSES >= TERMINAL_STATUSES | ACTIVE_STATUSES


# ---- the teardown subset (every backend with jobs, the endpoint fake too) ---------------------------------
def test_find_job_of_an_absent_name_is_none(teardown_jobs: JobHarness) -> None:
    assert teardown_jobs.backend.find_job("contract-absent") is None


def test_cancel_of_an_active_job_moves_it_to_canceling_or_failed(teardown_jobs: JobHarness) -> None:
    teardown_jobs.create("contract-cancel", "slow")
    info = teardown_jobs.backend.cancel_job("contract-cancel")
    assert info.name == "contract-cancel"
    _known(info)
    assert info.status == "CancelRequested" or info.status in FAILED_STATUSES, info.status
    final = teardown_jobs.settle("contract-cancel")
    assert final.status == "Canceled"
    again = teardown_jobs.backend.cancel_job("contract-cancel")  # idempotent
    assert again.status == "Canceled"


def test_cancel_of_a_finished_job_leaves_it_as_it_is(teardown_jobs: JobHarness) -> None:
    teardown_jobs.create("contract-done", "Completed")
    assert teardown_jobs.settle("contract-done").status == "Completed"
    assert teardown_jobs.backend.cancel_job("contract-done").status == "Completed"
    assert teardown_jobs.backend.find_job("contract-done").status == "Completed"


def test_cancel_of_an_absent_job_raises_not_found(teardown_jobs: JobHarness) -> None:
    with pytest.raises(NotFoundError):
        teardown_jobs.backend.cancel_job("contract-absent")


# ---- the whole contract ------------------------------------------------------------------------------------
def test_get_job_of_an_absent_name_raises_not_found(jobs: JobHarness) -> None:
    with pytest.raises(NotFoundError):
        jobs.backend.get_job("contract-absent")
    with pytest.raises(NotFoundError):
        jobs.backend.job_metrics("contract-absent")
    with pytest.raises(NotFoundError):
        list(jobs.backend.job_logs("contract-absent"))


def test_a_created_job_is_seen_by_get_find_and_list(jobs: JobHarness) -> None:
    created = jobs.create("contract-job", "Completed")
    assert created.name == "contract-job"
    _known(created)
    assert created.backend == jobs.backend_name
    for info in (jobs.backend.get_job("contract-job"), jobs.backend.find_job("contract-job")):
        assert info is not None and info.name == "contract-job"
        _known(info)
        assert info.backend == jobs.backend_name
        assert TAGS.items() <= info.tags.items()
    listed = {j.name: j for j in jobs.backend.list_jobs()}
    assert ("contract-job" in listed) == jobs.in_list_jobs
    if jobs.in_list_jobs:
        _known(listed["contract-job"])
        assert listed["contract-job"].backend == jobs.backend_name


def test_list_jobs_is_newest_first_and_keeps_max_results(jobs: JobHarness) -> None:
    for name in ("contract-a", "contract-b", "contract-c"):
        jobs.create(name, "Completed")
    listed = jobs.backend.list_jobs()
    if not jobs.in_list_jobs:
        assert not {j.name for j in listed} & {"contract-a", "contract-b", "contract-c"}
        return
    assert {j.name for j in listed} >= {"contract-a", "contract-b", "contract-c"}
    created = [j.created_at or "" for j in listed]
    assert created == sorted(created, reverse=True)
    assert len(jobs.backend.list_jobs(max_results=2)) == 2


def test_a_job_ends_in_a_terminal_status(jobs: JobHarness) -> None:
    jobs.create("contract-ok", "Completed")
    final = jobs.settle("contract-ok")
    assert final.status in SUCCESS_STATUSES and final.terminal
    assert final.error is None


def test_a_failed_job_carries_its_error(jobs: JobHarness) -> None:
    jobs.create("contract-bad", "Failed")
    final = jobs.settle("contract-bad")
    assert final.status in FAILED_STATUSES and final.terminal
    assert final.error == jobs.failure_message
    assert jobs.backend.find_job("contract-bad").status == final.status


def test_metrics_and_logs_have_the_contract_types(jobs: JobHarness) -> None:
    jobs.create("contract-m", "Completed")
    jobs.settle("contract-m")
    points = jobs.backend.job_metrics("contract-m")
    assert isinstance(points, list)
    for p in points:
        assert isinstance(p, MetricPoint) and p.name in ("train_loss", "eval_loss")
        assert isinstance(p.step, int) and isinstance(p.value, float)
    assert points == sorted(points, key=lambda p: (p.name, p.step))
    logs = list(jobs.backend.job_logs("contract-m"))
    for item in logs:
        name, text = item
        assert isinstance(name, str) and name and isinstance(text, str)
    if jobs.trained:
        assert {p.name for p in points} >= {"train_loss"} and logs
