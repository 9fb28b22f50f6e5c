"""Every Graph IR op through the reference interpreter (tessera-ref-eval)
against a NumPy float64 reference, on random non-zero inputs of several
shapes and dtypes, with dtype-aware tolerances (refutil.assert_matches).

The expected value of an op is NumPy's float64 result on the same (already
dtype-rounded) inputs, rounded to the result dtype by refutil.round_to, an
implementation independent of core/reference/Round.cpp. Ops whose float64
result is correctly rounded in both implementations (add, max, movement, ...)
must match bit for bit; transcendental ops and reordered sums may differ by
one unit in the last place of the result dtype.
"""

import math
import zlib

import numpy as np
import pytest

from refutil import (DT, EXACT, FLOAT_DTYPES, INT_DTYPES, ONE_ULP, DriverError, Op, assert_matches,
                     program, rand_float, rand_for, rand_int, round_to, round_toward_zero, run,
                     tensor_type)

LOW_FLOATS = ["f32", "f16", "bf16"]
ALL_FLOATS = FLOAT_DTYPES


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def check_op(name, inputs, attrs, out_dtype, want_f64, mode=ONE_ULP, rel64=1e-12, policy="",
             annotate=False, saturate=False, n_results=1, decompose=False):
    """Builds `%r = name(%a0, ...) {attrs}` with inputs [(array, dtype)],
    runs it and compares every result with want_f64 (list for n_results > 1)."""
    params = [(f"a{i}", tensor_type(np.shape(x), dt)) for i, (x, dt) in enumerate(inputs)]
    wants = want_f64 if n_results > 1 else [want_f64]
    rtypes = [tensor_type(np.shape(w), out_dtype, policy) for w in wants]
    rnames = [f"r{i}" for i in range(n_results)]
    text = program("f", params, [Op(rnames, name, [p for p, _ in params], attrs,
                                    rtypes if (annotate or policy) else [])], rnames, rtypes)
    outs, types = run(text, "f", [x for x, _ in inputs], decompose=decompose)
    assert len(outs) == n_results
    for i, (o, w) in enumerate(zip(outs, wants)):
        assert_matches(o, w, out_dtype, mode, rel64=rel64, saturate=saturate,
                       context=f"{name} {attrs} result {i}\n{text}")
    return outs, types


# ---------------------------------------------------------------------------
# Elementwise unary

erf = np.vectorize(math.erf, otypes=[np.float64])

UNARY = {
    # name: (numpy reference, mode, input domain kwargs, allows ints)
    "neg": (lambda x: -x, EXACT, {}, True),
    "abs": (np.abs, EXACT, {}, True),
    "exp": (np.exp, ONE_ULP, {"hi": 3.0}, False),
    "log": (np.log, ONE_ULP, {"positive": True}, False),
    "sqrt": (np.sqrt, EXACT, {"positive": True}, False),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x), EXACT, {"positive": True}, False),
    "tanh": (np.tanh, ONE_ULP, {}, False),
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), ONE_ULP, {"hi": 6.0}, False),
    "relu": (lambda x: np.maximum(x, 0.0), EXACT, {}, True),
    "silu": (lambda x: x / (1.0 + np.exp(-x)), ONE_ULP, {"hi": 6.0}, False),
    "erf": (erf, ONE_ULP, {}, False),
    "sin": (np.sin, ONE_ULP, {"hi": 3.0}, False),
    "cos": (np.cos, ONE_ULP, {"hi": 3.0}, False),
    "floor": (np.floor, EXACT, {"hi": 8.0}, False),
    "ceil": (np.ceil, EXACT, {"hi": 8.0}, False),
    "sign": (np.sign, EXACT, {}, True),
    "reciprocal": (lambda x: 1.0 / x, EXACT, {}, False),
}

SHAPES = [(7,), (3, 5), (2, 3, 4)]


@pytest.mark.parametrize("dtype", ALL_FLOATS)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_float(op, dtype):
    ref, mode, dom, _ = UNARY[op]
    for shape in SHAPES:
        x = rand_float(rng_for(op, dtype, shape), shape, dtype, **dom)
        check_op(op, [(x, dtype)], {}, dtype, ref(x), mode)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", sorted(k for k, v in UNARY.items() if v[3]))
def test_unary_int(op, dtype):
    ref = UNARY[op][0]
    x = rand_int(rng_for(op, dtype), (4, 5), dtype)
    if dtype == "i8":
        x[0, 0] = -128.0  # neg/abs of the minimum wrap around
    check_op(op, [(x, dtype)], {}, dtype, ref(x))


