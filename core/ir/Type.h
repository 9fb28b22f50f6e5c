// Tensor types with a numeric policy: `tensor<B x S x 512 x bf16 @accum(f32)>`.
#ifndef TESSERA_IR_TYPE_H
#define TESSERA_IR_TYPE_H

#include "ir/DType.h"
#include "ir/Dim.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::ir {

// Maximum tensor rank; equals TESSERA_MAX_RANK in tessera.h.
inline constexpr size_t kMaxRank = 16;
// Maximum number of elements of a tensor whose shape is static.
inline constexpr int64_t kMaxElements = int64_t(1) << 48;

enum class Rounding : uint8_t {
  NearestEven = 0, // default, IEEE round-to-nearest-even
  TowardZero = 1,
  Up = 2,   // toward +inf
  Down = 3, // toward -inf
  Stochastic = 4,
};
const char *roundingName(Rounding rounding); // "nearest_even", "toward_zero", ...
std::optional<Rounding> parseRounding(std::string_view name);

// How values of a tensor are computed and stored. The default policy prints
// as nothing.
struct NumericPolicy {
  // Dtype used to accumulate reductions/contractions producing this tensor
  // (`@accum(f32)`); nullopt = the element dtype itself.
  std::optional<DType> accum;
  Rounding rounding = Rounding::NearestEven; // `@rounding(toward_zero)`
  bool saturate = false;      // `@saturate`: clamp to the finite range on overflow
  bool deterministic = false; // `@deterministic`: bitwise reproducible reductions

  bool isDefault() const { return !accum && rounding == Rounding::NearestEven && !saturate && !deterministic; }
  bool operator==(const NumericPolicy &) const = default;
  // " @accum(f32) @saturate" (leading space) or "" for the default.
  std::string str() const;
};

struct TensorType {
  DType dtype = DType::Invalid;
  std::vector<Dim> dims; // empty for a scalar (rank 0)
  NumericPolicy policy;

  TensorType() = default;
  TensorType(DType dtype, std::vector<Dim> dims, NumericPolicy policy = {})
      : dtype(dtype), dims(std::move(dims)), policy(policy) {}

  size_t rank() const { return dims.size(); }
  bool isStatic() const;
  // Static sizes; nullopt when any dim is symbolic.
  std::optional<std::vector<int64_t>> staticShape() const;
  // Product of dims (overflow-checked).
  Expected<Dim> elementCount() const;

  // "tensor<B x 784 x f32 @accum(f32)>"
  std::string str() const;
  // "B x 784" (no dtype), "scalar" for rank 0: for diagnostics.
  std::string shapeStr() const;
  bool operator==(const TensorType &other) const = default;
};

} // namespace tessera::ir

#endif // TESSERA_IR_TYPE_H
