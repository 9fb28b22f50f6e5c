"""DLPack structs (dlpack.h 0.6 layout, type codes of DLPack 1.1 as
docs/abi.md states) and PyCapsule helpers. Hand-written: DLPack is its own
standard and the ABI only forward-declares DLManagedTensor.

Capsule protocol: a producer's capsule is named "dltensor"; a consumer that
takes ownership renames it "used_dltensor" and later calls the deleter.
"""
import ctypes


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


_Deleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", _Deleter),
]

KDL_CPU = 1
KDL_CUDA = 2

_api = ctypes.pythonapi
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_New.restype = ctypes.py_object
_Destructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _Destructor]

# Raw-pointer variants usable from the destructor (the capsule is being
# freed there: no py_object may be made from it).
_is_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_get_pointer_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))

_NAME = b"dltensor"
_USED = b"used_dltensor"


def _call_deleter(managed_ptr):
    m = ctypes.cast(managed_ptr, ctypes.POINTER(DLManagedTensor))
    if m.contents.deleter:
        m.contents.deleter(m)


@_Destructor
def _capsule_destructor(capsule):
    # Called when an unconsumed capsule we made dies: free the tensor.
    if _is_valid_raw(capsule, _NAME):
        _call_deleter(_get_pointer_raw(capsule, _NAME))


def capsule_from_managed(managed_ptr):
    """Wraps an owned DLManagedTensor* (int) in a "dltensor" capsule whose
    destructor calls the deleter unless a consumer took it."""
    return _api.PyCapsule_New(managed_ptr, _NAME, _capsule_destructor)


def managed_from_capsule(capsule):
    """The DLManagedTensor* (int) inside a "dltensor" capsule; raises
    ValueError if it was already consumed."""
    if not _api.PyCapsule_IsValid(capsule, _NAME):
        raise ValueError("not an unconsumed DLPack capsule (name must be 'dltensor')")
    return _api.PyCapsule_GetPointer(capsule, _NAME)


def mark_consumed(capsule):
    """Renames the capsule "used_dltensor": its destructor no longer frees."""
    _api.PyCapsule_SetName(capsule, _USED)


def free_managed(managed_ptr):
    """Calls the deleter of an owned DLManagedTensor* (int)."""
    _call_deleter(managed_ptr)
