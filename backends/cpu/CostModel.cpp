#include "CostModel.h"

#include "Gemm.h"
#include "HostCpu.h"
#include "OneDnn.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <set>
#include <vector>

namespace tessera::cpu {

namespace sir = tessera::schedule;

// Calibration (the shared 2-vCPU AMD EPYC VM, Zen 4, 2026-11-21; low
// quantiles of repeated timings, the 2-thread ones from a quiet spell):
// - kClockRatio: the VM reports the 2.6 GHz base clock; the GEMM
//   micro-kernel retires 16 f32 FMA lanes per cycle (Zen 4 executes 512-bit
//   FMAs as two 256-bit halves), and the single-thread 256^3 GEMM's time
//   with K = 16 and K = 256 implies 3.5-3.6 GHz.
// - microCallCycles: the same GEMM with KC = 8, 16, 64, 256 (4864 to 152
//   micro-kernel calls): 13.5 ns more per call, C block in L2.
// - packBytesPerCycle: the K = 16 GEMM, whose time is mostly packing and
//   epilogue.
// - bytesPerCycle[2], l3BytesPerSecond: layer_norm 2048 x 256 (4 MiB moved,
//   inputs rotated through L3) on one thread (102-110 us) and two (52-60
//   us, the pool's workers spinning between launches).
// - forkJoinSeconds, taskSeconds: layer_norm on two threads with 2 tiles
//   against 32 and 2048 (tasks of launchChunk tiles): a worker spinning
//   between back-to-back launches starts within 1-2 us; a sleeping one took
//   25-50 us on this VM, which the spin (ThreadPool.h) avoids for the
//   launches a search measures and a module runs.
// - tileSeconds: layer_norm on one thread, 2048 tiles against 1 and 2: no
//   measurable difference (the one-row tiles were if anything faster).
namespace {

constexpr double kClockRatio = 1.38;

// Ops a vector pipe issues per cycle at the target's width: two FP pipes
// on the x86 cores the plugin targets.
constexpr double kVectorOpsPerCycle = 2;

// Cost of one scalar op of a loop body in vector-op slots: transcendentals
// are vector polynomials (libmvec), division and square root are long
// latency, loads share two load ports.
double opSlots(sir::Op op) {
  using O = sir::Op;
  switch (op) {
  case O::Const:
  case O::Index: return 0;
  case O::Load: return 0.5;
  case O::Exp: case O::Log: case O::Tanh: case O::Sigmoid: case O::GeluErf: case O::GeluTanh: case O::Silu:
  case O::Erf: case O::Sin: case O::Cos: case O::Pow: return 12;
  case O::Div: case O::Sqrt: case O::Rsqrt: case O::Reciprocal: case O::Mod: return 4;
  default: return 1;
  }
}

// Flops charged per scalar op (reported, not used for time).
double opFlops(sir::Op op) {
  using O = sir::Op;
  switch (op) {
  case O::Load:
  case O::Const:
  case O::Index:
  case O::Cast: return 0;
  default: return opSlots(op) >= 4 ? opSlots(op) : 1;
  }
}

int64_t eval(const sir::IndexExpr &e, const int64_t *scalars, const int64_t *par = nullptr) {
  return std::max<int64_t>(0, sir::evalIndex(e, scalars, par, nullptr, nullptr));
}

// True when e depends on a stage's inner loop variables (or on a value,
// which may).
bool usesInner(const sir::IndexExpr &e) {
  if (e.kind == sir::IndexExpr::Kind::Inner || e.kind == sir::IndexExpr::Kind::Value)
    return true;
  for (const sir::IndexExpr &a : e.args)
    if (usesInner(a))
      return true;
  return false;
}

bool usesParallelBelow(const sir::IndexExpr &e, int64_t limit) {
  if (e.kind == sir::IndexExpr::Kind::Parallel)
    return e.value < limit;
  for (const sir::IndexExpr &a : e.args)
    if (usesParallelBelow(a, limit))
      return true;
  return false;
}

// ---- Thread pool -------------------------------------------------------------

// Time of one launch phase: `durations[i]` seconds for task i, handed out in
// index order by ThreadPool::parallelFor to `threads` threads. One task, or
// one thread, runs on the caller without waking anyone. Otherwise the
// caller starts at once and the helpers after half the fork-join cost (the
// wake-up), each task costs taskSeconds more (the shared counter, the call),
// every idle thread takes the next task (greedy list scheduling), and the
// join costs the other half. For n equal tasks on p threads this gives the
// load-imbalance factor ceil(n / p) / (n / p) of the brief's model, and
// threads beyond the task count gain nothing.
double poolTime(const std::vector<double> &durations, unsigned threads, const MachineModel &m) {
  const size_t n = durations.size();
  if (n == 0)
    return 0;
  const unsigned p = unsigned(std::min<size_t>(std::max(1u, threads), n));
  if (p == 1) {
    double sum = 0;
    for (double d : durations)
      sum += d;
    return sum;
  }
  const double wake = m.forkJoinSeconds / 2;
  std::priority_queue<double, std::vector<double>, std::greater<double>> idle;
  idle.push(0);
  for (unsigned i = 1; i < p; ++i)
    idle.push(wake);
  double end = 0;
  for (double d : durations) {
    double t = idle.top() + d + m.taskSeconds;
    idle.pop();
    idle.push(t);
    end = std::max(end, t);
  }
  return end + m.forkJoinSeconds / 2;
}

// The same for `n` equal tasks without listing them: the last task starts
// at the n-th earliest free slot among the caller's {k d} and each helper's
// {wake + k d}, found by bisection.
double uniformPoolTime(double n, double d, unsigned threads, const MachineModel &m) {
  if (n <= 0)
    return 0;
  const double p = std::min(double(std::max(1u, threads)), n);
  if (p <= 1)
    return n * d;
  const double e = d + m.taskSeconds, wake = m.forkJoinSeconds / 2;
  auto started = [&](double t) { // tasks started by time t
    double c = std::floor(t / e) + 1;
    if (t >= wake)
      c += (p - 1) * (std::floor((t - wake) / e) + 1);
    return c;
  };
  double lo = 0, hi = wake + n * e;
  for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; ++i) {
    double mid = 0.5 * (lo + hi);
    (started(mid) >= n ? hi : lo) = mid;
  }
  return hi + e + m.forkJoinSeconds / 2;
}

// ---- Memory levels -------------------------------------------------------------

// Bandwidth (bytes/s) one of `threads` threads gets from level 0..3: L1
// and L2 per core; L3 per core up to a total shared by the threads; DRAM
// shared.
double bandwidth(const MachineModel &m, int level, unsigned threads) {
  const double hz = m.ghz * 1e9, p = double(std::max(1u, threads));
  if (level < 2)
    return m.bytesPerCycle[level] * hz;
  if (level == 2)
    return std::min(m.bytesPerCycle[2] * hz, m.l3BytesPerSecond / p);
  return m.dramBytesPerSecond / p;
}

// The level a kernel's operands come from at launch: the first whose
// capacity (L1, L2 summed over the threads; L3 shared) holds them all.
int dataLevel(const MachineModel &m, double bytes, unsigned threads) {
  if (bytes <= double(m.cacheBytes[0]) * threads)
    return 0;
  if (bytes <= double(m.cacheBytes[1]) * threads)
    return 1;
  if (bytes <= double(m.cacheBytes[2]))
    return 2;
  return 3;
}

// ---- Loop nests (Codegen.h: tiles of the parallel loops) -------------------------

// Vector iterations for a loop of `n` elements at `lanes` per vector: LLVM's
// loop vectorizer runs n / lanes vector iterations and a scalar remainder of
// n % lanes, each about as costly as a vector iteration.
double vectorIterations(double n, double lanes) { return std::floor(n / lanes) + std::fmod(n, lanes); }

// A loop-nest launch: tiles handed out launchChunk at a time; a tile's time
// is its compute or its memory traffic, whichever is longer, plus
// tileSeconds.
double loopNestSeconds(const sir::Kernel &k, const std::vector<int64_t> &ext, const int64_t *scalars,
                       double operandBytes, unsigned threads, double lanes, const MachineModel &m) {
  const size_t np = ext.size();
  const std::vector<int64_t> tile = launchTiles(k, ext, scalars, threads);
  double tiles = 1, points = 1;
  for (size_t d = 0; d < np; ++d) {
    tiles *= std::ceil(double(std::max<int64_t>(1, ext[d])) / double(tile[d]));
    points *= double(ext[d]);
  }
  if (points == 0)
    return 0;
  // Vector-op slots per point. Stages with inner loops run them vectorized
  // along their innermost loop, except the ops that do not depend on those
  // loops (values of earlier stages, constants, broadcast loads): LLVM's
  // loop-invariant code motion hoists them, so they run once per point.
  // Stages without inner loops run once per point, vectorized along the
  // innermost parallel loop only when no stage has an inner loop (that loop
  // is then the innermost one).
  std::vector<int64_t> zero(np, 0);
  double innerSlots = 0, pointSlots = 0;
  bool anyInner = false;
  for (const sir::Stage &s : k.stages) {
    double ops = 0;
    std::set<int64_t> variant;
    for (const sir::Instr &in : s.body) {
      bool v = in.op == sir::Op::Reduce && !in.isStore;
      for (const sir::IndexExpr &e : in.index)
        v = v || usesInner(e);
      v = v || (in.mask && usesInner(*in.mask)) || (in.op == sir::Op::Index && usesInner(in.indexValue));
      for (int64_t a : in.args)
        v = v || variant.count(a);
      if (v && in.result >= 0)
        variant.insert(in.result);
      const double slots = in.isStore ? 1.0 : opSlots(in.op);
      (v || s.inner.empty() ? ops : pointSlots) += slots;
    }
    if (s.inner.empty()) {
      pointSlots += ops;
      continue;
    }
    anyInner = true;
    double rows = 1, last = 1;
    for (size_t i = 0; i < s.inner.size(); ++i) {
      double e = double(std::max<int64_t>(0, sir::evalIndex(s.inner[i], scalars, zero.data(), nullptr, nullptr)));
      (i + 1 == s.inner.size() ? last : rows) *= e;
    }
    innerSlots += ops * rows * vectorIterations(last, lanes);
  }
  double slots;
  if (!anyInner && np > 0) {
    // Per innermost row of a tile: whole tiles of tile[np-1] elements and
    // the last, partial one.
    const double e = double(ext[np - 1]), t = double(tile[np - 1]);
    const double full = std::floor(e / t), rest = std::fmod(e, t);
    const double rowIters = full * vectorIterations(t, lanes) + vectorIterations(rest, lanes);
    slots = points / e * rowIters * pointSlots;
  } else {
    slots = points * (innerSlots + pointSlots);
  }
  const double hz = m.ghz * 1e9;
  const unsigned p = unsigned(std::min(double(threads), tiles));
  const double compute = slots / kVectorOpsPerCycle / hz / tiles;
  const double memory = operandBytes / bandwidth(m, dataLevel(m, operandBytes, p), p) / tiles;
  // The pool hands out launchChunk tiles per task; the last task may be
  // shorter, which the equal-task model ignores.
  const double chunk = double(launchChunk(int64_t(tiles), threads));
  const double tasks = std::ceil(tiles / chunk);
  return uniformPoolTime(tasks, (std::max(compute, memory) + m.tileSeconds) * tiles / tasks, threads, m);
}

// ---- GEMM path (Gemm.h) -------------------------------------------------------------

// The micro-kernel's register block for the target (as JitProgram::compile
// chooses it): AVX-512 14 x 32, AVX2 6 x 16, SSE 4 x 8.
void registerBlock(const TargetInfo &t, int64_t *mr, int64_t *nr, int64_t *vl) {
  *vl = t.avx512 ? 16 : t.vectorBits >= 256 ? 8 : 4;
  *mr = t.avx512 ? 14 : t.vectorBits >= 256 ? 6 : 4;
  *nr = 2 * *vl;
}

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0, batches = 1;
  double aBytes = 4, bBytes = 4, outBytes = 4; // element sizes
  bool aBatched = false, bBatched = false;
};

