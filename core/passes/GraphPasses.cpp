// The graph-pass pipeline, in order.
#include "passes/Passes.h"

namespace tessera::passes {

Error runGraphPasses(ir::Function &fn, const PipelineOptions &options) {
  if (Error e = runDecompose(fn, options.claimed))
    return e;
  if (options.canonicalize)
    if (Error e = runCanonicalize(fn))
      return e;
  if (options.constantFold)
    if (Error e = runConstantFold(fn, options.constantFoldMaxElements))
      return e;
  if (options.cse)
    if (Error e = runCSE(fn))
      return e;
  if (options.canonicalize)
    if (Error e = runCanonicalize(fn))
      return e;
  return runDCE(fn);
}

} // namespace tessera::passes
