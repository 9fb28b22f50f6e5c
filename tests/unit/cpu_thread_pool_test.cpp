// The CPU plugin's fork-join pool: every item runs exactly once for any
// thread count and chunk size, with and without spinning workers, across
// many back-to-back launches (the spin-then-sleep hand-off).
#include "ThreadPool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace {

using tessera::cpu::ThreadPool;

void expectEachItemOnce(ThreadPool &pool, int64_t count, unsigned threads, int64_t chunk) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
  pool.parallelFor(count, threads, chunk, [&](int64_t begin, int64_t end) {
    // One thread (or one chunk) runs the whole range in one call.
    if (!(begin == 0 && end == count)) {
      ASSERT_LE(end - begin, chunk);
    }
    for (int64_t i = begin; i < end; ++i)
      hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < count; ++i)
    ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "item " << i << " of " << count << ", threads " << threads
                                                      << ", chunk " << chunk;
}

std::unique_ptr<ThreadPool> poolWithSpin(const char *microseconds) {
  setenv("TESSERA_POOL_SPIN_US", microseconds, 1);
  auto pool = std::make_unique<ThreadPool>();
  unsetenv("TESSERA_POOL_SPIN_US");
  return pool;
}

TEST(CpuThreadPool, EveryItemRunsOnce) {
  for (const char *spin : {"0", "100", "100000"}) {
    std::unique_ptr<ThreadPool> pool = poolWithSpin(spin);
    for (unsigned threads : {1u, 2u, 3u, 8u})
      for (int64_t chunk : {int64_t(1), int64_t(3), int64_t(64)})
        for (int64_t count : {int64_t(1), int64_t(2), int64_t(7), int64_t(1000)})
          expectEachItemOnce(*pool, count, threads, chunk);
  }
}

TEST(CpuThreadPool, BackToBackLaunchesAndIdleGaps) {
  // Launches that find the workers spinning, and launches after the
  // workers went to sleep (gaps longer than the spin time).
  std::unique_ptr<ThreadPool> pool = poolWithSpin("50");
  EXPECT_EQ(pool->spinMicroseconds(), 50u);
  for (int round = 0; round < 200; ++round) {
    expectEachItemOnce(*pool, 64, 4, 2);
    if (round % 50 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

TEST(CpuThreadPool, SpinSettingOutOfRangeFallsBack) {
  EXPECT_EQ(poolWithSpin("-5")->spinMicroseconds(), 100u);
  EXPECT_EQ(poolWithSpin("abc")->spinMicroseconds(), 100u);
  EXPECT_EQ(poolWithSpin("0")->spinMicroseconds(), 0u);
}

} // namespace
