"""End-to-end tests run the real Azure SDK clients against the offline Azure stack (tests/azure_stack)."""

from __future__ import annotations

from tests.azure_stack.pytest_plugin import azure_stack, pytest_runtest_makereport, stack

__all__ = ["azure_stack", "pytest_runtest_makereport", "stack"]
