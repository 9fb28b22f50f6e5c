#!/usr/bin/env bash
# Runs on the lent GPU machine from the repository root, over build/gpu-bundle
# (scripts/gpu/bundle.sh). Prints the plugin listing and runs the C API tests,
# CUDA tests included; full logs go to $OUT.
set -uo pipefail
bundle="build/gpu-bundle"
export LD_LIBRARY_PATH="$PWD/$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/nvidia-smi.txt"
echo "== tessera plugins list"
"$bundle/bin/tessera" plugins list | tee "$out/plugins-list.txt"
"$bundle/bin/tessera" plugins list --json > "$out/plugins-list.json"
python3 -c "import json,sys; d=json.load(open('$out/plugins-list.json')); print('json ok:', [(p['name'], p['state'], p['device_count']) for p in d['plugins']])"
echo "== C API tests (plugin dir = bundle)"
# The test binary has the build machine's paths compiled in; point it at the bundle.
mkdir -p /work/main/build/lib/tessera /work/main/build/tests/fault_plugins
ln -sfn "$PWD/$bundle/lib/tessera/plugins" /work/main/build/lib/tessera/plugins
ln -sfn "$PWD/$bundle/tests/fault_plugins" /work/main/build/tests/fault_plugins/dir
"$bundle/tests/tessera-api-tests" 2>&1 | tee "$out/api-tests.txt" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |INFO|FAILED  \]"
echo "== summary"
grep -E "PASSED|FAILED" "$out/api-tests.txt" | tail -3
