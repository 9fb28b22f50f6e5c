// Attention kernels (Schedule IR kernel kind `attention`) for the CUDA
// plugin, which lists "attention" in its NATIVE_OPS extension so the core
// hands it the op whole instead of decomposed.
//
// Two functions per attention kernel K, in the launch modes of
// CudaCodegen.h:
//
//   tsr_K_gemm    flash attention on tensor cores (FlashAttention-2, Dao
//                 2023): bf16/f16 with D == Dv in {64, 128}. A block of 8
//                 warps owns 128 query rows (16 per warp, Q held in
//                 registers as mma A fragments); K/V tiles of 64 keys stream
//                 through a cp.async pipeline (`stages` buffers in dynamic
//                 shared memory, XOR-swizzled rows read with ldmatrix);
//                 S = Q K^T and O += P V on mma.sync.m16n8k16 with f32
//                 accumulators; online softmax (running max and sum in f32,
//                 exp2 with scale * log2(e) folded in, O rescaled per tile);
//                 causal by skipping key tiles past the block's last row and
//                 masking the diagonal tiles; P rounded to the operand dtype
//                 for the second product. On sm_90a the two products run on
//                 wgmma.mma_async instead (a warpgroup per 64 rows, K and V
//                 read by the tensor cores straight from shared memory
//                 through matrix descriptors) with the softmax overlapping
//                 the tensor cores' work: P(t) V(t) in flight during the
//                 softmax of tile t + 1 ("wgmma2"), and also Q K(t+1)
//                 during the softmax of tile t ("wgmma3", FlashAttention-3's
//                 intra-warpgroup overlap). The default, "wgmma2x"
//                 (tsr_flash_fwd_wgx), is the wgmma2 schedule over 128-key
//                 tiles with the scale folded into the exponent, Q in its
//                 own shared region loaded with the first K/V tiles and read
//                 from there by Q K (knobs keys, kv_stages, rescale, q;
//                 README.md). Knob impl picks a variant: "wgmma2x",
//                 "wgmma2", "wgmma3", "mma" (mma.sync).
//                 Causal blocks run in sections of batch points whose K/V
//                 fit 32 MB of L2, each section longest query tile first
//                 (knobs order="heads" for the old interleaving, section).
//   tsr_K_thread  the generic path (any float dtype, any D and Dv, symbolic
//                 head dims): one warp per query row, 32 keys at a time with
//                 the same online softmax, f32 (f64 for f64) throughout.
//
// Both take the operands, the symbols and extras (launch-time sizes: batch,
// Sq, Sk, D, Dv, mask row/col strides, then per batch dim its extent and the
// mask's stride, then H for layout=bshd) in the usual 64-bit parameter slots.
//
// layout=bshd (schedule_ir.h; fusion's head split folded into the kernel):
// q, k, v, out stored [batch..., S, H, D]. Batch points run over
// [batch..., H] as for the dense layout; point b = bo * H + hh starts at
// element (bo * S * H + hh) * D and its rows lie H * D apart (the flash
// path's row stride `ld`, a literal D for the dense layout).
#ifndef TESSERA_BACKENDS_CUDA_FLASHATTENTION_H
#define TESSERA_BACKENDS_CUDA_FLASHATTENTION_H

#include "CostModel.h"
#include "CudaCodegen.h"

#include <ostream>
#include <string>

namespace tessera::cuda {

// Flash-kernel geometry (fixed per generator version).
struct FlashTile {
  int rows = 128;   // query rows per block (8 warps x 16)
  int keys = 64;    // keys per K/V tile (wgmma2x: 64 or 128, knob keys)
  int threads = 256;
  int stages = 3;   // K/V tile buffers in shared memory (2 in flight while one is read)
  bool qRegion = false; // wgmma2x: Q keeps its own shared region after the stages
};

// Whether kernel `k` (kind Attention) takes the flash path on `options`'
// architecture, and why not. Head dim from the operand shapes (static).
struct FlashPlan {
  bool usable = false;
  std::string why;
  int headDim = 0;
  bool bf16 = true;
  bool wgmma = false;      // sm_90a: wgmma.mma_async per warpgroup instead of mma.sync per warp
  bool overlapped = false; // wgmma3 (Q K(t+1) also issued before the softmax of tile t), else wgmma2
  bool x = false;          // wgmma2x (tsr_flash_fwd_wgx): tile.keys, tile.stages, lazy, fused
  bool lazy = false;       // wgmma2x: O rescaled only when a row max grows by > 2^8 (knob rescale)
  bool fused = false;      // wgmma2x: scale folded into the exponent (no mask, scale > 0)
  bool qShared = false;    // wgmma2x: Q K reads Q from shared memory (knob q)
  // Causal block order: batch points in sections of `section` (0: as many
  // as 32 MB of K/V hold; knob section), each section's query tiles
  // longest first; knob order="heads": every batch point interleaved (the
  // order before generator version 8).
  bool sectioned = true;
  int64_t section = 0;
  FlashTile tile;
  uint32_t sharedBytes() const; // dynamic shared memory per block
};
FlashPlan planFlash(const schedule::Kernel &k, const CodegenOptions &options);

// Emits kernel `kernel`'s functions (its plan's `symbol` is set) into `out`
// and completes `plan` (slots; gemm.usable = the flash path exists).
bool emitAttention(const schedule::Program &program, size_t kernel, const CodegenOptions &options, KernelPlan *plan,
                   std::ostream &out, std::string *error);

// Launch geometry of an attention kernel for concrete symbols.
bool planAttentionLaunch(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                         const int64_t *symbols, uint32_t smCount, LaunchConfig *out, std::string *error);

// Roofline estimate: 4 * batch * Sq * Sk * D flops (about half when
// causal) on tensor cores (flash) or CUDA cores (generic), operands once.
CostResult estimateAttentionCost(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                                 const GpuModel &gpu, const int64_t *symbols);

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_FLASHATTENTION_H
