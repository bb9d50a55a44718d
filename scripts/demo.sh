#!/usr/bin/env bash
# `make demo`: the main job end to end on this machine.
#   1. apply the database migrations (`rootcause migrate`);
#   2. diagnose one shared incident bundle offline (`rootcause diagnose`):
#      ranked root-cause hypotheses with confidence, evidence (each with the
#      query that reproduces it) and remediation steps;
#   3. start the four services, print their health, stop them
#      (`scripts/demo-services.sh`).
#
# Expects `cargo build --workspace --bins` done (`make demo` does it).
#
#   ./scripts/demo.sh
#   SCENARIO=checkout-payment-failures ./scripts/demo.sh
#   BUNDLE=/path/to/bundle ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rootcause}
SHARED=${ROOTCAUSE_SHARED_DIR:-$(cd .. && pwd)/shared}
SCENARIO=${SCENARIO:-cart-errors-after-release}
export BIN_DIR DATABASE_URL

say() { printf '\n== %s\n' "$*"; }
[ -x "$BIN_DIR/rootcause" ] || { echo "missing $BIN_DIR/rootcause: run cargo build --workspace --bins first" >&2; exit 2; }

say "migrations"
"$BIN_DIR/rootcause" migrate --database-url "$DATABASE_URL"

# The bundle: $BUNDLE, else $SCENARIO under the shared scenarios, else the
# first shared bundle there is.
if [ -z "${BUNDLE:-}" ]; then
  BUNDLE="$SHARED/scenarios/$SCENARIO"
  if [ ! -f "$BUNDLE/incident.json" ]; then
    BUNDLE=$(find "$SHARED/scenarios" -mindepth 2 -maxdepth 2 -name incident.json -printf '%h\n' 2>/dev/null | sort | head -n 1)
  fi
fi
[ -n "$BUNDLE" ] && [ -f "$BUNDLE/incident.json" ] || { echo "no incident bundle found (set BUNDLE or ROOTCAUSE_SHARED_DIR)" >&2; exit 2; }

say "offline diagnosis of $BUNDLE"
"$BIN_DIR/rootcause" diagnose --bundle "$BUNDLE" --top 3

say "services"
./scripts/demo-services.sh
