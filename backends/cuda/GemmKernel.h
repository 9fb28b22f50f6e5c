// Pipelined tensor-core GEMM main loops for matmul kernels (the generated
// path; cuBLASLt is the library path, CublasLt.h). Two families share one
// shared-memory layout and one epilogue scheme:
//
//   MmaAsync  (sm_80+)   tiles staged by a 3-stage cp.async.cg 16-byte
//                        pipeline, fragments read with ldmatrix (.trans for
//                        a row-major B), mma.sync.m16n8k16, 8 warps of 64x64
//                        (128x256 block tile; 128x128 on sm_86/sm_89).
//   Wgmma     (sm_90a)   the same cp.async pipeline, 4 stages, feeding
//                        wgmma.mma_async.m64n256k16 from shared memory
//                        through matrix descriptors: 2 warpgroups, each 64
//                        rows of the 128x256 block tile; one wgmma batch in
//                        flight while the next is issued. Kept for batched
//                        kernels (and on request, gemm_path=wgmma_cp_async).
//   WgmmaTma  (sm_90a)   warp-specialized and persistent (the design of
//                        CUTLASS's sm90 "warpspecialized" kernels): one
//                        producer warpgroup whose first thread fills the
//                        stages with the bulk tensor copy engine
//                        (cp.async.bulk.tensor.2d from tensor maps,
//                        hardware 128B swizzle, zero fill past the edges)
//                        completing on per-stage "full" mbarriers; two
//                        consumer warpgroups run the wgmma loop above and
//                        free each stage through an "empty" mbarrier once
//                        its batch has retired. setmaxnreg moves registers
//                        from the producer (40) to the consumers (232). A
//                        grid of one block per SM walks the tiles, so the
//                        producer loads the next tile while the consumers
//                        run the epilogue. Used for kernels without batch
//                        dims (2-D tensor maps); 4 stages of 48 KB.
//
// Shared memory holds every operand tile in the 128-byte swizzled layout
// wgmma reads natively (PTX ISA, "Shared Memory Matrix Layout", 128B
// swizzling): 16-byte chunk c of 128-byte row r sits at chunk c ^ (r % 8).
//   K-contiguous tile (A, or B stored [n][k]), BK = 64: row r (m or n) is
//     128 bytes; atoms of 8 rows every 1024 bytes (K-major, SBO = 1024).
//   N-contiguous tile (B stored [k][n]): 64-column blocks of BK rows of 128
//     bytes, one after the other (MN-major: LBO = BK*128 between 64-column
//     blocks, SBO = 1024 between groups of 8 k rows).
// The same XOR makes ldmatrix conflict-free (8 rows of one 8x8 matrix land
// in 8 distinct 16-byte bank groups). Tiles start 1024-byte aligned.
//
// Epilogue: accumulators go through shared memory (f32, rows padded by 8;
// WgmmaTma: per consumer warpgroup, 64x32 column slices),
// then the block walks its tile with consecutive threads on consecutive
// columns: the kernel's epilogue stages run once per element (coalesced
// loads and stores), or, for a plain store of a 2-byte output, 8 columns per
// thread with one 16-byte store.
//
// Preconditions (checked by the launcher, else the mma.sync fallback runs):
// A contiguous along k, B contiguous along n (or along k for bKContig), the
// contiguous extent divisible by 8, leading strides and bases multiples of
// 8 elements (16-byte cp.async).
#ifndef TESSERA_BACKENDS_CUDA_GEMMKERNEL_H
#define TESSERA_BACKENDS_CUDA_GEMMKERNEL_H

#include <functional>
#include <ostream>
#include <string>

namespace tessera::cuda {

enum class GemmFamily : unsigned char { MmaAsync, Wgmma, WgmmaTma };

struct PipelinedGemm {
  GemmFamily family = GemmFamily::MmaAsync;
  int bm = 128, bn = 256, bk = 64, stages = 3;
  int warpsM = 2, warpsN = 4; // MmaAsync warp grid; Wgmma: warpsM warpgroups of 64 rows, warpsN = 1
  bool bKContig = false;      // B stored [..., n, k]; else [..., k, n]
  bool f16 = false;           // f16 operands (else bf16)
  bool plainStore = false;    // epilogue is one store of the accumulator (2-byte output)

  int threads() const {
    return family == GemmFamily::WgmmaTma ? (warpsM + 1) * 128
           : family == GemmFamily::Wgmma  ? warpsM * 128
                                          : warpsM * warpsN * 32;
  }
  int stageBytes() const { return (bm * bk + bk * bn) * 2; }
  int epilogueBytes() const { return bm * (bn + 8) * 4; }
  static constexpr int kTmaSliceCols = 32, kTmaSliceLd = 40; // WgmmaTma epilogue slice (floats)
  // Dynamic shared memory per block: the larger of the pipeline and the
  // epilogue tile, plus 1 KB to align the tiles to 1024 bytes.
  int sharedBytes() const;
};

// The configuration for an architecture (sm_90a: Wgmma or WgmmaTma).
PipelinedGemm pipelinedGemmFor(GemmFamily family, int sm, bool bKContig, bool f16, bool plainStore);

// What the kernel generator supplies around the main loop.
struct GemmHooks {
  std::ostream *out = nullptr;
  // Function header (extern "C" __global__ ... {) and declarations of: the
  // operand pointers, symbols, tsr_M, tsr_N, tsr_K, tsr_B (batch count) and
  // the strides sAm, sAk, sBk, sBn (long long).
  std::function<void()> prologue;
  // Inside `for (tsr_bt ...)`: the batch loop variables and the element
  // pointers gA, gB of this batch point (const unsigned short *).
  std::function<void(const std::string &indent)> batchSetup;
  // Epilogue of one element: tsr_em, tsr_en (long long, in range) and
  // float tsr_acc are declared.
  std::function<void(const std::string &indent)> element;
  // Plain store of 8 consecutive columns (only when plainStore): tsr_em,
  // tsr_en, float tsr_v0..tsr_v7 and int tsr_nv (valid columns, 1..8).
  std::function<void(const std::string &indent)> chunk8;
};

// WgmmaTma: the kernel takes two tensor maps after its slot struct,
// `const __grid_constant__ TsrTmap tsr_tma` (A) and `tsr_tmb` (B), declared
// by this struct in the source (a CUtensorMap's 128 bytes, 64-byte aligned).
inline constexpr const char *kTensorMapStruct = "struct __align__(64) TsrTmap { unsigned long long u[16]; };\n";
inline constexpr const char *kTensorMapParams =
    ", const __grid_constant__ TsrTmap tsr_tma, const __grid_constant__ TsrTmap tsr_tmb";

void emitPipelinedGemm(const std::string &function, const PipelinedGemm &g, const GemmHooks &hooks);

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_GEMMKERNEL_H
