#include "CostModel.h"

#include "Gemm.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace tessera::cpu {

namespace sir = tessera::schedule;

namespace {

uint64_t parseSize(const std::string &s) {
  uint64_t v = std::strtoull(s.c_str(), nullptr, 10);
  if (s.find('K') != std::string::npos)
    v <<= 10;
  else if (s.find('M') != std::string::npos)
    v <<= 20;
  return v;
}

// Flops charged per scalar op: transcendentals cost a vector polynomial.
double opFlops(sir::Op op) {
  using O = sir::Op;
  switch (op) {
  case O::Load:
  case O::Const:
  case O::Index:
  case O::Cast: return 0;
  case O::Exp: case O::Log: case O::Tanh: case O::Sigmoid: case O::GeluErf: case O::GeluTanh: case O::Silu:
  case O::Erf: case O::Sin: case O::Cos: case O::Pow: return 12;
  case O::Div: case O::Sqrt: case O::Rsqrt: case O::Reciprocal: case O::Mod: return 4;
  default: return 1;
  }
}

} // namespace

MachineModel hostMachineModel() {
  MachineModel m;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  m.cores = cores > 0 ? static_cast<unsigned>(cores) : 1;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      double mhz = std::atof(line.substr(line.find(':') + 1).c_str());
      if (mhz > 100)
        m.ghz = mhz / 1000.0;
    }
  }
  for (int i = 0; i < 8; ++i) {
    std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
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
    m.cacheBytes[lv - 1] = parseSize(sz);
  }
  return m;
}

CostResult estimateKernelCost(const sir::Program &program, size_t kernelIndex, const TargetInfo &target,
                              const MachineModel &machine, const int64_t *scalars, size_t numScalars) {
  CostResult r;
  const sir::Kernel &k = program.kernels[kernelIndex];
  const size_t np = k.parallel.size();
  const unsigned lanes = target.vectorBits / 32;
  auto infeasible = [&](const std::string &why) {
    r.feasible = false;
    r.reason = why;
    return r;
  };
  // Knobs the hardware cannot honour.
  if (int64_t v = k.knobInt("vector", 0); v != 0) {
    if (v < 0 || (v & (v - 1)) != 0)
      return infeasible("vector width " + std::to_string(v) + " is not a power of two");
    if (v > int64_t(lanes))
      return infeasible("vector width " + std::to_string(v) + " exceeds the " + std::to_string(lanes) +
                        " f32 lanes of " + target.architecture);
  }
  if (auto it = k.knobs.find("tile"); it != k.knobs.end()) {
    std::vector<int64_t> tile = k.knobInts("tile");
    if (tile.size() != np)
      return infeasible("tile has " + std::to_string(tile.size()) + " sizes for " + std::to_string(np) +
                        " parallel loops");
    for (int64_t t : tile)
      if (t <= 0)
        return infeasible("tile sizes must be positive");
  }
  std::string library = k.knobString("library");
  if (!library.empty() && library != "none" && library != "generic")
    return infeasible("library '" + library + "' is not available in this build of the cpu plugin");

  std::vector<int64_t> par(np, 0);
  double points = 1;
  for (size_t d = 0; d < np; ++d)
    points *= double(std::max<int64_t>(0, sir::evalIndex(k.parallel[d], scalars, nullptr, nullptr, nullptr)));
  // Flops: per stage, iterations x charged ops.
  for (const sir::Stage &s : k.stages) {
    double iters = points;
    for (const sir::IndexExpr &e : s.inner)
      iters *= double(std::max<int64_t>(0, sir::evalIndex(e, scalars, par.data(), nullptr, nullptr)));
    double ops = 0;
    for (const sir::Instr &in : s.body)
      if (!in.isStore)
        ops += opFlops(in.op);
    r.flops += iters * ops;
  }
  // Bytes: compulsory traffic, every operand read or written once.
  for (const sir::Operand &o : k.operands) {
    double n = double(sir::dtypeSize(o.dtype));
    for (const sir::IndexExpr &e : o.shape)
      n *= double(std::max<int64_t>(0, sir::evalIndex(e, scalars, nullptr, nullptr, nullptr)));
    r.bytes += n;
  }
  (void)numScalars;
  GemmForm form;
  const bool gemm = matchGemmForm(k, &form, nullptr) && library != "generic";
  unsigned threads = machine.cores;
  if (int64_t t = k.knobInt("threads", 0); t > 0)
    threads = std::min<unsigned>(threads, unsigned(t));
  // Peak: cores x f32 lanes x FMA units x 2 flops x frequency.
  const double peak = double(threads) * lanes * machine.fmaUnits * 2.0 * machine.ghz * 1e9;
  // Generic loop nests reach a fraction of peak (no register blocking); the
  // packed micro-kernel most of it.
  const double efficiency = gemm ? 0.85 : 0.25;
  // Bandwidth roof of the level the working set fits in.
  double bandwidth = machine.dramBytesPerSecond;
  const double perCore[2] = {double(machine.cacheBytes[0]) * threads, double(machine.cacheBytes[1]) * threads};
  if (r.bytes <= perCore[0])
    bandwidth = machine.bytesPerCycle[0] * machine.ghz * 1e9 * threads;
  else if (r.bytes <= perCore[1])
    bandwidth = machine.bytesPerCycle[1] * machine.ghz * 1e9 * threads;
  else if (r.bytes <= double(machine.cacheBytes[2]))
    bandwidth = machine.bytesPerCycle[2] * machine.ghz * 1e9 * threads;
  const double launchOverhead = 2e-6;
  r.seconds = std::max(r.flops / (peak * efficiency), r.bytes / bandwidth) + launchOverhead;
  return r;
}

} // namespace tessera::cpu
