#include "passes/Rewrite.h"

#include "ir/Verifier.h"
#include "shape/ShapeInference.h"

#include <string>

namespace tessera::passes {

std::vector<bool> returnedValues(const ir::Function &fn) {
  std::vector<bool> r(fn.values.size(), false);
  for (ir::ValueId v : fn.returns)
    if (v < r.size())
      r[v] = true;
  return r;
}

void replaceUses(ir::Function &fn, ir::ValueId from, ir::ValueId to) {
  for (ir::Operation &op : fn.ops)
    for (ir::ValueId &o : op.operands)
      if (o == from)
        o = to;
}

Error compact(ir::Function &fn, const std::vector<bool> &keep) {
  ir::Function out;
  out.name = fn.name;
  out.resultTypes = fn.resultTypes;
  out.loc = fn.loc;
  out.returnLoc = fn.returnLoc;
  std::vector<ir::ValueId> remap(fn.values.size(), ir::kNoValue);
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const ir::Value &v = fn.value(fn.params[i]);
    remap[fn.params[i]] = out.addValue(v.name, v.type, -1, static_cast<uint32_t>(i));
    out.params.push_back(remap[fn.params[i]]);
  }
  auto mapped = [&](ir::ValueId v, const SourceLocation &loc) -> Expected<ir::ValueId> {
    if (v >= remap.size() || remap[v] == ir::kNoValue)
      return makeError(ErrorCode::Internal, "internal error: a pass removed a value that is still used", loc);
    return remap[v];
  };
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    if (!keep[i])
      continue;
    ir::Operation op = fn.ops[i];
    for (ir::ValueId &o : op.operands) {
      Expected<ir::ValueId> m = mapped(o, op.loc);
      if (!m)
        return m.takeError();
      o = *m;
    }
    int32_t index = static_cast<int32_t>(out.ops.size());
    for (size_t r = 0; r < op.results.size(); ++r) {
      const ir::Value &v = fn.value(op.results[r]);
      remap[op.results[r]] = out.addValue(v.name, v.type, index, static_cast<uint32_t>(r));
      op.results[r] = remap[op.results[r]];
    }
    out.ops.push_back(std::move(op));
  }
  for (ir::ValueId r : fn.returns) {
    Expected<ir::ValueId> m = mapped(r, fn.returnLoc);
    if (!m)
      return m.takeError();
    out.returns.push_back(*m);
  }
  fn = std::move(out);
  return Error::success();
}

Error reverify(ir::Function &fn) {
  if (Error e = ir::verifyFunction(fn))
    return e;
  return shape::inferFunction(fn);
}

std::optional<double> splatValue(const ir::Function &fn, ir::ValueId v) {
  int32_t def = fn.value(v).definingOp;
  if (def < 0 || fn.ops[static_cast<size_t>(def)].kind != ir::OpKind::Constant)
    return std::nullopt;
  const ir::Attribute *value = fn.ops[static_cast<size_t>(def)].attrs.find("value");
  if (!value)
    return std::nullopt;
  std::vector<double> vals;
  switch (value->kind()) {
  case ir::AttrKind::Int: return static_cast<double>(value->getInt());
  case ir::AttrKind::Float: return value->getFloat();
  case ir::AttrKind::Bool: return value->getBool() ? 1.0 : 0.0;
  case ir::AttrKind::IntList:
    for (int64_t x : value->getInts())
      vals.push_back(static_cast<double>(x));
    break;
  case ir::AttrKind::FloatList: vals = value->getFloats(); break;
  default: return std::nullopt;
  }
  if (vals.empty())
    return std::nullopt;
  for (double x : vals)
    if (!(x == vals[0]))
      return std::nullopt;
  return vals[0];
}

} // namespace tessera::passes
