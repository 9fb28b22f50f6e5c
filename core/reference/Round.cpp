#include "reference/Round.h"

#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

namespace tessera::ref {

std::string_view dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F64: return "f64";
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::F8E4M3FN: return "f8e4m3fn";
  case DType::F8E5M2: return "f8e5m2";
  case DType::I64: return "i64";
  case DType::I32: return "i32";
  case DType::I16: return "i16";
  case DType::I8: return "i8";
  case DType::U8: return "u8";
  case DType::Bool: return "bool";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view name) {
  static constexpr struct {
    std::string_view name;
    DType dtype;
  } kNames[] = {
      {"f64", DType::F64},         {"f32", DType::F32},          {"f16", DType::F16},
      {"bf16", DType::BF16},       {"f8e4m3fn", DType::F8E4M3FN}, {"f8e4m3", DType::F8E4M3FN},
      {"fp8e4m3", DType::F8E4M3FN}, {"fp8e4m3fn", DType::F8E4M3FN}, {"e4m3", DType::F8E4M3FN},
      {"f8e5m2", DType::F8E5M2},   {"fp8e5m2", DType::F8E5M2},    {"e5m2", DType::F8E5M2},
      {"i64", DType::I64},         {"i32", DType::I32},          {"i16", DType::I16},
      {"i8", DType::I8},
      {"u8", DType::U8},           {"bool", DType::Bool},        {"i1", DType::Bool},
  };
  for (const auto &entry : kNames)
    if (entry.name == name)
      return entry.dtype;
  return std::nullopt;
}

bool isFloat(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::F32:
  case DType::F16:
  case DType::BF16:
  case DType::F8E4M3FN:
  case DType::F8E5M2:
    return true;
  default:
    return false;
  }
}

bool isInteger(DType dtype) {
  return dtype == DType::I64 || dtype == DType::I32 || dtype == DType::I16 || dtype == DType::I8 ||
         dtype == DType::U8;
}

bool isSigned(DType dtype) {
  return dtype == DType::I64 || dtype == DType::I32 || dtype == DType::I16 || dtype == DType::I8;
}

unsigned bitWidth(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 64;
  case DType::F32:
  case DType::I32:
    return 32;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 16;
  case DType::F8E4M3FN:
  case DType::F8E5M2:
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 8;
  }
  return 0;
}

namespace {

// A binary floating-point format with gradual underflow.
struct FloatFormat {
  int precision; // significand bits including the implicit one
  int emin;      // exponent of the smallest normal (value 2^emin)
  double maxFinite;
  bool hasInf;
};

// Field widths: IEEE 754-2008 Table 3.5 (binary16, binary32); bfloat16 is
// binary32 with 8 significand bits; fp8 per OCP 8-bit Floating Point
// Specification (OFP8) v1.0, Table 1:
//   E4M3: bias 7, emin -6, max S.1111.110 = 1.75 * 2^8 = 448, no inf.
//   E5M2: bias 15, emin -14, max S.11110.11 = 1.75 * 2^15 = 57344, has inf.
FloatFormat formatOf(DType dtype) {
  switch (dtype) {
  case DType::F32: return {24, -126, static_cast<double>(std::numeric_limits<float>::max()), true};
  case DType::F16: return {11, -14, 65504.0, true};
  case DType::BF16: return {8, -126, std::ldexp(255.0, 120), true}; // (2 - 2^-7) * 2^127
  case DType::F8E4M3FN: return {4, -6, 448.0, false};
  case DType::F8E5M2: return {3, -14, 57344.0, true};
  default:
    assert(false && "formatOf called on a non-rounded dtype");
    return {53, -1022, std::numeric_limits<double>::max(), true};
  }
}

// Round-half-to-even of a non-negative double whose magnitude is small
// enough (< 2^53) that floor() and the comparison below are exact. Written
// out rather than std::nearbyint so the result does not depend on the
// floating-point environment's rounding mode.
double roundHalfEven(double v) {
  double lower = std::floor(v);
  double frac = v - lower;
  if (frac > 0.5)
    return lower + 1.0;
  if (frac < 0.5)
    return lower;
  return std::fmod(lower, 2.0) == 0.0 ? lower : lower + 1.0;
}

// Rounds a value v >= 0 that is < 2^53 to an integer in `mode`; `negative`
// says the original value was negative, which flips the directed modes.
double roundScaled(double v, RoundingMode mode, bool negative) {
  switch (mode) {
  case RoundingMode::NearestEven: return roundHalfEven(v);
  case RoundingMode::TowardZero: return std::floor(v);
  case RoundingMode::Up: return negative ? std::floor(v) : std::ceil(v);
  case RoundingMode::Down: return negative ? std::ceil(v) : std::floor(v);
  }
  return roundHalfEven(v);
}

// Whether IEEE 754-2008 section 7.4 sends an overflow to infinity (true) or
// to the largest finite value (false) under `mode`.
bool overflowsToInfinity(RoundingMode mode, bool negative) {
  switch (mode) {
  case RoundingMode::NearestEven: return true;
  case RoundingMode::TowardZero: return false;
  case RoundingMode::Up: return !negative;
  case RoundingMode::Down: return negative;
  }
  return true;
}

double roundFloat(double x, const FloatFormat &fmt, const RoundOptions &options) {
  if (std::isnan(x))
    return x;
  if (std::isinf(x)) {
    // OFP8 v1.0 section 5 (conversion): saturation maps +-inf to +-max;
    // without saturation e4m3fn has no inf and gives NaN.
    if (options.overflow == Overflow::Saturate)
      return std::copysign(fmt.maxFinite, x);
    return fmt.hasInf ? x : std::numeric_limits<double>::quiet_NaN();
  }
  double mag = std::fabs(x);
  if (mag == 0.0)
    return x; // keeps the sign of zero
  bool negative = std::signbit(x);
  int exp = 0;
  std::frexp(mag, &exp); // mag = f * 2^exp, f in [0.5, 1)
  // Exponent of the leading bit, clamped at emin so that values below the
  // normal range are quantized on the subnormal grid.
  int lead = std::max(exp - 1, fmt.emin);
  int quantumExp = lead - (fmt.precision - 1);
  // Scaling by a power of two is exact; the scaled value is < 2^precision.
  double rounded = std::ldexp(roundScaled(std::ldexp(mag, -quantumExp), options.mode, negative), quantumExp);
  if (rounded > fmt.maxFinite) {
    // Rounding can only exceed max by reaching the next binade: overflow.
    if (options.overflow == Overflow::Saturate || !overflowsToInfinity(options.mode, negative))
      rounded = fmt.maxFinite;
    else if (fmt.hasInf)
      rounded = std::numeric_limits<double>::infinity();
    else
      return std::numeric_limits<double>::quiet_NaN();
  }
  return std::copysign(rounded, x);
}

double wrapInteger(double x, unsigned bits, bool isSignedType) {
  if (!std::isfinite(x))
    return 0.0;
  double modulus = std::ldexp(1.0, static_cast<int>(bits));
  double m = std::fmod(std::trunc(x), modulus); // exact, in (-modulus, modulus)
  // Move into the type's range with at most one exact step; adding the
  // modulus to a small negative i64 value first would round in double.
  if (isSignedType) {
    if (m >= modulus / 2)
      m -= modulus;
    else if (m < -modulus / 2)
      m += modulus;
  } else if (m < 0) {
    m += modulus;
  }
  return m + 0.0; // normalizes -0 to +0
}

} // namespace

