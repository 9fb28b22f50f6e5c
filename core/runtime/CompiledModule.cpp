#include "runtime/CompiledModule.h"

#include "runtime/Serialize.h"
#include "shape/Binding.h"
#include "support/CStatus.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace tessera::runtime {

using fusion::OperandBinding;

size_t elementSize(ir::DType dtype) { return (ir::dtypeBits(dtype) + 7) / 8; }

namespace {

// Caps the per-shape plan cache; on overflow the cache starts over.
constexpr size_t kMaxCachedPlans = 64;
// Idle arenas kept per plan for later runs.
constexpr size_t kMaxPooledArenas = 2;

void freeBuffers(plugin::Plugin *p, std::vector<tessera_backend_buffer_t *> &buffers) {
  auto freeFn = p->slot(&tessera_backend_api_t::buffer_free);
  for (tessera_backend_buffer_t *b : buffers)
    if (b && freeFn)
      (void)takeCStatus(freeFn(p->instance(), b));
  buffers.clear();
}

} // namespace

ShapePlan::~ShapePlan() {
  if (plugin)
    for (auto &arena : pool)
      freeBuffers(plugin, arena);
}

Expected<std::unique_ptr<CompiledModule>> CompiledModule::create(Parts parts, plugin::Plugin *plugin,
                                                                 tessera_device_t *device, TargetInfo target,
                                                                 tessera_backend_executable_t *executable,
                                                                 std::string executableBytes) {
  std::unique_ptr<CompiledModule> m(new CompiledModule());
  m->parts_ = std::move(parts);
  m->plugin_ = plugin;
  m->device_ = device;
  m->target_ = std::move(target);
  m->executable_ = executable;
  m->executableBytes_ = std::move(executableBytes);
  plugin->retain(); // released in the destructor, which also frees `executable`
  if (Error e = m->checkProgram())
    return e;
  Expected<std::vector<Interval>> liveness = computeLiveness(m->parts_.program);
  if (!liveness)
    return liveness.takeError();
  m->liveness_ = liveness.take();
  m->inPlace_ = findInPlaceCandidates(m->parts_.program, m->liveness_);
  if (device)
    if (Error e = m->uploadConstants())
      return e;
  return m;
}

CompiledModule::~CompiledModule() {
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    cache_.clear();
    lastPlan_.reset();
  }
  freeBuffers(plugin_, constants_);
  if (executable_)
    if (auto destroy = plugin_->slot(&tessera_backend_api_t::executable_destroy))
      (void)takeCStatus(destroy(plugin_->instance(), executable_));
  plugin_->release();
}

Error CompiledModule::checkProgram() const {
  const fusion::FusedProgram &p = parts_.program;
  const ir::Function &fn = parts_.function;
  if (p.kernels.size() != p.schedule.kernels.size())
    return internalError("fused program has " + std::to_string(p.kernels.size()) + " kernel plans for " +
                         std::to_string(p.schedule.kernels.size()) + " Schedule IR kernels");
  std::vector<bool> written(fn.returns.size(), false);
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    const auto &binds = p.kernels[k].operands;
    const schedule::Kernel &kernel = p.schedule.kernels[k];
    if (binds.size() != kernel.operands.size())
      return internalError("kernel '" + kernel.name + "' has " + std::to_string(binds.size()) +
                           " operand bindings for " + std::to_string(kernel.operands.size()) + " operands");
    for (size_t o = 0; o < binds.size(); ++o) {
      const OperandBinding &b = binds[o];
      schedule::OperandRole role = kernel.operands[o].role;
      std::string where = "kernel '" + kernel.name + "' operand " + std::to_string(o);
      size_t limit = 0;
      switch (b.kind) {
      case OperandBinding::Kind::Param:
        limit = fn.params.size();
        if (role != schedule::OperandRole::In)
          return internalError(where + " writes to the caller's input " + std::to_string(b.index));
        break;
      case OperandBinding::Kind::Result:
        limit = fn.returns.size();
        if (b.index < limit && role != schedule::OperandRole::In)
          written[b.index] = true;
        break;
      case OperandBinding::Kind::Intermediate:
        limit = p.intermediates.size();
        break;
      case OperandBinding::Kind::Constant:
        limit = p.constants.size();
        if (role != schedule::OperandRole::In)
          return internalError(where + " writes to constant " + std::to_string(b.index));
        break;
      }
      if (b.index >= limit)
        return internalError(where + " is bound to index " + std::to_string(b.index) + " of " +
                             std::to_string(limit));
    }
  }
  for (size_t r = 0; r < written.size(); ++r)
    if (!written[r])
      return internalError("result " + std::to_string(r) + " of @" + fn.name + " is written by no kernel");
  for (const fusion::ConstantData &c : p.constants) {
    auto shape = c.type.staticShape();
    if (!shape)
      return internalError("constant '" + c.name + "' has a symbolic shape");
    uint64_t count = 1;
    for (int64_t d : *shape)
      count *= static_cast<uint64_t>(d);
    if (count * elementSize(c.type.dtype) != c.bytes.size())
      return internalError("constant '" + c.name + "' holds " + std::to_string(c.bytes.size()) +
                           " bytes for type " + c.type.str());
  }
  return Error::success();
}

