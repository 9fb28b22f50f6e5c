// Exact rounding of the reference interpreter: IEEE f32/f16, bf16 and the
// OCP 8-bit formats, integer wraparound and bool.
#include "reference/Round.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace tessera::ref;

namespace {

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Decodes a bit pattern of a small float format from first principles,
// independently of Round.cpp: sign | exponent (expBits) | mantissa (manBits).
// `ocpE4M3` selects the OCP E4M3 special-value rule (only S.1111.111 is NaN,
// no infinities).
double decode(uint32_t bits, int expBits, int manBits, bool ocpE4M3 = false) {
  int bias = (1 << (expBits - 1)) - 1;
  uint32_t man = bits & ((1u << manBits) - 1);
  uint32_t exp = (bits >> manBits) & ((1u << expBits) - 1);
  bool neg = (bits >> (manBits + expBits)) & 1;
  uint32_t expMax = (1u << expBits) - 1;
  double v;
  if (ocpE4M3 && exp == expMax && man == (1u << manBits) - 1)
    return kNaN;
  if (!ocpE4M3 && exp == expMax)
    v = man == 0 ? kInf : kNaN;
  else if (exp == 0)
    v = std::ldexp(static_cast<double>(man), 1 - bias - manBits);
  else
    v = std::ldexp(static_cast<double>(man + (1u << manBits)), static_cast<int>(exp) - bias - manBits);
  return neg ? -v : v;
}

struct Format {
  DType dtype;
  int expBits, manBits;
  bool ocp;
};

// Every finite value of the format is a fixed point; every midpoint between
// neighbours rounds to the neighbour with the even mantissa; a hair above or
// below a midpoint goes to the nearer neighbour.
void checkExhaustive(const Format &f) {
  int total = 1 + f.expBits + f.manBits;
  std::vector<std::pair<double, uint32_t>> positives; // value, bits
  for (uint32_t bits = 0; bits < (1u << (total - 1)); ++bits) {
    double v = decode(bits, f.expBits, f.manBits, f.ocp);
    if (std::isfinite(v))
      positives.push_back({v, bits});
  }
  for (size_t i = 0; i < positives.size(); ++i) {
    double v = positives[i].first;
    ASSERT_EQ(roundTo(v, f.dtype), v) << dtypeName(f.dtype) << " value " << v;
    ASSERT_EQ(roundTo(-v, f.dtype), -v) << dtypeName(f.dtype) << " value " << -v;
    if (i + 1 == positives.size())
      continue;
    double next = positives[i + 1].first;
    double mid = (v + next) / 2; // exact in double: formats here have <= 24 bits
    double even = (positives[i].second & 1) == 0 ? v : next;
    ASSERT_EQ(roundTo(mid, f.dtype), even) << dtypeName(f.dtype) << " midpoint " << mid;
    ASSERT_EQ(roundTo(-mid, f.dtype), -even) << dtypeName(f.dtype) << " midpoint " << -mid;
    ASSERT_EQ(roundTo(std::nextafter(mid, 0.0), f.dtype), v) << dtypeName(f.dtype) << " below " << mid;
    ASSERT_EQ(roundTo(std::nextafter(mid, kInf), f.dtype), next) << dtypeName(f.dtype) << " above " << mid;
    // Directed modes (IEEE 754 section 4.3.2) pick a neighbour by direction.
    RoundOptions zero{Overflow::Ieee, RoundingMode::TowardZero}, up{Overflow::Ieee, RoundingMode::Up},
        down{Overflow::Ieee, RoundingMode::Down};
    double above = std::nextafter(v, kInf);
    ASSERT_EQ(roundTo(above, f.dtype, zero), v) << dtypeName(f.dtype) << " " << above;
    ASSERT_EQ(roundTo(above, f.dtype, down), v) << dtypeName(f.dtype) << " " << above;
    ASSERT_EQ(roundTo(above, f.dtype, up), next) << dtypeName(f.dtype) << " " << above;
    ASSERT_EQ(roundTo(-above, f.dtype, zero), -v) << dtypeName(f.dtype) << " " << -above;
    ASSERT_EQ(roundTo(-above, f.dtype, up), -v) << dtypeName(f.dtype) << " " << -above;
    ASSERT_EQ(roundTo(-above, f.dtype, down), -next) << dtypeName(f.dtype) << " " << -above;
  }
  // Every bit pattern decodes like the independent decoder above.
  for (uint32_t bits = 0; bits < (1u << total); ++bits) {
    double expected = decode(bits, f.expBits, f.manBits, f.ocp);
    double got = fromBits(bits, f.dtype);
    if (std::isnan(expected))
      ASSERT_TRUE(std::isnan(got)) << dtypeName(f.dtype) << " bits " << bits;
    else
      ASSERT_EQ(got, expected) << dtypeName(f.dtype) << " bits " << bits;
  }
}

} // namespace

