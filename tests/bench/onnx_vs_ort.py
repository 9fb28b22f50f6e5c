#!/usr/bin/env python3
"""Tessera's cpu plugin against onnxruntime's CPU execution provider on the
ONNX backend test models that pass on cpu (groups simple and
pytorch-converted), same machine, same thread count.

  tests/bench/onnx_vs_ort.py --build build-onnx [--threads 2] [--repeat 200]

Creates <build>/ort-venv (system site packages + PyPI onnxruntime and onnx)
on first use; prints a reason and exits 0 when that is impossible. Each model
runs with its test_data_set_0 inputs: ORT through InferenceSession.run with intra_op_num_threads=T, Tessera through its Python
binding (`tessera.compile(model, "cpu")`, `module(*arrays)`, the plugin's
pool at TESSERA_NUM_THREADS=T), each timed with the same Python loop (median
of N after 5 warm-ups; compile excluded); outputs are checked against ORT's
first. Ratio = ORT time / Tessera time (> 1: Tessera is faster). Left out:
models that pass only with integer inputs fixed at compile time, and models
ORT cannot run (opsets below 7).
"""
import argparse
import math
import os
import subprocess
import sys

GROUPS = ("simple", "pytorch-converted")


def ensure_venv(build):
    venv = os.path.join(build, "ort-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        r = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
        if r.returncode != 0:
            return None, "python3 -m venv failed"
    check = subprocess.run([py, "-c", "import onnxruntime, onnx"], capture_output=True)
    if check.returncode != 0:
        r = subprocess.run([py, "-m", "pip", "install", "-q", "onnxruntime", "onnx"], capture_output=True, text=True)
        if r.returncode != 0:
            return None, "pip install onnxruntime onnx failed: " + r.stderr.strip()[-300:]
    return py, None


def passing_models(build, data):
    suite = os.path.join(build, "bin", "tessera-onnx-suite")
    r = subprocess.run([suite, "--data", data, "--engine", "cpu", "--groups", ",".join(GROUPS), "-j", "2"],
                       capture_output=True, text=True)
    models = []
    for line in r.stdout.splitlines():
        # "pass  cpu  GROUP  NAME  [reason]": a reason means inputs were fixed.
        f = line.split(None, 4)
        if len(f) == 4 and f[0] == "pass" and f[1] == "cpu" and f[2] in GROUPS:
            models.append((f[2], f[3]))
    return models


# Runs inside the venv with the Tessera Python binding on PYTHONPATH: loads
# the inputs, times ORT and Tessera with the same Python loop (both pay one
# Python call per run), checks that the outputs agree, prints
# "ORT_MS TESSERA_MS".
WORKER = r"""
import sys, time, os, numpy as np, onnx, onnxruntime as ort, tessera
from onnx import numpy_helper
model, data, threads, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = onnx.load(model, load_external_data=False)
inits = {t.name for t in m.graph.initializer}
names = [i.name for i in m.graph.input if i.name not in inits]
arrays = []
for k in range(len(names)):
    t = onnx.TensorProto()
    t.ParseFromString(open(os.path.join(data, f"input_{k}.pb"), "rb").read())
    arrays.append(np.ascontiguousarray(numpy_helper.to_array(t)))
feeds = dict(zip(names, arrays))
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
mod = tessera.compile(model, "cpu")
def timed(f):
    for _ in range(5):
        f()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3
want = sess.run(None, feeds)
got = mod(*arrays)
got = list(got) if isinstance(got, tuple) else [got]
for w, g in zip(want, got):
    np.testing.assert_allclose(np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64), rtol=1e-3, atol=1e-5)
ort_ms = timed(lambda: sess.run(None, feeds))
ts_ms = timed(lambda: mod(*arrays))
print(ort_ms, ts_ms)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="/usr/share/libonnx-testdata/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    py, why = ensure_venv(build)
    if not py:
        print("onnx_vs_ort: skipped:", why)
        return 0
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "python"),
               TESSERA_LIBRARY=os.path.join(build, "lib", "libtessera.so"), TESSERA_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads))
    rows, skipped = [], []
    load_before = os.getloadavg()[0]
    for group, name in passing_models(build, args.data):
        d = os.path.join(args.data, group, name)
        r = subprocess.run([py, "-c", WORKER, os.path.join(d, "model.onnx"), os.path.join(d, "test_data_set_0"),
                            str(args.threads), str(args.repeat)], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["?"])[-1]
            skipped.append((group, name, why))
            print(f"  {group}/{name}: skipped: {why[:160]}")
            continue
        ort_ms, ts_ms = map(float, r.stdout.split())
        rows.append((group, name, ts_ms, ort_ms, ort_ms / max(ts_ms, 1e-9)))
        print(f"  {group:18s} {name:40s} tessera {ts_ms:8.4f} ms  ort {ort_ms:8.4f} ms  ratio {rows[-1][4]:5.2f}x",
              flush=True)
    if not rows:
        print("onnx_vs_ort: no model could be timed")
        return 1
    geo = math.exp(sum(math.log(r[4]) for r in rows) / len(rows))
    print(f"\nmodels: {len(rows)} timed, {len(skipped)} skipped; threads: {args.threads}; repeat: {args.repeat}; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"geometric mean of ORT time / Tessera time: {geo:.2f}x (> 1: Tessera faster)")
    for g in GROUPS:
        sub = [r for r in rows if r[0] == g]
        if sub:
            print(f"  {g}: {math.exp(sum(math.log(r[4]) for r in sub) / len(sub)):.2f}x over {len(sub)} models")
    print("worst five (Tessera slowest relative to ORT):")
    for r in sorted(rows, key=lambda r: r[4])[:5]:
        print(f"  {r[0]}/{r[1]}: tessera {r[2]:.4f} ms, ort {r[3]:.4f} ms, {r[4]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
