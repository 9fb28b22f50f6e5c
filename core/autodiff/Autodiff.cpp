// Reverse-mode autodiff on Graph IR: a forward replay of the function into a
// FunctionBuilder, then one vjp rule per op in reverse program order. See
// Autodiff.h for the contract and docs/autodiff.md for the rules.
#include "autodiff/Autodiff.h"

#include "shape/Binding.h"
#include "shape/Builder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace tessera::autodiff {

using namespace tessera::ir;

// Evaluates `expr` (an Expected<ValueId>) into a new ValueId `var`, returning
// the error from the enclosing function on failure.
#define AD_TRY(var, expr)                                                                                    \
  ValueId var;                                                                                               \
  do {                                                                                                       \
    auto var##Or = (expr);                                                                                   \
    if (!var##Or)                                                                                            \
      return var##Or.takeError();                                                                            \
    var = *var##Or;                                                                                          \
  } while (0)

namespace {

constexpr int64_t kToEnd = int64_t(1) << 62; // slice "to the end" (docs/ir.md)

Error invalidArg(std::string msg) { return makeError(ErrorCode::InvalidArgument, std::move(msg)); }
Error unsupported(const Operation &op, std::string msg) {
  return makeError(ErrorCode::Unsupported, std::string("gradient of '") + op.name() + "': " + msg, op.loc);
}

AttrList attrs1(const char *name, Attribute a) {
  AttrList l;
  l.set(name, std::move(a));
  return l;
}

int64_t normAxis(int64_t a, size_t rank) { return a < 0 ? a + int64_t(rank) : a; }

// Ops whose results are constants for differentiation (zero derivative
// almost everywhere, or non-float results).
bool isNonDifferentiable(OpKind k) {
  switch (k) {
  case OpKind::Floor: case OpKind::Ceil: case OpKind::Sign: case OpKind::Not:
  case OpKind::Eq: case OpKind::Ne: case OpKind::Lt: case OpKind::Le: case OpKind::Gt: case OpKind::Ge:
  case OpKind::And: case OpKind::Or: case OpKind::Xor:
  case OpKind::Argmax: case OpKind::Argmin: case OpKind::Iota: case OpKind::Constant:
    return true;
  default:
    return false;
  }
}

// Operands through which a derivative flows (others: indices, conditions).
bool isDiffOperand(OpKind k, size_t i) {
  switch (k) {
  case OpKind::Select: return i != 0;
  case OpKind::Gather: return i == 0;
  default: return true;
  }
}

class GradBuilder {
public:
  GradBuilder(const Function &src, const std::vector<size_t> &wrt, bool scalarLoss, size_t lossOutput,
              const VjpOptions &opts)
      : src_(src), wrt_(wrt), scalarLoss_(scalarLoss), lossOutput_(lossOutput), opts_(opts),
        b_(opts.name.empty() ? src.name + (scalarLoss ? "_grad" : "_vjp") : opts.name, src.loc) {}

  Expected<VjpResult> run();

private:
  const Function &src_;
  std::vector<size_t> wrt_;
  bool scalarLoss_;
  size_t lossOutput_;
  const VjpOptions &opts_;
  shape::FunctionBuilder b_;
  std::vector<std::string> warnings_;

  std::map<ValueId, ValueId> map_; // src value -> builder value (forward)
  size_t numFwdOps_ = 0;
  std::vector<bool> active_;        // by builder value id (forward values only)
  std::map<ValueId, ValueId> adj_;  // builder forward value -> its adjoint
  std::set<ValueId> remat_;         // builder forward values to recompute
  std::set<ValueId> checkpointed_;  // results of forward ops marked `checkpoint`
  // Source attention result -> the results of its decomposition's ops, so
  // naming it in `remat` selects them all.
  std::map<ValueId, std::vector<ValueId>> decompositionOf_;
  std::map<ValueId, ValueId> rematCache_; // valid during one rule
  unsigned tmp_ = 0;

  // ---- Emission helpers ---------------------------------------------------
  TensorType T(ValueId v) const { return b_.typeOf(v); } // a copy: adding ops reallocates

  std::string fresh(const std::string &base) {
    for (;;) {
      std::string n = base + "." + std::to_string(tmp_++);
      if (!src_.findValue(n) && !b_.function().findValue(n))
        return n;
    }
  }

  Expected<ValueId> op(OpKind k, std::vector<ValueId> operands, AttrList attrs = {},
                       std::vector<TensorType> ann = {}) {
    return b_.add(k, std::move(operands), std::move(attrs), std::move(ann));
  }
  // A scalar constant of v's dtype.
  Expected<ValueId> cst(double value, DType dt) {
    return op(OpKind::Constant, {}, attrs1("value", Attribute::ofFloat(value)), {TensorType(dt, {})});
  }
  Expected<ValueId> intCst(int64_t value, DType dt) {
    return op(OpKind::Constant, {}, attrs1("value", Attribute::ofInt(value)), {TensorType(dt, {})});
  }
  Expected<ValueId> zeros(const TensorType &t) {
    return op(OpKind::Constant, {}, attrs1("value", Attribute::ofFloat(0.0)), {TensorType(t.dtype, t.dims)});
  }
  Expected<ValueId> un(OpKind k, ValueId a) { return op(k, {a}); }
  Expected<ValueId> bin(OpKind k, ValueId a, ValueId b) { return op(k, {a, b}); }
  Expected<ValueId> binC(OpKind k, ValueId a, double c) {
    AD_TRY(cv, cst(c, T(a).dtype));
    return op(k, {a, cv});
  }
  Expected<ValueId> reduce(OpKind k, ValueId a, std::vector<int64_t> axes, bool keepdim) {
    AttrList l;
    l.set("axes", Attribute::ofInts(std::move(axes)));
    if (keepdim)
      l.set("keepdim", Attribute::ofBool(true));
    return op(k, {a}, l);
  }
  Expected<ValueId> transpose(ValueId a, std::vector<int64_t> perm) {
    return op(OpKind::Transpose, {a}, attrs1("perm", Attribute::ofInts(std::move(perm))));
  }
  Expected<ValueId> reshape(ValueId a, std::vector<Dim> dims) {
    TensorType t = T(a);
    if (t.dims == dims)
      return a;
    return op(OpKind::Reshape, {a}, {}, {TensorType(t.dtype, std::move(dims), t.policy)});
  }
  Expected<ValueId> cast(ValueId a, DType dt) {
    return op(OpKind::Cast, {a}, attrs1("dtype", Attribute::ofDType(dt)));
  }
  Expected<ValueId> slice(ValueId a, std::vector<int64_t> starts, std::vector<int64_t> ends,
                          std::vector<int64_t> axes, std::vector<int64_t> steps = {}) {
    AttrList l;
    l.set("starts", Attribute::ofInts(std::move(starts)));
    l.set("ends", Attribute::ofInts(std::move(ends)));
    l.set("axes", Attribute::ofInts(std::move(axes)));
    if (!steps.empty())
      l.set("steps", Attribute::ofInts(std::move(steps)));
    return op(OpKind::Slice, {a}, l);
  }
  Expected<ValueId> pad(ValueId a, std::vector<int64_t> pads, double value = 0.0) {
    AttrList l;
    l.set("pads", Attribute::ofInts(std::move(pads)));
    if (value != 0.0)
      l.set("value", Attribute::ofFloat(value));
    return op(OpKind::Pad, {a}, l);
  }

  // Sums g over the dims that NumPy broadcasting added or stretched, so the
  // result has exactly `to`'s dims.
  Expected<ValueId> reduceTo(ValueId g, const TensorType &to) {
    TensorType gt = T(g);
    if (gt.dims == to.dims)
      return g;
    size_t lead = gt.rank() - to.rank();
    std::vector<int64_t> axes;
    for (size_t i = 0; i < lead; ++i)
      axes.push_back(int64_t(i));
    std::vector<int64_t> keepAxes;
    for (size_t i = 0; i < to.rank(); ++i)
      if (to.dims[i].constantValue() == 1 && gt.dims[lead + i].constantValue() != 1)
        keepAxes.push_back(int64_t(lead + i));
    ValueId cur = g;
    if (!keepAxes.empty()) {
      AD_TRY(r, reduce(OpKind::ReduceSum, cur, keepAxes, true));
      cur = r;
    }
    if (!axes.empty()) {
      AD_TRY(r, reduce(OpKind::ReduceSum, cur, axes, false));
      cur = r;
    }
    if (T(cur).dims != to.dims)
      return reshape(cur, to.dims);
    return cur;
  }
  Expected<ValueId> broadcastTo(ValueId g, const std::vector<Dim> &dims) {
    TensorType gt = T(g);
    if (gt.dims == dims)
      return g;
    return op(OpKind::BroadcastTo, {g}, {}, {TensorType(gt.dtype, dims, gt.policy)});
  }
  // The number of elements of `dims` as a scalar of dtype dt (a constant
  // when static, else reduce_sum of a splat of ones: there is no size op).
  Expected<ValueId> countOf(const std::vector<Dim> &dims, DType dt) {
    int64_t n = 1;
    bool isStatic = true;
    for (const Dim &d : dims) {
      if (auto c = d.constantValue())
        n *= *c;
      else
        isStatic = false;
    }
    if (isStatic)
      return isFloat(dt) ? cst(double(n), dt) : intCst(n, dt);
    AD_TRY(ones, op(OpKind::Constant, {}, attrs1("value", Attribute::ofInt(1)), {TensorType(dt, dims)}));
    std::vector<int64_t> all(dims.size());
    std::iota(all.begin(), all.end(), 0);
    return reduce(OpKind::ReduceSum, ones, all, false);
  }

  // ---- Primal access with rematerialization ------------------------------
  Expected<ValueId> P(ValueId v) {
    if (!remat_.count(v))
      return v;
    if (auto it = rematCache_.find(v); it != rematCache_.end())
      return it->second;
    const Value &val = b_.function().value(v);
    Operation fop = b_.function().ops[size_t(val.definingOp)]; // a copy
    std::vector<ValueId> operands;
    for (ValueId o : fop.operands) {
      AD_TRY(p, P(o));
      operands.push_back(p);
    }
    std::vector<std::string> names;
    for (ValueId r : fop.results)
      names.push_back(fresh(b_.function().value(r).name + ".remat"));
    // Marked so that CSE never merges the clone with its forward twin.
    AttrList attrs = fop.attrs;
    attrs.set("checkpoint", Attribute::ofBool(true));
    auto rs = b_.addOp(fop.kind, operands, attrs, fop.annotations, fop.loc, fop.explicitLoc, names);
    if (!rs)
      return rs.takeError();
    for (size_t i = 0; i < fop.results.size(); ++i)
      rematCache_[fop.results[i]] = (*rs)[i];
    return rematCache_.at(v);
  }

  Error accumulate(ValueId v, ValueId g) {
    auto it = adj_.find(v);
    if (it == adj_.end()) {
      adj_[v] = g;
      return Error::success();
    }
    AD_TRY(s, bin(OpKind::Add, it->second, g));
    it->second = s;
    return Error::success();
  }

  // ---- Forward -----------------------------------------------------------
  Error emitForward();
  Error emitAttention(const Operation &op);
  Error copyOp(const Operation &op);

  // ---- Rules -------------------------------------------------------------
  // Computes operand adjoints of forward op `fop` from the result adjoints
  // `gy` (kNoValue where a result has none) for operands with need[i].
  Error backprop(const Operation &fop, const std::vector<ValueId> &gy, const std::vector<bool> &need,
                 std::vector<ValueId> &gx);
  Expected<ValueId> unaryRule(const Operation &fop, ValueId g);
  Error binaryRule(const Operation &fop, ValueId g, const std::vector<bool> &need, std::vector<ValueId> &gx);
  Expected<ValueId> keepDims(ValueId g, const std::vector<int64_t> &axes, bool keepdim);
  Error reductionRule(const Operation &fop, ValueId g, std::vector<ValueId> &gx);
  Error normRule(const Operation &fop, ValueId g, const std::vector<bool> &need, std::vector<ValueId> &gx);
  Error matmulRule(const Operation &fop, ValueId g, const std::vector<bool> &need, std::vector<ValueId> &gx);
  Expected<ValueId> sliceAdjoint(const Operation &at, ValueId g, const TensorType &xt,
                                 std::vector<int64_t> starts, std::vector<int64_t> ends,
                                 std::vector<int64_t> axes, std::vector<int64_t> steps);
  Expected<ValueId> padAdjoint(ValueId g, const TensorType &xt, const std::vector<int64_t> &pads);
  Error concatRule(const Operation &fop, ValueId g, const std::vector<bool> &need, std::vector<ValueId> &gx);
  Expected<ValueId> splitRule(const Operation &fop, const std::vector<ValueId> &gy);
  Expected<ValueId> gatherRule(const Operation &fop, ValueId g);
  Error convRule(const Operation &fop, ValueId g, const std::vector<bool> &need, std::vector<ValueId> &gx);
  Expected<ValueId> poolRule(const Operation &fop, ValueId g);
};

// ---------------------------------------------------------------------------
// Forward replay

Error GradBuilder::copyOp(const Operation &sop) {
  std::vector<ValueId> operands;
  for (ValueId o : sop.operands)
    operands.push_back(map_.at(o));
  std::vector<std::string> names;
  for (ValueId r : sop.results)
    names.push_back(src_.value(r).name);
  auto rs = b_.addOp(sop.kind, operands, sop.attrs, sop.annotations, sop.loc, sop.explicitLoc, names);
  if (!rs)
    return rs.takeError();
  for (size_t i = 0; i < sop.results.size(); ++i)
    map_[sop.results[i]] = (*rs)[i];
  return Error::success();
}

// Attention is differentiated through its decomposition (shape/Decompose.h):
//   softmax(q k^T * scale [+ mask] [causal select]) v.
// Unlike decomposeAttention, a symbolic head dim D is allowed: the default
// scale is then computed as rsqrt(sum(ones[D])).
Error GradBuilder::emitAttention(const Operation &sop) {
  std::string base = src_.value(sop.results[0]).name;
  std::vector<ValueId> in;
  for (ValueId o : sop.operands)
    in.push_back(map_.at(o));
  TensorType q = T(in[0]);
  size_t r = q.rank();
  std::vector<int64_t> perm;
  for (size_t i = 0; i + 2 < r; ++i)
    perm.push_back(int64_t(i));
  perm.push_back(int64_t(r - 1));
  perm.push_back(int64_t(r - 2));
  AD_TRY(kt, transpose(in[1], perm));
  AD_TRY(s, bin(OpKind::Matmul, in[0], kt));
  ValueId scale;
  if (const Attribute *a = sop.attrs.find("scale")) {
    AD_TRY(c, cst(a->getFloat(), q.dtype));
    scale = c;
  } else if (auto d = q.dims[r - 1].constantValue()) {
    AD_TRY(c, cst(1.0 / std::sqrt(double(*d)), q.dtype));
    scale = c;
  } else {
    AD_TRY(n, countOf({q.dims[r - 1]}, q.dtype));
    AD_TRY(c, un(OpKind::Rsqrt, n));
    scale = c;
  }
  AD_TRY(cur, bin(OpKind::Mul, s, scale));
  if (in.size() == 4) {
    AD_TRY(m, bin(OpKind::Add, cur, in[3]));
    cur = m;
  }
  if (sop.attrs.getBool("causal", false)) {
    TensorType st = T(cur);
    TensorType it(DType::I64, {st.dims[st.rank() - 2], st.dims[st.rank() - 1]});
    AD_TRY(row, op(OpKind::Iota, {}, attrs1("axis", Attribute::ofInt(0)), {it}));
    AD_TRY(col, op(OpKind::Iota, {}, attrs1("axis", Attribute::ofInt(1)), {it}));
    AD_TRY(keep, bin(OpKind::Ge, row, col));
    AD_TRY(ninf, cst(-INFINITY, q.dtype));
    AD_TRY(sel, op(OpKind::Select, {keep, cur, ninf}));
    cur = sel;
  }
  AD_TRY(p, op(OpKind::Softmax, {cur}, attrs1("axis", Attribute::ofInt(-1))));
  auto out = b_.addOp(OpKind::Matmul, {p, in[2]}, {}, {}, sop.loc, sop.explicitLoc, {base});
  if (!out)
    return out.takeError();
  map_[sop.results[0]] = (*out)[0];
  return Error::success();
}

Error GradBuilder::emitForward() {
  for (const Operation &orig : src_.ops) {
    // `checkpoint = true` selects the op's results (all ops of an attention's
    // decomposition) for recomputation; the forward copy drops the attribute.
    Operation sop = orig;
    bool checkpoint = sop.attrs.getBool("checkpoint", false);
    sop.attrs.erase("checkpoint");
    size_t first = b_.function().ops.size();
    Error e = sop.kind == OpKind::Attention ? emitAttention(sop) : copyOp(sop);
    if (e)
      return e;
    std::vector<ValueId> emitted;
    for (size_t k = first; k < b_.function().ops.size(); ++k)
      if (b_.function().ops[k].kind != OpKind::Constant)
        emitted.insert(emitted.end(), b_.function().ops[k].results.begin(), b_.function().ops[k].results.end());
    if (checkpoint)
      checkpointed_.insert(emitted.begin(), emitted.end());
    if (sop.kind == OpKind::Attention)
      for (ValueId r : orig.results)
        decompositionOf_[r] = emitted;
  }
  numFwdOps_ = b_.function().ops.size();
  return Error::success();
}

// ---------------------------------------------------------------------------
// Rules

// Derivative formulas: standard calculus; GELU from Hendrycks & Gimpel 2016
// (erf form: d/dx x*Phi(x) = Phi(x) + x*phi(x)); the tanh form differentiates
// 0.5*x*(1 + tanh(u)), u = sqrt(2/pi)*(x + 0.044715 x^3).
Expected<ValueId> GradBuilder::unaryRule(const Operation &fop, ValueId g) {
  AD_TRY(x, P(fop.operands[0]));
  DType dt = T(x).dtype;
  auto y = [&]() { return P(fop.results[0]); };
  switch (fop.kind) {
  case OpKind::Neg:
    return un(OpKind::Neg, g);
  case OpKind::Abs: { // abs'(0) = sign(0) = 0
    AD_TRY(s, un(OpKind::Sign, x));
    return bin(OpKind::Mul, g, s);
  }
  case OpKind::Exp: {
    AD_TRY(yv, y());
    return bin(OpKind::Mul, g, yv);
  }
  case OpKind::Log:
    return bin(OpKind::Div, g, x);
  case OpKind::Sqrt: { // 0.5 / sqrt(x)
    AD_TRY(yv, y());
    AD_TRY(h, binC(OpKind::Mul, g, 0.5));
    return bin(OpKind::Div, h, yv);
  }
  case OpKind::Rsqrt: { // -0.5 x^-3/2 = -0.5 y^3
    AD_TRY(yv, y());
    AD_TRY(y2, bin(OpKind::Mul, yv, yv));
    AD_TRY(y3, bin(OpKind::Mul, y2, yv));
    AD_TRY(gy3, bin(OpKind::Mul, g, y3));
    return binC(OpKind::Mul, gy3, -0.5);
  }
  case OpKind::Tanh: { // 1 - y^2
    AD_TRY(yv, y());
    AD_TRY(y2, bin(OpKind::Mul, yv, yv));
    AD_TRY(one, cst(1.0, dt));
    AD_TRY(d, bin(OpKind::Sub, one, y2));
    return bin(OpKind::Mul, g, d);
  }
  case OpKind::Sigmoid: { // y (1 - y)
    AD_TRY(yv, y());
    AD_TRY(one, cst(1.0, dt));
    AD_TRY(om, bin(OpKind::Sub, one, yv));
    AD_TRY(d, bin(OpKind::Mul, yv, om));
    return bin(OpKind::Mul, g, d);
  }
  case OpKind::Relu: { // relu'(0) = 0
    AD_TRY(zero, cst(0.0, dt));
    AD_TRY(pos, bin(OpKind::Gt, x, zero));
    return op(OpKind::Select, {pos, g, zero});
  }
  case OpKind::Gelu: {
    if (fop.attrs.getString("approximate", "none") == "tanh") {
      const double k = std::sqrt(2.0 / M_PI), c = 0.044715;
      AD_TRY(x2, bin(OpKind::Mul, x, x));
      AD_TRY(x3, bin(OpKind::Mul, x2, x));
      AD_TRY(cx3, binC(OpKind::Mul, x3, c));
      AD_TRY(inner, bin(OpKind::Add, x, cx3));
      AD_TRY(u, binC(OpKind::Mul, inner, k));
      AD_TRY(t, un(OpKind::Tanh, u));
      AD_TRY(one, cst(1.0, dt));
      AD_TRY(opt, bin(OpKind::Add, one, t));
      AD_TRY(left, binC(OpKind::Mul, opt, 0.5)); // 0.5 (1 + t)
      AD_TRY(t2, bin(OpKind::Mul, t, t));
      AD_TRY(sech2, bin(OpKind::Sub, one, t2));
      AD_TRY(c3x2, binC(OpKind::Mul, x2, 3.0 * c));
      AD_TRY(du0, bin(OpKind::Add, one, c3x2));
      AD_TRY(du, binC(OpKind::Mul, du0, 0.5 * k)); // 0.5 k (1 + 3c x^2)
      AD_TRY(r0, bin(OpKind::Mul, x, sech2));
      AD_TRY(right, bin(OpKind::Mul, r0, du));
      AD_TRY(d, bin(OpKind::Add, left, right));
      return bin(OpKind::Mul, g, d);
    }
    AD_TRY(xs, binC(OpKind::Mul, x, M_SQRT1_2));
    AD_TRY(e, un(OpKind::Erf, xs));
    AD_TRY(one, cst(1.0, dt));
    AD_TRY(ope, bin(OpKind::Add, one, e));
    AD_TRY(cdf, binC(OpKind::Mul, ope, 0.5)); // Phi(x)
    AD_TRY(x2, bin(OpKind::Mul, x, x));
    AD_TRY(mx2, binC(OpKind::Mul, x2, -0.5));
    AD_TRY(ex, un(OpKind::Exp, mx2));
    AD_TRY(pdf, binC(OpKind::Mul, ex, 1.0 / std::sqrt(2.0 * M_PI))); // phi(x)
    AD_TRY(xp, bin(OpKind::Mul, x, pdf));
    AD_TRY(d, bin(OpKind::Add, cdf, xp));
    return bin(OpKind::Mul, g, d);
  }
  case OpKind::Silu: { // s (1 + x (1 - s)), s = sigmoid(x)
    AD_TRY(s, un(OpKind::Sigmoid, x));
    AD_TRY(one, cst(1.0, dt));
    AD_TRY(oms, bin(OpKind::Sub, one, s));
    AD_TRY(xo, bin(OpKind::Mul, x, oms));
    AD_TRY(opx, bin(OpKind::Add, one, xo));
    AD_TRY(d, bin(OpKind::Mul, s, opx));
    return bin(OpKind::Mul, g, d);
  }
  case OpKind::Erf: { // 2/sqrt(pi) exp(-x^2)
    AD_TRY(x2, bin(OpKind::Mul, x, x));
    AD_TRY(nx2, un(OpKind::Neg, x2));
    AD_TRY(ex, un(OpKind::Exp, nx2));
    AD_TRY(d, binC(OpKind::Mul, ex, M_2_SQRTPI));
    return bin(OpKind::Mul, g, d);
  }
  case OpKind::Sin: {
    AD_TRY(c, un(OpKind::Cos, x));
    return bin(OpKind::Mul, g, c);
  }
  case OpKind::Cos: {
    AD_TRY(s, un(OpKind::Sin, x));
    AD_TRY(gs, bin(OpKind::Mul, g, s));
    return un(OpKind::Neg, gs);
  }
  case OpKind::Reciprocal: { // -1/x^2 = -y^2
    AD_TRY(yv, y());
    AD_TRY(y2, bin(OpKind::Mul, yv, yv));
    AD_TRY(gy2, bin(OpKind::Mul, g, y2));
    return un(OpKind::Neg, gy2);
  }
  default:
    return internalError(std::string("no unary vjp rule for ") + fop.name());
  }
}

Error GradBuilder::binaryRule(const Operation &fop, ValueId g, const std::vector<bool> &need,
                              std::vector<ValueId> &gx) {
  AD_TRY(a, P(fop.operands[0]));
  AD_TRY(b, P(fop.operands[1]));
  TensorType at = T(a), bt = T(b);
  ValueId ga = kNoValue, gb = kNoValue;
  switch (fop.kind) {
  case OpKind::Add:
    ga = g;
    if (need[1])
      gb = g;
    break;
  case OpKind::Sub:
    ga = g;
    if (need[1]) {
      AD_TRY(n, un(OpKind::Neg, g));
      gb = n;
    }
    break;
  case OpKind::Mul:
    if (need[0]) {
      AD_TRY(v, bin(OpKind::Mul, g, b));
      ga = v;
    }
    if (need[1]) {
      AD_TRY(v, bin(OpKind::Mul, g, a));
      gb = v;
    }
    break;
  case OpKind::Div: { // d(a/b)/db = -a/b^2 = -(a/b)/b
    AD_TRY(gdb, bin(OpKind::Div, g, b));
    ga = gdb;
    if (need[1]) {
      AD_TRY(y, P(fop.results[0]));
      AD_TRY(t, bin(OpKind::Mul, gdb, y));
      AD_TRY(n, un(OpKind::Neg, t));
      gb = n;
    }
    break;
  }
  case OpKind::Pow: { // d/da = b a^(b-1); d/db = a^b log(a), taken as 0 where a <= 0
    if (need[0]) {
      AD_TRY(bm1, binC(OpKind::Sub, b, 1.0));
      AD_TRY(p, bin(OpKind::Pow, a, bm1));
      AD_TRY(bp, bin(OpKind::Mul, b, p));
      AD_TRY(v, bin(OpKind::Mul, g, bp));
      ga = v;
    }
    if (need[1]) {
      AD_TRY(y, P(fop.results[0]));
      AD_TRY(zero, cst(0.0, at.dtype));
      AD_TRY(pos, bin(OpKind::Gt, a, zero));
      AD_TRY(la, un(OpKind::Log, a));
      AD_TRY(safe, op(OpKind::Select, {pos, la, zero}));
      AD_TRY(gy, bin(OpKind::Mul, g, y));
      AD_TRY(v, bin(OpKind::Mul, gy, safe));
      gb = v;
    }
    break;
  }
  case OpKind::Max:
  case OpKind::Min: { // ties: half to each side (as PyTorch maximum/minimum)
    AD_TRY(win, bin(fop.kind == OpKind::Max ? OpKind::Gt : OpKind::Lt, a, b));
    AD_TRY(tie, bin(OpKind::Eq, a, b));
    AD_TRY(one, cst(1.0, at.dtype));
    AD_TRY(half, cst(0.5, at.dtype));
    AD_TRY(zero, cst(0.0, at.dtype));
    AD_TRY(wt, op(OpKind::Select, {tie, half, zero}));
    AD_TRY(w, op(OpKind::Select, {win, one, wt}));
    AD_TRY(va, bin(OpKind::Mul, g, w));
    ga = va;
    if (need[1]) {
      AD_TRY(vb, bin(OpKind::Sub, g, va));
      gb = vb;
    }
    break;
  }
  case OpKind::Mod: { // a mod b = a - floor(a/b) b (NumPy), so d/db = -floor(a/b)
    ga = g;
    if (need[1]) {
      AD_TRY(q, bin(OpKind::Div, a, b));
      AD_TRY(f, un(OpKind::Floor, q));
      AD_TRY(gf, bin(OpKind::Mul, g, f));
      AD_TRY(n, un(OpKind::Neg, gf));
      gb = n;
    }
    break;
  }
  default:
    return internalError(std::string("no binary vjp rule for ") + fop.name());
  }
  if (need[0] && ga != kNoValue) {
    AD_TRY(r, reduceTo(ga, at));
    gx[0] = r;
  }
  if (need[1] && gb != kNoValue) {
    AD_TRY(r, reduceTo(gb, bt));
    gx[1] = r;
  }
  return Error::success();
}

// Re-inserts reduced axes (when keepdim was false) so g broadcasts against
// the reduction's input.
Expected<ValueId> GradBuilder::keepDims(ValueId g, const std::vector<int64_t> &axes, bool keepdim) {
  if (keepdim || axes.empty())
    return g;
  return op(OpKind::ExpandDims, {g}, attrs1("axes", Attribute::ofInts(axes)));
}

static std::vector<int64_t> reductionAxes(const Operation &fop, size_t rank) {
  std::vector<int64_t> axes;
  if (auto a = fop.attrs.getInts("axes")) {
    for (int64_t x : *a)
      axes.push_back(normAxis(x, rank));
  } else {
    axes.resize(rank);
    std::iota(axes.begin(), axes.end(), 0);
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

Error GradBuilder::reductionRule(const Operation &fop, ValueId g, std::vector<ValueId> &gx) {
  AD_TRY(x, P(fop.operands[0]));
  TensorType xt = T(x);
  std::vector<int64_t> axes = reductionAxes(fop, xt.rank());
  bool keep = fop.attrs.getBool("keepdim", false);
  AD_TRY(gk, keepDims(g, axes, keep));
  switch (fop.kind) {
  case OpKind::ReduceSum: {
    AD_TRY(r, broadcastTo(gk, xt.dims));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::ReduceMean: {
    std::vector<Dim> rd;
    for (int64_t a : axes)
      rd.push_back(xt.dims[size_t(a)]);
    AD_TRY(n, countOf(rd, xt.dtype));
    AD_TRY(q, bin(OpKind::Div, gk, n));
    AD_TRY(r, broadcastTo(q, xt.dims));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::ReduceMax:
  case OpKind::ReduceMin: { // split evenly over tied extrema
    AD_TRY(y, P(fop.results[0]));
    AD_TRY(yk, keepDims(y, axes, keep));
    AD_TRY(hit, bin(OpKind::Eq, x, yk));
    AD_TRY(mask, cast(hit, xt.dtype));
    AD_TRY(cnt, reduce(OpKind::ReduceSum, mask, axes, true));
    AD_TRY(q, bin(OpKind::Div, gk, cnt));
    AD_TRY(r, bin(OpKind::Mul, q, mask));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::ReduceProd: { // d prod / d x_i = prod / x_i (no zero inputs)
    AD_TRY(y, P(fop.results[0]));
    AD_TRY(yk, keepDims(y, axes, keep));
    AD_TRY(gy, bin(OpKind::Mul, gk, yk));
    AD_TRY(r, bin(OpKind::Div, gy, x));
    gx[0] = r;
    return Error::success();
  }
  default:
    return internalError(std::string("no reduction vjp rule for ") + fop.name());
  }
}

// softmax: dx = y (g - sum(g y)); log_softmax: dx = g - exp(y) sum(g).
// layer_norm (Ba et al. 2016; backward as in PyTorch's native layer_norm):
//   xhat = (x - mean) rstd, dxhat = g gamma,
//   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
//   dgamma = sum(g xhat), dbeta = sum(g) over the leading axes.
// rms_norm (Zhang & Sennrich 2019): xhat = x r, r = rsqrt(mean(x^2) + eps),
//   dx = r (dxhat - xhat mean(dxhat xhat)).
Error GradBuilder::normRule(const Operation &fop, ValueId g, const std::vector<bool> &need,
                            std::vector<ValueId> &gx) {
  AD_TRY(x, P(fop.operands[0]));
  TensorType xt = T(x);
  if (fop.kind == OpKind::Softmax || fop.kind == OpKind::LogSoftmax) {
    std::vector<int64_t> ax{normAxis(fop.attrs.getInt("axis", -1), xt.rank())};
    AD_TRY(y, P(fop.results[0]));
    if (fop.kind == OpKind::Softmax) {
      AD_TRY(gyv, bin(OpKind::Mul, g, y));
      AD_TRY(s, reduce(OpKind::ReduceSum, gyv, ax, true));
      AD_TRY(d, bin(OpKind::Sub, g, s));
      AD_TRY(r, bin(OpKind::Mul, d, y));
      gx[0] = r;
    } else {
      AD_TRY(s, reduce(OpKind::ReduceSum, g, ax, true));
      AD_TRY(p, un(OpKind::Exp, y));
      AD_TRY(ps, bin(OpKind::Mul, p, s));
      AD_TRY(r, bin(OpKind::Sub, g, ps));
      gx[0] = r;
    }
    return Error::success();
  }
  bool isLN = fop.kind == OpKind::LayerNorm;
  int64_t axis = normAxis(fop.attrs.getInt("axis", -1), xt.rank());
  double eps = fop.attrs.getFloat("epsilon", isLN ? 1e-5 : 1e-6);
  std::vector<int64_t> naxes, lead;
  for (int64_t i = 0; i < int64_t(xt.rank()); ++i)
    (i < axis ? lead : naxes).push_back(i);
  // Recompute the normalization statistics (cheap reductions) in the
  // backward pass rather than storing them.
  ValueId xhat, rstd;
  if (isLN) {
    AD_TRY(mean, reduce(OpKind::ReduceMean, x, naxes, true));
    AD_TRY(xc, bin(OpKind::Sub, x, mean));
    AD_TRY(sq, bin(OpKind::Mul, xc, xc));
    AD_TRY(var, reduce(OpKind::ReduceMean, sq, naxes, true));
    AD_TRY(ve, binC(OpKind::Add, var, eps));
    AD_TRY(rs, un(OpKind::Rsqrt, ve));
    AD_TRY(xh, bin(OpKind::Mul, xc, rs));
    xhat = xh;
    rstd = rs;
  } else {
    AD_TRY(sq, bin(OpKind::Mul, x, x));
    AD_TRY(ms, reduce(OpKind::ReduceMean, sq, naxes, true));
    AD_TRY(me, binC(OpKind::Add, ms, eps));
    AD_TRY(rs, un(OpKind::Rsqrt, me));
    AD_TRY(xh, bin(OpKind::Mul, x, rs));
    xhat = xh;
    rstd = rs;
  }
  size_t nops = fop.operands.size();
  auto sumLead = [&](ValueId v, const TensorType &to) -> Expected<ValueId> {
    ValueId cur = v;
    if (!lead.empty()) {
      AD_TRY(s, reduce(OpKind::ReduceSum, v, lead, false));
      cur = s;
    }
    return reduceTo(cur, to);
  };
  if (isLN && nops >= 3 && need[2]) {
    AD_TRY(r, sumLead(g, T(fop.operands[2])));
    gx[2] = r;
  }
  if (nops >= 2 && need[1]) {
    AD_TRY(gxh, bin(OpKind::Mul, g, xhat));
    AD_TRY(r, sumLead(gxh, T(fop.operands[1])));
    gx[1] = r;
  }
  if (!need[0])
    return Error::success();
  ValueId dxhat = g;
  if (nops >= 2) {
    AD_TRY(gamma, P(fop.operands[1]));
    AD_TRY(d, bin(OpKind::Mul, g, gamma));
    dxhat = d;
  }
  AD_TRY(dx1, bin(OpKind::Mul, dxhat, xhat));
  AD_TRY(m1, reduce(OpKind::ReduceMean, dx1, naxes, true));
  AD_TRY(t1, bin(OpKind::Mul, xhat, m1));
  AD_TRY(cur, bin(OpKind::Sub, dxhat, t1));
  if (isLN) {
    AD_TRY(m0, reduce(OpKind::ReduceMean, dxhat, naxes, true));
    AD_TRY(c2, bin(OpKind::Sub, cur, m0));
    cur = c2;
  }
  AD_TRY(r, bin(OpKind::Mul, cur, rstd));
  gx[0] = r;
  return Error::success();
}

// NumPy matmul: rank-1 operands are promoted ([K] -> [1, K] on the left,
// [K, 1] on the right) and g gets the removed unit dims back; then
// da = g b^T and db = a^T g, summed over broadcast batch dims.
Error GradBuilder::matmulRule(const Operation &fop, ValueId g, const std::vector<bool> &need,
                              std::vector<ValueId> &gx) {
  AD_TRY(a, P(fop.operands[0]));
  AD_TRY(b, P(fop.operands[1]));
  TensorType at = T(a), bt = T(b);
  bool a1 = at.rank() == 1, b1 = bt.rank() == 1;
  ValueId a2 = a, b2 = b, g2 = g;
  if (a1) {
    AD_TRY(v, op(OpKind::ExpandDims, {a}, attrs1("axes", Attribute::ofInts({0}))));
    a2 = v;
  }
  if (b1) {
    AD_TRY(v, op(OpKind::ExpandDims, {b}, attrs1("axes", Attribute::ofInts({1}))));
    b2 = v;
  }
  {
    int64_t gr = int64_t(T(g).rank());
    std::vector<int64_t> ins;
    // Result rank after promotion is gr + a1 + b1; the M axis sits at -2 and
    // the N axis at -1 of it.
    int64_t rr = gr + (a1 ? 1 : 0) + (b1 ? 1 : 0);
    if (a1)
      ins.push_back(rr - 2);
    if (b1)
      ins.push_back(rr - 1);
    if (!ins.empty()) {
      AD_TRY(v, op(OpKind::ExpandDims, {g}, attrs1("axes", Attribute::ofInts(ins))));
      g2 = v;
    }
  }
  auto swapLast = [&](ValueId v) -> Expected<ValueId> {
    size_t r = T(v).rank();
    std::vector<int64_t> perm(r);
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[r - 1], perm[r - 2]);
    return transpose(v, perm);
  };
  if (need[0]) {
    AD_TRY(bT, swapLast(b2));
    AD_TRY(d, bin(OpKind::Matmul, g2, bT));
    AD_TRY(r, reduceTo(d, T(a2)));
    if (a1) {
      AD_TRY(s, op(OpKind::Squeeze, {r}, attrs1("axes", Attribute::ofInts({0}))));
      r = s;
    }
    gx[0] = r;
  }
  if (need[1] && T(b2).rank() == 2 && T(a2).rank() > 2) {
    // A matrix shared by every batch (a weight): fold the batch dims into
    // K, aT·g over [rows, K] x [rows, N], instead of one product per batch
    // summed afterwards (B weight-sized temporaries and a reduction).
    TensorType a2t = T(a2), g2t = T(g2);
    Dim rows(1);
    for (size_t i = 0; i + 1 < a2t.rank(); ++i) {
      Expected<Dim> m = Dim::mul(rows, a2t.dims[i]);
      if (!m)
        return m.takeError();
      rows = m.take();
    }
    AD_TRY(af, reshape(a2, {rows, a2t.dims.back()}));
    AD_TRY(gf, reshape(g2, {rows, g2t.dims.back()}));
    AD_TRY(aT, swapLast(af));
    AD_TRY(d, bin(OpKind::Matmul, aT, gf));
    ValueId r = d;
    if (b1) {
      AD_TRY(s, op(OpKind::Squeeze, {r}, attrs1("axes", Attribute::ofInts({1}))));
      r = s;
    }
    gx[1] = r;
  } else if (need[1]) {
    AD_TRY(aT, swapLast(a2));
    AD_TRY(d, bin(OpKind::Matmul, aT, g2));
    AD_TRY(r, reduceTo(d, T(b2)));
    if (b1) {
      AD_TRY(s, op(OpKind::Squeeze, {r}, attrs1("axes", Attribute::ofInts({1}))));
      r = s;
    }
    gx[1] = r;
  }
  return Error::success();
}

// Scatters g (the result of slicing a tensor of type xt) back into zeros of
// xt's shape: per sliced axis, interleave step-1 zeros (expand_dims, pad,
// reshape), crop, then pad to the extent.
Expected<ValueId> GradBuilder::sliceAdjoint(const Operation &at, ValueId g, const TensorType &xt,
                                            std::vector<int64_t> starts, std::vector<int64_t> ends,
                                            std::vector<int64_t> axes, std::vector<int64_t> steps) {
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(int64_t(i));
  if (steps.empty())
    steps.assign(starts.size(), 1);
  ValueId cur = g;
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t ax = size_t(normAxis(axes[i], xt.rank()));
    int64_t st = steps[i];
    TensorType ct = T(cur);
    std::vector<int64_t> pads(2 * ct.rank(), 0);
    auto n = xt.dims[ax].constantValue();
    if (!n) {
      // Symbolic extent S: bounds are in range (docs/ir.md). Only a start
      // >= 0 and an end that is "to the end" or negative are expressible as
      // static pads.
      if (st != 1 || starts[i] < 0 || (ends[i] >= 0 && ends[i] < kToEnd))
        return unsupported(at, "needs a static extent for axis " + std::to_string(ax) +
                                   " (symbolic " + xt.dims[ax].str() + " with start " + std::to_string(starts[i]) +
                                   ", end " + std::to_string(ends[i]) + ", step " + std::to_string(st) + ")");
      pads[2 * ax] = starts[i];
      pads[2 * ax + 1] = ends[i] >= kToEnd ? 0 : -ends[i];
      AD_TRY(p, pad(cur, pads));
      cur = p;
      continue;
    }
    auto clampIdx = [&](int64_t v) {
      if (v < 0)
        v = std::max<int64_t>(v + *n, 0);
      return std::min(v, *n);
    };
    int64_t s = clampIdx(starts[i]), e = clampIdx(ends[i]);
    int64_t len = e > s ? (e - s + st - 1) / st : 0;
    if (len == 0) {
      TensorType zt = ct;
      zt.dims[ax] = *n;
      AD_TRY(z, zeros(zt));
      cur = z;
      continue;
    }
    int64_t covered = len;
    if (st > 1) {
      AD_TRY(ex, op(OpKind::ExpandDims, {cur}, attrs1("axes", Attribute::ofInts({int64_t(ax) + 1}))));
      std::vector<int64_t> ip(2 * (ct.rank() + 1), 0);
      ip[2 * (ax + 1) + 1] = st - 1;
      AD_TRY(pd, pad(ex, ip));
      std::vector<Dim> md = ct.dims;
      md[ax] = len * st;
      AD_TRY(rs, reshape(pd, md));
      covered = len * st;
      cur = rs;
      if (s + covered > *n) {
        AD_TRY(cr, slice(cur, {0}, {*n - s}, {int64_t(ax)}));
        cur = cr;
        covered = *n - s;
      }
    }
    pads[2 * ax] = s;
    pads[2 * ax + 1] = *n - s - covered;
    if (pads[2 * ax] || pads[2 * ax + 1]) {
      AD_TRY(p, pad(cur, pads));
      cur = p;
    }
  }
  return cur;
}

// pad's adjoint: crop the padding off again.
Expected<ValueId> GradBuilder::padAdjoint(ValueId g, const TensorType &xt, const std::vector<int64_t> &pads) {
  std::vector<int64_t> starts, ends, axes;
  for (size_t i = 0; i < xt.rank(); ++i) {
    int64_t lo = pads[2 * i], hi = pads[2 * i + 1];
    if (!lo && !hi)
      continue;
    axes.push_back(int64_t(i));
    starts.push_back(lo);
    if (auto n = xt.dims[i].constantValue())
      ends.push_back(lo + *n);
    else
      ends.push_back(hi ? -hi : kToEnd);
  }
  if (axes.empty())
    return g;
  return slice(g, starts, ends, axes);
}

// concat's adjoint: the slice of g each input came from. Offsets are static
// from the front, or from the back when the trailing extents are static.
Error GradBuilder::concatRule(const Operation &fop, ValueId g, const std::vector<bool> &need,
                              std::vector<ValueId> &gx) {
  size_t n = fop.operands.size();
  TensorType t0 = T(fop.operands[0]);
  int64_t ax = normAxis(fop.attrs.getInt("axis", 0), t0.rank());
  std::vector<std::optional<int64_t>> len(n);
  for (size_t i = 0; i < n; ++i)
    len[i] = T(fop.operands[i]).dims[size_t(ax)].constantValue();
  for (size_t i = 0; i < n; ++i) {
    if (!need[i])
      continue;
    std::optional<int64_t> pre = 0, post = 0;
    for (size_t j = 0; j < i; ++j)
      pre = pre && len[j] ? std::optional<int64_t>(*pre + *len[j]) : std::nullopt;
    for (size_t j = i + 1; j < n; ++j)
      post = post && len[j] ? std::optional<int64_t>(*post + *len[j]) : std::nullopt;
    int64_t start, end;
    if (pre && len[i]) {
      start = *pre;
      end = *pre + *len[i];
    } else if (pre && post) {
      start = *pre;
      end = *post ? -*post : kToEnd;
    } else if (post && len[i]) {
      start = -(*post + *len[i]);
      end = *post ? -*post : kToEnd;
    } else {
      return unsupported(fop, "cannot locate input " + std::to_string(i) +
                                  " along a concat of several symbolic extents");
    }
    AD_TRY(s, slice(g, {start}, {end}, {ax}));
    gx[i] = s;
  }
  return Error::success();
}

Expected<ValueId> GradBuilder::splitRule(const Operation &fop, const std::vector<ValueId> &gy) {
  std::vector<ValueId> parts;
  for (size_t i = 0; i < fop.results.size(); ++i) {
    if (gy[i] != kNoValue) {
      parts.push_back(gy[i]);
    } else {
      AD_TRY(z, zeros(T(fop.results[i])));
      parts.push_back(z);
    }
  }
  if (parts.size() == 1)
    return parts[0];
  TensorType xt = T(fop.operands[0]);
  int64_t ax = normAxis(fop.attrs.getInt("axis", 0), xt.rank());
  AD_TRY(c, op(OpKind::Concat, parts, attrs1("axis", Attribute::ofInt(ax))));
  if (T(c).dims != xt.dims)
    return reshape(c, xt.dims);
  return c;
}

// gather's adjoint is a scatter-add; there is no scatter op, so it is a
// product with a one-hot matrix: dx[.., n, ..] = sum_m g[.., m, ..] [idx[m] == n].
Expected<ValueId> GradBuilder::gatherRule(const Operation &fop, ValueId g) {
  TensorType xt = T(fop.operands[0]);
  AD_TRY(idx, P(fop.operands[1]));
  TensorType it = T(idx);
  size_t ax = size_t(normAxis(fop.attrs.getInt("axis", 0), xt.rank()));
  size_t ir = it.rank();
  // Flatten the index dims to one dim M.
  Dim m = Dim::constant(1);
  for (const Dim &d : it.dims) {
    auto p = Dim::mul(m, d);
    if (!p)
      return p.takeError();
    m = p.take();
  }
  AD_TRY(idxf, reshape(idx, {m}));
  TensorType gt = T(g);
  std::vector<Dim> gmDims(gt.dims.begin(), gt.dims.begin() + long(ax));
  gmDims.push_back(m);
  gmDims.insert(gmDims.end(), gt.dims.begin() + long(ax + ir), gt.dims.end());
  AD_TRY(gm, reshape(g, gmDims));
  // Wrap negative indices (gather accepts them, counted from the end).
  Dim n = xt.dims[ax];
  AD_TRY(nv, countOf({n}, it.dtype));
  AD_TRY(zero, intCst(0, it.dtype));
  AD_TRY(neg, bin(OpKind::Lt, idxf, zero));
  AD_TRY(wrapped, bin(OpKind::Add, idxf, nv));
  AD_TRY(iw, op(OpKind::Select, {neg, wrapped, idxf}));
  AD_TRY(col, op(OpKind::ExpandDims, {iw}, attrs1("axes", Attribute::ofInts({1}))));
  AD_TRY(io, op(OpKind::Iota, {}, attrs1("axis", Attribute::ofInt(1)), {TensorType(it.dtype, {Dim(1), n})}));
  AD_TRY(hit, bin(OpKind::Eq, col, io));
  AD_TRY(oh, cast(hit, xt.dtype)); // [M, N]
  // Move M last, contract with the one-hot, move N back to `ax`.
  size_t r = gmDims.size();
  std::vector<int64_t> perm;
  for (size_t i = 0; i < r; ++i)
    if (i != ax)
      perm.push_back(int64_t(i));
  perm.push_back(int64_t(ax));
  ValueId gl = gm;
  bool identity = ax == r - 1;
  if (!identity) {
    AD_TRY(t, transpose(gm, perm));
    gl = t;
  }
  AD_TRY(prod, bin(OpKind::Matmul, gl, oh));
  if (identity)
    return prod;
  std::vector<int64_t> inv(r);
  for (size_t i = 0; i < r; ++i)
    inv[size_t(perm[i])] = int64_t(i);
  return transpose(prod, inv);
}

// Spatial attributes of conv2d / pooling, normalized.
struct Spatial {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
};
static Spatial spatialOf(const Operation &fop, int64_t kh, int64_t kw) {
  Spatial s;
  s.kh = kh;
  s.kw = kw;
  if (auto st = fop.attrs.getInts("stride")) {
    s.sh = (*st)[0];
    s.sw = (*st)[1];
  } else if (fop.kind != OpKind::Conv2d) {
    s.sh = kh;
    s.sw = kw;
  }
  if (auto d = fop.attrs.getInts("dilation")) {
    s.dh = (*d)[0];
    s.dw = (*d)[1];
  }
  if (auto p = fop.attrs.getInts("padding")) {
    if (p->size() == 2) {
      s.pt = s.pb = (*p)[0];
      s.pl = s.pr = (*p)[1];
    } else if (p->size() == 4) {
      s.pt = (*p)[0];
      s.pl = (*p)[1];
      s.pb = (*p)[2];
      s.pr = (*p)[3];
    }
  }
  return s;
}

// conv2d backward (Dumoulin & Visin 2016, "A guide to convolution
// arithmetic", transposed convolution):
//  dx = conv2d(dilate(g, stride), flip(w) with in/out channels swapped per
//       group, dilation, padding d(k-1) - pad_lo and H - len + pad_lo);
//  dw = conv2d over the batch: x as [C/G, G*N, H, W] with g as [O, N, OH, OW]
//       (groups G, stride <-> dilation swapped), cropped to the kernel;
//  dbias = sum of g over N, OH, OW.
Error GradBuilder::convRule(const Operation &fop, ValueId g, const std::vector<bool> &need,
                            std::vector<ValueId> &gx) {
  TensorType xt = T(fop.operands[0]), wt = T(fop.operands[1]), gt = T(g);
  if (fop.operands.size() == 3 && need[2]) {
    AD_TRY(r, reduce(OpKind::ReduceSum, g, {0, 2, 3}, false));
    gx[2] = r;
  }
  if (!need[0] && !need[1])
    return Error::success();
  auto H = xt.dims[2].constantValue(), W = xt.dims[3].constantValue();
  auto KH = wt.dims[2].constantValue(), KW = wt.dims[3].constantValue();
  auto OH = gt.dims[2].constantValue(), OW = gt.dims[3].constantValue();
  if (!H || !W || !KH || !KW || !OH || !OW)
    return unsupported(fop, "needs static spatial dims (H, W)");
  Spatial s = spatialOf(fop, *KH, *KW);
  int64_t G = fop.attrs.getInt("groups", 1);
  Dim C = xt.dims[1], O = wt.dims[0], Cg = wt.dims[1];
  auto divDim = [](const Dim &a, int64_t b) { return Dim::div(a, Dim::constant(b)); };
  if (need[0]) {
    AD_TRY(w, P(fop.operands[1]));
    // Dilate g by the stride.
    TensorType dt = gt;
    dt.dims[2] = (*OH - 1) * s.sh + 1;
    dt.dims[3] = (*OW - 1) * s.sw + 1;
    AD_TRY(gd, sliceAdjoint(fop, g, dt, {0, 0}, {kToEnd, kToEnd}, {2, 3}, {s.sh, s.sw}));
    // Swap channels per group: [O, Cg, kh, kw] -> [C, O/G, kh, kw].
    ValueId ws;
    if (G == 1) {
      AD_TRY(t, transpose(w, {1, 0, 2, 3}));
      ws = t;
    } else {
      auto og = divDim(O, G);
      if (!og)
        return og.takeError();
      AD_TRY(r5, reshape(w, {Dim(G), *og, Cg, wt.dims[2], wt.dims[3]}));
      AD_TRY(t5, transpose(r5, {0, 2, 1, 3, 4}));
      AD_TRY(r4, reshape(t5, {C, *og, wt.dims[2], wt.dims[3]}));
      ws = r4;
    }
    // Flip the kernel spatially (gather with reversed indices).
    for (int axis : {2, 3}) {
      int64_t k = axis == 2 ? *KH : *KW;
      if (k == 1)
        continue;
      std::vector<int64_t> rev(static_cast<size_t>(k));
      for (int64_t i = 0; i < k; ++i)
        rev[size_t(i)] = k - 1 - i;
      AttrList cv;
      cv.set("value", Attribute::ofInts(rev));
      AD_TRY(ri, op(OpKind::Constant, {}, cv, {TensorType(DType::I64, {Dim(k)})}));
      AD_TRY(f, op(OpKind::Gather, {ws, ri}, attrs1("axis", Attribute::ofInt(axis))));
      ws = f;
    }
    int64_t loH = s.dh * (*KH - 1) - s.pt, loW = s.dw * (*KW - 1) - s.pl;
    int64_t hiH = *H - ((*OH - 1) * s.sh + 1) + s.pt, hiW = *W - ((*OW - 1) * s.sw + 1) + s.pl;
    AttrList ca;
    ca.set("padding", Attribute::ofInts({std::max<int64_t>(loH, 0), std::max<int64_t>(loW, 0),
                                         std::max<int64_t>(hiH, 0), std::max<int64_t>(hiW, 0)}));
    ca.set("dilation", Attribute::ofInts({s.dh, s.dw}));
    if (G != 1)
      ca.set("groups", Attribute::ofInt(G));
    AD_TRY(cx, op(OpKind::Conv2d, {gd, ws}, ca));
    ValueId r = cx;
    if (loH < 0 || loW < 0 || hiH < 0 || hiW < 0) {
      int64_t cropT = std::max<int64_t>(-loH, 0), cropL = std::max<int64_t>(-loW, 0);
      AD_TRY(cr, slice(cx, {cropT, cropL}, {cropT + *H, cropL + *W}, {2, 3}));
      r = cr;
    }
    gx[0] = r;
  }
  if (need[1]) {
    AD_TRY(x, P(fop.operands[0]));
    Dim N = xt.dims[0];
    ValueId xs;
    if (G == 1) {
      AD_TRY(t, transpose(x, {1, 0, 2, 3}));
      xs = t;
    } else {
      AD_TRY(r5, reshape(x, {N, Dim(G), Cg, xt.dims[2], xt.dims[3]}));
      AD_TRY(t5, transpose(r5, {2, 1, 0, 3, 4}));
      auto gn = Dim::mul(Dim(G), N);
      if (!gn)
        return gn.takeError();
      AD_TRY(r4, reshape(t5, {Cg, *gn, xt.dims[2], xt.dims[3]}));
      xs = r4;
    }
    AD_TRY(gs, transpose(g, {1, 0, 2, 3})); // [O, N, OH, OW]
    AttrList ca;
    ca.set("padding", Attribute::ofInts({s.pt, s.pl, s.pb, s.pr}));
    ca.set("stride", Attribute::ofInts({s.dh, s.dw}));
    ca.set("dilation", Attribute::ofInts({s.sh, s.sw}));
    if (G != 1)
      ca.set("groups", Attribute::ofInt(G));
    AD_TRY(cw, op(OpKind::Conv2d, {xs, gs}, ca)); // [Cg, O, KH', KW']
    TensorType cwt = T(cw);
    ValueId cur = cw;
    if (cwt.dims[2] != wt.dims[2] || cwt.dims[3] != wt.dims[3]) {
      AD_TRY(cr, slice(cw, {0, 0}, {*KH, *KW}, {2, 3}));
      cur = cr;
    }
    AD_TRY(r, transpose(cur, {1, 0, 2, 3}));
    gx[1] = r;
  }
  return Error::success();
}

// Pooling backward, one window offset (kh, kw) at a time: the strided slice
// of the (padded) input that offset reads, and its adjoint.
//  max_pool2d: g goes to the window's maxima, split evenly over ties;
//  avg_pool2d: g / (window count) goes to every element of the window.
Expected<ValueId> GradBuilder::poolRule(const Operation &fop, ValueId g) {
  AD_TRY(x, P(fop.operands[0]));
  TensorType xt = T(x), gt = T(g);
  auto kernel = *fop.attrs.getInts("kernel");
  auto H = xt.dims[2].constantValue(), W = xt.dims[3].constantValue();
  auto OH = gt.dims[2].constantValue(), OW = gt.dims[3].constantValue();
  if (!H || !W || !OH || !OW)
    return unsupported(fop, "needs static spatial dims (H, W)");
  Spatial s = spatialOf(fop, kernel[0], kernel[1]);
  bool isMax = fop.kind == OpKind::MaxPool2d;
  std::vector<int64_t> pads{0, 0, 0, 0, s.pt, s.pb, s.pl, s.pr};
  bool padded = s.pt || s.pb || s.pl || s.pr;
  TensorType xpt = xt;
  xpt.dims[2] = *H + s.pt + s.pb;
  xpt.dims[3] = *W + s.pl + s.pr;
  ValueId xp = x;
  if (isMax && padded) {
    AD_TRY(p, pad(x, pads, -INFINITY)); // padding never wins
    xp = p;
  }
  auto window = [&](ValueId v, int64_t i, int64_t j) {
    int64_t h0 = i * s.dh, w0 = j * s.dw;
    return slice(v, {h0, w0}, {h0 + (*OH - 1) * s.sh + 1, w0 + (*OW - 1) * s.sw + 1}, {2, 3}, {s.sh, s.sw});
  };
  std::vector<ValueId> share; // per offset: the gradient it receives
  if (isMax) {
    AD_TRY(y, P(fop.results[0]));
    std::vector<ValueId> masks;
    ValueId cnt = kNoValue;
    for (int64_t i = 0; i < s.kh; ++i)
      for (int64_t j = 0; j < s.kw; ++j) {
        AD_TRY(xs, window(xp, i, j));
        AD_TRY(hit, bin(OpKind::Eq, xs, y));
        AD_TRY(m, cast(hit, xt.dtype));
        masks.push_back(m);
        if (cnt == kNoValue) {
          cnt = m;
        } else {
          AD_TRY(c, bin(OpKind::Add, cnt, m));
          cnt = c;
        }
      }
    AD_TRY(q, bin(OpKind::Div, g, cnt));
    for (ValueId m : masks) {
      AD_TRY(v, bin(OpKind::Mul, q, m));
      share.push_back(v);
    }
  } else {
    ValueId q;
    if (fop.attrs.getBool("count_include_pad", false) || !padded) {
      AD_TRY(v, binC(OpKind::Div, g, double(s.kh * s.kw)));
      q = v;
    } else {
      // Valid elements per window: avg_pool2d of ones counting the padding,
      // times the window size.
      AD_TRY(ones, op(OpKind::Constant, {}, attrs1("value", Attribute::ofFloat(1.0)),
                      {TensorType(xt.dtype, xt.dims)}));
      AttrList pa = fop.attrs;
      pa.set("count_include_pad", Attribute::ofBool(true));
      AD_TRY(frac, op(OpKind::AvgPool2d, {ones}, pa));
      AD_TRY(cnt, binC(OpKind::Mul, frac, double(s.kh * s.kw)));
      AD_TRY(v, bin(OpKind::Div, g, cnt));
      q = v;
    }
    share.assign(size_t(s.kh * s.kw), q);
  }
  ValueId acc = kNoValue;
  size_t k = 0;
  for (int64_t i = 0; i < s.kh; ++i)
    for (int64_t j = 0; j < s.kw; ++j, ++k) {
      int64_t h0 = i * s.dh, w0 = j * s.dw;
      AD_TRY(v, sliceAdjoint(fop, share[k], xpt, {h0, w0}, {h0 + (*OH - 1) * s.sh + 1, w0 + (*OW - 1) * s.sw + 1},
                             {2, 3}, {s.sh, s.sw}));
      if (acc == kNoValue) {
        acc = v;
      } else {
        AD_TRY(a, bin(OpKind::Add, acc, v));
        acc = a;
      }
    }
  if (padded)
    return padAdjoint(acc, xt, pads);
  return acc;
}

Error GradBuilder::backprop(const Operation &fop, const std::vector<ValueId> &gy, const std::vector<bool> &need,
                            std::vector<ValueId> &gx) {
  ValueId g = gy.empty() ? kNoValue : gy[0];
  OpGroup group = opInfo(fop.kind).group;
  switch (group) {
  case OpGroup::Unary: {
    AD_TRY(r, unaryRule(fop, g));
    gx[0] = r;
    return Error::success();
  }
  case OpGroup::Binary:
    return binaryRule(fop, g, need, gx);
  case OpGroup::Select: {
    AD_TRY(c, P(fop.operands[0]));
    AD_TRY(zero, cst(0.0, T(g).dtype));
    if (need[1]) {
      AD_TRY(v, op(OpKind::Select, {c, g, zero}));
      AD_TRY(r, reduceTo(v, T(fop.operands[1])));
      gx[1] = r;
    }
    if (need[2]) {
      AD_TRY(v, op(OpKind::Select, {c, zero, g}));
      AD_TRY(r, reduceTo(v, T(fop.operands[2])));
      gx[2] = r;
    }
    return Error::success();
  }
  case OpGroup::Cast: {
    AD_TRY(r, cast(g, T(fop.operands[0]).dtype));
    gx[0] = r;
    return Error::success();
  }
  case OpGroup::Reduction:
    return reductionRule(fop, g, gx);
  case OpGroup::Normalization:
    return normRule(fop, g, need, gx);
  case OpGroup::Contraction:
    return matmulRule(fop, g, need, gx);
  case OpGroup::Convolution:
    if (fop.kind == OpKind::Conv2d)
      return convRule(fop, g, need, gx);
    {
      AD_TRY(r, poolRule(fop, g));
      gx[0] = r;
    }
    return Error::success();
  case OpGroup::DataMovement:
    break;
  default:
    return internalError(std::string("no vjp rule for ") + fop.name());
  }
  TensorType xt = T(fop.operands[0]);
  switch (fop.kind) {
  case OpKind::Transpose: {
    std::vector<int64_t> perm;
    if (auto p = fop.attrs.getInts("perm")) {
      perm = *p;
    } else {
      for (size_t i = 0; i < xt.rank(); ++i)
        perm.push_back(int64_t(xt.rank() - 1 - i));
    }
    std::vector<int64_t> inv(perm.size());
    for (size_t i = 0; i < perm.size(); ++i)
      inv[size_t(normAxis(perm[i], perm.size()))] = int64_t(i);
    AD_TRY(r, transpose(g, inv));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Reshape: {
    AD_TRY(r, reshape(g, xt.dims));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::BroadcastTo: {
    AD_TRY(r, reduceTo(g, xt));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::ExpandDims: {
    std::vector<int64_t> axes;
    size_t rr = T(fop.results[0]).rank();
    std::vector<int64_t> given = fop.attrs.getInts("axes").value_or(std::vector<int64_t>{});
    for (int64_t a : given)
      axes.push_back(normAxis(a, rr));
    AD_TRY(r, op(OpKind::Squeeze, {g}, attrs1("axes", Attribute::ofInts(axes))));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Squeeze: {
    std::vector<int64_t> axes;
    if (auto a = fop.attrs.getInts("axes")) {
      for (int64_t x : *a)
        axes.push_back(normAxis(x, xt.rank()));
    } else {
      for (size_t i = 0; i < xt.rank(); ++i)
        if (xt.dims[i].constantValue() == 1)
          axes.push_back(int64_t(i));
    }
    std::sort(axes.begin(), axes.end());
    if (axes.empty()) {
      gx[0] = g;
      return Error::success();
    }
    AD_TRY(r, op(OpKind::ExpandDims, {g}, attrs1("axes", Attribute::ofInts(axes))));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Concat:
    return concatRule(fop, g, need, gx);
  case OpKind::Split: {
    AD_TRY(r, splitRule(fop, gy));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Slice: {
    std::vector<int64_t> axes, steps;
    if (auto a = fop.attrs.getInts("axes"))
      axes = *a;
    if (auto s = fop.attrs.getInts("steps"))
      steps = *s;
    AD_TRY(r, sliceAdjoint(fop, g, xt, *fop.attrs.getInts("starts"), *fop.attrs.getInts("ends"), axes, steps));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Gather: {
    AD_TRY(r, gatherRule(fop, g));
    gx[0] = r;
    return Error::success();
  }
  case OpKind::Pad: {
    AD_TRY(r, padAdjoint(g, xt, *fop.attrs.getInts("pads")));
    gx[0] = r;
    return Error::success();
  }
  default:
    return internalError(std::string("no vjp rule for ") + fop.name());
  }
}

// ---------------------------------------------------------------------------
// Driver

Expected<VjpResult> GradBuilder::run() {
  const size_t numParams = src_.params.size();
  std::vector<bool> isWrt(numParams, false);
  for (size_t i : wrt_) {
    if (i >= numParams)
      return invalidArg("input index " + std::to_string(i) + " is out of range: @" + src_.name + " has " +
                        std::to_string(numParams) + " parameters");
    const Value &p = src_.value(src_.params[i]);
    if (!isFloat(p.type.dtype))
      return invalidArg("cannot differentiate @" + src_.name + " with respect to %" + p.name + ": its type " +
                        p.type.str() + " is not a float tensor (integers and booleans have no gradient)");
    if (isWrt[i])
      return invalidArg("input %" + p.name + " is listed twice");
    isWrt[i] = true;
  }
  if (wrt_.empty())
    return invalidArg("no inputs to differentiate with respect to");
  // Which outputs are differentiated.
  std::vector<bool> diffOut(src_.returns.size(), false);
  if (scalarLoss_) {
    if (lossOutput_ >= src_.returns.size())
      return invalidArg("loss output " + std::to_string(lossOutput_) + " is out of range: @" + src_.name +
                        " returns " + std::to_string(src_.returns.size()) + " values");
    const TensorType &lt = src_.typeOf(src_.returns[lossOutput_]);
    if (!isFloat(lt.dtype) || lt.rank() != 0)
      return invalidArg("grad needs a float scalar loss, but output " + std::to_string(lossOutput_) + " of @" +
                        src_.name + " (%" + src_.value(src_.returns[lossOutput_]).name + ") has type " + lt.str() +
                        (isFloat(lt.dtype) ? " (use vjp for non-scalar outputs)" : " (not differentiable)"));
    diffOut[lossOutput_] = true;
  } else {
    bool any = false;
    for (size_t i = 0; i < src_.returns.size(); ++i)
      any |= diffOut[i] = isFloat(src_.typeOf(src_.returns[i]).dtype);
    if (!any)
      return invalidArg("@" + src_.name + " has no differentiable output: every output is an integer or boolean "
                        "tensor");
  }

  // Parameters: the originals, then one cotangent per differentiated output.
  for (ValueId p : src_.params) {
    auto v = b_.addParam(src_.value(p).name, src_.typeOf(p));
    if (!v)
      return v.takeError();
    map_[p] = *v;
  }
  std::vector<ValueId> cotangent(src_.returns.size(), kNoValue);
  if (!scalarLoss_) {
    for (size_t i = 0; i < src_.returns.size(); ++i) {
      if (!diffOut[i])
        continue;
      std::string base = "ct." + src_.value(src_.returns[i]).name, name = base;
      for (unsigned k = 1; src_.findValue(name) || b_.function().findValue(name); ++k)
        name = base + "." + std::to_string(k);
      auto v = b_.addParam(name, src_.resultTypes[i]);
      if (!v)
        return v.takeError();
      cotangent[i] = *v;
    }
  }
  if (auto e = emitForward())
    return e;

  // Activity: values that depend differentiably on a requested input.
  const Function &bf = b_.function();
  active_.assign(bf.values.size(), false);
  for (size_t i = 0; i < numParams; ++i)
    active_[map_.at(src_.params[i])] = isWrt[i];
  for (size_t k = 0; k < numFwdOps_; ++k) {
    const Operation &o = bf.ops[k];
    bool act = false;
    if (!isNonDifferentiable(o.kind))
      for (size_t i = 0; i < o.operands.size(); ++i)
        act |= isDiffOperand(o.kind, i) && active_[o.operands[i]];
    for (ValueId r : o.results)
      active_[r] = act && isFloat(bf.typeOf(r).dtype);
  }

  // Rematerialization set.
  for (const std::string &nm : opts_.remat) {
    std::string n = !nm.empty() && nm[0] == '%' ? nm.substr(1) : nm;
    auto sv = src_.findValue(n);
    if (!sv)
      return invalidArg("remat: @" + src_.name + " has no value %" + n);
    ValueId v = map_.at(*sv);
    const Value &val = bf.value(v);
    if (val.definingOp < 0)
      return invalidArg("remat: %" + n + " is a parameter; only op results can be recomputed");
    if (bf.ops[size_t(val.definingOp)].kind == OpKind::Constant)
      return invalidArg("remat: %" + n + " is a constant");
    // Like the attribute: an attention's whole decomposition is recomputed
    // (its own result is read by no backward rule; its scores are).
    if (auto it = decompositionOf_.find(*sv); it != decompositionOf_.end())
      remat_.insert(it->second.begin(), it->second.end());
    else
      remat_.insert(v);
  }
  remat_.insert(checkpointed_.begin(), checkpointed_.end());
  if (opts_.rematElementwise)
    for (size_t k = 0; k < numFwdOps_; ++k) {
      const Operation &o = bf.ops[k];
      if (isElementwiseUnary(o.kind) || isElementwiseBinary(o.kind))
        remat_.insert(o.results.begin(), o.results.end());
    }

  // Seeds.
  std::vector<ValueId> outs;
  for (ValueId r : src_.returns)
    outs.push_back(map_.at(r));
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!diffOut[i])
      continue;
    if (!active_[outs[i]])
      continue;
    ValueId seed = cotangent[i];
    if (scalarLoss_) {
      AD_TRY(one, cst(1.0, src_.typeOf(src_.returns[i]).dtype));
      seed = one;
    }
    if (auto e = accumulate(outs[i], seed))
      return e;
  }

  // Reverse sweep.
  for (size_t k = numFwdOps_; k-- > 0;) {
    Operation fop = b_.function().ops[k]; // a copy: the builder grows
    std::vector<ValueId> gy;
    bool any = false;
    for (ValueId r : fop.results) {
      auto it = adj_.find(r);
      gy.push_back(it == adj_.end() ? kNoValue : it->second);
      any |= it != adj_.end();
    }
    if (!any)
      continue;
    std::vector<bool> need(fop.operands.size(), false);
    bool anyNeed = false;
    for (size_t i = 0; i < fop.operands.size(); ++i)
      anyNeed |= need[i] = isDiffOperand(fop.kind, i) && active_[fop.operands[i]];
    if (!anyNeed)
      continue;
    std::vector<ValueId> gx(fop.operands.size(), kNoValue);
    rematCache_.clear();
    if (auto e = backprop(fop, gy, need, gx))
      return e;
    for (size_t i = 0; i < gx.size(); ++i) {
      if (!need[i] || gx[i] == kNoValue)
        continue;
      if (T(gx[i]).dims != T(fop.operands[i]).dims)
        return internalError(std::string("vjp of '") + fop.name() + "' gave " + T(gx[i]).str() + " for operand " +
                             std::to_string(i) + " of type " + T(fop.operands[i]).str());
      if (auto e = accumulate(fop.operands[i], gx[i]))
        return e;
    }
  }

  // Results: the outputs, then one gradient per requested input.
  std::vector<ValueId> rets = outs;
  std::vector<std::pair<ValueId, std::string>> gradNames;
  for (size_t i : wrt_) {
    ValueId p = map_.at(src_.params[i]);
    const std::string &pname = src_.value(src_.params[i]).name;
    auto it = adj_.find(p);
    if (it == adj_.end()) {
      std::string msg = "%" + pname + " does not reach a differentiable output of @" + src_.name;
      if (opts_.unreachableIsError)
        return invalidArg(msg);
      warnings_.push_back(msg + "; its gradient is zero");
      AD_TRY(z, zeros(src_.typeOf(src_.params[i])));
      rets.push_back(z);
    } else {
      rets.push_back(it->second);
    }
    gradNames.emplace_back(rets.back(), "grad." + pname);
  }
  auto fn = b_.finish(rets);
  if (!fn)
    return fn.takeError();
  // Name the gradients grad.<param> where that name is free and the value is
  // not a parameter or an original output.
  std::set<ValueId> keep(outs.begin(), outs.end());
  for (auto &[v, name] : gradNames) {
    Value &val = fn->value(v);
    if (val.definingOp < 0 || keep.count(v) || fn->findValue(name))
      continue;
    val.name = name;
    keep.insert(v);
  }
  VjpResult res;
  res.function = fn.take();
  res.warnings = std::move(warnings_);
  res.numOutputs = outs.size();
  res.wrt = wrt_;
  return res;
}

} // namespace

Expected<std::vector<size_t>> resolveWrt(const Function &fn, const std::vector<std::string> &wrt) {
  std::vector<size_t> out;
  for (std::string w : wrt) {
    if (!w.empty() && w[0] == '%')
      w = w.substr(1);
    bool found = false;
    for (size_t i = 0; i < fn.params.size(); ++i)
      if (fn.value(fn.params[i]).name == w) {
        out.push_back(i);
        found = true;
        break;
      }
    if (found)
      continue;
    if (!w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        w.size() < 10) {
      size_t i = size_t(std::stoul(w));
      if (i < fn.params.size()) {
        out.push_back(i);
        continue;
      }
    }
    std::string names;
    for (ValueId p : fn.params)
      names += (names.empty() ? "%" : ", %") + fn.value(p).name;
    return makeError(ErrorCode::NotFound,
                     "@" + fn.name + " has no parameter '" + w + "' (parameters: " + names + ")");
  }
  return out;
}

Expected<VjpResult> vjp(const Function &fn, const std::vector<size_t> &wrt, const VjpOptions &options) {
  GradBuilder gb(fn, wrt, /*scalarLoss=*/false, 0, options);
  return gb.run();
}

Expected<VjpResult> grad(const Function &fn, const std::vector<size_t> &wrt, size_t lossOutput,
                         const VjpOptions &options) {
  GradBuilder gb(fn, wrt, /*scalarLoss=*/true, lossOutput, options);
  return gb.run();
}

Expected<int64_t> peakLiveBytes(const Function &fn, const SymbolBindings &symbols) {
  std::vector<int64_t> bytes(fn.values.size(), 0);
  for (size_t v = 0; v < fn.values.size(); ++v) {
    auto shape = shape::concreteShape(fn.values[v].type, symbols);
    if (!shape)
      return shape.takeError();
    int64_t n = 1;
    for (int64_t d : *shape)
      n *= d;
    bytes[v] = n * int64_t(std::max(8u, dtypeBits(fn.values[v].type.dtype)) / 8);
  }
  // Last use (op index) of every value; returned values live to the end.
  std::vector<int64_t> last(fn.values.size(), -1);
  for (size_t k = 0; k < fn.ops.size(); ++k)
    for (ValueId o : fn.ops[k].operands)
      last[o] = int64_t(k);
  for (ValueId r : fn.returns)
    last[r] = int64_t(fn.ops.size());
  int64_t live = 0, peak = 0;
  for (ValueId p : fn.params)
    live += bytes[p];
  peak = live;
  for (size_t k = 0; k < fn.ops.size(); ++k) {
    for (ValueId r : fn.ops[k].results)
      live += bytes[r];
    peak = std::max(peak, live);
    for (ValueId o : fn.ops[k].operands)
      if (last[o] == int64_t(k)) {
        live -= bytes[o];
        last[o] = -2; // freed once even when used twice by this op
      }
    for (ValueId r : fn.ops[k].results)
      if (last[r] == -1) // dead result
        live -= bytes[r];
  }
  return peak;
}

} // namespace tessera::autodiff
