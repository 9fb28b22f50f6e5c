// Constant folding through the reference interpreter: an op whose operands
// are all constants and whose (single) result is static and small becomes a
// `constant` holding the rounded values.
#include "passes/Passes.h"
#include "passes/Rewrite.h"

#include "reference/Evaluator.h"
#include "shape/Builder.h"

#include <cmath>

namespace tessera::passes {

namespace {

// Evaluates fn.ops[index] on its constant operands.
Expected<ref::RefTensor> evaluateOp(const ir::Function &fn, const ir::Operation &op) {
  shape::FunctionBuilder b("fold");
  std::vector<ir::ValueId> operands;
  for (ir::ValueId o : op.operands) {
    const ir::Operation &c = fn.ops[static_cast<size_t>(fn.value(o).definingOp)];
    Expected<ir::ValueId> v = b.add(ir::OpKind::Constant, {}, c.attrs, {fn.typeOf(o)});
    if (!v)
      return v.takeError();
    operands.push_back(*v);
  }
  Expected<ir::ValueId> r = b.add(op.kind, operands, op.attrs, op.annotations);
  if (!r)
    return r.takeError();
  Expected<ir::Function> f = b.finish({*r});
  if (!f)
    return f.takeError();
  Expected<std::vector<ref::RefTensor>> out = ref::evaluate(*f, {});
  if (!out)
    return out.takeError();
  return std::move(out->at(0));
}

} // namespace

Error runConstantFold(ir::Function &fn, int64_t maxElements) {
  bool changed = false;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    ir::Operation &op = fn.ops[i];
    if (op.kind == ir::OpKind::Constant || op.operands.empty() || op.results.size() != 1 ||
        ir::opInfo(op.kind).group == ir::OpGroup::Composite)
      continue;
    bool allConst = true;
    for (ir::ValueId o : op.operands) {
      int32_t def = fn.value(o).definingOp;
      allConst = allConst && def >= 0 && fn.ops[static_cast<size_t>(def)].kind == ir::OpKind::Constant;
    }
    if (!allConst)
      continue;
    const ir::TensorType &type = fn.typeOf(op.results[0]);
    std::optional<std::vector<int64_t>> shape = type.staticShape();
    if (!shape)
      continue;
    int64_t count = 1;
    for (int64_t d : *shape)
      count = d > 0 && count > maxElements / d ? maxElements + 1 : count * d;
    if (count > maxElements)
      continue;
    Expected<ref::RefTensor> value = evaluateOp(fn, op);
    if (!value)
      continue; // e.g. a gather index out of range: left for run time to report
    ir::AttrList attrs;
    if (ir::isFloat(type.dtype)) {
      attrs.set("value", ir::Attribute::ofFloats(value->data));
    } else {
      std::vector<int64_t> ints;
      for (double x : value->data)
        ints.push_back(static_cast<int64_t>(x));
      attrs.set("value", ir::Attribute::ofInts(std::move(ints)));
    }
    op.kind = ir::OpKind::Constant;
    op.operands.clear();
    op.attrs = std::move(attrs);
    op.annotations = {type};
    changed = true;
  }
  if (!changed)
    return Error::success();
  if (Error e = reverify(fn))
    return e;
  return runDCE(fn);
}

} // namespace tessera::passes
