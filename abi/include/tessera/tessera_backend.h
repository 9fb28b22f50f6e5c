/*
 * tessera_backend.h: the Tessera backend plugin ABI.
 *
 * What a plugin (libtessera-backend-<name>.so) implements. C11,
 * self-contained; compiles as C and C++. A plugin exports exactly one
 * symbol, tessera_backend_get_api(); everything else is reached through the
 * function table it returns.
 *
 * Versioning (docs/abi.md): the host offers the range of ABI versions it
 * accepts; the plugin answers with the version it will use, or an
 * INCOMPATIBLE_VERSION status. The function table is append-only: its
 * struct_size says which slots exist, and a slot beyond struct_size, or a
 * NULL optional slot, means "unsupported". Optional capabilities (cost model,
 * measurement, collectives, profiling, native ops) are extension nodes
 * chained from the table, so later additions never change the v1 layout.
 *
 * Errors: every slot returns tessera_status_t* (NULL = success). A plugin
 * creates errors only with host->status_create(); the host owns and frees
 * them. Memory handed to the host is allocated with host->allocate().
 * Plugins never throw or abort across this boundary.
 */
#ifndef TESSERA_BACKEND_H_
#define TESSERA_BACKEND_H_

#include "tessera/tessera_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TESSERA_BACKEND_ENTRY_SYMBOL "tessera_backend_get_api"

typedef enum tessera_log_level_t {
  TESSERA_LOG_DEBUG = 0,
  TESSERA_LOG_INFO = 1,
  TESSERA_LOG_WARNING = 2,
  TESSERA_LOG_ERROR = 3,
  TESSERA_LOG_LEVEL_FORCE32 = 0x7FFFFFFF
} tessera_log_level_t;

/*
 * Services and version range the host offers. Owned by the host; valid from
 * get_api until after shutdown returns. The fields up to status_create are
 * fixed for every ABI major version, so a plugin of any version can read the
 * range and report an incompatibility.
 */
typedef struct tessera_backend_host_t {
  size_t struct_size;
  uint32_t abi_min_major; /* oldest ABI version the host accepts */
  uint32_t abi_min_minor;
  uint32_t abi_max_major; /* newest ABI version the host knows */
  uint32_t abi_max_minor;
  /* Creates a host-owned status (message is copied). Thread-safe. Returns
   * NULL only for TESSERA_STATUS_OK. */
  tessera_status_t *(*status_create)(tessera_status_code_t code, const char *message);
  /* Allocates memory that the plugin hands to the host (e.g. serialized
   * executables); the host frees it. Thread-safe. */
  void *(*allocate)(void *allocator_data, size_t size, size_t alignment);
  void (*deallocate)(void *allocator_data, void *ptr);
  void *allocator_data;
  /* Optional diagnostics sink; may be NULL. Thread-safe. */
  void (*log)(void *log_data, tessera_log_level_t level, const char *message);
  void *log_data;
} tessera_backend_host_t;
#define TESSERA_BACKEND_HOST_STRUCT_SIZE \
  (offsetof(tessera_backend_host_t, log_data) + sizeof(void *))

/* Opaque plugin-side objects; the host only passes them back. */
typedef struct tessera_backend_plugin_t tessera_backend_plugin_t;
typedef struct tessera_backend_executable_t tessera_backend_executable_t;
typedef struct tessera_backend_buffer_t tessera_backend_buffer_t;

/* A device as the plugin reports it. Strings are owned by the plugin and
 * stay valid until shutdown; the host copies them. */
typedef struct tessera_backend_device_info_t {
  size_t struct_size;
  const char *name;
  const char *architecture;  /* what compile targets, e.g. "sm_90", "x86-64" */
  const char *features;      /* comma-separated; "" when none */
  uint64_t memory_bytes;
  uint32_t compute_units;
  tessera_device_kind_t kind;
} tessera_backend_device_info_t;
#define TESSERA_BACKEND_DEVICE_INFO_STRUCT_SIZE \
  (offsetof(tessera_backend_device_info_t, kind) + sizeof(tessera_device_kind_t))

