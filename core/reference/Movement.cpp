// Data movement: layout changes, concatenation, slicing, gathering, padding.
#include "reference/Ops.h"

#include <algorithm>
#include <cmath>

namespace tessera::ref {

namespace {

Error invalid(std::string message) { return makeError(ErrorCode::InvalidArgument, std::move(message)); }

std::string listString(const std::vector<int64_t> &v) { return shapeString(v); }

} // namespace

Expected<RefTensor> transpose(const RefTensor &x, std::vector<int64_t> perm) {
  int64_t rank = x.rank();
  if (perm.empty())
    for (int64_t i = rank; i-- > 0;)
      perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != rank)
    return invalid("permutation " + listString(perm) + " has " + std::to_string(perm.size()) +
                   " entries for a rank-" + std::to_string(rank) + " tensor");
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t &p : perm) {
    Expected<int64_t> a = normalizeAxis(p, rank, "permutation entry");
    if (!a)
      return a.takeError();
    if (seen[*a])
      return invalid("permutation " + listString(perm) + " repeats axis " + std::to_string(*a));
    seen[*a] = true;
    p = *a;
  }
  Shape outShape(static_cast<size_t>(rank));
  std::vector<int64_t> inStrides = rowMajorStrides(x.shape), strides(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) {
    outShape[i] = x.shape[perm[i]];
    strides[i] = inStrides[perm[i]];
  }
  RefTensor out = RefTensor::filled(x.dtype, outShape, 0.0);
  int64_t o = 0;
  for (IndexIterator it(outShape); !it.done(); it.next())
    out.data[o++] = x.data[offsetOf(it.index(), strides)];
  return out;
}

Expected<RefTensor> reshape(const RefTensor &x, const Shape &shape) {
  Shape target = shape;
  int64_t inferred = -1, known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      if (inferred >= 0)
        return invalid("reshape target " + shapeString(shape) + " has more than one -1");
      inferred = static_cast<int64_t>(i);
    } else if (target[i] < 0) {
      return invalid("reshape target " + shapeString(shape) + " has a negative dim");
    } else {
      known *= target[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || x.numElements() % known != 0)
      return makeError(ErrorCode::ShapeMismatch, "cannot infer the -1 in reshape " + shapeString(shape) +
                                                     " of " + shapeString(x.shape));
    target[inferred] = x.numElements() / known;
  }
  Expected<int64_t> n = checkedNumElements(target);
  if (!n)
    return n.takeError();
  if (*n != x.numElements())
    return makeError(ErrorCode::ShapeMismatch, "reshape of " + shapeString(x.shape) + " (" +
                                                   std::to_string(x.numElements()) + " elements) to " +
                                                   shapeString(target) + " (" + std::to_string(*n) + " elements)");
  return RefTensor(x.dtype, target, x.data);
}

Expected<RefTensor> broadcastTo(const RefTensor &x, const Shape &shape) {
  Expected<Shape> joint = broadcastShapes(x.shape, shape);
  if (!joint || *joint != shape)
    return makeError(ErrorCode::ShapeMismatch, "cannot broadcast " + shapeString(x.shape) + " to " +
                                                   shapeString(shape));
  Expected<int64_t> n = checkedNumElements(shape);
  if (!n)
    return n.takeError();
  std::vector<int64_t> strides = broadcastStrides(x.shape, shape);
  RefTensor out = RefTensor::filled(x.dtype, shape, 0.0);
  int64_t o = 0;
  for (IndexIterator it(shape); !it.done(); it.next())
    out.data[o++] = x.data[offsetOf(it.index(), strides)];
  return out;
}

Expected<RefTensor> expandDims(const RefTensor &x, std::vector<int64_t> axes) {
  int64_t outRank = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(static_cast<size_t>(outRank), false);
  for (int64_t axis : axes) {
    Expected<int64_t> a = normalizeAxis(axis, outRank, "expand_dims axis");
    if (!a)
      return a.takeError();
    if (inserted[*a])
      return invalid("expand_dims axis " + std::to_string(axis) + " is repeated");
    inserted[*a] = true;
  }
  Shape outShape;
  size_t src = 0;
  for (int64_t i = 0; i < outRank; ++i)
    outShape.push_back(inserted[i] ? 1 : x.shape[src++]);
  return RefTensor(x.dtype, outShape, x.data);
}

