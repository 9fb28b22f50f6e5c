// Schedule IR text form: round trip, evaluation, and rejected inputs.
#include "tessera/sdk/schedule_ir.h"

#include <gtest/gtest.h>

using namespace tessera::schedule;

namespace {

const char *kSoftmax = R"(tessera-schedule v1
symbols B S
kernel "softmax_0" loop {
  operand 0 in f32 [s0, s1]
  operand 1 out f32 [s0, s1]
  parallel [s0]
  knobs library="none" tile=[1, 4] vector=16
  stage reduce [s1] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = reduce max v0
  }
  stage reduce [s1] {
    v2: f32 = load 0 [p0, r0]
    v3: f32 = sub v2 v1
    v4: f32 = exp v3
    v5: f32 = reduce sum v4
  }
  stage map [s1] {
    v6: f32 = load 0 [p0, r0] if ((1 <= r0) && (r0 < s1)) else -inf
    v7: f32 = sub v6 v1
    v8: f32 = exp v7
    v9: f32 = div v8 v5
    v10: i64 = index ((p0 * s1) + r0)
    v11: bf16 = cast v9 saturate
    store 1 [p0, r0] v9
  }
}
kernel "mm" matmul {
  operand 0 in f32 [4, 8]
  operand 1 in f32 [8, 2]
  operand 2 out f32 [4, 2]
  parallel [4, 2]
  stage reduce [8] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [r0, p1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = const 0.5
    v5: f32 = add v3 v4
    store 2 [p0, p1] v5
  }
}
)";

TEST(ScheduleIR, RoundTripsExactly) {
  Program p;
  ParseError err;
  ASSERT_TRUE(parseProgram(kSoftmax, &p, &err)) << err.str();
  ASSERT_EQ(p.kernels.size(), 2u);
  EXPECT_EQ(p.symbols, (std::vector<std::string>{"B", "S"}));
  EXPECT_EQ(p.kernels[0].knobInts("tile"), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(p.kernels[0].knobInt("vector", 0), 16);
  EXPECT_EQ(p.kernels[0].knobString("library"), "none");
  EXPECT_EQ(p.kernels[1].kind, Kernel::Kind::Matmul);
  std::string printed = printProgram(p);
  Program q;
  ASSERT_TRUE(parseProgram(printed, &q, &err)) << err.str() << "\n" << printed;
  EXPECT_EQ(printProgram(q), printed);
  EXPECT_EQ(printed, kSoftmax);
}

// An attention kernel (kind `attention`): q, k, v, a broadcast mask, out.
const char *kAttention = R"(tessera-schedule v1
symbols B S T
kernel "attention_0" attention {
  operand 0 in bf16 [s0, 16, s1, 128]
  operand 1 in bf16 [s0, 16, s2, 128]
  operand 2 in bf16 [s0, 16, s2, 64]
  operand 3 in bf16 [s0, 1, s1, s2]
  operand 4 out bf16 [s0, 16, s1, 64]
  parallel [s0, 16, s1, 64]
  attention scale=0.088388347648318447 causal=1
  knobs block_n=64
}
kernel "attention_1" attention {
  operand 0 in f32 [s1, 8]
  operand 1 in f32 [s1, 8]
  operand 2 in f32 [s1, 8]
  operand 3 out f32 [s1, 8]
  parallel [s1, 8]
  attention scale=-0.5 causal=0
}
)";