/* Receives dumped stage text during compile (borrowed for the call). */
typedef void (*tessera_backend_dump_fn_t)(void *user_data, const char *stage, const char *text, size_t size);

/* Input of compile: one Schedule IR program as opaque, versioned bytes. */
typedef struct tessera_backend_compile_args_t {
  size_t struct_size;
  const void *next;                 /* extension chain; NULL */
  const void *program;              /* borrowed for the call */
  size_t program_size;
  const char *program_format;       /* e.g. "tessera-schedule-v1"; reject unknown ones with UNSUPPORTED */
  const tessera_device_description_t *target; /* always set; borrowed */
  int32_t device_ordinal;           /* live device to compile for, or -1 (compile-only) */
  uint32_t opt_level;
  const char *dump_stages;          /* comma-separated stages ("tile,target"), or NULL */
  tessera_backend_dump_fn_t dump;   /* may be NULL */
  void *dump_user_data;
} tessera_backend_compile_args_t;
#define TESSERA_BACKEND_COMPILE_ARGS_STRUCT_SIZE \
  (offsetof(tessera_backend_compile_args_t, dump_user_data) + sizeof(void *))

/* Input of executable_load: bytes from executable_serialize. The plugin
 * validates their compatibility info (format version, architecture) first
 * and answers CORRUPT_DATA or INCOMPATIBLE_VERSION. */
typedef struct tessera_backend_load_args_t {
  size_t struct_size;
  const void *data;                 /* borrowed for the call */
  size_t size;
  int32_t device_ordinal;           /* device to load onto */
} tessera_backend_load_args_t;
#define TESSERA_BACKEND_LOAD_ARGS_STRUCT_SIZE \
  (offsetof(tessera_backend_load_args_t, device_ordinal) + sizeof(int32_t))

/* One launch of kernel `kernel_index` of an executable. */
typedef struct tessera_backend_launch_args_t {
  size_t struct_size;
  tessera_backend_executable_t *executable;
  uint32_t kernel_index;
  uint32_t device_ordinal;
  tessera_backend_buffer_t *const *buffers; /* borrowed; order fixed by the Schedule IR */
  size_t num_buffers;
  const int64_t *scalars;           /* bound symbolic dims and other run-time scalars */
  size_t num_scalars;
  uint32_t num_threads;             /* host threads (CPU plugins); 0 = plugin default */
} tessera_backend_launch_args_t;
#define TESSERA_BACKEND_LAUNCH_ARGS_STRUCT_SIZE \
  (offsetof(tessera_backend_launch_args_t, num_threads) + sizeof(uint32_t))

/* ---- Extensions: optional capabilities --------------------------------- */

typedef enum tessera_backend_extension_type_t {
  TESSERA_BACKEND_EXTENSION_COST_MODEL = 1,
  TESSERA_BACKEND_EXTENSION_MEASUREMENT = 2,
  TESSERA_BACKEND_EXTENSION_COLLECTIVES = 3,
  TESSERA_BACKEND_EXTENSION_PROFILING = 4,
  TESSERA_BACKEND_EXTENSION_NATIVE_OPS = 5, /* ABI 0.2 */
  TESSERA_BACKEND_EXTENSION_TYPE_FORCE32 = 0x7FFFFFFF
} tessera_backend_extension_type_t;

/* Header of every extension node. Nodes are static, owned by the plugin.
 * The host ignores node types it does not know. */
typedef struct tessera_backend_extension_t {
  size_t struct_size;
  tessera_backend_extension_type_t type;
  const struct tessera_backend_extension_t *next;
} tessera_backend_extension_t;

/* Cost model: predicts the run time of one Schedule IR kernel on a target,
 * and rejects points that exceed resource limits before any measurement. */
