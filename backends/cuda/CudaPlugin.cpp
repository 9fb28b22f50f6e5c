// The CUDA backend plugin: NVIDIA GPUs through the driver API. Loads without
// a driver or NVRTC; both are opened at first use (device enumeration,
// compile) and their absence is reported as a status.
//
// compile: Schedule IR -> CUDA C++ (CudaCodegen) -> NVRTC -> cubin for the
// device's architecture (sm_90a on Hopper) or the description's. The cubin
// is loaded lazily per device at the first launch (cuModuleLoadData).
// Executables serialize as magic/version + architecture + Schedule IR text +
// cubin + checksum; load validates all of it and the architecture.
#include "CostModel.h"
#include "CublasLt.h"
#include "CudaCodegen.h"
#include "CudaDriver.h"
#include "Nvrtc.h"

#include "tessera/sdk/backend_sdk.h"
#include "tessera/sdk/schedule_ir.h"

#include <algorithm>
#include <array>
#include <list>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <vector>

namespace {

// The cuBLASLt library path on one device (CublasLt.h): handle and plans,
// the workspace, and the f32 product buffer of non-direct epilogues. The
// mutex keeps a product's writer and its _epi reader adjacent on the stream.
struct LibraryState {
  std::mutex mutex;
  std::unique_ptr<tessera::cuda::LtDevice> lt;
  CUdeviceptr workspace = 0;
  uint64_t workspaceBytes = 0;
  CUdeviceptr scratch = 0;
  uint64_t scratchBytes = 0;
  CUevent timing[2] = {nullptr, nullptr}; // cuBLASLt's algorithm choice (LtTimer)
};

// CUDA events around work on one stream, for cuBLASLt's algorithm choice.
struct EventTimer : tessera::cuda::LtTimer {
  LibraryState &state;
  CUstream stream;
  EventTimer(LibraryState &s, CUstream st) : state(s), stream(st) {}
  bool start() override {
    const auto &d = tessera::cuda::cudaDriver();
    for (CUevent &e : state.timing)
      if (!e && d.cuEventCreate(&e, CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
        e = nullptr;
        return false;
      }
    return d.cuEventRecord(state.timing[0], stream) == CUDA_SUCCESS;
  }
  bool stop(double *seconds) override {
    const auto &d = tessera::cuda::cudaDriver();
    float ms = 0;
    if (d.cuEventRecord(state.timing[1], stream) != CUDA_SUCCESS ||
        d.cuEventSynchronize(state.timing[1]) != CUDA_SUCCESS ||
        d.cuEventElapsedTime(&ms, state.timing[0], state.timing[1]) != CUDA_SUCCESS)
      return false;
    *seconds = ms * 1e-3;
    return true;
  }
};

struct Device {
  CUdevice handle = 0;
  CUcontext context = nullptr; // primary context, retained lazily
  std::string name;
  std::string architecture; // "sm_90"
  std::string features;
  uint64_t memoryBytes = 0;
  uint32_t smCount = 0;
  CUstream stream = nullptr;   // created with the context; blocking, so the
                               // synchronous copies order after launches
  // Tessera's own stream-ordered memory pool (NULL: cuMemAlloc/cuMemFree).
  // Freed memory stays in the pool for later allocations, so a run's outputs
  // cost neither a cuMemAlloc nor a cuMemFree, which waits for the device.
  CUmemoryPool pool = nullptr;
  std::shared_ptr<LibraryState> library = std::make_shared<LibraryState>();
};

} // namespace

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host;
  std::once_flag enumerated;
  tessera_status_code_t unavailableCode = TESSERA_STATUS_OK;
  std::string unavailableReason;
  std::vector<Device> devices;
  std::mutex contextMutex;
  std::list<std::string> costReasons; // estimate reasons, alive until shutdown
  std::mutex logMutex;
  std::set<std::string> logged;       // messages logged once
};

struct tessera_backend_buffer_t {
  CUdeviceptr pointer;
  uint64_t size;
  uint32_t ordinal;
  bool owned = true;   // false for buffer_wrap: the memory belongs to the caller
  bool pooled = false; // from Device::pool: freed in stream order
};

// A compiled program: the cubin plus what launching needs. The CUmodule is
// loaded on first use per device.
struct tessera_backend_executable_t {
  tessera::schedule::Program program;
  std::string sirText;
  std::string architecture; // what the cubin was built for, e.g. "sm_90a"
  std::vector<char> cubin;
  std::vector<tessera::cuda::KernelPlan> plans;
  struct Loaded {
    CUmodule module = nullptr;
    // Per kernel, per launch mode (LaunchMode order).
    std::vector<std::array<CUfunction, tessera::cuda::kLaunchModeCount>> functions;
  };
  std::mutex mutex;
  std::map<uint32_t, Loaded> loaded;
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
// A device-local memory pool that keeps what is freed (release threshold
// unlimited; trimmed when an allocation runs out of memory), or NULL where
// the driver or device has no memory pools or TESSERA_CUDA_POOL=0.
CUmemoryPool createPool(CUdevice device) {
  const auto &d = cudaDriver();
  const char *env = std::getenv("TESSERA_CUDA_POOL");
  if ((env && std::strcmp(env, "0") == 0) || !d.cuMemPoolCreate || !d.cuMemPoolSetAttribute || !d.cuMemPoolTrimTo ||
      !d.cuMemAllocFromPoolAsync || !d.cuMemFreeAsync || !d.cuMemPoolDestroy)
    return nullptr;
  int supported = 0;
  if (d.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, device) != CUDA_SUCCESS ||
      !supported)
    return nullptr;
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.handleTypes = CU_MEM_HANDLE_TYPE_NONE;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = static_cast<int>(device);
  CUmemoryPool pool = nullptr;
  if (d.cuMemPoolCreate(&pool, &props) != CUDA_SUCCESS)
    return nullptr;
  cuuint64_t keep = ~cuuint64_t(0);
  if (d.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep) != CUDA_SUCCESS) {
    d.cuMemPoolDestroy(pool);
    return nullptr;
  }
  return pool;
}

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
      if ((r = d.cuCtxSetCurrent(dev.context)) == CUDA_SUCCESS)
        r = d.cuStreamCreate(&dev.stream, CU_STREAM_DEFAULT);
      if (r != CUDA_SUCCESS) {
        d.cuDevicePrimaryCtxRelease(dev.handle);
        dev.context = nullptr;
        dev.stream = nullptr;
        return makeStatus(p->host, TESSERA_STATUS_DEVICE_ERROR, "cuda: creating the device's stream: %s",
                          d.describe(r).c_str());
      }
      dev.pool = createPool(dev.handle);
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
    if (dev.context) {
      if (d.cuCtxSetCurrent(dev.context) == CUDA_SUCCESS) {
        if (dev.stream)
          d.cuStreamSynchronize(dev.stream);
        LibraryState &lib = *dev.library;
        lib.lt.reset();
        for (CUevent e : lib.timing)
          if (e)
            d.cuEventDestroy(e);
        if (lib.workspace)
          d.cuMemFree(lib.workspace);
        if (lib.scratch)
          d.cuMemFree(lib.scratch);
        if (dev.pool)
          d.cuMemPoolDestroy(dev.pool);
        if (dev.stream)
          d.cuStreamDestroy(dev.stream);
      }
      d.cuDevicePrimaryCtxRelease(dev.handle);
    }
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
  const auto &d = cudaDriver();
  const Device &dev = p->devices[ordinal];
  CUdeviceptr ptr = 0;
  if (dev.pool && size > 0) {
    CUresult r = d.cuMemAllocFromPoolAsync(&ptr, size, dev.pool, dev.stream);
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
      // Memory the pool keeps may be what is missing: return it and retry.
      d.cuStreamSynchronize(dev.stream);
      d.cuMemPoolTrimTo(dev.pool, 0);
      r = d.cuMemAllocFromPoolAsync(&ptr, size, dev.pool, dev.stream);
    }
    if (r != CUDA_SUCCESS)
      return cudaError(p, "cuMemAllocFromPoolAsync", r);
  } else if (CUresult r = d.cuMemAlloc(&ptr, size); r != CUDA_SUCCESS) {
    return cudaError(p, "cuMemAlloc", r);
  }
  const bool pooled = dev.pool && size > 0;
  auto *buffer = new (std::nothrow) tessera_backend_buffer_t{ptr, size, ordinal, true, pooled};
  if (!buffer) {
    if (pooled)
      d.cuMemFreeAsync(ptr, dev.stream);
    else
      d.cuMemFree(ptr);
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of host memory");
  }
  *out_buffer = buffer;
  return nullptr;
}

