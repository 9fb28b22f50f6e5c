#include "shape/ShapeInference.h"

#include "ir/Verifier.h"

#include <algorithm>
#include <set>

namespace tessera::shape {

using namespace tessera::ir;

namespace {

Error shapeError(const SourceLocation &loc, std::string msg) {
  return makeError(ErrorCode::ShapeMismatch, std::move(msg), loc);
}
Error typeError(const SourceLocation &loc, std::string msg) {
  return makeError(ErrorCode::InvalidIR, std::move(msg), loc);
}
// Re-locates an error from Dim arithmetic (overflow, division by zero).
Error locate(Error e, const SourceLocation &loc) {
  if (e.location().known())
    return e;
  return makeError(e.code(), e.message(), loc);
}

std::string ordinal(size_t i) {
  static const char *names[] = {"first", "second", "third", "fourth"};
  return i < 4 ? names[i] : "operand " + std::to_string(i);
}

// Drops an accumulation dtype that does not suit `dtype`.
NumericPolicy policyFor(DType dtype, NumericPolicy p) {
  if (p.accum) {
    DType a = *p.accum;
    bool ok = isFloat(dtype) ? isFloat(a) && dtypeBits(a) >= dtypeBits(dtype)
                             : isInteger(dtype) && isInteger(a) && dtypeBits(a) >= dtypeBits(dtype);
    if (!ok)
      p.accum.reset();
  }
  return p;
}

} // namespace

ShapeContext::ShapeContext(Function &fn) : fn_(fn) {}

Dim ShapeContext::resolve(const Dim &dim) const {
  if (subst_.empty())
    return dim;
  auto r = dim.substitute(subst_);
  // Substituting an overflow-free dim with overflow-free dims can only
  // overflow in pathological products; keep the original then.
  return r ? r.take() : dim;
}

TensorType ShapeContext::resolve(const TensorType &type) const {
  TensorType out = type;
  for (auto &d : out.dims)
    d = resolve(d);
  return out;
}

Expected<bool> ShapeContext::require(const Dim &a, const Dim &b, const std::string &reason,
                                     const SourceLocation &loc) {
  Dim ra = resolve(a), rb = resolve(b);
  if (ra == rb)
    return true;
  auto diff = Dim::sub(ra, rb);
  if (!diff)
    return locate(diff.takeError(), loc);
  if (diff->isConstant())
    return false;
  // Only free symbols (those not in any parameter type, e.g. the head count H
  // of a reshape annotation) are bound by unification. Distinct parameter
  // symbols are distinct sizes: requiring S == T, or S == 512, is a mismatch,
  // which catches real bugs (a reduction without keepdim broadcasting against
  // the wrong axis) instead of silently merging names.
  auto params = fn_.paramSymbols();
  auto isFree = [&](const Dim &d, const Dim &other) {
    return d.isSymbol() && !other.mentions(d.symbolName()) &&
           std::find(params.begin(), params.end(), d.symbolName()) == params.end();
  };
  std::string sym;
  Dim target;
  bool aFree = isFree(ra, rb), bFree = isFree(rb, ra);
  if (aFree && (!bFree || ra.symbolName() > rb.symbolName())) {
    sym = ra.symbolName();
    target = rb;
  } else if (bFree) {
    sym = rb.symbolName();
    target = ra;
  } else if ((ra.isSymbol() || ra.isConstant()) && (rb.isSymbol() || rb.isConstant())) {
    return false;
  } else {
    fn_.constraints.push_back(ShapeConstraint{ra, rb, reason, loc});
    return true;
  }
  // A symbol bound to a negative constant can never hold.
  if (auto c = target.constantValue(); c && *c < 0)
    return false;
  std::map<std::string, Dim> one{{sym, target}};
  for (auto &[name, d] : subst_) {
    auto r = d.substitute(one);
    if (!r)
      return locate(r.takeError(), loc);
    d = r.take();
  }
  subst_[sym] = target;
  fn_.unified.emplace_back(sym, target);
  return true;
}

Expected<std::vector<Dim>> broadcastShapes(ShapeContext &ctx, const std::vector<Dim> &a, const std::vector<Dim> &b,
                                           const std::string &what, const SourceLocation &loc) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<Dim> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    bool hasA = i < a.size(), hasB = i < b.size();
    const Dim *da = hasA ? &a[a.size() - 1 - i] : nullptr;
    const Dim *db = hasB ? &b[b.size() - 1 - i] : nullptr;
    Dim &o = out[rank - 1 - i];
    if (!da) {
      o = *db;
      continue;
    }
    if (!db) {
      o = *da;
      continue;
    }
    Dim ra = ctx.resolve(*da), rb = ctx.resolve(*db);
    if (ra.constantValue() == std::optional<int64_t>(1)) {
      o = rb;
      continue;
    }
    if (rb.constantValue() == std::optional<int64_t>(1)) {
      o = ra;
      continue;
    }
    auto ok = ctx.require(ra, rb, what, loc);
    if (!ok)
      return ok.takeError();
    if (!*ok) {
      std::string sa, sb;
      for (size_t k = 0; k < a.size(); ++k)
        sa += (k ? " x " : "") + ctx.resolve(a[k]).str();
      for (size_t k = 0; k < b.size(); ++k)
        sb += (k ? " x " : "") + ctx.resolve(b[k]).str();
      return shapeError(loc, what + ": shapes [" + sa + "] and [" + sb + "] do not broadcast: dimension " +
                                 ra.str() + " vs " + rb.str() + " (axis " + std::to_string(i + 1) +
                                 " from the end)");
    }
    o = ctx.resolve(ra);
  }
  return out;
}

// Infers one op. Member functions return Error; results land in `results`.
class OpInferrer {
public:
  OpInferrer(ShapeContext &ctx, size_t opIndex)
      : ctx_(ctx), fn_(ctx.fn_), op_(fn_.ops[opIndex]), info_(opInfo(op_.kind)), loc_(op_.loc) {
    for (ValueId v : op_.operands)
      in_.push_back(ctx.resolve(fn_.typeOf(v)));
  }

  Error run();

private:
  ShapeContext &ctx_;
  Function &fn_;
  Operation &op_;
  const OpInfo &info_;
  SourceLocation loc_;
  std::vector<TensorType> in_;
  std::vector<TensorType> results_;

  std::string opName() const { return std::string("'") + info_.name + "'"; }
  std::string operandDesc(size_t i) const {
    return "%" + fn_.value(op_.operands[i]).name + ": " + in_[i].str();
  }