typedef struct tessera_backend_cost_query_t {
  size_t struct_size;
  const void *program;              /* Schedule IR bytes; borrowed */
  size_t program_size;
  const char *program_format;
  uint32_t kernel_index;
  const tessera_device_description_t *target;
  const int64_t *scalars;           /* concrete symbolic dims */
  size_t num_scalars;
} tessera_backend_cost_query_t;

typedef struct tessera_backend_cost_estimate_t {
  size_t struct_size;
  uint8_t feasible;                 /* 0 when the schedule exceeds a resource limit */
  double seconds;                   /* predicted run time */
  double flops;                     /* floating-point operations counted */
  double bytes;                     /* bytes moved to and from main memory */
  const char *reason;               /* why infeasible; static or plugin-owned until shutdown */
} tessera_backend_cost_estimate_t;

typedef struct tessera_backend_cost_model_extension_t {
  tessera_backend_extension_t base; /* type = COST_MODEL */
  tessera_status_t *(*estimate)(tessera_backend_plugin_t *plugin, const tessera_backend_cost_query_t *query,
                                tessera_backend_cost_estimate_t *out_estimate);
} tessera_backend_cost_model_extension_t;

/* Measurement: times a launch on the real device (warm-up, repetitions,
 * median), rotating inputs where the plugin can. */
typedef struct tessera_backend_measure_args_t {
  size_t struct_size;
  const tessera_backend_launch_args_t *launch;
  uint32_t warmup;
  uint32_t repetitions;
} tessera_backend_measure_args_t;

typedef struct tessera_backend_measurement_t {
  size_t struct_size;
  double median_seconds;
  double min_seconds;
  double max_seconds;
  uint32_t repetitions;             /* repetitions actually run */
} tessera_backend_measurement_t;

typedef struct tessera_backend_measurement_extension_t {
  tessera_backend_extension_t base; /* type = MEASUREMENT */
  tessera_status_t *(*measure)(tessera_backend_plugin_t *plugin, const tessera_backend_measure_args_t *args,
                               tessera_backend_measurement_t *out_measurement);
} tessera_backend_measurement_extension_t;

/* Collectives across the plugin's devices (e.g. NCCL). */
typedef struct tessera_backend_communicator_t tessera_backend_communicator_t;

typedef enum tessera_reduce_op_t {
  TESSERA_REDUCE_SUM = 0,
  TESSERA_REDUCE_MAX = 1,
  TESSERA_REDUCE_MIN = 2,
  TESSERA_REDUCE_PROD = 3,
  TESSERA_REDUCE_OP_FORCE32 = 0x7FFFFFFF
} tessera_reduce_op_t;

typedef struct tessera_backend_collectives_extension_t {
  tessera_backend_extension_t base; /* type = COLLECTIVES */
  tessera_status_t *(*communicator_create)(tessera_backend_plugin_t *plugin, uint32_t num_devices,
                                           const uint32_t *device_ordinals,
                                           tessera_backend_communicator_t **out_communicator);
  tessera_status_t *(*communicator_destroy)(tessera_backend_plugin_t *plugin,
                                            tessera_backend_communicator_t *communicator);
  /* In-place-capable all-reduce of `count` elements per device; buffers are
   * indexed like device_ordinals. */
  tessera_status_t *(*all_reduce)(tessera_backend_plugin_t *plugin, tessera_backend_communicator_t *communicator,
                                  tessera_backend_buffer_t *const *send, tessera_backend_buffer_t *const *recv,
                                  uint64_t count, tessera_dtype_t dtype, tessera_reduce_op_t op);
} tessera_backend_collectives_extension_t;

/* Profiling: per-kernel timings collected between start and stop. */
typedef void (*tessera_backend_profile_event_fn_t)(void *user_data, const char *kernel_name,
                                                   uint32_t device_ordinal, double start_seconds,
                                                   double duration_seconds);

