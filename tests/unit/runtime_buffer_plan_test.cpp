// Buffer planning by liveness (core/runtime/BufferPlan.h).
#include "runtime/BufferPlan.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace tessera;
using namespace tessera::runtime;
using fusion::OperandBinding;

namespace {

using Kind = OperandBinding::Kind;

// A fused program whose kernels are given as lists of (binding, role). Each
// kernel body is empty: liveness only reads bindings and roles.
struct ProgramBuilder {
  fusion::FusedProgram p;
  void intermediates(size_t n) {
    for (size_t i = 0; i < n; ++i)
      p.intermediates.push_back({"t" + std::to_string(i), {}});
  }
  void kernel(std::vector<std::pair<OperandBinding, schedule::OperandRole>> operands) {
    schedule::Kernel k;
    k.name = "k" + std::to_string(p.kernels.size());
    fusion::KernelPlan plan;
    for (auto &[b, role] : operands) {
      schedule::Operand o;
      o.role = role;
      k.operands.push_back(o);
      plan.operands.push_back(b);
    }
    p.schedule.kernels.push_back(std::move(k));
    p.kernels.push_back(std::move(plan));
  }
};

constexpr auto In = schedule::OperandRole::In;
constexpr auto Out = schedule::OperandRole::Out;
OperandBinding param(uint32_t i) { return {Kind::Param, i}; }
OperandBinding result(uint32_t i) { return {Kind::Result, i}; }
OperandBinding inter(uint32_t i) { return {Kind::Intermediate, i}; }

// Brute-force check: intermediates sharing a slot never live at once, and
// every slot is at least as large as each tenant.
void expectValid(const std::vector<Interval> &live, const std::vector<uint64_t> &sizes, const BufferPlan &plan,
                 bool allowInPlace = false) {
  ASSERT_EQ(plan.slotOf.size(), live.size());
  uint64_t sum = 0;
  for (uint64_t b : plan.slotBytes)
    sum += b;
  EXPECT_EQ(sum, plan.arenaBytes);
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_GE(plan.slotBytes[plan.slotOf[i]], sizes[i]);
    for (size_t j = i + 1; j < live.size(); ++j) {
      if (plan.slotOf[i] != plan.slotOf[j])
        continue;
      bool overlap = live[i].first <= live[j].last && live[j].first <= live[i].last;
      bool touching = live[i].last == live[j].first || live[j].last == live[i].first;
      if (overlap && !(allowInPlace && touching))
        ADD_FAILURE() << "intermediates " << i << " and " << j << " share slot " << plan.slotOf[i]
                      << " while both live";
    }
  }
}

} // namespace

TEST(BufferPlan, LivenessFollowsKernelOrder) {
  // x -> k0 -> t0 -> k1 -> t1 -> k2 (reads t0, t1) -> y
  ProgramBuilder b;
  b.intermediates(2);
  b.kernel({{param(0), In}, {inter(0), Out}});
  b.kernel({{inter(0), In}, {inter(1), Out}});
  b.kernel({{inter(0), In}, {inter(1), In}, {result(0), Out}});
  Expected<std::vector<Interval>> live = computeLiveness(b.p);
  ASSERT_TRUE(live) << live.error().message();
  EXPECT_EQ((*live)[0].first, 0u);
  EXPECT_EQ((*live)[0].last, 2u);
  EXPECT_EQ((*live)[1].first, 1u);
  EXPECT_EQ((*live)[1].last, 2u);
}

TEST(BufferPlan, ReadBeforeWriteIsAnInternalError) {
  ProgramBuilder b;
  b.intermediates(1);
  b.kernel({{inter(0), In}, {result(0), Out}});
  Expected<std::vector<Interval>> live = computeLiveness(b.p);
  ASSERT_FALSE(live);
  EXPECT_EQ(live.error().code(), ErrorCode::Internal);
  EXPECT_NE(live.error().message().find("t0"), std::string::npos);
}

TEST(BufferPlan, ChainReusesTwoSlots) {
  // A chain t0 -> t1 -> ... -> t7: at most two are alive at any kernel.
  std::vector<Interval> live;
  std::vector<uint64_t> sizes;
  for (uint32_t i = 0; i < 8; ++i) {
    live.push_back({i, i + 1});
    sizes.push_back(4096);
  }
  BufferPlan plan = planBuffers(live, sizes);
  expectValid(live, sizes, plan);
  EXPECT_EQ(plan.slotBytes.size(), 2u);
  EXPECT_EQ(plan.arenaBytes, 2u * 4096);
  EXPECT_EQ(plan.peakLiveBytes, 2u * 4096);
  EXPECT_EQ(plan.totalBytes, 8u * 4096);
}

