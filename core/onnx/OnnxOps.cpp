// ONNX op converters: one function per op type, each mapping a node to Graph
// IR ops (directly or by decomposition) with the op's attribute defaults and
// opset-dependent forms.
#include "onnx/ImporterImpl.h"

#include "reference/Evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tessera::onnx {

namespace {

using ir::Attribute;

#define TRY(var, expr)                                                                                               \
  auto var##_or = (expr);                                                                                            \
  if (!var##_or)                                                                                                     \
    return var##_or.takeError();                                                                                     \
  auto var = var##_or.take()
#define CHECK(expr)                                                                                                  \
  do {                                                                                                               \
    if (Error e_ = (expr))                                                                                           \
      return e_;                                                                                                     \
  } while (0)

Attribute ints(std::vector<int64_t> v) { return Attribute::ofInts(std::move(v)); }
Attribute i64(int64_t v) { return Attribute::ofInt(v); }

std::vector<int64_t> range(int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  for (int64_t i = lo; i < hi; ++i)
    out.push_back(i);
  return out;
}

Expected<Dim> product(const std::vector<Dim> &dims, size_t lo, size_t hi) {
  Dim p(1);
  for (size_t i = lo; i < hi; ++i) {
    Expected<Dim> m = Dim::mul(p, dims[i]);
    if (!m)
      return m.takeError();
    p = *m;
  }
  return p;
}

// ---- Elementwise.

template <OpKind K> Error unary(Importer &I) {
  TRY(x, I.input(0));
  TRY(y, I.op(K, {x}));
  return I.setOutput(0, y);
}

Error identity(Importer &I) {
  TRY(x, I.input(0));
  return I.setOutput(0, x);
}

// Numpy-broadcasting binary op with an opset < 7 `broadcast`/`axis` form.
Expected<ValueId> legacyBroadcast(Importer &I, ValueId a, ValueId b) {
  if (!I.hasAttr("broadcast"))
    return b;
  TRY(bc, I.attrInt("broadcast", 0));
  TRY(axis, I.attrInt("axis", -1));
  if (!bc || axis < 0)
    return b;
  int64_t trailing = I.rank(a) - axis - I.rank(b);
  if (trailing < 0)
    return I.invalid("broadcast axis " + std::to_string(axis) + " does not fit the operand ranks");
  std::vector<Dim> d = I.dims(b);
  for (int64_t k = 0; k < trailing; ++k)
    d.push_back(Dim(1));
  return I.reshape(b, d);
}

template <OpKind K> Error binary(Importer &I) {
  TRY(a, I.input(0));
  TRY(b0, I.input(1));
  TRY(b, legacyBroadcast(I, a, b0));
  TRY(y, I.op(K, {a, b}));
  return I.setOutput(0, y);
}

Error divide(Importer &I) {
  TRY(a, I.input(0));
  TRY(b0, I.input(1));
  TRY(b, legacyBroadcast(I, a, b0));
  TRY(q, I.op(OpKind::Div, {a, b}));
  if (ir::isInteger(I.dtype(a))) { // ONNX truncates, the IR floors
    TRY(m, I.op(OpKind::Mod, {a, b}));
    TRY(zero, I.scalar(I.dtype(a), 0));
    TRY(one, I.scalar(I.dtype(a), 1));
    TRY(inexact, I.op(OpKind::Ne, {m, zero}));
    TRY(an, I.op(OpKind::Lt, {a, zero}));
    TRY(bn, I.op(OpKind::Lt, {b, zero}));
    TRY(neg, I.op(OpKind::Xor, {an, bn}));
    TRY(fix, I.op(OpKind::And, {inexact, neg}));
    TRY(q1, I.op(OpKind::Add, {q, one}));
    TRY(r, I.op(OpKind::Select, {fix, q1, q}));
    q = r;
  }
  return I.setOutput(0, q);
}

Error mod(Importer &I) {
  TRY(a, I.input(0));
  TRY(b, I.input(1));
  TRY(fmod, I.attrInt("fmod", 0));
  if (!fmod && ir::isFloat(I.dtype(a)))
    return I.invalid("Mod of floats requires fmod=1");
  TRY(m, I.op(OpKind::Mod, {a, b}));
  if (fmod) { // C fmod: the sign of the dividend
    TRY(zero, I.scalar(I.dtype(a), 0));
    TRY(nz, I.op(OpKind::Ne, {m, zero}));
    TRY(mn, I.op(OpKind::Lt, {m, zero}));
    TRY(an, I.op(OpKind::Lt, {a, zero}));
    TRY(diff, I.op(OpKind::Ne, {mn, an}));
    TRY(fix, I.op(OpKind::And, {nz, diff}));
    TRY(mb, I.op(OpKind::Sub, {m, b}));
    TRY(r, I.op(OpKind::Select, {fix, mb, m}));
    m = r;
  }
  return I.setOutput(0, m);
}

Error pow(Importer &I) {
  TRY(a, I.input(0));
  TRY(b, I.input(1));
  DType dt = I.dtype(a);
  if (ir::isFloat(dt)) {
    TRY(bc, I.cast(b, dt));
    TRY(y, I.op(OpKind::Pow, {a, bc}));
    return I.setOutput(0, y);
  }
  TRY(af, I.cast(a, DType::F64));
  TRY(bf, I.cast(b, DType::F64));
  TRY(p, I.op(OpKind::Pow, {af, bf}));
  TRY(y, I.cast(p, dt));
  return I.setOutput(0, y);
}

template <OpKind K> Error variadic(Importer &I) {
  if (I.numInputs() == 0)
    return I.invalid("needs at least one input");
  TRY(acc, I.input(0));
  for (size_t i = 1; i < I.numInputs(); ++i) {
    TRY(x, I.input(i));
    TRY(y, I.op(K, {acc, x}));
    acc = y;
  }
  return I.setOutput(0, acc);
}

Error mean(Importer &I) {
  TRY(acc, I.input(0));
  for (size_t i = 1; i < I.numInputs(); ++i) {
    TRY(x, I.input(i));
    TRY(y, I.op(OpKind::Add, {acc, x}));
    acc = y;
  }
  if (I.numInputs() > 1) {
    TRY(n, I.scalar(I.dtype(acc), double(I.numInputs())));
    TRY(y, I.op(OpKind::Div, {acc, n}));
    acc = y;
  }
  return I.setOutput(0, acc);
}

Error where(Importer &I) {
  TRY(c, I.input(0));
  TRY(a, I.input(1));
  TRY(b, I.input(2));
  TRY(y, I.op(OpKind::Select, {c, a, b}));
  return I.setOutput(0, y);
}

Expected<int64_t> legacyCastTo(Importer &I) {
  const ::onnx::AttributeProto *a = I.attrProto("to");
  if (a && a->type() == ::onnx::AttributeProto::STRING) { // opset < 6: a type name
    for (int32_t t = 1; t <= 16; ++t)
      if (a->s() == onnxTypeName(t))
        return int64_t(t);
    return I.invalid("attribute 'to' = '" + a->s() + "' is not a data type");
  }
  return I.attrInt("to");
}

Error castOp(Importer &I) {
  TRY(x, I.input(0));
  TRY(to, legacyCastTo(I));
  TRY(dt, dtypeFromOnnx(int32_t(to), I.label() + ": attribute 'to'"));
  TRY(y, I.cast(x, dt));
  return I.setOutput(0, y);
}

Error castLike(Importer &I) {
  TRY(x, I.input(0));
  TRY(t, I.input(1));
  TRY(y, I.cast(x, I.dtype(t)));
  return I.setOutput(0, y);
}

Error clip(Importer &I) {
  TRY(x, I.input(0));
  DType dt = I.dtype(x);
  ValueId y = x;
  if (I.opset() < 11) {
    double inf = std::numeric_limits<double>::infinity();
    TRY(lo, I.attrFloat("min", -inf));
    TRY(hi, I.attrFloat("max", inf));
    if (lo != -inf) {
      TRY(l, I.scalar(dt, lo));
      TRY(r, I.op(OpKind::Max, {y, l}));
      y = r;
    }
    if (hi != inf) {
      TRY(h, I.scalar(dt, hi));
      TRY(r, I.op(OpKind::Min, {y, h}));
      y = r;
    }
    return I.setOutput(0, y);
  }
  if (I.hasInput(1)) {
    TRY(l, I.input(1));
    TRY(r, I.op(OpKind::Max, {y, l}));
    y = r;
  }
  if (I.hasInput(2)) {
    TRY(h, I.input(2));
    TRY(r, I.op(OpKind::Min, {y, h}));
    y = r;
  }
  return I.setOutput(0, y);
}

Expected<ValueId> perChannel(Importer &I, ValueId p, int64_t rank);

// ---- Activations (decompositions).

struct Builder {
  Importer &I;
  DType dt;
  Expected<ValueId> c(double v) { return I.scalar(dt, v); }
  Expected<ValueId> u(OpKind k, ValueId a) { return I.op(k, {a}); }
  Expected<ValueId> b(OpKind k, ValueId a, ValueId b) { return I.op(k, {a, b}); }
  Expected<ValueId> bc(OpKind k, ValueId a, double v) {
    TRY(s, c(v));
    return I.op(k, {a, s});
  }
  Expected<ValueId> sel(ValueId cond, ValueId a, ValueId b) { return I.op(OpKind::Select, {cond, a, b}); }
};

// softplus(x) = max(x, 0) + log(1 + exp(-|x|)), stable for large |x|.
Expected<ValueId> softplus(Builder &B, ValueId x) {
  TRY(r, B.bc(OpKind::Max, x, 0));
  TRY(ax, B.u(OpKind::Abs, x));
  TRY(nax, B.u(OpKind::Neg, ax));
  TRY(e, B.u(OpKind::Exp, nax));
  TRY(e1, B.bc(OpKind::Add, e, 1));
  TRY(l, B.u(OpKind::Log, e1));
  return B.b(OpKind::Add, r, l);
}

Error activation(Importer &I) {
  TRY(x, I.input(0));
  Builder B{I, I.dtype(x)};
  const std::string &t = I.node().op_type();
  ValueId y;
  if (t == "LeakyRelu" || t == "PRelu") {
    ValueId slope;
    if (t == "LeakyRelu") {
      TRY(alpha, I.attrFloat("alpha", 0.01));
      TRY(s, B.c(alpha));
      slope = s;
    } else {
      TRY(s, I.input(1));
      slope = s;
      // Opset < 7: a [C] slope is per channel (axis 1).
      if (I.opset() < 7 && I.rank(s) == 1 && I.rank(x) > 2 && I.dims(s)[0] == I.dims(x)[1] &&
          I.dims(s)[0].constantValue() != 1) {
        TRY(pc, perChannel(I, s, I.rank(x)));
        slope = pc;
      }
    }
    TRY(neg, B.bc(OpKind::Lt, x, 0));
    TRY(sx, B.b(OpKind::Mul, x, slope));
    TRY(r, B.sel(neg, sx, x));
    y = r;
  } else if (t == "Elu" || t == "Celu") {
    TRY(alpha, I.attrFloat("alpha", 1.0));
    // Elu: x > 0 ? x : alpha*(exp(x)-1); Celu: max(0,x) + min(0, alpha*(exp(x/alpha)-1)).
    ValueId xs = x;
    if (t == "Celu") {
      TRY(d, B.bc(OpKind::Div, x, alpha));
      xs = d;
    }
    TRY(e, B.u(OpKind::Exp, xs));
    TRY(em1, B.bc(OpKind::Sub, e, 1));
    TRY(neg, B.bc(OpKind::Mul, em1, alpha));
    if (t == "Elu") {
      TRY(pos, B.bc(OpKind::Gt, x, 0));
      TRY(r, B.sel(pos, x, neg));
      y = r;
    } else {
      TRY(p, B.bc(OpKind::Max, x, 0));
      TRY(n, B.bc(OpKind::Min, neg, 0));
      TRY(r, B.b(OpKind::Add, p, n));
      y = r;
    }
  } else if (t == "Selu") {
    TRY(alpha, I.attrFloat("alpha", 1.67326319217681884765625));
    TRY(gamma, I.attrFloat("gamma", 1.05070102214813232421875));
    TRY(e, B.u(OpKind::Exp, x));
    TRY(em1, B.bc(OpKind::Sub, e, 1));
    TRY(neg, B.bc(OpKind::Mul, em1, alpha));
    TRY(pos, B.bc(OpKind::Gt, x, 0));
    TRY(s, B.sel(pos, x, neg));
    TRY(r, B.bc(OpKind::Mul, s, gamma));
    y = r;
  } else if (t == "HardSigmoid" || t == "HardSwish") {
    double alpha = 1.0 / 6, beta = 0.5;
    if (t == "HardSigmoid") {
      TRY(a, I.attrFloat("alpha", 0.2));
      TRY(b, I.attrFloat("beta", 0.5));
      alpha = a;
      beta = b;
    }
    TRY(ax, B.bc(OpKind::Mul, x, alpha));
    TRY(axb, B.bc(OpKind::Add, ax, beta));
    TRY(lo, B.bc(OpKind::Max, axb, 0));
    TRY(hs, B.bc(OpKind::Min, lo, 1));
    if (t == "HardSwish") {
      TRY(r, B.b(OpKind::Mul, x, hs));
      y = r;
    } else {
      y = hs;
    }
  } else if (t == "Softplus") {
    TRY(r, softplus(B, x));
    y = r;
  } else if (t == "Mish") {
    TRY(sp, softplus(B, x));
    TRY(th, B.u(OpKind::Tanh, sp));
    TRY(r, B.b(OpKind::Mul, x, th));
    y = r;
  } else if (t == "Softsign") {
    TRY(ax, B.u(OpKind::Abs, x));
    TRY(d, B.bc(OpKind::Add, ax, 1));
    TRY(r, B.b(OpKind::Div, x, d));
    y = r;
  } else if (t == "ThresholdedRelu") {
    TRY(alpha, I.attrFloat("alpha", 1.0));
    TRY(gt, B.bc(OpKind::Gt, x, alpha));
    TRY(z, B.c(0));
    TRY(r, B.sel(gt, x, z));
    y = r;
  } else if (t == "Shrink") {
    TRY(lambd, I.attrFloat("lambd", 0.5));
    TRY(bias, I.attrFloat("bias", 0.0));
    TRY(lt, B.bc(OpKind::Lt, x, -lambd));
    TRY(gt, B.bc(OpKind::Gt, x, lambd));
    TRY(xp, B.bc(OpKind::Add, x, bias));
    TRY(xm, B.bc(OpKind::Sub, x, bias));
    TRY(z, B.c(0));
    TRY(r0, B.sel(gt, xm, z));
    TRY(r, B.sel(lt, xp, r0));
    y = r;
  } else if (t == "Gelu") {
    TRY(approx, I.attrString("approximate", "none"));
    if (approx != "none" && approx != "tanh")
      return I.unsupported("attribute 'approximate' = '" + approx + "'");
    TRY(r, I.op(OpKind::Gelu, {x}, attrs({{"approximate", Attribute::ofString(approx)}})));
    y = r;
  } else if (t == "Tan") {
    TRY(s, B.u(OpKind::Sin, x));
    TRY(c, B.u(OpKind::Cos, x));
    TRY(r, B.b(OpKind::Div, s, c));
    y = r;
  } else if (t == "Sinh" || t == "Cosh") {
    TRY(e, B.u(OpKind::Exp, x));
    TRY(nx, B.u(OpKind::Neg, x));
    TRY(en, B.u(OpKind::Exp, nx));
    TRY(s, B.b(t == "Sinh" ? OpKind::Sub : OpKind::Add, e, en));
    TRY(r, B.bc(OpKind::Mul, s, 0.5));
    y = r;
  } else if (t == "Asinh" || t == "Acosh") { // log(x + sqrt(x*x +- 1))
    TRY(x2, B.b(OpKind::Mul, x, x));
    TRY(s, B.bc(t == "Asinh" ? OpKind::Add : OpKind::Sub, x2, 1));
    TRY(sq, B.u(OpKind::Sqrt, s));
    TRY(a, B.b(OpKind::Add, x, sq));
    TRY(r, B.u(OpKind::Log, a));
    y = r;
  } else if (t == "Atanh") { // 0.5*log((1+x)/(1-x))
    TRY(one, B.c(1));
    TRY(p, B.b(OpKind::Add, one, x));
    TRY(m, B.b(OpKind::Sub, one, x));
    TRY(q, B.b(OpKind::Div, p, m));
    TRY(l, B.u(OpKind::Log, q));
    TRY(r, B.bc(OpKind::Mul, l, 0.5));
    y = r;
  } else if (t == "Round") { // half to even
    TRY(f, B.u(OpKind::Floor, x));
    TRY(d, B.b(OpKind::Sub, x, f));
    TRY(f1, B.bc(OpKind::Add, f, 1));
    TRY(fm, B.bc(OpKind::Mod, f, 2));
    TRY(fe, B.b(OpKind::Add, f, fm));
    TRY(lt, B.bc(OpKind::Lt, d, 0.5));
    TRY(gt, B.bc(OpKind::Gt, d, 0.5));
    TRY(r0, B.sel(lt, f, fe));
    TRY(r, B.sel(gt, f1, r0));
    y = r;
  } else if (t == "IsNaN") {
    TRY(r, B.b(OpKind::Ne, x, x));
    y = r;
  } else if (t == "IsInf") {
    TRY(pos, I.attrInt("detect_positive", 1));
    TRY(neg, I.attrInt("detect_negative", 1));
    double inf = std::numeric_limits<double>::infinity();
    TRY(ip, B.bc(OpKind::Eq, x, inf));
    TRY(in, B.bc(OpKind::Eq, x, -inf));
    TRY(f, I.op(OpKind::Ne, {ip, ip})); // all false
    TRY(either, I.op(OpKind::Or, {ip, in}));
    y = pos && neg ? either : pos ? ip : neg ? in : f;
  } else {
    return I.unsupported("op '" + t + "' has no converter");
  }
  return I.setOutput(0, y);
}

// ---- Reductions.

Expected<std::vector<int64_t>> reduceAxes(Importer &I, ValueId x, bool &noop) {
  std::vector<int64_t> axes;
  bool fromInput = I.node().op_type() == "ReduceSum" ? I.opset() >= 13 : I.opset() >= 18;
  if (fromInput) {
    TRY(noopAttr, I.attrInt("noop_with_empty_axes", 0));
    if (I.hasInput(1)) {
      TRY(a, I.constInputInts(1, "axes"));
      axes = a;
    }
    if (axes.empty() && noopAttr) {
      noop = true;
      return axes;
    }
  } else {
    TRY(a, I.attrInts("axes", std::vector<int64_t>{}));
    axes = a;
  }
  int64_t r = I.rank(x);
  if (axes.empty())
    return range(0, r);
  for (int64_t &a : axes) {
    TRY(n, I.normAxis(a, r, "axis"));
    a = n;
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return axes;
}

Error reduce(Importer &I) {
  TRY(x, I.input(0));
  bool noop = false;
  TRY(axes, reduceAxes(I, x, noop));
  TRY(keep, I.attrInt("keepdims", 1));
  const std::string &t = I.node().op_type();
  if (noop)
    return I.setOutput(0, x);
  ir::AttrList as = attrs({{"axes", ints(axes)}, {"keepdim", Attribute::ofBool(keep != 0)}});
  Builder B{I, I.dtype(x)};
  auto red = [&](OpKind k, ValueId v) { return I.op(k, {v}, as); };
  ValueId y;
  if (t == "ReduceSum") {
    TRY(r, red(OpKind::ReduceSum, x));
    y = r;
  } else if (t == "ReduceMean") {
    if (!ir::isFloat(I.dtype(x))) {
      TRY(xf, I.cast(x, DType::F64));
      TRY(m, red(OpKind::ReduceMean, xf));
      TRY(r, I.cast(m, I.dtype(x)));
      y = r;
    } else {
      TRY(r, red(OpKind::ReduceMean, x));
      y = r;
    }
  } else if (t == "ReduceMax") {
    TRY(r, red(OpKind::ReduceMax, x));
    y = r;
  } else if (t == "ReduceMin") {
    TRY(r, red(OpKind::ReduceMin, x));
    y = r;
  } else if (t == "ReduceProd") {
    TRY(r, red(OpKind::ReduceProd, x));
    y = r;
  } else if (t == "ReduceL1") {
    TRY(a, B.u(OpKind::Abs, x));
    TRY(r, red(OpKind::ReduceSum, a));
    y = r;
  } else if (t == "ReduceL2" || t == "ReduceSumSquare") {
    TRY(sq, B.b(OpKind::Mul, x, x));
    TRY(s, red(OpKind::ReduceSum, sq));
    if (t == "ReduceL2") {
      if (!ir::isFloat(I.dtype(x))) {
        TRY(sf, I.cast(s, DType::F64));
        TRY(r, B.u(OpKind::Sqrt, sf));
        TRY(ri, I.cast(r, I.dtype(x)));
        s = ri;
      } else {
        TRY(r, B.u(OpKind::Sqrt, s));
        s = r;
      }
    }
    y = s;
  } else if (t == "ReduceLogSum") {
    TRY(s, red(OpKind::ReduceSum, x));
    TRY(r, B.u(OpKind::Log, s));
    y = r;
  } else if (t == "ReduceLogSumExp") { // m + log(sum(exp(x - m)))
    ir::AttrList keepAs = attrs({{"axes", ints(axes)}, {"keepdim", Attribute::ofBool(true)}});
    TRY(m, I.op(OpKind::ReduceMax, {x}, keepAs));
    TRY(d, B.b(OpKind::Sub, x, m));
    TRY(e, B.u(OpKind::Exp, d));
    TRY(s, red(OpKind::ReduceSum, e));
    TRY(l, B.u(OpKind::Log, s));
    ValueId mk = m;
    if (!keep) {
      TRY(sq, I.op(OpKind::Squeeze, {m}, attrs({{"axes", ints(axes)}})));
      mk = sq;
    }
    TRY(r, B.b(OpKind::Add, l, mk));
    y = r;
  } else {
    return I.unsupported("op '" + t + "' has no converter");
  }
  return I.setOutput(0, y);
}

Expected<ValueId> reverseAxis(Importer &I, ValueId x, int64_t axis) {
  std::optional<int64_t> n = I.dims(x)[size_t(axis)].constantValue();
  if (!n)
    return I.unsupported("reversing a symbolic axis");
  std::vector<int64_t> idx;
  for (int64_t i = *n - 1; i >= 0; --i)
    idx.push_back(i);
  TRY(ic, I.constInts(idx));
  return I.op(OpKind::Gather, {x, ic}, attrs({{"axis", i64(axis)}}));
}

Error argReduce(Importer &I) {
  TRY(x, I.input(0));
  TRY(axis0, I.attrInt("axis", 0));
  TRY(keep, I.attrInt("keepdims", 1));
  TRY(last, I.attrInt("select_last_index", 0));
  TRY(axis, I.normAxis(axis0, I.rank(x), "axis"));
  OpKind k = I.node().op_type() == "ArgMax" ? OpKind::Argmax : OpKind::Argmin;
  ir::AttrList as = attrs({{"axis", i64(axis)}, {"keepdim", Attribute::ofBool(keep != 0)}});
  if (!last) {
    TRY(y, I.op(k, {x}, as));
    return I.setOutput(0, y);
  }
  // Last extremum: n - 1 - (first extremum of the reversed axis).
  TRY(rx, reverseAxis(I, x, axis));
  TRY(a, I.op(k, {rx}, as));
  std::optional<int64_t> n = I.dims(x)[size_t(axis)].constantValue();
  TRY(nm1, I.scalar(DType::I64, double(*n - 1)));
  TRY(y, I.op(OpKind::Sub, {nm1, a}));
  return I.setOutput(0, y);
}

// ---- Normalizations.

// Softmax-like ops with the opset < 13 "coerce to 2-D at axis" semantics.
Error softmaxLike(Importer &I) {
  TRY(x, I.input(0));
  const std::string &t = I.node().op_type();
  int64_t r = I.rank(x);
  bool legacy = I.opset() < 13;
  TRY(axis0, I.attrInt("axis", legacy ? 1 : -1));
  TRY(axis, I.normAxis(axis0, std::max<int64_t>(r, 1), "axis"));
  ValueId v = x;
  int64_t opAxis = axis;
  std::vector<Dim> orig = I.dims(x);
  if (legacy && axis != r - 1) {
    TRY(n, product(orig, 0, size_t(axis)));
    TRY(m, product(orig, size_t(axis), size_t(r)));
    TRY(flat, I.reshape(x, {n, m}));
    v = flat;
    opAxis = 1;
  }
  ValueId y;
  if (t == "Hardmax") {
    TRY(am, I.op(OpKind::Argmax, {v}, attrs({{"axis", i64(opAxis)}, {"keepdim", Attribute::ofBool(true)}})));
    TRY(io, I.op(OpKind::Iota, {}, attrs({{"axis", i64(opAxis)}}), {TensorType(DType::I64, I.dims(v))}));
    TRY(eq, I.op(OpKind::Eq, {io, am}));
    TRY(c, I.cast(eq, I.dtype(x)));
    y = c;
  } else {
    TRY(s, I.op(t == "Softmax" ? OpKind::Softmax : OpKind::LogSoftmax, {v}, attrs({{"axis", i64(opAxis)}})));
    y = s;
  }
  TRY(out, I.reshape(y, orig));
  return I.setOutput(0, out);
}

// Reshapes a per-channel [C] tensor to [C, 1, ..., 1] for an NC... input.
Expected<ValueId> perChannel(Importer &I, ValueId p, int64_t rank) {
  std::vector<Dim> d = I.dims(p);
  for (int64_t i = 2; i < rank; ++i)
    d.push_back(Dim(1));
  return I.reshape(p, d);
}

Error batchNorm(Importer &I) {
  CHECK(I.requireOutputs(1));
  TRY(x, I.input(0));
  TRY(eps, I.attrFloat("epsilon", 1e-5));
  I.ignoreAttr("momentum");
  if (I.opset() < 9) {
    TRY(spatial, I.attrInt("spatial", 1));
    if (!spatial)
      return I.unsupported("attribute 'spatial' = 0");
  }
  if (I.opset() < 7)
    I.ignoreAttr("is_test");
  TRY(training, I.attrInt("training_mode", 0));
  if (training)
    return I.unsupported("attribute 'training_mode' = 1 (only inference is supported)");
  int64_t r = I.rank(x);
  std::vector<ValueId> p;
  for (size_t i = 1; i <= 4; ++i) {
    TRY(v, I.input(i));
    TRY(pc, perChannel(I, v, r));
    p.push_back(pc);
  }
  Builder B{I, I.dtype(x)};
  TRY(ve, B.bc(OpKind::Add, p[3], eps));
  TRY(sd, B.u(OpKind::Sqrt, ve));
  TRY(xm, B.b(OpKind::Sub, x, p[2]));
  TRY(xn, B.b(OpKind::Div, xm, sd));
  TRY(xs, B.b(OpKind::Mul, xn, p[0]));
  TRY(y, B.b(OpKind::Add, xs, p[1]));
  return I.setOutput(0, y);
}

Error instanceNorm(Importer &I) {
  TRY(x, I.input(0));
  TRY(scale, I.input(1));
  TRY(bias, I.input(2));
  TRY(eps, I.attrFloat("epsilon", 1e-5));
  int64_t r = I.rank(x);
  Builder B{I, I.dtype(x)};
  ir::AttrList as = attrs({{"axes", ints(range(2, r))}, {"keepdim", Attribute::ofBool(true)}});
  TRY(m, I.op(OpKind::ReduceMean, {x}, as));
  TRY(d, B.b(OpKind::Sub, x, m));
  TRY(d2, B.b(OpKind::Mul, d, d));
  TRY(var, I.op(OpKind::ReduceMean, {d2}, as));
  TRY(ve, B.bc(OpKind::Add, var, eps));
  TRY(sd, B.u(OpKind::Sqrt, ve));
  TRY(n, B.b(OpKind::Div, d, sd));
  TRY(s, perChannel(I, scale, r));
  TRY(b, perChannel(I, bias, r));
  TRY(ns, B.b(OpKind::Mul, n, s));
  TRY(y, B.b(OpKind::Add, ns, b));
  return I.setOutput(0, y);
}

Error layerNorm(Importer &I) {
  TRY(x, I.input(0));
  TRY(scale, I.input(1));
  TRY(axis0, I.attrInt("axis", -1));
  TRY(eps, I.attrFloat("epsilon", 1e-5));
  TRY(stash, I.attrInt("stash_type", 1));
  (void)stash; // the reference computes in float64 whatever the stash type
  int64_t r = I.rank(x);
  TRY(axis, I.normAxis(axis0, r, "axis"));
  std::vector<Dim> trailing(I.dims(x).begin() + axis, I.dims(x).end());
  bool plain = !I.hasOutput(1) && !I.hasOutput(2) && I.dims(scale) == trailing &&
               (!I.hasInput(2) || I.dims(*I.input(2)) == trailing);
  if (plain) {
    std::vector<ValueId> ops{x, scale};
    if (I.hasInput(2))
      ops.push_back(*I.input(2));
    TRY(y, I.op(OpKind::LayerNorm, ops, attrs({{"axis", i64(axis)}, {"epsilon", Attribute::ofFloat(eps)}})));
    return I.setOutput(0, y);
  }
  Builder B{I, I.dtype(x)};
  ir::AttrList as = attrs({{"axes", ints(range(axis, r))}, {"keepdim", Attribute::ofBool(true)}});
  TRY(m, I.op(OpKind::ReduceMean, {x}, as));
  TRY(d, B.b(OpKind::Sub, x, m));
  TRY(d2, B.b(OpKind::Mul, d, d));
  TRY(var, I.op(OpKind::ReduceMean, {d2}, as));
  TRY(ve, B.bc(OpKind::Add, var, eps));
  TRY(sd, B.u(OpKind::Sqrt, ve));
  TRY(inv, B.u(OpKind::Reciprocal, sd));
  TRY(n, B.b(OpKind::Mul, d, inv));
  TRY(y, B.b(OpKind::Mul, n, scale));
  if (I.hasInput(2)) {
    TRY(bias, I.input(2));
    TRY(yb, B.b(OpKind::Add, y, bias));
    y = yb;
  }
  CHECK(I.setOutput(0, y));
  CHECK(I.setOutput(1, m));
  return I.setOutput(2, inv);
}

Error lpNorm(Importer &I) {
  TRY(x, I.input(0));
  TRY(axis0, I.attrInt("axis", -1));
  TRY(p, I.attrInt("p", 2));
  TRY(axis, I.normAxis(axis0, I.rank(x), "axis"));
  if (p != 1 && p != 2)
    return I.unsupported("attribute 'p' = " + std::to_string(p) + " (1 or 2 are supported)");
  Builder B{I, I.dtype(x)};
  ir::AttrList as = attrs({{"axes", ints({axis})}, {"keepdim", Attribute::ofBool(true)}});
  ValueId norm;
  if (p == 1) {
    TRY(a, B.u(OpKind::Abs, x));
    TRY(s, I.op(OpKind::ReduceSum, {a}, as));
    norm = s;
  } else {
    TRY(sq, B.b(OpKind::Mul, x, x));
    TRY(s, I.op(OpKind::ReduceSum, {sq}, as));
    TRY(r, B.u(OpKind::Sqrt, s));
    norm = r;
  }
  TRY(y, B.b(OpKind::Div, x, norm));
  return I.setOutput(0, y);
}

Error mvn(Importer &I) {
  TRY(x, I.input(0));
  TRY(axes0, I.attrInts("axes", std::vector<int64_t>{0, 2, 3}));
  std::vector<int64_t> axes;
  for (int64_t a : axes0) {
    TRY(n, I.normAxis(a, I.rank(x), "axis"));
    axes.push_back(n);
  }
  Builder B{I, I.dtype(x)};
  ir::AttrList as = attrs({{"axes", ints(axes)}, {"keepdim", Attribute::ofBool(true)}});
  TRY(m, I.op(OpKind::ReduceMean, {x}, as));
  TRY(x2, B.b(OpKind::Mul, x, x));
  TRY(ex2, I.op(OpKind::ReduceMean, {x2}, as));
  TRY(m2, B.b(OpKind::Mul, m, m));
  TRY(var, B.b(OpKind::Sub, ex2, m2));
  TRY(sd, B.u(OpKind::Sqrt, var));
  TRY(sde, B.bc(OpKind::Add, sd, 1e-9));
  TRY(d, B.b(OpKind::Sub, x, m));
  TRY(y, B.b(OpKind::Div, d, sde));
  return I.setOutput(0, y);
}

Error lrn(Importer &I) {
  TRY(x, I.input(0));
  TRY(size, I.attrInt("size"));
  TRY(alpha, I.attrFloat("alpha", 1e-4));
  TRY(beta, I.attrFloat("beta", 0.75));
  TRY(bias, I.attrFloat("bias", 1.0));
  TRY(shape, I.staticShape(x, "LRN input"));
  int64_t r = I.rank(x), c = shape[1];
  Builder B{I, I.dtype(x)};
  TRY(sq, B.b(OpKind::Mul, x, x));
  std::vector<int64_t> pads(size_t(2 * r), 0);
  pads[2] = (size - 1) / 2;
  pads[3] = size - 1 - (size - 1) / 2;
  TRY(padded, I.op(OpKind::Pad, {sq}, attrs({{"pads", ints(pads)}})));
  ValueId sum = ir::kNoValue;
  for (int64_t k = 0; k < size; ++k) {
    TRY(s, I.op(OpKind::Slice, {padded},
                attrs({{"starts", ints({k})}, {"ends", ints({k + c})}, {"axes", ints({1})}})));
    if (sum == ir::kNoValue) {
      sum = s;
    } else {
      TRY(a, B.b(OpKind::Add, sum, s));
      sum = a;
    }
  }
  TRY(sc, B.bc(OpKind::Mul, sum, alpha / double(size)));
  TRY(sb, B.bc(OpKind::Add, sc, bias));
  TRY(pw, B.bc(OpKind::Pow, sb, beta));
  TRY(y, B.b(OpKind::Div, x, pw));
  return I.setOutput(0, y);
}

// ---- Contraction.

Error matmul(Importer &I) {
  TRY(a, I.input(0));
  TRY(b, I.input(1));
  TRY(y, I.op(OpKind::Matmul, {a, b}));
  return I.setOutput(0, y);
}

Error gemm(Importer &I) {
  TRY(a, I.input(0));
  TRY(b, I.input(1));
  TRY(alpha, I.attrFloat("alpha", 1.0));
  TRY(beta, I.attrFloat("beta", 1.0));
  TRY(ta, I.attrInt("transA", 0));
  TRY(tb, I.attrInt("transB", 0));
  I.ignoreAttr("broadcast");
  if (I.rank(a) != 2 || I.rank(b) != 2)
    return I.invalid("Gemm operands must be 2-D");
  ir::AttrList tr = attrs({{"perm", ints({1, 0})}});
  if (ta) {
    TRY(t, I.op(OpKind::Transpose, {a}, tr));
    a = t;
  }
  if (tb) {
    TRY(t, I.op(OpKind::Transpose, {b}, tr));
    b = t;
  }
  Builder B{I, I.dtype(a)};
  TRY(y0, I.op(OpKind::Matmul, {a, b}));
  ValueId y = y0;
  if (alpha != 1.0) {
    TRY(s, B.bc(OpKind::Mul, y, alpha));
    y = s;
  }
  if (I.hasInput(2)) {
    TRY(c, I.input(2));
    if (beta != 1.0) {
      TRY(s, B.bc(OpKind::Mul, c, beta));
      c = s;
    }
    TRY(s, B.b(OpKind::Add, y, c));
    y = s;
  }
  return I.setOutput(0, y);
}

// ---- Convolution and pooling.

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pads; // pads: begins then ends
};

// Spatial attributes shared by Conv and the pools; resolves auto_pad.
Expected<Window> window(Importer &I, const std::vector<Dim> &inDims, std::vector<int64_t> kernel, bool ceilMode) {
  size_t n = kernel.size();
  Window w;
  w.kernel = kernel;
  TRY(ks, I.attrInts("kernel_shape", kernel));
  if (ks != kernel)
    return I.invalid("attribute 'kernel_shape' does not match the weights");
  TRY(st, I.attrInts("strides", std::vector<int64_t>(n, 1)));
  TRY(di, I.attrInts("dilations", std::vector<int64_t>(n, 1)));
  TRY(pa, I.attrInts("pads", std::vector<int64_t>(2 * n, 0)));
  TRY(autoPad, I.attrString("auto_pad", "NOTSET"));
  if (st.size() != n || di.size() != n || pa.size() != 2 * n)
    return I.invalid("strides/dilations/pads do not match the " + std::to_string(n) + " spatial dims");
  w.strides = st;
  w.dilations = di;
  w.pads = pa;
  if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (size_t i = 0; i < n; ++i) {
      std::optional<int64_t> in = inDims[2 + i].constantValue();
      if (!in)
        return I.unsupported("auto_pad " + autoPad + " on a symbolic spatial dim");
      int64_t out = (*in + st[i] - 1) / st[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * st[i] + (kernel[i] - 1) * di[i] + 1 - *in);
      int64_t small = total / 2, big = total - small;
      w.pads[i] = autoPad == "SAME_UPPER" ? small : big;
      w.pads[i + n] = autoPad == "SAME_UPPER" ? big : small;
    }
  } else if (autoPad == "VALID") {
    std::fill(w.pads.begin(), w.pads.end(), 0);
  } else if (autoPad != "NOTSET") {
    return I.invalid("attribute 'auto_pad' = '" + autoPad + "'");
  }
  if (ceilMode) { // extra high padding so that floor division gives the ceiling
    for (size_t i = 0; i < n; ++i) {
      std::optional<int64_t> in = inDims[2 + i].constantValue();
      if (!in)
        return I.unsupported("ceil_mode on a symbolic spatial dim");
      int64_t span = *in + w.pads[i] + w.pads[i + n] - ((kernel[i] - 1) * di[i] + 1);
      int64_t out = (span + st[i] - 1) / st[i] + 1;
      if ((out - 1) * st[i] >= *in + w.pads[i]) // the last window must start inside
        --out;
      int64_t need = (out - 1) * st[i] + (kernel[i] - 1) * di[i] + 1 - (*in + w.pads[i] + w.pads[i + n]);
      if (need > 0)
        w.pads[i + n] += need;
    }
  }
  return w;
}

// Conv/pool on 1-D spatial data: run the 2-D op on [N, C, 1, L].
Expected<ValueId> to2d(Importer &I, ValueId x) {
  return I.op(OpKind::ExpandDims, {x}, attrs({{"axes", ints({2})}}));
}
Expected<ValueId> from2d(Importer &I, ValueId y) {
  return I.op(OpKind::Squeeze, {y}, attrs({{"axes", ints({2})}}));
}
Window lift2d(const Window &w) {
  return Window{{1, w.kernel[0]}, {1, w.strides[0]}, {1, w.dilations[0]}, {0, w.pads[0], 0, w.pads[1]}};
}

Error conv(Importer &I) {
  TRY(x, I.input(0));
  TRY(wt, I.input(1));
  int64_t r = I.rank(x);
  if (r != 3 && r != 4)
    return I.unsupported(std::to_string(r - 2) + "-D convolution (1-D and 2-D are supported)");
  TRY(wshape, I.staticShape(wt, "Conv weights"));
  std::vector<int64_t> kernel(wshape.begin() + 2, wshape.end());
  TRY(group, I.attrInt("group", 1));
  TRY(w, window(I, I.dims(x), kernel, false));
  std::vector<ValueId> ops;
  if (r == 3) {
    TRY(x2, to2d(I, x));
    TRY(w2, to2d(I, wt));
    x = x2;
    wt = w2;
    w = lift2d(w);
  }
  ops = {x, wt};
  if (I.hasInput(2))
    ops.push_back(*I.input(2));
  TRY(y, I.op(OpKind::Conv2d, ops,
              attrs({{"stride", ints(w.strides)},
                     {"padding", ints(w.pads)},
                     {"dilation", ints(w.dilations)},
                     {"groups", i64(group)}})));
  if (r == 3) {
    TRY(y1, from2d(I, y));
    return I.setOutput(0, y1);
  }
  return I.setOutput(0, y);
}

// Strided ConvTranspose by phases (2-D; 1-D is lifted first). Output row
// oy = q*s + r (full, uncropped coordinates) receives exactly the taps ky with
// ky*d = r (mod s), from input row q - m with m = (ky*d - r)/s <= M =
// (k-1)*d/s. So each of the s0*s1 phases (r0, r1) is a stride-1 correlation
// of the input, padded by M in front, with a sub-kernel of M+1 taps (tap t
// holds ky with m = M - t, or zero). All phases run as one conv2d whose
// output channels are ordered [group, r0, r1, O/group]; a depth-to-space
// interleave and a crop give the result. Against convolving the zero-dilated
// input this does s0*s1 times fewer multiply-adds and no dilation kernel.
// The weight rearrangement (pad, gather, transpose) folds when the weights
// are constants. Needs non-negative pads.
Expected<ValueId> convTransposePhases(Importer &I, ValueId x, ValueId wt, const std::vector<int64_t> &xs,
                                      const std::vector<int64_t> &ws, const std::vector<int64_t> &kernel,
                                      const std::vector<int64_t> &st, const std::vector<int64_t> &di,
                                      const std::vector<int64_t> &pads, const std::vector<int64_t> &outPad,
                                      int64_t group) {
  const int64_t N = xs[0], C = xs[1], Og = ws[1], O = Og * group, Cg = C / group;
  int64_t M[2], T[2], Q[2], endPad[2], out[2];
  std::vector<int64_t> idx[2];
  for (size_t i = 0; i < 2; ++i) {
    const int64_t in = xs[2 + i], s = st[i], d = di[i], k = kernel[i];
    M[i] = (k - 1) * d / s;
    T[i] = M[i] + 1;
    out[i] = s * (in - 1) + outPad[i] + d * (k - 1) + 1 - pads[i] - pads[i + 2];
    if (out[i] <= 0)
      return I.invalid("ConvTranspose output would have size " + std::to_string(out[i]));
    // Rows q of each phase needed to cover full rows [pads, pads + out).
    int64_t need = (pads[i] + out[i] + s - 1) / s;
    endPad[i] = std::max<int64_t>(need - in, 0);
    Q[i] = in + endPad[i]; // conv output length: in + M + endPad - (M + 1) + 1
    for (int64_t r = 0; r < s; ++r)
      for (int64_t t = 0; t < T[i]; ++t) {
        int64_t num = r + (M[i] - t) * s; // = ky * d
        idx[i].push_back(num % d == 0 && num / d < k ? num / d : k); // k: the appended zero tap
      }
  }
  const int64_t s0 = st[0], s1 = st[1];
  // Weights [C, O/g, kh, kw] + a zero tap per spatial axis -> phase taps
  // [C, O/g, s0*T0, s1*T1] -> [g, s0, s1, O/g, C/g, T0, T1].
  TRY(wp, I.op(OpKind::Pad, {wt}, attrs({{"pads", ints({0, 0, 0, 0, 0, 1, 0, 1})}})));
  TRY(i0, I.constInts(idx[0]));
  TRY(g0, I.op(OpKind::Gather, {wp, i0}, attrs({{"axis", i64(2)}})));
  TRY(i1, I.constInts(idx[1]));
  TRY(g1, I.op(OpKind::Gather, {g0, i1}, attrs({{"axis", i64(3)}})));
  TRY(w7, I.reshape(g1, {group, Cg, Og, s0, T[0], s1, T[1]}));
  TRY(t7, I.op(OpKind::Transpose, {w7}, attrs({{"perm", ints({0, 3, 5, 2, 1, 4, 6})}})));
  TRY(w4, I.reshape(t7, {group * s0 * s1 * Og, Cg, T[0], T[1]}));
  TRY(y, I.op(OpKind::Conv2d, {x, w4},
              attrs({{"padding", ints({M[0], M[1], endPad[0], endPad[1]})}, {"groups", i64(group)}})));
  // [N, g*s0*s1*Og, Q0, Q1] -> [N, g, Og, Q0, s0, Q1, s1] -> [N, O, Q0*s0, Q1*s1] -> crop.
  TRY(y7, I.reshape(y, {N, group, s0, s1, Og, Q[0], Q[1]}));
  TRY(t, I.op(OpKind::Transpose, {y7}, attrs({{"perm", ints({0, 1, 4, 5, 2, 6, 3})}})));
  TRY(v0, I.reshape(t, {N, O, Q[0] * s0, Q[1] * s1}));
  ValueId v = v0;
  if (pads[0] > 0 || pads[1] > 0 || Q[0] * s0 != out[0] || Q[1] * s1 != out[1]) {
    TRY(c, I.op(OpKind::Slice, {v},
                attrs({{"starts", ints({pads[0], pads[1]})},
                       {"ends", ints({pads[0] + out[0], pads[1] + out[1]})},
                       {"axes", ints({2, 3})}})));
    v = c;
  }
  if (I.hasInput(2)) {
    TRY(b, I.input(2));
    TRY(b4, I.reshape(b, {1, O, 1, 1}));
    TRY(yb, I.op(OpKind::Add, {v, b4}));
    v = yb;
  }
  return v;
}

// ConvTranspose: strided ones by phases (above); otherwise the convolution
// of the input with the flipped, transposed kernel, padded by
// dilation*(k-1) - pad.
Error convTranspose(Importer &I) {
  TRY(x, I.input(0));
  TRY(wt, I.input(1));
  int64_t r = I.rank(x);
  if (r != 4 && r != 3)
    return I.unsupported(std::to_string(r - 2) + "-D ConvTranspose (1-D and 2-D are supported)");
  TRY(xs, I.staticShape(x, "ConvTranspose input"));
  TRY(ws, I.staticShape(wt, "ConvTranspose weights"));
  size_t n = size_t(r - 2);
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  TRY(group, I.attrInt("group", 1));
  TRY(ks, I.attrInts("kernel_shape", kernel));
  if (ks != kernel)
    return I.invalid("attribute 'kernel_shape' does not match the weights");
  TRY(st, I.attrInts("strides", std::vector<int64_t>(n, 1)));
  TRY(di, I.attrInts("dilations", std::vector<int64_t>(n, 1)));
  TRY(pads, I.attrInts("pads", std::vector<int64_t>(2 * n, 0)));
  TRY(outPad, I.attrInts("output_padding", std::vector<int64_t>(n, 0)));
  TRY(autoPad, I.attrString("auto_pad", "NOTSET"));
  if (st.size() != n || di.size() != n || pads.size() != 2 * n || outPad.size() != n)
    return I.invalid("strides/dilations/pads/output_padding do not match the spatial dims");
  if (I.hasAttr("output_shape")) {
    TRY(os, I.attrInts("output_shape"));
    if (os.size() != n)
      return I.invalid("attribute 'output_shape' does not match the spatial dims");
    autoPad = autoPad == "NOTSET" ? "SAME_UPPER" : autoPad;
    for (size_t i = 0; i < n; ++i) {
      int64_t total = st[i] * (xs[2 + i] - 1) + outPad[i] + ((kernel[i] - 1) * di[i] + 1) - os[i];
      pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[i + n] = total - pads[i];
    }
  } else if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
    for (size_t i = 0; i < n; ++i) {
      int64_t total = st[i] * (xs[2 + i] - 1) + outPad[i] + ((kernel[i] - 1) * di[i] + 1) - xs[2 + i] * st[i];
      total = std::max<int64_t>(total, 0);
      pads[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[i + n] = total - pads[i];
    }
  } else if (autoPad == "VALID") {
    std::fill(pads.begin(), pads.end(), 0);
  }
  if (r == 3) {
    TRY(x2, to2d(I, x));
    TRY(w2, to2d(I, wt));
    x = x2;
    wt = w2;
    xs.insert(xs.begin() + 2, 1);
    ws.insert(ws.begin() + 2, 1);
    kernel.insert(kernel.begin(), 1);
    st.insert(st.begin(), 1);
    di.insert(di.begin(), 1);
    outPad.insert(outPad.begin(), 0);
    pads = {0, pads[0], 0, pads[1]};
  }
  if ((st[0] > 1 || st[1] > 1) && std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p >= 0; })) {
    TRY(y, convTransposePhases(I, x, wt, xs, ws, kernel, st, di, pads, outPad, group));
    if (r == 3) {
      TRY(y1, from2d(I, y));
      return I.setOutput(0, y1);
    }
    return I.setOutput(0, y);
  }
  DType dt = I.dtype(x);
  int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], O = ws[1] * group;
  // Stride-dilate: [N,C,H,W] -> [N,C,H,1,W,1] -> pad -> [N,C,H*s0,W*s1], then drop the tail.
  ValueId v = x;
  if (st[0] > 1 || st[1] > 1) {
    TRY(e, I.reshape(v, {N, C, H, 1, W, 1}));
    TRY(p, I.op(OpKind::Pad, {e}, attrs({{"pads", ints({0, 0, 0, 0, 0, 0, 0, st[0] - 1, 0, 0, 0, st[1] - 1})}})));
    TRY(m, I.reshape(p, {N, C, H * st[0], W * st[1]}));
    TRY(s, I.op(OpKind::Slice, {m},
                attrs({{"starts", ints({0, 0})},
                       {"ends", ints({(H - 1) * st[0] + 1, (W - 1) * st[1] + 1})},
                       {"axes", ints({2, 3})}})));
    v = s;
  }
  // Border: dilation*(k-1) - pad on each side (+ output_padding at the end); negative = crop.
  std::vector<int64_t> lo(2), hi(2);
  for (size_t i = 0; i < 2; ++i) {
    lo[i] = di[i] * (kernel[i] - 1) - pads[i];
    hi[i] = di[i] * (kernel[i] - 1) - pads[i + 2] + outPad[i];
  }
  std::vector<int64_t> padList(8, 0), cropStart(2, 0), cropEnd(2);
  std::vector<int64_t> vs = {N, C, (H - 1) * st[0] + 1, (W - 1) * st[1] + 1};
  bool crop = false;
  for (size_t i = 0; i < 2; ++i) {
    padList[4 + 2 * i] = std::max<int64_t>(lo[i], 0);
    padList[5 + 2 * i] = std::max<int64_t>(hi[i], 0);
    cropStart[i] = std::max<int64_t>(-lo[i], 0);
    cropEnd[i] = vs[2 + i] + padList[4 + 2 * i] + padList[5 + 2 * i] - std::max<int64_t>(-hi[i], 0);
    crop = crop || lo[i] < 0 || hi[i] < 0;
  }
  TRY(pv, I.op(OpKind::Pad, {v}, attrs({{"pads", ints(padList)}})));
  v = pv;
  if (crop) {
    TRY(s, I.op(OpKind::Slice, {v},
                attrs({{"starts", ints(cropStart)}, {"ends", ints(cropEnd)}, {"axes", ints({2, 3})}})));
    v = s;
  }
  // Weights [C, O/g, kh, kw] -> flipped -> [O, C/g, kh, kw].
  TRY(f0, reverseAxis(I, wt, 2));
  TRY(f1, reverseAxis(I, f0, 3));
  int64_t kh = kernel[0], kw = kernel[1];
  TRY(g5, I.reshape(f1, {group, C / group, O / group, kh, kw}));
  TRY(t5, I.op(OpKind::Transpose, {g5}, attrs({{"perm", ints({0, 2, 1, 3, 4})}})));
  TRY(w4, I.reshape(t5, {O, C / group, kh, kw}));
  std::vector<ValueId> ops{v, w4};
  if (I.hasInput(2))
    ops.push_back(*I.input(2));
  (void)dt;
  TRY(y, I.op(OpKind::Conv2d, ops, attrs({{"dilation", ints(di)}, {"groups", i64(group)}})));
  if (r == 3) {
    TRY(y1, from2d(I, y));
    return I.setOutput(0, y1);
  }
  return I.setOutput(0, y);
}

