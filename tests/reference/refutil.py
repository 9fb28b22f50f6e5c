"""Helpers for the reference-interpreter NumPy tests: the .tsr program
generator, independent dtype rounding, .npy I/O through the driver, and
dtype-aware comparison.

Rounding here is deliberately implemented differently from the C++ side
(core/reference/Round.cpp): bf16 and fp8 values are enumerated from their bit
patterns and an input is rounded to the nearest table entry (ties to the even
bit pattern), f16/f32 use NumPy's own conversions. Agreement of the two is
evidence that both are right.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FLOAT_DTYPES = ["f64", "f32", "f16", "bf16", "f8e4m3", "f8e5m2"]
INT_DTYPES = ["i64", "i32", "i16", "i8", "u8"]
NP_INT = {"i64": np.int64, "i32": np.int32, "i16": np.int16, "i8": np.int8, "u8": np.uint8}


# ---------------------------------------------------------------------------
# Rounding tables


def _bf16_table() -> np.ndarray:
    # Positive finite bf16 values in bit-pattern order 0x0000..0x7F7F (the
    # upper half of a float32), then the overflow sentinel 2^128 at 0x7F80.
    bits = np.arange(0, 0x7F80, dtype=np.uint32) << 16
    vals = bits.view(np.float32).astype(np.float64)
    return np.append(vals, 2.0**128)


def _small_float_table(exp_bits: int, man_bits: int, ocp_e4m3: bool) -> np.ndarray:
    bias = 2 ** (exp_bits - 1) - 1
    vals = []
    for pattern in range(2 ** (exp_bits + man_bits)):
        e, m = pattern >> man_bits, pattern & (2**man_bits - 1)
        if e == 0:
            v = m * 2.0 ** (1 - bias - man_bits)
        else:
            v = (2**man_bits + m) * 2.0 ** (e - bias - man_bits)
        vals.append(v)
        if ocp_e4m3 and pattern == 2 ** (exp_bits + man_bits) - 2:
            break  # S.1111.110 = 448 is the largest; S.1111.111 is NaN
        if not ocp_e4m3 and e == 2**exp_bits - 2 and m == 2**man_bits - 1:
            break  # the next pattern is +inf
    # Overflow sentinel: the value the next pattern would have had.
    nxt = len(vals)
    e, m = nxt >> man_bits, nxt & (2**man_bits - 1)
    vals.append((2**man_bits + m) * 2.0 ** (e - bias - man_bits))
    return np.array(vals, dtype=np.float64)


def _f16_table() -> np.ndarray:
    bits = np.arange(0, 0x7C00, dtype=np.uint16)
    return np.append(bits.view(np.float16).astype(np.float64), 65536.0)


_TABLES = {
    "f16": (_f16_table(), True),
    "bf16": (_bf16_table(), True),
    "f8e4m3": (_small_float_table(4, 3, True), False),
    "f8e5m2": (_small_float_table(5, 2, False), True),
}


def _round_table(x: np.ndarray, table: np.ndarray, has_inf: bool, saturate: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    mag = np.abs(x)
    out = np.empty_like(mag)
    finite = np.isfinite(mag)
    m = np.where(finite, mag, 0.0)
    hi = np.clip(np.searchsorted(table, m, side="left"), 1, len(table) - 1)
    lo = hi - 1
    dlo, dhi = m - table[lo], table[hi] - m
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    idx = np.where(m == table[lo], lo, np.where(pick_hi, hi, lo))
    out = table[idx]
    overflow = idx == len(table) - 1
    max_finite = table[-2]
    if saturate:
        out = np.where(overflow, max_finite, out)
    else:
        out = np.where(overflow, np.inf if has_inf else np.nan, out)
    inf_val = (max_finite if saturate else (np.inf if has_inf else np.nan))
    out = np.where(np.isinf(mag), inf_val, out)
    out = np.where(np.isnan(mag), np.nan, out)
    return np.copysign(out, x)


def round_to(x, dtype: str, saturate: bool = False) -> np.ndarray:
    """Rounds float64 values to `dtype` (nearest even), returned as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "f64":
        return x.copy()
    if dtype == "f32":
        with np.errstate(over="ignore"):
            r = x.astype(np.float32).astype(np.float64)
        if saturate:
            fmax = float(np.finfo(np.float32).max)
            r = np.where(np.isinf(r), np.copysign(fmax, x), r)
        return r
    if dtype == "f16":
        with np.errstate(over="ignore"):
            r = x.astype(np.float16).astype(np.float64)
        if saturate:
            r = np.where(np.isinf(r), np.copysign(65504.0, x), r)
        return r
    if dtype in _TABLES:
        table, has_inf = _TABLES[dtype]
        return _round_table(x, table, has_inf, saturate)
    if dtype in NP_INT:
        t = np.trunc(np.where(np.isfinite(x), x, 0.0))
        bits = np.iinfo(NP_INT[dtype]).bits
        mod = 2.0**bits
        w = np.fmod(t, mod)  # exact, in (-mod, mod)
        if dtype == "u8":
            w = np.where(w < 0, w + mod, w)
        else:
            # One exact step into range (w + 2^64 for a small negative i64
            # would round in float64).
            w = np.where(w >= mod / 2, w - mod, np.where(w < -mod / 2, w + mod, w))
        return w + 0.0
    if dtype == "bool":
        return (x != 0).astype(np.float64)
    raise ValueError(dtype)


