#!/usr/bin/env bash
# The one test command (README, .ci/run and .github/workflows/ci.yml all call it).
# Installs everything the tests need into ignored folders of this checkout, then runs
# ruff, ruff format --check, mypy, the package check (sdist + wheel install into a fresh venv) and
# pytest, in parallel over PHI3FT_TEST_WORKERS processes (pytest-xdist; default 4: most tests wait on
# the offline Azure stack or a subprocess, so 4 workers keep 2 cores busy). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${PHI3FT_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# torch FIRST, pinned to the CPU build this machine type carries (/opt/wheels): letting the train extra
# resolve torch on its own pulls a multi-GB CUDA build. Elsewhere set PHI3FT_TORCH_INDEX, e.g.
# https://download.pytorch.org/whl/cpu. The extra's range (torch>=2.4) then keeps it: pip does not upgrade.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" \
  ${PHI3FT_TORCH_INDEX:+--index-url "$PHI3FT_TORCH_INDEX"}
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,train]"

# Test-only tools that are not Python packages (Azurite for the offline Azure stack, ...).
for step in scripts/install-*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done

echo "== ruff check"; "$VENV/bin/ruff" check src tests benchmarks
echo "== ruff format --check"; "$VENV/bin/ruff" format --check src tests benchmarks
echo "== mypy"; "$VENV/bin/mypy"
echo "== package (sdist + wheel, fresh venv, sdist install)"; bash scripts/check-package.sh "$VENV/bin/python"
WORKERS=${PHI3FT_TEST_WORKERS:-4}
echo "== pytest ($WORKERS workers)"
exec "$VENV/bin/python" -m pytest -n "$WORKERS" --dist worksteal "$@"
