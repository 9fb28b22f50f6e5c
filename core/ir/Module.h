// Graph IR containers: SSA values, operations, functions and modules.
//
// A Function owns its values in one vector; ValueId indexes it. Parameters
// and op results are values. Ops are kept in program order and every operand
// is defined before use (the verifier checks it). Plain copyable structs on
// purpose: passes and the reference interpreter read them directly.
#ifndef TESSERA_IR_MODULE_H
#define TESSERA_IR_MODULE_H

#include "ir/Attribute.h"
#include "ir/OpRegistry.h"
#include "ir/Type.h"
#include "support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera::ir {

using ValueId = uint32_t;
inline constexpr ValueId kNoValue = UINT32_MAX;

struct Value {
  std::string name; // without '%'; unique in its function
  TensorType type;  // declared (parameters) or inferred (op results)
  int32_t definingOp = -1; // index into Function::ops; -1 for parameters
  uint32_t resultIndex = 0; // which result of the defining op / which parameter
};

struct Operation {
  OpKind kind = OpKind::NumOps;
  std::vector<ValueId> operands;
  std::vector<ValueId> results;
  AttrList attrs;
  // Result type annotations as written (`: tensor<...>`); empty when none.
  // After inference Value::type holds the final types.
  std::vector<TensorType> annotations;
  // Where the op is: its position in the .tsr text, or the location given
  // with loc("file":line:col) / the builder (then explicitLoc is true and the
  // printer writes it back).
  SourceLocation loc;
  bool explicitLoc = false;

  const char *name() const { return opInfo(kind).name; }
};

// `lhs == rhs` that inference could not decide statically; checked when
// shapes are bound at run time.
struct ShapeConstraint {
  Dim lhs, rhs;
  std::string reason; // "matmul contraction", "reshape element count", ...
  SourceLocation loc;
};

struct Function {
  std::string name; // without '@'
  std::vector<ValueId> params;
  std::vector<TensorType> resultTypes; // declared
  std::vector<Operation> ops;
  std::vector<ValueId> returns;
  std::vector<Value> values;
  SourceLocation loc;       // of `func`
  SourceLocation returnLoc; // of `return`

  // Filled by shape inference (shape/ShapeInference.h).
  std::vector<ShapeConstraint> constraints;
  // Symbols unified with another dim, e.g. C -> B after add(tensor<B>, tensor<C>).
  std::vector<std::pair<std::string, Dim>> unified;

  const Value &value(ValueId id) const { return values[id]; }
  Value &value(ValueId id) { return values[id]; }
  const TensorType &typeOf(ValueId id) const { return values[id].type; }
  // Symbols of the parameter types in order of first appearance.
  std::vector<std::string> paramSymbols() const;
  // Adds a value and returns its id.
  ValueId addValue(std::string name, TensorType type, int32_t definingOp, uint32_t resultIndex);
  std::optional<ValueId> findValue(const std::string &name) const;
};

struct Module {
  std::vector<Function> functions;

  const Function *findFunction(const std::string &name) const;
  Function *findFunction(const std::string &name);
};

} // namespace tessera::ir

#endif // TESSERA_IR_MODULE_H