tessera_status_t *bufferFree(tessera_backend_plugin_t *p, tessera_backend_buffer_t *buffer) {
  if (!buffer)
    return nullptr;
  tessera_status_t *s = nullptr;
  if (buffer->owned) {
    s = useDevice(p, buffer->ordinal);
    if (!s && buffer->pooled) {
      // Ordered after every launch enqueued before it (tessera_backend.h).
      if (CUresult r = cudaDriver().cuMemFreeAsync(buffer->pointer, p->devices[buffer->ordinal].stream);
          r != CUDA_SUCCESS)
        s = cudaError(p, "cuMemFreeAsync", r);
    } else if (!s) {
      if (CUresult r = cudaDriver().cuMemFree(buffer->pointer); r != CUDA_SUCCESS)
        s = cudaError(p, "cuMemFree", r);
    }
  }
  delete buffer;
  return s;
}

// Zero-copy import (DLPack kDLCUDA tensors from PyTorch, CuPy, JAX): the
// pointer must be device memory of this ordinal's device (or managed
// memory), which the driver's pointer attributes tell.
tessera_status_t *bufferWrap(tessera_backend_plugin_t *p, uint32_t ordinal, void *pointer, uint64_t size,
                             tessera_backend_buffer_t **out_buffer) {
  if (tessera_status_t *s = useDevice(p, ordinal))
    return s;
  auto ptr = static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
  int deviceOrdinal = -1;
  if (CUresult r = cudaDriver().cuPointerGetAttribute(&deviceOrdinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr);
      r != CUDA_SUCCESS)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                      "cuda: cannot wrap %llu bytes at %p: not CUDA memory (%s)",
                      static_cast<unsigned long long>(size), pointer, cudaDriver().describe(r).c_str());
  if (deviceOrdinal != static_cast<int>(ordinal))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                      "cuda: cannot wrap memory of device %d for device %u", deviceOrdinal, ordinal);
  auto *buffer = new (std::nothrow) tessera_backend_buffer_t{ptr, size, ordinal, false};
  if (!buffer)
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of host memory");
  *out_buffer = buffer;
  return nullptr;
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

// ---- compile ----------------------------------------------------------------------

namespace sir = tessera::schedule;
using tessera::cuda::GeneratedProgram;
using tessera::cuda::KernelPlan;
using tessera::cuda::LaunchConfig;
using tessera::cuda::LaunchMode;

constexpr char kExecMagic[8] = {'T', 'S', 'R', 'C', 'U', 'D', 'A', '\x1a'};
constexpr uint32_t kExecFormatVersion = 1;
// Hopper's architecture-specific target is what a live sm_90 device gets
// (wgmma/setmaxnreg need it); a description names its target exactly.
constexpr const char *kDefaultArchitecture = "sm_90a";

bool wantsStage(const tessera_backend_compile_args_t *args, const char *stage) {
  if (!args->dump || !args->dump_stages)
    return false;
  std::string list = std::string(",") + args->dump_stages + ",";
  return list.find(std::string(",") + stage + ",") != std::string::npos;
}

// Checks an architecture before NVRTC sees it, so an unknown one gets a
// clear UNSUPPORTED naming what is supported.
tessera_status_t *checkArchitecture(tessera_backend_plugin_t *p, const std::string &arch, int *sm, bool *specific) {
  if (!tessera::cuda::parseArchitecture(arch, sm, specific))
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED,
                      "cuda: unknown architecture '%s' (expected sm_<NN>[a], e.g. sm_80, sm_90a)", arch.c_str());
  if (*sm < 80)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED,
                      "cuda: architecture '%s' is not supported: the generated code needs sm_80 or newer "
                      "(bf16 conversions, tensor-core mma shapes)",
                      arch.c_str());
  std::vector<int> known = tessera::cuda::nvrtcSupportedArchs();
  if (!known.empty() && std::find(known.begin(), known.end(), *sm) == known.end()) {
    std::string list;
    for (int k : known)
      list += (list.empty() ? "sm_" : ", sm_") + std::to_string(k);
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: %s does not know architecture '%s' (it knows %s)",
                      tessera::cuda::nvrtcDescription().c_str(), arch.c_str(), list.c_str());
  }
  return nullptr;
}

tessera_status_t *generate(tessera_backend_plugin_t *p, tessera_backend_executable_t *exe, int sm, bool specific,
                           GeneratedProgram *gen) {
  tessera::cuda::CodegenOptions options;
  options.smVersion = sm;
  options.archSpecific = specific;
  std::string error;
  if (!tessera::cuda::generateProgram(exe->program, options, gen, &error))
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: %s", error.c_str());
  exe->plans = gen->kernels;
  return nullptr;
}

