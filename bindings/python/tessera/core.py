"""Contexts, plugins, devices, tensors, programs and compiled modules.

Ownership: every object here owns its ABI handle and frees it in close()
(also called by __del__ and `with`). Objects keep their Context alive.
Threading: Module.__call__ may be called from several threads at once (the
ABI's tessera_module_run is thread-safe and ctypes releases the GIL);
close() waits for calls in flight. Tensors are immutable metadata over
memory you may share; do not close one while another thread uses it.
"""
import ctypes
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from . import _abi, _dlpack
from . import _lib
from ._lib import lib, check, blob_bytes, cstr
from .errors import (ClosedError, DTypeError, Error, InvalidArgumentError, NoDeviceError, NotFoundError,
                     UnsupportedError)

# ---- dtypes -----------------------------------------------------------------

DTYPES = {  # name -> (tessera_dtype_t, numpy dtype or None, itemsize)
    "f64": (_abi.TESSERA_DTYPE_F64, np.dtype(np.float64), 8),
    "f32": (_abi.TESSERA_DTYPE_F32, np.dtype(np.float32), 4),
    "f16": (_abi.TESSERA_DTYPE_F16, np.dtype(np.float16), 2),
    "bf16": (_abi.TESSERA_DTYPE_BF16, None, 2),
    "f8e4m3": (_abi.TESSERA_DTYPE_F8E4M3, None, 1),
    "f8e5m2": (_abi.TESSERA_DTYPE_F8E5M2, None, 1),
    "i64": (_abi.TESSERA_DTYPE_I64, np.dtype(np.int64), 8),
    "i32": (_abi.TESSERA_DTYPE_I32, np.dtype(np.int32), 4),
    "i16": (_abi.TESSERA_DTYPE_I16, np.dtype(np.int16), 2),
    "i8": (_abi.TESSERA_DTYPE_I8, np.dtype(np.int8), 1),
    "u8": (_abi.TESSERA_DTYPE_U8, np.dtype(np.uint8), 1),
    "bool": (_abi.TESSERA_DTYPE_BOOL, np.dtype(np.bool_), 1),
}
_NAME_OF_CODE = {v[0]: k for k, v in DTYPES.items()}
_NAME_OF_NP = {v[1]: k for k, v in DTYPES.items() if v[1] is not None}
# ml_dtypes (optional) gives NumPy dtypes for bf16 and fp8.
_ML = {"bf16": "bfloat16", "f8e4m3": "float8_e4m3fn", "f8e5m2": "float8_e5m2"}
try:
    import ml_dtypes as _ml_dtypes
    for _n, _m in _ML.items():
        _NAME_OF_NP[np.dtype(getattr(_ml_dtypes, _m))] = _n
except ImportError:  # pragma: no cover - optional
    _ml_dtypes = None


def dtype_name(dt) -> str:
    """Normalizes a dtype (Tessera name "f32", tessera_dtype_t value, NumPy
    dtype or type, "float32") to a Tessera name. Raises DTypeError."""
    if isinstance(dt, str) and dt in DTYPES:
        return dt
    if isinstance(dt, int) and not isinstance(dt, bool) and dt in _NAME_OF_CODE:
        return _NAME_OF_CODE[dt]
    try:
        npd = np.dtype(dt)
    except TypeError:
        raise DTypeError(f"unknown dtype {dt!r}") from None
    if npd in _NAME_OF_NP:
        return _NAME_OF_NP[npd]
    raise DTypeError(f"dtype {npd} has no Tessera equivalent (supported: {', '.join(DTYPES)})")


def numpy_dtype(name):
    """The NumPy dtype holding Tessera dtype `name` exactly: the native one,
    ml_dtypes' for bf16/fp8 when installed, else None."""
    npd = DTYPES[name][1]
    if npd is None and _ml_dtypes is not None:
        npd = np.dtype(getattr(_ml_dtypes, _ML[name]))
    return npd


