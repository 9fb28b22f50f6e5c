// Run-time binding of symbolic dims from concrete input shapes.
#ifndef TESSERA_SHAPE_BINDING_H
#define TESSERA_SHAPE_BINDING_H

#include "ir/Module.h"
#include "support/Error.h"

#include <cstdint>
#include <vector>

namespace tessera::shape {

struct BoundShapes {
  ir::SymbolBindings symbols;                   // every symbol of the function
  std::vector<std::vector<int64_t>> valueShapes; // indexed by ValueId
};

// Binds the symbols of an inferred function from the shapes of its inputs
// (one per parameter, in order), checks every deferred constraint and
// evaluates every value's shape. Errors (ShapeMismatch): wrong input count or
// rank, a static dim that differs, a symbol bound to two sizes (names the
// symbol, both sizes and both inputs), a failed constraint (names the op and
// location), a non-exact division. Dims over int64 or tensors over
// kMaxElements: ResourceExhausted.
//
// Symbols that occur only in op annotations (e.g. the head count H of a
// reshape to B x S x H x D/H) cannot be read off the inputs: pass them in
// `explicitSymbols`. Explicit values are checked like any other binding.
Expected<BoundShapes> bindShapes(const ir::Function &fn, const std::vector<std::vector<int64_t>> &inputShapes,
                                 const ir::SymbolBindings &explicitSymbols = {});

// The concrete shape of a type under bindings.
Expected<std::vector<int64_t>> concreteShape(const ir::TensorType &type, const ir::SymbolBindings &symbols);

} // namespace tessera::shape

#endif // TESSERA_SHAPE_BINDING_H
