// C++ builder for Graph IR functions with eager shape inference: each op is
// verified and typed when added, so errors point at the op being built.
#ifndef TESSERA_SHAPE_BUILDER_H
#define TESSERA_SHAPE_BUILDER_H

#include "ir/Module.h"
#include "shape/ShapeInference.h"
#include "support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace tessera::shape {

class FunctionBuilder {
public:
  explicit FunctionBuilder(std::string name, SourceLocation loc = {});
  FunctionBuilder(const FunctionBuilder &) = delete; // ctx_ points into fn_
  FunctionBuilder &operator=(const FunctionBuilder &) = delete;

  // Adds a parameter; name "" picks "argN". Parameters come before ops.
  // Errors: duplicate or invalid name, rank > kMaxRank, invalid dtype
  // (InvalidIR / ResourceExhausted).
  Expected<ir::ValueId> addParam(std::string name, ir::TensorType type);

  // Adds an op, checks attributes and infers its result types. On error the
  // function is left unchanged. resultNames may be empty (names "0", "1", ...).
  Expected<std::vector<ir::ValueId>> addOp(ir::OpKind kind, std::vector<ir::ValueId> operands,
                                           ir::AttrList attrs = {},
                                           std::vector<ir::TensorType> annotations = {},
                                           SourceLocation loc = {}, bool explicitLoc = false,
                                           std::vector<std::string> resultNames = {});
  // Single-result convenience.
  Expected<ir::ValueId> add(ir::OpKind kind, std::vector<ir::ValueId> operands, ir::AttrList attrs = {},
                            std::vector<ir::TensorType> annotations = {});

  const ir::TensorType &typeOf(ir::ValueId v) const { return fn_.typeOf(v); }
  const ir::Function &function() const { return fn_; }

  // Sets the returned values; declared result types are the inferred ones
  // unless `declared` is non-empty (then checked). Returns the function.
  Expected<ir::Function> finish(std::vector<ir::ValueId> returns, std::vector<ir::TensorType> declared = {});

private:
  ir::Function fn_;
  std::unique_ptr<ShapeContext> ctx_;
  uint32_t nextName_ = 0;
};

} // namespace tessera::shape

#endif // TESSERA_SHAPE_BUILDER_H
