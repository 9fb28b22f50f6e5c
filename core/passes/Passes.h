// Graph passes on Graph IR functions. Each pass takes a verified,
// shape-inferred function and leaves it verified and inferred (value types
// re-inferred where it rewrote ops). Passes never change the function's
// signature (params, declared results) or the names of returned values.
#ifndef TESSERA_PASSES_PASSES_H
#define TESSERA_PASSES_PASSES_H

#include "ir/Module.h"
#include "support/Error.h"

#include <cstdint>
#include <set>

namespace tessera::passes {

// Algebraic simplifications: x*1, 1*x, x+0, 0+x, x-0, x/1, double transpose
// (composed, identity removed), reshape of reshape, identity reshape /
// broadcast_to / transpose / squeeze / expand_dims, cast to the same dtype
// and policy. Only rewrites that keep the result type exactly.
Error runCanonicalize(ir::Function &fn);

// Common subexpression elimination: ops of the same kind, operands,
// attributes and result types are merged (iota and constant included).
Error runCSE(ir::Function &fn);

// Evaluates ops whose operands are all constants and whose results are
// static with at most `maxElements` elements, with the reference
// interpreter; replaces them by `constant` ops (rounded to the result dtype).
Error runConstantFold(ir::Function &fn, int64_t maxElements = 4096);

// Decomposes composite ops the backend does not claim (today: attention, via
// shape/Decompose.h). `claimed` lists op kinds the backend lowers itself.
Error runDecompose(ir::Function &fn, const std::set<ir::OpKind> &claimed = {});

// Removes ops none of whose results reach a returned value.
Error runDCE(ir::Function &fn);

struct PipelineOptions {
  bool canonicalize = true;
  bool cse = true;
  bool constantFold = true;
  int64_t constantFoldMaxElements = 4096;
  std::set<ir::OpKind> claimed; // composites the backend lowers itself
};

// decompose, canonicalize, constant fold, CSE, canonicalize, DCE.
Error runGraphPasses(ir::Function &fn, const PipelineOptions &options = {});

} // namespace tessera::passes

#endif // TESSERA_PASSES_PASSES_H