TEST(ReferenceRound, F16Exhaustive) { checkExhaustive({DType::F16, 5, 10, false}); }
TEST(ReferenceRound, BF16Exhaustive) { checkExhaustive({DType::BF16, 8, 7, false}); }
TEST(ReferenceRound, E4M3Exhaustive) { checkExhaustive({DType::F8E4M3FN, 4, 3, true}); }
TEST(ReferenceRound, E5M2Exhaustive) { checkExhaustive({DType::F8E5M2, 5, 2, false}); }

TEST(ReferenceRound, F16Limits) {
  EXPECT_EQ(maxFinite(DType::F16), 65504.0);
  EXPECT_EQ(roundTo(65519.99, DType::F16), 65504.0);
  // 65520 is the midpoint between 65504 (odd mantissa) and 2^16: overflows.
  EXPECT_EQ(roundTo(65520.0, DType::F16), kInf);
  EXPECT_EQ(roundTo(-65520.0, DType::F16), -kInf);
  EXPECT_EQ(roundTo(65520.0, DType::F16, {Overflow::Saturate}), 65504.0);
  EXPECT_EQ(minSubnormal(DType::F16), std::ldexp(1.0, -24));
  EXPECT_EQ(roundTo(std::ldexp(1.0, -25), DType::F16), 0.0); // tie to even zero
  EXPECT_EQ(roundTo(std::ldexp(1.5, -25), DType::F16), std::ldexp(1.0, -24));
  EXPECT_EQ(roundTo(std::ldexp(3.0, -25), DType::F16), std::ldexp(1.0, -23)); // tie to even
  EXPECT_EQ(roundTo(1.0 + std::ldexp(1.0, -11), DType::F16), 1.0);
  EXPECT_EQ(roundTo(1.0 + std::ldexp(3.0, -11), DType::F16), 1.0 + std::ldexp(1.0, -9));
  EXPECT_EQ(roundTo(0.1, DType::F16), 0.0999755859375);
  EXPECT_TRUE(std::signbit(roundTo(-1e-30, DType::F16)));
  EXPECT_EQ(roundTo(kInf, DType::F16), kInf);
  EXPECT_TRUE(std::isnan(roundTo(kNaN, DType::F16)));
}

TEST(ReferenceRound, BF16RoundsOnceFromDouble) {
  EXPECT_EQ(maxFinite(DType::BF16), 3.3895313892515355e38);
  EXPECT_EQ(roundTo(1.0 + std::ldexp(1.0, -8), DType::BF16), 1.0); // tie to even
  EXPECT_EQ(roundTo(1.0 + std::ldexp(3.0, -8), DType::BF16), 1.0 + std::ldexp(1.0, -6));
  // Just above a bf16 tie but below f32 resolution: going through f32 first
  // would land on the tie and round down to 1; one rounding goes up.
  double x = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  EXPECT_EQ(roundTo(static_cast<double>(static_cast<float>(x)), DType::BF16), 1.0);
  EXPECT_EQ(roundTo(x, DType::BF16), 1.0 + std::ldexp(1.0, -7));
  EXPECT_EQ(roundTo(3.4e38, DType::BF16), kInf);
  EXPECT_EQ(minSubnormal(DType::BF16), std::ldexp(1.0, -133));
  EXPECT_EQ(roundTo(std::ldexp(1.0, -134), DType::BF16), 0.0);
  EXPECT_EQ(roundTo(3.14159265358979, DType::BF16), 3.140625);
}

