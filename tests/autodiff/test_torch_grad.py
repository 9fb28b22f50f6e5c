"""Gradients of docs/examples (the MLP and the transformer block) against
PyTorch autograd on the same random weights.

The gradient function is built by `tessera grad --vjp` (the public C API,
tessera_program_grad) and evaluated by the float64 reference interpreter
driver `tessera-ref-eval`, which rounds every op to the program's dtypes.
PyTorch computes in float64, so tolerances follow the program's dtype.

Environment: TESSERA_CLI (the `tessera` binary) and TESSERA_REF_EVAL.
"""

import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (Debian python3-torch) is not installed")
F = torch.nn.functional

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def tool(var):
    p = os.environ.get(var)
    if not p or not Path(p).exists():
        pytest.skip(f"{var} is not set to a built binary")
    return p


def tessera_grad(src_text, wrt, workdir):
    src = workdir / "f.tsr"
    src.write_text(src_text)
    out = workdir / "g.tsr"
    p = subprocess.run([tool("TESSERA_CLI"), "grad", str(src), "--vjp", "--wrt", ",".join(wrt), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr
    text = out.read_text()
    name = re.search(r"func @(\w+)", text).group(1)
    return out, name, text


def ref_eval(path, fn, inputs, n_out, workdir):
    args = [tool("TESSERA_REF_EVAL"), str(path), fn]
    for i, x in enumerate(inputs):
        f = workdir / f"in{i}.npy"
        np.save(f, np.asarray(x, dtype=np.float64))
        args += ["-i", str(f)]
    for i in range(n_out):
        args += ["-o", str(workdir / f"out{i}.npy")]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return [np.load(workdir / f"out{i}.npy") for i in range(n_out)]


def torch_vjp(fn, inputs, wrt_idx, ct):
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=(i in wrt_idx)) for i, x in enumerate(inputs)]
    y = fn(*ts)
    grads = torch.autograd.grad(y, [ts[i] for i in wrt_idx], torch.tensor(ct, dtype=torch.float64))
    return y.detach().numpy(), [g.numpy() for g in grads]


def check_close(got, want, rtol, atol_frac, what):
    atol = atol_frac * max(np.abs(want).max(), 1e-12)
    err = np.abs(got - want).max()
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert np.allclose(got, want, rtol=rtol, atol=atol), f"{what}: max abs error {err:.3g} (atol {atol:.3g})"


def rel_err(got, want):
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


# ---------------------------------------------------------------------------
# MLP (docs/examples/mlp.tsr)


def mlp_torch(x, w1, b1, w2, b2):
    a = F.gelu(x @ w1 + b1, approximate="tanh")
    return F.softmax(a @ w2 + b2, dim=-1)


def test_mlp_matches_pytorch():
    rng = np.random.default_rng(0)
    B = 4
    shapes = [(B, 784), (784, 256), (256,), (256, 10), (10,)]
    scale = [1.0, 784 ** -0.5, 0.1, 256 ** -0.5, 0.1]
    inputs = [rng.uniform(-1, 1, s) * k for s, k in zip(shapes, scale)]
    ct = rng.uniform(-1, 1, (B, 10))
    wrt = ["x", "w1", "b1", "w2", "b2"]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        path, name, _ = tessera_grad((EXAMPLES / "mlp.tsr").read_text(), wrt, d)
        outs = ref_eval(path, name, inputs + [ct], 1 + len(wrt), d)
    y, grads = torch_vjp(mlp_torch, inputs, list(range(5)), ct)
    check_close(outs[0], y, 1e-4, 1e-5, "output")
    for n, g, want in zip(wrt, outs[1:], grads):
        check_close(g, want, 2e-3, 2e-4, f"d/d{n}")  # f32 program


# ---------------------------------------------------------------------------
# Transformer block (docs/examples/transformer_block.tsr)

WRT_BLOCK = ["x", "ln1_g", "ln1_b", "wq", "wk", "wv", "wo", "ln2_g", "ln2_b", "w1", "w2"]


