#!/usr/bin/env python3
"""The transformer block end to end on the GPU (issue 6): compiles
docs/examples/transformer_block.tsr (bf16, pre-norm, causal attention, GELU
MLP) for the `cuda` plugin through the Python binding, runs it on torch.cuda
tensors through DLPack, and times it against the same block in PyTorch eager
(F.layer_norm, x @ W (cuBLAS), F.scaled_dot_product_attention causal, F.gelu)
on the same weights. Numerics: both against a float32 PyTorch evaluation of the
block on the same bf16-rounded inputs.

Timing: CUDA events around each call, 5 warm-ups, median of 20; the Tessera
call includes its per-call binding work (DLPack import/export), PyTorch's
includes its eager dispatch. Run from the repo root with TESSERA_LIBRARY at
the bundle's libtessera and PYTHONPATH at bindings/python. Prints one line per
shape and exits non-zero when a numerics check fails.

TESSERA_BLOCK_PROFILE=1: after each shape's line, a per-kernel breakdown of
one call of each side from torch.profiler (CUPTI sees the plugin's driver-API
launches and cuBLASLt's kernels as well as PyTorch's): GPU time and count per
kernel name, the GPU sum against the call's wall time (the rest is host work
the GPU waited on: binding, launch path, synchronization). Then the host side
of a call (torch.profiler with CPU activity too): its host time per call
(unprofiled enqueue time, and the profiled record_function range) and the top
CUDA runtime/driver API entries inside it by total time per call (cu*/cuda*:
cuLaunchKernel, cudaLaunchKernel, cudaStreamSynchronize, ...); the rest of the
range is host work without an entry (Kineto records the runtime API but of the
driver API only kernel launches and a few cuMem* VMM calls, so the plugin's
cuMemAlloc / cuMemFree / cuStreamSynchronize and cublasLtMatmul fall there)."""
import math
import os
import sys

import torch
import tessera

from cuda_timing import median_ms

F = torch.nn.functional
here = os.path.dirname(os.path.abspath(__file__))
TSR = os.path.join(os.path.dirname(os.path.dirname(here)), "docs", "examples", "transformer_block.tsr")
SHAPES = [  # (B, S, D, H): head dims 128 and 64
    (4, 1024, 1024, 8),
    (4, 2048, 2048, 16),
    (8, 512, 1024, 16),
]


