#!/usr/bin/env bash
# The CUDA backend on the lent GPU machine, in one call, from the repo root,
# over build/gpu-bundle (made here by scripts/gpu/bundle.sh):
#   1. device and toolchain facts (nvidia-smi, NVRTC the plugin finds);
#   (the benchmark of 3. runs first, so that a call cut short by its time
#   limit still brings back the timings; the table is printed last)
#   2. the conformance suite on the cuda plugin (every op, fused patterns,
#      serialization, error paths; the MLP and transformer block examples);
#   2b. the matmul cases again with cuBLASLt forced where it applies
#      (TESSERA_CUDA_LIBRARY=cublaslt: direct epilogues and generated _epi);
#   3. numerics against PyTorch on random inputs and timing with CUDA events
#      (warm-up, median) of Tessera's kernels and their PyTorch peers:
#      torch.matmul (cuBLAS) bf16 GEMM 4096^3 and 8192^3 (the default
#      schedule, cuBLASLt forced, the generated wgmma and mma.sync kernels
#      forced, a fused GELU on both paths), SDPA (B4 H16 S4096; D 128 and
#      64, causal and not; the flash kernel on wgmma and on mma.sync),
#      layer_norm / rms_norm / softmax 16384x4096 bf16, device-to-device copy.
#   3b. ("matmul", after "bench") a compiled bf16 matmul (default schedule:
#      the cost model picks cuBLASLt) against torch.matmul, timed INTERLEAVED
#      in one process: rounds of N back-to-back calls per side between CUDA
#      events, the first side alternating, so clock/thermal drift hits both
#      alike; 4096^3, 8192^3 and the transformer block's projections
#      (8192x2048x2048, 8192x8192x2048, 8192x2048x8192); the median of the
#      per-round ratios against the 0.98x goal (scripts/gpu/matmul_vs_torch.py).
# Every step's failure is printed and the next step still runs; full logs go
# to $OUT; the summary and ONE table are printed last. Exit status: 0 only if
# every step passed.
#   5. the transformer block end to end (bf16) against PyTorch eager
#      (scripts/gpu/transformer_block_gpu.py).
#   6. (optional, "search") schedule search on the GPU: the cost model's
#      Spearman over the whole space and the top-32 search against the
#      exhaustive best, GEMM 4096^3 and layer_norm 16384x4096 bf16
#      (tests/bench/schedule_search.py --target cuda; docs/perf.md).
# TESSERA_CHECKS picks steps (default conformance,conformance-fused,conformance-lib,bench,matmul,python,
# block; also search); conformance-fused compiles every case at opt level 2 (fusion on);
# TESSERA_BENCH_CASES restricts the benchmark (comma-separated globs).
set -uo pipefail
bundle="${TESSERA_BUNDLE:-build/gpu-bundle}"
out="${OUT:-/tmp/tessera-gpu-out}"
mkdir -p "$out"
data="$(mktemp -d /tmp/tessera-bench.XXXXXX)"
orig_ld="${LD_LIBRARY_PATH:-}"
# Tessera's steps see the bundle's libraries; PyTorch keeps its own
# environment (its wheels find their CUDA libraries through RUNPATH, which
# LD_LIBRARY_PATH would override).
tessera_ld="$PWD/$bundle/lib${orig_ld:+:$orig_ld}"
# NVRTC: the plugin dlopens libnvrtc.so.13/.12 and also tries
# /usr/local/cuda/lib64 by path; where the toolkit is elsewhere, use the copy
# that comes with PyTorch's wheels.
if ! ls /usr/local/cuda/lib64/libnvrtc.so* >/dev/null 2>&1; then
  nvrtc_dir="$(python3 - <<'PY' 2>/dev/null
import glob, site, os
for d in site.getsitepackages():
    for f in sorted(glob.glob(os.path.join(d, "nvidia", "*nvrtc*", "lib", "libnvrtc.so*"))):
        print(os.path.dirname(f)); raise SystemExit
PY
)"
  [ -n "$nvrtc_dir" ] && tessera_ld="$tessera_ld:$nvrtc_dir" && echo "NVRTC from $nvrtc_dir"
fi
# cuBLASLt (the library path of matmuls): the toolkit's, else PyTorch's wheel.
if ! ls /usr/local/cuda/lib64/libcublasLt.so* >/dev/null 2>&1; then
  lt="$(python3 - <<'PY' 2>/dev/null
