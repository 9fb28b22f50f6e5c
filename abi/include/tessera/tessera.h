/*
 * tessera.h: the Tessera application ABI.
 *
 * What an application, a binding (Python, Rust, Julia) or the `tessera`
 * command calls. C11, self-contained; compiles as C and C++. Exported from
 * libtessera.so; every symbol is named tessera_*.
 *
 * Conventions (docs/abi.md has the full rules):
 *  - Functions that can fail return tessera_status_t*: NULL on success, else
 *    an owned error object the caller frees with tessera_status_free().
 *  - Out-parameters are named out_*. They are written only on success.
 *  - Info structs are filled by the callee; the caller sets struct_size to
 *    the size it was compiled with (the *_STRUCT_SIZE macro) and the callee
 *    writes no byte past it.
 *  - "Borrowed" pointers stay valid as long as the object they came from;
 *    "owned" objects are freed by the caller with the named function.
 *  - Threading is stated per function. "Thread-safe" means it may be called
 *    concurrently with any other thread-safe function on the same objects.
 */
#ifndef TESSERA_H_
#define TESSERA_H_

#include "tessera/tessera_types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct DLManagedTensor; /* from <dlpack/dlpack.h>; included by users that use it */

/* ---- Version ----------------------------------------------------------- */

typedef struct tessera_version_info_t {
  size_t struct_size;
  uint32_t abi_major;       /* TESSERA_ABI_VERSION_MAJOR libtessera was built with */
  uint32_t abi_minor;       /* TESSERA_ABI_VERSION_MINOR libtessera was built with */
  const char *version;      /* package version, e.g. "0.1.0"; static storage */
  const char *build_info;   /* compiler and build type; static storage */
} tessera_version_info_t;
#define TESSERA_VERSION_INFO_STRUCT_SIZE \
  (offsetof(tessera_version_info_t, build_info) + sizeof(const char *))

/* Fills *out_info. Thread-safe. Errors: INVALID_ARGUMENT on NULL or a
 * struct_size smaller than the first release's. */
TESSERA_EXPORT tessera_status_t *tessera_get_version(tessera_version_info_t *out_info);

/* ---- Status objects ---------------------------------------------------- */

/* The code of a status; TESSERA_STATUS_OK for NULL. Thread-safe. */
TESSERA_EXPORT tessera_status_code_t tessera_status_code(const tessera_status_t *status);
/* The UTF-8 message; borrowed, valid until the status is freed; "" for NULL.
 * Located errors render as "file:line:col: error: message" followed by
 * any notes and hints on further lines. Thread-safe. */
TESSERA_EXPORT const char *tessera_status_message(const tessera_status_t *status);
/* Fills *out_location with the primary location; zeros when there is none.
 * The file string is borrowed from the status. Thread-safe. */
TESSERA_EXPORT void tessera_status_location(const tessera_status_t *status,
                                            tessera_source_location_t *out_location);
/* A short, stable name for a code ("invalid IR", "no device"). Static storage. */
TESSERA_EXPORT const char *tessera_status_code_name(tessera_status_code_t code);
/* Frees a status; NULL is a no-op. Not thread-safe for the same status. */
TESSERA_EXPORT void tessera_status_free(tessera_status_t *status);

/* ---- Blobs: owned byte strings returned by the library ------------------- */

/* Bytes produced by libtessera (serialized modules, printed IR). The data is
 * always followed by a NUL byte not counted in the size, so textual blobs can
 * be used as C strings. Immutable: thread-safe to read. */
typedef struct tessera_blob_t tessera_blob_t;
TESSERA_EXPORT const void *tessera_blob_data(const tessera_blob_t *blob);
TESSERA_EXPORT size_t tessera_blob_size(const tessera_blob_t *blob);
TESSERA_EXPORT void tessera_blob_free(tessera_blob_t *blob);

/* ---- Context ----------------------------------------------------------- */

