// cuBLASLt as a library choice of `matmul` kernels (knob library="cublaslt";
// with no knob the plugin picks it when the cost model says it wins).
// libcublasLt is opened with dlopen at first use (libcublasLt.so.13, .12,
// the toolkit's lib64), so the plugin loads and the generated GEMM runs
// where it is absent; why it is absent is logged once.
//
// Three layers:
//   planLibrary      Schedule IR only: is the kernel a canonical matmul of
//                    bf16/f16/f32 operands with affine index maps, and is its
//                    epilogue something cuBLASLt computes itself ("direct":
//                    D = alpha * A B [+ C], the output in bf16/f16/f32), or
//                    must the generated epilogue run after it.
//   libraryProblem   with concrete sizes: the column-major cuBLASLt problem
//                    (Lt's A = our B^T, Lt's B = our A^T, D = our C^T), batch
//                    dims folded into M where the layouts allow, the rest a
//                    strided batch, and host-side calls for what is not
//                    linear. Non-direct epilogues go through an f32 scratch
//                    [batch..., M, N] that the kernel's `_epi` function reads.
//   LtDevice         per device: handle, heuristic algorithm cache, run.
#ifndef TESSERA_BACKENDS_CUDA_CUBLASLT_H
#define TESSERA_BACKENDS_CUDA_CUBLASLT_H

#include "tessera/sdk/schedule_ir.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::cuda {

enum class LibraryChoice : uint8_t { Auto, Force, Never };

// Knob `library`: "cublaslt" forces the library (falling back to the
// generated GEMM, with a log line, where it cannot run); "generic", "none"
// or any other name never uses it; no knob (or "auto"): the cost model.
LibraryChoice libraryChoice(const schedule::Kernel &kernel);

struct LibraryPlan {
  bool usable = false;
  std::string why;                            // why not, when !usable
  tessera_dtype_t input = TESSERA_DTYPE_BF16; // both operands (bf16, f16 or f32)
  bool tf32 = false;                          // f32 operands with knob tf32=1
  int64_t aOperand = -1, bOperand = -1;
  size_t aLoad = 0, bLoad = 0; // instruction indices in stage 0
  // Direct epilogue: store(out, [alpha *] acc [+ residual]).
  bool direct = false;
  std::string notDirect; // why the epilogue kernel is needed
  int64_t outOperand = -1;
  size_t outInstr = 0; // the store, in stage 1
  int64_t residualOperand = -1;
  size_t residualInstr = 0; // its load, in stage 1
  float alpha = 1.f;
  // Not direct, with a narrow output (bf16/f16, the inputs' dtype) stored
  // densely in parallel-point order, whose epilogue reads no operand the
  // output could alias: cuBLASLt writes the product rounded to the output's
  // dtype into the output itself and _epi finishes it in place (one read
  // and one write of the narrow output instead of an f32 product written
  // and read). The epilogue then sees the product rounded once to the
  // output's dtype, as an unfused matmul followed by its epilogue would.
  bool narrow = false;
  int64_t narrowOperand = -1;
  size_t narrowInstr = 0; // the store, in stage 1
};
LibraryPlan planLibrary(const schedule::Kernel &kernel);

// One column-major matrix of a cuBLASLt call.
struct LtMatrix {
  tessera_dtype_t type = TESSERA_DTYPE_F32;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  int64_t batchStride = 0; // elements
};

struct LtProblem {
  bool transA = false, transB = false;
  LtMatrix a, b, c, d; // Lt's operands: a = our B, b = our A
  int32_t batch = 1;
  bool fastTf32 = false; // compute type 32F_FAST_TF32, else 32F
  float alpha = 1.f, beta = 0.f;
  int64_t aOperand = -1, bOperand = -1; // kernel operands behind Lt's a and b
  int64_t cOperand = -1;                // -1: C is D (beta = 0)
  int64_t dOperand = -1;                // -1: the f32 scratch
  bool narrow = false;                  // D is the output, finished in place by _epi (LibraryPlan::narrow)
  uint64_t scratchElems = 0;            // f32 elements of the scratch (when dOperand < 0)
  struct Call {
    int64_t a = 0, b = 0, c = 0, d = 0; // element offsets
  };
  std::vector<Call> calls;      // one per outer batch point
  uint64_t m = 0, n = 0, k = 0; // after folding (for logs and costs)
};

// Derives the problem for concrete symbol values. `direct` asks for the
// direct form (only when plan.direct); otherwise the scratch form. False
// with *why when cuBLASLt cannot express it (strided views, K == 0, ...).
bool libraryProblem(const schedule::Program &program, size_t kernel, const LibraryPlan &plan, const int64_t *symbols,
                    bool direct, LtProblem *out, std::string *why);

// libcublasLt, opened once per process. False with *why ("cuBLASLt not
// found: libcublasLt.so.13: cannot open ...") when absent.
bool cublasLtAvailable(std::string *why);
// "libcublasLt.so.13 (cuBLASLt 13.0.x)" or why it is absent.
std::string cublasLtDescription();

// Times work enqueued between start and stop on the stream of a run (CUDA
// events); the plugin supplies it, as this file carries no driver.
class LtTimer {
public:
  virtual ~LtTimer() = default;
  virtual bool start() = 0;
  virtual bool stop(double *seconds) = 0;
};

// One device's cuBLASLt state. Create and use it with the device's context
// current. Thread-safe.
//
// Algorithm choice: cuBLASLt's heuristic returns up to 8 candidates; with
// a timer, the first run of a problem of at least 2^30 multiply-adds
// times each (best of 3 after a warm-up) and keeps the fastest (the
// heuristic's first choice ran 8% slower than PyTorch's at 8192^3 on an
// H200). Problems that read their output (C is D, beta 1) are not timed.
// TESSERA_CUBLASLT_TUNE=0 keeps the heuristic's first choice.
class LtDevice {
public:
  LtDevice();
  ~LtDevice();
  LtDevice(const LtDevice &) = delete;
  LtDevice &operator=(const LtDevice &) = delete;

  // Enqueues p's calls on `stream` (a CUstream). operands[i] is operand i's
  // device address; scratch the f32 scratch (when p.dOperand < 0). False
  // with *why when cuBLASLt refuses (no algorithm, a failed call); calls
  // enqueued before a failure may have written part of the output, which
  // the fallback then overwrites whole.
  // *plan (optional) caches the chosen algorithm between runs of the same
  // problem and operands: null on the first run, set by it. *tuning (when
  // given) says what the algorithm choice timed, on the run that timed it.
  bool run(const LtProblem &p, const uint64_t *operands, uint64_t scratch, void *stream, uint64_t workspace,
           uint64_t workspaceBytes, std::string *why, const void **plan = nullptr, LtTimer *timer = nullptr,
           std::string *tuning = nullptr);

private:
  struct Plan;
  std::mutex mutex_;
  void *handle_ = nullptr;
  std::string createError_;
  std::map<std::string, std::unique_ptr<Plan>> plans_;
};

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_CUBLASLT_H
