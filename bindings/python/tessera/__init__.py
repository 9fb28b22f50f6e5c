"""Tessera: compile tensor programs for pluggable backends, from Python.

    import numpy as np, tessera
    m = tessera.compile('''
    func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {
      %c = add(%a, %b)
      return %c
    }''', target="cpu")
    m(np.ones(4, np.float32), np.ones(4, np.float32))   # array([2., 2., 2., 2.])

The package wraps libtessera's C ABI (tessera._abi is generated from the
headers by scripts/gen_bindings.py). Main entry points:
  compile(source_or_path, target="cpu", options=None, **options) -> Module
  parse(text) -> Program;  Program.run_reference(*arrays)
  plugins(), devices(), default_context(), Context(plugin_path=...)
  Tensor.from_numpy(array, dtype=None), from_dlpack(obj), Tensor.numpy()
  function (tracing decorator), Tensor[...] annotations, ops, grad
  Error and its subclasses (errors.py), carrying .code, .message, .location
See docs/bindings.md.
"""
from ._lib import path as library_path
from .errors import (Error, StatusCode, InvalidArgumentError, OutOfMemoryError, NotFoundError, UnsupportedError,
                     IncompatibleVersionError, MissingDependencyError, NoDeviceError, InvalidIRError,
                     ShapeMismatchError, LoadFailedError, BusyError, DeviceError, CorruptDataError, IOFailedError,
                     ResourceExhaustedError, InternalError, DTypeError, ClosedError, LibraryNotFoundError)
from .core import (Context, Device, DeviceDescription, DeviceInfo, Module, PluginInfo, Program, Tensor,
                   ValueInfo, compile, default_context, devices, dtype_name, from_dlpack, load_module, parse, plugins,
                   version)
from .tracing import GradFunction, TensorType, Traced, function, grad, ops, trace

__version__ = "0.1.0"
__all__ = [
    "compile", "parse", "load_module", "plugins", "devices", "version", "default_context", "from_dlpack",
    "Context", "Device", "DeviceDescription", "DeviceInfo", "PluginInfo", "Module", "Program", "ValueInfo",
    "Tensor", "TensorType", "function", "grad", "GradFunction", "ops", "Traced", "trace", "dtype_name", "library_path",
    "Error", "StatusCode", "InvalidArgumentError", "OutOfMemoryError", "NotFoundError", "UnsupportedError",
    "IncompatibleVersionError", "MissingDependencyError", "NoDeviceError", "InvalidIRError", "ShapeMismatchError",
    "LoadFailedError", "BusyError", "DeviceError", "CorruptDataError", "IOFailedError", "ResourceExhaustedError",
    "InternalError", "DTypeError", "ClosedError", "LibraryNotFoundError",
]
