#!/usr/bin/env bash
# The one test command (README, .ci/run and .github/workflows/ci.yml all call it).
# Installs everything the tests need into ignored folders of this checkout, then runs
# ruff, ruff format --check, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${PHI3FT_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"

# Test-only tools that are not Python packages (Azurite for the offline Azure stack, ...).
for step in scripts/install-*.sh; do
  [ -e "$step" ] || continue
  bash "$step"
done

echo "== ruff check"; "$VENV/bin/ruff" check src tests benchmarks
echo "== ruff format --check"; "$VENV/bin/ruff" format --check src tests benchmarks
echo "== mypy"; "$VENV/bin/mypy"
echo "== pytest"
exec "$VENV/bin/python" -m pytest "$@"
