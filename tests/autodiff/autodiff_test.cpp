// core/autodiff beyond the per-rule numerics: bad input gives clear errors,
// unreachable inputs, grad() of a scalar loss, the gradient function as
// ordinary IR, and rematerialization (API option or `checkpoint` attribute)
// lowering the peak of live activations, also through the graph passes.
#include "autodiff/Autodiff.h"

#include "fusion/Fusion.h"
#include "passes/Passes.h"
#include "reference/Evaluator.h"
#include "runtime/BufferPlan.h"
#include "text/Parser.h"
#include "text/Printer.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace tessera;

namespace {

ir::Function parse(const std::string &text) {
  auto m = text::parseModule(text, "t.tsr");
  EXPECT_TRUE(m) << m.error().render();
  return m ? m->functions[0] : ir::Function{};
}

const char *kMixed = R"(
func @f(%x: tensor<B x 4 x f32>, %i: tensor<B x i64>, %unused: tensor<4 x f32>, %m: tensor<B x 4 x bool>)
    -> (tensor<f32>, tensor<B x i64>) {
  %y = tanh(%x)
  %s = reduce_sum(%y)
  %a = argmax(%x) {axis = 1}
  %k = add(%a, %i)
  return %s, %k
}
)";

TEST(Autodiff, IntegerInputIsAnError) {
  ir::Function fn = parse(kMixed);
  for (size_t bad : {size_t(1), size_t(3)}) {
    auto r = autodiff::grad(fn, {0, bad});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
    EXPECT_NE(r.error().message().find("not a float tensor"), std::string::npos) << r.error().message();
  }
}

TEST(Autodiff, NonDifferentiableLossIsAnError) {
  ir::Function fn = parse(kMixed);
  auto r = autodiff::grad(fn, {0}, /*lossOutput=*/1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(r.error().message().find("not differentiable"), std::string::npos) << r.error().message();
  // Out of range.
  auto r2 = autodiff::grad(fn, {0}, 7);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code(), ErrorCode::InvalidArgument);
  // No float output at all.
  ir::Function ints = parse("func @g(%x: tensor<4 x f32>) -> tensor<i64> {\n"
                            "  %a = argmax(%x) {axis = 0}\n  return %a\n}\n");
  auto r3 = autodiff::vjp(ints, {0});
  ASSERT_FALSE(r3);
  EXPECT_NE(r3.error().message().find("no differentiable output"), std::string::npos) << r3.error().message();
  // A non-scalar loss points at vjp.
  ir::Function vec = parse("func @h(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = exp(%x)\n  return %y\n}\n");
  auto r4 = autodiff::grad(vec, {0});
  ASSERT_FALSE(r4);
  EXPECT_NE(r4.error().message().find("use vjp"), std::string::npos) << r4.error().message();
}

TEST(Autodiff, UnreachableInputGetsZerosAndAWarning) {
  ir::Function fn = parse(kMixed);
  auto r = autodiff::grad(fn, {0, 2});
  ASSERT_TRUE(r) << r.error().render();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("%unused does not reach"), std::string::npos) << r->warnings[0];
  std::vector<ref::RefTensor> in{ref::RefTensor(ref::DType::F32, {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}),
                                 ref::RefTensor(ref::DType::I64, {2}, {1, 2}),
                                 ref::RefTensor(ref::DType::F32, {4}, {1, 1, 1, 1}),
                                 ref::RefTensor(ref::DType::Bool, {2, 4}, {1, 0, 1, 0, 1, 0, 1, 0})};
  auto out = ref::evaluate(r->function, in);
  ASSERT_TRUE(out) << out.error().render();
  ASSERT_EQ(out->size(), 4u);
  for (double v : (*out)[3].data)
    EXPECT_EQ(v, 0.0);
  // As an error on request.
  autodiff::VjpOptions strict;
  strict.unreachableIsError = true;
  auto s = autodiff::grad(fn, {2}, 0, strict);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("does not reach"), std::string::npos);
}

