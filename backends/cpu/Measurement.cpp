#include "Measurement.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace tessera::cpu {

Timing timeRepetitions(uint32_t warmup, uint32_t repetitions, const std::function<bool(uint32_t)> &run) {
  Timing t;
  for (uint32_t i = 0; i < warmup; ++i)
    if (!run(i))
      return t;
  std::vector<double> samples;
  samples.reserve(repetitions);
  for (uint32_t i = 0; i < repetitions; ++i) {
    auto start = std::chrono::steady_clock::now();
    bool ok = run(warmup + i);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!ok)
      break;
    samples.push_back(s);
  }
  if (samples.empty())
    return t;
  std::sort(samples.begin(), samples.end());
  size_t n = samples.size();
  t.median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  t.min = samples.front();
  t.max = samples.back();
  t.repetitions = static_cast<uint32_t>(n);
  return t;
}

uint32_t rotationCopies(uint64_t inputBytes, uint64_t lastLevelCacheBytes) {
  if (inputBytes == 0)
    return 1;
  uint64_t want = (2 * lastLevelCacheBytes + inputBytes - 1) / inputBytes;
  return static_cast<uint32_t>(std::clamp<uint64_t>(want, 1, 8));
}

} // namespace tessera::cpu
