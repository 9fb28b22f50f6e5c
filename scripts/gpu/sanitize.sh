#!/usr/bin/env bash
# compute-sanitizer (memcheck, then racecheck) over the conformance suite on
# the cuda plugin, on the lent GPU machine, from the repo root, over
# build/gpu-bundle (scripts/gpu/bundle.sh). Prints each tool's summary line.
set -uo pipefail
bundle="${TESSERA_BUNDLE:-build/gpu-bundle}"
out="${OUT:-/tmp/tessera-gpu-out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
sanitizer="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
rc=0
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool (conformance, cuda plugin${1:+, filter $1})"
  timeout 260 "$sanitizer" --tool "$tool" --error-exitcode 9 \
    "$bundle/bin/tessera-conformance" --plugin cuda --plugin-path "$PWD/$bundle/lib/tessera/plugins" \
    ${1:+--filter "$1"} > "$out/sanitize-$tool.txt" 2>&1
  r=$?
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed, .* failed" "$out/sanitize-$tool.txt" | tail -3
  echo "$tool exit $r"
  [ $r -eq 0 ] || rc=1
done
exit $rc
