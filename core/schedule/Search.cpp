#include "schedule/Search.h"

#include "support/CStatus.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <set>

namespace tessera::sched {

namespace sir = tessera::schedule;

Expected<Strategy> parseStrategy(const std::string &name) {
  if (name == "exhaustive")
    return Strategy::Exhaustive;
  if (name == "model" || name == "" || name == "top-k")
    return Strategy::Model;
  if (name == "evolutionary")
    return Strategy::Evolutionary;
  return makeError(ErrorCode::InvalidArgument,
                   "unknown search strategy '" + name + "' (known: exhaustive, model, evolutionary)");
}

const char *strategyName(Strategy s) {
  switch (s) {
  case Strategy::Exhaustive: return "exhaustive";
  case Strategy::Model: return "model";
  case Strategy::Evolutionary: return "evolutionary";
  }
  return "?";
}

namespace {

// Values from `options` up to `extent`, plus the first one at or above it.
std::vector<int64_t> capped(const std::vector<int64_t> &options, int64_t extent) {
  std::vector<int64_t> out;
  for (int64_t v : options) {
    out.push_back(v);
    if (v >= extent)
      break;
  }
  return out;
}

std::vector<int64_t> extents(const sir::Kernel &k, const std::vector<int64_t> &scalars) {
  std::vector<int64_t> e;
  for (const sir::IndexExpr &x : k.parallel)
    e.push_back(std::max<int64_t>(1, sir::evalIndex(x, scalars.data(), nullptr, nullptr, nullptr)));
  return e;
}

// One-kernel program with `knobs` replacing the kernel's knobs.
std::string candidateText(const sir::Program &program, size_t kernel, const Knobs &knobs) {
  sir::Program one;
  one.symbols = program.symbols;
  one.kernels.push_back(program.kernels[kernel]);
  one.kernels[0].knobs = knobs;
  return sir::printProgram(one);
}

tessera_device_description_t describe(const DeviceTarget &t) {
  tessera_device_description_t d{};
  d.struct_size = sizeof(d);
  d.plugin = t.plugin->name().c_str();
  d.architecture = t.architecture.empty() ? nullptr : t.architecture.c_str();
  d.features = t.features.empty() ? nullptr : t.features.c_str();
  return d;
}

const tessera_backend_cost_model_extension_t *costModelOf(const plugin::Plugin &p) {
  auto *e = p.extension(TESSERA_BACKEND_EXTENSION_COST_MODEL);
  if (!e || e->struct_size < sizeof(tessera_backend_cost_model_extension_t))
    return nullptr;
  auto *cm = reinterpret_cast<const tessera_backend_cost_model_extension_t *>(e);
  return cm->estimate ? cm : nullptr;
}

const tessera_backend_measurement_extension_t *measurementOf(const plugin::Plugin &p) {
  auto *e = p.extension(TESSERA_BACKEND_EXTENSION_MEASUREMENT);
  if (!e || e->struct_size < sizeof(tessera_backend_measurement_extension_t))
    return nullptr;
  auto *m = reinterpret_cast<const tessera_backend_measurement_extension_t *>(e);
  return m->measure ? m : nullptr;
}

// Predicts one candidate; fills feasible/reason/predicted.
void predict(const sir::Program &program, size_t kernel, const std::vector<int64_t> &scalars,
             const DeviceTarget &target, Candidate &c) {
  const auto *cm = costModelOf(*target.plugin);
  if (!cm)
    return;
  std::string text = candidateText(program, kernel, c.knobs);
  tessera_device_description_t d = describe(target);
  tessera_backend_cost_query_t q{};
  q.struct_size = sizeof(q);
  q.program = text.data();
  q.program_size = text.size();
  q.program_format = sir::kProgramFormat;
  q.kernel_index = 0;
  q.target = &d;
  q.scalars = scalars.data();
  q.num_scalars = scalars.size();
  tessera_backend_cost_estimate_t est{};
  est.struct_size = sizeof(est);
  if (Error e = takeCStatus(cm->estimate(target.plugin->instance(), &q, &est))) {
    c.feasible = false;
    c.reason = e.message();
    return;
  }
  c.feasible = est.feasible != 0;
  if (!c.feasible)
    c.reason = est.reason ? est.reason : "infeasible";
  c.predicted = est.seconds;
}

// Operand buffers with random contents, allocated once per kernel.
class Operands {
public:
  Operands(plugin::Plugin &p, uint32_t ordinal) : p_(p), ordinal_(ordinal) {}
  ~Operands() {
    auto freeFn = p_.slot(&tessera_backend_api_t::buffer_free);
    for (tessera_backend_buffer_t *b : buffers_)
      if (b && freeFn)
        {
        Error ignored = takeCStatus(freeFn(p_.instance(), b));
        (void)ignored;
      }
  }
  Operands(const Operands &) = delete;
  Operands &operator=(const Operands &) = delete;

