// sdk/element.h: the host element codec against hardware conversions and
// exhaustive round trips.
#include "tessera/sdk/element.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace tessera::sdk;

namespace {

double roundTrip(tessera_dtype_t d, double v, bool saturate = false) {
  unsigned char b[8] = {};
  storeElement(d, v, b, saturate);
  return loadElement(d, b);
}

// Nearest representable value by exhaustive search over `count` codes,
// ties to the even code (the reference for the arithmetic encoder).
double nearestBySearch(tessera_dtype_t d, double v, uint32_t count) {
  double best = NAN, bestErr = INFINITY;
  uint32_t bestCode = 0;
  for (uint32_t code = 0; code < count; ++code) {
    unsigned char b[8] = {static_cast<unsigned char>(code), static_cast<unsigned char>(code >> 8)};
    double x = loadElement(d, b);
    if (!std::isfinite(x))
      continue;
    double err = std::fabs(x - v);
    if (err < bestErr || (err == bestErr && (code & 1) == 0 && (bestCode & 1) == 1)) {
      best = x, bestErr = err, bestCode = code;
    }
  }
  return best;
}

TEST(Element, EveryNarrowBitPatternRoundTrips) {
  for (tessera_dtype_t d : {TESSERA_DTYPE_F16, TESSERA_DTYPE_BF16, TESSERA_DTYPE_F8E4M3, TESSERA_DTYPE_F8E5M2}) {
    uint32_t count = dtypeSize(d) == 2 ? 65536 : 256;
    for (uint32_t code = 0; code < count; ++code) {
      unsigned char in[8] = {static_cast<unsigned char>(code), static_cast<unsigned char>(code >> 8)};
      double v = loadElement(d, in);
      if (std::isnan(v))
        continue;
      unsigned char out[8] = {};
      storeElement(d, v, out);
      ASSERT_EQ(0, std::memcmp(in, out, dtypeSize(d))) << dtypeName(d) << " code " << code;
    }
  }
}

TEST(Element, F32MatchesTheHardware) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> mant(-2.0, 2.0);
  for (int i = 0; i < 200000; ++i) {
    // Exponents from below the subnormal range to beyond the largest float.
    double v = std::ldexp(mant(rng), static_cast<int>(rng() % 290) - 160);
    float hw = static_cast<float>(v); // the FPU rounds to nearest even
    ASSERT_EQ(static_cast<double>(hw), roundTrip(TESSERA_DTYPE_F32, v)) << v;
  }
}

TEST(Element, NarrowFloatsRoundToNearestEven) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> mant(-2.0, 2.0);
  struct Case {
    tessera_dtype_t d;
    uint32_t codes;
    int minExp, maxExp;
  } cases[] = {{TESSERA_DTYPE_F16, 65536, -26, 16},
               {TESSERA_DTYPE_F8E4M3, 256, -11, 9},
               {TESSERA_DTYPE_F8E5M2, 256, -18, 16}};
  for (const Case &c : cases)
    for (int i = 0; i < 3000; ++i) {
      double v = std::ldexp(mant(rng), c.minExp + static_cast<int>(rng() % (c.maxExp - c.minExp)));
      double want = nearestBySearch(c.d, v, c.codes);
      double got = roundTrip(c.d, v, /*saturate=*/true);
      EXPECT_EQ(got, want) << dtypeName(c.d) << " " << v;
    }
  // Ties: halfway between 1 and the next f16 (1 + 2^-10) goes to the even 1.
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F16, 1 + std::ldexp(1, -11)), 1.0);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F16, 1 + 3 * std::ldexp(1, -11)), 1 + std::ldexp(1, -9));
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_BF16, 1 + std::ldexp(1, -8)), 1.0);
}

TEST(Element, OverflowAndSpecials) {
  EXPECT_TRUE(std::isinf(roundTrip(TESSERA_DTYPE_F16, 70000)));
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F16, 70000, true), 65504);
  EXPECT_TRUE(std::isnan(roundTrip(TESSERA_DTYPE_F8E4M3, 500))); // E4M3FN has no infinity
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F8E4M3, 500, true), 448);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F8E4M3, 464), 448);           // rounds down to max, not over
  EXPECT_TRUE(std::isinf(roundTrip(TESSERA_DTYPE_F8E5M2, 1e6)));
  EXPECT_TRUE(std::isnan(roundTrip(TESSERA_DTYPE_BF16, NAN)));
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F16, std::ldexp(1, -24)), std::ldexp(1, -24)); // smallest subnormal
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_F16, std::ldexp(1, -26)), 0.0);
}

TEST(Element, IntegersTruncateAndWrap) {
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I32, -2.7), -2);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I8, 130), -126);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_U8, -1), 255);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I64, NAN), 0);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I16, 65537.9), 1);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_BOOL, 0.25), 1);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_BOOL, 0.0), 0);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I64, -3.0), -3);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I64, -9223372036854775808.0), -9223372036854775808.0);
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I64, 18446744073709551616.0 + 4096), 4096); // wraps modulo 2^64
  EXPECT_EQ(roundTrip(TESSERA_DTYPE_I32, -2147483649.0), 2147483647);
}

} // namespace
