// Every vjp rule of core/autodiff against central finite differences of the
// float64 reference interpreter, on random inputs (never zeros, away from
// non-differentiable points), with broadcasting and symbolic shapes.
//
// For f with float outputs y_k and random cotangents c_k, the vjp function
// must return  d/dx_j sum_k <c_k, y_k(x)>  which is compared with
//   (L(x + h e_j) - L(x - h e_j)) / 2h  for every element j of every input.
#include "autodiff/Autodiff.h"

#include "reference/Evaluator.h"
#include "text/Parser.h"
#include "text/Printer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

using namespace tessera;

namespace {

struct FdCase {
  std::string name;
  std::string body; // function text, named @f
  std::vector<std::vector<int64_t>> shapes; // concrete shape per parameter
  double lo = -2.0, hi = 2.0;               // range of float inputs (magnitude >= 0.1)
  std::map<size_t, std::vector<double>> fixed = {}; // values of integer parameters
  double h = 1e-5, tol = 1e-6;
};

std::ostream &operator<<(std::ostream &os, const FdCase &c) { return os << c.name; }

ref::RefTensor makeInput(const ir::TensorType &t, const std::vector<int64_t> &shape, const FdCase &c, size_t index,
                         std::mt19937_64 &rng) {
  ref::DType dt = *ref::fromIRDType(t.dtype);
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  std::vector<double> data(static_cast<size_t>(n));
  if (auto it = c.fixed.find(index); it != c.fixed.end()) {
    data = it->second;
  } else {
    std::uniform_real_distribution<double> u(c.lo, c.hi);
    for (double &v : data) {
      do
        v = u(rng);
      while (std::fabs(v) < 0.1); // never zero, away from relu/abs kinks
    }
  }
  return ref::RefTensor(dt, shape, std::move(data));
}

double dot(const ref::RefTensor &a, const ref::RefTensor &b) {
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i)
    s += a.data[i] * b.data[i];
  return s;
}

class AutodiffFd : public ::testing::TestWithParam<FdCase> {};

