// `tessera version`: package and ABI version of the libtessera in use.
#include "Command.h"

#include <cstdio>

namespace tessera::cli {
namespace {

std::function<int()> setupVersion(CLI::App &app) {
  auto json = std::make_shared<bool>(false);
  CLI::App *cmd = app.add_subcommand("version", "Print the version of libtessera and its ABI");
  cmd->add_flag("--json", *json, "Print machine-readable JSON");
  return [json]() {
    tessera_version_info_t v{};
    v.struct_size = TESSERA_VERSION_INFO_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_get_version(&v))
      return reportStatus(s, "version");
    if (*json)
      std::printf("{\"version\": \"%s\", \"abi_version\": \"%u.%u\", \"build\": \"%s\"}\n", v.version, v.abi_major,
                  v.abi_minor, v.build_info);
    else
      std::printf("tessera %s (ABI %u.%u; %s)\n", v.version, v.abi_major, v.abi_minor, v.build_info);
    return static_cast<int>(kExitOk);
  };
}

RegisterCommand registerVersion{"version", setupVersion};

} // namespace
} // namespace tessera::cli
