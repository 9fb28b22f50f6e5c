// Every op of the op set lowered to Schedule IR, fused and unfused, run by
// the test interpreter and compared with the reference interpreter.
#include "TestUtil.h"

using namespace tessera;
using namespace tessera::fusiontest;
using ir::OpKind;

namespace {

const std::vector<std::vector<ref::Shape>> kOne = {};

TEST(FusionOps, UnaryFloat) {
  const OpKind kinds[] = {OpKind::Neg,  OpKind::Abs,   OpKind::Exp,     OpKind::Log,  OpKind::Sqrt,
                          OpKind::Rsqrt, OpKind::Tanh, OpKind::Sigmoid, OpKind::Relu, OpKind::Gelu,
                          OpKind::Silu, OpKind::Erf,   OpKind::Sin,     OpKind::Cos,  OpKind::Floor,
                          OpKind::Ceil, OpKind::Sign,  OpKind::Reciprocal};
  for (const char *dtype : {"f32", "bf16", "f64", "f16"}) {
    for (OpKind k : kinds) {
      SCOPED_TRACE(std::string(ir::opInfo(k).name) + " " + dtype);
      Case c;
      auto x = c.param(std::string("tensor<3 x 5 x ") + dtype + ">");
      ir::Function fn = c.finish({c.op(k, {x})});
      CheckOptions o;
      bool needsPositive = k == OpKind::Log || k == OpKind::Sqrt || k == OpKind::Rsqrt;
      o.inputs[0].positive = needsPositive;
      o.expectKernels = 1;
      checkFunction(fn, {{{3, 5}}}, o);
    }
  }
  Case c;
  auto x = c.param("tensor<4 x 6 x f32>");
  ir::Function fn = c.finish({c.op(OpKind::Gelu, {x}, Attrs().s("approximate", "tanh"))});
  checkFunction(fn, {{{4, 6}}});
}

TEST(FusionOps, UnaryInteger) {
  for (OpKind k : {OpKind::Neg, OpKind::Abs, OpKind::Relu, OpKind::Sign}) {
    for (const char *dtype : {"i32", "i8", "i64"}) {
      SCOPED_TRACE(std::string(ir::opInfo(k).name) + " " + dtype);
      Case c;
      auto x = c.param(std::string("tensor<7 x ") + dtype + ">");
      ir::Function fn = c.finish({c.op(k, {x})});
      checkFunction(fn, {{{7}}});
    }
  }
  Case c;
  auto x = c.param("tensor<2 x 9 x bool>");
  ir::Function fn = c.finish({c.op(OpKind::Not, {x})});
  checkFunction(fn, {{{2, 9}}});
}

TEST(FusionOps, BinaryBroadcast) {
  for (OpKind k : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Pow, OpKind::Max, OpKind::Min,
                   OpKind::Mod}) {
    for (const char *dtype : {"f32", "bf16", "f64"}) {
      SCOPED_TRACE(std::string(ir::opInfo(k).name) + " " + dtype);
      Case c;
      auto a = c.param(std::string("tensor<3 x 1 x 5 x ") + dtype + ">");
      auto b = c.param(std::string("tensor<4 x 5 x ") + dtype + ">");
      ir::Function fn = c.finish({c.op(k, {a, b})});
      CheckOptions o;
      if (k == OpKind::Pow)
        o.inputs[0].positive = true;
      o.expectKernels = 1;
      checkFunction(fn, {{{3, 1, 5}, {4, 5}}}, o);
    }
  }
  for (OpKind k : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Max, OpKind::Min, OpKind::Mod}) {
    SCOPED_TRACE(std::string(ir::opInfo(k).name) + " i32");
    Case c;
    auto a = c.param("tensor<6 x 4 x i32>");
    auto b = c.param("tensor<4 x i32>");
    ir::Function fn = c.finish({c.op(k, {a, b})});
    CheckOptions o;
    o.inputs[0].intLo = -20;
    o.inputs[0].intHi = 20;
    checkFunction(fn, {{{6, 4}, {4}}}, o);
  }
}

