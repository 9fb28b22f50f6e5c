#include "ThreadPool.h"

#include <chrono>
#include <cstdlib>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tessera::cpu {

namespace {

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

} // namespace

ThreadPool::ThreadPool() : spinMicroseconds_(defaultSpinMicroseconds()) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

template <typename Ready> bool ThreadPool::spinUntil(Ready ready) const {
  if (spinMicroseconds_ == 0)
    return ready();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spinMicroseconds_);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready())
        return true;
      cpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return ready();
  }
}

void ThreadPool::runChunks() {
  for (;;) {
    int64_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= count_)
      return;
    int64_t end = begin + chunk_ < count_ ? begin + chunk_ : count_;
    (*fn_)(begin, end);
  }
}

void ThreadPool::workerLoop(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    spinUntil([&] {
      return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_relaxed) != seen;
    });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_.load(std::memory_order_relaxed) || generation_.load() != seen; });
      if (stop_.load(std::memory_order_relaxed))
        return;
      seen = generation_.load(std::memory_order_relaxed);
      if (index >= participants_)
        continue;
    }
    runChunks();
    if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Taking the lock orders this notify after a caller that found
      // running_ non-zero has started waiting.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::parallelFor(int64_t count, unsigned threads, int64_t chunk,
                             const std::function<void(int64_t, int64_t)> &fn) {
  if (count <= 0)
    return;
  if (chunk < 1)
    chunk = 1;
  int64_t chunks = (count + chunk - 1) / chunk;
  unsigned helpers = threads > 1 ? threads - 1 : 0;
  if (static_cast<int64_t>(helpers) > chunks - 1)
    helpers = static_cast<unsigned>(chunks - 1);
  if (helpers == 0) {
    fn(0, count);
    return;
  }
  std::lock_guard<std::mutex> launch(launchMutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (workers_.size() < helpers) {
      unsigned index = static_cast<unsigned>(workers_.size());
      workers_.emplace_back([this, index] { workerLoop(index); });
    }
    fn_ = &fn;
    count_ = count;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    participants_ = helpers;
    running_.store(helpers, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  runChunks();
  if (!spinUntil([&] { return running_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return running_.load(std::memory_order_acquire) == 0; });
  }
  fn_ = nullptr;
}

unsigned defaultThreadCount() {
  if (const char *env = std::getenv("TESSERA_NUM_THREADS")) {
    char *end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end && *end == '\0' && n > 0 && n <= 4096)
      return static_cast<unsigned>(n);
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? static_cast<unsigned>(cores) : 1;
}

unsigned defaultSpinMicroseconds() {
  if (const char *env = std::getenv("TESSERA_POOL_SPIN_US")) {
    char *end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end && *end == '\0' && n >= 0 && n <= 100000)
      return static_cast<unsigned>(n);
  }
  return 100;
}

} // namespace tessera::cpu