/*
 * A context owns the loaded plugins and their devices. Create one per
 * process (or per isolated client). Thread-safe after creation, except for
 * tessera_context_destroy().
 */
typedef struct tessera_context_t tessera_context_t;

typedef enum tessera_context_flags_t {
  TESSERA_CONTEXT_FLAG_NONE = 0,
  /* Ignore TESSERA_PLUGIN_PATH and TESSERA_ADD_PLUGIN_PATH. */
  TESSERA_CONTEXT_FLAG_IGNORE_ENVIRONMENT = 1 << 0,
  /* Do not search the default directories (<libdir>/tessera/plugins and the
   * directory of libtessera); only plugin_path and the environment. */
  TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS = 1 << 1,
  /* Discover candidates and read manifests, but dlopen nothing. Plugins are
   * listed in state TESSERA_PLUGIN_STATE_NOT_LOADED; no devices. */
  TESSERA_CONTEXT_FLAG_NO_LOAD = 1 << 2,
  TESSERA_CONTEXT_FLAGS_FORCE32 = 0x7FFFFFFF
} tessera_context_flags_t;

typedef struct tessera_context_options_t {
  size_t struct_size;
  const void *next;          /* extension chain; NULL */
  /* Colon-separated directories searched before everything else; borrowed,
   * copied during create; NULL for none. */
  const char *plugin_path;
  uint32_t flags;            /* tessera_context_flags_t bits */
} tessera_context_options_t;
#define TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE \
  (offsetof(tessera_context_options_t, flags) + sizeof(uint32_t))

/*
 * Creates a context: discovers plugins (docs/abi.md, "Plugin discovery"),
 * loads and negotiates each, and enumerates their devices. A plugin that
 * fails is recorded with its reason and never fails the context.
 * options may be NULL (defaults). *out_context is owned: destroy it with
 * tessera_context_destroy(). Thread-safe.
 * Errors: INVALID_ARGUMENT, OUT_OF_MEMORY.
 */
TESSERA_EXPORT tessera_status_t *tessera_context_create(const tessera_context_options_t *options,
                                                        tessera_context_t **out_context);

/*
 * Shuts every plugin down (shutdown() before dlclose) and frees the context.
 * Refused with BUSY, leaving everything intact, while modules, buffers or
 * tensors created from it are alive. NULL is a no-op. Not thread-safe: no
 * other call may use the context concurrently.
 */
TESSERA_EXPORT tessera_status_t *tessera_context_destroy(tessera_context_t *context);

/* ---- Plugins ----------------------------------------------------------- */

typedef enum tessera_plugin_state_t {
  TESSERA_PLUGIN_STATE_LOADED = 0,             /* negotiated and initialized */
  TESSERA_PLUGIN_STATE_NOT_LOADED = 1,         /* listed only (NO_LOAD flag), or unloaded */
  TESSERA_PLUGIN_STATE_LOAD_ERROR = 2,         /* dlopen failed; reason has dlerror() */
  TESSERA_PLUGIN_STATE_MISSING_ENTRY = 3,      /* no tessera_backend_get_api symbol */
  TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION = 4, /* ABI major not supported by either side */
  TESSERA_PLUGIN_STATE_ENTRY_FAILED = 5,       /* get_api or initialize returned an error */
  TESSERA_PLUGIN_STATE_INVALID_API = 6,        /* function table malformed (required slot NULL, bad size) */
  TESSERA_PLUGIN_STATE_DUPLICATE = 7,          /* name already provided by an earlier plugin */
  TESSERA_PLUGIN_STATE_UNREADABLE = 8,         /* file could not be read (permissions, not a file) */
  TESSERA_PLUGIN_STATE_NOT_A_PLUGIN = 9,       /* not an ELF shared object, or for another machine */
  TESSERA_PLUGIN_STATE_FORCE32 = 0x7FFFFFFF
} tessera_plugin_state_t;

