// The CUDA backend plugin: NVIDIA GPUs through the driver API. Loads without
// a driver; the driver is opened at first use (device enumeration).
#include "CudaDriver.h"

#include "tessera/sdk/backend_sdk.h"

#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace {

struct Device {
  CUdevice handle = 0;
  CUcontext context = nullptr; // primary context, retained lazily
  std::string name;
  std::string architecture; // "sm_90"
  std::string features;
  uint64_t memoryBytes = 0;
  uint32_t smCount = 0;
};

} // namespace

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host;
  std::once_flag enumerated;
  tessera_status_code_t unavailableCode = TESSERA_STATUS_OK;
  std::string unavailableReason;
  std::vector<Device> devices;
  std::mutex contextMutex;
};

struct tessera_backend_buffer_t {
  CUdeviceptr pointer;
  uint64_t size;
  uint32_t ordinal;
};

namespace {

using tessera::cuda::cudaDriver;
using tessera::sdk::makeStatus;

// Features by compute capability (CUDA C++ Programming Guide, "Compute
// Capabilities" table).
std::string featuresFor(int major, int minor) {
  int cc = major * 10 + minor;
  std::string f;
  auto add = [&](const char *s) { f += (f.empty() ? "" : ",") + std::string(s); };
  if (cc >= 70) add("tensor-cores");
  if (cc >= 80) { add("bf16"); add("tf32"); add("cp.async"); }
  if (cc >= 89) add("fp8");
  if (cc >= 90) { add("tma"); add("wgmma"); add("clusters"); }
  return f;
}

void enumerate(tessera_backend_plugin_t *p) {
  const auto &d = cudaDriver();
  if (!d.unavailableReason.empty()) {
    p->unavailableCode = TESSERA_STATUS_NO_DEVICE;
    p->unavailableReason = d.unavailableReason;
    return;
  }
  int count = 0;
  CUresult r = d.cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count == 0) {
    p->unavailableCode = TESSERA_STATUS_NO_DEVICE;
    p->unavailableReason = r != CUDA_SUCCESS ? "cuDeviceGetCount failed: " + d.describe(r) : "no CUDA device";
    return;
  }
  for (int i = 0; i < count; ++i) {
    Device dev;
    if ((r = d.cuDeviceGet(&dev.handle, i)) != CUDA_SUCCESS) {
      p->unavailableCode = TESSERA_STATUS_DEVICE_ERROR;
      p->unavailableReason = "cuDeviceGet(" + std::to_string(i) + ") failed: " + d.describe(r);
      continue;
    }
    char name[256] = {};
    d.cuDeviceGetName(name, sizeof(name) - 1, dev.handle);
    dev.name = name;
    int major = 0, minor = 0, sms = 0;
    d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev.handle);
    d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev.handle);
    d.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev.handle);
    size_t bytes = 0;
    d.cuDeviceTotalMem(&bytes, dev.handle);
    dev.architecture = "sm_" + std::to_string(major * 10 + minor);
    dev.features = featuresFor(major, minor);
    dev.memoryBytes = bytes;
    dev.smCount = static_cast<uint32_t>(sms);
    p->devices.push_back(std::move(dev));
  }
}

// Makes the device's primary context current on this thread.
tessera_status_t *useDevice(tessera_backend_plugin_t *p, uint32_t ordinal) {
  std::call_once(p->enumerated, enumerate, p);
  if (ordinal >= p->devices.size())
    return makeStatus(p->host, p->devices.empty() ? TESSERA_STATUS_NO_DEVICE : TESSERA_STATUS_NOT_FOUND,
                      "cuda: no device %u%s%s", ordinal, p->unavailableReason.empty() ? "" : ": ",
                      p->unavailableReason.c_str());
  const auto &d = cudaDriver();
  Device &dev = p->devices[ordinal];
  {
    std::lock_guard<std::mutex> lock(p->contextMutex);
    if (!dev.context) {
      CUresult r = d.cuDevicePrimaryCtxRetain(&dev.context, dev.handle);
      if (r != CUDA_SUCCESS)
        return makeStatus(p->host, TESSERA_STATUS_DEVICE_ERROR, "cuda: cuDevicePrimaryCtxRetain: %s",
                          d.describe(r).c_str());
    }
  }
  CUresult r = d.cuCtxSetCurrent(dev.context);
  if (r != CUDA_SUCCESS)
    return makeStatus(p->host, TESSERA_STATUS_DEVICE_ERROR, "cuda: cuCtxSetCurrent: %s", d.describe(r).c_str());
  return nullptr;
}

