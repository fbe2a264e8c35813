"""Shared fixtures. Tests never reach the internet: pytest-socket allows loopback only (see pyproject)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several xdist workers share the cores: one BLAS/OpenMP thread each instead of one per core each
    # (set before anything imports torch; subprocesses inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

#: Folders whose tests run longest (trainer runs, whole life cycles): collected first, so that under
#: pytest-xdist they start at once and the short tests fill the other workers around them.
_LONG_FIRST = ("tests/train/", "tests/e2e/")
#: Real tokenizer data files, committed as test fixtures (sources, sha256, licence: its README.md).
TOKENIZERS = REPO / "tests" / "fixtures" / "tokenizers"
PHI3_TOKENIZER_DIR = TOKENIZERS / "phi3" / "phi-3-mini-4k-instruct"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: not item.nodeid.startswith(_LONG_FIRST))


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub downloads, no leaked Azure cloud settings, no user state dir."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("AZUREML_CURRENT_CLOUD", "ARM_CLOUD_METADATA_URL", "PHI3FT_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def phi3_tokenizer_dir() -> Path:
    """The committed Phi-3 tokenizer fixture; a missing one fails the test (it never skips)."""
    if not (PHI3_TOKENIZER_DIR / "tokenizer.json").is_file():
        pytest.fail(f"test fixture missing: {PHI3_TOKENIZER_DIR}/tokenizer.json (see {TOKENIZERS}/README.md)")
    return PHI3_TOKENIZER_DIR


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    """Run the real Typer app in-process with separate stdout/stderr; returns (code, stdout, stderr)."""
    from typer.testing import CliRunner

    from phi3ft.cli import app
    from phi3ft.cli.context import AppContext
    from phi3ft.output import Output

    def _run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None, ctx: AppContext | None = None
    ) -> tuple[int, str, str]:
        runner = CliRunner()
        full_env = {**os.environ, **(env or {})}
        obj = ctx or AppContext(output=Output(interactive=False), env=full_env, cwd=Path.cwd())
        result = runner.invoke(app, list(args), obj=obj, env=env, input=input, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return _run


__all__ = ["PHI3_TOKENIZER_DIR", "REPO", "TOKENIZERS", "io"]