Error pool(Importer &I) {
  CHECK(I.requireOutputs(1));
  TRY(x, I.input(0));
  int64_t r = I.rank(x);
  const std::string &t = I.node().op_type();
  if (r != 3 && r != 4)
    return I.unsupported(std::to_string(r - 2) + "-D pooling (1-D and 2-D are supported)");
  TRY(kernel, I.attrInts("kernel_shape"));
  if (kernel.size() != size_t(r - 2))
    return I.invalid("attribute 'kernel_shape' does not match the input rank");
  TRY(ceil, I.attrInt("ceil_mode", 0));
  bool isMax = t == "MaxPool";
  TRY(countPad, I.attrInt("count_include_pad", 0));
  if (isMax) {
    TRY(order, I.attrInt("storage_order", 0));
    (void)order; // only affects the Indices output
  } else if (countPad && ceil) {
    return I.unsupported("ceil_mode with count_include_pad");
  }
  TRY(w, window(I, I.dims(x), kernel, ceil != 0));
  if (!isMax && w.dilations != std::vector<int64_t>(kernel.size(), 1))
    return I.unsupported("attribute 'dilations' of AveragePool");
  if (r == 3) {
    TRY(x2, to2d(I, x));
    x = x2;
    w = lift2d(w);
  }
  ir::AttrList as = attrs({{"kernel", ints(w.kernel)}, {"stride", ints(w.strides)}, {"padding", ints(w.pads)}});
  if (isMax)
    as.set("dilation", ints(w.dilations));
  else
    as.set("count_include_pad", Attribute::ofBool(countPad != 0));
  TRY(y, I.op(isMax ? OpKind::MaxPool2d : OpKind::AvgPool2d, {x}, as));
  if (r == 3) {
    TRY(y1, from2d(I, y));
    return I.setOutput(0, y1);
  }
  return I.setOutput(0, y);
}

