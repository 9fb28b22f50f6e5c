// The cpu plugin's oneDNN library choice (backends/cpu/OneDnn.h): matmul
// kernels with knob library="onednn" must give the generated GEMM path's
// numerics (random inputs, with epilogues, batched and transposed operands),
// and the cost model must call the knob feasible exactly when oneDNN is built
// in. Without oneDNN the numeric tests are skipped with the reason.
#include "CostModel.h"
#include "Gemm.h"
#include "OneDnn.h"
#include "ThreadPool.h"

#include "tessera/sdk/schedule_ir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

namespace sir = tessera::schedule;
using namespace tessera::cpu;

// y[b, m, n] = gelu(sum_k x[b, m, k] * w[k, n]) + r[b, m, n] (or the bare
// product when `plain`); x is read transposed from a [B, K, M] buffer when
// `aTrans`, w from a [N, K] buffer when `bTrans`; `knobs` is added to the
// kernel's knobs.
std::string layoutProgram(int64_t k, int64_t n, bool aTrans, bool bTrans, const std::string &knobs,
                          const std::string &dtype = "f32", bool plain = false) {
  const std::string K = std::to_string(k), N = std::to_string(n);
  return "tessera-schedule v1\n"
         "symbols B M\n"
         "kernel \"mm\" matmul {\n"
         "  operand 0 in " + dtype + (aTrans ? " [s0, " + K + ", s1]\n" : " [s0, s1, " + K + "]\n") +
         "  operand 1 in " + dtype + (bTrans ? " [" + N + ", " + K + "]\n" : " [" + K + ", " + N + "]\n") +
         "  operand 2 in f32 [s0, s1, " + N + "]\n"
         "  operand 3 out f32 [s0, s1, " + N + "]\n"
         "  parallel [s0, s1, " + N + "]\n"
         "  knobs vector=8" + (knobs.empty() ? "" : " " + knobs) + "\n"
         "  stage reduce [" + K + "] {\n"
         "    v0: f32 = load 0 " + (aTrans ? "[p0, r0, p1]" : "[p0, p1, r0]") + "\n"
         "    v1: f32 = load 1 " + (bTrans ? "[p2, r0]" : "[r0, p2]") + "\n"
         "    v2: f32 = mul v0 v1\n"
         "    v3: f32 = reduce sum v2\n"
         "  }\n"
         "  stage map [] {\n" +
         (plain ? std::string("    store 3 [p0, p1, p2] v3\n")
                : std::string("    v4: f32 = gelu_erf v3\n"
                              "    v5: f32 = load 2 [p0, p1, p2]\n"
                              "    v6: f32 = add v4 v5\n"
                              "    store 3 [p0, p1, p2] v6\n")) +
         "  }\n"
         "}\n";
}

std::string program(int64_t k, int64_t n, bool transposed, const std::string &library) {
  return layoutProgram(k, n, false, transposed, library.empty() ? "" : "library=\"" + library + "\"");
}

sir::Program parse(const std::string &text) {
  sir::Program p;
  sir::ParseError err;
  EXPECT_TRUE(sir::parseProgram(text, &p, &err)) << err.str() << "\n" << text;
  return p;
}

// Runs the program's kernel through the GEMM path; returns operand 3.
std::vector<float> run(const std::string &text, std::vector<std::vector<float>> ops, int64_t b, int64_t m,
                       unsigned threads = 2) {
  sir::Program p = parse(text);
  std::string error;
  CompileOptions options;
  options.target = hostTarget();
  std::unique_ptr<JitProgram> jit = JitProgram::compile(p, options, &error);
  EXPECT_TRUE(jit) << error;
  if (!jit)
    return {};
  GemmForm form;
  std::string why;
  EXPECT_TRUE(matchGemmForm(p.kernels[0], &form, &why)) << why;
  std::vector<void *> buffers;
  for (auto &o : ops)
    buffers.push_back(o.data());
  int64_t scalars[2] = {b, m};
  ThreadPool pool;
  EXPECT_TRUE(runGemm(p.kernels[0], form, jit->kernel(0), buffers.data(), scalars, 2, pool, threads, GemmBlocking{}));
  return ops[3];
}

