#include "shape/Decompose.h"

#include "shape/Builder.h"

#include <cmath>
#include <map>

namespace tessera::shape {

using namespace tessera::ir;

namespace {

class Rewriter {
public:
  explicit Rewriter(const Function &src) : src_(src), b_(src.name, src.loc) {}

  Expected<Function> run() {
    for (ValueId p : src_.params) {
      auto v = b_.addParam(src_.value(p).name, src_.typeOf(p));
      if (!v)
        return v.takeError();
      map_[p] = *v;
    }
    for (const Operation &op : src_.ops) {
      Error e = op.kind == OpKind::Attention ? attention(op) : copy(op);
      if (e)
        return e;
    }
    std::vector<ValueId> rets;
    for (ValueId r : src_.returns)
      rets.push_back(map_.at(r));
    return b_.finish(std::move(rets), src_.resultTypes);
  }

private:
  const Function &src_;
  FunctionBuilder b_;
  std::map<ValueId, ValueId> map_;
  unsigned tmp_ = 0;

  std::vector<ValueId> mapped(const std::vector<ValueId> &vs) {
    std::vector<ValueId> out;
    for (ValueId v : vs)
      out.push_back(map_.at(v));
    return out;
  }

  Error copy(const Operation &op) {
    std::vector<std::string> names;
    for (ValueId r : op.results)
      names.push_back(src_.value(r).name);
    auto rs = b_.addOp(op.kind, mapped(op.operands), op.attrs, op.annotations, op.loc, op.explicitLoc, names);
    if (!rs)
      return rs.takeError();
    for (size_t i = 0; i < op.results.size(); ++i)
      map_[op.results[i]] = (*rs)[i];
    return Error::success();
  }

  std::string fresh(const std::string &base, const char *suffix) {
    for (;;) {
      std::string n = base + "." + suffix + (tmp_ ? std::to_string(tmp_) : "");
      if (!src_.findValue(n) && !b_.function().findValue(n))
        return n;
      ++tmp_;
    }
  }

  Expected<ValueId> emit(OpKind kind, std::vector<ValueId> operands, AttrList attrs, std::vector<TensorType> ann,
                         const Operation &at, std::string name) {
    auto rs = b_.addOp(kind, std::move(operands), std::move(attrs), std::move(ann), at.loc, at.explicitLoc, {name});
    if (!rs)
      return rs.takeError();
    return (*rs)[0];
  }

  Error attention(const Operation &op) {
    std::string base = src_.value(op.results[0]).name;
    std::vector<ValueId> in = mapped(op.operands);
    const TensorType q = b_.typeOf(in[0]); // a copy: adding ops reallocates values
    size_t r = q.rank();
    std::vector<int64_t> perm;
    for (size_t i = 0; i + 2 < r; ++i)
      perm.push_back(int64_t(i));
    perm.push_back(int64_t(r - 1));
    perm.push_back(int64_t(r - 2));
    AttrList tp;
    tp.set("perm", Attribute::ofInts(perm));
    auto kt = emit(OpKind::Transpose, {in[1]}, tp, {}, op, fresh(base, "kt"));
    if (!kt)
      return kt.takeError();
    auto s = emit(OpKind::Matmul, {in[0], *kt}, {}, {}, op, fresh(base, "scores"));
    if (!s)
      return s.takeError();
    double scale = 1.0;
    if (const Attribute *a = op.attrs.find("scale")) {
      scale = a->getFloat();
    } else {
      auto d = q.dims[r - 1].constantValue();
      if (!d || *d <= 0)
        return makeError(ErrorCode::Unsupported,
                         "'attention' with a symbolic head dim " + q.dims[r - 1].str() +
                             " needs an explicit 'scale' to be decomposed",
                         op.loc);
      scale = 1.0 / std::sqrt(double(*d));
    }
    AttrList cv;
    cv.set("value", Attribute::ofFloat(scale));
    auto sc = emit(OpKind::Constant, {}, cv, {TensorType(q.dtype, {}, q.policy)}, op, fresh(base, "scale"));
    if (!sc)
      return sc.takeError();
    auto cur = emit(OpKind::Mul, {*s, *sc}, {}, {}, op, fresh(base, "scaled"));
    if (!cur)
      return cur.takeError();
    if (in.size() == 4) {
      cur = emit(OpKind::Add, {*cur, in[3]}, {}, {}, op, fresh(base, "masked"));
      if (!cur)
        return cur.takeError();
    }
    if (op.attrs.getBool("causal", false)) {
      const TensorType st = b_.typeOf(*cur);
      TensorType it(DType::I64, {st.dims[st.rank() - 2], st.dims[st.rank() - 1]});
      AttrList a0, a1;
      a0.set("axis", Attribute::ofInt(0));
      a1.set("axis", Attribute::ofInt(1));
      auto row = emit(OpKind::Iota, {}, a0, {it}, op, fresh(base, "row"));
      if (!row)
        return row.takeError();
      auto col = emit(OpKind::Iota, {}, a1, {it}, op, fresh(base, "col"));
      if (!col)
        return col.takeError();
      auto keep = emit(OpKind::Ge, {*row, *col}, {}, {}, op, fresh(base, "causal"));
      if (!keep)
        return keep.takeError();
      AttrList ninf;
      ninf.set("value", Attribute::ofFloat(-INFINITY));
      auto neg = emit(OpKind::Constant, {}, ninf, {TensorType(q.dtype, {}, q.policy)}, op, fresh(base, "ninf"));
      if (!neg)
        return neg.takeError();
      cur = emit(OpKind::Select, {*keep, *cur, *neg}, {}, {}, op, fresh(base, "cmasked"));
      if (!cur)
        return cur.takeError();
    }
    AttrList sm;
    sm.set("axis", Attribute::ofInt(-1));
    auto p = emit(OpKind::Softmax, {*cur}, sm, {}, op, fresh(base, "probs"));
    if (!p)
      return p.takeError();
    auto out = emit(OpKind::Matmul, {*p, in[2]}, {}, {}, op, base);
    if (!out)
      return out.takeError();
    map_[op.results[0]] = *out;
    return Error::success();
  }
};

} // namespace

Error decomposeAttention(Function &fn) {
  bool any = false;
  for (const auto &op : fn.ops)
    any |= op.kind == OpKind::Attention;
  if (!any)
    return Error::success();
  Rewriter rw(fn);
  auto out = rw.run();
  if (!out)
    return out.takeError();
  fn = out.take();
  return Error::success();
}

Error decomposeComposites(Module &module) {
  for (auto &fn : module.functions)
    if (auto e = decomposeAttention(fn))
      return e;
  return Error::success();
}

} // namespace tessera::shape
