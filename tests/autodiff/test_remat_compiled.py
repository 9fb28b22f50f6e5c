"""Rematerialization through the normal pipeline: the gradient function of a
softmax chain whose ops are marked `checkpoint = true` is compiled for the CPU
plugin (tessera_compile: graph passes, CSE included, fusion, codegen), and
the runtime's buffer plan (tessera_module_get_stats) shows a lower peak of
live intermediates than without the marks, with the same gradients. Also
the Python binding's tessera.grad(remat=...) option.

Without remat all eight activations are live at the turn of the chain; with
it the forward copies die as the forward goes and each backward step holds
its incoming adjoint, the activation it recomputes (plus the one before it
while recomputing) and its outgoing adjoint: about 3 activations.

Environment: PYTHONPATH with the staged tessera package (tests/python).
"""

import numpy as np
import pytest

tessera = pytest.importorskip("tessera")

R = C = 256
LAYERS = 8
ACT = 4 * R * C  # bytes of one activation


def chain_source(checkpoint):
    """Eight softmaxes (row reductions: fusion keeps each in its own kernel,
    so without remat every activation is stored for the backward pass)."""
    mark = " {checkpoint = true}" if checkpoint else ""
    lines = [f"func @chain(%x: tensor<{R} x {C} x f32>, %c: tensor<{R} x {C} x f32>) -> tensor<f32> {{"]
    prev = "%x"
    for i in range(LAYERS):
        lines.append(f"  %t{i} = softmax({prev}){mark}")
        prev = f"%t{i}"
    lines += [f"  %p = mul({prev}, %c)", "  %l = reduce_sum(%p)", "  return %l", "}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def cpu():
    try:
        return tessera.default_context().device("cpu")
    except tessera.Error as e:
        pytest.skip(f"no CPU plugin: {e}")


def chain_inputs():
    rng = np.random.default_rng(5)
    return [rng.uniform(-2, 2, (R, C)).astype(np.float32), rng.uniform(-1, 1, (R, C)).astype(np.float32)]


def compiled_grad(cpu, source, **kw):
    g = tessera.grad(tessera.parse(source), wrt=["x"], target=cpu, **kw)
    gx = np.array(g(*chain_inputs()))
    return g, gx, g.compile(cpu).stats()


def expected_grad(x, c):
    ys, t = [], x.astype(np.float64)
    for _ in range(LAYERS):
        e = np.exp(t - t.max(axis=-1, keepdims=True))
        t = e / e.sum(axis=-1, keepdims=True)
        ys.append(t)
    g = c.astype(np.float64)
    for y in reversed(ys):
        g = y * (g - (g * y).sum(axis=-1, keepdims=True))
    return g


def test_checkpoint_lowers_compiled_peak(cpu):
    _, g_plain, s_plain = compiled_grad(cpu, chain_source(False))
    g, g_ck, s_ck = compiled_grad(cpu, chain_source(True))
    assert "checkpoint = true" in g.text
    want = expected_grad(*chain_inputs())
    scale = np.abs(want).max()
    np.testing.assert_allclose(g_plain, want, rtol=1e-3, atol=1e-4 * scale)
    # Bit-identical: the recomputed kernels are the forward's own softmaxes
    # and the backward fuses the same way with or without the marks.
    np.testing.assert_array_equal(g_ck, g_plain)
    print(f"peak live bytes: {s_plain['peak_live_bytes']} without checkpoint, {s_ck['peak_live_bytes']} with; "
          f"arena {s_plain['arena_bytes']} -> {s_ck['arena_bytes']}; kernels {s_plain['kernels']} -> {s_ck['kernels']}")
    assert s_plain["peak_live_bytes"] >= LAYERS * ACT, s_plain
    assert s_plain["arena_bytes"] >= LAYERS * ACT, s_plain
    # About three activations instead of eight: remat costs kernels, not memory.
    assert s_ck["kernels"] > s_plain["kernels"], (s_plain, s_ck)
    assert s_ck["peak_live_bytes"] <= 4 * ACT, (s_plain, s_ck)
    assert s_ck["peak_live_bytes"] <= s_plain["peak_live_bytes"] * 0.4, (s_plain, s_ck)
    assert s_ck["arena_bytes"] <= s_plain["arena_bytes"] * 0.4, (s_plain, s_ck)


def test_remat_option_of_tessera_grad(cpu):
    _, g_plain, s_plain = compiled_grad(cpu, chain_source(False))
    g, g_r, s_r = compiled_grad(cpu, chain_source(False), remat=[f"t{i}" for i in range(LAYERS)])
    assert ".remat" in g.text
    np.testing.assert_array_equal(g_r, g_plain)
    assert s_r["peak_live_bytes"] <= 4 * ACT, (s_plain, s_r)
    assert s_r["peak_live_bytes"] <= s_plain["peak_live_bytes"] * 0.4, (s_plain, s_r)
