#include "Command.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tessera::cli {

std::vector<CommandSpec> &commandRegistry() {
  static std::vector<CommandSpec> registry;
  return registry;
}

int reportStatus(tessera_status_t *status, const std::string &what) {
  if (!status)
    return kExitOk;
  tessera_status_code_t code = tessera_status_code(status);
  std::string message = tessera_status_message(status);
  tessera_status_free(status);
  bool located = message.find(": error: ") != std::string::npos;
  if (located)
    std::fprintf(stderr, "%s\n", message.c_str());
  else
    std::fprintf(stderr, "tessera: error: %s%s%s [%s]\n", what.c_str(), what.empty() ? "" : ": ", message.c_str(),
                 tessera_status_code_name(code));
  switch (code) {
  case TESSERA_STATUS_INVALID_IR:
  case TESSERA_STATUS_SHAPE_MISMATCH:
  case TESSERA_STATUS_RESOURCE_EXHAUSTED:
    return kExitProblem;
  case TESSERA_STATUS_INVALID_ARGUMENT:
    return kExitUsage;
  default:
    return kExitRuntime;
  }
}

void ContextOptions::addTo(CLI::App &cmd) {
  cmd.add_option("--plugin-path", pluginPath,
                 "Colon-separated directories searched for plugins before the environment and defaults");
  cmd.add_flag("--no-load", noLoad, "Discover plugins and read their manifests without loading them");
}

tessera_context_t *createContext(const ContextOptions &options) {
  tessera_context_options_t opts{};
  opts.struct_size = TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE;
  opts.plugin_path = options.pluginPath.empty() ? nullptr : options.pluginPath.c_str();
  opts.flags = options.noLoad ? TESSERA_CONTEXT_FLAG_NO_LOAD : 0;
  tessera_context_t *context = nullptr;
  if (tessera_status_t *s = tessera_context_create(&opts, &context)) {
    reportStatus(s, "cannot create a context");
    return nullptr;
  }
  return context;
}

bool readFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "tessera: error: cannot open '%s': %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return true;
}

} // namespace tessera::cli
