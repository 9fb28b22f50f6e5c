// Schedule IR kernels shared by the backend tests and benchmarks, so each
// canonical kernel is written once.
#ifndef TESSERA_TESTS_COMMON_SIRKERNELS_H
#define TESSERA_TESTS_COMMON_SIRKERNELS_H

#include <string>

namespace tessera::testing {

// Numerically safe softmax over the last axis of a [s0, s1] operand, as
// fusion lowers it: max, sum of exp(x - max), then exp(x - max) / sum.
// `dtype` is the storage dtype; `knobs` an optional knobs line ("vector=8").
inline std::string softmaxKernel(const std::string &dtype, const std::string &knobs = "") {
  return "kernel \"softmax\" loop {\n"
         "  operand 0 in " + dtype + " [s0, s1]\n"
         "  operand 1 out " + dtype + " [s0, s1]\n"
         "  parallel [s0]\n" +
         (knobs.empty() ? std::string() : "  knobs " + knobs + "\n") +
         "  stage reduce [s1] {\n"
         "    v0: f32 = load 0 [p0, r0]\n"
         "    v1: f32 = reduce max v0\n"
         "  }\n"
         "  stage reduce [s1] {\n"
         "    v2: f32 = load 0 [p0, r0]\n"
         "    v3: f32 = sub v2 v1\n"
         "    v4: f32 = exp v3\n"
         "    v5: f32 = reduce sum v4\n"
         "  }\n"
         "  stage map [s1] {\n"
         "    v6: f32 = load 0 [p0, r0]\n"
         "    v7: f32 = sub v6 v1\n"
         "    v8: f32 = exp v7\n"
         "    v9: f32 = div v8 v5\n"
         "    store 1 [p0, r0] v9\n"
         "  }\n"
         "}\n";
}

// C = A B over bf16 A [s0, s2] and B [s2, s1] into C [s0, s1], as fusion
// lowers a matmul (its knobs line plus `knobs`, e.g. " library=\"generic\"");
// `gelu` fuses an erf GELU into the epilogue.
inline std::string matmulKernel(const std::string &name, const std::string &knobs = "", bool gelu = false) {
  return "kernel \"" + name + "\" matmul {\n"
         "  operand 0 in bf16 [s0, s2]\n"
         "  operand 1 in bf16 [s2, s1]\n"
         "  operand 2 out bf16 [s0, s1]\n"
         "  parallel [s0, s1]\n"
         "  knobs tile=[64, 64] tile_k=256 vector=8" + knobs + "\n"
         "  stage reduce [s2] {\n"
         "    v0: f32 = load 0 [p0, r0]\n"
         "    v1: f32 = load 1 [r0, p1]\n"
         "    v2: f32 = mul v0 v1\n"
         "    v3: f32 = reduce sum v2\n"
         "  }\n"
         "  stage map [] {\n" +
         std::string(gelu ? "    v4: f32 = gelu_erf v3\n    store 2 [p0, p1] v4\n" : "    store 2 [p0, p1] v3\n") +
         "  }\n"
         "}\n";
}

// Layer norm over the last axis of a [s0, s1] operand with gain and bias
// [s1] (epsilon 1e-5), as fusion lowers it: mean, variance, then
// (x - mean) * rsqrt(var + eps) * gain + bias. Operands 0-2 in, 3 out.
inline std::string layerNormKernel(const std::string &name, const std::string &dtype,
                                   const std::string &knobs = "") {
  return "kernel \"" + name + "\" loop {\n"
         "  operand 0 in " + dtype + " [s0, s1]\n"
         "  operand 1 in " + dtype + " [s1]\n"
         "  operand 2 in " + dtype + " [s1]\n"
         "  operand 3 out " + dtype + " [s0, s1]\n"
         "  parallel [s0]\n" +
         (knobs.empty() ? std::string() : "  knobs " + knobs + "\n") +
         "  stage reduce [s1] {\n"
         "    v0: f32 = load 0 [p0, r0]\n"
         "    v1: f32 = reduce sum v0\n"
         "  }\n"
         "  stage reduce [s1] {\n"
         "    v2: f32 = load 0 [p0, r0]\n"
         "    v3: f32 = index s1\n"
         "    v4: f32 = div v1 v3\n"
         "    v5: f32 = sub v2 v4\n"
         "    v6: f32 = mul v5 v5\n"
         "    v7: f32 = reduce sum v6\n"
         "  }\n"
         "  stage map [s1] {\n"
         "    v8: f32 = load 0 [p0, r0]\n"
         "    v9: f32 = index s1\n"
         "    v10: f32 = div v1 v9\n"
         "    v11: f32 = sub v8 v10\n"
         "    v12: f32 = div v7 v9\n"
         "    v13: f32 = const 1e-5\n"
         "    v14: f32 = add v12 v13\n"
         "    v15: f32 = rsqrt v14\n"
         "    v16: f32 = mul v11 v15\n"
         "    v17: f32 = load 1 [r0]\n"
         "    v18: f32 = mul v16 v17\n"
         "    v19: f32 = load 2 [r0]\n"
         "    v20: f32 = add v18 v19\n"
         "    store 3 [p0, r0] v20\n"
         "  }\n"
         "}\n";
}

} // namespace tessera::testing

#endif // TESSERA_TESTS_COMMON_SIRKERNELS_H
