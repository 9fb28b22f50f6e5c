// The Graph IR C API (abi/include/tessera/tessera_ir.h): parsing, printing,
// signatures and the op-by-op builder, including its error paths.
#include "tessera/tessera.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace {

std::string take(tessera_blob_t *blob) {
  std::string s(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
  tessera_blob_free(blob);
  return s;
}

// Frees the status and returns "CODE: message" for assertions.
std::string describe(tessera_status_t *s) {
  if (!s)
    return "OK";
  std::string out = std::string(tessera_status_code_name(tessera_status_code(s))) + ": " + tessera_status_message(s);
  tessera_status_free(s);
  return out;
}

tessera_status_code_t codeOf(tessera_status_t *s, std::string *message = nullptr) {
  tessera_status_code_t c = tessera_status_code(s);
  if (message)
    *message = tessera_status_message(s);
  tessera_status_free(s);
  return c;
}

// Dim arrays outlive the types that point at them (the C structs borrow).
std::deque<std::vector<const char *>> &dimStore() {
  static std::deque<std::vector<const char *>> store;
  return store;
}

tessera_ir_type_t type(tessera_dtype_t dtype, const std::vector<const char *> &dims) {
  dimStore().push_back(dims);
  tessera_ir_type_t t{};
  t.struct_size = TESSERA_IR_TYPE_STRUCT_SIZE;
  t.dtype = dtype;
  t.rank = dims.size();
  t.dims = dimStore().back().data();
  return t;
}

tessera_ir_attribute_t intAttr(const char *name, int64_t v) {
  tessera_ir_attribute_t a{};
  a.struct_size = TESSERA_IR_ATTRIBUTE_STRUCT_SIZE;
  a.name = name;
  a.kind = TESSERA_IR_ATTR_INT;
  a.int_value = v;
  return a;
}

tessera_ir_op_desc_t op(const char *name, const std::vector<uint32_t> &operands,
                        const std::vector<tessera_ir_attribute_t> &attrs = {}) {
  tessera_ir_op_desc_t d{};
  d.struct_size = TESSERA_IR_OP_DESC_STRUCT_SIZE;
  d.op = name;
  d.operands = operands.data();
  d.operand_count = operands.size();
  static std::deque<std::vector<tessera_ir_attribute_t>> attrStore; // outlives d
  attrStore.push_back(attrs);
  d.attributes = attrs.empty() ? nullptr : attrStore.back().data();
  d.attribute_count = attrs.size();
  return d;
}

class IrBuilderApi : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_EQ(describe(tessera_program_builder_create(&b)), "OK"); }
  void TearDown() override { tessera_program_builder_destroy(b); }
  tessera_program_builder_t *b = nullptr;

  uint32_t param(const char *name, tessera_dtype_t dt, const std::vector<const char *> &dims) {
    tessera_ir_type_t t = type(dt, dims);
    uint32_t v = UINT32_MAX;
    EXPECT_EQ(describe(tessera_program_builder_add_parameter(b, name, &t, &v)), "OK");
    return v;
  }
  uint32_t add(const tessera_ir_op_desc_t &d) {
    uint32_t r = UINT32_MAX;
    size_t n = 0;
    EXPECT_EQ(describe(tessera_program_builder_add_op(b, &d, &r, 1, &n)), "OK");
    EXPECT_EQ(n, 1u);
    return r;
  }
};