tessera_status_t *cudaError(tessera_backend_plugin_t *p, const char *what, CUresult r) {
  tessera_status_code_t code = r == CUDA_ERROR_OUT_OF_MEMORY ? TESSERA_STATUS_OUT_OF_MEMORY
                                                              : TESSERA_STATUS_DEVICE_ERROR;
  return makeStatus(p->host, code, "cuda: %s: %s", what, cudaDriver().describe(r).c_str());
}

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out_plugin) {
  auto *p = new (std::nothrow) tessera_backend_plugin_t();
  if (!p)
    return makeStatus(host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of memory");
  p->host = host;
  *out_plugin = p;
  return nullptr;
}

tessera_status_t *shutdown(tessera_backend_plugin_t *p) {
  const auto &d = cudaDriver();
  for (Device &dev : p->devices)
    if (dev.context)
      d.cuDevicePrimaryCtxRelease(dev.handle);
  delete p;
  return nullptr;
}

tessera_status_t *deviceCount(tessera_backend_plugin_t *p, uint32_t *out_count) {
  try {
    std::call_once(p->enumerated, enumerate, p);
  } catch (...) {
    return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: device enumeration failed");
  }
  *out_count = static_cast<uint32_t>(p->devices.size());
  if (p->devices.empty())
    return makeStatus(p->host, p->unavailableCode, "%s", p->unavailableReason.c_str());
  return nullptr;
}

tessera_status_t *deviceGetInfo(tessera_backend_plugin_t *p, uint32_t ordinal,
                                tessera_backend_device_info_t *out_info) {
  std::call_once(p->enumerated, enumerate, p);
  if (ordinal >= p->devices.size())
    return makeStatus(p->host, TESSERA_STATUS_NOT_FOUND, "cuda: no device %u", ordinal);
  const Device &dev = p->devices[ordinal];
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  info.name = dev.name.c_str();
  info.architecture = dev.architecture.c_str();
  info.features = dev.features.c_str();
  info.memory_bytes = dev.memoryBytes;
  info.compute_units = dev.smCount;
  info.kind = TESSERA_DEVICE_KIND_CUDA;
  tessera::sdk::copyOut(out_info, info);
  return nullptr;
}

tessera_status_t *bufferAllocate(tessera_backend_plugin_t *p, uint32_t ordinal, uint64_t size,
                                 tessera_backend_buffer_t **out_buffer) {
  if (tessera_status_t *s = useDevice(p, ordinal))
    return s;
  CUdeviceptr ptr = 0;
  if (CUresult r = cudaDriver().cuMemAlloc(&ptr, size); r != CUDA_SUCCESS)
    return cudaError(p, "cuMemAlloc", r);
  auto *buffer = new (std::nothrow) tessera_backend_buffer_t{ptr, size, ordinal};
  if (!buffer) {
    cudaDriver().cuMemFree(ptr);
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of host memory");
  }
  *out_buffer = buffer;
  return nullptr;
}

tessera_status_t *bufferFree(tessera_backend_plugin_t *p, tessera_backend_buffer_t *buffer) {
  if (!buffer)
    return nullptr;
  tessera_status_t *s = useDevice(p, buffer->ordinal);
  if (!s)
    if (CUresult r = cudaDriver().cuMemFree(buffer->pointer); r != CUDA_SUCCESS)
      s = cudaError(p, "cuMemFree", r);
  delete buffer;
  return s;
}

tessera_status_t *bufferDevicePointer(tessera_backend_plugin_t *, const tessera_backend_buffer_t *buffer,
                                      void **out_pointer) {
  *out_pointer = reinterpret_cast<void *>(static_cast<uintptr_t>(buffer->pointer));
  return nullptr;
}

tessera_status_t *bufferCopyFromHost(tessera_backend_plugin_t *p, tessera_backend_buffer_t *buffer,
                                     uint64_t offset, const void *src, uint64_t size) {
  if (offset > buffer->size || size > buffer->size - offset)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: copy outside the buffer");
  if (tessera_status_t *s = useDevice(p, buffer->ordinal))
    return s;
  if (CUresult r = cudaDriver().cuMemcpyHtoD(buffer->pointer + offset, src, size); r != CUDA_SUCCESS)
    return cudaError(p, "cuMemcpyHtoD", r);
  return nullptr;
}

tessera_status_t *bufferCopyToHost(tessera_backend_plugin_t *p, const tessera_backend_buffer_t *buffer,
                                   uint64_t offset, void *dst, uint64_t size) {
  if (offset > buffer->size || size > buffer->size - offset)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: copy outside the buffer");
  if (tessera_status_t *s = useDevice(p, buffer->ordinal))
    return s;
  if (CUresult r = cudaDriver().cuMemcpyDtoH(dst, buffer->pointer + offset, size); r != CUDA_SUCCESS)
    return cudaError(p, "cuMemcpyDtoH", r);
  return nullptr;
}

tessera_backend_api_t makeApi() {
  tessera_backend_api_t api{};
  api.struct_size = sizeof(api);
  api.abi_major = TESSERA_ABI_VERSION_MAJOR;
  api.abi_minor = TESSERA_ABI_VERSION_MINOR;
  api.name = "cuda";
  api.vendor = "NVIDIA (Tessera)";
  api.version = TESSERA_PLUGIN_VERSION;
  api.targets = "sm_80,sm_86,sm_89,sm_90,sm_90a";
  api.initialize = initialize;
  api.shutdown = shutdown;
  api.device_count = deviceCount;
  api.device_get_info = deviceGetInfo;
  // compile/executables/launch arrive with the NVRTC code generator.
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
