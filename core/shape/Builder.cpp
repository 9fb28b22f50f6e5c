#include "shape/Builder.h"

#include "ir/Verifier.h"

#include <cctype>

namespace tessera::shape {

using namespace tessera::ir;

static bool validName(const std::string &name) {
  if (name.empty() || name.size() > 256)
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '$'))
      return false;
  return true;
}

FunctionBuilder::FunctionBuilder(std::string name, SourceLocation loc) {
  fn_.name = std::move(name);
  fn_.loc = std::move(loc);
  ctx_ = std::make_unique<ShapeContext>(fn_);
}

Expected<ValueId> FunctionBuilder::addParam(std::string name, TensorType type) {
  if (!fn_.ops.empty())
    return makeError(ErrorCode::InvalidIR, "@" + fn_.name + ": parameters must be added before the first op");
  if (name.empty())
    name = "arg" + std::to_string(fn_.params.size());
  if (!validName(name))
    return makeError(ErrorCode::InvalidIR, "invalid parameter name '" + name + "' (letters, digits, _ . $)");
  if (fn_.findValue(name))
    return makeError(ErrorCode::InvalidIR, "duplicate parameter name '%" + name + "' in @" + fn_.name);
  if (auto e = checkType(type, fn_.loc, "parameter %" + name + ": " + type.str()))
    return e;
  ValueId v = fn_.addValue(name, std::move(type), -1, uint32_t(fn_.params.size()));
  fn_.params.push_back(v);
  return v;
}

Expected<std::vector<ValueId>> FunctionBuilder::addOp(OpKind kind, std::vector<ValueId> operands, AttrList attrs,
                                                      std::vector<TensorType> annotations, SourceLocation loc,
                                                      bool explicitLoc, std::vector<std::string> resultNames) {
  if (size_t(kind) >= size_t(OpKind::NumOps))
    return makeError(ErrorCode::InvalidIR, "invalid op kind");
  for (ValueId v : operands)
    if (v >= fn_.values.size())
      return makeError(ErrorCode::InvalidIR, std::string("'") + opInfo(kind).name + "': operand " +
                                                 std::to_string(v) + " is not a value of @" + fn_.name,
                       loc);
  Operation op;
  op.kind = kind;
  op.operands = std::move(operands);
  op.attrs = std::move(attrs);
  op.annotations = std::move(annotations);
  op.loc = std::move(loc);
  op.explicitLoc = explicitLoc && op.loc.known();
  // The result count depends on attributes (split); normalize them first.
  if (auto e = checkAttributes(kind, op.attrs, op.loc))
    return e;
  int count = opInfo(kind).numResults;
  if (count < 0) {
    if (auto sizes = op.attrs.getInts("sizes"))
      count = int(sizes->size());
    else
      count = int(op.attrs.getInt("num", 1));
    if (count < 1 || count > 4096)
      return makeError(ErrorCode::InvalidIR, "'split' must produce between 1 and 4096 results", op.loc);
  }
  if (!resultNames.empty() && resultNames.size() != size_t(count))
    return makeError(ErrorCode::InvalidIR, std::string("'") + opInfo(kind).name + "' produces " +
                                               std::to_string(count) + " results but " +
                                               std::to_string(resultNames.size()) + " names were given",
                     op.loc);
  size_t valuesBefore = fn_.values.size();
  uint32_t nameBefore = nextName_;
  auto cp = ctx_->checkpoint();
  int32_t opIndex = int32_t(fn_.ops.size());
  auto undo = [&] {
    fn_.ops.resize(size_t(opIndex));
    fn_.values.resize(valuesBefore);
    nextName_ = nameBefore;
    ctx_->rollback(cp);
  };
  for (int i = 0; i < count; ++i) {
    std::string name;
    if (!resultNames.empty() && !resultNames[size_t(i)].empty()) {
      name = resultNames[size_t(i)];
      if (!validName(name)) {
        undo();
        return makeError(ErrorCode::InvalidIR, "invalid value name '" + name + "' (letters, digits, _ . $)", op.loc);
      }
      if (fn_.findValue(name)) {
        undo();
        return makeError(ErrorCode::InvalidIR, "value '%" + name + "' is defined twice", op.loc);
      }
    } else {
      do
        name = std::to_string(nextName_++);
      while (fn_.findValue(name));
    }
    op.results.push_back(fn_.addValue(name, TensorType(), opIndex, uint32_t(i)));
  }
  fn_.ops.push_back(std::move(op));
  Error e = verifyOp(fn_, size_t(opIndex));
  if (!e)
    e = ctx_->inferOp(size_t(opIndex));
  if (e) {
    undo();
    return e;
  }
  return fn_.ops.back().results;
}

Expected<ValueId> FunctionBuilder::add(OpKind kind, std::vector<ValueId> operands, AttrList attrs,
                                       std::vector<TensorType> annotations) {
  auto r = addOp(kind, std::move(operands), std::move(attrs), std::move(annotations));
  if (!r)
    return r.takeError();
  if (r->size() != 1)
    return internalError(std::string("FunctionBuilder::add on multi-result op ") + opInfo(kind).name);
  return (*r)[0];
}

Expected<Function> FunctionBuilder::finish(std::vector<ValueId> returns, std::vector<TensorType> declared) {
  for (ValueId v : returns)
    if (v >= fn_.values.size())
      return makeError(ErrorCode::InvalidIR, "returned value " + std::to_string(v) + " is not a value of @" + fn_.name);
  Function fn = fn_;
  fn.returns = std::move(returns);
  if (declared.empty())
    for (ValueId v : fn.returns)
      declared.push_back(ctx_->resolve(fn.typeOf(v)));
  fn.resultTypes = std::move(declared);
  // Same checks as the text path.
  if (auto e = verifyFunction(fn))
    return e;
  if (auto e = inferFunction(fn))
    return e;
  return fn;
}

} // namespace tessera::shape