typedef struct tessera_backend_profiling_extension_t {
  tessera_backend_extension_t base; /* type = PROFILING */
  tessera_status_t *(*start)(tessera_backend_plugin_t *plugin);
  /* Stops collecting and reports every event through `event`. */
  tessera_status_t *(*stop)(tessera_backend_plugin_t *plugin, tessera_backend_profile_event_fn_t event,
                            void *user_data);
} tessera_backend_profiling_extension_t;

/* Native ops: composite Graph IR ops the plugin compiles whole. For each op
 * listed here the core skips the op's decomposition and hands the op to the
 * plugin as one Schedule IR kernel of the matching kind ("attention": kernel
 * kind `attention`, sdk/include/tessera/sdk/schedule_ir.h). A plugin without
 * this node (or that does not list an op) only ever receives the
 * decomposition, so older plugins are unaffected. The plugin must accept
 * every kernel of a listed kind (dtypes and shapes the op allows), falling
 * back to a slower path of its own where its fast one does not apply. */
typedef struct tessera_backend_native_ops_extension_t {
  tessera_backend_extension_t base; /* type = NATIVE_OPS; base.struct_size = sizeof this node */
  /* Comma-separated Graph IR op names, e.g. "attention"; static. Unknown
   * names and names of ops that are not composites are ignored. */
  const char *ops;
} tessera_backend_native_ops_extension_t;

/* ---- The function table ------------------------------------------------ */

/*
 * Static, owned by the plugin, valid until dlclose. Required slots:
 * initialize, shutdown, device_count, device_get_info. Every other slot may
 * be NULL ("unsupported"). Slots are appended, never reordered; the host
 * reads only slots that lie inside struct_size.
 */
