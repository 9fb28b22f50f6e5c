// element.h: element storage of every Tessera dtype on the host: sizes,
// names, decoding to double and encoding from double with round-to-nearest-
// even. Header-only C++17 over tessera_types.h, shared by plugins, the
// conformance suite, the CLI and the C API's host-side paths.
//
// Formats: IEEE 754 binary64/32/16; bfloat16 (the top half of binary32);
// OCP 8-bit floating point v1.0: E4M3FN (bias 7, no infinities, S.1111.111 is
// NaN, max 448) and E5M2 (bias 15, IEEE-like, max 57344).
// Integers convert by truncation toward zero and wrap modulo 2^bits; NaN and
// infinities become 0; bool is 0/1.
#ifndef TESSERA_SDK_ELEMENT_H_
#define TESSERA_SDK_ELEMENT_H_

#include "tessera/tessera_types.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace tessera::sdk {

inline size_t dtypeSize(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: case TESSERA_DTYPE_I64: return 8;
  case TESSERA_DTYPE_F32: case TESSERA_DTYPE_I32: return 4;
  case TESSERA_DTYPE_F16: case TESSERA_DTYPE_BF16: case TESSERA_DTYPE_I16: return 2;
  case TESSERA_DTYPE_F8E4M3: case TESSERA_DTYPE_F8E5M2: case TESSERA_DTYPE_I8: case TESSERA_DTYPE_U8:
  case TESSERA_DTYPE_BOOL: return 1;
  default: return 0;
  }
}

inline const char *dtypeName(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return "f64";
  case TESSERA_DTYPE_F32: return "f32";
  case TESSERA_DTYPE_F16: return "f16";
  case TESSERA_DTYPE_BF16: return "bf16";
  case TESSERA_DTYPE_F8E4M3: return "f8e4m3";
  case TESSERA_DTYPE_F8E5M2: return "f8e5m2";
  case TESSERA_DTYPE_I64: return "i64";
  case TESSERA_DTYPE_I32: return "i32";
  case TESSERA_DTYPE_I16: return "i16";
  case TESSERA_DTYPE_I8: return "i8";
  case TESSERA_DTYPE_U8: return "u8";
  case TESSERA_DTYPE_BOOL: return "bool";
  default: return "invalid";
  }
}

inline bool isFloatDType(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_F64 || d == TESSERA_DTYPE_F32 || d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_BF16 ||
         d == TESSERA_DTYPE_F8E4M3 || d == TESSERA_DTYPE_F8E5M2;
}

// Decodes a sign + `e` exponent + `m` mantissa bit pattern. `fn` formats
// (E4M3FN) have no infinities and a single NaN mantissa (all ones).
inline double decodeMinifloat(uint32_t bits, int e, int m, bool fn) {
  uint32_t sign = bits >> (e + m) & 1, exp = bits >> m & ((1u << e) - 1), man = bits & ((1u << m) - 1);
  int bias = (1 << (e - 1)) - 1;
  double s = sign ? -1.0 : 1.0;
  if (exp == (1u << e) - 1) {
    if (fn) {
      if (man == (1u << m) - 1)
        return std::numeric_limits<double>::quiet_NaN();
    } else {
      return man ? std::numeric_limits<double>::quiet_NaN() : s * std::numeric_limits<double>::infinity();
    }
  }
  if (exp == 0)
    return s * std::ldexp(static_cast<double>(man), 1 - bias - m);
  return s * std::ldexp(static_cast<double>(man | (1u << m)), static_cast<int>(exp) - bias - m);
}

// Rounds v to a binary format with `mantissa` stored bits, smallest normal
// exponent `minExp` and largest finite value `maxFinite`, to nearest with ties
// to even (scaling by powers of two is exact, so nearbyint in the default
// rounding mode does the rounding). Overflow gives +-inf, or +-maxFinite when
// `saturate` (infinities too).
inline double roundToFormat(double v, int mantissa, int minExp, double maxFinite, bool saturate) {
  if (std::isnan(v))
    return v;
  if (std::isinf(v))
    return saturate ? std::copysign(maxFinite, v) : v;
  if (v == 0)
    return v;
  int e = std::ilogb(v);
  if (e < minExp)
    e = minExp; // subnormal: fixed spacing
  double r = std::ldexp(std::nearbyint(std::ldexp(v, mantissa - e)), e - mantissa);
  if (std::fabs(r) > maxFinite)
    return saturate ? std::copysign(maxFinite, v) : std::copysign(std::numeric_limits<double>::infinity(), v);
  return r;
}

// The 8-bit code of a value exactly representable in the format (or NaN/inf).
inline uint8_t fp8Code(double exact, bool e4m3) {
  if (std::isnan(exact))
    return e4m3 ? 0x7f : 0x7e;
  if (std::isinf(exact)) // E5M2 only; E4M3FN has none (callers saturate or give NaN)
    return e4m3 ? 0x7f : static_cast<uint8_t>(exact > 0 ? 0x7c : 0xfc);
  uint8_t sign = std::signbit(exact) ? 0x80 : 0;
  for (uint32_t code = 0; code < 128; ++code)
    if (decodeMinifloat(code, e4m3 ? 4 : 5, e4m3 ? 3 : 2, e4m3) == std::fabs(exact))
      return static_cast<uint8_t>(sign | code);
  return e4m3 ? 0x7f : 0x7e; // not representable: NaN (callers round first)
}

