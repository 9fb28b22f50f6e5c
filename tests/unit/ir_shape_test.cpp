// Shape inference, run-time binding (bindShapes), the C++ builder and the
// attention decomposition (core/shape).
#include "shape/Binding.h"
#include "shape/Builder.h"
#include "shape/Decompose.h"
#include "shape/ShapeInference.h"
#include "text/Parser.h"
#include "text/Printer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace tessera;
using namespace tessera::ir;

namespace {

Module parseOk(const std::string &src) {
  auto m = text::parseModule(src, "t.tsr");
  EXPECT_TRUE(m.hasValue()) << (m ? "" : m.error().render());
  return m ? m.take() : Module();
}

std::string readExample(const std::string &name) {
  std::ifstream in(std::string(TESSERA_IR_EXAMPLES_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(IrShape, BindTransformerBlock) {
  Module m = parseOk(readExample("transformer_block.tsr"));
  const Function &fn = m.functions[0];
  std::vector<std::vector<int64_t>> in = {{2, 16, 64}, {64}, {64}, {64, 64}, {64, 64}, {64, 64},
                                          {64, 64},    {64}, {64}, {64, 256}, {256, 64}};
  auto b = shape::bindShapes(fn, in, {{"H", 4}});
  ASSERT_TRUE(b.hasValue()) << b.error().render();
  EXPECT_EQ(b->symbols.at("B"), 2);
  EXPECT_EQ(b->symbols.at("S"), 16);
  EXPECT_EQ(b->symbols.at("D"), 64);
  auto q4 = fn.findValue("q4");
  ASSERT_TRUE(q4.has_value());
  EXPECT_EQ(b->valueShapes[*q4], (std::vector<int64_t>{2, 16, 4, 16}));
  EXPECT_EQ(b->valueShapes[fn.returns[0]], (std::vector<int64_t>{2, 16, 64}));

  // H is not in any input: it must be given.
  auto noH = shape::bindShapes(fn, in);
  ASSERT_FALSE(noH.hasValue());
  EXPECT_NE(noH.error().message().find("symbol H is not bound"), std::string::npos) << noH.error().render();
  // H must divide D.
  auto badH = shape::bindShapes(fn, in, {{"H", 5}});
  ASSERT_FALSE(badH.hasValue());
  EXPECT_EQ(badH.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_NE(badH.error().message().find("not an integer"), std::string::npos) << badH.error().render();
  // D*4 is checked against the actual size.
  auto bad = in;
  bad[9] = {64, 200};
  auto badW = shape::bindShapes(fn, bad, {{"H", 4}});
  ASSERT_FALSE(badW.hasValue());
  EXPECT_NE(badW.error().message().find("input 9 (%w1) dim 1 is 200, expected D*4 = 256"), std::string::npos)
      << badW.error().render();
}

TEST(IrShape, BindReportsSymbolBothSizesAndInputs) {
  Module m = parseOk("func @f(%x: tensor<B x 4 x f32>, %y: tensor<B x 4 x f32>) -> tensor<B x 4 x f32> {\n"
                     "  %z = add(%x, %y)\n  return %z\n}\n");
  auto b = shape::bindShapes(m.functions[0], {{3, 4}, {5, 4}});
  ASSERT_FALSE(b.hasValue());
  EXPECT_EQ(b.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_EQ(b.error().message(), "symbol B is 3 from input 0 (%x) dim 0 but 5 from input 1 (%y) dim 0");
  auto rank = shape::bindShapes(m.functions[0], {{3, 4}, {3}});
  ASSERT_FALSE(rank.hasValue());
  EXPECT_NE(rank.error().message().find("input 1 (%y) has rank 1 [3], @f expects rank 2"), std::string::npos);
  auto lit = shape::bindShapes(m.functions[0], {{3, 4}, {3, 5}});
  ASSERT_FALSE(lit.hasValue());
  EXPECT_NE(lit.error().message().find("input 1 (%y) dim 1 is 5, expected 4"), std::string::npos);
  auto count = shape::bindShapes(m.functions[0], {{3, 4}});
  ASSERT_FALSE(count.hasValue());
  EXPECT_EQ(count.error().message(), "@f takes 2 inputs, got 1");
}

TEST(IrShape, DeferredConstraintCheckedAtRunTime) {
  Module m = parseOk("func @f(%x: tensor<A x B x f32>, %y: tensor<N x f32>) -> tensor<N x f32> {\n"
                     "  %r = reshape(%x) : tensor<N x f32>\n  %s = add(%r, %y)\n  return %s\n}\n");
  const Function &fn = m.functions[0];
  ASSERT_EQ(fn.constraints.size(), 1u);
  EXPECT_TRUE(shape::bindShapes(fn, {{3, 4}, {12}}).hasValue());
  auto b = shape::bindShapes(fn, {{3, 4}, {10}});
  ASSERT_FALSE(b.hasValue());
  EXPECT_EQ(b.error().location().line, 2u);
  EXPECT_NE(b.error().message().find("reshape element count fails at run time: A*B = 12 but N = 10"),
            std::string::npos)
      << b.error().render();
}

TEST(IrShape, SolvesLinearParameterDims) {
  Module m = parseOk("func @f(%x: tensor<S*2 + 1 x f32>) -> tensor<S*2 + 1 x f32> {\n  return %x\n}\n");
  auto b = shape::bindShapes(m.functions[0], {{9}});
  ASSERT_TRUE(b.hasValue()) << b.error().render();
  EXPECT_EQ(b->symbols.at("S"), 4);
  auto bad = shape::bindShapes(m.functions[0], {{8}});
  ASSERT_FALSE(bad.hasValue());
  EXPECT_NE(bad.error().message().find("which no value of S makes equal to S*2 + 1"), std::string::npos);
}

TEST(IrShape, BuilderInfersEagerlyAndRollsBack) {
  shape::FunctionBuilder b("mlp");
  auto x = b.addParam("x", TensorType(DType::F32, {Dim::symbol("B"), Dim::constant(784)}));
  auto w = b.addParam("w", TensorType(DType::F32, {Dim::constant(784), Dim::constant(10)}));
  ASSERT_TRUE(x && w);
  auto y = b.add(OpKind::Matmul, {*x, *w});
  ASSERT_TRUE(y.hasValue()) << y.error().render();
  EXPECT_EQ(b.typeOf(*y).str(), "tensor<B x 10 x f32>");
  size_t before = b.function().values.size();
  auto bad = b.add(OpKind::Matmul, {*y, *w});
  ASSERT_FALSE(bad.hasValue());
  EXPECT_EQ(bad.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_EQ(b.function().values.size(), before);
  EXPECT_EQ(b.function().ops.size(), 1u);
  AttrList attrs;
  attrs.set("axis", Attribute::ofInt(-1));
  auto s = b.add(OpKind::Softmax, {*y}, attrs);
  ASSERT_TRUE(s.hasValue());
  auto fn = b.finish({*s});
  ASSERT_TRUE(fn.hasValue()) << fn.error().render();
  EXPECT_EQ(text::functionSignature(*fn),
            "func @mlp(%x: tensor<B x 784 x f32>, %w: tensor<784 x 10 x f32>) -> tensor<B x 10 x f32>");
}

TEST(IrShape, DecomposeAttention) {
  Module m = parseOk("func @f(%q: tensor<B x S x 64 x f32>, %k: tensor<B x S x 64 x f32>, %v: tensor<B x S x 32 x f32>,"
                     " %m: tensor<S x S x f32>) -> tensor<B x S x 32 x f32> {\n"
                     "  %o = attention(%q, %k, %v, %m) {causal = true}\n  return %o\n}\n");
  Function &fn = m.functions[0];
  ASSERT_FALSE(shape::decomposeAttention(fn));
  std::string printed = text::printFunction(fn);
  EXPECT_EQ(printed.find("attention("), std::string::npos) << printed;
  EXPECT_NE(printed.find("softmax("), std::string::npos);
  EXPECT_NE(printed.find("iota()"), std::string::npos);
  EXPECT_NE(printed.find("{value = 0.125}"), std::string::npos) << printed;
  EXPECT_NE(printed.find("%o = matmul(%o.probs, %v) : tensor<B x S x 32 x f32>"), std::string::npos) << printed;
  // The decomposed function is valid text.
  auto again = text::parseModule(text::printModule(m));
  ASSERT_TRUE(again.hasValue()) << again.error().render() << "\n" << printed;
}

TEST(IrShape, DecomposeNeedsScaleForSymbolicHeadDim) {
  Module m = parseOk("func @f(%q: tensor<S x D x f32>) -> tensor<S x D x f32> {\n"
                     "  %o = attention(%q, %q, %q)\n  return %o\n}\n");
  Error e = shape::decomposeAttention(m.functions[0]);
  ASSERT_TRUE(bool(e));
  EXPECT_EQ(e.code(), ErrorCode::Unsupported);
  Module m2 = parseOk("func @f(%q: tensor<S x D x f32>) -> tensor<S x D x f32> {\n"
                      "  %o = attention(%q, %q, %q) {scale = 0.5}\n  return %o\n}\n");
  EXPECT_FALSE(shape::decomposeComposites(m2));
}

TEST(IrShape, FreeSymbolsUnify) {
  Module m = parseOk("func @f(%x: tensor<N x 4 x f32>) -> tensor<M x 4 x f32> {\n"
                     "  %f = reshape(%x) : tensor<T x f32>\n  %b = reshape(%f) : tensor<N x 4 x f32>\n  return %b\n}\n");
  const Function &fn = m.functions[0];
  EXPECT_EQ(fn.typeOf(*fn.findValue("f")).str(), "tensor<N*4 x f32>");
  EXPECT_EQ(text::functionSignature(fn), "func @f(%x: tensor<N x 4 x f32>) -> tensor<N x 4 x f32>");
}

} // namespace