def _bf16_bits(a):
    """float array -> uint16 bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    nan = np.isnan(a)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = 0x7FC0
    return r


def _bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---- context, plugins, devices -------------------------------------------------


@dataclass(frozen=True)
class PluginInfo:
    """One candidate plugin file (tessera_plugin_info_t, strings copied)."""
    path: str
    name: Optional[str]
    vendor: Optional[str]
    version: Optional[str]
    kind: str
    state: str            # "loaded", "load error", ... (tessera_plugin_state_name)
    abi_version: Tuple[int, int]
    device_count: int
    reason: str           # why not loaded / no device; "" when none
    targets: Tuple[str, ...]
    has_manifest: bool


@dataclass(frozen=True)
class DeviceInfo:
    """tessera_device_info_t, strings copied."""
    plugin: str
    name: str
    architecture: str
    features: Tuple[str, ...]
    memory_bytes: int
    compute_units: int
    ordinal: int
    kind: int             # tessera_device_kind_t (1 = CPU, 2 = CUDA, ...)


class Device:
    """A device of a loaded plugin; borrowed from its Context (kept alive)."""

    def __init__(self, context, ptr, info):
        self.context, self._ptr, self.info = context, ptr, info

    @property
    def plugin(self):
        return self.info.plugin

    def __repr__(self):
        return f"<tessera.Device {self.info.plugin}:{self.info.ordinal} {self.info.name!r} {self.info.architecture}>"


@dataclass(frozen=True)
class DeviceDescription:
    """A device to compile for without having it (compile-only modules)."""
    plugin: str
    architecture: Optional[str] = None
    features: Optional[str] = None


class Context:
    """Owns the loaded plugins and their devices (tessera_context_t).

    Context(plugin_path=None, ignore_environment=False, no_default_paths=False)
    plugin_path: colon-separated directories searched first (str or list).
    Most programs use the default context (tessera.default_context()); make
    your own to load plugins from extra directories. close() fails with
    BusyError while modules or tensors of the context are alive.
    Thread-safe except close().
    """

    def __init__(self, plugin_path=None, ignore_environment=False, no_default_paths=False, no_load=False):
        if isinstance(plugin_path, (list, tuple)):
            plugin_path = ":".join(os.fspath(p) for p in plugin_path)
        elif plugin_path is not None:
            plugin_path = os.fspath(plugin_path)
        opts = _abi.tessera_context_options_t()
        opts.struct_size = _abi.TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE
        opts.plugin_path = plugin_path.encode() if plugin_path else None
        opts.flags = ((_abi.TESSERA_CONTEXT_FLAG_IGNORE_ENVIRONMENT if ignore_environment else 0) |
                      (_abi.TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS if no_default_paths else 0) |
                      (_abi.TESSERA_CONTEXT_FLAG_NO_LOAD if no_load else 0))
        out = ctypes.c_void_p()
        check(lib.tessera_context_create(ctypes.byref(opts), ctypes.byref(out)), "tessera_context_create")
        self._ptr = out.value
        self._devices = None
        self._lock = threading.Lock()

    @property
    def ptr(self):
        if not self._ptr:
            raise ClosedError("context is closed")
        return self._ptr

    def plugins(self):
        """Every candidate plugin, loaded or not, in discovery order."""
        out = []
        for i in range(lib.tessera_plugin_count(self.ptr)):
            info = _abi.tessera_plugin_info_t()
            info.struct_size = _abi.TESSERA_PLUGIN_INFO_STRUCT_SIZE
            check(lib.tessera_plugin_get_info(self.ptr, i, ctypes.byref(info)), "tessera_plugin_get_info")
            out.append(PluginInfo(
                path=cstr(info.path), name=cstr(info.name), vendor=cstr(info.vendor), version=cstr(info.version),
                kind=cstr(info.kind), state=cstr(lib.tessera_plugin_state_name(info.state)),
                abi_version=(info.abi_major, info.abi_minor), device_count=info.device_count,
                reason=cstr(info.reason) or "",
                targets=tuple(t for t in (cstr(info.targets) or "").split(",") if t),
                has_manifest=bool(info.has_manifest)))
        return out

    def devices(self):
        """Devices of all loaded plugins (list of Device), in plugin order."""
        ctx = self.ptr
        if self._devices is None:
            devs = []
            for i in range(lib.tessera_device_count(self.ptr)):
                p = ctypes.c_void_p()
                check(lib.tessera_context_get_device(self.ptr, i, ctypes.byref(p)), "tessera_context_get_device")
                info = _abi.tessera_device_info_t()
                info.struct_size = _abi.TESSERA_DEVICE_INFO_STRUCT_SIZE
                check(lib.tessera_device_get_info(p, ctypes.byref(info)), "tessera_device_get_info")
                devs.append(Device(self, p.value, DeviceInfo(
                    plugin=cstr(info.plugin), name=cstr(info.name), architecture=cstr(info.architecture),
                    features=tuple(f for f in (cstr(info.features) or "").split(",") if f),
                    memory_bytes=info.memory_bytes, compute_units=info.compute_units, ordinal=info.ordinal,
                    kind=info.kind)))
            self._devices = devs
        return list(self._devices)

    def device(self, plugin="cpu", ordinal=0):
        """The device `ordinal` of plugin `plugin`. Raises NoDeviceError with
        the plugin's reason (or NotFoundError when no such plugin)."""
        for d in self.devices():
            if d.info.plugin == plugin and d.info.ordinal == ordinal:
                return d
        for p in self.plugins():
            if p.name == plugin:
                raise NoDeviceError(f"plugin '{plugin}' has no device {ordinal} (state: {p.state}"
                                    + (f"; {p.reason}" if p.reason else "") + ")")
        names = sorted({p.name for p in self.plugins() if p.name})
        raise NotFoundError(f"no plugin named '{plugin}' (found: {', '.join(names) or 'none'})")

    def close(self):
        """Destroys the context. Raises BusyError (and stays open) while
        modules, tensors or exported arrays of it are alive."""
        if self._ptr:
            check(lib.tessera_context_destroy(self._ptr), "tessera_context_destroy")
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ptr", None) and self is not _lib._default:
            try:
                self.close()
            except Exception:
                pass  # BUSY at exit: leave it to the OS


def default_context():
    """The process-wide default Context (created on first use)."""
    return _lib.default_context()


def plugins(context=None):
    """All candidate plugins (list of PluginInfo) of `context` or the default."""
    return (context or default_context()).plugins()


def devices(context=None):
    """All devices (list of Device) of `context` or the default context."""
    return (context or default_context()).devices()


def version():
    """(package version, (abi_major, abi_minor), build info) of libtessera."""
    info = _abi.tessera_version_info_t()
    info.struct_size = _abi.TESSERA_VERSION_INFO_STRUCT_SIZE
    check(lib.tessera_get_version(ctypes.byref(info)))
    return cstr(info.version), (info.abi_major, info.abi_minor), cstr(info.build_info)


# ---- tensors ----------------------------------------------------------------

class _Capsule:
    """Hands an existing capsule to a DLPack consumer (np/torch.from_dlpack)."""
    __slots__ = ("capsule", "device")

    def __init__(self, capsule, device):
        self.capsule, self.device = capsule, device

    def __dlpack__(self, stream=None):
        return self.capsule

    def __dlpack_device__(self):
        return self.device