typedef struct tessera_plugin_info_t {
  size_t struct_size;
  const char *path;         /* absolute path of the .so; borrowed from the context */
  const char *name;         /* e.g. "cuda"; from the plugin or manifest; NULL if unknown */
  const char *vendor;       /* NULL if unknown */
  const char *version;      /* the plugin's own version string; NULL if unknown */
  const char *kind;         /* "backend" or "plugin" (from the file name) */
  tessera_plugin_state_t state;
  uint32_t abi_major;       /* negotiated ABI version; 0.0 when not negotiated */
  uint32_t abi_minor;
  uint32_t device_count;    /* devices usable now */
  /* Why the plugin is not loaded, or why it has no device (e.g. "no CUDA
   * driver: libcuda.so.1: cannot open shared object file"); "" when none.
   * Borrowed. */
  const char *reason;
  tessera_status_code_t device_status; /* OK, or why devices are unavailable (NO_DEVICE, ...) */
  const char *targets;      /* comma-separated architectures it compiles for; may be "" */
  uint8_t has_manifest;     /* 1 when a YAML manifest was read beside the .so */
} tessera_plugin_info_t;
#define TESSERA_PLUGIN_INFO_STRUCT_SIZE \
  (offsetof(tessera_plugin_info_t, has_manifest) + sizeof(uint8_t))

/* Number of candidate plugin files found, loaded or not. Thread-safe. */
TESSERA_EXPORT size_t tessera_plugin_count(const tessera_context_t *context);
/* Describes candidate `index` (0-based, in discovery order). Thread-safe.
 * Errors: INVALID_ARGUMENT (NULL, bad struct_size), NOT_FOUND (index). */
TESSERA_EXPORT tessera_status_t *tessera_plugin_get_info(const tessera_context_t *context, size_t index,
                                                         tessera_plugin_info_t *out_info);
/* A short, stable name for a state ("loaded", "incompatible version"). */
TESSERA_EXPORT const char *tessera_plugin_state_name(tessera_plugin_state_t state);
/*
 * Shuts plugin `index` down and dlcloses it; it is then NOT_LOADED and its
 * devices disappear. Refused with BUSY while a module, buffer or tensor of
 * the plugin is alive. Not thread-safe with any call that uses the plugin.
 */
TESSERA_EXPORT tessera_status_t *tessera_plugin_unload(tessera_context_t *context, size_t index);

/* ---- Devices ----------------------------------------------------------- */

/* A device; borrowed from its context, valid until the plugin is unloaded. */
typedef struct tessera_device_t tessera_device_t;

typedef struct tessera_device_info_t {
  size_t struct_size;
  const char *plugin;        /* plugin name; borrowed */
  const char *name;          /* e.g. "NVIDIA H100 80GB HBM3"; borrowed */
  const char *architecture;  /* e.g. "sm_90", "x86-64"; borrowed */
  const char *features;      /* comma-separated, e.g. "avx2,avx512f,fma"; borrowed */
  uint64_t memory_bytes;     /* device memory, or host RAM for CPUs */
  uint32_t compute_units;    /* SMs, CUs, or logical cores */
  uint32_t ordinal;          /* index within its plugin */
  tessera_device_kind_t kind;
} tessera_device_info_t;
#define TESSERA_DEVICE_INFO_STRUCT_SIZE \
  (offsetof(tessera_device_info_t, kind) + sizeof(tessera_device_kind_t))

/* Number of devices over all loaded plugins. Thread-safe. */
TESSERA_EXPORT size_t tessera_device_count(const tessera_context_t *context);
/* Device `index` (0-based over all plugins, in plugin order). Thread-safe.
 * Errors: INVALID_ARGUMENT, NOT_FOUND. */
TESSERA_EXPORT tessera_status_t *tessera_context_get_device(const tessera_context_t *context, size_t index,
                                                            tessera_device_t **out_device);
