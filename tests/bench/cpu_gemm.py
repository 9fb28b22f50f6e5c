#!/usr/bin/env python3
"""Benchmark: fp32 GEMM (C = A @ B, square) through the CPU plugin's packed
micro-kernel path against NumPy/OpenBLAS, same thread count, measured in the
same run and interleaved (rounds alternate Tessera and NumPy so shared-machine
load hits both alike). Prints GFLOP/s of each and the ratio Tessera / NumPy.

Usage: cpu_gemm.py BUILD_DIR [--sizes 1024,2048] [--threads N] [--reps 5] [--rounds 3]

Tessera is timed by build/bin/tessera-cpu-gemm-bench (dlopens the plugin,
median of REPS launches after two warm-ups). NumPy's BLAS threads are set with
OPENBLAS_NUM_THREADS before numpy is imported (in a child process).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

NUMPY_CHILD = r"""
import sys, time, json
import numpy as np
n, reps = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
for _ in range(2):
    a @ b
ts = []
for _ in range(reps):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
ts.sort()
print(json.dumps({"median_s": ts[len(ts) // 2], "gflops": 2 * n ** 3 / ts[len(ts) // 2] / 1e9}))
"""


def numpy_run(n, threads, reps):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", NUMPY_CHILD, str(n), str(reps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def tessera_run(build, n, threads, reps):
    exe = os.path.join(build, "bin", "tessera-cpu-gemm-bench")
    plugin = os.path.join(build, "lib", "tessera", "plugins", "libtessera-backend-cpu.so")
    out = subprocess.run([exe, plugin, str(n), str(n), str(n), str(threads), str(reps)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import numpy
    print(f"numpy {numpy.__version__}; threads {args.threads}; rounds {args.rounds} x reps {args.reps}")
    print("| n | Tessera GFLOP/s | NumPy/OpenBLAS GFLOP/s | ratio | max rel err |")
    print("|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        ours, theirs, err = [], [], 0.0
        for _ in range(args.rounds):
            t = tessera_run(args.build, n, args.threads, args.reps)
            ours.append(t["gflops"])
            err = max(err, t["max_rel_err"])
            theirs.append(numpy_run(n, args.threads, args.reps)["gflops"])
        o, p = statistics.median(ours), statistics.median(theirs)
        print(f"| {n} | {o:.1f} | {p:.1f} | {o / p:.2f} | {err:.1e} |")


if __name__ == "__main__":
    main()
