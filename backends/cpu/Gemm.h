// The GEMM path for `matmul` kernels: canonical-form matching (no LLVM) and
// the blocked, packed driver that calls the generated micro-kernel and
// epilogue (Goto/BLIS-style: pack A and B panels once per launch, then
// MC x NC output blocks in parallel, KC-deep micro-kernel calls).
#ifndef TESSERA_BACKENDS_CPU_GEMM_H
#define TESSERA_BACKENDS_CPU_GEMM_H

#include "Codegen.h"

#include <cstdint>
#include <string>

namespace tessera::cpu {

class ThreadPool;

// The pieces of a canonical matmul kernel the driver needs.
struct GemmForm {
  int64_t aOperand = -1, bOperand = -1; // operand indices of A and B
  size_t aLoad = 0, bLoad = 0;          // instruction indices in stage 0
  int64_t result = -1;                  // the reduce sum value id
  size_t batchDims = 0;                 // leading parallel loops
};

// Checks the canonical form (schedule_ir.h), f32 operands, unmasked loads,
// and index maps affine in (batch, m, k) for A and (batch, k, n) for B
// (Add/Sub, Mul by loop-invariant terms; div/mod/min/max only over
// loop-invariant terms). Strides are derived at launch by evaluating the
// index expressions at unit offsets.
bool matchGemmForm(const schedule::Kernel &k, GemmForm *form, std::string *why);

// Cache blocking; MC and NC are rounded to multiples of MR and NR.
struct GemmBlocking {
  int64_t mc = 192, kc = 256, nc = 512;
};

// The blocking a launch really uses: MC and NC rounded down to multiples of
// MR and NR, then, for problems with fewer than two blocks per thread, NC
// and then MC halved until there are (shared with the cost model, so that
// it predicts the blocks the driver runs).
GemmBlocking launchBlocking(const GemmBlocking &blocking, int64_t M, int64_t N, int64_t batches, int64_t MR, int64_t NR,
                            unsigned threads);

// What runs a matched kernel's contraction.
enum class GemmEngine {
  Generated,   // the packed driver and the generated micro-kernel
  OneDnnBlas,  // dnnl_sgemm per output block on the plugin's pool
  OneDnnMatmul // dnnl::matmul over the whole problem (knob library="onednn" only)
};

// The engine a launch uses at these symbol values. Knob library="onednn"
// asks for oneDNN (BLAS blocks where the layouts allow, else dnnl::matmul);
// library="none" and the blocking knobs mc/kc/nc (which tune the generated
// driver) ask for the generated path. Without them the plugin picks oneDNN's
// BLAS blocks when they apply (oneDNN built in, f32 operands each with a
// unit stride along m or k / k or n, no broadcast) and the problem has at
// least kLibraryMinFlops: oneDNN's sgemm kernels beat the generated
// micro-kernel from about 16^3 up (1.1-2x on the transformer shapes,
// docs/perf.md); below that the generated path's smaller call overhead wins.
constexpr double kLibraryMinFlops = 2.0 * 16 * 16 * 16;
// The output the OneDnnBlas engine blocks: batches that share B and whose A
// rows continue from one batch into the next run as one product of
// batches * M rows (oneDNN then packs each B block once, not per batch).
// `direct`: the epilogue is a plain f32 store in BLAS layout, so oneDNN
// writes the output itself (no f32 block, no epilogue pass).
struct LibraryShape {
  int64_t m = 0, n = 0, batches = 1;
  bool direct = false;
};
GemmEngine chooseGemmEngine(const schedule::Kernel &k, const GemmForm &form, const int64_t *scalars,
                            LibraryShape *shape = nullptr);

// Output blocks of the OneDnnBlas engine (shared with the cost model): the
// whole M x N per batch, then the larger side halved (N in multiples of 16,
// M of 8) while a block holds more than kLibraryBlockElems f32 values (so
// the epilogue reads it from L2) or, on several threads, there are fewer
// than two blocks per thread.
constexpr int64_t kLibraryBlockElems = 128 * 1024;
struct LibraryBlocking {
  int64_t mc = 0, nc = 0;
};
LibraryBlocking libraryBlocking(int64_t M, int64_t N, int64_t batches, unsigned threads);

// Runs the kernel through the GEMM path. `scalars` are the program's symbol
// values. Returns false (and leaves memory untouched) when the launch does
// not fit the path (e.g. packing would need too much memory); the caller
// then runs the generic loop nest.
bool runGemm(const schedule::Kernel &k, const GemmForm &form, const CompiledKernel &code, void **buffers,
             const int64_t *scalars, size_t numSymbols, ThreadPool &pool, unsigned threads,
             const GemmBlocking &blocking);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_GEMM_H