// Cycles to bring one byte into L1 from level 0..3: the transfers between
// adjacent levels add up (the execution-cache-memory model, Hager et al.,
// "Exploring performance and power properties of modern multicore chips via
// simple machine models", CCPE 28(2), 2016).
double cyclesPerByte(const MachineModel &m, int level) {
  double c = 0;
  for (int i = 1; i <= std::min(level, 2); ++i)
    c += 1 / m.bytesPerCycle[i];
  return c;
}

// One MC x NC task: for each KC panel, (mc / MR) x (nc / NR) micro-kernel
// calls, rounded up to whole micro-tiles (the padding of edge blocks costs
// like real rows). In the execution-cache-memory model a panel takes the
// longer of its FMAs and of its load instructions plus the transfers into
// L1; the C tile update after each call's k loop adds to it:
// - B (KC x NC, re-read for every MR-row sliver of A) from L1 when it fits
//   there beside the A sliver, else L2 when it fits beside the C block,
//   else L3 (Goto and van de Geijn's condition on the block kept in L2);
// - the A sliver (KC x MR, re-read for every NR-column sliver of B) from L1
//   when it fits beside two B slivers, else L2; the A block streams in once
//   per panel from L3;
// - the C tile (MR x NR, read and written once per call) from the level
//   that holds the C block.
double gemmTaskSeconds(const GemmProblem &g, int64_t mc, int64_t nc, int64_t kc, int64_t mr, int64_t nr,
                       int64_t vl, bool packA, const MachineModel &m, double fmaLanes) {
  const double hz = m.ghz * 1e9;
  const double ms = double((mc + mr - 1) / mr), ns = double((nc + nr - 1) / nr);
  const double mcp = ms * double(mr), ncp = ns * double(nr);
  const double l1 = double(m.cacheBytes[0]), l2 = double(m.cacheBytes[1]);
  const double fmaPerK = double(mr * nr) / fmaLanes;
  // Per k step: NR / VL vector loads of B and MR broadcasts of A, two
  // load ports.
  const double loadsPerK = double(nr / vl + mr) / 2;
  const double cTile = double(mr * nr) * 4, cBlock = mcp * ncp * 4;
  double cycles = 0;
  for (int64_t pc = 0; pc < g.k; pc += kc) {
    const double kcb = double(std::min(kc, g.k - pc));
    const double bBlock = kcb * ncp * 4, aSliver = kcb * double(mr) * 4, bSliver = kcb * double(nr) * 4;
    const int levelB = bBlock + aSliver <= l1 ? 0 : bBlock + cBlock <= l2 ? 1 : 2;
    const int levelA = aSliver + 2 * bSliver <= l1 ? 0 : 1;
    const int levelC = cBlock <= l1 / 2 ? 0 : bBlock + cBlock <= l2 ? 1 : 2;
    const double calls = ms * ns;
    const double fma = calls * kcb * fmaPerK;
    const double data = calls * kcb * loadsPerK + ms * bBlock * cyclesPerByte(m, levelB) +
                        calls * aSliver * cyclesPerByte(m, levelA) + ms * aSliver * cyclesPerByte(m, 2);
    // microCallCycles is measured with the C block in L2 (where it is for
    // most blockings); one in L3 adds its transfer in and out.
    const double cExtra = 2 * cTile * std::max(0.0, cyclesPerByte(m, levelC) - cyclesPerByte(m, 1));
    cycles += std::max(fma, data) + calls * (m.microCallCycles + cExtra);
  }
  // The epilogue reads the C block and writes the outputs.
  double seconds = cycles / hz + double(mc * nc) * (4 + g.outBytes) / bandwidth(m, 1, 1);
  if (packA) // a batched A packed by the task itself
    seconds += mcp * double(g.k) * (g.aBytes + 4) / (m.packBytesPerCycle * hz);
  return seconds;
}

