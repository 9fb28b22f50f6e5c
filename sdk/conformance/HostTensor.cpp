#include "HostTensor.h"

#include "tessera/sdk/element.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace tessera::conformance {

size_t dtypeBytes(tessera_dtype_t dtype) { return sdk::dtypeSize(dtype); }
const char *dtypeText(tessera_dtype_t dtype) { return sdk::dtypeName(dtype); }

int64_t HostTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

double HostTensor::get(int64_t i) const { return sdk::loadElement(dtype, bytes.data() + i * dtypeBytes(dtype)); }


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
    sdk::storeElement(dtype, v, t.bytes.data() + i * dtypeBytes(dtype)); // exact: no rounding
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
