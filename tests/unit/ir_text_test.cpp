// The .tsr text format (core/text): exact round trips, located errors, and
// robustness against mangled input (never a crash, always an Error).
#include "text/Parser.h"
#include "text/Printer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

using namespace tessera;
using namespace tessera::ir;

namespace {

std::string readExample(const std::string &name) {
  std::ifstream in(std::string(TESSERA_IR_EXAMPLES_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Structural equality of two modules (what "identical" means for round trips).
void expectSameModule(const Module &a, const Module &b) {
  ASSERT_EQ(a.functions.size(), b.functions.size());
  for (size_t f = 0; f < a.functions.size(); ++f) {
    const Function &fa = a.functions[f], &fb = b.functions[f];
    EXPECT_EQ(fa.name, fb.name);
    ASSERT_EQ(fa.values.size(), fb.values.size());
    for (size_t v = 0; v < fa.values.size(); ++v) {
      EXPECT_EQ(fa.values[v].name, fb.values[v].name);
      EXPECT_EQ(fa.values[v].type, fb.values[v].type) << fa.values[v].type.str() << " vs " << fb.values[v].type.str();
    }
    ASSERT_EQ(fa.ops.size(), fb.ops.size());
    for (size_t o = 0; o < fa.ops.size(); ++o) {
      EXPECT_EQ(fa.ops[o].kind, fb.ops[o].kind);
      EXPECT_EQ(fa.ops[o].operands, fb.ops[o].operands);
      EXPECT_EQ(fa.ops[o].results, fb.ops[o].results);
      EXPECT_TRUE(fa.ops[o].attrs == fb.ops[o].attrs);
      EXPECT_EQ(fa.ops[o].explicitLoc, fb.ops[o].explicitLoc);
    }
    EXPECT_EQ(fa.returns, fb.returns);
    EXPECT_EQ(fa.resultTypes, fb.resultTypes);
  }
}

TEST(IrText, ExamplesRoundTripExactly) {
  for (const char *name : {"mlp.tsr", "transformer_block.tsr", "flash_attention.tsr"}) {
    std::string src = readExample(name);
    ASSERT_FALSE(src.empty()) << name;
    auto m1 = text::parseModule(src, name);
    ASSERT_TRUE(m1.hasValue()) << m1.error().render();
    std::string p1 = text::printModule(*m1);
    auto m2 = text::parseModule(p1, name);
    ASSERT_TRUE(m2.hasValue()) << m2.error().render();
    expectSameModule(*m1, *m2);
    EXPECT_EQ(p1, text::printModule(*m2));
  }
}

TEST(IrText, BrokenExampleIsLocatedWithHint) {
  auto m = text::parseModule(readExample("broken_softmax.tsr"), "broken_softmax.tsr");
  ASSERT_FALSE(m.hasValue());
  EXPECT_EQ(m.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_EQ(m.error().location().line, 5u);
  EXPECT_EQ(m.error().location().column, 8u);
  EXPECT_NE(m.error().message().find("did you mean keepdim=true?"), std::string::npos);
}

TEST(IrText, ParseErrorsAreLocated) {
  auto m = text::parseModule("func @f(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = frob(%x)\n  return %y\n}\n",
                             "t.tsr");
  ASSERT_FALSE(m.hasValue());
  EXPECT_EQ(m.error().code(), ErrorCode::InvalidIR);
  EXPECT_EQ(m.error().render().rfind("t.tsr:2:8: error: unknown op 'frob'", 0), 0u) << m.error().render();
}

TEST(IrText, TypesParseAndPrint) {
  auto t = text::parseType("tensor<B x S*2 x 512 x bf16 @saturate @accum(f32)>");
  ASSERT_TRUE(t.hasValue()) << t.error().render();
  EXPECT_EQ(t->str(), "tensor<B x S*2 x 512 x bf16 @accum(f32) @saturate>");
  EXPECT_EQ(t->rank(), 3u);
  EXPECT_EQ(t->dtype, DType::BF16);
  auto scalar = text::parseType("tensor<f32>");
  ASSERT_TRUE(scalar.hasValue());
  EXPECT_EQ(scalar->rank(), 0u);
  EXPECT_FALSE(text::parseType("tensor<4 x f32> junk").hasValue());
}

TEST(IrText, UncheckedParseKeepsAnnotations) {
  auto m = text::parseModuleUnchecked(
      "func @f(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = relu(%x) : tensor<4 x f32>\n  return %y\n}\n");
  ASSERT_TRUE(m.hasValue());
  EXPECT_NE(text::printModule(*m).find("%y = relu(%x) : tensor<4 x f32>"), std::string::npos);
}

// Random byte edits of valid programs: the parser and checker must return an
// Error or a module, never crash, hang or throw.
TEST(IrText, MangledInputNeverCrashes) {
  std::vector<std::string> seeds = {readExample("mlp.tsr"), readExample("transformer_block.tsr"),
                                    readExample("flash_attention.tsr")};
  const std::string alphabet = "%@(){}<>[],:=-+*/x0123456789 \n\"#abcfSDBH_.";
  std::mt19937 rng(1234);
  size_t ok = 0, failed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = seeds[size_t(iter) % seeds.size()];
    int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      switch (rng() % 4) {
      case 0: s.erase(pos, 1 + rng() % 8); break;
      case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
      case 2: s[pos] = alphabet[rng() % alphabet.size()]; break;
      case 3: s.resize(pos); break;
      }
    }
    auto m = text::parseModule(s, "fuzz.tsr");
    if (m) {
      ++ok;
      auto again = text::parseModule(text::printModule(*m), "fuzz.tsr");
      ASSERT_TRUE(again.hasValue()) << "printed form of an accepted program must re-parse:\n" << s;
    } else {
      ++failed;
      EXPECT_FALSE(m.error().message().empty());
    }
  }
  EXPECT_GT(failed, 0u);
  (void)ok;
}

TEST(IrText, AbsurdInputs) {
  // Many dims: rank limit, not memory.
  std::string t = "func @f(%x: tensor<";
  for (int i = 0; i < 100000; ++i)
    t += "1 x ";
  t += "f32>) -> tensor<f32> {\n  return %x\n}\n";
  auto m = text::parseModule(t);
  ASSERT_FALSE(m.hasValue());
  EXPECT_EQ(m.error().code(), ErrorCode::ResourceExhausted);
  // Binary garbage.
  std::string g;
  for (int i = 0; i < 4096; ++i)
    g += char(i * 37 % 256);
  EXPECT_FALSE(text::parseModule(g).hasValue());
  // Huge split result count.
  auto s = text::parseModule("func @f(%x: tensor<S x f32>) -> tensor<S x f32> {\n  %a = split(%x) {axis = 0, num = "
                             "9223372036854775807}\n  return %x\n}\n");
  ASSERT_FALSE(s.hasValue());
  EXPECT_EQ(s.error().code(), ErrorCode::InvalidIR);
}

} // namespace