/* Fills *out_info; strings are borrowed from the device. Thread-safe. */
TESSERA_EXPORT tessera_status_t *tessera_device_get_info(const tessera_device_t *device,
                                                         tessera_device_info_t *out_info);

/* ---- Buffers ----------------------------------------------------------- */

/* A block of device memory. Owned by the caller; free with
 * tessera_buffer_free(). Operations on one buffer are not thread-safe with
 * each other; different buffers are independent. */
typedef struct tessera_buffer_t tessera_buffer_t;

/* Allocates size_bytes (> 0) on the device, aligned to at least 64 bytes.
 * Errors: INVALID_ARGUMENT, OUT_OF_MEMORY, UNSUPPORTED (plugin has no
 * allocator), DEVICE_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_buffer_allocate(tessera_device_t *device, uint64_t size_bytes,
                                                         tessera_buffer_t **out_buffer);
/* Frees a buffer; NULL is a no-op. Refused with BUSY while a tensor views it. */
TESSERA_EXPORT tessera_status_t *tessera_buffer_free(tessera_buffer_t *buffer);
TESSERA_EXPORT uint64_t tessera_buffer_size(const tessera_buffer_t *buffer);
/* The device address (host address for CPU devices); borrowed. */
TESSERA_EXPORT void *tessera_buffer_device_pointer(const tessera_buffer_t *buffer);
/* Copies size bytes from host memory into the buffer at offset (bytes).
 * Synchronous. Errors: INVALID_ARGUMENT (range outside the buffer), DEVICE_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_buffer_copy_from_host(tessera_buffer_t *buffer, uint64_t offset,
                                                               const void *src, uint64_t size);
/* Copies size bytes from the buffer at offset into host memory. Synchronous. */
TESSERA_EXPORT tessera_status_t *tessera_buffer_copy_to_host(const tessera_buffer_t *buffer, uint64_t offset,
                                                             void *dst, uint64_t size);

/* ---- Tensors and DLPack ------------------------------------------------ */

/*
 * A tensor: dtype + shape + dense row-major strides over memory that is
 * either a Tessera buffer or a DLPack tensor imported zero-copy.
 * Owned by the caller; free with tessera_tensor_free(). Immutable metadata;
 * reading is thread-safe.
 */
typedef struct tessera_tensor_t tessera_tensor_t;

#define TESSERA_MAX_RANK 16

typedef struct tessera_tensor_info_t {
  size_t struct_size;
  tessera_dtype_t dtype;
  uint32_t rank;
  const int64_t *shape;      /* rank entries; borrowed from the tensor */
  void *data;                /* first element (device address); borrowed */
  uint64_t size_bytes;
  tessera_device_t *device;  /* borrowed; NULL for memory of a device no plugin owns */
  tessera_device_kind_t device_kind;
  int32_t device_ordinal;
} tessera_tensor_info_t;
#define TESSERA_TENSOR_INFO_STRUCT_SIZE \
  (offsetof(tessera_tensor_info_t, device_ordinal) + sizeof(int32_t))

/* Allocates a dense tensor on `device`. rank <= TESSERA_MAX_RANK; dims >= 0.
 * Errors: INVALID_ARGUMENT, RESOURCE_EXHAUSTED (size overflows), OUT_OF_MEMORY. */
TESSERA_EXPORT tessera_status_t *tessera_tensor_create(tessera_device_t *device, tessera_dtype_t dtype,
                                                       uint32_t rank, const int64_t *shape,
                                                       tessera_tensor_t **out_tensor);
TESSERA_EXPORT tessera_status_t *tessera_tensor_get_info(const tessera_tensor_t *tensor,
                                                         tessera_tensor_info_t *out_info);