Error globalPool(Importer &I) {
  TRY(x, I.input(0));
  bool isMax = I.node().op_type() == "GlobalMaxPool";
  TRY(y, I.op(isMax ? OpKind::ReduceMax : OpKind::ReduceMean, {x},
              attrs({{"axes", ints(range(2, I.rank(x)))}, {"keepdim", Attribute::ofBool(true)}})));
  return I.setOutput(0, y);
}

// ---- Data movement.

Error transpose(Importer &I) {
  TRY(x, I.input(0));
  std::vector<int64_t> rev;
  for (int64_t i = I.rank(x) - 1; i >= 0; --i)
    rev.push_back(i);
  TRY(perm, I.attrInts("perm", rev));
  TRY(y, I.op(OpKind::Transpose, {x}, attrs({{"perm", ints(perm)}})));
  return I.setOutput(0, y);
}

Error reshapeOp(Importer &I) {
  TRY(x, I.input(0));
  std::vector<int64_t> shape;
  if (I.opset() < 5) {
    TRY(s, I.attrInts("shape"));
    shape = s;
  } else {
    TRY(s, I.constInputInts(1, "shape"));
    shape = s;
  }
  TRY(allowZero, I.attrInt("allowzero", 0));
  const std::vector<Dim> &in = I.dims(x);
  std::vector<Dim> out(shape.size());
  int64_t inferAt = -1;
  Dim known(1);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowZero) {
      if (i >= in.size())
        return I.invalid("shape has 0 at position " + std::to_string(i) + " beyond the input rank");
      out[i] = in[i];
    } else if (shape[i] == -1) {
      if (inferAt >= 0)
        return I.invalid("shape has more than one -1");
      inferAt = int64_t(i);
      continue;
    } else if (shape[i] < 0) {
      return I.invalid("shape has a negative dim " + std::to_string(shape[i]));
    } else {
      out[i] = Dim(shape[i]);
    }
    TRY(k, Dim::mul(known, out[i]));
    known = k;
  }
  if (inferAt >= 0) {
    TRY(total, product(in, 0, in.size()));
    std::optional<int64_t> kt = known.constantValue(), tt = total.constantValue();
    if (kt && tt) {
      if (*kt == 0 || *tt % *kt)
        return I.invalid("cannot infer the -1 dim: " + std::to_string(*tt) + " elements into parts of " +
                         std::to_string(*kt));
      out[size_t(inferAt)] = Dim(*tt / *kt);
    } else {
      TRY(q, Dim::div(total, known));
      out[size_t(inferAt)] = q;
    }
  }
  TRY(y, I.reshape(x, out));
  return I.setOutput(0, y);
}

