#!/usr/bin/env bash
# Quick start 1: build Tessera and run its main job on the CPU backend.
# Today that is plugin discovery and device enumeration (`tessera plugins
# list`) and the IR checker on the examples; it grows into compile-and-run as
# the pipeline lands.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/configure-build.sh"
tessera="$root/build/bin/tessera"
echo
echo "\$ tessera version"
"$tessera" version
echo
echo "\$ tessera plugins list"
"$tessera" plugins list
if "$tessera" --help | grep -q "^  check"; then
  for example in "$root"/docs/examples/*.tsr; do
    [[ -e "$example" ]] || continue
    case "$example" in *broken*) continue ;; esac
    echo
    echo "\$ tessera check docs/examples/$(basename "$example")"
    "$tessera" check "$example"
  done
fi
