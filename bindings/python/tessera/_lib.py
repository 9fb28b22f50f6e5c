"""Finds and loads libtessera; turns status objects into exceptions.

Search order for libtessera.so (first hit wins; docs/bindings.md):
  1. $TESSERA_LIBRARY: an explicit path (an override for development).
  2. <package>/_lib/libtessera.so: bundled by `pip install` (setup.py copies
     the library and its plugins/ when built with TESSERA_LIBRARY or
     TESSERA_BUILD_DIR set).
  3. tessera/_build_config.py: LIBRARY, an absolute path recorded at build
     time (written by CMake into the build-tree copy of the package, or by
     setup.py when it does not bundle).
  4. the system loader: ctypes.util.find_library("tessera"), then
     <sys.prefix>/lib and /usr/local/lib (an installed `cmake --install`).
libtessera itself finds its plugins next to itself and in
<libdir>/tessera/plugins, so no environment variable is needed.
"""
import ctypes
import ctypes.util
import os
import sys
import threading

from . import _abi
from . import errors

_here = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("TESSERA_LIBRARY")
    if env:
        yield env, "$TESSERA_LIBRARY"
        return
    bundled = os.path.join(_here, "_lib", "libtessera.so")
    yield bundled, "bundled"
    try:
        from . import _build_config  # noqa: F401  (absent in a source checkout)
        yield _build_config.LIBRARY, "recorded at build time"
    except ImportError:
        pass
    found = ctypes.util.find_library("tessera")
    if found:
        yield found, "system loader"
    for d in (os.path.join(sys.prefix, "lib"), "/usr/local/lib"):
        yield os.path.join(d, "libtessera.so"), "prefix"


def _load():
    tried = []
    for path, why in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} ({why}): missing")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({why}): {e}")
            continue
        missing = _abi.bind(lib)
        lib._tessera_path = path
        lib._tessera_missing = frozenset(missing)
        return lib
    raise errors.LibraryNotFoundError(
        "libtessera.so not found; tried:\n  " + "\n  ".join(tried) +
        "\nSet TESSERA_LIBRARY=/path/to/libtessera.so or reinstall the package (docs/bindings.md).")


lib = _load()
path = lib._tessera_path


def has(name):
    """True when the loaded libtessera exports ABI function `name`."""
    return name not in lib._tessera_missing


# ---- status -> exception ---------------------------------------------------

_code = lib.tessera_status_code
_message = lib.tessera_status_message
_location = lib.tessera_status_location
_free = lib.tessera_status_free


def status_to_error(status, context=None):
    """Builds the Error for an owned status pointer (int) and frees it."""
    code = _code(status)
    msg = (_message(status) or b"").decode("utf-8", "replace")
    loc = _abi.tessera_source_location_t()
    loc.struct_size = _abi.TESSERA_SOURCE_LOCATION_STRUCT_SIZE
    _location(status, ctypes.byref(loc))
    location = None
    if loc.line:
        location = ((loc.file or b"").decode("utf-8", "replace"), loc.line, loc.column)
    _free(status)
    if context:
        msg = f"{context}: {msg}"
    return errors.make_error(code, msg, location)


def check(status, context=None):
    """Raises the Error of `status` (an int from a tessera_status_t* call) if
    it is not NULL. `context` prefixes the message (e.g. the call)."""
    if status:
        raise status_to_error(status, context)


def blob_bytes(blob):
    """Copies an owned tessera_blob_t* into bytes and frees it."""
    try:
        n = lib.tessera_blob_size(blob)
        return ctypes.string_at(lib.tessera_blob_data(blob), n)
    finally:
        lib.tessera_blob_free(blob)


def cstr(b):
    return None if b is None else b.decode("utf-8", "replace")


# ---- the default context ---------------------------------------------------

_default = None
_default_lock = threading.Lock()


def default_context():
    """The process-wide Context (created on first use, never destroyed: the
    OS reclaims it at exit; destroying it while arrays exported from it are
    alive would be refused anyway). Thread-safe."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from .core import Context
                _default = Context()
    return _default