def block_torch(H):
    def f(x, ln1_g, ln1_b, wq, wk, wv, wo, ln2_g, ln2_b, w1, w2):
        B, S, D = x.shape
        h = F.layer_norm(x, (D,), ln1_g, ln1_b, eps=1e-5)

        def heads(t):
            return t.reshape(B, S, H, D // H).permute(0, 2, 1, 3)

        q, k, v = heads(h @ wq), heads(h @ wk), heads(h @ wv)
        s = q @ k.transpose(-1, -2) * (D // H) ** -0.5
        mask = torch.ones(S, S, dtype=torch.bool).tril()
        s = torch.where(mask, s, torch.tensor(float("-inf"), dtype=s.dtype))
        att = torch.softmax(s, dim=-1) @ v
        a = att.permute(0, 2, 1, 3).reshape(B, S, D)
        r1 = x + a @ wo
        h2 = F.layer_norm(r1, (D,), ln2_g, ln2_b, eps=1e-5)
        return r1 + F.gelu(h2 @ w1) @ w2

    return f


def block_inputs(rng, B, S, D):
    shapes = [(B, S, D), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (D, 4 * D), (4 * D, D)]
    out = []
    for s in shapes:
        if len(s) == 1:
            out.append(rng.uniform(0.5, 1.5, s) if len(out) in (1, 7) else rng.uniform(-0.2, 0.2, s))
        elif len(s) == 2:
            out.append(rng.uniform(-1, 1, s) * s[0] ** -0.5)
        else:
            out.append(rng.uniform(-1, 1, s))
    return out


def block_source(dtype_text, H):
    text = (EXAMPLES / "transformer_block.tsr").read_text()
    # The head count only appears in the head-split annotations: the
    # reference driver binds no free symbols, so specialize H here.
    text = text.replace("H x D/H", f"{H} x D/{H}")
    if dtype_text != "bf16":
        text = text.replace("bf16 @accum(f32)", dtype_text).replace("bf16", dtype_text)
    return text


@pytest.mark.parametrize("B,S,D,H", [(2, 4, 8, 2), (1, 5, 12, 3)])
def test_transformer_block_f32_matches_pytorch(B, S, D, H):
    rng = np.random.default_rng(B * 100 + S)
    inputs = block_inputs(rng, B, S, D)
    ct = rng.uniform(-1, 1, (B, S, D))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        path, name, _ = tessera_grad(block_source("f32", H), WRT_BLOCK, d)
        outs = ref_eval(path, name, inputs + [ct], 1 + len(WRT_BLOCK), d)
    y, grads = torch_vjp(block_torch(H), inputs, list(range(len(WRT_BLOCK))), ct)
    check_close(outs[0], y, 1e-4, 1e-5, "output")
    for n, g, want in zip(WRT_BLOCK, outs[1:], grads):
        check_close(g, want, 3e-3, 1e-3, f"d/d{n}")


def test_transformer_block_bf16_close_to_pytorch():
    """The example as written (bf16 @accum(f32)): every op rounds to bf16
    (8-bit mantissa), so only relative error norms are checked."""
    B, S, D, H = 2, 4, 8, 2
    rng = np.random.default_rng(7)
    inputs = block_inputs(rng, B, S, D)
    ct = rng.uniform(-1, 1, (B, S, D))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        path, name, text = tessera_grad(block_source("bf16", H), WRT_BLOCK, d)
        # Inputs as the program sees them (rounded to bf16) for PyTorch too.
        bf = [torch.tensor(x).to(torch.bfloat16).double().numpy() for x in inputs + [ct]]
        outs = ref_eval(path, name, bf, 1 + len(WRT_BLOCK), d)
    y, grads = torch_vjp(block_torch(H), bf[:-1], list(range(len(WRT_BLOCK))), bf[-1])
    assert rel_err(outs[0], y) < 0.02
    for n, g, want in zip(WRT_BLOCK, outs[1:], grads):
        assert rel_err(g, want) < 0.08, f"d/d{n}: relative error {rel_err(g, want):.3g}"


def test_cli_errors_are_clear():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = d / "f.tsr"
        src.write_text("func @f(%x: tensor<4 x f32>, %i: tensor<4 x i64>) -> tensor<f32> {\n"
                       "  %s = reduce_sum(%x)\n  return %s\n}\n")
        cli = tool("TESSERA_CLI")
        p = subprocess.run([cli, "grad", str(src), "--wrt", "i"], capture_output=True, text=True)
        assert p.returncode != 0 and "not a float tensor" in p.stderr, p.stderr
        p = subprocess.run([cli, "grad", str(src), "--wrt", "nope"], capture_output=True, text=True)
        assert p.returncode != 0 and "no parameter 'nope'" in p.stderr, p.stderr
        src.write_text("func @f(%x: tensor<4 x f32>, %w: tensor<4 x f32>) -> tensor<f32> {\n"
                       "  %s = reduce_sum(%x)\n  return %s\n}\n")
        p = subprocess.run([cli, "grad", str(src), "--wrt", "x,w"], capture_output=True, text=True)
        assert p.returncode == 0 and "warning: %w does not reach" in p.stderr, p.stderr
        assert "return %s, %grad.x" in p.stdout, p.stdout
        p = subprocess.run([cli, "grad", str(src), "--wrt", "w", "--strict"], capture_output=True, text=True)
        assert p.returncode != 0 and "does not reach" in p.stderr, p.stderr


def test_compiled_transformer_block_grad_matches_pytorch():
    """The gradient function through the normal pipeline: compiled for the
    CPU plugin (tessera_compile) and run (tessera_module_run), f32."""
    lib = os.environ.get("TESSERA_LIB")
    if not lib or not Path(lib).exists():
        pytest.skip("TESSERA_LIB is not set to a built libtessera.so")
    import ctypes as C
    import sys
    sys.dont_write_bytecode = True  # keep docs/examples clean
    sys.path.insert(0, str(EXAMPLES))
    import train_digits as T  # the ctypes view of the C API

    try:
        ts = T.Tessera(lib, 2)
    except T.Status as e:
        pytest.skip(f"no CPU device: {e}")
    B, S, D, H = 2, 4, 8, 2
    src = block_source("f32", "H").encode()
    prog, gprog, text = C.c_void_p(), C.c_void_p(), C.c_void_p()
    ts.check(ts.lib.tessera_program_parse(src, len(src), b"tb", C.byref(prog)))
    arr = (C.c_char_p * len(WRT_BLOCK))(*[w.encode() for w in WRT_BLOCK])
    opts = T.GradOptions(struct_size=C.sizeof(T.GradOptions), mode=1)  # VJP
    ts.check(ts.lib.tessera_program_grad(prog, None, len(WRT_BLOCK), arr, C.byref(opts), C.byref(gprog), None))
    ts.lib.tessera_program_destroy(prog)
    ts.check(ts.lib.tessera_program_print(gprog, C.byref(text)))
    ts.lib.tessera_program_destroy(gprog)
    gsrc = ts.blob(text).encode()
    copts = T.CompileOptions(struct_size=C.sizeof(T.CompileOptions), entry=b"transformer_block_vjp", opt_level=2,
                             bind=f"H={H}".encode())
    target = T.CompileTarget(struct_size=C.sizeof(T.CompileTarget), device=ts.device)
    mod = C.c_void_p()
    ts.check(ts.lib.tessera_compile(ts.ctx, gsrc, len(gsrc), b"tessera-ir", C.byref(copts), C.byref(target),
                                    C.byref(mod)))
    rng = np.random.default_rng(11)
    inputs = block_inputs(rng, B, S, D)
    ct = rng.uniform(-1, 1, (B, S, D))
    outs = T.Module(ts, mod)(*inputs, ct)
    y, grads = torch_vjp(block_torch(H), inputs, list(range(len(WRT_BLOCK))), ct)
    check_close(outs[0], y, 1e-3, 1e-4, "output")
    for n, g, want in zip(WRT_BLOCK, outs[1:], grads):
        check_close(g, want, 5e-3, 2e-3, f"compiled d/d{n}")
    ts.lib.tessera_module_destroy(mod)
