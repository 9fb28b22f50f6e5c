// Host-side tensors for the conformance suite: exact random values per
// dtype, encoding/decoding of narrow floats, and tolerances.
#ifndef TESSERA_CONFORMANCE_HOSTTENSOR_H
#define TESSERA_CONFORMANCE_HOSTTENSOR_H

#include "tessera/tessera.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tessera::conformance {

// How to draw an input.
enum class InputKind {
  Normal,   // nonzero values of both signs, exactly representable in the dtype
  Positive, // nonzero positive values (log, sqrt, pow bases)
  Index,    // integers in [0, bound)
  Bool,     // 0/1
};

struct HostTensor {
  tessera_dtype_t dtype = TESSERA_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes; // dense row-major storage encoding

  int64_t elements() const;
  double get(int64_t i) const; // decoded value
};

size_t dtypeBytes(tessera_dtype_t dtype);
const char *dtypeText(tessera_dtype_t dtype);

// Random values that every dtype represents exactly (so inputs are the same
// for the backend and the float64 reference).
// `scaleLog2` divides float values by 2^scaleLog2 (still exact) so whole
// programs see realistically small activations and weights.
HostTensor randomTensor(tessera_dtype_t dtype, std::vector<int64_t> shape, InputKind kind, int64_t bound,
                        std::mt19937_64 &rng, int scaleLog2 = 0);

// Tolerance for comparing a backend result with the reference: a value
// passes when |got - want| <= atol + rtol * |want|. Narrow floats are loose
// because fused kernels keep intermediates in f32 (docs/compiler.md).
struct Tolerance {
  double rtol;
  double atol;
};
Tolerance toleranceFor(tessera_dtype_t dtype);
// Bound on ||got - ref|| / ||ref|| for whole programs (method: float32 lands
// far under 1e-3, bf16 operands between 1e-3 and 1e-2).
double normToleranceFor(tessera_dtype_t dtype);

} // namespace tessera::conformance

#endif // TESSERA_CONFORMANCE_HOSTTENSOR_H