import glob, site, os
for d in site.getsitepackages():
    for f in sorted(glob.glob(os.path.join(d, "nvidia", "**", "libcublasLt.so*"), recursive=True)):
        print(f); raise SystemExit
PY
)"
  [ -n "$lt" ] && export TESSERA_CUBLASLT="$lt" && echo "cuBLASLt from $lt"
fi
plugins="$PWD/$bundle/lib/tessera/plugins"
status=()
step() { # step NAME RC
  if [ "$2" -eq 0 ]; then status+=("PASS  $1"); else status+=("FAIL  $1 (exit $2; log in \$OUT)"); fi
}
want() { [[ ",${TESSERA_CHECKS:-conformance,conformance-fused,conformance-lib,bench,matmul,python,block}," == *",$1,"* ]]; }
t0=$SECONDS

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
ls -l /usr/local/cuda/lib64/libnvrtc.so* 2>&1 | head -3
if [ ! -x "$bundle/bin/tessera" ] || [ ! -f "$plugins/libtessera-backend-cuda.so" ]; then
  echo "FAIL: $bundle is incomplete; run 'bash scripts/gpu/bundle.sh' on the build machine first"
  exit 2
fi
LD_LIBRARY_PATH="$tessera_ld" "$bundle/bin/tessera" plugins list 2>&1 | tee "$out/plugins-list.txt" | grep -E "cuda|NAME|name" || true

if want bench; then
echo "== Tessera kernels: run, read back, time (measurement extension)"
t1=$SECONDS
# TESSERA_CUDA_LOG_PATHS: the plugin names each kernel's path (cuBLASLt,
# wgmma, ...) once on stderr.
timeout 240 env LD_LIBRARY_PATH="$tessera_ld" TESSERA_CUDA_LOG_PATHS=1 "$bundle/bin/tessera-cuda-bench" \
  --plugin-dir "$plugins" --out "$data" --warmup 10 --reps 50 ${TESSERA_BENCH_CASES:+--case "$TESSERA_BENCH_CASES"} \
  > "$out/bench.txt" 2> "$out/bench-stderr.txt"
rc=$?
cat "$out/bench-stderr.txt"
grep -E "^device|error" "$out/bench.txt" | cut -c1-300
step "tessera-cuda-bench ($(grep -c '^RESULT' "$out/bench.txt") cases run) [$((SECONDS - t1)) s]" $rc

echo "== numerics vs PyTorch and peer timings"
t1=$SECONDS
timeout 240 env PYTHONUNBUFFERED=1 python3 scripts/gpu/cuda_bench.py "$out/bench.txt" "$data" --json "$out/bench.json" \
  > "$out/table.txt" 2>&1
rc=$?
step "numerics vs PyTorch (rel err <= 2e-2 per case) [$((SECONDS - t1)) s]" $rc
fi
rm -rf "$data"

if want matmul; then
echo "== matmul vs torch.matmul (cuBLAS), interleaved in one process"
t1=$SECONDS
LD_LIBRARY_PATH="$tessera_ld" TESSERA_LIBRARY="$PWD/$bundle/lib/libtessera.so" PYTHONPATH="$PWD/bindings/python" \
  PYTHONUNBUFFERED=1 timeout 300 python3 scripts/gpu/matmul_vs_torch.py > "$out/matmul.txt" 2>&1
rc=$?
grep -E "^[0-9]+x[0-9]+x[0-9]+: |^dry run" "$out/matmul.txt" | cut -c1-300
step "$(tail -1 "$out/matmul.txt") [$((SECONDS - t1)) s]" $rc
fi

# conformance LABEL LOG [ARGS...]: the suite on the cuda plugin with the two
# example programs, its failures and summary line, one step.
conformance() {
  local label="$1" log="$out/$2" t=$SECONDS rc summary
  shift 2
  timeout 420 env LD_LIBRARY_PATH="$tessera_ld" "$bundle/bin/tessera-conformance" --plugin cuda \
    --plugin-path "$plugins" "$@" --program "docs/examples/mlp.tsr:B=3" \
    --program "docs/examples/transformer_block.tsr:B=2,S=16:D=32,H=4" > "$log" 2>&1
  rc=$?
  grep -E "^(FAIL|UNSUPPORTED)" "$log" | head -40
  summary="$(grep -E "passed, .* failed, .* unsupported" "$log" | tail -1)"
  [ -n "$summary" ] || summary="(no summary line: exit $rc; see $(basename "$log"), tail below)"
  [ $rc -eq 0 ] || tail -5 "$log"
  step "$label: $summary [$((SECONDS - t)) s]" $rc
}

