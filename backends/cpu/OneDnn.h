// oneDNN as a library choice of the GEMM path: `matmul` kernels with knob
// library="onednn" run their contraction through dnnl::matmul into a dense
// f32 block, then the kernel's generated epilogue (bias, activation,
// residual, ...) over that block. Built only with TESSERA_WITH_ONEDNN;
// otherwise oneDnnBuilt() is false and the cost model reports the knob
// infeasible.
#ifndef TESSERA_BACKENDS_CPU_ONEDNN_H
#define TESSERA_BACKENDS_CPU_ONEDNN_H

#include "tessera/tessera_backend.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::cpu {

// One f32 product in BLAS row-major layout: C (m x n, row stride ldc) =
// op(A) (m x k) * op(B) (k x n). A is stored m x k with row stride lda, or
// k x m when aTrans; B is stored k x n with row stride ldb, or n x k when
// bTrans.
struct BlasGemm {
  int64_t m = 0, n = 0, k = 0;
  const float *a = nullptr, *b = nullptr;
  int64_t lda = 0, ldb = 0;
  bool aTrans = false, bTrans = false;
};

// One contraction C[b] = A[b] (M x K) * B[b] (K x N) over strided operands
// (strides and offsets in elements of the operand's dtype).
struct LibraryGemm {
  int64_t m = 0, n = 0, k = 0;
  const void *a = nullptr, *b = nullptr;
  tessera_dtype_t aType = TESSERA_DTYPE_F32, bType = TESSERA_DTYPE_F32;
  int64_t aStrideM = 0, aStrideK = 0, bStrideK = 0, bStrideN = 0;
  std::vector<int64_t> aOffset, bOffset; // one per batch
};

// True when this build of the plugin links oneDNN.
bool oneDnnBuilt();

// Writes C as batches x M x N dense f32 into `c`, using `threads` threads.
// Returns false with *why when oneDNN is not built in or rejects the
// problem (dtype, strides); `c` is then unspecified.
bool oneDnnMatmul(const LibraryGemm &g, float *c, unsigned threads, std::string *why);

// C = op(A) op(B) through dnnl_sgemm on the calling thread only (a thread of
// the plugin's pool: oneDNN starts and wakes no OpenMP worker; the calling
// thread's OpenMP thread count is restored). False with *why when oneDNN is
// not built in, cannot be held to one thread, or rejects the arguments.
bool oneDnnSgemmSerial(const BlasGemm &g, float *c, int64_t ldc, std::string *why);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_ONEDNN_H
