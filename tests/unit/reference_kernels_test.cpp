// Semantics of the reference kernels that the NumPy comparison cannot pin
// down by itself: error cases, special values, documented conventions.
#include "reference/Ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace tessera;
using namespace tessera::ref;

namespace {

RefTensor t(Shape shape, std::vector<double> data, DType dtype = DType::F64) {
  return RefTensor(dtype, std::move(shape), std::move(data));
}

RefTensor arange(Shape shape, DType dtype = DType::F64) {
  RefTensor out = RefTensor::filled(dtype, shape, 0.0);
  for (size_t i = 0; i < out.data.size(); ++i)
    out.data[i] = static_cast<double>(i);
  return out;
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

} // namespace

TEST(ReferenceKernels, BroadcastAndMismatch) {
  Expected<RefTensor> r = binary(BinaryOp::Add, arange({2, 1, 3}), arange({4, 1}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->shape, (Shape{2, 4, 3}));
  EXPECT_EQ(r->data[0 * 12 + 2 * 3 + 1], 1.0 + 2.0);
  Expected<RefTensor> bad = binary(BinaryOp::Add, arange({2, 3}), arange({4}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_NE(bad.error().message().find("[2, 3]"), std::string::npos) << bad.error().message();
}

TEST(ReferenceKernels, ModAndDivConventions) {
  // Floor (NumPy): the remainder has the divisor's sign.
  EXPECT_EQ(applyBinary(BinaryOp::Mod, -7, 3, true), 2);
  EXPECT_EQ(applyBinary(BinaryOp::Mod, 7, -3, true), -2);
  EXPECT_EQ(applyBinary(BinaryOp::Div, -7, 3, true), -3);
  EXPECT_EQ(applyBinary(BinaryOp::Mod, -7.5, 2, false), 0.5);
  // Trunc (C): the dividend's sign.
  EXPECT_EQ(applyBinary(BinaryOp::Mod, -7, 3, true, DivMode::Trunc), -1);
  EXPECT_EQ(applyBinary(BinaryOp::Div, -7, 3, true, DivMode::Trunc), -2);
  // Integer division by zero is 0 (NumPy); float gives inf / NaN.
  EXPECT_EQ(applyBinary(BinaryOp::Div, 5, 0, true), 0);
  EXPECT_EQ(applyBinary(BinaryOp::Mod, 5, 0, true), 0);
  EXPECT_EQ(applyBinary(BinaryOp::Div, 5, 0, false), kInf);
  EXPECT_TRUE(std::isnan(applyBinary(BinaryOp::Mod, 5, 0, false)));
  EXPECT_TRUE(std::isnan(applyBinary(BinaryOp::Max, kNaN, 1, false)));
}

TEST(ReferenceKernels, UnarySpecialValues) {
  EXPECT_EQ(applyUnary(UnaryOp::Sigmoid, -800.0), 0.0);
  EXPECT_EQ(applyUnary(UnaryOp::Sigmoid, 800.0), 1.0);
  EXPECT_EQ(applyUnary(UnaryOp::Sign, -0.0), 0.0);
  EXPECT_TRUE(std::isnan(applyUnary(UnaryOp::Relu, kNaN)));
  EXPECT_NEAR(applyUnary(UnaryOp::Gelu, 1.0), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(applyUnary(UnaryOp::GeluTanh, 1.0), 0.8411919906082768, 1e-15);
  EXPECT_EQ(applyUnary(UnaryOp::Rsqrt, 4.0), 0.5);
}

TEST(ReferenceKernels, ReductionsAndArgmax) {
  Expected<RefTensor> s = reduce(ReduceOp::Sum, arange({2, 3, 4}), {0, -1}, true);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->shape, (Shape{1, 3, 1}));
  // Row j of the middle axis: sum over i, k of 12 i + 4 j + k.
  EXPECT_EQ(s->data[1], 12.0 * 4 + 8 * 4.0 + 2 * 6.0);
  EXPECT_FALSE(reduce(ReduceOp::Sum, arange({2}), {0, 0}, false));
  EXPECT_FALSE(reduce(ReduceOp::Max, RefTensor::filled(DType::F64, {0, 2}, 1.0), {0}, false));
  Expected<RefTensor> a = argmax(t({2, 3}, {1, 5, 5, kNaN, 2, kNaN}), 1, false);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->data, (std::vector<double>{1, 0}));
  EXPECT_EQ(a->dtype, DType::I64);
}

TEST(ReferenceKernels, SoftmaxIsSafe) {
  Expected<RefTensor> s = softmax(t({3}, {1000, 1000, -kInf}), 0);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->data, (std::vector<double>{0.5, 0.5, 0.0}));
  Expected<RefTensor> l = logSoftmax(t({2}, {1e308, 0}), 0);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->data[0], 0.0);
  EXPECT_EQ(l->data[1], -1e308);
}

TEST(ReferenceKernels, MatmulBroadcastAndErrors) {
  Expected<RefTensor> r = matmul(arange({2, 1, 2, 3}), arange({4, 3, 5}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->shape, (Shape{2, 4, 2, 5}));
  Expected<RefTensor> v = matmul(arange({3}), arange({3}));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->shape, Shape{});
  EXPECT_EQ(v->data[0], 5.0);
  Expected<RefTensor> bad = matmul(arange({2, 3}), arange({4, 5}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::ShapeMismatch);
}

TEST(ReferenceKernels, SliceLikePython) {
  RefTensor x = arange({10});
  Expected<RefTensor> r = slice(x, {-2}, {-100}, {-3}, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data, (std::vector<double>{8, 5, 2})); // list(range(10))[-2:-100:-3]
  Expected<RefTensor> e = slice(x, {7}, {3}, {1}, {});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->shape, Shape{0});
  EXPECT_FALSE(slice(x, {0}, {1}, {0}, {}));
}

TEST(ReferenceKernels, GatherRejectsOutOfRange) {
  Expected<RefTensor> g = gather(arange({4, 2}), t({2}, {-1, 0}), 0);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->data, (std::vector<double>{6, 7, 0, 1}));
  Expected<RefTensor> bad = gather(arange({4, 2}), t({1}, {4}), 0);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(gather(arange({4, 2}), t({1}, {kNaN}), 0));
}

