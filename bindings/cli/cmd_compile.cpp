// `tessera compile FILE.tsr --target cpu [-o out.tsrm] [--dump=graph,schedule,tile,target] [--time]`:
// compiles through the whole pipeline with the plugin named by --target and
// optionally writes the serialized module (loadable with `tessera run`).
#include "Compile.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

namespace tessera::cli {
namespace {

struct CompileArgs {
  std::string file;
  std::string target = "cpu";
  std::string output;
  std::string dump;
  std::string entry;
  std::string bind;
  std::string arch;
  std::string pluginPath;
  int optLevel = 2;
  bool time = false;
};

int runCompile(const CompileArgs &args) {
  std::string source;
  if (!readFile(args.file, source))
    return kExitRuntime;
  ContextOptions contextOptions;
  contextOptions.pluginPath = args.pluginPath;
  tessera_context_t *context = createContext(contextOptions);
  if (!context)
    return kExitRuntime;
  std::string why;
  tessera_device_t *device = args.arch.empty() ? findPluginDevice(context, args.target, why) : nullptr;
  // With --arch, or without a live device, compile from a description (compile-only).
  tessera_device_description_t description{};
  description.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
  description.plugin = args.target.c_str();
  description.architecture = args.arch.empty() ? nullptr : args.arch.c_str();

  CompileRequest request;
  request.path = args.file;
  request.source = std::move(source);
  request.onnx = isOnnxPath(args.file);
  request.entry = args.entry;
  request.bind = args.bind;
  request.dump = args.dump;
  request.optLevel = args.optLevel;
  request.time = args.time;
  request.device = device;
  request.description = device ? nullptr : &description;
  tessera_module_t *module = nullptr;
  auto start = std::chrono::steady_clock::now();
  int rc = compileSource(context, request, &module);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (rc == kExitOk) {
    tessera_module_stats_t stats{};
    stats.struct_size = TESSERA_MODULE_STATS_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_module_get_stats(module, &stats))
      tessera_status_free(s);
    std::fprintf(stderr, "compiled %s for %s%s: %u kernels, %zu inputs, %zu outputs in %.1f ms\n",
                 args.file.c_str(), args.target.c_str(), device ? "" : " (compile-only)", stats.kernels,
                 tessera_module_input_count(module), tessera_module_output_count(module), ms);
    if (!args.output.empty()) {
      tessera_blob_t *blob = nullptr;
      if (tessera_status_t *s = tessera_module_serialize(module, &blob)) {
        rc = reportStatus(s, "serialize");
      } else {
        std::ofstream out(args.output, std::ios::binary);
        out.write(static_cast<const char *>(tessera_blob_data(blob)),
                  static_cast<std::streamsize>(tessera_blob_size(blob)));
        if (!out) {
          std::fprintf(stderr, "tessera: error: cannot write '%s'\n", args.output.c_str());
          rc = kExitRuntime;
        } else {
          std::fprintf(stderr, "wrote %s (%zu bytes)\n", args.output.c_str(), tessera_blob_size(blob));
        }
        tessera_blob_free(blob);
      }
    }
  }
  tessera_module_destroy(module);
  if (tessera_status_t *s = tessera_context_destroy(context))
    reportStatus(s, "context");
  return rc;
}

std::function<int()> setupCompile(CLI::App &app) {
  auto args = std::make_shared<CompileArgs>();
  CLI::App *cmd = app.add_subcommand("compile", "Compile Graph IR text (.tsr) or an ONNX model (.onnx) with a backend plugin; dump stages, "
                                                "time them, write a serialized module (.tsrm)");
  cmd->add_option("file", args->file, "The .tsr file")->required();
  cmd->add_option("--target", args->target, "Plugin to compile for (default: cpu)");
  cmd->add_option("-o,--output", args->output, "Write the serialized module here (load it with `tessera run`)");
  cmd->add_option("--dump", args->dump, "Comma-separated stages to print: graph, schedule, tile, target");
  cmd->add_flag("--time", args->time, "Print the compile time of every pipeline stage");
  cmd->add_option("--entry", args->entry, "Function to compile (default: main, else the first)");
  cmd->add_option("--bind", args->bind,
                  "Symbols fixed at compile time, e.g. H=8 (needed for symbols no parameter shape determines)");
  cmd->add_option("--arch", args->arch, "Compile for this architecture without a device (compile-only)");
  cmd->add_option("-O,--opt-level", args->optLevel, "Optimization level 0..3 (0: no fusion)")
      ->check(CLI::Range(0, 3));
  cmd->add_option("--plugin-path", args->pluginPath, "Colon-separated directories searched for plugins first");
  return [args]() { return runCompile(*args); };
}

RegisterCommand registerCompile{"compile", setupCompile};

} // namespace
} // namespace tessera::cli