def torch_block(x, ln1_g, ln1_b, wq, wk, wv, wo, ln2_g, ln2_b, w1, w2, H, sdpa=True):
    B, S, D = x.shape
    dh = D // H
    h = F.layer_norm(x, (D,), ln1_g, ln1_b, eps=1e-5)
    q = (h @ wq).view(B, S, H, dh).transpose(1, 2)
    k = (h @ wk).view(B, S, H, dh).transpose(1, 2)
    v = (h @ wv).view(B, S, H, dh).transpose(1, 2)
    if sdpa:
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:  # float32 reference: the plain formula
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dh))
        s = s.masked_fill(torch.ones(S, S, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        att = torch.softmax(s, dim=-1) @ v
    r1 = x + att.transpose(1, 2).reshape(B, S, D) @ wo
    h2 = F.layer_norm(r1, (D,), ln2_g, ln2_b, eps=1e-5)
    return r1 + F.gelu(h2 @ w1) @ w2


def host_api(label, events, reps, host_ms):
    """The host side of one call from the profiler's CPU events: the CUDA
    runtime/driver API entries (cu*, cuda*) inside the calls' ranges, by
    total time per call. Kineto records the runtime API and, of the driver
    API, only kernel launches (cuLaunchKernel[Ex]) and a few cuMem* VMM
    calls: the plugin's cuMemAlloc / cuMemFree / cuStreamSynchronize and
    library entry points such as cublasLtMatmul do not show as entries;
    their time is in the remainder (with the binding's and the plugin's own
    host work)."""
    def span(ev):
        tr = getattr(ev, "time_range", None)
        return (tr.start, tr.end) if tr is not None else (0, 0)
    cpu = [ev for ev in events if "CUDA" not in str(getattr(ev, "device_type", ""))]
    calls = sorted(span(ev) for ev in cpu if ev.name == CALL)
    apis = [ev for ev in cpu if ev.name.startswith("cu")]
    inside = [ev for ev in apis if any(a <= span(ev)[0] and span(ev)[1] <= b for a, b in calls)]
    where = "inside the calls"
    if apis and not inside:  # clocks not comparable: all entries (the final synchronize included)
        inside, where = apis, "whole profile, calls not matched"
    rows = {}
    for ev in inside:
        a, b = span(ev)
        t, n = rows.get(ev.name, (0.0, 0))
        rows[ev.name] = (t + (b - a), n + 1)
    in_range = sum(b - a for a, b in calls) / max(len(calls), 1) / 1e3
    api_ms = sum(t for t, _ in rows.values()) / reps / 1e3
    print(f"  [{label}] host per call: {host_ms:.3f} ms unprofiled (enqueue, no sync), {in_range:.3f} ms profiled; "
          f"CUDA runtime/driver API entries {api_ms:.3f} ms over {sum(n for _, n in rows.values()) / reps:.0f} "
          f"entries ({where})")
    for name, (t, n) in sorted(rows.items(), key=lambda kv: -kv[1][0])[:8]:
        print(f"    {t / reps / 1e3:8.4f} ms  x{n / reps:<4.1f} {name[:110]} (host)")
    if calls:
        print(f"    {max(in_range - api_ms, 0.0):8.4f} ms        rest of the host time: not in a recorded API entry "
              f"(Python, binding, plugin/library host work; driver calls Kineto does not record: "
              f"cuMemAlloc, cuMemFree, cuStreamSynchronize, cublasLt*)")


def profile(label, fn, reps=5):
    """Per-kernel GPU time of `reps` calls of fn, averaged per call; then the
    host side of a call (host_api)."""
    import time
    from torch.profiler import profile as tprofile, ProfilerActivity, record_function
    fn()
    torch.cuda.synchronize()
    h0 = time.perf_counter()
    for _ in range(reps):
        fn()
    host_ms = (time.perf_counter() - h0) * 1e3 / reps
    torch.cuda.synchronize()
    with tprofile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            with record_function(CALL):
                fn()
        torch.cuda.synchronize()
    rows = {}
    events = prof.events()
    for ev in events:
        if getattr(ev, "device_type", None) is None or "CUDA" not in str(ev.device_type):
            continue
        if ev.name == CALL or getattr(ev, "is_user_annotation", False):
            continue  # the range's GPU-side span (gpu_user_annotation), not a kernel
        us = getattr(ev, "device_time", None) or getattr(ev, "cuda_time", 0) or 0
        name = ev.name
        t, n = rows.get(name, (0.0, 0))
        rows[name] = (t + us, n + 1)
    total = sum(t for t, _ in rows.values()) / reps
    print(f"  [{label}] GPU kernels per call: {total / 1e3:.3f} ms over "
          f"{sum(n for _, n in rows.values()) / reps:.0f} launches")
    for name, (t, n) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        print(f"    {t / reps / 1e3:8.4f} ms  x{n / reps:<4.0f} {name[:110]}")
    host_api(label, events, reps, host_ms)
    return total / 1e3


def main():
    src = open(TSR).read()
    torch.manual_seed(0)
    failed = 0
    print(f"{'B':>2} {'S':>5} {'D':>5} {'H':>3}  {'tessera ms':>10} {'sync ms':>8} {'torch ms':>9} {'x torch':>8} "
          f"{'err tessera':>11} {'err torch':>10}  status")
    for B, S, D, H in SHAPES:
        try:
            module = tessera.compile(src, target="cuda", bind={"D": D, "H": H}, source_name=TSR)
            shapes = [(B, S, D), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (D, 4 * D), (4 * D, D)]
            scales = [1.0, 0.1, 0.1] + [1 / math.sqrt(D)] * 4 + [0.1, 0.1, 1 / math.sqrt(D), 1 / math.sqrt(4 * D)]
            ins = [(torch.randn(*s, device="cuda") * sc).to(torch.bfloat16) for s, sc in zip(shapes, scales)]
            ins[1] += 1.0  # layer-norm gains around 1
            ins[7] += 1.0
            # Asynchronous (TESSERA_RUN_ASYNC): the plugin's stream is a
            # blocking one, so PyTorch's default-stream reads below (and
            # the timing events) are ordered after the run's kernels.
            out = module(*ins, asynchronous=True)
            out = out[0] if isinstance(out, (tuple, list)) else out
            with torch.no_grad():
                ref = torch_block(*[t.float() for t in ins], H=H, sdpa=False)
                peer = torch_block(*ins, H=H)
                scale = ref.abs().max().item()
                err_t = (out.float() - ref).abs().max().item() / scale
                err_p = (peer.float() - ref).abs().max().item() / scale
                t_ms = median_ms(lambda: module(*ins, asynchronous=True), 5, 20)
                s_ms = median_ms(lambda: module(*ins), 5, 20)
                p_ms = median_ms(lambda: torch_block(*ins, H=H), 5, 20)
            ok = err_t <= max(4 * err_p, 2e-2)
            failed += not ok
            print(f"{B:>2} {S:>5} {D:>5} {H:>3}  {t_ms:>10.3f} {s_ms:>8.3f} {p_ms:>9.3f} {p_ms / t_ms:>8.2f} "
                  f"{err_t:>11.2e} {err_p:>10.2e}  {'ok' if ok else 'FAIL'}")
            if os.environ.get("TESSERA_BLOCK_PROFILE"):
                with torch.no_grad():
                    g_t = profile("tessera", lambda: module(*ins, asynchronous=True))
                    g_p = profile("torch", lambda: torch_block(*ins, H=H))
                print(f"  wall - GPU sum: tessera {t_ms - g_t:.3f} ms, torch {p_ms - g_p:.3f} ms (host work not "
                      f"hidden behind the GPU)")
        except Exception as e:  # report and go on with the next shape
            failed += 1
            print(f"{B:>2} {S:>5} {D:>5} {H:>3}  FAIL {type(e).__name__}: {e}")
    print("tessera ms: asynchronous runs (returns once enqueued, like PyTorch eager); sync ms: the same module "
          "run synchronously")
    print("x torch = PyTorch eager ms / Tessera ms (>1: Tessera faster); err = max abs err / max |ref| vs f32")
    print(f"transformer block on the GPU: {len(SHAPES) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
