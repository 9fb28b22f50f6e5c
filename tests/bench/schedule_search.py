#!/usr/bin/env python3
"""Schedule-search benchmarks (issue 8; docs/schedule.md, docs/perf.md).

1. Cost-model quality: Spearman rank correlation between predicted and
   measured time over the full space of a GEMM and a layer_norm kernel.
2. Search quality: best of <= 32 measured candidates (model strategy) vs the
   best of the exhaustive run.
3. Compile time of docs/examples/transformer_block.tsr: cold (cache off) and
   warm (executable from the artifact cache), process wall and CPU time,
   medians of --warm-runs, with the `--time` stage breakdown of the warm runs.

The space is measured exhaustively --runs times (default 3). On a shared
machine a measured ranking is only as good as the measurements, so next to
the model's Spearman per run (and against each point's fastest timing over
the runs, the search's own min-of-medians carried across runs) the
benchmark prints the noise: the Spearman of run 1 against run 2 (no model
can be expected to beat it), the median run-to-run difference of a point,
and how many pairs of points differ by less than that (tied within noise).
It also prints the model's concordance on the pairs that the runs resolve
(every run orders them the same way, by more than the noise). The
search-quality figure is given against run 1's exhaustive best (as the
target reads) and with every configuration at its fastest timing in any
run (choice and best on the same footing).

With --target cuda the same over the CUDA plugin (GEMM 4096^3 bf16 and
layer_norm 16384x4096 bf16; the space's GPU knobs: library, gemm_path,
stages, warps), measured through its measurement extension; no compile-time
part (scripts/gpu/cuda_checks.sh, TESSERA_CHECKS=search).

Usage: schedule_search.py --cli build/bin/tessera [--target cpu|cuda] [--bind ...] [--runs N] [--warm-runs N]
       [--compile-only]
"""
import argparse
import json
import os
import re
import resource
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

# The GPU's sizes: large enough that a GEMM is compute-bound and a row
# kernel bandwidth-bound, as in docs/perf.md's CUDA tables.
GEMM_CUDA = """func @main(%a: tensor<4096 x 4096 x bf16>, %b: tensor<4096 x 4096 x bf16>) -> tensor<4096 x 4096 x bf16> {
  %c = matmul(%a, %b)
  return %c
}
"""
LAYER_NORM_CUDA = """func @main(%x: tensor<16384 x 4096 x bf16>, %g: tensor<4096 x bf16>, %b: tensor<4096 x bf16>) -> tensor<16384 x 4096 x bf16> {
  %y = layer_norm(%x, %g, %b) {axis = -1, epsilon = 1e-5}
  return %y
}
"""


def ranks(v):
    """Ranks from 1, ties getting their average rank."""
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


def spearman(x, y):
    """Spearman (1904): Pearson correlation of ranks (ties averaged)."""
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else 0.0


def median(v):
    s = sorted(v)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2


def load():
    return os.getloadavg()[0]


def autotune(cli, src, strategy, trials, cache, report, target="cpu"):
    before = load()
    r = subprocess.run([cli, "autotune", src, "--target", target, "--strategy", strategy, "--trials", str(trials),
                        "--cache-dir", cache, "--report", report], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"tessera autotune exit {r.returncode}: {r.stderr[-600:]}")
    out = json.load(open(report))
    out["load"] = (before, load())
    return out


