#!/usr/bin/env bash
# Builds phi3ft's sdist and wheel with `python -m build`, installs the wheel into a fresh virtualenv and runs
# `phi3ft validate examples/data/train.jsonl` from it; then installs the sdist with no C compiler (CC points at
# `false`: phi3ft is pure Python, so a source install needs none) and checks the same result.
# Run by scripts/test.sh (not by pytest: it needs the package registry, pytest allows loopback only).
# Usage: bash scripts/check-package.sh [PYTHON]   (default: .venv/bin/python, which must have `build`)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${1:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "package: building sdist + wheel into $WORK/dist"
"$PY" -m build -q --sdist --wheel --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
wheel=$(ls "$WORK"/dist/phi3ft-*.whl)
sdist=$(ls "$WORK"/dist/phi3ft-*.tar.gz)
echo "package: built $(basename "$wheel") and $(basename "$sdist")"
# The sdist must carry what a source install needs, and nothing from outside the repository.
if tar -tzf "$sdist" | grep -q 'shared/'; then echo "package: ERROR the sdist holds a shared/ path" >&2; exit 1; fi

"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install -q --disable-pip-version-check "$wheel" >"$WORK/wheel.log" 2>&1 \
  || { cat "$WORK/wheel.log" >&2; exit 1; }
# Run from an empty folder so nothing in the checkout is imported by accident.
mkdir "$WORK/run"
check() {
  local label=$1 out rc
  set +e
  out=$(cd "$WORK/run" && HF_HUB_OFFLINE=1 "$V/phi3ft" validate "$ROOT/examples/data/train.jsonl" 2>&1)
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "package: ERROR phi3ft validate from the $label exited $rc:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "package: $label: phi3ft validate examples/data/train.jsonl -> exit 0 ($(echo "$out" | grep -m1 -E 'VALID|valid' || true))"
}
check wheel
# Source install with no usable C compiler: phi3ft has no native code, the install must still succeed.
CC=false CXX=false LDSHARED=false "$V/python" -m pip install -q --disable-pip-version-check --force-reinstall \
  --no-deps --no-binary phi3ft "$sdist" >"$WORK/sdist.log" 2>&1 || { cat "$WORK/sdist.log" >&2; exit 1; }
check "sdist installed without a C compiler"