Error CompiledModule::uploadConstants() {
  auto allocateFn = plugin_->slot(&tessera_backend_api_t::buffer_allocate);
  auto copyFn = plugin_->slot(&tessera_backend_api_t::buffer_copy_from_host);
  if (!parts_.program.constants.empty() && (!allocateFn || !copyFn))
    return makeError(ErrorCode::Unsupported, "plugin '" + plugin_->name() + "' cannot allocate and fill buffers");
  for (const fusion::ConstantData &c : parts_.program.constants) {
    tessera_backend_buffer_t *buffer = nullptr;
    uint64_t bytes = std::max<uint64_t>(c.bytes.size(), 1);
    if (Error e = takeCStatus(allocateFn(plugin_->instance(), device_->ordinal, bytes, &buffer)))
      return e;
    constants_.push_back(buffer);
    if (!c.bytes.empty())
      if (Error e = takeCStatus(copyFn(plugin_->instance(), buffer, 0, c.bytes.data(), c.bytes.size())))
        return e;
  }
  return Error::success();
}

Expected<std::shared_ptr<ShapePlan>>
CompiledModule::makePlan(const std::vector<std::vector<int64_t>> &inputShapes) const {
  const ir::Function &fn = parts_.function;
  const fusion::FusedProgram &p = parts_.program;
  Expected<shape::BoundShapes> bound = shape::bindShapes(fn, inputShapes);
  if (!bound)
    return bound.takeError();
  auto plan = std::make_shared<ShapePlan>();
  plan->inputShapes = inputShapes;
  plan->symbols = bound->symbols;
  for (ir::ValueId id : fn.returns)
    plan->outputShapes.push_back(bound->valueShapes[id]);
  for (const std::string &name : p.schedule.symbols) {
    auto it = bound->symbols.find(name);
    if (it == bound->symbols.end())
      return makeError(ErrorCode::ShapeMismatch,
                       "symbol '" + name + "' of @" + fn.name +
                           " is not determined by the input shapes; fix it when compiling "
                           "(tessera_compile_options_t.bind, `--bind " + name + "=N`)");
    plan->scalars.push_back(it->second);
  }
  for (const fusion::Intermediate &inter : p.intermediates) {
    Expected<std::vector<int64_t>> shape = shape::concreteShape(inter.type, bound->symbols);
    if (!shape)
      return shape.takeError();
    unsigned __int128 bytes = elementSize(inter.type.dtype);
    for (int64_t d : *shape)
      bytes *= static_cast<uint64_t>(d);
    if (bytes > (static_cast<unsigned __int128>(1) << 62))
      return makeError(ErrorCode::ResourceExhausted,
                       "intermediate '" + inter.name + "' would need more than 2^62 bytes");
    plan->intermediateBytes.push_back(static_cast<uint64_t>(bytes));
  }

  // Every operand's Schedule IR extent must match the memory bound to it, or
  // a kernel would read or write out of bounds.
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    const schedule::Kernel &kernel = p.schedule.kernels[k];
    for (size_t o = 0; o < kernel.operands.size(); ++o) {
      const schedule::Operand &operand = kernel.operands[o];
      __int128 elements = 1;
      for (const schedule::IndexExpr &e : operand.shape)
        elements *= schedule::evalIndex(e, plan->scalars.data(), nullptr, nullptr, nullptr);
      __int128 want = elements * static_cast<__int128>(schedule::dtypeSize(operand.dtype));
      const OperandBinding &b = p.kernels[k].operands[o];
      __int128 have = 0;
      ir::DType dtype = ir::DType::Invalid;
      switch (b.kind) {
      case OperandBinding::Kind::Param: {
        dtype = fn.typeOf(fn.params[b.index]).dtype;
        __int128 n = elementSize(dtype);
        for (int64_t d : inputShapes[b.index])
          n *= d;
        have = n;
        break;
      }
      case OperandBinding::Kind::Result: {
        dtype = fn.typeOf(fn.returns[b.index]).dtype;
        __int128 n = elementSize(dtype);
        for (int64_t d : plan->outputShapes[b.index])
          n *= d;
        have = n;
        break;
      }
      case OperandBinding::Kind::Intermediate:
        dtype = p.intermediates[b.index].type.dtype;
        have = plan->intermediateBytes[b.index];
        break;
      case OperandBinding::Kind::Constant:
        dtype = p.constants[b.index].type.dtype;
        have = static_cast<__int128>(p.constants[b.index].bytes.size());
        break;
      }
      if (static_cast<int32_t>(dtype) != static_cast<int32_t>(operand.dtype) || have != want)
        return internalError("kernel '" + kernel.name + "' operand " + std::to_string(o) + " expects " +
                             std::to_string(static_cast<int64_t>(want)) + " bytes of " +
                             schedule::dtypeName(operand.dtype) + "; the memory bound to it holds " +
                             std::to_string(static_cast<int64_t>(have)) + " bytes of " + ir::dtypeName(dtype));
    }
  }
  plan->buffers = planBuffers(liveness_, plan->intermediateBytes, inPlace_);
  plan->plugin = plugin_;
  return plan;
}

