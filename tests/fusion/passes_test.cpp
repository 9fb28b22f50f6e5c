// Graph passes: each rewrite happens, the function stays verified, and its
// values are unchanged (reference interpreter before vs after).
#include "TestUtil.h"

#include "passes/Passes.h"
#include "text/Printer.h"

#include <cmath>
#include <cstring>
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

bool hasKernelNamed(const fusion::FusedProgram &p, const std::string &prefix) {
  for (const schedule::Kernel &k : p.schedule.kernels)
    if (k.name.rfind(prefix, 0) == 0)
      return true;
  return false;
}

bool sameBinding(const fusion::OperandBinding &a, const fusion::OperandBinding &b) {
  return a.kind == b.kind && a.index == b.index;
}

// A head split (reshape [B, S, 16] -> [B, S, 2, 8], transpose [0, 2, 1, 3])
// of q, k and v and the merge after attention fold into the attention
// kernel (layout=bshd): it reads the projections' buffers and writes the
// buffer the output projection reads, so the kernels are the four matmuls
// and attention, nothing else; numerics against the reference.
const char *kHeadSplit = R"(
func @f(%x: tensor<B x S x 16 x f32>, %wq: tensor<16 x 16 x f32>, %wk: tensor<16 x 16 x f32>, %wv: tensor<16 x 16 x f32>, %wo: tensor<16 x 16 x f32>) -> tensor<B x S x 16 x f32> {
  %q = matmul(%x, %wq)
  %k = matmul(%x, %wk)
  %v = matmul(%x, %wv)
  %q4 = reshape(%q) : tensor<B x S x 2 x 8 x f32>
  %k4 = reshape(%k) : tensor<B x S x 2 x 8 x f32>
  %v4 = reshape(%v) : tensor<B x S x 2 x 8 x f32>
  %qh = transpose(%q4) {perm = [0, 2, 1, 3]}
  %kh = transpose(%k4) {perm = [0, 2, 1, 3]}
  %vh = transpose(%v4) {perm = [0, 2, 1, 3]}
  %a = attention(%qh, %kh, %vh) {causal = true}
  %at = transpose(%a) {perm = [0, 2, 1, 3]}
  %m = reshape(%at) : tensor<B x S x 16 x f32>
  %o = matmul(%m, %wo)
  return %o
}
)";

TEST(Passes, AttentionHeadSplitAndMergeFoldIntoTheKernel) {
  ir::Function fn = parseFunction(kHeadSplit);
  ASSERT_FALSE(passes::runDecompose(fn, {OpKind::Attention}));
  const std::vector<std::vector<ref::Shape>> shapes = {
      {{2, 5, 16}, {16, 16}, {16, 16}, {16, 16}, {16, 16}}, {{1, 9, 16}, {16, 16}, {16, 16}, {16, 16}, {16, 16}}};
  fusion::FusedProgram fused = checkFunction(fn, shapes, kernels(5));
  std::string dump = fusion::dumpFused(fused);
  ASSERT_EQ(fused.schedule.kernels.size(), 5u) << dump;
  EXPECT_FALSE(hasKernelNamed(fused, "transpose")) << dump;
  EXPECT_FALSE(hasKernelNamed(fused, "reshape")) << dump;
  const schedule::Kernel &att = fused.schedule.kernels[3];
  ASSERT_EQ(att.kind, schedule::Kernel::Kind::Attention) << dump;
  EXPECT_EQ(att.attention.layout, schedule::AttentionLayout::Bshd);
  EXPECT_TRUE(att.attention.causal);
  EXPECT_DOUBLE_EQ(att.attention.scale, 1.0 / std::sqrt(8.0));
  // Storage order [B, S, H, D] for q, k, v, out and the parallel loops.
  for (const schedule::Operand &o : att.operands)
    EXPECT_EQ(schedule::printIndex(o.shape[1]) + "," + schedule::printIndex(o.shape[2]) + "," +
                  schedule::printIndex(o.shape[3]),
              "s1,2,8");
  EXPECT_TRUE(att.parallel == att.operands[3].shape);
  EXPECT_NE(dump.find("attention scale=0.35355339059327373 causal=1 layout=bshd"), std::string::npos) << dump;
  // q, k, v are the projections' outputs; out is what the last matmul reads.
  for (size_t j = 0; j < 3; ++j)
    EXPECT_TRUE(sameBinding(fused.kernels[3].operands[j], fused.kernels[j].operands.back())) << dump;
  EXPECT_TRUE(sameBinding(fused.kernels[3].operands[3], fused.kernels[4].operands[0])) << dump;
  EXPECT_EQ(fused.kernels[3].fusedOps,
            (std::vector<std::string>{"transpose", "transpose", "transpose", "attention", "transpose", "reshape"}));
  // Fusion off: one kernel per op, the dense layout.
  fusion::FusionOptions off;
  off.fuse = false;
  auto unfused = fusion::fuse(fn, off);
  ASSERT_TRUE(unfused.hasValue());
  for (const schedule::Kernel &k : unfused->schedule.kernels)
    EXPECT_EQ(k.attention.layout, schedule::AttentionLayout::Bhsd);
}

