// Analytic cost model for Schedule IR kernels on NVIDIA GPUs: a roofline
// (Williams, Waterman, Patterson, CACM 52(4), 2009) with the tensor-core
// rate for GEMM-path kernels and the CUDA-core rate otherwise, scaled by
// the occupancy the launch mode reaches (registers and shared memory per
// block against the SM's limits) and by how much of the GPU the launch
// fills. No device needed: rates come from the architecture.
#ifndef TESSERA_BACKENDS_CUDA_COSTMODEL_H
#define TESSERA_BACKENDS_CUDA_COSTMODEL_H

#include "CudaCodegen.h"

#include <string>

namespace tessera::cuda {

struct GpuModel {
  int sm = 90;
  int smCount = 132;
  double dramBytesPerSecond = 3.35e12;
  double fp32FlopsPerSecond = 67e12;    // CUDA cores, FMA = 2 flops
  double tensorFlopsPerSecond = 989e12; // dense bf16/f16 with f32 accumulation
  double tf32FlopsPerSecond = 494e12;
  int registersPerSm = 65536;
  int sharedBytesPerSm = 228 * 1024;
  int sharedBytesPerBlock = 227 * 1024;
  int maxThreadsPerSm = 2048;
  double launchSeconds = 3e-6;
};

// Datasheet figures for an architecture (H100 SXM for sm_90, A100 SXM for
// sm_80, L40S-class for sm_89, A10-class for sm_86); smCount overrides when
// a device reports it.
GpuModel gpuModelFor(int sm, int smCount);

struct CostResult {
  bool feasible = true;
  std::string reason;
  double seconds = 0, flops = 0, bytes = 0;
  double occupancy = 0; // resident warps / maximum, 0..1
  LaunchMode mode = LaunchMode::Thread;
  bool library = false;  // the cuBLASLt path (estimateLibraryCost)
};

// Registers per thread and static shared memory per block the generator's
// code uses in `mode` (an estimate when no compiled function is at hand).
void resourceEstimate(const schedule::Kernel &kernel, const KernelPlan &plan, LaunchMode mode, int *registers,
                      int *sharedBytes);

// Why the kernel's knobs cannot run as asked under launch `cfg` (a CPU
// generator's knob: threads, mc, kc, nc; gemm_path naming a path that does
// not apply; stages off the pipelined paths or over shared memory; warps
// off the row kernels or over 16), or empty. estimateKernelCost reports
// such points infeasible with this reason.
std::string knobProblem(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                        const LaunchConfig &cfg);

CostResult estimateKernelCost(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                              const GpuModel &gpu, const int64_t *symbols);

// The cuBLASLt path of a matmul kernel (CublasLt.h): cuBLAS's measured
// fraction of the tensor-core rate, its small-tile behaviour, the host call,
// and the generated epilogue's extra pass when cuBLASLt cannot apply it.
// Infeasible when the kernel is not one cuBLASLt runs. Availability of the
// library is the caller's question (cublasLtAvailable).
CostResult estimateLibraryCost(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                               const GpuModel &gpu, const int64_t *symbols);

// The default schedule's choice (no `library` knob): cuBLASLt when its
// estimate beats the generated kernel's.
bool libraryPreferred(const schedule::Program &program, size_t kernel, const KernelPlan &plan, const GpuModel &gpu,
                      const int64_t *symbols);

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_COSTMODEL_H