/* Copies size_bytes (must equal the tensor's size) from host memory into the
 * tensor, wherever it lives; src may be NULL for an empty tensor. Synchronous. Not thread-safe with other writes
 * to the same tensor.
 * Errors: INVALID_ARGUMENT (size), UNSUPPORTED (memory of a device no plugin
 * owns), DEVICE_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_tensor_copy_from_host(tessera_tensor_t *tensor, const void *src,
                                                               uint64_t size_bytes);
/* Copies the whole tensor (size_bytes must equal its size) into host memory. */
TESSERA_EXPORT tessera_status_t *tessera_tensor_copy_to_host(const tessera_tensor_t *tensor, void *dst,
                                                             uint64_t size_bytes);
/* Frees a tensor (and calls the DLPack deleter of an imported one); NULL is a no-op. */
TESSERA_EXPORT void tessera_tensor_free(tessera_tensor_t *tensor);
/*
 * Imports a DLPack tensor without copying. On success Tessera owns `managed`
 * and calls its deleter when the tensor is freed; on failure the caller still
 * owns it. Requires compact row-major strides (or NULL strides) and a dtype
 * in tessera_dtype_t. context is used to match the DLPack device to a
 * Tessera device (may yield a tensor with device == NULL).
 * Errors: INVALID_ARGUMENT, UNSUPPORTED (dtype, strides, lanes != 1).
 */
TESSERA_EXPORT tessera_status_t *tessera_tensor_from_dlpack(tessera_context_t *context,
                                                            struct DLManagedTensor *managed,
                                                            tessera_tensor_t **out_tensor);
/*
 * Exports a tensor as DLPack without copying. *out_managed is owned by the
 * caller, who calls its deleter once; the memory stays alive until then, even
 * if the tensor is freed first.
 */
TESSERA_EXPORT tessera_status_t *tessera_tensor_to_dlpack(tessera_tensor_t *tensor,
                                                          struct DLManagedTensor **out_managed);

/* ---- Compile ----------------------------------------------------------- */

/* A compiled program for one plugin and device (description). Owned;
 * free with tessera_module_destroy(). Running is thread-safe: concurrent
 * tessera_module_run() calls on one module are allowed. */
typedef struct tessera_module_t tessera_module_t;

/* Receives the text of one pipeline stage when dumping is requested. */
typedef void (*tessera_dump_callback_t)(void *user_data, const char *stage, const char *text, size_t size);

typedef struct tessera_compile_options_t {
  size_t struct_size;
  const void *next;             /* extension chain; NULL */
  const char *entry;            /* function to compile; NULL = "main", else the first */
  const char *source_name;      /* file name used in diagnostics (and, for ONNX, the
                                   directory external data is read from); NULL = "<input>" */
  uint32_t opt_level;           /* 0..3; 2 is the default */
  /* Comma-separated stages to dump: graph, schedule, tile, target, and
   * time (per-stage compile timing, as text). Unknown names: INVALID_ARGUMENT. */
  const char *dump;
  tessera_dump_callback_t dump_callback;
  void *dump_user_data;
  const char *cache_dir;        /* tuning/artifact cache; NULL = default (docs/abi.md) */
  const char *schedule_file;    /* YAML schedules forcing choices; NULL = search */
  /* ABI 0.1+: symbols fixed at compile time, "NAME=VALUE,..." (e.g. "H=8"),
   * borrowed for the call; NULL = none. Needed for symbols the parameter
   * shapes do not determine (a head count only in a reshape annotation). */
  const char *bind;
} tessera_compile_options_t;
/* The first release's size (through schedule_file) is the smallest accepted. */
#define TESSERA_COMPILE_OPTIONS_STRUCT_SIZE \
  (offsetof(tessera_compile_options_t, bind) + sizeof(const char *))

/* Where to compile for: a live device, or a description for compile-only. */
typedef struct tessera_compile_target_t {
  size_t struct_size;
  tessera_device_t *device;                          /* borrowed; or NULL */
  const tessera_device_description_t *description;   /* used when device is NULL */
} tessera_compile_target_t;
#define TESSERA_COMPILE_TARGET_STRUCT_SIZE \
  (offsetof(tessera_compile_target_t, description) + sizeof(const void *))

