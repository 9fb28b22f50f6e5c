#!/usr/bin/python3
"""Transformer block gradient: Tessera (CPU plugin) vs PyTorch CPU autograd.

The block is docs/examples/transformer_block.tsr in its f32 variant (D=512,
H=8). Its vjp function comes from tessera_program_grad (VJP mode: forward
outputs plus the gradients of all eleven inputs for an output cotangent) and
is compiled by tessera_compile for the CPU plugin. PyTorch runs the same
block (forward + torch.autograd.grad with the same cotangent) on the same
random weights. Both use the same number of threads; each size is warmed up,
then timed --reps times and the median reported. The gradients are checked
to agree (relative error norm of every gradient against PyTorch).

Usage: PYTHONPATH=<build>/python /usr/bin/python3 tests/bench/transformer_grad.py
       [--threads 2] [--reps 7] [--sizes 1x128,1x256,4x128,4x256]
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


def vjp_program(tessera):
    """The block's vjp Program through tessera_program_grad (VJP mode)."""
    from tessera import _abi
    from tessera._lib import check, lib

    prog = tessera.parse(block_source())
    arr = (ctypes.c_char_p * len(WRT))(*[w.encode() for w in WRT])
    opts = _abi.tessera_grad_options_t()
    opts.struct_size = _abi.TESSERA_GRAD_OPTIONS_STRUCT_SIZE
    opts.mode = _abi.TESSERA_GRAD_MODE_VJP
    out = ctypes.c_void_p()
    check(lib.tessera_program_grad(prog.ptr, None, len(WRT), arr, ctypes.byref(opts), ctypes.byref(out), None),
          "tessera_program_grad")
    return tessera.core.Program(out.value)


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default="1x128,1x256,4x128,4x256", help="BxS list")
    ap.add_argument("--D", type=int, default=512)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--tol", type=float, default=2e-3, help="max relative error norm of a gradient")
    args = ap.parse_args()

    import torch
    import tessera

    torch.set_num_threads(args.threads)
    D, H = args.D, args.H
    t0 = time.perf_counter()
    gprog = vjp_program(tessera)
    mod = tessera.compile(gprog, "cpu", entry="transformer_block_vjp", bind={"H": H})
    compile_s = time.perf_counter() - t0
    f = torch_block(torch, H)
    print(f"# transformer block gradient (vjp, 11 inputs), D={D} H={H} f32, {args.threads} threads, "
          f"median of {args.reps} after {args.warmup} warm-up")
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{datetime.date.today()}; tessera compile {compile_s:.1f} s")
    print(f"{'B':>2} {'S':>4} {'tessera ms':>11} {'torch ms':>9} {'ratio':>6} {'max rel err':>12}")
    ok = True
    for size in args.sizes.split(","):
        B, S = (int(v) for v in size.split("x"))
        rng = np.random.default_rng(B * 1000 + S)
        inputs = block_inputs(rng, B, S, D)
        ct = np.ascontiguousarray(rng.uniform(-1, 1, (B, S, D)), dtype=np.float32)

        def run_tessera():
            return mod.run(*inputs, ct, num_threads=args.threads)

        tin = [torch.from_numpy(a).requires_grad_() for a in inputs]
        tct = torch.from_numpy(ct)

        def run_torch():
            y = f(*tin)
            return (y,) + torch.autograd.grad(y, tin, tct)

        t_med, _ = timed(run_tessera, args.warmup, args.reps)
        p_med, _ = timed(run_torch, args.warmup, args.reps)
        got = run_tessera()
        want = [w.detach().numpy() for w in run_torch()]
        err = max(rel_err(g, w) for g, w in zip(got, want))
        ok &= err <= args.tol
        print(f"{B:>2} {S:>4} {t_med * 1e3:>11.1f} {p_med * 1e3:>9.1f} {p_med / t_med:>5.2f}x {err:>12.2e}",
              flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
