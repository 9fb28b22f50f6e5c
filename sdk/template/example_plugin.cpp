// The smallest useful backend plugin: one "example" device with host memory.
// Copy this folder to start a vendor plugin; fill compile/launch next.
#include "tessera/sdk/backend_sdk.h"

#include <cstdlib>
#include <cstring>
#include <new>

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host;
};
struct tessera_backend_buffer_t {
  void *data;
  uint64_t size;
};

namespace {

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out) {
  auto *p = new (std::nothrow) tessera_backend_plugin_t{host};
  if (!p)
    return tessera::sdk::makeStatus(host, TESSERA_STATUS_OUT_OF_MEMORY, "example: out of memory");
  *out = p;
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
    return tessera::sdk::makeStatus(p->host, TESSERA_STATUS_NOT_FOUND, "example: no device %u", ordinal);
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  info.name = "Example accelerator";
  info.architecture = "example-v1";
  info.features = "";
  info.memory_bytes = 64u << 20;
  info.compute_units = 1;
  info.kind = TESSERA_DEVICE_KIND_CPU;
  tessera::sdk::copyOut(out, info);
  return nullptr;
}

tessera_status_t *bufferAllocate(tessera_backend_plugin_t *p, uint32_t, uint64_t size, tessera_backend_buffer_t **out) {
  void *data = std::malloc(size);
  if (!data)
    return tessera::sdk::makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "example: out of memory");
  *out = new tessera_backend_buffer_t{data, size};
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

tessera_status_t *copyIn(tessera_backend_plugin_t *, tessera_backend_buffer_t *b, uint64_t off, const void *src,
                         uint64_t n) {
  std::memcpy(static_cast<char *>(b->data) + off, src, n); // the host checked the range
  return nullptr;
}

tessera_status_t *copyOut(tessera_backend_plugin_t *, const tessera_backend_buffer_t *b, uint64_t off, void *dst,
                          uint64_t n) {
  std::memcpy(dst, static_cast<const char *>(b->data) + off, n);
  return nullptr;
}

tessera_backend_api_t makeApi() {
  tessera_backend_api_t api{};
  api.struct_size = sizeof(api);
  api.name = "example";
  api.vendor = "Example Corp";
  api.version = "1.0.0";
  api.targets = "example-v1";
  api.initialize = initialize;
  api.shutdown = shutdown;
  api.device_count = deviceCount;
  api.device_get_info = deviceGetInfo;
  api.buffer_allocate = bufferAllocate;
  api.buffer_free = bufferFree;
  api.buffer_device_pointer = bufferPointer;
  api.buffer_copy_from_host = copyIn;
  api.buffer_copy_to_host = copyOut;
  return api;
}

tessera_backend_api_t gApi = makeApi();

} // namespace

extern "C" TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                                    const tessera_backend_api_t **out_api) {
  return tessera::sdk::provideApi(host, &gApi, out_api);
}
