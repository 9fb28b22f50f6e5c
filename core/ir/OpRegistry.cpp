#include "ir/OpRegistry.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace tessera::ir {

const char *opGroupName(OpGroup g) {
  switch (g) {
  case OpGroup::Unary: return "elementwise unary";
  case OpGroup::Binary: return "elementwise binary";
  case OpGroup::Compare: return "comparison";
  case OpGroup::Logical: return "logical";
  case OpGroup::Select: return "select";
  case OpGroup::Cast: return "cast";
  case OpGroup::Reduction: return "reduction";
  case OpGroup::Normalization: return "normalization";
  case OpGroup::Contraction: return "contraction";
  case OpGroup::DataMovement: return "data movement";
  case OpGroup::Convolution: return "convolution and pooling";
  case OpGroup::Constant: return "constant";
  case OpGroup::Composite: return "composite";
  }
  return "?";
}

const char *attrTypeName(AttrType t) {
  switch (t) {
  case AttrType::Int: return "int";
  case AttrType::Float: return "float";
  case AttrType::String: return "string";
  case AttrType::Bool: return "bool";
  case AttrType::IntList: return "int list";
  case AttrType::FloatList: return "float list";
  case AttrType::DType: return "dtype";
  case AttrType::Number: return "number or number list";
  }
  return "?";
}

const AttrSpec *OpInfo::findAttr(std::string_view attrName) const {
  for (const auto &a : attrs)
    if (attrName == a.name)
      return &a;
  return nullptr;
}

