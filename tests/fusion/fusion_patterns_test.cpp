// Fusion rules: kernel counts of fused patterns and their numerics, up to
// the transformer block of docs/examples.
#include "TestUtil.h"

#include "shape/Decompose.h"

#include <fstream>
#include <regex>
#include <sstream>

using namespace tessera;
using namespace tessera::fusiontest;
using ir::OpKind;

namespace {

std::string readExample(const std::string &name) {
  std::ifstream in(std::string(TESSERA_EXAMPLES_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FusionPatterns, ElementwiseChainIsOneKernel) {
  Case c;
  auto x = c.param("tensor<B x 33 x f32>");
  auto y = c.param("tensor<33 x f32>");
  auto a = c.op(OpKind::Add, {x, y});
  auto b = c.op(OpKind::Mul, {a, a});
  auto e = c.op(OpKind::Tanh, {b});
  auto f = c.op(OpKind::Sub, {e, x});
  auto g = c.op(OpKind::Sigmoid, {f});
  ir::Function fn = c.finish({g});
  auto p = checkFunction(fn, {{{2, 33}, {33}}, {{5, 33}, {33}}}, kernels(1));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].fusedOps.size(), 5u);
  EXPECT_TRUE(p.intermediates.empty());
}

TEST(FusionPatterns, MatmulBiasReluResidualIsOneKernel) {
  Case c;
  auto x = c.param("tensor<B x 16 x f32>");
  auto w = c.param("tensor<16 x 16 x f32>");
  auto bias = c.param("tensor<16 x f32>");
  auto m = c.op(OpKind::Matmul, {x, w});
  auto r = c.op(OpKind::Relu, {c.op(OpKind::Add, {m, bias})});
  ir::Function fn1 = c.finish({r});
  auto p1 = checkFunction(fn1, {{{3, 16}, {16, 16}, {16}}}, kernels(1));
  ASSERT_EQ(p1.schedule.kernels.size(), 1u);
  EXPECT_EQ(p1.schedule.kernels[0].kind, schedule::Kernel::Kind::Matmul);

  Case d;
  x = d.param("tensor<B x 16 x f32>");
  w = d.param("tensor<16 x 16 x f32>");
  bias = d.param("tensor<16 x f32>");
  m = d.op(OpKind::Matmul, {x, w});
  auto g = d.op(OpKind::Gelu, {d.op(OpKind::Add, {m, bias})});
  auto res = d.op(OpKind::Add, {g, x});
  ir::Function fn2 = d.finish({res});
  auto p2 = checkFunction(fn2, {{{4, 16}, {16, 16}, {16}}, {{1, 16}, {16, 16}, {16}}}, kernels(1));
  ASSERT_EQ(p2.kernels.size(), 1u);
  EXPECT_EQ(p2.kernels[0].fusedOps, (std::vector<std::string>{"matmul", "add", "gelu", "add"}));
}

TEST(FusionPatterns, ReductionPrologueAndEpilogue) {
  Case c;
  auto x = c.param("tensor<B x 12 x f32>");
  auto sq = c.op(OpKind::Mul, {x, x});
  auto s = c.op(OpKind::ReduceSum, {sq}, Attrs().is("axes", {1}));
  auto r = c.op(OpKind::Sqrt, {s});
  ir::Function fn = c.finish({r});
  auto p = checkFunction(fn, {{{3, 12}}, {{7, 12}}}, kernels(1));
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0].fusedOps.size(), 2u); // reduce_sum + sqrt; mul inlined as a prologue
}

TEST(FusionPatterns, SoftmaxAndLayerNormAreOneKernel) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<B x S x 32 x f32>, %g: tensor<32 x f32>, %b: tensor<32 x f32>) -> tensor<B x S x 32 x f32> {
  %h = layer_norm(%x, %g, %b) {epsilon = 1e-5}
  %y = softmax(%h) {axis = -1}
  return %y
}
)");
  auto p = checkFunction(fn, {{{2, 3, 32}, {32}, {32}}, {{1, 9, 32}, {32}, {32}}}, kernels(2));
  EXPECT_EQ(p.intermediates.size(), 1u);
}

TEST(FusionPatterns, SharedExpensiveValueIsMaterialized) {
  Case c;
  auto x = c.param("tensor<8 x 8 x f32>");
  ir::ValueId v = x;
  for (int i = 0; i < 30; ++i)
    v = c.op(OpKind::Add, {c.op(OpKind::Tanh, {v}), x});
  auto a = c.op(OpKind::ReduceSum, {v}, Attrs().is("axes", {0}));
  auto b = c.op(OpKind::ReduceMax, {v}, Attrs().is("axes", {1}));
  ir::Function fn = c.finish({a, b});
  auto p = checkFunction(fn, {{{8, 8}}}, kernels(3));
  EXPECT_EQ(p.intermediates.size(), 1u);
}