double roundTo(double x, DType dtype, RoundOptions options) {
  switch (dtype) {
  case DType::F64:
    return x;
  case DType::F32:
  case DType::F16:
  case DType::BF16:
  case DType::F8E4M3FN:
  case DType::F8E5M2:
    return roundFloat(x, formatOf(dtype), options);
  case DType::I64:
  case DType::I32:
  case DType::I16:
  case DType::I8:
  case DType::U8:
    return wrapInteger(x, bitWidth(dtype), isSigned(dtype));
  case DType::Bool:
    return x != 0.0 ? 1.0 : 0.0; // NaN is true, as in C and NumPy
  }
  assert(false && "unknown dtype");
  return x;
}

double fromBits(uint64_t bits, DType dtype) {
  unsigned width = bitWidth(dtype);
  if (width < 64)
    bits &= (uint64_t(1) << width) - 1;
  switch (dtype) {
  case DType::F64: {
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  case DType::F32: {
    uint32_t b = static_cast<uint32_t>(bits);
    float v;
    std::memcpy(&v, &b, sizeof v);
    return v;
  }
  case DType::BF16: // the high 16 bits of a binary32
    return fromBits(bits << 16, DType::F32);
  case DType::F16:
  case DType::F8E4M3FN:
  case DType::F8E5M2: {
    // sign | exponent | mantissa with bias 2^(e-1) - 1 and gradual underflow.
    FloatFormat fmt = formatOf(dtype);
    int manBits = fmt.precision - 1;
    int expBits = static_cast<int>(width) - 1 - manBits;
    uint64_t man = bits & ((uint64_t(1) << manBits) - 1);
    uint64_t e = (bits >> manBits) & ((uint64_t(1) << expBits) - 1);
    bool negative = (bits >> (width - 1)) & 1;
    uint64_t eMax = (uint64_t(1) << expBits) - 1;
    double v;
    if (dtype == DType::F8E4M3FN && e == eMax && man == (uint64_t(1) << manBits) - 1)
      v = std::numeric_limits<double>::quiet_NaN(); // OFP8: only S.1111.111 is NaN
    else if (dtype != DType::F8E4M3FN && e == eMax)
      v = man == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    else if (e == 0)
      v = std::ldexp(static_cast<double>(man), fmt.emin - manBits);
    else
      v = std::ldexp(static_cast<double>(man | (uint64_t(1) << manBits)),
                     static_cast<int>(e) + fmt.emin - 1 - manBits);
    return negative ? -v : v;
  }
  case DType::I64:
    return static_cast<double>(static_cast<int64_t>(bits));
  case DType::I32:
    return static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(bits)));
  case DType::I16:
    return static_cast<double>(static_cast<int16_t>(static_cast<uint16_t>(bits)));
  case DType::I8:
    return static_cast<double>(static_cast<int8_t>(static_cast<uint8_t>(bits)));
  case DType::U8:
    return static_cast<double>(bits);
  case DType::Bool:
    return bits != 0 ? 1.0 : 0.0;
  }
  return 0.0;
}

double maxFinite(DType dtype) {
  if (dtype == DType::F64)
    return std::numeric_limits<double>::max();
  return formatOf(dtype).maxFinite;
}

double minSubnormal(DType dtype) {
  if (dtype == DType::F64)
    return std::numeric_limits<double>::denorm_min();
  FloatFormat fmt = formatOf(dtype);
  return std::ldexp(1.0, fmt.emin - (fmt.precision - 1));
}

} // namespace tessera::ref
