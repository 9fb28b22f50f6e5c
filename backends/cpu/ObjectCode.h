// The serialized form of a CPU executable (executable_serialize /
// executable_load): the Schedule IR it was compiled from (the launcher
// needs its kernels' operands and loops) plus the machine code, so loading
// links objects instead of generating code again. No LLVM types here.
//
// Layout, little-endian; str = u32 length + bytes, blob = u64 length + bytes:
//   "TSRCPUJ1", u32 format version,
//   u32 opt level, str architecture, str LLVM CPU, str LLVM features,
//   blob Schedule IR text,
//   str LLVM version, str triple, str data layout,
//   str micro-kernel symbol, u32 mr, u32 nr,
//   u32 kernel count, per kernel: str loop symbol, str epilogue symbol,
//   u32 object count, per object: blob relocatable ELF,
//   u64 checksum (checksum() of every preceding byte).
// The version covers this layout and the calling convention of the
// generated code (Codegen.h): bump it when either changes.
#ifndef TESSERA_BACKENDS_CPU_OBJECTCODE_H
#define TESSERA_BACKENDS_CPU_OBJECTCODE_H

#include "Codegen.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::cpu {

inline constexpr uint32_t kExecutableFormatVersion = 3;

struct SerializedExecutable {
  unsigned optLevel = 3;
  TargetInfo target; // architecture, cpu and features are stored; the rest is derived
  std::string scheduleText;
  ObjectImage image;
};

// Why bytes were refused; the plugin answers CORRUPT_DATA or
// INCOMPATIBLE_VERSION with the message.
struct DecodeError {
  enum class Kind { Corrupt, Incompatible };
  Kind kind = Kind::Corrupt;
  std::string message;
};

std::string encodeExecutable(const SerializedExecutable &exe);

// Checks magic, format version, checksum and every length against the
// bytes; never reads outside them. Compatibility with this host (LLVM,
// triple, CPU features) is the caller's check.
bool decodeExecutable(std::string_view bytes, SerializedExecutable *out, DecodeError *error);

// 64-bit checksum of the trailer (FNV-1a over 8-byte words, then the tail
// bytes): catches damaged cache entries, not deliberate forgery.
uint64_t checksum(const void *data, size_t size);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_OBJECTCODE_H
