// The optional YAML manifest beside a plugin (libtessera-backend-cpu.yaml next
// to libtessera-backend-cpu.so), read with yaml-cpp so listing works without
// loading the plugin:
//
//   name: cpu
//   vendor: Tessera
//   version: 0.1.0
//   abi_version: "0.1"
//   targets: [x86-64]
//   search_space:            # optional: knob values the schedule search tries
//     matmul:                # per Schedule IR kernel kind: matmul, loop, attention
//       - {library: cublaslt}
//       - {library: generic, gemm_path: [wgmma, mma_async], stages: [3, 4]}
//     loop:
//       - {warps: [4, 8]}
#ifndef TESSERA_PLUGIN_MANIFEST_H
#define TESSERA_PLUGIN_MANIFEST_H

#include "support/Error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessera::plugin {

// One alternative of a `search_space` entry: every combination of the
// listed values (a scalar is a list of one). Values stay text; the schedule
// search reads integers as integers.
struct KnobChoices {
  std::vector<std::pair<std::string, std::vector<std::string>>> knobs;
};

struct Manifest {
  std::string name;
  std::string vendor;
  std::string version;
  uint32_t abiMajor = 0;
  uint32_t abiMinor = 0;
  std::vector<std::string> targets;
  // Knob values of the plugin's own code generators, by kernel kind, added
  // to the core's generic space (docs/schedule.md): the core names no
  // plugin's knob values itself.
  std::map<std::string, std::vector<KnobChoices>> searchSpace;
};

// The manifest path for a plugin path: ".so" replaced by ".yaml".
std::string manifestPathFor(const std::string &pluginPath);

// std::nullopt when there is no manifest file; an Error (CorruptData, located
// at the YAML line) when it exists but is malformed.
Expected<std::optional<Manifest>> readManifest(const std::string &pluginPath);

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_MANIFEST_H