TEST(BufferPlan, OverlappingIntervalsNeverShare) {
  std::vector<Interval> live = {{0, 5}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {0, 1}};
  std::vector<uint64_t> sizes = {100, 200, 300, 50, 1000, 64};
  BufferPlan plan = planBuffers(live, sizes);
  expectValid(live, sizes, plan);
  // Peak = the most expensive kernel's live set, after 64-byte alignment.
  uint64_t peak = 0;
  for (uint32_t k = 0; k <= 5; ++k) {
    uint64_t at = 0;
    for (size_t i = 0; i < live.size(); ++i)
      if (live[i].first <= k && k <= live[i].last)
        at += alignSize(sizes[i]);
    peak = std::max(peak, at);
  }
  EXPECT_EQ(plan.peakLiveBytes, peak);
  EXPECT_GE(plan.arenaBytes, plan.peakLiveBytes);
  EXPECT_LT(plan.arenaBytes, plan.totalBytes);
}

TEST(BufferPlan, RandomIntervalsStayValidAndNearPeak) {
  uint64_t seed = 12345;
  auto next = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  for (int round = 0; round < 50; ++round) {
    std::vector<Interval> live;
    std::vector<uint64_t> sizes;
    size_t n = 1 + next(40);
    for (size_t i = 0; i < n; ++i) {
      uint32_t first = static_cast<uint32_t>(next(30));
      live.push_back({first, first + static_cast<uint32_t>(next(4))});
      sizes.push_back(64 * (1 + next(16)));
    }
    BufferPlan plan = planBuffers(live, sizes);
    expectValid(live, sizes, plan);
    EXPECT_GE(plan.arenaBytes, plan.peakLiveBytes);
    EXPECT_LE(plan.arenaBytes, plan.totalBytes);
  }
}

TEST(BufferPlan, InPlaceTakesTheDyingInputsSlot) {
  // t0 -> k1 (elementwise) -> t1 -> k2 -> y: t1 may overwrite t0.
  std::vector<Interval> live = {{0, 1}, {1, 2}};
  std::vector<uint64_t> sizes = {4096, 4096};
  BufferPlan without = planBuffers(live, sizes);
  EXPECT_EQ(without.slotBytes.size(), 2u);
  BufferPlan with = planBuffers(live, sizes, {{1, 0}});
  expectValid(live, sizes, with, /*allowInPlace=*/true);
  EXPECT_EQ(with.slotBytes.size(), 1u);
  EXPECT_EQ(with.inPlace, 1u);
  EXPECT_EQ(with.arenaBytes, 4096u);
}

TEST(BufferPlan, FindsElementwiseInPlaceCandidates) {
  using schedule::IndexExpr;
  ProgramBuilder b;
  b.intermediates(2);
  b.kernel({{param(0), In}, {inter(0), Out}});
  b.kernel({{inter(0), In}, {inter(1), Out}});
  b.kernel({{inter(1), In}, {result(0), Out}});
  // Kernel 1: v0 = load 0 [p0]; v1 = exp v0; store 1 [p0] v1.
  schedule::Kernel &k = b.p.schedule.kernels[1];
  for (auto &o : k.operands)
    o.shape = {IndexExpr::constant(16)};
  k.parallel = {IndexExpr::constant(16)};
  schedule::Stage stage;
  schedule::Instr load;
  load.result = 0;
  load.dtype = TESSERA_DTYPE_F32;
  load.op = schedule::Op::Load;
  load.operand = 0;
  load.index = {IndexExpr::parallel(0)};
  schedule::Instr ex;
  ex.result = 1;
  ex.dtype = TESSERA_DTYPE_F32;
  ex.op = schedule::Op::Exp;
  ex.args = {0};
  schedule::Instr store;
  store.isStore = true;
  store.operand = 1;
  store.index = {IndexExpr::parallel(0)};
  store.args = {1};
  stage.body = {load, ex, store};
  k.stages.push_back(stage);

  Expected<std::vector<Interval>> live = computeLiveness(b.p);
  ASSERT_TRUE(live);
  std::vector<InPlaceCandidate> c = findInPlaceCandidates(b.p, *live);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].output, 1u);
  EXPECT_EQ(c[0].input, 0u);

  // A transposed read is not in place.
  k.stages[0].body[0].index = {IndexExpr::binary(IndexExpr::Kind::Sub, IndexExpr::constant(15), IndexExpr::parallel(0))};
  EXPECT_TRUE(findInPlaceCandidates(b.p, *live).empty());
}
