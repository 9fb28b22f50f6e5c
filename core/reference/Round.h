// Dtype rounding for the reference interpreter: every value is held as a
// double, and each op's result is rounded to the op's declared dtype, so the
// oracle reproduces what a backend storing that dtype can represent.
//
// Floating formats are emulated exactly from double (one rounding, never via
// f32, which would double-round): round-to-nearest-even, gradual underflow,
// and overflow per IEEE 754 (f32, f16, bf16) or the OCP 8-bit floating point
// specification v1.0 (fp8 e4m3fn, e5m2). Integers truncate toward zero and
// wrap modulo 2^bits; bool is x != 0.
#ifndef TESSERA_REFERENCE_ROUND_H
#define TESSERA_REFERENCE_ROUND_H

#include <cstdint>
#include <optional>
#include <string_view>

namespace tessera::ref {

// The element types the interpreter knows. Kept local to the reference
// library so it does not depend on how core/ir spells dtypes; the evaluator
// maps IR dtypes onto these.
enum class DType : uint8_t {
  F64,
  F32,
  F16,
  BF16,
  F8E4M3FN, // OCP E4M3: no infinities, NaN = S.1111.111, max 448.
  F8E5M2,   // OCP E5M2: IEEE-like, max 57344.
  I64,
  I32,
  I16,
  I8,
  U8,
  Bool,
};

// "f64", "f32", "f16", "bf16", "f8e4m3fn", "f8e5m2", "i64", "i32", "i16",
// "i8", "u8", "bool".
std::string_view dtypeName(DType dtype);
// Accepts the names above plus the aliases "fp8e4m3", "f8e4m3", "fp8e5m2",
// "e4m3", "e5m2".
std::optional<DType> parseDType(std::string_view name);

bool isFloat(DType dtype);
bool isInteger(DType dtype); // signed or unsigned, not bool
bool isSigned(DType dtype);  // integers only
// Bits of the storage type.
unsigned bitWidth(DType dtype);

// What happens to finite values beyond the largest finite value of a float
// format (and to infinities for formats without them).
enum class Overflow : uint8_t {
  // IEEE / OCP "non-saturating" mode: overflow gives +-inf, or NaN for
  // e4m3fn, which has no infinities.
  Ieee,
  // OCP "saturation" mode (also NVIDIA's __NV_SATFINITE): finite overflow and
  // +-inf both clamp to +-max finite; NaN stays NaN.
  Saturate,
};

// IEEE 754-2008 section 4.3 rounding-direction attributes.
enum class RoundingMode : uint8_t {
  NearestEven, // roundTiesToEven (the default)
  TowardZero,  // roundTowardZero
  Up,          // roundTowardPositive
  Down,        // roundTowardNegative
};

struct RoundOptions {
  Overflow overflow = Overflow::Ieee;
  RoundingMode mode = RoundingMode::NearestEven;
};

// Rounds `x` to a value of `dtype` (by default the nearest, ties to even) and
// returns it as a double. f64 is the identity. Without saturation, overflow
// follows IEEE 754-2008 section 7.4: +-inf under nearest-even, the largest
// finite value when the direction points toward zero (e4m3fn: NaN wherever
// IEEE would give an infinity). Integers: NaN -> 0, +-inf -> 0, otherwise
// truncation toward zero then two's-complement wraparound (so 300 -> 44 in i8,
// -1 -> 255 in u8); i64 values are only exact up to 2^53 because the oracle
// stores doubles.
double roundTo(double x, DType dtype, RoundOptions options = {});

// The value of a stored bit pattern of `dtype` (low bitWidth(dtype) bits of
// `bits`, little-endian element order is the caller's business): IEEE
// binary64/32/16, bfloat16 (the top half of a binary32), OCP E4M3/E5M2,
// two's-complement integers, bool (any non-zero byte is true).
double fromBits(uint64_t bits, DType dtype);

// Largest finite value of a float dtype (asserts on non-floats).
double maxFinite(DType dtype);
// Smallest positive subnormal of a float dtype (asserts on non-floats).
double minSubnormal(DType dtype);

} // namespace tessera::ref

#endif // TESSERA_REFERENCE_ROUND_H
