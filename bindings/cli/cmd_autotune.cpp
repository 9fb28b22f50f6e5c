// `tessera autotune FILE --target T [--budget 60s|--trials N] [--strategy S]
// [--bind ...] [--save-schedules out.yaml]`: searches schedules for every
// kernel (tessera_autotune), records them in the tuning cache, and prints a
// table per kernel. A progress bar on a terminal, plain lines otherwise.
#include "Command.h"
#include "Compile.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <unistd.h>

namespace tessera::cli {
namespace {

struct AutotuneArgs {
  std::string file, target = "cpu", budget, strategy = "model", bind, entry, saveSchedules, cacheDir, report;
  uint32_t trials = 0, repetitions = 0;
  ContextOptions context;
};

void onProgress(void *tty, const char *kernel, uint32_t index, uint32_t count, uint32_t measured, uint32_t budget) {
  if (tty) {
    int width = 30, filled = budget ? int(width * double(measured) / budget) : width;
    std::fprintf(stderr, "\r[%u/%u] %-24.24s [%-*.*s] %u/%u", index + 1, count, kernel, width, filled > width ? width : filled,
                 "##############################", measured, budget);
    std::fflush(stderr);
  } else {
    std::fprintf(stderr, "autotune: kernel %u/%u %s: measured %u/%u\n", index + 1, count, kernel, measured, budget);
  }
}

// "60s", "2m", "90" (seconds) -> seconds; < 0 on bad syntax.
double parseBudget(const std::string &text) {
  if (text.empty())
    return 0;
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? end : "";
  if (unit == "" || unit == "s")
    return v >= 0 ? v : -1;
  if (unit == "m" || unit == "min")
    return v >= 0 ? v * 60 : -1;
  if (unit == "ms")
    return v >= 0 ? v / 1000 : -1;
  return -1;
}

std::string us(const nlohmann::json &v) {
  if (!v.is_number() || v.get<double>() < 0)
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f us", v.get<double>() * 1e6);
  return buf;
}

int runAutotune(const AutotuneArgs &args) {
  double seconds = parseBudget(args.budget);
  if (seconds < 0) {
    std::fprintf(stderr, "tessera: error: bad --budget '%s' (e.g. 60s, 2m)\n", args.budget.c_str());
    return kExitUsage;
  }
  std::string source;
  if (!readFile(args.file, source))
    return kExitRuntime;
  tessera_context_t *context = createContext(args.context);
  if (!context)
    return kExitRuntime;
  std::string why;
  tessera_device_t *device = findPluginDevice(context, args.target, why);
  tessera_device_description_t description{};
  description.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
  description.plugin = args.target.c_str();
  if (!device)
    std::fprintf(stderr, "tessera: warning: no %s device (%s); choosing by the cost model only\n",
                 args.target.c_str(), why.c_str());
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = device;
  target.description = device ? nullptr : &description;
  tessera_compile_options_t options{};
  options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
  options.opt_level = 2;
  options.source_name = args.file.c_str();
  options.entry = args.entry.empty() ? nullptr : args.entry.c_str();
  options.bind = args.bind.empty() ? nullptr : args.bind.c_str();
  options.cache_dir = args.cacheDir.empty() ? nullptr : args.cacheDir.c_str();
  tessera_autotune_options_t at{};
  at.struct_size = TESSERA_AUTOTUNE_OPTIONS_STRUCT_SIZE;
  at.strategy = args.strategy.c_str();
  at.max_trials = args.trials ? args.trials : (seconds > 0 ? 1000000u : 0u);
  at.max_seconds = seconds;
  at.repetitions = args.repetitions;
  at.store = 1;
  at.progress = onProgress;
  at.progress_user_data = isatty(STDERR_FILENO) ? reinterpret_cast<void *>(1) : nullptr;
  tessera_blob_t *blob = nullptr;
  tessera_status_t *status = tessera_autotune(context, source.data(), source.size(), "tessera-ir", &options, &target,
                                              &at, &blob);
  if (at.progress_user_data)
    std::fprintf(stderr, "\n");
  int rc = kExitOk;
  if (status) {
    rc = reportStatus(status, "autotune");
  } else {
    std::string text(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
    tessera_blob_free(blob);
    nlohmann::json report = nlohmann::json::parse(text, nullptr, false);
    if (!args.report.empty())
      std::ofstream(args.report) << text;
    std::printf("%-28s %5s %5s %5s  %-40s %12s %12s %12s %8s\n", "kernel", "cands", "feas", "meas", "chosen",
                "predicted", "measured", "default", "speedup");
    std::string yaml = "# Tessera schedules chosen by `tessera autotune` (docs/schedule.md)\nversion: 1\nkernels:\n";
    for (const auto &k : report["kernels"]) {
      double d = k["default_s"].is_number() ? k["default_s"].get<double>() : -1;
      double m = k["measured_s"].is_number() ? k["measured_s"].get<double>() : -1;
      char speed[16] = "-";
      if (d > 0 && m > 0)
        std::snprintf(speed, sizeof(speed), "%.2fx", d / m);
      std::printf("%-28.28s %5d %5d %5d  %-40.40s %12s %12s %12s %8s\n", k["name"].get<std::string>().c_str(),
                  k["candidates"].get<int>(), k["feasible"].get<int>(), k["measured"].get<int>(),
                  k["chosen"].get<std::string>().c_str(), us(k["predicted_s"]).c_str(), us(k["measured_s"]).c_str(),
                  us(k["default_s"]).c_str(), speed);
      // Knob text "a=1 b=[1, 2] c=\"x\"" -> YAML flow map.
      std::string knobs = k["chosen"].get<std::string>(), flow;
      size_t pos = 0;
      while (pos < knobs.size()) {
        size_t eq = knobs.find('=', pos);
        if (eq == std::string::npos)
          break;
        size_t end = eq + 1;
        if (knobs[end] == '[')
          end = knobs.find(']', end) + 1;
        else if (knobs[end] == '"')
          end = knobs.find('"', end + 1) + 1;
        else
          end = std::min(knobs.find(' ', end), knobs.size());
        flow += (flow.empty() ? "" : ", ") + knobs.substr(pos, eq - pos) + ": " + knobs.substr(eq + 1, end - eq - 1);
        pos = end;
        while (pos < knobs.size() && knobs[pos] == ' ')
          ++pos;
      }
      yaml += "  " + k["name"].get<std::string>() + ":\n    hash: \"" + k["hash"].get<std::string>() +
              "\"\n    knobs: {" + flow + "}\n";
    }
    std::printf("strategy %s, %.1f s; schedules recorded in %s\n", report["strategy"].get<std::string>().c_str(),
                report["seconds"].get<double>(), report["cache"].get<std::string>().c_str());
    if (!args.saveSchedules.empty()) {
      std::ofstream out(args.saveSchedules);
      out << yaml;
      if (!out) {
        std::fprintf(stderr, "tessera: error: cannot write '%s'\n", args.saveSchedules.c_str());
        rc = kExitRuntime;
      }
    }
  }
  if (tessera_status_t *s = tessera_context_destroy(context))
    reportStatus(s, "context");
  return rc;
}

std::function<int()> setupAutotune(CLI::App &app) {
  auto args = std::make_shared<AutotuneArgs>();
  CLI::App *cmd = app.add_subcommand("autotune", "Search kernel schedules (cost model + measurement) and record "
                                                 "the best in the tuning cache");
  cmd->add_option("file", args->file, "The .tsr file")->required();
  cmd->add_option("--target", args->target, "Plugin (default: cpu)");
  cmd->add_option("--budget", args->budget, "Wall-clock budget of the whole search, e.g. 60s, 2m");
  cmd->add_option("--trials", args->trials, "Measured candidates per kernel (default 32)");
  cmd->add_option("--strategy", args->strategy, "exhaustive | model (cost-model top-k, default) | evolutionary")
      ->check(CLI::IsMember({"exhaustive", "model", "evolutionary"}));
  cmd->add_option("--repetitions", args->repetitions, "Timed runs per candidate (default 7)");
  cmd->add_option("--bind", args->bind, "Symbols fixed for tuning, e.g. B=8,S=128");
  cmd->add_option("--entry", args->entry, "Function (default: main)");
  cmd->add_option("--save-schedules", args->saveSchedules, "Write the chosen schedules as YAML");
  cmd->add_option("--cache-dir", args->cacheDir, "Tuning cache directory (default: $TESSERA_CACHE_DIR, XDG)");
  cmd->add_option("--report", args->report, "Write the full JSON report (every candidate) here");
  args->context.addTo(*cmd);
  return [args]() { return runAutotune(*args); };
}

RegisterCommand registerAutotune{"autotune", setupAutotune};

} // namespace
} // namespace tessera::cli
