// Analytic roofline cost model for Schedule IR kernels on a CPU: the roofline
// model of Williams, Waterman and Patterson ("Roofline: an insightful visual
// performance model for multicore architectures", CACM 52(4), 2009), with
// one bandwidth roof per level of the cache hierarchy: a kernel's time is
// max(flops / peak FLOP/s, bytes / bandwidth of the level its working set
// fits in), scaled by an efficiency for the code path (GEMM micro-kernel vs
// generic loop nest).
#ifndef TESSERA_BACKENDS_CPU_COSTMODEL_H
#define TESSERA_BACKENDS_CPU_COSTMODEL_H

#include "Codegen.h"

#include <cstdint>
#include <string>

namespace tessera::cpu {

struct MachineModel {
  unsigned cores = 1;
  double ghz = 3.0;
  unsigned fmaUnits = 2;
  uint64_t cacheBytes[3] = {32 << 10, 1 << 20, 32 << 20}; // per core L1, L2; shared L3
  double bytesPerCycle[3] = {64, 32, 16};                 // per core
  double dramBytesPerSecond = 20e9;
};

// Reads cores, frequency and cache sizes from the host (sysfs/proc).
MachineModel hostMachineModel();

struct CostResult {
  bool feasible = true;
  std::string reason; // why not feasible
  double seconds = 0, flops = 0, bytes = 0;
};

CostResult estimateKernelCost(const schedule::Program &program, size_t kernelIndex, const TargetInfo &target,
                              const MachineModel &machine, const int64_t *scalars, size_t numScalars);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_COSTMODEL_H