// Packing, then the MC x NC tasks (runGemm), each phase through the pool.
double gemmSeconds(const GemmProblem &g, const GemmBlocking &knobs, unsigned threads, const TargetInfo &target,
                   const MachineModel &m) {
  int64_t mr, nr, vl;
  registerBlock(target, &mr, &nr, &vl);
  const double fmaLanes = std::min(m.fmaLanesPerCycle, 2.0 * target.vectorBits / 32);
  const GemmBlocking b = launchBlocking(knobs, g.m, g.n, g.batches, mr, nr, threads);
  const int64_t mBlocks = (g.m + b.mc - 1) / b.mc, nBlocks = (g.n + b.nc - 1) / b.nc;
  const int64_t mSlivers = (g.m + mr - 1) / mr, nSlivers = (g.n + nr - 1) / nr;
  const bool packAInTask = g.aBatched && nBlocks == 1;
  const double packRate = m.packBytesPerCycle * m.ghz * 1e9;
  const int64_t aTasks = packAInTask ? 0 : (g.aBatched ? g.batches : 1) * mSlivers;
  const int64_t bTasks = (g.bBatched ? g.batches : 1) * nSlivers;
  // Task lists longer than this are charged as equal tasks of the mean
  // duration (the imbalance of the tail is then negligible).
  constexpr int64_t kListed = 1 << 15;
  double seconds = 0;
  const double aPack = double(mr * g.k) * (g.aBytes + 4) / packRate;
  const double bPack = double(nr * g.k) * (g.bBytes + 4) / packRate;
  if (aTasks + bTasks <= kListed) {
    std::vector<double> pack(size_t(aTasks), aPack);
    pack.resize(size_t(aTasks + bTasks), bPack);
    seconds += poolTime(pack, threads, m);
  } else {
    seconds += uniformPoolTime(double(aTasks + bTasks),
                               (double(aTasks) * aPack + double(bTasks) * bPack) / double(aTasks + bTasks), threads, m);
  }
  // Tasks in runGemm's order: batch, row block, column block; the last row
  // and column blocks are the partial ones.
  const int64_t mLast = g.m - (mBlocks - 1) * b.mc, nLast = g.n - (nBlocks - 1) * b.nc;
  double kinds[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      kinds[i][j] = gemmTaskSeconds(g, i ? mLast : b.mc, j ? nLast : b.nc, b.kc, mr, nr, vl, packAInTask, m, fmaLanes);
  const int64_t perBatch = mBlocks * nBlocks, tasks = g.batches * perBatch;
  if (tasks <= kListed) {
    std::vector<double> durations;
    durations.reserve(size_t(tasks));
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t rest = t % perBatch;
      durations.push_back(kinds[rest / nBlocks == mBlocks - 1][rest % nBlocks == nBlocks - 1]);
    }
    seconds += poolTime(durations, threads, m);
  } else {
    const double mean = (double(mBlocks - 1) * double(nBlocks - 1) * kinds[0][0] +
                         double(mBlocks - 1) * kinds[0][1] + double(nBlocks - 1) * kinds[1][0] + kinds[1][1]) /
                        double(perBatch);
    seconds += uniformPoolTime(double(tasks), mean, threads, m);
  }
  return seconds;
}

