// Compile, module info, run, serialize and load: the C ABI over
// core/pipeline (compile) and core/runtime (modules and runs).
#include "api/Buffer.h"
#include "api/Context.h"
#include "api/Status.h"

#include "fusion/Fusion.h"
#include "pipeline/Pipeline.h"
#include "runtime/CompiledModule.h"
#include "runtime/Serialize.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#if TESSERA_HAVE_ONNX
#include "onnx/Importer.h"
#include "shape/ShapeInference.h"
#endif

using namespace tessera;
using namespace tessera::api;

namespace {

struct ValueInfo {
  std::string name;
  tessera_dtype_t dtype = TESSERA_DTYPE_INVALID;
  std::vector<std::string> symbols; // storage for dims[i].symbol
  std::vector<tessera_dim_t> dims;
};

ValueInfo describe(const ir::Value &v) {
  ValueInfo info;
  info.name = v.name;
  info.dtype = static_cast<tessera_dtype_t>(v.type.dtype);
  info.symbols.reserve(v.type.dims.size());
  for (const ir::Dim &d : v.type.dims) {
    std::optional<int64_t> c = d.constantValue();
    info.symbols.push_back(c ? std::string() : d.str());
    info.dims.push_back({c ? *c : -1, nullptr});
  }
  for (size_t i = 0; i < info.dims.size(); ++i)
    if (info.dims[i].size < 0)
      info.dims[i].symbol = info.symbols[i].c_str();
  return info;
}

std::string deviceName(const tessera_device_t *d) {
  return d ? d->plugin->name() + ":" + std::to_string(d->ordinal) : std::string("host memory");
}

} // namespace

struct tessera_module_t {
  std::unique_ptr<runtime::CompiledModule> module;
  std::vector<ValueInfo> inputs, outputs;
  // Output and staging buffers of runs, reused across runs (NULL for a
  // compile-only module). Outputs hand theirs back when the caller frees them.
  std::shared_ptr<BufferRecycler> buffers;

  explicit tessera_module_t(std::unique_ptr<runtime::CompiledModule> m) : module(std::move(m)) {
    const ir::Function &fn = module->function();
    for (ir::ValueId p : fn.params)
      inputs.push_back(describe(fn.value(p)));
    for (ir::ValueId r : fn.returns)
      outputs.push_back(describe(fn.value(r)));
    if (module->device())
      buffers = std::make_shared<BufferRecycler>(module->device());
  }
};

namespace {

// Resolves a compile/load target to a plugin and a device or description.
Expected<pipeline::Target> resolveTarget(tessera_context_t *context, const tessera_compile_target_t *target) {
  if (target->struct_size < TESSERA_COMPILE_TARGET_STRUCT_SIZE)
    return makeError(ErrorCode::InvalidArgument, "tessera_compile_target_t.struct_size is too small");
  pipeline::Target out;
  std::lock_guard<std::mutex> lock(context->mutex);
  if (target->device) {
    std::vector<tessera_device_t *> devices = context->registry->devices();
    if (std::find(devices.begin(), devices.end(), target->device) == devices.end())
      return makeError(ErrorCode::InvalidArgument, "the target device does not belong to this context");
    out.plugin = target->device->plugin;
    out.device = target->device;
    out.architecture = target->device->architecture;
    out.features = target->device->features;
    return out;
  }
  const tessera_device_description_t *d = target->description;
  if (!d)
    return makeError(ErrorCode::InvalidArgument, "the target has neither a device nor a description");
  if (d->struct_size < TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE || !d->plugin)
    return makeError(ErrorCode::InvalidArgument,
                     "the target description needs struct_size and a plugin name");
  out.plugin = context->registry->findLoaded(d->plugin);
  if (!out.plugin) {
    std::string loaded;
    for (const auto &p : context->registry->plugins())
      if (p->loaded())
        loaded += (loaded.empty() ? "" : ", ") + p->name();
    return makeError(ErrorCode::NotFound, std::string("no loaded plugin named '") + d->plugin + "' (loaded: " +
                                              (loaded.empty() ? "none" : loaded) + ")");
  }
  out.architecture = d->architecture ? d->architecture : "";
  out.features = d->features ? d->features : "";
  return out;
}

struct DumpTarget {
  tessera_dump_callback_t callback;
  void *userData;
};

tessera_status_t *badCount(const char *what, size_t got, const std::vector<ValueInfo> &values,
                           const std::string &fn) {
  std::string names;
  for (const ValueInfo &v : values)
    names += (names.empty() ? "%" : ", %") + v.name;
  return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "@" + fn + " takes " + std::to_string(values.size()) + " " +
                                                         what + " (" + names + "), got " + std::to_string(got));
}

