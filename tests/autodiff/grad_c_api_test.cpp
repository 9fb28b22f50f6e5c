// tessera_program_grad through the public C ABI: results, warnings,
// options checks and errors (no crash, nothing written on error).
#include "tessera/tessera.h"

#include <gtest/gtest.h>

#include <string>

namespace {

struct Program {
  tessera_program_t *p = nullptr;
  ~Program() { tessera_program_destroy(p); }
};

std::string take(tessera_blob_t *b) {
  std::string s(static_cast<const char *>(tessera_blob_data(b)), tessera_blob_size(b));
  tessera_blob_free(b);
  return s;
}

tessera_status_code_t codeOf(tessera_status_t *s, std::string *msg = nullptr) {
  if (!s)
    return TESSERA_STATUS_OK;
  tessera_status_code_t c = tessera_status_code(s);
  if (msg)
    *msg = tessera_status_message(s);
  tessera_status_free(s);
  return c;
}

const char *kSrc = R"(
func @f(%x: tensor<B x 3 x f32>, %w: tensor<3 x f32>, %n: tensor<B x i32>, %u: tensor<3 x f32>)
    -> (tensor<f32>, tensor<B x 3 x f32>) {
  %y = mul(%x, %w)
  %t = tanh(%y)
  %s = reduce_sum(%t)
  return %s, %t
}
)";

Program parse() {
  Program p;
  EXPECT_EQ(codeOf(tessera_program_parse(kSrc, std::char_traits<char>::length(kSrc), "f.tsr", &p.p)),
            TESSERA_STATUS_OK);
  return p;
}

TEST(GradCApi, GradModeDefaults) {
  Program p = parse();
  const char *wrt[] = {"w", "%x"};
  Program g;
  tessera_blob_t *warn = nullptr;
  ASSERT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 2, wrt, nullptr, &g.p, &warn)), TESSERA_STATUS_OK);
  EXPECT_EQ(take(warn), "");
  ASSERT_EQ(tessera_program_function_count(g.p), 1u);
  tessera_blob_t *sig = nullptr;
  ASSERT_EQ(codeOf(tessera_program_function_signature(g.p, 0, &sig)), TESSERA_STATUS_OK);
  EXPECT_EQ(take(sig), "func @f_grad(%x: tensor<B x 3 x f32>, %w: tensor<3 x f32>, %n: tensor<B x i32>, "
                       "%u: tensor<3 x f32>) -> (tensor<f32>, tensor<B x 3 x f32>, tensor<3 x f32>, "
                       "tensor<B x 3 x f32>)");
}

TEST(GradCApi, VjpModeNameRematAndWarnings) {
  Program p = parse();
  const char *wrt[] = {"1", "u"};
  tessera_grad_options_t o{};
  o.struct_size = sizeof(o);
  o.mode = TESSERA_GRAD_MODE_VJP;
  o.name = "df";
  o.remat = "y, t";
  Program g;
  tessera_blob_t *warn = nullptr;
  ASSERT_EQ(codeOf(tessera_program_grad(p.p, "f", 2, wrt, &o, &g.p, &warn)), TESSERA_STATUS_OK);
  EXPECT_NE(take(warn).find("%u does not reach"), std::string::npos);
  tessera_blob_t *text = nullptr;
  ASSERT_EQ(codeOf(tessera_program_print(g.p, &text)), TESSERA_STATUS_OK);
  std::string t = take(text);
  EXPECT_NE(t.find("func @df("), std::string::npos) << t;
  EXPECT_NE(t.find("%ct.s: tensor<f32>, %ct.t: tensor<B x 3 x f32>"), std::string::npos) << t;
  EXPECT_NE(t.find("remat"), std::string::npos) << t; // recomputed values are named <value>.remat.N
  // Strict: the unreachable input is an error, nothing written.
  o.flags = TESSERA_GRAD_UNREACHABLE_IS_ERROR;
  tessera_program_t *none = nullptr;
  std::string msg;
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, "f", 2, wrt, &o, &none, nullptr), &msg),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(none, nullptr);
  EXPECT_NE(msg.find("does not reach"), std::string::npos) << msg;
}

TEST(GradCApi, Errors) {
  Program p = parse();
  const char *wrt[] = {"x"};
  tessera_program_t *out = nullptr;
  std::string msg;
  EXPECT_EQ(codeOf(tessera_program_grad(nullptr, nullptr, 1, wrt, nullptr, &out, nullptr)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, nullptr, nullptr, nullptr)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 0, wrt, nullptr, &out, nullptr)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  const char *nullName[] = {nullptr};
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, nullName, nullptr, &out, nullptr)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, "nope", 1, wrt, nullptr, &out, nullptr)), TESSERA_STATUS_NOT_FOUND);
  const char *bad[] = {"zz"};
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, bad, nullptr, &out, nullptr), &msg),
            TESSERA_STATUS_NOT_FOUND);
  EXPECT_NE(msg.find("no parameter 'zz'"), std::string::npos) << msg;
  const char *integer[] = {"n"};
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, integer, nullptr, &out, nullptr), &msg),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("not a float tensor"), std::string::npos) << msg;
  tessera_grad_options_t o{};
  o.struct_size = 8; // too small
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, &o, &out, nullptr)), TESSERA_STATUS_INVALID_ARGUMENT);
  o.struct_size = sizeof(o);
  o.flags = 0x80;
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, &o, &out, nullptr)), TESSERA_STATUS_INVALID_ARGUMENT);
  o.flags = 0;
  o.mode = static_cast<tessera_grad_mode_t>(5);
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, &o, &out, nullptr)), TESSERA_STATUS_INVALID_ARGUMENT);
  o.mode = TESSERA_GRAD_MODE_GRAD;
  o.loss_output = 1; // not a scalar
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, &o, &out, nullptr), &msg),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("use vjp"), std::string::npos) << msg;
  o.loss_output = 0;
  o.remat = "x";
  EXPECT_EQ(codeOf(tessera_program_grad(p.p, nullptr, 1, wrt, &o, &out, nullptr), &msg),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
}

} // namespace
