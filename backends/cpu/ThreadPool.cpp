#include "ThreadPool.h"

#include <cstdlib>
#include <unistd.h>

namespace tessera::cpu {

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
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
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      if (index >= participants_)
        continue;
    }
    runChunks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--running_ == 0)
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
    running_ = helpers;
    ++generation_;
  }
  wake_.notify_all();
  runChunks();
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return running_ == 0; });
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

} // namespace tessera::cpu
