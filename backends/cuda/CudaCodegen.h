// CudaCodegen: Schedule IR kernels -> one CUDA C++ translation unit that
// NVRTC compiles to a cubin. Carries no CUDA header, so it is testable
// without a toolkit.
//
// Every Schedule IR kernel K becomes up to four __global__ functions, one per
// launch mode; the launcher picks one when the symbolic extents are known:
//
//   tsr_K_flat    one map stage, no reduce: the parallel loops and the map's
//                 inner loops flattened into one grid-stride index space.
//   tsr_K_thread  one thread per parallel point (grid-stride); the stages run
//                 their inner loops serially. Always correct; small rows.
//   tsr_K_block   one thread block per parallel point (grid-stride over
//                 blocks): each stage's inner iterations are strided over
//                 the block's threads and every reduce is combined with warp
//                 shuffles plus one shared-memory exchange, so the result is
//                 uniform across the block (softmax, layer_norm, rms_norm).
//   tsr_K_gemm    matmul kernels whose canonical A/B loads are affine and
//                 whose operands are bf16/f16 (or f32 with knob tf32=1):
//                 tensor cores through mma.sync, epilogue stages fused per
//                 accumulator element. The fallback of the two below.
//   tsr_K_gemma   bf16/f16 matmuls with A contiguous along k and B along n
//                 (or k): cp.async multi-stage pipeline, ldmatrix, mma.sync
//                 (GemmKernel.h). On sm_90a only with knob
//                 gemm_path=mma_async.
//   tsr_K_wgmma   the same on sm_90a through wgmma.mma_async.
//   tsr_K_epi     matmul kernels cuBLASLt can run (CublasLt.h): the
//                 epilogue stages over the f32 product cuBLASLt wrote, when
//                 cuBLASLt cannot apply the epilogue itself (8 columns per
//                 thread with 16-byte accesses where KernelPlan::epiVec).
//
// Every function takes one by-value parameter, an array of 64-bit slots:
// the operands' device pointers (operand order), the program's symbols
// (symbol order), then mode-specific extras (GEMM strides).
#ifndef TESSERA_BACKENDS_CUDA_CUDACODEGEN_H
#define TESSERA_BACKENDS_CUDA_CUDACODEGEN_H

#include "CublasLt.h"
#include "GemmKernel.h"

#include "tessera/sdk/schedule_ir.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::cuda {

// Bumped whenever generated function names, parameters or launch rules
// change, so serialized cubins of another generator are refused.
inline constexpr uint32_t kCodegenVersion = 9;

enum class LaunchMode : uint8_t { Flat, Thread, Block, Gemm, GemmAsync, Wgmma, LibEpilogue };
inline constexpr size_t kLaunchModeCount = 7;

// Chunks of 8 elements each thread of a vectorized row kernel keeps in
// registers (so one block covers rows up to 8 * chunks * blockDim.x): the
// default, and the most knob `row_chunks` may ask for.
inline constexpr int kRowVecChunks = 4;
inline constexpr int kMaxRowVecChunks = 8;
const char *launchModeName(LaunchMode mode);

// GEMM tile shape of the tensor-core path (fixed per generator version).
struct GemmTile {
  int bm = 128, bn = 128, bk = 32;
  int warpsM = 2, warpsN = 4; // 8 warps; each warp owns (bm/warpsM) x (bn/warpsN)
  int threads() const { return warpsM * warpsN * 32; }
};

enum class GemmInput : uint8_t { BF16, F16, TF32 };

struct GemmPlan {
  bool usable = false;
  std::string why;          // why not, when !usable
  GemmInput input = GemmInput::BF16;
  size_t mLoop = 0, nLoop = 0; // parallel loop indices of M and N (last two)
  int64_t aOperand = -1, bOperand = -1;
  GemmTile tile;
  // Pipelined variants (GemmKernel.h): A's k and B's n (or k) index have
  // unit stride in the index maps; the launcher checks 16-byte alignment.
  bool aKContig = false, bNContig = false, bKContig = false;
  bool plainStore = false;  // the epilogue is one store of a 2-byte output at [..., p_M, p_N]
  bool async = false;       // _gemma exists (not on sm_90a unless knob gemm_path=mma_async)
  bool wgmma = false;       // _wgmma exists (sm_90a)
  PipelinedGemm asyncConfig, wgmmaConfig;
};

