#!/usr/bin/env bash
# Quick start 1: build Tessera and run its main job on the CPU backend:
# compile docs/examples/transformer_block.tsr through the whole pipeline with
# the cpu plugin (found at run time), run it on random inputs, check it
# against the float64 reference interpreter and print the error and the time.
# Sizes: batch 1, sequence 128, width 512, 8 heads (override with
# TESSERA_DEMO_BIND, e.g. TESSERA_DEMO_BIND=B=4,S=256,D=512,H=8).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/configure-build.sh"
tessera="$root/build/bin/tessera"
bind="${TESSERA_DEMO_BIND:-B=1,S=128,D=512,H=8}"
echo
echo "\$ tessera plugins list"
"$tessera" plugins list
echo
echo "\$ tessera run docs/examples/transformer_block.tsr --check --bind $bind --repeat 3"
"$tessera" run "$root/docs/examples/transformer_block.tsr" --check --bind "$bind" --repeat 3