TEST(Autodiff, NamesAndIndicesResolve) {
  ir::Function fn = parse(kMixed);
  auto w = autodiff::resolveWrt(fn, {"%x", "2"});
  ASSERT_TRUE(w) << w.error().render();
  EXPECT_EQ(*w, (std::vector<size_t>{0, 2}));
  auto bad = autodiff::resolveWrt(fn, {"nope"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::NotFound);
  EXPECT_NE(bad.error().message().find("%x, %i, %unused, %m"), std::string::npos) << bad.error().message();
  auto twice = autodiff::grad(fn, {0, 0});
  ASSERT_FALSE(twice);
}

TEST(Autodiff, GradOfScalarLossAndSignature) {
  ir::Function fn = parse(R"(
func @loss(%x: tensor<B x 3 x f32>, %w: tensor<3 x 2 x f32>) -> tensor<f32> {
  %h = matmul(%x, %w)
  %r = relu(%h)
  %l = reduce_mean(%r)
  return %l
}
)");
  auto r = autodiff::grad(fn, {1});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ(r->function.name, "loss_grad");
  EXPECT_EQ(text::functionSignature(r->function),
            "func @loss_grad(%x: tensor<B x 3 x f32>, %w: tensor<3 x 2 x f32>) -> (tensor<f32>, tensor<3 x 2 x f32>)");
  EXPECT_EQ(r->function.value(r->function.returns[1]).name, "grad.w");
  // relu at exactly 0 has derivative 0: x = 0 gives a zero gradient, not NaN.
  std::vector<ref::RefTensor> in{ref::RefTensor(ref::DType::F32, {1, 3}, {0, 0, 0}),
                                 ref::RefTensor(ref::DType::F32, {3, 2}, {1, 2, 3, 4, 5, 6})};
  auto out = ref::evaluate(r->function, in);
  ASSERT_TRUE(out) << out.error().render();
  for (double v : (*out)[1].data)
    EXPECT_EQ(v, 0.0);
}

TEST(Autodiff, MaxTiesSplitEvenly) {
  ir::Function fn = parse(R"(
func @f(%a: tensor<3 x f64>, %b: tensor<3 x f64>) -> tensor<f64> {
  %m = max(%a, %b)
  %r = reduce_max(%m)
  return %r
}
)");
  auto r = autodiff::grad(fn, {0, 1});
  ASSERT_TRUE(r) << r.error().render();
  // a = b = [2, 2, 1]: the max 2 is tied twice in reduce_max (1/2 each) and
  // each element tied between a and b (1/2 each).
  auto out = ref::evaluate(r->function, {ref::RefTensor(ref::DType::F64, {3}, {2, 2, 1}),
                                         ref::RefTensor(ref::DType::F64, {3}, {2, 2, 1})});
  ASSERT_TRUE(out) << out.error().render();
  EXPECT_EQ((*out)[1].data, (std::vector<double>{0.25, 0.25, 0}));
  EXPECT_EQ((*out)[2].data, (std::vector<double>{0.25, 0.25, 0}));
}

TEST(Autodiff, TransformerBlockDifferentiates) {
  auto m = text::parseModule(R"(
func @blk(%x: tensor<B x S x D x f32>, %g: tensor<D x f32>, %b: tensor<D x f32>, %wq: tensor<D x D x f32>,
          %wk: tensor<D x D x f32>, %wv: tensor<D x D x f32>) -> tensor<B x S x D x f32> {
  %h = layer_norm(%x, %g, %b)
  %q = matmul(%h, %wq)
  %k = matmul(%h, %wk)
  %v = matmul(%h, %wv)
  %q4 = reshape(%q) : tensor<B x S x H x D/H x f32>
  %k4 = reshape(%k) : tensor<B x S x H x D/H x f32>
  %v4 = reshape(%v) : tensor<B x S x H x D/H x f32>
  %qh = transpose(%q4) {perm = [0, 2, 1, 3]}
  %kh = transpose(%k4) {perm = [0, 2, 1, 3]}
  %vh = transpose(%v4) {perm = [0, 2, 1, 3]}
  %att = attention(%qh, %kh, %vh) {causal = true}
  %at = transpose(%att) {perm = [0, 2, 1, 3]}
  %a = reshape(%at) : tensor<B x S x D x f32>
  %y = add(%x, %a)
  return %y
}
)",
                             "blk.tsr");
  ASSERT_TRUE(m) << m.error().render();
  auto r = autodiff::vjp(m->functions[0], {0, 1, 2, 3, 4, 5});
  ASSERT_TRUE(r) << r.error().render();
  std::string printed = text::printFunction(r->function);
  auto again = text::parseModule(printed, "g.tsr");
  ASSERT_TRUE(again) << again.error().render() << printed;
  EXPECT_EQ(text::printFunction(again->functions[0]), printed);
}

