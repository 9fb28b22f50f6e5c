// A small fork-join pool for kernel launches. Launches are synchronous: the
// calling thread takes part, and parallelFor returns when every chunk ran.
// One parallelFor runs at a time per pool (concurrent launches on one plugin
// instance queue on a mutex); workers are created on demand up to the
// largest thread count requested and live until the pool is destroyed.
//
// Workers spin for a short while (spinMicroseconds) after each launch
// before they sleep, and the caller spins as long for the join: a module
// launches its kernels back to back, and waking a sleeping thread costs
// tens of microseconds on a virtual machine (the same trade as OpenMP's
// GOMP_SPINCOUNT / KMP_BLOCKTIME, bounded much shorter here).
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
  ThreadPool();
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  // Runs fn(begin, end) over [0, count) in chunks of `chunk` items handed out
  // dynamically to `threads` threads (the caller included). With one thread,
  // or a single chunk, fn(0, count) runs once on the caller.
  void parallelFor(int64_t count, unsigned threads, int64_t chunk,
                   const std::function<void(int64_t begin, int64_t end)> &fn);

  // How long idle workers and a joining caller spin before they block.
  unsigned spinMicroseconds() const { return spinMicroseconds_; }

private:
  void workerLoop(unsigned index);
  void runChunks();
  // Spins until `ready` returns true or the spin time passes; true if ready.
  template <typename Ready> bool spinUntil(Ready ready) const;

  std::mutex launchMutex_; // one parallelFor at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0}; // written under mutex_
  unsigned participants_ = 0;           // workers taking part in this generation
  std::atomic<unsigned> running_{0};    // workers not yet finished with it
  const std::function<void(int64_t, int64_t)> *fn_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t count_ = 0, chunk_ = 1;
  unsigned spinMicroseconds_;
};

// Default launch threads: TESSERA_NUM_THREADS if set and positive, else the
// number of online cores.
unsigned defaultThreadCount();

// Spin time of new pools: TESSERA_POOL_SPIN_US if set (0 to 100000; 0 never
// spins), else 100 microseconds.
unsigned defaultSpinMicroseconds();

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_THREADPOOL_H
