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

// The machine code of a compiled program and what rebuilding its kernel
// table needs: JitProgram::load links it without any code generation, so an
// executable survives a process (ObjectCode.h serializes it).
struct ObjectImage {
  std::string llvmVersion; // LLVM that generated the code, e.g. "19.1.4"
  std::string triple;      // LLVM target triple of the objects
  std::string dataLayout;  // LLVM data layout string of the objects
  std::vector<std::string> objects; // relocatable ELF files, one per partition
  std::string microSymbol;          // GEMM micro-kernel; empty when no kernel has the GEMM path
  int mr = 0, nr = 0;               // its register block
  struct Kernel {
    std::string loop;     // KernelFn symbol
    std::string epilogue; // EpilogueFn symbol; empty when the GEMM path does not apply
  };
  std::vector<Kernel> kernels; // in program order
};

// True when objects in `image` can be linked into this process: same LLVM
// version and triple (the data layout is checked when linking).
bool objectImageCompatible(const ObjectImage &image, std::string *why);

// One JITed program: one LLJIT instance / JITDylib per executable.
class JitProgram {
public:
  static std::unique_ptr<JitProgram> compile(const schedule::Program &program, const CompileOptions &options,
                                             std::string *error);
  // Links previously generated code (image() of a compiled program); no
  // lowering, optimization or instruction selection runs. The caller checks
  // objectImageCompatible and that the target runs on this host first.
  static std::unique_ptr<JitProgram> load(ObjectImage image, const TargetInfo &target, std::string *error);
  ~JitProgram();
  JitProgram(const JitProgram &) = delete;
  JitProgram &operator=(const JitProgram &) = delete;

  size_t size() const { return kernels_.size(); }
  const CompiledKernel &kernel(size_t i) const { return kernels_[i]; }
  const ObjectImage &image() const { return image_; }

private:
  JitProgram();
  static std::unique_ptr<JitProgram> link(ObjectImage image, const TargetInfo &target, std::string *error);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<CompiledKernel> kernels_;
  ObjectImage image_;
};

// Programs code-generated by JitProgram::compile in this process so far;
// tests read it to prove that loading an executable generated no code.
uint64_t codegenCount();

// True when kernel `k` has the canonical matmul form with f32 operands and
// affine A/B index maps the GEMM path handles; *why says why not.
bool matchesGemm(const schedule::Kernel &k, std::string *why);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_CODEGEN_H
