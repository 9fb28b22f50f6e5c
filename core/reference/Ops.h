// The reference interpreter's kernels: plain float64 loops over RefTensors.
//
// Contract shared by every kernel:
//  * Values are computed in float64 and returned unrounded; the result is
//    labelled with the op's natural dtype (the first operand's, bool for
//    comparisons, i64 for argmax/iota). Rounding to the op's declared dtype
//    happens once at the op boundary, in the evaluator (or by the caller
//    through roundInPlace), so composite ops keep float64 intermediates.
//  * Integer semantics (floor division, mod by zero = 0) apply when both
//    operands carry an integer dtype.
//  * Bad arguments return InvalidArgument / ShapeMismatch; nothing asserts on
//    user input.
//  * Special values follow NumPy: NaN propagates through max/min and their
//    reductions; argmax returns the first NaN; x / 0 is +-inf or NaN for
//    floats and 0 for integers.
#ifndef TESSERA_REFERENCE_OPS_H
#define TESSERA_REFERENCE_OPS_H

#include "reference/RefTensor.h"

#include <optional>
#include <vector>

namespace tessera::ref {

//===----------------------------------------------------------------------===//
// Elementwise (Elementwise.cpp)
//===----------------------------------------------------------------------===//

enum class UnaryOp {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu,
  Gelu,     // erf form: x * Phi(x)
  GeluTanh, // tanh approximation
  Silu, Erf, Sin, Cos, Floor, Ceil, Sign, Reciprocal,
  LogicalNot, // bool result
};

double applyUnary(UnaryOp op, double x);
RefTensor unary(UnaryOp op, const RefTensor &x);

enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Max, Min, Mod,
  // Comparisons: bool results.
  Eq, Ne, Lt, Le, Gt, Ge,
  // Logical: operands are true when non-zero, bool results.
  And, Or, Xor,
};

// How integer div and mod round. Floor is NumPy's // and % (Python's
// divmod): the remainder takes the sign of the divisor, and
// a == div(a, b) * b + mod(a, b) holds. Trunc is C's / and % (and
// std::fmod): the remainder takes the sign of the dividend.
enum class DivMode { Floor, Trunc };

bool isComparison(BinaryOp op);
bool isLogical(BinaryOp op);
// `integer` selects integer division semantics for Div and Mod.
double applyBinary(BinaryOp op, double a, double b, bool integer, DivMode mode = DivMode::Floor);
// NumPy broadcasting; ShapeMismatch when the shapes do not broadcast.
Expected<RefTensor> binary(BinaryOp op, const RefTensor &a, const RefTensor &b,
                           DivMode mode = DivMode::Floor);

// select(cond, a, b): cond != 0 ? a : b, all three broadcast together.
Expected<RefTensor> select(const RefTensor &cond, const RefTensor &a, const RefTensor &b);

// Conversion to `dtype` (the one kernel that rounds itself: the conversion is
// the op). Float -> int truncates toward zero and wraps; see Round.h.
RefTensor cast(const RefTensor &x, DType dtype, RoundOptions options = {});

//===----------------------------------------------------------------------===//
// Reductions and normalizations (Reduction.cpp)
//===----------------------------------------------------------------------===//

enum class ReduceOp { Sum, Mean, Max, Min, Prod };

// Reduces over `axes` (negative allowed, duplicates rejected; empty = all
// axes). keepdim keeps reduced dims as size 1. Max/Min of an empty
// reduction is an error (NumPy raises too); Mean of one is NaN.
Expected<RefTensor> reduce(ReduceOp op, const RefTensor &x, std::vector<int64_t> axes, bool keepdim);
// Index of the first maximum (argmin: minimum) along `axis`; i64 result.
Expected<RefTensor> argmax(const RefTensor &x, int64_t axis, bool keepdim);
Expected<RefTensor> argmin(const RefTensor &x, int64_t axis, bool keepdim);

// exp(x - max) / sum(exp(x - max)) along `axis`; subtracting the max keeps
// exp() from overflowing.
Expected<RefTensor> softmax(const RefTensor &x, int64_t axis);
// (x - max) - log(sum(exp(x - max))) along `axis`.
Expected<RefTensor> logSoftmax(const RefTensor &x, int64_t axis);

// (x - mean) / sqrt(var + eps) * gamma + beta with mean and the biased
// variance taken over `axes` (empty = the last axis). gamma and beta are
// optional and broadcast against x.
Expected<RefTensor> layerNorm(const RefTensor &x, const RefTensor *gamma, const RefTensor *beta,
                              std::vector<int64_t> axes, double eps);
// x / sqrt(mean(x^2) + eps) * gamma over `axes` (empty = last axis)
// (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization").
Expected<RefTensor> rmsNorm(const RefTensor &x, const RefTensor *gamma, std::vector<int64_t> axes, double eps);