void compare(int64_t b, int64_t m, int64_t k, int64_t n, bool transposed) {
  std::mt19937 rng(unsigned(b * 1000 + m * 10 + k + n));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto random = [&](size_t count, float scale) {
    std::vector<float> v(count);
    for (float &x : v)
      x = dist(rng) * scale;
    return v;
  };
  std::vector<std::vector<float>> ops = {random(size_t(b * m * k), 1.0f),
                                         random(size_t(k * n), 1.0f / std::sqrt(float(k))),
                                         random(size_t(b * m * n), 1.0f),
                                         std::vector<float>(size_t(b * m * n), NAN)};
  std::vector<float> generated = run(program(k, n, transposed, "none"), ops, b, m);
  std::vector<float> library = run(program(k, n, transposed, "onednn"), ops, b, m);
  ASSERT_EQ(generated.size(), library.size());
  double worst = 0;
  for (size_t i = 0; i < generated.size(); ++i) {
    ASSERT_TRUE(std::isfinite(library[i])) << "element " << i << " not written";
    worst = std::max(worst, double(std::fabs(generated[i] - library[i])) / (1.0 + std::fabs(generated[i])));
  }
  // Both sum in f32 in different orders: a few ulps per term.
  EXPECT_LT(worst, 1e-5) << b << "x" << m << "x" << k << "x" << n;
}

#define SKIP_WITHOUT_ONEDNN()                                                                                          \
  if (!oneDnnBuilt())                                                                                                  \
  GTEST_SKIP() << "the cpu plugin was built without oneDNN (TESSERA_WITH_ONEDNN=OFF or libdnnl-dev not installed)"

TEST(CpuOneDnn, MatmulMatchesGeneratedPath) {
  SKIP_WITHOUT_ONEDNN();
  compare(1, 64, 128, 96, false);
  compare(2, 37, 70, 53, false); // edges that are no multiple of any block
}

TEST(CpuOneDnn, TransposedWeights) {
  SKIP_WITHOUT_ONEDNN();
  compare(3, 50, 64, 40, true);
}

// The library call itself (so the kernel tests above cannot pass by falling
// back to the packed path): strided, batched, against float64.
TEST(CpuOneDnn, LibraryCallAgainstFloat64) {
  SKIP_WITHOUT_ONEDNN();
  const int64_t batches = 2, m = 19, k = 33, n = 27;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(size_t(batches * m * k)), b(size_t(n * k)); // B stored [n][k]: transposed
  for (float &x : a)
    x = dist(rng);
  for (float &x : b)
    x = dist(rng);
  LibraryGemm g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a.data();
  g.b = b.data();
  g.aStrideM = k;
  g.aStrideK = 1;
  g.bStrideK = 1;
  g.bStrideN = k;
  g.aOffset = {0, m * k};
  g.bOffset = {0, 0};
  std::vector<float> c(size_t(batches * m * n), NAN);
  std::string why;
  ASSERT_TRUE(oneDnnMatmul(g, c.data(), 2, &why)) << why;
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double want = 0;
        for (int64_t kk = 0; kk < k; ++kk)
          want += double(a[size_t((bi * m + i) * k + kk)]) * double(b[size_t(j * k + kk)]);
        EXPECT_NEAR(c[size_t((bi * m + i) * n + j)], want, 1e-4) << bi << "," << i << "," << j;
      }
}

GemmEngine engineOf(const std::string &text, int64_t b, int64_t m, LibraryShape *shape = nullptr) {
  sir::Program p = parse(text);
  GemmForm form;
  std::string why;
  EXPECT_TRUE(matchGemmForm(p.kernels[0], &form, &why)) << why;
  int64_t scalars[2] = {b, m};
  return chooseGemmEngine(p.kernels[0], form, scalars, shape);
}

