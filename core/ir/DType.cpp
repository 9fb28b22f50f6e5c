#include "ir/DType.h"

#include "tessera/tessera_types.h"

namespace tessera::ir {

static_assert(int(DType::F64) == TESSERA_DTYPE_F64 && int(DType::F32) == TESSERA_DTYPE_F32 &&
                  int(DType::F16) == TESSERA_DTYPE_F16 && int(DType::BF16) == TESSERA_DTYPE_BF16 &&
                  int(DType::F8E4M3) == TESSERA_DTYPE_F8E4M3 && int(DType::F8E5M2) == TESSERA_DTYPE_F8E5M2 &&
                  int(DType::I64) == TESSERA_DTYPE_I64 && int(DType::I32) == TESSERA_DTYPE_I32 &&
                  int(DType::I8) == TESSERA_DTYPE_I8 && int(DType::U8) == TESSERA_DTYPE_U8 &&
                  int(DType::Bool) == TESSERA_DTYPE_BOOL && int(DType::I16) == TESSERA_DTYPE_I16,
              "ir::DType must mirror tessera_dtype_t");

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::Invalid: return "invalid";
  case DType::F64: return "f64";
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::F8E4M3: return "f8e4m3";
  case DType::F8E5M2: return "f8e5m2";
  case DType::I64: return "i64";
  case DType::I32: return "i32";
  case DType::I16: return "i16";
  case DType::I8: return "i8";
  case DType::U8: return "u8";
  case DType::Bool: return "bool";
  }
  return "invalid";
}

std::optional<DType> parseDType(std::string_view name) {
  static const DType all[] = {DType::F64, DType::F32,    DType::F16,    DType::BF16, DType::F8E4M3,
                              DType::F8E5M2, DType::I64, DType::I32,    DType::I16,  DType::I8,
                              DType::U8,  DType::Bool};
  for (DType d : all)
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

bool isFloat(DType d) {
  return d == DType::F64 || d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F8E4M3 ||
         d == DType::F8E5M2;
}
bool isInteger(DType d) {
  return d == DType::I64 || d == DType::I32 || d == DType::I16 || d == DType::I8 || d == DType::U8;
}
bool isSigned(DType d) { return isFloat(d) || (isInteger(d) && d != DType::U8); }

unsigned dtypeBits(DType d) {
  switch (d) {
  case DType::F64: case DType::I64: return 64;
  case DType::F32: case DType::I32: return 32;
  case DType::F16: case DType::BF16: case DType::I16: return 16;
  case DType::F8E4M3: case DType::F8E5M2: case DType::I8: case DType::U8: case DType::Bool: return 8;
  case DType::Invalid: return 0;
  }
  return 0;
}

} // namespace tessera::ir
