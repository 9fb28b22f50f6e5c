#!/usr/bin/env bash
# Packs what the lent GPU machine needs to run Tessera built here into
# build/gpu-bundle (carried by the device tool): the CLI, libtessera, the
# plugins and manifests, the C API test binary, the conformance suite, the
# CUDA benchmark driver, and the non-system shared libraries they need (the
# GPU machine is Ubuntu 24.04 without our -dev packages). Must stay < 60 MiB.
#
# Builds the targets it packs first (-j2) unless TESSERA_BUNDLE_NO_BUILD=1.
# TESSERA_BUILD_DIR picks the build tree (default: build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${TESSERA_BUILD_DIR:-$root/build}"
out="${TESSERA_BUNDLE_OUT:-$root/build/gpu-bundle}"
if [ "${TESSERA_BUNDLE_NO_BUILD:-0}" != 1 ]; then
  cmake --build "$build" -j2 --target tessera-cli tessera-api-tests tessera-conformance \
    tessera-backend-cuda tessera-cuda-bench tessera-fault-plugins
fi
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib/tessera/plugins" "$out/tests"
cp "$build/bin/tessera" "$build/bin/tessera-conformance" "$build/bin/tessera-cuda-bench" "$out/bin/"
cp -P "$build"/lib/libtessera.so* "$out/lib/"
cp "$build"/lib/tessera/plugins/*.so "$build"/lib/tessera/plugins/*.yaml "$out/lib/tessera/plugins/"
cp "$build/bin/tessera-api-tests" "$out/tests/"
cp -r "$build/tests/fault_plugins/dir" "$out/tests/fault_plugins"
# Libraries absent from the GPU image: everything the bundle links that is
# not part of the base system. The cpu plugin's libLLVM (> 100 MiB, with ICU
# behind it) stays behind: that plugin then reports a load error there.
base='^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64|libz|linux-vdso)\.so'
deps="$(find "$out" -type f \( -name "*.so*" -o -path "*/bin/*" -o -path "*/tests/*" \) \
    ! -name "libtessera-backend-cpu.so" -print0 |
  { xargs -0 -n1 ldd 2>/dev/null || true; } | awk '/=> \//{print $1" "$3}' | sort -u)"
echo "$deps" | while read -r name path; do
    [ -n "$name" ] || continue
    [[ "$name" =~ $base ]] && continue
    [[ "$name" == libLLVM* ]] && continue
    [[ "$name" == libtessera* ]] && continue
    [ -e "$out/lib/$name" ] || cp -L "$path" "$out/lib/$name"
  done
# Debug info is not needed there and would not fit the transfer limit.
find "$out" -type f \( -name "*.so*" -o -path "*/bin/*" -o -path "*/tests/*" \) -exec strip --strip-debug {} + 2>/dev/null || true
# A cpu plugin with LLVM linked in statically (~55 MiB) does not fit either;
# the GPU checks do not use it.
cpu="$out/lib/tessera/plugins/libtessera-backend-cpu.so"
if [ -f "$cpu" ] && [ "$(du -m "$cpu" | cut -f1)" -ge 20 ]; then
  rm -f "$cpu" "${cpu%.so}.yaml"
  echo "bundle.sh: left out the cpu plugin ($(du -m "$build/lib/tessera/plugins/libtessera-backend-cpu.so" | cut -f1) MiB)"
fi
du -sh "$out"
size=$(du -sm "$out" | cut -f1)
if [ "$size" -ge 60 ]; then
  echo "bundle.sh: the bundle is ${size} MiB, over the 60 MiB limit" >&2
  exit 1
fi