TEST(FusionOps, CompareLogicalSelect) {
  for (OpKind k : {OpKind::Eq, OpKind::Ne, OpKind::Lt, OpKind::Le, OpKind::Gt, OpKind::Ge}) {
    for (const char *dtype : {"f32", "i32"}) {
      Case c;
      auto a = c.param(std::string("tensor<5 x 4 x ") + dtype + ">");
      auto b = c.param(std::string("tensor<5 x 1 x ") + dtype + ">");
      ir::Function fn = c.finish({c.op(k, {a, b})});
      CheckOptions o;
      o.inputs[0].intLo = o.inputs[1].intLo = -2;
      o.inputs[0].intHi = o.inputs[1].intHi = 2;
      checkFunction(fn, {{{5, 4}, {5, 1}}}, o);
    }
  }
  for (OpKind k : {OpKind::And, OpKind::Or, OpKind::Xor}) {
    Case c;
    auto a = c.param("tensor<3 x 8 x bool>");
    auto b = c.param("tensor<8 x bool>");
    ir::Function fn = c.finish({c.op(k, {a, b})});
    checkFunction(fn, {{{3, 8}, {8}}});
  }
  Case c;
  auto cond = c.param("tensor<4 x 1 x bool>");
  auto a = c.param("tensor<4 x 6 x f32>");
  auto b = c.param("tensor<6 x f32>");
  ir::Function fn = c.finish({c.op(OpKind::Select, {cond, a, b})});
  checkFunction(fn, {{{4, 1}, {4, 6}, {6}}}, kernels(1));
}

TEST(FusionOps, Cast) {
  struct C {
    const char *from, *to;
  } cases[] = {{"f32", "bf16"}, {"f32", "f16"}, {"f32", "i32"}, {"i32", "f32"}, {"f32", "bool"}, {"bf16", "f32"},
               {"f32", "f64"},  {"f64", "f32"}, {"i32", "i8"},  {"bool", "f32"}, {"f32", "f8e4m3"}, {"f16", "f8e5m2"},
               {"i64", "bf16"}};
  for (const C &cs : cases) {
    SCOPED_TRACE(std::string(cs.from) + " -> " + cs.to);
    Case c;
    auto x = c.param(std::string("tensor<3 x 7 x ") + cs.from + ">");
    auto to = ir::parseDType(cs.to);
    ir::Function fn = c.finish({c.op(OpKind::Cast, {x}, Attrs().dt("dtype", *to))});
    CheckOptions o;
    o.inputs[0].hi = 6.0;
    o.inputs[0].intLo = -300;
    o.inputs[0].intHi = 300;
    checkFunction(fn, {{{3, 7}}}, o);
  }
}

TEST(FusionOps, Reductions) {
  const OpKind kinds[] = {OpKind::ReduceSum, OpKind::ReduceMean, OpKind::ReduceMax, OpKind::ReduceMin,
                          OpKind::ReduceProd};
  struct Ax {
    std::vector<int64_t> axes;
    bool keep;
  } axesCases[] = {{{}, false}, {{1}, false}, {{0, 2}, true}, {{-1}, true}, {{0, 1, 2}, false}};
  for (OpKind k : kinds)
    for (const Ax &ax : axesCases)
      for (const char *dtype : {"f32", "bf16"}) {
        SCOPED_TRACE(std::string(ir::opInfo(k).name) + " " + dtype);
        Case c;
        auto x = c.param(std::string("tensor<3 x 4 x 5 x ") + dtype + ">");
        Attrs a;
        if (!ax.axes.empty())
          a.is("axes", ax.axes);
        a.b("keepdim", ax.keep);
        ir::Function fn = c.finish({c.op(k, {x}, a)});
        CheckOptions o;
        o.expectKernels = 1;
        if (k == OpKind::ReduceProd) {
          o.inputs[0].lo = 0.8;
          o.inputs[0].hi = 1.2;
        }
        checkFunction(fn, {{{3, 4, 5}}}, o);
      }
  for (OpKind k : {OpKind::ReduceSum, OpKind::ReduceMax, OpKind::ReduceProd}) {
    Case c;
    auto x = c.param("tensor<4 x 3 x i32>");
    ir::Function fn = c.finish({c.op(k, {x}, Attrs().is("axes", {0}))});
    checkFunction(fn, {{{4, 3}}});
  }
  for (OpKind k : {OpKind::Argmax, OpKind::Argmin})
    for (int64_t axis : {0, 1, -1})
      for (bool keep : {false, true}) {
        Case c;
        auto x = c.param("tensor<5 x 6 x 3 x f32>");
        ir::Function fn = c.finish({c.op(k, {x}, Attrs().i("axis", axis).b("keepdim", keep))});
        checkFunction(fn, {{{5, 6, 3}}});
      }
}

