#include "api/Context.h"

#include "api/Status.h"

using namespace tessera;
using namespace tessera::api;

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_get_version(tessera_version_info_t *out_info) {
  TESSERA_API_REQUIRE(out_info);
  if (out_info->struct_size < TESSERA_VERSION_INFO_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_get_version: struct_size too small");
  tessera_version_info_t info{};
  info.struct_size = sizeof(info);
  info.abi_major = TESSERA_ABI_VERSION_MAJOR;
  info.abi_minor = TESSERA_ABI_VERSION_MINOR;
  info.version = TESSERA_PACKAGE_VERSION;
  info.build_info = TESSERA_BUILD_INFO;
  copyOut(out_info, info);
  return nullptr;
}

TESSERA_EXPORT tessera_status_t *tessera_context_create(const tessera_context_options_t *options,
                                                        tessera_context_t **out_context) {
  TESSERA_API_REQUIRE(out_context);
  TESSERA_API_GUARD({
    plugin::DiscoveryOptions discovery;
    bool noLoad = false;
    if (options) {
      if (options->struct_size < TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE)
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_context_create: options struct_size too small");
      if (options->plugin_path)
        discovery.explicitDirs = plugin::splitPathList(options->plugin_path);
      discovery.ignoreEnvironment = options->flags & TESSERA_CONTEXT_FLAG_IGNORE_ENVIRONMENT;
      discovery.noDefaultPaths = options->flags & TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS;
      noLoad = options->flags & TESSERA_CONTEXT_FLAG_NO_LOAD;
    }
    auto context = std::make_unique<tessera_context_t>();
    context->registry = plugin::PluginRegistry::discover(discovery, noLoad);
    *out_context = context.release();
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_context_destroy(tessera_context_t *context) {
  if (!context)
    return nullptr;
  TESSERA_API_GUARD({
    int64_t live = context->registry->liveObjects();
    if (live > 0)
      return makeStatus(TESSERA_STATUS_BUSY, "tessera_context_destroy: " + std::to_string(live) +
                                                 " module(s), buffer(s) or tensor(s) are still alive");
    std::string errors;
    for (const auto &p : context->registry->plugins())
      if (Error e = p->unload())
        errors += (errors.empty() ? "" : "; ") + e.message();
    delete context;
    if (!errors.empty())
      return makeStatus(TESSERA_STATUS_INTERNAL, "context destroyed, but shutdown reported: " + errors);
    return nullptr;
  })
}

TESSERA_EXPORT size_t tessera_plugin_count(const tessera_context_t *context) {
  return context ? context->registry->plugins().size() : 0;
}

TESSERA_EXPORT tessera_status_t *tessera_plugin_get_info(const tessera_context_t *context, size_t index,
                                                         tessera_plugin_info_t *out_info) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(out_info);
  if (out_info->struct_size < TESSERA_PLUGIN_INFO_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_plugin_get_info: struct_size too small");
  std::lock_guard<std::mutex> lock(context->mutex);
  const auto &plugins = context->registry->plugins();
  if (index >= plugins.size())
    return makeStatus(TESSERA_STATUS_NOT_FOUND, "plugin index " + std::to_string(index) + " out of range (" +
                                                    std::to_string(plugins.size()) + " plugins)");
  const plugin::Plugin &p = *plugins[index];
  auto orNull = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };
  tessera_plugin_info_t info{};
  info.struct_size = sizeof(info);
  info.path = p.path().c_str();
  info.name = orNull(p.name());
  info.vendor = orNull(p.vendor());
  info.version = orNull(p.version());
  info.kind = p.kind().c_str();
  info.state = p.state();
  info.abi_major = p.abiMajor();
  info.abi_minor = p.abiMinor();
  info.device_count = static_cast<uint32_t>(p.devices().size());
  info.reason = p.reason().c_str();
  info.device_status = p.deviceStatus();
  info.targets = p.targets().c_str();
  info.has_manifest = p.hasManifest() ? 1 : 0;
  copyOut(out_info, info);
  return nullptr;
}

TESSERA_EXPORT const char *tessera_plugin_state_name(tessera_plugin_state_t state) {
  switch (state) {
  case TESSERA_PLUGIN_STATE_LOADED: return "loaded";
  case TESSERA_PLUGIN_STATE_NOT_LOADED: return "not loaded";
  case TESSERA_PLUGIN_STATE_LOAD_ERROR: return "load error";
  case TESSERA_PLUGIN_STATE_MISSING_ENTRY: return "missing entry point";
  case TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION: return "incompatible version";
  case TESSERA_PLUGIN_STATE_ENTRY_FAILED: return "entry failed";
  case TESSERA_PLUGIN_STATE_INVALID_API: return "invalid function table";
  case TESSERA_PLUGIN_STATE_DUPLICATE: return "duplicate name";
  case TESSERA_PLUGIN_STATE_UNREADABLE: return "unreadable";
  case TESSERA_PLUGIN_STATE_NOT_A_PLUGIN: return "not a plugin";
  case TESSERA_PLUGIN_STATE_FORCE32: break;
  }
  return "unknown";
}

TESSERA_EXPORT tessera_status_t *tessera_plugin_unload(tessera_context_t *context, size_t index) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_GUARD({
    std::lock_guard<std::mutex> lock(context->mutex);
    const auto &plugins = context->registry->plugins();
    if (index >= plugins.size())
      return makeStatus(TESSERA_STATUS_NOT_FOUND, "plugin index " + std::to_string(index) + " out of range");
    return toStatus(plugins[index]->unload());
  })
}

TESSERA_EXPORT size_t tessera_device_count(const tessera_context_t *context) {
  if (!context)
    return 0;
  std::lock_guard<std::mutex> lock(context->mutex);
  return context->registry->devices().size();
}

TESSERA_EXPORT tessera_status_t *tessera_context_get_device(const tessera_context_t *context, size_t index,
                                                            tessera_device_t **out_device) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(out_device);
  std::lock_guard<std::mutex> lock(context->mutex);
  std::vector<tessera_device_t *> devices = context->registry->devices();
  if (index >= devices.size())
    return makeStatus(TESSERA_STATUS_NOT_FOUND, "device index " + std::to_string(index) + " out of range (" +
                                                    std::to_string(devices.size()) + " devices)");
  *out_device = devices[index];
  return nullptr;
}

TESSERA_EXPORT tessera_status_t *tessera_device_get_info(const tessera_device_t *device,
                                                         tessera_device_info_t *out_info) {
  TESSERA_API_REQUIRE(device);
  TESSERA_API_REQUIRE(out_info);
  if (out_info->struct_size < TESSERA_DEVICE_INFO_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_device_get_info: struct_size too small");
  tessera_device_info_t info{};
  info.struct_size = sizeof(info);
  info.plugin = device->plugin->name().c_str();
  info.name = device->name.c_str();
  info.architecture = device->architecture.c_str();
  info.features = device->features.c_str();
  info.memory_bytes = device->memoryBytes;
  info.compute_units = device->computeUnits;
  info.ordinal = device->ordinal;
  info.kind = device->kind;
  copyOut(out_info, info);
  return nullptr;
}

} // extern "C"
