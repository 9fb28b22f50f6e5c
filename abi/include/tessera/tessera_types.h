/*
 * tessera_types.h: types shared by the application ABI (tessera.h) and the
 * backend plugin ABI (tessera_backend.h).
 *
 * C11, self-contained, no C++ types. Every struct that crosses the boundary
 * starts with `size_t struct_size`; see docs/abi.md for the rules.
 */
#ifndef TESSERA_TYPES_H_
#define TESSERA_TYPES_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI version. MAJOR changes only when something is removed or reordered;
 * MINOR grows with every addition (new function-table slot, new struct field
 * at the end, new enum value). The ABI is frozen as 1.0 once the CPU and CUDA
 * backends both run through it; until then it is 0.MINOR and may change.
 */
#define TESSERA_ABI_VERSION_MAJOR 0
#define TESSERA_ABI_VERSION_MINOR 3

#if defined(_WIN32)
#define TESSERA_EXPORT __declspec(dllexport)
#else
#define TESSERA_EXPORT __attribute__((visibility("default")))
#endif

/*
 * Stable status codes. Values never change; new codes are appended.
 * A receiver that sees an unknown code treats it as TESSERA_STATUS_INTERNAL.
 */
typedef enum tessera_status_code_t {
  TESSERA_STATUS_OK = 0,
  TESSERA_STATUS_INVALID_ARGUMENT = 1,   /* NULL/out-of-range argument, bad struct_size */
  TESSERA_STATUS_OUT_OF_MEMORY = 2,      /* host or device allocation failed */
  TESSERA_STATUS_NOT_FOUND = 3,          /* no such plugin, device, function, file */
  TESSERA_STATUS_UNSUPPORTED = 4,        /* op, dtype, format or capability not supported */
  TESSERA_STATUS_INCOMPATIBLE_VERSION = 5, /* ABI or artifact version mismatch */
  TESSERA_STATUS_MISSING_DEPENDENCY = 6, /* a library could not be opened; message has dlerror() */
  TESSERA_STATUS_NO_DEVICE = 7,          /* driver absent or no device of this kind */
  TESSERA_STATUS_INVALID_IR = 8,         /* malformed text, unknown op, bad attribute; located */
  TESSERA_STATUS_SHAPE_MISMATCH = 9,     /* shapes inconsistent at compile or run time; located */
  TESSERA_STATUS_LOAD_FAILED = 10,       /* plugin or module could not be loaded */
  TESSERA_STATUS_BUSY = 11,              /* refused while dependent objects are alive */
  TESSERA_STATUS_DEVICE_ERROR = 12,      /* the device or its driver failed; message has the driver's text */
  TESSERA_STATUS_CORRUPT_DATA = 13,      /* serialized module, cache or file is damaged */
  TESSERA_STATUS_IO_ERROR = 14,          /* reading or writing a file failed */
  TESSERA_STATUS_RESOURCE_EXHAUSTED = 15, /* a documented limit (rank, elements, nesting) exceeded */
  TESSERA_STATUS_INTERNAL = 16,          /* a bug in Tessera or a plugin */
  TESSERA_STATUS_CODE_FORCE32 = 0x7FFFFFFF
} tessera_status_code_t;

/*
 * An error object. NULL means success. Created by the host (libtessera), also
 * on behalf of plugins (see tessera_backend_host_t.status_create), and freed
 * with tessera_status_free(). Immutable once created: safe to read from any
 * thread.
 */
typedef struct tessera_status_t tessera_status_t;

/* A position in a source text; lines and columns are 1-based, 0 = unknown. */
typedef struct tessera_source_location_t {
  size_t struct_size;
  const char *file; /* borrowed from the status; NULL when unknown */
  uint32_t line;
  uint32_t column;
} tessera_source_location_t;
#define TESSERA_SOURCE_LOCATION_STRUCT_SIZE \
  (offsetof(tessera_source_location_t, column) + sizeof(uint32_t))

/* Element types. Values are stable; new ones are appended. */
typedef enum tessera_dtype_t {
  TESSERA_DTYPE_INVALID = 0,
  TESSERA_DTYPE_F64 = 1,
  TESSERA_DTYPE_F32 = 2,
  TESSERA_DTYPE_F16 = 3,
  TESSERA_DTYPE_BF16 = 4,
  TESSERA_DTYPE_F8E4M3 = 5, /* OCP FP8 E4M3 (fn: no infinities) */
  TESSERA_DTYPE_F8E5M2 = 6, /* OCP FP8 E5M2 */
  TESSERA_DTYPE_I64 = 7,
  TESSERA_DTYPE_I32 = 8,
  TESSERA_DTYPE_I8 = 9,
  TESSERA_DTYPE_U8 = 10,
  TESSERA_DTYPE_BOOL = 11, /* one byte per element, 0 or 1 */
  TESSERA_DTYPE_I16 = 12,
  TESSERA_DTYPE_FORCE32 = 0x7FFFFFFF
} tessera_dtype_t;

/* Kinds of device memory and devices, aligned with DLPack's DLDeviceType. */
typedef enum tessera_device_kind_t {
  TESSERA_DEVICE_KIND_UNKNOWN = 0,
  TESSERA_DEVICE_KIND_CPU = 1,
  TESSERA_DEVICE_KIND_CUDA = 2,
  TESSERA_DEVICE_KIND_ROCM = 10,
  TESSERA_DEVICE_KIND_ONEAPI = 14,
  TESSERA_DEVICE_KIND_WEBGPU = 15,
  TESSERA_DEVICE_KIND_FORCE32 = 0x7FFFFFFF
} tessera_device_kind_t;

/*
 * A device a plugin can compile for, without needing the device itself:
 * the key to compile-only and cross compilation.
 */
typedef struct tessera_device_description_t {
  size_t struct_size;
  const void *next;          /* extension chain; NULL */
  const char *plugin;        /* plugin name, e.g. "cuda"; borrowed, required */
  const char *architecture;  /* e.g. "sm_90a", "x86-64-v3", "gfx942"; borrowed; NULL = plugin default */
  const char *features;      /* comma-separated, e.g. "avx2,fma"; borrowed; NULL = none beyond the architecture */
} tessera_device_description_t;
#define TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE \
  (offsetof(tessera_device_description_t, features) + sizeof(const char *))

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TESSERA_TYPES_H_ */
