#!/usr/bin/env python3
"""Trains an MLP classifier on the 8x8 handwritten digits (sklearn's
load_digits, 1797 images) with Tessera, on the CPU plugin, through the
public C API (ctypes on libtessera; no Python binding needed).

Everything that computes is a Tessera function:
  * @loss: MLP (64 -> hidden -> 10, tanh) + softmax cross-entropy;
  * @loss_grad: built by reverse-mode autodiff, tessera_program_grad;
  * @sgd_momentum / @adam: the optimizer step over all four parameters.
The gradient and the update are compiled by tessera_compile and run with
tessera_module_run, one call each per minibatch.

    python3 docs/examples/train_digits.py [--optimizer adam|sgd] [--lib build/core/api/libtessera.so]
        [--plot docs/train_digits.png]

Prints loss and held-out accuracy per epoch, exits non-zero when the test
accuracy is below --target (0.95) or training takes longer than 60 s.
Needs: python3-numpy, python3-sklearn, python3-matplotlib (for --plot).
"""

import argparse
import ctypes as C
import os
import sys
import time
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------
# The programs (Graph IR text, docs/ir.md)

LOSS = """
# Softmax cross-entropy of a one-hidden-layer MLP over a batch of B images.
func @loss(%x: tensor<B x 64 x f32>, %y: tensor<B x 10 x f32>,
           %w1: tensor<64 x {H} x f32>, %b1: tensor<{H} x f32>,
           %w2: tensor<{H} x 10 x f32>, %b2: tensor<10 x f32>) -> (tensor<f32>, tensor<B x 10 x f32>) {{
  %h = matmul(%x, %w1)
  %hb = add(%h, %b1)
  %a = tanh(%hb)
  %z = matmul(%a, %w2)
  %logits = add(%z, %b2)
  %lp = log_softmax(%logits) {{axis = -1}}
  %ly = mul(%lp, %y)
  %per = reduce_sum(%ly) {{axes = [1]}}
  %mean = reduce_mean(%per)
  %l = neg(%mean)
  return %l, %logits
}}
"""

PARAMS = ["w1", "b1", "w2", "b2"]


def shapes(hidden):
    return {"w1": (64, hidden), "b1": (hidden,), "w2": (hidden, 10), "b2": (10,)}


def tensor_type(shape):
    return "tensor<" + " x ".join(str(d) for d in shape) + (" x " if shape else "") + "f32>"


def sgd_program(hidden):
    """p' = p - lr v', v' = mu v + g  (PyTorch's SGD with momentum)."""
    sh = shapes(hidden)
    params = ", ".join(f"%{n}: {tensor_type(sh[n])}, %g{n}: {tensor_type(sh[n])}, %v{n}: {tensor_type(sh[n])}"
                       for n in PARAMS)
    body, rets, types = [], [], []
    for n in PARAMS:
        body += [f"  %mv{n} = mul(%v{n}, %mu)", f"  %nv{n} = add(%mv{n}, %g{n})",
                 f"  %st{n} = mul(%nv{n}, %lr)", f"  %np{n} = sub(%{n}, %st{n})"]
        rets += [f"%np{n}", f"%nv{n}"]
        types += [tensor_type(sh[n])] * 2
    return (f"func @sgd_momentum({params}, %lr: tensor<f32>, %mu: tensor<f32>) -> ({', '.join(types)}) {{\n"
            + "\n".join(body) + f"\n  return {', '.join(rets)}\n}}\n")


def adam_program(hidden):
    """Adam (Kingma & Ba 2015) with the bias corrections folded into the
    step size lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), computed by the host:
    m' = b1 m + (1-b1) g, v' = b2 v + (1-b2) g^2, p' = p - lr_t m' / (sqrt(v') + eps)."""
    sh = shapes(hidden)
    params = ", ".join(f"%{n}: {tensor_type(sh[n])}, %g{n}: {tensor_type(sh[n])}, "
                       f"%m{n}: {tensor_type(sh[n])}, %v{n}: {tensor_type(sh[n])}" for n in PARAMS)
    body = ["  %one = constant() {value = 1.0} : tensor<f32>",
            "  %omb1 = sub(%one, %beta1)", "  %omb2 = sub(%one, %beta2)"]
    rets, types = [], []
    for n in PARAMS:
        body += [f"  %a{n} = mul(%m{n}, %beta1)", f"  %b{n} = mul(%g{n}, %omb1)", f"  %nm{n} = add(%a{n}, %b{n})",
                 f"  %gg{n} = mul(%g{n}, %g{n})", f"  %c{n} = mul(%v{n}, %beta2)", f"  %d{n} = mul(%gg{n}, %omb2)",
                 f"  %nv{n} = add(%c{n}, %d{n})", f"  %r{n} = sqrt(%nv{n})", f"  %re{n} = add(%r{n}, %eps)",
                 f"  %q{n} = div(%nm{n}, %re{n})", f"  %s{n} = mul(%q{n}, %lr)", f"  %np{n} = sub(%{n}, %s{n})"]
        rets += [f"%np{n}", f"%nm{n}", f"%nv{n}"]
        types += [tensor_type(sh[n])] * 3
    return (f"func @adam({params}, %lr: tensor<f32>, %beta1: tensor<f32>, %beta2: tensor<f32>, "
            f"%eps: tensor<f32>) -> ({', '.join(types)}) {{\n" + "\n".join(body) +
            f"\n  return {', '.join(rets)}\n}}\n")


