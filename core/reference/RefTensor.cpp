#include "reference/RefTensor.h"

#include <cassert>

namespace tessera::ref {

RefTensor::RefTensor(DType dtype, Shape shape, std::vector<double> data)
    : dtype(dtype), shape(std::move(shape)), data(std::move(data)) {
  assert(static_cast<int64_t>(this->data.size()) == ref::numElements(this->shape) &&
         "RefTensor data size does not match its shape");
}

RefTensor RefTensor::filled(DType dtype, Shape shape, double value) {
  int64_t n = ref::numElements(shape);
  return RefTensor(dtype, std::move(shape), std::vector<double>(static_cast<size_t>(n), value));
}

std::string RefTensor::typeString() const {
  std::string out = "tensor<";
  for (int64_t d : shape)
    out += std::to_string(d) + "x";
  out += dtypeName(dtype);
  return out + ">";
}

int64_t numElements(const Shape &shape) {
  Expected<int64_t> n = checkedNumElements(shape);
  assert(n && "numElements on an invalid shape");
  return n ? *n : 0;
}

Expected<int64_t> checkedNumElements(const Shape &shape) {
  if (static_cast<int64_t>(shape.size()) > kMaxRank)
    return makeError(ErrorCode::ResourceExhausted, "rank " + std::to_string(shape.size()) +
                                                       " exceeds the reference interpreter's limit of " +
                                                       std::to_string(kMaxRank));
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return makeError(ErrorCode::InvalidArgument, "negative dimension in shape " + shapeString(shape));
    if (d != 0 && n > kMaxElements / d)
      return makeError(ErrorCode::ResourceExhausted, "shape " + shapeString(shape) +
                                                         " has more elements than the limit of " +
                                                         std::to_string(kMaxElements));
    n *= d;
  }
  return n;
}

std::vector<int64_t> rowMajorStrides(const Shape &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;)
    strides[i - 1] = strides[i] * shape[i];
  return strides;
}

std::string shapeString(const Shape &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void roundInPlace(RefTensor &tensor, DType dtype, RoundOptions options) {
  if (dtype != DType::F64)
    for (double &v : tensor.data)
      v = roundTo(v, dtype, options);
  tensor.dtype = dtype;
}

RefTensor roundedTo(RefTensor tensor, DType dtype, RoundOptions options) {
  roundInPlace(tensor, dtype, options);
  return tensor;
}

Expected<int64_t> normalizeAxis(int64_t axis, int64_t rank, const char *what) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return makeError(ErrorCode::InvalidArgument, std::string(what) + " " + std::to_string(axis) +
                                                     " is out of range for rank " + std::to_string(rank));
  return a;
}

Expected<Shape> broadcastShapes(const Shape &a, const Shape &b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Dims aligned from the right.
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return makeError(ErrorCode::ShapeMismatch,
                       "cannot broadcast shapes " + shapeString(a) + " and " + shapeString(b) + ": dim " +
                           std::to_string(i) + " (from the left of the result) is " + std::to_string(da) +
                           " vs " + std::to_string(db));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcastStrides(const Shape &from, const Shape &to) {
  assert(from.size() <= to.size() && "broadcast to a lower rank");
  std::vector<int64_t> own = rowMajorStrides(from);
  std::vector<int64_t> strides(to.size(), 0);
  size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    assert((from[i] == to[lead + i] || from[i] == 1) && "shape does not broadcast");
    strides[lead + i] = from[i] == 1 ? 0 : own[i];
  }
  return strides;
}

IndexIterator::IndexIterator(const Shape &shape)
    : shape_(shape), index_(shape.size(), 0), done_(false) {
  for (int64_t d : shape)
    if (d == 0)
      done_ = true;
}

void IndexIterator::next() {
  for (size_t i = shape_.size(); i-- > 0;) {
    if (++index_[i] < shape_[i])
      return;
    index_[i] = 0;
  }
  done_ = true; // wrapped past the last index (or rank 0: one element)
}

int64_t offsetOf(const std::vector<int64_t> &index, const std::vector<int64_t> &strides) {
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i)
    off += index[i] * strides[i];
  return off;
}

} // namespace tessera::ref
