#include "CudaDriver.h"
#include "SymbolLoader.h"

#include <dlfcn.h>
#include <mutex>
#include <type_traits>

namespace tessera::cuda {

namespace {

CudaDriver openDriver() {
  CudaDriver d{};
  dlerror();
  // The driver is a system library (installed with the kernel module), so the
  // versioned soname is the stable name to ask for.
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *err = dlerror();
    d.unavailableReason = std::string("no CUDA driver: ") + (err ? err : "dlopen(libcuda.so.1) failed");
    return d;
  }
  SymbolLoader load(lib);
  load(d.cuInit, "cuInit");
  load(d.cuDriverGetVersion, "cuDriverGetVersion");
  load(d.cuGetErrorName, "cuGetErrorName");
  load(d.cuGetErrorString, "cuGetErrorString");
  load(d.cuDeviceGetCount, "cuDeviceGetCount");
  load(d.cuDeviceGet, "cuDeviceGet");
  load(d.cuDeviceGetName, "cuDeviceGetName");
  load(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  load(d.cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  load(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  load(d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  load(d.cuCtxSetCurrent, "cuCtxSetCurrent");
  load(d.cuMemAlloc, "cuMemAlloc_v2");
  load(d.cuMemFree, "cuMemFree_v2");
  load(d.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  load(d.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  load(d.cuModuleLoadData, "cuModuleLoadData");
  load(d.cuModuleUnload, "cuModuleUnload");
  load(d.cuModuleGetFunction, "cuModuleGetFunction");
  load(d.cuFuncGetAttribute, "cuFuncGetAttribute");
  load(d.cuFuncSetAttribute, "cuFuncSetAttribute");
  load(d.cuLaunchKernel, "cuLaunchKernel");
  load(d.cuCtxSynchronize, "cuCtxSynchronize");
  load(d.cuStreamCreate, "cuStreamCreate");
  load(d.cuStreamDestroy, "cuStreamDestroy_v2");
  load(d.cuStreamSynchronize, "cuStreamSynchronize");
  load(d.cuEventCreate, "cuEventCreate");
  load(d.cuEventDestroy, "cuEventDestroy_v2");
  load(d.cuEventRecord, "cuEventRecord");
  load(d.cuEventSynchronize, "cuEventSynchronize");
  // _v2 since CUDA 12.8; older drivers only have the original entry.
  d.cuEventElapsedTime = reinterpret_cast<decltype(d.cuEventElapsedTime)>(dlsym(lib, "cuEventElapsedTime_v2"));
  if (!d.cuEventElapsedTime)
    load(d.cuEventElapsedTime, "cuEventElapsedTime");
  load(d.cuMemsetD8, "cuMemsetD8_v2");
  load(d.cuMemcpyDtoD, "cuMemcpyDtoD_v2");
  load(d.cuPointerGetAttribute, "cuPointerGetAttribute");
  auto optional = [&](auto &fn, const char *name) { fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(lib, name)); };
  optional(d.cuMemPoolCreate, "cuMemPoolCreate");
  optional(d.cuMemPoolDestroy, "cuMemPoolDestroy");
  optional(d.cuMemPoolSetAttribute, "cuMemPoolSetAttribute");
  optional(d.cuMemPoolTrimTo, "cuMemPoolTrimTo");
  optional(d.cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync");
  optional(d.cuMemFreeAsync, "cuMemFreeAsync");
  optional(d.cuTensorMapEncodeTiled, "cuTensorMapEncodeTiled");
  if (const std::string &missing = load.missing(); !missing.empty()) {
    d.unavailableReason = "CUDA driver too old: libcuda.so.1 lacks " + missing;
    return d;
  }
  CUresult r = d.cuInit(0);
  if (r != CUDA_SUCCESS) {
    d.unavailableReason = "no CUDA driver: cuInit failed: " + d.describe(r);
    return d;
  }
  d.cuDriverGetVersion(&d.driverVersion);
  // The library stays open for the life of the process: CUDA contexts and
  // allocations live inside it.
  return d;
}

} // namespace

std::string CudaDriver::describe(CUresult result) const {
  const char *name = nullptr;
  const char *text = nullptr;
  if (cuGetErrorName)
    cuGetErrorName(result, &name);
  if (cuGetErrorString)
    cuGetErrorString(result, &text);
  std::string out = name ? name : "CUDA error " + std::to_string(static_cast<int>(result));
  if (text)
    out += std::string(" (") + text + ")";
  return out;
}

const CudaDriver &cudaDriver() {
  static std::once_flag once;
  static CudaDriver driver;
  std::call_once(once, [] { driver = openDriver(); });
  return driver;
}

} // namespace tessera::cuda
