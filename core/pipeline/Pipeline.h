// The compile pipeline: Graph IR text in, a runnable module out. The stages
// are listed, in order, in Pipeline.cpp.
#ifndef TESSERA_PIPELINE_PIPELINE_H
#define TESSERA_PIPELINE_PIPELINE_H

#include "fusion/FusedProgram.h"
#include "ir/Module.h"
#include "plugin/Plugin.h"
#include "schedule/Key.h"
#include "runtime/CompiledModule.h"
#include "support/Error.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::pipeline {

// Dump stages (tessera_compile_options_t.dump): "graph" (Graph IR after the
// passes), "schedule" (Schedule IR text), "tile" and "target" (from the
// plugin), "time" (per-stage compile timing).
inline constexpr const char *kDumpStages[] = {"graph", "schedule", "tile", "target", "time"};

struct Options {
  std::string entry;                 // "" = "main" if present, else the first function
  std::string sourceName = "<input>";
  uint32_t optLevel = 2;             // 0: no fusion and no simplifying passes
  std::set<std::string> dump;        // stages to dump
  std::function<void(const std::string &stage, const std::string &text)> dumpFn;
  ir::SymbolBindings bind;           // symbols fixed at compile time
  // Tuning/artifact cache directory (schedule/TuningCache.h): "" = default
  // ($TESSERA_CACHE_DIR, XDG), "off" = no cache.
  std::string cacheDir;
  std::string scheduleFile;          // YAML schedules to force (schedule/ScheduleFile.h)
  // Non-fatal problems (cache, schedule file); default: stderr.
  std::function<void(const std::string &message)> warnFn;
};

// Where to compile for: the plugin and either a live device or a description.
struct Target {
  plugin::Plugin *plugin = nullptr;
  tessera_device_t *device = nullptr; // NULL: compile-only
  std::string architecture;           // "" = the plugin's default
  std::string features;
};

struct StageTime {
  std::string stage;
  double seconds = 0;
};

struct Result {
  std::unique_ptr<runtime::CompiledModule> module;
  std::vector<StageTime> timings;
};

// Runs every stage. Errors: InvalidIR / ShapeMismatch (located) for the
// program, Unsupported (op, plugin cannot compile), NotFound (entry), the
// plugin's own errors.
Expected<Result> compile(std::string_view source, const Options &options, const Target &target);
// The same from stage 2 on, for a verified, inferred module from elsewhere
// (e.g. ONNX import); `timings` holds the stages already run.
Expected<Result> compileModule(ir::Module module, const Options &options, const Target &target,
                               std::vector<StageTime> timings = {});

// Stages 1-4 only: the fused program (Schedule IR with default knobs) of
// the entry function, for the schedule search (core/api/Autotune.cpp).
// `plugin` (may be null) decides which composites stay whole (its NATIVE_OPS).
Expected<fusion::FusedProgram> fuseSource(std::string_view source, const Options &options,
                                          const plugin::Plugin *plugin = nullptr);

// The target part of tuning keys (plugin, version, architecture, features,
// opt level).
sched::TargetKey targetKey(const Options &options, const Target &target);

// Pieces shared with the reference interpreter entry of the C API.

// "H=8,B=2" (spaces allowed) -> bindings. InvalidArgument on bad syntax,
// a negative value or a symbol given twice.
Expected<ir::SymbolBindings> parseBindings(std::string_view text);
// Parses a comma-separated dump list, checking the stage names.
Expected<std::set<std::string>> parseDumpStages(std::string_view text);
// The function to compile: `entry`, else "main", else the first one.
Expected<size_t> selectEntry(const ir::Module &module, const std::string &entry);
// Replaces the bound symbols by their values in every type of `fn` and
// re-infers it. Symbols the function does not mention are an error.
Error specialize(ir::Function &fn, const ir::SymbolBindings &bind);
// Every symbol of the function must be determined by the parameter shapes;
// others (e.g. a head count only in a reshape annotation) must be bound.
Error checkSymbolsDetermined(const ir::Function &fn);
// Symbols of `fn`: parameter symbols first (in order of appearance), then
// the others in order of first appearance.
std::vector<std::string> functionSymbols(const ir::Function &fn);

} // namespace tessera::pipeline

#endif // TESSERA_PIPELINE_PIPELINE_H
