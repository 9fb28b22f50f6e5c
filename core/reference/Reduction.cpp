// Reductions, argmax/argmin, softmax and the normalizations. Every kernel
// here groups the input elements by their position outside the reduced axes
// and applies a plain loop to each group.
#include "reference/Ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tessera::ref {

namespace {

// Input elements partitioned by their index outside the reduced axes.
struct Groups {
  Shape keptShape;                          // input shape with reduced dims set to 1
  std::vector<bool> reduced;                // per input dim
  std::vector<std::vector<int64_t>> members; // input offsets, row-major order
  int64_t groupSize = 0;                    // elements per group
};

Expected<std::vector<bool>> reducedMask(const std::vector<int64_t> &axes, int64_t rank) {
  std::vector<bool> mask(static_cast<size_t>(rank), axes.empty());
  for (int64_t axis : axes) {
    Expected<int64_t> a = normalizeAxis(axis, rank, "reduction axis");
    if (!a)
      return a.takeError();
    if (mask[*a])
      return makeError(ErrorCode::InvalidArgument, "reduction axis " + std::to_string(axis) + " is repeated");
    mask[*a] = true;
  }
  return mask;
}

Groups groupBy(const Shape &shape, std::vector<bool> reduced) {
  Groups g;
  g.reduced = std::move(reduced);
  g.keptShape = shape;
  g.groupSize = 1;
  for (size_t i = 0; i < shape.size(); ++i)
    if (g.reduced[i]) {
      g.keptShape[i] = 1;
      g.groupSize *= shape[i];
    }
  g.members.resize(static_cast<size_t>(numElements(g.keptShape)));
  std::vector<int64_t> keptStrides = rowMajorStrides(g.keptShape);
  std::vector<int64_t> idx;
  int64_t offset = 0;
  for (IndexIterator it(shape); !it.done(); it.next(), ++offset) {
    idx = it.index();
    for (size_t i = 0; i < idx.size(); ++i)
      if (g.reduced[i])
        idx[i] = 0;
    g.members[offsetOf(idx, keptStrides)].push_back(offset);
  }
  return g;
}

Shape resultShape(const Groups &g, bool keepdim) {
  if (keepdim)
    return g.keptShape;
  Shape out;
  for (size_t i = 0; i < g.keptShape.size(); ++i)
    if (!g.reduced[i])
      out.push_back(g.keptShape[i]);
  return out;
}

Expected<Groups> groupsForAxes(const RefTensor &x, const std::vector<int64_t> &axes) {
  Expected<std::vector<bool>> mask = reducedMask(axes, x.rank());
  if (!mask)
    return mask.takeError();
  return groupBy(x.shape, mask.take());
}

// Groups over one axis; an empty `axes` list means the last axis here (the
// normalization default), not all axes.
Expected<Groups> groupsForNorm(const RefTensor &x, std::vector<int64_t> axes) {
  if (x.rank() == 0)
    return makeError(ErrorCode::InvalidArgument, "normalization of a rank-0 tensor");
  if (axes.empty())
    axes.push_back(-1);
  return groupsForAxes(x, axes);
}

Expected<RefTensor> argExtremum(const RefTensor &x, int64_t axis, bool keepdim, bool wantMax) {
  if (x.rank() == 0)
    return makeError(ErrorCode::InvalidArgument, "argmax/argmin of a rank-0 tensor");
  Expected<Groups> g = groupsForAxes(x, {axis});
  if (!g)
    return g.takeError();
  if (g->groupSize == 0)
    return makeError(ErrorCode::InvalidArgument, "argmax/argmin over an empty axis");
  RefTensor out = RefTensor::filled(DType::I64, resultShape(*g, keepdim), 0.0);
  for (size_t gi = 0; gi < g->members.size(); ++gi) {
    const std::vector<int64_t> &m = g->members[gi];
    int64_t best = 0;
    for (int64_t j = 0; j < static_cast<int64_t>(m.size()); ++j) {
      double v = x.data[m[j]];
      double b = x.data[m[best]];
      if (std::isnan(b))
        break; // NumPy: the first NaN wins
      if (std::isnan(v) || (wantMax ? v > b : v < b))
        best = j;
    }
    out.data[gi] = static_cast<double>(best);
  }
  return out;
}

} // namespace

Expected<RefTensor> reduce(ReduceOp op, const RefTensor &x, std::vector<int64_t> axes, bool keepdim) {
  Expected<Groups> g = groupsForAxes(x, axes);
  if (!g)
    return g.takeError();
  if ((op == ReduceOp::Max || op == ReduceOp::Min) && g->groupSize == 0 && !g->members.empty())
    return makeError(ErrorCode::InvalidArgument, "max/min reduction over an empty set of elements");
  RefTensor out = RefTensor::filled(x.dtype, resultShape(*g, keepdim), 0.0);
  for (size_t gi = 0; gi < g->members.size(); ++gi) {
    const std::vector<int64_t> &m = g->members[gi];
    double acc = 0.0;
    switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean:
      for (int64_t off : m)
        acc += x.data[off];
      if (op == ReduceOp::Mean)
        acc /= static_cast<double>(m.size()); // 0/0 = NaN for an empty group
      break;
    case ReduceOp::Prod:
      acc = 1.0;
      for (int64_t off : m)
        acc *= x.data[off];
      break;
    case ReduceOp::Max:
    case ReduceOp::Min:
      acc = x.data[m.front()];
      for (int64_t off : m)
        acc = applyBinary(op == ReduceOp::Max ? BinaryOp::Max : BinaryOp::Min, acc, x.data[off], false);
      break;
    }
    out.data[gi] = acc;
  }
  return out;
}