# ---------------------------------------------------------------------------
# A minimal ctypes view of abi/include/tessera/tessera.h


class Status(Exception):
    pass


class ContextOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("next", C.c_void_p), ("plugin_path", C.c_char_p),
                ("flags", C.c_uint32)]


class DeviceInfo(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("plugin", C.c_char_p), ("name", C.c_char_p),
                ("architecture", C.c_char_p), ("features", C.c_char_p), ("memory_bytes", C.c_uint64),
                ("compute_units", C.c_uint32), ("ordinal", C.c_uint32), ("kind", C.c_int32)]


class CompileOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("next", C.c_void_p), ("entry", C.c_char_p),
                ("source_name", C.c_char_p), ("opt_level", C.c_uint32), ("dump", C.c_char_p),
                ("dump_callback", C.c_void_p), ("dump_user_data", C.c_void_p), ("cache_dir", C.c_char_p),
                ("schedule_file", C.c_char_p), ("bind", C.c_char_p)]


class CompileTarget(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("device", C.c_void_p), ("description", C.c_void_p)]


class RunOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("next", C.c_void_p), ("num_threads", C.c_uint32)]


class GradOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("next", C.c_void_p), ("mode", C.c_int32),
                ("loss_output", C.c_uint32), ("name", C.c_char_p), ("remat", C.c_char_p), ("flags", C.c_uint32)]


class TensorInfo(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("dtype", C.c_int32), ("rank", C.c_uint32),
                ("shape", C.POINTER(C.c_int64)), ("data", C.c_void_p), ("size_bytes", C.c_uint64),
                ("device", C.c_void_p), ("device_kind", C.c_int32), ("device_ordinal", C.c_int32)]


DTYPE_F32 = 2
DEVICE_KIND_CPU = 1


