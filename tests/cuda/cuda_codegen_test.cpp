// The CUDA backend without a GPU: Schedule IR -> CUDA C++ for every construct
// (tests/cuda/programs.h), compiled by NVRTC for sm_80 and sm_90a, the PTX
// assembled again by ptxas (resource usage checked), launch planning, the
// cost model, and the plugin through its ABI (dlopen): "no device" status,
// compile-only for a named architecture, serialization and its validation,
// error paths. NVRTC/ptxas absent: the tests that need them skip and say why.
#include "CostModel.h"
#include "CudaCodegen.h"
#include "Nvrtc.h"
#include "SirKernels.h"
#include "programs.h"

#include "tessera/sdk/backend_sdk.h"
#include "tessera/sdk/schedule_ir.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <unistd.h>

struct tessera_status_t {
  tessera_status_code_t code;
  std::string message;
};

namespace {

namespace sir = tessera::schedule;
using namespace tessera::cuda;

sir::Program parse(const std::string &text) {
  sir::Program p;
  sir::ParseError e;
  EXPECT_TRUE(sir::parseProgram(text, &p, &e)) << e.str();
  return p;
}

GeneratedProgram gen(const sir::Program &p, int sm = 90, bool a = true) {
  GeneratedProgram g;
  std::string error;
  CodegenOptions o;
  o.smVersion = sm;
  o.archSpecific = a;
  EXPECT_TRUE(generateProgram(p, o, &g, &error)) << error;
  return g;
}

const KernelPlan *planNamed(const GeneratedProgram &g, const std::string &name) {
  for (const KernelPlan &k : g.kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

size_t kernelIndex(const sir::Program &p, const std::string &name) {
  for (size_t i = 0; i < p.kernels.size(); ++i)
    if (p.kernels[i].name == name)
      return i;
  return SIZE_MAX;
}

#define REQUIRE_NVRTC()                                                                                      \
  do {                                                                                                       \
    std::string why;                                                                                         \
    if (!nvrtcAvailable(&why))                                                                               \
      GTEST_SKIP() << "NVRTC unavailable here: " << why;                                                     \
  } while (0)

std::string run(const std::string &cmd, int *rc) {
  std::string out;
  FILE *f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    out.append(buf, n);
  *rc = pclose(f);
  return out;
}

// ---- generated code compiles for both targets, and ptxas accepts the PTX ------------

// ptxas (where the toolkit has one) assembles the PTX again: no kernel
// spills registers to local memory, and no wgmma pipeline is serialized
// (C7514/C7520 "Potential Performance Loss").
void expectPtxasClean(const std::string &ptx, const std::string &arch) {
#ifdef TESSERA_TEST_PTXAS
  char tmpl[] = "/tmp/tessera-cuda-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, ptxFile = dir + "/k.ptx";
  std::ofstream(ptxFile) << ptx;
  int rc = 0;
  std::string out =
      ::run(std::string(TESSERA_TEST_PTXAS) + " -arch=" + arch + " -v -o " + dir + "/k.cubin " + ptxFile, &rc);
  EXPECT_EQ(rc, 0) << out;
  if (std::getenv("TESSERA_PTXAS_INFO")) // registers and spills per function
    std::printf("ptxas %s:\n%s\n", arch.c_str(), out.c_str());
  EXPECT_EQ(out.find("wgmma.mma_async instructions are serialized"), std::string::npos) << out;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (line.find("spill stores") != std::string::npos) {
      EXPECT_NE(line.find(" 0 bytes spill stores"), std::string::npos) << line;
    }
  std::remove((dir + "/k.cubin").c_str());
  std::remove(ptxFile.c_str());
  rmdir(dir.c_str());
#else
  (void)ptx;
  (void)arch;
#endif
}

class CompileAll : public ::testing::TestWithParam<std::string> {};

TEST_P(CompileAll, NvrtcAndPtxas) {
  REQUIRE_NVRTC();
  for (const auto &[name, text] : tessera::cuda::test::programs()) {
    SCOPED_TRACE(name);
    sir::Program p = parse(text);
    int sm = 0;
    bool a = false;
    ASSERT_TRUE(parseArchitecture(GetParam(), &sm, &a));
    GeneratedProgram g = gen(p, sm, a);
    NvrtcResult r = nvrtcCompile(g.source, name + ".cu", GetParam(), true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message << "\n" << g.source;
    EXPECT_GT(r.cubin.size(), 100u);
    // ELF magic: NVRTC produced machine code, not PTX for the JIT.
    ASSERT_GE(r.cubin.size(), 4u);
    EXPECT_EQ(std::memcmp(r.cubin.data(), "\x7f" "ELF", 4), 0);
    ASSERT_FALSE(r.ptx.empty());
    // Every function of every kernel is in the PTX.
    for (const KernelPlan &k : g.kernels) {
      EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::Thread)), std::string::npos) << k.name;
      if (k.block) {
        EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::Block)), std::string::npos) << k.name;
      }
      if (k.flat) {
        EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::Flat)), std::string::npos) << k.name;
      }
      if (k.gemm.usable) {
        EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::Gemm)), std::string::npos) << k.name;
      }
    }
    expectPtxasClean(r.ptx, GetParam());
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, CompileAll, ::testing::Values("sm_80", "sm_90a"));

TEST(CudaCodegen, TensorCoreAndShuffleInstructionsArePresent) {
  REQUIRE_NVRTC();
  auto programs = tessera::cuda::test::programs();
  std::string mmText, redText;
  for (auto &[name, text] : programs) {
    if (name == "matmul")
      mmText = text;
    if (name == "reductions")
      redText = text;
  }
  GeneratedProgram g = gen(parse(mmText));
  NvrtcResult r = nvrtcCompile(g.source, "mm.cu", "sm_90a", true);
  ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
  EXPECT_NE(r.ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), std::string::npos);
  EXPECT_NE(r.ptx.find("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"), std::string::npos);
  EXPECT_NE(r.ptx.find("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"), std::string::npos);
  GeneratedProgram g2 = gen(parse(redText));
  NvrtcResult r2 = nvrtcCompile(g2.source, "red.cu", "sm_80", true);
  ASSERT_EQ(r2.kind, NvrtcResult::Kind::Ok) << r2.message;
  EXPECT_NE(r2.ptx.find("shfl.sync.bfly"), std::string::npos);
}

