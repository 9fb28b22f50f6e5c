#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds against it out
# of tree: a C application with find_package(Tessera), the same with
# pkg-config, and a vendor plugin from sdk/template with the installed SDK.
# Usage: run_install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1" src="$2"
work="$(mktemp -d /tmp/tessera-install-XXXXXX)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
unset TESSERA_PLUGIN_PATH TESSERA_ADD_PLUGIN_PATH

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir="$(cd "$prefix" && ls -d lib*/libtessera.so | head -n1 | xargs dirname)"
plugindir="$prefix/$libdir/tessera/plugins"
test -f "$prefix/include/tessera/tessera.h"
test -f "$plugindir/libtessera-backend-cpu.so"
test -f "$plugindir/libtessera-backend-cpu.yaml"
test -f "$prefix/$libdir/pkgconfig/tessera.pc"
test -f "$prefix/$libdir/cmake/Tessera/TesseraConfig.cmake"

echo "== find_package(Tessera) consumer"
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer" "$plugindir"

echo "== pkg-config consumer"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
test "$(realpath "$(pkg-config --variable=plugindir tessera)")" = "$(realpath "$plugindir")"
cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer/main.c" $(pkg-config --cflags --libs tessera) \
   -Wl,-rpath,"$prefix/$libdir" -o "$work/consumer-pc"
"$work/consumer-pc" "$plugindir"

echo "== out-of-tree plugin from sdk/template against the installed SDK"
cmake -S "$src/sdk/template" -B "$work/plugin" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/plugin" >/dev/null
exports="$(nm -D --defined-only "$work/plugin/libtessera-backend-example.so" | awk '{print $3}')"
test "$exports" = "tessera_backend_get_api" || { echo "template plugin exports: $exports"; exit 1; }
TESSERA_ADD_PLUGIN_PATH="$work/plugin" "$work/consumer/consumer" "$plugindir" example

echo "== installed CLI"
"$prefix/bin/tessera" plugins list
echo "install test: OK"