TEST_F(IrBuilderApi, BuildsAnMlpLikeTheText) {
  ASSERT_EQ(describe(tessera_program_builder_begin_function(b, "mlp")), "OK");
  uint32_t x = param("x", TESSERA_DTYPE_F32, {"B", "784"});
  uint32_t w = param("w", TESSERA_DTYPE_F32, {"784", "10"});
  uint32_t bias = param("b", TESSERA_DTYPE_F32, {"10"});
  std::vector<uint32_t> mm{x, w};
  uint32_t y = add(op("matmul", mm));
  std::vector<uint32_t> ad{y, bias};
  uint32_t z = add(op("add", ad));
  tessera_ir_attribute_t approx{};
  approx.struct_size = TESSERA_IR_ATTRIBUTE_STRUCT_SIZE;
  approx.name = "approximate";
  approx.kind = TESSERA_IR_ATTR_STRING;
  approx.string_value = "tanh";
  std::vector<uint32_t> g{z};
  uint32_t act = add(op("gelu", g, {approx}));
  tessera_blob_t *t = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_value_type(b, act, &t)), "OK");
  EXPECT_EQ(take(t), "tensor<B x 10 x f32>");
  ASSERT_EQ(describe(tessera_program_builder_finish_function(b, &act, 1)), "OK");
  tessera_program_t *p = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_finish(b, &p)), "OK");
  ASSERT_EQ(tessera_program_function_count(p), 1u);
  tessera_blob_t *sig = nullptr;
  ASSERT_EQ(describe(tessera_program_function_signature(p, 0, &sig)), "OK");
  EXPECT_EQ(take(sig), "func @mlp(%x: tensor<B x 784 x f32>, %w: tensor<784 x 10 x f32>, %b: tensor<10 x f32>) -> "
                       "tensor<B x 10 x f32>");
  tessera_blob_t *text = nullptr;
  ASSERT_EQ(describe(tessera_program_print(p, &text)), "OK");
  std::string printed = take(text);
  EXPECT_NE(printed.find("%2 = gelu(%1) {approximate = \"tanh\"} : tensor<B x 10 x f32>"), std::string::npos)
      << printed;
  // The printed program parses back to the same text.
  tessera_program_t *again = nullptr;
  ASSERT_EQ(describe(tessera_program_parse(printed.data(), printed.size(), "built.tsr", &again)), "OK");
  tessera_blob_t *text2 = nullptr;
  ASSERT_EQ(describe(tessera_program_print(again, &text2)), "OK");
  EXPECT_EQ(take(text2), printed);
  tessera_program_destroy(again);
  tessera_program_destroy(p);
  // The builder is reusable after finish.
  EXPECT_EQ(describe(tessera_program_builder_begin_function(b, "mlp")), "OK");
}

TEST_F(IrBuilderApi, ShapeErrorsAreLocatedAndLeaveTheFunctionUnchanged) {
  ASSERT_EQ(describe(tessera_program_builder_begin_function(b, "f")), "OK");
  uint32_t x = param("x", TESSERA_DTYPE_F32, {"B", "784"});
  uint32_t w = param("w", TESSERA_DTYPE_F32, {"512", "10"});
  std::vector<uint32_t> mm{x, w};
  tessera_ir_op_desc_t d = op("matmul", mm);
  tessera_source_location_t loc{};
  loc.struct_size = TESSERA_SOURCE_LOCATION_STRUCT_SIZE;
  loc.file = "model.py";
  loc.line = 42;
  loc.column = 7;
  d.location = &loc;
  uint32_t r = 0;
  tessera_status_t *s = tessera_program_builder_add_op(b, &d, &r, 1, nullptr);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_SHAPE_MISMATCH);
  tessera_source_location_t got{};
  got.struct_size = TESSERA_SOURCE_LOCATION_STRUCT_SIZE;
  tessera_status_location(s, &got);
  EXPECT_STREQ(got.file, "model.py");
  EXPECT_EQ(got.line, 42u);
  EXPECT_EQ(got.column, 7u);
  EXPECT_NE(std::string(tessera_status_message(s)).find("contraction dimensions differ: lhs has 784"),
            std::string::npos)
      << tessera_status_message(s);
  tessera_status_free(s);
  // Without a location the message names the function and op.
  std::string msg;
  d.location = nullptr;
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &r, 1, nullptr), &msg), TESSERA_STATUS_SHAPE_MISMATCH);
  EXPECT_EQ(msg.rfind("@f op 0 ('matmul'): 'matmul': contraction", 0), 0u) << msg;
  // Nothing was added: finishing with x works and the program has no ops.
  ASSERT_EQ(describe(tessera_program_builder_finish_function(b, &x, 1)), "OK");
  tessera_program_t *p = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_finish(b, &p)), "OK");
  tessera_blob_t *text = nullptr;
  ASSERT_EQ(describe(tessera_program_print(p, &text)), "OK");
  EXPECT_EQ(take(text), "func @f(%x: tensor<B x 784 x f32>, %w: tensor<512 x 10 x f32>) -> tensor<B x 784 x f32> "
                        "{\n  return %x\n}\n");
  tessera_program_destroy(p);
}

