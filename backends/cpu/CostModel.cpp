#include "CostModel.h"

#include "Gemm.h"
#include "OneDnn.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <vector>

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
  // Knobs this plugin does not use: LLVM's loop vectorizer picks the unroll
  // factor, so other values would only repeat the same code.
  if (int64_t u = k.knobInt("unroll", 1); u != 1)
    return infeasible("the cpu plugin leaves unrolling to LLVM (knob unroll=" + std::to_string(u) + ")");
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
  if (library == "onednn") {
    if (!oneDnnBuilt())
      return infeasible("library 'onednn' is not available in this build of the cpu plugin");
    GemmForm gemmForm;
    std::string why;
    if (!matchGemmForm(k, &gemmForm, &why))
      return infeasible("library 'onednn' applies to canonical matmul kernels only (" + why + ")");
  } else if (!library.empty() && library != "none" && library != "generic") {
    return infeasible("library '" + library + "' is not available in this build of the cpu plugin");
  }

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
  // Schedule knobs (the search space of core/schedule): how work splits over
  // threads, and for the GEMM path how the blocking fits the caches.
  std::vector<int64_t> ext(np, 1);
  for (size_t d = 0; d < np; ++d)
    ext[d] = std::max<int64_t>(1, sir::evalIndex(k.parallel[d], scalars, nullptr, nullptr, nullptr));
  // Load balance: tasks spread over threads in whole units.
  auto balance = [&](double tasks) {
    double perThread = tasks / double(threads);
    return perThread <= 0 ? 1.0 : perThread / std::ceil(perThread);
  };
  double eff = efficiency, extraBytes = 0, tasks = 1;
  if (gemm && np >= 2) {
    // Goto/BLIS blocking (Low et al., "Analytical modeling is enough for
    // high-performance BLIS", TOMS 2016): the kc x NR panel of B in L1, the
    // mc x kc block of A in L2, the mc x nc block of C in L2 too (scratch).
    const double M = double(ext[np - 2]), N = double(ext[np - 1]);
    double K = 1;
    if (!k.stages.empty() && !k.stages[0].inner.empty())
      K = double(std::max<int64_t>(1, sir::evalIndex(k.stages[0].inner[0], scalars, par.data(), nullptr, nullptr)));
    GemmBlocking b;
    const double mc = double(std::clamp<int64_t>(k.knobInt("mc", b.mc), 1, 2048));
    const double kc = double(std::clamp<int64_t>(k.knobInt("kc", b.kc), 1, 8192));
    const double nc = double(std::clamp<int64_t>(k.knobInt("nc", b.nc), 1, 2048));
    const double emc = std::min(mc, M), ekc = std::min(kc, K), enc = std::min(nc, N);
    const double l1 = double(machine.cacheBytes[0]), l2 = double(machine.cacheBytes[1]);
    auto fit = [](double have, double need) { return need <= have ? 1.0 : std::sqrt(have / need); };
    eff *= fit(l1 / 2, ekc * 16 * 4);        // B micro-panel (NR = 16 floats)
    eff *= fit(l2 / 2, emc * ekc * 4);       // A block
    eff *= fit(l2 / 2, emc * enc * 4);       // C block
    eff *= ekc / (ekc + 24.0);               // per micro-kernel call overhead
    tasks = double(int64_t(std::ceil(M / mc)) * int64_t(std::ceil(N / nc)));
    for (size_t d = 0; d + 2 < np; ++d)
      tasks *= double(ext[d]);
    eff *= balance(tasks);
    // C block re-read per KC panel.
    extraBytes = M * N * 4 * std::max(0.0, std::ceil(K / kc) - 1) * 2;
  } else {
    // Tiles of the parallel loops (CpuPlugin chooseTiles when no knob).
    std::vector<int64_t> tile = k.knobInts("tile");
    tasks = 1;
    if (tile.size() == np) {
      for (size_t d = 0; d < np; ++d)
        tasks *= std::ceil(double(ext[d]) / double(std::clamp<int64_t>(tile[d] ? tile[d] : ext[d], 1, ext[d])));
    } else {
      tasks = double(threads) * 4;
    }
    r.seconds = (std::max(r.flops / (peak * efficiency), r.bytes / bandwidth)) / balance(tasks) +
                std::ceil(tasks / double(threads)) * 0.15e-6 + launchOverhead;
    return r;
  }
  r.seconds = std::max(r.flops / (peak * eff), (r.bytes + extraBytes) / bandwidth) + launchOverhead;
  return r;
}

} // namespace tessera::cpu
