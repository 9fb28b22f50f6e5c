#include "Compile.h"

#include <cstdio>
#include <cstring>

namespace tessera::cli {

tessera_device_t *findPluginDevice(tessera_context_t *context, const std::string &name, std::string &why) {
  for (size_t i = 0; i < tessera_device_count(context); ++i) {
    tessera_device_t *device = nullptr;
    tessera_device_info_t info{};
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_context_get_device(context, i, &device)) {
      tessera_status_free(s);
      continue;
    }
    if (tessera_status_t *s = tessera_device_get_info(device, &info)) {
      tessera_status_free(s);
      continue;
    }
    if (name == info.plugin)
      return device;
  }
  why = "no plugin named '" + name + "' is loaded (see `tessera plugins list`)";
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_plugin_get_info(context, i, &info)) {
      tessera_status_free(s);
      continue;
    }
    if (info.name && name == info.name) {
      why = "plugin '" + name + "' is " + tessera_plugin_state_name(info.state);
      if (info.state == TESSERA_PLUGIN_STATE_LOADED)
        why = "plugin '" + name + "' has no device";
      if (info.reason && *info.reason)
        why += std::string(": ") + info.reason;
      break;
    }
  }
  return nullptr;
}

namespace {

struct DumpState {
  bool time;
};

void printDump(void *user, const char *stage, const char *text, size_t size) {
  if (std::strcmp(stage, "time") == 0) {
    if (static_cast<DumpState *>(user)->time) {
      std::fprintf(stderr, "compile stages:\n");
      std::fwrite(text, 1, size, stderr);
    }
    return;
  }
  std::printf("==== %s ====\n", stage);
  std::fwrite(text, 1, size, stdout);
  if (size == 0 || text[size - 1] != '\n')
    std::printf("\n");
}

} // namespace

int compileSource(tessera_context_t *context, const CompileRequest &request, tessera_module_t **out_module) {
  DumpState state{request.time};
  std::string dump = request.dump;
  if (request.time)
    dump += dump.empty() ? "time" : ",time";
  tessera_compile_options_t options{};
  options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
  options.entry = request.entry.empty() ? nullptr : request.entry.c_str();
  options.source_name = request.path.c_str();
  options.opt_level = static_cast<uint32_t>(request.optLevel);
  options.dump = dump.empty() ? nullptr : dump.c_str();
  options.dump_callback = printDump;
  options.dump_user_data = &state;
  options.bind = request.bind.empty() ? nullptr : request.bind.c_str();
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = request.device;
  target.description = request.description;
  std::fflush(stdout);
  const char *format = request.path.size() > 5 && request.path.ends_with(".onnx") ? "onnx" : "tessera-ir";
  tessera_status_t *s = tessera_compile(context, request.source.data(), request.source.size(), format,
                                        &options, &target, out_module);
  std::fflush(stdout);
  return reportStatus(s, request.path);
}

bool isOnnxPath(const std::string &path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

bool isSerializedModule(const std::string &bytes) {
  return bytes.size() >= 8 && std::memcmp(bytes.data(), "TSRMOD\0\x1a", 8) == 0;
}

} // namespace tessera::cli