TEST(ReferenceRound, E4M3Ocp) {
  EXPECT_EQ(maxFinite(DType::F8E4M3FN), 448.0);
  EXPECT_EQ(roundTo(464.0, DType::F8E4M3FN), 448.0); // tie: 448 = 1.110b * 2^8 is even
  EXPECT_TRUE(std::isnan(roundTo(464.5, DType::F8E4M3FN)));
  EXPECT_TRUE(std::isnan(roundTo(1e6, DType::F8E4M3FN)));
  EXPECT_TRUE(std::isnan(roundTo(kInf, DType::F8E4M3FN))); // no infinities
  EXPECT_EQ(roundTo(1e6, DType::F8E4M3FN, {Overflow::Saturate}), 448.0);
  EXPECT_EQ(roundTo(-kInf, DType::F8E4M3FN, {Overflow::Saturate}), -448.0);
  EXPECT_TRUE(std::isnan(roundTo(kNaN, DType::F8E4M3FN, {Overflow::Saturate})));
  EXPECT_EQ(roundTo(240.0, DType::F8E4M3FN), 240.0);
  EXPECT_EQ(roundTo(256.0 + 16.0, DType::F8E4M3FN), 256.0); // tie, 1.000b even
  EXPECT_EQ(minSubnormal(DType::F8E4M3FN), std::ldexp(1.0, -9));
  EXPECT_EQ(roundTo(std::ldexp(1.0, -10), DType::F8E4M3FN), 0.0);
  EXPECT_EQ(roundTo(std::ldexp(3.0, -10), DType::F8E4M3FN), std::ldexp(1.0, -8));
  EXPECT_EQ(roundTo(std::ldexp(7.0, -9), DType::F8E4M3FN), std::ldexp(7.0, -9)); // max subnormal
  EXPECT_EQ(roundTo(0.3, DType::F8E4M3FN), 0.3125);
}

TEST(ReferenceRound, E5M2Ocp) {
  EXPECT_EQ(maxFinite(DType::F8E5M2), 57344.0);
  EXPECT_EQ(roundTo(61439.0, DType::F8E5M2), 57344.0);
  EXPECT_EQ(roundTo(61440.0, DType::F8E5M2), kInf); // tie above an odd max
  EXPECT_EQ(roundTo(61440.0, DType::F8E5M2, {Overflow::Saturate}), 57344.0);
  EXPECT_EQ(roundTo(kInf, DType::F8E5M2), kInf);
  EXPECT_EQ(roundTo(-kInf, DType::F8E5M2, {Overflow::Saturate}), -57344.0);
  EXPECT_EQ(minSubnormal(DType::F8E5M2), std::ldexp(1.0, -16));
  EXPECT_EQ(roundTo(std::ldexp(1.0, -17), DType::F8E5M2), 0.0);
  EXPECT_EQ(roundTo(1.125, DType::F8E5M2), 1.0);   // tie to even 1.00b
  EXPECT_EQ(roundTo(1.375, DType::F8E5M2), 1.5);   // tie to even 1.10b
}

TEST(ReferenceRound, F32MatchesHardware) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> expo(-160, 130);
  for (int i = 0; i < 200000; ++i) {
    double x = std::ldexp(mant(rng), expo(rng));
    double hw = static_cast<double>(static_cast<float>(x));
    ASSERT_EQ(roundTo(x, DType::F32), hw) << x;
  }
  EXPECT_EQ(roundTo(1e39, DType::F32), kInf);
  EXPECT_EQ(roundTo(1e39, DType::F32, {Overflow::Saturate}), static_cast<double>(std::numeric_limits<float>::max()));
}