//===----------------------------------------------------------------------===//
// Linear algebra and attention (Linalg.cpp)
//===----------------------------------------------------------------------===//

// numpy.matmul: rank >= 1 operands; 1-D operands are promoted and the added
// dim removed; batch dims broadcast. Accumulates in float64.
Expected<RefTensor> matmul(const RefTensor &a, const RefTensor &b);

struct AttentionParams {
  bool causal = false;
  std::optional<double> scale; // default 1/sqrt(head dim)
};
// softmax(q k^T * scale + mask [+ causal]) v over the last two dims, batch
// dims broadcast. q: [..., Sq, D], k: [..., Sk, D], v: [..., Sk, Dv], mask
// (optional, additive) broadcasts to [..., Sq, Sk]. The causal mask is
// top-left aligned (query i sees keys j <= i), as in PyTorch's
// scaled_dot_product_attention(is_causal=True). A row with every key masked
// gives NaN (0/0), as in PyTorch.
Expected<RefTensor> attention(const RefTensor &q, const RefTensor &k, const RefTensor &v, const RefTensor *mask,
                              const AttentionParams &params);

//===----------------------------------------------------------------------===//
// Data movement (Movement.cpp)
//===----------------------------------------------------------------------===//

// Permutes dims: result dim i is input dim perm[i]. Empty perm reverses.
Expected<RefTensor> transpose(const RefTensor &x, std::vector<int64_t> perm);
// Same elements in row-major order; at most one -1 dim is inferred.
Expected<RefTensor> reshape(const RefTensor &x, const Shape &shape);
Expected<RefTensor> broadcastTo(const RefTensor &x, const Shape &shape);
// Inserts size-1 dims at `axes`, positions in the result (negative allowed).
Expected<RefTensor> expandDims(const RefTensor &x, std::vector<int64_t> axes);
// Removes size-1 dims at `axes` (empty = every size-1 dim).
Expected<RefTensor> squeeze(const RefTensor &x, std::vector<int64_t> axes);
Expected<RefTensor> concat(const std::vector<RefTensor> &xs, int64_t axis);
// Splits along `axis` into pieces of `sizes` (which must sum to the dim).
Expected<std::vector<RefTensor>> split(const RefTensor &x, int64_t axis, const std::vector<int64_t> &sizes);
// Python slicing x[start:end:step] on each of `axes` (empty = 0..n-1);
// negative start/end count from the end and are clamped like Python's
// slice.indices(); step may be negative but not 0.
Expected<RefTensor> slice(const RefTensor &x, const std::vector<int64_t> &starts, const std::vector<int64_t> &ends,
                          const std::vector<int64_t> &steps, std::vector<int64_t> axes);
// numpy.take(x, indices, axis): result shape x.shape[:axis] + indices.shape +
// x.shape[axis+1:]. Negative indices count from the end; anything else out
// of range is InvalidArgument.
Expected<RefTensor> gather(const RefTensor &x, const RefTensor &indices, int64_t axis);
// Constant padding with `lows[i]` before and `highs[i]` after dim i.
Expected<RefTensor> pad(const RefTensor &x, const std::vector<int64_t> &lows, const std::vector<int64_t> &highs,
                        double value);
// Element = its index along `axis` (i64 label).
Expected<RefTensor> iota(const Shape &shape, int64_t axis, DType dtype = DType::I64);

//===----------------------------------------------------------------------===//
// Convolution and pooling (Conv.cpp)
//===----------------------------------------------------------------------===//

struct Conv2dParams {
  int64_t strides[2] = {1, 1};
  // Zero padding {top, left, bottom, right}.
  int64_t pads[4] = {0, 0, 0, 0};
  int64_t dilations[2] = {1, 1};
  int64_t groups = 1;
};
// x: [N, C, H, W], w: [O, C/groups, KH, KW], bias: [O] (optional), NCHW
// cross-correlation as in PyTorch's conv2d; output
// [N, O, (H + pt + pb - dh*(KH-1) - 1) / sh + 1, (W + ...) / sw + 1].
Expected<RefTensor> conv2d(const RefTensor &x, const RefTensor &w, const RefTensor *bias, const Conv2dParams &params);

enum class PoolKind { Max, Avg };
struct Pool2dParams {
  int64_t kernel[2] = {1, 1};
  int64_t strides[2] = {1, 1};
  int64_t pads[4] = {0, 0, 0, 0}; // {top, left, bottom, right}
  int64_t dilations[2] = {1, 1};
  // Avg only: divide by the full window (true) or by the in-bounds count.
  bool countIncludePad = false;
};
// NCHW pooling over the last two dims (rank >= 2; leading dims are batch).
// Max ignores padding (it is -inf); a window entirely in the padding is an
// InvalidArgument error for Max.
Expected<RefTensor> pool2d(PoolKind kind, const RefTensor &x, const Pool2dParams &params);

} // namespace tessera::ref

#endif // TESSERA_REFERENCE_OPS_H
