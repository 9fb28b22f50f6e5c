// Analytic cost model of the CPU plugin's generated code, used by schedule
// search (docs/schedule.md) to rank knob settings of one kernel and to
// reject the ones the plugin cannot run. It follows what the code does
// under each knob rather than only what the kernel computes:
//
// - the fork-join thread pool (ThreadPool.h): tasks handed out one at a time
//   by an atomic counter, so the time of a launch is the makespan of greedy
//   list scheduling (Graham 1969) of its tasks over min(threads, tasks)
//   threads, plus the cost of waking and joining the helpers and of each
//   task handed out;
// - GEMM (Gemm.h): packing, then MC x NC blocks as tasks, KC-deep panels of
//   MR x NR micro-kernel calls; the blocks' fit in the cache levels (Goto and
//   van de Geijn, "Anatomy of high-performance matrix multiplication", TOMS
//   34(3), 2008) with the transfers between levels adding up as in the
//   execution-cache-memory model (Hager et al., CCPE 28(2), 2016), the
//   padding of edge blocks to whole micro-tiles, and the per-call C tile
//   update;
// - loop nests (Codegen.h): tiles of the parallel loops as tasks, each
//   bounded by its compute or by the bandwidth of the level its data comes
//   from (the roofline model, Williams, Waterman and Patterson, CACM 52(4),
//   2009); LLVM's vectorization of the innermost loop with its scalar
//   remainder, loop-invariant code hoisted, and a per-tile cost.
//
// The machine's sizes come from the host (HostCpu.h); the few overheads
// that no document gives were measured on the build machine (CostModel.cpp
// says how). The model never looks up measured times.
#ifndef TESSERA_BACKENDS_CPU_COSTMODEL_H
#define TESSERA_BACKENDS_CPU_COSTMODEL_H

#include "Codegen.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::cpu {

struct MachineModel {
  unsigned cores = 1;           // threads that run at once (online cores)
  double ghz = 3.0;             // sustained (boost) clock
  double fmaLanesPerCycle = 16; // f32 FMA lanes one core retires per cycle
  uint64_t cacheBytes[3] = {32 << 10, 1 << 20, 32 << 20}; // per core L1, L2; shared L3
  double bytesPerCycle[3] = {64, 32, 11};                 // per core, from L1, L2, L3 (L3: measured)
  double l3BytesPerSecond = 80e9;                         // from L3, all cores together (measured)
  double dramBytesPerSecond = 20e9;                       // whole socket
  // Overheads of the plugin's runtime (measured; CostModel.cpp).
  double forkJoinSeconds = 4e-6;  // a parallelFor with helpers: hand-off to spinning workers plus join
  double taskSeconds = 40e-9;     // each task the pool hands out when helpers take part
  double tileSeconds = 0;        // each tile of a loop nest (not measurable: CostModel.cpp)
  double microCallCycles = 48;   // each GEMM micro-kernel call besides its FMAs (C tile in L2)
  double packBytesPerCycle = 10; // packing (strided reads, transposed writes), per core
};

// The host's machine model: cores, clock, caches and FMA width read from
// the host (HostCpu.h), overheads as calibrated.
MachineModel hostMachineModel();

// The tile sizes a launch of loop kernel `k` uses (extents `ext`, symbol
// values `scalars`, `threads` threads): the `tile` knob, else the plugin's
// default.
std::vector<int64_t> launchTiles(const schedule::Kernel &k, const std::vector<int64_t> &ext, const int64_t *scalars,
                                 unsigned threads);

// Tiles per task when a launch of `tiles` tiles runs on `threads` threads:
// about eight tasks per thread, so the pool's shared counter and the
// kernel's per-call prologue are paid a few dozen times, not once per
// tile, while a helper that wakes late still finds work; each thread
// then also walks contiguous tiles, which the hardware prefetchers follow.
int64_t launchChunk(int64_t tiles, unsigned threads);

struct CostResult {
  bool feasible = true;
  std::string reason; // why not feasible
  double seconds = 0, flops = 0, bytes = 0;
};

CostResult estimateKernelCost(const schedule::Program &program, size_t kernelIndex, const TargetInfo &target,
                              const MachineModel &machine, const int64_t *scalars, size_t numScalars);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_COSTMODEL_H
