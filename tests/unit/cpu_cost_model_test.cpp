// The cpu plugin's cost model (backends/cpu/CostModel.h): the orderings it
// must predict whatever its calibration, on a fixed machine model (2 cores,
// 32 KiB L1, 1 MiB L2, 32 MiB L3, AVX-512) so that the test does not depend
// on the host. Each case compares two knob settings of one kernel.
#include "CostModel.h"
#include "OneDnn.h"

#include "tessera/sdk/schedule_ir.h"

#include <gtest/gtest.h>

#include <string>

namespace {

namespace sir = tessera::schedule;
using namespace tessera::cpu;

MachineModel machine(unsigned cores = 2) {
  MachineModel m;
  m.cores = cores;
  m.ghz = 3.0;
  m.fmaLanesPerCycle = 16;
  m.cacheBytes[0] = 32 << 10;
  m.cacheBytes[1] = 1 << 20;
  m.cacheBytes[2] = 32 << 20;
  return m;
}

TargetInfo avx512() {
  TargetInfo t;
  t.architecture = "x86-64-v4";
  t.cpu = "x86-64-v4";
  t.vectorBits = 512;
  t.fma = true;
  t.avx512 = true;
  return t;
}

std::string n(int64_t v) { return std::to_string(v); }

// C[m, n] = sum_k A[m, k] * B[k, n], f32.
std::string gemm(int64_t m, int64_t nn, int64_t k, const std::string &knobs) {
  return "tessera-schedule v1\nsymbols\nkernel \"mm\" matmul {\n"
         "  operand 0 in f32 [" + n(m) + ", " + n(k) + "]\n"
         "  operand 1 in f32 [" + n(k) + ", " + n(nn) + "]\n"
         "  operand 2 out f32 [" + n(m) + ", " + n(nn) + "]\n"
         "  parallel [" + n(m) + ", " + n(nn) + "]\n"
         "  knobs " + knobs + "\n"
         "  stage reduce [" + n(k) + "] {\n"
         "    v0: f32 = load 0 [p0, r0]\n    v1: f32 = load 1 [r0, p1]\n"
         "    v2: f32 = mul v0 v1\n    v3: f32 = reduce sum v2\n  }\n"
         "  stage map [] {\n    store 2 [p0, p1] v3\n  }\n}\n";
}

// y[r, c] = exp(x[r, c]) * 2: no inner loops, so the innermost parallel
// loop is the vectorized one.
std::string elementwise(int64_t rows, int64_t cols, const std::string &knobs) {
  return "tessera-schedule v1\nsymbols\nkernel \"ew\" loop {\n"
         "  operand 0 in f32 [" + n(rows) + ", " + n(cols) + "]\n"
         "  operand 1 out f32 [" + n(rows) + ", " + n(cols) + "]\n"
         "  parallel [" + n(rows) + ", " + n(cols) + "]\n"
         "  knobs " + knobs + "\n"
         "  stage map [] {\n    v0: f32 = load 0 [p0, p1]\n    v1: f32 = exp v0\n"
         "    v2: f32 = const 2\n    v3: f32 = mul v1 v2\n    store 1 [p0, p1] v3\n  }\n}\n";
}

// Row sums s[r] = sum_c x[r, c]: one tile per row block.
std::string rowSum(int64_t rows, int64_t cols, const std::string &knobs) {
  return "tessera-schedule v1\nsymbols\nkernel \"rs\" loop {\n"
         "  operand 0 in f32 [" + n(rows) + ", " + n(cols) + "]\n"
         "  operand 1 out f32 [" + n(rows) + "]\n"
         "  parallel [" + n(rows) + "]\n"
         "  knobs " + knobs + "\n"
         "  stage reduce [" + n(cols) + "] {\n    v0: f32 = load 0 [p0, r0]\n    v1: f32 = reduce sum v0\n  }\n"
         "  stage map [] {\n    store 1 [p0] v1\n  }\n}\n";
}

double predict(const std::string &text, const MachineModel &m = machine()) {
  sir::Program p;
  sir::ParseError err;
  EXPECT_TRUE(sir::parseProgram(text, &p, &err)) << err.str() << "\n" << text;
  if (p.kernels.empty())
    return -1;
  CostResult r = estimateKernelCost(p, 0, avx512(), m, nullptr, 0);
  EXPECT_TRUE(r.feasible) << r.reason;
  EXPECT_GT(r.seconds, 0);
  return r.seconds;
}

TEST(CpuCostModel, GemmBlockBeyondL2IsSlowerThanOneThatFits) {
  // KC x NC of B (re-read for every row sliver) plus the MC x NC block of C:
  // 0.5 MiB + 0.36 MiB fit in the 1 MiB L2; 4 MiB + 1.4 MiB do not.
  const std::string fits = gemm(2048, 2048, 2048, "threads=1 mc=182 kc=256 nc=512");
  const std::string spills = gemm(2048, 2048, 2048, "threads=1 mc=182 kc=512 nc=2048");
  // Two 512-bit FMAs per cycle: B from L3 cannot keep up with the FMAs.
  MachineModel wide = machine();
  wide.fmaLanesPerCycle = 32;
  EXPECT_GT(predict(spills, wide), 1.2 * predict(fits, wide));
  // 512-bit FMAs in two halves (Zen 4): the FMAs hide the B traffic, the C
  // tile updates from L3 still cost.
  EXPECT_GT(predict(spills), predict(fits));
}

TEST(CpuCostModel, GemmShortPanelsCostMoreCalls) {
  // The same blocks, KC = 16 vs 256: 16 times the micro-kernel calls and C
  // tile updates for the same FMAs.
  EXPECT_GT(predict(gemm(512, 512, 1024, "threads=1 mc=182 kc=16 nc=256")),
            predict(gemm(512, 512, 1024, "threads=1 mc=182 kc=256 nc=256")) * 1.05);
}

TEST(CpuCostModel, GemmEdgeRowsPadToWholeMicroTiles) {
  // The generated path: 29 rows run as 3 micro-tiles of 14, 28 rows as 2:
  // time per row grows.
  double t28 = predict(gemm(28, 1024, 1024, "threads=1 library=\"none\""));
  double t29 = predict(gemm(29, 1024, 1024, "threads=1 library=\"none\""));
  EXPECT_GT(t29 / 29, t28 / 28 * 1.2);
}

TEST(CpuCostModel, GemmThreadsHelpOnlyWithTasksToShare) {
  // On either engine (without oneDNN both lines cost the generated path).
  for (const std::string library : {"", " library=\"none\""}) {
    // Many blocks: two threads are faster than one.
    EXPECT_LT(predict(gemm(1024, 1024, 512, "threads=2" + library)),
              0.7 * predict(gemm(1024, 1024, 512, "threads=1" + library)));
    // More threads than cores: no gain over using every core.
    EXPECT_DOUBLE_EQ(predict(gemm(1024, 1024, 512, "threads=8" + library)),
                     predict(gemm(1024, 1024, 512, "threads=2" + library)));
  }
}

TEST(CpuCostModel, GemmLibraryBlocksFollowTheEngine) {
  // Without knobs the model costs the engine the launch takes: oneDNN's
  // BLAS blocks when built in, which skip the generated path's padding of
  // 29 rows to three 14-row micro-tiles.
  const double dflt = predict(gemm(29, 1024, 1024, "threads=1"));
  const double generated = predict(gemm(29, 1024, 1024, "threads=1 library=\"none\""));
  if (oneDnnBuilt())
    EXPECT_LT(dflt, generated);
  else
    EXPECT_DOUBLE_EQ(dflt, generated);
  // Blocking knobs tune the generated driver, so they select it.
  EXPECT_DOUBLE_EQ(predict(gemm(29, 1024, 1024, "threads=1 mc=182 kc=256 nc=512")),
                   predict(gemm(29, 1024, 1024, "threads=1 library=\"none\" mc=182 kc=256 nc=512")));
}

TEST(CpuCostModel, LoopThreadsBeyondTilesGainNothing) {
  // One tile: a second thread has nothing to do (and the pool is not woken).
  MachineModel four = machine(4);
  EXPECT_DOUBLE_EQ(predict(rowSum(1024, 256, "threads=4 tile=[1024]"), four),
                   predict(rowSum(1024, 256, "threads=1 tile=[1024]"), four));
  // Two tiles on four threads are no faster than on two.
  EXPECT_DOUBLE_EQ(predict(rowSum(1024, 256, "threads=4 tile=[512]"), four),
                   predict(rowSum(1024, 256, "threads=2 tile=[512]"), four));
  // But two tiles on two threads beat one thread.
  EXPECT_LT(predict(rowSum(1024, 256, "threads=2 tile=[512]"), four),
            0.7 * predict(rowSum(1024, 256, "threads=1 tile=[512]"), four));
}

TEST(CpuCostModel, LoopLoadImbalance) {
  // Three equal tiles on two threads take two tiles' time: slower than two
  // tiles, although each tile is smaller; on one thread they are even.
  // Rows of 8 KiB, so that each tile's work dwarfs the pool's overheads.
  double three = predict(rowSum(3072, 2048, "threads=2 tile=[1024]"));
  double two = predict(rowSum(3072, 2048, "threads=2 tile=[1536]"));
  EXPECT_GT(three, two * 1.2);
  EXPECT_NEAR(predict(rowSum(3072, 2048, "threads=1 tile=[1024]")),
              predict(rowSum(3072, 2048, "threads=1 tile=[1536]")), 0.01 * two);
}

TEST(CpuCostModel, LoopVectorRemainder) {
  // Tiles of 16 columns are one AVX-512 vector; 15 run as a scalar
  // remainder; a single column never vectorizes.
  double t16 = predict(elementwise(512, 1024, "threads=1 tile=[512, 16]"));
  double t15 = predict(elementwise(512, 1020, "threads=1 tile=[512, 15]"));
  double t1 = predict(elementwise(512, 1024, "threads=1 tile=[512, 1]"));
  EXPECT_GT(t15, 3 * t16);
  EXPECT_GT(t1, 3 * t16);
}

TEST(CpuCostModel, LoopSmallTilesCostOverhead) {
  // Per-tile and (with helpers) per-task costs: one-row tiles are never
  // faster than larger ones.
  for (const char *threads : {"threads=1", "threads=2"}) {
    std::string t = threads;
    EXPECT_GE(predict(rowSum(2048, 256, t + " tile=[1]")), predict(rowSum(2048, 256, t + " tile=[64]")));
    EXPECT_GE(predict(rowSum(2048, 256, t + " tile=[4]")), predict(rowSum(2048, 256, t + " tile=[64]")));
  }
}

TEST(CpuCostModel, LoopTilesAreHandedOutInChunks) {
  // With helpers, 2048 one-row tiles run as the same 16 tasks as 32 tiles
  // of 64 rows (launchChunk), so the smaller tiles pay only their index
  // decode, not a pool task each.
  EXPECT_EQ(launchChunk(2048, 2), 128);
  EXPECT_EQ(launchChunk(32, 2), 2);
  EXPECT_EQ(launchChunk(5, 2), 1);
  EXPECT_EQ(launchChunk(2048, 1), 2048);
  double one = predict(rowSum(2048, 256, "threads=2 tile=[1]"));
  double sixtyFour = predict(rowSum(2048, 256, "threads=2 tile=[64]"));
  EXPECT_LT(one, sixtyFour * 1.1);
  // One tile is one task: it runs on the caller alone, as on one thread.
  EXPECT_EQ(predict(rowSum(2048, 256, "threads=2 tile=[2048]")), predict(rowSum(2048, 256, "threads=1 tile=[2048]")));
  EXPECT_GT(predict(rowSum(2048, 256, "threads=2 tile=[2048]")), sixtyFour * 1.5);
}

TEST(CpuCostModel, KnobsTheCodeIgnoresAreInfeasible) {
  sir::Program p;
  sir::ParseError err;
  ASSERT_TRUE(sir::parseProgram(rowSum(64, 64, "unroll=4"), &p, &err)) << err.str();
  CostResult r = estimateKernelCost(p, 0, avx512(), machine(), nullptr, 0);
  EXPECT_FALSE(r.feasible);
  EXPECT_NE(r.reason.find("unroll"), std::string::npos);
}

} // namespace