class Tensor:
    """An owned tessera_tensor_t: dtype + shape, dense row-major, on a device
    or over imported DLPack memory.

    Make one with Tensor.from_numpy(array, dtype=None, device=None) (copies
    into a new tensor; `dtype` converts, e.g. float32 -> "bf16"), or
    tessera.from_dlpack(obj) (zero copy). Read with .numpy() (zero copy for
    NumPy dtypes on the CPU; a copy for bf16/fp8 and device memory) or any
    DLPack consumer (np.from_dlpack(t), torch.from_dlpack(t)).
    Attributes: dtype (name), shape (tuple), nbytes, device_kind.
    """

    def __class_getitem__(cls, item):
        """Tensor["B", "S", "D"] / Tensor["B", 784, "bf16"]: an annotation
        for @tessera.function parameters (tracing.TensorType)."""
        from .tracing import TensorType
        return TensorType.from_item(item)

    def __init__(self, ptr, context):
        self._ptr, self.context = ptr, context
        info = _abi.tessera_tensor_info_t()
        info.struct_size = _abi.TESSERA_TENSOR_INFO_STRUCT_SIZE
        check(lib.tessera_tensor_get_info(ptr, ctypes.byref(info)), "tessera_tensor_get_info")
        self.dtype = _NAME_OF_CODE.get(info.dtype, str(info.dtype))
        self.shape = tuple(info.shape[i] for i in range(info.rank))
        self.nbytes = info.size_bytes
        self.device_kind = info.device_kind
        self.device_ordinal = info.device_ordinal

    @property
    def ptr(self):
        if not self._ptr:
            raise ClosedError("tensor is closed")
        return self._ptr

    @classmethod
    def from_numpy(cls, array, dtype=None, device=None, context=None):
        """A new tensor holding a copy of `array` (any layout) on `device`
        (Device, plugin name, or None = the first CPU device).
        dtype: target Tessera dtype; float arrays convert to "bf16" (round to
        nearest even), uint16 arrays are taken as bf16 bits. Raises DTypeError."""
        context = context or (device.context if isinstance(device, Device) else default_context())
        if not isinstance(device, Device):
            device = context.device(device or "cpu")
        array = np.asarray(array)
        name = dtype_name(dtype) if dtype is not None else dtype_name(array.dtype)
        native = numpy_dtype(name)
        if name == "bf16" and (native is None or native != array.dtype):
            if array.dtype == np.uint16:
                data = np.ascontiguousarray(array)
            elif array.dtype.kind == "f":
                data = _bf16_bits(array)
            else:
                raise DTypeError(f"cannot convert {array.dtype} to bf16")
        elif DTYPES[name][1] is not None:
            data = np.ascontiguousarray(array, dtype=DTYPES[name][1])
        elif native is not None and native == array.dtype:
            data = np.ascontiguousarray(array)
        else:
            raise DTypeError(f"cannot convert {array.dtype} to {name} (install ml_dtypes or pass bit patterns)")
        shape = (ctypes.c_int64 * max(data.ndim, 1))(*data.shape)
        out = ctypes.c_void_p()
        check(lib.tessera_tensor_create(device._ptr, DTYPES[name][0], data.ndim, shape, ctypes.byref(out)),
              "tessera_tensor_create")
        t = cls(out.value, context)
        try:
            if data.nbytes:
                check(lib.tessera_tensor_copy_from_host(t._ptr, data.ctypes.data, data.nbytes),
                      "tessera_tensor_copy_from_host")
        except Error:
            t.close()
            raise
        return t

    def numpy(self, copy=False):
        """The tensor as a NumPy array. CPU tensors of NumPy dtypes: zero
        copy (the array keeps the memory alive) unless copy=True. bf16/fp8:
        a copy, as ml_dtypes arrays when installed, else float32 (exact)."""
        npd = DTYPES.get(self.dtype, (None, None))[1]
        if npd is not None and self.device_kind == _abi.TESSERA_DEVICE_KIND_CPU and not copy:
            return np.from_dlpack(self)
        return self._copy_to_numpy()

    def _copy_to_numpy(self):
        name = self.dtype
        if name == "bf16" and numpy_dtype(name) is None:
            bits = np.empty(self.shape, np.uint16)
            check(lib.tessera_tensor_copy_to_host(self.ptr, bits.ctypes.data, self.nbytes))
            return _bf16_to_f32(bits)
        npd = numpy_dtype(name)
        if npd is None:
            raise UnsupportedError(f"{name} tensors need ml_dtypes to be read into NumPy")
        out = np.empty(self.shape, npd)
        if self.nbytes:
            check(lib.tessera_tensor_copy_to_host(self.ptr, out.ctypes.data, self.nbytes),
                  "tessera_tensor_copy_to_host")
        return out

    def __dlpack__(self, stream=None):
        """A DLPack capsule viewing this tensor (zero copy; the memory stays
        alive until the consumer releases it, even if the tensor is closed)."""
        m = ctypes.c_void_p()
        check(lib.tessera_tensor_to_dlpack(self.ptr, ctypes.byref(m)), "tessera_tensor_to_dlpack")
        return _dlpack.capsule_from_managed(m.value)

    def __dlpack_device__(self):
        return (int(self.device_kind), max(int(self.device_ordinal), 0))

    def close(self):
        """Frees the tensor (exported DLPack views stay valid)."""
        if self._ptr:
            lib.tessera_tensor_free(self._ptr)
            self._ptr = None

    def __del__(self):
        p = getattr(self, "_ptr", None)
        if p:
            self._ptr = None
            try:
                lib.tessera_tensor_free(p)
            except Exception:  # interpreter shutdown: the OS reclaims it
                pass

    def __repr__(self):
        return f"<tessera.Tensor {self.dtype}{list(self.shape)}>"


def _import_capsule(context_ptr, capsule, what):
    """Imports a producer's capsule; returns an owned tessera_tensor_t* (int)."""
    mp = _dlpack.managed_from_capsule(capsule)
    out = ctypes.c_void_p()
    check(lib.tessera_tensor_from_dlpack(context_ptr, mp, ctypes.byref(out)), f"importing {what} via DLPack")
    _dlpack.mark_consumed(capsule)
    return out.value


def from_dlpack(obj, context=None):
    """A Tensor viewing `obj` (anything with __dlpack__, or a "dltensor"
    capsule) without copying. Requires dense row-major memory and a Tessera
    dtype: raises UnsupportedError otherwise (copy first, e.g.
    np.ascontiguousarray). The producer's memory stays alive while the
    Tensor exists."""
    context = context or default_context()
    cap = obj.__dlpack__() if hasattr(obj, "__dlpack__") else obj
    return Tensor(_import_capsule(context.ptr, cap, type(obj).__name__), context)


# ---- programs ------------------------------------------------------------------

class Program:
    """A parsed, verified Graph IR program (tessera_program_t); immutable.
    Make one with tessera.parse(text) or the tracing front end."""

    def __init__(self, ptr):
        self._ptr = ptr

    @property
    def ptr(self):
        if not self._ptr:
            raise ClosedError("program is closed")
        return self._ptr

    def text(self):
        """The canonical .tsr text."""
        b = ctypes.c_void_p()
        check(lib.tessera_program_print(self.ptr, ctypes.byref(b)), "tessera_program_print")
        return blob_bytes(b.value).decode()

    __str__ = text

    def signatures(self):
        """Inferred signature of each function, e.g.
        'func @mlp(%x: tensor<B x 784 x f32>) -> tensor<B x 10 x f32>'."""
        out = []
        for i in range(lib.tessera_program_function_count(self.ptr)):
            b = ctypes.c_void_p()
            check(lib.tessera_program_function_signature(self.ptr, i, ctypes.byref(b)))
            out.append(blob_bytes(b.value).decode())
        return out

    def symbols(self, entry=None, undetermined=False):
        """Symbols of function `entry` (list of str); undetermined=True lists
        only those the parameter shapes do not fix (they need `bind`)."""
        b = ctypes.c_void_p()
        which = _abi.TESSERA_PROGRAM_SYMBOLS_UNDETERMINED if undetermined else _abi.TESSERA_PROGRAM_SYMBOLS_ALL
        check(lib.tessera_program_function_symbols(self.ptr, _enc(entry), which, ctypes.byref(b)))
        s = blob_bytes(b.value).decode()
        return [x for x in s.split(",") if x]

    def run_reference(self, *inputs, entry=None, bind=None, context=None):
        """Evaluates with the float64 reference interpreter (results rounded
        to declared dtypes). inputs: arrays/Tensors, one per parameter, of
        the parameter dtypes (bf16: pass Tensor.from_numpy(x, "bf16")).
        Returns a list of NumPy arrays (bf16 as float32 unless ml_dtypes).
        Raises DTypeError, ShapeMismatchError, UnsupportedError, ..."""
        context = context or default_context()
        tensors, keep = _to_tensors(context, inputs)
        n_out = _count_results(self, entry)
        arr = (ctypes.c_void_p * max(len(tensors), 1))(*tensors)
        outs = (ctypes.c_void_p * n_out)()
        check(lib.tessera_program_run_reference(self.ptr, _enc(entry), _bind_text(bind), len(tensors), arr,
                                                n_out, outs), "tessera_program_run_reference")
        del keep
        return [Tensor(p, context).numpy(copy=True) for p in outs]

    def compile(self, target="cpu", options=None, **kw):
        """Compiles the program (see tessera.compile)."""
        return compile(self, target=target, options=options, **kw)

    def close(self):
        """Frees the program. Idempotent."""
        p, self._ptr = self._ptr, None
        if p:
            lib.tessera_program_destroy(p)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _count_results(program, entry):
    sigs = program.signatures()
    sig = None
    for s in sigs:
        name = s.split("@", 1)[1].split("(", 1)[0]
        if (entry and name == entry) or (not entry and name == "main"):
            sig = s
    sig = sig or sigs[0]
    ret = sig.rsplit("->", 1)[1]
    return max(ret.count("tensor<"), 1)