// Decodes one element at p.
inline double loadElement(tessera_dtype_t d, const void *where) {
  const auto *p = static_cast<const uint8_t *>(where);
  switch (d) {
  case TESSERA_DTYPE_F64: { double v; std::memcpy(&v, p, 8); return v; }
  case TESSERA_DTYPE_F32: { float v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_F16: { uint16_t b; std::memcpy(&b, p, 2); return decodeMinifloat(b, 5, 10, false); }
  case TESSERA_DTYPE_BF16: {
    uint16_t b;
    std::memcpy(&b, p, 2);
    uint32_t w = static_cast<uint32_t>(b) << 16;
    float v;
    std::memcpy(&v, &w, 4);
    return v;
  }
  case TESSERA_DTYPE_F8E4M3: return decodeMinifloat(*p, 4, 3, true);
  case TESSERA_DTYPE_F8E5M2: return decodeMinifloat(*p, 5, 2, false);
  case TESSERA_DTYPE_I64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  case TESSERA_DTYPE_I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
  case TESSERA_DTYPE_I8: return static_cast<int8_t>(*p);
  case TESSERA_DTYPE_U8: return *p;
  case TESSERA_DTYPE_BOOL: return *p ? 1 : 0;
  default: return std::numeric_limits<double>::quiet_NaN();
  }
}

// Integer conversion: truncate toward zero, wrap modulo 2^64 (then the
// narrower store wraps further); NaN and infinities give 0.
inline uint64_t wrapToInteger(double v) {
  if (!std::isfinite(v))
    return 0;
  double t = std::trunc(v);
  if (std::fabs(t) < 9223372036854775808.0) // |t| < 2^63: exact as int64
    return static_cast<uint64_t>(static_cast<int64_t>(t));
  // |t| >= 2^63 is a multiple of 2^11, so fmod and the shifts below are exact.
  double m = std::fmod(t, 18446744073709551616.0); // 2^64
  if (m < 0)
    m += 18446744073709551616.0;
  return m >= 9223372036854775808.0 ? static_cast<uint64_t>(m - 9223372036854775808.0) + (1ull << 63)
                                    : static_cast<uint64_t>(m);
}

// Encodes v as one element at p, rounding to nearest even. Narrow floats
// overflow to inf (E4M3FN: NaN) unless `saturate`.
inline void storeElement(tessera_dtype_t d, double v, void *where, bool saturate = false) {
  auto *p = static_cast<uint8_t *>(where);
  switch (d) {
  case TESSERA_DTYPE_F64: std::memcpy(p, &v, 8); return;
  case TESSERA_DTYPE_F32: {
    float f = static_cast<float>(roundToFormat(v, 23, -126, 3.4028234663852886e38, saturate));
    std::memcpy(p, &f, 4);
    return;
  }
  case TESSERA_DTYPE_BF16: {
    float f = static_cast<float>(roundToFormat(v, 7, -126, 3.3895313892515355e38, saturate)); // exact
    uint32_t w;
    std::memcpy(&w, &f, 4);
    uint16_t b = static_cast<uint16_t>(std::isnan(f) ? ((w >> 16) | 0x40) : (w >> 16));
    std::memcpy(p, &b, 2);
    return;
  }
  case TESSERA_DTYPE_F16: {
    double r = roundToFormat(v, 10, -14, 65504.0, saturate);
    uint16_t b;
    if (std::isnan(r)) {
      b = 0x7e00;
    } else {
      b = std::signbit(r) ? 0x8000 : 0;
      double a = std::fabs(r);
      if (std::isinf(a)) {
        b |= 0x7c00;
      } else if (a >= std::ldexp(1.0, -14)) {
        int e = std::ilogb(a);
        b |= static_cast<uint16_t>((e + 15) << 10 | (static_cast<uint32_t>(std::ldexp(a, 10 - e)) & 0x3ff));
      } else {
        b |= static_cast<uint16_t>(std::ldexp(a, 24)); // subnormal: multiples of 2^-24
      }
    }
    std::memcpy(p, &b, 2);
    return;
  }
  case TESSERA_DTYPE_F8E4M3: {
    double r = roundToFormat(v, 3, -6, 448.0, saturate);
    *p = fp8Code(std::isinf(r) ? std::numeric_limits<double>::quiet_NaN() : r, true);
    return;
  }
  case TESSERA_DTYPE_F8E5M2: *p = fp8Code(roundToFormat(v, 2, -14, 57344.0, saturate), false); return;
  case TESSERA_DTYPE_I64: { uint64_t u = wrapToInteger(v); std::memcpy(p, &u, 8); return; }
  case TESSERA_DTYPE_I32: { uint32_t u = static_cast<uint32_t>(wrapToInteger(v)); std::memcpy(p, &u, 4); return; }
  case TESSERA_DTYPE_I16: { uint16_t u = static_cast<uint16_t>(wrapToInteger(v)); std::memcpy(p, &u, 2); return; }
  case TESSERA_DTYPE_I8: case TESSERA_DTYPE_U8: *p = static_cast<uint8_t>(wrapToInteger(v)); return;
  case TESSERA_DTYPE_BOOL: *p = v != 0 ? 1 : 0; return;
  default: return;
  }
}

} // namespace tessera::sdk

#endif // TESSERA_SDK_ELEMENT_H_