tessera_status_t *compile(tessera_backend_plugin_t *p, const tessera_backend_compile_args_t *args,
                          tessera_backend_executable_t **out) try {
  if (!args || !out || !args->program)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: compile: missing arguments");
  if (!args->program_format || std::strcmp(args->program_format, sir::kProgramFormat) != 0)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: unknown program format '%s' (expected %s)",
                      args->program_format ? args->program_format : "(null)", sir::kProgramFormat);
  auto exe = std::make_unique<tessera_backend_executable_t>();
  exe->sirText.assign(static_cast<const char *>(args->program), args->program_size);
  sir::ParseError perr;
  if (!sir::parseProgram(exe->sirText, &exe->program, &perr))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: Schedule IR does not parse: %s",
                      perr.str().c_str());
  // Target: the live device's architecture, else the description's.
  std::string arch;
  if (args->device_ordinal >= 0) {
    std::call_once(p->enumerated, enumerate, p);
    if (static_cast<size_t>(args->device_ordinal) >= p->devices.size())
      return makeStatus(p->host, p->devices.empty() ? TESSERA_STATUS_NO_DEVICE : TESSERA_STATUS_NOT_FOUND,
                        "cuda: no device %d%s%s", args->device_ordinal, p->unavailableReason.empty() ? "" : ": ",
                        p->unavailableReason.c_str());
    arch = p->devices[args->device_ordinal].architecture;
    if (arch == "sm_90")
      arch = "sm_90a";
  } else if (args->target && args->target->architecture && *args->target->architecture) {
    arch = args->target->architecture;
  } else {
    arch = kDefaultArchitecture;
  }
  int sm = 0;
  bool specific = false;
  std::string why;
  if (!tessera::cuda::nvrtcAvailable(&why))
    return makeStatus(p->host, TESSERA_STATUS_MISSING_DEPENDENCY, "cuda: cannot compile: %s", why.c_str());
  if (tessera_status_t *s = checkArchitecture(p, arch, &sm, &specific))
    return s;
  GeneratedProgram gen;
  if (tessera_status_t *s = generate(p, exe.get(), sm, specific, &gen))
    return s;
  if (wantsStage(args, "tile")) {
    std::string text;
    for (const KernelPlan &k : gen.kernels) {
      text += "kernel \"" + k.name + "\": modes thread" + std::string(k.block ? ", block" : "") +
              (k.flat ? ", flat" : "") + (k.gemm.usable ? ", gemm (mma.sync)" : "") +
              (k.gemm.async ? ", gemma (cp.async + ldmatrix + mma.sync)" : "") +
              (k.gemm.wgmma ? ", wgmma (cp.async + wgmma)" : "") +
              (k.library.usable ? std::string(", library cublaslt (") +
                                      (k.library.direct ? "direct" : "+ epi: " + k.library.notDirect) + ")"
                                : "");
      if (!k.gemm.usable && !k.gemm.why.empty() && k.gemm.why != "not a matmul kernel")
        text += "; no tensor-core path: " + k.gemm.why;
      text += "\n";
    }
    text += "\n" + gen.source;
    args->dump(args->dump_user_data, "tile", text.c_str(), text.size());
  }
  bool wantPtx = wantsStage(args, "target");
  tessera::cuda::NvrtcResult r = tessera::cuda::nvrtcCompile(gen.source, "tessera_kernels.cu", arch, wantPtx);
  switch (r.kind) {
  case tessera::cuda::NvrtcResult::Kind::Ok: break;
  case tessera::cuda::NvrtcResult::Kind::Missing:
    return makeStatus(p->host, TESSERA_STATUS_MISSING_DEPENDENCY, "cuda: %s", r.message.c_str());
  case tessera::cuda::NvrtcResult::Kind::BadArchitecture:
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: NVRTC rejected architecture '%s': %s", arch.c_str(),
                      r.message.c_str());
  default:
    // Generated code that does not compile is a bug in the generator.
    return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: NVRTC failed on generated code for %s: %.700s",
                      arch.c_str(), r.message.c_str());
  }
  if (wantPtx) {
    std::string text = "// " + tessera::cuda::nvrtcDescription() + ", " + arch + ", cubin " +
                       std::to_string(r.cubin.size()) + " bytes\n" + r.ptx;
    args->dump(args->dump_user_data, "target", text.c_str(), text.size());
  }
  exe->architecture = arch;
  exe->cubin = std::move(r.cubin);
  *out = exe.release();
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of host memory while compiling");
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: compile failed: %s", e.what());
}

tessera_status_t *executableDestroy(tessera_backend_plugin_t *p, tessera_backend_executable_t *exe) {
  if (!exe)
    return nullptr;
  const auto &d = cudaDriver();
  for (auto &[ordinal, l] : exe->loaded)
    if (l.module && ordinal < p->devices.size() && !useDevice(p, ordinal))
      d.cuModuleUnload(l.module);
  delete exe;
  return nullptr;
}

// ---- serialization ----------------------------------------------------------------

