// Algebraic canonicalization: identities (x*1, x+0, ...), transpose and
// reshape chains, no-op data movement and casts. A rewrite is applied only
// when the replacement has exactly the result's type (dims, dtype, policy),
// so broadcasting identities such as x + zeros(bigger shape) stay.
#include "passes/Passes.h"
#include "passes/Rewrite.h"

#include <numeric>

namespace tessera::passes {

namespace {

using ir::OpKind;

std::vector<int64_t> permOf(const ir::Function &fn, const ir::Operation &op) {
  std::vector<int64_t> perm = op.attrs.getInts("perm").value_or(std::vector<int64_t>{});
  int64_t rank = static_cast<int64_t>(fn.typeOf(op.operands[0]).rank());
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  for (int64_t &p : perm)
    if (p < 0)
      p += rank;
  return perm;
}

bool isIdentityPerm(const std::vector<int64_t> &perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i))
      return false;
  return true;
}

// The value `op`'s single result can be replaced with, if any.
std::optional<ir::ValueId> identityOf(const ir::Function &fn, const ir::Operation &op) {
  if (op.results.size() != 1)
    return std::nullopt;
  const ir::TensorType &rt = fn.typeOf(op.results[0]);
  auto sameType = [&](ir::ValueId v) { return fn.typeOf(v) == rt; };
  auto isSplat = [&](ir::ValueId v, double c) {
    std::optional<double> s = splatValue(fn, v);
    return s && *s == c;
  };
  switch (op.kind) {
  case OpKind::Add:
    if (isSplat(op.operands[1], 0.0) && sameType(op.operands[0])) return op.operands[0];
    if (isSplat(op.operands[0], 0.0) && sameType(op.operands[1])) return op.operands[1];
    break;
  case OpKind::Sub:
    if (isSplat(op.operands[1], 0.0) && sameType(op.operands[0])) return op.operands[0];
    break;
  case OpKind::Mul:
    if (isSplat(op.operands[1], 1.0) && sameType(op.operands[0])) return op.operands[0];
    if (isSplat(op.operands[0], 1.0) && sameType(op.operands[1])) return op.operands[1];
    break;
  case OpKind::Div:
    if (isSplat(op.operands[1], 1.0) && sameType(op.operands[0])) return op.operands[0];
    break;
  case OpKind::Transpose:
    if (isIdentityPerm(permOf(fn, op)) && sameType(op.operands[0])) return op.operands[0];
    break;
  case OpKind::Reshape:
  case OpKind::BroadcastTo:
  case OpKind::Squeeze:
  case OpKind::ExpandDims:
  case OpKind::Cast:
    if (sameType(op.operands[0])) return op.operands[0];
    break;
  default: break;
  }
  return std::nullopt;
}

} // namespace

Error runCanonicalize(ir::Function &fn) {
  std::vector<bool> returned = returnedValues(fn);
  bool changed = false;
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    ir::Operation &op = fn.ops[i];
    // transpose(transpose(x)) -> transpose(x) with the composed permutation.
    if (op.kind == OpKind::Transpose) {
      int32_t def = fn.value(op.operands[0]).definingOp;
      if (def >= 0 && fn.ops[static_cast<size_t>(def)].kind == OpKind::Transpose) {
        const ir::Operation &inner = fn.ops[static_cast<size_t>(def)];
        std::vector<int64_t> p1 = permOf(fn, inner), p2 = permOf(fn, op), composed;
        if (p1.size() == p2.size()) {
          for (int64_t p : p2)
            composed.push_back(p1[static_cast<size_t>(p)]);
          op.operands[0] = inner.operands[0];
          op.attrs.set("perm", ir::Attribute::ofInts(composed));
          changed = true;
        }
      }
    }
    // reshape(reshape(x)) -> reshape(x): the outer target type is kept.
    if (op.kind == OpKind::Reshape) {
      int32_t def = fn.value(op.operands[0]).definingOp;
      if (def >= 0 && fn.ops[static_cast<size_t>(def)].kind == OpKind::Reshape) {
        op.operands[0] = fn.ops[static_cast<size_t>(def)].operands[0];
        changed = true;
      }
    }
    if (op.results.size() == 1 && !returned[op.results[0]])
      if (std::optional<ir::ValueId> id = identityOf(fn, op)) {
        replaceUses(fn, op.results[0], *id);
        changed = true;
      }
  }
  if (!changed)
    return Error::success();
  if (Error e = reverify(fn))
    return e;
  return runDCE(fn);
}

} // namespace tessera::passes