Expected<RefTensor> squeeze(const RefTensor &x, std::vector<int64_t> axes) {
  std::vector<bool> drop(static_cast<size_t>(x.rank()), false);
  if (axes.empty())
    for (int64_t i = 0; i < x.rank(); ++i)
      drop[i] = x.shape[i] == 1;
  for (int64_t axis : axes) {
    Expected<int64_t> a = normalizeAxis(axis, x.rank(), "squeeze axis");
    if (!a)
      return a.takeError();
    if (x.shape[*a] != 1)
      return makeError(ErrorCode::ShapeMismatch, "squeeze axis " + std::to_string(axis) + " has size " +
                                                     std::to_string(x.shape[*a]) + ", not 1, in " +
                                                     shapeString(x.shape));
    drop[*a] = true;
  }
  Shape outShape;
  for (int64_t i = 0; i < x.rank(); ++i)
    if (!drop[i])
      outShape.push_back(x.shape[i]);
  return RefTensor(x.dtype, outShape, x.data);
}

Expected<RefTensor> concat(const std::vector<RefTensor> &xs, int64_t axis) {
  if (xs.empty())
    return invalid("concat of no tensors");
  const Shape &first = xs.front().shape;
  Expected<int64_t> ax = normalizeAxis(axis, static_cast<int64_t>(first.size()), "concat axis");
  if (!ax)
    return ax.takeError();
  Shape outShape = first;
  outShape[*ax] = 0;
  for (size_t t = 0; t < xs.size(); ++t) {
    const Shape &s = xs[t].shape;
    bool ok = s.size() == first.size();
    for (size_t i = 0; ok && i < s.size(); ++i)
      ok = static_cast<int64_t>(i) == *ax || s[i] == first[i];
    if (!ok)
      return makeError(ErrorCode::ShapeMismatch, "concat operand " + std::to_string(t) + " has shape " +
                                                     shapeString(s) + ", incompatible with operand 0 " +
                                                     shapeString(first) + " along axis " + std::to_string(*ax));
    outShape[*ax] += s[*ax];
  }
  Expected<int64_t> n = checkedNumElements(outShape);
  if (!n)
    return n.takeError();
  // Row-major: for each outer index, copy each operand's contiguous block.
  int64_t outer = 1;
  for (int64_t i = 0; i < *ax; ++i)
    outer *= outShape[i];
  std::vector<double> data;
  data.reserve(static_cast<size_t>(*n));
  for (int64_t o = 0; o < outer; ++o)
    for (const RefTensor &x : xs) {
      int64_t block = x.numElements() / outer; // outer > 0 inside this loop
      data.insert(data.end(), x.data.begin() + o * block, x.data.begin() + (o + 1) * block);
    }
  return RefTensor(xs.front().dtype, outShape, std::move(data));
}

Expected<std::vector<RefTensor>> split(const RefTensor &x, int64_t axis, const std::vector<int64_t> &sizes) {
  Expected<int64_t> ax = normalizeAxis(axis, x.rank(), "split axis");
  if (!ax)
    return ax.takeError();
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0)
      return invalid("split size " + std::to_string(s) + " is negative");
    total += s;
  }
  if (total != x.shape[*ax])
    return makeError(ErrorCode::ShapeMismatch, "split sizes " + listString(sizes) + " sum to " +
                                                   std::to_string(total) + ", but axis " + std::to_string(axis) +
                                                   " of " + shapeString(x.shape) + " has size " +
                                                   std::to_string(x.shape[*ax]));
  std::vector<RefTensor> pieces;
  int64_t start = 0;
  for (int64_t s : sizes) {
    Expected<RefTensor> piece = slice(x, {start}, {start + s}, {1}, {*ax});
    if (!piece)
      return piece.takeError();
    pieces.push_back(piece.take());
    start += s;
  }
  return pieces;
}

Expected<RefTensor> slice(const RefTensor &x, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                          const std::vector<int64_t> &steps, std::vector<int64_t> axes) {
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(static_cast<int64_t>(i));
  if (starts.size() != axes.size() || ends.size() != axes.size() || (!steps.empty() && steps.size() != axes.size()))
    return invalid("slice starts/ends/steps/axes have different lengths");
  int64_t rank = x.rank();
  std::vector<int64_t> begin(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1);
  Shape outShape = x.shape;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    Expected<int64_t> a = normalizeAxis(axes[i], rank, "slice axis");
    if (!a)
      return a.takeError();
    if (seen[*a])
      return invalid("slice axis " + std::to_string(axes[i]) + " is repeated");
    seen[*a] = true;
    int64_t n = x.shape[*a], st = steps.empty() ? 1 : steps[i];
    if (st == 0)
      return invalid("slice step is 0 on axis " + std::to_string(axes[i]));
    // CPython's PySlice_AdjustIndices (Objects/sliceobject.c).
    auto adjust = [&](int64_t v) {
      if (v < 0) {
        v += n;
        if (v < 0)
          v = st < 0 ? -1 : 0;
      } else if (v >= n) {
        v = st < 0 ? n - 1 : n;
      }
      return v;
    };
    int64_t b = adjust(starts[i]), e = adjust(ends[i]);
    int64_t len = 0;
    if (st > 0 && b < e)
      len = (e - b - 1) / st + 1;
    else if (st < 0 && e < b)
      len = (b - e - 1) / (-st) + 1;
    begin[*a] = b;
    step[*a] = st;
    outShape[*a] = len;
  }
  std::vector<int64_t> inStrides = rowMajorStrides(x.shape);
  RefTensor out = RefTensor::filled(x.dtype, outShape, 0.0);
  int64_t o = 0;
  for (IndexIterator it(outShape); !it.done(); it.next()) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d)
      off += (begin[d] + it.index()[d] * step[d]) * inStrides[d];
    out.data[o++] = x.data[off];
  }
  return out;
}

