#!/usr/bin/python3
"""Benchmark: the transformer block gradient's GEMM shapes (D=512, B*S rows)
through the CPU plugin's GEMM path against torch.mm of the same shapes and
layouts on the same threads, interleaved (rounds alternate the two sides).

Each row is one product of tests/bench/transformer_grad.py at B*S = --rows:
`nt` reads B transposed from a [N, K] weight (the vjp's dY @ Wᵀ), as
torch.mm does with a transposed view. Tessera is timed by
build/bin/tessera-cpu-gemm-bench (median of --reps launches after two
warm-ups, in its own process); PyTorch in a child process with the thread
environment of transformer_grad.py.

Usage: cpu_gemm_shapes.py BUILD_DIR [--rows 128] [--threads 2] [--reps 20]
       [--rounds 3] [--knobs 'library="onednn"'] [--only NAME,...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# name: (M, N, K, layout) at D = 512 with M (or K) = B*S = R.
SHAPES = {
    "h2@w1": ("R", 2048, 512, "nn"),
    "g@w2": ("R", 512, 2048, "nn"),
    "ct@w2T": ("R", 2048, 512, "nt"),
    "dg@w1T": ("R", 512, 2048, "nt"),
    "h2T@dg": (512, 2048, "R", "nn"),
    "gT@ct": (2048, 512, "R", "nn"),
    "h@wq": ("R", 512, 512, "nn"),
    "d@wqT": ("R", 512, 512, "nt"),
    "hT@d": (512, 512, "R", "nn"),
}

TORCH_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
reps = int(sys.argv[2])
out = {}
for spec in sys.argv[3:]:
    m, n, k, layout = spec.split(":")
    m, n, k = int(m), int(n), int(k)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(m, k, generator=g) * 2 - 1
    b = (torch.rand(n, k, generator=g) * 2 - 1).t() if layout == "nt" else torch.rand(k, n, generator=g) * 2 - 1
    for _ in range(2):
        torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); torch.mm(a, b); ts.append(time.perf_counter() - t)
    ts.sort()
    out[spec] = ts[len(ts) // 2]
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--rows", type=int, default=128, help="B*S")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--knobs", default="", help="knob line for the Tessera kernel")
    ap.add_argument("--only", default="", help="comma-separated shape names")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               OMP_WAIT_POLICY="PASSIVE")
    exe = os.path.join(args.build, "bin", "tessera-cpu-gemm-bench")
    plugin = os.path.join(args.build, "lib", "tessera", "plugins", "libtessera-backend-cpu.so")
    names = args.only.split(",") if args.only else list(SHAPES)
    specs = {}
    for name in names:
        m, n, k, layout = (args.rows if v == "R" else v for v in SHAPES[name])
        specs[name] = (m, n, k, layout)
    ours = {name: [] for name in names}
    theirs = {name: [] for name in names}
    err = {name: 0.0 for name in names}
    for _ in range(args.rounds):
        for name, (m, n, k, layout) in specs.items():
            cmd = [exe, plugin, str(m), str(n), str(k), str(args.threads), str(args.reps), layout]
            if args.knobs:
                cmd.append(args.knobs)
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
            ours[name].append(r["median_s"])
            err[name] = max(err[name], r["max_rel_err"])
        out = subprocess.run([sys.executable, "-c", TORCH_CHILD, str(args.threads), str(args.reps)] +
                             [f"{m}:{n}:{k}:{l}" for m, n, k, l in specs.values()],
                             check=True, capture_output=True, text=True, env=env).stdout
        t = json.loads(out)
        for name, (m, n, k, l) in specs.items():
            theirs[name].append(t[f"{m}:{n}:{k}:{l}"])
    print(f"# {args.threads} threads, rows {args.rows}, {args.rounds} rounds x {args.reps} reps, knobs "
          f"'{args.knobs}', load average {os.getloadavg()[0]:.2f}")
    print(f"{'product':>8} {'M':>5} {'N':>5} {'K':>5} {'lay':>3} {'tessera ms':>10} {'torch ms':>9} {'ratio':>6}"
          f" {'GFLOP/s':>8} {'rel err':>8}")
    for name, (m, n, k, layout) in specs.items():
        o, p = statistics.median(ours[name]), statistics.median(theirs[name])
        print(f"{name:>8} {m:>5} {n:>5} {k:>5} {layout:>3} {o * 1e3:>10.3f} {p * 1e3:>9.3f} {p / o:>5.2f}x"
              f" {2 * m * n * k / o / 1e9:>8.1f} {err[name]:>8.1e}")


if __name__ == "__main__":
    main()