TEST(ReferenceKernels, MovementErrors) {
  EXPECT_FALSE(reshape(arange({2, 3}), {4, 2}));
  EXPECT_EQ(reshape(arange({2, 3}), {-1, 2})->shape, (Shape{3, 2}));
  EXPECT_FALSE(transpose(arange({2, 3}), {0, 0}));
  EXPECT_FALSE(squeeze(arange({2, 3}), {0}));
  EXPECT_FALSE(concat({arange({2, 3}), arange({2, 4})}, 0));
  EXPECT_FALSE(split(arange({5}), 0, {2, 2}));
  EXPECT_FALSE(broadcastTo(arange({3}), {2, 4}));
}

TEST(ReferenceKernels, ConvGroupsAndDilation) {
  // Depthwise 1x1 conv with groups = channels multiplies each channel.
  RefTensor x = arange({1, 2, 2, 2});
  RefTensor w = t({2, 1, 1, 1}, {2, 3});
  Conv2dParams p;
  p.groups = 2;
  Expected<RefTensor> r = conv2d(x, w, nullptr, p);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data, (std::vector<double>{0, 2, 4, 6, 12, 15, 18, 21}));
  p.groups = 3;
  EXPECT_FALSE(conv2d(x, w, nullptr, p));
  // Dilation 2 on a 3x3 input with a 2x2 kernel touches only the corners.
  Conv2dParams d;
  d.dilations[0] = d.dilations[1] = 2;
  Expected<RefTensor> c = conv2d(arange({1, 1, 3, 3}), RefTensor::filled(DType::F64, {1, 1, 2, 2}, 1.0), nullptr, d);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->data, (std::vector<double>{0 + 2 + 6 + 8}));
}

TEST(ReferenceKernels, AttentionCausalFirstRow) {
  // With a causal mask the first query sees only the first key.
  RefTensor q = arange({1, 3, 2}), k = arange({1, 3, 2}), v = arange({1, 3, 2});
  AttentionParams p;
  p.causal = true;
  Expected<RefTensor> r = attention(q, k, v, nullptr, p);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data[0], 0.0);
  EXPECT_EQ(r->data[1], 1.0);
}

TEST(ReferenceKernels, HugeBroadcastIsAnErrorNotACrash) {
  RefTensor a = RefTensor::filled(DType::F64, {32768, 1}, 1.0);
  RefTensor b = RefTensor::filled(DType::F64, {1, 32768}, 1.0);
  Expected<RefTensor> r = binary(BinaryOp::Add, a, b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::ResourceExhausted);
  EXPECT_FALSE(select(RefTensor::filled(DType::Bool, {32768, 1}, 1.0), a, b));
  EXPECT_FALSE(matmul(RefTensor::filled(DType::F64, {32768, 1}, 1.0), RefTensor::filled(DType::F64, {1, 32768}, 1.0)));
}
