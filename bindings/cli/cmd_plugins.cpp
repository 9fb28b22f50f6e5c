// `tessera plugins list`: every plugin candidate with its status, and the
// devices of the loaded ones.
#include "Command.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace tessera::cli {
namespace {

struct PluginsOptions {
  ContextOptions context;
  bool json = false;
};

std::string str(const char *s) { return s ? s : ""; }

std::string stateText(const tessera_plugin_info_t &p) {
  std::string s = tessera_plugin_state_name(p.state);
  if (p.state == TESSERA_PLUGIN_STATE_LOADED && p.device_count == 0)
    s += " (no device)";
  return s;
}

std::string formatBytes(uint64_t bytes) {
  char buf[32];
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

int listPlugins(const PluginsOptions &options) {
  tessera_context_t *context = createContext(options.context);
  if (!context)
    return kExitRuntime;
  nlohmann::json plugins = nlohmann::json::array();
  nlohmann::json devices = nlohmann::json::array();
  std::vector<tessera_plugin_info_t> infos;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_plugin_get_info(context, i, &info))
      return reportStatus(s, "plugin info");
    infos.push_back(info);
    bool negotiated = info.state == TESSERA_PLUGIN_STATE_LOADED || info.abi_major || info.abi_minor;
    std::string abi = negotiated ? std::to_string(info.abi_major) + "." + std::to_string(info.abi_minor) : "";
    plugins.push_back({{"name", str(info.name)},
                       {"kind", str(info.kind)},
                       {"state", tessera_plugin_state_name(info.state)},
                       {"reason", str(info.reason)},
                       {"device_status", tessera_status_code_name(info.device_status)},
                       {"abi_version", abi},
                       {"vendor", str(info.vendor)},
                       {"version", str(info.version)},
                       {"targets", str(info.targets)},
                       {"device_count", info.device_count},
                       {"has_manifest", info.has_manifest != 0},
                       {"path", str(info.path)}});
  }
  std::vector<tessera_device_info_t> deviceInfos;
  for (size_t i = 0; i < tessera_device_count(context); ++i) {
    tessera_device_t *device = nullptr;
    tessera_device_info_t info{};
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_context_get_device(context, i, &device))
      return reportStatus(s, "device");
    if (tessera_status_t *s = tessera_device_get_info(device, &info))
      return reportStatus(s, "device info");
    deviceInfos.push_back(info);
    devices.push_back({{"index", i},
                       {"plugin", str(info.plugin)},
                       {"ordinal", info.ordinal},
                       {"name", str(info.name)},
                       {"architecture", str(info.architecture)},
                       {"features", str(info.features)},
                       {"memory_bytes", info.memory_bytes},
                       {"compute_units", info.compute_units}});
  }

  if (options.json) {
    tessera_version_info_t version{};
    version.struct_size = TESSERA_VERSION_INFO_STRUCT_SIZE;
    (void)tessera_get_version(&version);
    nlohmann::json out = {{"tessera_version", str(version.version)},
                          {"abi_version", std::to_string(version.abi_major) + "." +
                                              std::to_string(version.abi_minor)},
                          {"plugins", plugins},
                          {"devices", devices}};
    std::cout << out.dump(2) << "\n";
  } else if (infos.empty()) {
    std::cout << "No plugin found. Searched --plugin-path, TESSERA_ADD_PLUGIN_PATH, TESSERA_PLUGIN_PATH\n"
                 "(or the default <libdir>/tessera/plugins and the directory of libtessera).\n";
  } else {
    // Column widths follow the content; reasons go on their own indented line.
    size_t nameWidth = 6, stateWidth = 5;
    for (const auto &p : infos) {
      nameWidth = std::max(nameWidth, str(p.name).size());
      stateWidth = std::max(stateWidth, stateText(p).size());
    }
    int nw = static_cast<int>(nameWidth), sw = static_cast<int>(stateWidth);
    std::printf("%-*s  %-*s  %-4s  %-8s  %-7s  %s\n", nw, "PLUGIN", sw, "STATE", "ABI", "VERSION", "DEVICES", "FILE");
    for (size_t i = 0; i < infos.size(); ++i) {
      const auto &p = infos[i];
      std::string abi = plugins[i]["abi_version"];
      std::printf("%-*s  %-*s  %-4s  %-8s  %-7u  %s\n", nw, p.name ? p.name : "-", sw, stateText(p).c_str(),
                  abi.empty() ? "-" : abi.c_str(), p.version ? p.version : "-", p.device_count,
                  str(p.path).c_str());
      if (p.reason && *p.reason)
        std::printf("%*s  %s\n", nw, "", p.reason);
    }
    if (!deviceInfos.empty()) {
      size_t pluginWidth = 6, archWidth = 4, devNameWidth = 4;
      for (const auto &d : deviceInfos) {
        pluginWidth = std::max(pluginWidth, str(d.plugin).size());
        archWidth = std::max(archWidth, str(d.architecture).size());
        devNameWidth = std::max(devNameWidth, str(d.name).size());
      }
      int pw = static_cast<int>(pluginWidth), aw = static_cast<int>(archWidth), dw = static_cast<int>(devNameWidth);
      std::printf("\n%-6s  %-*s  %-*s  %-5s  %-10s  %-*s  %s\n", "DEVICE", pw, "PLUGIN", aw, "ARCH", "UNITS",
                  "MEMORY", dw, "NAME", "FEATURES");
      for (size_t i = 0; i < deviceInfos.size(); ++i) {
        const auto &d = deviceInfos[i];
        std::printf("%-6zu  %-*s  %-*s  %-5u  %-10s  %-*s  %s\n", i, pw, str(d.plugin).c_str(), aw,
                    str(d.architecture).c_str(), d.compute_units, formatBytes(d.memory_bytes).c_str(), dw,
                    str(d.name).c_str(), str(d.features).c_str());
      }
    }
  }
  if (tessera_status_t *s = tessera_context_destroy(context))
    return reportStatus(s, "context shutdown");
  return kExitOk;
}

std::function<int()> setupPlugins(CLI::App &app) {
  auto options = std::make_shared<PluginsOptions>();
  CLI::App *cmd = app.add_subcommand("plugins", "Inspect backend plugins");
  cmd->require_subcommand(1);
  CLI::App *list = cmd->add_subcommand("list", "List every plugin candidate with its status and devices");
  options->context.addTo(*list);
  list->add_flag("--json", options->json, "Print machine-readable JSON");
  return [options, list]() { return list->parsed() ? listPlugins(*options) : kExitUsage; };
}

RegisterCommand registerPlugins{"plugins", setupPlugins};

} // namespace
} // namespace tessera::cli
