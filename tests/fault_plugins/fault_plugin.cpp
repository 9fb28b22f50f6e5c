// Test-only backend plugins that each fail (or stretch the ABI) one way.
// Compiled once per mode with -DFAULT_<MODE>; see CMakeLists.txt.
#include "tessera/sdk/backend_sdk.h"

#include <cstdlib>
#include <cstring>
#include <new>

#ifndef FAULT_NAME
#error "FAULT_NAME must be defined"
#endif

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host;
};
struct tessera_backend_buffer_t {
  void *data;
  uint64_t size;
};

namespace {

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out) {
  *out = new tessera_backend_plugin_t{host};
  return nullptr;
}
tessera_status_t *shutdown(tessera_backend_plugin_t *p) {
  delete p;
  return nullptr;
}
tessera_status_t *deviceCount(tessera_backend_plugin_t *, uint32_t *out_count) {
  *out_count = 1;
  return nullptr;
}
tessera_status_t *deviceGetInfo(tessera_backend_plugin_t *p, uint32_t ordinal, tessera_backend_device_info_t *out) {
  if (ordinal != 0)
    return tessera::sdk::makeStatus(p->host, TESSERA_STATUS_NOT_FOUND, "no device %u", ordinal);
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  info.name = "fault test device";
  info.architecture = "test";
  info.features = "";
  info.memory_bytes = 1 << 20;
  info.compute_units = 1;
  info.kind = TESSERA_DEVICE_KIND_CPU;
  tessera::sdk::copyOut(out, info);
  return nullptr;
}
tessera_status_t *bufferAllocate(tessera_backend_plugin_t *, uint32_t, uint64_t size, tessera_backend_buffer_t **out) {
  *out = new tessera_backend_buffer_t{std::malloc(size), size};
  return nullptr;
}
tessera_status_t *bufferFree(tessera_backend_plugin_t *, tessera_backend_buffer_t *b) {
  std::free(b->data);
  delete b;
  return nullptr;
}
tessera_status_t *bufferPointer(tessera_backend_plugin_t *, const tessera_backend_buffer_t *b, void **out) {
  *out = b->data;
  return nullptr;
}

#if defined(FAULT_NEWER_MINOR)
// A table from a future minor version: one more slot at the end.
struct FutureApi {
  tessera_backend_api_t v0_1;
  void *future_slot;
};
FutureApi gFuture{};
#endif

tessera_backend_api_t makeApi() {
  tessera_backend_api_t api{};
  api.struct_size = sizeof(api);
  api.name = FAULT_NAME;
  api.vendor = "Tessera tests";
  api.version = "0.0.1";
  api.targets = "test";
  api.initialize = initialize;
  api.shutdown = shutdown;
  api.device_count = deviceCount;
  api.device_get_info = deviceGetInfo;
  api.buffer_allocate = bufferAllocate;
  api.buffer_free = bufferFree;
  api.buffer_device_pointer = bufferPointer;
#if defined(FAULT_NULL_SLOT)
  api.device_count = nullptr;
#endif
#if defined(FAULT_OLDER_MINOR)
  // As a minor-0 plugin would ship it: only the required slots exist.
  api.struct_size = TESSERA_BACKEND_API_MIN_STRUCT_SIZE;
#endif
  return api;
}

tessera_backend_api_t gApi = makeApi();

#if defined(FAULT_OLDER_MINOR)
constexpr uint32_t kPluginMinor = 0;
#elif defined(FAULT_NEWER_MINOR)
constexpr uint32_t kPluginMinor = TESSERA_ABI_VERSION_MINOR + 1;
#else
constexpr uint32_t kPluginMinor = TESSERA_ABI_VERSION_MINOR;
#endif
#if defined(FAULT_WRONG_MAJOR)
constexpr uint32_t kPluginMajor = 99;
#else
constexpr uint32_t kPluginMajor = TESSERA_ABI_VERSION_MAJOR;
#endif

} // namespace

#if defined(FAULT_MISSING_ENTRY)
// Exports a near-miss name instead of the entry point.
extern "C" TESSERA_EXPORT int tessera_backend_get_api_v0(void) { return 0; }
#else
extern "C" TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                                    const tessera_backend_api_t **out_api) {
#if defined(FAULT_ENTRY_ERROR)
  return tessera::sdk::makeStatus(host, TESSERA_STATUS_MISSING_DEPENDENCY,
                                  "simulated failure: libvendor.so.3 not found");
#elif defined(FAULT_IGNORES_RANGE)
  // Ignores the host's range and answers a major it cannot have agreed to.
  gApi.abi_major = 7;
  gApi.abi_minor = 0;
  *out_api = &gApi;
  return nullptr;
#else
  uint32_t major = 0, minor = 0;
  if (tessera_status_t *s = tessera::sdk::negotiate(host, kPluginMajor, kPluginMinor, &major, &minor))
    return s;
  gApi.abi_major = major;
  gApi.abi_minor = minor;
#if defined(FAULT_NEWER_MINOR)
  gFuture.v0_1 = gApi;
  gFuture.v0_1.struct_size = sizeof(FutureApi);
  *out_api = &gFuture.v0_1;
#else
  *out_api = &gApi;
#endif
  return nullptr;
#endif
}
#endif