// oneDNN's BLAS blocks (Gemm.h: GemmEngine::OneDnnBlas): each block's FMAs
// at the FMA peak (its sgemm kernels ran 0.96-1.0 of it on one thread at
// M = 128, N = 512, K = 2048 and 256^3 on two), oneDNN's own packing of the
// block's A rows and B columns at kLibraryPackBytesPerCycle (vector copies,
// partly hidden behind the FMAs: the 256^3 product on two threads, 147 us,
// leaves about a third of the generated path's packing rate's time for
// it), kLibraryCallSeconds per call (dispatch and buffer set-up: 1 us for a
// 64^3 product), and the epilogue over the block unless oneDNN writes the
// output itself;
// blocks (of the folded shape, Gemm.h: LibraryShape) through the pool like
// the generated driver's tasks.
double libraryGemmSeconds(const GemmProblem &g, const LibraryShape &shape, unsigned threads, const MachineModel &m) {
  constexpr double kLibraryCallSeconds = 1e-6, kLibraryPackBytesPerCycle = 32;
  const double hz = m.ghz * 1e9;
  const LibraryBlocking b = libraryBlocking(shape.m, shape.n, shape.batches, threads);
  const int64_t mBlocks = (shape.m + b.mc - 1) / b.mc, nBlocks = (shape.n + b.nc - 1) / b.nc;
  auto block = [&](int64_t mc, int64_t nc) {
    const double fma = double(mc) * double(nc) * double(g.k) / (m.fmaLanesPerCycle * hz);
    const double pack = double(mc + nc) * double(g.k) * (4 + 4) / (kLibraryPackBytesPerCycle * hz);
    const double epilogue = shape.direct ? 0.0 : double(mc * nc) * (4 + g.outBytes) / bandwidth(m, 1, 1);
    return fma + pack + epilogue + kLibraryCallSeconds;
  };
  const int64_t mLast = shape.m - (mBlocks - 1) * b.mc, nLast = shape.n - (nBlocks - 1) * b.nc;
  std::vector<double> durations;
  durations.reserve(size_t(shape.batches * mBlocks * nBlocks));
  for (int64_t batch = 0; batch < shape.batches; ++batch)
    for (int64_t i = 0; i < mBlocks; ++i)
      for (int64_t j = 0; j < nBlocks; ++j)
        durations.push_back(block(i + 1 == mBlocks ? mLast : b.mc, j + 1 == nBlocks ? nLast : b.nc));
  return poolTime(durations, threads, m);
}

} // namespace

