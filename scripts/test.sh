#!/usr/bin/env bash
# Quick start 2: build Tessera (warnings as errors) and run every test with CTest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/configure-build.sh" -DTESSERA_WERROR=ON
cd "$root"
ctest --preset default