TEST(FusionPatterns, ResultsThatAreParamsOrReturnedTwice) {
  Case c;
  auto x = c.param("tensor<3 x 4 x f32>");
  auto y = c.op(OpKind::Exp, {x});
  auto z = c.op(OpKind::Add, {y, x});
  ir::Function fn = c.finish({x, y, z, y});
  auto p = checkFunction(fn, {{{3, 4}}});
  EXPECT_EQ(p.schedule.kernels.size(), 3u); // copy, exp (stored twice), add
}

TEST(FusionPatterns, Mlp) {
  ir::Function fn = parseFunction(readExample("mlp.tsr"));
  CheckOptions o = kernels(3);
  o.inputs[0] = InputSpec{0.01, 0.1};
  o.inputs[1] = InputSpec{0.01, 0.1};
  auto p = checkFunction(fn, {{{2, 784}, {784, 256}, {256}, {256, 10}, {10}}, {{5, 784}, {784, 256}, {256}, {256, 10}, {10}}},
                         o);
  // matmul+add+gelu, matmul+add, softmax.
  ASSERT_EQ(p.schedule.kernels.size(), 3u);
  EXPECT_EQ(p.schedule.kernels[0].kind, schedule::Kernel::Kind::Matmul);
  EXPECT_EQ(p.schedule.kernels[1].kind, schedule::Kernel::Kind::Matmul);
}

TEST(FusionPatterns, TransformerBlock) {
  // The reference interpreter binds symbols from inputs only, so H is fixed
  // in the text; B and S stay symbolic.
  std::string text = readExample("transformer_block.tsr");
  text = std::regex_replace(text, std::regex("H x D/H"), "4 x D/4");
  // A symbolic head dim needs an explicit scale to decompose (D = 32 below).
  text = std::regex_replace(text, std::regex("\\{causal = true\\}"), "{causal = true, scale = 0.35355339059327373}");
  ir::Function fn = parseFunction(text);
  ASSERT_FALSE(fn.ops.empty());
  Error de = shape::decomposeAttention(fn);
  ASSERT_FALSE(de) << de.render();
  std::vector<std::vector<ref::Shape>> sets;
  for (auto [B, S] : {std::pair<int64_t, int64_t>{1, 8}, {2, 5}}) {
    const int64_t D = 32;
    sets.push_back({{B, S, D}, {D}, {D}, {D, D}, {D, D}, {D, D}, {D, D}, {D}, {D}, {D, 4 * D}, {4 * D, D}});
  }
  CheckOptions o;
  for (size_t i = 3; i < 11; ++i)
    o.inputs[i] = InputSpec{0.02, 0.3};
  auto p = checkFunction(fn, sets, o);
  // Every matmul is canonical (views fold into loads).
  int matmuls = 0;
  for (const auto &k : p.schedule.kernels)
    matmuls += k.kind == schedule::Kernel::Kind::Matmul;
  EXPECT_EQ(matmuls, 8) << fusion::dumpFused(p);
  EXPECT_EQ(p.schedule.kernels.size(), 12u) << fusion::dumpFused(p);
}

TEST(FusionPatterns, FlashAttentionExample) {
  ir::Function fn = parseFunction(readExample("flash_attention.tsr"));
  CheckOptions o;
  o.inputs[0] = InputSpec{0.05, 0.5};
  o.inputs[1] = InputSpec{0.05, 0.5};
  checkFunction(fn, {{{1, 2, 8, 64}, {1, 2, 8, 64}, {1, 2, 8, 64}}, {{2, 1, 4, 64}, {2, 1, 4, 64}, {2, 1, 4, 64}}}, o);
}

TEST(FusionPatterns, DumpNamesBindings) {
  Case c;
  auto x = c.param("tensor<B x 4 x f32>");
  ir::Function fn = c.finish({c.op(OpKind::Relu, {x})});
  auto p = fusion::fuse(fn);
  ASSERT_TRUE(p.hasValue());
  std::string dump = fusion::dumpFused(*p);
  EXPECT_NE(dump.find("symbols B"), std::string::npos) << dump;
  EXPECT_NE(dump.find("0=param0 1=result0 ops=[relu]"), std::string::npos) << dump;
}

} // namespace
