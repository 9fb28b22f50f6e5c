// The CPU backend plugin: host threads, host memory. Its entry point is the
// only exported symbol (sdk/plugin.map).
#include "HostCpu.h"

#include "tessera/sdk/backend_sdk.h"

#include <cstdlib>
#include <cstring>
#include <new>

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host;
  tessera::cpu::HostCpu cpu;
};

struct tessera_backend_buffer_t {
  void *data;
  uint64_t size;
};

namespace {

using tessera::sdk::makeStatus;

constexpr size_t kBufferAlignment = 64; // one cache line; AVX-512 vector width

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out_plugin) {
  auto *plugin = new (std::nothrow) tessera_backend_plugin_t{host, {}};
  if (!plugin)
    return makeStatus(host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory");
  try {
    plugin->cpu = tessera::cpu::detectHostCpu();
  } catch (...) {
    delete plugin;
    return makeStatus(host, TESSERA_STATUS_INTERNAL, "cpu: failed to read the host CPU description");
  }
  *out_plugin = plugin;
  return nullptr;
}

tessera_status_t *shutdown(tessera_backend_plugin_t *plugin) {
  delete plugin;
  return nullptr;
}

tessera_status_t *deviceCount(tessera_backend_plugin_t *, uint32_t *out_count) {
  *out_count = 1;
  return nullptr;
}

tessera_status_t *deviceGetInfo(tessera_backend_plugin_t *plugin, uint32_t ordinal,
                                tessera_backend_device_info_t *out_info) {
  if (ordinal != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_NOT_FOUND, "cpu: no device %u", ordinal);
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  info.name = plugin->cpu.modelName.c_str();
  info.architecture = plugin->cpu.architecture.c_str();
  info.features = plugin->cpu.features.c_str();
  info.memory_bytes = plugin->cpu.memoryBytes;
  info.compute_units = plugin->cpu.logicalCores;
  info.kind = TESSERA_DEVICE_KIND_CPU;
  tessera::sdk::copyOut(out_info, info);
  return nullptr;
}

tessera_status_t *bufferAllocate(tessera_backend_plugin_t *plugin, uint32_t ordinal, uint64_t size,
                                 tessera_backend_buffer_t **out_buffer) {
  if (ordinal != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_NOT_FOUND, "cpu: no device %u", ordinal);
  uint64_t rounded = (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  void *data = rounded >= size ? std::aligned_alloc(kBufferAlignment, rounded) : nullptr;
  if (!data)
    return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: cannot allocate %llu bytes",
                      static_cast<unsigned long long>(size));
  auto *buffer = new (std::nothrow) tessera_backend_buffer_t{data, size};
  if (!buffer) {
    std::free(data);
    return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory");
  }
  *out_buffer = buffer;
  return nullptr;
}

tessera_status_t *bufferFree(tessera_backend_plugin_t *, tessera_backend_buffer_t *buffer) {
  if (buffer) {
    std::free(buffer->data);
    delete buffer;
  }
  return nullptr;
}

tessera_status_t *bufferDevicePointer(tessera_backend_plugin_t *, const tessera_backend_buffer_t *buffer,
                                      void **out_pointer) {
  *out_pointer = buffer->data;
  return nullptr;
}

tessera_status_t *checkRange(tessera_backend_plugin_t *plugin, const tessera_backend_buffer_t *buffer,
                             uint64_t offset, uint64_t size) {
  if (offset > buffer->size || size > buffer->size - offset)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: copy outside the buffer");
  return nullptr;
}

tessera_status_t *bufferCopyFromHost(tessera_backend_plugin_t *plugin, tessera_backend_buffer_t *buffer,
                                     uint64_t offset, const void *src, uint64_t size) {
  if (tessera_status_t *s = checkRange(plugin, buffer, offset, size))
    return s;
  std::memcpy(static_cast<char *>(buffer->data) + offset, src, size);
  return nullptr;
}

tessera_status_t *bufferCopyToHost(tessera_backend_plugin_t *plugin, const tessera_backend_buffer_t *buffer,
                                   uint64_t offset, void *dst, uint64_t size) {
  if (tessera_status_t *s = checkRange(plugin, buffer, offset, size))
    return s;
  std::memcpy(dst, static_cast<const char *>(buffer->data) + offset, size);
  return nullptr;
}

tessera_backend_api_t makeApi() {
  tessera_backend_api_t api{};
  api.struct_size = sizeof(api);
  api.abi_major = TESSERA_ABI_VERSION_MAJOR;
  api.abi_minor = TESSERA_ABI_VERSION_MINOR;
  api.name = "cpu";
  api.vendor = "Tessera";
  api.version = TESSERA_PLUGIN_VERSION;
  api.targets = "x86-64,x86-64-v2,x86-64-v3,x86-64-v4";
  api.initialize = initialize;
  api.shutdown = shutdown;
  api.device_count = deviceCount;
  api.device_get_info = deviceGetInfo;
  // compile/executables/launch arrive with the CPU code generator.
  api.buffer_allocate = bufferAllocate;
  api.buffer_free = bufferFree;
  api.buffer_device_pointer = bufferDevicePointer;
  api.buffer_copy_from_host = bufferCopyFromHost;
  api.buffer_copy_to_host = bufferCopyToHost;
  return api;
}

tessera_backend_api_t gApi = makeApi();

} // namespace

extern "C" TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                                    const tessera_backend_api_t **out_api) {
  uint32_t major = 0, minor = 0;
  if (tessera_status_t *s =
          tessera::sdk::negotiate(host, TESSERA_ABI_VERSION_MAJOR, TESSERA_ABI_VERSION_MINOR, &major, &minor))
    return s;
  gApi.abi_major = major;
  gApi.abi_minor = minor;
  *out_api = &gApi;
  return nullptr;
}
