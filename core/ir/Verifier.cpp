#include "ir/Verifier.h"

#include <set>

namespace tessera::ir {

static Error invalid(const SourceLocation &loc, std::string msg) {
  return makeError(ErrorCode::InvalidIR, std::move(msg), loc);
}

static bool kindMatches(AttrType type, AttrKind kind) {
  switch (type) {
  case AttrType::Int: return kind == AttrKind::Int;
  case AttrType::Float: return kind == AttrKind::Float;
  case AttrType::String: return kind == AttrKind::String;
  case AttrType::Bool: return kind == AttrKind::Bool;
  case AttrType::IntList: return kind == AttrKind::IntList;
  case AttrType::FloatList: return kind == AttrKind::FloatList;
  case AttrType::DType: return kind == AttrKind::DType;
  case AttrType::Number:
    return kind == AttrKind::Int || kind == AttrKind::Float || kind == AttrKind::Bool || kind == AttrKind::IntList ||
           kind == AttrKind::FloatList;
  }
  return false;
}

Error checkAttributes(OpKind kind, AttrList &attrs, const SourceLocation &loc) {
  const OpInfo &info = opInfo(kind);
  std::vector<std::pair<std::string, Attribute>> coerced;
  for (const auto &entry : attrs.entries()) {
    const AttrSpec *spec = info.findAttr(entry.name);
    if (!spec) {
      std::string known;
      for (const auto &a : info.attrs)
        known += (known.empty() ? "" : ", ") + std::string(a.name);
      return invalid(loc, "unknown attribute '" + entry.name + "' for op '" + info.name + "'" +
                              (known.empty() ? "; it takes no attributes" : "; known attributes: " + known));
    }
    AttrKind k = entry.value.kind();
    if (spec->type == AttrType::Float && k == AttrKind::Int) {
      coerced.emplace_back(entry.name, Attribute::ofFloat(double(entry.value.getInt())));
      continue;
    }
    if (spec->type == AttrType::FloatList && k == AttrKind::IntList) {
      const auto &v = entry.value.getInts();
      coerced.emplace_back(entry.name, Attribute::ofFloats(std::vector<double>(v.begin(), v.end())));
      continue;
    }
    if (!kindMatches(spec->type, k))
      return invalid(loc, "attribute '" + entry.name + "' of '" + info.name + "' must be " +
                              attrTypeName(spec->type) + ", got " + attrKindName(k) + " " + entry.value.str());
  }
  for (auto &[name, value] : coerced)
    attrs.set(name, std::move(value));
  for (const auto &spec : info.attrs)
    if (spec.required && !attrs.find(spec.name))
      return invalid(loc, std::string("op '") + info.name + "' needs attribute '" + spec.name + "' (" +
                              attrTypeName(spec.type) + ": " + spec.doc + ")");
  return Error::success();
}

Error checkType(const TensorType &type, const SourceLocation &loc, const std::string &what) {
  if (type.dtype == DType::Invalid)
    return invalid(loc, what + " has an invalid dtype");
  if (type.rank() > kMaxRank)
    return makeError(ErrorCode::ResourceExhausted,
                     what + " has rank " + std::to_string(type.rank()) + "; the maximum rank is " +
                         std::to_string(kMaxRank),
                     loc);
  for (const auto &d : type.dims) {
    auto c = d.constantValue();
    if (c && *c < 0)
      return invalid(loc, what + " has a negative dimension " + std::to_string(*c));
    if (d.isConstant() && !c)
      return invalid(loc, what + " has a non-integer dimension " + d.str());
  }
  if (auto shape = type.staticShape()) {
    __int128 n = 1;
    for (int64_t d : *shape) {
      n *= d;
      if (n > kMaxElements)
        return makeError(ErrorCode::ResourceExhausted,
                         what + " has more than " + std::to_string(kMaxElements) +
                             " elements (the limit)",
                         loc);
    }
  }
  if (type.policy.accum) {
    DType a = *type.policy.accum;
    bool ok = isFloat(type.dtype) ? isFloat(a) && dtypeBits(a) >= dtypeBits(type.dtype)
                                  : isInteger(type.dtype) && isInteger(a) && dtypeBits(a) >= dtypeBits(type.dtype);
    if (!ok)
      return invalid(loc, what + ": accumulation dtype " + dtypeName(a) + " does not suit element dtype " +
                              dtypeName(type.dtype) + " (needs a " +
                              (isFloat(type.dtype) ? "float" : "integer") + " dtype at least as wide)");
  }
  return Error::success();
}

static int expectedResults(const Operation &op) {
  const OpInfo &info = opInfo(op.kind);
  if (info.numResults >= 0)
    return info.numResults;
  // split
  if (auto sizes = op.attrs.getInts("sizes"))
    return int(sizes->size());
  if (const Attribute *num = op.attrs.find("num"))
    return num->kind() == AttrKind::Int ? int(num->getInt()) : -1;
  return -1;
}

Error verifyOp(Function &fn, size_t i) {
  if (i >= fn.ops.size())
    return internalError("verifyOp: op index out of range");
  Operation &op = fn.ops[i];
  const OpInfo &info = opInfo(op.kind);
  int n = int(op.operands.size());
  if (n < info.minOperands || (info.maxOperands >= 0 && n > info.maxOperands)) {
    std::string want = info.minOperands == info.maxOperands ? std::to_string(info.minOperands)
                       : info.maxOperands < 0 ? "at least " + std::to_string(info.minOperands)
                                              : std::to_string(info.minOperands) + " to " +
                                                    std::to_string(info.maxOperands);
    return invalid(op.loc, std::string("'") + info.name + "' takes " + want + " operand" +
                               (want == "1" ? "" : "s") + ", got " + std::to_string(n));
  }
  for (ValueId v : op.operands)
    if (v >= fn.values.size() || fn.values[v].definingOp >= int32_t(i))
      return invalid(op.loc, std::string("operand of '") + info.name + "' is not defined before use");
  if (auto e = checkAttributes(op.kind, op.attrs, op.loc))
    return e;
  int want = expectedResults(op);
  if (op.kind == OpKind::Split) {
    bool hasSizes = op.attrs.find("sizes") != nullptr, hasNum = op.attrs.find("num") != nullptr;
    if (hasSizes == hasNum)
      return invalid(op.loc, "'split' needs exactly one of 'sizes' and 'num'");
    if (want < 1 || want > 4096)
      return invalid(op.loc, "'split' must produce between 1 and 4096 results, got " + std::to_string(want));
  }
  if (want >= 0 && int(op.results.size()) != want)
    return invalid(op.loc, std::string("'") + info.name + "' produces " + std::to_string(want) + " result" +
                               (want == 1 ? "" : "s") + ", but " + std::to_string(op.results.size()) +
                               (op.results.size() == 1 ? " is" : " are") + " named");
  if (!op.annotations.empty() && op.annotations.size() != op.results.size())
    return invalid(op.loc, std::string("'") + info.name + "' has " + std::to_string(op.results.size()) +
                               " results but " + std::to_string(op.annotations.size()) + " result types");
  if (info.resultRule == ResultRule::Annotated && op.annotations.empty())
    return invalid(op.loc, std::string("'") + info.name + "' needs a result type: " + info.name +
                               "(...) {...} : tensor<...>");
  for (size_t r = 0; r < op.annotations.size(); ++r)
    if (auto e = checkType(op.annotations[r], op.loc, std::string("result type of '") + info.name + "' " + op.annotations[r].str()))
      return e;
  return Error::success();
}

Error verifyFunction(Function &fn) {
  std::set<std::string> names;
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const Value &p = fn.values[fn.params[i]];
    if (!names.insert(p.name).second)
      return invalid(fn.loc, "duplicate parameter name '%" + p.name + "' in @" + fn.name);
    if (auto e = checkType(p.type, fn.loc, "parameter %" + p.name + ": " + p.type.str()))
      return e;
  }
  if (fn.resultTypes.empty())
    return invalid(fn.loc, "function @" + fn.name + " must return at least one value");
  for (size_t i = 0; i < fn.resultTypes.size(); ++i)
    if (auto e = checkType(fn.resultTypes[i], fn.loc, "result " + std::to_string(i) + " of @" + fn.name + ": " + fn.resultTypes[i].str()))
      return e;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    Operation &op = fn.ops[i];
    if (auto e = verifyOp(fn, i))
      return e;
    for (ValueId r : op.results) {
      if (r >= fn.values.size())
        return internalError("result value id out of range");
      if (!names.insert(fn.values[r].name).second)
        return invalid(op.loc, "value '%" + fn.values[r].name + "' is defined twice");
    }
  }
  if (fn.returns.size() != fn.resultTypes.size())
    return invalid(fn.returnLoc.known() ? fn.returnLoc : fn.loc,
                   "@" + fn.name + " returns " + std::to_string(fn.returns.size()) + " value" +
                       (fn.returns.size() == 1 ? "" : "s") + " but its signature declares " +
                       std::to_string(fn.resultTypes.size()));
  for (ValueId v : fn.returns)
    if (v >= fn.values.size())
      return internalError("returned value id out of range");
  return Error::success();
}

Error verifyModule(Module &module) {
  std::set<std::string> names;
  for (auto &fn : module.functions) {
    if (!names.insert(fn.name).second)
      return invalid(fn.loc, "function @" + fn.name + " is defined twice");
    if (auto e = verifyFunction(fn))
      return e;
  }
  return Error::success();
}

} // namespace tessera::ir
