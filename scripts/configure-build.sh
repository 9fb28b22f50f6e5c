#!/usr/bin/env bash
# Configures and builds Tessera in build/ (shared by demo.sh and test.sh).
# Extra arguments go to the configure step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/install-deps.sh"
cmake --preset default "$@" >/dev/null
cmake --build --preset default