class Tessera:
    def __init__(self, lib_path, threads):
        self.lib = L = C.CDLL(str(lib_path))
        vp, pp = C.c_void_p, C.POINTER(C.c_void_p)
        for name, args in {
            "tessera_status_message": [vp], "tessera_status_free": [vp], "tessera_blob_data": [vp],
            "tessera_blob_size": [vp], "tessera_blob_free": [vp],
            "tessera_context_create": [vp, pp], "tessera_context_destroy": [vp],
            "tessera_device_count": [vp], "tessera_context_get_device": [vp, C.c_size_t, pp],
            "tessera_device_get_info": [vp, vp],
            "tessera_program_parse": [C.c_char_p, C.c_size_t, C.c_char_p, pp], "tessera_program_destroy": [vp],
            "tessera_program_print": [vp, pp],
            "tessera_program_grad": [vp, C.c_char_p, C.c_size_t, C.POINTER(C.c_char_p), vp, pp, pp],
            "tessera_compile": [vp, C.c_char_p, C.c_size_t, C.c_char_p, vp, vp, pp],
            "tessera_module_destroy": [vp], "tessera_module_output_count": [vp], "tessera_module_run": [vp, vp, C.c_size_t, pp, C.c_size_t, pp],
            "tessera_tensor_create": [vp, C.c_int32, C.c_uint32, C.POINTER(C.c_int64), pp],
            "tessera_tensor_get_info": [vp, vp], "tessera_tensor_copy_from_host": [vp, vp, C.c_uint64],
            "tessera_tensor_copy_to_host": [vp, vp, C.c_uint64], "tessera_tensor_free": [vp],
        }.items():
            f = getattr(L, name)
            f.argtypes = args
            f.restype = vp
        L.tessera_status_message.restype = C.c_char_p
        L.tessera_blob_size.restype = C.c_size_t
        L.tessera_device_count.restype = C.c_size_t
        L.tessera_module_output_count.restype = C.c_size_t
        self.ctx = C.c_void_p()
        self.check(L.tessera_context_create(None, C.byref(self.ctx)))
        self.device = None
        for i in range(L.tessera_device_count(self.ctx)):
            dev = C.c_void_p()
            self.check(L.tessera_context_get_device(self.ctx, i, C.byref(dev)))
            info = DeviceInfo(struct_size=C.sizeof(DeviceInfo))
            self.check(L.tessera_device_get_info(dev, C.byref(info)))
            if info.kind == DEVICE_KIND_CPU:
                self.device, self.device_name = dev, info.name.decode()
                break
        if self.device is None:
            raise Status("no CPU device: is the cpu plugin built (libtessera-backend-cpu.so)?")
        self.run_options = RunOptions(struct_size=C.sizeof(RunOptions), num_threads=threads)

    def check(self, status):
        if status:
            msg = self.lib.tessera_status_message(status).decode()
            self.lib.tessera_status_free(status)
            raise Status(msg)

    def blob(self, b):
        s = C.string_at(self.lib.tessera_blob_data(b), self.lib.tessera_blob_size(b)).decode()
        self.lib.tessera_blob_free(b)
        return s

    def grad_source(self, source, function, wrt):
        """The gradient function's text, via tessera_program_grad."""
        prog, gprog, text, warn = C.c_void_p(), C.c_void_p(), C.c_void_p(), C.c_void_p()
        src = source.encode()
        self.check(self.lib.tessera_program_parse(src, len(src), b"train_digits", C.byref(prog)))
        arr = (C.c_char_p * len(wrt))(*[w.encode() for w in wrt])
        opts = GradOptions(struct_size=C.sizeof(GradOptions), mode=0, loss_output=0)
        try:
            self.check(self.lib.tessera_program_grad(prog, function.encode(), len(wrt), arr, C.byref(opts),
                                                     C.byref(gprog), C.byref(warn)))
        finally:
            self.lib.tessera_program_destroy(prog)
        w = self.blob(warn)
        if w:
            print("tessera warning:", w, file=sys.stderr)
        self.check(self.lib.tessera_program_print(gprog, C.byref(text)))
        self.lib.tessera_program_destroy(gprog)
        return self.blob(text)

    def compile(self, source, entry):
        opts = CompileOptions(struct_size=C.sizeof(CompileOptions), entry=entry.encode(), opt_level=2)
        target = CompileTarget(struct_size=C.sizeof(CompileTarget), device=self.device)
        mod = C.c_void_p()
        src = source.encode()
        self.check(self.lib.tessera_compile(self.ctx, src, len(src), b"tessera-ir", C.byref(opts), C.byref(target),
                                            C.byref(mod)))
        return Module(self, mod)

    def tensor(self, array):
        a = np.asarray(array, dtype=np.float32, order="C")  # keeps rank 0
        shape = (C.c_int64 * max(a.ndim, 1))(*a.shape)
        t = C.c_void_p()
        self.check(self.lib.tessera_tensor_create(self.device, DTYPE_F32, a.ndim, shape, C.byref(t)))
        self.check(self.lib.tessera_tensor_copy_from_host(t, a.ctypes.data, a.nbytes))
        return t

    def to_numpy(self, t):
        info = TensorInfo(struct_size=C.sizeof(TensorInfo))
        self.check(self.lib.tessera_tensor_get_info(t, C.byref(info)))
        shape = tuple(info.shape[i] for i in range(info.rank))
        out = np.empty(shape, dtype=np.float32)
        self.check(self.lib.tessera_tensor_copy_to_host(t, out.ctypes.data, out.nbytes))
        return out


class Module:
    def __init__(self, ts, handle):
        self.ts, self.handle = ts, handle
        self.n_out = ts.lib.tessera_module_output_count(handle)

    def __call__(self, *arrays):
        L = self.ts.lib
        ins = [self.ts.tensor(a) for a in arrays]
        n_out = self.n_out
        in_arr = (C.c_void_p * len(ins))(*ins)
        out_arr = (C.c_void_p * n_out)()
        try:
            self.ts.check(L.tessera_module_run(self.handle, C.byref(self.ts.run_options), len(ins), in_arr, n_out,
                                               out_arr))
            outs = [self.ts.to_numpy(C.c_void_p(o)) for o in out_arr]
        finally:
            for t in ins:
                L.tessera_tensor_free(t)
            for o in out_arr:
                if o:
                    L.tessera_tensor_free(C.c_void_p(o))
        return outs


