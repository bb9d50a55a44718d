#!/usr/bin/env bash
# `make demo`: the main job end to end on this machine.
#   1. apply the database migrations (`rootcause migrate`);
#   2. diagnose one of the repository's example bundles offline
#      (`rootcause diagnose --bundle examples/<name>`): ranked root-cause
#      hypotheses with confidence, evidence (each with the query that
#      reproduces it) and remediation steps;
#   3. start the four services, print their health, stop them
#      (`scripts/demo-services.sh`).
#
# Expects `cargo build --workspace --bins` done (`make demo` does it). Needs
# nothing outside the clone: the bundles are in examples/ (docs/examples.md).
#
#   ./scripts/demo.sh                               # examples/fare-rounding-deploy
#   EXAMPLE=seat-map-oom-night ./scripts/demo.sh    # another example
#   BUNDLE=/path/to/bundle ./scripts/demo.sh        # any incident bundle
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rootcause}
EXAMPLE=${EXAMPLE:-fare-rounding-deploy}
export BIN_DIR DATABASE_URL

say() { printf '\n== %s\n' "$*"; }
[ -x "$BIN_DIR/rootcause" ] || { echo "missing $BIN_DIR/rootcause: run cargo build --workspace --bins first" >&2; exit 2; }

# The bundle: $BUNDLE when set, else examples/$EXAMPLE; chosen first, so a
# wrong EXAMPLE fails before anything runs.
if [ -z "${BUNDLE:-}" ]; then
  BUNDLE="examples/$EXAMPLE"
  if [ ! -f "$BUNDLE/incident.json" ]; then
    known=$(find examples -mindepth 2 -maxdepth 2 -name incident.json -printf '%h\n' 2>/dev/null | sed 's|^examples/||' | sort | tr '\n' ' ')
    echo "no example bundle examples/$EXAMPLE; set EXAMPLE to one of: ${known:-none (regenerate them: cargo run -p rootcause-scenario-gen -- --out examples)}" >&2
    exit 2
  fi
fi
[ -f "$BUNDLE/incident.json" ] || { echo "$BUNDLE is not an incident bundle (no incident.json); see docs/examples.md" >&2; exit 2; }

say "migrations"
"$BIN_DIR/rootcause" migrate --database-url "$DATABASE_URL"

say "offline diagnosis of $BUNDLE"
"$BIN_DIR/rootcause" diagnose --bundle "$BUNDLE" --top 3

say "services"
./scripts/demo-services.sh
