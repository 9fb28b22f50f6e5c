// The optional YAML manifest beside a plugin (libtessera-backend-cpu.yaml next
// to libtessera-backend-cpu.so), read with yaml-cpp so listing works without
// loading the plugin:
//
//   name: cpu
//   vendor: Tessera
//   version: 0.1.0
//   abi_version: "0.1"
//   targets: [x86-64]
#ifndef TESSERA_PLUGIN_MANIFEST_H
#define TESSERA_PLUGIN_MANIFEST_H

#include "support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera::plugin {

struct Manifest {
  std::string name;
  std::string vendor;
  std::string version;
  uint32_t abiMajor = 0;
  uint32_t abiMinor = 0;
  std::vector<std::string> targets;
};

// The manifest path for a plugin path: ".so" replaced by ".yaml".
std::string manifestPathFor(const std::string &pluginPath);

// std::nullopt when there is no manifest file; an Error (CorruptData, located
// at the YAML line) when it exists but is malformed.
Expected<std::optional<Manifest>> readManifest(const std::string &pluginPath);

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_MANIFEST_H
