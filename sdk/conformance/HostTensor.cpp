#include "HostTensor.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace tessera::conformance {

size_t dtypeBytes(tessera_dtype_t dtype) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: case TESSERA_DTYPE_I64: return 8;
  case TESSERA_DTYPE_F32: case TESSERA_DTYPE_I32: return 4;
  case TESSERA_DTYPE_F16: case TESSERA_DTYPE_BF16: case TESSERA_DTYPE_I16: return 2;
  case TESSERA_DTYPE_F8E4M3: case TESSERA_DTYPE_F8E5M2: case TESSERA_DTYPE_I8: case TESSERA_DTYPE_U8:
  case TESSERA_DTYPE_BOOL: return 1;
  default: return 0;
  }
}

const char *dtypeText(tessera_dtype_t dtype) {
  switch (dtype) {
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

int64_t HostTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

double decodeHalf(uint16_t bits) {
  int sign = bits >> 15, exp = (bits >> 10) & 0x1f, mant = bits & 0x3ff;
  double v;
  if (exp == 0)
    v = std::ldexp(mant, -24);
  else if (exp == 31)
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

double decodeBFloat16(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

// OCP 8-bit floating point spec v1.0: E4M3FN has no infinities; S.1111.111 is NaN.
double decodeF8E4M3(uint8_t bits) {
  int sign = bits >> 7, exp = (bits >> 3) & 0xf, mant = bits & 7;
  if (exp == 15 && mant == 7)
    return std::numeric_limits<double>::quiet_NaN();
  double v = exp == 0 ? std::ldexp(mant, -9) : std::ldexp(8 + mant, exp - 10);
  return sign ? -v : v;
}

double decodeF8E5M2(uint8_t bits) {
  int sign = bits >> 7, exp = (bits >> 2) & 0x1f, mant = bits & 3;
  double v;
  if (exp == 31)
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = exp == 0 ? std::ldexp(mant, -16) : std::ldexp(4 + mant, exp - 17);
  return sign ? -v : v;
}

double HostTensor::get(int64_t i) const {
  const uint8_t *p = bytes.data() + i * dtypeBytes(dtype);
  switch (dtype) {
  case TESSERA_DTYPE_F64: { double v; std::memcpy(&v, p, 8); return v; }
  case TESSERA_DTYPE_F32: { float v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_F16: { uint16_t v; std::memcpy(&v, p, 2); return decodeHalf(v); }
  case TESSERA_DTYPE_BF16: { uint16_t v; std::memcpy(&v, p, 2); return decodeBFloat16(v); }
  case TESSERA_DTYPE_F8E4M3: return decodeF8E4M3(*p);
  case TESSERA_DTYPE_F8E5M2: return decodeF8E5M2(*p);
  case TESSERA_DTYPE_I64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  case TESSERA_DTYPE_I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
  case TESSERA_DTYPE_I8: return static_cast<int8_t>(*p);
  case TESSERA_DTYPE_U8: case TESSERA_DTYPE_BOOL: return *p;
  default: return std::numeric_limits<double>::quiet_NaN();
  }
}

namespace {

// Encodes a value known to be exactly representable (see randomTensor).
void encodeExact(tessera_dtype_t dtype, double v, uint8_t *p) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: std::memcpy(p, &v, 8); return;
  case TESSERA_DTYPE_F32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); return; }
  case TESSERA_DTYPE_BF16: {
    float f = static_cast<float>(v);
    uint32_t w;
    std::memcpy(&w, &f, 4);
    uint16_t h = static_cast<uint16_t>(w >> 16); // exact: low bits are zero
    std::memcpy(p, &h, 2);
    return;
  }
  case TESSERA_DTYPE_F16: {
    // v = m * 2^e with |m| < 2^11: normal half numbers only (values >= 2^-6 here).
    uint16_t sign = v < 0 ? 0x8000 : 0;
    double a = std::fabs(v);
    int e;
    double frac = std::frexp(a, &e); // a = frac * 2^e, frac in [0.5, 1)
    uint16_t exp = static_cast<uint16_t>(e - 1 + 15);
    uint16_t mant = static_cast<uint16_t>(std::lround((frac * 2 - 1) * 1024));
    uint16_t h = static_cast<uint16_t>(sign | (exp << 10) | mant);
    std::memcpy(p, &h, 2);
    return;
  }
  case TESSERA_DTYPE_F8E4M3:
  case TESSERA_DTYPE_F8E5M2: {
    bool e4 = dtype == TESSERA_DTYPE_F8E4M3;
    int mbits = e4 ? 3 : 2, bias = e4 ? 7 : 15;
    uint8_t sign = v < 0 ? 0x80 : 0;
    int e;
    double frac = std::frexp(std::fabs(v), &e);
    uint8_t exp = static_cast<uint8_t>(e - 1 + bias);
    uint8_t mant = static_cast<uint8_t>(std::lround((frac * 2 - 1) * (1 << mbits)));
    *p = static_cast<uint8_t>(sign | (exp << mbits) | mant);
    return;
  }
  case TESSERA_DTYPE_I64: { int64_t i = static_cast<int64_t>(v); std::memcpy(p, &i, 8); return; }
  case TESSERA_DTYPE_I32: { int32_t i = static_cast<int32_t>(v); std::memcpy(p, &i, 4); return; }
  case TESSERA_DTYPE_I16: { int16_t i = static_cast<int16_t>(v); std::memcpy(p, &i, 2); return; }
  case TESSERA_DTYPE_I8: *p = static_cast<uint8_t>(static_cast<int8_t>(v)); return;
  case TESSERA_DTYPE_U8: case TESSERA_DTYPE_BOOL: *p = static_cast<uint8_t>(v); return;
  default: return;
  }
}

} // namespace

HostTensor randomTensor(tessera_dtype_t dtype, std::vector<int64_t> shape, InputKind kind, int64_t bound,
                        std::mt19937_64 &rng, int scaleLog2) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  int64_t n = t.elements();
  t.bytes.assign(static_cast<size_t>(n) * dtypeBytes(dtype), 0);
  // Mantissa bits each float dtype can hold exactly for k / 2^q values.
  int range = 255, scale = 64; // 8 significant bits: f64, f32, f16, bf16
  if (dtype == TESSERA_DTYPE_F8E4M3) range = 15, scale = 8;
  if (dtype == TESSERA_DTYPE_F8E5M2) range = 7, scale = 4;
  bool isInt = dtype == TESSERA_DTYPE_I64 || dtype == TESSERA_DTYPE_I32 || dtype == TESSERA_DTYPE_I16 ||
               dtype == TESSERA_DTYPE_I8 || dtype == TESSERA_DTYPE_U8;
  for (int64_t i = 0; i < n; ++i) {
    double v;
    if (kind == InputKind::Bool || dtype == TESSERA_DTYPE_BOOL) {
      v = static_cast<double>(rng() & 1);
    } else if (kind == InputKind::Index) {
      v = static_cast<double>(rng() % static_cast<uint64_t>(bound > 0 ? bound : 1));
    } else if (isInt) {
      int64_t k = static_cast<int64_t>(rng() % 19) + 1; // 1..19: no zeros, safe for i8 products
      v = static_cast<double>((kind == InputKind::Normal && dtype != TESSERA_DTYPE_U8 && (rng() & 1)) ? -k : k);
    } else {
      // Keep |k| >= range/16 so f16 values stay normal.
      int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(range - range / 16)) + range / 16 + 1;
      if (k > range)
        k = range;
      v = std::ldexp(static_cast<double>(k) / scale, -scaleLog2);
      if (kind == InputKind::Normal && (rng() & 1))
        v = -v;
    }
    encodeExact(dtype, v, t.bytes.data() + i * dtypeBytes(dtype));
  }
  return t;
}

Tolerance toleranceFor(tessera_dtype_t dtype) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: return {1e-9, 1e-12};
  case TESSERA_DTYPE_F32: return {2e-4, 1e-5};
  case TESSERA_DTYPE_F16: return {1e-2, 1e-3};
  case TESSERA_DTYPE_BF16: return {4e-2, 1e-2};
  case TESSERA_DTYPE_F8E4M3: return {1.3e-1, 2e-2};
  case TESSERA_DTYPE_F8E5M2: return {2.6e-1, 4e-2};
  default: return {0, 0}; // integers and bool: exact
  }
}

double normToleranceFor(tessera_dtype_t dtype) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: return 1e-10;
  case TESSERA_DTYPE_F32: return 1e-4;
  case TESSERA_DTYPE_F16: return 5e-3;
  case TESSERA_DTYPE_BF16: return 2e-2;
  default: return 6e-2; // fp8
  }
}

} // namespace tessera::conformance