@pytest.mark.parametrize("dtype", ALL_FLOATS)
@pytest.mark.parametrize("approx", ["none", "tanh", None])
def test_gelu(approx, dtype):
    x = rand_float(rng_for("gelu", approx, dtype), (4, 6), dtype, hi=3.0)
    if approx == "tanh":
        # Hendrycks & Gimpel 2016, section 2.
        want = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    else:
        want = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    check_op("gelu", [(x, dtype)], {} if approx is None else {"approximate": approx}, dtype, want)


def test_unary_overflow_and_specials():
    # exp overflows to inf in f16 and saturates with @saturate.
    x = np.array([1.0, 11.0, 12.0, -20.0])
    check_op("exp", [(x, "f16")], {}, "f16", np.exp(x))
    check_op("exp", [(x, "f16")], {}, "f16", np.exp(x), policy="@saturate", saturate=True)
    # e4m3 has no infinity: overflow is NaN, or 448 when saturating.
    y = np.array([2.0, 6.5, 7.0])
    check_op("exp", [(y, "f8e4m3")], {}, "f8e4m3", np.exp(y))
    check_op("exp", [(y, "f8e4m3")], {}, "f8e4m3", np.exp(y), policy="@saturate", saturate=True)
    # Specials: log(0) = -inf, sqrt(-1) = NaN, 1/0 = inf.
    z = np.array([0.0, -1.0, 4.0])
    check_op("log", [(z, "f32")], {}, "f32", np.array([-np.inf, np.nan, np.log(4.0)]))
    check_op("sqrt", [(z, "f32")], {}, "f32", np.array([0.0, np.nan, 2.0]))
    check_op("reciprocal", [(z, "f32")], {}, "f32", np.array([np.inf, -1.0, 0.25]))


# ---------------------------------------------------------------------------
# Elementwise binary

BIN_SHAPES = [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)), ((), (2, 3)), ((5, 1), ())]


def np_mod(a, b):
    return np.mod(a, b)  # floored, sign of the divisor


BINARY = {
    "add": (np.add, EXACT),
    "sub": (np.subtract, EXACT),
    "mul": (np.multiply, EXACT),
    "div": (np.divide, EXACT),
    "pow": (np.power, ONE_ULP),
    "max": (np.maximum, EXACT),
    "min": (np.minimum, EXACT),
    "mod": (np_mod, EXACT),
}


@pytest.mark.parametrize("dtype", ALL_FLOATS)
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_float(op, dtype):
    ref, mode = BINARY[op]
    for sa, sb in BIN_SHAPES:
        rng = rng_for(op, dtype, sa, sb)
        if op == "pow":
            a = rand_float(rng, sa, dtype, positive=True)
            b = rand_float(rng, sb, dtype, lo=0.25, hi=2.0)
        else:
            a = rand_float(rng, sa, dtype, hi=4.0)
            b = rand_float(rng, sb, dtype, lo=0.5, hi=2.0)
        check_op(op, [(a, dtype), (b, dtype)], {}, dtype, ref(a, b), mode)


INT_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "div": lambda a, b: np.floor_divide(a, b),  # registry: integer div is floor division
    "max": np.maximum, "min": np.minimum, "mod": np_mod,
}


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", sorted(INT_BINARY))
def test_binary_int(op, dtype):
    for sa, sb in BIN_SHAPES[:3]:
        rng = rng_for(op, dtype, sa)
        a = rand_int(rng, sa, dtype, hi=100)
        b = rand_int(rng, sb, dtype, hi=30)
        # Reference in exact integer arithmetic, then wrapped to the dtype.
        want = INT_BINARY[op](a.astype(np.int64), b.astype(np.int64)).astype(np.float64)
        check_op(op, [(a, dtype), (b, dtype)], {}, dtype, want)


def test_int_wraparound():
    a = np.array([100.0, -100.0, 127.0, 1.0])
    b = np.array([100.0, 100.0, 1.0, -2.0])
    check_op("mul", [(a, "i8"), (b, "i8")], {}, "i8", a * b)     # 10000 -> 16
    check_op("add", [(a, "i8"), (b, "i8")], {}, "i8", a + b)     # 127 + 1 -> -128
    u = np.array([3.0, 250.0])
    check_op("sub", [(u, "u8"), (np.array([5.0, 10.0]), "u8")], {}, "u8", np.array([-2.0, 240.0]))


COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
           "gt": np.greater, "ge": np.greater_equal}


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16", "f8e5m2", "i32", "i8", "u8"])
@pytest.mark.parametrize("op", sorted(COMPARE))
def test_compare(op, dtype):
    for sa, sb in BIN_SHAPES[:3]:
        rng = rng_for(op, dtype, sa)
        a = rand_for(rng, sa, dtype)
        b = rand_for(rng, sb, dtype)
        if sa == sb:
            b = np.where(rng.random(sa) < 0.4, a, b)  # make equality happen
        check_op(op, [(a, dtype), (b, dtype)], {}, "bool", COMPARE[op](a, b).astype(np.float64))


