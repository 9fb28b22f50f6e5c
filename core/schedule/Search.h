// Schedule search for one kernel (docs/schedule.md): enumerate the knob
// space from the kernel's Schedule IR, let the plugin's cost model reject
// infeasible points and rank the rest, measure candidates on the device
// through the plugin's measurement extension, and pick the fastest.
// Strategies: exhaustive, model (cost-model top-k), evolutionary. A plugin
// without a cost model is measure-only; one without measurement model-only.
#ifndef TESSERA_SCHEDULE_SEARCH_H
#define TESSERA_SCHEDULE_SEARCH_H

#include "plugin/Plugin.h"
#include "schedule/Key.h"
#include "support/Error.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tessera::sched {

enum class Strategy { Exhaustive, Model, Evolutionary };
Expected<Strategy> parseStrategy(const std::string &name);
const char *strategyName(Strategy s);

// Knob values a plugin declares for its own code generators, by kernel kind
// ("matmul", "loop", "attention"): its manifest's `search_space`.
using PluginSpace = std::map<std::string, std::vector<plugin::KnobChoices>>;

// The knob space of a kernel with concrete parallel extents. Matmul kernels:
// GEMM blocking mc x kc x nc (values not exceeding their dimension but one)
// x threads; loop kernels: tile sizes per parallel loop x threads. Then every
// combination of each alternative in `pluginSpace` for the kernel's kind
// (e.g. the cuda plugin's library, gemm_path x stages, warps). Points a
// plugin cannot run (or whose knobs it does not read) are rejected by its
// cost model before measurement. The default schedule (the kernel's own
// knobs) is always candidate 0.
std::vector<Knobs> enumerateSpace(const schedule::Program &program, size_t kernel,
                                  const std::vector<int64_t> &scalars, unsigned cores,
                                  const PluginSpace &pluginSpace = {});

struct SearchOptions {
  Strategy strategy = Strategy::Model;
  uint32_t maxTrials = 32;        // measured candidates per kernel (0 = no limit)
  double maxSeconds = 0;          // per kernel wall-clock budget (0 = no limit)
  // Timing of one candidate: `warmup` untimed runs, then medians of
  // `repetitions` timed runs each, as many as cover `minMeasureSeconds`
  // (at least `timings`, at most `maxTimings`); the lowest median is the
  // candidate's figure.
  uint32_t warmup = 2, repetitions = 7;
  uint32_t timings = 3, maxTimings = 32;
  double minMeasureSeconds = 0.03;
  // After the search every measured candidate (the `confirmLimit` fastest
  // and the default, when more were measured) is timed again in
  // `confirmRounds` interleaved rounds; each keeps the minimum of all its
  // medians. Re-timings do not count as trials.
  uint32_t confirmLimit = 128, confirmRounds = 3;
  uint64_t seed = 1;
  // Called after each measurement: kernel name, measured so far, budget.
  std::function<void(const std::string &, uint32_t, uint32_t)> progress;
};

struct Candidate {
  Knobs knobs;
  bool feasible = true;
  std::string reason;
  double predicted = -1; // seconds; -1 when no cost model
  double measured = -1;  // seconds; -1 when not measured
};

struct KernelResult {
  std::string name, hash;
  bool matmul = false;
  size_t candidates = 0, feasible = 0, measured = 0;
  Knobs chosen;
  double predicted = -1, measuredSeconds = -1;
  double defaultPredicted = -1, defaultSeconds = -1;
  bool hasModel = false, hasMeasurement = false;
  std::vector<Candidate> all; // every candidate considered
};

struct DeviceTarget {
  plugin::Plugin *plugin = nullptr;
  tessera_device_t *device = nullptr; // NULL: model-only
  std::string architecture, features;
};

// Tunes kernel `kernel` of `program` for concrete symbol values `scalars`.
Expected<KernelResult> tuneKernel(const schedule::Program &program, size_t kernel,
                                  const std::vector<int64_t> &scalars, const DeviceTarget &target,
                                  const SearchOptions &options);

// Cost-model feasibility of `knobs` on kernel `kernel` (empty reason when
// feasible or when the plugin has no cost model).
std::string infeasibleReason(const schedule::Program &program, size_t kernel, const Knobs &knobs,
                             const std::vector<int64_t> &scalars, const DeviceTarget &target);

// Spearman's rank correlation coefficient (Spearman 1904): Pearson
// correlation of the ranks, ties getting their average rank.
double spearman(const std::vector<double> &x, const std::vector<double> &y);

} // namespace tessera::sched

#endif // TESSERA_SCHEDULE_SEARCH_H