// Copies `tensor` into a buffer of the module's device (for memory the
// plugin cannot launch on directly: imported DLPack host memory, views).
Expected<std::shared_ptr<Storage>> stage(const tessera_tensor_t *tensor, tessera_device_t *device,
                                         BufferRecycler &buffers) {
  Expected<std::shared_ptr<Storage>> storage = buffers.allocate(tensor->sizeBytes);
  if (!storage)
    return storage.takeError();
  if (tensor->sizeBytes == 0)
    return storage;
  plugin::Plugin *p = device->plugin;
  auto copyFn = p->slot(&tessera_backend_api_t::buffer_copy_from_host);
  if (!copyFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + p->name() + "' cannot copy to the device");
  if (Error e = takeCStatus(copyFn(p->instance(), (*storage)->backendBuffer(), 0, tensor->data, tensor->sizeBytes)))
    return e;
  return storage;
}

tessera_status_t *runModule(tessera_module_t *m, const tessera_run_options_t *options, size_t numInputs,
                            tessera_tensor_t *const *inputs, size_t numOutputs, tessera_tensor_t **outputs) {
  runtime::CompiledModule &cm = *m->module;
  const ir::Function &fn = cm.function();
  uint32_t threads = 0, flags = 0;
  if (options) {
    if (options->struct_size < TESSERA_RUN_OPTIONS_STRUCT_SIZE)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_run_options_t.struct_size is too small");
    threads = options->num_threads;
    if (options->struct_size >= offsetof(tessera_run_options_t, flags) + sizeof(uint32_t))
      flags = options->flags;
    if (uint32_t unknown = flags & ~uint32_t(TESSERA_RUN_ASYNC)) {
      char text[96];
      std::snprintf(text, sizeof(text), "tessera_run_options_t.flags has unknown bits 0x%x (known: 0x%x)", unknown,
                    uint32_t(TESSERA_RUN_ASYNC));
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, text);
    }
  }
  tessera_device_t *device = cm.device();
  if (!device)
    return makeStatus(TESSERA_STATUS_NO_DEVICE, "tessera_module_run: the module was compiled for a device "
                                                "description only (compile-only); compile or load it for a "
                                                "live device to run it");
  if (numInputs != m->inputs.size())
    return badCount("inputs", numInputs, m->inputs, fn.name);
  if (numOutputs != m->outputs.size())
    return badCount("outputs", numOutputs, m->outputs, fn.name);

  std::vector<std::vector<int64_t>> shapes(numInputs);
  std::vector<bool> needsStaging(numInputs);
  for (size_t i = 0; i < numInputs; ++i) {
    const tessera_tensor_t *t = inputs[i];
    auto which = [&] { return "input " + std::to_string(i) + " (%" + m->inputs[i].name + ")"; };
    if (!t)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, which() + " is NULL");
    if (t->dtype != m->inputs[i].dtype)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                        which() + " has dtype " + ir::dtypeName(static_cast<ir::DType>(t->dtype)) + ", expected " +
                            ir::dtypeName(static_cast<ir::DType>(m->inputs[i].dtype)));
    tessera_device_t *where = t->storage->device();
    bool hostMemoryOnCpu = !where && t->deviceKind == TESSERA_DEVICE_KIND_CPU && device->kind == TESSERA_DEVICE_KIND_CPU;
    if (where != device && !hostMemoryOnCpu)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, which() + " lives on " + deviceName(where) +
                                                             "; the module runs on " + deviceName(device) +
                                                             " (copy it there first)");
    needsStaging[i] = where != device || !t->storage->backendBuffer() || t->data != t->storage->data();
    shapes[i] = t->shape;
  }

  Expected<std::shared_ptr<const runtime::ShapePlan>> plan = cm.plan(shapes);
  if (!plan)
    return toStatus(plan.error());

  std::vector<std::shared_ptr<Storage>> staged;
  std::vector<tessera_backend_buffer_t *> inBuffers;
  for (size_t i = 0; i < numInputs; ++i) {
    if (!needsStaging[i]) {
      inBuffers.push_back(inputs[i]->storage->backendBuffer());
      continue;
    }
    Expected<std::shared_ptr<Storage>> s = stage(inputs[i], device, *m->buffers);
    if (!s)
      return toStatus(s.error());
    inBuffers.push_back((*s)->backendBuffer());
    staged.push_back(s.take());
  }

  std::vector<std::unique_ptr<tessera_tensor_t>> results;
  std::vector<tessera_backend_buffer_t *> outBuffers;
  for (size_t r = 0; r < numOutputs; ++r) {
    const std::vector<int64_t> &shape = (*plan)->outputShapes[r];
    uint64_t bytes = dtypeSize(m->outputs[r].dtype);
    for (int64_t d : shape)
      bytes *= static_cast<uint64_t>(d);
    Expected<std::shared_ptr<Storage>> s = m->buffers->allocate(bytes);
    if (!s)
      return toStatus(s.error());
    auto t = std::make_unique<tessera_tensor_t>();
    t->storage = s.take();
    t->dtype = m->outputs[r].dtype;
    t->shape = shape;
    t->data = t->storage->data();
    t->sizeBytes = bytes;
    t->deviceKind = device->kind;
    t->deviceOrdinal = static_cast<int32_t>(device->ordinal);
    outBuffers.push_back(t->storage->backendBuffer());
    results.push_back(std::move(t));
  }

  // Staged input copies are freed at return; buffer_free waits for the
  // launches that read them, so an asynchronous run may still use them.
  if (Error e = cm.execute(**plan, inBuffers, outBuffers, threads, (flags & TESSERA_RUN_ASYNC) != 0))
    return toStatus(e);
  for (size_t r = 0; r < numOutputs; ++r)
    outputs[r] = results[r].release();
  return nullptr;
}