Error flatten(Importer &I) {
  TRY(x, I.input(0));
  TRY(axis0, I.attrInt("axis", 1));
  int64_t r = I.rank(x);
  int64_t axis = axis0 < 0 ? axis0 + r : axis0;
  if (axis < 0 || axis > r)
    return I.invalid("axis " + std::to_string(axis0) + " is out of range for rank " + std::to_string(r));
  TRY(a, product(I.dims(x), 0, size_t(axis)));
  TRY(b, product(I.dims(x), size_t(axis), size_t(r)));
  TRY(y, I.reshape(x, {a, b}));
  return I.setOutput(0, y);
}

Expected<std::vector<int64_t>> axesAttrOrInput(Importer &I, size_t inputIndex, int64_t sinceOpset) {
  if (I.opset() >= sinceOpset) {
    if (!I.hasInput(inputIndex))
      return std::vector<int64_t>{};
    return I.constInputInts(inputIndex, "axes");
  }
  return I.attrInts("axes", std::vector<int64_t>{});
}

Error squeeze(Importer &I) {
  TRY(x, I.input(0));
  TRY(axes, axesAttrOrInput(I, 1, 13));
  int64_t r = I.rank(x);
  if (axes.empty()) {
    for (int64_t i = 0; i < r; ++i)
      if (I.dims(x)[size_t(i)].constantValue() == 1)
        axes.push_back(i);
  }
  for (int64_t &a : axes) {
    TRY(n, I.normAxis(a, r, "axis"));
    a = n;
  }
  if (axes.empty())
    return I.setOutput(0, x);
  TRY(y, I.op(OpKind::Squeeze, {x}, attrs({{"axes", ints(axes)}})));
  return I.setOutput(0, y);
}

