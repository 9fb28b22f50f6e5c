// Timing for the measurement extension (tessera_backend_measurement_extension_t):
// warm-up runs, then timed repetitions; the median is the figure reported
// (robust to the outliers of a shared machine).
#ifndef TESSERA_BACKENDS_CPU_MEASUREMENT_H
#define TESSERA_BACKENDS_CPU_MEASUREMENT_H

#include <cstdint>
#include <functional>

namespace tessera::cpu {

struct Timing {
  double median = 0, min = 0, max = 0;
  uint32_t repetitions = 0;
};

// Calls run(i) for i in [0, warmup + repetitions); times the last
// `repetitions` calls. Stops early (reporting what ran) when run returns
// false.
Timing timeRepetitions(uint32_t warmup, uint32_t repetitions, const std::function<bool(uint32_t)> &run);

// How many copies of the inputs to rotate through so that they do not stay
// in cache between repetitions: enough to exceed twice the last-level
// cache, at most 8, at least 1.
uint32_t rotationCopies(uint64_t inputBytes, uint64_t lastLevelCacheBytes);

} // namespace tessera::cpu

#endif // TESSERA_BACKENDS_CPU_MEASUREMENT_H
