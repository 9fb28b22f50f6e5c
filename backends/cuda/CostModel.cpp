#include "CostModel.h"

#include "FlashAttention.h"

#include <algorithm>
#include <cmath>

namespace tessera::cuda {

using namespace tessera::schedule;

GpuModel gpuModelFor(int sm, int smCount) {
  GpuModel g;
  g.sm = sm;
  if (sm >= 90) {
    g = GpuModel{};
    g.sm = sm;
  } else if (sm >= 89) {
    g.smCount = 142;
    g.dramBytesPerSecond = 0.86e12;
    g.fp32FlopsPerSecond = 91e12;
    g.tensorFlopsPerSecond = 362e12;
    g.tf32FlopsPerSecond = 181e12;
    g.sharedBytesPerSm = 100 * 1024;
    g.sharedBytesPerBlock = 99 * 1024;
    g.maxThreadsPerSm = 1536;
  } else if (sm >= 86) {
    g.smCount = 72;
    g.dramBytesPerSecond = 0.6e12;
    g.fp32FlopsPerSecond = 31e12;
    g.tensorFlopsPerSecond = 125e12;
    g.tf32FlopsPerSecond = 62e12;
    g.sharedBytesPerSm = 100 * 1024;
    g.sharedBytesPerBlock = 99 * 1024;
    g.maxThreadsPerSm = 1536;
  } else {
    g.smCount = 108;
    g.dramBytesPerSecond = 2.0e12;
    g.fp32FlopsPerSecond = 19.5e12;
    g.tensorFlopsPerSecond = 312e12;
    g.tf32FlopsPerSecond = 156e12;
    g.sharedBytesPerSm = 164 * 1024;
    g.sharedBytesPerBlock = 163 * 1024;
  }
  if (smCount > 0) {
    double scale = double(smCount) / g.smCount;
    g.fp32FlopsPerSecond *= scale;
    g.tensorFlopsPerSecond *= scale;
    g.tf32FlopsPerSecond *= scale;
    g.smCount = smCount;
  }
  return g;
}

void resourceEstimate(const Kernel &kernel, const KernelPlan &plan, LaunchMode mode, int *registers,
                      int *sharedBytes) {
  size_t instrs = 0, reduces = 0;
  for (const Stage &s : kernel.stages)
    for (const Instr &in : s.body) {
      ++instrs;
      reduces += !in.isStore && in.op == Op::Reduce;
    }
  int regs = static_cast<int>(std::min<size_t>(255, 32 + instrs * 2));
  int shared = 0;
  if (mode == LaunchMode::Block)
    shared = static_cast<int>(reduces * 32 * 16);
  if (mode == LaunchMode::Gemm) {
    const GemmTile &t = plan.gemm.tile;
    int elem = plan.gemm.input == GemmInput::TF32 ? 4 : 2;
    int pad = plan.gemm.input == GemmInput::TF32 ? 4 : 8;
    shared = (t.bm * (t.bk + pad) + t.bk * (t.bn + pad)) * elem;
    int acc = (t.bm / t.warpsM) * (t.bn / t.warpsN) / 32;
    regs = std::min(255, 48 + acc + (t.bm * t.bk + t.bk * t.bn) / t.threads() / (elem == 2 ? 2 : 1));
  }
  if (mode == LaunchMode::GemmAsync || mode == LaunchMode::Wgmma) {
    const PipelinedGemm &c = mode == LaunchMode::Wgmma ? plan.gemm.wgmmaConfig : plan.gemm.asyncConfig;
    shared = c.sharedBytes();
    // Accumulators, plus fragments (mma.sync) or descriptors and addresses.
    regs = std::min(255, c.bm * c.bn / c.threads() + (mode == LaunchMode::Wgmma ? 40 : 72));
  }
  *registers = regs;
  *sharedBytes = shared;
}

namespace {

int64_t product(const std::vector<IndexExpr> &ext, const int64_t *symbols) {
  int64_t n = 1;
  for (const IndexExpr &e : ext)
    n *= std::max<int64_t>(0, evalIndex(e, symbols, nullptr, nullptr, nullptr));
  return n;
}

bool mentionsParallel(const IndexExpr &e) {
  if (e.kind == IndexExpr::Kind::Parallel)
    return true;
  for (const IndexExpr &a : e.args)
    if (mentionsParallel(a))
      return true;
  return false;
}

double arithmeticWeight(Op op) {
  switch (op) {
  case Op::Load: case Op::Const: case Op::Index: case Op::Acc: case Op::Cast: case Op::Select: return 0;
  case Op::Exp: case Op::Log: case Op::Tanh: case Op::Sigmoid: case Op::Erf: case Op::Sin: case Op::Cos:
  case Op::Pow: case Op::GeluErf: case Op::GeluTanh: case Op::Silu: case Op::Sqrt: case Op::Rsqrt: case Op::Div:
    return 8; // special-function unit or a Newton sequence
  default: return 1;
  }
}

// Pipeline depth's share of latency hidden: each further stage hides a
// fixed fraction of what is left (saturating; about 0.65, 0.88, 0.96 for
// 2, 3, 4 stages).
double depthFactor(int stages) { return 1.0 - std::pow(0.35, std::max(1, stages) - 1); }

} // namespace

std::string knobProblem(const Program &program, size_t kernel, const KernelPlan &plan, const LaunchConfig &cfg) {
  const Kernel &k = program.kernels[kernel];
  for (const char *cpuOnly : {"threads", "mc", "kc", "nc"})
    if (k.knobs.count(cpuOnly))
      return std::string("the cuda plugin has no knob '") + cpuOnly +
             "' (a CPU code generator's; launch shapes here: warps, row_chunks, gemm_path, stages, library)";
  if (!plan.knobIssue.empty())
    return plan.knobIssue;
  if (k.knobs.count("gemm_path")) {
    const std::string path = k.knobString("gemm_path");
    LaunchMode want = path == "wgmma" || path == "wgmma_cp_async" ? LaunchMode::Wgmma
                      : path == "mma_async"                        ? LaunchMode::GemmAsync
                                                                   : LaunchMode::Gemm;
    if (path != "wgmma" && path != "wgmma_cp_async" && path != "mma_async" && path != "mma")
      return "unknown gemm_path '" + path + "' (known: wgmma, wgmma_cp_async, mma_async, mma)";
    if (cfg.mode != want)
      return "gemm_path '" + path + "' does not apply to this kernel on this architecture";
  }
  if (k.knobs.count("stages") && cfg.mode != LaunchMode::GemmAsync && cfg.mode != LaunchMode::Wgmma)
    return "knob 'stages' applies to the pipelined GEMM paths (wgmma, mma_async) only";
  if (k.knobs.count("warps")) {
    int64_t w = k.knobInt("warps", 0);
    if (w < 1 || w > 16)
      return "knob warps=" + std::to_string(w) + ": 1 to 16 (512 threads per block at most)";
    if (cfg.mode != LaunchMode::Block)
      return "knob 'warps' applies to row kernels (a block per row) only";
  }
  if (k.knobs.count("row_chunks")) {
    int64_t c = k.knobInt("row_chunks", 0);
    if (c < 1 || c > kMaxRowVecChunks)
      return "knob row_chunks=" + std::to_string(c) + ": 1 to " + std::to_string(kMaxRowVecChunks) +
             " chunks of 8 elements per thread";
    if (cfg.mode != LaunchMode::Block)
      return "knob 'row_chunks' applies to row kernels (a block per row) only";
  }
  return {};
}

CostResult estimateKernelCost(const Program &program, size_t kernel, const KernelPlan &plan, const GpuModel &gpu,
                              const int64_t *symbols) {
  const Kernel &k = program.kernels[kernel];
  CostResult r;
  LaunchConfig cfg;
  std::string error;
  planLaunch(program, kernel, plan, symbols, static_cast<uint32_t>(gpu.smCount), &cfg, &error);
  r.mode = cfg.mode;
  if (std::string why = knobProblem(program, kernel, plan, cfg); !why.empty()) {
    r.feasible = false;
    r.reason = why;
    return r;
  }
  if (k.kind == Kernel::Kind::Attention)
    return estimateAttentionCost(program, kernel, plan, gpu, symbols);
  int64_t P = product(k.parallel, symbols);
  // Bytes: every operand moved once (the minimum any schedule needs).
  for (const Operand &o : k.operands)
    r.bytes += double(product(o.shape, symbols)) * double(dtypeSize(o.dtype));
  for (const Stage &s : k.stages) {
    bool dynamic = false;
    for (const IndexExpr &e : s.inner)
      dynamic |= mentionsParallel(e);
    double n = dynamic ? 1.0 : double(product(s.inner, symbols));
    double w = 0;
    for (const Instr &in : s.body)
      if (!in.isStore)
        w += in.op == Op::Reduce ? 1 : arithmeticWeight(in.op);
    r.flops += w * n * double(P);
  }
  if (cfg.empty) {
    r.seconds = gpu.launchSeconds;
    return r;
  }
  int regs = 0, shared = 0;
  resourceEstimate(k, plan, cfg.mode, &regs, &shared);
  int threads = static_cast<int>(cfg.block[0] * cfg.block[1] * cfg.block[2]);
  if (shared > gpu.sharedBytesPerBlock) {
    r.feasible = false;
    r.reason = "shared memory per block exceeds the architecture's limit";
    return r;
  }
  // Occupancy (CUDA C++ Best Practices Guide, "Occupancy"): blocks per SM
  // limited by threads, registers and shared memory.
  int byThreads = gpu.maxThreadsPerSm / std::max(1, threads);
  int byRegs = gpu.registersPerSm / std::max(1, regs * threads);
  int byShared = shared > 0 ? gpu.sharedBytesPerSm / shared : 32;
  int blocksPerSm = std::max(0, std::min({byThreads, byRegs, byShared, 32}));
  if (blocksPerSm == 0) {
    r.feasible = false;
    r.reason = "a block needs more registers than an SM has";
    return r;
  }
  r.occupancy = double(blocksPerSm * threads) / gpu.maxThreadsPerSm;
  double blocks = double(cfg.grid[0]) * cfg.grid[1] * cfg.grid[2];
  double fill = std::min(1.0, blocks / (double(gpu.smCount) * blocksPerSm));
  // Latency hiding needs warps in flight: below ~50% occupancy memory-bound
  // code loses bandwidth roughly in proportion.
  double bwEff = 0.85 * std::min(1.0, r.occupancy / 0.5) * fill;
  double computeRate = gpu.fp32FlopsPerSecond * 0.5 * fill;
  if (cfg.mode == LaunchMode::Gemm || cfg.mode == LaunchMode::GemmAsync || cfg.mode == LaunchMode::Wgmma) {
    int64_t K = product(k.stages[0].inner, symbols);
    r.flops = 2.0 * double(P) * double(K);
    double peak = plan.gemm.input == GemmInput::TF32 ? gpu.tf32FlopsPerSecond : gpu.tensorFlopsPerSecond;
    // Fractions of the datasheet rate measured on an H200 at 4096^3
    // (docs/perf.md, 2026-11-21): wgmma fed by cp.async 0.50, the cp.async
    // + ldmatrix mma.sync pipeline 0.33, the register double-buffered
    // mma.sync 0.16; wgmma fed by TMA (warp-specialized, persistent) 0.76
    // (750 TF/s at 4096^3, 716-773 at 8192^3, three calls).
    const bool tma = plan.gemm.wgmmaConfig.family == GemmFamily::WgmmaTma;
    double efficiency = cfg.mode == LaunchMode::Wgmma       ? (tma ? 0.76 : 0.50)
                        : cfg.mode == LaunchMode::GemmAsync ? 0.33
                                                            : 0.16;
    // Short K leaves the pipeline's fill and drain unamortized: wgmma ran
    // at 0.25 with K = 1024 (4096x4096) and 0.32 with K = 2048 (8192x8192)
    // in the transformer block (docs/perf.md, 2026-11-21): about
    // sqrt(K / 4096) of its 4096^3 rate.
    if (K < 4096)
      efficiency *= std::sqrt(double(std::max<int64_t>(K, 1)) / 4096.0);
    // Knob stages: latency hidden relative to the path's default depth
    // (wgmma 4, mma_async 3; GemmKernel.cpp).
    if (cfg.mode != LaunchMode::Gemm) {
      const PipelinedGemm &c = cfg.mode == LaunchMode::Wgmma ? plan.gemm.wgmmaConfig : plan.gemm.asyncConfig;
      efficiency *= depthFactor(c.stages) / depthFactor(cfg.mode == LaunchMode::Wgmma ? 4 : 3);
    }
    computeRate = peak * efficiency * fill;
  } else if (cfg.mode == LaunchMode::Thread && plan.hasReduce) {
    // One thread walks each row serially: parallelism is P threads.
    double threadsAvail = double(gpu.smCount) * gpu.maxThreadsPerSm;
    double par = std::min(1.0, double(P) / threadsAvail);
    bwEff *= std::max(0.05, par);
    computeRate *= std::max(0.05, par);
  }
  double tMem = r.bytes / (gpu.dramBytesPerSecond * std::max(1e-3, bwEff));
  if (cfg.mode == LaunchMode::Block && k.stages.size() > 1) {
    // A row longer than rowChunks * 8 elements per thread is not kept in
    // registers: every stage after the first reads it again (from L1/L2,
    // about twice DRAM's rate), and each thread walks maxInner / threads
    // elements per stage in sequence.
    int64_t maxInner = 0;
    for (const Stage &s : k.stages)
      maxInner = std::max(maxInner, product(s.inner, symbols));
    const bool inRegisters =
        plan.blockVec && maxInner % 8 == 0 && maxInner <= int64_t(plan.rowChunks) * 8 * std::max(1, threads);
    if (!inRegisters) {
      double rowBytes = 0;
      for (const Operand &o : k.operands)
        if (o.role == OperandRole::In)
          rowBytes = std::max(rowBytes, double(product(o.shape, symbols)) * double(dtypeSize(o.dtype)));
      tMem += double(k.stages.size() - 1) * rowBytes / (2.0 * gpu.dramBytesPerSecond * std::max(1e-3, bwEff));
      // Latency: a thread's loads of a stage form one dependent chain
      // (maxInner / threads elements, accumulated in order), so a wave of
      // blocks takes that many load latencies per stage, and the rows take
      // ceil(rows / (SMs x blocks per SM)) waves, blocks per SM limited by
      // threads and the 32-block cap (these small-block kernels are not
      // register-bound; the estimate above is crude). About 300 ns a load:
      // fitted to the 1-4 warp points on the H200 (docs/perf.md, 2026-11-21).
      const double loadLatency = 300e-9;
      double iterations = std::ceil(double(maxInner) / std::max(1, threads)) * double(k.stages.size());
      int resident = std::max(1, std::min(32, gpu.maxThreadsPerSm / std::max(1, threads)));
      double waves = std::ceil(blocks / (double(gpu.smCount) * resident));
      tMem = std::max(tMem, waves * iterations * loadLatency);
    }
  }
  double tCompute = r.flops / std::max(1.0, computeRate);
  if ((cfg.mode == LaunchMode::GemmAsync || cfg.mode == LaunchMode::Wgmma) && !plan.gemm.plainStore) {
    // An epilogue other than a plain store runs per element after each
    // tile's main loop, with the tensor cores idle: an erf GELU added 0.042
    // ms (TMA design) and 0.049 ms (cp.async) to the 4096^3 product on an
    // H200 (docs/perf.md), about 3.7e11 elements/s over 132 SMs.
    tCompute += double(P) / (3.7e11 * double(gpu.smCount) / 132.0);
  }
  r.seconds = gpu.launchSeconds + std::max(tMem, tCompute);
  return r;
}

CostResult estimateLibraryCost(const Program &program, size_t kernel, const KernelPlan &plan, const GpuModel &gpu,
                               const int64_t *symbols) {
  CostResult r;
  r.library = true;
  r.mode = LaunchMode::LibEpilogue;
  const Kernel &k = program.kernels[kernel];
  if (!plan.library.usable) {
    r.feasible = false;
    r.reason = "library 'cublaslt' applies to canonical bf16/f16/f32 matmul kernels only (" + plan.library.why + ")";
    return r;
  }
  const size_t np = k.parallel.size();
  int64_t P = product(k.parallel, symbols), K = product(k.stages[0].inner, symbols);
  for (const Operand &o : k.operands)
    r.bytes += double(product(o.shape, symbols)) * double(dtypeSize(o.dtype));
  r.flops = 2.0 * double(P) * double(K);
  if (P == 0) {
    r.seconds = gpu.launchSeconds;
    return r;
  }
  // cuBLASLt bf16 GEMM ran at 0.78 of the H200's datasheet rate at 4096^3
  // (docs/perf.md); f32 without tf32 runs on the CUDA cores.
  double peak = plan.library.input != TESSERA_DTYPE_F32 ? gpu.tensorFlopsPerSecond * 0.78
                : plan.library.tf32                     ? gpu.tf32FlopsPerSecond * 0.7
                                                        : gpu.fp32FlopsPerSecond * 0.8;
  // Its kernels tile down to 64x64 (and split K) for small outputs.
  int64_t M = std::max<int64_t>(1, evalIndex(k.parallel[np - 2], symbols, nullptr, nullptr, nullptr));
  int64_t N = std::max<int64_t>(1, evalIndex(k.parallel[np - 1], symbols, nullptr, nullptr, nullptr));
  double tiles = double((M + 63) / 64) * double((N + 63) / 64) * double(P / (M * N));
  double fill = std::min(1.0, std::max(tiles, double(K) / 1024.0) / gpu.smCount);
  // The host call costs about as much again as a kernel launch.
  r.seconds = 2 * gpu.launchSeconds + std::max(r.bytes / (gpu.dramBytesPerSecond * 0.9), r.flops / (peak * fill));
  // _epi: the f32 product written, then read; narrow: the output read and
  // written again in place.
  if (!plan.library.direct)
    r.seconds += gpu.launchSeconds +
                 double(P) * (plan.library.narrow ? 2.0 * dtypeSize(plan.library.input) : 8.0) /
                     (gpu.dramBytesPerSecond * 0.8);
  r.occupancy = fill;
  return r;
}

bool libraryPreferred(const Program &program, size_t kernel, const KernelPlan &plan, const GpuModel &gpu,
                      const int64_t *symbols) {
  CostResult lib = estimateLibraryCost(program, kernel, plan, gpu, symbols);
  if (!lib.feasible)
    return false;
  return lib.seconds < estimateKernelCost(program, kernel, plan, gpu, symbols).seconds;
}

} // namespace tessera::cuda