// Attention kernels: the flash path exists for bf16/f16 with D = Dv in
// {64, 128} and uses mma.sync, ldmatrix (.trans for V), cp.async and ex2 with
// nothing in local memory; the generic path covers the rest. Launch planning
// gives one block per 128 query rows of each batch point with the pipeline's
// dynamic shared memory, and the mask's broadcast strides.
TEST(CudaCodegen, AttentionKernelsTakeTheFlashPathWhereTheyCan) {
  REQUIRE_NVRTC();
  std::string text;
  for (auto &[name, t] : tessera::cuda::test::programs())
    if (name == "attention")
      text = t;
  sir::Program p = parse(text);
  GeneratedProgram g = gen(p);
  ASSERT_EQ(g.kernels.size(), 5u);
  EXPECT_TRUE(g.kernels[0].gemm.usable);
  EXPECT_TRUE(g.kernels[1].gemm.usable);
  EXPECT_FALSE(g.kernels[2].gemm.usable);
  EXPECT_NE(g.kernels[2].gemm.why.find("bf16/f16"), std::string::npos) << g.kernels[2].gemm.why;
  EXPECT_FALSE(g.kernels[3].gemm.usable);
  EXPECT_FALSE(g.kernels[4].gemm.usable);
  EXPECT_NE(g.kernels[4].gemm.why.find("static head dims"), std::string::npos) << g.kernels[4].gemm.why;
  // sm_80, and sm_90a with knob impl="mma": mma.sync fed by ldmatrix;
  // sm_90a otherwise: wgmma.mma_async for both products (Q and P from
  // registers, K and V through descriptors), in every variant of knob impl
  // and the default. ptxas must neither spill nor serialize the wgmma
  // pipelines.
  // wgmma2x with its geometry knobs (keys, kv_stages, rescale) and the
  // causal block orders (order, section) too.
  auto withKnob = [&](const std::string &knobs) {
    std::string t = text;
    if (knobs.empty())
      return t;
    for (size_t at = t.find("  attention scale"); at != std::string::npos; at = t.find("  attention scale", at + 40))
      t.insert(t.find('\n', at) + 1, "  knobs " + knobs + "\n");
    return t;
  };
  struct Variant {
    const char *arch, *impl;
    bool wgmma;
    int qkN = 64; // n of the Q K wgmma at D = 128
  };
  for (Variant var : {Variant{"sm_80", "", false}, Variant{"sm_90a", "impl=\"mma\"", false},
                      Variant{"sm_90a", "impl=\"wgmma2\"", true}, Variant{"sm_90a", "impl=\"wgmma3\"", true},
                      Variant{"sm_90a", "", true, 128}, Variant{"sm_90a", "impl=\"wgmma2x\"", true, 128},
                      Variant{"sm_90a", "impl=\"wgmma2x\" rescale=\"always\" order=\"heads\"", true, 128},
                      Variant{"sm_90a", "impl=\"wgmma2x\" q=\"regs\"", true, 128},
                      Variant{"sm_90a", "impl=\"wgmma2x\" keys=64 q=\"smem\"", true, 64},
                      Variant{"sm_90a", "impl=\"wgmma2x\" keys=64", true, 64},
                      Variant{"sm_90a", "impl=\"wgmma2x\" keys=64 kv_stages=3 section=4", true, 64},
                      Variant{"sm_80", "impl=\"wgmma2x\"", false}}) {
    SCOPED_TRACE(std::string(var.arch) + " " + var.impl);
    int sm = 0;
    bool a = false;
    ASSERT_TRUE(parseArchitecture(var.arch, &sm, &a));
    GeneratedProgram vg = gen(parse(withKnob(var.impl)), sm, a);
    NvrtcResult r = nvrtcCompile(vg.source, "attention.cu", var.arch, true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
    for (size_t i = 0; i < 2; ++i) {
      std::string fn = vg.kernels[i].function(LaunchMode::Gemm);
      size_t b = r.ptx.find(".entry " + fn);
      ASSERT_NE(b, std::string::npos) << fn;
      size_t e = r.ptx.find(".entry ", b + 1);
      std::string body = r.ptx.substr(b, e == std::string::npos ? std::string::npos : e - b);
      std::string ty = i == 0 ? "bf16" : "f16";
      if (var.wgmma) {
        const bool x = std::string(var.impl).empty() || std::string(var.impl).find("wgmma2x") != std::string::npos;
        const int qkN = i == 0 || x ? var.qkN : 64;
        EXPECT_NE(body.find("wgmma.mma_async.sync.aligned.m64n" + std::to_string(qkN) + "k16.f32." + ty + "." + ty),
                  std::string::npos);
        EXPECT_NE(body.find("wgmma.mma_async.sync.aligned.m64n" + std::string(i == 0 ? "128" : "64") + "k16.f32." + ty +
                            "." + ty),
                  std::string::npos);
        EXPECT_NE(body.find("fence.proxy.async.shared::cta"), std::string::npos);
        EXPECT_EQ(body.find("mma.sync"), std::string::npos);
      } else {
        EXPECT_NE(body.find("mma.sync.aligned.m16n8k16.row.col.f32." + ty + "." + ty + ".f32"), std::string::npos);
        EXPECT_NE(body.find("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"), std::string::npos);
        EXPECT_EQ(body.find("wgmma"), std::string::npos);
      }
      const std::string knobs = var.impl;
      const bool qShared = var.wgmma && (knobs.find("q=\"smem\"") != std::string::npos ||
                                         (var.qkN == 128 && knobs.find("q=\"regs\"") == std::string::npos));
      if (!qShared) { // wgmma2x reads Q from shared memory at 128 keys (and with knob q="smem")
        EXPECT_NE(body.find("ldmatrix.sync.aligned.m8n8.x4.shared.b16"), std::string::npos);
      }
      EXPECT_NE(body.find("cp.async.cg.shared.global"), std::string::npos);
      EXPECT_NE(body.find("ex2.approx"), std::string::npos);
      EXPECT_EQ(body.find("ld.local"), std::string::npos);
      EXPECT_EQ(body.find("st.local"), std::string::npos);
    }
    expectPtxasClean(r.ptx, var.arch);
  }
  // Defaults on sm_90a: wgmma2x at both head dims (128-key tiles, 3
  // stages, O rescaled every tile, Q from shared memory; the scale fused
  // into the exponent where there is no mask).
  {
    GeneratedProgram hopper = gen(p, 90, true);
    EXPECT_NE(hopper.source.find("tsr_flash_fwd_wgx<128, 128, 3, true, true, false, true, false, true>"),
              std::string::npos);
    EXPECT_NE(hopper.source.find("tsr_flash_fwd_wgx<64, 128, 3, false, false, true, false, false, true>"),
              std::string::npos);
    EXPECT_NE(gen(parse(withKnob("impl=\"wgmma2\"")), 90, true).source.find("tsr_flash_fwd_wgmma<128, true, true, false, false>"),
              std::string::npos);
    // Causal blocks in sections of batch points (L2 reuse of K/V), unless
    // knob order="heads"; non-causal blocks walk one batch point's tiles.
    EXPECT_NE(hopper.source.find("sec_g = (32ll << 20) / (sk * 512"), std::string::npos);
    EXPECT_EQ(gen(parse(withKnob("order=\"heads\"")), 90, true).source.find("sec_g"), std::string::npos);
  }
  // wgmma2x: 128-key tiles, 3 stages, Q in its own region (225 KB at D =
  // 128), fused scale (no mask), lazy rescale (knob), Q from shared memory; the
  // launch takes the compiled plan's shared memory (sm_80 keeps mma.sync
  // and its own).
  {
    const sir::Program px = parse(withKnob("impl=\"wgmma2x\" rescale=\"lazy\""));
    GeneratedProgram hx = gen(px, 90, true);
    EXPECT_NE(hx.source.find("tsr_flash_fwd_wgx<128, 128, 3, true, true, false, true, true, true>"), std::string::npos);
    EXPECT_NE(hx.source.find("tsr_flash_fwd_wgx<64, 128, 3, false, false, true, false, true, true>"), std::string::npos);
    int64_t sym[] = {4, 2048, 2048, 64};
    LaunchConfig c;
    std::string error;
    ASSERT_TRUE(planLaunch(px, 0, hx.kernels[0], sym, 132, &c, &error)) << error;
    EXPECT_EQ(c.sharedBytes, 3u * 2 * 128 * 128 * 2 + 128 * 128 * 2 + 1024);
    EXPECT_LE(c.sharedBytes, 227u * 1024);
    EXPECT_TRUE(estimateKernelCost(px, 0, hx.kernels[0], gpuModelFor(90, 132), sym).feasible);
    GeneratedProgram ax = gen(px, 80, false);
    EXPECT_NE(ax.source.find("tsr_flash_fwd<128, 3,"), std::string::npos);
    ASSERT_TRUE(planLaunch(px, 0, ax.kernels[0], sym, 132, &c, &error)) << error;
    EXPECT_EQ(c.sharedBytes, 4u * 2 * 64 * 128 * 2 + 1024);
    GeneratedProgram k64 = gen(parse(withKnob("impl=\"wgmma2x\" keys=64 rescale=\"always\"")), 90, true);
    EXPECT_NE(k64.source.find("tsr_flash_fwd_wgx<128, 64, 4, true, true, false, true, false, false>"),
              std::string::npos);
    ASSERT_TRUE(planLaunch(px, 0, k64.kernels[0], sym, 132, &c, &error)) << error;
    EXPECT_EQ(c.sharedBytes, 4u * 2 * 64 * 128 * 2 + 128 * 128 * 2 + 1024);
  }
  // B=4, S=4096 (s1), T=4096 (s2), D symbol=128 (s3).
  int64_t sym[] = {4, 4096, 1000, 64};
  LaunchConfig c;
  std::string error;
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], sym, 132, &c, &error)) << error;
  EXPECT_EQ(c.mode, LaunchMode::Gemm);
  EXPECT_EQ(c.grid[0], 4u * 16 * 32);
  EXPECT_EQ(c.block[0], 256u);
  // 3 stages of 128-key K and V tiles, Q's region, 1 KB alignment.
  EXPECT_EQ(c.sharedBytes, 3u * 2 * 128 * 128 * 2 + 128 * 128 * 2 + 1024);
  ASSERT_GE(c.extras.size(), 7u + 4);
  EXPECT_EQ(c.extras[0], 4 * 16);  // batch points
  EXPECT_EQ(c.extras[1], 4096);    // Sq
  EXPECT_EQ(c.extras[2], 4096);    // Sk
  ASSERT_TRUE(planLaunch(p, 1, g.kernels[1], sym, 132, &c, &error)) << error;
  EXPECT_EQ(c.mode, LaunchMode::Gemm);
  EXPECT_EQ(c.grid[0], 4u * 2 * 32);
  EXPECT_EQ(c.sharedBytes, 3u * 2 * 128 * 64 * 2 + 128 * 64 * 2 + 1024); // D = 64
  // Mask [B, 1, S, T] against scores [B, 2, S, T]: rows T apart, cols 1,
  // batch dim 0 stride S*T, head dim broadcast (0).
  ASSERT_EQ(c.extras.size(), 7u + 4);
  EXPECT_EQ(c.extras[2], 1000);
  EXPECT_EQ(c.extras[5], 1000);
  EXPECT_EQ(c.extras[6], 1);
  EXPECT_EQ(c.extras[7], 4);           // batch dim 0 extent
  EXPECT_EQ(c.extras[8], 4096 * 1000); // its mask stride
  EXPECT_EQ(c.extras[9], 2);           // heads
  EXPECT_EQ(c.extras[10], 0);          // broadcast
  ASSERT_TRUE(planLaunch(p, 2, g.kernels[2], sym, 132, &c, &error)) << error;
  EXPECT_EQ(c.mode, LaunchMode::Thread);
  EXPECT_EQ(c.extras[3], 32);
  EXPECT_EQ(c.extras[4], 16);
  int64_t empty[] = {0, 4096, 1000, 64};
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], empty, 132, &c, &error)) << error;
  EXPECT_TRUE(c.empty);
  // Cost model: tensor-core rate for flash, about half the flops when causal.
  GpuModel gpu = gpuModelFor(90, 132);
  CostResult flash = estimateKernelCost(p, 0, g.kernels[0], gpu, sym);
  EXPECT_TRUE(flash.feasible);
  EXPECT_NEAR(flash.flops, 4.0 * 64 * 4096 * 2048.5 * 128, 1e9);
  CostResult generic = estimateKernelCost(p, 2, g.kernels[2], gpu, sym);
  EXPECT_TRUE(generic.feasible);
  EXPECT_GT(generic.seconds, 0);
}

