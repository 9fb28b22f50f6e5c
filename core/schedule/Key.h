// Cache keys: a kernel's structural hash (its Schedule IR text without the
// knobs and the name) plus everything else that changes the best schedule or
// the generated code (concrete shapes, dtypes, plugin, device, options).
#ifndef TESSERA_SCHEDULE_KEY_H
#define TESSERA_SCHEDULE_KEY_H

#include "tessera/sdk/schedule_ir.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tessera::sched {

using Knobs = std::map<std::string, schedule::KnobValue>;

// 64-bit FNV-1a (Fowler, Noll, Vo), as 16 lowercase hex digits.
std::string hashHex(const std::string &bytes);

// The kernel's Schedule IR text with knobs and name removed (symbols
// included), and its hash.
std::string structuralText(const schedule::Program &program, size_t kernel);
std::string structuralHash(const schedule::Program &program, size_t kernel);

// What identifies a compile target and the options that affect codegen.
struct TargetKey {
  std::string plugin, pluginVersion, architecture, features;
  uint32_t optLevel = 2;
  std::string str() const;
};

// The tuning key of kernel `kernel`: structural hash, concrete operand
// shapes (symbols evaluated from `scalars` when given, else printed), dtypes
// and the target.
std::string tuningKey(const schedule::Program &program, size_t kernel, const std::vector<int64_t> *scalars,
                      const TargetKey &target);

// "mc=64 kc=256 tile=[1, 64] library=\"generic\"" (the Schedule IR knob syntax).
std::string printKnobs(const Knobs &knobs);
// Inverse of printKnobs; nullopt on malformed text.
std::optional<Knobs> parseKnobs(const std::string &text);

} // namespace tessera::sched

#endif // TESSERA_SCHEDULE_KEY_H
