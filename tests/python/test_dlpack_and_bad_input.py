"""DLPack both ways (NumPy, PyTorch), bad input, closed objects, threads."""
import threading

import numpy as np
import pytest

import tessera
from conftest import ADD


@pytest.fixture
def add(cpu):
    return tessera.compile(ADD, target=cpu)


def test_from_dlpack_is_zero_copy():
    a = np.arange(6, dtype=np.float32)
    t = tessera.from_dlpack(a)
    assert t.shape == (6,) and t.dtype == "f32"
    view = np.from_dlpack(t)          # numpy <- tessera, zero copy
    a[2] = 42.0
    assert view[2] == 42.0 and t.numpy()[2] == 42.0
    t.close()                          # the exported view keeps the memory
    assert view[2] == 42.0


def test_outputs_are_numpy_arrays_owning_tessera_memory(add):
    a = np.ones(4, np.float32)
    out = add(a, a)
    assert out.flags.c_contiguous and out.flags.writeable is not None
    del add
    np.testing.assert_array_equal(out, 2 * a)   # module gone, memory alive


def test_tensor_round_trip_through_dlpack_consumers():
    t = tessera.Tensor.from_numpy(np.arange(12, dtype=np.int64).reshape(3, 4))
    assert t.shape == (3, 4) and t.dtype == "i64" and t.nbytes == 96
    back = np.from_dlpack(t)
    np.testing.assert_array_equal(back, np.arange(12).reshape(3, 4))


def test_wrong_dtype_is_a_clear_error(add):
    a = np.ones(4, np.float32)
    with pytest.raises(tessera.DTypeError) as e:
        add(a, a.astype(np.float64))
    assert isinstance(e.value, TypeError) and isinstance(e.value, tessera.InvalidArgumentError)
    assert "input 1 (b): expected f32, got float64" in str(e.value)


def test_wrong_count(add):
    with pytest.raises(tessera.InvalidArgumentError, match="takes 2 input"):
        add(np.ones(4, np.float32))


def test_shape_mismatch_names_the_symbol(add):
    with pytest.raises(tessera.ShapeMismatchError, match="symbol N"):
        add(np.ones(4, np.float32), np.ones(5, np.float32))


def test_non_contiguous_and_negative_strides_are_copied(add, rng):
    """Documented: such arrays are copied into a contiguous array first."""
    big = rng.standard_normal(16).astype(np.float32)
    strided, reversed_ = big[::2], big[:8][::-1]
    assert not strided.flags.c_contiguous and reversed_.strides[0] < 0
    np.testing.assert_allclose(add(strided, reversed_), strided + reversed_, rtol=1e-6)
    f2 = np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32))
    m = tessera.compile(ADD.replace("N x f32", "N x M x f32"), target=add.device)
    np.testing.assert_allclose(m(f2, f2), 2 * f2, rtol=1e-6)


def test_read_only_arrays_are_copied(add):
    a = np.arange(4, dtype=np.float32)
    a.flags.writeable = False
    np.testing.assert_array_equal(add(a, a), 2 * a)


def test_lists_are_converted(add):
    np.testing.assert_array_equal(add([1, 2], [3, 4]), np.array([4, 6], np.float32))


def test_foreign_dlpack_with_strides_is_unsupported():
    class Strided:  # a DLPack producer tessera cannot view without a copy
        def __init__(self):
            self.a = np.arange(8, dtype=np.float32)[::2]

        def __dlpack__(self, stream=None):
            return self.a.__dlpack__()

        def __dlpack_device__(self):
            return (1, 0)
    with pytest.raises(tessera.UnsupportedError, match="compact row-major"):
        tessera.from_dlpack(Strided())


def test_closed_module_raises(add):
    a = np.ones(4, np.float32)
    add.close()
    add.close()  # idempotent
    with pytest.raises(tessera.ClosedError):
        add(a, a)
    with pytest.raises(tessera.ClosedError):
        add.serialize()


def test_closed_tensor_raises():
    t = tessera.Tensor.from_numpy(np.ones(3, np.float32))
    t.close()
    with pytest.raises(tessera.ClosedError):
        t.numpy()