uint64_t fnv1a(const char *data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

template <typename T> void put(std::string &out, T v) { out.append(reinterpret_cast<const char *>(&v), sizeof(v)); }

tessera_status_t *executableSerialize(tessera_backend_plugin_t *p, const tessera_backend_executable_t *exe,
                                      void **out, size_t *outSize) try {
  if (!exe || !out || !outSize)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: serialize: missing arguments");
  std::string bytes(kExecMagic, sizeof(kExecMagic));
  put<uint32_t>(bytes, kExecFormatVersion);
  put<uint32_t>(bytes, tessera::cuda::kCodegenVersion);
  put<uint32_t>(bytes, static_cast<uint32_t>(exe->architecture.size()));
  bytes += exe->architecture;
  put<uint64_t>(bytes, exe->sirText.size());
  bytes += exe->sirText;
  put<uint64_t>(bytes, exe->cubin.size());
  bytes.append(exe->cubin.data(), exe->cubin.size());
  put<uint64_t>(bytes, fnv1a(bytes.data(), bytes.size()));
  void *mem = p->host->allocate(p->host->allocator_data, bytes.size(), 16);
  if (!mem)
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of memory");
  std::memcpy(mem, bytes.data(), bytes.size());
  *out = mem;
  *outSize = bytes.size();
  return nullptr;
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: serialize failed: %s", e.what());
}

tessera_status_t *executableLoad(tessera_backend_plugin_t *p, const tessera_backend_load_args_t *args,
                                 tessera_backend_executable_t **out) try {
  if (!args || !out || (!args->data && args->size))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: load: missing arguments");
  const char *data = static_cast<const char *>(args->data);
  size_t n = args->size, pos = 0;
  auto corrupt = [&](const char *what) {
    return makeStatus(p->host, TESSERA_STATUS_CORRUPT_DATA, "cuda: executable is damaged: %s", what);
  };
  auto take = [&](void *dst, size_t len) {
    if (len > n - pos)
      return false;
    std::memcpy(dst, data + pos, len);
    pos += len;
    return true;
  };
  char magic[sizeof(kExecMagic)];
  if (!take(magic, sizeof(magic)) || std::memcmp(magic, kExecMagic, sizeof(magic)) != 0)
    return corrupt("not a Tessera CUDA executable (bad magic)");
  uint32_t format = 0, codegen = 0, archLen = 0;
  if (!take(&format, 4) || !take(&codegen, 4))
    return corrupt("truncated header");
  if (format != kExecFormatVersion || codegen != tessera::cuda::kCodegenVersion)
    return makeStatus(p->host, TESSERA_STATUS_INCOMPATIBLE_VERSION,
                      "cuda: executable format %u / generator %u; this plugin reads %u / %u", format, codegen,
                      kExecFormatVersion, tessera::cuda::kCodegenVersion);
  if (n < sizeof(uint64_t) || fnv1a(data, n - sizeof(uint64_t)) != [&] {
        uint64_t h;
        std::memcpy(&h, data + n - sizeof(uint64_t), sizeof(h));
        return h;
      }())
    return corrupt("checksum mismatch");
  n -= sizeof(uint64_t);
  auto exe = std::make_unique<tessera_backend_executable_t>();
  if (!take(&archLen, 4) || archLen > 64 || archLen > n - pos)
    return corrupt("bad architecture field");
  exe->architecture.assign(data + pos, archLen);
  pos += archLen;
  uint64_t sirLen = 0, cubinLen = 0;
  if (!take(&sirLen, 8) || sirLen > n - pos)
    return corrupt("bad Schedule IR field");
  exe->sirText.assign(data + pos, sirLen);
  pos += sirLen;
  if (!take(&cubinLen, 8) || cubinLen != n - pos || cubinLen == 0)
    return corrupt("bad cubin field");
  exe->cubin.assign(data + pos, data + pos + cubinLen);
  sir::ParseError perr;
  if (!sir::parseProgram(exe->sirText, &exe->program, &perr))
    return corrupt("its Schedule IR does not parse");
  int sm = 0;
  bool specific = false;
  if (!tessera::cuda::parseArchitecture(exe->architecture, &sm, &specific))
    return corrupt("unknown architecture");
  GeneratedProgram gen;
  if (tessera_status_t *s = generate(p, exe.get(), sm, specific, &gen))
    return s;
  // The device must run this cubin.
  std::call_once(p->enumerated, enumerate, p);
  if (args->device_ordinal < 0 || static_cast<size_t>(args->device_ordinal) >= p->devices.size())
    return makeStatus(p->host, p->devices.empty() ? TESSERA_STATUS_NO_DEVICE : TESSERA_STATUS_NOT_FOUND,
                      "cuda: no device %d%s%s", args->device_ordinal, p->unavailableReason.empty() ? "" : ": ",
                      p->unavailableReason.c_str());
  const std::string &devArch = p->devices[args->device_ordinal].architecture;
  if (!tessera::cuda::cubinRunsOn(exe->architecture, devArch))
    return makeStatus(p->host, TESSERA_STATUS_INCOMPATIBLE_VERSION,
                      "cuda: executable was compiled for %s; device %d is %s", exe->architecture.c_str(),
                      args->device_ordinal, devArch.c_str());
  *out = exe.release();
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "cuda: out of host memory while loading");
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: load failed: %s", e.what());
}

// ---- launch -----------------------------------------------------------------------

// The module of `exe` on device `ordinal`, loaded on first use.
tessera_status_t *moduleFor(tessera_backend_plugin_t *p, tessera_backend_executable_t *exe, uint32_t ordinal,
                            tessera_backend_executable_t::Loaded **out) {
  std::lock_guard<std::mutex> lock(exe->mutex);
  auto it = exe->loaded.find(ordinal);
  if (it != exe->loaded.end()) {
    *out = &it->second;
    return nullptr;
  }
  const std::string &devArch = p->devices[ordinal].architecture;
  if (!tessera::cuda::cubinRunsOn(exe->architecture, devArch))
    return makeStatus(p->host, TESSERA_STATUS_INCOMPATIBLE_VERSION,
                      "cuda: executable was compiled for %s; device %u is %s (compile for the device instead)",
                      exe->architecture.c_str(), ordinal, devArch.c_str());
  tessera_backend_executable_t::Loaded l;
  if (CUresult r = cudaDriver().cuModuleLoadData(&l.module, exe->cubin.data()); r != CUDA_SUCCESS)
    return cudaError(p, "cuModuleLoadData", r);
  l.functions.assign(exe->plans.size(), {});
  *out = &exe->loaded.emplace(ordinal, std::move(l)).first->second;
  return nullptr;
}

tessera_status_t *functionFor(tessera_backend_plugin_t *p, tessera_backend_executable_t *exe,
                              tessera_backend_executable_t::Loaded *l, uint32_t kernel, LaunchMode mode,
                              CUfunction *out) {
  std::lock_guard<std::mutex> lock(exe->mutex);
  CUfunction &f = l->functions[kernel][static_cast<size_t>(mode)];
  if (!f) {
    std::string name = exe->plans[kernel].function(mode);
    if (CUresult r = cudaDriver().cuModuleGetFunction(&f, l->module, name.c_str()); r != CUDA_SUCCESS) {
      f = nullptr;
      return cudaError(p, ("cuModuleGetFunction(" + name + ")").c_str(), r);
    }
  }
  *out = f;
  return nullptr;
}

// Validates a launch and resolves everything cuLaunchKernel needs.
// TESSERA_CUDA_LOG_PATHS: log which path (launch mode, cuBLASLt) each kernel
// takes, once per kernel and configuration.
bool pathLogging() {
  static const bool on = std::getenv("TESSERA_CUDA_LOG_PATHS") != nullptr;
  return on;
}

