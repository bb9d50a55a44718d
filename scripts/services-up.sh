#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on their standard local
# ports, starting each one that does not, and installs the tools tests need
# (diesel CLI for the schema check, promtool/prometheus for the live
# Prometheus test). Safe to run repeatedly.
set -euo pipefail
log() { printf '[services] %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$name did not come up"; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
fi
log "PostgreSQL up"

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
log "Redis up"

# Every rabbitmqctl call is bounded: a wedged broker (seen here: it accepted
# TCP but never answered the AMQP handshake, and `rabbitmqctl status` hung)
# must not hang the demo or CI.
rabbit_ok() { timeout 15 rabbitmqctl -q status >/dev/null 2>&1; }
if ! rabbit_ok; then
  if pgrep -u rabbitmq beam.smp >/dev/null 2>&1; then
    log "RabbitMQ runs but does not answer within 15 s: restarting it"
    pkill -9 -u rabbitmq beam.smp || true
    pkill -9 -u rabbitmq epmd || true
    sleep 2
  fi
  log "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_for RabbitMQ rabbit_ok
fi
# A previous run may have left the app stopped (the restart test stops it).
timeout 15 rabbitmqctl -q start_app >/dev/null 2>&1 || true
wait_for "RabbitMQ port" bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
log "RabbitMQ up"

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[ -f /usr/include/postgresql/libpq-fe.h ] || need_apt+=(libpq-dev)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v git >/dev/null 2>&1 || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The distribution starts prometheus as a service on :9090 when installed; the
# tests start their own on free ports.
if command -v diesel >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/diesel" ]; then
  log "diesel CLI present"
else
  log "installing diesel CLI (once; kept in ~/.cargo/bin)"
  cargo install diesel_cli --no-default-features --features postgres --locked --quiet
fi
