#include "Cases.h"

namespace tessera::conformance {

namespace {

const std::vector<std::string> kFloats = {"f32", "f64", "f16", "bf16"};
const std::vector<std::string> kF32 = {"f32"};
using K = InputKind;

std::vector<std::map<std::string, int64_t>> bindB() { return {{{"B", 3}}, {{"B", 17}}}; }
std::vector<std::map<std::string, int64_t>> bindBS() { return {{{"B", 2}, {"S", 5}}, {{"B", 3}, {"S", 33}}}; }

ProgramCase unary(const std::string &op, K kind = K::Normal, const std::string &attrs = "") {
  return {"ops/" + op + (attrs.empty() ? "" : "_" + attrs.substr(attrs.find('"') + 1, 4)),
          kFloats,
          "func @main(%x: tensor<B x 7 x {T}>) -> tensor<B x 7 x {T}> {\n  %y = " + op + "(%x)" +
              (attrs.empty() ? "" : " {" + attrs + "}") + "\n  return %y\n}\n",
          {kind},
          0,
          bindB(),
          ""};
}

ProgramCase binary(const std::string &op, K a = K::Normal, K b = K::Normal) {
  return {"ops/" + op,
          kFloats,
          "func @main(%x: tensor<B x 1 x 5 x {T}>, %y: tensor<3 x 1 x {T}>) -> tensor<B x 3 x 5 x {T}> {\n"
          "  %z = " + op + "(%x, %y)\n  return %z\n}\n",
          {a, b},
          0,
          bindB(),
          ""};
}

ProgramCase simple(const std::string &name, std::vector<std::string> dtypes, std::string text,
                   std::vector<K> inputs = {}, std::vector<std::map<std::string, int64_t>> bindings = bindB(),
                   int64_t bound = 0, std::string compileBind = "") {
  return {name, std::move(dtypes), std::move(text), std::move(inputs), bound, std::move(bindings),
          std::move(compileBind)};
}

} // namespace

std::vector<ProgramCase> programCases() {
  std::vector<ProgramCase> c;
  for (const char *op : {"neg", "abs", "exp", "tanh", "sigmoid", "relu", "gelu", "silu", "erf", "sin", "cos",
                         "floor", "ceil", "sign", "reciprocal"})
    c.push_back(unary(op));
  c.push_back(unary("gelu", K::Normal, "approximate = \"tanh\""));
  for (const char *op : {"log", "sqrt", "rsqrt"})
    c.push_back(unary(op, K::Positive));
  for (const char *op : {"add", "sub", "mul", "div", "max", "min", "mod"})
    c.push_back(binary(op));
  c.push_back(binary("pow", K::Positive, K::Normal));

  const std::string ints =
      "func @main(%x: tensor<B x 6 x i32>, %y: tensor<6 x i32>) -> tensor<B x 6 x i32> {\n"
      "  %a = add(%x, %y)\n  %b = mul(%a, %y)\n  %c = sub(%b, %x)\n  %d = max(%c, %y)\n  %e = min(%d, %b)\n"
      "  %f = div(%e, %y)\n  %g = mod(%f, %y)\n  %h = neg(%g)\n  %i = abs(%h)\n  return %i\n}\n";
  c.push_back(simple("ops/integer_arithmetic", {"i32"}, ints));
  for (const char *op : {"eq", "ne", "lt", "le", "gt", "ge"})
    c.push_back(simple(std::string("ops/") + op, {"f32", "i32"},
                       std::string("func @main(%x: tensor<B x 4 x {T}>, %y: tensor<4 x {T}>) -> tensor<B x 4 x bool> "
                                   "{\n  %z = ") + op + "(%x, %y)\n  return %z\n}\n"));
  c.push_back(simple("ops/logical", {"bool"},
                     "func @main(%x: tensor<B x 4 x bool>, %y: tensor<4 x bool>) -> tensor<B x 4 x bool> {\n"
                     "  %a = and(%x, %y)\n  %b = or(%a, %x)\n  %c = xor(%b, %y)\n  %d = not(%c)\n  return %d\n}\n",
                     {K::Bool, K::Bool}));
  c.push_back(simple("ops/select", kFloats,
                     "func @main(%c: tensor<B x 4 x bool>, %a: tensor<B x 4 x {T}>, %b: tensor<4 x {T}>) -> "
                     "tensor<B x 4 x {T}> {\n  %z = select(%c, %a, %b)\n  return %z\n}\n",
                     {K::Bool, K::Normal, K::Normal}));
  for (const char *to : {"i32", "f16", "bf16", "f64", "f8e4m3", "f8e5m2"})
    c.push_back(simple(std::string("ops/cast_to_") + to, kF32,
                       std::string("func @main(%x: tensor<B x 5 x {T}>) -> tensor<B x 5 x ") + to +
                           "> {\n  %y = cast(%x) {dtype = " + to + "}\n  return %y\n}\n"));
  c.push_back(simple("ops/cast_from_i32", {"i32"},
                     "func @main(%x: tensor<B x 5 x {T}>) -> tensor<B x 5 x f32> {\n"
                     "  %y = cast(%x) {dtype = f32}\n  return %y\n}\n"));

  for (const char *op : {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"}) {
    c.push_back(simple(std::string("ops/") + op, kFloats,
                       std::string("func @main(%x: tensor<B x 6 x 5 x {T}>) -> tensor<B x 5 x {T}> {\n  %y = ") + op +
                           "(%x) {axes = [1]}\n  return %y\n}\n"));
    c.push_back(simple(std::string("ops/") + op + "_keepdim_all", kF32,
                       std::string("func @main(%x: tensor<B x 6 x {T}>) -> tensor<1 x 1 x {T}> {\n  %y = ") + op +
                           "(%x) {keepdim = true}\n  return %y\n}\n"));
  }
  for (const char *op : {"argmax", "argmin"})
    c.push_back(simple(std::string("ops/") + op, {"f32", "i32"},
                       std::string("func @main(%x: tensor<B x 9 x {T}>) -> tensor<B x i64> {\n  %y = ") + op +
                           "(%x) {axis = 1}\n  return %y\n}\n"));
  c.push_back(simple("ops/softmax", kFloats,
                     "func @main(%x: tensor<B x S x {T}>) -> tensor<B x S x {T}> {\n  %y = softmax(%x)\n"
                     "  return %y\n}\n", {}, bindBS()));
  c.push_back(simple("ops/log_softmax", kFloats,
                     "func @main(%x: tensor<B x S x {T}>) -> tensor<B x S x {T}> {\n  %y = log_softmax(%x) "
                     "{axis = 1}\n  return %y\n}\n", {}, bindBS()));
  c.push_back(simple("ops/layer_norm", kFloats,
                     "func @main(%x: tensor<B x 16 x {T}>, %g: tensor<16 x {T}>, %b: tensor<16 x {T}>) -> "
                     "tensor<B x 16 x {T}> {\n  %y = layer_norm(%x, %g, %b) {epsilon = 1e-5}\n  return %y\n}\n"));
  c.push_back(simple("ops/rms_norm", kFloats,
                     "func @main(%x: tensor<B x 16 x {T}>, %g: tensor<16 x {T}>) -> tensor<B x 16 x {T}> {\n"
                     "  %y = rms_norm(%x, %g)\n  return %y\n}\n"));
  c.push_back(simple("ops/matmul", kFloats,
                     "func @main(%a: tensor<B x 13 x 24 x {T}>, %b: tensor<24 x 9 x {T}>) -> tensor<B x 13 x 9 x {T}> "
                     "{\n  %y = matmul(%a, %b)\n  return %y\n}\n"));
  c.push_back(simple("ops/matmul_symbolic", kF32,
                     "func @main(%a: tensor<B x S x {T}>, %b: tensor<S x B x {T}>) -> tensor<B x B x {T}> {\n"
                     "  %y = matmul(%a, %b)\n  return %y\n}\n", {}, bindBS()));
  c.push_back(simple("ops/transpose", kFloats,
                     "func @main(%x: tensor<B x 3 x 5 x {T}>) -> tensor<5 x B x 3 x {T}> {\n"
                     "  %y = transpose(%x) {perm = [2, 0, 1]}\n  return %y\n}\n"));
  c.push_back(simple("ops/reshape", kF32,
                     "func @main(%x: tensor<B x 6 x {T}>) -> tensor<B x 2 x 3 x {T}> {\n"
                     "  %y = reshape(%x) : tensor<B x 2 x 3 x {T}>\n  return %y\n}\n"));
  c.push_back(simple("ops/broadcast_to", kF32,
                     "func @main(%x: tensor<1 x 4 x {T}>) -> tensor<3 x 4 x {T}> {\n"
                     "  %y = broadcast_to(%x) {shape = [3, 4]}\n  return %y\n}\n", {}, {{}}));
  c.push_back(simple("ops/expand_squeeze", kF32,
                     "func @main(%x: tensor<B x 4 x {T}>) -> tensor<B x 4 x {T}> {\n"
                     "  %e = expand_dims(%x) {axes = [0, 3]}\n  %y = squeeze(%e) {axes = [0, 3]}\n  return %y\n}\n"));
  c.push_back(simple("ops/concat", kFloats,
                     "func @main(%x: tensor<B x 2 x {T}>, %y: tensor<B x 3 x {T}>) -> tensor<B x 7 x {T}> {\n"
                     "  %z = concat(%x, %y, %x) {axis = 1}\n  return %z\n}\n"));
  c.push_back(simple("ops/split", kF32,
                     "func @main(%x: tensor<B x 6 x {T}>) -> (tensor<B x 2 x {T}>, tensor<B x 4 x {T}>) {\n"
                     "  %a, %b = split(%x) {axis = 1, sizes = [2, 4]}\n  return %a, %b\n}\n"));
  c.push_back(simple("ops/slice_steps", kF32,
                     "func @main(%x: tensor<B x 10 x {T}>) -> tensor<B x 3 x {T}> {\n"
                     "  %y = slice(%x) {starts = [1], ends = [8], axes = [1], steps = [3]}\n  return %y\n}\n"));
  c.push_back(simple("ops/slice_negative", kF32,
                     "func @main(%x: tensor<B x 10 x {T}>) -> tensor<B x 3 x {T}> {\n"
                     "  %y = slice(%x) {starts = [-8], ends = [-1], axes = [1], steps = [3]}\n  return %y\n}\n"));
  c.push_back(simple("ops/gather", kF32,
                     "func @main(%x: tensor<B x 8 x {T}>, %i: tensor<5 x i32>) -> tensor<B x 5 x {T}> {\n"
                     "  %y = gather(%x, %i) {axis = 1}\n  return %y\n}\n",
                     {K::Normal, K::Index}, bindB(), 8));
  c.push_back(simple("ops/pad", kF32,
                     "func @main(%x: tensor<B x 3 x {T}>) -> tensor<B x 6 x {T}> {\n"
                     "  %y = pad(%x) {pads = [0, 0, 1, 2], value = -1.5}\n  return %y\n}\n"));
  c.push_back(simple("ops/iota", {"f32", "i32"},
                     "func @main(%x: tensor<B x 4 x {T}>) -> tensor<B x 4 x {T}> {\n"
                     "  %i = iota() {axis = 1} : tensor<B x 4 x {T}>\n  %y = add(%x, %i)\n  return %y\n}\n"));
  c.push_back(simple("ops/constant", kF32,
                     "func @main(%x: tensor<B x 4 x {T}>) -> tensor<B x 4 x {T}> {\n"
                     "  %c = constant() {value = [1.5, -2, 0.25, 8]} : tensor<4 x {T}>\n"
                     "  %h = constant() {data = \"hex:0000803f000000400000404000008040\"} : tensor<4 x f32>\n"
                     "  %s = constant() {value = 0.5} : tensor<{T}>\n"
                     "  %a = mul(%x, %c)\n  %b = add(%a, %s)\n  %y = add(%b, %h)\n  return %y\n}\n"));
  c.push_back(simple("ops/conv2d", kF32,
                     "func @main(%x: tensor<B x 4 x 9 x 8 x {T}>, %w: tensor<6 x 2 x 3 x 3 x {T}>, "
                     "%b: tensor<6 x {T}>) -> tensor<B x 6 x 5 x 4 x {T}> {\n"
                     "  %y = conv2d(%x, %w, %b) {stride = [2, 2], padding = [1, 1], dilation = [1, 1], groups = 2}\n"
                     "  return %y\n}\n", {}, {{{"B", 1}}, {{"B", 2}}}));
  c.push_back(simple("ops/conv2d_dilated", kF32,
                     "func @main(%x: tensor<B x 3 x 10 x 10 x {T}>, %w: tensor<4 x 3 x 3 x 3 x {T}>) -> "
                     "tensor<B x 4 x 6 x 6 x {T}> {\n  %y = conv2d(%x, %w) {dilation = [2, 2]}\n  return %y\n}\n",
                     {}, {{{"B", 1}}, {{"B", 2}}}));
  c.push_back(simple("ops/max_pool2d", kF32,
                     "func @main(%x: tensor<B x 3 x 8 x 8 x {T}>) -> tensor<B x 3 x 4 x 4 x {T}> {\n"
                     "  %y = max_pool2d(%x) {kernel = [2, 2]}\n  return %y\n}\n"));
  c.push_back(simple("ops/avg_pool2d", kF32,
                     "func @main(%x: tensor<B x 3 x 8 x 8 x {T}>) -> tensor<B x 3 x 8 x 8 x {T}> {\n"
                     "  %y = avg_pool2d(%x) {kernel = [3, 3], stride = [1, 1], padding = [1, 1]}\n  return %y\n}\n"));
  c.push_back(simple("ops/attention_causal", kF32,
                     "func @main(%q: tensor<B x 2 x S x 8 x {T}>, %k: tensor<B x 2 x S x 8 x {T}>, "
                     "%v: tensor<B x 2 x S x 8 x {T}>) -> tensor<B x 2 x S x 8 x {T}> {\n"
                     "  %y = attention(%q, %k, %v) {causal = true}\n  return %y\n}\n", {}, bindBS()));
  // Attention at the head dims the GPU plugins' flash kernels take (64, 128),
  // sequence lengths that are no multiple of their tiles (odd, one past a
  // tile of 128), causal and not, cross attention (Sq != Sk) with a
  // broadcast additive mask, an explicit scale, and Dv != D. bf16/f16
  // inputs are scaled by 1/4: decomposed, the scores are rounded to the
  // dtype before the softmax (at full size that alone exceeds the
  // elementwise tolerance, ~13x for bf16 at D = 64); f32/f64 keep full-size,
  // sharply peaked scores.
  const std::vector<std::map<std::string, int64_t>> attnS = {{{"B", 1}, {"S", 77}}, {{"B", 2}, {"S", 129}}};
  auto narrowScaled = [](ProgramCase pc) {
    pc.narrowScaleLog2 = 2;
    return pc;
  };
  c.push_back(narrowScaled(simple("ops/attention_d64", kFloats,
                     "func @main(%q: tensor<B x 2 x S x 64 x {T}>, %k: tensor<B x 2 x S x 64 x {T}>, "
                     "%v: tensor<B x 2 x S x 64 x {T}>) -> tensor<B x 2 x S x 64 x {T}> {\n"
                     "  %y = attention(%q, %k, %v)\n  return %y\n}\n", {}, attnS)));
  c.push_back(narrowScaled(simple("ops/attention_causal_d128", {"f32", "f16", "bf16"},
                     "func @main(%q: tensor<B x 2 x S x 128 x {T}>, %k: tensor<B x 2 x S x 128 x {T}>, "
                     "%v: tensor<B x 2 x S x 128 x {T}>) -> tensor<B x 2 x S x 128 x {T}> {\n"
                     "  %y = attention(%q, %k, %v) {causal = true}\n  return %y\n}\n",
                     {}, {{{"B", 1}, {"S", 5}}, {{"B", 1}, {"S", 130}}})));
  c.push_back(narrowScaled(simple("ops/attention_cross_mask", {"f32", "f16", "bf16"},
                     "func @main(%q: tensor<B x 2 x S x 64 x {T}>, %k: tensor<B x 2 x T x 64 x {T}>, "
                     "%v: tensor<B x 2 x T x 64 x {T}>, %m: tensor<B x 1 x S x T x {T}>) -> "
                     "tensor<B x 2 x S x 64 x {T}> {\n"
                     "  %y = attention(%q, %k, %v, %m) {causal = true, scale = 0.0625}\n  return %y\n}\n",
                     {}, {{{"B", 2}, {"S", 33}, {"T", 70}}, {{"B", 1}, {"S", 70}, {"T", 33}}})));
  // Compiled at opt level 2 (fusion on), where the fold happens.
  auto fused = [](ProgramCase pc) {
    pc.optLevel = 2;
    return pc;
  };
  // Attention reached through a head split (reshape [B, S, H * D] ->
  // [B, S, H, D], transpose [0, 2, 1, 3]) and merged back: plugins that take
  // attention whole get one kernel reading and writing [B, S, H, D]
  // (layout=bshd, docs/compiler.md); the rest decompose it. Non-causal at
  // head dim 64 (H = 2, width a constant), causal at head dim 128 with the
  // width and heads fixed at compile time (the transformer block's form),
  // and cross attention (Sq != Sk) with a mask broadcast over heads.
  c.push_back(fused(narrowScaled(simple("ops/attention_head_split", kFloats,
                     "func @main(%q: tensor<B x S x 128 x {T}>, %k: tensor<B x S x 128 x {T}>, "
                     "%v: tensor<B x S x 128 x {T}>) -> tensor<B x S x 128 x {T}> {\n"
                     "  %q4 = reshape(%q) : tensor<B x S x 2 x 64 x {T}>\n"
                     "  %k4 = reshape(%k) : tensor<B x S x 2 x 64 x {T}>\n"
                     "  %v4 = reshape(%v) : tensor<B x S x 2 x 64 x {T}>\n"
                     "  %qh = transpose(%q4) {perm = [0, 2, 1, 3]}\n"
                     "  %kh = transpose(%k4) {perm = [0, 2, 1, 3]}\n"
                     "  %vh = transpose(%v4) {perm = [0, 2, 1, 3]}\n"
                     "  %a = attention(%qh, %kh, %vh)\n"
                     "  %at = transpose(%a) {perm = [0, 2, 1, 3]}\n"
                     "  %y = reshape(%at) : tensor<B x S x 128 x {T}>\n  return %y\n}\n",
                     {}, attnS))));
  c.push_back(fused(narrowScaled(simple("ops/attention_head_split_causal", {"f32", "f16", "bf16"},
                     "func @main(%q: tensor<B x S x D x {T}>, %k: tensor<B x S x D x {T}>, "
                     "%v: tensor<B x S x D x {T}>) -> tensor<B x S x D x {T}> {\n"
                     "  %q4 = reshape(%q) : tensor<B x S x H x D/H x {T}>\n"
                     "  %k4 = reshape(%k) : tensor<B x S x H x D/H x {T}>\n"
                     "  %v4 = reshape(%v) : tensor<B x S x H x D/H x {T}>\n"
                     "  %qh = transpose(%q4) {perm = [0, 2, 1, 3]}\n"
                     "  %kh = transpose(%k4) {perm = [0, 2, 1, 3]}\n"
                     "  %vh = transpose(%v4) {perm = [0, 2, 1, 3]}\n"
                     "  %a = attention(%qh, %kh, %vh) {causal = true}\n"
                     "  %at = transpose(%a) {perm = [0, 2, 1, 3]}\n"
                     "  %y = reshape(%at) : tensor<B x S x D x {T}>\n  return %y\n}\n",
                     {}, {{{"B", 1}, {"S", 5}}, {{"B", 2}, {"S", 130}}}, 0, "D=256,H=2"))));
  c.push_back(fused(narrowScaled(simple("ops/attention_head_split_cross_mask", {"f32", "bf16"},
                     "func @main(%q: tensor<B x S x 2 x 64 x {T}>, %k: tensor<B x T x 128 x {T}>, "
                     "%v: tensor<B x T x 128 x {T}>, %m: tensor<B x 1 x S x T x {T}>) -> "
                     "tensor<B x S x 2 x 64 x {T}> {\n"
                     "  %k4 = reshape(%k) : tensor<B x T x 2 x 64 x {T}>\n"
                     "  %v4 = reshape(%v) : tensor<B x T x 2 x 64 x {T}>\n"
                     "  %qh = transpose(%q) {perm = [0, 2, 1, 3]}\n"
                     "  %kh = transpose(%k4) {perm = [0, 2, 1, 3]}\n"
                     "  %vh = transpose(%v4) {perm = [0, 2, 1, 3]}\n"
                     "  %a = attention(%qh, %kh, %vh, %m) {scale = 0.0625}\n"
                     "  %y = transpose(%a) {perm = [0, 2, 1, 3]}\n  return %y\n}\n",
                     {}, {{{"B", 2}, {"S", 33}, {"T", 70}}, {{"B", 1}, {"S", 130}, {"T", 17}}}))));
  c.push_back(narrowScaled(simple("ops/attention_dv", {"f32", "bf16"},
                     "func @main(%q: tensor<B x S x 32 x {T}>, %k: tensor<B x S x 32 x {T}>, "
                     "%v: tensor<B x S x 16 x {T}>) -> tensor<B x S x 16 x {T}> {\n"
                     "  %y = attention(%q, %k, %v)\n  return %y\n}\n", {}, bindBS())));

  // Fused patterns.
  c.push_back(simple("patterns/elementwise_chain", kFloats,
                     "func @main(%x: tensor<B x 33 x {T}>, %y: tensor<33 x {T}>) -> tensor<B x 33 x {T}> {\n"
                     "  %a = mul(%x, %y)\n  %b = add(%a, %x)\n  %c = tanh(%b)\n  %d = sub(%c, %y)\n"
                     "  %e = relu(%d)\n  return %e\n}\n"));
  c.push_back(simple("patterns/matmul_bias_gelu_residual", {"f32", "bf16"},
                     "func @main(%x: tensor<B x 32 x {T}>, %w: tensor<32 x 32 x {T}>, %b: tensor<32 x {T}>) -> "
                     "tensor<B x 32 x {T}> {\n  %m = matmul(%x, %w)\n  %a = add(%m, %b)\n  %g = gelu(%a)\n"
                     "  %r = add(%g, %x)\n  return %r\n}\n"));
  c.push_back(simple("patterns/mlp", kF32,
                     "func @main(%x: tensor<B x 64 x {T}>, %w1: tensor<64 x 48 x {T}>, %b1: tensor<48 x {T}>, "
                     "%w2: tensor<48 x 10 x {T}>) -> tensor<B x 10 x {T}> {\n  %h = matmul(%x, %w1)\n"
                     "  %a = add(%h, %b1)\n  %r = relu(%a)\n  %o = matmul(%r, %w2)\n  %p = softmax(%o)\n"
                     "  return %p\n}\n"));
  c.push_back(simple("patterns/norm_then_reduce", kF32,
                     "func @main(%x: tensor<B x S x {T}>) -> tensor<B x {T}> {\n  %n = softmax(%x)\n"
                     "  %e = exp(%n)\n  %s = reduce_sum(%e) {axes = [1]}\n  return %s\n}\n", {}, bindBS()));
  return c;
}

} // namespace tessera::conformance
