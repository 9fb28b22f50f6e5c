// The CPU backend plugin: host threads, host memory, LLVM ORC JIT code
// generation (Codegen.h), a packed GEMM path (Gemm.h), a thread pool
// (ThreadPool.h) and an analytic cost model (CostModel.h). Its entry point is
// the only exported symbol (sdk/plugin.map).
//
// Launch is synchronous: `launch` returns when the kernel has run on all
// threads, so `synchronize` has nothing to wait for. Threads per launch:
// launch args num_threads, else TESSERA_NUM_THREADS, else the number of cores.
#include "Codegen.h"
#include "CostModel.h"
#include "Measurement.h"
#include "Gemm.h"
#include "HostCpu.h"
#include "ObjectCode.h"
#include "ThreadPool.h"

#include "tessera/sdk/backend_sdk.h"
#include "tessera/sdk/schedule_ir.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host = nullptr;
  tessera::cpu::HostCpu cpu;
  unsigned defaultThreads = 1;
  tessera::cpu::MachineModel machine;
  std::mutex poolMutex;
  std::unique_ptr<tessera::cpu::ThreadPool> pool;
  std::mutex costReasonsMutex;
  std::vector<std::unique_ptr<std::string>> costReasons;
};

struct tessera_backend_buffer_t {
  void *data;
  uint64_t size;
};

struct tessera_backend_executable_t {
  std::string text; // the Schedule IR; serialized beside the machine code
  tessera::schedule::Program program;
  tessera::cpu::TargetInfo target;
  unsigned optLevel = 3; // LLVM level it was built with; serialized with the code
  bool runnable = false;
  std::string notRunnable;
  std::unique_ptr<tessera::cpu::JitProgram> jit;
  std::vector<bool> gemm;
  std::vector<tessera::cpu::GemmForm> forms;
};

