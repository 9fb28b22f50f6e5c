// The compile pipeline, stage by stage:
//
//   1. parse + verify     .tsr text -> Graph IR, verified, shapes inferred
//                         (or an imported module: compileModule)
//   2. entry + bind       pick the function; fix compile-time symbols
//   3. graph passes       decompose, canonicalize, constant fold, CSE, DCE
//   4. fusion             Graph IR -> Schedule IR kernels + operand bindings
//   5. schedule           knobs: forced by the schedule file, else tuned
//                         (cache hit, from `tessera autotune`), else fusion's
//                         defaults; search itself never runs here
//   6. plugin compile     Schedule IR bytes -> the plugin's executable
//                         (or the cached serialized executable, loaded)
//   7. module             executable + bindings + constants uploaded once
//
// Every stage is timed (dump "time"); "graph", "schedule", "tile" and
// "target" dump the stage's text.
#include "pipeline/Pipeline.h"

#include "fusion/Fusion.h"
#include "ir/OpRegistry.h"
#include "schedule/ScheduleFile.h"
#include "schedule/Search.h"
#include "schedule/TuningCache.h"
#include "support/StringList.h"
#if TESSERA_HAVE_GRAPH_PASSES
#include "passes/Passes.h"
#endif
#include "shape/Decompose.h"
#include "shape/ShapeInference.h"
#include "support/CStatus.h"
#include "text/Parser.h"
#include "text/Printer.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