Expected<RefTensor> gather(const RefTensor &x, const RefTensor &indices, int64_t axis) {
  Expected<int64_t> ax = normalizeAxis(axis, x.rank(), "gather axis");
  if (!ax)
    return ax.takeError();
  int64_t n = x.shape[*ax];
  Shape outShape(x.shape.begin(), x.shape.begin() + *ax);
  outShape.insert(outShape.end(), indices.shape.begin(), indices.shape.end());
  outShape.insert(outShape.end(), x.shape.begin() + *ax + 1, x.shape.end());
  Expected<int64_t> count = checkedNumElements(outShape);
  if (!count)
    return count.takeError();
  // Validate every index first so the error names the offending one.
  std::vector<int64_t> idx(indices.data.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    double v = indices.data[i];
    // Range-check as doubles first: converting NaN or a huge value is UB.
    bool ok = v == std::trunc(v) && v >= -static_cast<double>(n) && v < static_cast<double>(n);
    int64_t k = ok ? static_cast<int64_t>(v) : 0;
    if (!ok)
      return invalid("gather index " + std::to_string(v) + " at position " + std::to_string(i) +
                     " is out of range for axis " + std::to_string(axis) + " of size " + std::to_string(n));
    idx[i] = k < 0 ? k + n : k;
  }
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < *ax; ++i)
    outer *= x.shape[i];
  for (int64_t i = *ax + 1; i < x.rank(); ++i)
    inner *= x.shape[i];
  std::vector<double> data;
  data.reserve(static_cast<size_t>(*count));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : idx)
      for (int64_t j = 0; j < inner; ++j)
        data.push_back(x.data[(o * n + k) * inner + j]);
  return RefTensor(x.dtype, outShape, std::move(data));
}

Expected<RefTensor> pad(const RefTensor &x, const std::vector<int64_t> &lows, const std::vector<int64_t> &highs,
                        double value) {
  if (static_cast<int64_t>(lows.size()) != x.rank() || static_cast<int64_t>(highs.size()) != x.rank())
    return invalid("pad amounts " + listString(lows) + " / " + listString(highs) + " do not match rank " +
                   std::to_string(x.rank()));
  Shape outShape = x.shape;
  for (int64_t i = 0; i < x.rank(); ++i) {
    if (lows[i] < 0 || highs[i] < 0)
      return invalid("negative padding on axis " + std::to_string(i));
    outShape[i] += lows[i] + highs[i];
  }
  Expected<int64_t> n = checkedNumElements(outShape);
  if (!n)
    return n.takeError();
  RefTensor out = RefTensor::filled(x.dtype, outShape, value);
  std::vector<int64_t> outStrides = rowMajorStrides(outShape);
  int64_t i = 0;
  for (IndexIterator it(x.shape); !it.done(); it.next(), ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < x.rank(); ++d)
      off += (it.index()[d] + lows[d]) * outStrides[d];
    out.data[off] = x.data[i];
  }
  return out;
}

Expected<RefTensor> iota(const Shape &shape, int64_t axis, DType dtype) {
  Expected<int64_t> n = checkedNumElements(shape);
  if (!n)
    return n.takeError();
  Expected<int64_t> ax = normalizeAxis(axis, static_cast<int64_t>(shape.size()), "iota axis");
  if (!ax)
    return ax.takeError();
  RefTensor out = RefTensor::filled(dtype, shape, 0.0);
  int64_t i = 0;
  for (IndexIterator it(shape); !it.done(); it.next(), ++i)
    out.data[i] = static_cast<double>(it.index()[*ax]);
  return out;
}

} // namespace tessera::ref