namespace {

using tessera::sdk::makeStatus;

constexpr size_t kBufferAlignment = 64; // one cache line; AVX-512 vector width

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out_plugin) {
  auto *plugin = new (std::nothrow) tessera_backend_plugin_t();
  if (plugin)
    plugin->host = host;
  if (!plugin)
    return makeStatus(host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory");
  try {
    plugin->cpu = tessera::cpu::detectHostCpu();
    plugin->defaultThreads = tessera::cpu::defaultThreadCount();
    plugin->machine = tessera::cpu::hostMachineModel();
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
  // Zero-byte buffers (empty tensors) still get a valid, unique pointer.
  uint64_t rounded = (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  if (rounded == 0)
    rounded = kBufferAlignment;
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

tessera_status_t *bufferDevicePointer(tessera_backend_plugin_t *plugin, const tessera_backend_buffer_t *buffer,
                                      void **out_pointer) {
  if (!buffer || !out_pointer)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: null buffer");
  *out_pointer = buffer->data;
  return nullptr;
}

tessera_status_t *checkRange(tessera_backend_plugin_t *plugin, const tessera_backend_buffer_t *buffer,
                             uint64_t offset, uint64_t size) {
  if (!buffer)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: null buffer");
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

// ---- Compile ------------------------------------------------------------------

namespace sir = tessera::schedule;
using tessera::cpu::TargetInfo;

// Extra checks beyond validateProgram that the code generator relies on.
std::string checkSupported(const sir::Program &program) {
  for (const sir::Kernel &k : program.kernels) {
    if (k.kind == sir::Kernel::Kind::Attention) // only for plugins declaring NATIVE_OPS attention
      return "kernel \"" + k.name + "\": attention kernels are not supported (attention reaches this plugin decomposed)";
    for (const sir::Stage &s : k.stages)
      for (const sir::Instr &in : s.body)
        if (!in.isStore && in.op == sir::Op::Acc)
          return "kernel \"" + k.name + "\": op 'acc' is reserved";
    std::vector<int64_t> tile = k.knobInts("tile");
    for (int64_t t : tile)
      if (t < 0)
        return "kernel \"" + k.name + "\": negative tile size";
  }
  if (program.kernels.size() > 100000)
    return "too many kernels";
  return {};
}

bool wantsStage(const char *stages, const char *stage) {
  if (!stages)
    return false;
  std::string list = std::string(",") + stages + ",";
  for (char &c : list)
    if (c == ' ')
      c = ',';
  return list.find(std::string(",") + stage + ",") != std::string::npos ||
         list.find(",all,") != std::string::npos;
}

// Parses and checks the Schedule IR into a new executable; returns an error
// status or null. The caller then generates or loads its code (finishExecutable).
tessera_status_t *startExecutable(tessera_backend_plugin_t *plugin, std::string text, const TargetInfo &target,
                                  unsigned optLevel, tessera_status_code_t parseErrorCode,
                                  std::unique_ptr<tessera_backend_executable_t> *out) {
  auto exe = std::make_unique<tessera_backend_executable_t>();
  sir::ParseError perr;
  if (!sir::parseProgram(text, &exe->program, &perr))
    return makeStatus(plugin->host, parseErrorCode, "cpu: invalid Schedule IR: %s", perr.str().c_str());
  if (std::string problem = checkSupported(exe->program); !problem.empty())
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: %s", problem.c_str());
  exe->text = std::move(text);
  exe->target = target;
  exe->optLevel = optLevel;
  exe->runnable = tessera::cpu::runnableOnHost(target, &exe->notRunnable);
  *out = std::move(exe);
  return nullptr;
}

// The launcher's per-kernel GEMM decisions, once the code is there.
void finishExecutable(tessera_backend_executable_t &exe) {
  for (const sir::Kernel &k : exe.program.kernels) {
    tessera::cpu::GemmForm form;
    exe.gemm.push_back(tessera::cpu::matchGemmForm(k, &form, nullptr));
    exe.forms.push_back(form);
  }
}

// Parses, JITs and fills an executable; returns an error status or null.
tessera_status_t *buildExecutable(tessera_backend_plugin_t *plugin, std::string text, const TargetInfo &target,
                                  unsigned optLevel, const tessera_backend_compile_args_t *dumpArgs,
                                  tessera_backend_executable_t **out) {
  std::unique_ptr<tessera_backend_executable_t> exe;
  if (tessera_status_t *s =
          startExecutable(plugin, std::move(text), target, optLevel, TESSERA_STATUS_INVALID_ARGUMENT, &exe))
    return s;
  tessera::cpu::CompileOptions options;
  options.target = target;
  options.optLevel = optLevel;
  if (dumpArgs && dumpArgs->dump) {
    options.dumpTile = wantsStage(dumpArgs->dump_stages, "tile");
    options.dumpTarget = wantsStage(dumpArgs->dump_stages, "target");
    tessera_backend_dump_fn_t fn = dumpArgs->dump;
    void *user = dumpArgs->dump_user_data;
    options.dump = [fn, user](const char *stage, const std::string &t) { fn(user, stage, t.c_str(), t.size()); };
  }
  std::string error;
  exe->jit = tessera::cpu::JitProgram::compile(exe->program, options, &error);
  if (!exe->jit)
    return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: code generation failed: %s", error.c_str());
  finishExecutable(*exe);
  *out = exe.release();
  return nullptr;
}

tessera_status_t *compile(tessera_backend_plugin_t *plugin, const tessera_backend_compile_args_t *args,
                          tessera_backend_executable_t **out_executable) try {
  if (!args || !out_executable || args->struct_size < offsetof(tessera_backend_compile_args_t, dump_stages) ||
      (!args->program && args->program_size))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: compile: missing arguments");
  *out_executable = nullptr;
  if (!args->program_format || std::strcmp(args->program_format, sir::kProgramFormat) != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: unsupported program format '%s' (expected %s)",
                      args->program_format ? args->program_format : "(null)", sir::kProgramFormat);
  const char *arch = nullptr, *features = nullptr;
  if (args->target && args->target->struct_size >= offsetof(tessera_device_description_t, architecture) + sizeof(void *))
    arch = args->target->architecture;
  if (args->target && args->target->struct_size >= TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE)
    features = args->target->features;
  TargetInfo target;
  std::string error;
  if (!tessera::cpu::resolveTarget(arch, features, &target, &error))
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: %s", error.c_str());
  std::string text(static_cast<const char *>(args->program), args->program_size);
  bool hasDump = args->struct_size >= TESSERA_BACKEND_COMPILE_ARGS_STRUCT_SIZE;
  // Host levels 0..3 (2 = default): 2 and 3 run LLVM's O3 pipeline with the
  // vectorizers; 0 and 1 run O1 (fast compiles, still usable kernels).
  unsigned opt = args->opt_level >= 2 ? 3 : 1;
  return buildExecutable(plugin, std::move(text), target, opt, hasDump ? args : nullptr, out_executable);
} catch (const std::bad_alloc &) {
  return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory while compiling");
} catch (const std::exception &e) {
  return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: compile failed: %s", e.what());
}

tessera_status_t *executableDestroy(tessera_backend_plugin_t *, tessera_backend_executable_t *executable) {
  delete executable;
  return nullptr;
}

// ---- Serialize / load -----------------------------------------------------------
//
// The bytes carry the machine code (ObjectCode.h), so loading links objects
// and runs no code generation: a warm compile from the artifact cache costs
// milliseconds, not a JIT compile. Anything that does not check out answers
// CORRUPT_DATA or INCOMPATIBLE_VERSION, and the core compiles afresh.

tessera_status_t *executableSerialize(tessera_backend_plugin_t *plugin, const tessera_backend_executable_t *exe,
                                      void **out_data, size_t *out_size) try {
  if (!exe || !out_data || !out_size || !exe->jit)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: serialize: missing arguments");
  tessera::cpu::SerializedExecutable s;
  s.optLevel = exe->optLevel;
  s.target = exe->target;
  s.scheduleText = exe->text;
  s.image = exe->jit->image();
  std::string bytes = tessera::cpu::encodeExecutable(s);
  void *mem = plugin->host->allocate(plugin->host->allocator_data, bytes.size(), 16);
  if (!mem)
    return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: serialize: out of memory");
  std::memcpy(mem, bytes.data(), bytes.size());
  *out_data = mem;
  *out_size = bytes.size();
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory while serializing");
} catch (const std::exception &e) {
  return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: serialize failed: %s", e.what());
}

tessera_status_t *executableLoad(tessera_backend_plugin_t *plugin, const tessera_backend_load_args_t *args,
                                 tessera_backend_executable_t **out_executable) try {
  if (!args || !out_executable || args->struct_size < TESSERA_BACKEND_LOAD_ARGS_STRUCT_SIZE ||
      (!args->data && args->size))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: load: missing arguments");
  *out_executable = nullptr;
  if (args->device_ordinal != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_NOT_FOUND, "cpu: no device %d", args->device_ordinal);
  auto incompatible = [&](const std::string &why) {
    return makeStatus(plugin->host, TESSERA_STATUS_INCOMPATIBLE_VERSION,
                      "cpu: serialized executable cannot be loaded here: %s", why.c_str());
  };
  auto corrupt = [&](const std::string &what) {
    return makeStatus(plugin->host, TESSERA_STATUS_CORRUPT_DATA, "cpu: serialized executable is damaged: %s",
                      what.c_str());
  };
  tessera::cpu::SerializedExecutable blob;
  tessera::cpu::DecodeError derr;
  std::string_view bytes(static_cast<const char *>(args->data), args->data ? args->size : 0);
  if (!tessera::cpu::decodeExecutable(bytes, &blob, &derr))
    return derr.kind == tessera::cpu::DecodeError::Kind::Incompatible ? incompatible(derr.message)
                                                                        : corrupt(derr.message);
  std::string why;
  if (!tessera::cpu::objectImageCompatible(blob.image, &why))
    return incompatible(why);
  TargetInfo target;
  if (!tessera::cpu::resolveTarget(blob.target.architecture.c_str(), nullptr, &target, &why))
    return incompatible(why);
  target.cpu = blob.target.cpu;
  target.features = blob.target.features;
  if (!tessera::cpu::runnableOnHost(target, &why))
    return incompatible(why);
  std::unique_ptr<tessera_backend_executable_t> exe;
  if (tessera_status_t *s = startExecutable(plugin, std::move(blob.scheduleText), target, blob.optLevel,
                                            TESSERA_STATUS_CORRUPT_DATA, &exe))
    return s;
  if (blob.image.kernels.size() != exe->program.kernels.size())
    return corrupt("the kernel table does not match the Schedule IR");
  std::string error;
  exe->jit = tessera::cpu::JitProgram::load(std::move(blob.image), target, &error);
  if (!exe->jit)
    return corrupt("cannot link its machine code: " + error);
  finishExecutable(*exe);
  *out_executable = exe.release();
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory while loading");
} catch (const std::exception &e) {
  return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: load failed: %s", e.what());
}

// ---- Launch -------------------------------------------------------------------

// More threads than this are never useful on one host and would only cost
// thread creation; larger requests are clamped.
constexpr unsigned kMaxThreads = 256;

tessera::cpu::ThreadPool &poolOf(tessera_backend_plugin_t *plugin) {
  std::lock_guard<std::mutex> lock(plugin->poolMutex);
  if (!plugin->pool)
    plugin->pool = std::make_unique<tessera::cpu::ThreadPool>();
  return *plugin->pool;
}

// Cache blocking of the GEMM path; knobs mc/kc/nc (schedule-search hints)
// override the defaults.
tessera::cpu::GemmBlocking gemmBlocking(const sir::Kernel &k) {
  tessera::cpu::GemmBlocking b;
  // Clamped so the per-thread C block stays small (<= 16 MiB).
  b.mc = std::clamp<int64_t>(k.knobInt("mc", b.mc), 1, 2048);
  b.kc = std::clamp<int64_t>(k.knobInt("kc", b.kc), 1, 8192);
  b.nc = std::clamp<int64_t>(k.knobInt("nc", b.nc), 1, 2048);
  return b;
}

tessera_status_t *launch(tessera_backend_plugin_t *plugin, const tessera_backend_launch_args_t *args) try {
  if (!args || args->struct_size < offsetof(tessera_backend_launch_args_t, num_scalars) + sizeof(size_t) ||
      !args->executable)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: launch: missing arguments");
  if (args->device_ordinal != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_NOT_FOUND, "cpu: no device %u", args->device_ordinal);
  const tessera_backend_executable_t *exe = args->executable;
  if (!exe->runnable)
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: executable compiled for another CPU: %s",
                      exe->notRunnable.c_str());
  if (args->kernel_index >= exe->program.kernels.size())
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: kernel index %u out of range (%zu kernels)",
                      args->kernel_index, exe->program.kernels.size());
  const sir::Kernel &k = exe->program.kernels[args->kernel_index];
  const size_t nsym = exe->program.symbols.size();
  if (args->num_buffers != k.operands.size() || (k.operands.size() && !args->buffers))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: kernel \"%s\" takes %zu buffers, got %zu",
                      k.name.c_str(), k.operands.size(), args->num_buffers);
  if (args->num_scalars < nsym || (nsym && !args->scalars))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: kernel \"%s\" needs %zu scalars, got %zu",
                      k.name.c_str(), nsym, args->num_scalars);
  const size_t np = k.parallel.size();
  std::vector<int64_t> scalars(nsym + np, 1);
  for (size_t i = 0; i < nsym; ++i)
    scalars[i] = args->scalars[i];
  std::vector<void *> buffers(k.operands.size());
  for (size_t o = 0; o < k.operands.size(); ++o) {
    const tessera_backend_buffer_t *b = args->buffers[o];
    if (!b)
      return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: buffer %zu is null", o);
    // The whole operand must lie inside its buffer.
    unsigned __int128 bytes = tessera::schedule::dtypeSize(k.operands[o].dtype);
    for (const sir::IndexExpr &e : k.operands[o].shape) {
      int64_t dim = sir::evalIndex(e, scalars.data(), nullptr, nullptr, nullptr);
      if (dim < 0)
        return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT,
                          "cpu: operand %zu of \"%s\" has a negative dimension", o, k.name.c_str());
      bytes *= static_cast<uint64_t>(dim);
      if (bytes > (unsigned __int128)UINT64_MAX)
        bytes = (unsigned __int128)UINT64_MAX;
    }
    if (bytes > b->size)
      return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT,
                        "cpu: operand %zu of \"%s\" needs %llu bytes; its buffer has %llu", o, k.name.c_str(),
                        static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(b->size));
    buffers[o] = b->data;
  }
  unsigned threads = plugin->defaultThreads;
  if (args->struct_size >= TESSERA_BACKEND_LAUNCH_ARGS_STRUCT_SIZE && args->num_threads)
    threads = args->num_threads;
  if (int64_t knob = k.knobInt("threads", 0); knob > 0 && knob < int64_t(threads))
    threads = static_cast<unsigned>(knob);
  threads = std::min(threads, kMaxThreads);
  std::vector<int64_t> extent(np);
  int64_t total = 1;
  for (size_t d = 0; d < np; ++d) {
    extent[d] = std::max<int64_t>(0, sir::evalIndex(k.parallel[d], scalars.data(), nullptr, nullptr, nullptr));
    total = extent[d] == 0 ? 0 : total;
  }
  if (total == 0)
    return nullptr;
  tessera::cpu::ThreadPool &pool = poolOf(plugin);
  const tessera::cpu::CompiledKernel &code = exe->jit->kernel(args->kernel_index);
  if (exe->gemm[args->kernel_index] && code.epilogue &&
      tessera::cpu::runGemm(k, exe->forms[args->kernel_index], code, buffers.data(), scalars.data(), nsym, pool,
                            threads, gemmBlocking(k)))
    return nullptr;
  // The same tiling the cost model predicts with.
  std::vector<int64_t> tile = tessera::cpu::launchTiles(k, extent, scalars.data(), threads);
  int64_t tiles = 1;
  for (size_t d = 0; d < np; ++d) {
    scalars[nsym + d] = tile[d];
    tiles *= (extent[d] + tile[d] - 1) / tile[d];
  }
  tessera::cpu::KernelFn fn = code.loop;
  void **bufs = buffers.data();
  const int64_t *sc = scalars.data();
  pool.parallelFor(tiles, threads, tessera::cpu::launchChunk(tiles, threads),
                   [&](int64_t begin, int64_t end) { fn(bufs, sc, begin, end); });
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory in launch");
} catch (const std::exception &e) {
  return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: launch failed: %s", e.what());
}