TEST(FusionOps, Normalizations) {
  for (OpKind k : {OpKind::Softmax, OpKind::LogSoftmax})
    for (int64_t axis : {-1, 0, 1})
      for (const char *dtype : {"f32", "bf16"}) {
        Case c;
        auto x = c.param(std::string("tensor<3 x 8 x 5 x ") + dtype + ">");
        ir::Function fn = c.finish({c.op(k, {x}, Attrs().i("axis", axis))});
        CheckOptions o;
        o.inputs[0].hi = 8.0;
        o.expectKernels = 1;
        checkFunction(fn, {{{3, 8, 5}}}, o);
      }
  struct N {
    int64_t axis;
    const char *gamma;
    ref::Shape gs;
  } norms[] = {{-1, "tensor<6 x f32>", {6}}, {-2, "tensor<4 x 6 x f32>", {4, 6}}, {1, "tensor<3 x 4 x 6 x f32>", {3, 4, 6}}};
  for (const N &n : norms) {
    int64_t axis = n.axis;
    Case c;
    auto x = c.param("tensor<2 x 3 x 4 x 6 x f32>");
    auto g = c.param(n.gamma);
    auto b = c.param(n.gamma);
    ir::Function fn = c.finish({c.op(OpKind::LayerNorm, {x, g, b}, Attrs().i("axis", axis).f("epsilon", 1e-3)),
                                c.op(OpKind::LayerNorm, {x}, Attrs().i("axis", axis)),
                                c.op(OpKind::RmsNorm, {x, g}, Attrs().i("axis", axis)),
                                c.op(OpKind::RmsNorm, {x}, Attrs().i("axis", axis).f("epsilon", 1e-2))});
    checkFunction(fn, {{{2, 3, 4, 6}, n.gs, n.gs}});
  }
  Case c;
  auto x = c.param("tensor<4 x 16 x bf16 @accum(f32)>");
  auto g = c.param("tensor<16 x bf16>");
  ir::Function fn = c.finish({c.op(OpKind::LayerNorm, {x, g}), c.op(OpKind::RmsNorm, {x, g})});
  checkFunction(fn, {{{4, 16}, {16}}});
}

