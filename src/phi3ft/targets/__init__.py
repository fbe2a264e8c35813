"""Targets: where fine-tunes run, one package each (``azureml/``, ``local/``), and the registry below.

Only ``targets.azureml.sdk`` imports ``azure.*`` (lazily). A target's ``steps`` module is what ``phi3ft plan``
prints and ``submit`` runs; :func:`target_of` picks it for a spec (the one place outside the spec loader that
knows which backends exist).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from phi3ft.config import Fingerprint, JobSpec
    from phi3ft.steps import Step, SubmitEvent, SubmitOptions


class Target(Protocol):
    """What a target's ``steps`` module provides (``targets/azureml/steps.py``, ``targets/local/steps.py``)."""

    def before_validate(self, spec: JobSpec) -> None: ...
    def preflight(
        self, spec: JobSpec, backend: Any, opts: SubmitOptions, run_checks: Callable[..., Any] | None
    ) -> Iterator[SubmitEvent]: ...
    def submit_steps(self, spec: JobSpec, fp: Fingerprint) -> list[Step]: ...
    def after_steps(self, spec: JobSpec, fp: Fingerprint) -> list[Step]: ...


def target_of(spec: JobSpec) -> Target:
    """The target whose steps run ``spec``: the local trainer, or Azure ML (serverless and cluster)."""
    module: ModuleType
    if spec.runs_locally:
        from phi3ft.targets.local import steps as module
    else:
        from phi3ft.targets.azureml import steps as module
    return cast("Target", module)
