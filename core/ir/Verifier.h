// Structural verification of Graph IR (no shapes: see shape/ShapeInference.h).
#ifndef TESSERA_IR_VERIFIER_H
#define TESSERA_IR_VERIFIER_H

#include "ir/Module.h"
#include "support/Error.h"

namespace tessera::ir {

// Checks one op's attributes against the registry: unknown names, missing
// required ones, wrong kinds. Normalizes in place (an int where a float is
// expected becomes a float, [] where a float list is expected becomes one),
// so the canonical form prints the registry's type. InvalidIR, located at loc.
Error checkAttributes(OpKind kind, AttrList &attrs, const SourceLocation &loc);

// Structure: unique function/value names, operands defined before use,
// operand/result counts, attributes (normalized as above), annotations
// present where the registry requires them, ranks <= kMaxRank, returns
// present and matching the declared result count. InvalidIR or
// ResourceExhausted, located.
Error verifyFunction(Function &fn);

// The per-op part of verifyFunction for fn.ops[opIndex] (operand and result
// counts, operands defined before use, attributes, annotations); value name
// uniqueness is left to the caller.
Error verifyOp(Function &fn, size_t opIndex);

// One tensor type: dtype valid, rank <= kMaxRank, constant dims >= 0, static
// element count <= kMaxElements, accumulation dtype of the same family.
// `what` names the type in the message ("type of %x").
Error checkType(const TensorType &type, const SourceLocation &loc, const std::string &what);
Error verifyModule(Module &module);

} // namespace tessera::ir

#endif // TESSERA_IR_VERIFIER_H