def _enc(s):
    return None if s is None else s.encode()


def _bind_text(bind):
    if bind is None or bind == {}:
        return None
    if isinstance(bind, dict):
        bind = ",".join(f"{k}={int(v)}" for k, v in bind.items())
    return bind.encode()


def parse(text, source_name=None):
    """Parses and verifies .tsr text (str or bytes) into a Program.
    Raises InvalidIRError / ShapeMismatchError with .location."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    out = ctypes.c_void_p()
    check(lib.tessera_program_parse(data, len(data), _enc(source_name), ctypes.byref(out)))
    return Program(out.value)


# ---- compile and modules --------------------------------------------------------

@dataclass(frozen=True)
class ValueInfo:
    """An input or output of a module: name, dtype name, dims (int for
    static sizes, str for symbolic ones such as "B" or "S*2")."""
    name: str
    dtype: str
    shape: Tuple[Union[int, str], ...]


_OPTION_KEYS = ("entry", "source_name", "opt_level", "dump", "dump_callback", "cache_dir", "schedule_file", "bind")


def _looks_like_path(s):
    return "\n" not in s and "{" not in s and (os.path.exists(s) or s.endswith((".tsr", ".onnx")))


def compile(source, target="cpu", options=None, *, context=None, format=None, **kw):
    """Compiles a program into a callable Module.

    source: .tsr text (str), a path (str or os.PathLike; .onnx is ONNX), bytes
      (text, or ONNX with format="onnx"), or a Program.
    target: plugin name ("cpu", "cuda", ...: its first device), a Device, or a
      DeviceDescription (compile-only: inspect/serialize, running raises
      NoDeviceError).
    options (dict) or keyword arguments: entry (function name; default
      "main", else the first), bind ({"H": 8} or "H=8": symbols the inputs do
      not fix), opt_level (0..3), dump ("graph,schedule,..."),
      dump_callback(stage, text), cache_dir, schedule_file, source_name.
    Raises InvalidIRError / ShapeMismatchError (with .location),
    UnsupportedError, NotFoundError (plugin, entry), NoDeviceError,
    InvalidArgumentError.
    """
    opts = dict(options or {})
    for k in list(kw):
        if k in _OPTION_KEYS:
            opts[k] = kw.pop(k)
    if kw:
        raise InvalidArgumentError(f"unknown compile option(s): {', '.join(kw)}")
    for k in opts:
        if k not in _OPTION_KEYS:
            raise InvalidArgumentError(f"unknown compile option '{k}' (known: {', '.join(_OPTION_KEYS)})")
    if isinstance(target, Device):
        context = context or target.context
    context = context or default_context()

    source_name = opts.get("source_name")
    if isinstance(source, Program):
        data = source.text().encode()
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = os.fspath(source)
        with open(path, "rb") as f:
            data = f.read()
        source_name = source_name or path
        if format is None and path.endswith(".onnx"):
            format = "onnx"
    elif isinstance(source, str):
        data = source.encode()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise InvalidArgumentError(f"cannot compile a {type(source).__name__}")
    format = format or "tessera-ir"

    co = _abi.tessera_compile_options_t()
    co.struct_size = _abi.TESSERA_COMPILE_OPTIONS_STRUCT_SIZE
    co.entry = _enc(opts.get("entry"))
    co.source_name = _enc(source_name)
    co.opt_level = int(opts.get("opt_level", 2))
    dump = opts.get("dump")
    if isinstance(dump, (list, tuple)):
        dump = ",".join(dump)
    co.dump = _enc(dump)
    cb = opts.get("dump_callback")
    if cb is not None:
        def _dump(_user, stage, text, size):
            cb(stage.decode(), ctypes.string_at(text, size).decode("utf-8", "replace"))
        co.dump_callback = _abi.tessera_dump_callback_t(_dump)
    co.cache_dir = _enc(opts.get("cache_dir") and os.fspath(opts["cache_dir"]))
    co.schedule_file = _enc(opts.get("schedule_file") and os.fspath(opts["schedule_file"]))
    co.bind = _bind_text(opts.get("bind"))

    tgt = _abi.tessera_compile_target_t()
    tgt.struct_size = _abi.TESSERA_COMPILE_TARGET_STRUCT_SIZE
    device = None
    if isinstance(target, DeviceDescription):
        desc = _abi.tessera_device_description_t()
        desc.struct_size = _abi.TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE
        desc.plugin, desc.architecture, desc.features = _enc(target.plugin), _enc(target.architecture), _enc(target.features)
        tgt.description = ctypes.pointer(desc)
    else:
        device = target if isinstance(target, Device) else context.device(target)
        tgt.device = device._ptr
    out = ctypes.c_void_p()
    check(lib.tessera_compile(context.ptr, data, len(data), format.encode(), ctypes.byref(co), ctypes.byref(tgt),
                              ctypes.byref(out)), "compile")
    return Module(out.value, context, device)


def load_module(data, target="cpu", context=None):
    """Loads bytes from Module.serialize() for `target` (see compile).
    Raises CorruptDataError, IncompatibleVersionError, NotFoundError."""
    context = context or (target.context if isinstance(target, Device) else default_context())
    device = target if isinstance(target, Device) else context.device(target)
    tgt = _abi.tessera_compile_target_t()
    tgt.struct_size = _abi.TESSERA_COMPILE_TARGET_STRUCT_SIZE
    tgt.device = device._ptr
    out = ctypes.c_void_p()
    data = bytes(data)
    check(lib.tessera_module_load(context.ptr, data, len(data), ctypes.byref(tgt), ctypes.byref(out)),
          "tessera_module_load")
    return Module(out.value, context, device)


def _value_info(fn, ptr, i):
    info = _abi.tessera_value_info_t()
    info.struct_size = _abi.TESSERA_VALUE_INFO_STRUCT_SIZE
    check(fn(ptr, i, ctypes.byref(info)))
    dims = tuple(info.dims[j].size if info.dims[j].size >= 0 else cstr(info.dims[j].symbol)
                 for j in range(info.rank))
    return ValueInfo(cstr(info.name), _NAME_OF_CODE.get(info.dtype, str(info.dtype)), dims)


_get_ptr = _dlpack._api.PyCapsule_GetPointer
_set_name = _dlpack._api.PyCapsule_SetName
_new_capsule = _dlpack._api.PyCapsule_New
_capsule_destructor = _dlpack._capsule_destructor
_from_dlpack_c = lib.tessera_tensor_from_dlpack
_to_dlpack_c = lib.tessera_tensor_to_dlpack
_tensor_free = lib.tessera_tensor_free
_run_c = lib.tessera_module_run
_byref = ctypes.byref
_c_void_p = ctypes.c_void_p
_ndarray = np.ndarray
_np_from_dlpack = np.from_dlpack
_CPU = (1, 0)

# ---- Module.__call__ fast path (NumPy in, NumPy out, CPU devices) ------------
# Per call it makes at most three kinds of ABI calls: tessera_module_run, and
# per output tessera_tensor_copy_to_host + tessera_tensor_free (small outputs)
# or the DLPack export (large ones). Input tensors are imported through a
# DLManagedTensor the binding owns (no capsule, no deleter) and kept, per
# call frame and input, for the next call with the same address and shape.
_addressof = ctypes.addressof
# c_char.from_buffer(x) gets the address of an ndarray's first byte and
# raises TypeError unless x is C-contiguous and writeable (ValueError when
# empty): the fast path's layout check and pointer in one cheap call.
_from_buffer = ctypes.c_char.from_buffer
_empty = np.empty
_copy_to_host = lib.tessera_tensor_copy_to_host
_get_info = lib.tessera_tensor_get_info
# tessera_module_run without argtypes conversion: every argument is passed
# as a ctypes object made once per module or frame (c_void_p, c_size_t,
# arrays), so no conversion can truncate a pointer.
_run_raw = ctypes.CFUNCTYPE(ctypes.c_void_p)(("tessera_module_run", lib))
_run_raw.argtypes = None
_from_dlpack_raw = ctypes.CFUNCTYPE(ctypes.c_void_p)(("tessera_tensor_from_dlpack", lib))
_from_dlpack_raw.argtypes = None
_DL_DATA_OFFSET = _dlpack.DLManagedTensor.dl_tensor.offset + _dlpack.DLTensor.data.offset
# Outputs up to this size are copied into a fresh NumPy array (cheaper than
# a DLPack export: measured in docs/perf.md, "Binding overhead"); larger
# ones are exported zero copy.
_COPY_OUT_MAX = 16384


class _PyArrayInterface(ctypes.Structure):
    """NumPy's __array_struct__ (the array interface protocol, C side)."""
    _fields_ = [("two", ctypes.c_int), ("nd", ctypes.c_int), ("typekind", ctypes.c_char),
                ("itemsize", ctypes.c_int), ("flags", ctypes.c_int),
                ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p), ("data", ctypes.c_void_p)]