struct KernelPlan {
  std::string name;                 // Schedule IR kernel name
  std::string symbol;               // C identifier stem: tsr_<index>_<sanitized name>
  bool flat = false;                // a _flat variant exists
  bool block = false;               // a _block variant exists
  GemmPlan gemm;                    // a _gemm variant exists when gemm.usable
  LibraryPlan library;              // cuBLASLt can run it (and _epi exists) when library.usable
  bool hasReduce = false;
  // 16-byte vector paths (8 elements per access along the innermost loop r0),
  // taken at run time when extents and alignment allow, the scalar code
  // otherwise: in _flat (one chunk of 8 per thread, grid-stride) and in
  // _block (the row in registers, read once; rows up to rowChunks * 8 *
  // blockDim.x elements).
  bool flatVec = false;
  bool blockVec = false;
  int rowChunks = kRowVecChunks;    // chunks of 8 per thread in _block's vector path (knob row_chunks)
  // _epi moves 8 consecutive output columns per thread with 16-byte
  // accesses (when N % 8 == 0 and the bases are aligned; checked at run
  // time): every epilogue access that moves with the N loop is [..., p_N].
  bool epiVec = false;
  bool extentsUseParallel = false;  // some stage extent mentions a parallel loop
  size_t numSlots = 0;              // 64-bit parameter slots (operands + symbols + extras)
  size_t extraSlots = 0;
  // A knob the generated code cannot honour (knob `stages` out of range for
  // its path or shared memory); empty when every knob applies. The code is
  // generated with the default instead; the cost model reports the point
  // infeasible with this reason.
  std::string knobIssue;
  // Attention (FlashAttention.h): dynamic shared memory of the flash
  // kernel generated for this architecture (0 when there is none).
  uint32_t flashSharedBytes = 0;
  std::string function(LaunchMode mode) const;
};

struct CodegenOptions {
  int smVersion = 90;     // 80, 86, 89, 90, ...
  bool archSpecific = false; // sm_90a
};

struct GeneratedProgram {
  std::string source;               // CUDA C++ (one translation unit)
  std::vector<KernelPlan> kernels;  // per Schedule IR kernel
};

// Generates the translation unit. Returns false with *error (UNSUPPORTED
// class problems: an op/dtype combination the generator cannot express).
bool generateProgram(const schedule::Program &program, const CodegenOptions &options, GeneratedProgram *out,
                     std::string *error);

// CUDA C++ spellings shared with the attention generator (FlashAttention.h):
// the element type of `dtype` in device memory, an expression decoding a
// stored element `e` to its register type, and one encoding value `e` of
// dtype `from` for storage as `to` (round to nearest even).
std::string storageType(tessera_dtype_t dtype);
std::string decodeElement(tessera_dtype_t dtype, const std::string &e);
std::string encodeElement(const std::string &e, tessera_dtype_t from, tessera_dtype_t to);

// Index-expression helpers shared with CublasLt.cpp: whether `e` mentions a
// loop variable (kind, which; which < 0: any), whether it is affine in the
// loop variables (sums, products with one loop-dependent factor, no values),
// and the linear element offset of an access at a parallel point and r0.
bool indexMentions(const schedule::IndexExpr &e, schedule::IndexExpr::Kind kind, int64_t which = -1);
bool affineIndex(const schedule::IndexExpr &e);
int64_t accessOffset(const schedule::Kernel &kernel, const schedule::Instr &access, const int64_t *symbols,
                     const std::vector<int64_t> &par, int64_t r0);

// "sm_90a" -> (90, true); "sm_80" -> (80, false). False for anything else.
bool parseArchitecture(const std::string &arch, int *sm, bool *archSpecific);

// True when a cubin built for `cubinArch` runs on a device of `deviceArch`
// (same major, device minor >= cubin minor; "a" targets only their exact
// compute capability). CUDA C++ Programming Guide, "Binary Compatibility".
bool cubinRunsOn(const std::string &cubinArch, const std::string &deviceArch);

// Extra parameter slots of matmul kernels (after operands and symbols):
// sAm, sAk, sBk, sBn, 16-byte flag, then the product for _epi (f32; the
// output itself when LibraryPlan::narrow).
inline constexpr size_t kGemmExtraSlots = 6;

// The launch geometry and mode chosen for kernel `kernel` with concrete
// symbol values; extras are the values of the extra parameter slots. For
// matmul kernels: knob gemm_path = "wgmma" | "mma_async" | "mma" picks a
// generated variant (where it applies), else the fastest that applies.
// A 2-D tensor map the launcher encodes (cuTensorMapEncodeTiled: 2-byte
// elements, 128B swizzle, zero fill out of bounds) over operand `operand`
// from element `offset`: dims[0] elements contiguous, dims[1] rows
// `rowStride` elements apart, boxes of box[0] x box[1] elements.
struct TensorMapSpec {
  size_t operand = 0;
  int64_t offset = 0;
  uint64_t dims[2] = {0, 0};
  int64_t rowStride = 0;
  uint32_t box[2] = {0, 0};
  bool f16 = false; // else bf16
};

struct LaunchConfig {
  LaunchMode mode = LaunchMode::Thread;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  uint32_t sharedBytes = 0;
  bool empty = false;               // nothing to do (a zero extent)
  std::vector<int64_t> extras;
  // WgmmaTma (GemmKernel.h): A's and B's tensor maps, passed after the
  // slots as the kernel's tsr_tma and tsr_tmb.
  std::vector<TensorMapSpec> tensorMaps;
};
bool planLaunch(const schedule::Program &program, size_t kernel, const KernelPlan &plan, const int64_t *symbols,
                uint32_t smCount, LaunchConfig *out, std::string *error);

// The _epi launch after cuBLASLt wrote the product (f32, or narrow: into the
// output) (mode LibEpilogue; extras[5] is left 0 for the caller to fill with
// the product's address).
bool planLibraryEpilogue(const schedule::Program &program, size_t kernel, const KernelPlan &plan,
                         const int64_t *symbols, uint32_t smCount, LaunchConfig *out);

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_CUDACODEGEN_H