// A deep elementwise chain: without remat every tanh output is kept for the
// backward pass; with rematElementwise they are recomputed from x at each
// use, so the peak of live bytes drops, and the gradient is unchanged.
TEST(Autodiff, RematLowersPeakLiveBytes) {
  std::string body = "func @chain(%x: tensor<N x f32>) -> tensor<f32> {\n";
  std::string prev = "%x";
  for (int i = 0; i < 8; ++i) {
    std::string cur = "%t" + std::to_string(i);
    body += "  " + cur + " = tanh(" + prev + ")\n";
    prev = cur;
  }
  body += "  %l = reduce_sum(" + prev + ")\n  return %l\n}\n";
  ir::Function fn = parse(body);
  auto plain = autodiff::grad(fn, {0});
  ASSERT_TRUE(plain) << plain.error().render();
  autodiff::VjpOptions opts;
  opts.rematElementwise = true;
  auto remat = autodiff::grad(fn, {0}, 0, opts);
  ASSERT_TRUE(remat) << remat.error().render();
  ir::SymbolBindings sym{{"N", 1 << 16}};
  auto p0 = autodiff::peakLiveBytes(plain->function, sym);
  auto p1 = autodiff::peakLiveBytes(remat->function, sym);
  ASSERT_TRUE(p0 && p1);
  const int64_t act = int64_t(4) << 16; // one activation
  EXPECT_GE(*p0, 9 * act) << "x and the 8 tanh outputs are live at the end of the forward pass";
  EXPECT_LE(*p1, 5 * act) << "with remat only a few activations are live at once";
  std::printf("peak live bytes: %lld without remat, %lld with (N = 65536, f32)\n", (long long)*p0,
              (long long)*p1);

  // Selected values only: keeping t3 and recomputing the others stays below
  // the plain peak too.
  autodiff::VjpOptions some;
  some.remat = {"t0", "t1", "t2", "%t4", "t5", "t6"};
  auto sel = autodiff::grad(fn, {0}, 0, some);
  ASSERT_TRUE(sel) << sel.error().render();
  auto p2 = autodiff::peakLiveBytes(sel->function, sym);
  ASSERT_TRUE(p2);
  EXPECT_LT(*p2, *p0);

  // Same numbers.
  std::vector<ref::RefTensor> in{ref::RefTensor(ref::DType::F32, {5}, {0.3, -1.2, 0.7, 2.0, -0.4})};
  auto a = ref::evaluate(plain->function, in), b = ref::evaluate(remat->function, in),
       c = ref::evaluate(sel->function, in);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ((*a)[1].data, (*b)[1].data);
  EXPECT_EQ((*a)[1].data, (*c)[1].data);

  // Bad remat names.
  autodiff::VjpOptions bad;
  bad.remat = {"x"};
  auto e1 = autodiff::grad(fn, {0}, 0, bad);
  ASSERT_FALSE(e1);
  EXPECT_NE(e1.error().message().find("parameter"), std::string::npos);
  bad.remat = {"zz"};
  EXPECT_FALSE(autodiff::grad(fn, {0}, 0, bad));
}