  // The reduction that produced operand i with keepdim=false, if any.
  const Operation *reductionWithoutKeepdim(size_t i) const {
    const Value &v = fn_.value(op_.operands[i]);
    if (v.definingOp < 0)
      return nullptr;
    const Operation &def = fn_.ops[size_t(v.definingOp)];
    if (opInfo(def.kind).group != OpGroup::Reduction || def.attrs.getBool("keepdim", false))
      return nullptr;
    return &def;
  }
  std::string keepdimHint(size_t i) const {
    const Operation *red = reductionWithoutKeepdim(i);
    if (!red)
      return "";
    return std::string("\nhint: %") + fn_.value(op_.operands[i]).name + " comes from '" + red->name() + "' at " +
           red->loc.str() + " which drops the reduced axes; did you mean keepdim=true?";
  }

  Expected<int64_t> normAxis(int64_t axis, size_t rank, const std::string &attr) {
    int64_t r = int64_t(rank);
    if (axis < -r || axis >= r)
      return shapeError(loc_, opName() + ": " + attr + " " + std::to_string(axis) + " is out of range for rank " +
                                  std::to_string(rank) +
                                  (rank ? " (valid: " + std::to_string(-r) + ".." + std::to_string(r - 1) + ")" : ""));
    return axis < 0 ? axis + r : axis;
  }

  Error requireEq(const Dim &a, const Dim &b, const std::string &what) {
    auto ok = ctx_.require(a, b, std::string(info_.name) + " " + what, loc_);
    if (!ok)
      return ok.takeError();
    if (!*ok)
      return shapeError(loc_, opName() + ": " + what + ": expected " + ctx_.resolve(a).str() + ", got " +
                                  ctx_.resolve(b).str());
    return Error::success();
  }

  Error sameDType(size_t i, size_t j) {
    if (in_[i].dtype != in_[j].dtype)
      return typeError(loc_, opName() + ": operand dtypes differ: " + dtypeName(in_[i].dtype) + " (" +
                                 operandDesc(i) + ") vs " + dtypeName(in_[j].dtype) + " (" + operandDesc(j) +
                                 ")\nhint: insert an explicit cast; Tessera never promotes implicitly");
    return Error::success();
  }
  Error needFloat(size_t i) {
    if (!isFloat(in_[i].dtype))
      return typeError(loc_, opName() + " needs a floating-point operand, got " + dtypeName(in_[i].dtype) + " (" +
                                 operandDesc(i) + ")");
    return Error::success();
  }
  Error needNumber(size_t i) {
    if (isBool(in_[i].dtype))
      return typeError(loc_, opName() + " needs a numeric operand, got bool (" + operandDesc(i) + ")");
    return Error::success();
  }
  Error needBool(size_t i) {
    if (!isBool(in_[i].dtype))
      return typeError(loc_, opName() + " needs a bool operand, got " + std::string(dtypeName(in_[i].dtype)) +
                                 " (" + operandDesc(i) + ")");
    return Error::success();
  }
  Error needRank(size_t i, size_t minRank, const char *layout = nullptr) {
    if (in_[i].rank() < minRank)
      return shapeError(loc_, opName() + ": " + ordinal(i) + " operand must have rank >= " +
                                  std::to_string(minRank) + ", got rank " + std::to_string(in_[i].rank()) + " (" +
                                  operandDesc(i) + ")" + (layout ? std::string("; layout ") + layout : ""));
    return Error::success();
  }
  Error exactRank(size_t i, size_t rank, const char *layout) {
    if (in_[i].rank() != rank)
      return shapeError(loc_, opName() + ": " + ordinal(i) + " operand must have rank " + std::to_string(rank) +
                                  " (" + layout + "), got rank " + std::to_string(in_[i].rank()) + " (" +
                                  operandDesc(i) + ")");
    return Error::success();
  }

  Expected<std::vector<int64_t>> pairAttr(const char *name, std::vector<int64_t> dflt, bool allowFour,
                                          int64_t minValue) {
    auto v = op_.attrs.getInts(name);
    std::vector<int64_t> out = v ? *v : dflt;
    if (out.size() != 2 && !(allowFour && out.size() == 4))
      return typeError(loc_, opName() + ": '" + name + "' needs " + (allowFour ? "2 or 4" : "2") +
                                 " values, got " + std::to_string(out.size()));
    for (int64_t x : out)
      if (x < minValue || x > (int64_t(1) << 40))
        return typeError(loc_, opName() + ": '" + name + "' values must be " +
                                   (minValue > 0 ? "positive" : "non-negative") + ", got " + std::to_string(x));
    return out;
  }

  Error unary();
  Error binary();
  Error select();
  Error reduction();
  Error normalization();
  Error matmul();
  Error transpose();
  Error reshapeLike();
  Error expandDims();
  Error squeeze();
  Error concat();
  Error split();
  Error slice();
  Error gather();
  Error pad();
  Error iota();
  Error convOrPool();
  Error constant();
  Error attention();
  Error applyAnnotations();
};

Error OpInferrer::unary() {
  switch (op_.kind) {
  case OpKind::Not:
    if (auto e = needBool(0))
      return e;
    break;
  case OpKind::Neg: case OpKind::Abs: case OpKind::Relu: case OpKind::Sign:
    if (auto e = needNumber(0))
      return e;
    break;
  default:
    if (auto e = needFloat(0))
      return e;
  }
  if (op_.kind == OpKind::Gelu) {
    std::string a = op_.attrs.getString("approximate", "none");
    if (a != "none" && a != "tanh")
      return typeError(loc_, "'gelu': approximate must be \"none\" or \"tanh\", got \"" + a + "\"");
  }
  results_.push_back(in_[0]);
  return Error::success();
}

Error OpInferrer::binary() {
  if (auto e = sameDType(0, 1))
    return e;
  switch (info_.group) {
  case OpGroup::Logical:
    if (auto e = needBool(0))
      return e;
    break;
  case OpGroup::Compare:
    break;
  default:
    if (auto e = needNumber(0))
      return e;
    if (op_.kind == OpKind::Pow)
      if (auto e = needFloat(0))
        return e;
  }
  auto shape = broadcastShapes(ctx_, in_[0].dims, in_[1].dims, std::string("'") + info_.name + "'", loc_);
  if (!shape) {
    Error e = shape.takeError();
    std::string hint = keepdimHint(0) + keepdimHint(1);
    return makeError(e.code(), e.message() + hint, e.location());
  }
  DType dt = info_.group == OpGroup::Compare ? DType::Bool : in_[0].dtype;
  NumericPolicy p = info_.group == OpGroup::Compare ? NumericPolicy{} : in_[0].policy;
  results_.push_back(TensorType(dt, shape.take(), p));
  return Error::success();
}