namespace {

using AT = AttrType;
using G = OpGroup;
using R = ResultRule;

std::vector<OpInfo> buildTable() {
  std::vector<OpInfo> t;
  auto unary = [&](OpKind k, const char *name, const char *summary, std::vector<AttrSpec> attrs = {}) {
    t.push_back(OpInfo{k, name, G::Unary, 1, 1, 1, R::Inferred, std::move(attrs), summary});
  };
  unary(OpKind::Neg, "neg", "-x (numbers)");
  unary(OpKind::Abs, "abs", "|x| (numbers)");
  unary(OpKind::Exp, "exp", "e^x (floats)");
  unary(OpKind::Log, "log", "natural logarithm (floats)");
  unary(OpKind::Sqrt, "sqrt", "square root (floats)");
  unary(OpKind::Rsqrt, "rsqrt", "1/sqrt(x) (floats)");
  unary(OpKind::Tanh, "tanh", "hyperbolic tangent (floats)");
  unary(OpKind::Sigmoid, "sigmoid", "1/(1+e^-x) (floats)");
  unary(OpKind::Relu, "relu", "max(x, 0) (numbers)");
  unary(OpKind::Gelu, "gelu", "x*Phi(x) (floats)",
        {{"approximate", AT::String, false, "\"none\" (erf form, default) or \"tanh\""}});
  unary(OpKind::Silu, "silu", "x*sigmoid(x) (floats)");
  unary(OpKind::Erf, "erf", "error function (floats)");
  unary(OpKind::Sin, "sin", "sine (floats)");
  unary(OpKind::Cos, "cos", "cosine (floats)");
  unary(OpKind::Floor, "floor", "round toward -inf (floats)");
  unary(OpKind::Ceil, "ceil", "round toward +inf (floats)");
  unary(OpKind::Sign, "sign", "-1, 0 or 1 (numbers)");
  unary(OpKind::Reciprocal, "reciprocal", "1/x (floats)");
  t.push_back(OpInfo{OpKind::Not, "not", G::Logical, 1, 1, 1, R::Inferred, {}, "logical not (bool)"});

  auto binary = [&](OpKind k, const char *name, G g, const char *summary) {
    t.push_back(OpInfo{k, name, g, 2, 2, 1, R::Inferred, {}, summary});
  };
  binary(OpKind::Add, "add", G::Binary, "a + b");
  binary(OpKind::Sub, "sub", G::Binary, "a - b");
  binary(OpKind::Mul, "mul", G::Binary, "a * b");
  binary(OpKind::Div, "div", G::Binary, "a / b (integers: floor division)");
  binary(OpKind::Pow, "pow", G::Binary, "a ^ b (floats)");
  binary(OpKind::Max, "max", G::Binary, "elementwise maximum (NaN propagates)");
  binary(OpKind::Min, "min", G::Binary, "elementwise minimum (NaN propagates)");
  binary(OpKind::Mod, "mod", G::Binary, "remainder with the sign of b (NumPy mod)");
  binary(OpKind::Eq, "eq", G::Compare, "a == b -> bool");
  binary(OpKind::Ne, "ne", G::Compare, "a != b -> bool");
  binary(OpKind::Lt, "lt", G::Compare, "a < b -> bool");
  binary(OpKind::Le, "le", G::Compare, "a <= b -> bool");
  binary(OpKind::Gt, "gt", G::Compare, "a > b -> bool");
  binary(OpKind::Ge, "ge", G::Compare, "a >= b -> bool");
  binary(OpKind::And, "and", G::Logical, "logical and (bool)");
  binary(OpKind::Or, "or", G::Logical, "logical or (bool)");
  binary(OpKind::Xor, "xor", G::Logical, "logical xor (bool)");
  t.push_back(OpInfo{OpKind::Select, "select", G::Select, 3, 3, 1, R::Inferred, {},
                     "select(cond, a, b): a where cond else b, broadcast (alias: where)"});
  t.push_back(OpInfo{OpKind::Cast, "cast", G::Cast, 1, 1, 1, R::Inferred,
                     {{"dtype", AT::DType, true, "target dtype"}}, "converts to dtype (see casting rules)"});

  auto reduce = [&](OpKind k, const char *name, const char *summary) {
    t.push_back(OpInfo{k, name, G::Reduction, 1, 1, 1, R::Inferred,
                       {{"axes", AT::IntList, false, "axes to reduce (default: all)"},
                        {"keepdim", AT::Bool, false, "keep reduced axes as size 1 (default false)"}},
                       summary});
  };
  reduce(OpKind::ReduceSum, "reduce_sum", "sum over axes");
  reduce(OpKind::ReduceMean, "reduce_mean", "mean over axes (floats)");
  reduce(OpKind::ReduceMax, "reduce_max", "maximum over axes");
  reduce(OpKind::ReduceMin, "reduce_min", "minimum over axes");
  reduce(OpKind::ReduceProd, "reduce_prod", "product over axes");
  auto argReduce = [&](OpKind k, const char *name, const char *summary) {
    t.push_back(OpInfo{k, name, G::Reduction, 1, 1, 1, R::Inferred,
                       {{"axis", AT::Int, true, "axis to reduce"},
                        {"keepdim", AT::Bool, false, "keep the axis as size 1 (default false)"}},
                       summary});
  };
  argReduce(OpKind::Argmax, "argmax", "index of the first maximum -> i64");
  argReduce(OpKind::Argmin, "argmin", "index of the first minimum -> i64");
  t.push_back(OpInfo{OpKind::Softmax, "softmax", G::Normalization, 1, 1, 1, R::Inferred,
                     {{"axis", AT::Int, false, "axis (default -1)"}}, "exp(x - max) / sum (floats)"});
  t.push_back(OpInfo{OpKind::LogSoftmax, "log_softmax", G::Normalization, 1, 1, 1, R::Inferred,
                     {{"axis", AT::Int, false, "axis (default -1)"}}, "x - max - log(sum(exp(x - max))) (floats)"});
  t.push_back(OpInfo{OpKind::LayerNorm, "layer_norm", G::Normalization, 1, 3, 1, R::Inferred,
                     {{"axis", AT::Int, false, "first normalized axis; normalizes axis..rank-1 (default -1)"},
                      {"epsilon", AT::Float, false, "added to the variance (default 1e-05)"}},
                     "layer_norm(x [, gamma [, beta]]): (x - mean) / sqrt(var + eps) * gamma + beta"});
  t.push_back(OpInfo{OpKind::RmsNorm, "rms_norm", G::Normalization, 1, 2, 1, R::Inferred,
                     {{"axis", AT::Int, false, "first normalized axis (default -1)"},
                      {"epsilon", AT::Float, false, "added to the mean square (default 1e-06)"}},
                     "rms_norm(x [, gamma]): x / sqrt(mean(x^2) + eps) * gamma"});
  t.push_back(OpInfo{OpKind::Matmul, "matmul", G::Contraction, 2, 2, 1, R::Inferred, {},
                     "batched matrix product with broadcast batch dims (NumPy matmul)"});

  auto dm = [&](OpKind k, const char *name, int minOps, int maxOps, int results, R rule,
                std::vector<AttrSpec> attrs, const char *summary) {
    t.push_back(OpInfo{k, name, G::DataMovement, minOps, maxOps, results, rule, std::move(attrs), summary});
  };
  dm(OpKind::Transpose, "transpose", 1, 1, 1, R::Inferred,
     {{"perm", AT::IntList, false, "permutation (default: reverse the axes)"}},
     "permutes axes: result dim i = input dim perm[i] (alias: permute)");
  dm(OpKind::Reshape, "reshape", 1, 1, 1, R::AnnotationOrAttr,
     {{"shape", AT::IntList, false, "static target shape, one -1 allowed (else: the result annotation)"}},
     "same elements, new shape; element counts must be equal");
  dm(OpKind::BroadcastTo, "broadcast_to", 1, 1, 1, R::AnnotationOrAttr,
     {{"shape", AT::IntList, false, "static target shape (else: the result annotation)"}},
     "NumPy broadcast to a shape");
  dm(OpKind::ExpandDims, "expand_dims", 1, 1, 1, R::Inferred,
     {{"axes", AT::IntList, true, "positions of new size-1 axes in the result"}}, "inserts size-1 axes");
  dm(OpKind::Squeeze, "squeeze", 1, 1, 1, R::Inferred,
     {{"axes", AT::IntList, false, "size-1 axes to remove (default: every literal 1)"}}, "removes size-1 axes");
  dm(OpKind::Concat, "concat", 1, -1, 1, R::Inferred, {{"axis", AT::Int, true, "axis to join along"}},
     "joins tensors along an axis");
  dm(OpKind::Split, "split", 1, 1, -1, R::Inferred,
     {{"axis", AT::Int, true, "axis to split"},
      {"sizes", AT::IntList, false, "size of each part (static)"},
      {"num", AT::Int, false, "number of equal parts (the axis may be symbolic)"}},
     "splits into parts along an axis; exactly one of sizes/num");
  dm(OpKind::Slice, "slice", 1, 1, 1, R::Inferred,
     {{"starts", AT::IntList, true, "start per sliced axis (negative: from the end)"},
      {"ends", AT::IntList, true, "end per axis, exclusive, clamped (negative: from the end)"},
      {"axes", AT::IntList, false, "sliced axes (default 0..n-1)"},
      {"steps", AT::IntList, false, "positive step per axis (default 1)"}},
     "strided slice");
  dm(OpKind::Gather, "gather", 2, 2, 1, R::Inferred, {{"axis", AT::Int, false, "axis to index (default 0)"}},
     "gather(x, indices): x.shape[:axis] + indices.shape + x.shape[axis+1:]");
  dm(OpKind::Pad, "pad", 1, 1, 1, R::Inferred,
     {{"pads", AT::IntList, true, "[low0, high0, low1, high1, ...], non-negative"},
      {"value", AT::Float, false, "fill value (default 0.0)"}},
     "constant padding");
  dm(OpKind::Iota, "iota", 0, 0, 1, R::Annotated, {{"axis", AT::Int, false, "axis that counts (default 0)"}},
     "0, 1, 2, ... along an axis of the annotated type");
  auto conv = [&](OpKind k, const char *name, int minOps, int maxOps, std::vector<AttrSpec> attrs,
                  const char *summary) {
    t.push_back(OpInfo{k, name, G::Convolution, minOps, maxOps, 1, R::Inferred, std::move(attrs), summary});
  };
  conv(OpKind::Conv2d, "conv2d", 2, 3,
       {{"stride", AT::IntList, false, "[sh, sw] (default [1, 1])"},
        {"padding", AT::IntList, false, "[ph, pw] or [top, left, bottom, right] (default 0)"},
        {"dilation", AT::IntList, false, "[dh, dw] (default [1, 1])"},
        {"groups", AT::Int, false, "channel groups (default 1)"}},
       "conv2d(x: N x C x H x W, w: O x C/groups x KH x KW [, bias: O]) -> N x O x OH x OW");
  conv(OpKind::MaxPool2d, "max_pool2d", 1, 1,
       {{"kernel", AT::IntList, true, "[kh, kw]"},
        {"stride", AT::IntList, false, "[sh, sw] (default: kernel)"},
        {"padding", AT::IntList, false, "[ph, pw] or [top, left, bottom, right] (default 0)"},
        {"dilation", AT::IntList, false, "[dh, dw] (default [1, 1])"}},
       "max pooling over H and W of N x C x H x W; padding never wins");
  conv(OpKind::AvgPool2d, "avg_pool2d", 1, 1,
       {{"kernel", AT::IntList, true, "[kh, kw]"},
        {"stride", AT::IntList, false, "[sh, sw] (default: kernel)"},
        {"padding", AT::IntList, false, "[ph, pw] or [top, left, bottom, right] (default 0)"},
        {"count_include_pad", AT::Bool, false, "divide by the full window (default false)"}},
       "average pooling over H and W of N x C x H x W");
  t.push_back(OpInfo{OpKind::Constant, "constant", G::Constant, 0, 0, 1, R::Annotated,
                     {{"value", AT::Number, false, "a scalar (splat) or one number per element, row-major"},
                      {"data", AT::String, false,
                       "\"hex:...\" or \"base64:...\": raw little-endian elements (large tensors)"}},
                     "a constant tensor of the annotated type; exactly one of value/data"});
  t.push_back(OpInfo{OpKind::Attention, "attention", G::Composite, 3, 4, 1, R::Inferred,
                     {{"causal", AT::Bool, false, "mask keys after the query position (default false)"},
                      {"scale", AT::Float, false, "score scale (default 1/sqrt(head dim))"}},
                     "attention(q: ... x Sq x D, k: ... x Sk x D, v: ... x Sk x Dv [, mask]) -> ... x Sq x Dv"});
  // Accepted by every op: a hint for the grad transform (docs/autodiff.md).
  // Other passes keep it; CSE never merges an op that carries it.
  for (OpInfo &info : t)
    info.attrs.push_back({"checkpoint", AT::Bool, false,
                          "recompute in the backward pass instead of storing the result (default false)"});
  return t;
}

} // namespace

