#!/usr/bin/env bash
# One command: generate the synthetic dataset (first run) and benchmark phi3ft validate against the baselines.
# Extra arguments go to the benchmark, e.g. `bash benchmarks/run.sh --size-mb 1024 --steps c,d`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -m benchmarks.validate_bench "$@"