# ---------------------------------------------------------------------------


def find_lib(arg):
    if arg:
        return Path(arg)
    root = Path(__file__).resolve().parents[2]
    for build in ["build", "build-ad", "build-cpu", "build-rt"]:
        for p in (root / build).glob("**/libtessera.so"):
            return p
    sys.exit("libtessera.so not found: pass --lib")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="path to libtessera.so")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="default: 0.01 (adam), 0.1 (sgd)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--plot", help="write the loss/accuracy curves to this PNG")
    args = ap.parse_args()

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.2, random_state=args.seed,
                                              stratify=digits.target)
    onehot = np.eye(10, dtype=np.float32)

    lib = find_lib(args.lib)
    ts = Tessera(lib, args.threads)
    H = args.hidden
    loss_src = LOSS.format(H=H)
    grad_src = ts.grad_source(loss_src, "loss", PARAMS)
    t0 = time.perf_counter()
    step_mod = ts.compile(grad_src, "loss_grad")
    if args.optimizer == "adam":
        opt_mod = ts.compile(adam_program(H), "adam")
    else:
        opt_mod = ts.compile(sgd_program(H), "sgd_momentum")
    eval_mod = ts.compile(loss_src, "loss")
    compile_s = time.perf_counter() - t0
    print(f"device: {ts.device_name}; compiled gradient, {args.optimizer} step and eval in {compile_s:.2f} s")

    rng = np.random.default_rng(args.seed)
    sh = shapes(H)
    params = {"w1": rng.normal(0, 64 ** -0.5, sh["w1"]), "b1": np.zeros(sh["b1"]),
              "w2": rng.normal(0, H ** -0.5, sh["w2"]), "b2": np.zeros(sh["b2"])}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    state = {k: [np.zeros_like(v)] * (2 if args.optimizer == "adam" else 1) for k, v in params.items()}
    lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "adam" else 0.1)

    history = []
    step = 0
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_tr))
        losses = []
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            outs = step_mod(x_tr[idx], onehot[y_tr[idx]], *[params[k] for k in PARAMS])
            loss, grads = float(outs[0]), dict(zip(PARAMS, outs[2:]))
            losses.append(loss)
            step += 1
            ins = []
            for k in PARAMS:
                ins += [params[k], grads[k], *state[k]]
            if args.optimizer == "adam":
                b1, b2 = 0.9, 0.999
                lr_t = lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
                new = opt_mod(*ins, np.float32(lr_t), np.float32(b1), np.float32(b2), np.float32(1e-8))
                for j, k in enumerate(PARAMS):
                    params[k], state[k] = new[3 * j], [new[3 * j + 1], new[3 * j + 2]]
            else:
                new = opt_mod(*ins, np.float32(lr), np.float32(0.9))
                for j, k in enumerate(PARAMS):
                    params[k], state[k] = new[2 * j], [new[2 * j + 1]]
        test_loss, logits = eval_mod(x_te, onehot[y_te], *[params[k] for k in PARAMS])
        acc = float((logits.argmax(axis=1) == y_te).mean())
        elapsed = time.perf_counter() - t0
        history.append((epoch, float(np.mean(losses)), float(test_loss), acc, elapsed))
        print(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  test loss {float(test_loss):.4f}  "
              f"test acc {acc:.4f}  {elapsed:6.2f} s")
    train_s = time.perf_counter() - t0
    acc = history[-1][3]
    print(f"final test accuracy {acc:.4f} ({len(y_te)} held-out images), training {train_s:.1f} s "
          f"on {args.threads} threads, {step} steps")

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ep = [h[0] for h in history]
        fig, ax1 = plt.subplots(figsize=(7, 4))
        ax1.plot(ep, [h[1] for h in history], label="train loss")
        ax1.plot(ep, [h[2] for h in history], label="test loss")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("cross-entropy")
        ax2 = ax1.twinx()
        ax2.plot(ep, [h[3] for h in history], color="tab:green", label="test accuracy")
        ax2.set_ylabel("test accuracy")
        ax2.set_ylim(0.8, 1.0)
        lines = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        labels = ax1.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
        ax1.legend(lines, labels, loc="center right")
        ax1.set_title(f"Tessera, digits MLP ({args.optimizer}), CPU plugin: {acc:.1%} test accuracy in {train_s:.0f} s")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print("wrote", args.plot)

    ok = acc >= args.target and train_s < args.time_limit
    if not ok:
        print(f"FAILED: need >= {args.target:.0%} test accuracy in < {args.time_limit:.0f} s", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