// Logs `message` once per plugin instance: through the host's sink when it
// has one, else (warnings only) on stderr.
void logOnce(tessera_backend_plugin_t *p, tessera_log_level_t level, const std::string &message) {
  {
    std::lock_guard<std::mutex> lock(p->logMutex);
    if (p->logged.size() >= 256 || !p->logged.insert(message).second)
      return;
  }
  const tessera_backend_host_t *h = p->host;
  const bool sink = h && h->struct_size >= TESSERA_BACKEND_HOST_STRUCT_SIZE && h->log;
  if (sink)
    h->log(h->log_data, level, message.c_str());
  if ((!sink && level >= TESSERA_LOG_WARNING) || (level == TESSERA_LOG_DEBUG && pathLogging()))
    std::fprintf(stderr, "%s\n", message.c_str());
}

// The cuBLASLt half of a launch (CublasLt.h): the problem, then _epi over
// the f32 product when cuBLASLt cannot apply the epilogue itself.
struct LibraryLaunch {
  bool active = false;
  tessera::cuda::LtProblem problem;
  std::vector<uint64_t> operands; // device address per operand
  std::shared_ptr<LibraryState> state;
  CUfunction epilogue = nullptr;  // when problem.dOperand < 0
  LaunchConfig epilogueConfig;
  mutable const void *plan = nullptr; // cuBLASLt's algorithm, found at the first run
};

struct PreparedLaunch {
  CUfunction function = nullptr;
  LaunchConfig config;
  std::vector<uint64_t> slots;
  CUstream stream = nullptr;
  LibraryLaunch library;          // tried first when active; the generated kernel is its fallback
  std::vector<CUtensorMap> tensorMaps; // config.tensorMaps, encoded (kernel parameters after the slots)
};

// Encodes a launch's tensor maps (LaunchConfig::tensorMaps) for the bulk
// tensor copy engine (CUDA Driver API, "Tensor Map Object Management").
tessera_status_t *encodeTensorMaps(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args,
                                   const char *name, PreparedLaunch *out) {
  const auto &d = cudaDriver();
  if (out->config.tensorMaps.empty())
    return nullptr;
  if (!d.cuTensorMapEncodeTiled)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED,
                      "cuda: kernel '%s' needs tensor maps, which this driver lacks (cuTensorMapEncodeTiled, CUDA 12)",
                      name);
  out->tensorMaps.resize(out->config.tensorMaps.size());
  for (size_t i = 0; i < out->config.tensorMaps.size(); ++i) {
    const tessera::cuda::TensorMapSpec &t = out->config.tensorMaps[i];
    void *base = reinterpret_cast<void *>(args->buffers[t.operand]->pointer + uint64_t(t.offset) * 2);
    const cuuint64_t dims[2] = {t.dims[0], t.dims[1]};
    const cuuint64_t strides[1] = {cuuint64_t(t.rowStride) * 2};
    const cuuint32_t box[2] = {t.box[0], t.box[1]}, elementStrides[2] = {1, 1};
    CUresult r = d.cuTensorMapEncodeTiled(
        &out->tensorMaps[i], t.f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, base, dims,
        strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
      return makeStatus(p->host, TESSERA_STATUS_INTERNAL,
                        "cuda: kernel '%s': cuTensorMapEncodeTiled (operand %zu, %llu x %llu, row stride %lld): %s",
                        name, t.operand, static_cast<unsigned long long>(t.dims[0]),
                        static_cast<unsigned long long>(t.dims[1]), static_cast<long long>(t.rowStride),
                        d.describe(r).c_str());
  }
  return nullptr;
}

// Chooses cuBLASLt for a matmul kernel: knob library="cublaslt", or no knob
// and the cost model prefers it; cuBLASLt must load and express the
// problem. Otherwise nothing changes (the generated kernel runs), with a
// log line where the knob asked for the library.
tessera_status_t *prepareLibrary(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args,
                                 tessera_backend_executable_t::Loaded *l, PreparedLaunch *out) {
  namespace cu = tessera::cuda;
  tessera_backend_executable_t *exe = args->executable;
  const sir::Kernel &k = exe->program.kernels[args->kernel_index];
  const KernelPlan &plan = exe->plans[args->kernel_index];
  cu::LibraryChoice choice = cu::libraryChoice(k);
  // Test hook: TESSERA_CUDA_LIBRARY=cublaslt|generic decides for kernels
  // without the knob (conformance runs over the library path).
  if (const char *env = std::getenv("TESSERA_CUDA_LIBRARY"); env && choice == cu::LibraryChoice::Auto)
    choice = std::string(env) == "cublaslt" ? cu::LibraryChoice::Force
             : std::string(env) == "generic" ? cu::LibraryChoice::Never
                                             : choice;
  if (k.kind != sir::Kernel::Kind::Matmul || choice == cu::LibraryChoice::Never)
    return nullptr;
  tessera_log_level_t level = choice == cu::LibraryChoice::Force ? TESSERA_LOG_WARNING : TESSERA_LOG_INFO;
  if (!plan.library.usable) {
    if (choice == cu::LibraryChoice::Force)
      logOnce(p, level, "cuda: kernel '" + k.name + "': library 'cublaslt' does not apply (" + plan.library.why +
                            "); it runs the generated kernel");
    return nullptr;
  }
  std::string why;
  if (!cu::cublasLtAvailable(&why)) {
    logOnce(p, level, "cuda: cuBLASLt is unavailable (" + why + "); matmul kernels run the generated GEMM");
    return nullptr;
  }
  Device &dev = p->devices[args->device_ordinal];
  if (choice == cu::LibraryChoice::Auto) {
    int sm = 90;
    bool specific = false;
    cu::parseArchitecture(dev.architecture, &sm, &specific);
    if (!cu::libraryPreferred(exe->program, args->kernel_index, plan, cu::gpuModelFor(sm, int(dev.smCount)),
                              args->scalars))
      return nullptr;
  }
  LibraryLaunch &lib = out->library;
  std::string whyDirect;
  bool ok = plan.library.direct &&
            cu::libraryProblem(exe->program, args->kernel_index, plan.library, args->scalars, true, &lib.problem,
                               &whyDirect);
  if (!ok && !cu::libraryProblem(exe->program, args->kernel_index, plan.library, args->scalars, false, &lib.problem,
                                 &why)) {
    logOnce(p, level, "cuda: kernel '" + k.name + "': cuBLASLt cannot express it (" + why +
                          "); it runs the generated kernel");
    return nullptr;
  }
  if (lib.problem.dOperand < 0 || lib.problem.narrow) {
    cu::planLibraryEpilogue(exe->program, args->kernel_index, plan, args->scalars, dev.smCount, &lib.epilogueConfig);
    if (tessera_status_t *s = functionFor(p, exe, l, args->kernel_index, LaunchMode::LibEpilogue, &lib.epilogue))
      return s;
  }
  lib.operands.resize(k.operands.size());
  for (size_t o = 0; o < k.operands.size(); ++o)
    lib.operands[o] = args->buffers[o]->pointer;
  lib.state = dev.library;
  lib.active = true;
  if (pathLogging())
    logOnce(p, TESSERA_LOG_DEBUG,
          "cuda: kernel '" + k.name + "': cuBLASLt " +
              (lib.problem.narrow          ? "+ generated epilogue in place"
               : lib.problem.dOperand < 0 ? "+ generated epilogue"
                                          : "direct") +
              ", " + std::to_string(lib.problem.m) + "x" + std::to_string(lib.problem.n) + "x" +
              std::to_string(lib.problem.k) + ", batch " + std::to_string(lib.problem.batch) + " x " +
              std::to_string(lib.problem.calls.size()) + " call(s)" +
              (plan.library.direct && lib.problem.dOperand < 0 ? " (not direct: " + whyDirect + ")" : ""));
  return nullptr;
}

