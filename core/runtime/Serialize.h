// The serialized module format (tessera_module_serialize / _load).
//
// Layout, all integers little-endian:
//   magic      8 bytes  "TSRMOD\0\x1a"
//   version    u32      kModuleFormatVersion; another value is
//                       IncompatibleVersion (checked before anything else)
//   length     u64      bytes of the whole image, checksum included
//   body       sections, each string as u64 length + bytes:
//     compatibility: ABI major, ABI minor (u32 each), plugin name, plugin
//                    version, architecture, features
//     function:      Graph IR text of the compiled function (after passes)
//     schedule:      Schedule IR text ("tessera-schedule-v1")
//     kernels:       u32 count; per kernel u32 operand count, per operand
//                    u8 kind + u32 index; u32 fused-op count + strings
//     intermediates: u32 count; per entry name + type text
//     constants:     u32 count; per entry name + type text + bytes
//     executable:    the plugin's executable_serialize bytes
//   checksum   u64      FNV-1a 64 over everything before it
// Truncation, a bad magic or checksum, or a section that does not parse is
// CorruptData; a different format version or ABI major is
// IncompatibleVersion. The plugin validates its own executable bytes.
#ifndef TESSERA_RUNTIME_SERIALIZE_H
#define TESSERA_RUNTIME_SERIALIZE_H

#include "runtime/CompiledModule.h"

#include <string>
#include <string_view>

namespace tessera::runtime {

inline constexpr char kModuleMagic[8] = {'T', 'S', 'R', 'M', 'O', 'D', '\0', '\x1a'};
inline constexpr uint32_t kModuleFormatVersion = 1;

struct ModuleImage {
  uint32_t abiMajor = 0, abiMinor = 0;
  std::string pluginVersion;
  TargetInfo target;
  CompiledModule::Parts parts;
  std::string executable;
};

// True when `bytes` starts with the module magic.
bool looksLikeModule(std::string_view bytes);

std::string encodeModule(const TargetInfo &target, const std::string &pluginVersion,
                         const CompiledModule::Parts &parts, std::string_view executable);
Expected<ModuleImage> decodeModule(std::string_view bytes);

} // namespace tessera::runtime

#endif // TESSERA_RUNTIME_SERIALIZE_H
