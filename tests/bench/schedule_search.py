#!/usr/bin/env python3
"""Schedule-search benchmarks (issue 8; docs/schedule.md, docs/perf.md).

1. Cost-model quality: Spearman rank correlation between predicted and
   measured time over the full space of a GEMM and a layer_norm kernel.
2. Search quality: best of <= 32 measured candidates (model strategy) vs the
   best of the exhaustive run.
3. Warm compile time of docs/examples/transformer_block.tsr (artifact cache).

Usage: schedule_search.py --cli build/bin/tessera [--bind ...]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

GEMM = """func @main(%a: tensor<256 x 256 x f32>, %b: tensor<256 x 256 x f32>) -> tensor<256 x 256 x f32> {
  %c = matmul(%a, %b)
  return %c
}
"""
LAYER_NORM = """func @main(%x: tensor<2048 x 256 x f32>, %g: tensor<256 x f32>, %b: tensor<256 x f32>) -> tensor<2048 x 256 x f32> {
  %y = layer_norm(%x, %g, %b) {axis = -1, epsilon = 1e-5}
  return %y
}
"""


def spearman(x, y):
    """Spearman (1904): Pearson correlation of ranks (ties averaged)."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for t in range(i, j + 1):
                r[order[t]] = (i + j) / 2 + 1
            i = j + 1
        return r
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else 0.0


def autotune(cli, src, strategy, trials, cache, report):
    subprocess.run([cli, "autotune", src, "--strategy", strategy, "--trials", str(trials),
                    "--cache-dir", cache, "--report", report], check=True, capture_output=True)
    return json.load(open(report))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="tessera")
    ap.add_argument("--transformer", default=os.path.join(os.path.dirname(__file__), "../../docs/examples/transformer_block.tsr"))
    ap.add_argument("--bind", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cache = os.path.join(d, "cache")
        for name, text in (("gemm", GEMM), ("layer_norm", LAYER_NORM)):
            src = os.path.join(d, name + ".tsr")
            open(src, "w").write(text)
            full = autotune(args.cli, src, "exhaustive", 100000, cache, os.path.join(d, name + "-ex.json"))
            for k in full["kernels"]:
                pts = [c for c in k["all"] if c["measured_s"] is not None and c["predicted_s"] is not None]
                rho = spearman([c["predicted_s"] for c in pts], [c["measured_s"] for c in pts])
                best = min(c["measured_s"] for c in pts)
                print(f"{name}/{k['name']}: space {k['candidates']}, measured {len(pts)}, "
                      f"Spearman {rho:.3f}, exhaustive best {best * 1e6:.1f} us, default {k['default_s'] * 1e6:.1f} us")
            top = autotune(args.cli, src, "model", 32, cache, os.path.join(d, name + "-top.json"))
            for k, kf in zip(top["kernels"], full["kernels"]):
                best = min(c["measured_s"] for c in kf["all"] if c["measured_s"] is not None)
                print(f"{name}/{k['name']}: model top-32 chose {k['measured_s'] * 1e6:.1f} us "
                      f"({k['measured']} measured), {100 * (k['measured_s'] / best - 1):+.1f}% vs exhaustive best")
        # Warm compile: the second compile finds the executable in the cache.
        env = dict(os.environ, TESSERA_CACHE_DIR=cache)
        cmd = [args.cli, "compile", args.transformer, "--target", "cpu"] + (["--bind", args.bind] if args.bind else [])
        times = []
        for _ in range(4):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t)
        print(f"transformer block compile (process wall time): cold {times[0] * 1e3:.0f} ms, "
              f"warm {min(times[1:]) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