tessera_status_t *prepareLaunch(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args,
                                PreparedLaunch *out) {
  if (!args || args->struct_size < offsetof(tessera_backend_launch_args_t, num_scalars) + sizeof(size_t))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: launch: missing arguments");
  tessera_backend_executable_t *exe = args->executable;
  if (!exe || args->kernel_index >= exe->program.kernels.size())
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: bad kernel index %u", args->kernel_index);
  const sir::Kernel &k = exe->program.kernels[args->kernel_index];
  if (args->num_scalars != exe->program.symbols.size() || args->num_buffers != k.operands.size() ||
      (args->num_buffers && !args->buffers) || (args->num_scalars && !args->scalars))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                      "cuda: kernel '%s' takes %zu buffers and %zu scalars, got %zu and %zu", k.name.c_str(),
                      k.operands.size(), exe->program.symbols.size(), args->num_buffers, args->num_scalars);
  if (tessera_status_t *s = useDevice(p, args->device_ordinal))
    return s;
  for (size_t o = 0; o < k.operands.size(); ++o) {
    const tessera_backend_buffer_t *b = args->buffers[o];
    if (!b)
      return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: kernel '%s' operand %zu has no buffer",
                        k.name.c_str(), o);
    if (b->ordinal != args->device_ordinal)
      return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                        "cuda: kernel '%s' operand %zu lives on device %u, launch is on device %u", k.name.c_str(), o,
                        b->ordinal, args->device_ordinal);
    uint64_t elems = 1;
    for (const sir::IndexExpr &d : k.operands[o].shape)
      elems *= static_cast<uint64_t>(std::max<int64_t>(0, sir::evalIndex(d, args->scalars, nullptr, nullptr, nullptr)));
    uint64_t need = elems * sir::dtypeSize(k.operands[o].dtype);
    if (need > b->size)
      return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                        "cuda: kernel '%s' operand %zu needs %llu bytes; its buffer has %llu", k.name.c_str(), o,
                        static_cast<unsigned long long>(need), static_cast<unsigned long long>(b->size));
  }
  const KernelPlan &plan = exe->plans[args->kernel_index];
  Device &dev = p->devices[args->device_ordinal];
  std::string error;
  if (!tessera::cuda::planLaunch(exe->program, args->kernel_index, plan, args->scalars, dev.smCount, &out->config,
                                 &error))
    return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: kernel '%s': %s", k.name.c_str(), error.c_str());
  out->stream = dev.stream;
  if (out->config.empty)
    return nullptr;
  tessera_backend_executable_t::Loaded *l = nullptr;
  if (tessera_status_t *s = moduleFor(p, exe, args->device_ordinal, &l))
    return s;
  if (tessera_status_t *s = functionFor(p, exe, l, args->kernel_index, out->config.mode, &out->function))
    return s;
  // Above 48 KB a function's dynamic shared memory must be allowed
  // explicitly (CUDA C++ Programming Guide, "Shared Memory").
  if (out->config.sharedBytes > 48 * 1024)
    if (CUresult r = cudaDriver().cuFuncSetAttribute(out->function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                     static_cast<int>(out->config.sharedBytes));
        r != CUDA_SUCCESS)
      return cudaError(p, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", r);
  out->slots.assign(plan.numSlots, 0);
  for (size_t o = 0; o < k.operands.size(); ++o)
    out->slots[o] = args->buffers[o]->pointer;
  for (size_t s = 0; s < args->num_scalars; ++s)
    out->slots[k.operands.size() + s] = static_cast<uint64_t>(args->scalars[s]);
  for (size_t e = 0; e < out->config.extras.size() && k.operands.size() + args->num_scalars + e < out->slots.size(); ++e)
    out->slots[k.operands.size() + args->num_scalars + e] = static_cast<uint64_t>(out->config.extras[e]);
  if (tessera_status_t *s = prepareLibrary(p, args, l, out))
    return s;
  // Also under an active library launch: the generated kernel is its fallback.
  if (tessera_status_t *s = encodeTensorMaps(p, args, k.name.c_str(), out))
    return s;
  if (!out->library.active && pathLogging())
    logOnce(p, TESSERA_LOG_DEBUG,
            "cuda: kernel '" + k.name + "': " + tessera::cuda::launchModeName(out->config.mode) + " grid " +
                std::to_string(out->config.grid[0]) + "x" + std::to_string(out->config.grid[1]) + "x" +
                std::to_string(out->config.grid[2]) + " block " + std::to_string(out->config.block[0]) + " shared " +
                std::to_string(out->config.sharedBytes));
  return nullptr;
}

constexpr uint64_t kLibraryWorkspaceBytes = 32ull << 20; // cuBLASLt's recommendation for Hopper

