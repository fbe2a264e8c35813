#!/usr/bin/env bash
# Installs the pinned Azurite (Azure Storage emulator) used by the offline Azure stack
# (tests/azure_stack/) into the ignored folder .tools/azurite/, from the committed lockfile
# tests/azure_stack/npm/package-lock.json. Run by scripts/test.sh; idempotent: a second run
# with an unchanged lockfile returns at once.
#
# Without npm this fails (the e2e tests need Azurite), unless PHI3FT_ALLOW_NO_AZURITE=1, in which
# case it only warns and the e2e tests skip with that reason.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC="$ROOT/tests/azure_stack/npm"
DEST="$ROOT/.tools/azurite"
STAMP="$DEST/.lock-sha256"
BIN="$DEST/node_modules/.bin/azurite-blob"

want=$(sha256sum "$SRC/package-lock.json" | cut -d' ' -f1)
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ]; then
  echo "azurite: up to date ($DEST)"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "${PHI3FT_ALLOW_NO_AZURITE:-}" = "1" ]; then
    echo "azurite: WARNING npm not found; PHI3FT_ALLOW_NO_AZURITE=1 so the e2e tests will be skipped" >&2
    exit 0
  fi
  echo "azurite: ERROR npm not found. Install Node.js >= 20 with npm (the e2e tests need Azurite)," >&2
  echo "         or set PHI3FT_ALLOW_NO_AZURITE=1 to skip the e2e tests locally." >&2
  exit 1
fi

echo "azurite: installing from tests/azure_stack/npm/package-lock.json into $DEST (~40 s, ~370 MB)"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
# npm runs from a neutral working directory: with a cwd that holds a folder named "azurite",
# npm can resolve the package name as that folder and silently install nothing.
neutral=$(mktemp -d)
trap 'rm -rf "$neutral"' EXIT
(cd "$neutral" && npm ci --prefix "$DEST" --no-audit --no-fund --ignore-scripts --loglevel=error)
if [ ! -x "$BIN" ]; then
  echo "azurite: ERROR npm finished but $BIN is missing" >&2
  exit 1
fi
echo "$want" > "$STAMP"
echo "azurite: installed $("$DEST/node_modules/.bin/azurite" --version 2>/dev/null || echo 3.37.0)"
