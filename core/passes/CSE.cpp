// Common subexpression elimination over whole ops (all results at once).
// Ops with `checkpoint = true` are never merged, neither as duplicates nor as
// representatives: the grad transform marks its recomputed (rematerialized)
// ops so, and merging one with its forward twin would undo the remat.
#include "passes/Passes.h"
#include "passes/Rewrite.h"

#include <map>
#include <string>

namespace tessera::passes {

static std::string opKey(const ir::Function &fn, const ir::Operation &op) {
  std::string key = std::to_string(static_cast<int>(op.kind)) + "(";
  for (ir::ValueId o : op.operands)
    key += std::to_string(o) + ",";
  key += "){";
  for (const ir::NamedAttribute &a : op.attrs.entries())
    key += a.name + "=" + a.value.str() + ";";
  key += "}->";
  for (ir::ValueId r : op.results)
    key += fn.typeOf(r).str() + ",";
  return key;
}

Error runCSE(ir::Function &fn) {
  std::vector<bool> returned = returnedValues(fn);
  std::map<std::string, size_t> seen;
  std::vector<bool> keep(fn.ops.size(), true);
  bool changed = false;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    const ir::Operation &op = fn.ops[i];
    if (op.attrs.getBool("checkpoint", false))
      continue;
    std::string key = opKey(fn, op); // operands already rewritten to their representatives
    auto [it, inserted] = seen.emplace(key, i);
    if (inserted)
      continue;
    bool anyReturned = false;
    for (ir::ValueId r : op.results)
      anyReturned = anyReturned || returned[r];
    if (anyReturned)
      continue; // keep the returned name
    const ir::Operation &first = fn.ops[it->second];
    for (size_t r = 0; r < op.results.size(); ++r)
      replaceUses(fn, op.results[r], first.results[r]);
    keep[i] = false;
    changed = true;
  }
  if (!changed)
    return Error::success();
  if (Error e = compact(fn, keep))
    return e;
  return reverify(fn);
}

} // namespace tessera::passes
