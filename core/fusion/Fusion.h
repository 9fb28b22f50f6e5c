// Fusion: lowers a verified, shape-inferred Graph IR function to Schedule IR
// kernels (sdk/include/tessera/sdk/schedule_ir.h) plus the operand bindings
// the runtime needs (FusedProgram.h). Rules and per-op lowering are
// described in docs/compiler.md.
#ifndef TESSERA_FUSION_FUSION_H
#define TESSERA_FUSION_FUSION_H

#include "fusion/FusedProgram.h"
#include "ir/Module.h"
#include "support/Error.h"

#include <cstdint>
#include <string>

namespace tessera::fusion {

struct FusionOptions {
  // false: one kernel per Graph IR op (every op result is materialized);
  // useful to bisect a fusion bug.
  bool fuse = true;
  // Fuse elementwise consumers into matmul / conv / reduction kernels.
  bool fuseEpilogues = true;
  // A value with several consumers is recomputed inline in each of them while
  // its inline expression has at most this many scalar instructions;
  // beyond that it is materialized once.
  int64_t maxRecomputeInstrs = 24;
  // Default knobs written on every kernel (a plugin may ignore them).
  int64_t vector = 8;
  int64_t matmulTileM = 64, matmulTileN = 64, matmulTileK = 256;
};

// Lowers `fn` (verified and inferred) to a FusedProgram. Every function
// result is written by some kernel. An `attention` op left in `fn` (the
// plugin compiles it whole; otherwise passes::runDecompose removes it)
// becomes one Schedule IR kernel of kind `attention`. Errors: Unsupported
// naming the op (e.g. a rounding mode other than nearest_even / stochastic
// on a narrowing store, attention with a symbolic head dim and no scale),
// InvalidIR for malformed attributes. Never asserts on user input.
Expected<FusedProgram> fuse(const ir::Function &fn, const FusionOptions &options = {});

// Human-readable dump: the Schedule IR text followed by a binding table per
// kernel (which params / results / intermediates / constants each operand
// is, and the Graph IR ops fused into it). Stable, for golden tests.
std::string dumpFused(const FusedProgram &program);

// schedule::validateProgram plus FusedProgram consistency (one binding per
// operand, indices in range, each result stored). Empty when valid.
std::string validateFused(const FusedProgram &program, const ir::Function &fn);

} // namespace tessera::fusion

#endif // TESSERA_FUSION_FUSION_H