LOGICAL = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}


@pytest.mark.parametrize("op", sorted(LOGICAL))
def test_logical(op):
    for sa, sb in BIN_SHAPES:
        rng = rng_for(op, sa, sb)
        a = rand_for(rng, sa, "bool")
        b = rand_for(rng, sb, "bool")
        check_op(op, [(a, "bool"), (b, "bool")], {}, "bool", LOGICAL[op](a, b).astype(np.float64))


def test_not():
    a = rand_for(rng_for("not"), (3, 7), "bool")
    check_op("not", [(a, "bool")], {}, "bool", np.logical_not(a).astype(np.float64))


@pytest.mark.parametrize("dtype", ["f32", "bf16", "f8e4m3", "i32"])
@pytest.mark.parametrize("alias", ["select", "where"])
def test_select(alias, dtype):
    for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((2, 3, 4), (4,), ())]:
        rng = rng_for(alias, dtype, sc)
        c = rand_for(rng, sc, "bool")
        a = rand_for(rng, sa, dtype)
        b = rand_for(rng, sb, dtype)
        check_op(alias, [(c, "bool"), (a, dtype), (b, dtype)], {}, dtype, np.where(c != 0, a, b), EXACT)


# ---------------------------------------------------------------------------
# Casts

CAST_PAIRS = [(s, d) for s in ["f64", "f32", "bf16", "f16", "i32", "i8", "u8", "bool"]
              for d in ["f64", "f32", "f16", "bf16", "f8e4m3", "f8e5m2", "i64", "i32", "i16", "i8", "u8",
                        "bool"] if s != d]


@pytest.mark.parametrize("src,dst", CAST_PAIRS)
def test_cast(src, dst):
    rng = rng_for("cast", src, dst)
    if src in ("f64", "f32"):
        # Wide range: overflow of small formats, fractions for int truncation,
        # integers past 127 / 255 for wraparound.
        x = round_to(np.concatenate([rng.uniform(-3, 3, 12), rng.uniform(-1e5, 1e5, 8),
                                     [1.5, -2.5, 300.7, -129.2]]), src)
    else:
        x = rand_for(rng, (16,), src)
    check_op("cast", [(x, src)], {"dtype": DT(dst)}, dst, x, EXACT)


def test_cast_saturate_and_rounding_modes():
    x = np.array([1.0, 500.0, -1e6, 0.3, np.inf, -np.inf])
    check_op("cast", [(x, "f64")], {"dtype": DT("f8e4m3")}, "f8e4m3", x, policy="@saturate", saturate=True)
    check_op("cast", [(x, "f64")], {"dtype": DT("f8e5m2")}, "f8e5m2", x, policy="@saturate", saturate=True)
    y = rand_float(rng_for("rz"), (32,), "f64", hi=3.0)
    for dt in ["f16", "bf16"]:
        params = [("a", tensor_type(y.shape, "f64"))]
        rt = tensor_type(y.shape, dt, "@rounding(toward_zero)")
        text = program("f", params, [Op(["r"], "cast", ["a"], {"dtype": DT(dt)}, [rt])], ["r"], [rt])
        (out,), _ = run(text, "f", [y])
        np.testing.assert_array_equal(out, round_toward_zero(y, dt))
        assert not np.array_equal(out, round_to(y, dt)), "toward_zero made no difference: weak test"


# ---------------------------------------------------------------------------
# Reductions, normalizations

REDUCE = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min,
          "reduce_prod": np.prod}
AXES = [None, [0], [-1], [0, 2], [1, -1]]


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("op", sorted(REDUCE))
def test_reduce_float(op, dtype):
    for axes in AXES:
        for keep in [False, True]:
            x = rand_float(rng_for(op, dtype, str(axes), keep), (3, 4, 5), dtype, lo=0.5, hi=1.5)
            attrs = {"keepdim": keep}
            if axes is not None:
                attrs["axes"] = axes
            ax = None if axes is None else tuple(axes)
            mode = EXACT if op in ("reduce_max", "reduce_min") else ONE_ULP
            check_op(op, [(x, dtype)], attrs, dtype, REDUCE[op](x, axis=ax, keepdims=keep), mode)


@pytest.mark.parametrize("dtype", ["i64", "i32", "i8"])
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "reduce_min", "reduce_prod"])
def test_reduce_int(op, dtype):
    x = rand_int(rng_for(op, dtype), (3, 4, 5), dtype, hi=6)
    want = REDUCE[op](x.astype(np.int64), axis=(1,), keepdims=False).astype(np.float64)
    check_op(op, [(x, dtype)], {"axes": [1]}, dtype, want, EXACT)