/*
 * Compiles `source` (size bytes) in `format` ("tessera-ir" for .tsr text,
 * "onnx" for a serialized ModelProto) for `target`. options may be NULL.
 * A target with a device gives a runnable module; one with only a
 * description gives a compile-only module (info, serialize; running it is
 * NO_DEVICE). Kernels are compiled once with symbolic dims; a run binds
 * them from its inputs. *out_module is owned. Thread-safe.
 * Errors: INVALID_IR / SHAPE_MISMATCH (located; also a symbol the parameter
 * shapes do not determine and `bind` does not fix), UNSUPPORTED (format,
 * op), NOT_FOUND (entry, plugin), INVALID_ARGUMENT (options), INTERNAL.
 */
TESSERA_EXPORT tessera_status_t *tessera_compile(tessera_context_t *context, const void *source, size_t size,
                                                 const char *format, const tessera_compile_options_t *options,
                                                 const tessera_compile_target_t *target,
                                                 tessera_module_t **out_module);
/* Frees a module; NULL is a no-op. Not thread-safe with runs of the module. */
TESSERA_EXPORT void tessera_module_destroy(tessera_module_t *module);

/* One dimension of a signature: static size, or a symbolic expression. */
typedef struct tessera_dim_t {
  int64_t size;          /* >= 0 when static; -1 when symbolic */
  const char *symbol;    /* symbolic expression, e.g. "B", "S*2"; NULL when static; borrowed */
} tessera_dim_t;

typedef struct tessera_value_info_t {
  size_t struct_size;
  const char *name;          /* parameter/result name; borrowed from the module */
  tessera_dtype_t dtype;
  uint32_t rank;
  const tessera_dim_t *dims; /* rank entries; borrowed */
} tessera_value_info_t;
#define TESSERA_VALUE_INFO_STRUCT_SIZE \
  (offsetof(tessera_value_info_t, dims) + sizeof(const void *))

TESSERA_EXPORT size_t tessera_module_input_count(const tessera_module_t *module);
TESSERA_EXPORT size_t tessera_module_output_count(const tessera_module_t *module);
/* Describes input/output `index`; strings and dims borrowed from the module. */
TESSERA_EXPORT tessera_status_t *tessera_module_get_input(const tessera_module_t *module, size_t index,
                                                          tessera_value_info_t *out_info);
TESSERA_EXPORT tessera_status_t *tessera_module_get_output(const tessera_module_t *module, size_t index,
                                                           tessera_value_info_t *out_info);

/* Bits of tessera_run_options_t.flags (ABI 0.3+). */
typedef enum tessera_run_flag_t {
  /* Return once the run's kernels are enqueued instead of when they have
   * finished. The plugin executes the launches on a device in the order they
   * were enqueued, and its buffer copies and frees wait for launches enqueued
   * before them, so later runs, tessera_tensor_copy_to_host() and freeing the
   * run's tensors are safe at once. Anything else that reads the outputs, or
   * writes the inputs, must first call tessera_module_synchronize(). For the
   * cuda plugin, work issued later on the device's legacy default stream (a
   * framework's default stream, e.g. PyTorch's) is also ordered after the
   * run: the plugin's stream is a blocking stream (CUDA's implicit
   * synchronization); work on other streams is not. Errors of the kernels
   * themselves surface at the next synchronize. Plugins whose launches are
   * synchronous (cpu) have finished before tessera_module_run() returns
   * either way. */
  TESSERA_RUN_ASYNC = 0x1,
  TESSERA_RUN_FLAG_FORCE32 = 0x7fffffff
} tessera_run_flag_t;

