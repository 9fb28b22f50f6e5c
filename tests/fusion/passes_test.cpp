// Graph passes: each rewrite happens, the function stays verified, and its
// values are unchanged (reference interpreter before vs after).
#include "TestUtil.h"

#include "passes/Passes.h"
#include "text/Printer.h"

#include <fstream>
#include <regex>
#include <sstream>

using namespace tessera;
using namespace tessera::fusiontest;
using ir::OpKind;

namespace {

size_t countOps(const ir::Function &fn, OpKind kind) {
  size_t n = 0;
  for (const auto &op : fn.ops)
    n += op.kind == kind;
  return n;
}

// Runs `pass` and checks the reference results are unchanged.
void checkPreserves(ir::Function &fn, const std::vector<ref::Shape> &shapes,
                    const std::function<Error(ir::Function &)> &pass, const std::map<size_t, InputSpec> &specs = {}) {
  auto in = randomInputs(fn, shapes, specs, 99);
  auto before = ref::evaluate(fn, in);
  ASSERT_TRUE(before.hasValue()) << before.error().render();
  Error e = pass(fn);
  ASSERT_FALSE(e) << e.render() << "\n" << text::printFunction(fn);
  auto after = ref::evaluate(fn, in);
  ASSERT_TRUE(after.hasValue()) << after.error().render() << "\n" << text::printFunction(fn);
  EXPECT_EQ(compareResults(*before, *after), "") << text::printFunction(fn);
  // The printed function re-parses (it is still well formed).
  auto again = text::parseModule(text::printFunction(fn));
  EXPECT_TRUE(again.hasValue()) << (again ? "" : again.error().render()) << "\n" << text::printFunction(fn);
}

TEST(Passes, CanonicalizeIdentities) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<B x 4 x 6 x f32>) -> tensor<B x 24 x f32> {
  %one = constant() {value = 1.0} : tensor<f32>
  %zero = constant() {value = 0.0} : tensor<f32>
  %a = mul(%x, %one)
  %b = add(%zero, %a)
  %c = sub(%b, %zero)
  %d = div(%c, %one)
  %t1 = transpose(%d) {perm = [0, 2, 1]}
  %t2 = transpose(%t1) {perm = [0, 2, 1]}
  %e = cast(%t2) {dtype = f32}
  %r1 = reshape(%e) : tensor<B x 2 x 12 x f32>
  %r2 = reshape(%r1) : tensor<B x 24 x f32>
  %y = exp(%r2)
  return %y
}
)");
  checkPreserves(fn, {{3, 4, 6}}, [](ir::Function &f) { return passes::runCanonicalize(f); });
  // Only reshape(x) and exp remain.
  EXPECT_EQ(fn.ops.size(), 2u) << text::printFunction(fn);
  EXPECT_EQ(countOps(fn, OpKind::Reshape), 1u);
}

TEST(Passes, CanonicalizeKeepsBroadcastingIdentities) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<4 x f32>) -> tensor<3 x 4 x f32> {
  %zero = constant() {value = 0.0} : tensor<3 x 4 x f32>
  %y = add(%x, %zero)
  %t = transpose(%y) {perm = [1, 0]}
  %u = transpose(%t) {perm = [1, 0]}
  %z = exp(%u)
  return %z
}
)");
  checkPreserves(fn, {{4}}, [](ir::Function &f) { return passes::runCanonicalize(f); });
  EXPECT_EQ(countOps(fn, OpKind::Add), 1u); // x + zeros(3 x 4) changes the shape: kept
  EXPECT_EQ(countOps(fn, OpKind::Transpose), 0u);
}

TEST(Passes, CSE) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<5 x f32>) -> tensor<5 x f32> {
  %a = exp(%x)
  %b = exp(%x)
  %c = add(%a, %b)
  %d = add(%a, %b)
  %e = mul(%c, %d)
  return %e
}
)");
  checkPreserves(fn, {{5}}, [](ir::Function &f) { return passes::runCSE(f); });
  EXPECT_EQ(countOps(fn, OpKind::Exp), 1u);
  EXPECT_EQ(countOps(fn, OpKind::Add), 1u);
}

TEST(Passes, ConstantFold) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<3 x f32>) -> tensor<3 x f32> {
  %a = constant() {value = [1.0, 2.0, 3.0]} : tensor<3 x f32>
  %b = constant() {value = 0.5} : tensor<f32>
  %c = mul(%a, %b)
  %d = exp(%c)
  %e = add(%x, %d)
  return %e
}
)");
  checkPreserves(fn, {{3}}, [](ir::Function &f) { return passes::runConstantFold(f); });
  EXPECT_EQ(countOps(fn, OpKind::Mul), 0u) << text::printFunction(fn);
  EXPECT_EQ(countOps(fn, OpKind::Exp), 0u);
  EXPECT_EQ(fn.ops.size(), 2u) << text::printFunction(fn);
  // Too big to fold: left alone.
  ir::Function big = parseFunction(R"(
func @g(%x: tensor<64 x f32>) -> tensor<64 x f32> {
  %a = iota() : tensor<64 x f32>
  %b = constant() {value = 2.0} : tensor<64 x f32>
  %c = mul(%b, %b)
  %e = add(%x, %c)
  return %e
}
)");
  checkPreserves(big, {{64}}, [](ir::Function &f) { return passes::runConstantFold(f, 16); });
  EXPECT_EQ(countOps(big, OpKind::Mul), 1u);
}

