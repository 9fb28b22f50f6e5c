"""Module.__call__'s fast path (NumPy in, NumPy out on CPU devices): input
tensors imported once per call frame and reused for the same address and
shape, small outputs copied into fresh arrays, large ones exported zero
copy. Each case checks numbers against NumPy and that no result aliases
memory a later call reuses."""
import gc

import numpy as np
import pytest

import tessera
from tessera import core
from conftest import ADD

ADD2D = ADD.replace("N x f32", "N x M x f32")
SCALE = """
func @main(%a: tensor<N x f32>) -> tensor<N x f32> {
  %c = mul(%a, %a)
  return %c
}
"""


def test_fast_path_is_taken(target):
    m = tessera.compile(ADD, target=target)
    assert m._fast
    a = np.ones(4, np.float32)
    m(a, a)
    # One frame, holding the two imported inputs for the next call.
    assert len(m._frames) == 1 and all(m._frames[0].ins)


def test_repeated_calls_with_different_arrays(target, rng):
    m = tessera.compile(ADD, target=target)
    results, expected = [], []
    for _ in range(20):
        a, b = rng.standard_normal((2, 7)).astype(np.float32)
        results.append(m(a, b))
        expected.append(a + b)
    for got, want in zip(results, expected):  # earlier results were not overwritten
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_same_array_updated_in_place_between_calls(target):
    m = tessera.compile(ADD, target=target)
    a = np.arange(5, dtype=np.float32)
    first = m(a, a)
    a[:] = 10.0                      # same address and shape: the kept tensor views new data
    second = m(a, a)
    np.testing.assert_array_equal(first, 2 * np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(second, np.full(5, 20.0, np.float32))
    assert first is not second and not np.shares_memory(first, second)


def test_outputs_are_fresh_owned_arrays(cpu):
    m = tessera.compile(ADD, target=cpu)
    a = np.ones(3, np.float32)
    x = m(a, a)
    y = m(a, a)
    assert x.flags.c_contiguous and x.flags.writeable and not np.shares_memory(x, y)
    x[0] = -1.0
    np.testing.assert_array_equal(y, [2, 2, 2])
    assert not np.shares_memory(x, a)


def test_shapes_change_between_calls(target, rng):
    m = tessera.compile(ADD2D, target=target)
    for shape in ((2, 3), (4, 5), (2, 3), (1, 1), (4, 5), (6, 1)):
        a, b = rng.standard_normal((2,) + shape).astype(np.float32)
        out = m(a, b)
        assert out.shape == shape
        np.testing.assert_allclose(out, a + b, rtol=1e-6)


def test_same_buffer_reinterpreted_with_another_shape(cpu):
    """Same address, other shape (a reshaped view): a new import, and the
    output shape follows."""
    m = tessera.compile(ADD2D, target=cpu)
    base = np.arange(12, dtype=np.float32)
    np.testing.assert_array_equal(m(base.reshape(3, 4), base.reshape(3, 4)), 2 * base.reshape(3, 4))
    np.testing.assert_array_equal(m(base.reshape(4, 3), base.reshape(4, 3)), 2 * base.reshape(4, 3))
    np.testing.assert_array_equal(m(base.reshape(2, 6), base.reshape(2, 6)), 2 * base.reshape(2, 6))


@pytest.mark.parametrize("dt,npdt", [("f64", np.float64), ("f32", np.float32), ("f16", np.float16),
                                     ("i64", np.int64), ("i32", np.int32), ("i16", np.int16),
                                     ("i8", np.int8), ("u8", np.uint8)])
def test_dtypes(cpu, rng, dt, npdt):
    m = tessera.compile(ADD.replace("f32", dt), target=cpu)
    assert m._fast
    for n in (3, 8):
        a = (rng.standard_normal(n) * 10).astype(npdt)
        b = (rng.standard_normal(n) * 10).astype(npdt)
        out = m(a, b)
        assert out.dtype == npdt and out.shape == (n,)
        np.testing.assert_array_equal(out, (a + b).astype(npdt))


def test_bool_inputs(cpu):
    m = tessera.compile("func @main(%a: tensor<N x bool>, %b: tensor<N x bool>) -> tensor<N x bool> {\n"
                        "  %c = and(%a, %b)\n  return %c\n}\n", target=cpu)
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    out = m(a, b)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, a & b)


def test_wrong_dtype_raises_and_the_module_keeps_working(target):
    m = tessera.compile(ADD, target=target)
    a = np.ones(4, np.float32)
    m(a, a)
    with pytest.raises(tessera.DTypeError, match=r"input 1 \(b\): expected f32, got float64"):
        m(a, np.ones(4, np.float64))
    with pytest.raises(tessera.DTypeError, match="input 0"):
        m(np.ones(4, np.int32), a)
    with pytest.raises(tessera.DTypeError):
        m(a, np.ones(4, np.dtype(">f4")))  # big-endian f32 is not f32
    np.testing.assert_array_equal(m(a, a), 2 * a)


