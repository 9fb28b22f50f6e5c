// Decomposition of composite ops a backend does not lower itself.
#include "passes/Passes.h"

#include "shape/Decompose.h"

namespace tessera::passes {

Error runDecompose(ir::Function &fn, const std::set<ir::OpKind> &claimed) {
  bool hasAttention = false;
  for (const ir::Operation &op : fn.ops)
    hasAttention = hasAttention || op.kind == ir::OpKind::Attention;
  if (!hasAttention || claimed.count(ir::OpKind::Attention))
    return Error::success();
  return shape::decomposeAttention(fn);
}

} // namespace tessera::passes
