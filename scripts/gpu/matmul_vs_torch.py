#!/usr/bin/env python3
"""A compiled bf16 matmul against torch.matmul (cuBLAS), timed INTERLEAVED in
one process (issue 6: "with the library choice available, a compiled matmul
is never below 0.98x cuBLAS").

For each shape (M, N, K): compiles `c = matmul(a, b)` (bf16 [M, K] x [K, N],
static dims) for the `cuda` plugin with the default schedule (the cost model
picks cuBLASLt where it wins; TESSERA_CUDA_LIBRARY is left as it is found and
named in the table when set), runs it on torch.cuda bf16 tensors through the
module call with asynchronous=True (the torch fast path: DLPack, zero copy),
checks ||out - ref|| / ||ref|| <= 2e-2 against torch's float32 product of the
same bf16 inputs, and times both sides against each other:

  * per round, N back-to-back calls of one side between two CUDA events, then
    N of the other side; the side that goes first alternates by round, so
    clock and thermal drift hit both sides alike (the tessera-cuda-bench and
    cuda_bench.py numbers are minutes apart, and drift alone moved that ratio
    between 0.94x and 1.00x at 8192^3);
  * N is chosen so that one batch takes >= TESSERA_MATMUL_BATCH_MS (10 ms);
    before each batch a spin kernel (torch.cuda._sleep, ~1 ms) keeps the GPU
    busy while the host enqueues, so the first calls' host latency stays
    hidden too; the host's enqueue time per call is reported, and a side
    whose host time per call reaches its GPU time is flagged (then the host,
    not the kernel, sets the pace);
  * TESSERA_MATMUL_ROUNDS rounds (15) after one discarded warm-up round.

Reports per shape: the per-call median of each side over rounds, the median
of the per-round ratios torch ms / Tessera ms (x cuBLAS: > 1 Tessera faster)
and its min / max over rounds, and the path the plugin took (from
TESSERA_CUDA_LOG_PATHS). Prints one table last (device, torch version, date)
and then one summary line. Exit status 1 on a numerics failure (or an error);
a ratio below 0.98 is reported, not failed.

Without a CUDA device (or without torch) it is a dry run: timing is skipped
with the reason printed; where the binding and the cuda plugin load, each
program is compiled for sm_90a without a device (compile-only) and the
plugin's launch modes for it are shown.

Run from the repo root with TESSERA_LIBRARY at the bundle's libtessera and
PYTHONPATH at bindings/python (scripts/gpu/cuda_checks.sh, step `matmul`).
TESSERA_MATMUL_SHAPES=MxNxK,... picks the shapes (default below).
"""
import datetime
import math
import os
import statistics
import sys
import tempfile
import time

# The plugin names each kernel's path (cuBLASLt direct, wgmma, ...) once on
# stderr; read before the plugin's first launch.
os.environ.setdefault("TESSERA_CUDA_LOG_PATHS", "1")

TOL = 2e-2          # bf16 outputs (8 mantissa bits) after f32 accumulation
TARGET = 0.98       # issue 6: never below 0.98x cuBLAS with the library choice
ROUNDS = int(os.environ.get("TESSERA_MATMUL_ROUNDS", "15"))
BATCH_MS = float(os.environ.get("TESSERA_MATMUL_BATCH_MS", "10"))
PREFILL_MS = 1.0    # spin before each batch (host enqueue hidden behind it)
WARMUP = 5
# (M, N, K): square 4096 and 8192; the transformer block's projections
# (D=2048, B*S=8192): Q/K/V/out (8192x2048x2048), MLP up (8192x8192x2048),
# MLP down (8192x2048x8192).
SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (8192, 2048, 2048), (8192, 8192, 2048), (8192, 2048, 8192)]


def shapes_from_env():
    spec = os.environ.get("TESSERA_MATMUL_SHAPES")
    if not spec:
        return SHAPES
    out = []
    for item in spec.split(","):
        dims = [int(d) for d in item.lower().split("x")]
        out.append(tuple(dims * 3) if len(dims) == 1 else tuple(dims))
    return out


