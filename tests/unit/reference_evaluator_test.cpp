// The reference evaluator on parsed Graph IR: op-boundary rounding, numeric
// policies, symbol binding and located run-time errors.
#include "reference/Evaluator.h"

#include "text/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace tessera;
using namespace tessera::ref;

namespace {

// Parses `text` and evaluates its function `name`.
Expected<std::vector<RefTensor>> run(const std::string &text, const std::string &name,
                                     std::vector<RefTensor> inputs) {
  Expected<ir::Module> m = text::parseModule(text, "test.tsr");
  if (!m)
    return m.takeError();
  const ir::Function *fn = m->findFunction(name);
  if (!fn)
    return makeError(ErrorCode::NotFound, "no function " + name);
  return evaluate(*fn, std::move(inputs));
}

RefTensor vec(std::vector<double> v, DType dtype = DType::F64) {
  int64_t n = static_cast<int64_t>(v.size());
  return RefTensor(dtype, {n}, std::move(v));
}

} // namespace

TEST(ReferenceEvaluator, RoundsAtEveryOpBoundary) {
  // In f16, 1 + 2^-11 rounds back to 1 (tie to even), so (a + b) - a is 0;
  // in float64 it would be 2^-11.
  const char *text = R"(
func @f(%a: tensor<1 x f16>, %b: tensor<1 x f16>) -> tensor<1 x f16> {
  %s = add(%a, %b)
  %d = sub(%s, %a)
  return %d
}
)";
  double tiny = std::ldexp(1.0, -11);
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({1.0}), vec({tiny})});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data[0], 0.0);
  EXPECT_EQ((*r)[0].dtype, DType::F16);
}

TEST(ReferenceEvaluator, CompositeRoundsOnce) {
  // Within one op (reduce_sum) there is no intermediate rounding: 2048 + 1 +
  // 1 in f16 step by step would stay 2048; summed in f64 it is 2050.
  const char *text = R"(
func @f(%a: tensor<3 x f16>) -> tensor<f16> {
  %s = reduce_sum(%a)
  return %s
}
)";
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({2048.0, 1.0, 1.0})});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data[0], 2050.0);
}

TEST(ReferenceEvaluator, SaturateAndRoundingPolicies) {
  const char *text = R"(
func @f(%a: tensor<3 x f32>) -> (tensor<3 x f8e4m3 @saturate>, tensor<3 x f8e4m3>, tensor<3 x f16 @rounding(toward_zero)>) {
  %s = cast(%a) {dtype = f8e4m3} : tensor<3 x f8e4m3 @saturate>
  %n = cast(%a) {dtype = f8e4m3}
  %z = cast(%a) {dtype = f16} : tensor<3 x f16 @rounding(toward_zero)>
  return %s, %n, %z
}
)";
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({1000.0, -1000.0, 1.999})});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data, (std::vector<double>{448.0, -448.0, 2.0}));
  EXPECT_TRUE(std::isnan((*r)[1].data[0]));
  EXPECT_TRUE(std::isnan((*r)[1].data[1]));
  // 1.999 as f32 is 1.99899995..., toward zero in f16: 1.998046875.
  EXPECT_EQ((*r)[2].data[2], 1.998046875);
}

TEST(ReferenceEvaluator, IntegerSemantics) {
  const char *text = R"(
func @f(%a: tensor<4 x i8>, %b: tensor<4 x i8>) -> (tensor<4 x i8>, tensor<4 x i8>, tensor<4 x i8>) {
  %q = div(%a, %b)
  %m = mod(%a, %b)
  %p = mul(%a, %b)
  return %q, %m, %p
}
)";
  Expected<std::vector<RefTensor>> r =
      run(text, "f", {vec({-7, 7, 100, -128}, DType::I8), vec({2, -2, 3, -1}, DType::I8)});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data, (std::vector<double>{-4, -4, 33, -128})); // floor division; -128 / -1 wraps
  EXPECT_EQ((*r)[1].data, (std::vector<double>{1, -1, 1, 0}));      // sign of the divisor
  EXPECT_EQ((*r)[2].data, (std::vector<double>{-14, -14, 44, -128})); // 300 wraps to 44
}