// Mirrors chooseTiles in CpuPlugin.cpp (which should call this once the
// serialization change there has landed): grow the tile from the innermost
// loop outwards to about 64K units of inner work, then halve while there
// are fewer than four tiles per thread; a kernel with less work than one
// tile runs whole.
std::vector<int64_t> launchTiles(const sir::Kernel &k, const std::vector<int64_t> &ext, const int64_t *scalars,
                                 unsigned threads) {
  const size_t np = ext.size();
  std::vector<int64_t> knob = k.knobInts("tile");
  std::vector<int64_t> t(np, 1);
  if (knob.size() == np) {
    for (size_t d = 0; d < np; ++d)
      t[d] = std::clamp<int64_t>(knob[d] == 0 ? ext[d] : knob[d], 1, std::max<int64_t>(1, ext[d]));
    return t;
  }
  std::vector<int64_t> zero(np, 0);
  double work = 0;
  for (const sir::Stage &s : k.stages) {
    double w = 1;
    for (const sir::IndexExpr &e : s.inner)
      w *= double(std::max<int64_t>(1, sir::evalIndex(e, scalars, zero.data(), nullptr, nullptr)));
    work += w * double(std::max<size_t>(1, s.body.size()));
  }
  work = std::max(work, 1.0);
  const double target = 16384.0 * 4;
  double total = work;
  for (int64_t e : ext)
    total *= double(std::max<int64_t>(1, e));
  if (total <= target) {
    for (size_t d = 0; d < np; ++d)
      t[d] = std::max<int64_t>(1, ext[d]);
    return t;
  }
  double acc = work;
  for (size_t d = np; d-- > 0;) {
    t[d] = std::clamp<int64_t>(int64_t(std::max(1.0, target / acc)), 1, std::max<int64_t>(1, ext[d]));
    acc *= double(t[d]);
    if (t[d] < ext[d])
      break;
  }
  auto tiles = [&] {
    int64_t n = 1;
    for (size_t d = 0; d < np; ++d)
      n *= (std::max<int64_t>(1, ext[d]) + t[d] - 1) / t[d];
    return n;
  };
  for (int guard = 0; guard < 64 && tiles() < int64_t(threads) * 4; ++guard) {
    size_t d = 0;
    while (d < np && t[d] == 1)
      ++d;
    if (d == np)
      break;
    t[d] = (t[d] + 1) / 2;
  }
  return t;
}