TEST_F(IrBuilderApi, BadInputIsRejectedNotCrashed) {
  std::string msg;
  uint32_t v = 0;
  tessera_ir_type_t t = type(TESSERA_DTYPE_F32, {"4"});
  // No open function.
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &t, &v)), TESSERA_STATUS_INVALID_ARGUMENT);
  ASSERT_EQ(describe(tessera_program_builder_begin_function(b, "f")), "OK");
  EXPECT_EQ(codeOf(tessera_program_builder_begin_function(b, "g")), TESSERA_STATUS_INVALID_ARGUMENT);
  // NULLs.
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(nullptr, "x", &t, &v)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", nullptr, &v)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, nullptr, nullptr, 0, nullptr)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  // struct_size too small.
  tessera_ir_type_t small = t;
  small.struct_size = 8;
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &small, &v)), TESSERA_STATUS_INVALID_ARGUMENT);
  // Bad dim text, bad dtype, too high a rank, overflowing dims.
  tessera_ir_type_t badDim = type(TESSERA_DTYPE_F32, {"S*"});
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &badDim, &v), &msg), TESSERA_STATUS_INVALID_IR);
  EXPECT_NE(msg.find("dim 0 \"S*\""), std::string::npos) << msg;
  tessera_ir_type_t badDtype = type(static_cast<tessera_dtype_t>(99), {"4"});
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &badDtype, &v)), TESSERA_STATUS_INVALID_IR);
  std::vector<const char *> many(17, "1");
  tessera_ir_type_t deep = type(TESSERA_DTYPE_F32, many);
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &deep, &v)), TESSERA_STATUS_RESOURCE_EXHAUSTED);
  tessera_ir_type_t huge = type(TESSERA_DTYPE_F32, {"9223372036854775807", "4"});
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &huge, &v)), TESSERA_STATUS_RESOURCE_EXHAUSTED);
  tessera_ir_type_t overflow = type(TESSERA_DTYPE_F32, {"S*4611686018427387904*2"});
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &overflow, &v)), TESSERA_STATUS_RESOURCE_EXHAUSTED);
  uint32_t x = 0;
  ASSERT_EQ(describe(tessera_program_builder_add_parameter(b, "x", &t, &x)), "OK");
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "x", &t, &v)), TESSERA_STATUS_INVALID_IR);
  // Unknown op with a hint, unknown operand, wrong attribute type.
  std::vector<uint32_t> one{x};
  tessera_ir_op_desc_t d = op("relux", one);
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &v, 1, nullptr), &msg), TESSERA_STATUS_INVALID_IR);
  EXPECT_NE(msg.find("did you mean 'relu'?"), std::string::npos) << msg;
  std::vector<uint32_t> ghost{x, 77};
  d = op("add", ghost);
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &v, 1, nullptr)), TESSERA_STATUS_INVALID_IR);
  tessera_ir_attribute_t keep = intAttr("keepdim", 1);
  d = op("reduce_sum", one, {keep});
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &v, 1, nullptr), &msg), TESSERA_STATUS_INVALID_IR);
  EXPECT_NE(msg.find("attribute 'keepdim' of 'reduce_sum' must be bool, got int 1"), std::string::npos) << msg;
  tessera_ir_attribute_t badKind = intAttr("axis", 0);
  badKind.kind = static_cast<tessera_ir_attr_kind_t>(42);
  d = op("softmax", one, {badKind});
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &v, 1, nullptr)), TESSERA_STATUS_INVALID_IR);
  // Result capacity too small for split, then enough.
  tessera_ir_attribute_t axis = intAttr("axis", 0), num = intAttr("num", 2);
  d = op("split", one, {axis, num});
  uint32_t parts[2] = {0, 0};
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, parts, 1, nullptr)), TESSERA_STATUS_INVALID_ARGUMENT);
  size_t n = 0;
  ASSERT_EQ(describe(tessera_program_builder_add_op(b, &d, parts, 2, &n)), "OK");
  EXPECT_EQ(n, 2u);
  tessera_blob_t *pt = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_value_type(b, parts[1], &pt)), "OK");
  EXPECT_EQ(take(pt), "tensor<2 x f32>");
  EXPECT_EQ(codeOf(tessera_program_builder_value_type(b, 999, &pt)), TESSERA_STATUS_INVALID_ARGUMENT);
  // Parameters after ops are refused; finish with the function open is refused.
  EXPECT_EQ(codeOf(tessera_program_builder_add_parameter(b, "late", &t, &v)), TESSERA_STATUS_INVALID_IR);
  tessera_program_t *p = nullptr;
  EXPECT_EQ(codeOf(tessera_program_builder_finish(b, &p)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_builder_finish_function(b, nullptr, 0)), TESSERA_STATUS_INVALID_ARGUMENT);
}