Error unsqueeze(Importer &I) {
  TRY(x, I.input(0));
  TRY(axes, axesAttrOrInput(I, 1, 13));
  int64_t r = I.rank(x) + int64_t(axes.size());
  for (int64_t &a : axes) {
    TRY(n, I.normAxis(a, r, "axis"));
    a = n;
  }
  std::sort(axes.begin(), axes.end());
  TRY(y, I.op(OpKind::ExpandDims, {x}, attrs({{"axes", ints(axes)}})));
  return I.setOutput(0, y);
}

Error concat(Importer &I) {
  TRY(axis0, I.opset() < 4 ? I.attrInt("axis", 1) : I.attrInt("axis"));
  std::vector<ValueId> ins;
  for (size_t i = 0; i < I.numInputs(); ++i) {
    TRY(x, I.input(i));
    ins.push_back(x);
  }
  if (ins.empty())
    return I.invalid("needs at least one input");
  TRY(axis, I.normAxis(axis0, I.rank(ins[0]), "axis"));
  if (ins.size() == 1)
    return I.setOutput(0, ins[0]);
  TRY(y, I.op(OpKind::Concat, ins, attrs({{"axis", i64(axis)}})));
  return I.setOutput(0, y);
}

Error split(Importer &I) {
  TRY(x, I.input(0));
  TRY(axis0, I.attrInt("axis", 0));
  TRY(axis, I.normAxis(axis0, I.rank(x), "axis"));
  std::vector<int64_t> sizes;
  if (I.opset() >= 13) {
    if (I.hasInput(1)) {
      TRY(s, I.constInputInts(1, "split"));
      sizes = s;
    }
  } else {
    TRY(s, I.attrInts("split", std::vector<int64_t>{}));
    sizes = s;
  }
  size_t n = I.numOutputs();
  ir::AttrList as = attrs({{"axis", i64(axis)}});
  if (!sizes.empty()) {
    if (sizes.size() != n)
      return I.invalid("split has " + std::to_string(sizes.size()) + " sizes but the node has " +
                       std::to_string(n) + " outputs");
    as.set("sizes", ints(sizes));
  } else {
    as.set("num", i64(int64_t(n)));
  }
  if (n == 1)
    return I.setOutput(0, x);
  TRY(ys, I.opN(OpKind::Split, {x}, as));
  for (size_t i = 0; i < ys.size(); ++i)
    CHECK(I.setOutput(i, ys[i]));
  return Error::success();
}