Expected<std::shared_ptr<const ShapePlan>>
CompiledModule::plan(const std::vector<std::vector<int64_t>> &inputShapes) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = cache_.find(inputShapes);
    if (it != cache_.end()) {
      planHits_.fetch_add(1, std::memory_order_relaxed);
      lastPlan_ = it->second;
      return std::shared_ptr<const ShapePlan>(it->second);
    }
  }
  Expected<std::shared_ptr<ShapePlan>> made = makePlan(inputShapes);
  if (!made)
    return made.takeError();
  std::lock_guard<std::mutex> lock(cacheMutex_);
  if (cache_.size() >= kMaxCachedPlans)
    cache_.clear();
  auto [it, inserted] = cache_.emplace(inputShapes, made.take());
  lastPlan_ = it->second;
  return std::shared_ptr<const ShapePlan>(it->second);
}

namespace {

// TESSERA_PROFILE_KERNELS=1: one stderr line per launch with its wall time
// (the launch call itself: exact for synchronous plugins such as cpu, enqueue
// time for asynchronous ones). A diagnostic aid for benchmarks.
bool profileKernels() {
  static const bool on = [] {
    const char *env = std::getenv("TESSERA_PROFILE_KERNELS");
    return env && *env && std::string(env) != "0";
  }();
  return on;
}

Error compileOnlyError() {
  return makeError(ErrorCode::NoDevice, "the module was compiled for a device description (compile-only); "
                                        "compile or load it for a live device to run it");
}

void reportKernelTime(size_t index, const std::string &name, const std::vector<std::string> &ops, double seconds) {
  std::string joined;
  for (const std::string &op : ops)
    joined += (joined.empty() ? "" : ",") + op;
  std::fprintf(stderr, "[tessera profile] k%zu %-24s %9.3f ms  %s\n", index, name.c_str(), seconds * 1e3,
               joined.c_str());
}

} // namespace