TEST(FusionOps, Matmul) {
  struct M {
    const char *a, *b;
    std::vector<ref::Shape> shapes;
    bool canonical;
  } cases[] = {
      {"tensor<5 x 7 x f32>", "tensor<7 x 3 x f32>", {{5, 7}, {7, 3}}, true},
      {"tensor<2 x 5 x 7 x f32>", "tensor<2 x 7 x 3 x f32>", {{2, 5, 7}, {2, 7, 3}}, true},
      {"tensor<2 x 1 x 5 x 7 x f32>", "tensor<4 x 7 x 3 x f32>", {{2, 1, 5, 7}, {4, 7, 3}}, true},
      {"tensor<3 x 5 x 7 x f32>", "tensor<7 x 3 x f32>", {{3, 5, 7}, {7, 3}}, true},
      {"tensor<7 x f32>", "tensor<7 x 3 x f32>", {{7}, {7, 3}}, false},
      {"tensor<2 x 5 x 7 x f32>", "tensor<7 x f32>", {{2, 5, 7}, {7}}, false},
      {"tensor<7 x f32>", "tensor<7 x f32>", {{7}, {7}}, false},
      {"tensor<7 x f32>", "tensor<2 x 7 x 3 x f32>", {{7}, {2, 7, 3}}, false},
      {"tensor<6 x 9 x bf16 @accum(f32)>", "tensor<9 x 4 x bf16>", {{6, 9}, {9, 4}}, true},
      {"tensor<6 x 9 x f64>", "tensor<9 x 4 x f64>", {{6, 9}, {9, 4}}, true},
      {"tensor<6 x 9 x i32>", "tensor<9 x 4 x i32>", {{6, 9}, {9, 4}}, false},
  };
  for (const M &m : cases) {
    SCOPED_TRACE(std::string(m.a) + " @ " + m.b);
    Case c;
    auto a = c.param(m.a);
    auto b = c.param(m.b);
    ir::Function fn = c.finish({c.op(OpKind::Matmul, {a, b})});
    fusion::FusedProgram p = checkFunction(fn, {m.shapes}, kernels(1));
    ASSERT_EQ(p.schedule.kernels.size(), 1u);
    EXPECT_EQ(p.schedule.kernels[0].kind == schedule::Kernel::Kind::Matmul, m.canonical) << fusion::dumpFused(p);
  }
  // A transposed operand folds into the load (still canonical).
  Case c;
  auto a = c.param("tensor<5 x 7 x f32>");
  auto b = c.param("tensor<3 x 7 x f32>");
  auto bt = c.op(OpKind::Transpose, {b});
  ir::Function fn = c.finish({c.op(OpKind::Matmul, {a, bt})});
  fusion::FusedProgram p = checkFunction(fn, {{{5, 7}, {3, 7}}}, kernels(1));
  ASSERT_EQ(p.schedule.kernels.size(), 1u);
  EXPECT_EQ(p.schedule.kernels[0].kind, schedule::Kernel::Kind::Matmul);
}

