#!/usr/bin/env bash
# schemathesis (PyPI, pinned) in its own virtualenv under the git-ignored tools folder, for
# tests/gateway_openapi.rs, which checks the committed OpenAPI document against the running
# gateway. Idempotent; prints the path of the `schemathesis` executable.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${PATROLI_TOOLS_DIR:-$root/.local}
version=4.32.5
venv=$tools/schemathesis-$version
# Scripts in a venv name their interpreter by absolute path, so the venv is built where it
# stays; the marker, written last, tells a complete install from an interrupted one.
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/schemathesis"