typedef struct tessera_run_options_t {
  size_t struct_size;
  const void *next;       /* extension chain; NULL */
  uint32_t num_threads;   /* host threads for CPU plugins; 0 = default */
  /* ABI 0.3+: tessera_run_flag_t bits; 0 = synchronous. Unknown bits:
   * INVALID_ARGUMENT. */
  uint32_t flags;
} tessera_run_options_t;
/* The first release's size (through num_threads) is the smallest accepted. */
#define TESSERA_RUN_OPTIONS_STRUCT_SIZE \
  (offsetof(tessera_run_options_t, num_threads) + sizeof(uint32_t))

/*
 * Runs the module. inputs are borrowed; symbolic dims are bound from their
 * shapes. outputs[i] receives an owned tensor allocated on the module's
 * device. Synchronous unless options->flags has TESSERA_RUN_ASYNC.
 * Thread-safe.
 * Errors: INVALID_ARGUMENT (counts, dtypes, flags), SHAPE_MISMATCH (names
 * the symbol, both sizes and the inputs), DEVICE_ERROR, NO_DEVICE
 * (compile-only module).
 */
TESSERA_EXPORT tessera_status_t *tessera_module_run(tessera_module_t *module, const tessera_run_options_t *options,
                                                    size_t num_inputs, tessera_tensor_t *const *inputs,
                                                    size_t num_outputs, tessera_tensor_t **outputs);

/*
 * ABI 0.3+: waits until every run of the module enqueued so far (by any
 * thread) has finished on its device. Returns the first error of those
 * kernels (DEVICE_ERROR with the driver's text), or NULL. Thread-safe.
 * Errors: NO_DEVICE (compile-only module), DEVICE_ERROR.
 */
TESSERA_EXPORT tessera_status_t *tessera_module_synchronize(tessera_module_t *module);

/* Serializes the module (executables, plans, signature, compatibility info)
 * to an owned blob. Thread-safe. */
TESSERA_EXPORT tessera_status_t *tessera_module_serialize(const tessera_module_t *module,
                                                          tessera_blob_t **out_blob);
/*
 * Loads a serialized module for `target`. The plugin validates the
 * artifact's compatibility info first.
 * Errors: CORRUPT_DATA, INCOMPATIBLE_VERSION, NOT_FOUND (plugin), NO_DEVICE.
 */
TESSERA_EXPORT tessera_status_t *tessera_module_load(tessera_context_t *context, const void *data, size_t size,
                                                     const tessera_compile_target_t *target,
                                                     tessera_module_t **out_module);

/* Buffer-plan figures of a module (a debug accessor; docs/compiler.md,
 * "Runtime"). Plans are made per concrete input shape and cached; the
 * figures are those of the plan the latest run used (zeros before any run). */
typedef struct tessera_module_stats_t {
  size_t struct_size;
  uint64_t arena_bytes;        /* intermediate memory that plan allocates per run */
  uint64_t peak_live_bytes;    /* largest sum of intermediates alive at one kernel */
  uint64_t intermediate_bytes; /* all intermediates, without reuse */
  uint64_t cached_plans;       /* concrete shapes planned and cached now */
  uint64_t runs;               /* runs so far */
  uint32_t kernels;            /* kernels launched per run */
  uint32_t in_place;           /* intermediates written over a dying input */
} tessera_module_stats_t;
#define TESSERA_MODULE_STATS_STRUCT_SIZE \
  (offsetof(tessera_module_stats_t, in_place) + sizeof(uint32_t))

/* Fills *out_stats. Thread-safe. Errors: INVALID_ARGUMENT (NULL, struct_size
 * too small). */
TESSERA_EXPORT tessera_status_t *tessera_module_get_stats(const tessera_module_t *module,
                                                          tessera_module_stats_t *out_stats);

/* ---- Schedule search and the tuning cache (docs/schedule.md) ------------- */

/* Progress of tessera_autotune: called on the calling thread after each
 * measured candidate; `kernel` is borrowed for the call. */
typedef void (*tessera_autotune_progress_fn_t)(void *user_data, const char *kernel, uint32_t kernel_index,
                                               uint32_t num_kernels, uint32_t measured, uint32_t budget);

