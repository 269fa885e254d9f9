#!/usr/bin/env bash
# Runs the PyTorch reference on the texts `patroli bench --texts-out FILE` used, with the same
# encoder weights (models/base/multilingual-e5-small), prefix, truncation and batching rule,
# and prints the same JSON lines. Creates its own venv from PyPI on first use.
#
#   benches/reference/run.sh TEXTS.jsonl [--threads 1,2] [--max-len 64]
#   benches/reference/run.sh --mix OUT.jsonl [--posts 1000]   (the length mix: mix.py)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
    echo "creating $venv from PyPI (torch is large: a few minutes)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/requirements.txt"
fi
if [ "${1:-}" = "--mix" ]; then
    shift
    exec "$venv/bin/python" "$here/mix.py" "$@"
fi
exec "$venv/bin/python" "$here/reference.py" "$@"