def timed(cmd, env):
    """Runs cmd; returns (wall s, child CPU s, stderr) or raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise RuntimeError(f"exit {r.returncode}: {r.stderr[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, r.stderr


def compile_times(cli, transformer, bind, cache, runs):
    """Cold (cache off) and warm (artifact cache hit) compiles of the block:
    process wall and CPU time (medians), and the warm `--time` stages."""
    cmd = [cli, "compile", transformer, "--target", "cpu", "--time"] + (["--bind", bind] if bind else [])
    try:
        cold = [timed(cmd, dict(os.environ, TESSERA_CACHE_DIR="off")) for _ in range(3)]
        timed(cmd, dict(os.environ, TESSERA_CACHE_DIR=cache))  # fills the cache
        warm = [timed(cmd, dict(os.environ, TESSERA_CACHE_DIR=cache)) for _ in range(runs)]
    except RuntimeError as e:
        print(f"transformer block compile failed ({e})")
        return
    ms = lambda xs: median(xs) * 1e3
    for name, rs in (("cold, cache off, median of 3", cold), (f"warm, median of {runs}", warm)):
        print(f"transformer block compile {name}: process wall {ms([r[0] for r in rs]):.1f} ms, "
              f"process CPU {ms([r[1] for r in rs]):.1f} ms")
    stages = {}
    for _, _, err in warm:
        for m in re.finditer(r"^(\S[^\n]*?)\s{2,}([0-9.]+) ms$", err, re.M):  # the `--time` table
            stages.setdefault(m.group(1), []).append(float(m.group(2)))
    print("  warm --time stages (median ms): " + ", ".join(f"{k} {median(v):.2f}" for k, v in stages.items()))


def noise_report(points, runs):
    """Run-to-run noise of the measured points and the model's standing
    against it; `points` are dicts with 'pred' and 'meas' (one per run)."""
    lines = []
    if len(runs) < 2:
        return lines
    a = [p["meas"][0] for p in points]
    b = [p["meas"][1] for p in points]
    rel = [abs(x - y) / min(x, y) for x, y in zip(a, b)]
    delta = median(rel)
    n = len(points)
    pairs = tied = resolved = agree = 0
    for i in range(n):
        for j in range(i + 1, n):
            pairs += 1
            ti, tj = min(points[i]["meas"]), min(points[j]["meas"])
            if abs(ti - tj) / min(ti, tj) <= delta:
                tied += 1
            # Resolved: every run orders the pair the same way, by more
            # than the noise.
            d = [(p_i - p_j) / min(p_i, p_j) for p_i, p_j in zip(points[i]["meas"], points[j]["meas"])]
            if all(x > delta for x in d) or all(x < -delta for x in d):
                resolved += 1
                pd = points[i]["pred"] - points[j]["pred"]
                agree += 1 if pd * d[0] > 0 else 0
    lines.append(f"  noise: Spearman of run 1 vs run 2 {spearman(a, b):.3f} (the ceiling for any model), "
                 f"median run-to-run difference of a point {100 * delta:.1f}%, "
                 f"{tied} of {pairs} pairs ({100 * tied / pairs:.0f}%) tied within it")
    if resolved:
        lines.append(f"  model on the {resolved} pairs every run orders by more than the noise: "
                     f"{agree} ordered right ({100 * agree / resolved:.0f}%)")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="tessera")
    ap.add_argument("--transformer", default=os.path.join(os.path.dirname(__file__), "../../docs/examples/transformer_block.tsr"))
    ap.add_argument("--bind", default="")
    ap.add_argument("--runs", type=int, default=3, help="exhaustive runs per kernel (noise estimate)")
    ap.add_argument("--warm-runs", type=int, default=5, help="warm compiles of the transformer block measured")
    ap.add_argument("--compile-only", action="store_true", help="only the compile-time measurement (3.)")
    ap.add_argument("--keep", default="", help="directory to keep the autotune JSON reports in")
    ap.add_argument("--target", default="cpu", choices=["cpu", "cuda"],
                    help="plugin to search on (cuda: bf16 GEMM 4096^3 and layer_norm 16384x4096; no compile times)")
    args = ap.parse_args()
    kernels = (("gemm", GEMM), ("layer_norm", LAYER_NORM)) if args.target == "cpu" else \
        (("gemm", GEMM_CUDA), ("layer_norm", LAYER_NORM_CUDA))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or tmp
        os.makedirs(d, exist_ok=True)
        cache = os.path.join(tmp, "cache")
        for name, text in (() if args.compile_only else kernels):
            src = os.path.join(d, name + ".tsr")
            open(src, "w").write(text)
            fulls = [autotune(args.cli, src, "exhaustive", 100000, cache, os.path.join(d, f"{name}-ex{r}.json"),
                              args.target) for r in range(max(1, args.runs))]
            top = autotune(args.cli, src, "model", 32, cache, os.path.join(d, name + "-top.json"), args.target)
            for ki, k in enumerate(fulls[0]["kernels"]):
                runs = [f["kernels"][ki]["all"] for f in fulls]
                points = []
                for i, c in enumerate(k["all"]):
                    meas = [r[i]["measured_s"] for r in runs]
                    if c["predicted_s"] is not None and all(m is not None and m > 0 for m in meas):
                        points.append({"knobs": c["knobs"], "pred": c["predicted_s"], "meas": meas})
                pred = [p["pred"] for p in points]
                per_run = [spearman(pred, [p["meas"][r] for p in points]) for r in range(len(runs))]
                best_of = [min(p["meas"]) for p in points]
                loads = ", ".join(f"{f['load'][0]:.1f}-{f['load'][1]:.1f}" for f in fulls)
                print(f"{name}/{k['name']}: space {k['candidates']}, measured {len(points)} in each of {len(runs)} "
                      f"exhaustive runs (load average {loads})")
                print(f"  Spearman predicted vs measured: " + ", ".join(f"run {r + 1} {v:.3f}" for r, v in enumerate(per_run)) +
                      f"; vs the lower of the runs {spearman(pred, best_of):.3f}")
                for line in noise_report(points, runs):
                    print(line)
                # Within one thread count: the other knobs' ranking, which
                # does not depend on whether the machine's other cores are
                # free at the time.
                for t in sorted({re.search(r"threads=(\d+)", p["knobs"]).group(1)
                                 for p in points if "threads=" in p["knobs"]}):
                    sub = [p for p in points if f"threads={t} " in p["knobs"] + " "]
                    if len(sub) > 2:
                        low = [min(p["meas"]) for p in sub]
                        ceiling = spearman([p["meas"][0] for p in sub], [p["meas"][1] for p in sub]) if len(runs) > 1 else float("nan")
                        print(f"  threads={t} only ({len(sub)} points): Spearman vs the lower of the runs "
                              f"{spearman([p['pred'] for p in sub], low):.3f} (run 1 vs run 2: {ceiling:.3f})")
                if args.target != "cpu":
                    # Every point with both figures (and the rejected ones'
                    # reasons, once each): the GPU spaces are small.
                    for p in sorted(points, key=lambda p: min(p["meas"])):
                        print(f"    {p['knobs']}: predicted {p['pred'] * 1e6:.1f} us, measured "
                              + ", ".join(f"{m * 1e6:.1f}" for m in p["meas"]) + " us")
                    reasons = {}
                    for c in k["all"]:
                        if c.get("reason") and c["knobs"] not in (p["knobs"] for p in points):
                            reasons.setdefault(c["reason"], 0)
                            reasons[c["reason"]] += 1
                    for why, n in sorted(reasons.items(), key=lambda x: -x[1]):
                        print(f"    rejected {n}: {why}")
                best = min(best_of)
                bestp = points[best_of.index(best)]
                print(f"  exhaustive best {best * 1e6:.1f} us ({bestp['knobs']}), "
                      f"default {k['default_s'] * 1e6:.1f} us")
                kt = top["kernels"][ki]
                cross = min(m for m in (c["measured_s"] for c in fulls[0]["kernels"][ki]["all"]) if m and m > 0)
                print(f"  model top-32 (load average {top['load'][0]:.1f}-{top['load'][1]:.1f}): chose "
                      f"{kt['chosen']} at {kt['measured_s'] * 1e6:.1f} us ({kt['measured']} measured), "
                      f"{100 * (kt['measured_s'] / cross - 1):+.1f}% vs run 1's exhaustive best")
                # Every configuration at its fastest timing in any run (the
                # exhaustive ones and the model's): the choice and the best
                # judged on the same footing.
                pooled = {p["knobs"]: min(p["meas"]) for p in points}
                for c in kt["all"]:
                    if c["measured_s"] and c["measured_s"] > 0 and c["knobs"] in pooled:
                        pooled[c["knobs"]] = min(pooled[c["knobs"]], c["measured_s"])
                if kt["chosen"] in pooled:
                    t, b = pooled[kt["chosen"]], min(pooled.values())
                    print(f"  pooled over all runs (each configuration at its fastest): chosen {t * 1e6:.1f} us, "
                          f"best {b * 1e6:.1f} us, {100 * (t / b - 1):+.1f}%")
        if args.target == "cpu":
            compile_times(args.cli, args.transformer, args.bind, cache, args.warm_runs)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
