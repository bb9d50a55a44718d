#!/usr/bin/env bash
# Placeholder until the services land: migrations only.
set -euo pipefail
"$CARGO_TARGET_DIR/debug/rootcause" migrate
