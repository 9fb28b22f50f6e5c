#!/usr/bin/env bash
# Installs what Tessera needs to build and test on Debian 12 (bookworm).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config binutils
  libyaml-cpp-dev libdlpack-dev nlohmann-json3-dev libcli11-dev libsqlite3-dev libffi-dev
  libgtest-dev libgmock-dev
  llvm-19-dev llvm-19-tools        # LLVM 19 (CPU codegen), FileCheck and lit
  libdnnl-dev                      # oneDNN: the CPU plugin's library choice for matmul
  abigail-tools                    # abidw/abidiff for the ABI baseline
  libonnx-dev libprotobuf-dev libonnx-testdata   # ONNX import and its backend test data
  python3 python3-numpy python3-pytest python3-venv
  libopenblas0-pthread                           # NumPy's BLAS: the GEMM benchmark's peer
  python3-torch python3-sklearn python3-matplotlib # PyTorch references, digits data, plots
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