// The default engine (oneDNN's sgemm per output block on the pool, the
// epilogue per block, or oneDNN storing a plain product itself) against
// float64, in every operand layout, with edge blocks, several blocks per
// batch and blocks across batches.
TEST(CpuOneDnn, BlasBlocksMatchFloat64InEveryLayout) {
  SKIP_WITHOUT_ONEDNN();
  struct Case {
    int64_t b, m, k, n;
    unsigned threads;
  };
  for (const Case &c : {Case{2, 37, 70, 53, 2}, Case{1, 300, 64, 700, 2}, Case{3, 5, 9, 130, 1}})
    for (bool aTrans : {false, true})
      for (bool bTrans : {false, true})
        for (bool plain : {false, true}) {
          const std::string text = layoutProgram(c.k, c.n, aTrans, bTrans, "", "f32", plain);
          LibraryShape shape;
          ASSERT_EQ(engineOf(text, c.b, c.m, &shape), GemmEngine::OneDnnBlas);
          EXPECT_EQ(shape.direct, plain);
          std::mt19937 rng(unsigned(c.m * 7 + c.k + aTrans * 2 + bTrans));
          std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
          auto random = [&](size_t count) {
            std::vector<float> v(count);
            for (float &x : v)
              x = dist(rng);
            return v;
          };
          std::vector<std::vector<float>> ops = {random(size_t(c.b * c.m * c.k)), random(size_t(c.k * c.n)),
                                                 random(size_t(c.b * c.m * c.n)),
                                                 std::vector<float>(size_t(c.b * c.m * c.n), NAN)};
          std::vector<float> got = run(text, ops, c.b, c.m, c.threads);
          ASSERT_EQ(got.size(), size_t(c.b * c.m * c.n));
          double worst = 0;
          for (int64_t bi = 0; bi < c.b; ++bi)
            for (int64_t i = 0; i < c.m; ++i)
              for (int64_t j = 0; j < c.n; ++j) {
                double acc = 0;
                for (int64_t kk = 0; kk < c.k; ++kk) {
                  double x = ops[0][size_t(aTrans ? (bi * c.k + kk) * c.m + i : (bi * c.m + i) * c.k + kk)];
                  double w = ops[1][size_t(bTrans ? j * c.k + kk : kk * c.n + j)];
                  acc += x * w;
                }
                const size_t at = size_t((bi * c.m + i) * c.n + j);
                double want = plain ? acc : 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0))) + ops[2][at];
                worst = std::max(worst, std::fabs(got[at] - want) / (1 + std::fabs(want)));
              }
          EXPECT_LT(worst, 1e-5) << c.b << "x" << c.m << "x" << c.k << "x" << c.n << " aTrans " << aTrans << " bTrans "
                                 << bTrans << " plain " << plain;
        }
}

TEST(CpuOneDnn, EngineChoice) {
  const GemmEngine blas = oneDnnBuilt() ? GemmEngine::OneDnnBlas : GemmEngine::Generated;
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, true, ""), 2, 64), blas);
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, true, "library=\"onednn\""), 2, 64), blas);
  // Batches sharing the weight, with A's rows running on from one batch
  // into the next, fold into M (the BLAS test above crosses batches within
  // a block); a transposed A does not fold.
  if (oneDnnBuilt()) {
    LibraryShape shape;
    engineOf(layoutProgram(64, 96, false, true, ""), 3, 40, &shape);
    EXPECT_EQ(shape.m, 120);
    EXPECT_EQ(shape.batches, 1);
    engineOf(layoutProgram(64, 96, true, true, ""), 3, 40, &shape);
    EXPECT_EQ(shape.m, 40);
    EXPECT_EQ(shape.batches, 3);
  }
  // The generated path when asked for, or tuned through its blocking knobs.
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, true, "library=\"none\""), 2, 64), GemmEngine::Generated);
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, true, "kc=32"), 2, 64), GemmEngine::Generated);
  // Too small to gain from oneDNN.
  EXPECT_EQ(engineOf(layoutProgram(4, 4, false, false, ""), 1, 4), GemmEngine::Generated);
  // Narrow operands: the BLAS call is f32 only; forced, dnnl::matmul.
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, false, "", "bf16"), 2, 64), GemmEngine::Generated);
  EXPECT_EQ(engineOf(layoutProgram(64, 96, false, false, "library=\"onednn\"", "bf16"), 2, 64),
            oneDnnBuilt() ? GemmEngine::OneDnnMatmul : GemmEngine::Generated);
}

TEST(CpuOneDnn, LibraryBlocking) {
  // One block per batch when it is small and there is one thread.
  LibraryBlocking b = libraryBlocking(128, 512, 1, 1);
  EXPECT_EQ(b.mc, 128);
  EXPECT_EQ(b.nc, 512);
  // Two blocks per thread, by halving the longer side.
  b = libraryBlocking(128, 512, 1, 2);
  EXPECT_EQ(b.mc, 128);
  EXPECT_EQ(b.nc, 128);
  // Blocks small enough for the epilogue to read them from L2.
  b = libraryBlocking(2048, 512, 1, 2);
  EXPECT_LE(b.mc * b.nc, kLibraryBlockElems);
  EXPECT_EQ(b.mc, 512);
  EXPECT_EQ(b.nc, 256);
  // Batches count as blocks.
  b = libraryBlocking(64, 64, 8, 2);
  EXPECT_EQ(b.mc, 64);
  EXPECT_EQ(b.nc, 64);
}

TEST(CpuOneDnn, CostModelFeasibility) {
  sir::Program withKnob = parse(program(64, 32, false, "onednn"));
  int64_t scalars[2] = {2, 16};
  CostResult r = estimateKernelCost(withKnob, 0, hostTarget(), hostMachineModel(), scalars, 2);
  EXPECT_EQ(r.feasible, oneDnnBuilt()) << r.reason;
  if (!oneDnnBuilt()) {
    EXPECT_NE(r.reason.find("onednn"), std::string::npos) << r.reason;
  }
}

} // namespace
