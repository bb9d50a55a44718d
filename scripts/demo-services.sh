#!/usr/bin/env bash
# Starts the four built service binaries on free ports against the local
# PostgreSQL, Redis and RabbitMQ, prints each one's /healthz and /readyz,
# then stops them with SIGTERM and reports their exit codes.
#
# Expects `cargo build --bins` done (binaries in $CARGO_TARGET_DIR/debug, or
# set BIN_DIR). Exits non-zero when a service is not ready or does not exit 0.
#
#   ./scripts/demo-services.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/rootcause ./scripts/demo-services.sh
set -euo pipefail

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rootcause}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
BUS_URL=${BUS_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
SERVICES=(gateway orchestrator agent-worker event-relay)
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

say() { printf '\n== %s\n' "$*"; }
for bin in rootcause "${SERVICES[@]}"; do
  [ -x "$BIN_DIR/$bin" ] || { echo "missing $BIN_DIR/$bin: run cargo build --bins first" >&2; exit 2; }
done

LOGS=$(mktemp -d)
declare -A PID PORT
cleanup() {
  for s in "${!PID[@]}"; do
    kill -0 "${PID[$s]}" 2>/dev/null && kill -KILL "${PID[$s]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

say "migrations ($BIN_DIR/rootcause migrate)"
"$BIN_DIR/rootcause" migrate --database-url "$DATABASE_URL"

say "starting ${SERVICES[*]} (logs in $LOGS)"
for s in "${SERVICES[@]}"; do
  # Port 0: the OS picks a free port; the service logs the one it bound.
  env ROOTCAUSE__SERVICE__HOST=127.0.0.1 \
      ROOTCAUSE__SERVICE__PORT=0 \
      ROOTCAUSE__DATABASE__URL="$DATABASE_URL" \
      ROOTCAUSE__REDIS__URL="$REDIS_URL" \
      ROOTCAUSE__BUS__URL="$BUS_URL" \
      ROOTCAUSE__TELEMETRY__LOG_FORMAT=json \
      ROOTCAUSE__SHUTDOWN__GRACE_SECS=5 \
      "$BIN_DIR/$s" >"$LOGS/$s.log" 2>&1 &
  PID[$s]=$!
done
for s in "${SERVICES[@]}"; do
  for _ in $(seq 1 100); do
    line=$(grep -m1 '"http server listening"' "$LOGS/$s.log" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "${PID[$s]}" 2>/dev/null || break
    sleep 0.1
  done
  PORT[$s]=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' <<<"${line:-}")
  if [ -z "${PORT[$s]}" ]; then
    echo "$s did not start; its output:" >&2
    cat "$LOGS/$s.log" >&2
    exit 1
  fi
  printf '%-13s pid %-7s http://127.0.0.1:%s\n' "$s" "${PID[$s]}" "${PORT[$s]}"
done

failed=0
for s in "${SERVICES[@]}"; do
  say "$s"
  base="http://127.0.0.1:${PORT[$s]}"
  printf 'GET /healthz -> '
  curl -sS -o "$LOGS/h.json" -w '%{http_code} ' "$base/healthz"; cat "$LOGS/h.json"; echo
  code=$(curl -sS -o "$LOGS/r.json" -w '%{http_code}' "$base/readyz")
  printf 'GET /readyz  -> %s ' "$code"; cat "$LOGS/r.json"; echo
  [ "$code" = 200 ] || failed=1
done

say "stopping with SIGTERM"
for s in "${SERVICES[@]}"; do kill -TERM "${PID[$s]}"; done
for s in "${SERVICES[@]}"; do
  start=$(date +%s%N)
  code=timeout
  for _ in $(seq 1 $((STOP_TIMEOUT * 20))); do
    if ! kill -0 "${PID[$s]}" 2>/dev/null; then
      wait "${PID[$s]}" && code=0 || code=$?
      break
    fi
    sleep 0.05
  done
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '%-13s exit %s (after %d ms more)\n' "$s" "$code" "$ms"
  [ "$code" = 0 ] || failed=1
  unset "PID[$s]"
done

if [ "$failed" = 0 ]; then
  say "all four services were ready and stopped cleanly"
else
  say "a service was not ready or did not exit 0 (logs: $LOGS)"
fi
exit "$failed"
