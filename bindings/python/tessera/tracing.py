"""Tracing front end: Python functions -> Graph IR through the builder ABI.

    from tessera import Tensor, ops

    @tessera.function(target="cpu")
    def mlp(x: Tensor["B", 784], w: Tensor[784, 10], b: Tensor[10]):
        return ops.relu(x @ w + b)

    y = mlp(np.random.rand(32, 784).astype(np.float32), w, b)   # (32, 10) f32

Annotations: Tensor[dim, ...] with dims as ints (static) or strings
(symbolic: "B", "S*2", "D/H"); an optional trailing dtype name ("f32" is the
default; "bf16", "f16", "i64", ...) or NumPy dtype: Tensor["B", "D", "bf16"].
The function runs once per target on Traced placeholders; every operation
adds a checked op to a tessera_program_builder_t, so a shape or dtype error
raises at the offending Python line (InvalidIRError/ShapeMismatchError,
located there via the op's source location). Python scalars become rank-0
constants of the other operand's dtype (no promotion, as in the IR).

Operators: + - * / ** @, unary -, abs(); x.T (transpose of the last two
axes), x.reshape(*dims), x.sum/mean/max(axes, keepdim), x.astype(dtype).
Any IR op: ops.<name>(*operands, **attributes), e.g.
ops.layer_norm(x, g, b, epsilon=1e-5), ops.split(x, axis=0, num=2) (a tuple).
Attribute values: int, float, bool, str, lists of int/float, or
ops.dtype("f32").
"""
import ctypes
import functools
import inspect
import threading

import numpy as np

from . import _abi, core
from ._lib import lib, check, blob_bytes, has
from .errors import InvalidArgumentError, UnsupportedError

_DTYPE_NAMES = set(core.DTYPES)


class TensorType:
    """A parameter annotation: dims (tuple of int|str) and dtype name."""

    def __init__(self, dims, dtype="f32"):
        self.dims = tuple(dims)
        self.dtype = core.dtype_name(dtype)

    @classmethod
    def from_item(cls, item):
        if not isinstance(item, tuple):
            item = (item,)
        if len(item) == 2 and isinstance(item[0], (tuple, list)):
            return cls(item[0], item[1])
        dtype = "f32"
        if item and _is_dtype(item[-1]):
            dtype, item = item[-1], item[:-1]
        for d in item:
            if not isinstance(d, (int, str)) or isinstance(d, bool):
                raise InvalidArgumentError(f"Tensor[...] dims must be int or str, got {d!r}")
        return cls(item, dtype)

    def __repr__(self):
        return f"Tensor[{', '.join(map(repr, self.dims))}, {self.dtype!r}]"

    def _c(self):
        """(tessera_ir_type_t, keep-alive) for the builder."""
        dims = [str(d).encode() for d in self.dims]
        arr = (ctypes.c_char_p * max(len(dims), 1))(*dims)
        t = _abi.tessera_ir_type_t()
        t.struct_size = _abi.TESSERA_IR_TYPE_STRUCT_SIZE
        t.dtype = core.DTYPES[self.dtype][0]
        t.rank = len(dims)
        t.dims = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
        return t, (arr, dims)


def _is_dtype(x):
    if isinstance(x, str):
        return x in _DTYPE_NAMES or x in ("float32", "float64", "float16", "int64", "int32", "bool", "bfloat16")
    return isinstance(x, (np.dtype, type)) and not isinstance(x, bool)


class _DType:
    def __init__(self, name):
        self.name = core.dtype_name(name)


class _Ops:
    """ops.<name>(*operands, **attributes): adds IR op <name> (docs/ir.md)."""

    @staticmethod
    def dtype(name):
        """A dtype attribute value, e.g. ops.cast(x, dtype=ops.dtype("f16"))."""
        return _DType(name)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*operands, **attrs):
            return _current().add(name, operands, attrs)
        op.__name__ = name
        op.__doc__ = f"Adds IR op '{name}' (docs/ir.md); operands are Traced values."
        return op


ops = _Ops()
_state = threading.local()


def _current():
    b = getattr(_state, "builder", None)
    if b is None:
        raise InvalidArgumentError("tessera ops can only be used while tracing a @tessera.function")
    return b


def _caller_location():
    """(file, line) of the innermost frame outside this package."""
    f = inspect.currentframe()
    pkg = __file__.rsplit("/", 1)[0]
    while f is not None and f.f_code.co_filename.startswith(pkg):
        f = f.f_back
    return (f.f_code.co_filename, f.f_lineno) if f else ("<trace>", 0)