def program(M, N, K):
    return (f"func @main(%a: tensor<{M} x {K} x bf16>, %b: tensor<{K} x {N} x bf16>) -> tensor<{M} x {N} x bf16> {{\n"
            "  %c = matmul(%a, %b)\n"
            "  return %c\n"
            "}\n")


def label(shape):
    return "x".join(str(d) for d in shape)


class CapturedStderr:
    """Captures file descriptor 2 (the plugin writes with fprintf(stderr))
    and passes it on afterwards, so the log keeps it."""

    def __enter__(self):
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()
        sys.stderr.write(self.text)
        sys.stderr.flush()
        return False


def path_of(log):
    """Short form of the plugin's path lines ("cuda: kernel 'x': ...")."""
    paths = []
    for line in log.splitlines():
        if "cuBLASLt did not run" in line:
            paths.append("generated (cuBLASLt refused)")
            continue
        if not line.startswith("cuda: kernel '") or "': " not in line:
            continue
        rest = line.split("': ", 1)[1]
        short = rest.split(",")[0].split(" grid ")[0].strip()
        if short.startswith("cuBLASLt") and not any(w in short for w in ("direct", "epilogue")):
            continue  # the tuning note that follows the path line
        if short not in paths:
            paths.append(short)
    return "; ".join(paths) if paths else "?"


def dry_run(shapes, reason):
    """No GPU: compile-only for sm_90a where the binding and the plugin load."""
    print(f"dry run: {reason}; timing skipped")
    try:
        import tessera
    except Exception as e:
        print(f"dry run: the Python binding does not import ({type(e).__name__}: {e}); nothing compiled")
        return 0
    plugins = {p.name: p for p in tessera.default_context().plugins()}
    cuda = plugins.get("cuda")
    if cuda is None or cuda.state != "loaded":
        why = "not found" if cuda is None else f"{cuda.state}: {cuda.reason}"
        print(f"dry run: the cuda plugin is not loaded ({why}); nothing compiled")
        return 0
    failed = 0
    for shape in shapes:
        M, N, K = shape
        modes = []

        def dump(stage, text):
            modes.extend(line.split(": ", 1)[-1] for line in text.splitlines() if line.startswith("kernel ") and "modes" in line)
        try:
            module = tessera.compile(program(M, N, K), target=tessera.DeviceDescription("cuda", "sm_90a"),
                                     dump="tile", dump_callback=dump)
            print(f"  {label(shape):<16} compiled for sm_90a (compile-only): {module.inputs[0].shape} x "
                  f"{module.inputs[1].shape}; {'; '.join(modes) or 'modes not dumped'}")
        except Exception as e:
            failed += 1
            print(f"  {label(shape):<16} FAIL compile: {type(e).__name__}: {e}")
    print(f"matmul vs torch.matmul: dry run ({reason}); {len(shapes) - failed} compiled, {failed} failed")
    return 1 if failed else 0


