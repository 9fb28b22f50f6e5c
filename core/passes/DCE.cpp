// Dead-code elimination: keeps the ops some returned value depends on.
#include "passes/Passes.h"
#include "passes/Rewrite.h"

namespace tessera::passes {

Error runDCE(ir::Function &fn) {
  std::vector<bool> live(fn.values.size(), false), keep(fn.ops.size(), false);
  for (ir::ValueId r : fn.returns)
    if (r < live.size())
      live[r] = true;
  for (size_t i = fn.ops.size(); i-- > 0;) {
    const ir::Operation &op = fn.ops[i];
    for (ir::ValueId r : op.results)
      keep[i] = keep[i] || live[r];
    if (keep[i])
      for (ir::ValueId o : op.operands)
        live[o] = true;
  }
  bool changed = false;
  for (bool k : keep)
    changed = changed || !k;
  if (!changed)
    return Error::success();
  if (Error e = compact(fn, keep))
    return e;
  return reverify(fn);
}

} // namespace tessera::passes