Error slice(Importer &I) {
  TRY(x, I.input(0));
  std::vector<int64_t> starts, ends, axes, steps;
  if (I.opset() < 10) {
    TRY(s, I.attrInts("starts"));
    TRY(e, I.attrInts("ends"));
    TRY(a, I.attrInts("axes", std::vector<int64_t>{}));
    starts = s;
    ends = e;
    axes = a;
  } else {
    TRY(s, I.constInputInts(1, "starts"));
    TRY(e, I.constInputInts(2, "ends"));
    starts = s;
    ends = e;
    if (I.hasInput(3)) {
      TRY(a, I.constInputInts(3, "axes"));
      axes = a;
    }
    if (I.hasInput(4)) {
      TRY(st, I.constInputInts(4, "steps"));
      steps = st;
    }
  }
  int64_t r = I.rank(x);
  if (axes.empty())
    axes = range(0, int64_t(starts.size()));
  if (steps.empty())
    steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return I.invalid("starts, ends, axes and steps have different lengths");
  ValueId v = x;
  std::vector<int64_t> ps, pe, pa, pst;
  for (size_t i = 0; i < starts.size(); ++i) {
    TRY(axis, I.normAxis(axes[i], r, "axis"));
    int64_t step = steps[i];
    if (step == 0)
      return I.invalid("slice step is 0");
    std::optional<int64_t> dim = I.dims(x)[size_t(axis)].constantValue();
    if (!dim) {
      if (step < 0)
        return I.unsupported("negative slice step on a symbolic dim");
      ps.push_back(starts[i]);
      pe.push_back(ends[i] >= (int64_t(1) << 62) ? std::numeric_limits<int64_t>::max() : ends[i]);
      pa.push_back(axis);
      pst.push_back(step);
      continue;
    }
    int64_t n = *dim, s = starts[i], e = ends[i];
    if (s < 0)
      s += n;
    if (e < 0)
      e += n;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      if (e < s)
        e = s;
      ps.push_back(s);
      pe.push_back(e);
      pa.push_back(axis);
      pst.push_back(step);
    } else { // negative step: gather the indices
      s = std::clamp<int64_t>(s, -1, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      std::vector<int64_t> idx;
      for (int64_t k = s; k > e; k += step)
        idx.push_back(k);
      if (idx.empty()) {
        ps.push_back(0);
        pe.push_back(0);
        pa.push_back(axis);
        pst.push_back(1);
        continue;
      }
      TRY(ic, I.constInts(idx));
      TRY(g, I.op(OpKind::Gather, {v, ic}, attrs({{"axis", i64(axis)}})));
      v = g;
    }
  }
  if (!ps.empty()) {
    TRY(y, I.op(OpKind::Slice, {v},
                attrs({{"starts", ints(ps)}, {"ends", ints(pe)}, {"axes", ints(pa)}, {"steps", ints(pst)}})));
    v = y;
  }
  return I.setOutput(0, v);
}

Error gather(Importer &I) {
  TRY(x, I.input(0));
  TRY(idx, I.input(1));
  TRY(axis0, I.attrInt("axis", 0));
  TRY(axis, I.normAxis(axis0, I.rank(x), "axis"));
  TRY(y, I.op(OpKind::Gather, {x, idx}, attrs({{"axis", i64(axis)}})));
  return I.setOutput(0, y);
}

// out = sum over axis of select(onehot(indices), data): GatherElements.
Error gatherElements(Importer &I) {
  TRY(x, I.input(0));
  TRY(idx0, I.input(1));
  TRY(axis0, I.attrInt("axis", 0));
  int64_t r = I.rank(x);
  TRY(axis, I.normAxis(axis0, r, "axis"));
  TRY(idx, I.cast(idx0, DType::I64));
  const Dim &n = I.dims(x)[size_t(axis)];
  // Wrap negative indices.
  TRY(zero, I.scalar(DType::I64, 0));
  TRY(neg, I.op(OpKind::Lt, {idx, zero}));
  std::optional<int64_t> nc = n.constantValue();
  if (!nc)
    return I.unsupported("GatherElements along a symbolic axis");
  TRY(nv, I.scalar(DType::I64, double(*nc)));
  TRY(wrapped, I.op(OpKind::Add, {idx, nv}));
  TRY(ix, I.op(OpKind::Select, {neg, wrapped, idx}));
  // Index tensor [.., 1(axis+1 new), ..] vs iota over the data axis placed at a new last axis.
  TRY(ie, I.op(OpKind::ExpandDims, {ix}, attrs({{"axes", ints({r})}})));
  std::vector<Dim> iotaDims(size_t(r + 1), Dim(1));
  iotaDims[size_t(r)] = n;
  TRY(io, I.op(OpKind::Iota, {}, attrs({{"axis", i64(r)}}), {TensorType(DType::I64, iotaDims)}));
  TRY(mask, I.op(OpKind::Eq, {ie, io})); // [idx dims..., n]
  // Data with its axis moved last, sliced to the index extents elsewhere.
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < r; ++i)
    if (i != axis)
      perm.push_back(i);
  perm.push_back(axis);
  TRY(xt, I.op(OpKind::Transpose, {x}, attrs({{"perm", ints(perm)}})));
  // Expand back so that dims line up: [.., axis->1, .., n].
  TRY(xe, I.op(OpKind::ExpandDims, {xt}, attrs({{"axes", ints({axis})}})));
  std::vector<int64_t> starts, ends, axesList;
  for (int64_t i = 0; i < r; ++i) {
    if (i == axis)
      continue;
    std::optional<int64_t> id = I.dims(ix)[size_t(i)].constantValue();
    std::optional<int64_t> xd = I.dims(x)[size_t(i)].constantValue();
    if (!id || !xd)
      return I.unsupported("GatherElements on symbolic dims");
    if (*id != *xd) {
      starts.push_back(0);
      ends.push_back(*id);
      axesList.push_back(i);
    }
  }
  ValueId xs = xe;
  if (!starts.empty()) {
    TRY(s, I.op(OpKind::Slice, {xe}, attrs({{"starts", ints(starts)}, {"ends", ints(ends)}, {"axes", ints(axesList)}})));
    xs = s;
  }
  TRY(z, I.scalar(I.dtype(x), 0));
  TRY(sel, I.op(OpKind::Select, {mask, xs, z}));
  TRY(y, I.op(OpKind::ReduceSum, {sel}, attrs({{"axes", ints({r})}})));
  return I.setOutput(0, y);
}

Expected<ValueId> gatherAxisIndices(Importer &I, ValueId v, int64_t axis, const std::vector<int64_t> &idx) {
  TRY(ic, I.constInts(idx));
  return I.op(OpKind::Gather, {v, ic}, attrs({{"axis", i64(axis)}}));
}

Error pad(Importer &I) {
  TRY(x, I.input(0));
  TRY(mode, I.attrString("mode", "constant"));
  std::vector<int64_t> pads;
  double value = 0;
  ValueId valueTensor = ir::kNoValue;
  int64_t r = I.rank(x);
  if (I.opset() < 11) {
    TRY(p, I.attrInts("pads"));
    TRY(v, I.attrFloat("value", 0.0));
    pads = p;
    value = v;
  } else {
    TRY(p, I.constInputInts(1, "pads"));
    pads = p;
    if (I.hasInput(2)) {
      TRY(cv, I.input(2));
      Expected<std::optional<ref::RefTensor>> c = I.tryConstant(cv);
      if (!c)
        return c.takeError();
      if (*c && !(*c)->data.empty())
        value = (*c)->data[0];
      else if (!*c)
        valueTensor = cv;
    }
    if (I.hasInput(3)) {
      TRY(axes, I.constInputInts(3, "axes"));
      std::vector<int64_t> full(size_t(2 * r), 0);
      for (size_t i = 0; i < axes.size(); ++i) {
        TRY(a, I.normAxis(axes[i], r, "axis"));
        full[size_t(a)] = pads[i];
        full[size_t(a + r)] = pads[i + axes.size()];
      }
      pads = full;
    }
  }
  if (pads.size() != size_t(2 * r))
    return I.invalid("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(r));
  if (valueTensor != ir::kNoValue)
    return I.unsupported("a constant_value that is not known at compile time");
  // ONNX: [x1_begin, x2_begin, ..., x1_end, ...]; negative pads crop.
  std::vector<int64_t> irPads(size_t(2 * r));
  std::vector<int64_t> cs, ce, ca;
  bool anyPad = false;
  for (int64_t i = 0; i < r; ++i) {
    int64_t lo = pads[size_t(i)], hi = pads[size_t(i + r)];
    irPads[size_t(2 * i)] = std::max<int64_t>(lo, 0);
    irPads[size_t(2 * i + 1)] = std::max<int64_t>(hi, 0);
    anyPad = anyPad || lo > 0 || hi > 0;
    if (lo < 0 || hi < 0) {
      std::optional<int64_t> d = I.dims(x)[size_t(i)].constantValue();
      if (!d)
        return I.unsupported("negative pads on a symbolic dim");
      cs.push_back(std::max<int64_t>(-lo, 0));
      ce.push_back(*d - std::max<int64_t>(-hi, 0));
      ca.push_back(i);
    }
  }
  ValueId v = x;
  if (!cs.empty()) {
    TRY(s, I.op(OpKind::Slice, {v}, attrs({{"starts", ints(cs)}, {"ends", ints(ce)}, {"axes", ints(ca)}})));
    v = s;
  }
  if (mode == "constant") {
    if (anyPad) {
      TRY(p, I.op(OpKind::Pad, {v}, attrs({{"pads", ints(irPads)}, {"value", Attribute::ofFloat(value)}})));
      v = p;
    }
    return I.setOutput(0, v);
  }
  if (mode != "edge" && mode != "reflect")
    return I.unsupported("attribute 'mode' = '" + mode + "'");
  // edge / reflect: gather per padded axis.
  for (int64_t i = 0; i < r; ++i) {
    int64_t lo = irPads[size_t(2 * i)], hi = irPads[size_t(2 * i + 1)];
    if (!lo && !hi)
      continue;
    std::optional<int64_t> d = I.dims(v)[size_t(i)].constantValue();
    if (!d || *d == 0)
      return I.unsupported("mode '" + mode + "' on a symbolic or empty dim");
    int64_t n = *d;
    std::vector<int64_t> idx;
    for (int64_t k = -lo; k < n + hi; ++k) {
      int64_t j = k;
      if (mode == "edge") {
        j = std::clamp<int64_t>(k, 0, n - 1);
      } else {
        if (n == 1) {
          j = 0;
        } else {
          int64_t period = 2 * (n - 1);
          j = ((k % period) + period) % period;
          if (j >= n)
            j = period - j;
        }
      }
      idx.push_back(j);
    }
    TRY(g, gatherAxisIndices(I, v, i, idx));
    v = g;
  }
  return I.setOutput(0, v);
}

// Bidirectional broadcast of `x` against a shape.
Error expand(Importer &I) {
  TRY(x, I.input(0));
  TRY(shape, I.constInputInts(1, "shape"));
  std::vector<Dim> in = I.dims(x);
  size_t rank = std::max(in.size(), shape.size());
  std::vector<Dim> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    size_t fromEnd = rank - 1 - i;
    bool hasIn = fromEnd < in.size(), hasShape = fromEnd < shape.size();
    Dim di = hasIn ? in[in.size() - 1 - fromEnd] : Dim(1);
    int64_t s = hasShape ? shape[shape.size() - 1 - fromEnd] : 1;
    if (s == 1)
      out[i] = di;
    else if (di.constantValue() == 1)
      out[i] = Dim(s);
    else
      out[i] = di; // must equal s: the broadcast checks it
    if (s != 1 && di.constantValue() && *di.constantValue() != 1 && *di.constantValue() != s)
      return I.invalid("cannot expand dim " + di.str() + " to " + std::to_string(s));
  }
  TRY(y, I.broadcastTo(x, out));
  return I.setOutput(0, y);
}