// layout=bshd (q, k, v, out stored [B, S, H, D]): the same flash path, its
// rows H * D apart and batch point b = bo * H + hh starting at column
// hh * D of bo's block; H reaches the kernel as the last extra; the generic
// path addresses rows the same way. ptxas-clean on both architectures.
TEST(CudaCodegen, AttentionBshdLayoutReadsRowsHDApart) {
  REQUIRE_NVRTC();
  std::string text;
  for (auto &[name, t] : tessera::cuda::test::programs())
    if (name == "attention_bshd")
      text = t;
  sir::Program p = parse(text);
  // And wgmma2x (its own addressing of Q through shared memory) on sm_90a.
  std::string xText = text;
  for (size_t at = xText.find("  attention scale"); at != std::string::npos;
       at = xText.find("  attention scale", at + 40))
    xText.insert(xText.find('\n', at) + 1, "  knobs impl=\"wgmma2x\"\n");
  for (const char *arch : {"sm_80", "sm_90a", "sm_90a wgmma2x"}) {
    SCOPED_TRACE(arch);
    const bool x = std::string(arch).find("wgmma2x") != std::string::npos;
    int sm = 0;
    bool a = false;
    ASSERT_TRUE(parseArchitecture(x ? "sm_90a" : arch, &sm, &a));
    GeneratedProgram g = gen(x ? parse(xText) : p, sm, a);
    if (x) {
      EXPECT_NE(g.source.find("tsr_flash_fwd_wgx<"), std::string::npos);
    }
    ASSERT_EQ(g.kernels.size(), 3u);
    EXPECT_TRUE(g.kernels[0].gemm.usable) << g.kernels[0].gemm.why;
    EXPECT_TRUE(g.kernels[1].gemm.usable) << g.kernels[1].gemm.why;
    EXPECT_FALSE(g.kernels[2].gemm.usable);
    EXPECT_NE(g.source.find("const long long bo = b / heads, hh = b % heads;"), std::string::npos);
    EXPECT_NE(g.source.find("(q + (bo * sq * heads + hh) * 128, k + (bo * sk * heads + hh) * 128"), std::string::npos);
    EXPECT_NE(g.source.find(", heads * 128);"), std::string::npos);
    EXPECT_NE(g.source.find(", heads * 64);"), std::string::npos);
    EXPECT_NE(g.source.find("kst = heads * hd"), std::string::npos);
    NvrtcResult r = nvrtcCompile(g.source, "attention_bshd.cu", x ? "sm_90a" : arch, true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
    for (size_t i = 0; i < 2; ++i) {
      std::string fn = g.kernels[i].function(LaunchMode::Gemm);
      size_t b = r.ptx.find(".entry " + fn);
      ASSERT_NE(b, std::string::npos) << fn;
      size_t e = r.ptx.find(".entry ", b + 1);
      std::string body = r.ptx.substr(b, e == std::string::npos ? std::string::npos : e - b);
      EXPECT_NE(body.find(sm == 90 ? "wgmma.mma_async" : "mma.sync.aligned.m16n8k16"), std::string::npos);
      EXPECT_NE(body.find("cp.async.cg.shared.global"), std::string::npos);
      EXPECT_EQ(body.find("ld.local"), std::string::npos);
      EXPECT_EQ(body.find("st.local"), std::string::npos);
    }
    expectPtxasClean(r.ptx, x ? "sm_90a" : arch);
  }
  // The dense path keeps its dense addressing.
  for (auto &[name, t] : tessera::cuda::test::programs())
    if (name == "attention") {
      GeneratedProgram dense = gen(parse(t));
      EXPECT_EQ(dense.source.find("heads"), std::string::npos);
      EXPECT_NE(dense.source.find("(q + b * sq * 128, k + b * sk * 128, v + b * sk * 128, o + b * sq * 128"),
                std::string::npos);
    }
  // B=4 (s0), S=1000 (s1), T=300 (s2): batch points B * H, extras ending in H.
  GeneratedProgram g = gen(p);
  int64_t sym[] = {4, 1000, 300};
  LaunchConfig c;
  std::string error;
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], sym, 132, &c, &error)) << error;
  EXPECT_EQ(c.mode, LaunchMode::Gemm);
  EXPECT_EQ(c.grid[0], 4u * 8 * 8); // 8 tiles of 128 rows per (b, h)
  ASSERT_EQ(c.extras.size(), 7u + 2 * 2 + 1);
  EXPECT_EQ(c.extras[0], 4 * 8); // batch points
  EXPECT_EQ(c.extras[1], 1000);  // Sq
  EXPECT_EQ(c.extras[3], 128);   // D
  EXPECT_EQ(c.extras[7], 4);     // batch dim 0 extent
  EXPECT_EQ(c.extras[9], 8);     // heads, as a batch dim of the computation
  EXPECT_EQ(c.extras[11], 8);    // H
  // Mask [B, 1, S, T] against scores [B, 2, S, T] (the computation's order).
  ASSERT_TRUE(planLaunch(p, 1, g.kernels[1], sym, 132, &c, &error)) << error;
  ASSERT_EQ(c.extras.size(), 7u + 2 * 2 + 1);
  EXPECT_EQ(c.extras[0], 4 * 2);
  EXPECT_EQ(c.extras[2], 300);       // Sk
  EXPECT_EQ(c.extras[5], 300);       // mask row stride
  EXPECT_EQ(c.extras[6], 1);         // mask col stride
  EXPECT_EQ(c.extras[8], 1000 * 300); // mask stride of batch dim 0
  EXPECT_EQ(c.extras[9], 2);         // heads
  EXPECT_EQ(c.extras[10], 0);        // broadcast over heads
  EXPECT_EQ(c.extras[11], 2);        // H
  ASSERT_TRUE(planLaunch(p, 2, g.kernels[2], sym, 132, &c, &error)) << error;
  EXPECT_EQ(c.mode, LaunchMode::Thread);
  ASSERT_EQ(c.extras.size(), 7u + 2 * 1 + 1);
  EXPECT_EQ(c.extras[0], 4);  // batch points: H
  EXPECT_EQ(c.extras[1], 1000);
  EXPECT_EQ(c.extras[4], 16); // Dv
  EXPECT_EQ(c.extras[9], 4);  // H
  // The cost model counts the same bytes and flops as for [B, H, S, D].
  GpuModel gpu = gpuModelFor(90, 132);
  CostResult flash = estimateKernelCost(p, 0, g.kernels[0], gpu, sym);
  EXPECT_TRUE(flash.feasible);
  EXPECT_NEAR(flash.flops, 4.0 * 32 * 1000 * 500.5 * 128, 1e6);
  EXPECT_NEAR(flash.bytes, 4.0 * 4 * 1000 * 8 * 128 * 2, 1);
}

// 16-byte vector accesses: a contiguous elementwise kernel (flat) and the
// row kernels (block: softmax, layer_norm) move 8 bf16 per ld/st.global.v4,
// the row kernels read their row once (cached across stages), nothing goes
// to local memory; with cuobjdump beside ptxas the SASS shows LDG.E.128 /
// STG.E.128.
TEST(CudaCodegen, SixteenByteAccessesInElementwiseAndRowKernels) {
  REQUIRE_NVRTC();
  sir::Program p = parse(R"(tessera-schedule v1
symbols R C
kernel "copy" loop {
  operand 0 in bf16 [s0, s1]
  operand 1 out bf16 [s0, s1]
  parallel [s0]
  stage map [s1] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = mul v0 v0
    store 1 [p0, r0] v1
  }
}
)" + tessera::testing::softmaxKernel("bf16") + R"(kernel "strided" loop {
  operand 0 in bf16 [s1, s0]
  operand 1 out bf16 [s0, s1]
  parallel [s0]
  stage map [s1] {
    v0: f32 = load 0 [r0, p0]
    store 1 [p0, r0] v0
  }
}
)");
  GeneratedProgram g = gen(p);
  EXPECT_TRUE(g.kernels[0].flatVec);
  EXPECT_TRUE(g.kernels[1].blockVec);
  EXPECT_FALSE(g.kernels[2].flatVec) << "transposed load: scalar path only";
  // Launch planning: 8 elements per thread on the flat path; the row of
  // 4096 in registers with 2 chunks of 8 per thread.
  LaunchConfig c;
  std::string error;
  int64_t big[] = {16384, 4096};
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], big, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Flat);
  EXPECT_EQ(c.grid[0], 132u * 32);
  int64_t small[] = {4, 64};
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], small, 132, &c, &error));
  EXPECT_EQ(c.grid[0], 1u);
  ASSERT_TRUE(planLaunch(p, 1, g.kernels[1], big, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Block);
  EXPECT_EQ(c.block[0] * 8u * kRowVecChunks, 4096u);
  for (const char *arch : {"sm_80", "sm_90a"}) {
    SCOPED_TRACE(arch);
    NvrtcResult r = nvrtcCompile(g.source, "vec.cu", arch, true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
    auto body = [&](const std::string &fn) {
      size_t b = r.ptx.find(".entry " + fn);
      EXPECT_NE(b, std::string::npos) << fn;
      size_t e = r.ptx.find(".entry ", b + 1);
      return b == std::string::npos ? std::string() : r.ptx.substr(b, e == std::string::npos ? std::string::npos : e - b);
    };
    auto count = [](const std::string &s, const std::string &what) {
      size_t n = 0;
      for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
        ++n;
      return n;
    };
    std::string flat = body(g.kernels[0].function(LaunchMode::Flat));
    // One load and one store per chunk (NVVM may version the loop on the
    // 32-bit index check: then one pair per version).
    EXPECT_GE(count(flat, "ld.global.v4.u32"), 1u);
    EXPECT_EQ(count(flat, "st.global.v4.u32"), count(flat, "ld.global.v4.u32"));
    EXPECT_EQ(flat.find("st.global.u32"), std::string::npos);
    std::string row = body(g.kernels[1].function(LaunchMode::Block));
    // One 16-byte load per chunk for three stages: the row is read once.
    EXPECT_EQ(count(row, "ld.global.v4.u32"), size_t(kRowVecChunks));
    EXPECT_EQ(count(row, "st.global.v4.u32"), size_t(kRowVecChunks));
    EXPECT_NE(row.find("shfl.sync.bfly"), std::string::npos);
    for (const std::string *s : {&flat, &row}) {
      EXPECT_EQ(s->find("ld.local"), std::string::npos);
      EXPECT_EQ(s->find("st.local"), std::string::npos);
    }
    EXPECT_EQ(body(g.kernels[2].function(LaunchMode::Flat)).find(".v4"), std::string::npos);
#ifdef TESSERA_TEST_PTXAS
    std::string tool = TESSERA_TEST_PTXAS;
    tool = tool.substr(0, tool.rfind('/') + 1) + "cuobjdump";
    if (access(tool.c_str(), X_OK) == 0) {
      char tmpl[] = "/tmp/tessera-sass-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      std::string file = std::string(tmpl) + "/k.cubin";
      std::ofstream(file, std::ios::binary).write(r.cubin.data(), static_cast<std::streamsize>(r.cubin.size()));
      int rc = 0;
      std::string sass = ::run(tool + " -sass " + file, &rc);
      EXPECT_EQ(rc, 0) << sass;
      EXPECT_NE(sass.find("LDG.E.128"), std::string::npos);
      EXPECT_NE(sass.find("STG.E.128"), std::string::npos);
      EXPECT_EQ(sass.find("LDL"), std::string::npos);
      std::remove(file.c_str());
      rmdir(tmpl);
    }
#endif
  }
}

// The body of one generated function in CUDA source or PTX text.
std::string functionText(const std::string &text, const std::string &fn, const std::string &start,
                         const std::string &next) {
  size_t b = text.find(start + fn);
  if (b == std::string::npos)
    return {};
  size_t e = text.find(next, b + 1);
  return text.substr(b, e == std::string::npos ? std::string::npos : e - b);
}
size_t occurrences(const std::string &s, const std::string &what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
    ++n;
  return n;
}

// Row kernels with the row in registers: uniform values hoisted, exp(x -
// max) computed once (softmax), a single barrier per block reduction,
// ex2.approx and a reciprocal only where every output is a narrow float,
// every chunk's loads issued before the elements, bf16 pairs rounded with
// one cvt each.
TEST(CudaCodegen, RowKernelsComputeEachValueOnce) {
  REQUIRE_NVRTC();
  std::string f32Softmax = tessera::testing::softmaxKernel("f32");
  f32Softmax.replace(f32Softmax.find("\"softmax\""), 9, "\"softmax_f32\"");
  sir::Program p = parse("tessera-schedule v1\nsymbols R C\n" + tessera::testing::softmaxKernel("bf16") + f32Softmax +
                         tessera::testing::layerNormKernel("layer_norm", "bf16") + R"(kernel "row_max" loop {
  operand 0 in f32 [s0, s1]
  operand 1 out f32 [s0, s1]
  parallel [s0]
  stage reduce [s1] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = reduce max v0
  }
  stage map [s1] {
    v2: f32 = load 0 [p0, r0]
    v3: f32 = sub v2 v1
    store 1 [p0, r0] v3
  }
}
)");
  GeneratedProgram g = gen(p);
  for (const KernelPlan &k : g.kernels)
    EXPECT_TRUE(k.blockVec) << k.name;
  auto src = [&](size_t k) {
    return functionText(g.source, g.kernels[k].function(LaunchMode::Block), "void __launch_bounds__(512) ", "extern \"C\"");
  };
  std::string sm = src(0), sm32 = src(1), ln = src(2);
  ASSERT_FALSE(sm.empty());
  EXPECT_NE(sm.find("tsr_exp_approx("), std::string::npos) << "bf16 out: exp through ex2.approx";
  EXPECT_NE(sm.find("tsr_rcp"), std::string::npos) << "bf16 out: one reciprocal of the sum";
  EXPECT_NE(sm.find("tsr_sh0_"), std::string::npos) << "exp(x - max) kept for the normalize stage";
  EXPECT_EQ(sm32.find("tsr_exp_approx("), std::string::npos) << "f32 out: expf";
  EXPECT_EQ(sm32.find("tsr_rcp"), std::string::npos) << "f32 out: division";
  EXPECT_NE(sm32.find("tsr_sh0_"), std::string::npos);
  EXPECT_EQ(ln.find("tsr_sh"), std::string::npos) << "x - mean is cheaper to recompute than to keep";
  // The layer norm's mean and rsqrt(var + eps) once per stage, not per element.
  EXPECT_EQ(occurrences(ln, "sqrtf("), 2u) << "vector path once, scalar path once";
  for (const char *arch : {"sm_80", "sm_90a"}) {
    SCOPED_TRACE(arch);
    NvrtcResult r = nvrtcCompile(g.source, "rows.cu", arch, true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
    auto ptx = [&](size_t k) { return functionText(r.ptx, g.kernels[k].function(LaunchMode::Block), ".entry ", ".entry "); };
    std::string s = ptx(0), l = ptx(2), m = ptx(3);
    // One barrier per reduce in each of the two paths (vector, scalar).
    EXPECT_EQ(occurrences(s, "bar.sync"), 4u);
    EXPECT_EQ(occurrences(l, "bar.sync"), 4u);
    EXPECT_EQ(occurrences(m, "bar.sync"), 2u);
    EXPECT_EQ(occurrences(s, "ld.global.v4.u32"), size_t(kRowVecChunks));
    EXPECT_EQ(occurrences(s, "st.global.v4.u32"), size_t(kRowVecChunks));
    EXPECT_EQ(occurrences(s, "cvt.rn.bf16x2.f32"), size_t(4 * kRowVecChunks));
    EXPECT_NE(s.find("rcp.rn.f32"), std::string::npos);
    EXPECT_NE(m.find("max.NaN.f32"), std::string::npos);
    // The chunks' loads come before the first element's arithmetic.
    size_t lastLoad = s.find("ld.global.v4.u32");
    for (size_t at = lastLoad; at != std::string::npos; at = s.find("ld.global.v4.u32", at + 1))
      lastLoad = at;
    EXPECT_LT(lastLoad, s.find("max.NaN.f32"));
    for (const std::string *f : {&s, &l, &m}) {
      EXPECT_EQ(f->find("ld.local"), std::string::npos);
      EXPECT_EQ(f->find("st.local"), std::string::npos);
    }
  }
  // Knob row_chunks: chunks per thread, so the block size of a 4096 row.
  LaunchConfig c;
  std::string error;
  int64_t big[] = {16384, 4096};
  ASSERT_TRUE(planLaunch(p, 0, g.kernels[0], big, 132, &c, &error));
  EXPECT_EQ(c.block[0], uint32_t(4096 / 8 / kRowVecChunks));
  p.kernels[0].knobs["row_chunks"] = int64_t(2);
  GeneratedProgram g2 = gen(p);
  EXPECT_EQ(g2.kernels[0].rowChunks, 2);
  ASSERT_TRUE(planLaunch(p, 0, g2.kernels[0], big, 132, &c, &error));
  EXPECT_EQ(c.block[0], 256u);
  EXPECT_TRUE(knobProblem(p, 0, g2.kernels[0], c).empty());
  p.kernels[0].knobs["row_chunks"] = int64_t(kMaxRowVecChunks + 1);
  EXPECT_NE(knobProblem(p, 0, gen(p).kernels[0], c).find("row_chunks"), std::string::npos);
}