TEST(ReferenceEvaluator, BindsSymbolsAndRejectsConflicts) {
  const char *text = R"(
func @f(%a: tensor<B x 2 x f32>, %b: tensor<B x 2 x f32>) -> tensor<B x 2 x f32> {
  %s = add(%a, %b)
  return %s
}
)";
  RefTensor three = RefTensor::filled(DType::F64, {3, 2}, 1.0);
  RefTensor five = RefTensor::filled(DType::F64, {5, 2}, 1.0);
  Expected<std::vector<RefTensor>> ok = run(text, "f", {three, three});
  ASSERT_TRUE(ok) << ok.error().render();
  EXPECT_EQ((*ok)[0].shape, (Shape{3, 2}));
  Expected<std::vector<RefTensor>> bad = run(text, "f", {three, five});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::ShapeMismatch);
  const std::string &msg = bad.error().message();
  EXPECT_NE(msg.find("B"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5"), std::string::npos) << msg;
  Expected<std::vector<RefTensor>> count = run(text, "f", {three});
  ASSERT_FALSE(count);
  EXPECT_EQ(count.error().code(), ErrorCode::ShapeMismatch);
}

TEST(ReferenceEvaluator, RuntimeErrorsAreLocatedAtTheOp) {
  const char *text = R"(
func @f(%x: tensor<4 x f32>, %i: tensor<2 x i64>) -> tensor<2 x f32> {
  %g = gather(%x, %i)
  return %g
}
)";
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({1, 2, 3, 4}), vec({0, 9}, DType::I64)});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(r.error().location().line, 3u);
  EXPECT_NE(r.error().message().find("gather"), std::string::npos) << r.error().message();
}

TEST(ReferenceEvaluator, InputsRoundToParameterDtype) {
  const char *text = R"(
func @f(%a: tensor<2 x bf16>) -> tensor<2 x bf16> {
  %n = neg(%a)
  return %n
}
)";
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({3.14159265358979, 1e39})});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data[0], -3.140625);
  EXPECT_EQ((*r)[0].data[1], -std::numeric_limits<double>::infinity());
}

TEST(ReferenceEvaluator, MultiResultSplitAndConstants) {
  const char *text = R"(
func @f(%a: tensor<6 x i32>) -> (tensor<2 x i32>, tensor<4 x i32>) {
  %c = constant() {value = [1, 2, 3, 4, 5, 6]} : tensor<6 x i32>
  %s = add(%a, %c)
  %p, %q = split(%s) {axis = 0, sizes = [2, 4]}
  return %p, %q
}
)";
  Expected<std::vector<RefTensor>> r = run(text, "f", {vec({10, 20, 30, 40, 50, 60}, DType::I32)});
  ASSERT_TRUE(r) << r.error().render();
  EXPECT_EQ((*r)[0].data, (std::vector<double>{11, 22}));
  EXPECT_EQ((*r)[1].data, (std::vector<double>{33, 44, 55, 66}));
}

TEST(ReferenceEvaluator, RefusesResultsBeyondItsLimit) {
  // Two 2^15-element inputs broadcast to 2^30 elements: more than the oracle
  // materializes (kMaxElements), refused before allocating.
  const char *text = R"(
func @f(%a: tensor<N x 1 x f32>, %b: tensor<1 x M x f32>) -> tensor<N x M x f32> {
  %s = add(%a, %b)
  return %s
}
)";
  RefTensor a = RefTensor::filled(DType::F64, {32768, 1}, 1.0);
  RefTensor b = RefTensor::filled(DType::F64, {1, 32768}, 1.0);
  Expected<std::vector<RefTensor>> r = run(text, "f", {a, b});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::ResourceExhausted);
  EXPECT_EQ(r.error().location().line, 3u);
}