@pytest.mark.parametrize("dtype", ["f64", "f32", "bf16", "i32"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_arg_reduce(op, dtype):
    ref = np.argmax if op == "argmax" else np.argmin
    for axis in [0, 1, -1]:
        for keep in [False, True]:
            x = rand_for(rng_for(op, dtype, axis, keep), (4, 5, 6), dtype)
            want = ref(x, axis=axis)  # first occurrence on ties (ints tie often)
            if keep:
                want = np.expand_dims(want, axis)
            check_op(op, [(x, dtype)], {"axis": axis, "keepdim": keep}, "i64", want.astype(np.float64))


def np_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return (x - m) - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, dtype):
    ref = np_softmax if op == "softmax" else np_log_softmax
    for axis in [None, 0, 1, -1]:
        x = rand_float(rng_for(op, dtype, axis), (3, 4, 5), dtype, hi=4.0)
        attrs = {} if axis is None else {"axis": axis}
        check_op(op, [(x, dtype)], attrs, dtype, ref(x, -1 if axis is None else axis))
    # Numerically safe: logits far beyond exp()'s range.
    big = round_to(np.array([[1000.0, 999.0, -1000.0], [-5000.0, -5001.0, -5002.0]]), dtype)
    check_op(op, [(big, dtype)], {}, dtype, ref(big, -1))


def np_layer_norm(x, axis, gamma, beta, eps):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
def test_layer_norm(dtype):
    shape = (2, 3, 8)
    for axis, n_params, eps in [(None, 1, None), (-1, 3, 1e-3), (1, 3, None), (-1, 2, None), (0, 1, 0.1)]:
        rng = rng_for("ln", dtype, axis, n_params)
        x = rand_float(rng, shape, dtype, hi=3.0)
        norm_shape = shape[(axis if axis is not None else -1) % 3:]
        gamma = rand_float(rng, norm_shape, dtype) if n_params >= 2 else None
        beta = rand_float(rng, norm_shape, dtype) if n_params >= 3 else None
        inputs = [(x, dtype)] + [(p, dtype) for p in (gamma, beta) if p is not None]
        attrs = {}
        if axis is not None:
            attrs["axis"] = axis
        if eps is not None:
            attrs["epsilon"] = eps
        want = np_layer_norm(x, -1 if axis is None else axis, gamma, beta, 1e-5 if eps is None else eps)
        check_op("layer_norm", inputs, attrs, dtype, want, rel64=1e-11)


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
def test_rms_norm(dtype):
    shape = (2, 3, 8)
    for axis, with_gamma, eps in [(None, True, None), (-1, False, 1e-2), (1, True, None)]:
        rng = rng_for("rms", dtype, axis, with_gamma)
        x = rand_float(rng, shape, dtype, hi=3.0)
        a = -1 if axis is None else axis
        axes = tuple(range(a % 3, 3))
        gamma = rand_float(rng, shape[a % 3:], dtype) if with_gamma else None
        e = 1e-6 if eps is None else eps
        want = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + e)
        if gamma is not None:
            want = want * gamma
        attrs = {}
        if axis is not None:
            attrs["axis"] = axis
        if eps is not None:
            attrs["epsilon"] = eps
        inputs = [(x, dtype)] + ([(gamma, dtype)] if gamma is not None else [])
        check_op("rms_norm", inputs, attrs, dtype, want, rel64=1e-11)


# ---------------------------------------------------------------------------
# Matmul

MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 5)),
                 ((3, 4), (4,)), ((6,), (6,)), ((1, 7), (3, 7, 1))]


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16", "f8e4m3", "i32"])
def test_matmul(dtype):
    for sa, sb in MATMUL_SHAPES:
        rng = rng_for("mm", dtype, sa, sb)
        a = rand_for(rng, sa, dtype)
        b = rand_for(rng, sb, dtype)
        check_op("matmul", [(a, dtype), (b, dtype)], {}, dtype, np.matmul(a, b),
                 EXACT if dtype.startswith("i") else ONE_ULP)


def test_matmul_accum_policy():
    # @accum(f32) on a bf16 result: the oracle accumulates in f64 and rounds
    # once to bf16 (Evaluator.h), so the result is round_bf16(exact).
    rng = rng_for("mm-accum")
    a = rand_float(rng, (4, 64), "bf16")
    b = rand_float(rng, (64, 3), "bf16")
    check_op("matmul", [(a, "bf16"), (b, "bf16")], {}, "bf16", a @ b, policy="@accum(f32)")


# ---------------------------------------------------------------------------
# Data movement (exact for every dtype)

