# Rootcause developer entry points. `make demo` and `make test` are the two
# commands of the README; both bring up what they need first.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/rootcause-target
SHARED ?= $(shell for d in ../shared; do [ -d $$d/scenarios ] && cd $$d && pwd && break; done)
export ROOTCAUSE_SHARED_DIR ?= $(SHARED)

.PHONY: demo test services fmt lint migrate build

services:
	./scripts/services-up.sh

build:
	cargo build --workspace --bins

## The main job: migrations, the four services, their health, a diagnosis
## of an example bundle from examples/ (`make demo EXAMPLE=seat-map-oom-night`).
demo: services build
	EXAMPLE="$(EXAMPLE)" ./scripts/demo.sh

## The whole test suite against the local PostgreSQL, Redis and RabbitMQ.
test: services
	cargo nextest run --workspace --no-fail-fast
	cargo test --workspace --doc

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

migrate: build
	$(CARGO_TARGET_DIR)/debug/rootcause migrate