Error tile(Importer &I) {
  TRY(x, I.input(0));
  TRY(reps, I.constInputInts(1, "repeats"));
  int64_t r = I.rank(x);
  if (int64_t(reps.size()) != r)
    return I.invalid("repeats has " + std::to_string(reps.size()) + " values for rank " + std::to_string(r));
  // [d0, d1] -> [1, d0, 1, d1] -> [r0, d0, r1, d1] -> [r0*d0, r1*d1].
  std::vector<int64_t> axes;
  std::vector<Dim> big, out;
  for (int64_t i = 0; i < r; ++i) {
    axes.push_back(2 * i);
    big.push_back(Dim(reps[size_t(i)]));
    big.push_back(I.dims(x)[size_t(i)]);
    TRY(m, Dim::mul(Dim(reps[size_t(i)]), I.dims(x)[size_t(i)]));
    out.push_back(m);
  }
  if (r == 0)
    return I.setOutput(0, x);
  TRY(e, I.op(OpKind::ExpandDims, {x}, attrs({{"axes", ints(axes)}})));
  TRY(b, I.broadcastTo(e, big));
  TRY(y, I.reshape(b, out));
  return I.setOutput(0, y);
}

Error shapeOp(Importer &I) {
  TRY(x, I.input(0));
  int64_t r = I.rank(x);
  TRY(start0, I.attrInt("start", 0));
  TRY(end0, I.attrInt("end", r));
  int64_t start = std::clamp<int64_t>(start0 < 0 ? start0 + r : start0, 0, r);
  int64_t end = std::clamp<int64_t>(end0 < 0 ? end0 + r : end0, 0, r);
  std::vector<int64_t> vals;
  for (int64_t i = start; i < end; ++i) {
    std::optional<int64_t> d = I.dims(x)[size_t(i)].constantValue();
    if (!d)
      return I.unsupported("Shape of a symbolic dim (" + I.dims(x)[size_t(i)].str() + ")");
    vals.push_back(*d);
  }
  TRY(y, I.constInts(vals, {int64_t(vals.size())}));
  return I.setOutput(0, y);
}

Error sizeOp(Importer &I) {
  TRY(x, I.input(0));
  TRY(s, I.staticShape(x, "Size input"));
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  TRY(y, I.scalar(DType::I64, double(n)));
  return I.setOutput(0, y);
}

Error rangeOp(Importer &I) {
  TRY(start, I.constInput(0, "start"));
  TRY(limit, I.constInput(1, "limit"));
  TRY(delta, I.constInput(2, "delta"));
  TRY(x, I.input(0));
  double s = start.data.at(0), l = limit.data.at(0), d = delta.data.at(0);
  if (d == 0)
    return I.invalid("delta is 0");
  int64_t n = std::max<int64_t>(int64_t(std::ceil((l - s) / d)), 0);
  std::vector<double> vals;
  for (int64_t i = 0; i < n; ++i)
    vals.push_back(s + double(i) * d);
  ref::RefTensor t(start.dtype, {n}, vals);
  ref::roundInPlace(t, start.dtype);
  TRY(y, I.constantRef(t));
  (void)x;
  return I.setOutput(0, y);
}

Expected<HostTensor> attrTensor(Importer &I, const ::onnx::AttributeProto &a) {
  if (a.type() != ::onnx::AttributeProto::TENSOR)
    return I.invalid("attribute '" + a.name() + "' must be a TENSOR");
  return decodeTensor(a.t(), I.options().baseDir);
}

Error constantOfShape(Importer &I) {
  TRY(shape, I.constInputInts(0, "shape"));
  DType dt = DType::F32;
  double value = 0;
  if (const ::onnx::AttributeProto *a = I.attrProto("value")) {
    TRY(t, attrTensor(I, *a));
    TRY(r, toRef(t));
    if (r.data.size() != 1)
      return I.invalid("attribute 'value' must hold one element");
    dt = t.dtype;
    value = r.data[0];
  }
  std::vector<Dim> dims;
  for (int64_t d : shape) {
    if (d < 0)
      return I.invalid("negative dim " + std::to_string(d) + " in shape");
    dims.push_back(Dim(d));
  }
  ir::Attribute v = ir::isFloat(dt) ? Attribute::ofFloat(value)
                    : dt == DType::Bool ? Attribute::ofBool(value != 0)
                                        : Attribute::ofInt(int64_t(value));
  TRY(y, I.op(OpKind::Constant, {}, attrs({{"value", v}}), {TensorType(dt, dims)}));
  return I.setOutput(0, y);
}

Error constantOp(Importer &I) {
  for (const ::onnx::AttributeProto &a : I.node().attribute()) {
    const std::string &n = a.name();
    if (n == "value") {
      TRY(t, attrTensor(I, *I.attrProto("value")));
      TRY(y, I.constant(t));
      return I.setOutput(0, y);
    }
    if (n == "value_float" || n == "value_int") {
      TRY(v, n == "value_float" ? I.attrFloat(n) : Expected<double>(double(*I.attrInt(n))));
      I.ignoreAttr(n);
      TRY(y, I.scalar(n == "value_float" ? DType::F32 : DType::I64, v));
      return I.setOutput(0, y);
    }
    if (n == "value_ints") {
      TRY(v, I.attrInts(n));
      TRY(y, I.constInts(v, {int64_t(v.size())}));
      return I.setOutput(0, y);
    }
    if (n == "value_floats") {
      TRY(v, I.attrFloats(n));
      ref::RefTensor t(ref::DType::F32, {int64_t(v.size())}, v);
      TRY(y, I.constantRef(t));
      return I.setOutput(0, y);
    }
  }
  if (!I.node().attribute().empty())
    return I.unsupported("attribute '" + I.node().attribute(0).name() + "' is not supported");
  return I.invalid("Constant without a value attribute");
}

Error eyeLike(Importer &I) {
  TRY(x, I.input(0));
  TRY(s, I.staticShape(x, "EyeLike input"));
  TRY(k, I.attrInt("k", 0));
  DType dt = I.dtype(x);
  if (I.hasAttr("dtype")) {
    TRY(d, I.attrInt("dtype"));
    TRY(t, dtypeFromOnnx(int32_t(d), I.label() + ": attribute 'dtype'"));
    dt = t;
  }
  if (s.size() != 2)
    return I.invalid("EyeLike input must be 2-D");
  TRY(rd, ref::fromIRDType(dt));
  ref::RefTensor t = ref::RefTensor::filled(rd, s, 0);
  for (int64_t i = 0; i < s[0]; ++i)
    if (i + k >= 0 && i + k < s[1])
      t.data[size_t(i * s[1] + i + k)] = 1;
  TRY(y, I.constantRef(t));
  return I.setOutput(0, y);
}

Error dropout(Importer &I) {
  TRY(x, I.input(0));
  I.ignoreAttr("seed");
  I.ignoreAttr("ratio");
  if (I.opset() < 7)
    I.ignoreAttr("is_test");
  if (I.hasInput(2)) {
    TRY(train, I.constInput(2, "training_mode"));
    if (!train.data.empty() && train.data[0] != 0)
      return I.unsupported("training_mode = true (only inference is supported)");
  }
  CHECK(I.setOutput(0, x));
  if (I.hasOutput(1)) {
    TRY(t, I.scalar(DType::Bool, 1));
    TRY(m, I.broadcastTo(t, I.dims(x)));
    CHECK(I.setOutput(1, m));
  }
  return Error::success();
}

Error depthSpace(Importer &I) {
  TRY(x, I.input(0));
  TRY(s, I.staticShape(x, I.node().op_type() + " input"));
  TRY(b, I.attrInt("blocksize"));
  if (s.size() != 4 || b <= 0)
    return I.invalid("needs a 4-D input and a positive blocksize");
  int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  ValueId y;
  if (I.node().op_type() == "DepthToSpace") {
    TRY(mode, I.attrString("mode", "DCR"));
    bool dcr = mode == "DCR";
    if (!dcr && mode != "CRD")
      return I.invalid("attribute 'mode' = '" + mode + "'");
    TRY(r6, I.reshape(x, dcr ? std::vector<Dim>{N, b, b, C / (b * b), H, W}
                             : std::vector<Dim>{N, C / (b * b), b, b, H, W}));
    std::vector<int64_t> perm = dcr ? std::vector<int64_t>{0, 3, 4, 1, 5, 2} : std::vector<int64_t>{0, 1, 4, 2, 5, 3};
    TRY(t, I.op(OpKind::Transpose, {r6}, attrs({{"perm", ints(perm)}})));
    TRY(r, I.reshape(t, {N, C / (b * b), H * b, W * b}));
    y = r;
  } else {
    TRY(r6, I.reshape(x, {N, C, H / b, b, W / b, b}));
    TRY(t, I.op(OpKind::Transpose, {r6}, attrs({{"perm", ints({0, 3, 5, 1, 2, 4})}})));
    TRY(r, I.reshape(t, {N, C * b * b, H / b, W / b}));
    y = r;
  }
  return I.setOutput(0, y);
}

Error trilu(Importer &I) {
  TRY(x, I.input(0));
  TRY(upper, I.attrInt("upper", 1));
  int64_t r = I.rank(x);
  if (r < 2)
    return I.invalid("Trilu input must have rank >= 2");
  std::vector<Dim> d{I.dims(x)[size_t(r - 2)], I.dims(x)[size_t(r - 1)]};
  TRY(row, I.op(OpKind::Iota, {}, attrs({{"axis", i64(0)}}), {TensorType(DType::I64, d)}));
  TRY(col, I.op(OpKind::Iota, {}, attrs({{"axis", i64(1)}}), {TensorType(DType::I64, d)}));
  TRY(diff, I.op(OpKind::Sub, {col, row}));
  TRY(k0, I.hasInput(1) ? I.input(1) : I.scalar(DType::I64, 0));
  TRY(kc, I.cast(k0, DType::I64));
  TRY(mask, I.op(upper ? OpKind::Ge : OpKind::Le, {diff, kc}));
  TRY(z, I.scalar(I.dtype(x), 0));
  TRY(y, I.op(OpKind::Select, {mask, x, z}));
  return I.setOutput(0, y);
}

