// Batched matmul and scaled dot-product attention.
#include "reference/Ops.h"

#include <cmath>
#include <limits>

namespace tessera::ref {

Expected<RefTensor> matmul(const RefTensor &a, const RefTensor &b) {
  if (a.rank() == 0 || b.rank() == 0)
    return makeError(ErrorCode::InvalidArgument, "matmul operands must have rank >= 1, got " +
                                                     a.typeString() + " and " + b.typeString());
  // numpy.matmul: a 1-D lhs becomes [1, K], a 1-D rhs becomes [K, 1], and the
  // added dim is dropped from the result.
  Shape as = a.shape, bs = b.shape;
  bool vecA = a.rank() == 1, vecB = b.rank() == 1;
  if (vecA)
    as.insert(as.begin(), 1);
  if (vecB)
    bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back();
  int64_t kb = bs[bs.size() - 2], n = bs.back();
  if (k != kb)
    return makeError(ErrorCode::ShapeMismatch, "matmul contraction sizes differ: lhs " + shapeString(a.shape) +
                                                   " has K = " + std::to_string(k) + ", rhs " +
                                                   shapeString(b.shape) + " has K = " + std::to_string(kb));
  Shape batchA(as.begin(), as.end() - 2), batchB(bs.begin(), bs.end() - 2);
  Expected<Shape> batch = broadcastShapes(batchA, batchB);
  if (!batch)
    return makeError(ErrorCode::ShapeMismatch, "matmul batch dims do not broadcast: " + batch.error().message());
  Shape outShape = *batch;
  outShape.push_back(m);
  outShape.push_back(n);
  Expected<int64_t> count = checkedNumElements(outShape);
  if (!count)
    return count.takeError();
  // Strides of the operands' batch dims under the broadcast batch shape.
  std::vector<int64_t> stA = broadcastStrides(batchA, *batch), stB = broadcastStrides(batchB, *batch);
  for (int64_t &s : stA)
    s *= m * k;
  for (int64_t &s : stB)
    s *= k * n;
  RefTensor out = RefTensor::filled(a.dtype, outShape, 0.0);
  int64_t o = 0;
  for (IndexIterator it(*batch); !it.done(); it.next()) {
    int64_t baseA = offsetOf(it.index(), stA), baseB = offsetOf(it.index(), stB);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j, ++o) {
        double acc = 0.0;
        for (int64_t p = 0; p < k; ++p)
          acc += a.data[baseA + i * k + p] * b.data[baseB + p * n + j];
        out.data[o] = acc;
      }
  }
  if (vecA || vecB) {
    Shape squeezed = *batch;
    if (!vecA)
      squeezed.push_back(m);
    if (!vecB)
      squeezed.push_back(n);
    out.shape = squeezed;
  }
  return out;
}

Expected<RefTensor> attention(const RefTensor &q, const RefTensor &k, const RefTensor &v, const RefTensor *mask,
                              const AttentionParams &params) {
  if (q.rank() < 2 || k.rank() < 2 || v.rank() < 2)
    return makeError(ErrorCode::InvalidArgument, "attention operands must have rank >= 2, got q " + q.typeString() +
                                                     ", k " + k.typeString() + ", v " + v.typeString());
  int64_t d = q.shape.back();
  if (k.shape.back() != d)
    return makeError(ErrorCode::ShapeMismatch, "attention head dims differ: q " + shapeString(q.shape) + ", k " +
                                                   shapeString(k.shape));
  if (k.shape[k.shape.size() - 2] != v.shape[v.shape.size() - 2])
    return makeError(ErrorCode::ShapeMismatch, "attention key lengths differ: k " + shapeString(k.shape) + ", v " +
                                                   shapeString(v.shape));
  // The decomposition, kept in float64 throughout (attention is one op, so
  // it rounds once): scores = q k^T * scale (+ mask), softmax, times v.
  std::vector<int64_t> perm(static_cast<size_t>(k.rank()));
  for (size_t i = 0; i < perm.size(); ++i)
    perm[i] = static_cast<int64_t>(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  Expected<RefTensor> kt = transpose(k, perm);
  if (!kt)
    return kt.takeError();
  Expected<RefTensor> scores = matmul(q, *kt);
  if (!scores)
    return scores.takeError();
  double scale = params.scale ? *params.scale : 1.0 / std::sqrt(static_cast<double>(d));
  for (double &s : scores->data)
    s *= scale;
  if (mask) {
    Expected<RefTensor> masked = binary(BinaryOp::Add, *scores, *mask);
    if (!masked)
      return makeError(ErrorCode::ShapeMismatch, "attention mask " + shapeString(mask->shape) +
                                                     " does not broadcast to the scores " +
                                                     shapeString(scores->shape));
    if (masked->shape != scores->shape)
      return makeError(ErrorCode::ShapeMismatch, "attention mask " + shapeString(mask->shape) +
                                                     " would enlarge the scores " + shapeString(scores->shape));
    scores = masked.take();
  }
  int64_t sq = scores->shape[scores->shape.size() - 2], sk = scores->shape.back();
  if (params.causal) {
    int64_t i = 0;
    for (double &s : scores->data) {
      int64_t row = (i / sk) % sq, col = i % sk;
      if (col > row)
        s = -std::numeric_limits<double>::infinity();
      ++i;
    }
  }
  Expected<RefTensor> probs = softmax(*scores, -1);
  if (!probs)
    return probs.takeError();
  Expected<RefTensor> out = matmul(*probs, v);
  if (!out)
    return out.takeError();
  out->dtype = q.dtype;
  return out;
}

} // namespace tessera::ref