def main():
    shapes = shapes_from_env()
    try:
        import torch
    except Exception as e:
        return dry_run(shapes, f"torch does not import ({type(e).__name__}: {e})")
    if not torch.cuda.is_available():
        return dry_run(shapes, f"no CUDA device for torch {torch.__version__}")
    import tessera

    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference in float32
    torch.manual_seed(0)
    Event = torch.cuda.Event

    # The pre-fill spin: calibrate torch.cuda._sleep's cycles per ms once.
    spin = getattr(torch.cuda, "_sleep", None)
    cycles_per_ms = 0
    if spin is not None:
        spin(1000)
        s, e = Event(enable_timing=True), Event(enable_timing=True)
        s.record()
        spin(2_000_000)
        e.record()
        e.synchronize()
        cycles_per_ms = 2_000_000 / max(s.elapsed_time(e), 1e-3)
    prefill = int(PREFILL_MS * cycles_per_ms)

    def batch(fn, n):
        """n calls of fn between two events, after the pre-fill spin.
        Returns (start, end, host ms per call)."""
        if prefill:
            spin(prefill)
        s, e = Event(enable_timing=True), Event(enable_timing=True)
        s.record()
        h0 = time.perf_counter()
        for _ in range(n):
            fn()
        h1 = time.perf_counter()
        e.record()
        return s, e, (h1 - h0) * 1e3 / n

    lib = os.environ.get("TESSERA_CUDA_LIBRARY")
    print(f"matmul vs torch.matmul, interleaved: {ROUNDS} rounds, batches >= {BATCH_MS:g} ms, "
          f"pre-fill spin {PREFILL_MS if prefill else 0:g} ms; schedule: "
          f"{'TESSERA_CUDA_LIBRARY=' + lib if lib else 'default (cost model)'}")
    rows = []
    for shape in shapes:
        M, N, K = shape
        row = {"shape": shape, "path": "-"}
        rows.append(row)
        try:
            t0 = time.perf_counter()
            module = tessera.compile(program(M, N, K), target="cuda", source_name=f"matmul_{label(shape)}.tsr")
            compile_s = time.perf_counter() - t0
            a = torch.randn(M, K, device="cuda").to(torch.bfloat16)
            b = (torch.randn(K, N, device="cuda") / math.sqrt(K)).to(torch.bfloat16)
            torch.cuda.synchronize()

            def tess():
                return module(a, b, asynchronous=True)

            def peer():
                return torch.matmul(a, b)

            # First call: the plugin's path lines; then numerics. Asynchronous
            # runs go on the plugin's blocking stream, so torch's
            # default-stream reads (and the timing events) are ordered after
            # them.
            with CapturedStderr() as cap:
                out = tess()
                torch.cuda.synchronize()
            row["path"] = path_of(cap.text)
            out = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(out, torch.Tensor) or not out.is_cuda:
                raise TypeError(f"the module call returned {type(out).__name__}, not a torch.cuda tensor "
                                "(the torch fast path was not taken)")
            with torch.no_grad():
                ref = a.float() @ b.float()
                norm = torch.linalg.vector_norm(ref)
                row["err"] = (torch.linalg.vector_norm(out.float() - ref) / norm).item()
                row["peer_err"] = (torch.linalg.vector_norm(peer().float() - ref) / norm).item()
                finite = bool(torch.isfinite(out).all().item())
            del out, ref
            torch.cuda.empty_cache()
            ok = finite and row["err"] <= TOL
            row["status"] = "ok" if ok else ("FAIL: non-finite output" if not finite
                                             else f"FAIL: rel err {row['err']:.2e} > {TOL}")
            print(f"{label(shape)}: compiled in {compile_s:.2f} s; path {row['path']}; rel err "
                  f"{row['err']:.2e} (torch {row['peer_err']:.2e}) {row['status']}")

            # Warm-up, then N from one short batch of each side.
            for fn in (tess, peer):
                for _ in range(WARMUP):
                    fn()
            torch.cuda.synchronize()
            est = []
            for fn in (tess, peer):
                s, e, _ = batch(fn, 3)
                e.synchronize()
                est.append(s.elapsed_time(e) / 3)
            n = max(2, min(5000, math.ceil(BATCH_MS / max(min(est), 1e-3))))

            t_ms, p_ms, ratios, t_host, p_host = [], [], [], [], []
            for r in range(ROUNDS + 1):
                order = (("t", tess), ("p", peer)) if r % 2 == 0 else (("p", peer), ("t", tess))
                got = {side: batch(fn, n) for side, fn in order}
                got[order[1][0]][1].synchronize()
                if r == 0:
                    continue  # warm-up round (the pair's first interleaving)
                tt = got["t"][0].elapsed_time(got["t"][1]) / n
                pp = got["p"][0].elapsed_time(got["p"][1]) / n
                t_ms.append(tt)
                p_ms.append(pp)
                ratios.append(pp / tt)
                t_host.append(got["t"][2])
                p_host.append(got["p"][2])
            flops = 2.0 * M * N * K
            row.update(n=n, tessera_ms=statistics.median(t_ms), peer_ms=statistics.median(p_ms),
                       ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                       tessera_host=statistics.median(t_host), peer_host=statistics.median(p_host), flops=flops)
            bound = [side for side, h, g in (("tessera", row["tessera_host"], row["tessera_ms"]),
                                             ("torch", row["peer_host"], row["peer_ms"])) if h >= 0.9 * g]
            row["host_bound"] = bound
            print(f"{label(shape)}: N={n} x {ROUNDS} rounds; tessera {row['tessera_ms']:.4f} ms, torch "
                  f"{row['peer_ms']:.4f} ms per call; x cuBLAS median {row['ratio']:.3f} (min {row['ratio_min']:.3f}, "
                  f"max {row['ratio_max']:.3f}); per-round ratios " + " ".join(f"{x:.3f}" for x in ratios) +
                  (f"; host-bound: {', '.join(bound)}" if bound else ""))
            del a, b
            module.close()
            torch.cuda.empty_cache()
        except Exception as e:  # report and go on with the next shape
            row["status"] = f"FAIL: {type(e).__name__}: {e}"[:200]
            print(f"{label(shape)}: {row['status']}")
        sys.stdout.flush()

    failed = sum(not x.get("status", "").startswith("ok") for x in rows)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print()
    print(f"Tessera matmul (bf16, default schedule{', TESSERA_CUDA_LIBRARY=' + lib if lib else ''}) vs torch.matmul "
          f"(cuBLAS) on {torch.cuda.get_device_name()}, torch {torch.__version__}, {date}")
    print(f"interleaved: {ROUNDS} rounds of N calls per side (alternating first side), CUDA events per batch; "
          "ms = per-call median over rounds")
    hdr = (f"{'M x N x K':<17}{'path':<22}{'N':>5}{'tessera ms':>11}{'torch ms':>10}{'tessera':>12}{'torch':>12}"
           f"{'x cuBLAS':>9}{'min':>7}{'max':>7}{'host ms t/p':>14}{'rel err':>10}  status")
    print(hdr)
    print("-" * len(hdr))
    below = []
    for x in rows:
        shp = label(x["shape"])
        if "ratio" not in x:
            err = f"{x['err']:.2e}" if "err" in x else "-"
            print(f"{shp:<17}{x['path'][:21]:<22}{'-':>5}{'-':>11}{'-':>10}{'-':>12}{'-':>12}{'-':>9}{'-':>7}{'-':>7}"
                  f"{'-':>14}{err:>10}  {x['status']}")
            continue
        if x["ratio"] < TARGET:
            below.append((x["ratio"], shp))
        note = x["status"]
        if x["ratio"] < TARGET:
            note += f"; below {TARGET}x"
        if x["host_bound"]:
            note += f"; host-bound: {'/'.join(x['host_bound'])}"
        tf = lambda ms: f"{x['flops'] / (ms * 1e-3) / 1e12:6.1f} TF/s"
        print(f"{shp:<17}{x['path'][:21]:<22}{x['n']:>5}{x['tessera_ms']:>11.4f}{x['peer_ms']:>10.4f}"
              f"{tf(x['tessera_ms']):>12}{tf(x['peer_ms']):>12}{x['ratio']:>9.3f}{x['ratio_min']:>7.3f}"
              f"{x['ratio_max']:>7.3f}{x['tessera_host']:>7.3f}/{x['peer_host']:<6.3f}{x['err']:>10.2e}  {note}")
    print(f"x cuBLAS = median over rounds of (torch ms / Tessera ms) in the same round (> 1: Tessera faster), "
          f"min/max over rounds; host ms = enqueue time per call (Tessera / torch); rel err = "
          f"||out - ref|| / ||ref|| vs float32 (<= {TOL})")
    timed = [x for x in rows if "ratio" in x]
    low = min(timed, key=lambda x: x["ratio"]) if timed else None
    print(f"matmul vs torch.matmul (interleaved): {len(rows) - failed} ok, {failed} failed; x cuBLAS >= {TARGET} on "
          f"{len(timed) - len(below)} of {len(rows)}" +
          (f" (lowest {low['ratio']:.3f} at {label(low['shape'])})" if low else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