TEST(FusionOps, DataMovement) {
  {
    Case c;
    auto x = c.param("tensor<2 x 3 x 4 x f32>");
    ir::Function fn = c.finish({c.op(OpKind::Transpose, {x}, Attrs().is("perm", {1, 2, 0})),
                                c.op(OpKind::Transpose, {x})});
    checkFunction(fn, {{{2, 3, 4}}});
  }
  {
    Case c;
    auto x = c.param("tensor<2 x 3 x 4 x f32>");
    ir::Function fn = c.finish({c.op(OpKind::Reshape, {x}, Attrs().is("shape", {6, 4})),
                                c.op(OpKind::Reshape, {x}, Attrs().is("shape", {2, 12})),
                                c.op(OpKind::Reshape, {x}, Attrs().is("shape", {4, 6})),
                                c.op(OpKind::Reshape, {x}, Attrs().is("shape", {2, 3, 2, 2})),
                                c.op(OpKind::Reshape, {x}, Attrs().is("shape", {1, 24, 1})),
                                c.op(OpKind::Reshape, {x}, Attrs().is("shape", {3, 8}))});
    checkFunction(fn, {{{2, 3, 4}}});
  }
  {
    Case c;
    auto x = c.param("tensor<3 x 1 x f32>");
    ir::Function fn = c.finish({c.op(OpKind::BroadcastTo, {x}, Attrs().is("shape", {2, 3, 4})),
                                c.op(OpKind::ExpandDims, {x}, Attrs().is("axes", {0, -1})),
                                c.op(OpKind::Squeeze, {x}),
                                c.op(OpKind::Squeeze, {x}, Attrs().is("axes", {1}))});
    checkFunction(fn, {{{3, 1}}});
  }
  {
    Case c;
    auto x = c.param("tensor<6 x 10 x f32>");
    ir::Function fn = c.finish(
        {c.op(OpKind::Slice, {x}, Attrs().is("starts", {1}).is("ends", {100}).is("axes", {1})),
         c.op(OpKind::Slice, {x}, Attrs().is("starts", {-4, 1}).is("ends", {-1, 9}).is("steps", {2, 3})),
         c.op(OpKind::Slice, {x}, Attrs().is("starts", {0}).is("ends", {6}).is("axes", {0}).is("steps", {4}))});
    checkFunction(fn, {{{6, 10}}});
  }
  {
    Case c;
    auto x = c.param("tensor<2 x 3 x f32>");
    auto y = c.param("tensor<2 x 5 x f32>");
    auto z = c.param("tensor<2 x 1 x f32>");
    ir::Function fn = c.finish({c.op(OpKind::Concat, {x, y, z}, Attrs().i("axis", 1)),
                                c.op(OpKind::Concat, {x, x}, Attrs().i("axis", 0))});
    checkFunction(fn, {{{2, 3}, {2, 5}, {2, 1}}});
  }
  {
    Case c;
    auto x = c.param("tensor<4 x 6 x f32>");
    auto parts = c.ops(OpKind::Split, {x}, Attrs().i("axis", 1).is("sizes", {1, 2, 3}));
    auto halves = c.ops(OpKind::Split, {x}, Attrs().i("axis", 0).i("num", 2));
    std::vector<ir::ValueId> rets = parts;
    rets.insert(rets.end(), halves.begin(), halves.end());
    ir::Function fn = c.finish(rets);
    checkFunction(fn, {{{4, 6}}});
  }
  {
    Case c;
    auto x = c.param("tensor<5 x 4 x f32>");
    auto i = c.param("tensor<3 x 2 x i64>");
    auto j = c.param("tensor<6 x i32>");
    ir::Function fn = c.finish({c.op(OpKind::Gather, {x, i}), c.op(OpKind::Gather, {x, j}, Attrs().i("axis", 1))});
    CheckOptions o;
    o.inputs[1] = InputSpec{0.1, 2.0, false, -4, 4, true};
    o.inputs[2] = InputSpec{0.1, 2.0, false, -4, 3, true};
    checkFunction(fn, {{{5, 4}, {3, 2}, {6}}}, o);
  }
  {
    Case c;
    auto x = c.param("tensor<3 x 4 x f32>");
    ir::Function fn = c.finish({c.op(OpKind::Pad, {x}, Attrs().is("pads", {1, 2, 0, 3}).f("value", -1.5)),
                                c.op(OpKind::Pad, {x}, Attrs().is("pads", {0, 0, 2, 2}))});
    checkFunction(fn, {{{3, 4}}});
  }
  {
    Case c;
    ir::Function fn = c.finish({c.op(OpKind::Iota, {}, Attrs().i("axis", 1), {T("tensor<3 x 5 x i64>")}),
                                c.op(OpKind::Iota, {}, Attrs().i("axis", 0), {T("tensor<4 x 2 x f32>")})});
    checkFunction(fn, {{}});
  }
}

TEST(FusionOps, Constants) {
  Case c;
  auto x = c.param("tensor<2 x 3 x f32>");
  auto s = c.op(OpKind::Constant, {}, Attrs().f("value", 0.1), {T("tensor<f32>")});
  auto l = c.op(OpKind::Constant, {}, Attrs().fs("value", {1, 2, 3, 4, 5, 6}), {T("tensor<2 x 3 x f32>")});
  auto h = c.op(OpKind::Constant, {}, Attrs().fs("value", {0.1, -2.5, 3.0}), {T("tensor<3 x bf16>")});
  auto d = c.op(OpKind::Constant, {}, Attrs().s("data", "hex:0000803f000000c0000040400000a0c0"),
                {T("tensor<4 x 1 x f32>")});
  auto i = c.op(OpKind::Constant, {}, Attrs().is("value", {-1, 7, 300}), {T("tensor<3 x i16>")});
  auto f8 = c.op(OpKind::Constant, {}, Attrs().fs("value", {0.3, -448, 2.0e-3}), {T("tensor<3 x f8e4m3>")});
  auto h16 = c.op(OpKind::Constant, {}, Attrs().fs("value", {0.3, -65504, 1e-6}), {T("tensor<3 x f16>")});
  auto y = c.op(OpKind::Add, {c.op(OpKind::Mul, {x, s}), l});
  ir::Function fn = c.finish({y, h, d, i, f8, h16, l, s});
  checkFunction(fn, {{{2, 3}}});
}