def test_context_close_is_refused_while_modules_live(rng):
    ctx = tessera.Context()
    m = tessera.compile(ADD, target=ctx.device("cpu"))
    with pytest.raises(tessera.BusyError):
        ctx.close()
    m.close()
    ctx.close()
    with pytest.raises(tessera.ClosedError):
        ctx.devices()


def test_concurrent_calls_from_threads(add, rng):
    """Module calls are thread-safe; results stay per-call."""
    errors, n_threads, iters = [], 8, 200

    def work(seed):
        r = np.random.default_rng(seed)
        try:
            for _ in range(iters):
                n = int(r.integers(1, 50))
                a, b = r.standard_normal((2, n)).astype(np.float32)
                np.testing.assert_allclose(add(a, b), a + b, rtol=1e-6)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_close_while_other_threads_call(cpu):
    """close() waits for calls in flight; later calls raise ClosedError."""
    m = tessera.compile(ADD, target=cpu)
    a = np.ones(1000, np.float32)
    seen, started = [], threading.Barrier(5)

    def work():
        started.wait()
        while True:
            try:
                assert m(a, a)[0] == 2.0
            except tessera.ClosedError:
                seen.append("closed")
                return
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    m.close()
    for t in threads:
        t.join(timeout=60)
    assert seen == ["closed"] * 4  # every thread saw the close cleanly (no crash)


def test_bf16_tensors(cpu, rng):
    x = rng.standard_normal(8)
    t = tessera.Tensor.from_numpy(x, dtype="bf16", device=cpu)
    assert t.dtype == "bf16" and t.nbytes == 16
    back = t.numpy()
    np.testing.assert_allclose(np.asarray(back, np.float64), x, rtol=2 ** -8)
    m = tessera.compile(ADD.replace("f32", "bf16"), target=cpu)
    with pytest.raises(tessera.DTypeError, match="expected bf16"):
        m(x, x)
    out = m(t, t)
    np.testing.assert_allclose(np.asarray(out, np.float64), 2 * np.asarray(back, np.float64), rtol=2 ** -7)


try:
    import torch
except ImportError:  # the tests below skip, printing why
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (python3-torch) not installed: torch DLPack tests skipped")


@needs_torch
def test_torch_in_torch_out(add):
    a, b = torch.randn(10), torch.randn(10)
    out = add(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, a + b)


@needs_torch
def test_torch_non_contiguous_and_wrong_dtype(add):
    a = torch.randn(20)[::2]
    out = add(a, a)
    torch.testing.assert_close(out, a + a)
    with pytest.raises(tessera.DTypeError, match="torch.float64"):
        add(a.double(), a.double())


@needs_torch
def test_torch_fast_path_reuses_imports_and_sees_new_values(cpu):
    """torch inputs take Module._call_torch: imports kept per frame while
    the address and shape repeat; in-place updates and new tensors of
    another shape are still read right; bf16 goes through too."""
    m = tessera.compile(ADD, target=cpu)
    a, b = torch.randn(64), torch.randn(64)
    torch.testing.assert_close(m(a, b), a + b)
    assert m._tframes and m._tframes[0].ptrs[0] == a.data_ptr()  # the fast path ran and kept a's import
    a.mul_(3)  # same address and shape: the kept import reads the new values
    torch.testing.assert_close(m(a, b), a + b)
    c, d = torch.randn(5), torch.randn(5)
    torch.testing.assert_close(m(c, d), c + d)
    torch.testing.assert_close(m(a, b, asynchronous=True), a + b)
    mb = tessera.compile(ADD.replace("f32", "bf16"), target=cpu)
    x, y = torch.randn(32).to(torch.bfloat16), torch.randn(32).to(torch.bfloat16)
    out = mb(x, y)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), (x.float() + y.float()).to(torch.bfloat16).float())
    m.close()
    with pytest.raises(tessera.ClosedError):
        m(a, b)


@needs_torch
def test_torch_from_tessera_tensor_zero_copy():
    t = tessera.Tensor.from_numpy(np.arange(5, dtype=np.float32))
    tt = torch.from_dlpack(t)
    np.testing.assert_array_equal(tt.numpy(), np.arange(5))
    t2 = tessera.from_dlpack(tt)
    tt[0] = 7
    assert t2.numpy()[0] == 7
