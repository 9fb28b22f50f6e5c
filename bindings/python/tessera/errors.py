"""Exceptions: every failed ABI call raises a tessera.Error subclass chosen
by the status code, carrying the code, the message and the source location.

    try:
        tessera.compile("func @main(...")
    except tessera.InvalidIRError as e:
        e.code       # StatusCode.INVALID_IR (an IntEnum, the ABI's value)
        e.message    # "file:line:col: error: ..." as libtessera wrote it
        e.location   # ("<input>", 1, 12) or None

Subclasses also derive from the matching builtin where one fits
(InvalidArgumentError is a ValueError, NotFoundError a LookupError,
DTypeError a TypeError, ...), so generic handlers keep working.
"""
import enum

from . import _abi


class StatusCode(enum.IntEnum):
    """tessera_status_code_t without the prefix (values are the ABI's)."""
    OK = _abi.TESSERA_STATUS_OK
    INVALID_ARGUMENT = _abi.TESSERA_STATUS_INVALID_ARGUMENT
    OUT_OF_MEMORY = _abi.TESSERA_STATUS_OUT_OF_MEMORY
    NOT_FOUND = _abi.TESSERA_STATUS_NOT_FOUND
    UNSUPPORTED = _abi.TESSERA_STATUS_UNSUPPORTED
    INCOMPATIBLE_VERSION = _abi.TESSERA_STATUS_INCOMPATIBLE_VERSION
    MISSING_DEPENDENCY = _abi.TESSERA_STATUS_MISSING_DEPENDENCY
    NO_DEVICE = _abi.TESSERA_STATUS_NO_DEVICE
    INVALID_IR = _abi.TESSERA_STATUS_INVALID_IR
    SHAPE_MISMATCH = _abi.TESSERA_STATUS_SHAPE_MISMATCH
    LOAD_FAILED = _abi.TESSERA_STATUS_LOAD_FAILED
    BUSY = _abi.TESSERA_STATUS_BUSY
    DEVICE_ERROR = _abi.TESSERA_STATUS_DEVICE_ERROR
    CORRUPT_DATA = _abi.TESSERA_STATUS_CORRUPT_DATA
    IO_ERROR = _abi.TESSERA_STATUS_IO_ERROR
    RESOURCE_EXHAUSTED = _abi.TESSERA_STATUS_RESOURCE_EXHAUSTED
    INTERNAL = _abi.TESSERA_STATUS_INTERNAL


class Error(Exception):
    """Base of every Tessera error. Attributes: code (StatusCode), message
    (str), location ((file, line, column) or None)."""
    default_code = StatusCode.INTERNAL

    def __init__(self, message, code=None, location=None):
        super().__init__(message)
        self.message = message
        try:
            self.code = StatusCode(code if code is not None else self.default_code)
        except ValueError:  # an unknown code is INTERNAL (docs/abi.md)
            self.code = StatusCode.INTERNAL
        self.location = location

    def __str__(self):
        return f"[{self.code.name}] {self.message}"


class InvalidArgumentError(Error, ValueError):
    default_code = StatusCode.INVALID_ARGUMENT


class OutOfMemoryError(Error, MemoryError):
    default_code = StatusCode.OUT_OF_MEMORY


class NotFoundError(Error, LookupError):
    default_code = StatusCode.NOT_FOUND


class UnsupportedError(Error, NotImplementedError):
    default_code = StatusCode.UNSUPPORTED


class IncompatibleVersionError(Error):
    default_code = StatusCode.INCOMPATIBLE_VERSION


class MissingDependencyError(Error):
    default_code = StatusCode.MISSING_DEPENDENCY


class NoDeviceError(Error):
    default_code = StatusCode.NO_DEVICE


class InvalidIRError(Error, ValueError):
    default_code = StatusCode.INVALID_IR


class ShapeMismatchError(Error, ValueError):
    default_code = StatusCode.SHAPE_MISMATCH


class LoadFailedError(Error):
    default_code = StatusCode.LOAD_FAILED


class BusyError(Error):
    default_code = StatusCode.BUSY


class DeviceError(Error):
    default_code = StatusCode.DEVICE_ERROR


class CorruptDataError(Error):
    default_code = StatusCode.CORRUPT_DATA


class IOFailedError(Error):
    default_code = StatusCode.IO_ERROR


class ResourceExhaustedError(Error):
    default_code = StatusCode.RESOURCE_EXHAUSTED


class InternalError(Error):
    default_code = StatusCode.INTERNAL


# Raised by the binding itself (no ABI call failed), with the code that fits.
class DTypeError(InvalidArgumentError, TypeError):
    """An array's dtype differs from what the module or op expects."""


class ClosedError(InvalidArgumentError):
    """The module, tensor or context was closed."""


class LibraryNotFoundError(Error, ImportError):
    """libtessera.so could not be found or loaded."""
    default_code = StatusCode.MISSING_DEPENDENCY


_BY_CODE = {c.default_code: c for c in (
    InvalidArgumentError, OutOfMemoryError, NotFoundError, UnsupportedError, IncompatibleVersionError,
    MissingDependencyError, NoDeviceError, InvalidIRError, ShapeMismatchError, LoadFailedError,
    BusyError, DeviceError, CorruptDataError, IOFailedError, ResourceExhaustedError, InternalError)}


def make_error(code, message, location=None):
    """The Error subclass for an ABI code (InternalError for unknown codes)."""
    return _BY_CODE.get(code, InternalError)(message, code, location)