TEST_F(IrBuilderApi, ConstantsAndReshapeNeedResultTypes) {
  ASSERT_EQ(describe(tessera_program_builder_begin_function(b, "f")), "OK");
  uint32_t x = param("x", TESSERA_DTYPE_BF16, {"B", "S", "D"});
  std::vector<uint32_t> one{x};
  tessera_ir_op_desc_t d = op("reshape", one);
  uint32_t r = 0;
  EXPECT_EQ(codeOf(tessera_program_builder_add_op(b, &d, &r, 1, nullptr)), TESSERA_STATUS_INVALID_IR);
  std::vector<const char *> dims{"B", "S", "H", "D/H"};
  tessera_ir_type_t rt = type(TESSERA_DTYPE_BF16, dims);
  rt.accum_dtype = TESSERA_DTYPE_F32;
  d.result_types = &rt;
  d.result_type_count = 1;
  const char *name = "heads";
  d.result_names = &name;
  d.result_name_count = 1;
  ASSERT_EQ(describe(tessera_program_builder_add_op(b, &d, &r, 1, nullptr)), "OK");
  tessera_blob_t *t = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_value_type(b, r, &t)), "OK");
  EXPECT_EQ(take(t), "tensor<B x S x H x D/H x bf16 @accum(f32)>");
  tessera_ir_attribute_t vals{};
  vals.struct_size = TESSERA_IR_ATTRIBUTE_STRUCT_SIZE;
  vals.name = "value";
  vals.kind = TESSERA_IR_ATTR_FLOAT_LIST;
  double fl[3] = {1.0, 2.0, 3.5};
  vals.float_list = fl;
  vals.list_size = 3;
  tessera_ir_op_desc_t c = op("constant", {}, {vals});
  tessera_ir_type_t ct = type(TESSERA_DTYPE_F32, {"3"});
  c.result_types = &ct;
  c.result_type_count = 1;
  ASSERT_EQ(describe(tessera_program_builder_add_op(b, &c, &r, 1, nullptr)), "OK");
  ASSERT_EQ(describe(tessera_program_builder_finish_function(b, &r, 1)), "OK");
  tessera_program_t *p = nullptr;
  ASSERT_EQ(describe(tessera_program_builder_finish(b, &p)), "OK");
  tessera_blob_t *text = nullptr;
  ASSERT_EQ(describe(tessera_program_print(p, &text)), "OK");
  std::string s = take(text);
  EXPECT_NE(s.find("%heads = reshape(%x) : tensor<B x S x H x D/H x bf16 @accum(f32)>"), std::string::npos) << s;
  EXPECT_NE(s.find("%0 = constant() {value = [1.0, 2.0, 3.5]} : tensor<3 x f32>"), std::string::npos) << s;
  tessera_program_destroy(p);
}

TEST(IrProgramApi, ParseErrorsCarryLocations) {
  const char *src = "func @f(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = relu(%x) {axis = 1}\n  return %y\n}\n";
  tessera_program_t *p = nullptr;
  tessera_status_t *s = tessera_program_parse(src, std::char_traits<char>::length(src), "bad.tsr", &p);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_IR);
  EXPECT_STREQ(tessera_status_message(s), "bad.tsr:2:8: error: unknown attribute 'axis' for op 'relu'; known "
                                          "attributes: checkpoint");
  tessera_source_location_t loc{};
  loc.struct_size = TESSERA_SOURCE_LOCATION_STRUCT_SIZE;
  tessera_status_location(s, &loc);
  EXPECT_STREQ(loc.file, "bad.tsr");
  EXPECT_EQ(loc.line, 2u);
  EXPECT_EQ(loc.column, 8u);
  tessera_status_free(s);
  // Not NUL-terminated input: only `size` bytes are read.
  std::string good = "func @f(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  return %x\n}\nGARBAGE";
  ASSERT_EQ(describe(tessera_program_parse(good.data(), good.size() - 7, nullptr, &p)), "OK");
  tessera_blob_t *sig = nullptr;
  EXPECT_EQ(codeOf(tessera_program_function_signature(p, 1, &sig)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_print(nullptr, &sig)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_parse(nullptr, 3, nullptr, &p)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(tessera_program_function_count(nullptr), 0u);
  tessera_program_destroy(p);
  tessera_program_destroy(nullptr);
}

} // namespace