// Stage 1 of the pipeline for either source format.
Expected<pipeline::Result> compileSource(const void *source, size_t size, bool onnx, const pipeline::Options &opts,
                                         const pipeline::Target &target) {
#if TESSERA_HAVE_ONNX
  if (onnx) {
    auto start = std::chrono::steady_clock::now();
    // External data files are relative to the model's directory.
    tessera::onnx::ImportOptions importOpts;
    importOpts.baseDir = std::filesystem::path(opts.sourceName).parent_path().string();
    Expected<ir::Module> module = tessera::onnx::importOnnx(source, size, importOpts);
    if (!module)
      return module.takeError();
    if (Error e = shape::verifyAndInfer(*module))
      return e;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return pipeline::compileModule(module.take(), opts, target, {{"onnx import", seconds}});
  }
#else
  (void)onnx;
#endif
  return pipeline::compile(std::string_view(static_cast<const char *>(source), size), opts, target);
}

tessera_status_t *valueInfo(const tessera_module_t *module, size_t index, tessera_value_info_t *out_info,
                            bool input) {
  const std::vector<ValueInfo> &values = input ? module->inputs : module->outputs;
  if (out_info->struct_size < TESSERA_VALUE_INFO_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_value_info_t.struct_size is too small");
  if (index >= values.size())
    return makeStatus(TESSERA_STATUS_NOT_FOUND, std::string(input ? "input " : "output ") + std::to_string(index) +
                                                    " of a module with " + std::to_string(values.size()));
  const ValueInfo &v = values[index];
  tessera_value_info_t info{};
  info.struct_size = sizeof(info);
  info.name = v.name.c_str();
  info.dtype = v.dtype;
  info.rank = static_cast<uint32_t>(v.dims.size());
  info.dims = v.dims.data();
  copyOut(out_info, info);
  return nullptr;
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_compile(tessera_context_t *context, const void *source, size_t size,
                                                 const char *format, const tessera_compile_options_t *options,
                                                 const tessera_compile_target_t *target,
                                                 tessera_module_t **out_module) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(source);
  TESSERA_API_REQUIRE(format);
  TESSERA_API_REQUIRE(target);
  TESSERA_API_REQUIRE(out_module);
  TESSERA_API_GUARD({
    bool onnx = std::strcmp(format, "onnx") == 0;
#if !TESSERA_HAVE_ONNX
    if (onnx)
      return makeStatus(TESSERA_STATUS_UNSUPPORTED, "tessera_compile: source format 'onnx' is not supported "
                                                    "(ONNX import is not built into this libtessera)");
#endif
    if (!onnx && std::strcmp(format, "tessera-ir") != 0)
      return makeStatus(TESSERA_STATUS_UNSUPPORTED, std::string("tessera_compile: unknown source format '") +
                                                        format + "' (supported: tessera-ir)");
    pipeline::Options opts;
    DumpTarget dumpTarget{nullptr, nullptr};
    if (options) {
      constexpr size_t kFirstRelease = offsetof(tessera_compile_options_t, schedule_file) + sizeof(const char *);
      if (options->struct_size < kFirstRelease)
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_compile_options_t.struct_size is too small");
      if (options->entry)
        opts.entry = options->entry;
      if (options->source_name)
        opts.sourceName = options->source_name;
      opts.optLevel = options->opt_level > 3 ? 3 : options->opt_level;
      if (options->dump) {
        Expected<std::set<std::string>> stages = pipeline::parseDumpStages(options->dump);
        if (!stages)
          return toStatus(stages.error());
        opts.dump = stages.take();
      }
      if (options->schedule_file)
        opts.scheduleFile = options->schedule_file;
      if (options->cache_dir)
        opts.cacheDir = options->cache_dir;
      if (options->struct_size >= offsetof(tessera_compile_options_t, bind) + sizeof(const char *) &&
          options->bind) {
        Expected<ir::SymbolBindings> bind = pipeline::parseBindings(options->bind);
        if (!bind)
          return toStatus(bind.error());
        opts.bind = bind.take();
      }
      if (options->dump_callback && !opts.dump.empty()) {
        dumpTarget = {options->dump_callback, options->dump_user_data};
        opts.dumpFn = [&dumpTarget](const std::string &stage, const std::string &text) {
          dumpTarget.callback(dumpTarget.userData, stage.c_str(), text.c_str(), text.size());
        };
      }
    }
    Expected<pipeline::Target> resolved = resolveTarget(context, target);
    if (!resolved)
      return toStatus(resolved.error());
    Expected<pipeline::Result> result = compileSource(source, size, onnx, opts, *resolved);
    if (!result)
      return toStatus(result.error());
    *out_module = new tessera_module_t(std::move(result->module));
    return nullptr;
  })
}

TESSERA_EXPORT void tessera_module_destroy(tessera_module_t *module) { delete module; }

TESSERA_EXPORT size_t tessera_module_input_count(const tessera_module_t *module) {
  return module ? module->inputs.size() : 0;
}
TESSERA_EXPORT size_t tessera_module_output_count(const tessera_module_t *module) {
  return module ? module->outputs.size() : 0;
}

TESSERA_EXPORT tessera_status_t *tessera_module_get_input(const tessera_module_t *module, size_t index,
                                                          tessera_value_info_t *out_info) {
  TESSERA_API_REQUIRE(module);
  TESSERA_API_REQUIRE(out_info);
  return valueInfo(module, index, out_info, true);
}

TESSERA_EXPORT tessera_status_t *tessera_module_get_output(const tessera_module_t *module, size_t index,
                                                           tessera_value_info_t *out_info) {
  TESSERA_API_REQUIRE(module);
  TESSERA_API_REQUIRE(out_info);
  return valueInfo(module, index, out_info, false);
}

TESSERA_EXPORT tessera_status_t *tessera_module_run(tessera_module_t *module, const tessera_run_options_t *options,
                                                    size_t num_inputs, tessera_tensor_t *const *inputs,
                                                    size_t num_outputs, tessera_tensor_t **outputs) {
  TESSERA_API_REQUIRE(module);
  if (num_inputs > 0)
    TESSERA_API_REQUIRE(inputs);
  if (num_outputs > 0)
    TESSERA_API_REQUIRE(outputs);
  TESSERA_API_GUARD({ return runModule(module, options, num_inputs, inputs, num_outputs, outputs); })
}

TESSERA_EXPORT tessera_status_t *tessera_module_synchronize(tessera_module_t *module) {
  TESSERA_API_REQUIRE(module);
  TESSERA_API_GUARD({
    if (Error e = module->module->synchronize())
      return toStatus(e);
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_module_serialize(const tessera_module_t *module,
                                                          tessera_blob_t **out_blob) {
  TESSERA_API_REQUIRE(module);
  TESSERA_API_REQUIRE(out_blob);
  TESSERA_API_GUARD({
    Expected<std::string> bytes = module->module->serialize();
    if (!bytes)
      return toStatus(bytes.error());
    *out_blob = makeBlob(bytes.take());
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_module_load(tessera_context_t *context, const void *data, size_t size,
                                                     const tessera_compile_target_t *target,
                                                     tessera_module_t **out_module) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(data);
  TESSERA_API_REQUIRE(target);
  TESSERA_API_REQUIRE(out_module);
  TESSERA_API_GUARD({
    Expected<runtime::ModuleImage> image =
        runtime::decodeModule(std::string_view(static_cast<const char *>(data), size));
    if (!image)
      return toStatus(image.error());
    if (std::string problem = fusion::validateFused(image->parts.program, image->parts.function); !problem.empty())
      return makeStatus(TESSERA_STATUS_CORRUPT_DATA, "serialized module is damaged: " + problem);
    Expected<pipeline::Target> resolved = resolveTarget(context, target);
    if (!resolved)
      return toStatus(resolved.error());
    plugin::Plugin *p = resolved->plugin;
    if (p->name() != image->target.plugin)
      return makeStatus(TESSERA_STATUS_INCOMPATIBLE_VERSION, "the module was compiled for plugin '" +
                                                                 image->target.plugin + "'; the target is plugin '" +
                                                                 p->name() + "'");
    tessera_backend_executable_t *executable = nullptr;
    std::string keptBytes;
    if (resolved->device) {
      auto loadFn = p->slot(&tessera_backend_api_t::executable_load);
      if (!loadFn)
        return makeStatus(TESSERA_STATUS_UNSUPPORTED,
                          "plugin '" + p->name() + "' cannot load executables (executable_load is NULL)");
      tessera_backend_load_args_t args{};
      args.struct_size = sizeof(args);
      args.data = image->executable.data();
      args.size = image->executable.size();
      args.device_ordinal = static_cast<int32_t>(resolved->device->ordinal);
      if (tessera_status_t *s = loadFn(p->instance(), &args, &executable))
        return s;
    } else {
      keptBytes = std::move(image->executable);
    }
    Expected<std::unique_ptr<runtime::CompiledModule>> module =
        runtime::CompiledModule::create(std::move(image->parts), p, resolved->device, image->target, executable,
                                        std::move(keptBytes));
    if (!module) {
      const Error &e = module.error();
      if (e.code() == ErrorCode::Internal)
        return makeStatus(TESSERA_STATUS_CORRUPT_DATA, "serialized module is damaged: " + e.message());
      return toStatus(e);
    }
    *out_module = new tessera_module_t(module.take());
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_module_get_stats(const tessera_module_t *module,
                                                          tessera_module_stats_t *out_stats) {
  TESSERA_API_REQUIRE(module);
  TESSERA_API_REQUIRE(out_stats);
  if (out_stats->struct_size < TESSERA_MODULE_STATS_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_module_stats_t.struct_size is too small");
  TESSERA_API_GUARD({
    runtime::RuntimeStats s = module->module->stats();
    tessera_module_stats_t out{};
    out.struct_size = sizeof(out);
    out.arena_bytes = s.arenaBytes;
    out.peak_live_bytes = s.peakLiveBytes;
    out.intermediate_bytes = s.intermediateBytes;
    out.cached_plans = s.cachedPlans;
    out.runs = s.runs;
    out.kernels = static_cast<uint32_t>(module->module->program().kernels.size());
    out.in_place = s.inPlace;
    copyOut(out_stats, out);
    return nullptr;
  })
}

} // extern "C"