  Error allocate(const sir::Kernel &k, const std::vector<int64_t> &scalars, uint64_t seed) {
    auto allocFn = p_.slot(&tessera_backend_api_t::buffer_allocate);
    auto copyFn = p_.slot(&tessera_backend_api_t::buffer_copy_from_host);
    if (!allocFn || !copyFn)
      return makeError(ErrorCode::Unsupported, "plugin '" + p_.name() + "' cannot allocate buffers");
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (const sir::Operand &o : k.operands) {
      uint64_t bytes = sir::dtypeSize(o.dtype);
      for (const sir::IndexExpr &e : o.shape)
        bytes *= uint64_t(std::max<int64_t>(0, sir::evalIndex(e, scalars.data(), nullptr, nullptr, nullptr)));
      if (bytes > (uint64_t(4) << 30))
        return makeError(ErrorCode::ResourceExhausted, "operand too large to measure");
      tessera_backend_buffer_t *b = nullptr;
      if (Error e = takeCStatus(allocFn(p_.instance(), ordinal_, std::max<uint64_t>(bytes, 1), &b)))
        return e;
      buffers_.push_back(b);
      // f32 operands get uniform values in [-1, 1); others zeros (safe
      // for integer operands used as gather indices).
      std::vector<unsigned char> host(bytes, 0);
      if (o.dtype == TESSERA_DTYPE_F32)
        for (uint64_t i = 0; i + 4 <= bytes; i += 4) {
          float v = dist(rng);
          std::memcpy(&host[i], &v, 4);
        }
      if (bytes)
        if (Error e = takeCStatus(copyFn(p_.instance(), b, 0, host.data(), bytes)))
          return e;
    }
    return Error::success();
  }
  const std::vector<tessera_backend_buffer_t *> &buffers() const { return buffers_; }

private:
  plugin::Plugin &p_;
  uint32_t ordinal_;
  std::vector<tessera_backend_buffer_t *> buffers_;
};

// A candidate compiled alone (a one-kernel program), kept while it may be
// timed again; destroyed through the plugin.
class Executable {
public:
  Executable(plugin::Plugin &p, tessera_backend_executable_t *exe) : p_(p), exe_(exe) {}
  ~Executable() {
    if (auto destroyFn = p_.slot(&tessera_backend_api_t::executable_destroy)) {
      Error ignored = takeCStatus(destroyFn(p_.instance(), exe_));
      (void)ignored;
    }
  }
  Executable(const Executable &) = delete;
  Executable &operator=(const Executable &) = delete;
  tessera_backend_executable_t *get() const { return exe_; }

private:
  plugin::Plugin &p_;
  tessera_backend_executable_t *exe_;
};

Expected<std::unique_ptr<Executable>> compileCandidate(const sir::Program &program, size_t kernel,
                                                       const DeviceTarget &target, const Knobs &knobs) {
  plugin::Plugin &p = *target.plugin;
  auto compileFn = p.slot(&tessera_backend_api_t::compile);
  if (!measurementOf(p) || !compileFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + p.name() + "' cannot measure");
  std::string text = candidateText(program, kernel, knobs);
  tessera_device_description_t d = describe(target);
  tessera_backend_compile_args_t args{};
  args.struct_size = sizeof(args);
  args.program = text.data();
  args.program_size = text.size();
  args.program_format = sir::kProgramFormat;
  args.target = &d;
  args.device_ordinal = static_cast<int32_t>(target.device->ordinal);
  args.opt_level = 2;
  tessera_backend_executable_t *exe = nullptr;
  if (Error e = takeCStatus(compileFn(p.instance(), &args, &exe)))
    return e;
  return std::make_unique<Executable>(p, exe);
}

// One call of the plugin's measurement extension: the median of
// `repetitions` timed launches after `warmup` untimed ones.
Expected<double> timeCandidate(const DeviceTarget &target, const Operands &operands, const Executable &exe,
                               const std::vector<int64_t> &scalars, uint32_t warmup, uint32_t repetitions) {
  plugin::Plugin &p = *target.plugin;
  const auto *m = measurementOf(p);
  tessera_backend_launch_args_t launch{};
  launch.struct_size = sizeof(launch);
  launch.executable = exe.get();
  launch.kernel_index = 0;
  launch.device_ordinal = target.device->ordinal;
  launch.buffers = operands.buffers().data();
  launch.num_buffers = operands.buffers().size();
  launch.scalars = scalars.data();
  launch.num_scalars = scalars.size();
  tessera_backend_measure_args_t margs{};
  margs.struct_size = sizeof(margs);
  margs.launch = &launch;
  margs.warmup = warmup;
  margs.repetitions = std::max<uint32_t>(1, repetitions);
  tessera_backend_measurement_t out{};
  out.struct_size = sizeof(out);
  if (Error e = takeCStatus(m->measure(p.instance(), &margs, &out)))
    return e;
  return out.median_seconds;
}

// Medians per candidate: enough that together they last about
// minMeasureSeconds (a median of 7 runs of a 100 us kernel covers under a
// millisecond, and one preemption by another process on a shared machine
// moves it by tens of percent), between `timings` and `maxTimings`.
uint32_t timingsFor(double estimate, const SearchOptions &options) {
  const uint32_t lo = std::max<uint32_t>(1, options.timings);
  if (options.minMeasureSeconds <= 0 || estimate <= 0)
    return lo;
  double want = std::ceil(options.minMeasureSeconds / (estimate * std::max(1u, options.repetitions)));
  return uint32_t(std::clamp(want, double(lo), double(std::max(lo, options.maxTimings))));
}

// Model strategy: `order` (the default, then by prediction) with, right
// after the default, the best-predicted candidate of every value of every
// knob (in order of prediction, at most half the budget). A cost model that
// is wrong about one knob (threads on a machine whose cores are busy with
// other work, say) then still gets each of that knob's values measured,
// instead of spending the whole budget on its favourite value; TVM's
// model-guided search keeps random trials (epsilon-greedy) for the same
// reason.
std::vector<size_t> withCoverage(const std::vector<size_t> &order, const std::vector<Candidate> &all,
                                 uint32_t budget) {
  std::set<std::pair<std::string, std::string>> covered;
  std::vector<size_t> first{order[0]}, rest;
  const size_t most = budget / 2;
  for (size_t j = 1; j < order.size(); ++j) {
    const Candidate &c = all[order[j]];
    bool fresh = false;
    if (c.feasible)
      for (const auto &[key, value] : c.knobs)
        fresh = covered.insert({key, printKnobs({{key, value}})}).second || fresh;
    (fresh && first.size() <= most ? first : rest).push_back(order[j]);
  }
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

} // namespace

std::vector<Knobs> enumerateSpace(const sir::Program &program, size_t kernel, const std::vector<int64_t> &scalars,
                                  unsigned cores, const PluginSpace &pluginSpace) {
  const sir::Kernel &k = program.kernels.at(kernel);
  std::vector<int64_t> ext = extents(k, scalars);
  std::vector<Knobs> out;
  out.push_back(k.knobs); // the default schedule
  std::vector<int64_t> threads{int64_t(std::max(1u, cores))};
  if (cores > 1)
    threads.insert(threads.begin(), 1);
  std::vector<Knobs> base;
  if (k.kind == sir::Kernel::Kind::Matmul && ext.size() >= 2) {
    int64_t M = ext[ext.size() - 2], N = ext.back(), K = 1;
    if (!k.stages.empty() && !k.stages[0].inner.empty())
      K = std::max<int64_t>(1, sir::evalIndex(k.stages[0].inner[0], scalars.data(), nullptr, nullptr, nullptr));
    for (int64_t mc : capped({24, 48, 96, 192, 384}, M))
      for (int64_t kc : capped({64, 128, 256, 512}, K))
        for (int64_t nc : capped({64, 128, 256, 512, 1024}, N)) {
          Knobs kn = k.knobs;
          kn["mc"] = mc;
          kn["kc"] = kc;
          kn["nc"] = nc;
          base.push_back(kn);
        }
  } else {
    // Tile of the innermost parallel loop over powers of two (up to the
    // extent); outer loops 1 or whole.
    std::vector<std::vector<int64_t>> tiles{{}};
    for (size_t d = 0; d < ext.size(); ++d) {
      std::vector<int64_t> choices;
      if (d + 1 == ext.size()) {
        for (int64_t t = 1; t < ext[d]; t *= 4)
          choices.push_back(t);
        choices.push_back(ext[d]);
      } else {
        choices = {1};
        if (ext[d] > 1)
          choices.push_back(std::min<int64_t>(ext[d], 8));
      }
      std::vector<std::vector<int64_t>> next;
      for (const auto &prefix : tiles)
        for (int64_t c : choices) {
          auto t = prefix;
          t.push_back(c);
          next.push_back(t);
        }
      tiles = std::move(next);
      if (tiles.size() > 256)
        break;
    }
    for (const auto &t : tiles) {
      if (t.size() != ext.size())
        continue;
      Knobs kn = k.knobs;
      kn["tile"] = t;
      base.push_back(kn);
    }
  }
  if (base.empty())
    base.push_back(k.knobs);
  // `vector` and `unroll` are not enumerated: no plugin's code generator
  // reads them (the CPU plugin leaves both to LLVM and its GEMM micro-kernel
  // takes the ISA's width; the CUDA plugin picks them per kernel path), so
  // each value would repeat the same code, multiply the space by six and
  // add points whose measured differences are only noise. A schedule file
  // can still set them; the cost model checks what it accepts.
  for (const Knobs &b : base)
    for (int64_t t : threads) {
      Knobs kn = b;
      kn["threads"] = t;
      if (kn != out[0])
        out.push_back(kn);
    }
  // Knob values of the target plugin's own code generators, from its
  // manifest (`search_space`, docs/schedule.md): each alternative adds every
  // combination of its values. The points above carry `threads` and these
  // do not, so a cost model can tell the families apart by the knobs it
  // does not read and reject them before anything is compiled or measured.
  const char *kind = k.kind == sir::Kernel::Kind::Matmul      ? "matmul"
                     : k.kind == sir::Kernel::Kind::Attention ? "attention"
                                                              : "loop";
  auto found = pluginSpace.find(kind);
  if (found == pluginSpace.end())
    return out;
  for (const plugin::KnobChoices &alt : found->second) {
    std::vector<Knobs> points{k.knobs};
    for (const auto &[name, values] : alt.knobs) {
      std::vector<Knobs> next;
      for (const Knobs &prefix : points)
        for (const std::string &v : values) {
          Knobs kn = prefix;
          char *endp = nullptr;
          long long n = std::strtoll(v.c_str(), &endp, 10);
          if (!v.empty() && *endp == '\0')
            kn[name] = int64_t(n);
          else
            kn[name] = v;
          next.push_back(std::move(kn));
        }
      points = std::move(next);
    }
    for (Knobs &kn : points)
      if (kn != out[0] && std::find(out.begin(), out.end(), kn) == out.end())
        out.push_back(std::move(kn));
  }
  return out;
}

std::string infeasibleReason(const sir::Program &program, size_t kernel, const Knobs &knobs,
                             const std::vector<int64_t> &scalars, const DeviceTarget &target) {
  Candidate c;
  c.knobs = knobs;
  predict(program, kernel, scalars, target, c);
  return c.feasible ? std::string() : c.reason;
}

Expected<KernelResult> tuneKernel(const sir::Program &program, size_t kernel, const std::vector<int64_t> &scalars,
                                  const DeviceTarget &target, const SearchOptions &options) {
  if (kernel >= program.kernels.size())
    return makeError(ErrorCode::InvalidArgument, "kernel index out of range");
  if (scalars.size() < program.symbols.size())
    return makeError(ErrorCode::InvalidArgument, "autotuning needs concrete values for every symbol (bind them)");
  const sir::Kernel &k = program.kernels[kernel];
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  KernelResult r;
  r.name = k.name;
  r.hash = structuralHash(program, kernel);
  r.matmul = k.kind == sir::Kernel::Kind::Matmul;
  r.hasModel = costModelOf(*target.plugin) != nullptr;
  r.hasMeasurement = target.device && measurementOf(*target.plugin) != nullptr;
  unsigned cores = target.device && target.device->computeUnits ? target.device->computeUnits : 1;
  std::vector<Knobs> space = enumerateSpace(program, kernel, scalars, cores, target.plugin->searchSpace());
  r.candidates = space.size();
  r.all.resize(space.size());
  for (size_t i = 0; i < space.size(); ++i) {
    r.all[i].knobs = space[i];
    predict(program, kernel, scalars, target, r.all[i]);
    r.feasible += r.all[i].feasible ? 1 : 0;
  }
  r.defaultPredicted = r.all[0].predicted;

  std::unique_ptr<Operands> operands;
  if (r.hasMeasurement) {
    operands = std::make_unique<Operands>(*target.plugin, target.device->ordinal);
    if (Error e = operands->allocate(k, scalars, options.seed))
      return e;
  }
  const uint32_t budget = options.maxTrials ? options.maxTrials : uint32_t(space.size());
  auto budgetLeft = [&] {
    return r.measured < budget && (options.maxSeconds <= 0 || elapsed() < options.maxSeconds);
  };
  // Executables of the candidates to be timed again (all measured ones, or
  // the fastest confirmLimit and the default), so re-timing needs no
  // recompile.
  std::map<size_t, std::unique_ptr<Executable>> kept;
  const size_t keep = size_t(options.confirmLimit) + 1;
  auto keepExecutable = [&](size_t i, std::unique_ptr<Executable> exe) {
    kept[i] = std::move(exe);
    while (kept.size() > keep) {
      auto worst = kept.end();
      for (auto it = kept.begin(); it != kept.end(); ++it)
        if (it->first != 0 && (worst == kept.end() || r.all[it->first].measured > r.all[worst->first].measured))
          worst = it;
      if (worst == kept.end())
        break;
      kept.erase(worst);
    }
  };
  // A failed compile or launch makes the candidate infeasible (with the
  // plugin's reason); the search goes on.
  auto fail = [&](Candidate &c, const Error &e) {
    c.feasible = false;
    c.reason = e.message();
    return Error::success();
  };
  auto measureOne = [&](size_t i) -> Error {
    Candidate &c = r.all[i];
    if (!c.feasible || c.measured >= 0)
      return Error::success();
    Expected<std::unique_ptr<Executable>> exe = compileCandidate(program, kernel, target, c.knobs);
    if (!exe)
      return fail(c, exe.error());
    // The first median (after the warm-up) estimates the run time; then
    // more medians until they cover about minMeasureSeconds, and the lowest
    // is kept: interference on a shared machine only ever adds time, and a
    // burst of it spoils the medians it overlaps, not all of them.
    Expected<double> t = timeCandidate(target, *operands, **exe, scalars, options.warmup, options.repetitions);
    if (!t)
      return fail(c, t.error());
    double best = *t;
    for (uint32_t j = 1, n = timingsFor(best, options); j < n; ++j) {
      Expected<double> again = timeCandidate(target, *operands, **exe, scalars, 1, options.repetitions);
      if (!again)
        return fail(c, again.error());
      best = std::min(best, *again);
    }
    c.measured = best;
    ++r.measured;
    keepExecutable(i, std::move(*exe));
    if (options.progress)
      options.progress(k.name, uint32_t(r.measured), budget);
    return Error::success();
  };
  // Interleaved re-timing of the measured candidates: rounds over the kept
  // executables, each in a rotated order, so that the timings of one
  // candidate lie seconds apart. On a shared machine whose load comes and
  // goes (a second core free for a while, then busy with someone's build)
  // every candidate then sees the quiet spells too, instead of some being
  // measured only in a busy one; each keeps the minimum of its medians. This
  // is what makes the ranking, and a choice between candidates a few
  // percent apart, repeatable.
  auto confirm = [&]() -> Error {
    std::vector<size_t> ids;
    for (const auto &entry : kept)
      if (r.all[entry.first].feasible && r.all[entry.first].measured >= 0)
        ids.push_back(entry.first);
    if (ids.size() < 2)
      return Error::success();
    for (uint32_t round = 0; round < options.confirmRounds; ++round)
      for (size_t j = 0; j < ids.size(); ++j) {
        if (options.maxSeconds > 0 && elapsed() >= options.maxSeconds)
          return Error::success();
        const size_t id = ids[(j + round) % ids.size()];
        Candidate &c = r.all[id];
        for (uint32_t n = timingsFor(c.measured, options); c.feasible && n-- > 0;) {
          Expected<double> t = timeCandidate(target, *operands, *kept[id], scalars, 1, options.repetitions);
          if (!t)
            (void)fail(c, t.error());
          else
            c.measured = std::min(c.measured, *t);
        }
      }
    return Error::success();
  };

  // Order of measurement: by prediction (model), enumeration (exhaustive,
  // or model without a cost model), or evolution.
  std::vector<size_t> order(space.size());
  std::iota(order.begin(), order.end(), 0);
  if (r.hasModel && options.strategy != Strategy::Exhaustive) {
    std::stable_sort(order.begin() + 1, order.end(), [&](size_t a, size_t b) {
      return r.all[a].predicted < r.all[b].predicted;
    });
    if (options.strategy == Strategy::Model)
      order = withCoverage(order, r.all, budget);
  }
  if (r.hasMeasurement) {
    // The default schedule is always measured first (the baseline).
    if (Error e = measureOne(0))
      return e;
    if (options.strategy != Strategy::Evolutionary) {
      for (size_t i : order) {
        if (!budgetLeft())
          break;
        if (Error e = measureOne(i))
          return e;
      }
    } else {
      // Evolutionary (regularized-evolution style, Real et al. 2019): a
      // population seeded with the model's best; each step mutates one
      // knob of a tournament winner to a neighbouring point of the space.
      std::mt19937_64 rng(options.seed);
      std::vector<size_t> population;
      for (size_t i : order) {
        if (population.size() >= 8 || !budgetLeft())
          break;
        if (Error e = measureOne(i))
          return e;
        if (r.all[i].measured >= 0)
          population.push_back(i);
      }
      std::set<size_t> tried(population.begin(), population.end());
      for (int guard = 0; budgetLeft() && !population.empty() && guard < 10000; ++guard) {
        size_t a = population[rng() % population.size()], b = population[rng() % population.size()];
        size_t parent = r.all[a].measured <= r.all[b].measured ? a : b;
        // Neighbours: candidates differing in exactly one knob.
        std::vector<size_t> neighbours;
        for (size_t i = 0; i < space.size(); ++i) {
          if (tried.count(i) || !r.all[i].feasible)
            continue;
          int diff = 0;
          for (const auto &[key, v] : space[i]) {
            auto it = space[parent].find(key);
            diff += (it == space[parent].end() || it->second != v) ? 1 : 0;
          }
          if (diff == 1)
            neighbours.push_back(i);
        }
        size_t pick;
        if (!neighbours.empty()) {
          pick = neighbours[rng() % neighbours.size()];
        } else {
          std::vector<size_t> rest;
          for (size_t i = 0; i < space.size(); ++i)
            if (!tried.count(i) && r.all[i].feasible)
              rest.push_back(i);
          if (rest.empty())
            break;
          pick = rest[rng() % rest.size()];
        }
        tried.insert(pick);
        if (Error e = measureOne(pick))
          return e;
        if (r.all[pick].measured >= 0) {
          population.push_back(pick);
          if (population.size() > 16)
            population.erase(population.begin()); // age out the oldest
        }
      }
    }
  }
  if (r.hasMeasurement)
    if (Error e = confirm())
      return e;
  kept.clear();
  // Choose: fastest measured; else best predicted; else the default.
  size_t best = 0;
  bool any = false;
  for (size_t i = 0; i < r.all.size(); ++i) {
    const Candidate &c = r.all[i];
    if (!c.feasible)
      continue;
    double v = r.hasMeasurement ? c.measured : c.predicted;
    if (v < 0)
      continue;
    double bv = r.hasMeasurement ? r.all[best].measured : r.all[best].predicted;
    if (!any || v < bv) {
      best = i;
      any = true;
    }
  }
  r.chosen = r.all[best].knobs;
  r.predicted = r.all[best].predicted;
  r.measuredSeconds = r.all[best].measured;
  r.defaultSeconds = r.all[0].measured;
  return r;
}

double spearman(const std::vector<double> &x, const std::vector<double> &y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2)
    return 0;
  auto ranks = [n](const std::vector<double> &v) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]])
        ++j;
      for (size_t t = i; t <= j; ++t)
        r[idx[t]] = (double(i) + double(j)) / 2.0 + 1.0;
      i = j + 1;
    }
    return r;
  };
  std::vector<double> rx = ranks(x), ry = ranks(y);
  double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / double(n);
  double my = std::accumulate(ry.begin(), ry.end(), 0.0) / double(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0;
}

} // namespace tessera::sched