const std::vector<OpInfo> &allOps() {
  static const std::vector<OpInfo> table = [] {
    auto t = buildTable();
    assert(t.size() == size_t(OpKind::NumOps) && "op table misses an OpKind");
    for (size_t i = 0; i < t.size(); ++i)
      assert(size_t(t[i].kind) == i && "op table out of OpKind order");
    return t;
  }();
  return table;
}

const OpInfo &opInfo(OpKind kind) {
  assert(size_t(kind) < size_t(OpKind::NumOps) && "invalid OpKind");
  return allOps()[size_t(kind)];
}

const OpInfo *lookupOp(std::string_view name) {
  if (name == "where")
    name = "select";
  else if (name == "permute")
    name = "transpose";
  for (const auto &info : allOps())
    if (name == info.name)
      return &info;
  return nullptr;
}

static size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> similarOpNames(std::string_view name) {
  std::vector<std::pair<size_t, std::string>> scored;
  if (name.size() > 64)
    return {};
  for (const auto &info : allOps()) {
    std::string_view n = info.name;
    size_t score = editDistance(name, n);
    // "sum" -> "reduce_sum", "pool2d" -> "max_pool2d": a suffix match ranks first.
    if (name.size() >= 3 && n.size() > name.size() && n.substr(n.size() - name.size()) == name)
      score = 0;
    if (score <= 2)
      scored.emplace_back(score, info.name);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto &s : scored)
    out.push_back(std::move(s.second));
  return out;
}

} // namespace tessera::ir
