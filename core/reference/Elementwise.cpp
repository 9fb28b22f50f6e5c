// Elementwise kernels: unary, binary (NumPy broadcasting), select, cast.
#include "reference/Ops.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace tessera::ref {

double applyUnary(UnaryOp op, double x) {
  switch (op) {
  case UnaryOp::Neg: return -x;
  case UnaryOp::Abs: return std::fabs(x);
  case UnaryOp::Exp: return std::exp(x);
  case UnaryOp::Log: return std::log(x);
  case UnaryOp::Sqrt: return std::sqrt(x);
  case UnaryOp::Rsqrt: return 1.0 / std::sqrt(x);
  case UnaryOp::Tanh: return std::tanh(x);
  case UnaryOp::Sigmoid:
    // Two branches so exp() never overflows: for x < 0 use e^x / (1 + e^x).
    if (x >= 0)
      return 1.0 / (1.0 + std::exp(-x));
    return std::exp(x) / (1.0 + std::exp(x));
  case UnaryOp::Relu: return std::isnan(x) ? x : (x > 0 ? x : 0.0);
  case UnaryOp::Gelu:
    // GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (Hendrycks & Gimpel
    // 2016, "Gaussian Error Linear Units", eq. 1).
    return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
  case UnaryOp::GeluTanh: {
    // Tanh approximation, Hendrycks & Gimpel 2016 section 2:
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    const double c = std::sqrt(2.0 / std::numbers::pi);
    return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
  }
  case UnaryOp::Silu:
    // x * sigmoid(x) (Elfwing et al. 2017; "swish-1", Ramachandran et al.).
    return x * applyUnary(UnaryOp::Sigmoid, x);
  case UnaryOp::Erf: return std::erf(x);
  case UnaryOp::Sin: return std::sin(x);
  case UnaryOp::Cos: return std::cos(x);
  case UnaryOp::Floor: return std::floor(x);
  case UnaryOp::Ceil: return std::ceil(x);
  case UnaryOp::Sign:
    if (std::isnan(x))
      return x;
    return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
  case UnaryOp::Reciprocal: return 1.0 / x;
  case UnaryOp::LogicalNot: return x == 0.0 ? 1.0 : 0.0;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

RefTensor unary(UnaryOp op, const RefTensor &x) {
  RefTensor out = x;
  for (double &v : out.data)
    v = applyUnary(op, v);
  if (op == UnaryOp::LogicalNot)
    out.dtype = DType::Bool;
  return out;
}

bool isComparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

bool isLogical(BinaryOp op) { return op == BinaryOp::And || op == BinaryOp::Or || op == BinaryOp::Xor; }

namespace {

// Float remainder with NumPy's np.mod / Python's % semantics (npy_divmod in
// numpy/core/src/npymath/npy_math_internal.h.src): fmod, then moved into the
// divisor's sign. b == 0 gives NaN (from fmod).
double flooredFmod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0.0 && ((r < 0) != (b < 0)))
    r += b;
  if (r == 0.0)
    r = std::copysign(0.0, b);
  return r;
}

} // namespace

double applyBinary(BinaryOp op, double a, double b, bool integer, DivMode mode) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  switch (op) {
  case BinaryOp::Add: return a + b;
  case BinaryOp::Sub: return a - b;
  case BinaryOp::Mul: return a * b;
  case BinaryOp::Div:
    if (!integer)
      return a / b;
    if (b == 0.0)
      return 0.0; // NumPy's integer floor_divide by zero gives 0
    return mode == DivMode::Floor ? std::floor(a / b) : std::trunc(a / b);
  case BinaryOp::Pow: return std::pow(a, b);
  case BinaryOp::Max: return (std::isnan(a) || std::isnan(b)) ? nan : (a >= b ? a : b);
  case BinaryOp::Min: return (std::isnan(a) || std::isnan(b)) ? nan : (a <= b ? a : b);
  case BinaryOp::Mod:
    if (integer && b == 0.0)
      return 0.0; // NumPy's integer remainder by zero gives 0
    return mode == DivMode::Floor ? flooredFmod(a, b) : std::fmod(a, b);
  case BinaryOp::Eq: return a == b;
  case BinaryOp::Ne: return a != b;
  case BinaryOp::Lt: return a < b;
  case BinaryOp::Le: return a <= b;
  case BinaryOp::Gt: return a > b;
  case BinaryOp::Ge: return a >= b;
  case BinaryOp::And: return (a != 0.0) && (b != 0.0);
  case BinaryOp::Or: return (a != 0.0) || (b != 0.0);
  case BinaryOp::Xor: return (a != 0.0) != (b != 0.0);
  }
  return nan;
}

Expected<RefTensor> binary(BinaryOp op, const RefTensor &a, const RefTensor &b, DivMode mode) {
  Expected<Shape> shape = broadcastShapes(a.shape, b.shape);
  if (!shape)
    return shape.takeError();
  if (Expected<int64_t> n = checkedNumElements(*shape); !n)
    return n.takeError();
  DType dtype = (isComparison(op) || isLogical(op)) ? DType::Bool : a.dtype;
  bool integer = isInteger(a.dtype) && isInteger(b.dtype);
  std::vector<int64_t> sa = broadcastStrides(a.shape, *shape);
  std::vector<int64_t> sb = broadcastStrides(b.shape, *shape);
  RefTensor out = RefTensor::filled(dtype, *shape, 0.0);
  int64_t i = 0;
  for (IndexIterator it(*shape); !it.done(); it.next(), ++i)
    out.data[i] = applyBinary(op, a.data[offsetOf(it.index(), sa)], b.data[offsetOf(it.index(), sb)], integer, mode);
  return out;
}

Expected<RefTensor> select(const RefTensor &cond, const RefTensor &a, const RefTensor &b) {
  Expected<Shape> ab = broadcastShapes(a.shape, b.shape);
  if (!ab)
    return ab.takeError();
  Expected<Shape> shape = broadcastShapes(cond.shape, *ab);
  if (!shape)
    return shape.takeError();
  if (Expected<int64_t> n = checkedNumElements(*shape); !n)
    return n.takeError();
  std::vector<int64_t> sc = broadcastStrides(cond.shape, *shape);
  std::vector<int64_t> sa = broadcastStrides(a.shape, *shape);
  std::vector<int64_t> sb = broadcastStrides(b.shape, *shape);
  RefTensor out = RefTensor::filled(a.dtype, *shape, 0.0);
  int64_t i = 0;
  for (IndexIterator it(*shape); !it.done(); it.next(), ++i)
    out.data[i] = cond.data[offsetOf(it.index(), sc)] != 0.0 ? a.data[offsetOf(it.index(), sa)]
                                                              : b.data[offsetOf(it.index(), sb)];
  return out;
}

RefTensor cast(const RefTensor &x, DType dtype, RoundOptions options) { return roundedTo(x, dtype, options); }

} // namespace tessera::ref
