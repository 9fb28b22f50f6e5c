// RefTensor: the reference interpreter's tensor, a row-major array of
// doubles with a shape and the dtype its values were rounded to.
#ifndef TESSERA_REFERENCE_REFTENSOR_H
#define TESSERA_REFERENCE_REFTENSOR_H

#include "reference/Round.h"
#include "support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::ref {

using Shape = std::vector<int64_t>;

// Limits the oracle enforces on its own: it materializes every intermediate
// as doubles, so 2^28 elements (2 GiB) per tensor is already generous.
inline constexpr int64_t kMaxRank = 16;
inline constexpr int64_t kMaxElements = int64_t(1) << 28;

struct RefTensor {
  DType dtype = DType::F64;
  Shape shape;
  std::vector<double> data; // row-major, data.size() == numElements(shape)

  RefTensor() = default;
  RefTensor(DType dtype, Shape shape, std::vector<double> data);
  // A tensor of `shape` filled with `value` (not rounded).
  static RefTensor filled(DType dtype, Shape shape, double value);
  static RefTensor scalar(DType dtype, double value) { return filled(dtype, {}, value); }

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  int64_t numElements() const { return static_cast<int64_t>(data.size()); }
  std::string typeString() const; // "tensor<2x3xf32>"
};

// Product of dims; asserts the shape is valid (non-negative, in limits).
int64_t numElements(const Shape &shape);
// Product of dims, or ResourceExhausted / InvalidArgument when a dim is
// negative, the rank or the product is beyond kMaxRank / kMaxElements.
Expected<int64_t> checkedNumElements(const Shape &shape);
// Row-major strides in elements.
std::vector<int64_t> rowMajorStrides(const Shape &shape);
// "[2, 3]"
std::string shapeString(const Shape &shape);

// Rounds every element to `dtype` and relabels the tensor.
void roundInPlace(RefTensor &tensor, DType dtype, RoundOptions options = {});
RefTensor roundedTo(RefTensor tensor, DType dtype, RoundOptions options = {});

// Normalizes a possibly negative axis against `rank` (NumPy: -1 is the last).
// InvalidArgument naming `what` when out of range.
Expected<int64_t> normalizeAxis(int64_t axis, int64_t rank, const char *what = "axis");

// NumPy broadcasting of two shapes (align trailing dims; a dim of 1 stretches).
// ShapeMismatch naming both shapes and the first incompatible dim.
Expected<Shape> broadcastShapes(const Shape &a, const Shape &b);

// Strides for reading a tensor of `from` as if it had the broadcast shape
// `to` (stretched dims get stride 0). `from` must broadcast to `to`.
std::vector<int64_t> broadcastStrides(const Shape &from, const Shape &to);

// Walks every multi-index of a shape in row-major order.
class IndexIterator {
public:
  explicit IndexIterator(const Shape &shape);
  const std::vector<int64_t> &index() const { return index_; }
  bool done() const { return done_; }
  void next();

private:
  Shape shape_;
  std::vector<int64_t> index_;
  bool done_;
};

// Linear offset of `index` under `strides`.
int64_t offsetOf(const std::vector<int64_t> &index, const std::vector<int64_t> &strides);

} // namespace tessera::ref

#endif // TESSERA_REFERENCE_REFTENSOR_H