MOVE_DTYPES = ["f32", "bf16", "f8e5m2", "i64", "u8", "bool"]


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_transpose(dtype):
    x = rand_for(rng_for("tr", dtype), (2, 3, 4), dtype)
    for perm in [None, [0, 2, 1], [2, 0, 1], [-1, 0, 1]]:
        attrs = {} if perm is None else {"perm": perm}
        want = np.transpose(x, None if perm is None else [p % 3 for p in perm])
        check_op("transpose", [(x, dtype)], attrs, dtype, want, EXACT)
    check_op("permute", [(x, dtype)], {"perm": [1, 2, 0]}, dtype, np.transpose(x, [1, 2, 0]), EXACT)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_reshape_and_broadcast(dtype):
    x = rand_for(rng_for("rs", dtype), (2, 3, 4), dtype)
    for shape in [[6, 4], [4, -1], [24], [2, 1, 12]]:
        want = x.reshape(shape)
        check_op("reshape", [(x, dtype)], {"shape": shape}, dtype, want, EXACT)
    # Target from the annotation instead of the attribute.
    check_op("reshape", [(x, dtype)], {}, dtype, x.reshape(4, 6), EXACT, annotate=True)
    y = rand_for(rng_for("bc", dtype), (3, 1), dtype)
    check_op("broadcast_to", [(y, dtype)], {"shape": [2, 3, 5]}, dtype, np.broadcast_to(y, (2, 3, 5)), EXACT)
    check_op("broadcast_to", [(y, dtype)], {}, dtype, np.broadcast_to(y, (4, 3, 2)), EXACT, annotate=True)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_expand_squeeze(dtype):
    x = rand_for(rng_for("ex", dtype), (2, 3), dtype)
    for axes in [[0], [-1], [0, 3], [1, 2]]:
        check_op("expand_dims", [(x, dtype)], {"axes": axes}, dtype, np.expand_dims(x, tuple(axes)), EXACT)
    y = rand_for(rng_for("sq", dtype), (1, 3, 1, 2), dtype)
    check_op("squeeze", [(y, dtype)], {}, dtype, np.squeeze(y), EXACT)
    check_op("squeeze", [(y, dtype)], {"axes": [2]}, dtype, np.squeeze(y, 2), EXACT)
    check_op("squeeze", [(y, dtype)], {"axes": [0, -2]}, dtype, np.squeeze(y, (0, 2)), EXACT)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_concat(dtype):
    rng = rng_for("cat", dtype)
    for axis in [0, 1, -1]:
        shapes = []
        for n in [1, 2, 3]:
            s = [2, 3, 4]
            s[axis] = n
            shapes.append(tuple(s))
        xs = [rand_for(rng, s, dtype) for s in shapes]
        check_op("concat", [(x, dtype) for x in xs], {"axis": axis}, dtype, np.concatenate(xs, axis), EXACT)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_split(dtype):
    x = rand_for(rng_for("split", dtype), (4, 6), dtype)
    parts = np.split(x, [1, 3], axis=1)
    check_op("split", [(x, dtype)], {"axis": 1, "sizes": [1, 2, 3]}, dtype, parts, EXACT, n_results=3)
    parts = np.split(x, 2, axis=0)
    check_op("split", [(x, dtype)], {"axis": 0, "num": 2}, dtype, parts, EXACT, n_results=2)
    parts = np.split(x, 3, axis=-1)
    check_op("split", [(x, dtype)], {"axis": -1, "num": 3}, dtype, parts, EXACT, n_results=3)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_slice(dtype):
    x = rand_for(rng_for("slice", dtype), (5, 6, 7), dtype)
    cases = [
        ({"starts": [1], "ends": [4]}, x[1:4]),
        ({"starts": [0, 1], "ends": [5, 6], "steps": [2, 3]}, x[0:5:2, 1:6:3]),
        ({"starts": [-3], "ends": [100], "axes": [2]}, x[:, :, -3:100]),
        ({"starts": [1, -5], "ends": [-1, 7], "axes": [-1, 1], "steps": [2, 2]}, x[:, -5:7:2, 1:-1:2]),
        ({"starts": [4], "ends": [2], "axes": [0]}, x[4:2]),  # empty
    ]
    for attrs, want in cases:
        check_op("slice", [(x, dtype)], attrs, dtype, want, EXACT)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
@pytest.mark.parametrize("idx_dtype", ["i64", "i32"])
def test_gather(dtype, idx_dtype):
    rng = rng_for("gather", dtype, idx_dtype)
    x = rand_for(rng, (5, 4, 3), dtype)
    for axis, ishape in [(None, (3,)), (0, (2, 2)), (1, (6,)), (-1, (2, 1))]:
        a = 0 if axis is None else axis
        n = x.shape[a]
        idx = rng.integers(-n, n, size=ishape).astype(np.float64)
        attrs = {} if axis is None else {"axis": axis}
        check_op("gather", [(x, dtype), (idx, idx_dtype)], attrs, dtype, np.take(x, idx.astype(np.int64), axis=a),
                 EXACT)