if want conformance; then
echo "== conformance suite (cuda plugin)"
conformance "conformance" conformance.txt
fi

if want conformance-fused; then
echo "== conformance suite (cuda plugin) at opt level 2 (fused kernels)"
conformance "conformance at opt level 2" conformance-fused.txt --opt-level 2
fi

if want conformance-lib; then
echo "== conformance, matmul cases, cuBLASLt forced (TESSERA_CUDA_LIBRARY=cublaslt)"
t1=$SECONDS
timeout 300 env LD_LIBRARY_PATH="$tessera_ld" TESSERA_CUDA_LIBRARY=cublaslt TESSERA_CUDA_LOG_PATHS=1 \
  "$bundle/bin/tessera-conformance" --plugin cuda --plugin-path "$plugins" --filter '*mat*' \
  > "$out/conformance-lib.txt" 2>&1
rc=$?
grep -E "^(FAIL|UNSUPPORTED)|cuBLASLt" "$out/conformance-lib.txt" | sort | uniq -c | sort -rn | head -20
lib_summary="$(grep -E "passed, .* failed, .* unsupported" "$out/conformance-lib.txt" | tail -1)"
[ -n "$lib_summary" ] || lib_summary="(no summary line: exit $rc)"
[ $rc -eq 0 ] || tail -5 "$out/conformance-lib.txt"
step "conformance *mat* on cuBLASLt: $lib_summary [$((SECONDS - t1)) s]" $rc
fi

if want python; then
echo "== Python binding with torch CUDA tensors (DLPack)"
LD_LIBRARY_PATH="$tessera_ld" TESSERA_LIBRARY="$PWD/$bundle/lib/libtessera.so" PYTHONPATH="$PWD/bindings/python" \
  timeout 300 python3 scripts/gpu/python_cuda_check.py > "$out/python-cuda.txt" 2>&1
rc=$?
cat "$out/python-cuda.txt"
step "python binding with CUDA tensors: $(tail -1 "$out/python-cuda.txt")" $rc
fi

if want block; then
echo "== transformer block (bf16) vs PyTorch eager"
t1=$SECONDS
LD_LIBRARY_PATH="$tessera_ld" TESSERA_LIBRARY="$PWD/$bundle/lib/libtessera.so" PYTHONPATH="$PWD/bindings/python" \
  timeout 300 python3 scripts/gpu/transformer_block_gpu.py > "$out/block.txt" 2>&1
rc=$?
step "$(tail -1 "$out/block.txt") [$((SECONDS - t1)) s]" $rc
fi

if want search; then
echo "== schedule search on the GPU (cost model vs measured, top-32 vs exhaustive)"
t1=$SECONDS
LD_LIBRARY_PATH="$tessera_ld" timeout 300 python3 tests/bench/schedule_search.py --target cuda \
  --cli "$bundle/bin/tessera" --runs "${TESSERA_SEARCH_RUNS:-2}" > "$out/search.txt" 2>&1
rc=$?
cat "$out/search.txt"
step "schedule search (cuda): $(grep -c ": space " "$out/search.txt") kernels [$((SECONDS - t1)) s]" $rc
fi

echo
echo "== summary"
printf '%s\n' "${status[@]}"
[ -f "$out/table.txt" ] && cat "$out/table.txt"
if [ -f "$out/matmul.txt" ]; then
  echo
  if grep -q "^Tessera matmul " "$out/matmul.txt"; then sed -n '/^Tessera matmul /,$p' "$out/matmul.txt"
  else tail -5 "$out/matmul.txt"; fi
fi
[ -f "$out/block.txt" ] && { echo; cat "$out/block.txt"; }
echo "total $((SECONDS - t0)) s"
for s in "${status[@]}"; do [[ "$s" == PASS* ]] || exit 1; done
exit 0
