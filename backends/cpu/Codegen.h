// Codegen: Schedule IR kernels -> LLVM IR -> native code through ORC LLJIT.
// This header carries no LLVM type, so only Codegen.cpp pays for the LLVM
// headers.
//
// Every kernel K becomes
//   void K(void **buffers, const int64_t *scalars, int64_t begin, int64_t end)
// which runs tiles [begin, end) of the kernel's parallel iteration space.
// `scalars` holds the program's symbols followed by one tile size per
// parallel loop (the launcher appends them), so tiling is decided at launch
// when symbolic extents are known. Tiles are numbered row-major over the
// per-loop tile counts.
//
// `matmul` kernels that pass the canonical-form check (Gemm.h) also get an
// epilogue function and a register-blocked micro-kernel for the GEMM path.
#ifndef TESSERA_BACKENDS_CPU_CODEGEN_H
#define TESSERA_BACKENDS_CPU_CODEGEN_H

#include "tessera/sdk/schedule_ir.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessera::cpu {

using KernelFn = void (*)(void **buffers, const int64_t *scalars, int64_t begin, int64_t end);
// Runs the epilogue stages of a matmul kernel over output rows [m0, m1) and
// columns [n0, n1) at the fixed batch coordinates `batch`, reading the
// contraction result for (m, n) from c[(m - m0) * ldc + (n - n0)].
using EpilogueFn = void (*)(void **buffers, const int64_t *scalars, const int64_t *batch, int64_t m0, int64_t m1,
                            int64_t n0, int64_t n1, const float *c, int64_t ldc);
// C[MR x NR] (+)= A_packed[kc x MR]^T * B_packed[kc x NR]; row stride ldc.
using MicroKernelFn = void (*)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                               int64_t accumulate);

// What code is generated for: an LLVM CPU name and feature string.
struct TargetInfo {
  std::string architecture; // as reported/requested, e.g. "x86-64-v3"
  std::string cpu;          // LLVM CPU name, e.g. "x86-64-v3" or "znver4"
  std::string features;     // LLVM feature string, e.g. "+avx2,+fma"
  unsigned vectorBits = 128;
  bool fma = false;
  bool avx512 = false;
};

// Resolves a compile target: architecture NULL/"" or "native" -> the host CPU
// with its exact features; an x86-64 level -> that level's CPU name, plus any
// extra comma-separated features ("avx512bf16" or "+avx512bf16").
// Returns false with *error for an architecture this plugin cannot target.
bool resolveTarget(const char *architecture, const char *features, TargetInfo *out, std::string *error);
// The host's own target (what resolveTarget(nullptr, nullptr) gives).
const TargetInfo &hostTarget();
// True when code for `target` can run on this host (its features are a
// subset of the host's).
bool runnableOnHost(const TargetInfo &target, std::string *why);

struct GemmShape; // Gemm.h

struct CompiledKernel {
  KernelFn loop = nullptr;           // generic loop nest; always present
  EpilogueFn epilogue = nullptr;     // set when the GEMM path applies
  MicroKernelFn micro = nullptr;
  int mr = 0, nr = 0;                // micro-kernel register block
};

struct CompileOptions {
  TargetInfo target;
  unsigned optLevel = 3;
  bool dumpTile = false;   // LLVM IR after lowering
  bool dumpTarget = false; // assembly after optimization
  std::function<void(const char *stage, const std::string &text)> dump;
};

// One JITed program: one LLJIT instance / JITDylib per executable.
class JitProgram {
public:
  static std::unique_ptr<JitProgram> compile(const schedule::Program &program, const CompileOptions &options,
                                             std::string *error);
  ~JitProgram();
  JitProgram(const JitProgram &) = delete;
  JitProgram &operator=(const JitProgram &) = delete;

  size_t size() const { return kernels_.size(); }
  const CompiledKernel &kernel(size_t i) const { return kernels_[i]; }

private:
  JitProgram();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<CompiledKernel> kernels_;
};

// True when kernel `k` has the canonical matmul form with f32 operands and
// affine A/B index maps the GEMM path handles; *why says why not.
bool matchesGemm(const schedule::Kernel &k, std::string *why);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_CODEGEN_H