// cuBLASLt (and _epi) for a prepared library launch. *done is false when
// cuBLASLt refused: the caller then runs the generated kernel.
tessera_status_t *enqueueLibrary(tessera_backend_plugin_t *p, const PreparedLaunch &pl, const char *name,
                                 bool *done) {
  const auto &d = cudaDriver();
  const LibraryLaunch &lib = pl.library;
  LibraryState &st = *lib.state;
  std::lock_guard<std::mutex> lock(st.mutex);
  *done = false;
  if (!st.lt)
    st.lt = std::make_unique<tessera::cuda::LtDevice>();
  if (!st.workspace && d.cuMemAlloc(&st.workspace, kLibraryWorkspaceBytes) == CUDA_SUCCESS)
    st.workspaceBytes = kLibraryWorkspaceBytes;
  uint64_t need = lib.problem.dOperand < 0 ? lib.problem.scratchElems * sizeof(float) : 0;
  if (need > st.scratchBytes) {
    if (st.scratch) {
      // Launches still in flight may read the old buffer.
      if (CUresult r = d.cuStreamSynchronize(pl.stream); r != CUDA_SUCCESS)
        return cudaError(p, "kernel execution (cuStreamSynchronize)", r);
      d.cuMemFree(st.scratch);
      st.scratch = 0;
      st.scratchBytes = 0;
    }
    if (d.cuMemAlloc(&st.scratch, need) != CUDA_SUCCESS) {
      st.scratch = 0;
      logOnce(p, TESSERA_LOG_WARNING,
              std::string("cuda: no device memory for the f32 product of kernel '") + name +
                  "' on the cuBLASLt path; it runs the generated kernel");
      return nullptr;
    }
    st.scratchBytes = need;
  }
  std::string why;
  EventTimer timer(st, pl.stream);
  std::string tuning;
  if (!st.lt->run(lib.problem, lib.operands.data(), st.scratch, pl.stream, st.workspace, st.workspaceBytes, &why,
                  &lib.plan, &timer, pathLogging() ? &tuning : nullptr)) {
    logOnce(p, TESSERA_LOG_WARNING,
            std::string("cuda: cuBLASLt did not run kernel '") + name + "' (" + why + "); it runs the generated kernel");
    return nullptr;
  }
  if (!tuning.empty())
    logOnce(p, TESSERA_LOG_DEBUG, std::string("cuda: kernel '") + name + "': cuBLASLt " + tuning);
  if ((lib.problem.dOperand < 0 || lib.problem.narrow) && !lib.epilogueConfig.empty) {
    std::vector<uint64_t> slots = pl.slots;
    const size_t productSlot = slots.size() - tessera::cuda::kGemmExtraSlots + 5;
    slots[productSlot] = lib.problem.narrow ? lib.operands[lib.problem.dOperand] : st.scratch;
    void *params[] = {slots.data()};
    const LaunchConfig &c = lib.epilogueConfig;
    CUresult r = d.cuLaunchKernel(lib.epilogue, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1], c.block[2], 0,
                                  pl.stream, params, nullptr);
    if (r != CUDA_SUCCESS)
      return cudaError(p, (std::string("cuLaunchKernel(") + name + " epilogue)").c_str(), r);
  }
  *done = true;
  return nullptr;
}

tessera_status_t *enqueue(tessera_backend_plugin_t *p, const PreparedLaunch &pl, const char *name) {
  if (pl.config.empty)
    return nullptr;
  if (pl.library.active) {
    bool done = false;
    if (tessera_status_t *s = enqueueLibrary(p, pl, name, &done))
      return s;
    if (done)
      return nullptr;
  }
  void *params[3] = {const_cast<uint64_t *>(pl.slots.data()), nullptr, nullptr};
  for (size_t i = 0; i < pl.tensorMaps.size() && i < 2; ++i)
    params[1 + i] = const_cast<CUtensorMap *>(&pl.tensorMaps[i]);
  const LaunchConfig &c = pl.config;
  CUresult r = cudaDriver().cuLaunchKernel(pl.function, c.grid[0], c.grid[1], c.grid[2], c.block[0], c.block[1],
                                           c.block[2], c.sharedBytes, pl.stream, params, nullptr);
  if (r != CUDA_SUCCESS)
    return cudaError(p, (std::string("cuLaunchKernel(") + name + ")").c_str(), r);
  return nullptr;
}

tessera_status_t *launch(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args) try {
  PreparedLaunch pl;
  if (tessera_status_t *s = prepareLaunch(p, args, &pl))
    return s;
  return enqueue(p, pl, args->executable->plans[args->kernel_index].name.c_str());
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: launch failed: %s", e.what());
}

tessera_status_t *synchronize(tessera_backend_plugin_t *p, uint32_t ordinal) {
  if (tessera_status_t *s = useDevice(p, ordinal))
    return s;
  // Asynchronous kernel faults surface here, with the driver's text.
  if (CUresult r = cudaDriver().cuStreamSynchronize(p->devices[ordinal].stream); r != CUDA_SUCCESS)
    return cudaError(p, "kernel execution (cuStreamSynchronize)", r);
  return nullptr;
}

// ---- measurement extension ---------------------------------------------------------

tessera_status_t *measure(tessera_backend_plugin_t *p, const tessera_backend_measure_args_t *args,
                          tessera_backend_measurement_t *out) try {
  if (!args || !out || !args->launch)
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: measure: missing arguments");
  PreparedLaunch pl;
  if (tessera_status_t *s = prepareLaunch(p, args->launch, &pl))
    return s;
  const auto &d = cudaDriver();
  const char *name = args->launch->executable->plans[args->launch->kernel_index].name.c_str();
  for (uint32_t i = 0; i < args->warmup; ++i)
    if (tessera_status_t *s = enqueue(p, pl, name))
      return s;
  uint32_t reps = std::max<uint32_t>(1, args->repetitions);
  CUevent start = nullptr, stop = nullptr;
  CUresult r = d.cuEventCreate(&start, CU_EVENT_DEFAULT);
  if (r == CUDA_SUCCESS)
    r = d.cuEventCreate(&stop, CU_EVENT_DEFAULT);
  std::vector<double> times;
  tessera_status_t *status = r == CUDA_SUCCESS ? nullptr : cudaError(p, "cuEventCreate", r);
  // Each repetition is timed on its own between two events (CUDA C++ Best
  // Practices Guide, "Using CUDA GPU Timers"); the median resists outliers.
  for (uint32_t i = 0; i < reps && !status; ++i) {
    if ((r = d.cuEventRecord(start, pl.stream)) != CUDA_SUCCESS) {
      status = cudaError(p, "cuEventRecord", r);
      break;
    }
    if ((status = enqueue(p, pl, name)))
      break;
    float ms = 0;
    if ((r = d.cuEventRecord(stop, pl.stream)) != CUDA_SUCCESS || (r = d.cuEventSynchronize(stop)) != CUDA_SUCCESS ||
        (r = d.cuEventElapsedTime(&ms, start, stop)) != CUDA_SUCCESS) {
      status = cudaError(p, "timing the kernel", r);
      break;
    }
    times.push_back(ms * 1e-3);
  }
  if (start)
    d.cuEventDestroy(start);
  if (stop)
    d.cuEventDestroy(stop);
  if (status)
    return status;
  std::sort(times.begin(), times.end());
  tessera_backend_measurement_t m{};
  m.struct_size = sizeof(m);
  m.median_seconds = times.size() % 2 ? times[times.size() / 2] : 0.5 * (times[times.size() / 2 - 1] + times[times.size() / 2]);
  m.min_seconds = times.front();
  m.max_seconds = times.back();
  m.repetitions = static_cast<uint32_t>(times.size());
  tessera::sdk::copyOut(out, m);
  return nullptr;
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: measure failed: %s", e.what());
}

