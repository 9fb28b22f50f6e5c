#include "HostCpu.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>
#include <vector>

namespace tessera::cpu {

namespace {

// Kernel flag name -> name we report (the kernel's names are kept where they
// are already the common ones).
struct FeatureName {
  const char *kernel;
  const char *reported;
};
constexpr FeatureName kFeatures[] = {
    {"sse4_2", "sse4.2"},       {"avx", "avx"},               {"avx2", "avx2"},
    {"fma", "fma"},             {"f16c", "f16c"},             {"avx512f", "avx512f"},
    {"avx512bw", "avx512bw"},   {"avx512cd", "avx512cd"},     {"avx512dq", "avx512dq"},
    {"avx512vl", "avx512vl"},   {"avx512_vnni", "avx512vnni"}, {"avx512_bf16", "avx512bf16"},
    {"avx512_fp16", "avx512fp16"}, {"avx_vnni", "avxvnni"},   {"amx_tile", "amx-tile"},
    {"amx_bf16", "amx-bf16"},   {"amx_int8", "amx-int8"},     {"asimd", "neon"},
    {"sve", "sve"},
};

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

} // namespace

HostCpu detectHostCpu() {
  HostCpu cpu;
  std::set<std::string> flags;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (cpu.modelName.empty() && (key == "model name" || key == "Model" || key == "cpu model"))
      cpu.modelName = value;
    if (cpu.vendor.empty() && key == "vendor_id")
      cpu.vendor = value;
    if (cpu.family == 0 && key == "cpu family")
      cpu.family = std::atoi(value.c_str());
    if (cpu.mhz == 0 && key == "cpu MHz")
      cpu.mhz = std::atof(value.c_str());
    if (flags.empty() && (key == "flags" || key == "Features")) {
      std::istringstream words(value);
      std::string w;
      while (words >> w)
        flags.insert(w);
    }
  }
  if (cpu.modelName.empty())
    cpu.modelName = "unknown CPU";

  std::string features;
  for (const FeatureName &f : kFeatures)
    if (flags.count(f.kernel))
      features += (features.empty() ? "" : ",") + std::string(f.reported);
  cpu.features = features;

#if defined(__x86_64__)
  // x86-64 micro-architecture levels as defined by the x86-64 psABI (v2..v4).
  auto has = [&](std::initializer_list<const char *> names) {
    for (const char *n : names)
      if (!flags.count(n))
        return false;
    return true;
  };
  cpu.architecture = "x86-64";
  if (has({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})) {
    cpu.architecture = "x86-64-v2";
    if (has({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})) {
      cpu.architecture = "x86-64-v3";
      if (has({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}))
        cpu.architecture = "x86-64-v4";
    }
  }
#elif defined(__aarch64__)
  cpu.architecture = "aarch64";
#else
  cpu.architecture = "unknown";
#endif

  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
    if (!level)
      break;
    int lv = 0;
    std::string ty, sz;
    level >> lv;
    type >> ty;
    size >> sz;
    if (ty == "Instruction" || lv < 1 || lv > 3)
      continue;
    // "32K", "1024K", "32M".
    uint64_t bytes = std::strtoull(sz.c_str(), nullptr, 10);
    if (sz.find('K') != std::string::npos)
      bytes <<= 10;
    else if (sz.find('M') != std::string::npos)
      bytes <<= 20;
    cpu.cacheBytes[lv - 1] = bytes;
  }

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  cpu.logicalCores = cores > 0 ? static_cast<uint32_t>(cores) : 1;
  long pages = sysconf(_SC_PHYS_PAGES);
  long pageSize = sysconf(_SC_PAGESIZE);
  if (pages > 0 && pageSize > 0)
    cpu.memoryBytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(pageSize);
  return cpu;
}

} // namespace tessera::cpu
