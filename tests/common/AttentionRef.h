// Reference evaluation of a Schedule IR `attention` kernel (schedule_ir.h)
// in double precision, shared by the test backends that run Schedule IR on
// the host (the interp plugin's native-attention build, the fusion tests'
// interpreter). Storage is the caller's: `load(operand, offset)` reads
// element `offset` (dense row-major) of an input operand as a double,
// `store(offset, value)` writes one element of the out operand (the caller
// rounds to its dtype). Honours the kernel's layout: with layout=bshd, q, k,
// v and out are stored [batch..., S, H, D] (element (b, h, i, e) at
// ((b * S + i) * H + h) * D + e) while the computation and the mask follow
// [batch..., H, S, D]. Header-only; no dependency beyond the SDK.
#ifndef TESSERA_TESTS_COMMON_ATTENTIONREF_H
#define TESSERA_TESTS_COMMON_ATTENTIONREF_H

#include "tessera/sdk/schedule_ir.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tessera::testing {

// Returns "" on success, else what is wrong with the kernel or the sizes.
template <class Load, class Store>
std::string runAttentionKernel(const schedule::Kernel &k, const int64_t *symbols, Load load, Store store) {
  using schedule::evalIndex;
  if (k.kind != schedule::Kernel::Kind::Attention)
    return "not an attention kernel";
  auto dims = [&](size_t o) {
    std::vector<int64_t> d;
    for (const schedule::IndexExpr &e : k.operands[o].shape)
      d.push_back(evalIndex(e, symbols, nullptr, nullptr, nullptr));
    return d;
  };
  const int64_t maskOp = k.attentionMask();
  // Dims in the computation's order [batch..., S, D] (H a batch dim).
  std::vector<int64_t> q = k.attentionDims(0, dims(0)), kd = k.attentionDims(1, dims(1)),
                       v = k.attentionDims(2, dims(2));
  const size_t r = q.size();
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < r; ++i)
    batch *= q[i];
  const int64_t sq = q[r - 2], d = q[r - 1], sk = kd[r - 2], dv = v[r - 1];
  if (batch <= 0 || sq <= 0 || dv <= 0)
    return {};
  // Row `row` of batch point b (over [batch..., H]) of a matrix of `rows`
  // rows and `cols` columns: offset of its first element. bhsd: dense
  // [batch][rows][cols]; bshd: b = outer * H + h, stored [outer][rows][H][cols].
  const bool bshd = k.attention.layout == schedule::AttentionLayout::Bshd;
  const int64_t heads = bshd ? q[r - 3] : 1;
  auto rowAt = [&](int64_t b, int64_t row, int64_t rows, int64_t cols) -> int64_t {
    if (!bshd)
      return (b * rows + row) * cols;
    return (((b / heads) * rows + row) * heads + b % heads) * cols;
  };
  // Mask strides over [batch..., Sq, Sk] (0 where the mask broadcasts).
  std::vector<int64_t> mstride(r, 0);
  if (maskOp >= 0) {
    std::vector<int64_t> m = dims(static_cast<size_t>(maskOp));
    int64_t stride = 1;
    for (size_t i = m.size(); i-- > 0;) {
      size_t s = r - m.size() + i; // score dim it lines up with
      bool broadcast = k.operands[maskOp].shape[i].isConst() && k.operands[maskOp].shape[i].value == 1;
      mstride[s] = broadcast ? 0 : stride;
      stride *= m[i];
    }
  }
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> s(static_cast<size_t>(sk > 0 ? sk : 0));
  for (int64_t b = 0; b < batch; ++b) {
    int64_t mbase = 0, rest = b;
    for (size_t i = r - 2; i-- > 0;) {
      mbase += (rest % q[i]) * mstride[i];
      rest /= q[i];
    }
    for (int64_t i = 0; i < sq; ++i) {
      double mx = ninf;
      for (int64_t j = 0; j < sk; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e)
          dot += load(0, rowAt(b, i, sq, d) + e) * load(1, rowAt(b, j, sk, d) + e);
        double x = dot * k.attention.scale;
        if (maskOp >= 0)
          x += load(maskOp, mbase + i * mstride[r - 2] + j * mstride[r - 1]);
        if (k.attention.causal && j > i)
          x = ninf;
        s[static_cast<size_t>(j)] = x;
        mx = std::isnan(x) || x > mx ? x : mx;
      }
      double sum = 0;
      for (int64_t j = 0; j < sk; ++j) {
        double &x = s[static_cast<size_t>(j)];
        x = std::exp(x - mx); // every key masked: exp(NaN), so the row is NaN
        sum += x;
      }
      for (int64_t e = 0; e < dv; ++e) {
        double acc = 0;
        for (int64_t j = 0; j < sk; ++j)
          acc += s[static_cast<size_t>(j)] * load(2, rowAt(b, j, sk, dv) + e);
        store(rowAt(b, i, sq, dv) + e, acc / sum);
      }
    }
  }
  return {};
}

} // namespace tessera::testing

#endif // TESSERA_TESTS_COMMON_ATTENTIONREF_H