// Anything but the exact pattern keeps the dense [B, H, S, D] operands (and
// the transpose kernels around them), numerics unchanged: a split transpose
// with another use, a merge that is not the inverse transpose, the
// attention result returned as well, a different perm on one input.
TEST(Passes, AttentionHeadFoldNeedsTheWholePattern) {
  struct Variant {
    const char *name, *from, *to;
  };
  for (Variant var : {Variant{"split used twice", "  %o = matmul(%m, %wo)\n  return %o",
                              "  %o = matmul(%m, %wo)\n  %e = exp(%kh)\n  return %o, %e"},
                      Variant{"merge not inverse", "%at = transpose(%a) {perm = [0, 2, 1, 3]}\n  %m = reshape(%at)",
                              "%at = transpose(%a) {perm = [0, 1, 2, 3]}\n  %m = reshape(%at)"},
                      Variant{"result returned", "  return %o", "  return %o, %a"},
                      Variant{"other perm", "%vh = transpose(%v4) {perm = [0, 2, 1, 3]}",
                              "%vt = transpose(%v4) {perm = [2, 0, 1, 3]}\n  %vh = transpose(%vt) {perm = [1, 0, 2, 3]}"}}) {
    SCOPED_TRACE(var.name);
    std::string text = kHeadSplit;
    size_t at = text.find(var.from);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, std::strlen(var.from), var.to);
    if (std::string(var.name) == "split used twice")
      text.replace(text.find(") -> tensor<B x S x 16 x f32> {"), 31,
                   ") -> (tensor<B x S x 16 x f32>, tensor<B x 2 x S x 8 x f32>) {");
    if (std::string(var.name) == "result returned")
      text.replace(text.find(") -> tensor<B x S x 16 x f32> {"), 31,
                   ") -> (tensor<B x S x 16 x f32>, tensor<B x 2 x S x 8 x f32>) {");
    ir::Function fn = parseFunction(text);
    ASSERT_FALSE(passes::runDecompose(fn, {OpKind::Attention}));
    fusion::FusedProgram fused = checkFunction(
        fn, {{{2, 5, 16}, {16, 16}, {16, 16}, {16, 16}, {16, 16}}, {{1, 9, 16}, {16, 16}, {16, 16}, {16, 16}, {16, 16}}});
    bool found = false;
    for (const schedule::Kernel &k : fused.schedule.kernels)
      if (k.kind == schedule::Kernel::Kind::Attention) {
        found = true;
        EXPECT_EQ(k.attention.layout, schedule::AttentionLayout::Bhsd) << fusion::dumpFused(fused);
      }
    EXPECT_TRUE(found);
    EXPECT_TRUE(hasKernelNamed(fused, "transpose")) << fusion::dumpFused(fused);
  }
}

// The transformer block (docs/examples) through the graph passes with
// attention claimed, as for the cuda plugin: no transpose or reshape kernel
// is left (9 kernels: 2 layer norms, 5 matmuls with their epilogues,
// attention with layout=bshd between the q/k/v projections and the output
// projection); numerics against the reference.
TEST(Passes, TransformerBlockAttentionReadsTheProjectionsInPlace) {
  std::ifstream in(std::string(TESSERA_EXAMPLES_DIR) + "/transformer_block.tsr");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = std::regex_replace(ss.str(), std::regex("H x D/H"), "2 x D/2");
  text = std::regex_replace(text, std::regex("\\{causal = true\\}"), "{causal = true, scale = 0.25}");
  ir::Function fn = parseFunction(text);
  passes::PipelineOptions po;
  po.claimed = {OpKind::Attention};
  ASSERT_FALSE(passes::runGraphPasses(fn, po)) << text;
  ASSERT_EQ(countOps(fn, OpKind::Attention), 1u);
  std::vector<ref::Shape> shapes;
  for (ir::ValueId p : fn.params) {
    ref::Shape s;
    for (const ir::Dim &d : fn.typeOf(p).dims) {
      auto v = d.evaluate(ir::SymbolBindings{{"B", 2}, {"S", 7}, {"D", 32}});
      s.push_back(v ? *v : 1);
    }
    shapes.push_back(s);
  }
  CheckOptions opts = kernels(9);
  for (size_t i = 0; i < fn.params.size(); ++i)
    opts.inputs[i] = InputSpec{0.02, 0.3};
  fusion::FusedProgram fused = checkFunction(fn, {shapes}, opts);
  std::string dump = fusion::dumpFused(fused);
  EXPECT_FALSE(hasKernelNamed(fused, "transpose")) << dump;
  EXPECT_FALSE(hasKernelNamed(fused, "reshape")) << dump;
  size_t attention = 0;
  for (const schedule::Kernel &k : fused.schedule.kernels)
    if (k.kind == schedule::Kernel::Kind::Attention) {
      ++attention;
      EXPECT_EQ(k.attention.layout, schedule::AttentionLayout::Bshd) << dump;
      EXPECT_EQ(schedule::printIndex(k.operands[0].shape[2]), "2"); // [B, S, H, D/H]
    }
  EXPECT_EQ(attention, 1u) << dump;
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
