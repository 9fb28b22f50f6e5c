#!/usr/bin/env bash
# abidiff check of libtessera.so against abi/baseline/libtessera.abi
# (abigail-tools). Usage: abi-baseline.sh {check|update} path/to/libtessera.so
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
baseline="$root/abi/baseline/libtessera.abi"
mode="$1" lib="$2"
case "$mode" in
  update)
    abidw --headers-dir "$root/abi/include/tessera" --drop-private-types --exported-interfaces-only --drop-undefined-syms --no-show-locs --no-comp-dir-path --no-corpus-path --out-file "$baseline" "$lib"
    echo "wrote $baseline" ;;
  check)
    # abidiff exit status is a bit field: 4 = ABI change, 8 = incompatible change.
    set +e
    abidiff --exported-interfaces-only --drop-private-types --headers-dir2 "$root/abi/include/tessera" "$baseline" "$lib"
    rc=$?
    set -e
    if (( rc & 8 )); then echo "abidiff: incompatible ABI change"; exit 1; fi
    if (( rc & 1 || rc & 2 )); then echo "abidiff: tool error ($rc)"; exit 1; fi
    if (( rc & 4 )); then echo "abidiff: compatible additions only"; fi
    echo "abidiff: OK" ;;
  *) echo "usage: $0 {check|update} libtessera.so" >&2; exit 2 ;;
esac
