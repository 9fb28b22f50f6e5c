#include "Fp8.h"

#include <cmath>

namespace tessera::cpu {

namespace {

struct Format {
  int mantissaBits;
  int bias;
  double maxFinite;
  bool hasInf;
};
constexpr Format kE4M3{3, 7, 448.0, false};
constexpr Format kE5M2{2, 15, 57344.0, true};

float decode(uint8_t code, const Format &f) {
  int sign = code >> 7;
  int exp = (code >> f.mantissaBits) & ((1 << (7 - f.mantissaBits)) - 1);
  int man = code & ((1 << f.mantissaBits) - 1);
  int maxExp = (1 << (7 - f.mantissaBits)) - 1;
  double v;
  if (f.hasInf && exp == maxExp) {
    v = man == 0 ? INFINITY : NAN;
  } else if (!f.hasInf && exp == maxExp && man == (1 << f.mantissaBits) - 1) {
    v = NAN;
  } else if (exp == 0) {
    v = std::ldexp(static_cast<double>(man), 1 - f.bias - f.mantissaBits);
  } else {
    v = std::ldexp(1.0 + man / static_cast<double>(1 << f.mantissaBits), exp - f.bias);
  }
  return static_cast<float>(sign ? -v : v);
}

uint8_t encode(float xf, bool saturate, const Format &f) {
  double x = xf;
  const uint8_t nanCode = f.hasInf ? 0x7E : 0x7F;
  if (std::isnan(x))
    return nanCode;
  uint8_t sign = std::signbit(x) ? 0x80 : 0;
  double a = std::fabs(x);
  const int minNormalExp = 1 - f.bias;
  const uint8_t maxCode = f.hasInf ? 0x7B : 0x7E;
  const uint8_t infCode = f.hasInf ? 0x7C : 0x7F; // e4m3fn: overflow -> NaN
  if (std::isinf(a))
    return sign | (saturate ? maxCode : infCode);
  // Quantum of a's binade (subnormal binade below the minimum normal); a / q
  // is exact in double, nearbyint rounds ties to even.
  int e = a == 0 ? minNormalExp : std::ilogb(a);
  if (e < minNormalExp)
    e = minNormalExp;
  double q = std::ldexp(1.0, e - f.mantissaBits);
  double r = std::nearbyint(a / q) * q;
  if (r > f.maxFinite)
    return sign | (saturate ? maxCode : infCode);
  if (r == 0)
    return sign;
  int re = std::ilogb(r);
  if (re < minNormalExp) // subnormal: exponent field 0
    return sign | static_cast<uint8_t>(r / std::ldexp(1.0, minNormalExp - f.mantissaBits));
  int man = static_cast<int>((r / std::ldexp(1.0, re) - 1.0) * (1 << f.mantissaBits));
  return sign | static_cast<uint8_t>(((re + f.bias) << f.mantissaBits) | man);
}

} // namespace

float decodeE4M3(uint8_t code) { return decode(code, kE4M3); }
float decodeE5M2(uint8_t code) { return decode(code, kE5M2); }

extern "C" uint8_t tessera_cpu_f32_to_e4m3(float x, int32_t saturate) { return encode(x, saturate != 0, kE4M3); }
extern "C" uint8_t tessera_cpu_f32_to_e5m2(float x, int32_t saturate) { return encode(x, saturate != 0, kE5M2); }

} // namespace tessera::cpu
