#!/usr/bin/env python3
"""Checks tessera-cuda-bench results against PyTorch and times PyTorch.

Reads the RESULT lines of tessera-cuda-bench (inputs/outputs it wrote as raw
files), recomputes each case with PyTorch on the GPU in float32 from the same
bf16 inputs, reports ||out - ref|| / ||ref||, times the PyTorch peer with CUDA
events (warm-up, median) and prints one table. Usage:
  cuda_bench.py RESULTS.txt DATA_DIR [--json OUT.json]
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from cuda_timing import median_ms

TOL = 2e-2  # bf16 outputs (8 mantissa bits) after f32 accumulation
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of this script


def load(data_dir, case, f):
    raw = np.fromfile(f"{data_dir}/{case}.{f['name']}.bin", dtype=np.uint16 if f["dtype"] == "bf16" else np.float32)
    t = torch.from_numpy(raw.view(np.int16) if f["dtype"] == "bf16" else raw)
    if f["dtype"] == "bf16":
        t = t.view(torch.bfloat16)
    return t.reshape(f["shape"]).to(DEVICE)


def rms_norm(x, g, eps=1e-6):
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), g, eps)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * g.float()).to(x.dtype)


def reference_and_peer(case, t):
    """(float32 reference of what Tessera computed, the peer as a thunk)."""
    if case.startswith("gemm_gelu"):
        a, b = t["a"], t["b"]
        return F.gelu(a.float() @ b.float()), lambda: F.gelu(torch.matmul(a, b))
    if case.startswith("gemm_bf16"):
        a, b = t["a"], t["b"]
        return a.float() @ b.float(), lambda: torch.matmul(a, b)
    if case.startswith("softmax_bf16"):
        x = t["x"]
        return torch.softmax(x.float(), -1), lambda: torch.softmax(x, -1)
    if case.startswith("layer_norm_bf16"):
        x, g, b = t["x"], t["g"], t["b"]
        ref = F.layer_norm(x.float(), (x.shape[-1],), g.float(), b.float(), 1e-5)
        return ref, lambda: F.layer_norm(x, (x.shape[-1],), g, b, 1e-5)
    if case.startswith("rms_norm_bf16"):
        x, g = t["x"], t["g"]
        return rms_norm(x.float(), g.float()), lambda: rms_norm(x, g)
    if case == "copy_bf16":
        x = t["x"]
        y = torch.empty_like(x)
        return x.float(), lambda: y.copy_(x)
    if case.startswith("attention"):
        q, k, v = (bhsd(case, t[n]) for n in ("q", "k", "v"))  # [B, H, S, D] (views of [B, S, H, D] for bshd)
        causal = "causal" in case
        # One kernel, P rounded to bf16 before P V (FlashAttention-2): the
        # float32 reference is SDPA on the upcast inputs.
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
        return bhsd(case, ref), lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    raise KeyError(case)


def bhsd(case, x):
    """Attention cases named *bshd* store [B, S, H, D]: swap S and H (a view,
    its own inverse)."""
    return x.transpose(1, 2) if "bshd" in case else x


def float64_attention_errors(case, t, got):
    """||x - ref64|| / ||ref64|| on the first two heads of batch 0, for
    Tessera's output and for PyTorch's bf16 SDPA (the float64 reference
    computed here with plain matmuls and softmax)."""
    t = {n: bhsd(case, t[n]) for n in ("q", "k", "v")}
    got = bhsd(case, got)
    q, k, v = (t[n][0, :2].double() for n in ("q", "k", "v"))
    s = q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1])
    if "causal" in case:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    ref = torch.softmax(s, -1) @ v
    peer = F.scaled_dot_product_attention(t["q"][:1, :2], t["k"][:1, :2], t["v"][:1, :2],
                                          is_causal="causal" in case)[0].double()
    norm = torch.linalg.vector_norm(ref)
    mine = got[0, :2].double()
    return ((torch.linalg.vector_norm(mine - ref) / norm).item(),
            (torch.linalg.vector_norm(peer - ref) / norm).item())


def main():
    results_path, data_dir = sys.argv[1], sys.argv[2]
    json_out = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--json" else None
    rows, failed = [], 0
    for line in open(results_path):
        if not line.startswith("RESULT "):
            continue
        r = json.loads(line[len("RESULT "):])
        row = {"case": r["case"], "peer": r["peer"]}
        if "error" in r:
            row["status"] = "FAIL: " + r["error"][:150]
            failed += 1
            rows.append(row)
            continue
        try:
            t = {f["name"]: load(data_dir, r["case"], f) for f in r["files"]}
            outs = [f["name"] for f in r["files"] if f["role"] == "out"]
            ref, peer = reference_and_peer(r["case"], t)
            got = t[outs[0]].float()
            err = (torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref)).item()
            if r["case"].startswith("attention"):
                row["err64"], row["peer_err64"] = float64_attention_errors(r["case"], t, got)
            finite = bool(torch.isfinite(got).all().item())
            peer_ms = median_ms(peer)
            del t, ref, got
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
            row.update(tessera_ms=r["median_ms"], kernel_ms=r["kernel_ms"], peer_ms=peer_ms, rel_err=err,
                       flops=r["flops"], bytes=r["bytes"])
            ok = finite and err <= TOL
            row["status"] = "ok" if ok else ("FAIL: non-finite output" if not finite else f"FAIL: rel err {err:.2e} > {TOL}")
            failed += 0 if ok else 1
        except Exception as e:  # every step's failure is printed, the table still comes
            row["status"] = f"FAIL: {type(e).__name__}: {e}"[:160]
            failed += 1
        rows.append(row)

    copy_peer = next((x for x in rows if x["case"] == "copy_bf16" and "peer_ms" in x), None)
    copy_bw = copy_peer["bytes"] / (copy_peer["peer_ms"] * 1e-3) if copy_peer else None
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)"
    if json_out:
        json.dump({"device": device, "rows": rows, "copy_bytes_per_s": copy_bw},
                  open(json_out, "w"), indent=1)

    print()
    print(f"Tessera CUDA vs peers on {device} (torch {torch.__version__}); "
          "median of 50 after 10 warm-up, CUDA events")
    hdr = f"{'case':<26}{'peer':<16}{'tessera ms':>11}{'peer ms':>10}{'tessera':>14}{'peer':>14}{'x peer':>8}{'x copy':>8}{'rel err':>10}  status"
    print(hdr)
    print("-" * len(hdr))
    for x in rows:
        if "tessera_ms" not in x:
            print(f"{x['case']:<26}{x['peer']:<16}{'-':>11}{'-':>10}{'-':>14}{'-':>14}{'-':>8}{'-':>8}{'-':>10}  {x['status']}")
            continue
        def rate(ms):
            if x["flops"]:
                return f"{x['flops'] / (ms * 1e-3) / 1e12:9.1f} TF/s"
            return f"{x['bytes'] / (ms * 1e-3) / 1e9:9.0f} GB/s"
        vs_copy = "-"
        if not x["flops"] and copy_bw:
            vs_copy = f"{x['bytes'] / (x['tessera_ms'] * 1e-3) / copy_bw:.2f}"
        print(f"{x['case']:<26}{x['peer']:<16}{x['tessera_ms']:>11.4f}{x['peer_ms']:>10.4f}{rate(x['tessera_ms']):>14}"
              f"{rate(x['peer_ms']):>14}{x['peer_ms'] / x['tessera_ms']:>8.2f}{vs_copy:>8}{x['rel_err']:>10.2e}  {x['status']}")
    print("x peer = peer time / Tessera time (>1: Tessera faster); x copy = Tessera bandwidth / torch copy bandwidth")
    att = [x for x in rows if "err64" in x]
    if att:
        print("attention vs a float64 reference (batch 0, heads 0-1): ||x - ref|| / ||ref||")
        for x in att:
            print(f"  {x['case']:<26} tessera {x['err64']:.2e}   torch sdpa (bf16) {x['peer_err64']:.2e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