typedef struct tessera_backend_api_t {
  size_t struct_size;
  const tessera_backend_extension_t *extensions; /* chain of optional capabilities; may be NULL */
  uint32_t abi_major;          /* the negotiated version this table follows */
  uint32_t abi_minor;
  const char *name;            /* short unique name, e.g. "cpu", "cuda"; static */
  const char *vendor;          /* static */
  const char *version;         /* the plugin's own version; static */
  const char *targets;         /* comma-separated architectures it compiles for; static */

  /* -- ABI 0.1 -- */

  /* Creates the plugin state. Must succeed without the vendor runtime or
   * hardware: report their absence from device_count. Called once per host
   * context; plugins keep no global mutable state between instances. */
  tessera_status_t *(*initialize)(const tessera_backend_host_t *host, tessera_backend_plugin_t **out_plugin);
  /* Releases everything; the host calls it before dlclose, and only when no
   * buffer or executable of the plugin is alive. */
  tessera_status_t *(*shutdown)(tessera_backend_plugin_t *plugin);
  /* Devices usable now. With no driver or device, *out_count = 0 and the
   * status (NO_DEVICE, MISSING_DEPENDENCY) carries the reason; that is not a
   * load failure. Thread-safe. */
  tessera_status_t *(*device_count)(tessera_backend_plugin_t *plugin, uint32_t *out_count);
  tessera_status_t *(*device_get_info)(tessera_backend_plugin_t *plugin, uint32_t ordinal,
                                       tessera_backend_device_info_t *out_info);

  /* Compiles for args->target (no device needed). Thread-safe. */
  tessera_status_t *(*compile)(tessera_backend_plugin_t *plugin, const tessera_backend_compile_args_t *args,
                               tessera_backend_executable_t **out_executable);
  tessera_status_t *(*executable_destroy)(tessera_backend_plugin_t *plugin,
                                          tessera_backend_executable_t *executable);
  /* *out_data is allocated with host->allocate and owned by the host. */
  tessera_status_t *(*executable_serialize)(tessera_backend_plugin_t *plugin,
                                            const tessera_backend_executable_t *executable, void **out_data,
                                            size_t *out_size);
  tessera_status_t *(*executable_load)(tessera_backend_plugin_t *plugin, const tessera_backend_load_args_t *args,
                                       tessera_backend_executable_t **out_executable);

  /* Device memory. Synchronous copies. Different buffers are independent.
   * Copies and buffer_free wait for (or are ordered after) every launch on
   * the buffer's device enqueued before them: the core relies on it for
   * asynchronous runs (TESSERA_RUN_ASYNC in tessera.h). */
  tessera_status_t *(*buffer_allocate)(tessera_backend_plugin_t *plugin, uint32_t device_ordinal,
                                       uint64_t size_bytes, tessera_backend_buffer_t **out_buffer);
  tessera_status_t *(*buffer_free)(tessera_backend_plugin_t *plugin, tessera_backend_buffer_t *buffer);
  tessera_status_t *(*buffer_device_pointer)(tessera_backend_plugin_t *plugin,
                                             const tessera_backend_buffer_t *buffer, void **out_pointer);
  tessera_status_t *(*buffer_copy_from_host)(tessera_backend_plugin_t *plugin, tessera_backend_buffer_t *buffer,
                                             uint64_t offset, const void *src, uint64_t size);
  tessera_status_t *(*buffer_copy_to_host)(tessera_backend_plugin_t *plugin,
                                           const tessera_backend_buffer_t *buffer, uint64_t offset, void *dst,
                                           uint64_t size);

  /* Enqueues a kernel launch; completion is observed with synchronize.
   * Launches on one device execute in the order they were enqueued (a
   * kernel reads what the kernels before it wrote). synchronize waits for
   * every launch enqueued on the device and reports their first error. */
  tessera_status_t *(*launch)(tessera_backend_plugin_t *plugin, const tessera_backend_launch_args_t *args);
  tessera_status_t *(*synchronize)(tessera_backend_plugin_t *plugin, uint32_t device_ordinal);

  /* -- ABI 0.2 -- */

  /* Wraps memory the caller owns (e.g. a tensor imported through DLPack) as
   * a buffer of device `device_ordinal`, without copying, so kernels launch
   * on it directly. `pointer` is what buffer_device_pointer would return for
   * it; `size_bytes` bytes from it must stay valid until buffer_free, which
   * releases only the wrapper, never the memory. Answers INVALID_ARGUMENT
   * when the memory is not usable by that device (e.g. host memory on a GPU,
   * or another GPU's memory); the host then copies instead. Optional: NULL
   * means the host always copies such memory into a buffer of its own.
   * Thread-safe. */
  tessera_status_t *(*buffer_wrap)(tessera_backend_plugin_t *plugin, uint32_t device_ordinal, void *pointer,
                                   uint64_t size_bytes, tessera_backend_buffer_t **out_buffer);
} tessera_backend_api_t;

/* The smallest usable table: the required slots. The host rejects a
 * table smaller than this as INVALID_API. */
#define TESSERA_BACKEND_API_MIN_STRUCT_SIZE \
  (offsetof(tessera_backend_api_t, device_get_info) + sizeof(void *))
#define TESSERA_BACKEND_API_STRUCT_SIZE \
  (offsetof(tessera_backend_api_t, buffer_wrap) + sizeof(void *))

/*
 * The plugin's single exported symbol. Reads the host's version range; on
 * success stores a pointer to its static table in *out_api with abi_major /
 * abi_minor set to the version it will follow. If it cannot follow any
 * version in the range it returns an INCOMPATIBLE_VERSION status (made with
 * host->status_create) naming both versions. Thread-safe; may be called
 * more than once.
 */
typedef tessera_status_t *(*tessera_backend_get_api_fn_t)(const tessera_backend_host_t *host,
                                                         const tessera_backend_api_t **out_api);

#ifdef TESSERA_BACKEND_IMPLEMENTATION
TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                         const tessera_backend_api_t **out_api);
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TESSERA_BACKEND_H_ */