def test_non_contiguous_inputs(target, rng):
    m = tessera.compile(ADD2D, target=target)
    big = rng.standard_normal((6, 8)).astype(np.float32)
    cases = [big[::2, ::2], big[:, ::-1], np.asfortranarray(big), big.T, big[1:4, 2:5]]
    for x in cases:
        np.testing.assert_allclose(m(x, x), 2 * x, rtol=1e-6)
        # Interleaved with a contiguous call on the same frame.
        c = np.ascontiguousarray(x) + 1
        np.testing.assert_allclose(m(c, c), 2 * c, rtol=1e-6)


def test_read_only_inputs(target):
    m = tessera.compile(ADD, target=target)
    a = np.arange(6, dtype=np.float32)
    a.flags.writeable = False
    np.testing.assert_array_equal(m(a, a), 2 * np.arange(6))
    buf = np.frombuffer(np.arange(8, dtype=np.float32).tobytes(), np.float32)  # read-only, bytes-backed
    np.testing.assert_array_equal(m(buf, buf), 2 * np.arange(8))
    ro_strided = np.arange(8, dtype=np.float32)[::2]
    ro_strided.flags.writeable = False
    np.testing.assert_array_equal(m(ro_strided, ro_strided), 2 * ro_strided)


def test_empty_and_rank0_inputs(cpu):
    m = tessera.compile(ADD, target=cpu)
    e = np.ones(0, np.float32)
    out = m(e, e)
    assert out.shape == (0,) and out.dtype == np.float32
    np.testing.assert_array_equal(m(np.ones(2, np.float32), np.ones(2, np.float32)), [2, 2])
    s = tessera.compile("func @main(%a: tensor<f32>) -> tensor<f32> {\n  %c = mul(%a, %a)\n  return %c\n}\n",
                        target=cpu)
    out = s(np.array(3.0, np.float32))
    assert out.shape == () and float(out) == 9.0


def test_large_outputs_are_zero_copy_and_outlive_the_module(cpu, rng):
    m = tessera.compile(SCALE, target=cpu)
    n = core._COPY_OUT_MAX // 4 * 4  # above the copy limit
    a = rng.standard_normal(n).astype(np.float32)
    big1 = m(a)
    big2 = m(a + 1)
    small = m(a[:16])
    assert big1.nbytes > core._COPY_OUT_MAX and not np.shares_memory(big1, big2)
    m.close()
    del m
    gc.collect()
    np.testing.assert_allclose(big1, a * a, rtol=1e-6)
    np.testing.assert_allclose(big2, (a + 1) * (a + 1), rtol=1e-6)
    np.testing.assert_allclose(small, a[:16] * a[:16], rtol=1e-6)


def test_two_outputs(target, rng):
    from test_module import MLP
    m = tessera.compile(MLP, target=target)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    outs = []
    for batch in (3, 1, 3):
        x = rng.standard_normal((batch, 16)).astype(np.float32)
        r, s = m(x, w, b)
        outs.append((x, r, s))
    for x, r, s in outs:
        ref = np.maximum(x.astype(np.float64) @ w + b, 0)
        np.testing.assert_allclose(r, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(s, ref.sum(1), rtol=1e-4, atol=1e-4)


def test_errors_leave_the_frame_usable(cpu):
    m = tessera.compile(ADD, target=cpu)
    a = np.ones(4, np.float32)
    with pytest.raises(tessera.ShapeMismatchError, match="symbol N"):
        m(a, np.ones(5, np.float32))
    with pytest.raises(tessera.InvalidArgumentError, match="takes 2 input"):
        m(a)
    np.testing.assert_array_equal(m(a, a), 2 * a)
    assert len(m._frames) == 1


def test_closing_frees_kept_inputs_so_the_context_closes(rng):
    ctx = tessera.Context()
    m = tessera.compile(ADD, target=ctx.device("cpu"))
    a = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(m(a, a), 2 * a, rtol=1e-6)
    m.close()
    assert not any(fr.ins[i] for fr in m._frames for i in range(2))
    ctx.close()  # BusyError if a kept input tensor were still alive


def test_dropping_a_module_frees_kept_inputs(rng):
    ctx = tessera.Context()
    m = tessera.compile(ADD, target=ctx.device("cpu"))
    a = rng.standard_normal(5).astype(np.float32)
    out = m(a, a)
    del m
    gc.collect()
    ctx.close()
    np.testing.assert_allclose(out, 2 * a, rtol=1e-6)


def test_other_inputs_take_the_general_path(cpu, rng):
    m = tessera.compile(ADD, target=cpu)
    a = rng.standard_normal(4).astype(np.float32)

    class Sub(np.ndarray):
        pass
    s = a.view(Sub)
    np.testing.assert_allclose(m(s, a), 2 * a, rtol=1e-6)
    t = tessera.Tensor.from_numpy(a)
    np.testing.assert_allclose(m(t, a), 2 * a, rtol=1e-6)
    np.testing.assert_allclose(m(a, a, num_threads=1), 2 * a, rtol=1e-6)