_AI_DATA = _PyArrayInterface.data.offset
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_void_at = ctypes.c_void_p.from_address


# NumPy dtype kind -> DLPack type code (kDLInt, kDLUInt, kDLFloat, kDLBool).
_DL_CODE = {"i": 0, "u": 1, "f": 2, "b": 6}
# Tessera dtype name -> (torch dtype name, DLPack code, bits): the inputs the
# torch fast path of Module.__call__ takes.
_TORCH_DL = {"f64": ("float64", 2, 64), "f32": ("float32", 2, 32), "f16": ("float16", 2, 16),
             "bf16": ("bfloat16", 4, 16), "i64": ("int64", 0, 64), "i32": ("int32", 0, 32),
             "i16": ("int16", 0, 16), "i8": ("int8", 0, 8), "u8": ("uint8", 1, 8), "bool": ("bool", 6, 8)}
_MAX_RANK = _abi.TESSERA_MAX_RANK


def _run_options(num_threads, asynchronous):
    """A tessera_run_options_t by reference, or None for the defaults."""
    if not (num_threads or asynchronous):
        return None
    opts = _abi.tessera_run_options_t()
    opts.struct_size = ctypes.sizeof(_abi.tessera_run_options_t)
    opts.num_threads = num_threads
    opts.flags = _abi.TESSERA_RUN_ASYNC if asynchronous else 0
    return _byref(opts)


class _Frame:
    """Scratch of one Module.__call__ fast-path call, reused by later calls.
    A module keeps a pool; a call takes a frame out and puts it back, so
    concurrent calls never share one. Per input i: a DLManagedTensor over a
    shape buffer, and ins[i], the tensor imported from it (owned; NULL
    deleter: the caller's array keeps the memory alive during a call, and
    the tensor is reused only for an array at the same address with the same
    shape and dtype, i.e. identical metadata)."""
    __slots__ = ("ins", "outs", "managed", "shape_bufs", "data_fields", "managed_args", "ptrs", "shapes",
                 "out_meta", "info", "out", "out_ref", "ctx")

    def __init__(self, module, dl_device=(_dlpack.KDL_CPU, 0), dl_dtypes=None):
        """dl_device: the DLPack (device_type, device_id) of the inputs;
        dl_dtypes: their DLPack (code, bits), by default from the module's
        NumPy dtypes."""
        self.ins = module._InArr()
        self.outs = module._OutArr()
        self.managed, self.shape_bufs, self.data_fields, self.managed_args = [], [], [], []
        if dl_dtypes is None:
            dl_dtypes = [(_DL_CODE[npd.kind], npd.itemsize * 8) for npd in module._np_expected]
        for code, bits in dl_dtypes:
            m = _dlpack.DLManagedTensor()
            buf = (ctypes.c_int64 * _abi.TESSERA_MAX_RANK)()
            dl = m.dl_tensor
            dl.device.device_type, dl.device.device_id = dl_device
            dl.dtype.code, dl.dtype.bits, dl.dtype.lanes = code, bits, 1
            dl.shape = ctypes.cast(buf, ctypes.POINTER(ctypes.c_int64))
            self.managed.append(m)
            self.shape_bufs.append(buf)
            # dl_tensor.data as a c_void_p over the struct's own memory.
            self.data_fields.append(_c_void_p.from_buffer(m, _DL_DATA_OFFSET))
            self.managed_args.append(_c_void_p(_addressof(m)))
        n = module._n_in
        self.ptrs, self.shapes = [None] * n, [None] * n
        self.out_meta = None  # [(shape, numpy dtype, nbytes)] of the outputs for self.shapes
        self.info = None
        self.out = _c_void_p()
        self.out_ref = _byref(self.out)
        self.ctx = _c_void_p(module._ctx_ptr)

    def import_input(self, i, address, shape, name):
        """(Re)imports input i over `address` with `shape`."""
        old = self.ins[i]
        if old:
            self.ins[i] = None
            self.ptrs[i] = None
            _tensor_free(old)
        if shape != self.shapes[i]:
            self.out_meta = None
            self.shapes[i] = None
            buf = self.shape_bufs[i]
            for d, n in enumerate(shape):
                buf[d] = n
            self.managed[i].dl_tensor.ndim = len(shape)
        self.data_fields[i].value = address
        st = _from_dlpack_raw(self.ctx, self.managed_args[i], self.out_ref)
        if st:
            check(st, f"input {i} ({name})")
        self.ins[i] = self.out.value
        self.ptrs[i], self.shapes[i] = address, shape

    def output_meta(self, module):
        """Shape, dtype and size of each output of the latest run."""
        if self.info is None:
            self.info = _abi.tessera_tensor_info_t()
            self.info.struct_size = _abi.TESSERA_TENSOR_INFO_STRUCT_SIZE
        info, meta = self.info, []
        for j in range(module._n_out):
            check(_get_info(self.outs[j], _byref(info)), "tessera_tensor_get_info")
            shape = tuple(info.shape[d] for d in range(info.rank))
            meta.append((shape, module._np_out[j], info.size_bytes))
        return meta

    def release(self):
        """Frees the imported tensors (the frame stays usable)."""
        ins = self.ins
        for i in range(len(self.ptrs)):
            p = ins[i]
            if p:
                ins[i] = None
                _tensor_free(p)
            self.ptrs[i] = self.shapes[i] = None
        self.out_meta = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown
            pass