def ulp(x, dtype: str) -> np.ndarray:
    """Spacing of `dtype` values at |x| (subnormal spacing near zero)."""
    prec, emin = {
        "f64": (53, -1022), "f32": (24, -126), "f16": (11, -14), "bf16": (8, -126),
        "f8e4m3": (4, -6), "f8e5m2": (3, -14),
    }[dtype]
    mag = np.abs(np.asarray(x, dtype=np.float64))
    e = np.floor(np.log2(np.where((mag > 0) & np.isfinite(mag), mag, 1.0)))
    e = np.maximum(e, emin)
    return np.exp2(e - prec + 1)


# ---------------------------------------------------------------------------
# Random inputs (never zero)


def rand_float(rng, shape, dtype, lo=0.25, hi=2.0, positive=False):
    """Values with |v| in [lo, hi), random sign unless positive, rounded to dtype
    and kept non-zero."""
    mag = rng.uniform(lo, hi, size=shape)
    sign = 1.0 if positive else rng.choice([-1.0, 1.0], size=shape)
    v = round_to(mag * sign, dtype)
    v = np.where(v == 0, round_to(np.full(shape, lo if lo > 0 else 0.5), dtype), v)
    return v


def rand_int(rng, shape, dtype, lo=1, hi=20, positive=False):
    mag = rng.integers(lo, hi, size=shape)
    if positive or dtype == "u8":
        return mag.astype(np.float64)
    sign = rng.choice([-1, 1], size=shape)
    return (mag * sign).astype(np.float64)


def rand_for(rng, shape, dtype, **kw):
    if dtype in NP_INT:
        return rand_int(rng, shape, dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    return rand_float(rng, shape, dtype, **kw)


# ---------------------------------------------------------------------------
# Program text (docs/ir.md). Everything that knows the .tsr syntax is here.


@dataclass
class DT:
    """A dtype attribute value (printed bare: `dtype = bf16`)."""
    name: str


def fmt_dims(shape) -> str:
    return " x ".join(str(d) for d in shape)


def tensor_type(shape, dtype: str, policy: str = "") -> str:
    dims = fmt_dims(shape)
    body = f"{dims} x {dtype}" if dims else dtype
    return f"tensor<{body}{(' ' + policy) if policy else ''}>"


def fmt_attr(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, DT):
        return v.name
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return "nan"
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_attr(e) for e in v) + "]"
    raise TypeError(type(v))


@dataclass
class Op:
    results: list
    name: str
    operands: list
    attrs: dict = field(default_factory=dict)
    types: list = field(default_factory=list)  # result annotations (text), optional


def program(fn: str, params, ops, returns, result_types) -> str:
    """params: [(name, type_text)], ops: [Op], returns: [name],
    result_types: [type_text]."""
    ps = ", ".join(f"%{n}: {t}" for n, t in params)
    rs = ", ".join(result_types)
    if len(result_types) != 1:
        rs = "(" + rs + ")"
    lines = [f"func @{fn}({ps}) -> {rs} {{"]
    for op in ops:
        lhs = ", ".join(f"%{r}" for r in op.results)
        args = ", ".join(f"%{a}" for a in op.operands)
        attrs = ""
        if op.attrs:
            attrs = " {" + ", ".join(f"{k} = {fmt_attr(v)}" for k, v in sorted(op.attrs.items())) + "}"
        ann = ""
        if op.types:
            ann = " : " + ", ".join(op.types)
        lines.append(f"  {lhs} = {op.name}({args}){attrs}{ann}")
    lines.append("  return " + ", ".join(f"%{r}" for r in returns))
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Driver


