// What the CPU plugin reports about the host: model, cores, ISA features,
// memory, all read from the machine.
#ifndef TESSERA_BACKENDS_CPU_HOSTCPU_H
#define TESSERA_BACKENDS_CPU_HOSTCPU_H

#include <cstdint>
#include <string>

namespace tessera::cpu {

struct HostCpu {
  std::string modelName;     // /proc/cpuinfo "model name"
  std::string architecture;  // x86-64 micro-architecture level, e.g. "x86-64-v3"
  std::string features;      // comma-separated ISA features of interest
  uint32_t logicalCores = 0;
  uint64_t memoryBytes = 0;
  std::string vendor;        // /proc/cpuinfo "vendor_id", e.g. "AuthenticAMD"
  int family = 0;            // /proc/cpuinfo "cpu family" (x86)
  double mhz = 0;            // /proc/cpuinfo "cpu MHz" (a VM reports the base clock)
  // Data/unified cache sizes of cpu0 by level (L1, L2 per core; L3 shared),
  // from /sys/devices/system/cpu/cpu0/cache; 0 where not reported.
  uint64_t cacheBytes[3] = {0, 0, 0};
};

HostCpu detectHostCpu();

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_HOSTCPU_H
