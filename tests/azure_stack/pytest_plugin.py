"""Pytest fixtures for the offline Azure stack.

- ``azure_stack`` (session): the stack, started once per test session (per xdist worker), torn down
  at the end even when tests fail; Azurite is killed with it.
- ``stack`` (function): the same stack, ``reset()`` to the default seed before the test, with the
  environment applied (``monkeypatch``), and checked after the test: no request tried to leave.

Import both into a conftest: ``from tests.azure_stack.pytest_plugin import azure_stack, stack``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from .azurite import AzuriteMissing, find_binary
from .stack import AzureStack


def _azurite_or_skip() -> bool:
    try:
        find_binary()
        return True
    except AzuriteMissing as exc:
        if os.environ.get("PHI3FT_ALLOW_NO_AZURITE") == "1":
            pytest.skip(f"offline Azure stack needs Azurite and PHI3FT_ALLOW_NO_AZURITE=1: {exc}")
        pytest.fail(str(exc), pytrace=False)
    return False


@pytest.fixture(scope="session")
def azure_stack() -> Iterator[AzureStack]:
    _azurite_or_skip()
    t0 = time.monotonic()
    s = AzureStack().start()
    s.startup_seconds = time.monotonic() - t0
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def stack(
    azure_stack: AzureStack, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[AzureStack]:
    azure_stack.reset()
    azure_stack.apply_env(monkeypatch)
    yield azure_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n--- offline Azure stack: request log ---\n" + azure_stack.requests.format(last=80))
        if azure_stack.server_errors:
            print("--- fake server errors ---\n" + "\n".join(azure_stack.server_errors))
    azure_stack.assert_no_escapes()
    azure_stack.assert_no_server_errors()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