// ---- cost model extension ----------------------------------------------------------

tessera_status_t *estimateCost(tessera_backend_plugin_t *p, const tessera_backend_cost_query_t *query,
                               tessera_backend_cost_estimate_t *out) try {
  if (!query || !out || !query->program || query->struct_size < sizeof(tessera_backend_cost_query_t))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: cost query: missing arguments");
  if (!query->program_format || std::strcmp(query->program_format, sir::kProgramFormat) != 0)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: unsupported program format");
  sir::Program program;
  sir::ParseError perr;
  if (!sir::parseProgram(std::string(static_cast<const char *>(query->program), query->program_size), &program, &perr))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: invalid Schedule IR: %s", perr.str().c_str());
  if (query->kernel_index >= program.kernels.size())
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: kernel index %u out of range",
                      query->kernel_index);
  if (query->num_scalars < program.symbols.size() || (query->num_scalars && !query->scalars))
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "cuda: cost query needs %zu scalars",
                      program.symbols.size());
  std::string arch = query->target && query->target->architecture ? query->target->architecture : kDefaultArchitecture;
  // As compile does for a live device: a Hopper GPU here (it reports
  // sm_90) gets the arch-specific sm_90a code (wgmma), so its points are
  // costed as sm_90a.
  if (arch == "sm_90") {
    std::call_once(p->enumerated, enumerate, p);
    for (const Device &d : p->devices)
      if (d.architecture == "sm_90") {
        arch = "sm_90a";
        break;
      }
  }
  int sm = 0;
  bool specific = false;
  if (!tessera::cuda::parseArchitecture(arch, &sm, &specific) || sm < 80)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: cost model: unsupported architecture '%s'",
                      arch.c_str());
  tessera::cuda::CodegenOptions options;
  options.smVersion = sm;
  options.archSpecific = specific;
  GeneratedProgram gen;
  std::string error;
  if (!tessera::cuda::generateProgram(program, options, &gen, &error))
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "cuda: %s", error.c_str());
  tessera::cuda::GpuModel gpu = tessera::cuda::gpuModelFor(sm, 0);
  const KernelPlan &plan = gen.kernels[query->kernel_index];
  tessera::cuda::CostResult r =
      tessera::cuda::estimateKernelCost(program, query->kernel_index, plan, gpu, query->scalars);
  // library="cublaslt": the library's estimate (infeasible where it cannot
  // run); no knob: the faster of the two, as the launcher picks.
  // A knob that cannot run as asked (knobProblem) rules the point out on
  // the library path too.
  tessera::cuda::LibraryChoice choice = tessera::cuda::libraryChoice(program.kernels[query->kernel_index]);
  tessera::cuda::LaunchConfig cfg;
  std::string planError;
  tessera::cuda::planLaunch(program, query->kernel_index, plan, query->scalars, uint32_t(gpu.smCount), &cfg,
                            &planError);
  const bool knobsOk = tessera::cuda::knobProblem(program, query->kernel_index, plan, cfg).empty();
  if (knobsOk && program.kernels[query->kernel_index].kind == sir::Kernel::Kind::Matmul &&
      choice != tessera::cuda::LibraryChoice::Never) {
    tessera::cuda::CostResult lib =
        tessera::cuda::estimateLibraryCost(program, query->kernel_index, plan, gpu, query->scalars);
    std::string why;
    if (lib.feasible && !tessera::cuda::cublasLtAvailable(&why)) {
      lib.feasible = false;
      lib.reason = "library 'cublaslt' is unavailable here: " + why;
    }
    if (choice == tessera::cuda::LibraryChoice::Force)
      r = lib;
    else if (lib.feasible && lib.seconds < r.seconds)
      r = lib;
  }
  tessera_backend_cost_estimate_t est{};
  est.struct_size = sizeof(est);
  est.feasible = r.feasible ? 1 : 0;
  est.seconds = r.seconds;
  est.flops = r.flops;
  est.bytes = r.bytes;
  // Reasons are static strings of the cost model's (string literals copied
  // into a plugin-lifetime table below).
  est.reason = nullptr;
  if (!r.feasible) {
    std::lock_guard<std::mutex> lock(p->contextMutex);
    auto it = std::find(p->costReasons.begin(), p->costReasons.end(), r.reason);
    if (it == p->costReasons.end() && p->costReasons.size() < 64)
      it = p->costReasons.insert(p->costReasons.end(), r.reason);
    est.reason = it == p->costReasons.end() ? "infeasible schedule" : it->c_str();
  }
  tessera::sdk::copyOut(out, est);
  return nullptr;
} catch (const std::exception &e) {
  return makeStatus(p->host, TESSERA_STATUS_INTERNAL, "cuda: cost model failed: %s", e.what());
}

// Attention reaches the plugin whole (Schedule IR kind `attention`,
// FlashAttention.h) instead of decomposed into three kernels.
const tessera_backend_native_ops_extension_t kNativeOps = {
    {sizeof(tessera_backend_native_ops_extension_t), TESSERA_BACKEND_EXTENSION_NATIVE_OPS, nullptr}, "attention"};
const tessera_backend_measurement_extension_t kMeasurement = {
    {sizeof(tessera_backend_measurement_extension_t), TESSERA_BACKEND_EXTENSION_MEASUREMENT, &kNativeOps.base},
    measure};
const tessera_backend_cost_model_extension_t kCostModel = {
    {sizeof(tessera_backend_cost_model_extension_t), TESSERA_BACKEND_EXTENSION_COST_MODEL, &kMeasurement.base},
    estimateCost};

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
  api.extensions = &kCostModel.base;
  api.compile = compile;
  api.executable_destroy = executableDestroy;
  api.executable_serialize = executableSerialize;
  api.executable_load = executableLoad;
  api.launch = launch;
  api.synchronize = synchronize;
  api.buffer_allocate = bufferAllocate;
  api.buffer_free = bufferFree;
  api.buffer_wrap = bufferWrap;
  api.buffer_device_pointer = bufferDevicePointer;
  api.buffer_copy_from_host = bufferCopyFromHost;
  api.buffer_copy_to_host = bufferCopyToHost;
  return api;
}

tessera_backend_api_t gApi = makeApi();

} // namespace

extern "C" TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                                    const tessera_backend_api_t **out_api) {
  return tessera::sdk::provideApi(host, &gApi, out_api);
}
