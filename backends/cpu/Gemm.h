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
GemmBlocking launchBlocking(const GemmBlocking &blocking, int64_t M, int64_t N, int64_t batches, int64_t MR,
                            int64_t NR, unsigned threads);

// Runs the kernel through the GEMM path. `scalars` are the program's symbol
// values. Returns false (and leaves memory untouched) when the launch does
// not fit the path (e.g. packing would need too much memory); the caller
// then runs the generic loop nest.
bool runGemm(const schedule::Kernel &k, const GemmForm &form, const CompiledKernel &code, void **buffers,
             const int64_t *scalars, size_t numSymbols, ThreadPool &pool, unsigned threads,
             const GemmBlocking &blocking);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_GEMM_H
