// Symbolic dims (core/ir/Dim.h): canonical forms, exact and floor division,
// overflow, evaluation, and the text round trip through text::parseDim.
#include "ir/Dim.h"
#include "text/Parser.h"

#include <gtest/gtest.h>

using namespace tessera;
using namespace tessera::ir;

namespace {

Dim parse(const char *text) {
  auto d = text::parseDim(text);
  EXPECT_TRUE(d.hasValue()) << text << ": " << (d ? "" : d.error().render());
  return d ? d.take() : Dim();
}

TEST(IrDim, CanonicalForms) {
  EXPECT_EQ(parse("512").str(), "512");
  EXPECT_EQ(parse("S*2").str(), "S*2");
  EXPECT_EQ(parse("2*S").str(), "S*2");
  EXPECT_EQ(parse("(S + 1)*2").str(), "S*2 + 2");
  EXPECT_EQ(parse("T + S").str(), "S + T");
  EXPECT_EQ(parse("S - S").str(), "0");
  EXPECT_EQ(parse("D/H").str(), "D/H");
  EXPECT_EQ(parse("H*(D/H)").str(), "D");
  EXPECT_EQ(parse("S*4/2").str(), "S*2");
  EXPECT_EQ(parse("S/2").str(), "S/2");
  EXPECT_EQ(parse("-S + 4").str(), "-S + 4");
  EXPECT_EQ(parse("(H - 1)//2 + 1").str(), "(H - 1)//2 + 1");
  EXPECT_EQ(parse("(S*4 + 2)//2").str(), "S*2 + 1");
  EXPECT_EQ(parse("7//2").str(), "3");
  EXPECT_EQ(parse("-7//2").str(), "-4");
  EXPECT_EQ(parse("S*S").str(), "S*S");
  EXPECT_TRUE(parse("B*S") == parse("S*B"));
  EXPECT_FALSE(parse("B*S") == parse("S + B"));
  EXPECT_TRUE(parse("B").isSymbol());
  EXPECT_FALSE(parse("B*2").isSymbol());
  EXPECT_EQ(parse("42").constantValue(), std::optional<int64_t>(42));
  EXPECT_FALSE(parse("D/H").isPolynomial());
  EXPECT_TRUE(parse("(H - 1)//2").isPolynomial());
}

TEST(IrDim, PrintParseRoundTrip) {
  for (const char *t : {"S*2 + 2", "D/H", "(H - 1)//2 + 1", "-S + 4", "B*S*D", "D*3/H/2", "((H - 1)//2)*3",
                        "S - (W + 1)//2", "(S + 1)/(T + 1)", "512/H", "A*B - C*D + 7", "-((H - 1)//2) + S"}) {
    Dim d = parse(t);
    Dim again = parse(d.str().c_str());
    EXPECT_TRUE(d == again) << t << " printed as " << d.str() << " re-parsed as " << again.str();
  }
}

TEST(IrDim, OverflowIsResourceExhausted) {
  auto big = text::parseDim("4611686018427387904*4");
  ASSERT_FALSE(big.hasValue());
  EXPECT_EQ(big.error().code(), ErrorCode::ResourceExhausted);
  auto lit = text::parseDim("99999999999999999999");
  ASSERT_FALSE(lit.hasValue());
  EXPECT_EQ(lit.error().code(), ErrorCode::ResourceExhausted);
  auto sum = Dim::add(Dim::constant(INT64_MAX), Dim::constant(1));
  ASSERT_FALSE(sum.hasValue());
  EXPECT_EQ(sum.error().code(), ErrorCode::ResourceExhausted);
  auto neg = Dim::neg(Dim::constant(INT64_MIN));
  EXPECT_FALSE(neg.hasValue());
}

TEST(IrDim, DivisionByZero) {
  auto d = text::parseDim("S/0");
  ASSERT_FALSE(d.hasValue());
  EXPECT_EQ(d.error().code(), ErrorCode::InvalidIR);
  EXPECT_FALSE(text::parseDim("S//0").hasValue());
  auto v = parse("D/H").evaluate({{"D", 8}, {"H", 0}});
  ASSERT_FALSE(v.hasValue());
  EXPECT_EQ(v.error().code(), ErrorCode::ShapeMismatch);
}

TEST(IrDim, Evaluate) {
  SymbolBindings b{{"B", 4}, {"S", 10}, {"D", 12}, {"H", 3}};
  EXPECT_EQ(*parse("B*S + 1").evaluate(b), 41);
  EXPECT_EQ(*parse("D/H").evaluate(b), 4);
  EXPECT_EQ(*parse("(S - 1)//2 + 1").evaluate(b), 5);
  auto inexact = parse("S/H").evaluate(b);
  ASSERT_FALSE(inexact.hasValue());
  EXPECT_EQ(inexact.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_NE(inexact.error().message().find("not an integer"), std::string::npos);
  auto unbound = parse("Q*2").evaluate(b);
  ASSERT_FALSE(unbound.hasValue());
  EXPECT_NE(unbound.error().message().find("'Q' is not bound"), std::string::npos);
}

TEST(IrDim, SubstituteAndSymbols) {
  Dim d = parse("B*S + D/H");
  EXPECT_EQ(d.symbols(), (std::vector<std::string>{"B", "D", "H", "S"}));
  auto s = d.substitute({{"S", parse("T*2")}, {"H", Dim::constant(2)}});
  ASSERT_TRUE(s.hasValue());
  EXPECT_EQ(s->str(), "B*T*2 + D/2");
  EXPECT_TRUE(d.mentions("H"));
  EXPECT_FALSE(d.mentions("X"));
}

TEST(IrDim, NestingLimit) {
  std::string deep(200, '(');
  deep += "S";
  deep += std::string(200, ')');
  auto d = text::parseDim(deep);
  ASSERT_FALSE(d.hasValue());
  EXPECT_EQ(d.error().code(), ErrorCode::ResourceExhausted);
  std::string minus(10000, '-');
  minus += "S";
  auto m = text::parseDim(minus);
  ASSERT_FALSE(m.hasValue());
  EXPECT_EQ(m.error().code(), ErrorCode::ResourceExhausted);
}

} // namespace
