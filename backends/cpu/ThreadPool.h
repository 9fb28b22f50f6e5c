// A small fork-join pool for kernel launches. Launches are synchronous: the
// calling thread takes part, and parallelFor returns when every chunk ran.
// One parallelFor runs at a time per pool (concurrent launches on one plugin
// instance queue on a mutex); workers are created on demand up to the
// largest thread count requested and live until the pool is destroyed.
#ifndef TESSERA_BACKENDS_CPU_THREADPOOL_H
#define TESSERA_BACKENDS_CPU_THREADPOOL_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::cpu {

class ThreadPool {
public:
  ThreadPool() = default;
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  // Runs fn(begin, end) over [0, count) in chunks of `chunk` items handed out
  // dynamically to `threads` threads (the caller included).
  void parallelFor(int64_t count, unsigned threads, int64_t chunk,
                   const std::function<void(int64_t begin, int64_t end)> &fn);

private:
  void workerLoop(unsigned index);
  void runChunks();

  std::mutex launchMutex_; // one parallelFor at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  unsigned participants_ = 0; // workers taking part in this generation
  unsigned running_ = 0;      // workers not yet finished with it
  const std::function<void(int64_t, int64_t)> *fn_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t count_ = 0, chunk_ = 1;
};

// Default launch threads: TESSERA_NUM_THREADS if set and positive, else the
// number of online cores.
unsigned defaultThreadCount();

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_THREADPOOL_H