TEST(FusionOps, Conv2dAndPooling) {
  struct Cv {
    const char *x, *w;
    ref::Shape xs, ws;
    Attrs attrs;
    bool bias;
  } cases[] = {
      {"tensor<2 x 3 x 7 x 6 x f32>", "tensor<4 x 3 x 3 x 3 x f32>", {2, 3, 7, 6}, {4, 3, 3, 3}, Attrs(), true},
      {"tensor<1 x 4 x 8 x 8 x f32>", "tensor<6 x 2 x 3 x 2 x f32>", {1, 4, 8, 8}, {6, 2, 3, 2},
       Attrs().is("stride", {2, 1}).is("padding", {1, 2}).is("dilation", {1, 2}).i("groups", 2), true},
      {"tensor<1 x 2 x 5 x 5 x f32>", "tensor<3 x 2 x 2 x 2 x f32>", {1, 2, 5, 5}, {3, 2, 2, 2},
       Attrs().is("padding", {0, 1, 2, 0}), false},
      {"tensor<1 x 2 x 5 x 5 x bf16 @accum(f32)>", "tensor<2 x 1 x 3 x 3 x bf16>", {1, 2, 5, 5}, {2, 1, 3, 3},
       Attrs().i("groups", 2).is("padding", {1, 1}), false},
  };
  for (Cv &cv : cases) {
    Case c;
    auto x = c.param(cv.x);
    auto w = c.param(cv.w);
    std::vector<ir::ValueId> operands = {x, w};
    std::vector<ref::Shape> shapes = {cv.xs, cv.ws};
    if (cv.bias) {
      operands.push_back(c.param("tensor<" + std::to_string(cv.ws[0]) + " x f32>"));
      shapes.push_back({cv.ws[0]});
    }
    ir::Function fn = c.finish({c.op(OpKind::Conv2d, operands, cv.attrs)});
    checkFunction(fn, {shapes}, kernels(1));
  }
  Case c;
  auto x = c.param("tensor<2 x 3 x 7 x 8 x f32>");
  ir::Function fn = c.finish(
      {c.op(OpKind::MaxPool2d, {x}, Attrs().is("kernel", {2, 2})),
       c.op(OpKind::MaxPool2d, {x}, Attrs().is("kernel", {3, 2}).is("stride", {2, 1}).is("padding", {1, 1})
                                        .is("dilation", {1, 2})),
       c.op(OpKind::AvgPool2d, {x}, Attrs().is("kernel", {3, 3}).is("stride", {2, 2}).is("padding", {1, 1})),
       c.op(OpKind::AvgPool2d, {x}, Attrs().is("kernel", {3, 3}).is("padding", {1, 1}).b("count_include_pad", true)),
       c.op(OpKind::AvgPool2d, {x}, Attrs().is("kernel", {2, 3}))});
  checkFunction(fn, {{{2, 3, 7, 8}}});
}

TEST(FusionOps, SymbolicShapes) {
  Case c;
  auto x = c.param("tensor<B x S x 8 x f32>");
  auto w = c.param("tensor<8 x 6 x f32>");
  auto b = c.param("tensor<6 x f32>");
  auto m = c.op(OpKind::Matmul, {x, w});
  auto y = c.op(OpKind::Relu, {c.op(OpKind::Add, {m, b})});
  auto sm = c.op(OpKind::Softmax, {y}, Attrs().i("axis", 1));
  auto r = c.op(OpKind::Reshape, {sm}, {}, {T("tensor<B x S*6 x f32>")});
  auto red = c.op(OpKind::ReduceMean, {x}, Attrs().is("axes", {1}));
  auto tr = c.op(OpKind::Transpose, {x}, Attrs().is("perm", {1, 0, 2}));
  auto parts = c.ops(OpKind::Split, {x}, Attrs().i("axis", 1).i("num", 2));
  auto cc = c.op(OpKind::Concat, {x, parts[1]}, Attrs().i("axis", 1));
  auto sl = c.op(OpKind::Slice, {x}, Attrs().is("starts", {1}).is("ends", {-1}).is("axes", {1}));
  auto pd = c.op(OpKind::Pad, {x}, Attrs().is("pads", {0, 0, 1, 1, 0, 0}));
  ir::Function fn = c.finish({r, red, tr, cc, sl, pd});
  std::vector<std::vector<ref::Shape>> sets;
  for (auto [B, S] : {std::pair<int64_t, int64_t>{1, 4}, {3, 6}, {2, 10}})
    sets.push_back({{B, S, 8}, {8, 6}, {6}});
  checkFunction(fn, sets);
}