def driver_path() -> Path | None:
    env = os.environ.get("TESSERA_REF_EVAL")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    for build in sorted(root.glob("build*")):
        p = build / "bin" / "tessera-ref-eval"
        if p.exists():
            return p
    return None


class DriverError(Exception):
    pass


def run(text: str, fn: str, inputs, decompose: bool = False):
    """Runs @fn of `text` on float64 `inputs`; returns (outputs, types)."""
    drv = driver_path()
    assert drv is not None and drv.exists(), "tessera-ref-eval not built (set TESSERA_REF_EVAL)"
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "p.tsr").write_text(text)
        args = [str(drv), str(d / "p.tsr"), fn]
        for i, x in enumerate(inputs):
            np.save(d / f"in{i}.npy", np.array(x, dtype=np.float64, order="C"))  # keeps rank 0
            args += ["-i", str(d / f"in{i}.npy")]
        # Count outputs from the signature: one -o per returned value.
        n_out = text.split("return", 1)[1].split("\n", 1)[0].count("%")
        for i in range(n_out):
            args += ["-o", str(d / f"out{i}.npy")]
        if decompose:
            args.append("--decompose")
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise DriverError(p.stderr.strip() + "\n--- program ---\n" + text)
        outs = [np.load(d / f"out{i}.npy") for i in range(n_out)]
        types = [line.split(": ", 1)[1] for line in p.stdout.splitlines() if line.startswith("output ")]
        return outs, types


# ---------------------------------------------------------------------------
# Comparison


EXACT = "exact"      # result is round(f64 op) in both: bitwise equal
ONE_ULP = "one_ulp"  # transcendental / reordered sums: within 1 ulp of dtype


def assert_matches(got, want_f64, dtype: str, mode: str = ONE_ULP, rel64: float = 1e-12,
                   saturate: bool = False, context: str = ""):
    """got: interpreter output; want_f64: NumPy float64 result on the same
    (already rounded) inputs. The expected value is want rounded to dtype."""
    got = np.asarray(got, dtype=np.float64)
    want_f64 = np.asarray(want_f64, dtype=np.float64)
    assert got.shape == want_f64.shape, f"{context}: shape {got.shape} vs {want_f64.shape}"
    want = round_to(want_f64, dtype, saturate=saturate)
    # Representability: the output must be a value of its dtype.
    assert np.array_equal(round_to(got, dtype, saturate=saturate), got, equal_nan=True), \
        f"{context}: output not representable in {dtype}"
    if dtype in NP_INT or dtype == "bool" or mode == EXACT:
        ok = (got == want) | (np.isnan(got) & np.isnan(want))
        if not ok.all():
            i = np.argwhere(~ok)[0]
            raise AssertionError(f"{context}: {dtype} mismatch at {tuple(i)}: got {got[tuple(i)]!r}, "
                                 f"want {want[tuple(i)]!r} (f64 {want_f64[tuple(i)]!r})")
        return
    if dtype == "f64":
        tol = rel64 * np.maximum(np.abs(want_f64), 1.0)
    else:
        # One ulp of the dtype at the value (a near-tie may round either way
        # when the f64 results differ in the last bits), plus f64 noise.
        tol = ulp(want_f64, dtype) + rel64 * np.maximum(np.abs(want_f64), 1.0)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf
        diff = np.abs(got - want)
    same_special = (np.isnan(got) & np.isnan(want)) | (np.isinf(got) & (got == want))
    ok = same_special | (diff <= tol)
    if not ok.all():
        i = tuple(np.argwhere(~ok)[0])
        raise AssertionError(f"{context}: {dtype} mismatch at {i}: got {got[i]!r}, want {want[i]!r} "
                             f"(f64 {want_f64[i]!r}), tol {tol[i]!r}")


def round_toward_zero(x, dtype: str) -> np.ndarray:
    """IEEE roundTowardZero to f16/bf16/fp8 (overflow gives the largest finite
    value, IEEE 754-2008 section 7.4)."""
    table, _ = _TABLES[dtype]
    x = np.asarray(x, dtype=np.float64)
    m = np.abs(x)
    idx = np.searchsorted(table, m, side="right") - 1
    idx = np.minimum(idx, len(table) - 2)
    return np.copysign(table[idx], x)