TEST(CudaCodegen, UnknownArchitectureIsRejectedByNvrtc) {
  REQUIRE_NVRTC();
  NvrtcResult r = nvrtcCompile("extern \"C\" __global__ void k() {}", "k.cu", "sm_79", false);
  EXPECT_EQ(r.kind, NvrtcResult::Kind::BadArchitecture);
  EXPECT_NE(r.message.find("INVALID_OPTION"), std::string::npos) << r.message;
}

// ---- plans: which path each kernel takes ---------------------------------------------

TEST(CudaCodegen, PathsPerKernel) {
  auto programs = tessera::cuda::test::programs();
  std::map<std::string, sir::Program> parsed;
  for (auto &[name, text] : programs)
    parsed[name] = parse(text);
  GeneratedProgram un = gen(parsed["unary"]);
  EXPECT_TRUE(un.kernels[0].flat);
  EXPECT_FALSE(un.kernels[0].hasReduce);
  GeneratedProgram mm = gen(parsed["matmul"]);
  EXPECT_TRUE(planNamed(mm, "mm_bf16")->gemm.usable);
  EXPECT_EQ(planNamed(mm, "mm_bf16")->gemm.input, GemmInput::BF16);
  EXPECT_TRUE(planNamed(mm, "mm_f16_bt")->gemm.usable);
  EXPECT_EQ(planNamed(mm, "mm_tf32")->gemm.input, GemmInput::TF32);
  EXPECT_FALSE(planNamed(mm, "mm_f32")->gemm.usable) << "f32 stays exact unless tf32=1";
  GeneratedProgram red = gen(parsed["reductions"]);
  EXPECT_TRUE(planNamed(red, "softmax")->hasReduce);
  EXPECT_FALSE(planNamed(red, "softmax")->flat);
  EXPECT_TRUE(planNamed(red, "triangular")->extentsUseParallel);
  GeneratedProgram idx = gen(parsed["indexing"]);
  EXPECT_TRUE(planNamed(idx, "gather")->flat);
}

TEST(CudaCodegen, FlatteningRequiresStoresToFollowEveryInnerLoop) {
  // The store ignores r0: iterations of one point would race if flattened.
  sir::Program p = parse(R"(tessera-schedule v1
symbols
kernel "last_write_wins" loop {
  operand 0 in f32 [4, 8]
  operand 1 out f32 [4]
  parallel [4]
  stage map [8] {
    v0: f32 = load 0 [p0, r0]
    store 1 [p0] v0
  }
}
)");
  EXPECT_FALSE(gen(p).kernels[0].flat);
}

