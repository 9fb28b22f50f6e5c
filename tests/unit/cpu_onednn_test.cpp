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

// y[b, m, n] = gelu(sum_k x[b, m, k] * w[k, n]) + r[b, m, n]; w is read
// transposed from a [N, K] buffer when `transposed`.
std::string program(int64_t k, int64_t n, bool transposed, const std::string &library) {
  std::string wShape = transposed ? "[" + std::to_string(n) + ", " + std::to_string(k) + "]"
                                  : "[" + std::to_string(k) + ", " + std::to_string(n) + "]";
  std::string wIndex = transposed ? "[p2, r0]" : "[r0, p2]";
  std::string knobs = "vector=8" + (library.empty() ? std::string() : " library=\"" + library + "\"");
  return "tessera-schedule v1\n"
         "symbols B M\n"
         "kernel \"mm\" matmul {\n"
         "  operand 0 in f32 [s0, s1, " + std::to_string(k) + "]\n"
         "  operand 1 in f32 " + wShape + "\n"
         "  operand 2 in f32 [s0, s1, " + std::to_string(n) + "]\n"
         "  operand 3 out f32 [s0, s1, " + std::to_string(n) + "]\n"
         "  parallel [s0, s1, " + std::to_string(n) + "]\n"
         "  knobs " + knobs + "\n"
         "  stage reduce [" + std::to_string(k) + "] {\n"
         "    v0: f32 = load 0 [p0, p1, r0]\n"
         "    v1: f32 = load 1 " + wIndex + "\n"
         "    v2: f32 = mul v0 v1\n"
         "    v3: f32 = reduce sum v2\n"
         "  }\n"
         "  stage map [] {\n"
         "    v4: f32 = gelu_erf v3\n"
         "    v5: f32 = load 2 [p0, p1, p2]\n"
         "    v6: f32 = add v4 v5\n"
         "    store 3 [p0, p1, p2] v6\n"
         "  }\n"
         "}\n";
}

sir::Program parse(const std::string &text) {
  sir::Program p;
  sir::ParseError err;
  EXPECT_TRUE(sir::parseProgram(text, &p, &err)) << err.str() << "\n" << text;
  return p;
}

// Runs the program's kernel through the GEMM path; returns operand 3.
std::vector<float> run(const std::string &text, std::vector<std::vector<float>> ops, int64_t b, int64_t m) {
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
  EXPECT_TRUE(runGemm(p.kernels[0], form, jit->kernel(0), buffers.data(), scalars, 2, pool, 2, GemmBlocking{}));
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
  std::vector<float> generated = run(program(k, n, transposed, ""), ops, b, m);
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
