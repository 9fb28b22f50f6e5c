// Schedules as files (YAML, docs/schedule.md): force a kernel's knobs by
// kernel name or structural hash; an entry may inherit another with `base:`
// and change some knobs (the `with_block(64, 64)` of issue 8):
//
//   version: 1
//   kernels:
//     matmul_0:              # kernel name ...
//       knobs: {mc: 64, kc: 256, nc: 512}
//     3f9a0c1d2e4b5a69:      # ... or structural hash (Key.h)
//       base: matmul_0
//       knobs: {mc: 128}
//
// Bad input never fails a compile: problems come back as messages and the
// affected kernels keep their default schedule.
#ifndef TESSERA_SCHEDULE_SCHEDULEFILE_H
#define TESSERA_SCHEDULE_SCHEDULEFILE_H

#include "schedule/Key.h"

#include <map>
#include <string>
#include <vector>

namespace tessera::sched {

struct ScheduleFile {
  std::map<std::string, Knobs> entries; // name or hash -> resolved knobs
  std::vector<std::string> problems;    // messages (file, entry, why)
};

// Reads and resolves inheritance. Never fails; see `problems`.
ScheduleFile loadScheduleFile(const std::string &path);
ScheduleFile parseScheduleText(const std::string &text, const std::string &name);

// Checks knob names, types and ranges against a kernel; "" when valid.
std::string checkKnobs(const schedule::Kernel &kernel, const Knobs &knobs);

struct SavedSchedule {
  std::string kernel, hash;
  Knobs knobs;
  std::string comment;
};
// The YAML text of a schedule file (readable back by parseScheduleText).
std::string printScheduleFile(const std::vector<SavedSchedule> &schedules);

} // namespace tessera::sched

#endif // TESSERA_SCHEDULE_SCHEDULEFILE_H
