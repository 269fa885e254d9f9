#!/usr/bin/env bash
# Checks the crate layout the serving path relies on: the inference crate
# (what the classifier service links) reaches no training code and none of
# the dependencies only training, tests or benchmarks use. A serving binary
# then carries no trainer, and an attacker who gets code running in the
# classifier finds no tooling that rewrites a model directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Crates inference must not reach at all: the training crate, the wire
# contracts (the classifier maps them), and what only tests, benchmarks and
# examples use.
nowhere=(patroli-training patroli-contracts tracing-subscriber criterion proptest)
# Crates inference must not depend on itself: rand (training's shuffles and
# initialisation) and tempfile (tests) also arrive through candle, so only
# a direct dependency is a layout error.
not_direct=(rand tempfile)

status=0
check() { # $1: tree depth flag ("" for all), $2...: names
    local depth=$1 tree name
    shift
    tree=$(cargo tree --locked -p patroli-inference -e normal $depth --prefix none --format '{p}')
    for name in "$@"; do
        if grep -qE "^${name} v" <<<"$tree"; then
            echo "layout: patroli-inference depends on ${name}${depth:+ directly}:" >&2
            [[ -n $depth ]] || cargo tree --locked -p patroli-inference -e normal -i "$name" >&2 || true
            status=1
        fi
    done
}
check "" "${nowhere[@]}"
check "--depth 1" "${not_direct[@]}"
# The classifier service scores through inference alone.
if cargo tree --locked -p patroli-classifier -e normal --prefix none --format '{p}' \
        | grep -qE '^patroli-training v'; then
    echo "layout: patroli-classifier depends on patroli-training" >&2
    cargo tree --locked -p patroli-classifier -e normal -i patroli-training >&2 || true
    status=1
fi
[[ $status == 0 ]] && echo "layout: patroli-inference reaches no training crate or training-only dependency"

# One idea per file: a source file past LIMIT lines (not counting a trailing
# `#[cfg(test)]` module: unit tests live beside what they test) states in its
# first ten lines, after `size:`, why it is still one idea.
LIMIT=400
long=0
while IFS= read -r file; do
    code=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$file")
    if (( code > LIMIT )) && ! head -n 10 "$file" | grep -q 'size:'; then
        echo "layout: $file has $code lines (limit $LIMIT): split it, or say why it is one idea in a 'size:' line at its top" >&2
        long=1
    fi
done < <(git ls-files '*.rs' '*.sh' '*.py' '*.js' '*.mjs')
if [[ $long == 0 ]]; then
    echo "layout: every source file is within $LIMIT lines or says why not"
else
    status=1
fi
exit $status