Error CompiledModule::execute(const ShapePlan &plan, const std::vector<tessera_backend_buffer_t *> &inputs,
                              const std::vector<tessera_backend_buffer_t *> &outputs, uint32_t numThreads,
                              bool async) {
  if (!device_)
    return compileOnlyError();
  auto launchFn = plugin_->slot(&tessera_backend_api_t::launch);
  auto syncFn = plugin_->slot(&tessera_backend_api_t::synchronize);
  auto allocateFn = plugin_->slot(&tessera_backend_api_t::buffer_allocate);
  if (!launchFn || !syncFn || !allocateFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + plugin_->name() + "' cannot launch kernels");
  if (!executable_)
    return internalError("module has no loaded executable");
  const fusion::FusedProgram &p = parts_.program;
  if (inputs.size() != parts_.function.params.size() || outputs.size() != parts_.function.returns.size())
    return internalError("execute: buffer counts differ from the signature");
  runs_.fetch_add(1, std::memory_order_relaxed);

  std::vector<tessera_backend_buffer_t *> arena;
  {
    std::lock_guard<std::mutex> lock(plan.poolMutex);
    if (!plan.pool.empty()) {
      arena = std::move(plan.pool.back());
      plan.pool.pop_back();
    }
  }
  if (arena.empty())
    for (uint64_t bytes : plan.buffers.slotBytes) {
      tessera_backend_buffer_t *b = nullptr;
      if (Error e = takeCStatus(allocateFn(plugin_->instance(), device_->ordinal, bytes, &b))) {
        freeBuffers(plugin_, arena);
        return e;
      }
      arena.push_back(b);
    }

  Error failure;
  std::vector<tessera_backend_buffer_t *> buffers;
  for (size_t k = 0; k < p.kernels.size() && !failure; ++k) {
    buffers.clear();
    for (const OperandBinding &b : p.kernels[k].operands) {
      switch (b.kind) {
      case OperandBinding::Kind::Param: buffers.push_back(inputs[b.index]); break;
      case OperandBinding::Kind::Result: buffers.push_back(outputs[b.index]); break;
      case OperandBinding::Kind::Intermediate: buffers.push_back(arena[plan.buffers.slotOf[b.index]]); break;
      case OperandBinding::Kind::Constant: buffers.push_back(constants_[b.index]); break;
      }
    }
    tessera_backend_launch_args_t args{};
    args.struct_size = sizeof(args);
    args.executable = executable_;
    args.kernel_index = static_cast<uint32_t>(k);
    args.device_ordinal = device_->ordinal;
    args.buffers = buffers.data();
    args.num_buffers = buffers.size();
    args.scalars = plan.scalars.data();
    args.num_scalars = plan.scalars.size();
    args.num_threads = numThreads;
    if (!profileKernels()) {
      failure = takeCStatus(launchFn(plugin_->instance(), &args));
      continue;
    }
    auto start = std::chrono::steady_clock::now();
    failure = takeCStatus(launchFn(plugin_->instance(), &args));
    reportKernelTime(k, p.schedule.kernels[k].name, p.kernels[k].fusedOps,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  // Synchronize even after a failed launch: earlier kernels may still use the arena.
  if (!async || failure) {
    Error synced = takeCStatus(syncFn(plugin_->instance(), device_->ordinal));
    if (!failure && synced)
      failure = std::move(synced);
  }
  {
    std::lock_guard<std::mutex> lock(plan.poolMutex);
    if (!failure && plan.pool.size() < kMaxPooledArenas) {
      plan.pool.push_back(std::move(arena));
      arena.clear();
    }
  }
  // buffer_free waits for the launches enqueued before it (tessera.h,
  // TESSERA_RUN_ASYNC), so an arena that does not fit the pool can go now.
  freeBuffers(plugin_, arena);
  return failure;
}

Error CompiledModule::synchronize() {
  if (!device_)
    return compileOnlyError();
  auto syncFn = plugin_->slot(&tessera_backend_api_t::synchronize);
  if (!syncFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + plugin_->name() + "' cannot synchronize");
  return takeCStatus(syncFn(plugin_->instance(), device_->ordinal));
}

Expected<std::string> CompiledModule::serialize() const {
  std::string bytes = executableBytes_;
  if (executable_) {
    auto serializeFn = plugin_->slot(&tessera_backend_api_t::executable_serialize);
    if (!serializeFn)
      return makeError(ErrorCode::Unsupported,
                       "plugin '" + plugin_->name() + "' cannot serialize executables (executable_serialize is NULL)");
    void *data = nullptr;
    size_t size = 0;
    if (Error e = takeCStatus(serializeFn(plugin_->instance(), executable_, &data, &size)))
      return e;
    const tessera_backend_host_t &host = plugin::hostServices();
    bytes.assign(static_cast<const char *>(data), size);
    if (data)
      host.deallocate(host.allocator_data, data);
  }
  return encodeModule(target_, plugin_->version(), parts_, bytes);
}

RuntimeStats CompiledModule::stats() const {
  RuntimeStats s;
  std::lock_guard<std::mutex> lock(cacheMutex_);
  if (lastPlan_) {
    s.arenaBytes = lastPlan_->buffers.arenaBytes;
    s.peakLiveBytes = lastPlan_->buffers.peakLiveBytes;
    s.intermediateBytes = lastPlan_->buffers.totalBytes;
    s.inPlace = lastPlan_->buffers.inPlace;
  }
  s.cachedPlans = cache_.size();
  s.planHits = planHits_.load(std::memory_order_relaxed);
  s.runs = runs_.load(std::memory_order_relaxed);
  return s;
}

} // namespace tessera::runtime