Error OpInferrer::select() {
  if (auto e = needBool(0))
    return e;
  if (auto e = sameDType(1, 2))
    return e;
  auto s1 = broadcastShapes(ctx_, in_[0].dims, in_[1].dims, "'select'", loc_);
  if (!s1)
    return s1.takeError();
  auto s2 = broadcastShapes(ctx_, *s1, in_[2].dims, "'select'", loc_);
  if (!s2)
    return s2.takeError();
  results_.push_back(TensorType(in_[1].dtype, s2.take(), in_[1].policy));
  return Error::success();
}

Error OpInferrer::reduction() {
  const TensorType &x = in_[0];
  bool keep = op_.attrs.getBool("keepdim", false);
  std::vector<bool> reduced(x.rank(), false);
  bool arg = op_.kind == OpKind::Argmax || op_.kind == OpKind::Argmin;
  if (arg) {
    if (auto e = needNumber(0))
      return e;
    auto a = normAxis(op_.attrs.getInt("axis", 0), x.rank(), "axis");
    if (!a)
      return a.takeError();
    reduced[size_t(*a)] = true;
  } else {
    if (auto e = needNumber(0))
      return e;
    if (op_.kind == OpKind::ReduceMean)
      if (auto e = needFloat(0))
        return e;
    if (auto axes = op_.attrs.getInts("axes")) {
      for (int64_t a : *axes) {
        auto n = normAxis(a, x.rank(), "axis");
        if (!n)
          return n.takeError();
        if (reduced[size_t(*n)])
          return typeError(loc_, opName() + ": axis " + std::to_string(a) + " is listed twice");
        reduced[size_t(*n)] = true;
      }
    } else {
      std::fill(reduced.begin(), reduced.end(), true);
    }
  }
  std::vector<Dim> dims;
  for (size_t i = 0; i < x.rank(); ++i) {
    if (!reduced[i])
      dims.push_back(x.dims[i]);
    else if (keep)
      dims.push_back(Dim::constant(1));
  }
  if (arg)
    results_.push_back(TensorType(DType::I64, std::move(dims)));
  else
    results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::normalization() {
  if (auto e = needFloat(0))
    return e;
  if (auto e = needRank(0, 1))
    return e;
  const TensorType &x = in_[0];
  auto axis = normAxis(op_.attrs.getInt("axis", -1), x.rank(), "axis");
  if (!axis)
    return axis.takeError();
  if (op_.kind == OpKind::LayerNorm || op_.kind == OpKind::RmsNorm) {
    double eps = op_.attrs.getFloat("epsilon", 1e-5);
    if (!(eps >= 0))
      return typeError(loc_, opName() + ": epsilon must be >= 0");
    std::vector<Dim> normShape(x.dims.begin() + *axis, x.dims.end());
    for (size_t i = 1; i < in_.size(); ++i) {
      const char *role = i == 1 ? "gamma" : "beta";
      if (auto e = sameDType(0, i))
        return e;
      if (in_[i].rank() != normShape.size()) {
        std::string ns;
        for (size_t k = 0; k < normShape.size(); ++k)
          ns += (k ? " x " : "") + normShape[k].str();
        return shapeError(loc_, opName() + ": " + role + " must have the normalized shape [" + ns + "], got [" +
                                    in_[i].shapeStr() + "] (" + operandDesc(i) + ")");
      }
      for (size_t k = 0; k < normShape.size(); ++k)
        if (auto e = requireEq(normShape[k], in_[i].dims[k], std::string(role) + " dim " + std::to_string(k)))
          return e;
    }
  }
  results_.push_back(x);
  return Error::success();
}

Error OpInferrer::matmul() {
  if (auto e = sameDType(0, 1))
    return e;
  if (auto e = needNumber(0))
    return e;
  TensorType a = in_[0], b = in_[1];
  if (a.rank() == 0 || b.rank() == 0)
    return shapeError(loc_, "'matmul' needs operands of rank >= 1, got " + in_[0].str() + " and " + in_[1].str());
  bool aVec = a.rank() == 1, bVec = b.rank() == 1;
  if (aVec)
    a.dims.insert(a.dims.begin(), Dim::constant(1));
  if (bVec)
    b.dims.push_back(Dim::constant(1));
  const Dim &ka = a.dims[a.rank() - 1], &kb = b.dims[b.rank() - 2];
  auto ok = ctx_.require(ka, kb, "matmul contraction", loc_);
  if (!ok)
    return ok.takeError();
  if (!*ok)
    return shapeError(loc_, "'matmul': contraction dimensions differ: lhs has " + ctx_.resolve(ka).str() +
                                " (last dim of " + operandDesc(0) + "), rhs has " + ctx_.resolve(kb).str() +
                                " (dim " + std::to_string(b.rank() - 2) + " of " + operandDesc(1) + ")" +
                                (a.dims[a.rank() - 2] == kb || ctx_.resolve(a.dims[a.rank() - 2]) == ctx_.resolve(kb)
                                     ? "\nhint: did you mean to transpose the lhs?"
                                 : b.rank() >= 2 && ctx_.resolve(b.dims[b.rank() - 1]) == ctx_.resolve(ka)
                                     ? "\nhint: did you mean to transpose the rhs?"
                                     : ""));
  std::vector<Dim> batchA(a.dims.begin(), a.dims.end() - 2), batchB(b.dims.begin(), b.dims.end() - 2);
  auto batch = broadcastShapes(ctx_, batchA, batchB, "'matmul' batch dimensions", loc_);
  if (!batch)
    return batch.takeError();
  std::vector<Dim> dims = batch.take();
  if (!aVec)
    dims.push_back(a.dims[a.rank() - 2]);
  if (!bVec)
    dims.push_back(b.dims[b.rank() - 1]);
  results_.push_back(TensorType(a.dtype, std::move(dims), in_[0].policy));
  return Error::success();
}

Error OpInferrer::transpose() {
  const TensorType &x = in_[0];
  std::vector<int64_t> perm;
  if (auto p = op_.attrs.getInts("perm")) {
    perm = *p;
  } else {
    for (size_t i = 0; i < x.rank(); ++i)
      perm.push_back(int64_t(x.rank() - 1 - i));
  }
  if (perm.size() != x.rank())
    return shapeError(loc_, "'transpose': perm has " + std::to_string(perm.size()) + " entries but the operand has rank " +
                                std::to_string(x.rank()) + " (" + operandDesc(0) + ")");
  std::vector<bool> seen(x.rank(), false);
  std::vector<Dim> dims;
  for (int64_t p : perm) {
    auto n = normAxis(p, x.rank(), "perm entry");
    if (!n)
      return n.takeError();
    if (seen[size_t(*n)])
      return typeError(loc_, "'transpose': perm is not a permutation (axis " + std::to_string(p) + " repeats)");
    seen[size_t(*n)] = true;
    dims.push_back(x.dims[size_t(*n)]);
  }
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::reshapeLike() {
  const TensorType &x = in_[0];
  std::vector<Dim> target;
  auto shapeAttr = op_.attrs.getInts("shape");
  if (shapeAttr) {
    if (shapeAttr->size() > kMaxRank)
      return makeError(ErrorCode::ResourceExhausted,
                       opName() + ": target rank " + std::to_string(shapeAttr->size()) + " exceeds the maximum " +
                           std::to_string(kMaxRank),
                       loc_);
    int inferAt = -1;
    Dim known = Dim::constant(1);
    for (size_t i = 0; i < shapeAttr->size(); ++i) {
      int64_t s = (*shapeAttr)[i];
      if (s == -1 && op_.kind == OpKind::Reshape && inferAt < 0) {
        inferAt = int(i);
        target.push_back(Dim());
        continue;
      }
      if (s < 0)
        return typeError(loc_, opName() + ": 'shape' entry " + std::to_string(s) + " is invalid" +
                                   (op_.kind == OpKind::Reshape ? " (only one -1 is allowed)" : ""));
      target.push_back(Dim::constant(s));
      auto m = Dim::mul(known, target.back());
      if (!m)
        return locate(m.takeError(), loc_);
      known = m.take();
    }
    if (inferAt >= 0) {
      auto count = x.elementCount();
      if (!count)
        return locate(count.takeError(), loc_);
      auto cv = count->constantValue(), kv = known.constantValue();
      if (kv && *kv == 0)
        return shapeError(loc_, opName() + ": cannot infer -1 when the other dims multiply to 0");
      if (cv && kv && *cv % *kv != 0)
        return shapeError(loc_, opName() + ": cannot reshape " + std::to_string(*cv) + " elements (" +
                                    operandDesc(0) + ") into a shape with a multiple of " + std::to_string(*kv));
      auto q = Dim::div(*count, known);
      if (!q)
        return locate(q.takeError(), loc_);
      target[size_t(inferAt)] = q.take();
    }
    if (!op_.annotations.empty() && op_.annotations[0].rank() != target.size())
      return shapeError(loc_, opName() + ": result type " + op_.annotations[0].str() + " disagrees with 'shape' " +
                                  op_.attrs.find("shape")->str());
  } else if (!op_.annotations.empty()) {
    target = op_.annotations[0].dims;
    if (op_.annotations[0].dtype != x.dtype)
      return typeError(loc_, opName() + " keeps the dtype: result type " + op_.annotations[0].str() +
                                 " has dtype " + dtypeName(op_.annotations[0].dtype) + ", operand has " +
                                 dtypeName(x.dtype));
  } else {
    return typeError(loc_, opName() + " needs the target shape: a result type (" + info_.name +
                               "(%x) : tensor<...>) or a 'shape' attribute");
  }
  if (op_.kind == OpKind::Reshape) {
    auto ci = x.elementCount();
    if (!ci)
      return locate(ci.takeError(), loc_);
    TensorType t(x.dtype, target);
    auto co = t.elementCount();
    if (!co)
      return locate(co.takeError(), loc_);
    auto ok = ctx_.require(*ci, *co, "reshape element count", loc_);
    if (!ok)
      return ok.takeError();
    if (!*ok)
      return shapeError(loc_, "'reshape' must keep the element count: input " + x.str() + " has " +
                                  ctx_.resolve(*ci).str() + " elements, target [" + t.shapeStr() + "] has " +
                                  ctx_.resolve(*co).str());
  } else {
    if (x.rank() > target.size())
      return shapeError(loc_, "'broadcast_to': cannot broadcast rank " + std::to_string(x.rank()) + " (" +
                                  operandDesc(0) + ") to the lower rank " + std::to_string(target.size()));
    size_t off = target.size() - x.rank();
    for (size_t i = 0; i < x.rank(); ++i) {
      Dim d = ctx_.resolve(x.dims[i]);
      if (d.constantValue() == std::optional<int64_t>(1))
        continue;
      auto ok = ctx_.require(d, target[off + i], "broadcast_to", loc_);
      if (!ok)
        return ok.takeError();
      if (!*ok)
        return shapeError(loc_, "'broadcast_to': dim " + std::to_string(i) + " of " + operandDesc(0) + " is " +
                                    d.str() + ", which broadcasts only to itself, not to " +
                                    ctx_.resolve(target[off + i]).str());
    }
  }
  results_.push_back(TensorType(x.dtype, std::move(target), x.policy));
  return Error::success();
}

Error OpInferrer::expandDims() {
  const TensorType &x = in_[0];
  auto axes = *op_.attrs.getInts("axes");
  size_t outRank = x.rank() + axes.size();
  if (outRank > kMaxRank)
    return makeError(ErrorCode::ResourceExhausted,
                     "'expand_dims': result rank " + std::to_string(outRank) + " exceeds the maximum " +
                         std::to_string(kMaxRank),
                     loc_);
  std::vector<bool> isNew(outRank, false);
  for (int64_t a : axes) {
    auto n = normAxis(a, outRank, "axis");
    if (!n)
      return n.takeError();
    if (isNew[size_t(*n)])
      return typeError(loc_, "'expand_dims': axis " + std::to_string(a) + " is listed twice");
    isNew[size_t(*n)] = true;
  }
  std::vector<Dim> dims;
  size_t k = 0;
  for (size_t i = 0; i < outRank; ++i)
    dims.push_back(isNew[i] ? Dim::constant(1) : x.dims[k++]);
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::squeeze() {
  const TensorType &x = in_[0];
  std::vector<bool> drop(x.rank(), false);
  if (auto axes = op_.attrs.getInts("axes")) {
    for (int64_t a : *axes) {
      auto n = normAxis(a, x.rank(), "axis");
      if (!n)
        return n.takeError();
      Dim d = x.dims[size_t(*n)];
      if (d.constantValue() != std::optional<int64_t>(1))
        return shapeError(loc_, "'squeeze': axis " + std::to_string(a) + " has size " + d.str() +
                                    ", expected 1 (" + operandDesc(0) + ")");
      drop[size_t(*n)] = true;
    }
  } else {
    for (size_t i = 0; i < x.rank(); ++i)
      drop[i] = x.dims[i].constantValue() == std::optional<int64_t>(1);
  }
  std::vector<Dim> dims;
  for (size_t i = 0; i < x.rank(); ++i)
    if (!drop[i])
      dims.push_back(x.dims[i]);
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::concat() {
  const TensorType &x = in_[0];
  if (x.rank() == 0)
    return shapeError(loc_, "'concat' needs operands of rank >= 1, got " + operandDesc(0));
  auto axis = normAxis(op_.attrs.getInt("axis", 0), x.rank(), "axis");
  if (!axis)
    return axis.takeError();
  Dim total = x.dims[size_t(*axis)];
  for (size_t i = 1; i < in_.size(); ++i) {
    if (auto e = sameDType(0, i))
      return e;
    if (in_[i].rank() != x.rank())
      return shapeError(loc_, "'concat': all operands need rank " + std::to_string(x.rank()) + ", but the " +
                                  ordinal(i) + " has rank " + std::to_string(in_[i].rank()) + " (" + operandDesc(i) +
                                  ")");
    for (size_t d = 0; d < x.rank(); ++d) {
      if (d == size_t(*axis))
        continue;
      auto ok = ctx_.require(x.dims[d], in_[i].dims[d], "concat", loc_);
      if (!ok)
        return ok.takeError();
      if (!*ok)
        return shapeError(loc_, "'concat': dim " + std::to_string(d) + " differs: expected " +
                                    ctx_.resolve(x.dims[d]).str() + " (" + operandDesc(0) + "), got " +
                                    ctx_.resolve(in_[i].dims[d]).str() + " (" + operandDesc(i) + ")");
    }
    auto s = Dim::add(total, in_[i].dims[size_t(*axis)]);
    if (!s)
      return locate(s.takeError(), loc_);
    total = s.take();
  }
  std::vector<Dim> dims = x.dims;
  dims[size_t(*axis)] = total;
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::split() {
  const TensorType &x = in_[0];
  if (x.rank() == 0)
    return shapeError(loc_, "'split' needs an operand of rank >= 1, got " + operandDesc(0));
  auto axis = normAxis(op_.attrs.getInt("axis", 0), x.rank(), "axis");
  if (!axis)
    return axis.takeError();
  Dim d = x.dims[size_t(*axis)];
  std::vector<Dim> parts;
  if (auto sizes = op_.attrs.getInts("sizes")) {
    Dim sum;
    for (int64_t s : *sizes) {
      if (s < 0)
        return typeError(loc_, "'split': sizes must be non-negative, got " + std::to_string(s));
      parts.push_back(Dim::constant(s));
      auto a = Dim::add(sum, parts.back());
      if (!a)
        return locate(a.takeError(), loc_);
      sum = a.take();
    }
    auto ok = ctx_.require(d, sum, "split sizes", loc_);
    if (!ok)
      return ok.takeError();
    if (!*ok)
      return shapeError(loc_, "'split': sizes add up to " + sum.str() + " but axis " + std::to_string(*axis) +
                                  " has size " + ctx_.resolve(d).str() + " (" + operandDesc(0) + ")");
  } else {
    int64_t num = op_.attrs.getInt("num", 1);
    auto c = d.constantValue();
    if (c && *c % num != 0)
      return shapeError(loc_, "'split': axis " + std::to_string(*axis) + " of size " + std::to_string(*c) +
                                  " does not split into " + std::to_string(num) + " equal parts");
    auto q = Dim::div(d, Dim::constant(num));
    if (!q)
      return locate(q.takeError(), loc_);
    parts.assign(size_t(num), q.take());
  }
  for (const Dim &p : parts) {
    std::vector<Dim> dims = x.dims;
    dims[size_t(*axis)] = p;
    results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  }
  return Error::success();
}

Error OpInferrer::slice() {
  const TensorType &x = in_[0];
  auto starts = *op_.attrs.getInts("starts");
  auto ends = *op_.attrs.getInts("ends");
  std::vector<int64_t> axes, steps;
  if (auto a = op_.attrs.getInts("axes"))
    axes = *a;
  else
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(int64_t(i));
  if (auto s = op_.attrs.getInts("steps"))
    steps = *s;
  else
    steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return typeError(loc_, "'slice': starts, ends, axes and steps need the same length (got " +
                               std::to_string(starts.size()) + ", " + std::to_string(ends.size()) + ", " +
                               std::to_string(axes.size()) + ", " + std::to_string(steps.size()) + ")");
  std::vector<Dim> dims = x.dims;
  std::vector<bool> seen(x.rank(), false);
  const int64_t kToEnd = int64_t(1) << 62;
  for (size_t i = 0; i < starts.size(); ++i) {
    auto n = normAxis(axes[i], x.rank(), "axis");
    if (!n)
      return n.takeError();
    if (seen[size_t(*n)])
      return typeError(loc_, "'slice': axis " + std::to_string(axes[i]) + " is listed twice");
    seen[size_t(*n)] = true;
    int64_t st = steps[i];
    if (st <= 0)
      return typeError(loc_, "'slice': steps must be positive, got " + std::to_string(st));
    Dim d = x.dims[size_t(*n)];
    if (auto c = d.constantValue()) {
      auto clampIdx = [&](int64_t v) {
        if (v < 0)
          v = std::max<int64_t>(v + *c, 0);
        return std::min(v, *c);
      };
      int64_t s = clampIdx(starts[i]), e = clampIdx(ends[i]);
      int64_t len = e > s ? (e - s + st - 1) / st : 0;
      dims[size_t(*n)] = Dim::constant(len);
      continue;
    }
    // Symbolic extent: explicit bounds are taken as in range.
    auto bound = [&](int64_t v, bool isEnd) -> Expected<Dim> {
      if (isEnd && v >= kToEnd)
        return d;
      if (v < 0)
        return Dim::add(d, Dim::constant(std::max<int64_t>(v, -kToEnd)));
      return Dim::constant(v);
    };
    auto s = bound(starts[i], false);
    if (!s)
      return locate(s.takeError(), loc_);
    auto e = bound(ends[i], true);
    if (!e)
      return locate(e.takeError(), loc_);
    auto len = Dim::sub(*e, *s);
    if (!len)
      return locate(len.takeError(), loc_);
    if (st != 1) {
      auto num = Dim::add(*len, Dim::constant(st - 1));
      if (!num)
        return locate(num.takeError(), loc_);
      len = Dim::floorDiv(*num, Dim::constant(st));
      if (!len)
        return locate(len.takeError(), loc_);
    }
    if (auto c = len->constantValue(); c && *c < 0)
      len = Dim::constant(0);
    dims[size_t(*n)] = len.take();
  }
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::gather() {
  const TensorType &x = in_[0], &idx = in_[1];
  if (!isInteger(idx.dtype))
    return typeError(loc_, "'gather': indices must have an integer dtype, got " + std::string(dtypeName(idx.dtype)) +
                               " (" + operandDesc(1) + ")");
  if (x.rank() == 0)
    return shapeError(loc_, "'gather' needs a data operand of rank >= 1, got " + operandDesc(0));
  auto axis = normAxis(op_.attrs.getInt("axis", 0), x.rank(), "axis");
  if (!axis)
    return axis.takeError();
  std::vector<Dim> dims(x.dims.begin(), x.dims.begin() + *axis);
  dims.insert(dims.end(), idx.dims.begin(), idx.dims.end());
  dims.insert(dims.end(), x.dims.begin() + *axis + 1, x.dims.end());
  if (dims.size() > kMaxRank)
    return makeError(ErrorCode::ResourceExhausted,
                     "'gather': result rank " + std::to_string(dims.size()) + " exceeds the maximum " +
                         std::to_string(kMaxRank),
                     loc_);
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::pad() {
  const TensorType &x = in_[0];
  auto pads = *op_.attrs.getInts("pads");
  if (pads.size() != 2 * x.rank())
    return typeError(loc_, "'pad': pads needs 2 entries per axis (" + std::to_string(2 * x.rank()) + " for " +
                               operandDesc(0) + "), got " + std::to_string(pads.size()));
  std::vector<Dim> dims = x.dims;
  for (size_t i = 0; i < x.rank(); ++i) {
    if (pads[2 * i] < 0 || pads[2 * i + 1] < 0)
      return typeError(loc_, "'pad': pads must be non-negative (use slice to crop)");
    auto s = Dim::add(dims[i], Dim::constant(pads[2 * i]));
    if (!s)
      return locate(s.takeError(), loc_);
    s = Dim::add(*s, Dim::constant(pads[2 * i + 1]));
    if (!s)
      return locate(s.takeError(), loc_);
    dims[i] = s.take();
  }
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

Error OpInferrer::iota() {
  const TensorType &t = op_.annotations[0];
  if (isBool(t.dtype))
    return typeError(loc_, "'iota' needs a numeric result type, got " + t.str());
  if (t.rank() == 0)
    return shapeError(loc_, "'iota' needs a result type of rank >= 1, got " + t.str());
  auto axis = normAxis(op_.attrs.getInt("axis", 0), t.rank(), "axis");
  if (!axis)
    return axis.takeError();
  results_.push_back(t);
  return Error::success();
}

static Expected<Dim> windowOut(const Dim &in, int64_t padLo, int64_t padHi, int64_t kernel, int64_t dil,
                               int64_t stride) {
  // (in + padLo + padHi - dil*(kernel-1) - 1) // stride + 1
  auto t = Dim::add(in, Dim::constant(padLo + padHi - dil * (kernel - 1) - 1));
  if (!t)
    return t;
  auto q = Dim::floorDiv(*t, Dim::constant(stride));
  if (!q)
    return q;
  return Dim::add(*q, Dim::constant(1));
}

Error OpInferrer::convOrPool() {
  if (auto e = exactRank(0, 4, "N x C x H x W"))
    return e;
  if (auto e = needNumber(0))
    return e;
  const TensorType &x = in_[0];
  bool conv = op_.kind == OpKind::Conv2d;
  std::vector<int64_t> kernel;
  Dim outC = x.dims[1];
  if (conv) {
    if (auto e = exactRank(1, 4, "O x C/groups x KH x KW"))
      return e;
    if (auto e = sameDType(0, 1))
      return e;
    const TensorType &w = in_[1];
    auto kh = w.dims[2].constantValue(), kw = w.dims[3].constantValue();
    if (!kh || !kw)
      return shapeError(loc_, "'conv2d': kernel size must be static, got " + operandDesc(1));
    kernel = {*kh, *kw};
    int64_t groups = op_.attrs.getInt("groups", 1);
    if (groups < 1)
      return typeError(loc_, "'conv2d': groups must be >= 1, got " + std::to_string(groups));
    auto cg = Dim::mul(w.dims[1], Dim::constant(groups));
    if (!cg)
      return locate(cg.takeError(), loc_);
    auto ok = ctx_.require(x.dims[1], *cg, "conv2d input channels", loc_);
    if (!ok)
      return ok.takeError();
    if (!*ok)
      return shapeError(loc_, "'conv2d': input channels differ: x has C = " + ctx_.resolve(x.dims[1]).str() +
                                  ", weight expects C/groups * groups = " + w.dims[1].str() + " * " +
                                  std::to_string(groups) + " = " + ctx_.resolve(*cg).str());
    if (auto o = w.dims[0].constantValue(); o && *o % groups != 0)
      return shapeError(loc_, "'conv2d': output channels " + std::to_string(*o) + " are not divisible by groups " +
                                  std::to_string(groups));
    outC = w.dims[0];
    if (in_.size() == 3) {
      if (auto e = sameDType(0, 2))
        return e;
      if (in_[2].rank() != 1)
        return shapeError(loc_, "'conv2d': bias must have rank 1 (O), got " + operandDesc(2));
      if (auto e = requireEq(w.dims[0], in_[2].dims[0], "bias size (output channels)"))
        return e;
    }
  } else {
    auto k = pairAttr("kernel", {}, false, 1);
    if (!k)
      return k.takeError();
    kernel = k.take();
  }
  auto stride = pairAttr("stride", conv ? std::vector<int64_t>{1, 1} : kernel, false, 1);
  if (!stride)
    return stride.takeError();
  auto padding = pairAttr("padding", {0, 0}, true, 0);
  if (!padding)
    return padding.takeError();
  std::vector<int64_t> dil{1, 1};
  if (op_.kind != OpKind::AvgPool2d) {
    auto d = pairAttr("dilation", {1, 1}, false, 1);
    if (!d)
      return d.takeError();
    dil = d.take();
  }
  const auto &p = *padding;
  int64_t lo[2] = {p[0], p[1]}, hi[2] = {p.size() == 4 ? p[2] : p[0], p.size() == 4 ? p[3] : p[1]};
  std::vector<Dim> dims{x.dims[0], outC};
  for (int i = 0; i < 2; ++i) {
    if (kernel[i] > (int64_t(1) << 40))
      return typeError(loc_, opName() + ": kernel too large");
    auto o = windowOut(x.dims[2 + i], lo[i], hi[i], kernel[i], dil[i], (*stride)[i]);
    if (!o)
      return locate(o.takeError(), loc_);
    if (auto c = o->constantValue(); c && *c < 1)
      return shapeError(loc_, opName() + ": the window (kernel " + std::to_string(kernel[i]) + ", dilation " +
                                  std::to_string(dil[i]) + ") is larger than the padded input " +
                                  (i ? "width " : "height ") + x.dims[2 + i].str() + " + " +
                                  std::to_string(lo[i] + hi[i]));
    dims.push_back(o.take());
  }
  results_.push_back(TensorType(x.dtype, std::move(dims), x.policy));
  return Error::success();
}

static int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Error OpInferrer::constant() {
  const TensorType &t = op_.annotations[0];
  const Attribute *value = op_.attrs.find("value");
  const Attribute *data = op_.attrs.find("data");
  if (bool(value) == bool(data))
    return typeError(loc_, "'constant' needs exactly one of 'value' and 'data'");
  // -1 when the shape is symbolic.
  int64_t staticCount = -1;
  if (t.staticShape()) {
    auto n = t.elementCount();
    if (!n)
      return locate(n.takeError(), loc_);
    staticCount = n->constantValue().value_or(-1);
  }
  bool count = staticCount >= 0;
  if (value) {
    size_t n = value->kind() == AttrKind::IntList     ? value->getInts().size()
               : value->kind() == AttrKind::FloatList ? value->getFloats().size()
                                                      : 1;
    bool isList = value->kind() == AttrKind::IntList || value->kind() == AttrKind::FloatList;
    if (isList && n != 1 && (!count || int64_t(n) != staticCount))
      return shapeError(loc_, "'constant': 'value' has " + std::to_string(n) + " elements but " + t.str() + " has " +
                                  (count ? std::to_string(staticCount) : t.shapeStr()) +
                                  (count ? "" : " (a constant with a symbolic shape must be a splat)"));
    if (!isFloat(t.dtype) && (value->kind() == AttrKind::Float || value->kind() == AttrKind::FloatList)) {
      std::vector<double> vals = value->kind() == AttrKind::Float ? std::vector<double>{value->getFloat()}
                                                                  : value->getFloats();
      for (double v : vals)
        if (v != double(int64_t(v)))
          return typeError(loc_, "'constant': value " + formatDouble(v) + " is not representable in " +
                                     dtypeName(t.dtype));
    }
  } else {
    const std::string &s = data->getString();
    size_t bytes = 0;
    if (s.rfind("hex:", 0) == 0) {
      size_t digits = s.size() - 4;
      if (digits % 2 != 0)
        return typeError(loc_, "'constant': hex data has an odd number of digits");
      for (size_t i = 4; i < s.size(); ++i)
        if (hexValue(s[i]) < 0)
          return typeError(loc_, std::string("'constant': invalid hex digit '") + s[i] + "' in data");
      bytes = digits / 2;
    } else if (s.rfind("base64:", 0) == 0) {
      std::string b = s.substr(7);
      if (b.size() % 4 != 0)
        return typeError(loc_, "'constant': base64 data length must be a multiple of 4");
      size_t pad = 0;
      for (size_t i = 0; i < b.size(); ++i) {
        char c = b[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '/';
        if (c == '=' && i + 2 >= b.size()) {
          ++pad;
          continue;
        }
        if (!ok || pad)
          return typeError(loc_, "'constant': invalid base64 data");
      }
      bytes = b.size() / 4 * 3 - pad;
    } else {
      return typeError(loc_, "'constant': data must start with \"hex:\" or \"base64:\"");
    }
    if (!count)
      return shapeError(loc_, "'constant': raw data needs a static shape, got " + t.str());
    size_t want = size_t(staticCount) * (dtypeBits(t.dtype) / 8);
    if (bytes != want)
      return shapeError(loc_, "'constant': data has " + std::to_string(bytes) + " bytes, " + t.str() + " needs " +
                                  std::to_string(want));
  }
  results_.push_back(t);
  return Error::success();
}

Error OpInferrer::attention() {
  for (size_t i = 0; i < 3; ++i) {
    if (auto e = needFloat(i))
      return e;
    if (auto e = needRank(i, 2, "... x S x D"))
      return e;
  }
  if (auto e = sameDType(0, 1))
    return e;
  if (auto e = sameDType(0, 2))
    return e;
  const TensorType &q = in_[0], &k = in_[1], &v = in_[2];
  size_t r = q.rank();
  if (k.rank() != r || v.rank() != r)
    return shapeError(loc_, "'attention': q, k and v need the same rank, got " + std::to_string(r) + ", " +
                                std::to_string(k.rank()) + ", " + std::to_string(v.rank()));
  for (size_t i = 0; i + 2 < r; ++i) {
    if (auto e = requireEq(q.dims[i], k.dims[i], "batch dim " + std::to_string(i) + " of q vs k"))
      return e;
    if (auto e = requireEq(q.dims[i], v.dims[i], "batch dim " + std::to_string(i) + " of q vs v"))
      return e;
  }
  if (auto e = requireEq(q.dims[r - 1], k.dims[r - 1], "head dim of q vs k"))
    return e;
  if (auto e = requireEq(k.dims[r - 2], v.dims[r - 2], "key length of k vs v"))
    return e;
  if (const Attribute *s = op_.attrs.find("scale"); s && !(s->getFloat() == s->getFloat()))
    return typeError(loc_, "'attention': scale must be a number");
  if (in_.size() == 4) {
    if (auto e = sameDType(0, 3))
      return e;
    std::vector<Dim> scores(q.dims.begin(), q.dims.end() - 1);
    scores.push_back(k.dims[r - 2]);
    auto b = broadcastShapes(ctx_, in_[3].dims, scores, "'attention' mask (broadcast to the scores)", loc_);
    if (!b)
      return b.takeError();
    if (b->size() != scores.size())
      return shapeError(loc_, "'attention': mask " + in_[3].str() + " has a higher rank than the scores");
  }
  std::vector<Dim> dims(q.dims.begin(), q.dims.end() - 1);
  dims.push_back(v.dims[r - 1]);
  results_.push_back(TensorType(q.dtype, std::move(dims), q.policy));
  return Error::success();
}

Error OpInferrer::applyAnnotations() {
  for (size_t i = 0; i < results_.size(); ++i) {
    TensorType t = ctx_.resolve(results_[i]);
    t.policy = policyFor(t.dtype, t.policy);
    if (i < op_.annotations.size()) {
      const TensorType &a = op_.annotations[i];
      if (a.dtype != t.dtype)
        return typeError(loc_, opName() + ": result type " + a.str() + " does not match the inferred " + t.str() +
                                   " (dtype " + dtypeName(a.dtype) + " vs " + dtypeName(t.dtype) + ")" +
                                   (op_.kind != OpKind::Cast ? "\nhint: use 'cast' to change the dtype" : ""));
      if (a.rank() != t.rank()) {
        std::string hint;
        if (info_.group == OpGroup::Reduction && !op_.attrs.getBool("keepdim", false) && a.rank() > t.rank())
          hint = "\nhint: did you mean keepdim=true?";
        return shapeError(loc_, opName() + ": result type " + a.str() + " does not match the inferred " + t.str() +
                                    " (rank " + std::to_string(a.rank()) + " vs " + std::to_string(t.rank()) + ")" +
                                    hint);
      }
      for (size_t d = 0; d < t.rank(); ++d) {
        auto ok = ctx_.require(t.dims[d], a.dims[d], std::string(info_.name) + " result annotation", loc_);
        if (!ok)
          return ok.takeError();
        if (!*ok)
          return shapeError(loc_, opName() + ": result type " + a.str() + " does not match the inferred " +
                                      ctx_.resolve(t).str() + " (dim " + std::to_string(d) + ": expected " +
                                      ctx_.resolve(t.dims[d]).str() + ", got " + ctx_.resolve(a.dims[d]).str() + ")");
      }
      t = ctx_.resolve(t);
      if (!a.policy.isDefault())
        t.policy = a.policy; // annotations set the policy of intermediates
    }
    if (auto e = checkType(t, loc_, std::string("result of '") + info_.name + "' " + t.str()))
      return e;
    fn_.value(op_.results[i]).type = t;
  }
  return Error::success();
}

Error OpInferrer::run() {
  Error e;
  switch (info_.group) {
  case OpGroup::Unary:
    e = unary();
    break;
  case OpGroup::Logical:
    e = op_.kind == OpKind::Not ? unary() : binary();
    break;
  case OpGroup::Binary:
  case OpGroup::Compare:
    e = binary();
    break;
  case OpGroup::Select:
    e = select();
    break;
  case OpGroup::Cast:
    results_.push_back(TensorType(*op_.attrs.getDType("dtype"), in_[0].dims,
                                  policyFor(*op_.attrs.getDType("dtype"), in_[0].policy)));
    break;
  case OpGroup::Reduction:
    e = reduction();
    break;
  case OpGroup::Normalization:
    e = normalization();
    break;
  case OpGroup::Contraction:
    e = matmul();
    break;
  case OpGroup::DataMovement:
    switch (op_.kind) {
    case OpKind::Transpose: e = transpose(); break;
    case OpKind::Reshape: case OpKind::BroadcastTo: e = reshapeLike(); break;
    case OpKind::ExpandDims: e = expandDims(); break;
    case OpKind::Squeeze: e = squeeze(); break;
    case OpKind::Concat: e = concat(); break;
    case OpKind::Split: e = split(); break;
    case OpKind::Slice: e = slice(); break;
    case OpKind::Gather: e = gather(); break;
    case OpKind::Pad: e = pad(); break;
    case OpKind::Iota: e = iota(); break;
    default: return internalError(std::string("no shape rule for ") + info_.name);
    }
    break;
  case OpGroup::Convolution:
    e = convOrPool();
    break;
  case OpGroup::Constant:
    e = constant();
    break;
  case OpGroup::Composite:
    e = attention();
    break;
  }
  if (e)
    return e;
  if (results_.size() != op_.results.size())
    return internalError(std::string("shape rule of ") + info_.name + " produced " + std::to_string(results_.size()) +
                         " results for " + std::to_string(op_.results.size()) + " values");
  return applyAnnotations();
}

Error ShapeContext::inferOp(size_t opIndex) {
  if (opIndex >= fn_.ops.size())
    return internalError("inferOp: op index out of range");
  OpInferrer inf(*this, opIndex);
  return inf.run();
}

Error ShapeContext::finish() {
  for (auto &v : fn_.values)
    if (v.definingOp >= 0)
      v.type = resolve(v.type);
  for (auto &c : fn_.constraints) {
    c.lhs = resolve(c.lhs);
    c.rhs = resolve(c.rhs);
  }
  // Drop constraints that unification has since decided.
  std::vector<ShapeConstraint> kept;
  for (auto &c : fn_.constraints)
    if (!(c.lhs == c.rhs))
      kept.push_back(c);
  fn_.constraints = std::move(kept);
  SourceLocation loc = fn_.returnLoc.known() ? fn_.returnLoc : fn_.loc;
  for (size_t i = 0; i < fn_.returns.size() && i < fn_.resultTypes.size(); ++i) {
    const Value &rv = fn_.value(fn_.returns[i]);
    TensorType got = resolve(rv.type);
    TensorType want = resolve(fn_.resultTypes[i]);
    std::string head = "@" + fn_.name + " result " + std::to_string(i) + ": declared " + fn_.resultTypes[i].str() +
                       " but %" + rv.name + " has type " + got.str();
    if (want.dtype != got.dtype)
      return typeError(loc, head + " (dtype " + dtypeName(want.dtype) + " vs " + dtypeName(got.dtype) + ")");
    std::string hint;
    if (rv.definingOp >= 0) {
      const Operation &def = fn_.ops[size_t(rv.definingOp)];
      if (opInfo(def.kind).group == OpGroup::Reduction && !def.attrs.getBool("keepdim", false) &&
          want.rank() > got.rank())
        hint = "\nhint: %" + rv.name + " comes from '" + def.name() + "' at " + def.loc.str() +
               " which drops the reduced axes; did you mean keepdim=true?";
    }
    if (want.rank() != got.rank())
      return shapeError(loc, head + " (rank " + std::to_string(want.rank()) + " vs " + std::to_string(got.rank()) +
                                 ")" + hint);
    for (size_t d = 0; d < want.rank(); ++d) {
      auto ok = require(want.dims[d], got.dims[d], "@" + fn_.name + " result type", loc);
      if (!ok)
        return ok.takeError();
      if (!*ok)
        return shapeError(loc, head + " (dim " + std::to_string(d) + ": expected " + resolve(want.dims[d]).str() +
                                   ", got " + resolve(got.dims[d]).str() + ")");
    }
  }
  // Bindings made while checking results may refine earlier types.
  for (auto &v : fn_.values)
    if (v.definingOp >= 0)
      v.type = resolve(v.type);
  return Error::success();
}

Error inferFunction(Function &fn) {
  fn.constraints.clear();
  fn.unified.clear();
  ShapeContext ctx(fn);
  for (size_t i = 0; i < fn.ops.size(); ++i)
    if (auto e = ctx.inferOp(i))
      return e;
  return ctx.finish();
}

Error verifyAndInfer(Module &module) {
  if (auto e = verifyModule(module))
    return e;
  for (auto &fn : module.functions)
    if (auto e = inferFunction(fn))
      return e;
  return Error::success();
}

} // namespace tessera::shape