Error oneHot(Importer &I) {
  TRY(idx0, I.input(0));
  TRY(depthT, I.constInput(1, "depth"));
  TRY(values, I.input(2));
  TRY(axis0, I.attrInt("axis", -1));
  int64_t r = I.rank(idx0);
  TRY(axis, I.normAxis(axis0, r + 1, "axis"));
  int64_t depth = int64_t(depthT.data.at(0));
  TRY(idx, I.cast(idx0, DType::I64));
  TRY(zero, I.scalar(DType::I64, 0));
  TRY(dv, I.scalar(DType::I64, double(depth)));
  TRY(neg, I.op(OpKind::Lt, {idx, zero}));
  TRY(wrapped, I.op(OpKind::Add, {idx, dv}));
  TRY(ix, I.op(OpKind::Select, {neg, wrapped, idx}));
  TRY(ie, I.op(OpKind::ExpandDims, {ix}, attrs({{"axes", ints({axis})}})));
  std::vector<Dim> iotaDims(size_t(r + 1), Dim(1));
  iotaDims[size_t(axis)] = Dim(depth);
  TRY(io, I.op(OpKind::Iota, {}, attrs({{"axis", i64(axis)}}), {TensorType(DType::I64, iotaDims)}));
  TRY(mask, I.op(OpKind::Eq, {ie, io}));
  TRY(off, I.op(OpKind::Slice, {values}, attrs({{"starts", ints({0})}, {"ends", ints({1})}})));
  TRY(on, I.op(OpKind::Slice, {values}, attrs({{"starts", ints({1})}, {"ends", ints({2})}})));
  TRY(offS, I.reshape(off, {}));
  TRY(onS, I.reshape(on, {}));
  TRY(y, I.op(OpKind::Select, {mask, onS, offS}));
  return I.setOutput(0, y);
}

// CumSum as a matmul with a triangular constant along the (static) axis.
Error cumSum(Importer &I) {
  TRY(x, I.input(0));
  TRY(axisV, I.constInputInts(1, "axis"));
  TRY(exclusive, I.attrInt("exclusive", 0));
  TRY(reverse, I.attrInt("reverse", 0));
  int64_t r = I.rank(x);
  TRY(axis, I.normAxis(axisV.at(0), r, "axis"));
  std::optional<int64_t> n = I.dims(x)[size_t(axis)].constantValue();
  if (!n)
    return I.unsupported("CumSum along a symbolic axis");
  TRY(rd, ref::fromIRDType(I.dtype(x)));
  ref::RefTensor tri = ref::RefTensor::filled(rd, {*n, *n}, 0);
  for (int64_t i = 0; i < *n; ++i)
    for (int64_t j = 0; j < *n; ++j) {
      bool on = reverse ? (exclusive ? i > j : i >= j) : (exclusive ? i < j : i <= j);
      tri.data[size_t(i * *n + j)] = on;
    }
  TRY(t, I.constantRef(tri));
  std::vector<int64_t> perm = range(0, r);
  std::swap(perm[size_t(axis)], perm[size_t(r - 1)]);
  ValueId v = x;
  if (axis != r - 1) {
    TRY(tv, I.op(OpKind::Transpose, {x}, attrs({{"perm", ints(perm)}})));
    v = tv;
  }
  TRY(m, I.op(OpKind::Matmul, {v, t}));
  if (axis != r - 1) {
    TRY(back, I.op(OpKind::Transpose, {m}, attrs({{"perm", ints(perm)}})));
    m = back;
  }
  return I.setOutput(0, m);
}

// NegativeLogLikelihoodLoss on log-probabilities [N, C, d...].
Expected<ValueId> nllLoss(Importer &I, ValueId input, ValueId target0, std::optional<ValueId> weight) {
  TRY(reduction, I.attrString("reduction", "mean"));
  bool hasIgnore = I.hasAttr("ignore_index");
  TRY(ignore, I.attrInt("ignore_index", 0));
  if (reduction != "mean" && reduction != "sum" && reduction != "none")
    return I.invalid("attribute 'reduction' = '" + reduction + "'");
  int64_t r = I.rank(input);
  if (r < 2)
    return I.invalid("input must have rank >= 2");
  DType dt = I.dtype(input);
  TRY(target, I.cast(target0, DType::I64));
  ValueId t = target, valid = ir::kNoValue;
  if (hasIgnore) {
    TRY(ig, I.scalar(DType::I64, double(ignore)));
    TRY(v, I.op(OpKind::Ne, {target, ig}));
    TRY(z, I.scalar(DType::I64, 0));
    TRY(ts, I.op(OpKind::Select, {v, target, z}));
    valid = v;
    t = ts;
  }
  TRY(te, I.op(OpKind::ExpandDims, {t}, attrs({{"axes", ints({1})}})));
  std::vector<Dim> iotaDims(size_t(r), Dim(1));
  iotaDims[1] = I.dims(input)[1];
  TRY(io, I.op(OpKind::Iota, {}, attrs({{"axis", i64(1)}}), {TensorType(DType::I64, iotaDims)}));
  TRY(mask, I.op(OpKind::Eq, {te, io}));
  TRY(zf, I.scalar(dt, 0));
  TRY(sel, I.op(OpKind::Select, {mask, input, zf}));
  TRY(picked, I.op(OpKind::ReduceSum, {sel}, attrs({{"axes", ints({1})}})));
  ValueId w = ir::kNoValue;
  if (weight) {
    TRY(g, I.op(OpKind::Gather, {*weight, t}, attrs({{"axis", i64(0)}})));
    w = g;
  }
  if (hasIgnore) {
    ValueId base = w;
    if (base == ir::kNoValue) {
      TRY(one, I.scalar(dt, 1));
      TRY(b, I.broadcastTo(one, I.dims(t)));
      base = b;
    }
    TRY(ws, I.op(OpKind::Select, {valid, base, zf}));
    w = ws;
  }
  ValueId loss = picked;
  if (w != ir::kNoValue) {
    TRY(l, I.op(OpKind::Mul, {picked, w}));
    loss = l;
  }
  TRY(neg, I.op(OpKind::Neg, {loss}));
  if (reduction == "none")
    return neg;
  TRY(sum, I.op(OpKind::ReduceSum, {neg}));
  if (reduction == "sum")
    return sum;
  if (w == ir::kNoValue)
    return I.op(OpKind::ReduceMean, {neg});
  TRY(wsum, I.op(OpKind::ReduceSum, {w}));
  return I.op(OpKind::Div, {sum, wsum});
}

Error nllOp(Importer &I) {
  TRY(input, I.input(0));
  TRY(target, I.input(1));
  std::optional<ValueId> weight;
  if (I.hasInput(2))
    weight = *I.input(2);
  TRY(y, nllLoss(I, input, target, weight));
  return I.setOutput(0, y);
}

Error softmaxCrossEntropy(Importer &I) {
  TRY(scores, I.input(0));
  TRY(labels, I.input(1));
  std::optional<ValueId> weight;
  if (I.hasInput(2))
    weight = *I.input(2);
  TRY(lp, I.op(OpKind::LogSoftmax, {scores}, attrs({{"axis", i64(1)}})));
  TRY(y, nllLoss(I, lp, labels, weight));
  CHECK(I.setOutput(0, y));
  return I.setOutput(1, lp);
}

} // namespace

const std::map<std::string, Converter> &converters() {
  static const std::map<std::string, Converter> table = {
      {"Abs", unary<OpKind::Abs>},
      {"Acosh", activation},
      {"Add", binary<OpKind::Add>},
      {"And", binary<OpKind::And>},
      {"ArgMax", argReduce},
      {"ArgMin", argReduce},
      {"Asinh", activation},
      {"Atanh", activation},
      {"AveragePool", pool},
      {"BatchNormalization", batchNorm},
      {"Cast", castOp},
      {"CastLike", castLike},
      {"Ceil", unary<OpKind::Ceil>},
      {"Celu", activation},
      {"Clip", clip},
      {"Concat", concat},
      {"Constant", constantOp},
      {"ConstantOfShape", constantOfShape},
      {"Conv", conv},
      {"ConvTranspose", convTranspose},
      {"Cos", unary<OpKind::Cos>},
      {"Cosh", activation},
      {"CumSum", cumSum},
      {"DepthToSpace", depthSpace},
      {"Div", divide},
      {"Dropout", dropout},
      {"Elu", activation},
      {"Equal", binary<OpKind::Eq>},
      {"Erf", unary<OpKind::Erf>},
      {"Exp", unary<OpKind::Exp>},
      {"Expand", expand},
      {"EyeLike", eyeLike},
      {"Flatten", flatten},
      {"Floor", unary<OpKind::Floor>},
      {"Gather", gather},
      {"GatherElements", gatherElements},
      {"Gelu", activation},
      {"Gemm", gemm},
      {"GlobalAveragePool", globalPool},
      {"GlobalMaxPool", globalPool},
      {"Greater", binary<OpKind::Gt>},
      {"GreaterOrEqual", binary<OpKind::Ge>},
      {"Hardmax", softmaxLike},
      {"HardSigmoid", activation},
      {"HardSwish", activation},
      {"Identity", identity},
      {"InstanceNormalization", instanceNorm},
      {"IsInf", activation},
      {"IsNaN", activation},
      {"LayerNormalization", layerNorm},
      {"LeakyRelu", activation},
      {"Less", binary<OpKind::Lt>},
      {"LessOrEqual", binary<OpKind::Le>},
      {"Log", unary<OpKind::Log>},
      {"LogSoftmax", softmaxLike},
      {"LpNormalization", lpNorm},
      {"LRN", lrn},
      {"MatMul", matmul},
      {"Max", variadic<OpKind::Max>},
      {"MaxPool", pool},
      {"Mean", mean},
      {"MeanVarianceNormalization", mvn},
      {"Min", variadic<OpKind::Min>},
      {"Mish", activation},
      {"Mod", mod},
      {"Mul", binary<OpKind::Mul>},
      {"Neg", unary<OpKind::Neg>},
      {"NegativeLogLikelihoodLoss", nllOp},
      {"Not", unary<OpKind::Not>},
      {"OneHot", oneHot},
      {"Or", binary<OpKind::Or>},
      {"Pad", pad},
      {"Pow", pow},
      {"PRelu", activation},
      {"Range", rangeOp},
      {"Reciprocal", unary<OpKind::Reciprocal>},
      {"ReduceL1", reduce},
      {"ReduceL2", reduce},
      {"ReduceLogSum", reduce},
      {"ReduceLogSumExp", reduce},
      {"ReduceMax", reduce},
      {"ReduceMean", reduce},
      {"ReduceMin", reduce},
      {"ReduceProd", reduce},
      {"ReduceSum", reduce},
      {"ReduceSumSquare", reduce},
      {"Relu", unary<OpKind::Relu>},
      {"Reshape", reshapeOp},
      {"Round", activation},
      {"Selu", activation},
      {"Shape", shapeOp},
      {"Shrink", activation},
      {"Sigmoid", unary<OpKind::Sigmoid>},
      {"Sign", unary<OpKind::Sign>},
      {"Sin", unary<OpKind::Sin>},
      {"Sinh", activation},
      {"Size", sizeOp},
      {"Slice", slice},
      {"Softmax", softmaxLike},
      {"SoftmaxCrossEntropyLoss", softmaxCrossEntropy},
      {"Softplus", activation},
      {"Softsign", activation},
      {"SpaceToDepth", depthSpace},
      {"Split", split},
      {"Sqrt", unary<OpKind::Sqrt>},
      {"Squeeze", squeeze},
      {"Sub", binary<OpKind::Sub>},
      {"Sum", variadic<OpKind::Add>},
      {"Tan", activation},
      {"Tanh", unary<OpKind::Tanh>},
      {"ThresholdedRelu", activation},
      {"Tile", tile},
      {"Transpose", transpose},
      {"Trilu", trilu},
      {"Unsqueeze", unsqueeze},
      {"Where", where},
      {"Xor", binary<OpKind::Xor>},
  };
  return table;
}

} // namespace tessera::onnx