@pytest.mark.parametrize("dtype", MOVE_DTYPES)
def test_pad(dtype):
    x = rand_for(rng_for("pad", dtype), (2, 3), dtype)
    for pads, value in [([1, 0, 0, 2], None), ([0, 0, 3, 1], 1.0), ([2, 2, 2, 2], -2.0)]:
        attrs = {"pads": pads}
        if value is not None:
            attrs["value"] = value
        want = np.pad(x, [(pads[0], pads[1]), (pads[2], pads[3])], constant_values=value or 0.0)
        check_op("pad", [(x, dtype)], attrs, dtype, want, EXACT)


@pytest.mark.parametrize("dtype", ["i64", "i32", "f32", "bf16"])
def test_iota(dtype):
    for shape, axis in [((5,), None), ((3, 4), 1), ((2, 3, 4), -2), ((2, 3), 0)]:
        a = 0 if axis is None else axis % len(shape)
        want = np.broadcast_to(np.arange(shape[a]).reshape([-1 if i == a else 1 for i in range(len(shape))]),
                               shape).astype(np.float64)
        check_op("iota", [], {} if axis is None else {"axis": axis}, dtype, want, EXACT, annotate=True)


# ---------------------------------------------------------------------------
# Convolution and pooling

def np_conv2d(x, w, bias, stride, pads, dilation, groups):
    """Direct NumPy conv2d via padded windows (pads = top, left, bottom, right)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    oh = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    opg = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * opg:(g + 1) * opg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilation[0]: i * dilation[0] + stride[0] * (oh - 1) + 1: stride[0],
                           j * dilation[1]: j * dilation[1] + stride[1] * (ow - 1) + 1: stride[1]]
                out[:, g * opg:(g + 1) * opg] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


CONV_CASES = [
    # x shape, w shape, attrs, with bias
    ((1, 2, 5, 5), (3, 2, 3, 3), {}, False),
    ((2, 3, 6, 7), (4, 3, 3, 2), {"stride": [2, 1], "padding": [1, 1]}, True),
    ((1, 4, 7, 7), (4, 2, 3, 3), {"groups": 2, "dilation": [2, 2], "padding": [1, 2, 0, 1]}, True),
    ((2, 6, 5, 6), (6, 1, 2, 3), {"groups": 6, "stride": [1, 2]}, False),  # depthwise
    ((1, 3, 8, 8), (2, 3, 1, 1), {"stride": [3, 3]}, True),
]


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d(case, dtype):
    xs, ws, attrs, with_bias = CONV_CASES[case]
    rng = rng_for("conv", case, dtype)
    x = rand_float(rng, xs, dtype)
    w = rand_float(rng, ws, dtype)
    b = rand_float(rng, (ws[0],), dtype) if with_bias else None
    pad = attrs.get("padding", [0, 0])
    pads = pad * 2 if len(pad) == 2 else pad
    want = np_conv2d(x, w, b, attrs.get("stride", [1, 1]), pads, attrs.get("dilation", [1, 1]),
                     attrs.get("groups", 1))
    inputs = [(x, dtype), (w, dtype)] + ([(b, dtype)] if with_bias else [])
    check_op("conv2d", inputs, attrs, dtype, want)


def np_pool(x, kind, kernel, stride, pads, dilation, count_include_pad):
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(pads[0], pads[2]), (pads[1], pads[3])], constant_values=fill)
    valid = np.pad(np.ones(x.shape[-2:]), [(pads[0], pads[2]), (pads[1], pads[3])])
    span = [dilation[i] * (kernel[i] - 1) + 1 for i in range(2)]
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(-2, -1))
    vwin = np.lib.stride_tricks.sliding_window_view(valid, span)
    win = win[..., ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    vwin = vwin[::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    if kind == "max":
        return win.max(axis=(-2, -1))
    total = win.sum(axis=(-2, -1))
    div = kernel[0] * kernel[1] if count_include_pad else vwin.sum(axis=(-2, -1))
    return total / div


POOL_CASES = [
    ((1, 2, 6, 6), {"kernel": [2, 2]}),
    ((2, 3, 7, 5), {"kernel": [3, 2], "stride": [2, 1]}),
    ((1, 1, 5, 5), {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
    ((1, 2, 6, 7), {"kernel": [2, 3], "stride": [1, 2], "padding": [1, 0, 0, 1]}),
]


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_max_pool(case, dtype):
    shape, attrs = POOL_CASES[case]
    x = rand_float(rng_for("mp", case, dtype), shape, dtype)
    pad = attrs.get("padding", [0, 0])
    want = np_pool(x, "max", attrs["kernel"], attrs.get("stride", attrs["kernel"]),
                   pad * 2 if len(pad) == 2 else pad, [1, 1], False)
    check_op("max_pool2d", [(x, dtype)], attrs, dtype, want, EXACT)
    # With dilation.
    d = dict(attrs, dilation=[2, 1])
    if shape[-2] >= 3 + sum(pad[::2]) // 2:
        want = np_pool(x, "max", attrs["kernel"], attrs.get("stride", attrs["kernel"]),
                       pad * 2 if len(pad) == 2 else pad, [2, 1], False)
        if want.size:
            check_op("max_pool2d", [(x, dtype)], d, dtype, want, EXACT)


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("include", [False, True])
def test_avg_pool(case, dtype, include):
    shape, attrs = POOL_CASES[case]
    x = rand_float(rng_for("ap", case, dtype), shape, dtype)
    pad = attrs.get("padding", [0, 0])
    a = dict(attrs, count_include_pad=include)
    want = np_pool(x, "avg", attrs["kernel"], attrs.get("stride", attrs["kernel"]),
                   pad * 2 if len(pad) == 2 else pad, [1, 1], include)
    check_op("avg_pool2d", [(x, dtype)], a, dtype, want)


# ---------------------------------------------------------------------------
# Attention

def np_attention(q, k, v, mask, causal, scale):
    s = q @ np.swapaxes(k, -1, -2) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        s = s + mask
    if causal:
        sq, sk = s.shape[-2:]
        s = np.where(np.tril(np.ones((sq, sk), bool)), s, -np.inf)
    return np_softmax(s, -1) @ v


ATTN_CASES = [
    # q, k, v shapes, mask shape, causal, scale
    ((2, 5, 8), (2, 5, 8), (2, 5, 8), None, False, None),
    ((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4), None, False, 0.5),
    ((2, 3, 6, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, True, None),
    ((1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8), (4, 6), True, None),  # causal, Sq < Sk (top-left)
    ((2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8), (2, 1, 5, 7), False, 0.25),
]


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("case", range(len(ATTN_CASES)))
def test_attention(case, dtype):
    qs, ks, vs, ms, causal, scale = ATTN_CASES[case]
    rng = rng_for("attn", case, dtype)
    q, k, v = (rand_float(rng, s, dtype) for s in (qs, ks, vs))
    mask = rand_float(rng, ms, dtype) if ms else None
    attrs = {}
    if causal:
        attrs["causal"] = True
    if scale is not None:
        attrs["scale"] = scale
    inputs = [(q, dtype), (k, dtype), (v, dtype)] + ([(mask, dtype)] if mask is not None else [])
    want = np_attention(q, k, v, mask, causal, scale)
    check_op("attention", inputs, attrs, dtype, want)


@pytest.mark.parametrize("case", range(len(ATTN_CASES)))
def test_attention_decomposition(case):
    """The decomposition (shape/Decompose.h) evaluated op by op agrees with
    the composite in f64."""
    qs, ks, vs, ms, causal, scale = ATTN_CASES[case]
    rng = rng_for("attn-dec", case)
    q, k, v = (rand_float(rng, s, "f64") for s in (qs, ks, vs))
    mask = rand_float(rng, ms, "f64") if ms else None
    attrs = {"scale": scale} if scale is not None else {}
    if causal:
        attrs["causal"] = True
    inputs = [(q, "f64"), (k, "f64"), (v, "f64")] + ([(mask, "f64")] if mask is not None else [])
    check_op("attention", inputs, attrs, "f64", np_attention(q, k, v, mask, causal, scale), decompose=True,
             rel64=1e-11)


# ---------------------------------------------------------------------------
# Constants

@pytest.mark.parametrize("dtype", ["f32", "bf16", "f16", "i32", "i8", "bool"])
def test_constant(dtype):
    # Splat and per-element values.
    check_op("constant", [], {"value": 3}, dtype, np.full((2, 3), 3.0), EXACT, annotate=True)
    # The verifier rejects values the dtype cannot hold, so ints get integers.
    if dtype == "bool":
        vals = [1, 0, 0, 1, 1, 0]
    elif dtype in ("i32", "i8"):
        vals = [1, -2, 7, 0, 100, -128]
    else:
        vals = [0.1, -2.5, 7.0, 1.0, 300.0, -0.3]
    check_op("constant", [], {"value": vals}, dtype, np.array(vals).reshape(2, 3), EXACT, annotate=True)


@pytest.mark.parametrize("dtype,np_dtype", [("f32", "<f4"), ("f64", "<f8"), ("f16", "<f2"), ("i32", "<i4"),
                                            ("i8", "i1"), ("u8", "u1"), ("i16", "<i2")])
def test_constant_data(dtype, np_dtype):
    vals = np.array([1.5, -2.0, 3.25, 100.0, -7.0, 0.5]).astype(np_dtype)
    raw = vals.tobytes()
    want = vals.astype(np.float64).reshape(3, 2)
    check_op("constant", [], {"data": "hex:" + raw.hex()}, dtype, want, EXACT, annotate=True)
    import base64
    check_op("constant", [], {"data": "base64:" + base64.b64encode(raw).decode()}, dtype, want, EXACT,
             annotate=True)


def test_constant_data_bf16_fp8():
    bits16 = np.array([0x3F80, 0xC040, 0x7F7F, 0x0001], dtype="<u2")  # 1, -3, max, min subnormal
    want = (bits16.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    check_op("constant", [], {"data": "hex:" + bits16.tobytes().hex()}, "bf16", want, EXACT, annotate=True)
    bits8 = bytes([0x38, 0x7E, 0xFE, 0x01])  # e4m3: 1, 448, -448, 2^-9
    check_op("constant", [], {"data": "hex:" + bits8.hex()}, "f8e4m3",
             np.array([1.0, 448.0, -448.0, 2.0**-9]), EXACT, annotate=True)


# ---------------------------------------------------------------------------
# Whole programs, symbolic shapes and run-time errors

MLP = """
func @mlp(%x: tensor<B x 8 x f32>, %w1: tensor<8 x 16 x bf16>, %w2: tensor<16 x 4 x f32>) -> tensor<B x 4 x f32> {
  %xb = cast(%x) {dtype = bf16}
  %h = matmul(%xb, %w1) : tensor<B x 16 x bf16 @accum(f32)>
  %a = gelu(%h) {approximate = "tanh"}
  %af = cast(%a) {dtype = f32}
  %y = matmul(%af, %w2)
  %p = softmax(%y) {axis = -1}
  return %p
}
"""


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_mlp_rounds_at_every_op(batch):
    rng = rng_for("mlp", batch)
    x = rand_float(rng, (batch, 8), "f32")
    w1 = rand_float(rng, (8, 16), "bf16")
    w2 = rand_float(rng, (16, 4), "f32")
    (out,), types = run(MLP, "mlp", [x, w1, w2])
    # Reference: round to the declared dtype after every op.
    h = round_to(round_to(x, "bf16") @ w1, "bf16")
    a = round_to(0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3))), "bf16")
    y = round_to(a @ w2, "f32")
    assert_matches(out, np_softmax(y, -1), "f32", ONE_ULP)
    assert out.shape == (batch, 4)
    assert types == [f"tensor<{batch}x4xf32>"]


def test_inputs_rounded_to_parameter_dtype():
    text = program("f", [("a", tensor_type((3,), "bf16"))], [Op(["r"], "neg", ["a"])], ["r"],
                   [tensor_type((3,), "bf16")])
    x = np.array([1.0 + 2**-8 + 2**-30, 3.14159, 1e39])
    (out,), _ = run(text, "f", [x])
    np.testing.assert_array_equal(out, -round_to(x, "bf16"))


def test_symbol_bound_twice_is_shape_mismatch():
    text = program("f", [("a", tensor_type(("B", 4), "f32")), ("b", tensor_type(("B", 4), "f32"))],
                   [Op(["r"], "add", ["a", "b"])], ["r"], [tensor_type(("B", 4), "f32")])
    a = np.ones((3, 4))
    (out,), _ = run(text, "f", [a, 2 * a])
    np.testing.assert_array_equal(out, 3 * a)
    with pytest.raises(DriverError) as e:
        run(text, "f", [np.ones((3, 4)), np.ones((5, 4))])
    msg = str(e.value)
    assert "shape mismatch" in msg and "B" in msg and "3" in msg and "5" in msg, msg


def test_wrong_rank_and_static_dim():
    text = program("f", [("a", tensor_type((2, 4), "f32"))], [Op(["r"], "neg", ["a"])], ["r"],
                   [tensor_type((2, 4), "f32")])
    for bad in [np.ones((2, 5)), np.ones((2, 4, 1)), np.ones((8,))]:
        with pytest.raises(DriverError, match="shape mismatch"):
            run(text, "f", [bad])


def test_gather_index_out_of_range_is_located_error():
    text = program("f", [("x", tensor_type((4, 2), "f32")), ("i", tensor_type((2,), "i64"))],
                   [Op(["r"], "gather", ["x", "i"])], ["r"], [tensor_type((2, 2), "f32")])
    with pytest.raises(DriverError) as e:
        run(text, "f", [np.ones((4, 2)), np.array([1.0, 4.0])])
    msg = str(e.value)
    # Located at the op: line 2 of the program (the line after `func`).
    assert "gather" in msg and "out of range" in msg and "p.tsr:2:" in msg, msg