TEST(ReferenceRound, DirectedOverflow) {
  RoundOptions zero{Overflow::Ieee, RoundingMode::TowardZero}, up{Overflow::Ieee, RoundingMode::Up},
      down{Overflow::Ieee, RoundingMode::Down};
  EXPECT_EQ(roundTo(70000.0, DType::F16, zero), 65504.0);
  EXPECT_EQ(roundTo(70000.0, DType::F16, up), kInf);
  EXPECT_EQ(roundTo(70000.0, DType::F16, down), 65504.0);
  EXPECT_EQ(roundTo(-70000.0, DType::F16, up), -65504.0);
  EXPECT_EQ(roundTo(-70000.0, DType::F16, down), -kInf);
  EXPECT_EQ(roundTo(1000.0, DType::F8E4M3FN, zero), 448.0);
  EXPECT_TRUE(std::isnan(roundTo(1000.0, DType::F8E4M3FN, up)));
  EXPECT_EQ(roundTo(std::ldexp(1.0, -30), DType::F16, up), std::ldexp(1.0, -24));
  EXPECT_EQ(roundTo(-std::ldexp(1.0, -30), DType::F16, down), -std::ldexp(1.0, -24));
}

TEST(ReferenceRound, IntegerBits) {
  EXPECT_EQ(fromBits(0xFF, DType::I8), -1.0);
  EXPECT_EQ(fromBits(0xFF, DType::U8), 255.0);
  EXPECT_EQ(fromBits(0x8000, DType::I16), -32768.0);
  EXPECT_EQ(fromBits(0xFFFFFFFFull, DType::I32), -1.0);
  EXPECT_EQ(fromBits(0x3FF0000000000000ull, DType::F64), 1.0);
  EXPECT_EQ(fromBits(0x3F80, DType::BF16), 1.0);
  EXPECT_EQ(fromBits(0x02, DType::Bool), 1.0);
}

TEST(ReferenceRound, Integers) {
  EXPECT_EQ(roundTo(40000.0, DType::I16), -25536.0);
  EXPECT_EQ(roundTo(300.0, DType::I8), 44.0);
  EXPECT_EQ(roundTo(-129.0, DType::I8), 127.0);
  EXPECT_EQ(roundTo(127.9, DType::I8), 127.0);
  EXPECT_EQ(roundTo(-2.9, DType::I8), -2.0);
  EXPECT_EQ(roundTo(-1.0, DType::U8), 255.0);
  EXPECT_EQ(roundTo(256.5, DType::U8), 0.0);
  EXPECT_EQ(roundTo(2147483648.0, DType::I32), -2147483648.0);
  EXPECT_EQ(roundTo(-2147483649.0, DType::I32), 2147483647.0);
  EXPECT_EQ(roundTo(std::ldexp(1.0, 63), DType::I64), -std::ldexp(1.0, 63));
  EXPECT_EQ(roundTo(12345678901.0, DType::I64), 12345678901.0);
  EXPECT_EQ(roundTo(-17.0, DType::I64), -17.0);
  EXPECT_EQ(roundTo(-12345678901.5, DType::I64), -12345678901.0);
  EXPECT_EQ(roundTo(kNaN, DType::I32), 0.0);
  EXPECT_EQ(roundTo(kInf, DType::I32), 0.0);
  EXPECT_FALSE(std::signbit(roundTo(-0.5, DType::I32)));
}

TEST(ReferenceRound, Bool) {
  EXPECT_EQ(roundTo(0.0, DType::Bool), 0.0);
  EXPECT_EQ(roundTo(-0.0, DType::Bool), 0.0);
  EXPECT_EQ(roundTo(0.25, DType::Bool), 1.0);
  EXPECT_EQ(roundTo(-3.0, DType::Bool), 1.0);
  EXPECT_EQ(roundTo(kNaN, DType::Bool), 1.0);
}

TEST(ReferenceRound, F64IsIdentity) {
  EXPECT_EQ(roundTo(0.1, DType::F64), 0.1);
  EXPECT_EQ(roundTo(1e308, DType::F64), 1e308);
}

TEST(ReferenceRound, Names) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8E4M3FN, DType::F8E5M2, DType::I64,
                  DType::I32, DType::I8, DType::U8, DType::Bool}) {
    std::optional<DType> parsed = parseDType(dtypeName(d));
    ASSERT_TRUE(parsed.has_value()) << dtypeName(d);
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_FALSE(parseDType("f128").has_value());
  EXPECT_EQ(parseDType("fp8e4m3"), DType::F8E4M3FN);
}