TEST(ScheduleIR, AttentionKernelsRoundTrip) {
  Program p;
  ParseError err;
  ASSERT_TRUE(parseProgram(kAttention, &p, &err)) << err.str();
  ASSERT_EQ(p.kernels.size(), 2u);
  const Kernel &a = p.kernels[0];
  EXPECT_EQ(a.kind, Kernel::Kind::Attention);
  EXPECT_STREQ(kernelKindName(a.kind), "attention");
  EXPECT_DOUBLE_EQ(a.attention.scale, 0.088388347648318447);
  EXPECT_TRUE(a.attention.causal);
  EXPECT_EQ(a.attentionMask(), 3);
  EXPECT_EQ(a.attentionOut(), 4);
  EXPECT_TRUE(a.stages.empty());
  EXPECT_EQ(a.knobInt("block_n", 0), 64);
  EXPECT_EQ(p.kernels[1].attentionMask(), -1);
  EXPECT_FALSE(p.kernels[1].attention.causal);
  EXPECT_EQ(p.kernels[1].attention.scale, -0.5);
  std::string printed = printProgram(p);
  EXPECT_EQ(printed, kAttention);
  Program q;
  ASSERT_TRUE(parseProgram(printed, &q, &err)) << err.str() << "\n" << printed;
  EXPECT_EQ(printProgram(q), printed);
}

// layout=bshd: q, k, v and out stored [batch..., S, H, D] (shapes in
// storage order), the mask right-aligned against [batch..., H, Sq, Sk].
const char *kAttentionBshd = R"(tessera-schedule v1
symbols B S T
kernel "attention_0" attention {
  operand 0 in bf16 [s0, s1, 8, 128]
  operand 1 in bf16 [s0, s2, 8, 128]
  operand 2 in bf16 [s0, s2, 8, 64]
  operand 3 in bf16 [s0, 1, s1, s2]
  operand 4 out bf16 [s0, s1, 8, 64]
  parallel [s0, s1, 8, 64]
  attention scale=0.088388347648318447 causal=1 layout=bshd
}
kernel "attention_1" attention {
  operand 0 in f32 [s1, 2, 8]
  operand 1 in f32 [s1, 2, 8]
  operand 2 in f32 [s1, 2, 8]
  operand 3 out f32 [s1, 2, 8]
  parallel [s1, 2, 8]
  attention scale=0.5 causal=0 layout=bshd
}
)";

TEST(ScheduleIR, AttentionLayoutRoundTrips) {
  Program p;
  ParseError err;
  ASSERT_TRUE(parseProgram(kAttentionBshd, &p, &err)) << err.str();
  ASSERT_EQ(p.kernels.size(), 2u);
  const Kernel &a = p.kernels[0];
  EXPECT_EQ(a.attention.layout, AttentionLayout::Bshd);
  EXPECT_STREQ(attentionLayoutName(a.attention.layout), "bshd");
  EXPECT_TRUE(a.attention.causal);
  // The computation's order: [B, H, S, D] for q/k/v/out, the mask as written.
  std::vector<int64_t> q = a.attentionDims(0, std::vector<int64_t>{2, 77, 8, 128});
  EXPECT_EQ(q, (std::vector<int64_t>{2, 8, 77, 128}));
  EXPECT_EQ(a.attentionDims(3, std::vector<int64_t>{2, 1, 77, 90}), (std::vector<int64_t>{2, 1, 77, 90}));
  EXPECT_EQ(p.kernels[1].attention.layout, AttentionLayout::Bshd);
  EXPECT_EQ(printProgram(p), kAttentionBshd);
  // The default layout is not printed; `layout=bhsd` reads as the default.
  Program d;
  ASSERT_TRUE(parseProgram(kAttention, &d, &err)) << err.str();
  EXPECT_EQ(d.kernels[0].attention.layout, AttentionLayout::Bhsd);
  std::string explicitBhsd = kAttention;
  explicitBhsd.replace(explicitBhsd.find("causal=1"), 8, "causal=1 layout=bhsd");
  ASSERT_TRUE(parseProgram(explicitBhsd, &d, &err)) << err.str();
  EXPECT_EQ(d.kernels[0].attention.layout, AttentionLayout::Bhsd);
  EXPECT_EQ(printProgram(d), kAttention);
  // Changing the layout changes the text (and so the schedule cache key).
  Program e;
  ASSERT_TRUE(parseProgram(kAttentionBshd, &e, &err));
  e.kernels[1].attention.layout = AttentionLayout::Bhsd;
  EXPECT_NE(printProgram(e), kAttentionBshd);
  // Kernel 1's operands (one shape for all) are valid in either layout.
  EXPECT_EQ(validateProgram(e), "");
}