// Eight `op`s chained over %x of `type`, marked `checkpoint` when asked;
// the loss is the sum of the last one, times a parameter %c if `weighted`.
std::string chain(const std::string &op, const std::string &type, bool checkpoint, bool weighted = false) {
  std::string body = "func @chain(%x: " + type + (weighted ? ", %c: " + type : "") + ") -> tensor<f32> {\n";
  std::string prev = "%x";
  for (int i = 0; i < 8; ++i) {
    std::string cur = "%t" + std::to_string(i);
    body += "  " + cur + " = " + op + "(" + prev + ")" + (checkpoint ? " {checkpoint = true}" : "") + "\n";
    prev = cur;
  }
  if (weighted) {
    body += "  %p = mul(" + prev + ", %c)\n";
    prev = "%p";
  }
  return body + "  %l = reduce_sum(" + prev + ")\n  return %l\n}\n";
}

std::string tanhChain(bool checkpoint) { return chain("tanh", "tensor<N x f32>", checkpoint); }

size_t countCheckpointed(const ir::Function &fn) {
  size_t n = 0;
  for (const ir::Operation &op : fn.ops)
    n += op.attrs.getBool("checkpoint", false);
  return n;
}

// `checkpoint = true` on ops in the source selects them for recomputation:
// same effect as the API option, and the graph passes (CSE) keep it.
TEST(Autodiff, CheckpointAttributeSurvivesGraphPasses) {
  ir::Function marked = parse(tanhChain(true)), plainSrc = parse(tanhChain(false));
  auto ck = autodiff::grad(marked, {0});
  ASSERT_TRUE(ck) << ck.error().render();
  auto plain = autodiff::grad(plainSrc, {0});
  ASSERT_TRUE(plain) << plain.error().render();
  // The forward copies drop the attribute; every recomputed clone carries it.
  for (size_t k = 0; k < 8; ++k)
    EXPECT_FALSE(ck->function.ops[k].attrs.find("checkpoint")) << k;
  EXPECT_GE(countCheckpointed(ck->function), 8u);
  EXPECT_EQ(countCheckpointed(plain->function), 0u);
  // Prints and parses back identically.
  std::string printed = text::printFunction(ck->function);
  EXPECT_NE(printed.find("{checkpoint = true}"), std::string::npos) << printed;
  auto again = text::parseModule(printed, "g.tsr");
  ASSERT_TRUE(again) << again.error().render();
  EXPECT_EQ(text::printFunction(again->functions[0]), printed);

  ir::SymbolBindings sym{{"N", 1 << 16}};
  const int64_t act = int64_t(4) << 16;
  auto peak = [&](const ir::Function &fn) {
    auto p = autodiff::peakLiveBytes(fn, sym);
    EXPECT_TRUE(p);
    return p ? *p : 0;
  };
  EXPECT_GE(peak(plain->function), 9 * act);
  EXPECT_LE(peak(ck->function), 5 * act);

  // Through the normal graph passes (canonicalize, constant fold, CSE, DCE).
  ir::Function plainOpt = plain->function, ckOpt = ck->function;
  ASSERT_FALSE(passes::runGraphPasses(plainOpt));
  ASSERT_FALSE(passes::runGraphPasses(ckOpt));
  EXPECT_GE(peak(plainOpt), 9 * act);
  EXPECT_LE(peak(ckOpt), 5 * act) << text::printFunction(ckOpt);
  // Without the marks on the clones, CSE merges them with their forward
  // twins and the peak is back where it was without remat.
  ir::Function unmarked = ck->function;
  for (ir::Operation &op : unmarked.ops)
    op.attrs.erase("checkpoint");
  ASSERT_FALSE(passes::runGraphPasses(unmarked));
  EXPECT_GE(peak(unmarked), 9 * act);

  // Same gradient, before and after the passes.
  std::vector<ref::RefTensor> in{ref::RefTensor(ref::DType::F32, {5}, {0.3, -1.2, 0.7, 2.0, -0.4})};
  auto a = ref::evaluate(plain->function, in), b = ref::evaluate(ck->function, in), c = ref::evaluate(ckOpt, in);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ((*a)[1].data, (*b)[1].data);
  EXPECT_EQ((*a)[1].data, (*c)[1].data);
}