TEST(Passes, DCE) {
  ir::Function fn = parseFunction(R"(
func @f(%x: tensor<5 x f32>) -> tensor<5 x f32> {
  %a = exp(%x)
  %b = log(%a)
  %c = tanh(%x)
  return %c
}
)");
  checkPreserves(fn, {{5}}, [](ir::Function &f) { return passes::runDCE(f); });
  EXPECT_EQ(fn.ops.size(), 1u);
}

TEST(Passes, DecomposeAttentionThenFuse) {
  ir::Function fn = parseFunction(R"(
func @f(%q: tensor<B x 2 x S x 8 x f32>, %k: tensor<B x 2 x S x 8 x f32>, %v: tensor<B x 2 x S x 8 x f32>) -> tensor<B x 2 x S x 8 x f32> {
  %a = attention(%q, %k, %v) {causal = true}
  return %a
}
)");
  ir::Function claimed = fn;
  ASSERT_FALSE(passes::runDecompose(claimed, {OpKind::Attention}));
  EXPECT_EQ(countOps(claimed, OpKind::Attention), 1u);
  checkPreserves(fn, {{2, 2, 5, 8}, {2, 2, 5, 8}, {2, 2, 5, 8}}, [](ir::Function &f) { return passes::runDecompose(f); });
  EXPECT_EQ(countOps(fn, OpKind::Attention), 0u);
  checkFunction(fn, {{{2, 2, 5, 8}, {2, 2, 5, 8}, {2, 2, 5, 8}}, {{1, 2, 3, 8}, {1, 2, 3, 8}, {1, 2, 3, 8}}});
}

// Kept whole (a plugin claims it), attention fuses to one `attention`
// kernel: operands that are not buffers get their own kernels (the scaled
// q, the splat mask), the consumer (relu) is not fused into it.
TEST(Passes, AttentionClaimedFusesToOneAttentionKernel) {
  ir::Function fn = parseFunction(R"(
func @f(%q: tensor<B x 2 x S x 8 x f32>, %k: tensor<B x 2 x T x 8 x f32>, %v: tensor<B x 2 x T x 4 x f32>, %m: tensor<S x T x f32>) -> tensor<B x 2 x S x 4 x f32> {
  %q2 = mul(%q, %q)
  %a = attention(%q2, %k, %v, %m) {causal = true, scale = 0.25}
  %r = relu(%a)
  return %r
}
)");
  ASSERT_FALSE(passes::runDecompose(fn, {OpKind::Attention}));
  ASSERT_EQ(countOps(fn, OpKind::Attention), 1u);
  fusion::FusedProgram fused =
      checkFunction(fn, {{{2, 2, 5, 8}, {2, 2, 7, 8}, {2, 2, 7, 4}, {5, 7}}, {{1, 2, 9, 8}, {1, 2, 3, 8}, {1, 2, 3, 4}, {9, 3}}},
                    kernels(3));
  ASSERT_EQ(fused.schedule.kernels.size(), 3u);
  const schedule::Kernel &att = fused.schedule.kernels[1];
  EXPECT_EQ(att.kind, schedule::Kernel::Kind::Attention) << fusion::dumpFused(fused);
  EXPECT_EQ(att.operands.size(), 5u);
  EXPECT_TRUE(att.attention.causal);
  EXPECT_EQ(att.attention.scale, 0.25);
  EXPECT_EQ(fused.kernels[1].operands[1].kind, fusion::OperandBinding::Kind::Param); // k read in place
  // q = k = v (self attention of one tensor): three operands, one buffer.
  ir::Function self = parseFunction(R"(
func @f(%x: tensor<3 x 16 x f32>) -> tensor<3 x 16 x f32> {
  %a = attention(%x, %x, %x)
  return %a
}
)");
  ASSERT_FALSE(passes::runDecompose(self, {OpKind::Attention}));
  fusion::FusedProgram one = checkFunction(self, {{{3, 16}}}, kernels(1));
  ASSERT_EQ(one.schedule.kernels.size(), 1u);
  EXPECT_EQ(one.schedule.kernels[0].operands.size(), 4u);
  EXPECT_DOUBLE_EQ(one.schedule.kernels[0].attention.scale, 0.25); // 1/sqrt(16)
}

TEST(Passes, PipelineOnExamples) {
  for (const char *name : {"mlp.tsr", "transformer_block.tsr", "flash_attention.tsr"}) {
    SCOPED_TRACE(name);
    std::ifstream in(std::string(TESSERA_EXAMPLES_DIR) + "/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = std::regex_replace(ss.str(), std::regex("H x D/H"), "4 x D/4");
    text = std::regex_replace(text, std::regex("\\{causal = true\\}"), "{causal = true, scale = 0.35355339059327373}");
    ir::Function fn = parseFunction(text);
    std::vector<ref::Shape> shapes;
    for (ir::ValueId p : fn.params) {
      ref::Shape s;
      for (const ir::Dim &d : fn.typeOf(p).dims) {
        ir::SymbolBindings b = {{"B", 2}, {"S", 4}, {"D", 32}, {"H", 2}};
        auto v = d.evaluate(b);
        s.push_back(v ? *v : 1);
      }
      shapes.push_back(s);
    }
    std::map<size_t, InputSpec> specs;
    for (size_t i = 0; i < fn.params.size(); ++i)
      specs[i] = InputSpec{0.02, 0.3};
    checkPreserves(fn, shapes, [](ir::Function &f) { return passes::runGraphPasses(f); }, specs);
    EXPECT_EQ(countOps(fn, OpKind::Attention), 0u);
    auto fused = fusion::fuse(fn);
    EXPECT_TRUE(fused.hasValue()) << (fused ? "" : fused.error().render());
  }
}

} // namespace