TEST(CudaCodegen, LaunchModesFollowShapes) {
  auto programs = tessera::cuda::test::programs();
  sir::Program red, un, mm;
  for (auto &[name, text] : programs) {
    if (name == "reductions")
      red = parse(text);
    if (name == "unary")
      un = parse(text);
    if (name == "matmul")
      mm = parse(text);
  }
  GeneratedProgram g = gen(red);
  size_t sm = kernelIndex(red, "softmax");
  LaunchConfig c;
  std::string error;
  int64_t longRows[] = {16384, 4096};
  ASSERT_TRUE(planLaunch(red, sm, g.kernels[sm], longRows, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Block);
  EXPECT_EQ(c.grid[0], 16384u);
  EXPECT_EQ(c.block[0] % 32, 0u);
  int64_t shortRows[] = {100000, 5};
  ASSERT_TRUE(planLaunch(red, sm, g.kernels[sm], shortRows, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Thread);
  int64_t none[] = {0, 7};
  ASSERT_TRUE(planLaunch(red, sm, g.kernels[sm], none, 132, &c, &error));
  EXPECT_TRUE(c.empty);
  // Extents depending on a parallel loop: one thread per row.
  size_t tri = kernelIndex(red, "triangular");
  ASSERT_TRUE(planLaunch(red, tri, g.kernels[tri], longRows, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Thread);

  GeneratedProgram gu = gen(un);
  int64_t b[] = {1000};
  ASSERT_TRUE(planLaunch(un, 0, gu.kernels[0], b, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Flat);
  EXPECT_EQ(c.grid[0], (7000u + 255) / 256);

  // GEMM strides from the affine index maps: A [3, 13, 24] at [p0, p1, r0];
  // B [N, 24] at [p2, r0] (transposed). Aligned rows: the pipelined path
  // (wgmma on sm_90a); gemm_path=mma keeps the mma.sync fallback.
  GeneratedProgram gm = gen(mm);
  size_t bt = kernelIndex(mm, "mm_f16_bt");
  int64_t n[] = {40};
  ASSERT_TRUE(planLaunch(mm, bt, gm.kernels[bt], n, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Wgmma);
  EXPECT_GT(c.sharedBytes, 48u * 1024);
  mm.kernels[bt].knobs["gemm_path"] = std::string("mma");
  ASSERT_TRUE(planLaunch(mm, bt, gm.kernels[bt], n, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Gemm);
  EXPECT_EQ(c.sharedBytes, 0u);
  ASSERT_EQ(c.extras.size(), kGemmExtraSlots);
  EXPECT_EQ(c.extras[0], 24); // sAm
  EXPECT_EQ(c.extras[1], 1);  // sAk
  EXPECT_EQ(c.extras[2], 1);  // sBk
  EXPECT_EQ(c.extras[3], 24); // sBn
  EXPECT_EQ(c.grid[2], 3u);   // batch
  EXPECT_EQ(c.grid[0], 1u);   // one 128x128 tile covers 13 x 40
  EXPECT_EQ(c.extras[4], 0);  // B transposed: no 16-byte loads
  size_t nb = kernelIndex(mm, "mm_bf16");
  ASSERT_TRUE(planLaunch(mm, nb, gm.kernels[nb], n, 132, &c, &error));
  EXPECT_EQ(c.extras[2], 40); // sBk = N
  EXPECT_EQ(c.extras[3], 1);
  EXPECT_EQ(c.extras[4], 1);  // contiguous, 8-element aligned rows: 16-byte loads
  int64_t odd[] = {36};
  ASSERT_TRUE(planLaunch(mm, nb, gm.kernels[nb], odd, 132, &c, &error));
  EXPECT_EQ(c.extras[4], 0);  // rows of B not 16-byte aligned
  EXPECT_EQ(c.mode, LaunchMode::Gemm); // ... so no cp.async pipeline either
}

TEST(CudaCodegen, Architectures) {
  int sm = 0;
  bool a = false;
  EXPECT_TRUE(parseArchitecture("sm_90a", &sm, &a));
  EXPECT_EQ(sm, 90);
  EXPECT_TRUE(a);
  EXPECT_TRUE(parseArchitecture("sm_80", &sm, &a));
  EXPECT_FALSE(a);
  EXPECT_FALSE(parseArchitecture("gfx942", &sm, &a));
  EXPECT_FALSE(parseArchitecture("sm_", &sm, &a));
  EXPECT_FALSE(parseArchitecture("sm_90b", &sm, &a));
  EXPECT_TRUE(cubinRunsOn("sm_80", "sm_86"));
  EXPECT_FALSE(cubinRunsOn("sm_86", "sm_80"));
  EXPECT_FALSE(cubinRunsOn("sm_80", "sm_90"));
  EXPECT_TRUE(cubinRunsOn("sm_90a", "sm_90"));
  EXPECT_FALSE(cubinRunsOn("sm_90a", "sm_100"));
}

TEST(CudaCostModel, GemmAndBandwidth) {
  sir::Program mm;
  for (auto &[name, text] : tessera::cuda::test::programs())
    if (name == "matmul")
      mm = parse(text);
  GeneratedProgram g = gen(mm);
  GpuModel h100 = gpuModelFor(90, 0);
  size_t k = kernelIndex(mm, "mm_bf16");
  int64_t n[] = {4096};
  CostResult r = estimateKernelCost(mm, k, g.kernels[k], h100, n);
  EXPECT_TRUE(r.feasible) << r.reason;
  EXPECT_EQ(r.mode, LaunchMode::Wgmma);
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 3 * 13 * 4096 * 24);
  EXPECT_GT(r.bytes, 3.0 * 13 * 4096 * 2);
  EXPECT_GT(r.occupancy, 0.0);
  // Once the GPU is full, twice the work takes longer.
  int64_t n1[] = {1 << 18}, n2[] = {1 << 20};
  r = estimateKernelCost(mm, k, g.kernels[k], h100, n1);
  CostResult r2 = estimateKernelCost(mm, k, g.kernels[k], h100, n2);
  EXPECT_GT(r2.seconds, r.seconds);
  // A100 is slower than H100 on the same kernel (compiled for sm_80).
  GeneratedProgram g80 = gen(mm, 80, false);
  CostResult r3 = estimateKernelCost(mm, k, g80.kernels[k], gpuModelFor(80, 0), n2);
  EXPECT_TRUE(r3.feasible) << r3.reason;
  EXPECT_EQ(r3.mode, LaunchMode::GemmAsync);
  EXPECT_GT(r3.seconds, r2.seconds);
}

// ---- pipelined GEMM and the cuBLASLt library path -----------------------------------

sir::Program gemmPaths() {
  for (auto &[name, text] : tessera::cuda::test::programs())
    if (name == "gemm_paths")
      return parse(text);
  return {};
}

TEST(CudaGemm, VariantsPerKernel) {
  sir::Program p = gemmPaths();
  GeneratedProgram g = gen(p);
  const KernelPlan *plain = planNamed(g, "plain_bf16"), *scores = planNamed(g, "scores_f16");
  const KernelPlan *at = planNamed(g, "a_transposed"), *f32 = planNamed(g, "exact_f32");
  ASSERT_TRUE(plain && scores && at && f32);
  EXPECT_TRUE(plain->gemm.wgmma && plain->gemm.plainStore);
  EXPECT_FALSE(plain->gemm.async) << "sm_90a: the mma.sync pipeline only on request (NVRTC time)";
  EXPECT_TRUE(plain->gemm.bNContig);
  EXPECT_FALSE(plain->gemm.bKContig);
  EXPECT_TRUE(scores->gemm.wgmma && scores->gemm.bKContig);
  EXPECT_FALSE(scores->gemm.plainStore) << "scaled before the store";
  EXPECT_TRUE(at->gemm.usable);
  EXPECT_FALSE(at->gemm.async) << "A contiguous along m: the mma.sync fallback only";
  EXPECT_FALSE(f32->gemm.usable) << "f32 stays exact without tf32";
  // sm_80: no wgmma; the cp.async + ldmatrix variant stays.
  GeneratedProgram g80 = gen(p, 80, false);
  EXPECT_TRUE(planNamed(g80, "plain_bf16")->gemm.async);
  EXPECT_FALSE(planNamed(g80, "plain_bf16")->gemm.wgmma);
  // Shared memory of the variants fits each architecture's per-block limit.
  EXPECT_LE(plain->gemm.wgmmaConfig.sharedBytes(), gpuModelFor(90, 0).sharedBytesPerBlock);
  p.kernels[kernelIndex(p, "plain_bf16")].knobs["gemm_path"] = std::string("mma_async");
  EXPECT_TRUE(planNamed(gen(p), "plain_bf16")->gemm.async);
  EXPECT_LE(planNamed(g80, "plain_bf16")->gemm.asyncConfig.sharedBytes(), gpuModelFor(80, 0).sharedBytesPerBlock);
  GeneratedProgram g89 = gen(p, 89, false);
  EXPECT_LE(planNamed(g89, "plain_bf16")->gemm.asyncConfig.sharedBytes(), gpuModelFor(89, 0).sharedBytesPerBlock);
}

TEST(CudaGemm, InstructionsOfThePipelinedPaths) {
  REQUIRE_NVRTC();
  sir::Program p = gemmPaths();
  // Both B layouts through the mma.sync pipeline as well.
  for (const char *name : {"scores_f16", "residual_bf16"})
    p.kernels[kernelIndex(p, name)].knobs["gemm_path"] = std::string("mma_async");
  GeneratedProgram g = gen(p);
  NvrtcResult r = nvrtcCompile(g.source, "gemm.cu", "sm_90a", true);
  ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
  for (const char *insn : {"wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16",
                           "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16", "wgmma.fence.sync.aligned",
                           "wgmma.wait_group.sync.aligned", "fence.proxy.async.shared::cta", "cp.async.cg.shared.global",
                           "cp.async.wait_group", "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
                           "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16", "st.global.v4.u32",
                           "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes",
                           "mbarrier.try_wait.parity.shared::cta.b64", "mbarrier.arrive.expect_tx.shared::cta.b64",
                           "setmaxnreg.dec.sync.aligned.u32 40", "setmaxnreg.inc.sync.aligned.u32 232"})
    EXPECT_NE(r.ptx.find(insn), std::string::npos) << insn;
  for (const KernelPlan &k : g.kernels) {
    if (k.gemm.async) {
      EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::GemmAsync)), std::string::npos) << k.name;
    }
    if (k.gemm.wgmma) {
      EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::Wgmma)), std::string::npos) << k.name;
    }
    if (k.library.usable) {
      EXPECT_NE(r.ptx.find(".entry " + k.function(LaunchMode::LibEpilogue)), std::string::npos) << k.name;
    }
  }
  NvrtcResult r80 = nvrtcCompile(gen(p, 80, false).source, "gemm.cu", "sm_80", true);
  ASSERT_EQ(r80.kind, NvrtcResult::Kind::Ok) << r80.message;
  EXPECT_EQ(r80.ptx.find("wgmma"), std::string::npos);
  EXPECT_NE(r80.ptx.find("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"), std::string::npos);
}

