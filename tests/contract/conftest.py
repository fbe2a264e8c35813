"""Backend-contract fixtures: ``jobs`` and ``endpoints`` harnesses, one per backend (see backends.py).

The ``azureml`` params run the real SDK against the offline Azure stack, so they carry the ``e2e`` marker
(``-m "not e2e"`` leaves the fakes' runs); the stack starts only when such a param runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.azure_stack.pytest_plugin import azure_stack, pytest_runtest_makereport, stack
from tests.contract import backends

#: Backends that keep the whole job contract (create, get, find, list, cancel, logs, metrics).
JOB_BACKENDS = [
    pytest.param("azureml", marks=pytest.mark.e2e),
    pytest.param("azureml-compute", marks=pytest.mark.e2e),
    "fake-jobs",
    "local",
]
#: ... and those that keep its teardown subset (find_job, cancel_job: what ``delete`` uses).
TEARDOWN_BACKENDS = [*JOB_BACKENDS, "fake-endpoints"]
ENDPOINT_BACKENDS = [pytest.param("azureml", marks=pytest.mark.e2e), "fake-endpoints"]


def _job_harness(request: pytest.FixtureRequest, tmp_path: Path) -> backends.JobHarness:
    kind = request.param
    if kind == "azureml":
        return backends.azureml_jobs(request.getfixturevalue("stack"), tmp_path)
    if kind == "azureml-compute":
        return backends.azureml_compute_jobs(request.getfixturevalue("stack"), tmp_path)
    if kind == "fake-jobs":
        return backends.fake_jobs(tmp_path)
    if kind == "local":
        return backends.local_jobs(tmp_path)
    return backends.fake_endpoint_jobs()


@pytest.fixture(params=JOB_BACKENDS)
def jobs(request: pytest.FixtureRequest, tmp_path: Path) -> backends.JobHarness:
    return _job_harness(request, tmp_path)


@pytest.fixture(params=TEARDOWN_BACKENDS)
def teardown_jobs(request: pytest.FixtureRequest, tmp_path: Path) -> backends.JobHarness:
    return _job_harness(request, tmp_path)


@pytest.fixture(params=ENDPOINT_BACKENDS)
def endpoints(request: pytest.FixtureRequest) -> backends.EndpointHarness:
    if request.param == "azureml":
        return backends.azureml_endpoints(request.getfixturevalue("stack"))
    return backends.fake_endpoints()


__all__ = ["azure_stack", "pytest_runtest_makereport", "stack"]