Expected<RefTensor> argmax(const RefTensor &x, int64_t axis, bool keepdim) {
  return argExtremum(x, axis, keepdim, true);
}

Expected<RefTensor> argmin(const RefTensor &x, int64_t axis, bool keepdim) {
  return argExtremum(x, axis, keepdim, false);
}

namespace {

Expected<RefTensor> softmaxImpl(const RefTensor &x, int64_t axis, bool log) {
  if (x.rank() == 0)
    return makeError(ErrorCode::InvalidArgument, "softmax of a rank-0 tensor");
  Expected<Groups> g = groupsForAxes(x, {axis});
  if (!g)
    return g.takeError();
  RefTensor out = x;
  for (const std::vector<int64_t> &m : g->members) {
    if (m.empty())
      continue;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t off : m)
      mx = applyBinary(BinaryOp::Max, mx, x.data[off], false);
    if (std::isinf(mx))
      mx = 0.0; // all -inf (or +inf present): do not form inf - inf = NaN by the shift
    double sum = 0.0;
    for (int64_t off : m)
      sum += std::exp(x.data[off] - mx);
    double logSum = std::log(sum);
    for (int64_t off : m)
      out.data[off] = log ? (x.data[off] - mx) - logSum : std::exp(x.data[off] - mx) / sum;
  }
  return out;
}

// Broadcasts an optional affine parameter to x's shape.
Expected<std::optional<RefTensor>> affineParam(const RefTensor *p, const RefTensor &x, const char *what) {
  if (!p)
    return std::optional<RefTensor>();
  Expected<RefTensor> b = broadcastTo(*p, x.shape);
  if (!b)
    return makeError(ErrorCode::ShapeMismatch, std::string(what) + " of shape " + shapeString(p->shape) +
                                                   " does not broadcast to the input shape " + shapeString(x.shape));
  return std::optional<RefTensor>(b.take());
}

} // namespace

Expected<RefTensor> softmax(const RefTensor &x, int64_t axis) { return softmaxImpl(x, axis, false); }

Expected<RefTensor> logSoftmax(const RefTensor &x, int64_t axis) { return softmaxImpl(x, axis, true); }

Expected<RefTensor> layerNorm(const RefTensor &x, const RefTensor *gamma, const RefTensor *beta,
                              std::vector<int64_t> axes, double eps) {
  Expected<Groups> g = groupsForNorm(x, std::move(axes));
  if (!g)
    return g.takeError();
  Expected<std::optional<RefTensor>> gm = affineParam(gamma, x, "layer_norm scale");
  if (!gm)
    return gm.takeError();
  Expected<std::optional<RefTensor>> bt = affineParam(beta, x, "layer_norm bias");
  if (!bt)
    return bt.takeError();
  RefTensor out = x;
  for (const std::vector<int64_t> &m : g->members) {
    if (m.empty())
      continue;
    double n = static_cast<double>(m.size());
    double mean = 0.0;
    for (int64_t off : m)
      mean += x.data[off];
    mean /= n;
    // Two-pass (biased) variance: exact enough in float64 and never negative.
    double var = 0.0;
    for (int64_t off : m)
      var += (x.data[off] - mean) * (x.data[off] - mean);
    var /= n;
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t off : m) {
      double y = (x.data[off] - mean) * inv;
      if (*gm)
        y *= (*gm)->data[off];
      if (*bt)
        y += (*bt)->data[off];
      out.data[off] = y;
    }
  }
  return out;
}

Expected<RefTensor> rmsNorm(const RefTensor &x, const RefTensor *gamma, std::vector<int64_t> axes, double eps) {
  Expected<Groups> g = groupsForNorm(x, std::move(axes));
  if (!g)
    return g.takeError();
  Expected<std::optional<RefTensor>> gm = affineParam(gamma, x, "rms_norm scale");
  if (!gm)
    return gm.takeError();
  RefTensor out = x;
  for (const std::vector<int64_t> &m : g->members) {
    if (m.empty())
      continue;
    double ms = 0.0;
    for (int64_t off : m)
      ms += x.data[off] * x.data[off];
    ms /= static_cast<double>(m.size());
    double inv = 1.0 / std::sqrt(ms + eps);
    for (int64_t off : m)
      out.data[off] = x.data[off] * inv * (*gm ? (*gm)->data[off] : 1.0);
  }
  return out;
}

} // namespace tessera::ref