int64_t launchChunk(int64_t tiles, unsigned threads) {
  constexpr int64_t kTasksPerThread = 8;
  if (threads <= 1)
    return std::max<int64_t>(1, tiles);
  return std::max<int64_t>(1, tiles / (int64_t(threads) * kTasksPerThread));
}

MachineModel hostMachineModel() {
  MachineModel m;
  const HostCpu cpu = detectHostCpu();
  m.cores = std::max(1u, cpu.logicalCores);
  if (cpu.mhz > 100)
    m.ghz = cpu.mhz / 1000.0 * kClockRatio;
  for (int i = 0; i < 3; ++i)
    if (cpu.cacheBytes[i])
      m.cacheBytes[i] = cpu.cacheBytes[i];
  // Two FMA pipes of the widest vector width; Zen 4 (family 0x19) splits
  // 512-bit FMAs over its two 256-bit pipes (AMD, "Software Optimization
  // Guide for AMD Family 19h Processors", 2.11).
  const bool avx512 = cpu.features.find("avx512f") != std::string::npos;
  const bool avx2 = cpu.features.find("avx2") != std::string::npos;
  const double lanes = avx512 ? 16 : avx2 ? 8 : 4;
  m.fmaLanesPerCycle = 2 * lanes;
  if (avx512 && cpu.vendor == "AuthenticAMD" && cpu.family <= 0x19)
    m.fmaLanesPerCycle = 16;
  return m;
}

