"""Per-call overhead of the Python binding for a tiny module (add of two
4-element f32 arrays), against the C API and a named peer (numpy.add).

    PYTHONPATH=<build>/python python3 tests/bench/binding_overhead.py [--c-bench <build>/bin/binding_overhead_c]

Prints, per call (best of 5 repetitions; wall time and process CPU time,
since shared machines inflate wall time):
  numpy.add(a, b)             the peer
  C tessera_module_run        from binding_overhead_c (C, tensors made once)
  ctypes raw run              the same ABI calls through ctypes, tensors made once
  tessera module(a, b)        the binding's fast path: both inputs kept
                              imported from the previous call (same arrays),
                              run, output copied into a fresh array
  module(a, b) read-only      the same with read-only inputs (as the ONNX
                              test data arrive)
  module(a, b) new arrays     fresh input arrays each call (re-import both)
  module.run(a, b)            the general path: DLPack import of both arrays,
                              run, zero-copy DLPack export of the output
and the binding's overhead over the C call (target: < 20 us).
"""
import argparse
import ctypes
import subprocess
import time

import numpy as np

import tessera
from tessera._lib import lib

ap = argparse.ArgumentParser()
ap.add_argument("--c-bench", help="path of the binding_overhead_c executable")
ap.add_argument("--iters", type=int, default=50000)
args = ap.parse_args()

m = tessera.compile("func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {\n"
                    "  %c = add(%a, %b)\n  return %c\n}\n", target="cpu")
a = np.arange(4, dtype=np.float32)
b = np.full(4, 0.5, np.float32)
assert np.array_equal(m(a, b), a + b)


def bench(fn, iters=args.iters):
    best_w = best_c = float("inf")
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            fn()
        best_w = min(best_w, (time.perf_counter() - w0) / iters * 1e6)
        best_c = min(best_c, (time.process_time() - c0) / iters * 1e6)
    return best_w, best_c


ta, tb = tessera.Tensor.from_numpy(a), tessera.Tensor.from_numpy(b)
ins = (ctypes.c_void_p * 2)(ta.ptr, tb.ptr)
outs = (ctypes.c_void_p * 1)()
run, free, mp = lib.tessera_module_run, lib.tessera_tensor_free, m.ptr


def raw():
    run(mp, None, 2, ins, 1, outs)
    free(outs[0])


rows = [("numpy.add(a, b)  [peer]", bench(lambda: np.add(a, b)))]
c = None
if args.c_bench:
    out = subprocess.run([args.c_bench], capture_output=True, text=True, check=True).stdout.split()
    c = (float(out[1]) / 1000, float(out[2]) / 1000)
    rows.append(("C tessera_module_run", c))
rows.append(("ctypes raw run (same calls)", bench(raw)))
rows.append(("module.run(a, b) [general]", bench(lambda: m.run(a, b))))
ra, rb = a.copy(), b.copy()
ra.flags.writeable = rb.flags.writeable = False
rows.append(("module(a, b) read-only inputs", bench(lambda: m(ra, rb))))
pool = [(a.copy(), b.copy()) for _ in range(64)]  # other addresses each call
it = iter(range(1 << 62))
rows.append(("module(a, b) new arrays", bench(lambda: m(*pool[next(it) & 63]))))
rows.append(("tessera module(a, b)", bench(lambda: m(a, b))))
print(f"{'per call':32s} {'wall us':>9s} {'cpu us':>9s}")
for name, (w, cp) in rows:
    print(f"{name:32s} {w:9.2f} {cp:9.2f}")
base = c if c else dict(rows)["ctypes raw run (same calls)"]
full = rows[-1][1]
peer = rows[0][1]
print(f"binding overhead over the C call: {full[0] - base[0]:.2f} us wall, {full[1] - base[1]:.2f} us cpu "
      f"(target < 20 us); module(a, b) / numpy.add = {full[1] / peer[1]:.1f}x (cpu)")