tessera_status_t *synchronize(tessera_backend_plugin_t *plugin, uint32_t ordinal) {
  if (ordinal != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_NOT_FOUND, "cpu: no device %u", ordinal);
  return nullptr; // launches are synchronous
}

// ---- Cost model -----------------------------------------------------------------

tessera_status_t *estimateCost(tessera_backend_plugin_t *plugin, const tessera_backend_cost_query_t *query,
                               tessera_backend_cost_estimate_t *out) try {
  if (!query || !out || !query->program || query->struct_size < sizeof(tessera_backend_cost_query_t))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: cost query: missing arguments");
  if (!query->program_format || std::strcmp(query->program_format, sir::kProgramFormat) != 0)
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: unsupported program format");
  sir::Program program;
  sir::ParseError perr;
  if (!sir::parseProgram(std::string(static_cast<const char *>(query->program), query->program_size), &program, &perr))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: invalid Schedule IR: %s",
                      perr.str().c_str());
  if (query->kernel_index >= program.kernels.size())
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: kernel index %u out of range",
                      query->kernel_index);
  if (query->num_scalars < program.symbols.size() || (query->num_scalars && !query->scalars))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: cost query needs %zu scalars",
                      program.symbols.size());
  const char *arch = query->target && query->target->struct_size >= offsetof(tessera_device_description_t, features)
                         ? query->target->architecture
                         : nullptr;
  const char *features = query->target && query->target->struct_size >= TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE
                             ? query->target->features
                             : nullptr;
  TargetInfo target;
  std::string error;
  if (!tessera::cpu::resolveTarget(arch, features, &target, &error))
    return makeStatus(plugin->host, TESSERA_STATUS_UNSUPPORTED, "cpu: %s", error.c_str());
  tessera::cpu::CostResult r = tessera::cpu::estimateKernelCost(program, query->kernel_index, target, plugin->machine,
                                                                query->scalars, query->num_scalars);
  // Reasons must outlive the call (until shutdown): one string per distinct
  // reason, owned by the plugin instance.
  auto &reasons = plugin->costReasons;
  const char *reason = nullptr;
  if (!r.feasible) {
    std::lock_guard<std::mutex> lock(plugin->costReasonsMutex);
    for (const auto &s : reasons)
      if (*s == r.reason)
        reason = s->c_str();
    if (!reason && reasons.size() < 1024) {
      reasons.push_back(std::make_unique<std::string>(r.reason));
      reason = reasons.back()->c_str();
    }
    if (!reason)
      reason = "infeasible schedule";
  }
  tessera_backend_cost_estimate_t est{};
  est.struct_size = sizeof(est);
  est.feasible = r.feasible ? 1 : 0;
  est.seconds = r.seconds;
  est.flops = r.flops;
  est.bytes = r.bytes;
  est.reason = reason;
  tessera::sdk::copyOut(out, est);
  return nullptr;
} catch (const std::exception &e) {
  return makeStatus(plugin->host, TESSERA_STATUS_INTERNAL, "cpu: cost model failed: %s", e.what());
}