CostResult estimateKernelCost(const sir::Program &program, size_t kernelIndex, const TargetInfo &target,
                              const MachineModel &machine, const int64_t *scalars, size_t numScalars) {
  (void)numScalars;
  CostResult r;
  const sir::Kernel &k = program.kernels[kernelIndex];
  const size_t np = k.parallel.size();
  const unsigned lanes = target.vectorBits / 32;
  auto infeasible = [&](const std::string &why) {
    r.feasible = false;
    r.reason = why;
    return r;
  };
  // Knobs this plugin does not use: LLVM's loop vectorizer picks the unroll
  // factor, so other values would only repeat the same code.
  if (int64_t u = k.knobInt("unroll", 1); u != 1)
    return infeasible("the cpu plugin leaves unrolling to LLVM (knob unroll=" + std::to_string(u) + ")");
  // Accelerator knobs (GEMM path, pipeline stages, warps per block): no CPU
  // code generator reads them.
  for (const char *gpuOnly : {"gemm_path", "stages", "warps"})
    if (k.knobs.count(gpuOnly))
      return infeasible(std::string("the cpu plugin has no knob '") + gpuOnly + "' (a GPU code generator's)");
  // Knobs the hardware cannot honour.
  if (int64_t v = k.knobInt("vector", 0); v != 0) {
    if (v < 0 || (v & (v - 1)) != 0)
      return infeasible("vector width " + std::to_string(v) + " is not a power of two");
    if (v > int64_t(lanes))
      return infeasible("vector width " + std::to_string(v) + " exceeds the " + std::to_string(lanes) +
                        " f32 lanes of " + target.architecture);
  }
  if (auto it = k.knobs.find("tile"); it != k.knobs.end()) {
    std::vector<int64_t> tile = k.knobInts("tile");
    if (tile.size() != np)
      return infeasible("tile has " + std::to_string(tile.size()) + " sizes for " + std::to_string(np) +
                        " parallel loops");
    for (int64_t t : tile)
      if (t <= 0)
        return infeasible("tile sizes must be positive");
  }
  std::string library = k.knobString("library");
  if (library == "onednn") {
    if (!oneDnnBuilt())
      return infeasible("library 'onednn' is not available in this build of the cpu plugin");
    GemmForm gemmForm;
    std::string why;
    if (!matchGemmForm(k, &gemmForm, &why))
      return infeasible("library 'onednn' applies to canonical matmul kernels only (" + why + ")");
  } else if (!library.empty() && library != "none" && library != "generic") {
    return infeasible("library '" + library + "' is not available in this build of the cpu plugin");
  }

  std::vector<int64_t> ext(np, 0);
  double points = 1;
  for (size_t d = 0; d < np; ++d) {
    ext[d] = eval(k.parallel[d], scalars);
    points *= double(ext[d]);
  }
  // Flops: per stage, iterations x charged ops.
  std::vector<int64_t> zero(np, 0);
  for (const sir::Stage &s : k.stages) {
    double iters = points;
    for (const sir::IndexExpr &e : s.inner)
      iters *= double(eval(e, scalars, zero.data()));
    double ops = 0;
    for (const sir::Instr &in : s.body)
      if (!in.isStore)
        ops += opFlops(in.op);
    r.flops += iters * ops;
  }
  // Bytes: compulsory traffic, every operand read or written once.
  for (const sir::Operand &o : k.operands) {
    double n = double(sir::dtypeSize(o.dtype));
    for (const sir::IndexExpr &e : o.shape)
      n *= double(eval(e, scalars));
    r.bytes += n;
  }
  // Threads of the launch: the knob lowers the plugin's default (the cores).
  unsigned threads = std::max(1u, machine.cores);
  if (int64_t t = k.knobInt("threads", 0); t > 0)
    threads = std::min<unsigned>(threads, unsigned(std::min<int64_t>(t, 1 << 16)));
  if (points == 0)
    return r;

  GemmForm form;
  if (library != "generic" && matchGemmForm(k, &form, nullptr)) {
    const size_t nb = form.batchDims;
    GemmProblem g;
    g.m = ext[nb];
    g.n = ext[nb + 1];
    g.k = eval(k.stages[0].inner[0], scalars, zero.data());
    for (size_t d = 0; d < nb; ++d)
      g.batches *= ext[d];
    const sir::Instr &aLoad = k.stages[0].body[form.aLoad], &bLoad = k.stages[0].body[form.bLoad];
    for (const sir::IndexExpr &e : aLoad.index)
      g.aBatched = g.aBatched || usesParallelBelow(e, int64_t(nb));
    for (const sir::IndexExpr &e : bLoad.index)
      g.bBatched = g.bBatched || usesParallelBelow(e, int64_t(nb));
    g.aBytes = double(sir::dtypeSize(k.operands[size_t(form.aOperand)].dtype));
    g.bBytes = double(sir::dtypeSize(k.operands[size_t(form.bOperand)].dtype));
    double outBytes = 0;
    for (const sir::Operand &o : k.operands)
      if (o.role != sir::OperandRole::In)
        outBytes += double(sir::dtypeSize(o.dtype));
    g.outBytes = std::max(outBytes, 1.0);
    // The engine the launch will use (Gemm.h: chooseGemmEngine).
    // dnnl::matmul (forced, non-BLAS layouts) is costed as the generated path.
    LibraryShape shape;
    if (chooseGemmEngine(k, form, scalars, &shape) == GemmEngine::OneDnnBlas) {
      r.seconds = libraryGemmSeconds(g, shape, threads, machine);
      return r;
    }
    GemmBlocking knobs;
    knobs.mc = std::clamp<int64_t>(k.knobInt("mc", knobs.mc), 1, 2048);
    knobs.kc = std::clamp<int64_t>(k.knobInt("kc", knobs.kc), 1, 8192);
    knobs.nc = std::clamp<int64_t>(k.knobInt("nc", knobs.nc), 1, 2048);
    r.seconds = gemmSeconds(g, knobs, threads, target, machine);
    return r;
  }
  r.seconds = loopNestSeconds(k, ext, scalars, r.bytes, threads, double(lanes), machine);
  return r;
}

} // namespace tessera::cpu