def _torch():
    return sys.modules.get("torch")


def torch_from_dlpack(x):
    return sys.modules["torch"].from_dlpack(x)


def _to_tensors(context, inputs, expected=None, names=None):
    """Imports inputs; returns (list of tessera_tensor_t* ints, keep) where
    keep holds what must outlive the call (owned tensors are freed by the
    returned _Owned objects)."""
    ptrs, keep = [], _Owned()
    ctx = context.ptr
    for i, x in enumerate(inputs):
        want = expected[i] if expected else None
        if isinstance(x, Tensor):
            if want is not None and x.dtype != want[0]:
                raise DTypeError(f"input {i} ({names[i]}): expected {want[0]}, got a {x.dtype} Tensor")
            ptrs.append(x.ptr)
            keep.objs.append(x)
            continue
        if not isinstance(x, _ndarray):
            torch = _torch()
            if torch is not None and isinstance(x, torch.Tensor):
                if want is not None:
                    got = str(x.dtype).replace("torch.", "")
                    tname = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16",
                             "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8",
                             "bool": "bool"}.get(got, got)
                    if tname != want[0]:
                        raise DTypeError(f"input {i} ({names[i]}): expected {want[0]}, got torch.{got}")
                if not x.is_contiguous():
                    x = x.contiguous()  # documented: non-contiguous inputs are copied
                x = x.detach()
                ptrs.append(keep.own(_import_capsule(ctx, x.__dlpack__(), "torch.Tensor")))
                continue
            if hasattr(x, "__dlpack__") and not isinstance(x, (list, tuple)):
                t = _import_capsule(ctx, x.__dlpack__(), type(x).__name__)
                ptrs.append(keep.own(t))
                if want is not None:
                    got = Tensor(t, context)
                    if got.dtype != want[0]:
                        raise DTypeError(f"input {i} ({names[i]}): expected {want[0]}, got {got.dtype}")
                    got._ptr = None
                continue
            x = np.asarray(x, dtype=want[1] if want is not None and want[1] is not None else None)
        if want is not None and x.dtype is not want[1] and (want[1] is None or x.dtype != want[1]):
            raise DTypeError(f"input {i} ({names[i]}): expected {want[0]}, got {x.dtype}"
                             + (" (convert with tessera.Tensor.from_numpy(x, dtype=...))" if want[1] is None else ""))
        if not x.flags.c_contiguous or not x.flags.writeable:
            x = np.ascontiguousarray(x).copy() if not x.flags.writeable else np.ascontiguousarray(x)
        try:
            cap = x.__dlpack__()
        except (BufferError, TypeError):  # e.g. ml_dtypes arrays: copy into a tensor
            t = Tensor.from_numpy(x, context=context)
            ptrs.append(t.ptr)
            keep.objs.append(t)
            continue
        mp = _get_ptr(cap, b"dltensor")
        out = _c_void_p()
        st = _from_dlpack_c(ctx, mp, _byref(out))
        if st:
            check(st, f"input {i}")
        _set_name(cap, b"used_dltensor")
        ptrs.append(keep.own(out.value))
    return ptrs, keep


class _Owned:
    """Frees imported input tensors when the call is done."""
    __slots__ = ("ptrs", "objs")

    def __init__(self):
        self.ptrs, self.objs = [], []

    def own(self, p):
        self.ptrs.append(p)
        return p

    def __del__(self):
        for p in self.ptrs:
            _tensor_free(p)


