// Symbolic shape and type inference for Graph IR.
//
// Symbols in parameter types name sizes; ops add equalities between dims
// (matmul contraction, broadcasting, concat, ...). Equal canonical forms
// hold. A free symbol (one in no parameter type, e.g. H in a reshape
// annotation B x S x H x D/H) unifies with the other side (recorded in
// Function::unified, applied to every inferred type). Two different
// parameter symbols, a symbol and a constant, or two different constants are
// a mismatch. Equalities between compound expressions that cannot be decided
// (B*S == N*M) are kept as ShapeConstraints and checked when shapes are bound
// (shape/Binding.h). Diagnostics name the op,
// its location, expected vs actual, and a hint where one is clear.
#ifndef TESSERA_SHAPE_SHAPEINFERENCE_H
#define TESSERA_SHAPE_SHAPEINFERENCE_H

#include "ir/Module.h"
#include "support/Error.h"

#include <map>
#include <string>

namespace tessera::shape {

// Inference state of one function; lets the builder infer op by op.
class ShapeContext {
public:
  explicit ShapeContext(ir::Function &fn);

  // Applies the current unifier to a dim / type.
  ir::Dim resolve(const ir::Dim &dim) const;
  ir::TensorType resolve(const ir::TensorType &type) const;

  // Requires a == b. Binds a free symbol when possible, defers undecidable
  // cases as constraints. On a definite mismatch returns false (the caller
  // builds the diagnostic). Errors only for overflow.
  Expected<bool> require(const ir::Dim &a, const ir::Dim &b, const std::string &reason,
                         const SourceLocation &loc);

  // Infers the result types of fn.ops[opIndex] (operands must be typed) and
  // stores them in the result values, checking annotations.
  Error inferOp(size_t opIndex);
  // Checks returns against the declared result types; call after all ops.
  Error finish();

  ir::Function &function() { return fn_; }

  // Undo support for the builder: state before an op that failed to infer.
  struct Checkpoint {
    size_t constraints = 0, unified = 0;
    std::map<std::string, ir::Dim> subst;
  };
  Checkpoint checkpoint() const { return {fn_.constraints.size(), fn_.unified.size(), subst_}; }
  void rollback(const Checkpoint &c) {
    fn_.constraints.resize(c.constraints);
    fn_.unified.resize(c.unified);
    subst_ = c.subst;
  }

private:
  ir::Function &fn_;
  std::map<std::string, ir::Dim> subst_;
  friend class OpInferrer;
};

// Infers every op of a structurally verified function, then checks the
// declared result types. Resets constraints/unified first.
Error inferFunction(ir::Function &fn);
// ir::verifyModule + inferFunction on every function.
Error verifyAndInfer(ir::Module &module);

// Broadcast result of two shapes (NumPy rules; a symbolic dim is never
// treated as 1). Exposed for passes. Failures are ShapeMismatch with `what`
// in the message.
Expected<std::vector<ir::Dim>> broadcastShapes(ShapeContext &ctx, const std::vector<ir::Dim> &a,
                                               const std::vector<ir::Dim> &b, const std::string &what,
                                               const SourceLocation &loc);

} // namespace tessera::shape

#endif // TESSERA_SHAPE_SHAPEINFERENCE_H