TEST(ScheduleIR, EvaluatesIndexWithFlooredDivision) {
  IndexExpr e = IndexExpr::binary(IndexExpr::Kind::FloorDiv, IndexExpr::parallel(0) - IndexExpr::constant(7),
                                  IndexExpr::constant(2));
  int64_t sym[] = {0}, par[] = {0}, inner[] = {0};
  EXPECT_EQ(evalIndex(e, sym, par, inner, nullptr), -4); // floor(-7/2)
  IndexExpr m = IndexExpr::binary(IndexExpr::Kind::Mod, IndexExpr::constant(-7), IndexExpr::symbol(0));
  int64_t three[] = {3};
  EXPECT_EQ(evalIndex(m, three, par, inner, nullptr), 2);
}

TEST(ScheduleIR, NegativeConstantsRoundTrip) {
  Program p;
  Kernel k;
  k.name = "neg";
  k.operands.push_back({OperandRole::In, TESSERA_DTYPE_F32, {IndexExpr::constant(8)}});
  k.operands.push_back({OperandRole::Out, TESSERA_DTYPE_F32, {IndexExpr::constant(8)}});
  k.parallel = {IndexExpr::constant(8)};
  Stage s;
  Instr load;
  load.result = 0;
  load.dtype = TESSERA_DTYPE_F32;
  load.op = Op::Load;
  load.operand = 0;
  load.index = {IndexExpr::parallel(0) - IndexExpr::constant(-1) + IndexExpr::constant(-3)};
  load.mask = std::make_unique<IndexExpr>(IndexExpr::binary(IndexExpr::Kind::Le, IndexExpr::constant(-2),
                                                            IndexExpr::parallel(0) * IndexExpr::constant(-1)));
  load.fallback = -2.5;
  Instr store;
  store.isStore = true;
  store.operand = 1;
  store.index = {IndexExpr::parallel(0)};
  store.args = {0};
  s.body.push_back(std::move(load));
  s.body.push_back(std::move(store));
  k.stages.push_back(std::move(s));
  p.kernels.push_back(std::move(k));
  std::string text = printProgram(p);
  Program q;
  ParseError err;
  ASSERT_TRUE(parseProgram(text, &q, &err)) << err.str() << "\n" << text;
  EXPECT_EQ(printProgram(q), text);
  EXPECT_TRUE(q.kernels[0].stages[0].body[0].index[0] == p.kernels[0].stages[0].body[0].index[0]);
}

struct BadCase {
  const char *text;
  const char *message;
};

class ScheduleIRRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(ScheduleIRRejects, WithAClearMessage) {
  Program p;
  ParseError err;
  ASSERT_FALSE(parseProgram(GetParam().text, &p, &err));
  EXPECT_NE(err.message.find(GetParam().message), std::string::npos) << err.str();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScheduleIRRejects,
    ::testing::Values(
        BadCase{"tessera-schedule v9\n", "unsupported Schedule IR version 'v9'"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n parallel [1]\n stage map [] {\n v0: f32 = frob v1\n }\n}\n",
                "unknown operation 'frob'"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n operand 0 out f32 [4]\n parallel [4]\n stage map [] {\n "
                "store 0 [p0] v3\n }\n}\n",
                "value v3 used before its definition"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n operand 0 in f32 [4, 4]\n parallel [4]\n stage map [] {\n "
                "v0: f32 = load 0 [p0]\n }\n}\n",
                "has rank 2 but is indexed with 1"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n operand 0 in f32 [4]\n parallel [4]\n stage map [] {\n "
                "v0: f32 = load 0 [p1]\n }\n}\n",
                "parallel loop p1 out of range"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n operand 0 in f32 [4]\n parallel [4]\n stage map [] {\n "
                "v0: f32 = load 0 [p0]\n store 0 [p0] v0\n }\n}\n",
                "store to input operand 0"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n parallel [4]\n stage map [] {\n v0: f32 = const 1\n v1: "
                "f32 = reduce sum v0\n }\n}\n",
                "reduce outside a reduce stage"},
        BadCase{"tessera-schedule v1\nkernel \"k\" matmul {\n parallel [4, 4]\n stage map [] {\n }\n}\n",
                "matmul kernels need"},
        BadCase{"tessera-schedule v1\nkernel \"k\" loop {\n parallel [4\n", "expected ','"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 in f32 [4, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n}\n",
                "expected 'attention'"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 in f32 [4, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n attention scale=0.5 causal=2\n}\n",
                "causal must be 0 or 1"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 out f32 [4, 8]\n parallel [4, 8]\n attention scale=0.5 causal=0\n}\n",
                "4 or 5 operands"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [5, 4]\n"
                " operand 2 in f32 [5, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n attention scale=0.5 causal=0\n}\n",
                "head dims of q and k differ"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [5, 8]\n"
                " operand 2 in f32 [5, 8]\n operand 3 in f32 [3, 5]\n operand 4 out f32 [4, 8]\n parallel [4, 8]\n"
                " attention scale=0.5 causal=0\n}\n",
                "mask dim 0 neither 1 nor the score dim"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in i32 [4, 8]\n operand 1 in i32 [4, 8]\n"
                " operand 2 in i32 [4, 8]\n operand 3 out i32 [4, 8]\n parallel [4, 8]\n attention scale=0.5 causal=0\n}\n",
                "one float dtype"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 2, 8]\n operand 1 in f32 [4, 2, 8]\n"
                " operand 2 in f32 [4, 2, 8]\n operand 3 out f32 [4, 2, 8]\n parallel [4, 2, 8]\n"
                " attention scale=0.5 causal=0 layout=sbhd\n}\n",
                "attention layout must be 'bhsd' or 'bshd', found 'sbhd'"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 in f32 [4, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n"
                " attention scale=0.5 causal=0 layout=bshd\n}\n",
                "attention layout=bshd needs q, k, v and out of the same rank >= 3"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [2, 4, 2, 8]\n"
                " operand 1 in f32 [2, 5, 3, 8]\n operand 2 in f32 [2, 5, 3, 8]\n operand 3 out f32 [2, 4, 2, 8]\n"
                " parallel [2, 4, 2, 8]\n attention scale=0.5 causal=0 layout=bshd\n}\n",
                "attention head counts (H) differ between operands"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [2, 4, 2, 8]\n"
                " operand 1 in f32 [2, 5, 2, 8]\n operand 2 in f32 [2, 5, 2, 8]\n operand 3 out f32 [2, 5, 2, 8]\n"
                " parallel [2, 5, 2, 8]\n attention scale=0.5 causal=0 layout=bshd\n}\n",
                "attention out must be [batch..., Sq, H, Dv]"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [2, 4, 2, 8]\n"
                " operand 1 in f32 [2, 5, 2, 8]\n operand 2 in f32 [2, 5, 2, 8]\n operand 3 in f32 [2, 1, 5, 4]\n"
                " operand 4 out f32 [2, 4, 2, 8]\n parallel [2, 4, 2, 8]\n attention scale=0.5 causal=0 layout=bshd\n}\n",
                "mask dim 2 neither 1 nor the score dim"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 in f32 [4, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n attention scale=inf causal=0\n}\n",
                "scale must be finite"},
        BadCase{"tessera-schedule v1\nkernel \"k\" attention {\n operand 0 in f32 [4, 8]\n operand 1 in f32 [4, 8]\n"
                " operand 2 in f32 [4, 8]\n operand 3 out f32 [4, 8]\n parallel [4, 8]\n attention scale=1 causal=0\n"
                " stage map [] {\n }\n}\n",
                "attention kernels have no stages"}));

} // namespace
