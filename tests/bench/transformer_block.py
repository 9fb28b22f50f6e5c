"""Transformer block benchmark: Tessera (cpu plugin) against PyTorch CPU.

Runs docs/examples/transformer_block.tsr (pre-norm, causal multi-head
attention, GELU MLP, residuals) through the Python binding and the same block
written in PyTorch, with the same thread count, on the same random inputs.
Per size: warm-up, then `--repeat` timed runs of each side, interleaved in
rounds; prints the medians, the ratio (PyTorch time / Tessera time: > 1 means
Tessera is faster), the max relative error against the PyTorch result and the
buffer plan's arena / peak-live ratio.

    PYTHONPATH=build/python python3 tests/bench/transformer_block.py \
        [--threads 2] [--dtypes f32,bf16] [--sizes 1x128,4x128,...] [--repeat 10]

f32 runs the .tsr with every bf16 type replaced by f32 (same program).
"""
import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
TSR = os.path.join(root, "docs", "examples", "transformer_block.tsr")
D, H = 512, 8


def torch_block(torch, x, ln1_g, ln1_b, wq, wk, wv, wo, ln2_g, ln2_b, w1, w2):
    """The PyTorch equivalent of transformer_block.tsr (weights are x @ W)."""
    F = torch.nn.functional
    B, S, Dm = x.shape
    dh = Dm // H
    h = F.layer_norm(x, (Dm,), ln1_g, ln1_b, eps=1e-5)
    q = (h @ wq).view(B, S, H, dh).transpose(1, 2)
    k = (h @ wk).view(B, S, H, dh).transpose(1, 2)
    v = (h @ wv).view(B, S, H, dh).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
    mask = torch.ones(S, S, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    att = torch.softmax(s, dim=-1) @ v
    a = att.transpose(1, 2).reshape(B, S, Dm)
    r1 = x + a @ wo
    h2 = F.layer_norm(r1, (Dm,), ln2_g, ln2_b, eps=1e-5)
    return r1 + F.gelu(h2 @ w1) @ w2


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def profile_kernels(run, repeat):
    """Median per-kernel times from the runtime's stderr lines."""
    import collections
    import tempfile
    per = collections.defaultdict(list)
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            for _ in range(repeat):
                run().close()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        for line in log:
            if line.startswith("[tessera profile]"):
                f = line.split()
                per[(f[2], f[3], f[6] if len(f) > 6 else "")].append(float(f[4]))
    total = sum(statistics.median(v) for v in per.values())
    for (k, name, ops), v in per.items():
        m = statistics.median(v)
        print(f"    {k:>4} {name:14} {m:9.3f} ms {100 * m / total:5.1f}%  {ops}")
    print(f"    total {total:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--sizes", default="1x128,1x512,4x128,4x512,8x128,8x512")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--omp-wait", default="PASSIVE", choices=["PASSIVE", "ACTIVE"],
                    help="OMP_WAIT_POLICY for PyTorch's OpenMP threads")
    ap.add_argument("--profile", action="store_true",
                    help="re-run Tessera per size with TESSERA_PROFILE_KERNELS=1 and print its per-kernel times")
    args = ap.parse_args()
    if args.profile and os.environ.get("TESSERA_PROFILE_KERNELS") != "1":
        # The runtime reads the variable once per process: re-exec with it.
        env = dict(os.environ, TESSERA_PROFILE_KERNELS="1")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

    # Same thread count on both sides: Tessera's pool, PyTorch's OpenMP
    # pool and the BLAS it calls (Debian's torch uses OpenBLAS).
    for var in ("TESSERA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    # Tessera's pool blocks when idle; let PyTorch's OpenMP workers block
    # too, which is PyTorch's faster setting on a shared machine (measured
    # here: 304 vs 440 ms at B=4, S=512). --omp-wait ACTIVE for a quiet one.
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait
    import torch
    import tessera
    torch.set_num_threads(args.threads)

    ctx = tessera.default_context()
    device = ctx.device("cpu")
    src_bf16 = open(TSR).read()
    print(f"transformer block D={D} H={H}, {args.threads} threads, torch {torch.__version__}, "
          f"median of {args.rounds}x{args.repeat} runs after {args.warmup} warm-ups, "
          f"OMP_WAIT_POLICY={args.omp_wait}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'dtype':5} {'B':>2} {'S':>4} {'tessera ms':>10} {'torch ms':>9} {'x torch':>7} "
          f"{'rel err':>8} {'arena/live':>10}")
    failed = False
    for dt in args.dtypes.split(","):
        src = src_bf16 if dt == "bf16" else src_bf16.replace("bf16", dt)
        t0 = time.perf_counter()
        module = tessera.compile(src, target=device, bind={"D": D, "H": H}, source_name=TSR)
        compile_s = time.perf_counter() - t0
        print(f"# {dt}: compile {compile_s * 1e3:.0f} ms (includes plugin JIT)")
        tdt = torch.float32 if dt == "f32" else torch.bfloat16
        for size in args.sizes.split(","):
            B, S = (int(v) for v in size.split("x"))
            rng = np.random.default_rng(B * 1000 + S)
            shapes = [(B, S, D), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (D, 4 * D), (4 * D, D)]
            scale = [1, 1, 1, D ** -0.5, D ** -0.5, D ** -0.5, D ** -0.5, 1, 1, D ** -0.5, (4 * D) ** -0.5]
            arrays = [(rng.standard_normal(s) * c).astype(np.float32) for s, c in zip(shapes, scale)]
            arrays[1] = 1 + 0.1 * arrays[1]
            arrays[7] = 1 + 0.1 * arrays[7]
            tens = [tessera.Tensor.from_numpy(a, dtype=dt, device=device) for a in arrays]
            # Same rounded values on both sides.
            tt = [torch.from_numpy(np.asarray(t.numpy(copy=True), np.float32)).to(tdt) for t in tens]

            def run_tessera():
                return module.run(*tens, as_tensors=True)

            def run_torch():
                with torch.no_grad():
                    return torch_block(torch, *tt)

            for _ in range(args.warmup):
                run_tessera().close()
                run_torch()
            if args.profile:
                profile_kernels(run_tessera, args.repeat)
                continue
            ts_t, ts_p = [], []
            for _ in range(args.rounds):
                ts_t += timed(lambda: run_tessera().close(), args.repeat)
                ts_p += timed(run_torch, args.repeat)
            out = run_tessera()
            y = np.asarray(out.numpy(copy=True), np.float64)
            out.close()
            ref = run_torch().to(torch.float64).numpy()
            err = float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-30))
            st = module.stats()
            live = st.get("peak_live_bytes", 0)
            mem = st["arena_bytes"] / live if live else float("nan")
            mt, mp = statistics.median(ts_t), statistics.median(ts_p)
            tol = 2e-3 if dt == "f32" else 5e-2
            ok = err <= tol
            failed |= not ok
            print(f"{dt:5} {B:>2} {S:>4} {mt * 1e3:10.2f} {mp * 1e3:9.2f} {mp / mt:7.2f} {err:8.1e} {mem:10.2f}"
                  f"{'' if ok else '  NUMERICS FAILED'}", flush=True)
            for t in tens:
                t.close()
        module.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