// ---- Measurement -----------------------------------------------------------------

// Times a launch (Measurement.h): inputs rotate through copies so that
// repeated runs do not find them in cache.
tessera_status_t *measure(tessera_backend_plugin_t *plugin, const tessera_backend_measure_args_t *args,
                          tessera_backend_measurement_t *out) try {
  if (!args || !out || args->struct_size < sizeof(tessera_backend_measure_args_t) || !args->launch ||
      !args->launch->executable)
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: measure: missing arguments");
  const tessera_backend_launch_args_t &base = *args->launch;
  const tessera_backend_executable_t *exe = base.executable;
  if (base.kernel_index >= exe->program.kernels.size() || (base.num_buffers && !base.buffers))
    return makeStatus(plugin->host, TESSERA_STATUS_INVALID_ARGUMENT, "cpu: measure: bad launch arguments");
  const sir::Kernel &k = exe->program.kernels[base.kernel_index];
  uint64_t inputBytes = 0;
  for (size_t o = 0; o < base.num_buffers && o < k.operands.size(); ++o)
    if (k.operands[o].role == sir::OperandRole::In && base.buffers[o])
      inputBytes += base.buffers[o]->size;
  const uint32_t copies = tessera::cpu::rotationCopies(inputBytes, plugin->machine.cacheBytes[2]);
  // sets[c][o]: operand o of rotation c (set 0 is the caller's buffers).
  std::vector<std::vector<tessera_backend_buffer_t *>> sets(copies,
      std::vector<tessera_backend_buffer_t *>(base.buffers, base.buffers + base.num_buffers));
  std::vector<std::unique_ptr<tessera_backend_buffer_t, void (*)(tessera_backend_buffer_t *)>> owned;
  for (uint32_t c = 1; c < copies; ++c)
    for (size_t o = 0; o < base.num_buffers && o < k.operands.size(); ++o) {
      const tessera_backend_buffer_t *src = base.buffers[o];
      if (k.operands[o].role != sir::OperandRole::In || !src)
        continue;
      uint64_t rounded = (src->size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
      void *data = std::aligned_alloc(kBufferAlignment, rounded ? rounded : kBufferAlignment);
      if (!data)
        return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: measure: out of memory");
      std::memcpy(data, src->data, src->size);
      owned.emplace_back(new tessera_backend_buffer_t{data, src->size}, [](tessera_backend_buffer_t *b) {
        std::free(b->data);
        delete b;
      });
      sets[c][o] = owned.back().get();
    }
  tessera_status_t *failure = nullptr;
  tessera::cpu::Timing t = tessera::cpu::timeRepetitions(args->warmup, args->repetitions, [&](uint32_t i) {
    tessera_backend_launch_args_t l = base;
    l.buffers = sets[i % copies].data();
    failure = launch(plugin, &l);
    return failure == nullptr;
  });
  if (failure)
    return failure;
  tessera_backend_measurement_t m{};
  m.struct_size = sizeof(m);
  m.median_seconds = t.median;
  m.min_seconds = t.min;
  m.max_seconds = t.max;
  m.repetitions = t.repetitions;
  tessera::sdk::copyOut(out, m);
  return nullptr;
} catch (const std::bad_alloc &) {
  return makeStatus(plugin->host, TESSERA_STATUS_OUT_OF_MEMORY, "cpu: out of memory in measure");
}

const tessera_backend_measurement_extension_t kMeasurement = {
    {sizeof(tessera_backend_measurement_extension_t), TESSERA_BACKEND_EXTENSION_MEASUREMENT, nullptr}, measure};

const tessera_backend_cost_model_extension_t kCostModel = {
    {sizeof(tessera_backend_cost_model_extension_t), TESSERA_BACKEND_EXTENSION_COST_MODEL, &kMeasurement.base},
    estimateCost};

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
  api.extensions = &kCostModel.base;
  api.compile = compile;
  api.executable_destroy = executableDestroy;
  api.executable_serialize = executableSerialize;
  api.executable_load = executableLoad;
  api.launch = launch;
  api.synchronize = synchronize;
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
  return tessera::sdk::provideApi(host, &gApi, out_api);
}
