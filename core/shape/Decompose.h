// Decompositions of composite ops into primitive Graph IR ops.
#ifndef TESSERA_SHAPE_DECOMPOSE_H
#define TESSERA_SHAPE_DECOMPOSE_H

#include "ir/Module.h"
#include "support/Error.h"

namespace tessera::shape {

// Rewrites every attention op of an inferred function as
//   s = matmul(q, transpose(k)) * scale [+ mask] [causal: select(row >= col, s, -inf)]
//   out = matmul(softmax(s, axis=-1), v)
// keeping value ids of other values stable-by-name and re-running inference.
// The attention result keeps its name. Errors only if the function did not
// infer.
Error decomposeAttention(ir::Function &fn);

// Every composite op (OpGroup::Composite) in every function.
Error decomposeComposites(ir::Module &module);

} // namespace tessera::shape

#endif // TESSERA_SHAPE_DECOMPOSE_H
