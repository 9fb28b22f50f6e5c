"""@tessera.function: Graph IR built through the builder ABI, then compiled."""
import inspect

import numpy as np
import pytest

import tessera
from tessera import Tensor, ops


def test_annotations():
    t = Tensor["B", "S", "D"]
    assert isinstance(t, tessera.TensorType) and t.dims == ("B", "S", "D") and t.dtype == "f32"
    t = Tensor["B", 784, "bf16"]
    assert t.dims == ("B", 784) and t.dtype == "bf16"
    assert Tensor[("N",), np.float64].dtype == "f64"
    with pytest.raises(tessera.InvalidArgumentError):
        Tensor["B", 1.5]


def test_mlp_matches_numpy(cpu, rng):
    @tessera.function(target=cpu)
    def mlp(x: Tensor["B", 16], w: Tensor[16, 8], b: Tensor[8]):
        return ops.relu(x @ w + b) * 0.5

    assert "func @mlp(%x: tensor<B x 16 x f32>" in mlp.text
    x = rng.standard_normal((4, 16)).astype(np.float32)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    ref = np.maximum(x.astype(np.float64) @ w + b, 0) * 0.5
    np.testing.assert_allclose(mlp(x, w, b), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mlp.reference(x, w, b), ref, rtol=1e-5, atol=1e-6)


def test_methods_multiple_results_and_attributes(cpu, rng):
    @tessera.function(target=cpu)
    def f(x: Tensor["N", "D"]):
        y = ops.softmax(x, axis=-1)
        top, bottom = ops.split(x, axis=0, num=2)
        return y.sum(axes=1), (top - bottom).T, -abs(x).mean()

    x = rng.standard_normal((4, 3)).astype(np.float32)
    s, t, m = f(x)
    np.testing.assert_allclose(s, np.ones(4), rtol=1e-5)
    np.testing.assert_allclose(t, (x[:2] - x[2:]).T, rtol=1e-6)
    np.testing.assert_allclose(m, -np.abs(x).mean(), rtol=1e-5)


def test_symbolic_reshape_with_bind(cpu, rng):
    @tessera.function(target=cpu, bind={"H": 2})
    def heads(x: Tensor["S", "D"]):
        return x.reshape("S", "H", "D/H").astype("f64")

    x = rng.standard_normal((3, 8)).astype(np.float32)
    out = heads(x)
    assert out.dtype == np.float64 and out.shape == (3, 2, 4)
    np.testing.assert_array_equal(out, x.reshape(3, 2, 4))


def test_shape_error_points_at_the_python_line():
    def bad(a: Tensor["N", 3], b: Tensor["N", 4]):
        return a + b  # the offending line
    line = inspect.getsourcelines(bad)[1] + 1
    with pytest.raises(tessera.ShapeMismatchError) as e:
        tessera.trace(bad)
    assert e.value.location is not None and e.value.location[1] == line, e.value
    assert e.value.location[0].endswith("test_tracing.py")


def test_missing_annotation_and_bad_values():
    def f(x):
        return x
    with pytest.raises(tessera.InvalidArgumentError, match="annotation"):
        tessera.trace(f)

    def g(x: Tensor["N"]):
        return x + "nope"
    with pytest.raises(tessera.InvalidArgumentError, match="str"):
        tessera.trace(g)

    def h(x: Tensor["N"]):
        if x:
            return x
    with pytest.raises(TypeError, match="truth value"):
        tessera.trace(h)
    with pytest.raises(tessera.InvalidArgumentError, match="while tracing"):
        ops.relu(1)


def test_unknown_op_is_invalid_ir():
    def f(x: Tensor["N"]):
        return ops.frobnicate(x)
    with pytest.raises(tessera.InvalidIRError, match="frobnicate"):
        tessera.trace(f)


def _need_grad():
    if not tessera._lib.has("tessera_program_grad"):
        with pytest.raises(tessera.UnsupportedError, match="tessera_program_grad"):
            tessera.grad(tessera.parse("func @main(%x: tensor<f32>) -> tensor<f32> {\n  return %x\n}"))
        pytest.skip("libtessera has no tessera_program_grad yet (autodiff not in the ABI)")


def test_grad_of_a_traced_function(cpu, rng):
    _need_grad()

    @tessera.function(target=cpu)
    def loss(x: Tensor["N"], w: Tensor["N"]):
        return (x * w * x).sum()

    g = tessera.grad(loss)
    assert "func @loss_grad" in g.text
    x, w = rng.standard_normal((2, 6)).astype(np.float32)
    gx, gw = g(x, w)
    np.testing.assert_allclose(gx, 2 * w * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, x * x, rtol=1e-5, atol=1e-6)
    gx_only = tessera.grad(loss, wrt="x")(x, w)
    np.testing.assert_allclose(gx_only, 2 * w * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tessera.grad(loss, wrt=["w"]).reference(x, w), x * x, rtol=1e-5)


def test_grad_errors():
    _need_grad()

    @tessera.function
    def not_scalar(x: Tensor["N"]):
        return x * x
    with pytest.raises(tessera.InvalidArgumentError):
        tessera.grad(not_scalar)

    @tessera.function
    def f(x: Tensor["N"]):
        return x.sum()
    with pytest.raises(tessera.NotFoundError):
        tessera.grad(f, wrt="nope")