TEST_P(AutodiffFd, MatchesCentralDifferences) {
  const FdCase &c = GetParam();
  auto m = text::parseModule(c.body, c.name + ".tsr");
  ASSERT_TRUE(m) << m.error().render();
  const ir::Function &fn = m->functions[0];
  ASSERT_EQ(fn.params.size(), c.shapes.size());
  std::vector<size_t> wrt;
  for (size_t i = 0; i < fn.params.size(); ++i)
    if (ir::isFloat(fn.typeOf(fn.params[i]).dtype))
      wrt.push_back(i);
  auto res = autodiff::vjp(fn, wrt);
  ASSERT_TRUE(res) << res.error().render();
  EXPECT_TRUE(res->warnings.empty()) << res->warnings[0];

  // The gradient function is ordinary IR: it prints and parses back.
  std::string printed = text::printFunction(res->function);
  auto reparsed = text::parseModule(printed, "grad.tsr");
  ASSERT_TRUE(reparsed) << reparsed.error().render() << "\n" << printed;
  EXPECT_EQ(text::printFunction(reparsed->functions[0]), printed);

  std::mt19937_64 rng(std::hash<std::string>{}(c.name));
  std::vector<ref::RefTensor> inputs;
  for (size_t i = 0; i < fn.params.size(); ++i)
    inputs.push_back(makeInput(fn.typeOf(fn.params[i]), c.shapes[i], c, i, rng));
  auto y = ref::evaluate(fn, inputs);
  ASSERT_TRUE(y) << y.error().render();
  std::vector<ref::RefTensor> cts;
  std::vector<ref::RefTensor> gradInputs = inputs;
  for (size_t k = 0; k < fn.returns.size(); ++k) {
    if (!ir::isFloat(fn.resultTypes[k].dtype)) {
      cts.emplace_back();
      continue;
    }
    ref::RefTensor ct = (*y)[k];
    std::uniform_real_distribution<double> u(0.5, 1.5);
    for (double &v : ct.data)
      v = u(rng) * (u(rng) < 1.0 ? -1 : 1);
    cts.push_back(ct);
    gradInputs.push_back(ct);
  }
  auto g = ref::evaluate(res->function, gradInputs);
  ASSERT_TRUE(g) << g.error().render() << "\n" << printed;
  ASSERT_EQ(g->size(), fn.returns.size() + wrt.size());
  // The forward outputs are unchanged.
  for (size_t k = 0; k < fn.returns.size(); ++k)
    for (size_t e = 0; e < (*y)[k].data.size(); ++e)
      EXPECT_NEAR((*g)[k].data[e], (*y)[k].data[e], 1e-9 * (1 + std::fabs((*y)[k].data[e])));

  auto loss = [&](const std::vector<ref::RefTensor> &in) {
    auto out = ref::evaluate(fn, in);
    EXPECT_TRUE(out) << out.error().render();
    double s = 0;
    for (size_t k = 0; k < fn.returns.size(); ++k)
      if (ir::isFloat(fn.resultTypes[k].dtype))
        s += dot(cts[k], (*out)[k]);
    return s;
  };
  int checked = 0;
  for (size_t w = 0; w < wrt.size(); ++w) {
    size_t p = wrt[w];
    const ref::RefTensor &gp = (*g)[fn.returns.size() + w];
    ASSERT_EQ(gp.shape, inputs[p].shape) << "gradient of %" << fn.value(fn.params[p]).name;
    for (size_t e = 0; e < inputs[p].data.size(); ++e) {
      auto plus = inputs, minus = inputs;
      plus[p].data[e] += c.h;
      minus[p].data[e] -= c.h;
      double fd = (loss(plus) - loss(minus)) / (2 * c.h);
      EXPECT_NEAR(gp.data[e], fd, c.tol * (1 + std::fabs(fd)))
          << "d/d%" << fn.value(fn.params[p]).name << "[" << e << "]\n" << printed;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

std::string fn1(const std::string &params, const std::string &result, const std::string &body) {
  return "func @f(" + params + ") -> " + result + " {\n" + body + "\n}\n";
}

// A unary op applied elementwise to x: tensor<B x 3 x f64> (B symbolic).
FdCase unaryCase(const std::string &op, double lo = -2, double hi = 2, const std::string &attrs = "") {
  return {op + (attrs.empty() ? "" : "_attr"),
          fn1("%x: tensor<B x 3 x f64>", "tensor<B x 3 x f64>", "  %y = " + op + "(%x)" + attrs + "\n  return %y"),
          {{2, 3}},
          lo,
          hi};
}

std::vector<FdCase> unaryCases() {
  std::vector<FdCase> v{
      unaryCase("neg"),       unaryCase("abs"),     unaryCase("exp"),        unaryCase("log", 0.2, 3),
      unaryCase("sqrt", 0.2, 3), unaryCase("rsqrt", 0.2, 3), unaryCase("tanh"), unaryCase("sigmoid"),
      unaryCase("relu"),      unaryCase("gelu"),    unaryCase("silu"),       unaryCase("erf"),
      unaryCase("sin"),       unaryCase("cos"),     unaryCase("reciprocal", 0.2, 3),
  };
  v.push_back(unaryCase("gelu", -2, 2, " {approximate = \"tanh\"}"));
  v.back().name = "gelu_tanh";
  // floor / ceil / sign have zero derivative: only the product's other factor counts.
  for (const char *op : {"floor", "ceil", "sign"})
    v.push_back({std::string(op),
                 fn1("%x: tensor<4 x f64>", "tensor<4 x f64>",
                     std::string("  %a = ") + op + "(%x)\n  %y = mul(%a, %x)\n  return %y"),
                 {{4}},
                 0.15,
                 2.85});
  for (FdCase &c : v)
    c.name = "unary_" + c.name;
  return v;
}

FdCase binaryCase(const std::string &op, const std::string &ta, const std::string &tb, const std::string &tr,
                  std::vector<int64_t> sa, std::vector<int64_t> sb, double lo = -2, double hi = 2) {
  return {"binary_" + op + "_" + std::to_string(sa.size()) + "x" + std::to_string(sb.size()),
          fn1("%a: " + ta + ", %b: " + tb, tr, "  %y = " + op + "(%a, %b)\n  return %y"),
          {sa, sb},
          lo,
          hi};
}

std::vector<FdCase> binaryCases() {
  std::vector<FdCase> v;
  for (const char *op : {"add", "sub", "mul", "div", "max", "min"}) {
    // [B x 3] with [3]; [2 x 1 x 3] with [4 x 1]; [B x 3] with [B x 1].
    v.push_back(binaryCase(op, "tensor<B x 3 x f64>", "tensor<3 x f64>", "tensor<B x 3 x f64>", {2, 3}, {3}));
    v.push_back(binaryCase(op, "tensor<2 x 1 x 3 x f64>", "tensor<4 x 1 x f64>", "tensor<2 x 4 x 3 x f64>",
                           {2, 1, 3}, {4, 1}));
    v.back().name += "_stretch";
    v.push_back(binaryCase(op, "tensor<B x 3 x f64>", "tensor<B x 1 x f64>", "tensor<B x 3 x f64>", {3, 3}, {3, 1}));
    v.back().name += "_keep";
  }
  v.push_back(binaryCase("pow", "tensor<B x 3 x f64>", "tensor<3 x f64>", "tensor<B x 3 x f64>", {2, 3}, {3}, 0.3, 2));
  v.push_back(binaryCase("mod", "tensor<2 x 3 x f64>", "tensor<3 x f64>", "tensor<2 x 3 x f64>", {2, 3}, {3}, 0.7,
                         2.9));
  // A scalar against a tensor.
  v.push_back(binaryCase("mul", "tensor<f64>", "tensor<2 x 3 x f64>", "tensor<2 x 3 x f64>", {}, {2, 3}));
  v.back().name += "_scalar";
  return v;
}

std::vector<FdCase> miscCases() {
  std::vector<FdCase> v;
  v.push_back({"select_compare",
               fn1("%a: tensor<B x 3 x f64>, %b: tensor<3 x f64>", "tensor<B x 3 x f64>",
                   "  %c = gt(%a, %b)\n  %b2 = mul(%b, %b)\n  %y = select(%c, %a, %b2)\n  return %y"),
               {{4, 3}, {3}}});
  v.push_back({"select_logical",
               fn1("%a: tensor<4 x f64>, %b: tensor<4 x f64>", "tensor<4 x f64>",
                   "  %z = constant() {value = 0.0} : tensor<f64>\n  %p = lt(%a, %z)\n  %q = ge(%b, %z)\n"
                   "  %r = le(%a, %b)\n  %s = ne(%a, %b)\n  %e = eq(%a, %a)\n"
                   "  %c1 = and(%p, %q)\n  %c2 = or(%c1, %r)\n  %c3 = xor(%c2, %s)\n  %c4 = not(%c3)\n"
                   "  %c5 = and(%c4, %e)\n  %y = select(%c5, %a, %b)\n  return %y"),
               {{4}, {4}}});
  v.push_back({"cast_f32",
               fn1("%x: tensor<3 x f64>", "tensor<3 x f64>",
                   "  %a = cast(%x) {dtype = f32}\n  %b = mul(%a, %a)\n  %y = cast(%b) {dtype = f64}\n  return %y"),
               {{3}},
               -2,
               2,
               {},
               1e-3,
               2e-3});
  v.push_back({"cast_int_is_constant",
               fn1("%x: tensor<3 x f64>", "tensor<3 x f64>",
                   "  %i = cast(%x) {dtype = i64}\n  %a = cast(%i) {dtype = f64}\n  %y = mul(%a, %x)\n  return %y"),
               {{3}},
               0.2,
               2.8});
  // Reductions.
  auto red = [&](const std::string &op, const std::string &attrs, const std::string &rt, double lo = -2) {
    v.push_back({"reduce_" + op + "_" + std::to_string(v.size()),
                 fn1("%x: tensor<B x 3 x 4 x f64>", rt, "  %y = " + op + "(%x)" + attrs + "\n  return %y"),
                 {{2, 3, 4}},
                 lo,
                 2});
  };
  red("reduce_sum", " {axes = [1]}", "tensor<B x 4 x f64>");
  red("reduce_sum", "", "tensor<f64>");
  red("reduce_sum", " {axes = [-1, 0], keepdim = true}", "tensor<1 x 3 x 1 x f64>");
  red("reduce_mean", " {axes = [0, 2], keepdim = true}", "tensor<1 x 3 x 1 x f64>"); // symbolic count
  red("reduce_mean", " {axes = [2]}", "tensor<B x 3 x f64>");
  red("reduce_max", " {axes = [1]}", "tensor<B x 4 x f64>");
  red("reduce_max", "", "tensor<f64>");
  red("reduce_min", " {axes = [2], keepdim = true}", "tensor<B x 3 x 1 x f64>");
  red("reduce_prod", " {axes = [1]}", "tensor<B x 4 x f64>", 0.5);
  v.push_back({"argmax_argmin_constant",
               fn1("%x: tensor<3 x 4 x f64>", "tensor<3 x f64>",
                   "  %i = argmax(%x) {axis = 1}\n  %j = argmin(%x) {axis = 1}\n  %k = add(%i, %j)\n"
                   "  %a = cast(%k) {dtype = f64}\n  %s = reduce_sum(%x) {axes = [1]}\n  %y = mul(%s, %a)\n"
                   "  return %y"),
               {{3, 4}}});
  // Normalizations.
  v.push_back({"softmax_last", fn1("%x: tensor<B x 5 x f64>", "tensor<B x 5 x f64>",
                                   "  %y = softmax(%x) {axis = -1}\n  return %y"),
               {{3, 5}}});
  v.push_back({"softmax_axis0", fn1("%x: tensor<4 x 3 x f64>", "tensor<4 x 3 x f64>",
                                    "  %y = softmax(%x) {axis = 0}\n  return %y"),
               {{4, 3}}});
  v.push_back({"log_softmax", fn1("%x: tensor<B x 5 x f64>", "tensor<B x 5 x f64>",
                                  "  %y = log_softmax(%x) {axis = 1}\n  return %y"),
               {{3, 5}}});
  v.push_back({"layer_norm_affine",
               fn1("%x: tensor<B x 6 x f64>, %g: tensor<6 x f64>, %b: tensor<6 x f64>", "tensor<B x 6 x f64>",
                   "  %y = layer_norm(%x, %g, %b) {epsilon = 1e-5}\n  return %y"),
               {{3, 6}, {6}, {6}}});
  v.push_back({"layer_norm_axis1",
               fn1("%x: tensor<2 x 3 x 4 x f64>, %g: tensor<3 x 4 x f64>", "tensor<2 x 3 x 4 x f64>",
                   "  %y = layer_norm(%x, %g) {axis = 1}\n  return %y"),
               {{2, 3, 4}, {3, 4}}});
  v.push_back({"layer_norm_plain", fn1("%x: tensor<3 x 5 x f64>", "tensor<3 x 5 x f64>",
                                       "  %y = layer_norm(%x)\n  return %y"),
               {{3, 5}}});
  v.push_back({"rms_norm_gamma",
               fn1("%x: tensor<B x 6 x f64>, %g: tensor<6 x f64>", "tensor<B x 6 x f64>",
                   "  %y = rms_norm(%x, %g) {epsilon = 1e-6}\n  return %y"),
               {{3, 6}, {6}}});
  v.push_back({"rms_norm_plain", fn1("%x: tensor<2 x 3 x 4 x f64>", "tensor<2 x 3 x 4 x f64>",
                                     "  %y = rms_norm(%x) {axis = 1}\n  return %y"),
               {{2, 3, 4}}});
  // Matmul, NumPy style.
  auto mm = [&](const std::string &name, const std::string &ta, const std::string &tb, const std::string &tr,
                std::vector<int64_t> sa, std::vector<int64_t> sb) {
    v.push_back({"matmul_" + name, fn1("%a: " + ta + ", %b: " + tb, tr, "  %y = matmul(%a, %b)\n  return %y"),
                 {sa, sb}});
  };
  mm("2d", "tensor<B x 4 x f64>", "tensor<4 x 3 x f64>", "tensor<B x 3 x f64>", {2, 4}, {4, 3});
  mm("batch_broadcast", "tensor<2 x 1 x 3 x 4 x f64>", "tensor<5 x 4 x 2 x f64>", "tensor<2 x 5 x 3 x 2 x f64>",
     {2, 1, 3, 4}, {5, 4, 2});
  // A weight shared by a symbolic batch: its gradient folds the batch into K.
  mm("batched_weight", "tensor<B x S x 4 x f64>", "tensor<4 x 3 x f64>", "tensor<B x S x 3 x f64>", {2, 3, 4},
     {4, 3});
  mm("vec_mat", "tensor<4 x f64>", "tensor<2 x 4 x 3 x f64>", "tensor<2 x 3 x f64>", {4}, {2, 4, 3});
  mm("mat_vec", "tensor<2 x 3 x 4 x f64>", "tensor<4 x f64>", "tensor<2 x 3 x f64>", {2, 3, 4}, {4});
  mm("vec_vec", "tensor<4 x f64>", "tensor<4 x f64>", "tensor<f64>", {4}, {4});
  // Data movement.
  auto mv = [&](const std::string &name, const std::string &t, const std::string &rt, const std::string &body,
                std::vector<int64_t> s) {
    v.push_back({"move_" + name, fn1("%x: " + t, rt, body + "\n  return %y"), {s}});
  };
  mv("transpose", "tensor<2 x 3 x 4 x f64>", "tensor<4 x 2 x 3 x f64>", "  %y = transpose(%x) {perm = [2, 0, 1]}",
     {2, 3, 4});
  mv("transpose_default", "tensor<B x 3 x f64>", "tensor<3 x B x f64>", "  %y = transpose(%x)", {2, 3});
  mv("reshape", "tensor<2 x 6 x f64>", "tensor<3 x 4 x f64>", "  %y = reshape(%x) {shape = [3, -1]}", {2, 6});
  mv("reshape_symbolic", "tensor<B x 6 x f64>", "tensor<B x 2 x 3 x f64>",
     "  %y = reshape(%x) : tensor<B x 2 x 3 x f64>", {3, 6});
  mv("broadcast_to", "tensor<B x 1 x f64>", "tensor<2 x B x 4 x f64>",
     "  %y = broadcast_to(%x) : tensor<2 x B x 4 x f64>", {3, 1});
  mv("expand_dims", "tensor<B x 3 x f64>", "tensor<1 x B x 3 x 1 x f64>", "  %y = expand_dims(%x) {axes = [0, -1]}",
     {2, 3});
  mv("squeeze_axes", "tensor<2 x 1 x 3 x 1 x f64>", "tensor<2 x 3 x 1 x f64>", "  %y = squeeze(%x) {axes = [1]}",
     {2, 1, 3, 1});
  mv("squeeze_default", "tensor<1 x B x 1 x f64>", "tensor<B x f64>", "  %y = squeeze(%x)", {1, 3, 1});
  mv("slice_step1", "tensor<5 x 6 x f64>", "tensor<3 x 6 x f64>",
     "  %y = slice(%x) {starts = [1], ends = [-1], axes = [0]}", {5, 6});
  mv("slice_steps", "tensor<7 x 6 x f64>", "tensor<3 x 3 x f64>",
     "  %y = slice(%x) {starts = [0, -5], ends = [100, 6], steps = [3, 2]}", {7, 6});
  mv("slice_symbolic", "tensor<S x 3 x f64>", "tensor<S - 3 x 3 x f64>",
     "  %y = slice(%x) {starts = [1], ends = [-2]}", {6, 3});
  mv("pad", "tensor<B x 3 x f64>", "tensor<B + 3 x 5 x f64>",
     "  %y = pad(%x) {pads = [1, 2, 0, 2], value = 1.5}", {2, 3});
  mv("split_sizes", "tensor<7 x 2 x f64>", "tensor<4 x 2 x f64>",
     "  %p, %q, %r = split(%x) {axis = 0, sizes = [2, 4, 1]}\n  %y = mul(%q, %q)", {7, 2});
  mv("split_num_symbolic", "tensor<2 x S x f64>", "tensor<2 x S/2 x f64>",
     "  %p, %q = split(%x) {axis = 1, num = 2}\n  %y = mul(%p, %q)", {2, 6});
  v.push_back({"move_concat_static",
               fn1("%a: tensor<2 x 1 x f64>, %b: tensor<2 x 3 x f64>, %c: tensor<2 x 2 x f64>", "tensor<2 x 6 x f64>",
                   "  %y = concat(%a, %b, %c) {axis = 1}\n  return %y"),
               {{2, 1}, {2, 3}, {2, 2}}});
  v.push_back({"move_concat_symbolic",
               fn1("%a: tensor<2 x f64>, %b: tensor<S x f64>, %c: tensor<3 x f64>", "tensor<S + 5 x f64>",
                   "  %y = concat(%a, %b, %c) {axis = 0}\n  return %y"),
               {{2}, {4}, {3}}});
  v.push_back({"move_gather_axis0",
               fn1("%x: tensor<5 x 3 x f64>, %i: tensor<4 x i64>", "tensor<4 x 3 x f64>",
                   "  %y = gather(%x, %i) {axis = 0}\n  return %y"),
               {{5, 3}, {4}},
               -2,
               2,
               {{1, {3, -1, 3, 0}}}});
  v.push_back({"move_gather_axis1_2d",
               fn1("%x: tensor<2 x 5 x 3 x f64>, %i: tensor<2 x 2 x i32>", "tensor<2 x 2 x 2 x 3 x f64>",
                   "  %y = gather(%x, %i) {axis = 1}\n  return %y"),
               {{2, 5, 3}, {2, 2}},
               -2,
               2,
               {{1, {4, 1, 1, -5}}}});
  v.push_back({"move_gather_symbolic",
               fn1("%x: tensor<N x 3 x f64>, %i: tensor<B x i64>", "tensor<B x 3 x f64>",
                   "  %y = gather(%x, %i)\n  return %y"),
               {{4, 3}, {3}},
               -2,
               2,
               {{1, {2, -1, 2}}}});
  v.push_back({"iota_constant",
               fn1("%x: tensor<3 x 4 x f64>", "tensor<3 x 4 x f64>",
                   "  %i = iota() {axis = 1} : tensor<3 x 4 x f64>\n"
                   "  %c = constant() {value = [1, 2, 3, 4]} : tensor<4 x f64>\n"
                   "  %a = mul(%x, %i)\n  %y = add(%a, %c)\n  return %y"),
               {{3, 4}}});
  // Convolution and pooling.
  auto conv = [&](const std::string &name, const std::string &params, const std::string &rt,
                  const std::string &attrs, std::vector<std::vector<int64_t>> shapes, bool bias) {
    v.push_back({"conv2d_" + name,
                 fn1(params, rt, std::string("  %y = conv2d(%x, %w") + (bias ? ", %b)" : ")") + attrs +
                                     "\n  return %y"),
                 std::move(shapes)});
  };
  conv("basic", "%x: tensor<2 x 3 x 5 x 5 x f64>, %w: tensor<4 x 3 x 3 x 3 x f64>", "tensor<2 x 4 x 5 x 5 x f64>",
       " {padding = [1, 1]}", {{2, 3, 5, 5}, {4, 3, 3, 3}}, false);
  conv("stride_asym_pad_bias",
       "%x: tensor<1 x 2 x 6 x 7 x f64>, %w: tensor<3 x 2 x 3 x 2 x f64>, %b: tensor<3 x f64>",
       "tensor<1 x 3 x 4 x 3 x f64>", " {stride = [2, 3], padding = [1, 0, 2, 1]}",
       {{1, 2, 6, 7}, {3, 2, 3, 2}, {3}}, true);
  conv("dilation", "%x: tensor<1 x 2 x 7 x 6 x f64>, %w: tensor<2 x 2 x 2 x 3 x f64>", "tensor<1 x 2 x 5 x 2 x f64>",
       " {dilation = [2, 2]}", {{1, 2, 7, 6}, {2, 2, 2, 3}}, false);
  conv("groups_bias", "%x: tensor<2 x 4 x 5 x 4 x f64>, %w: tensor<6 x 2 x 3 x 3 x f64>, %b: tensor<6 x f64>",
       "tensor<2 x 6 x 3 x 2 x f64>", " {groups = 2, stride = [1, 1]}", {{2, 4, 5, 4}, {6, 2, 3, 3}, {6}}, true);
  conv("big_pad_stride", "%x: tensor<1 x 1 x 5 x 5 x f64>, %w: tensor<1 x 1 x 2 x 2 x f64>",
       "tensor<1 x 1 x 4 x 4 x f64>", " {stride = [2, 2], padding = [2, 2]}", {{1, 1, 5, 5}, {1, 1, 2, 2}}, false);
  auto pool = [&](const std::string &name, const std::string &op, const std::string &t, const std::string &rt,
                  const std::string &attrs, std::vector<int64_t> s) {
    v.push_back({"pool_" + name, fn1("%x: " + t, rt, "  %y = " + op + "(%x)" + attrs + "\n  return %y"), {s}});
  };
  pool("max_2x2", "max_pool2d", "tensor<2 x 2 x 4 x 6 x f64>", "tensor<2 x 2 x 2 x 3 x f64>", " {kernel = [2, 2]}",
       {2, 2, 4, 6});
  pool("max_overlap_pad", "max_pool2d", "tensor<1 x 2 x 5 x 5 x f64>", "tensor<1 x 2 x 5 x 5 x f64>",
       " {kernel = [3, 3], stride = [1, 1], padding = [1, 1]}", {1, 2, 5, 5});
  pool("max_dilated", "max_pool2d", "tensor<1 x 1 x 6 x 6 x f64>", "tensor<1 x 1 x 2 x 2 x f64>",
       " {kernel = [2, 2], stride = [2, 2], dilation = [2, 2]}", {1, 1, 6, 6});
  pool("avg_2x2", "avg_pool2d", "tensor<2 x 2 x 4 x 6 x f64>", "tensor<2 x 2 x 2 x 3 x f64>", " {kernel = [2, 2]}",
       {2, 2, 4, 6});
  pool("avg_pad_exclude", "avg_pool2d", "tensor<1 x 2 x 5 x 5 x f64>", "tensor<1 x 2 x 3 x 3 x f64>",
       " {kernel = [3, 3], stride = [2, 2], padding = [1, 1]}", {1, 2, 5, 5});
  pool("avg_pad_include", "avg_pool2d", "tensor<1 x 2 x 5 x 5 x f64>", "tensor<1 x 2 x 3 x 3 x f64>",
       " {kernel = [3, 3], stride = [2, 2], padding = [1, 1], count_include_pad = true}", {1, 2, 5, 5});
  // Attention (through its decomposition).
  const std::string qkv = "%q: tensor<B x 2 x 3 x 4 x f64>, %k: tensor<B x 2 x 5 x 4 x f64>, "
                          "%v: tensor<B x 2 x 5 x 3 x f64>";
  v.push_back({"attention_plain", fn1(qkv, "tensor<B x 2 x 3 x 3 x f64>", "  %y = attention(%q, %k, %v)\n  return %y"),
               {{2, 2, 3, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}}});
  v.push_back({"attention_mask_scale",
               fn1(qkv + ", %m: tensor<3 x 5 x f64>", "tensor<B x 2 x 3 x 3 x f64>",
                   "  %y = attention(%q, %k, %v, %m) {scale = 0.3}\n  return %y"),
               {{1, 2, 3, 4}, {1, 2, 5, 4}, {1, 2, 5, 3}, {3, 5}}});
  v.push_back({"attention_causal_symbolic_d",
               fn1("%q: tensor<2 x S x D x f64>, %k: tensor<2 x S x D x f64>, %v: tensor<2 x S x D x f64>",
                   "tensor<2 x S x D x f64>", "  %y = attention(%q, %k, %v) {causal = true}\n  return %y"),
               {{2, 4, 3}, {2, 4, 3}, {2, 4, 3}}});
  // Several outputs (one of them an integer), a value used twice, a
  // returned parameter.
  v.push_back({"multi_output",
               fn1("%x: tensor<3 x 4 x f64>, %w: tensor<4 x f64>",
                   "(tensor<3 x f64>, tensor<3 x i64>, tensor<3 x 4 x f64>, tensor<4 x f64>)",
                   "  %a = mul(%x, %w)\n  %t = tanh(%a)\n  %u = mul(%t, %a)\n  %s = reduce_sum(%u) {axes = [1]}\n"
                   "  %i = argmax(%u) {axis = 1}\n  return %s, %i, %t, %w"),
               {{3, 4}, {4}}});
  return v;
}

std::vector<FdCase> allCases() {
  std::vector<FdCase> v = unaryCases();
  for (auto &c : binaryCases())
    v.push_back(c);
  for (auto &c : miscCases())
    v.push_back(c);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Rules, AutodiffFd, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<FdCase> &info) {
                           std::string n = info.param.name;
                           for (char &ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           return n;
                         });

// Every op of the registry is exercised by at least one case above (a new op
// without a rule and a test fails here).
TEST(AutodiffCoverage, EveryOpHasACase) {
  std::set<ir::OpKind> seen;
  for (const FdCase &c : allCases()) {
    auto m = text::parseModule(c.body, "c.tsr");
    ASSERT_TRUE(m) << c.name << ": " << m.error().render();
    for (const auto &op : m->functions[0].ops)
      seen.insert(op.kind);
  }
  for (const ir::OpInfo &info : ir::allOps())
    EXPECT_TRUE(seen.count(info.kind)) << "no finite-difference case uses '" << info.name << "'";
}

} // namespace