namespace tessera::pipeline {

namespace {

class StageTimer {
public:
  explicit StageTimer(std::vector<StageTime> &out) : out_(out) {}
  // Ends the running stage (if any) and starts `name`.
  void start(std::string name) {
    stop();
    name_ = std::move(name);
    begin_ = std::chrono::steady_clock::now();
  }
  void stop() {
    if (name_.empty())
      return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
    out_.push_back({name_, s});
    name_.clear();
  }

private:
  std::vector<StageTime> &out_;
  std::string name_;
  std::chrono::steady_clock::time_point begin_;
};

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

std::string timingText(const std::vector<StageTime> &timings) {
  std::string out;
  double total = 0;
  char line[128];
  for (const StageTime &t : timings) {
    std::snprintf(line, sizeof(line), "%-16s %9.3f ms\n", t.stage.c_str(), t.seconds * 1e3);
    out += line;
    total += t.seconds;
  }
  std::snprintf(line, sizeof(line), "%-16s %9.3f ms\n", "total", total * 1e3);
  return out + line;
}

struct DumpForward {
  const Options *options;
};

void forwardPluginDump(void *userData, const char *stage, const char *text, size_t size) {
  const Options &o = *static_cast<DumpForward *>(userData)->options;
  if (!stage || !text || !o.dumpFn || !o.dump.count(stage))
    return;
  o.dumpFn(stage, std::string(text, size));
}

// Stage 6: hands the Schedule IR text to the plugin.
Expected<tessera_backend_executable_t *> pluginCompile(const std::string &scheduleText, const Options &options,
                                                       const Target &target) {
  plugin::Plugin &p = *target.plugin;
  auto compileFn = p.slot(&tessera_backend_api_t::compile);
  if (!compileFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + p.name() + "' cannot compile (its compile entry is NULL)");
  tessera_device_description_t description{};
  description.struct_size = sizeof(description);
  description.plugin = p.name().c_str();
  description.architecture = target.architecture.empty() ? nullptr : target.architecture.c_str();
  description.features = target.features.empty() ? nullptr : target.features.c_str();
  std::string pluginStages;
  for (const char *s : {"tile", "target"})
    if (options.dump.count(s))
      pluginStages += (pluginStages.empty() ? "" : ",") + std::string(s);
  DumpForward forward{&options};
  tessera_backend_compile_args_t args{};
  args.struct_size = sizeof(args);
  args.program = scheduleText.data();
  args.program_size = scheduleText.size();
  args.program_format = schedule::kProgramFormat;
  args.target = &description;
  args.device_ordinal = target.device ? static_cast<int32_t>(target.device->ordinal) : -1;
  args.opt_level = options.optLevel;
  args.dump_stages = pluginStages.empty() ? nullptr : pluginStages.c_str();
  args.dump = pluginStages.empty() ? nullptr : forwardPluginDump;
  args.dump_user_data = &forward;
  tessera_backend_executable_t *executable = nullptr;
  if (Error e = takeCStatus(compileFn(p.instance(), &args, &executable)))
    return e;
  if (!executable)
    return makeError(ErrorCode::Internal, "plugin '" + p.name() + "' compiled without returning an executable");
  return executable;
}


void warn(const Options &options, const std::string &message) {
  if (options.warnFn)
    options.warnFn(message);
  else
    std::fprintf(stderr, "tessera: warning: %s\n", message.c_str());
}

// Stage 5: forced schedules (schedule file), else cached tuning results.
void applySchedules(schedule::Program &program, const Options &options, const Target &target,
                    sched::TuningCache *cache) {
  sched::ScheduleFile forced;
  if (!options.scheduleFile.empty()) {
    forced = sched::loadScheduleFile(options.scheduleFile);
    for (const std::string &p : forced.problems)
      warn(options, p);
  }
  sched::TargetKey tk = targetKey(options, target);
  sched::DeviceTarget dt{target.plugin, target.device, target.architecture, target.features};
  for (size_t i = 0; i < program.kernels.size(); ++i) {
    schedule::Kernel &k = program.kernels[i];
    std::string hash = sched::structuralHash(program, i);
    const sched::Knobs *knobs = nullptr;
    auto it = forced.entries.find(k.name);
    if (it == forced.entries.end())
      it = forced.entries.find(hash);
    if (it != forced.entries.end()) {
      knobs = &it->second;
      sched::Knobs merged = k.knobs;
      for (const auto &[key, v] : *knobs)
        merged[key] = v;
      std::string why = sched::checkKnobs(k, merged);
      if (why.empty()) {
        std::vector<int64_t> none(program.symbols.size(), 1);
        // Feasibility needs concrete sizes; with symbols left, only the
        // knob checks above apply.
        bool concrete = program.symbols.empty();
        if (concrete)
          why = sched::infeasibleReason(program, i, merged, none, dt);
      }
      if (!why.empty()) {
        warn(options, options.scheduleFile + ": kernel \"" + k.name + "\": " + why + "; using the default schedule");
        continue;
      }
      k.knobs = std::move(merged);
      continue;
    }
    if (!cache || !cache->enabled())
      continue;
    std::optional<sched::TuningRecord> rec = cache->lookupTuning(sched::tuningKey(program, i, nullptr, tk));
    if (!rec)
      continue;
    std::optional<sched::Knobs> tuned = sched::parseKnobs(rec->knobs);
    if (!tuned || !sched::checkKnobs(k, *tuned).empty()) {
      warn(options, "tuning cache: ignoring a malformed entry for kernel \"" + k.name + "\"");
      continue;
    }
    k.knobs = std::move(*tuned);
  }
}

std::string artifactKey(const std::string &scheduleText, const Options &options, const Target &target) {
  return "exe|" + sched::hashHex(scheduleText) + "|" + std::to_string(scheduleText.size()) + "|" +
         targetKey(options, target).str();
}

// Stage 6 from the artifact cache: the cached serialized executable,
// loaded onto the device (or kept as bytes for compile-only). nullopt on a
// miss or when loading fails (then the caller compiles).
struct CachedExecutable {
  tessera_backend_executable_t *executable = nullptr;
  std::string bytes; // compile-only
};
std::optional<CachedExecutable> loadCachedExecutable(sched::TuningCache &cache, const std::string &key,
                                                     const Options &options, const Target &target) {
  std::optional<std::string> bytes = cache.lookupArtifact(key);
  if (!bytes)
    return std::nullopt;
  CachedExecutable out;
  if (!target.device) {
    out.bytes = std::move(*bytes);
    return out;
  }
  auto loadFn = target.plugin->slot(&tessera_backend_api_t::executable_load);
  if (!loadFn)
    return std::nullopt;
  tessera_backend_load_args_t args{};
  args.struct_size = sizeof(args);
  args.data = bytes->data();
  args.size = bytes->size();
  args.device_ordinal = static_cast<int32_t>(target.device->ordinal);
  if (Error e = takeCStatus(loadFn(target.plugin->instance(), &args, &out.executable))) {
    warn(options, "artifact cache: cached executable rejected (" + e.message() + "); recompiling");
    return std::nullopt;
  }
  return out;
}

void storeExecutable(sched::TuningCache &cache, const std::string &key, tessera_backend_executable_t *exe,
                     const Target &target) {
  auto serializeFn = target.plugin->slot(&tessera_backend_api_t::executable_serialize);
  if (!serializeFn)
    return;
  void *data = nullptr;
  size_t size = 0;
  if (Error e = takeCStatus(serializeFn(target.plugin->instance(), exe, &data, &size)))
    return;
  const tessera_backend_host_t &host = plugin::hostServices();
  if (data) {
    cache.storeArtifact(key, std::string(static_cast<const char *>(data), size));
    host.deallocate(host.allocator_data, data);
  }
}

// Composite ops the plugin compiles whole (its NATIVE_OPS extension): the
// graph passes keep them, fusion emits one kernel each.
std::set<ir::OpKind> nativeOps(const plugin::Plugin *plugin) {
  std::set<ir::OpKind> out;
  if (plugin)
    for (const std::string &name : plugin->nativeOps())
      if (const ir::OpInfo *info = ir::lookupOp(name); info && info->group == ir::OpGroup::Composite)
        out.insert(info->kind);
  return out;
}

// Stages 2-4: entry, bindings, graph passes, fusion.
Expected<fusion::FusedProgram> frontEnd(ir::Module &module, ir::Function &fn, const Options &options,
                                        StageTimer &timer, const plugin::Plugin *plugin) {
  auto dump = [&](const char *stage, const std::string &text) {
    if (options.dumpFn && options.dump.count(stage))
      options.dumpFn(stage, text);
  };
  timer.start("entry+bind");
  Expected<size_t> entry = selectEntry(module, options.entry);
  if (!entry)
    return entry.takeError();
  fn = std::move(module.functions[*entry]);
  if (!options.bind.empty())
    if (Error e = specialize(fn, options.bind))
      return e;
  if (Error e = checkSymbolsDetermined(fn))
    return e;

  timer.start("graph passes");
#if TESSERA_HAVE_GRAPH_PASSES
  passes::PipelineOptions passOptions;
  passOptions.claimed = nativeOps(plugin);
  if (options.optLevel == 0)
    passOptions.canonicalize = passOptions.cse = passOptions.constantFold = false;
  if (Error e = passes::runGraphPasses(fn, passOptions))
    return e;
#else
  if (!nativeOps(plugin).count(ir::OpKind::Attention))
    if (Error e = shape::decomposeAttention(fn))
      return e;
#endif
  timer.stop();
  dump("graph", text::printFunction(fn));

  timer.start("fusion");
  fusion::FusionOptions fusionOptions;
  fusionOptions.fuse = options.optLevel > 0;
  Expected<fusion::FusedProgram> fused = fusion::fuse(fn, fusionOptions);
  if (!fused)
    return fused.takeError();
  if (std::string problem = fusion::validateFused(*fused, fn); !problem.empty())
    return internalError("fusion produced an invalid program: " + problem);
  return fused;
}

} // namespace

sched::TargetKey targetKey(const Options &options, const Target &target) {
  sched::TargetKey k;
  k.plugin = target.plugin ? target.plugin->name() : "";
  k.pluginVersion = target.plugin ? target.plugin->version() : "";
  k.architecture = target.architecture;
  k.features = target.features;
  k.optLevel = options.optLevel;
  return k;
}

Expected<fusion::FusedProgram> fuseSource(std::string_view source, const Options &options,
                                          const plugin::Plugin *plugin) {
  std::vector<StageTime> timings;
  StageTimer timer(timings);
  Expected<ir::Module> module = text::parseModule(source, options.sourceName);
  if (!module)
    return module.takeError();
  ir::Function fn;
  return frontEnd(*module, fn, options, timer, plugin);
}

Expected<Result> compile(std::string_view source, const Options &options, const Target &target) {
  // 1. Parse, verify, infer shapes.
  std::vector<StageTime> timings;
  StageTimer timer(timings);
  timer.start("parse+verify");
  Expected<ir::Module> module = text::parseModule(source, options.sourceName);
  if (!module)
    return module.takeError();
  timer.stop();
  return compileModule(module.take(), options, target, std::move(timings));
}

Expected<Result> compileModule(ir::Module module, const Options &options, const Target &target,
                               std::vector<StageTime> timings) {
  if (!target.plugin)
    return internalError("pipeline::compile without a plugin");
  Result result;
  result.timings = std::move(timings);
  StageTimer timer(result.timings);
  auto dump = [&](const char *stage, const std::string &text) {
    if (options.dumpFn && options.dump.count(stage))
      options.dumpFn(stage, text);
  };

  // 2-4. Entry, bindings, graph passes, fusion.
  ir::Function fn;
  Expected<fusion::FusedProgram> fused = frontEnd(module, fn, options, timer, target.plugin);
  if (!fused)
    return fused.takeError();

  // 5. Schedule: forced (schedule file), tuned (cache), else fusion's knobs.
  timer.start("schedule");
  std::unique_ptr<sched::TuningCache> cache;
  if (std::string dir = sched::resolveCacheDir(options.cacheDir); !dir.empty())
    cache = sched::TuningCache::open(dir, [&options](const std::string &m) { warn(options, m); });
  applySchedules(fused->schedule, options, target, cache.get());
  std::string scheduleText = schedule::printProgram(fused->schedule);
  timer.stop();
  if (options.dump.count("schedule"))
    dump("schedule", fusion::dumpFused(*fused)); // the text plus each kernel's bindings

  // 6. Plugin compile, or the cached executable (not when the plugin's
  // dumps are wanted: they come from its compile).
  timer.start("plugin compile");
  const bool useArtifacts = cache && cache->enabled() && !options.dump.count("tile") && !options.dump.count("target");
  std::string key = useArtifacts ? artifactKey(scheduleText, options, target) : std::string();
  std::optional<CachedExecutable> cached;
  if (useArtifacts)
    cached = loadCachedExecutable(*cache, key, options, target);
  tessera_backend_executable_t *executable = nullptr;
  std::string executableBytes;
  if (cached) {
    executable = cached->executable;
    executableBytes = std::move(cached->bytes);
  } else {
    Expected<tessera_backend_executable_t *> compiled = pluginCompile(scheduleText, options, target);
    if (!compiled)
      return compiled.takeError();
    executable = *compiled;
    if (useArtifacts)
      storeExecutable(*cache, key, executable, target);
  }

  // 7. Module (takes the executable; uploads constants to a live device).
  timer.start("module");
  runtime::TargetInfo info{target.plugin->name(), target.architecture, target.features};
  Expected<std::unique_ptr<runtime::CompiledModule>> compiled = runtime::CompiledModule::create(
      runtime::CompiledModule::Parts{std::move(fn), fused.take()}, target.plugin, target.device, std::move(info),
      executable, std::move(executableBytes));
  if (!compiled)
    return compiled.takeError();
  result.module = compiled.take();
  timer.stop();
  dump("time", timingText(result.timings));
  return result;
}

Expected<ir::SymbolBindings> parseBindings(std::string_view text) {
  ir::SymbolBindings out;
  for (const std::string &item : splitCommaList(text)) {
    size_t eq = item.find('=');
    std::string name = trim(item.substr(0, eq == std::string::npos ? item.size() : eq));
    std::string value = eq == std::string::npos ? "" : trim(item.substr(eq + 1));
    bool nameOk = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                  std::all_of(name.begin(), name.end(),
                              [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
    char *end = nullptr;
    long long v = value.empty() ? -1 : std::strtoll(value.c_str(), &end, 10);
    if (!nameOk || value.empty() || *end != '\0' || v < 0)
      return makeError(ErrorCode::InvalidArgument,
                       "bad symbol binding '" + item + "': expected NAME=VALUE with VALUE >= 0, e.g. H=8");
    if (!out.emplace(name, v).second)
      return makeError(ErrorCode::InvalidArgument, "symbol '" + name + "' is bound twice");
  }
  return out;
}

Expected<std::set<std::string>> parseDumpStages(std::string_view text) {
  std::set<std::string> out;
  for (const std::string &item : splitCommaList(text)) {
    bool known = std::any_of(std::begin(kDumpStages), std::end(kDumpStages),
                             [&](const char *s) { return item == s; });
    if (!known)
      return makeError(ErrorCode::InvalidArgument,
                       "unknown dump stage '" + item + "' (known: graph, schedule, tile, target, time)");
    out.insert(item);
  }
  return out;
}

Expected<size_t> selectEntry(const ir::Module &module, const std::string &entry) {
  if (module.functions.empty())
    return makeError(ErrorCode::NotFound, "the program has no function");
  const std::string &want = entry.empty() ? std::string("main") : entry;
  for (size_t i = 0; i < module.functions.size(); ++i)
    if (module.functions[i].name == want)
      return i;
  if (entry.empty())
    return size_t(0);
  std::string names;
  for (const ir::Function &f : module.functions)
    names += (names.empty() ? "@" : ", @") + f.name;
  return makeError(ErrorCode::NotFound, "no function @" + entry + " in the program (it has " + names + ")");
}

Error specialize(ir::Function &fn, const ir::SymbolBindings &bind) {
  std::vector<std::string> known = functionSymbols(fn);
  std::map<std::string, ir::Dim> subst;
  for (const auto &[name, value] : bind) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const std::string &s : known)
        list += (list.empty() ? "" : ", ") + s;
      return makeError(ErrorCode::InvalidArgument, "symbol '" + name + "' does not occur in @" + fn.name +
                                                       (list.empty() ? " (it has no symbols)"
                                                                     : " (its symbols: " + list + ")"));
    }
    subst.emplace(name, ir::Dim::constant(value));
  }
  auto apply = [&](ir::TensorType &type) -> Error {
    for (ir::Dim &d : type.dims) {
      Expected<ir::Dim> s = d.substitute(subst);
      if (!s)
        return s.takeError();
      d = s.take();
    }
    return Error::success();
  };
  for (ir::ValueId p : fn.params)
    if (Error e = apply(fn.value(p).type))
      return e;
  for (ir::TensorType &t : fn.resultTypes)
    if (Error e = apply(t))
      return e;
  for (ir::Operation &op : fn.ops)
    for (ir::TensorType &t : op.annotations)
      if (Error e = apply(t))
        return e;
  return shape::inferFunction(fn);
}

std::vector<std::string> functionSymbols(const ir::Function &fn) {
  std::vector<std::string> out = fn.paramSymbols();
  for (const ir::Value &v : fn.values)
    for (const ir::Dim &d : v.type.dims)
      for (const std::string &s : d.symbols())
        if (std::find(out.begin(), out.end(), s) == out.end())
          out.push_back(s);
  return out;
}

Error checkSymbolsDetermined(const ir::Function &fn) {
  std::vector<std::string> fromParams = fn.paramSymbols();
  for (const ir::Value &v : fn.values)
    for (const ir::Dim &d : v.type.dims)
      for (const std::string &s : d.symbols())
        if (std::find(fromParams.begin(), fromParams.end(), s) == fromParams.end()) {
          SourceLocation loc = v.definingOp >= 0 ? fn.ops[v.definingOp].loc : fn.loc;
          return makeError(ErrorCode::ShapeMismatch,
                           "symbol '" + s + "' (in the type of %" + v.name + ", " + v.type.str() +
                               ") is not determined by the shapes of @" + fn.name +
                               "'s parameters; bind it when compiling, e.g. --bind " + s +
                               "=8 (tessera_compile_options_t.bind)",
                           loc);
        }
  return Error::success();
}

} // namespace tessera::pipeline
