#!/usr/bin/python3
"""Transformer block gradient: Tessera (CPU plugin) vs PyTorch CPU autograd.

The block is docs/examples/transformer_block.tsr in its f32 variant (D=512,
H=8). Its vjp function comes from tessera_program_grad (VJP mode: forward
outputs plus the gradients of all eleven inputs for an output cotangent) and
is compiled by tessera_compile for the CPU plugin. PyTorch runs the same
block (forward + torch.autograd.grad with the same cotangent) on the same
random weights. Both use the same number of threads (and the same thread
environment as tests/bench/transformer_block.py); each size is warmed up,
then timed in --rounds rounds of --reps runs alternating the two sides, and
the medians reported. The gradients are checked to agree (relative error
norm of every gradient against PyTorch). `peak MiB`
is the compiled module's buffer plan (tessera_module_get_stats: the largest
sum of intermediates live at one kernel); `--remat` names forward values the
vjp recomputes (tessera_grad_options_t.remat, docs/autodiff.md).

Usage: PYTHONPATH=<build>/python /usr/bin/python3 tests/bench/transformer_grad.py
       [--threads 2] [--reps 7] [--rounds 3] [--sizes 1x128,1x256,4x128,4x256]
       [--remat att,g,f1] [--omp-wait PASSIVE|ACTIVE] [--profile]
Exit status 1 when a gradient disagrees (relative error above --tol).
"""

import argparse
import ctypes
import datetime
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WRT = ["x", "ln1_g", "ln1_b", "wq", "wk", "wv", "wo", "ln2_g", "ln2_b", "w1", "w2"]


def block_source():
    text = (ROOT / "docs" / "examples" / "transformer_block.tsr").read_text()
    return text.replace("bf16 @accum(f32)", "f32").replace("bf16", "f32")


def block_inputs(rng, B, S, D):
    shapes = [(B, S, D), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (D, 4 * D), (4 * D, D)]
    out = []
    for i, s in enumerate(shapes):
        if len(s) == 1:
            a = rng.uniform(0.5, 1.5, s) if i in (1, 7) else rng.uniform(-0.2, 0.2, s)
        elif len(s) == 2:
            a = rng.uniform(-1, 1, s) * s[0] ** -0.5
        else:
            a = rng.uniform(-1, 1, s)
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out


