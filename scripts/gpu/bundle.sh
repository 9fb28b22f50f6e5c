#!/usr/bin/env bash
# Packs what the lent GPU machine needs to run Tessera built here into
# build/gpu-bundle (carried by the device tool): the CLI, libtessera, the
# plugins and manifests, the C API test binary, and the non-system shared
# libraries they need (the GPU machine is Ubuntu 24.04 without our -dev packages).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build"
out="$build/gpu-bundle"
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib/tessera/plugins" "$out/tests"
cp "$build/bin/tessera" "$out/bin/"
cp -P "$build"/lib/libtessera.so* "$out/lib/"
cp "$build"/lib/tessera/plugins/*.so "$build"/lib/tessera/plugins/*.yaml "$out/lib/tessera/plugins/"
cp "$build/bin/tessera-api-tests" "$out/tests/"
cp -r "$build/tests/fault_plugins/dir" "$out/tests/fault_plugins"
# Debian libraries absent from the GPU image.
for lib in libyaml-cpp.so.0.7; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$out/lib/"
done
# Debug info is not needed there and would not fit the transfer limit.
find "$out" -type f \( -name "*.so*" -o -path "*/bin/*" -o -path "*/tests/*" \) -exec strip --strip-debug {} + 2>/dev/null || true
du -sh "$out"