class Traced:
    """A value of the function being traced (an SSA value id)."""
    __array_priority__ = 1000  # make ndarray op Traced defer to us

    def __init__(self, builder, vid):
        self._b, self.id = builder, vid

    @property
    def type(self):
        """The inferred type as text, e.g. 'tensor<B x 10 x f32>'."""
        return self._b.value_type(self.id)

    @property
    def dtype(self):
        return _parse_type(self.type)[1]

    @property
    def shape(self):
        """Dims as str (static ones are digits)."""
        return _parse_type(self.type)[0]

    def _bin(self, op, other, swap=False):
        other = self._b.lift(other, self)
        a, b = (other, self) if swap else (self, other)
        return self._b.add(op, (a, b), {})

    __add__ = lambda s, o: s._bin("add", o)
    __radd__ = lambda s, o: s._bin("add", o, True)
    __sub__ = lambda s, o: s._bin("sub", o)
    __rsub__ = lambda s, o: s._bin("sub", o, True)
    __mul__ = lambda s, o: s._bin("mul", o)
    __rmul__ = lambda s, o: s._bin("mul", o, True)
    __truediv__ = lambda s, o: s._bin("div", o)
    __rtruediv__ = lambda s, o: s._bin("div", o, True)
    __pow__ = lambda s, o: s._bin("pow", o)
    __matmul__ = lambda s, o: s._bin("matmul", o)
    __rmatmul__ = lambda s, o: s._bin("matmul", o, True)
    __neg__ = lambda s: s._b.add("neg", (s,), {})
    __abs__ = lambda s: s._b.add("abs", (s,), {})

    @property
    def T(self):
        r = len(self.shape)
        perm = list(range(r))
        if r >= 2:
            perm[-1], perm[-2] = perm[-2], perm[-1]
        return self._b.add("transpose", (self,), {"perm": perm})

    def reshape(self, *dims):
        """Reshape to dims (ints or symbolic strings such as "D/H")."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if all(isinstance(d, int) for d in dims):
            return self._b.add("reshape", (self,), {"shape": list(dims)})
        return self._b.add("reshape", (self,), {}, result_type=TensorType(dims, self.dtype))

    def astype(self, dtype):
        return self._b.add("cast", (self,), {"dtype": _DType(dtype)})

    def sum(self, axes=None, keepdim=False):
        return self._reduce("reduce_sum", axes, keepdim)

    def mean(self, axes=None, keepdim=False):
        return self._reduce("reduce_mean", axes, keepdim)

    def max(self, axes=None, keepdim=False):
        return self._reduce("reduce_max", axes, keepdim)

    def _reduce(self, op, axes, keepdim):
        attrs = {"keepdim": bool(keepdim)}
        if axes is not None:
            attrs["axes"] = [axes] if isinstance(axes, int) else list(axes)
        return self._b.add(op, (self,), attrs)

    def __bool__(self):
        raise TypeError("a traced tensor has no truth value (Python control flow cannot depend on it)")

    def __repr__(self):
        return f"<Traced %{self.id}: {self.type}>"


def _parse_type(text):
    """'tensor<B x 10 x f32 @accum(f32)>' -> (['B', '10'], 'f32')."""
    inner = text[text.index("<") + 1:text.rindex(">")].split("@")[0].strip()
    parts = [p.strip() for p in inner.split(" x ")]
    return parts[:-1], parts[-1]


class _Builder:
    """Wraps tessera_program_builder_t for one traced function."""

    def __init__(self):
        out = ctypes.c_void_p()
        check(lib.tessera_program_builder_create(ctypes.byref(out)))
        self.ptr = out.value

    def close(self):
        if self.ptr:
            lib.tessera_program_builder_destroy(self.ptr)
            self.ptr = None

    __del__ = close

    def value_type(self, vid):
        b = ctypes.c_void_p()
        check(lib.tessera_program_builder_value_type(self.ptr, vid, ctypes.byref(b)))
        return blob_bytes(b.value).decode()

    def lift(self, x, like):
        if isinstance(x, Traced):
            return x
        if isinstance(x, (int, float, bool, np.number)):
            return self.add("constant", (), {"value": float(x) if not isinstance(x, bool) else int(x)},
                            result_type=TensorType((), like.dtype))
        raise InvalidArgumentError(f"cannot use a {type(x).__name__} in a traced function "
                                   "(pass arrays as parameters)")

    def add(self, op, operands, attrs, result_type=None):
        for o in operands:
            if not isinstance(o, Traced) or o._b is not self:
                raise InvalidArgumentError(f"{op}: operands must be traced values of this function, got {o!r}")
        keep = []
        ids = (ctypes.c_uint32 * max(len(operands), 1))(*[o.id for o in operands])
        attr_arr = (_abi.tessera_ir_attribute_t * max(len(attrs), 1))()
        for i, (k, v) in enumerate(attrs.items()):
            a = attr_arr[i]
            a.struct_size = _abi.TESSERA_IR_ATTRIBUTE_STRUCT_SIZE
            a.name = k.encode()
            if isinstance(v, bool):
                a.kind, a.int_value = _abi.TESSERA_IR_ATTR_BOOL, int(v)
            elif isinstance(v, (int, np.integer)):
                a.kind, a.int_value = _abi.TESSERA_IR_ATTR_INT, int(v)
            elif isinstance(v, (float, np.floating)):
                a.kind, a.float_value = _abi.TESSERA_IR_ATTR_FLOAT, float(v)
            elif isinstance(v, str):
                a.kind, a.string_value = _abi.TESSERA_IR_ATTR_STRING, v.encode()
            elif isinstance(v, _DType):
                a.kind, a.dtype_value = _abi.TESSERA_IR_ATTR_DTYPE, core.DTYPES[v.name][0]
            elif isinstance(v, (list, tuple)) and all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                                                       for e in v):
                arr = (ctypes.c_int64 * max(len(v), 1))(*v)
                keep.append(arr)
                a.kind, a.int_list, a.list_size = _abi.TESSERA_IR_ATTR_INT_LIST, arr, len(v)
            elif isinstance(v, (list, tuple)) and all(isinstance(e, (int, float)) for e in v):
                arr = (ctypes.c_double * max(len(v), 1))(*v)
                keep.append(arr)
                a.kind, a.float_list, a.list_size = _abi.TESSERA_IR_ATTR_FLOAT_LIST, arr, len(v)
            else:
                raise InvalidArgumentError(f"{op}: attribute {k}={v!r} has an unsupported type")
        desc = _abi.tessera_ir_op_desc_t()
        desc.struct_size = _abi.TESSERA_IR_OP_DESC_STRUCT_SIZE
        desc.op = op.encode()
        desc.operands = ids
        desc.operand_count = len(operands)
        desc.attributes = attr_arr
        desc.attribute_count = len(attrs)
        if result_type is not None:
            t, k = result_type._c()
            keep.append(k)
            keep.append(t)
            desc.result_types = ctypes.pointer(t)
            desc.result_type_count = 1
        file, line = _caller_location()
        loc = _abi.tessera_source_location_t()
        loc.struct_size = _abi.TESSERA_SOURCE_LOCATION_STRUCT_SIZE
        loc.file, loc.line, loc.column = file.encode(), line, 1
        desc.location = ctypes.pointer(loc)
        cap = 4096
        results = (ctypes.c_uint32 * cap)()
        n = ctypes.c_size_t()
        check(lib.tessera_program_builder_add_op(self.ptr, ctypes.byref(desc), results, cap, ctypes.byref(n)), op)
        vals = tuple(Traced(self, results[i]) for i in range(n.value))
        return vals[0] if len(vals) == 1 else vals


def trace(fn, types=None, name=None):
    """Traces `fn` into a Program with one function @name (default: fn's
    name). types: list of TensorType (default: fn's annotations)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if types is None:
        types = []
        for p in params:
            ann = p.annotation
            if isinstance(ann, TensorType):
                types.append(ann)
            else:
                raise InvalidArgumentError(f"parameter '{p.name}' of {fn.__name__} needs a Tensor[...] annotation")
    if len(types) != len(params):
        raise InvalidArgumentError(f"{fn.__name__} has {len(params)} parameters, {len(types)} types given")
    b = _Builder()
    try:
        check(lib.tessera_program_builder_begin_function(b.ptr, (name or fn.__name__).encode()))
        args = []
        for p, t in zip(params, types):
            ct, keep = t._c()
            vid = ctypes.c_uint32()
            check(lib.tessera_program_builder_add_parameter(b.ptr, p.name.encode(), ctypes.byref(ct),
                                                            ctypes.byref(vid)), f"parameter {p.name}")
            args.append(Traced(b, vid.value))
        prev = getattr(_state, "builder", None)
        _state.builder = b
        try:
            out = fn(*args)
        finally:
            _state.builder = prev
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for o in outs:
            if not isinstance(o, Traced):
                raise InvalidArgumentError(f"{fn.__name__} must return traced tensors, got {type(o).__name__}")
        ids = (ctypes.c_uint32 * len(outs))(*[o.id for o in outs])
        check(lib.tessera_program_builder_finish_function(b.ptr, ids, len(outs)), "return")
        prog = ctypes.c_void_p()
        check(lib.tessera_program_builder_finish(b.ptr, ctypes.byref(prog)))
        return core.Program(prog.value)
    finally:
        b.close()


class function:
    """Decorator: @tessera.function or @tessera.function(target="cpu", **compile_options).

    The decorated object is callable on arrays like a Module (compiled on
    first call per target and cached); .program is the traced Program,
    .compile(target) a Module, .text the .tsr text, .reference(*arrays)
    the float64 reference result.
    """

    def __new__(cls, fn=None, **kw):
        self = super().__new__(cls)
        if fn is None:
            return lambda f: cls(f, **kw)
        return self

    def __init__(self, fn=None, target="cpu", **options):
        self.fn, self.target, self.options = fn, target, options
        functools.update_wrapper(self, fn)
        self._program = None
        self._modules = {}
        self._lock = threading.Lock()

    @property
    def program(self):
        if self._program is None:
            self._program = trace(self.fn)
        return self._program

    @property
    def text(self):
        return self.program.text()

    def compile(self, target=None):
        target = target or self.target
        key = target if isinstance(target, str) else id(target)
        with self._lock:
            m = self._modules.get(key)
            if m is None:
                m = self._modules[key] = core.compile(self.program, target=target, **self.options)
        return m

    def __call__(self, *arrays, **kw):
        return self.compile()(*arrays, **kw)

    def reference(self, *arrays, bind=None):
        out = self.program.run_reference(*arrays, bind=bind or self.options.get("bind"))
        return out[0] if len(out) == 1 else tuple(out)


class GradFunction:
    """The gradient of a traced function or Program: callable on arrays,
    returning d loss / d wrt (one array per wrt name; a single array when
    there is one). .program is the gradient Program (it returns the original
    outputs followed by the gradients), .warnings the autodiff warnings."""

    def __init__(self, program, n_outputs, target, options):
        self.program, self.n_outputs, self.target, self.options = program, n_outputs, target, options
        self._modules, self._lock = {}, threading.Lock()
        self.warnings = []

    @property
    def text(self):
        return self.program.text()

    def compile(self, target=None):
        target = target or self.target
        key = target if isinstance(target, str) else id(target)
        with self._lock:
            m = self._modules.get(key)
            if m is None:
                m = self._modules[key] = core.compile(self.program, target=target, **self.options)
        return m

    def __call__(self, *arrays, **kw):
        out = self.compile()(*arrays, **kw)
        out = out if isinstance(out, tuple) else (out,)
        g = out[self.n_outputs:]
        return g[0] if len(g) == 1 else g

    def reference(self, *arrays, bind=None):
        out = self.program.run_reference(*arrays, bind=bind or self.options.get("bind"))
        g = out[self.n_outputs:]
        return g[0] if len(g) == 1 else tuple(g)


def grad(f, wrt=None, loss_output=0, remat=None, target=None, **options):
    """Gradient of a scalar-valued function (reverse mode, in the core:
    tessera_program_grad, GRAD mode).

    f: a @tessera.function or a Program (its "main" or first function).
    wrt: parameter names (or indices) to differentiate against; default:
      every float parameter. loss_output: index of the scalar loss among the
      outputs. remat: forward values to recompute ("h,a" or a list).
    Returns a GradFunction: grad(f)(*arrays) -> gradient array(s), each
    shaped like its parameter. Raises UnsupportedError when libtessera lacks
    tessera_program_grad; InvalidArgumentError (non-scalar or integer loss,
    integer wrt), NotFoundError (unknown wrt name) from the core.
    """
    if not has("tessera_program_grad"):
        raise UnsupportedError("tessera.grad needs tessera_program_grad, which this libtessera does not export")
    if isinstance(f, function):
        program, target, options = f.program, target or f.target, {**f.options, **options}
        params = list(inspect.signature(f.fn).parameters.values())
        names = [p.name for p in params]
        dtypes = [p.annotation.dtype if isinstance(p.annotation, TensorType) else "f32" for p in params]
    elif isinstance(f, core.Program):
        program, target = f, target or "cpu"
        names, dtypes = None, None
    else:
        raise InvalidArgumentError("tessera.grad takes a @tessera.function or a Program")
    if wrt is None:
        if names is None:
            raise InvalidArgumentError("grad of a Program needs wrt=[parameter names]")
        wrt = [n for n, d in zip(names, dtypes) if d.startswith(("f", "b"))]
    elif isinstance(wrt, (str, int)):
        wrt = [wrt]
    wrt_b = [str(w).encode() for w in wrt]
    arr = (ctypes.c_char_p * len(wrt_b))(*wrt_b)
    opts = _abi.tessera_grad_options_t()
    opts.struct_size = _abi.TESSERA_GRAD_OPTIONS_STRUCT_SIZE
    opts.mode = _abi.TESSERA_GRAD_MODE_GRAD
    opts.loss_output = loss_output
    if remat:
        opts.remat = (",".join(remat) if isinstance(remat, (list, tuple)) else remat).encode()
    out, warn = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.tessera_program_grad(program.ptr, None, len(wrt_b), arr, ctypes.byref(opts), ctypes.byref(out),
                                   ctypes.byref(warn)), "tessera_program_grad")
    warnings = [w for w in blob_bytes(warn.value).decode().split("\n") if w]
    gp = core.Program(out.value)
    n_outputs = core._count_results(program, None)
    g = GradFunction(gp, n_outputs, target, options)
    g.warnings = warnings
    return g
