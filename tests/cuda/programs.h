// Hand-written Schedule IR programs that together use every construct the
// CUDA generator handles: each op and dtype, casts (saturating, fp8, ints,
// bool), masks, gathers (value-indexed loads), floored index arithmetic,
// min/max/comparisons in indices, every reduce kind, multi-stage row
// kernels, symbolic shapes, and matmul kernels for the tensor-core path.
#ifndef TESSERA_TESTS_CUDA_PROGRAMS_H
#define TESSERA_TESTS_CUDA_PROGRAMS_H

#include "SirKernels.h"

#include <string>
#include <utility>
#include <vector>

namespace tessera::cuda::test {

inline std::vector<std::pair<std::string, std::string>> programs() {
  std::vector<std::pair<std::string, std::string>> p;
  // Every unary op on f32 and f64, one map stage (the flat path).
  std::string unary;
  const char *ops[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu_erf",
                       "gelu_tanh", "silu", "erf", "sin", "cos", "floor", "ceil", "sign", "reciprocal"};
  for (const char *dt : {"f32", "f64"}) {
    std::string k = "kernel \"unary_" + std::string(dt) + "\" loop {\n  operand 0 in " + dt + " [s0, 7]\n  operand 1 out " +
                    dt + " [s0, 7]\n  parallel [s0]\n  knobs vector=8\n  stage map [7] {\n    v0: " + dt +
                    " = load 0 [p0, r0]\n";
    int v = 1;
    for (const char *op : ops) {
      k += "    v" + std::to_string(v) + ": " + dt + " = " + op + " v" + std::to_string(v - 1) + "\n";
      ++v;
    }
    k += "    store 1 [p0, r0] v" + std::to_string(v - 1) + "\n  }\n}\n";
    unary += k;
  }
  p.push_back({"unary", "tessera-schedule v1\nsymbols B\n" + unary});

  // Binary ops on floats, ints and bools; comparisons and logic; select.
  p.push_back({"binary", R"(tessera-schedule v1
symbols B
kernel "float_binary" loop {
  operand 0 in f32 [s0, 5]
  operand 1 in f32 [5]
  operand 2 out f32 [s0, 5]
  parallel [s0]
  stage map [5] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [r0]
    v2: f32 = add v0 v1
    v3: f32 = sub v2 v1
    v4: f32 = mul v3 v0
    v5: f32 = div v4 v1
    v6: f32 = pow v5 v1
    v7: f32 = max v6 v0
    v8: f32 = min v7 v1
    v9: f32 = mod v8 v1
    v10: bool = lt v9 v0
    v11: bool = ge v9 v1
    v12: bool = and v10 v11
    v13: bool = or v12 v10
    v14: bool = xor v13 v11
    v15: bool = not v14
    v16: bool = eq v0 v1
    v17: bool = ne v0 v1
    v18: bool = gt v0 v1
    v19: bool = le v0 v1
    v20: f32 = select v15 v9 v0
    v21: f32 = select v16 v20 v1
    store 2 [p0, r0] v21
  }
}
kernel "int_binary" loop {
  operand 0 in i32 [s0, 6]
  operand 1 in i32 [6]
  operand 2 out i32 [s0, 6]
  operand 3 out i64 [s0, 6]
  operand 4 out i16 [s0, 6]
  operand 5 out i8 [s0, 6]
  operand 6 out u8 [s0, 6]
  parallel [s0]
  stage map [6] {
    v0: i32 = load 0 [p0, r0]
    v1: i32 = load 1 [r0]
    v2: i32 = add v0 v1
    v3: i32 = mul v2 v1
    v4: i32 = sub v3 v0
    v5: i32 = max v4 v1
    v6: i32 = min v5 v3
    v7: i32 = div v6 v1
    v8: i32 = mod v7 v1
    v9: i32 = neg v8
    v10: i32 = abs v9
    v11: i32 = and v10 v1
    v12: i32 = or v11 v0
    v13: i32 = xor v12 v1
    v14: i32 = pow v13 v1
    v15: i32 = sign v14
    v16: i32 = relu v15
    v17: i32 = exp v16
    v18: bool = lt v17 v0
    v19: i32 = select v18 v17 v13
    v20: i64 = cast v19
    v21: i16 = cast v20
    v22: i8 = cast v21
    v23: u8 = cast v22
    store 2 [p0, r0] v19
    store 3 [p0, r0] v20
    store 4 [p0, r0] v21
    store 5 [p0, r0] v22
    store 6 [p0, r0] v23
  }
}
kernel "bool_logic" loop {
  operand 0 in bool [s0, 4]
  operand 1 in bool [4]
  operand 2 out bool [s0, 4]
  parallel [s0]
  stage map [4] {
    v0: bool = load 0 [p0, r0]
    v1: bool = load 1 [r0]
    v2: bool = and v0 v1
    v3: bool = or v2 v0
    v4: bool = xor v3 v1
    v5: bool = not v4
    store 2 [p0, r0] v5
  }
}
)"});

  // Narrow floats: loads widen, casts round (saturating too), stores narrow.
  p.push_back({"dtypes", R"(tessera-schedule v1
symbols B
kernel "narrow" loop {
  operand 0 in bf16 [s0, 5]
  operand 1 in f16 [s0, 5]
  operand 2 in f8e4m3 [s0, 5]
  operand 3 in f8e5m2 [s0, 5]
  operand 4 out bf16 [s0, 5]
  operand 5 out f16 [s0, 5]
  operand 6 out f8e4m3 [s0, 5]
  operand 7 out f8e5m2 [s0, 5]
  operand 8 out f64 [s0, 5]
  operand 9 out i32 [s0, 5]
  operand 10 out bool [s0, 5]
  parallel [s0]
  stage map [5] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [p0, r0]
    v2: f32 = load 2 [p0, r0]
    v3: f32 = load 3 [p0, r0]
    v4: f32 = add v0 v1
    v5: f32 = mul v4 v2
    v6: f32 = sub v5 v3
    v7: bf16 = cast v6 saturate
    v8: f32 = cast v7
    v9: f16 = cast v6 saturate
    v10: f8e4m3 = cast v6 saturate
    v11: f8e5m2 = cast v6
    v12: f64 = cast v6
    v13: i32 = cast v6
    v14: bool = cast v6
    v15: f16 = cast v13
    v16: f64 = const 1e300
    v17: f32 = const inf
    v18: f32 = const -inf
    v19: f32 = const nan
    v20: i32 = const 42
    v21: bool = const 1
    v22: bf16 = const 0.1
    v23: f64 = add v12 v16
    store 4 [p0, r0] v8
    store 5 [p0, r0] v9
    store 6 [p0, r0] v10
    store 7 [p0, r0] v11
    store 8 [p0, r0] v23
    store 9 [p0, r0] v13
    store 10 [p0, r0] v14
  }
}
)"});

  // Index arithmetic: floored div/mod, min/max, masks, gathers through a
  // loaded value, index as a value.
  p.push_back({"indexing", R"(tessera-schedule v1
symbols B N
kernel "pad_concat" loop {
  operand 0 in f32 [s0, s1]
  operand 1 in i32 [5]
  operand 2 out f32 [s0, (s1 + 3)]
  operand 3 out f32 [s0, 5]
  operand 4 out i64 [s0, (s1 + 3)]
  parallel [s0]
  stage map [(s1 + 3)] {
    v0: f32 = load 0 [p0, (r0 - 1)] if ((r0 >= 1) && (r0 < (s1 + 1))) else -1.5
    v1: f32 = load 0 [p0, min(max((r0 - 2), 0), (s1 - 1))]
    v2: f32 = add v0 v1
    v3: i64 = index ((r0 // 2) * 2 + (r0 % 2) + (p0 * 0))
    v4: i64 = index (((0 - 7) // 2) + ((0 - 7) % 3))
    v5: i64 = add v3 v4
    store 2 [p0, r0] v2
    store 4 [p0, r0] v5
  }
}
kernel "gather" loop {
  operand 0 in f32 [s0, s1]
  operand 1 in i32 [5]
  operand 2 out f32 [s0, 5]
  parallel [s0, 5]
  stage map [] {
    v0: i32 = load 1 [p1]
    v1: f32 = load 0 [p0, min(max((v0 + (s1 * (v0 < 0))), 0), (s1 - 1))]
    store 2 [p0, p1] v1
  }
}
)"});

  // Every reduce kind, a two-pass layer norm and a softmax (row kernels),
  // an argmax, a reduce whose extent depends on a parallel loop.
  p.push_back({"reductions", R"(tessera-schedule v1
symbols B S
)" + tessera::testing::softmaxKernel("bf16", "vector=8") + R"(kernel "layer_norm" loop {
  operand 0 in f32 [s0, 16]
  operand 1 in f32 [16]
  operand 2 in f32 [16]
  operand 3 out f32 [s0, 16]
  parallel [s0]
  stage reduce [16] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = reduce sum v0
  }
  stage reduce [16] {
    v2: f32 = load 0 [p0, r0]
    v3: f32 = const 16
    v4: f32 = div v1 v3
    v5: f32 = sub v2 v4
    v6: f32 = mul v5 v5
    v7: f32 = reduce sum v6
  }
  stage map [16] {
    v8: f32 = load 0 [p0, r0]
    v9: f32 = const 16
    v10: f32 = div v1 v9
    v11: f32 = sub v8 v10
    v12: f32 = div v7 v9
    v13: f32 = const 1e-05
    v14: f32 = add v12 v13
    v15: f32 = rsqrt v14
    v16: f32 = mul v11 v15
    v17: f32 = load 1 [r0]
    v18: f32 = mul v16 v17
    v19: f32 = load 2 [r0]
    v20: f32 = add v18 v19
    store 3 [p0, r0] v20
  }
}
kernel "all_kinds" loop {
  operand 0 in f32 [s0, 6, 5]
  operand 1 in i32 [s0, 6]
  operand 2 out f32 [s0, 5]
  operand 3 out i64 [s0]
  operand 4 out i32 [s0]
  parallel [s0]
  stage reduce [6, 5] {
    v0: f32 = load 0 [p0, r0, r1]
    v1: f32 = reduce sum v0
    v2: f32 = reduce prod v0
    v3: f32 = reduce max v0
    v4: f32 = reduce min v0
    v5: i64 = reduce argmax v0
    v6: i64 = reduce argmin v0
  }
  stage reduce [6] {
    v7: i32 = load 1 [p0, r0]
    v8: i32 = reduce max v7
    v9: i32 = reduce sum v7
    v10: i64 = reduce argmin v7
  }
  stage map [5] {
    v11: f32 = add v1 v2
    v12: f32 = sub v3 v4
    v13: f32 = add v11 v12
    store 2 [p0, r0] v13
  }
  stage map [] {
    v14: i64 = add v5 v6
    v15: i64 = add v14 v10
    v16: i32 = add v8 v9
    store 3 [p0] v15
    store 4 [p0] v16
  }
}
kernel "triangular" loop {
  operand 0 in f64 [s0, s0]
  operand 1 out f64 [s0]
  parallel [s0]
  stage reduce [(p0 + 1)] {
    v0: f64 = load 0 [p0, r0]
    v1: f64 = reduce sum v0
  }
  stage map [] {
    store 1 [p0] v1
  }
}
)"});

  // Matmul kernels: bf16 and f16 (tensor cores), f32 with and without the
  // tf32 opt-in, a batched one with a transposed B, epilogues fused.
  auto mm = [](const std::string &name, const std::string &dt, const std::string &knobs, bool transB) {
    std::string b = transB ? "operand 1 in " + dt + " [s0, 24]\n" : "operand 1 in " + dt + " [24, s0]\n";
    std::string bIdx = transB ? "[p2, r0]" : "[r0, p2]";
    return "kernel \"" + name + "\" matmul {\n  operand 0 in " + dt + " [3, 13, 24]\n  " + b + "  operand 2 in " + dt +
           " [s0]\n  operand 3 out " + dt + " [3, 13, s0]\n  parallel [3, 13, s0]\n  knobs tile=[1, 64, 64] tile_k=256" +
           knobs + "\n  stage reduce [24] {\n    v0: f32 = load 0 [p0, p1, r0]\n    v1: f32 = load 1 " + bIdx +
           "\n    v2: f32 = mul v0 v1\n    v3: f32 = reduce sum v2\n  }\n  stage map [] {\n    v4: f32 = load 2 [p2]\n"
           "    v5: f32 = add v3 v4\n    v6: f32 = gelu_tanh v5\n    store 3 [p0, p1, p2] v6\n  }\n}\n";
  };
  p.push_back({"matmul", "tessera-schedule v1\nsymbols N\n" + mm("mm_bf16", "bf16", "", false) +
                             mm("mm_f16_bt", "f16", "", true) + mm("mm_tf32", "f32", " tf32=1", false) +
                             mm("mm_f32", "f32", "", false)});

  // GEMM paths (GemmKernel.h, CublasLt.h): a plain bf16 store (16-byte
  // epilogue; cuBLASLt direct), batched q k^T * scale (B [n][k]; alpha),
  // a residual add (cuBLASLt's C), a transposed A (the mma.sync fallback),
  // and an exact f32 matmul (cuBLASLt only).
  p.push_back({"gemm_paths", R"(tessera-schedule v1
symbols M N K
kernel "plain_bf16" matmul {
  operand 0 in bf16 [s0, s2]
  operand 1 in bf16 [s2, s1]
  operand 2 out bf16 [s0, s1]
  parallel [s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [r0, p1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    store 2 [p0, p1] v3
  }
}
kernel "scores_f16" matmul {
  operand 0 in f16 [4, s0, s2]
  operand 1 in f16 [4, s1, s2]
  operand 2 out f16 [4, s0, s1]
  parallel [4, s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [p0, p1, r0]
    v1: f32 = load 1 [p0, p2, r0]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = const 0.125
    v5: f32 = mul v3 v4
    store 2 [p0, p1, p2] v5
  }
}
kernel "residual_bf16" matmul {
  operand 0 in bf16 [2, s0, s2]
  operand 1 in bf16 [s2, s1]
  operand 2 in bf16 [2, s0, s1]
  operand 3 out bf16 [2, s0, s1]
  parallel [2, s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [p0, p1, r0]
    v1: f32 = load 1 [r0, p2]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = load 2 [p0, p1, p2]
    v5: f32 = add v4 v3
    store 3 [p0, p1, p2] v5
  }
}
kernel "a_transposed" matmul {
  operand 0 in bf16 [s2, s0]
  operand 1 in bf16 [s2, s1]
  operand 2 out bf16 [s0, s1]
  parallel [s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [r0, p0]
    v1: f32 = load 1 [r0, p1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = relu v3
    store 2 [p0, p1] v4
  }
}
kernel "exact_f32" matmul {
  operand 0 in f32 [s0, s2]
  operand 1 in f32 [s2, s1]
  operand 2 out f32 [s0, s1]
  parallel [s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [r0, p1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    store 2 [p0, p1] v3
  }
}
)"});

  // Attention kernels (kind `attention`): the flash path (bf16 D=128 causal,
  // f16 D=64 with a broadcast mask) and the generic one (f32 with Dv != D,
  // f64, bf16 with a symbolic head dim).
  p.push_back({"attention", R"(tessera-schedule v1
symbols B S T D
kernel "flash_bf16_causal" attention {
  operand 0 in bf16 [s0, 16, s1, 128]
  operand 1 in bf16 [s0, 16, s1, 128]
  operand 2 in bf16 [s0, 16, s1, 128]
  operand 3 out bf16 [s0, 16, s1, 128]
  parallel [s0, 16, s1, 128]
  attention scale=0.088388347648318447 causal=1
}
kernel "flash_f16_mask" attention {
  operand 0 in f16 [s0, 2, s1, 64]
  operand 1 in f16 [s0, 2, s2, 64]
  operand 2 in f16 [s0, 2, s2, 64]
  operand 3 in f16 [s0, 1, s1, s2]
  operand 4 out f16 [s0, 2, s1, 64]
  parallel [s0, 2, s1, 64]
  attention scale=0.125 causal=0
}
kernel "generic_f32_dv" attention {
  operand 0 in f32 [s0, s1, 32]
  operand 1 in f32 [s0, s2, 32]
  operand 2 in f32 [s0, s2, 16]
  operand 3 in f32 [s1, s2]
  operand 4 out f32 [s0, s1, 16]
  parallel [s0, s1, 16]
  attention scale=0.17677669529663687 causal=1
}
kernel "generic_f64" attention {
  operand 0 in f64 [s1, 8]
  operand 1 in f64 [s2, 8]
  operand 2 in f64 [s2, 8]
  operand 3 out f64 [s1, 8]
  parallel [s1, 8]
  attention scale=0.35355339059327379 causal=0
}
kernel "generic_bf16_symbolic_d" attention {
  operand 0 in bf16 [s0, s1, s3]
  operand 1 in bf16 [s0, s1, s3]
  operand 2 in bf16 [s0, s1, s3]
  operand 3 out bf16 [s0, s1, s3]
  parallel [s0, s1, s3]
  attention scale=0.5 causal=1
}
)"});

  // Attention with layout=bshd (q, k, v, out stored [B, S, H, D], what
  // fusion emits for a head split + merge around attention): the flash path
  // (bf16 D=128 causal; f16 D=64 cross attention with a broadcast mask) and
  // the generic one (f32, rank 3 [S, H, D]).
  p.push_back({"attention_bshd", R"(tessera-schedule v1
symbols B S T
kernel "flash_bf16_causal_bshd" attention {
  operand 0 in bf16 [s0, s1, 8, 128]
  operand 1 in bf16 [s0, s1, 8, 128]
  operand 2 in bf16 [s0, s1, 8, 128]
  operand 3 out bf16 [s0, s1, 8, 128]
  parallel [s0, s1, 8, 128]
  attention scale=0.088388347648318447 causal=1 layout=bshd
}
kernel "flash_f16_mask_bshd" attention {
  operand 0 in f16 [s0, s1, 2, 64]
  operand 1 in f16 [s0, s2, 2, 64]
  operand 2 in f16 [s0, s2, 2, 64]
  operand 3 in f16 [s0, 1, s1, s2]
  operand 4 out f16 [s0, s1, 2, 64]
  parallel [s0, s1, 2, 64]
  attention scale=0.125 causal=0 layout=bshd
}
kernel "generic_f32_bshd" attention {
  operand 0 in f32 [s1, 4, 32]
  operand 1 in f32 [s2, 4, 32]
  operand 2 in f32 [s2, 4, 16]
  operand 3 out f32 [s1, 4, 16]
  parallel [s1, 4, 16]
  attention scale=0.17677669529663687 causal=1 layout=bshd
}
)"});
  return p;
}

} // namespace tessera::cuda::test

#endif // TESSERA_TESTS_CUDA_PROGRAMS_H
