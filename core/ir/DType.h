// Element types of Graph IR tensors. Values mirror tessera_dtype_t so the C
// API converts with a cast (checked in DType.cpp).
#ifndef TESSERA_IR_DTYPE_H
#define TESSERA_IR_DTYPE_H

#include <cstdint>
#include <optional>
#include <string_view>

namespace tessera::ir {

enum class DType : int32_t {
  Invalid = 0,
  F64 = 1,
  F32 = 2,
  F16 = 3,
  BF16 = 4,
  F8E4M3 = 5,
  F8E5M2 = 6,
  I64 = 7,
  I32 = 8,
  I8 = 9,
  U8 = 10,
  Bool = 11,
  I16 = 12,
};

// Text name ("f32", "bf16", "f8e4m3", "bool"); "invalid" for Invalid.
const char *dtypeName(DType dtype);
// Inverse of dtypeName; nullopt for unknown names and "invalid".
std::optional<DType> parseDType(std::string_view name);

bool isFloat(DType dtype);   // f64 f32 f16 bf16 f8e4m3 f8e5m2
bool isInteger(DType dtype); // i64 i32 i16 i8 u8 (not bool)
bool isSigned(DType dtype);  // floats and signed integers
inline bool isBool(DType dtype) { return dtype == DType::Bool; }
// Storage size in bits (bool: 8).
unsigned dtypeBits(DType dtype);

} // namespace tessera::ir

#endif // TESSERA_IR_DTYPE_H
