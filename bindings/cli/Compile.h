// Shared by `tessera compile` and `tessera run`: picking the target device
// and compiling a .tsr file through tessera_compile().
#ifndef TESSERA_CLI_COMPILE_H
#define TESSERA_CLI_COMPILE_H

#include "Command.h"

#include <string>

namespace tessera::cli {

// The first device of plugin `name`; NULL when it has none (then `why` says
// why: not loaded, no device and the plugin's reason).
tessera_device_t *findPluginDevice(tessera_context_t *context, const std::string &name, std::string &why);

struct CompileRequest {
  std::string path;     // for diagnostics
  std::string source;   // .tsr text, or ONNX bytes when `onnx`
  bool onnx = false;    // source is a serialized ONNX ModelProto
  std::string entry;    // "" = main / first
  std::string bind;     // compile-time symbol bindings, "H=8"
  std::string dump;     // stages to print
  int optLevel = 2;
  bool time = false;    // print the per-stage compile timing
  tessera_device_t *device = nullptr;              // live target, or
  const tessera_device_description_t *description = nullptr; // compile-only
};

// Compiles; dumps go to stdout ("==== stage ====" headers), the timing
// table to stderr. Returns the exit code; *out_module on success.
int compileSource(tessera_context_t *context, const CompileRequest &request, tessera_module_t **out_module);

// True for a path ending in ".onnx".
bool isOnnxPath(const std::string &path);

// True when `bytes` is a serialized module (tessera_module_serialize).
bool isSerializedModule(const std::string &bytes);

} // namespace tessera::cli

#endif // TESSERA_CLI_COMPILE_H
