// tessera_autotune and the tuning-cache entry points: the C ABI over
// core/schedule (Search.h, TuningCache.h).
#include "api/Context.h"
#include "api/Status.h"

#include "pipeline/Pipeline.h"
#include "schedule/Search.h"
#include "schedule/TuningCache.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

using namespace tessera;
using namespace tessera::api;

namespace {

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string num(double v) {
  if (!std::isfinite(v))
    return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

void warnStderr(const std::string &m) { std::fprintf(stderr, "tessera: warning: %s\n", m.c_str()); }

Expected<pipeline::Target> resolve(tessera_context_t *context, const tessera_compile_target_t *target) {
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
  if (!d || d->struct_size < TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE || !d->plugin)
    return makeError(ErrorCode::InvalidArgument, "the target needs a device or a description with a plugin name");
  out.plugin = context->registry->findLoaded(d->plugin);
  if (!out.plugin)
    return makeError(ErrorCode::NotFound, std::string("no loaded plugin named '") + d->plugin + "'");
  out.architecture = d->architecture ? d->architecture : "";
  out.features = d->features ? d->features : "";
  return out;
}

tessera_status_t *autotune(tessera_context_t *context, const void *source, size_t size, const char *format,
                           const tessera_compile_options_t *options, const tessera_compile_target_t *target,
                           const tessera_autotune_options_t *at, tessera_blob_t **out_report) {
  if (std::strcmp(format, "tessera-ir") != 0)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, std::string("tessera_autotune: source format '") + format +
                                                      "' is not supported (tessera-ir is)");
  pipeline::Options opts;
  if (options) {
    if (options->struct_size < offsetof(tessera_compile_options_t, schedule_file) + sizeof(const char *))
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_compile_options_t.struct_size is too small");
    if (options->entry)
      opts.entry = options->entry;
    if (options->source_name)
      opts.sourceName = options->source_name;
    opts.optLevel = options->opt_level > 3 ? 3 : options->opt_level;
    if (options->cache_dir)
      opts.cacheDir = options->cache_dir;
    if (options->struct_size >= TESSERA_COMPILE_OPTIONS_STRUCT_SIZE && options->bind) {
      Expected<ir::SymbolBindings> bind = pipeline::parseBindings(options->bind);
      if (!bind)
        return toStatus(bind.error());
      opts.bind = bind.take();
    }
  }
  sched::SearchOptions search;
  bool store = true;
  tessera_autotune_progress_fn_t progress = nullptr;
  void *progressData = nullptr;
  double totalSeconds = 0;
  if (at) {
    if (at->struct_size < TESSERA_AUTOTUNE_OPTIONS_STRUCT_SIZE)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_autotune_options_t.struct_size is too small");
    Expected<sched::Strategy> s = sched::parseStrategy(at->strategy ? at->strategy : "model");
    if (!s)
      return toStatus(s.error());
    search.strategy = *s;
    if (at->max_trials)
      search.maxTrials = at->max_trials;
    if (at->max_seconds < 0 || !std::isfinite(at->max_seconds))
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_autotune: max_seconds must be >= 0");
    totalSeconds = at->max_seconds;
    if (at->repetitions)
      search.repetitions = at->repetitions;
    if (at->warmup)
      search.warmup = at->warmup;
    if (at->seed)
      search.seed = at->seed;
    store = at->store != 0;
    progress = at->progress;
    progressData = at->progress_user_data;
  }
  Expected<pipeline::Target> resolved = resolve(context, target);
  if (!resolved)
    return toStatus(resolved.error());
  Expected<fusion::FusedProgram> fused =
      pipeline::fuseSource(std::string_view(static_cast<const char *>(source), size), opts, resolved->plugin);
  if (!fused)
    return toStatus(fused.error());
  const schedule::Program &program = fused->schedule;
  if (!program.symbols.empty()) {
    std::string list;
    for (const std::string &s : program.symbols)
      list += (list.empty() ? "" : ", ") + s;
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                      "tessera_autotune: symbols " + list + " are not fixed; bind them (e.g. --bind " +
                          program.symbols[0] + "=64) so kernels can be measured at concrete sizes");
  }
  std::unique_ptr<sched::TuningCache> cache;
  if (store)
    if (std::string dir = sched::resolveCacheDir(opts.cacheDir); !dir.empty())
      cache = sched::TuningCache::open(dir, warnStderr);
  sched::TargetKey tk = pipeline::targetKey(opts, *resolved);
  sched::DeviceTarget dt{resolved->plugin, resolved->device, resolved->architecture, resolved->features};
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  std::ostringstream json;
  json << "{\"strategy\":" << jsonString(sched::strategyName(search.strategy))
       << ",\"plugin\":" << jsonString(resolved->plugin->name()) << ",\"key\":" << jsonString(tk.str())
       << ",\"cache\":" << jsonString(cache && cache->enabled() ? cache->path() : "") << ",\"kernels\":[";
  const std::vector<int64_t> scalars;
  const size_t n = program.kernels.size();
  for (size_t i = 0; i < n; ++i) {
    sched::SearchOptions so = search;
    if (totalSeconds > 0)
      so.maxSeconds = std::max(0.001, (totalSeconds - elapsed()) / double(n - i));
    if (progress)
      so.progress = [&, i](const std::string &name, uint32_t measured, uint32_t budget) {
        progress(progressData, name.c_str(), uint32_t(i), uint32_t(n), measured, budget);
      };
    Expected<sched::KernelResult> r = sched::tuneKernel(program, i, scalars, dt, so);
    if (!r)
      return toStatus(r.error());
    if (cache && cache->enabled()) {
      sched::TuningRecord rec;
      rec.knobs = sched::printKnobs(r->chosen);
      rec.seconds = std::max(0.0, r->measuredSeconds);
      rec.predicted = std::max(0.0, r->predicted);
      rec.defaultSeconds = std::max(0.0, r->defaultSeconds);
      cache->storeTuning(sched::tuningKey(program, i, nullptr, tk), rec);
    }
    json << (i ? "," : "") << "{\"name\":" << jsonString(r->name) << ",\"hash\":" << jsonString(r->hash)
         << ",\"kind\":" << jsonString(r->matmul ? "matmul" : "loop") << ",\"candidates\":" << r->candidates
         << ",\"feasible\":" << r->feasible << ",\"measured\":" << r->measured
         << ",\"has_model\":" << (r->hasModel ? "true" : "false")
         << ",\"has_measurement\":" << (r->hasMeasurement ? "true" : "false")
         << ",\"chosen\":" << jsonString(sched::printKnobs(r->chosen)) << ",\"predicted_s\":" << num(r->predicted)
         << ",\"measured_s\":" << num(r->measuredSeconds) << ",\"default_predicted_s\":" << num(r->defaultPredicted)
         << ",\"default_s\":" << num(r->defaultSeconds) << ",\"all\":[";
    for (size_t c = 0; c < r->all.size(); ++c) {
      const sched::Candidate &cand = r->all[c];
      json << (c ? "," : "") << "{\"knobs\":" << jsonString(sched::printKnobs(cand.knobs))
           << ",\"feasible\":" << (cand.feasible ? "true" : "false") << ",\"predicted_s\":" << num(cand.predicted)
           << ",\"measured_s\":" << num(cand.measured);
      if (!cand.feasible)
        json << ",\"reason\":" << jsonString(cand.reason);
      json << "}";
    }
    json << "]}";
  }
  json << "],\"seconds\":" << num(elapsed()) << "}";
  *out_report = makeBlob(json.str());
  return nullptr;
}

