#!/usr/bin/env python3
"""Python binding with torch CUDA tensors on the lent GPU machine (issue 9):
compiles small programs for the `cuda` plugin through `tessera.compile`,
passes torch.cuda tensors in through DLPack, gets torch tensors back, and
compares with torch on random inputs. Run from the repo root with
TESSERA_LIBRARY pointing at the bundle's libtessera and PYTHONPATH at
bindings/python. Prints one line per case and exits non-zero on a failure."""
import sys

import torch
import tessera

torch.manual_seed(0)
cases = [
    ("elementwise f32",
     "func @main(%x: tensor<B x 64 x f32>, %y: tensor<64 x f32>) -> tensor<B x 64 x f32> {\n"
     "  %a = mul(%x, %y)\n  %b = tanh(%a)\n  return %b\n}\n",
     lambda x, y: torch.tanh(x * y),
     [(8, 64), (64,)], torch.float32, 1e-5),
    ("matmul+gelu bf16",
     "func @main(%x: tensor<B x 128 x bf16>, %w: tensor<128 x 96 x bf16>) -> tensor<B x 96 x bf16> {\n"
     "  %m = matmul(%x, %w)\n  %g = gelu(%m)\n  return %g\n}\n",
     lambda x, w: torch.nn.functional.gelu((x.float() @ w.float())).to(torch.bfloat16),
     [(32, 128), (128, 96)], torch.bfloat16, 2e-2),
    ("softmax f32",
     "func @main(%x: tensor<B x S x f32>) -> tensor<B x S x f32> {\n  %y = softmax(%x)\n  return %y\n}\n",
     lambda x: torch.softmax(x, -1),
     [(16, 1000)], torch.float32, 1e-5),
]
failed = 0
for name, text, ref, shapes, dtype, tol in cases:
    try:
        module = tessera.compile(text, target="cuda")
        inputs = [torch.randn(*s, device="cuda", dtype=torch.float32).to(dtype) for s in shapes]
        out = module(*inputs)
        out = out[0] if isinstance(out, (tuple, list)) else out
        assert isinstance(out, torch.Tensor), f"expected a torch.Tensor, got {type(out)}"
        assert out.is_cuda, "output is not on the GPU"
        want = ref(*inputs)
        err = ((out.float() - want.float()).norm() / want.float().norm()).item()
        status = "PASS" if err <= tol else "FAIL"
        failed += status == "FAIL"
        print(f"{status}  {name:18s} out {tuple(out.shape)} {out.dtype} on {out.device}; rel err {err:.2e} (<= {tol:g})")
    except Exception as e:  # report and go on to the next case
        failed += 1
        print(f"FAIL  {name:18s} {type(e).__name__}: {e}")

# Zero-copy import (backend slot buffer_wrap): a tensor imported from torch
# through DLPack wraps torch's memory, so a copy into it lands in torch's
# tensor (without the wrap the copy is refused as UNSUPPORTED).
try:
    import ctypes
    import numpy as np
    from tessera import core
    x = torch.zeros(1000, device="cuda")
    t = tessera.from_dlpack(x)
    src = np.arange(1000, dtype=np.float32)
    core.check(core.lib.tessera_tensor_copy_from_host(t._ptr, src.ctypes.data, src.nbytes),
               "tessera_tensor_copy_from_host")
    torch.cuda.synchronize()
    ok = torch.equal(x.cpu(), torch.from_numpy(src))
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'}  zero-copy import     a copy into the imported tensor "
          f"{'lands' if ok else 'does not land'} in torch's memory")
except Exception as e:
    failed += 1
    print(f"FAIL  zero-copy import     {type(e).__name__}: {e}")
# Asynchronous runs (TESSERA_RUN_ASYNC): no synchronize anywhere; the
# plugin's blocking stream orders PyTorch's default-stream work after the
# run. The input is overwritten right after the call (a write after the
# kernels' read) and the outputs are read by torch at once; a 4096^2 bf16
# product with GELU takes long enough (~0.1 ms) for a missing order to show.
try:
    module = tessera.compile(
        "func @main(%x: tensor<M x 4096 x bf16>, %w: tensor<4096 x 4096 x bf16>) -> tensor<M x 4096 x bf16> {\n"
        "  %m = matmul(%x, %w)\n  %g = gelu(%m)\n  return %g\n}\n", target="cuda")
    xs = [torch.randn(4096, 4096, device="cuda").to(torch.bfloat16) for _ in range(3)]
    w = (torch.randn(4096, 4096, device="cuda") / 64).to(torch.bfloat16)
    wants = [torch.nn.functional.gelu(x.float() @ w.float()) for x in xs]
    torch.cuda.synchronize()
    outs = []
    for x in xs:
        outs.append(module(x, w, asynchronous=True))
        x.fill_(7.0)  # must wait for the run's kernels
    errs = [((o.float() - r).norm() / r.norm()).item() for o, r in zip(outs, wants)]
    module.synchronize()
    ok = max(errs) <= 2e-2
    failed += not ok
    print(f"{'PASS' if ok else 'FAIL'}  asynchronous runs    3 runs, inputs overwritten after each call, outputs "
          f"read by torch without a synchronize: rel err {max(errs):.2e} (<= 0.02)")
except Exception as e:
    failed += 1
    print(f"FAIL  asynchronous runs    {type(e).__name__}: {e}")
cases.append(None)
cases.append(None)
print(f"python binding with CUDA tensors: {len(cases) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
