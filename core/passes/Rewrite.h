// Small rewriting helpers shared by the graph passes (internal to
// core/passes).
#ifndef TESSERA_PASSES_REWRITE_H
#define TESSERA_PASSES_REWRITE_H

#include "ir/Module.h"
#include "support/Error.h"

#include <optional>
#include <vector>

namespace tessera::passes {

// Values returned by the function (their names are kept by every pass).
std::vector<bool> returnedValues(const ir::Function &fn);

// Replaces every operand use of `from` by `to` (returns are left alone).
void replaceUses(ir::Function &fn, ir::ValueId from, ir::ValueId to);

// Drops ops with keep[i] == false and every value they defined, renumbering
// values and ops. InvalidIR if a kept op or a return still uses a dropped
// value.
Error compact(ir::Function &fn, const std::vector<bool> &keep);

// verifyFunction + inferFunction: the invariant every pass restores.
Error reverify(ir::Function &fn);

// The scalar of a constant whose elements are all equal (a splat).
std::optional<double> splatValue(const ir::Function &fn, ir::ValueId v);

} // namespace tessera::passes

#endif // TESSERA_PASSES_REWRITE_H