typedef struct tessera_autotune_options_t {
  size_t struct_size;
  const void *next;             /* extension chain; NULL */
  const char *strategy;         /* "exhaustive", "model" (cost-model top-k; NULL = this), "evolutionary" */
  uint32_t max_trials;          /* measured candidates per kernel; 0 = 32 */
  double max_seconds;           /* wall-clock budget of the whole call; 0 = none */
  uint32_t repetitions;         /* timed runs per candidate (median kept); 0 = 7 */
  uint32_t warmup;              /* untimed runs first; 0 = 2 */
  uint64_t seed;                /* evolutionary search and random inputs; 0 = 1 */
  uint32_t store;               /* non-zero: record the chosen schedules in the tuning cache */
  tessera_autotune_progress_fn_t progress; /* may be NULL */
  void *progress_user_data;
} tessera_autotune_options_t;
#define TESSERA_AUTOTUNE_OPTIONS_STRUCT_SIZE \
  (offsetof(tessera_autotune_options_t, progress_user_data) + sizeof(void *))

/*
 * Searches schedules for every kernel of `source` (format "tessera-ir") as
 * tessera_compile would build it with `options` (entry, bind, opt_level,
 * cache_dir are used; every symbol must be fixed by the parameter shapes or
 * `bind`) for `target`. With a device the plugin's measurement extension
 * times candidates; with only a description, or a plugin without
 * measurement, the cost model alone chooses (model-only). With `store`, a
 * later tessera_compile with the same cache_dir uses the chosen schedules.
 * *out_report (owned) is JSON: strategy, seconds, and per kernel the
 * candidates, feasible and measured counts, chosen knobs, predicted and
 * measured seconds, the default schedule's, and every candidate.
 * Not thread-safe with other autotune calls on the same device (timings
 * would interfere); thread-safe otherwise.
 * Errors: as tessera_compile; INVALID_ARGUMENT (options, unbound symbols,
 * strategy); UNSUPPORTED (format "onnx").
 */
TESSERA_EXPORT tessera_status_t *tessera_autotune(tessera_context_t *context, const void *source, size_t size,
                                                  const char *format, const tessera_compile_options_t *options,
                                                  const tessera_compile_target_t *target,
                                                  const tessera_autotune_options_t *autotune_options,
                                                  tessera_blob_t **out_report);

/*
 * Cache management. `cache_dir` as tessera_compile_options_t.cache_dir (NULL
 * = default: $TESSERA_CACHE_DIR, $XDG_CACHE_HOME/tessera, ~/.cache/tessera).
 * Thread- and process-safe (SQLite transactions). Problems with the cache
 * file itself (damaged, future schema) are repaired as for compiles, with a
 * warning on stderr.
 */
/* *out_report (owned): JSON {path, tuning_entries, artifact_entries,
 * artifact_bytes, file_bytes}. Errors: IO_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_cache_stats(const char *cache_dir, tessera_blob_t **out_report);
/* Deletes every tuning result and cached executable. Errors: UNSUPPORTED
 * (cache disabled or unwritable), IO_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_cache_clear(const char *cache_dir);
/* Writes the tuning results (not executables) to `file`, a SQLite file
 * readable by tessera_cache_import on a machine of the same architecture.
 * Errors: UNSUPPORTED, IO_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_cache_export(const char *cache_dir, const char *file);
/* Merges tuning results from `file` (newer entries win); *out_imported
 * (may be NULL) receives the entries written. Errors: NOT_FOUND,
 * CORRUPT_DATA (not an export), INCOMPATIBLE_VERSION (schema), IO_ERROR. */
TESSERA_EXPORT tessera_status_t *tessera_cache_import(const char *cache_dir, const char *file,
                                                      uint64_t *out_imported);

#ifdef __cplusplus
} /* extern "C" */
#endif

#include "tessera/tessera_ir.h"

#endif /* TESSERA_H_ */