class Module:
    """A compiled program (tessera_module_t), callable on arrays.

    module(*inputs, num_threads=0) -> output array, or a tuple of them when
    the function returns several values.
      inputs: NumPy arrays, torch.Tensors, tessera.Tensors or any DLPack
        producer, one per parameter, in order, with exactly the parameter's
        dtype (no implicit casts: DTypeError). bf16/fp8 parameters take
        tessera.Tensor.from_numpy(x, dtype="bf16") or ml_dtypes arrays.
        C-contiguous arrays go in zero copy; non-contiguous and
        negative-stride arrays are copied first, read-only ones too except
        on the fast path below (inputs are only read). Symbolic dims are
        bound from the shapes (ShapeMismatchError names the symbol when
        inputs disagree).
      returns: fresh NumPy arrays, owned by the caller: outputs up to 16 KiB
        are copied out of the module's output memory, larger ones view it
        (zero copy; the array keeps it alive). torch.Tensors when any input
        was one (zero copy, bf16 included). Other bf16/fp8 outputs are
        copied (ml_dtypes arrays when installed, else float32).
    asynchronous=True returns once the kernels are enqueued (run()).
    Attributes: inputs / outputs (lists of ValueInfo), device.
    Fast path: ndarrays of exactly the parameters' dtypes (NumPy-native
    dtypes) on a CPU device, no num_threads: one tessera_module_run and, per
    output, a copy and a free (or a DLPack export); each input's imported
    tensor is kept for the next call with an array at the same address with
    the same shape (docs/bindings.md). torch.Tensor inputs (contiguous,
    exact dtypes, on the module's device, CPU or CUDA) take a fast path of
    the same kind. Anything else takes run().
    Threading: calls from several threads run concurrently; close() waits
    for calls in flight, and calling a closed module raises ClosedError.
    """

    def __init__(self, ptr, context, device):
        self._ptr, self.context, self.device = ptr, context, device
        n_in, n_out = lib.tessera_module_input_count(ptr), lib.tessera_module_output_count(ptr)
        self.inputs = [_value_info(lib.tessera_module_get_input, ptr, i) for i in range(n_in)]
        self.outputs = [_value_info(lib.tessera_module_get_output, ptr, i) for i in range(n_out)]
        self._expected = [(v.dtype, DTYPES[v.dtype][1] if v.dtype in DTYPES and DTYPES[v.dtype][1] is not None
                           else numpy_dtype(v.dtype) if v.dtype in DTYPES else None) for v in self.inputs]
        self._names = [v.name for v in self.inputs]
        self._n_in, self._n_out = n_in, n_out
        self._out_numpy = [v.dtype in DTYPES and DTYPES[v.dtype][1] is not None for v in self.outputs]
        # torch takes bf16 through DLPack (kDLBfloat) even where NumPy cannot.
        self._out_torch = [ok or v.dtype == "bf16" for ok, v in zip(self._out_numpy, self.outputs)]
        self._lock = threading.Lock()
        self._active = 0
        self._ctx_ptr = context.ptr
        self._InArr = _c_void_p * max(n_in, 1)
        self._OutArr = _c_void_p * max(n_out, 1)
        self._np_expected = [e[1] for e in self._expected]
        kind = device.info.kind if device is not None else 1
        self._dl_device = (kind, device.info.ordinal if device is not None else 0)
        self._np_out = [DTYPES[v.dtype][1] if self._out_numpy[i] else None for i, v in enumerate(self.outputs)]
        # The fast path of __call__: NumPy-typed inputs and outputs on a CPU
        # device (bf16/fp8 and other devices take run()).
        self._fast = (all(self._out_numpy) and kind == _abi.TESSERA_DEVICE_KIND_CPU and
                      all(e[0] in DTYPES and DTYPES[e[0]][1] is not None for e in self._expected))
        self._frames = []          # idle _Frame objects (list.pop/append are atomic)
        self._tframes = []         # idle _Frame objects of the torch fast path
        self._torch_in = None      # (torch dtypes, torch.device, DLPack dtypes), made at the first torch call
        self._nframes = 0          # frames made; those not in _frames are in use
        self._mod_arg = _c_void_p(ptr)
        self._n_in_arg, self._n_out_arg = ctypes.c_size_t(n_in), ctypes.c_size_t(n_out)

    def _new_frame(self):
        with self._lock:
            self._nframes += 1
        return _Frame(self)

    def __call__(self, *inputs, num_threads=0, asynchronous=False):
        """module(*inputs) -> array or tuple of arrays (class docstring)."""
        # Fast path: C-contiguous ndarrays of exactly the parameters' dtypes,
        # NumPy-typed outputs, a CPU device. Anything else (and every error
        # to report) goes through run().
        if inputs and self._torch_in is not False and not num_threads and len(inputs) == self._n_in \
                and type(inputs[0]) is not _ndarray and not isinstance(inputs[0], Tensor):
            res = self._call_torch(inputs, asynchronous)
            if res is not None:
                return res
        if num_threads or asynchronous or not self._fast or len(inputs) != self._n_in:
            return self.run(*inputs, num_threads=num_threads, asynchronous=asynchronous)
        frames = self._frames
        try:
            fr = frames.pop()
        except IndexError:
            fr = self._new_frame()
        try:
            # Read after taking the frame: close() clears _ptr, then waits
            # until every frame is back.
            if not self._ptr:
                raise ClosedError("module is closed")
            exp = self._np_expected
            ptrs, shapes = fr.ptrs, fr.shapes
            i = 0
            for x in inputs:
                if type(x) is not _ndarray:
                    return self.run(*inputs)
                dt = x.dtype
                if dt is not exp[i] and dt != exp[i]:
                    return self.run(*inputs)  # raises DTypeError
                f = x.flags
                if f.writeable:
                    try:
                        address = _addressof(_from_buffer(x))
                    except (TypeError, ValueError, BufferError):
                        return self.run(*inputs)  # not C-contiguous, or empty: run() copies / handles it
                elif f.c_contiguous and x.size:
                    # Tessera only reads inputs, so a read-only C-contiguous
                    # array goes in as it is (run() would copy it). Its
                    # address from __array_struct__ (cheaper than x.ctypes);
                    # `cap` keeps the interface struct alive while read.
                    cap = x.__array_struct__
                    address = _void_at(_capsule_pointer(cap, None) + _AI_DATA).value
                    del cap
                else:
                    return self.run(*inputs)
                shape = x.shape
                if address != ptrs[i] or shape != shapes[i]:
                    if len(shape) > _MAX_RANK:
                        return self.run(*inputs)  # reports the rank error
                    fr.import_input(i, address, shape, self._names[i])
                i += 1
            outs = fr.outs
            st = _run_raw(self._mod_arg, None, self._n_in_arg, fr.ins, self._n_out_arg, outs)
            if st:
                check(st, "run")
            # The outputs are owned here from now on: each is freed once.
            meta = fr.out_meta
            j = 0
            try:
                if meta is None:
                    meta = fr.out_meta = fr.output_meta(self)
                res = []
                for shape, npd, nbytes in meta:
                    p = outs[j]
                    j += 1
                    if nbytes > _COPY_OUT_MAX:
                        res.append(self._export_one(p))
                        continue
                    try:
                        a = _empty(shape, npd)
                        if nbytes:
                            st = _copy_to_host(p, _addressof(_from_buffer(a)), nbytes)
                            if st:
                                check(st, "copying output")
                    finally:
                        _tensor_free(p)
                    res.append(a)
                return res[0] if j == 1 else tuple(res)
            except BaseException:
                for k in range(j, self._n_out):
                    _tensor_free(outs[k])
                raise
        finally:
            frames.append(fr)

    def _call_torch(self, inputs, asynchronous):
        """Fast path for torch.Tensor inputs: contiguous, exactly the
        parameters' dtypes, on the module's device (CUDA or CPU). Like the
        NumPy fast path, each input's import is kept per frame and reused
        while a call passes a tensor at the same address with the same shape
        (the caller's tensor keeps the memory alive during the call; for an
        asynchronous run PyTorch's caching allocator reuses it only in
        default-stream order, after the run). Returns None when an input
        does not qualify (the caller then takes run())."""
        torch = _torch()
        spec = self._torch_in
        if spec is None:
            if torch is None or not all(v.dtype in _TORCH_DL for v in self.inputs) or self.device is None:
                self._torch_in = False
                return None
            kind, ordinal = self.device.info.kind, self.device.info.ordinal
            if kind == _abi.TESSERA_DEVICE_KIND_CUDA:
                dev, dl_device = torch.device("cuda", ordinal), (_dlpack.KDL_CUDA, ordinal)
            elif kind == _abi.TESSERA_DEVICE_KIND_CPU:
                dev, dl_device = torch.device("cpu"), (_dlpack.KDL_CPU, 0)
            else:
                self._torch_in = False
                return None
            spec = self._torch_in = ([getattr(torch, _TORCH_DL[v.dtype][0]) for v in self.inputs], dev, dl_device,
                                     [_TORCH_DL[v.dtype][1:] for v in self.inputs])
        want, dev = spec[0], spec[1]
        tensor_type = torch.Tensor
        for i, x in enumerate(inputs):
            if not isinstance(x, tensor_type) or x.dtype is not want[i] or x.device != dev or \
                    not x.is_contiguous() or x.numel() == 0:
                return None
        frames = self._tframes
        try:
            fr = frames.pop()
        except IndexError:
            with self._lock:
                self._nframes += 1
            fr = _Frame(self, spec[2], spec[3])
        try:
            if not self._ptr:
                raise ClosedError("module is closed")
            ptrs, shapes = fr.ptrs, fr.shapes
            for i, x in enumerate(inputs):
                address, shape = x.data_ptr(), tuple(x.shape)
                if address != ptrs[i] or shape != shapes[i]:
                    if len(shape) > _MAX_RANK:
                        return None
                    fr.import_input(i, address, shape, self._names[i])
            opts = _run_options(0, asynchronous)
            outs = fr.outs
            st = _run_raw(self._mod_arg, opts, self._n_in_arg, fr.ins, self._n_out_arg, outs)
            if st:
                check(st, "run")
            return self._export([outs[j] for j in range(self._n_out)], True)
        finally:
            frames.append(fr)

    def _export_one(self, p):
        """One owned CPU output tensor -> a NumPy array viewing its memory
        (DLPack, zero copy); frees the tensor, also on error."""
        m = _c_void_p()
        st = _to_dlpack_c(p, _byref(m))
        _tensor_free(p)
        if st:
            check(st, "exporting output")
        return _np_from_dlpack(_Capsule(_new_capsule(m.value, b"dltensor", _capsule_destructor), self._dl_device))

    def run(self, *inputs, num_threads=0, as_tensors=False, asynchronous=False):
        """The general path of __call__ (any input kind, options).
        num_threads: host threads for CPU plugins (0 = default).
        as_tensors=True returns tessera.Tensors instead of arrays.
        asynchronous=True returns once the kernels are enqueued
        (TESSERA_RUN_ASYNC, docs/abi.md): later runs, Tessera's own copies
        and PyTorch work on the default CUDA stream are ordered after them;
        anything else that reads the outputs calls synchronize() first.
        Kernel errors then raise from synchronize(). CPU plugins finish
        before returning either way."""
        if len(inputs) != self._n_in:
            raise InvalidArgumentError(f"module takes {self._n_in} input(s) "
                                       f"({', '.join(self._names)}), got {len(inputs)}")
        lock = self._lock
        with lock:
            mod = self._ptr
            if not mod:
                raise ClosedError("module is closed")
            self._active += 1
        try:
            ptrs, keep = _to_tensors(self.context, inputs, self._expected, self._names)
            ins = (_c_void_p * (len(ptrs) or 1))(*ptrs)
            outs = self._OutArr()
            opts = _run_options(num_threads, asynchronous)
            st = _run_c(mod, opts, self._n_in, ins, self._n_out, outs)
            del keep
        finally:
            with lock:
                self._active -= 1
        if st:
            check(st, "run")
        if as_tensors:
            res = [Tensor(p, self.context) for p in outs]
            return res[0] if len(res) == 1 else tuple(res)
        torch = _torch()
        use_torch = torch is not None and any(isinstance(x, torch.Tensor) for x in inputs)
        return self._export(outs, use_torch)

    def synchronize(self):
        """Waits for every run of this module enqueued so far (runs with
        asynchronous=True); raises the first error of their kernels
        (DeviceError with the driver's text). Thread-safe."""
        with self._lock:
            mod = self._ptr
            if not mod:
                raise ClosedError("module is closed")
            self._active += 1
        try:
            st = lib.tessera_module_synchronize(mod)
        finally:
            with self._lock:
                self._active -= 1
        if st:
            check(st, "synchronize")

    def _export(self, outs, use_torch):
        """Owned output tensors -> arrays (zero copy via DLPack where the
        dtype allows); frees the tensors."""
        ctx = self.context
        res = []
        for i, p in enumerate(outs):
            if not (self._out_torch[i] if use_torch else self._out_numpy[i]):
                res.append(Tensor(p, ctx)._copy_to_numpy())
                continue
            m = _c_void_p()
            st = _to_dlpack_c(p, _byref(m))
            if st:
                for q in outs[i:]:
                    _tensor_free(q)
                check(st, "exporting output")
            _tensor_free(p)
            holder = _Capsule(_new_capsule(m.value, b"dltensor", _capsule_destructor), self._dl_device)
            res.append(torch_from_dlpack(holder) if use_torch else _np_from_dlpack(holder))
        return res[0] if len(res) == 1 else tuple(res)

    def stats(self):
        """Buffer-plan figures of the latest run (dict; see tessera_module_get_stats)."""
        s = _abi.tessera_module_stats_t()
        s.struct_size = _abi.TESSERA_MODULE_STATS_STRUCT_SIZE
        check(lib.tessera_module_get_stats(self.ptr, ctypes.byref(s)))
        return {f: getattr(s, f) for f, _ in s._fields_ if f != "struct_size"}

    def serialize(self):
        """The module as bytes (tessera.load_module reads them back)."""
        b = ctypes.c_void_p()
        check(lib.tessera_module_serialize(self.ptr, ctypes.byref(b)), "tessera_module_serialize")
        return blob_bytes(b.value)

    @property
    def ptr(self):
        if not self._ptr:
            raise ClosedError("module is closed")
        return self._ptr

    def close(self):
        """Destroys the module after calls in flight finish. Idempotent."""
        with self._lock:
            p, self._ptr = self._ptr, None
        # Calls in flight hold the old pointer: run() counts them in
        # _active, the fast path holds a frame out of the pool.
        while self._active or self._nframes > len(self._frames) + len(self._tframes):
            time.sleep(0.0005)
        self._release_frames()
        if p:
            lib.tessera_module_destroy(p)

    def _release_frames(self):
        for fr in list(self._frames) + list(getattr(self, "_tframes", [])):
            fr.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        p = getattr(self, "_ptr", None)
        if p:
            self._ptr = None
            try:
                self._release_frames()
                lib.tessera_module_destroy(p)
            except Exception:  # interpreter shutdown
                pass

    def __repr__(self):
        sig = ", ".join(f"{v.name}: {v.dtype}{list(v.shape)}" for v in self.inputs)
        return f"<tessera.Module ({sig}) -> {len(self.outputs)} output(s)>"