// Through fusion and the runtime's buffer plan: softmaxes are heavy (one
// kernel each), so without remat every activation is stored until its
// backward use. With the marks the forward copies die as the forward goes,
// and fusion stores each adjoint of the backward chain (rather than
// recomputing the whole chain inside every later kernel, which would keep
// each recomputed activation alive to the end of the run).
TEST(Autodiff, CheckpointLowersFusedBufferPlanPeak) {
  const uint64_t act = 64 * 64 * 4;
  auto plan = [&](bool checkpoint) {
    auto g = autodiff::grad(parse(chain("softmax", "tensor<64 x 64 x f32>", checkpoint, true)), {0});
    EXPECT_TRUE(g) << g.error().render();
    if (!g)
      return runtime::BufferPlan{};
    EXPECT_FALSE(passes::runGraphPasses(g->function));
    auto fused = fusion::fuse(g->function);
    EXPECT_TRUE(fused) << fused.error().render();
    if (!fused)
      return runtime::BufferPlan{};
    auto liveness = runtime::computeLiveness(*fused);
    EXPECT_TRUE(liveness) << liveness.error().render();
    if (!liveness)
      return runtime::BufferPlan{};
    std::vector<uint64_t> sizes;
    for (const fusion::Intermediate &i : fused->intermediates) {
      uint64_t bytes = ir::dtypeBits(i.type.dtype) / 8;
      for (int64_t d : i.type.staticShape().value_or(std::vector<int64_t>{0}))
        bytes *= static_cast<uint64_t>(d);
      sizes.push_back(bytes);
    }
    return runtime::planBuffers(*liveness, sizes, runtime::findInPlaceCandidates(*fused, *liveness));
  };
  runtime::BufferPlan plain = plan(false), ck = plan(true);
  EXPECT_GE(plain.peakLiveBytes, 8 * act);
  EXPECT_LE(ck.peakLiveBytes, 4 * act);
  EXPECT_LE(ck.arenaBytes, 4 * act);
  EXPECT_GE(plain.arenaBytes, 8 * act);
}

// A checkpointed attention recomputes its whole decomposition.
TEST(Autodiff, CheckpointedAttention) {
  const char *src = R"(
func @f(%q: tensor<2 x 4 x 8 x f32>, %k: tensor<2 x 4 x 8 x f32>, %v: tensor<2 x 4 x 8 x f32>) -> tensor<f32> {
  %a = attention(%q, %k, %v) {causal = true, checkpoint = true}
  %s = reduce_sum(%a)
  return %s
}
)";
  ir::Function fn = parse(src);
  auto ck = autodiff::grad(fn, {0, 1, 2});
  ASSERT_TRUE(ck) << ck.error().render();
  EXPECT_GE(countCheckpointed(ck->function), 4u) << text::printFunction(ck->function);
  std::string plainSrc = src;
  plainSrc.erase(plainSrc.find(", checkpoint = true"), std::string(", checkpoint = true").size());
  auto plain = autodiff::grad(parse(plainSrc), {0, 1, 2});
  ASSERT_TRUE(plain) << plain.error().render();
  EXPECT_EQ(countCheckpointed(plain->function), 0u);
  std::vector<ref::RefTensor> in;
  for (int i = 0; i < 3; ++i) {
    std::vector<double> d(64);
    for (size_t j = 0; j < d.size(); ++j)
      d[j] = std::sin(double(j * 7 + i * 13)) * 0.5;
    in.emplace_back(ref::DType::F32, ref::Shape{2, 4, 8}, d);
  }
  auto a = ref::evaluate(plain->function, in), b = ref::evaluate(ck->function, in);
  ASSERT_TRUE(a && b);
  for (size_t i = 0; i < a->size(); ++i)
    EXPECT_EQ((*a)[i].data, (*b)[i].data) << i;

  // Naming the attention's result in `remat` selects the same decomposition.
  autodiff::VjpOptions opts;
  opts.remat = {"a"};
  auto named = autodiff::grad(parse(plainSrc), {0, 1, 2}, 0, opts);
  ASSERT_TRUE(named) << named.error().render();
  EXPECT_EQ(text::printFunction(named->function), text::printFunction(ck->function));
}

} // namespace