std::unique_ptr<sched::TuningCache> openCache(const char *dir, std::string &resolved) {
  resolved = sched::resolveCacheDir(dir ? dir : "");
  return sched::TuningCache::open(resolved, warnStderr);
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_autotune(tessera_context_t *context, const void *source, size_t size,
                                                  const char *format, const tessera_compile_options_t *options,
                                                  const tessera_compile_target_t *target,
                                                  const tessera_autotune_options_t *autotune_options,
                                                  tessera_blob_t **out_report) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(source);
  TESSERA_API_REQUIRE(format);
  TESSERA_API_REQUIRE(target);
  TESSERA_API_REQUIRE(out_report);
  TESSERA_API_GUARD(
      { return autotune(context, source, size, format, options, target, autotune_options, out_report); })
}

TESSERA_EXPORT tessera_status_t *tessera_cache_stats(const char *cache_dir, tessera_blob_t **out_report) {
  TESSERA_API_REQUIRE(out_report);
  TESSERA_API_GUARD({
    std::string dir;
    std::unique_ptr<sched::TuningCache> cache = openCache(cache_dir, dir);
    Expected<sched::CacheStats> s = cache->stats();
    if (!s)
      return toStatus(s.error());
    std::ostringstream json;
    json << "{\"path\":" << jsonString(s->path) << ",\"enabled\":" << (cache->enabled() ? "true" : "false")
         << ",\"tuning_entries\":" << s->tuningEntries << ",\"artifact_entries\":" << s->artifactEntries
         << ",\"artifact_bytes\":" << s->artifactBytes << ",\"file_bytes\":" << s->fileBytes << "}";
    *out_report = makeBlob(json.str());
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_cache_clear(const char *cache_dir) {
  TESSERA_API_GUARD({
    std::string dir;
    std::unique_ptr<sched::TuningCache> cache = openCache(cache_dir, dir);
    if (Error e = cache->clear())
      return toStatus(e);
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_cache_export(const char *cache_dir, const char *file) {
  TESSERA_API_REQUIRE(file);
  TESSERA_API_GUARD({
    std::string dir;
    std::unique_ptr<sched::TuningCache> cache = openCache(cache_dir, dir);
    if (Error e = cache->exportTo(file))
      return toStatus(e);
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_cache_import(const char *cache_dir, const char *file,
                                                      uint64_t *out_imported) {
  TESSERA_API_REQUIRE(file);
  TESSERA_API_GUARD({
    std::string dir;
    std::unique_ptr<sched::TuningCache> cache = openCache(cache_dir, dir);
    Expected<int64_t> n = cache->importFrom(file);
    if (!n)
      return toStatus(n.error());
    if (out_imported)
      *out_imported = uint64_t(*n);
    return nullptr;
  })
}

} // extern "C"