TEST(CudaGemm, LaunchPicksTheFastestPathThatApplies) {
  sir::Program p = gemmPaths();
  GeneratedProgram g = gen(p);
  size_t k = kernelIndex(p, "plain_bf16");
  LaunchConfig c;
  std::string error;
  int64_t big[] = {4096, 4096, 4096};
  ASSERT_TRUE(planLaunch(p, k, g.kernels[k], big, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Wgmma);
  // No batch dims: the TMA producer design, one persistent block per SM
  // over the 32 x 16 tiles of 128 x 256, with A's and B's tensor maps.
  EXPECT_EQ(g.kernels[k].gemm.wgmmaConfig.family, GemmFamily::WgmmaTma);
  EXPECT_EQ(c.grid[0], 132u);
  EXPECT_EQ(c.block[0], 384u);
  EXPECT_EQ(c.sharedBytes, uint32_t(g.kernels[k].gemm.wgmmaConfig.sharedBytes()));
  ASSERT_EQ(c.tensorMaps.size(), 2u);
  EXPECT_EQ(c.tensorMaps[0].dims[0], 4096u); // A: K contiguous, M rows, boxes of 64 x 128
  EXPECT_EQ(c.tensorMaps[0].box[0], 64u);
  EXPECT_EQ(c.tensorMaps[0].box[1], 128u);
  EXPECT_EQ(c.tensorMaps[1].box[0], 64u);    // B [k][n]: 64-column boxes, 64 k rows
  EXPECT_EQ(c.tensorMaps[1].box[1], 64u);
  EXPECT_EQ(c.tensorMaps[1].rowStride, 4096);
  int64_t edge[] = {130, 72, 40};
  ASSERT_TRUE(planLaunch(p, k, g.kernels[k], edge, 132, &c, &error));
  EXPECT_EQ(c.grid[0], 2u) << "fewer tiles than SMs: one block per tile";
  sir::Program cpa = p;
  cpa.kernels[k].knobs["gemm_path"] = std::string("wgmma_cp_async");
  GeneratedProgram gc = gen(cpa);
  ASSERT_TRUE(planLaunch(cpa, k, gc.kernels[k], big, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Wgmma);
  EXPECT_EQ(c.grid[0], 32u * 16u); // the cp.async design: a block per tile
  EXPECT_EQ(c.block[0], 256u);
  EXPECT_TRUE(c.tensorMaps.empty());
  p.kernels[k].knobs["gemm_path"] = std::string("mma_async");
  GeneratedProgram ga = gen(p);
  ASSERT_TRUE(planLaunch(p, k, ga.kernels[k], big, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::GemmAsync);
  EXPECT_EQ(c.sharedBytes, uint32_t(ga.kernels[k].gemm.asyncConfig.sharedBytes()));
  p.kernels[k].knobs.erase("gemm_path");
  // K not a multiple of 8: the 16-byte chunks would straddle rows.
  int64_t oddK[] = {4096, 4096, 4092 + 1};
  ASSERT_TRUE(planLaunch(p, k, g.kernels[k], oddK, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Gemm);
  // B [n][k]: N need not be a multiple of 8.
  size_t sc = kernelIndex(p, "scores_f16");
  int64_t ragged[] = {100, 77, 64};
  ASSERT_TRUE(planLaunch(p, sc, g.kernels[sc], ragged, 132, &c, &error));
  EXPECT_EQ(c.mode, LaunchMode::Wgmma);
  EXPECT_EQ(c.grid[2], 4u);
  // The library epilogue: one thread per output element, grid-stride.
  ASSERT_TRUE(planLibraryEpilogue(p, sc, g.kernels[sc], ragged, 132, &c));
  EXPECT_EQ(c.mode, LaunchMode::LibEpilogue);
  EXPECT_EQ(c.extras.size(), kGemmExtraSlots);
  EXPECT_EQ(c.grid[0], uint32_t((4 * 100 * 77 + 255) / 256));
}

TEST(CudaCublasLt, WhatTheLibraryRunsItself) {
  sir::Program p = gemmPaths();
  auto plan = [&](const char *name) { return planLibrary(p.kernels[kernelIndex(p, name)]); };
  LibraryPlan plain = plan("plain_bf16");
  ASSERT_TRUE(plain.usable) << plain.why;
  EXPECT_TRUE(plain.direct) << plain.notDirect;
  EXPECT_EQ(plain.alpha, 1.f);
  EXPECT_EQ(plain.residualOperand, -1);
  LibraryPlan scores = plan("scores_f16");
  EXPECT_TRUE(scores.direct) << scores.notDirect;
  EXPECT_EQ(scores.alpha, 0.125f);
  LibraryPlan res = plan("residual_bf16");
  EXPECT_TRUE(res.direct) << res.notDirect;
  EXPECT_EQ(res.residualOperand, 2);
  EXPECT_EQ(res.outOperand, 3);
  LibraryPlan at = plan("a_transposed");
  EXPECT_TRUE(at.usable) << at.why;
  EXPECT_FALSE(at.direct) << "relu: the generated epilogue runs after cuBLASLt";
  LibraryPlan f32 = plan("exact_f32");
  EXPECT_TRUE(f32.usable);
  EXPECT_FALSE(f32.tf32);
  EXPECT_TRUE(f32.direct);
  sir::Program mm;
  for (auto &[name, text] : tessera::cuda::test::programs())
    if (name == "matmul")
      mm = parse(text);
  LibraryPlan gelu = planLibrary(mm.kernels[kernelIndex(mm, "mm_bf16")]);
  EXPECT_TRUE(gelu.usable);
  EXPECT_FALSE(gelu.direct);
  // bf16 out, dense, the epilogue reads no operand shaped like it: cuBLASLt
  // writes the rounded product into the output, _epi finishes in place.
  EXPECT_TRUE(gelu.narrow);
  {
    size_t g = kernelIndex(mm, "mm_bf16");
    std::vector<int64_t> sym(mm.symbols.size(), 64);
    LtProblem lt;
    std::string why;
    ASSERT_TRUE(libraryProblem(mm, g, gelu, sym.data(), false, &lt, &why)) << why;
    EXPECT_TRUE(lt.narrow);
    EXPECT_EQ(lt.dOperand, gelu.narrowOperand);
    EXPECT_EQ(lt.d.type, TESSERA_DTYPE_BF16);
    EXPECT_EQ(lt.scratchElems, 0u);
  }
  EXPECT_FALSE(f32.narrow) << "f32 output: the f32 product is the output's own dtype";
  EXPECT_TRUE(planLibrary(mm.kernels[kernelIndex(mm, "mm_tf32")]).tf32);
  EXPECT_EQ(libraryChoice(mm.kernels[0]), LibraryChoice::Auto);
  mm.kernels[0].knobs["library"] = std::string("cublaslt");
  EXPECT_EQ(libraryChoice(mm.kernels[0]), LibraryChoice::Force);
  mm.kernels[0].knobs["library"] = std::string("generic");
  EXPECT_EQ(libraryChoice(mm.kernels[0]), LibraryChoice::Never);
}

// The _epi function after cuBLASLt: 8 columns per thread with 16-byte
// accesses (product, bias along N, output), bf16 pairs packed with one cvt;
// an epilogue that stores across N stays scalar.
TEST(CudaCublasLt, LibraryEpilogueMovesSixteenBytes) {
  REQUIRE_NVRTC();
  sir::Program mm;
  for (auto &[name, text] : tessera::cuda::test::programs())
    if (name == "matmul")
      mm = parse(text);
  sir::Program tr = parse(R"(tessera-schedule v1
symbols M N K
kernel "epi_transposed" matmul {
  operand 0 in bf16 [s0, s2]
  operand 1 in bf16 [s2, s1]
  operand 2 out bf16 [s1, s0]
  parallel [s0, s1]
  stage reduce [s2] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = load 1 [r0, p1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = relu v3
    store 2 [p1, p0] v4
  }
}
)");
  GeneratedProgram g = gen(mm), gt = gen(tr);
  size_t bf = kernelIndex(mm, "mm_bf16"), tf = kernelIndex(mm, "mm_tf32");
  ASSERT_TRUE(g.kernels[bf].library.usable && g.kernels[bf].library.narrow);
  EXPECT_TRUE(g.kernels[bf].epiVec);
  EXPECT_TRUE(g.kernels[tf].epiVec);
  ASSERT_TRUE(gt.kernels[0].library.usable);
  EXPECT_FALSE(gt.kernels[0].epiVec);
  for (const char *arch : {"sm_80", "sm_90a"}) {
    SCOPED_TRACE(arch);
    const bool hopper = std::string(arch) == "sm_90a";
    NvrtcResult r = nvrtcCompile(hopper ? g.source : gen(mm, 80, false).source, "epi.cu", arch, true);
    ASSERT_EQ(r.kind, NvrtcResult::Kind::Ok) << r.message;
    auto ptx = [&](size_t k) { return functionText(r.ptx, g.kernels[k].function(LaunchMode::LibEpilogue), ".entry ", ".entry "); };
    std::string b = ptx(bf), t = ptx(tf);
    // bf16: the product (in place) and the bias, one 16-byte load each; the
    // output one 16-byte store of 4 packed pairs.
    EXPECT_EQ(occurrences(b, "ld.global.v4.u32"), 2u);
    EXPECT_EQ(occurrences(b, "st.global.v4.u32"), 1u);
    EXPECT_EQ(occurrences(b, "cvt.rn.bf16x2.f32"), 4u);
    // tf32 (f32 out): the f32 product and the f32 bias, two each; two stores.
    EXPECT_GE(occurrences(t, "ld.global.v4."), 4u); // .u32 or .f32, as NVVM types them
    EXPECT_EQ(occurrences(t, "st.global.v4.u32"), 2u);
    for (const std::string *f : {&b, &t})
      EXPECT_EQ(f->find("ld.local"), std::string::npos);
    NvrtcResult rt = nvrtcCompile(hopper ? gt.source : gen(tr, 80, false).source, "epi_t.cu", arch, true);
    ASSERT_EQ(rt.kind, NvrtcResult::Kind::Ok) << rt.message;
    EXPECT_EQ(functionText(rt.ptx, gt.kernels[0].function(LaunchMode::LibEpilogue), ".entry ", ".entry ").find(".v4"),
              std::string::npos);
  }
  // 8 columns per thread where N % 8 == 0.
  LaunchConfig c;
  int64_t n64[] = {64};
  ASSERT_TRUE(planLibraryEpilogue(mm, bf, g.kernels[bf], n64, 132, &c));
  EXPECT_EQ(c.grid[0], uint32_t((3 * 13 * 64 / 8 + 255) / 256));
  int64_t n36[] = {36};
  ASSERT_TRUE(planLibraryEpilogue(mm, bf, g.kernels[bf], n36, 132, &c));
  EXPECT_EQ(c.grid[0], uint32_t((3 * 13 * 36 + 255) / 256));
}

TEST(CudaCublasLt, ColumnMajorProblems) {
  sir::Program p = gemmPaths();
  LtProblem lt;
  std::string why;
  // Row-major C = A B is column-major C^T = B^T A^T: Lt's A is our B (N x K,
  // ld N), Lt's B our A (K x M, ld K), D N x M (ld N); no transposes.
  size_t k = kernelIndex(p, "plain_bf16");
  LibraryPlan plain = planLibrary(p.kernels[k]);
  int64_t s[] = {256, 512, 128};
  ASSERT_TRUE(libraryProblem(p, k, plain, s, true, &lt, &why)) << why;
  EXPECT_FALSE(lt.transA);
  EXPECT_FALSE(lt.transB);
  EXPECT_EQ(lt.a.rows, 512u);
  EXPECT_EQ(lt.a.cols, 128u);
  EXPECT_EQ(lt.a.ld, 512);
  EXPECT_EQ(lt.b.rows, 128u);
  EXPECT_EQ(lt.b.cols, 256u);
  EXPECT_EQ(lt.b.ld, 128);
  EXPECT_EQ(lt.d.rows, 512u);
  EXPECT_EQ(lt.d.ld, 512);
  EXPECT_EQ(lt.d.type, TESSERA_DTYPE_BF16);
  EXPECT_EQ(lt.aOperand, 1);
  EXPECT_EQ(lt.bOperand, 0);
  EXPECT_EQ(lt.dOperand, 2);
  EXPECT_EQ(lt.batch, 1);
  ASSERT_EQ(lt.calls.size(), 1u);
  // Scratch form: D is the dense f32 product.
  ASSERT_TRUE(libraryProblem(p, k, plain, s, false, &lt, &why)) << why;
  EXPECT_EQ(lt.dOperand, -1);
  EXPECT_EQ(lt.d.type, TESSERA_DTYPE_F32);
  EXPECT_EQ(lt.scratchElems, 256u * 512u);
  // q k^T: B stored [n][k] -> transA; 4 heads as a strided batch; alpha.
  size_t sc = kernelIndex(p, "scores_f16");
  ASSERT_TRUE(libraryProblem(p, sc, planLibrary(p.kernels[sc]), s, true, &lt, &why)) << why;
  EXPECT_TRUE(lt.transA);
  EXPECT_EQ(lt.a.rows, 128u); // K
  EXPECT_EQ(lt.a.ld, 128);
  EXPECT_EQ(lt.batch, 4);
  EXPECT_EQ(lt.a.batchStride, 512 * 128);
  EXPECT_EQ(lt.b.batchStride, 256 * 128);
  EXPECT_EQ(lt.d.batchStride, 256 * 512);
  EXPECT_EQ(lt.alpha, 0.125f);
  EXPECT_EQ(lt.calls.size(), 1u);
  // x W + residual over [2, M, K]: the batch folds into M (W shared); C.
  size_t rs = kernelIndex(p, "residual_bf16");
  ASSERT_TRUE(libraryProblem(p, rs, planLibrary(p.kernels[rs]), s, true, &lt, &why)) << why;
  EXPECT_EQ(lt.batch, 1);
  EXPECT_EQ(lt.m, 512u);
  EXPECT_EQ(lt.b.cols, 512u);
  EXPECT_EQ(lt.cOperand, 2);
  EXPECT_EQ(lt.beta, 1.f);
  // A [K][M]: transB.
  size_t at = kernelIndex(p, "a_transposed");
  ASSERT_TRUE(libraryProblem(p, at, planLibrary(p.kernels[at]), s, false, &lt, &why)) << why;
  EXPECT_TRUE(lt.transB);
  EXPECT_EQ(lt.b.rows, 256u);
  EXPECT_EQ(lt.b.ld, 256);
  EXPECT_FALSE(libraryProblem(p, at, planLibrary(p.kernels[at]), s, true, &lt, &why)) << "relu is not direct";
  // K = 0 stays with the generated kernel.
  int64_t k0[] = {4, 4, 0};
  EXPECT_FALSE(libraryProblem(p, k, plain, k0, true, &lt, &why));
}

TEST(CudaCublasLt, BatchesThatAreNotOneStride) {
  // Attention's p v: heads address v through (p1 * 64 + p3); the batch
  // [s0, 8] is no single stride, so each outer point is one call.
  sir::Program p = parse(R"(tessera-schedule v1
symbols B S
kernel "pv" matmul {
  operand 0 in bf16 [s0, 8, s1, s1]
  operand 1 in bf16 [s0, s1, 512]
  operand 2 out bf16 [s0, 8, s1, 64]
  parallel [s0, 8, s1, 64]
  stage reduce [s1] {
    v0: f32 = load 0 [p0, p1, p2, r0]
    v1: f32 = load 1 [p0, r0, ((p1 * 64) + p3)]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    store 2 [p0, p1, p2, p3] v3
  }
}
)");
  LibraryPlan plan = planLibrary(p.kernels[0]);
  ASSERT_TRUE(plan.direct) << plan.notDirect;
  LtProblem lt;
  std::string why;
  int64_t s[] = {3, 32};
  ASSERT_TRUE(libraryProblem(p, 0, plan, s, true, &lt, &why)) << why;
  EXPECT_EQ(lt.batch, 8);
  EXPECT_EQ(lt.a.batchStride, 64);
  EXPECT_EQ(lt.a.ld, 512);
  ASSERT_EQ(lt.calls.size(), 3u);
  EXPECT_EQ(lt.calls[1].a, 32 * 512);
  EXPECT_EQ(lt.calls[2].d, 2 * 8 * 32 * 64);
}

TEST(CudaCublasLt, CostModelPrefersTheLibraryForLargeGemms) {
  sir::Program p = gemmPaths();
  GeneratedProgram g = gen(p);
  GpuModel h100 = gpuModelFor(90, 132);
  size_t k = kernelIndex(p, "plain_bf16");
  int64_t big[] = {4096, 4096, 4096}, tiny[] = {8, 8, 8};
  CostResult lib = estimateLibraryCost(p, k, g.kernels[k], h100, big);
  CostResult gen1 = estimateKernelCost(p, k, g.kernels[k], h100, big);
  EXPECT_TRUE(lib.feasible);
  EXPECT_TRUE(lib.library);
  EXPECT_LT(lib.seconds, gen1.seconds);
  EXPECT_TRUE(libraryPreferred(p, k, g.kernels[k], h100, big));
  // With a fused erf GELU the generated kernel still loses at 4096^3 (H200:
  // 0.225 ms generated vs 0.203 ms cuBLASLt + _epi, docs/perf.md).
  {
    const sir::Program gp =
        parse("tessera-schedule v1\nsymbols M N K\n" + tessera::testing::matmulKernel("mm_gelu", "", true));
    GeneratedProgram gg = gen(gp);
    CostResult gl = estimateLibraryCost(gp, 0, gg.kernels[0], h100, big);
    CostResult gk = estimateKernelCost(gp, 0, gg.kernels[0], h100, big);
    EXPECT_LT(gl.seconds, gk.seconds) << gl.seconds << " vs " << gk.seconds;
    EXPECT_TRUE(libraryPreferred(gp, 0, gg.kernels[0], h100, big));
  }
  EXPECT_FALSE(libraryPreferred(p, k, g.kernels[k], h100, tiny)) << "a launch either way: no host call";
  // Exact f32: cuBLASLt's SGEMM beats one thread per output.
  size_t f = kernelIndex(p, "exact_f32");
  int64_t mid[] = {1024, 1024, 1024};
  EXPECT_TRUE(libraryPreferred(p, f, g.kernels[f], h100, mid));
  // Not a canonical matmul: infeasible, with the reason.
  sir::Program red;
  for (auto &[name, text] : tessera::cuda::test::programs())
    if (name == "reductions")
      red = parse(text);
  GeneratedProgram gr = gen(red);
  int64_t rows[] = {64, 64};
  CostResult none = estimateLibraryCost(red, 0, gr.kernels[0], h100, rows);
  EXPECT_FALSE(none.feasible);
  EXPECT_NE(none.reason.find("cublaslt"), std::string::npos) << none.reason;
}

// The search's GPU knobs (the cuda manifest's search_space): the
// cost model accepts what the generators honour, rejects the rest with a
// reason, and orders the points the way the code behaves.
TEST(CudaCostModel, SearchKnobsFeasibilityAndOrder) {
  using KnobMap = std::map<std::string, sir::KnobValue>;
  GpuModel h200 = gpuModelFor(90, 132);
  auto cost = [&](sir::Program p, size_t k, const KnobMap &knobs, const int64_t *sym) {
    for (const auto &[key, v] : knobs)
      p.kernels[k].knobs[key] = v;
    GeneratedProgram g = gen(p);
    return estimateKernelCost(p, k, g.kernels[k], h200, sym);
  };
  sir::Program p = gemmPaths();
  size_t k = kernelIndex(p, "plain_bf16");
  int64_t big[] = {4096, 4096, 4096};
  auto path = [](const char *name) { return sir::KnobValue(std::string(name)); };
  CostResult wg4 = cost(p, k, {{"gemm_path", path("wgmma")}, {"stages", int64_t(4)}}, big);
  CostResult wg3 = cost(p, k, {{"gemm_path", path("wgmma")}, {"stages", int64_t(3)}}, big);
  CostResult as2 = cost(p, k, {{"gemm_path", path("mma_async")}, {"stages", int64_t(2)}}, big);
  CostResult as3 = cost(p, k, {{"gemm_path", path("mma_async")}, {"stages", int64_t(3)}}, big);
  CostResult mma = cost(p, k, {{"gemm_path", path("mma")}}, big);
  for (const CostResult *r : {&wg4, &wg3, &as2, &as3, &mma})
    EXPECT_TRUE(r->feasible) << r->reason;
  EXPECT_EQ(wg3.mode, LaunchMode::Wgmma);
  EXPECT_EQ(as2.mode, LaunchMode::GemmAsync);
  EXPECT_EQ(mma.mode, LaunchMode::Gemm);
  EXPECT_LT(wg4.seconds, wg3.seconds);
  EXPECT_LT(wg3.seconds, as3.seconds);
  EXPECT_LT(as3.seconds, as2.seconds);
  EXPECT_LT(as2.seconds, mma.seconds);
  // Rejected: a depth the loop cannot run, stages beyond shared memory
  // (5 x 48 KB), stages off the pipelined paths, a CPU generator's knob.
  for (const KnobMap &bad : std::vector<KnobMap>{
           {{"gemm_path", path("wgmma")}, {"stages", int64_t(1)}},
           {{"gemm_path", path("wgmma_cp_async")}, {"stages", int64_t(2)}},
           {{"gemm_path", path("wgmma")}, {"stages", int64_t(5)}},
           {{"gemm_path", path("mma_async")}, {"stages", int64_t(5)}},
           {{"gemm_path", path("mma")}, {"stages", int64_t(3)}},
           {{"gemm_path", path("tcgen05")}},
           {{"mc", int64_t(96)}},
           {{"threads", int64_t(2)}}}) {
    CostResult r = cost(p, k, bad, big);
    EXPECT_FALSE(r.feasible);
    EXPECT_FALSE(r.reason.empty());
  }
  // The stages knob reaches the generated code (and a rejected value leaves
  // the default).
  sir::Program s3 = p;
  s3.kernels[k].knobs["stages"] = int64_t(3);
  EXPECT_NE(gen(s3).source.find("3 stages, B"), std::string::npos);
  s3.kernels[k].knobs["gemm_path"] = std::string("wgmma_cp_async");
  EXPECT_NE(gen(s3).source.find("3 cp.async stages"), std::string::npos);
  s3.kernels[k].knobs.erase("gemm_path");
  s3.kernels[k].knobs["stages"] = int64_t(9);
  EXPECT_FALSE(gen(s3).kernels[k].knobIssue.empty());
  EXPECT_EQ(gen(s3).kernels[k].gemm.wgmmaConfig.stages, 4);

  // Row kernels: warps sets the block; rows beyond 16 elements a thread
  // leave registers and are read once per stage.
  sir::Program rows = parse("tessera-schedule v1\nsymbols B S\n" + tessera::testing::softmaxKernel("bf16", "vector=8"));
  int64_t shape[] = {16384, 4096};
  LaunchConfig c;
  std::string error;
  for (int64_t w : {1, 4, 16}) {
    sir::Program q = rows;
    q.kernels[0].knobs["warps"] = w;
    ASSERT_TRUE(planLaunch(q, 0, gen(q).kernels[0], shape, 132, &c, &error));
    EXPECT_EQ(c.mode, LaunchMode::Block);
    EXPECT_EQ(c.block[0], uint32_t(32 * w));
  }
  CostResult dflt = cost(rows, 0, {}, shape), w8 = cost(rows, 0, {{"warps", int64_t(8)}}, shape);
  CostResult w2 = cost(rows, 0, {{"warps", int64_t(2)}}, shape);
  EXPECT_TRUE(w8.feasible && w2.feasible) << w8.reason << w2.reason;
  EXPECT_DOUBLE_EQ(dflt.seconds, w8.seconds) << "the default block is 8 warps for 4096-element rows";
  EXPECT_LT(w8.seconds, w2.seconds);
  EXPECT_FALSE(cost(rows, 0, {{"warps", int64_t(32)}}, shape).feasible);
  EXPECT_FALSE(cost(rows, 0, {{"threads", int64_t(1)}}, shape).feasible);
  EXPECT_FALSE(cost(p, k, {{"warps", int64_t(4)}}, big).feasible) << "warps: row kernels only";
}

TEST(CudaCublasLt, LoaderReportsItself) {
  std::string why;
  bool ok = cublasLtAvailable(&why);
  std::printf("cuBLASLt here: %s\n", cublasLtDescription().c_str());
  if (!ok) {
    EXPECT_FALSE(why.empty());
    GTEST_SKIP() << why;
  }
  EXPECT_NE(cublasLtDescription().find("cuBLASLt"), std::string::npos);
}

// ---- the plugin through its ABI --------------------------------------------------

tessera_status_t *statusCreate(tessera_status_code_t code, const char *message) {
  return code == TESSERA_STATUS_OK ? nullptr : new tessera_status_t{code, message ? message : ""};
}
void *hostAllocate(void *, size_t size, size_t alignment) {
  return std::aligned_alloc(alignment < 16 ? 16 : alignment, (size + 15) / 16 * 16);
}
void hostDeallocate(void *, void *p) { std::free(p); }

struct Status {
  tessera_status_code_t code = TESSERA_STATUS_OK;
  std::string message;
  explicit Status(tessera_status_t *s) {
    if (s) {
      code = s->code;
      message = s->message;
      delete s;
    }
  }
};

class CudaPlugin : public ::testing::Test {
protected:
  void SetUp() override {
    std::string path = std::string(TESSERA_TEST_PLUGIN_DIR) + "/libtessera-backend-cuda.so";
    lib_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << dlerror();
    auto entry = reinterpret_cast<tessera_backend_get_api_fn_t>(dlsym(lib_, TESSERA_BACKEND_ENTRY_SYMBOL));
    ASSERT_NE(entry, nullptr);
    host_.struct_size = sizeof(host_);
    host_.abi_min_major = host_.abi_max_major = TESSERA_ABI_VERSION_MAJOR;
    host_.abi_min_minor = 0;
    host_.abi_max_minor = TESSERA_ABI_VERSION_MINOR;
    host_.status_create = statusCreate;
    host_.allocate = hostAllocate;
    host_.deallocate = hostDeallocate;
    ASSERT_EQ(Status(entry(&host_, &api_)).code, TESSERA_STATUS_OK);
    ASSERT_EQ(Status(api_->initialize(&host_, &plugin_)).code, TESSERA_STATUS_OK);
  }
  void TearDown() override {
    if (plugin_) {
      EXPECT_EQ(Status(api_->shutdown(plugin_)).code, TESSERA_STATUS_OK);
    }
    if (lib_)
      dlclose(lib_);
  }
  bool hasDevice() {
    uint32_t n = 0;
    Status s(api_->device_count(plugin_, &n));
    return n > 0;
  }

  Status compile(const std::string &text, const char *arch, tessera_backend_executable_t **exe,
                 std::map<std::string, std::string> *dumps = nullptr, const char *format = sir::kProgramFormat) {
    tessera_device_description_t desc{};
    desc.struct_size = sizeof(desc);
    desc.plugin = "cuda";
    desc.architecture = arch;
    tessera_backend_compile_args_t args{};
    args.struct_size = sizeof(args);
    args.program = text.data();
    args.program_size = text.size();
    args.program_format = format;
    args.target = &desc;
    args.device_ordinal = -1;
    if (dumps) {
      args.dump_stages = "tile,target";
      args.dump = [](void *user, const char *stage, const char *t, size_t n) {
        (*static_cast<std::map<std::string, std::string> *>(user))[stage] = std::string(t, n);
      };
      args.dump_user_data = dumps;
    }
    return Status(api_->compile(plugin_, &args, exe));
  }

  void *lib_ = nullptr;
  tessera_backend_host_t host_{};
  const tessera_backend_api_t *api_ = nullptr;
  tessera_backend_plugin_t *plugin_ = nullptr;
};

const char *kExp = "tessera-schedule v1\nsymbols B\nkernel \"exp\" loop {\n  operand 0 in f32 [s0, 4]\n"
                   "  operand 1 out f32 [s0, 4]\n  parallel [s0]\n  stage map [4] {\n    v0: f32 = load 0 [p0, r0]\n"
                   "    v1: f32 = exp v0\n    store 1 [p0, r0] v1\n  }\n}\n";

TEST_F(CudaPlugin, TableAndNoDeviceStatus) {
  EXPECT_STREQ(api_->name, "cuda");
  EXPECT_NE(api_->compile, nullptr);
  EXPECT_NE(api_->launch, nullptr);
  EXPECT_NE(api_->synchronize, nullptr);
  EXPECT_NE(api_->executable_serialize, nullptr);
  EXPECT_NE(api_->executable_load, nullptr);
  // Cost model and measurement extensions are chained.
  bool cost = false, measure = false;
  for (const tessera_backend_extension_t *e = api_->extensions; e; e = e->next) {
    cost |= e->type == TESSERA_BACKEND_EXTENSION_COST_MODEL;
    measure |= e->type == TESSERA_BACKEND_EXTENSION_MEASUREMENT;
  }
  EXPECT_TRUE(cost);
  EXPECT_TRUE(measure);
  uint32_t n = 99;
  Status s(api_->device_count(plugin_, &n));
  if (n > 0)
    GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(s.code, TESSERA_STATUS_NO_DEVICE) << s.message;
  EXPECT_FALSE(s.message.empty());
  std::printf("cuda plugin here: %s\n", s.message.c_str());
  tessera_backend_buffer_t *b = nullptr;
  EXPECT_EQ(Status(api_->buffer_allocate(plugin_, 0, 64, &b)).code, TESSERA_STATUS_NO_DEVICE);
  EXPECT_EQ(Status(api_->synchronize(plugin_, 0)).code, TESSERA_STATUS_NO_DEVICE);
  // Zero-copy import (ABI 0.2): present, and refused without a device.
  ASSERT_NE(api_->buffer_wrap, nullptr);
  float host[4] = {};
  EXPECT_EQ(Status(api_->buffer_wrap(plugin_, 0, host, sizeof(host), &b)).code, TESSERA_STATUS_NO_DEVICE);
}

TEST_F(CudaPlugin, CompileOnlySerializeAndValidate) {
  REQUIRE_NVRTC();
  for (const char *arch : {"sm_80", "sm_90a"}) {
    SCOPED_TRACE(arch);
    tessera_backend_executable_t *exe = nullptr;
    std::map<std::string, std::string> dumps;
    Status s = compile(kExp, arch, &exe, &dumps);
    ASSERT_EQ(s.code, TESSERA_STATUS_OK) << s.message;
    EXPECT_NE(dumps["tile"].find("__global__"), std::string::npos);
    EXPECT_NE(dumps["target"].find(".target " + std::string(arch)), std::string::npos) << dumps["target"].substr(0, 400);
    void *data = nullptr;
    size_t size = 0;
    ASSERT_EQ(Status(api_->executable_serialize(plugin_, exe, &data, &size)).code, TESSERA_STATUS_OK);
    std::string bytes(static_cast<char *>(data), size);
    hostDeallocate(nullptr, data);
    EXPECT_EQ(bytes.compare(0, 7, "TSRCUDA"), 0);
    EXPECT_NE(bytes.find(arch), std::string::npos);
    EXPECT_NE(bytes.find("kernel \"exp\""), std::string::npos);
    EXPECT_EQ(Status(api_->executable_destroy(plugin_, exe)).code, TESSERA_STATUS_OK);

    tessera_backend_load_args_t load{};
    load.struct_size = sizeof(load);
    load.device_ordinal = 0;
    tessera_backend_executable_t *loaded = nullptr;
    // Damaged bytes are refused before any device is needed.
    for (size_t cut : {size_t(3), size / 2, size - 1}) {
      load.data = bytes.data();
      load.size = cut;
      EXPECT_EQ(Status(api_->executable_load(plugin_, &load, &loaded)).code, TESSERA_STATUS_CORRUPT_DATA) << cut;
    }
    std::string flipped = bytes;
    flipped[flipped.size() / 2] ^= 0x40;
    load.data = flipped.data();
    load.size = flipped.size();
    EXPECT_EQ(Status(api_->executable_load(plugin_, &load, &loaded)).code, TESSERA_STATUS_CORRUPT_DATA);
    std::string future = bytes;
    future[8] = 9; // format version
    load.data = future.data();
    EXPECT_EQ(Status(api_->executable_load(plugin_, &load, &loaded)).code, TESSERA_STATUS_INCOMPATIBLE_VERSION);
    // Intact bytes: valid, then the device decides.
    load.data = bytes.data();
    load.size = bytes.size();
    Status l(api_->executable_load(plugin_, &load, &loaded));
    if (hasDevice()) {
      if (l.code == TESSERA_STATUS_OK)
        api_->executable_destroy(plugin_, loaded);
      else
        EXPECT_EQ(l.code, TESSERA_STATUS_INCOMPATIBLE_VERSION) << l.message;
    } else {
      EXPECT_EQ(l.code, TESSERA_STATUS_NO_DEVICE) << l.message;
    }
  }
}

TEST_F(CudaPlugin, CompileErrors) {
  REQUIRE_NVRTC();
  tessera_backend_executable_t *exe = nullptr;
  Status a = compile(kExp, "sm_75", &exe);
  EXPECT_EQ(a.code, TESSERA_STATUS_UNSUPPORTED);
  EXPECT_NE(a.message.find("sm_80"), std::string::npos) << a.message;
  Status b = compile(kExp, "sm_999", &exe);
  EXPECT_EQ(b.code, TESSERA_STATUS_UNSUPPORTED);
  EXPECT_NE(b.message.find("sm_999"), std::string::npos) << b.message;
  Status c = compile(kExp, "gfx942", &exe);
  EXPECT_EQ(c.code, TESSERA_STATUS_UNSUPPORTED);
  Status d = compile("tessera-schedule v1\nkernel", "sm_80", &exe);
  EXPECT_EQ(d.code, TESSERA_STATUS_INVALID_ARGUMENT) << d.message;
  Status e = compile(kExp, "sm_80", &exe, nullptr, "no-such-format");
  EXPECT_EQ(e.code, TESSERA_STATUS_UNSUPPORTED);
  EXPECT_NE(e.message.find("no-such-format"), std::string::npos);
  // Every program of the construct list compiles through the ABI too.
  for (const auto &[name, text] : tessera::cuda::test::programs()) {
    Status s = compile(text, "sm_90a", &exe);
    EXPECT_EQ(s.code, TESSERA_STATUS_OK) << name << ": " << s.message;
    if (s.code == TESSERA_STATUS_OK)
      api_->executable_destroy(plugin_, exe);
  }
}

TEST_F(CudaPlugin, CostModelExtension) {
  const tessera_backend_cost_model_extension_t *cost = nullptr;
  for (const tessera_backend_extension_t *e = api_->extensions; e; e = e->next)
    if (e->type == TESSERA_BACKEND_EXTENSION_COST_MODEL)
      cost = reinterpret_cast<const tessera_backend_cost_model_extension_t *>(e);
  ASSERT_NE(cost, nullptr);
  std::string text = kExp;
  tessera_device_description_t desc{};
  desc.struct_size = sizeof(desc);
  desc.plugin = "cuda";
  desc.architecture = "sm_90a";
  int64_t scalars[] = {1 << 20};
  tessera_backend_cost_query_t q{};
  q.struct_size = sizeof(q);
  q.program = text.data();
  q.program_size = text.size();
  q.program_format = sir::kProgramFormat;
  q.target = &desc;
  q.scalars = scalars;
  q.num_scalars = 1;
  tessera_backend_cost_estimate_t est{};
  est.struct_size = sizeof(est);
  ASSERT_EQ(Status(cost->estimate(plugin_, &q, &est)).code, TESSERA_STATUS_OK);
  EXPECT_TRUE(est.feasible);
  EXPECT_DOUBLE_EQ(est.bytes, 2.0 * 4 * (1 << 20) * 4);
  // Memory bound: about bytes / 3.35 TB/s on an H100.
  EXPECT_GT(est.seconds, est.bytes / 3.35e12);
  EXPECT_LT(est.seconds, 10 * est.bytes / 3.35e12 + 1e-5);
  q.kernel_index = 5;
  EXPECT_EQ(Status(cost->estimate(plugin_, &q, &est)).code, TESSERA_STATUS_INVALID_ARGUMENT);
}

} // namespace