TEST(FusionOps, SymbolicHeadSplit) {
  // D/H with H given at bind time: reshape splits and merges by symbols.
  ir::Function fn = parseFunction(R"(
func @heads(%x: tensor<B x S x D x f32>) -> tensor<B x S x D x f32> {
  %x4 = reshape(%x) : tensor<B x S x H x D/H x f32>
  %t = transpose(%x4) {perm = [0, 2, 1, 3]}
  %s = mul(%t, %t)
  %b = transpose(%s) {perm = [0, 2, 1, 3]}
  %y = reshape(%b) : tensor<B x S x D x f32>
  return %y
}
)");
  // The reference cannot take H; the interpreter can: compare against x*x.
  for (int64_t H : {2, 4}) {
    auto fused = fusion::fuse(fn);
    ASSERT_TRUE(fused.hasValue()) << fused.error().render();
    EXPECT_EQ(fused->schedule.kernels.size(), 1u) << fusion::dumpFused(*fused);
    auto in = randomInputs(fn, {{2, 3, 8}}, {}, 7);
    auto got = sirtest::runFused(*fused, fn, in, {{"H", H}});
    ASSERT_TRUE(got.hasValue()) << got.error().render();
    for (size_t i = 0; i < in[0].data.size(); ++i)
      EXPECT_FLOAT_EQ(static_cast<float>(got->at(0).data[i]), static_cast<float>(in[0].data[i] * in[0].data[i]));
  }
}

TEST(FusionPatternsDeep, LongChainIsCut) {
  Case c;
  auto x = c.param("tensor<4 x f32>");
  ir::ValueId v = x;
  for (int i = 0; i < 300; ++i)
    v = c.op(i % 2 ? OpKind::Sin : OpKind::Cos, {v});
  ir::Function fn = c.finish({v});
  auto p = checkFunction(fn, {{{4}}}, CheckOptions());
  EXPECT_EQ(p.schedule.kernels.size(), 3u); // cut every 129 ops
}

TEST(FusionErrors, UnsupportedAndInvalid) {
  // Attention kept whole (a plugin claims it) needs a static head dim or an
  // explicit scale.
  Case c;
  auto q = c.param("tensor<2 x 4 x D x f32>");
  ir::Function fn = c.finish({c.op(OpKind::Attention, {q, q, q})});
  auto fused = fusion::fuse(fn);
  ASSERT_FALSE(fused.hasValue());
  EXPECT_EQ(fused.error().code(), ErrorCode::Unsupported);
  EXPECT_NE(fused.error().message().find("attention"), std::string::npos);
  EXPECT_NE(fused.error().message().find("scale"), std::string::npos) << fused.error().message();

  Case d;
  auto x = d.param("tensor<4 x bf16 @rounding(toward_zero)>");
  ir::Function fn2 = d.finish({d.op(OpKind::Exp, {x})});
  auto f2 = fusion::fuse(fn2);
  ASSERT_FALSE(f2.hasValue());
  EXPECT_EQ(f2.error().code(), ErrorCode::Unsupported);
  EXPECT_NE(f2.error().message().find("exp"), std::string::npos) << f2.error().message();

  ir::Function broken = fn2;
  broken.values.back().type.dtype = ir::DType::Invalid;
  auto f3 = fusion::fuse(broken);
  ASSERT_FALSE(f3.hasValue());
  EXPECT_EQ(f3.error().code(), ErrorCode::InvalidIR);
}

} // namespace
