// The compiled module: a fused program, the plugin executable that runs its
// kernels, the Graph IR function that binds symbolic dims, and the constants
// uploaded once. Runs bind symbols from the input shapes, plan buffers per
// concrete shape (cached), launch every kernel in order through the plugin
// and synchronize.
//
// Kernels are compiled once, symbolically: symbol values reach them as launch
// scalars. Only the buffer plan depends on the concrete shape.
#ifndef TESSERA_RUNTIME_COMPILEDMODULE_H
#define TESSERA_RUNTIME_COMPILEDMODULE_H

#include "fusion/FusedProgram.h"
#include "ir/Module.h"
#include "plugin/Plugin.h"
#include "runtime/BufferPlan.h"
#include "support/Error.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::runtime {

// What the module was compiled for (kept in serialized modules).
struct TargetInfo {
  std::string plugin;
  std::string architecture;
  std::string features;
};

// Everything about one concrete input shape: bound symbols, output shapes,
// launch scalars and the buffer plan. Immutable once made, except the pool
// of idle arenas (guarded).
struct ShapePlan {
  std::vector<std::vector<int64_t>> inputShapes;
  std::vector<std::vector<int64_t>> outputShapes;
  ir::SymbolBindings symbols;
  std::vector<int64_t> scalars; // program.schedule.symbols order
  std::vector<uint64_t> intermediateBytes;
  BufferPlan buffers;

  ~ShapePlan();
  // Idle arenas (one buffer per slot) kept for the next run of this shape.
  plugin::Plugin *plugin = nullptr;
  mutable std::mutex poolMutex;
  mutable std::vector<std::vector<tessera_backend_buffer_t *>> pool;
};

// Figures of the plans and runs (debug accessor; docs/compiler.md).
struct RuntimeStats {
  uint64_t arenaBytes = 0;        // arena of the last run's plan
  uint64_t peakLiveBytes = 0;     // its peak of simultaneously live intermediates
  uint64_t intermediateBytes = 0; // its intermediates without reuse
  uint32_t inPlace = 0;           // its in-place reuses
  uint64_t cachedPlans = 0;
  uint64_t planHits = 0;          // runs that found their plan cached
  uint64_t runs = 0;
};

class CompiledModule {
public:
  struct Parts {
    ir::Function function; // verified, inferred, after graph passes
    fusion::FusedProgram program;
  };

  // Takes ownership of `executable` (may be NULL for a compile-only module
  // loaded from bytes; then `executableBytes` is kept for serialization).
  // With a device, uploads the constants. Checks the program's bindings.
  static Expected<std::unique_ptr<CompiledModule>> create(Parts parts, plugin::Plugin *plugin,
                                                          tessera_device_t *device, TargetInfo target,
                                                          tessera_backend_executable_t *executable,
                                                          std::string executableBytes = {});
  ~CompiledModule();
  CompiledModule(const CompiledModule &) = delete;
  CompiledModule &operator=(const CompiledModule &) = delete;

  const ir::Function &function() const { return parts_.function; }
  const fusion::FusedProgram &program() const { return parts_.program; }
  plugin::Plugin *plugin() const { return plugin_; }
  tessera_device_t *device() const { return device_; } // NULL: compile-only
  const TargetInfo &target() const { return target_; }

  // Binds symbols from the input shapes and returns the (cached) plan.
  // Errors: ShapeMismatch naming the symbol, both sizes and the inputs.
  Expected<std::shared_ptr<const ShapePlan>> plan(const std::vector<std::vector<int64_t>> &inputShapes);

  // Launches every kernel with buffers in operand order and, unless
  // `async`, synchronizes. inputs/outputs: one backend buffer per
  // parameter/result, sized per plan. An asynchronous run returns its arena
  // to the plan's pool at once: the plugin executes launches in order, so
  // the next run's kernels follow this one's (TESSERA_RUN_ASYNC in
  // tessera.h). Thread-safe. Errors: NoDevice (compile-only), the plugin's
  // errors (after a failed launch the run synchronizes either way).
  Error execute(const ShapePlan &plan, const std::vector<tessera_backend_buffer_t *> &inputs,
                const std::vector<tessera_backend_buffer_t *> &outputs, uint32_t numThreads, bool async = false);

  // Waits for every run enqueued on the module's device (the plugin's
  // synchronize). Errors: NoDevice, the plugin's errors.
  Error synchronize();

  // The bytes of tessera_module_serialize (runtime/Serialize.h format).
  Expected<std::string> serialize() const;

  RuntimeStats stats() const;

private:
  CompiledModule() = default;
  Error checkProgram() const;
  Error uploadConstants();
  Expected<std::shared_ptr<ShapePlan>> makePlan(const std::vector<std::vector<int64_t>> &inputShapes) const;

  Parts parts_;
  plugin::Plugin *plugin_ = nullptr;
  tessera_device_t *device_ = nullptr;
  TargetInfo target_;
  tessera_backend_executable_t *executable_ = nullptr;
  std::string executableBytes_;
  std::vector<Interval> liveness_;
  std::vector<InPlaceCandidate> inPlace_;
  std::vector<tessera_backend_buffer_t *> constants_;

  mutable std::mutex cacheMutex_;
  std::map<std::vector<std::vector<int64_t>>, std::shared_ptr<ShapePlan>> cache_;
  std::shared_ptr<const ShapePlan> lastPlan_;
  std::atomic<uint64_t> planHits_{0}, runs_{0};
};

// Element size of a dtype of the IR; 0 for invalid.
size_t elementSize(ir::DType dtype);

} // namespace tessera::runtime

#endif // TESSERA_RUNTIME_COMPILEDMODULE_H