def torch_block(torch, H):
    F = torch.nn.functional

    def f(x, ln1_g, ln1_b, wq, wk, wv, wo, ln2_g, ln2_b, w1, w2):
        B, S, D = x.shape
        h = F.layer_norm(x, (D,), ln1_g, ln1_b, eps=1e-5)

        def heads(t):
            return t.reshape(B, S, H, D // H).permute(0, 2, 1, 3)

        q, k, v = heads(h @ wq), heads(h @ wk), heads(h @ wv)
        s = q @ k.transpose(-1, -2) * (D // H) ** -0.5
        mask = torch.ones(S, S, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
        att = torch.softmax(s, dim=-1) @ v
        a = att.permute(0, 2, 1, 3).reshape(B, S, D)
        r1 = x + a @ wo
        h2 = F.layer_norm(r1, (D,), ln2_g, ln2_b, eps=1e-5)
        return r1 + F.gelu(h2 @ w1) @ w2

    return f


def vjp_program(tessera, remat=""):
    """The block's vjp Program through tessera_program_grad (VJP mode)."""
    from tessera import _abi
    from tessera._lib import check, lib

    prog = tessera.parse(block_source())
    arr = (ctypes.c_char_p * len(WRT))(*[w.encode() for w in WRT])
    opts = _abi.tessera_grad_options_t()
    opts.struct_size = _abi.TESSERA_GRAD_OPTIONS_STRUCT_SIZE
    opts.mode = _abi.TESSERA_GRAD_MODE_VJP
    if remat:
        opts.remat = remat.encode()
    out = ctypes.c_void_p()
    check(lib.tessera_program_grad(prog.ptr, None, len(WRT), arr, ctypes.byref(opts), ctypes.byref(out), None),
          "tessera_program_grad")
    return tessera.core.Program(out.value)


def timed(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7, help="timed runs of each side per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two sides")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default="1x128,1x256,4x128,4x256", help="BxS list")
    ap.add_argument("--D", type=int, default=512)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--tol", type=float, default=2e-3, help="max relative error norm of a gradient")
    ap.add_argument("--remat", default="", help="forward values to recompute, e.g. att,g,f1")
    ap.add_argument("--omp-wait", default="PASSIVE", choices=["PASSIVE", "ACTIVE"],
                    help="OMP_WAIT_POLICY for PyTorch's OpenMP threads")
    ap.add_argument("--profile", action="store_true",
                    help="print Tessera's per-kernel times per size (TESSERA_PROFILE_KERNELS=1) instead of timing")
    args = ap.parse_args()
    if args.profile and os.environ.get("TESSERA_PROFILE_KERNELS") != "1":
        # The runtime reads the variable once per process: re-exec with it.
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, TESSERA_PROFILE_KERNELS="1"))

    # As tests/bench/transformer_block.py: the same thread count for
    # Tessera's pool, PyTorch's OpenMP pool and the BLAS it calls; PyTorch's
    # OpenMP workers block when idle as Tessera's do (with ACTIVE they spin,
    # which on this 2-core machine made PyTorch several times slower).
    for var in ("TESSERA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait
    import torch
    import tessera

    torch.set_num_threads(args.threads)
    device = tessera.default_context().device("cpu")
    D, H = args.D, args.H
    t0 = time.perf_counter()
    gprog = vjp_program(tessera, args.remat)
    mod = tessera.compile(gprog, device, entry="transformer_block_vjp", bind={"H": H})
    compile_s = time.perf_counter() - t0
    f = torch_block(torch, H)
    print(f"# transformer block gradient (vjp, 11 inputs), D={D} H={H} f32, {args.threads} threads, "
          f"median of {args.rounds}x{args.reps} runs after {args.warmup} warm-ups, OMP_WAIT_POLICY={args.omp_wait}"
          + (f", remat {args.remat}" if args.remat else ""))
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{datetime.date.today()}; tessera compile {compile_s:.1f} s; load average {os.getloadavg()[0]:.2f}")
    print(f"{'B':>2} {'S':>4} {'tessera ms':>11} {'torch ms':>9} {'ratio':>6} {'max rel err':>12} {'peak MiB':>9}")
    ok = True
    for size in args.sizes.split(","):
        B, S = (int(v) for v in size.split("x"))
        rng = np.random.default_rng(B * 1000 + S)
        inputs = block_inputs(rng, B, S, D)
        ct = np.ascontiguousarray(rng.uniform(-1, 1, (B, S, D)), dtype=np.float32)
        # Device tensors on the Tessera side (no staging copies per call), as
        # PyTorch works on its tensors in place.
        tens = [tessera.Tensor.from_numpy(a, device=device) for a in inputs + [ct]]

        def run_tessera():
            for t in mod.run(*tens, num_threads=args.threads, as_tensors=True):
                t.close()

        tin = [torch.from_numpy(a).requires_grad_() for a in inputs]
        tct = torch.from_numpy(ct)

        def run_torch():
            y = f(*tin)
            return (y,) + torch.autograd.grad(y, tin, tct)

        for _ in range(args.warmup):
            run_tessera()
            run_torch()
        if args.profile:
            from transformer_block import profile_kernels
            print(f"# B={B} S={S}: Tessera per-kernel medians")
            profile_kernels(lambda: types.SimpleNamespace(close=run_tessera), args.reps)
            continue
        ts_t, ts_p = [], []
        for _ in range(args.rounds):
            ts_t += timed(run_tessera, args.reps)
            ts_p += timed(run_torch, args.reps)
        t_med, p_med = statistics.median(ts_t), statistics.median(ts_p)
        got = mod.run(*inputs, ct, num_threads=args.threads)
        want = [w.detach().numpy() for w in run_torch()]
        err = max(rel_err(g, w) for g, w in zip(got, want))
        ok &= err <= args.tol
        peak = mod.stats()["peak_live_bytes"] / 2**20
        print(f"{B:>2} {S:>4} {t_med * 1e3:>11.1f} {p_med * 1e3:>9.1f} {p_med / t_med:>5.2f}x {err:>12.2e} "
              f"{peak:>9.2f}", flush=True)
        for t in tens:
            t.close()
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
