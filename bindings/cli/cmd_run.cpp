// `tessera run FILE [--target cpu] [--entry NAME] [--inputs a.npy,...] [--outputs o.npy,...]
//               [--check] [--bind B=8,S=128] [--repeat N]`:
// compiles a .tsr file (or loads a serialized .tsrm module), runs it on the
// target plugin's first device with the given or random inputs, prints the
// run time, writes or summarizes the outputs, and with --check compares them
// with the reference interpreter (tessera_program_run_reference).
//
// Symbols: --bind gives values; every other symbol defaults to 8. Without
// --inputs the module is compiled for those sizes (every symbol fixed);
// with --inputs, symbols the input shapes determine stay symbolic and only
// --bind values and symbols no input determines (e.g. a head count H) are
// fixed at compile time.
#include "Compile.h"
#include "HostData.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

namespace tessera::cli {
namespace {

constexpr int64_t kDefaultSymbolValue = 8;

struct RunArgs {
  std::string file;
  std::string target = "cpu";
  std::string entry;
  std::string inputs;
  std::string outputs;
  std::string bind;
  std::string pluginPath;
  bool check = false;
  int repeat = 1;
  int optLevel = 2;
  uint32_t threads = 0;
  uint64_t seed = 0;
};

std::vector<std::string> splitCommas(const std::string &text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      out.push_back(item);
  return out;
}

std::string blobText(tessera_blob_t *blob) {
  std::string s(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
  tessera_blob_free(blob);
  return s;
}

std::string shapeText(tessera_dtype_t dtype, const std::vector<int64_t> &shape) {
  std::string out = std::string(dtypeName(dtype)) + "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Comparison tolerances per dtype: |out - ref| <= atol + rtol * |ref|.
void tolerance(tessera_dtype_t dtype, double &atol, double &rtol) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: atol = rtol = 1e-9; break;
  case TESSERA_DTYPE_F32: atol = rtol = 1e-4; break;
  case TESSERA_DTYPE_F16: atol = rtol = 1e-2; break;
  case TESSERA_DTYPE_BF16: atol = rtol = 5e-2; break;
  case TESSERA_DTYPE_F8E4M3: atol = rtol = 0.25; break;
  case TESSERA_DTYPE_F8E5M2: atol = rtol = 0.5; break;
  default: atol = rtol = 0; break; // integers and bool: exact
  }
}

bool readTensor(tessera_tensor_t *t, HostArray &out) {
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  if (tessera_status_t *s = tessera_tensor_get_info(t, &info))
    return reportStatus(s, "tensor"), false;
  out.dtype = info.dtype;
  out.shape.assign(info.shape, info.shape + info.rank);
  out.bytes.resize(info.size_bytes);
  if (tessera_status_t *s = tessera_tensor_copy_to_host(t, out.bytes.data(), info.size_bytes))
    return reportStatus(s, "copy to host"), false;
  return true;
}

class Runner {
public:
  explicit Runner(const RunArgs &args) : args_(args) {}
  ~Runner() {
    for (tessera_tensor_t *t : inputs_)
      tessera_tensor_free(t);
    for (tessera_tensor_t *t : outputs_)
      tessera_tensor_free(t);
    tessera_module_destroy(module_);
    tessera_program_destroy(program_);
    if (context_)
      if (tessera_status_t *s = tessera_context_destroy(context_))
        reportStatus(s, "context");
  }

  int run() {
    std::string source;
    if (!readFile(args_.file, source))
      return kExitRuntime;
    std::string error;
    if (!parseBindList(args_.bind, userBind_, error)) {
      std::fprintf(stderr, "tessera: error: --bind: %s\n", error.c_str());
      return kExitUsage;
    }
    if (args_.repeat < 1) {
      std::fprintf(stderr, "tessera: error: --repeat must be >= 1\n");
      return kExitUsage;
    }
    ContextOptions contextOptions;
    contextOptions.pluginPath = args_.pluginPath;
    context_ = createContext(contextOptions);
    if (!context_)
      return kExitRuntime;
    std::string why;
    device_ = findPluginDevice(context_, args_.target, why);
    if (!device_) {
      std::fprintf(stderr, "tessera: error: cannot run on '%s': %s [no device]\n", args_.target.c_str(), why.c_str());
      return kExitRuntime;
    }
    int rc = isSerializedModule(source) ? load(source) : isOnnxPath(args_.file) ? compileOnnx(source) : compile(source);
    if (rc != kExitOk)
      return rc;
    if ((rc = makeInputs()) != kExitOk)
      return rc;
    if ((rc = execute()) != kExitOk)
      return rc;
    if ((rc = writeOutputs()) != kExitOk)
      return rc;
    return args_.check ? check() : kExitOk;
  }

private:
  int load(const std::string &bytes) {
    if (args_.check) {
      std::fprintf(stderr, "tessera: error: --check needs the .tsr source; %s is a compiled module\n",
                   args_.file.c_str());
      return kExitUsage;
    }
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    auto start = std::chrono::steady_clock::now();
    if (tessera_status_t *s = tessera_module_load(context_, bytes.data(), bytes.size(), &target, &module_))
      return reportStatus(s, args_.file);
    std::printf("load: %.1f ms\n", msSince(start));
    symbols_ = userBind_;
    return kExitOk;
  }

  // ONNX models have no Graph IR text here: no --check; symbols from --bind
  // or the defaults.
  int compileOnnx(const std::string &source) {
    if (args_.check) {
      std::fprintf(stderr, "tessera: error: --check needs .tsr source; %s is an ONNX model\n", args_.file.c_str());
      return kExitUsage;
    }
    symbols_ = userBind_;
    CompileRequest request;
    request.path = args_.file;
    request.source = source;
    request.onnx = true;
    request.entry = args_.entry;
    request.bind = args_.bind;
    request.optLevel = args_.optLevel;
    request.device = device_;
    auto start = std::chrono::steady_clock::now();
    int rc = compileSource(context_, request, &module_);
    if (rc == kExitOk)
      std::printf("compile: %.1f ms\n", msSince(start));
    return rc;
  }

  // Gives every symbol of `expr` without a value the default one.
  void defaultSymbols(const std::string &expr) {
    for (size_t i = 0; i < expr.size();) {
      if (std::isalpha(static_cast<unsigned char>(expr[i])) || expr[i] == '_') {
        size_t b = i;
        while (i < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[i])) || expr[i] == '_'))
          ++i;
        std::string name = expr.substr(b, i - b);
        if (symbols_.emplace(name, kDefaultSymbolValue).second)
          std::printf("symbols: %s=%lld (default; set it with --bind)\n", name.c_str(),
                      static_cast<long long>(kDefaultSymbolValue));
      } else {
        ++i;
      }
    }
  }

  int compile(const std::string &source) {
    if (tessera_status_t *s = tessera_program_parse(source.data(), source.size(), args_.file.c_str(), &program_))
      return reportStatus(s, args_.file);
    const char *entry = args_.entry.empty() ? nullptr : args_.entry.c_str();
    tessera_blob_t *all = nullptr, *undetermined = nullptr;
    if (tessera_status_t *s = tessera_program_function_symbols(program_, entry, TESSERA_PROGRAM_SYMBOLS_ALL, &all))
      return reportStatus(s, args_.file);
    if (tessera_status_t *s =
            tessera_program_function_symbols(program_, entry, TESSERA_PROGRAM_SYMBOLS_UNDETERMINED, &undetermined))
      return reportStatus(s, args_.file);
    std::vector<std::string> allNames = splitCommas(blobText(all)), fixed = splitCommas(blobText(undetermined));
    for (const auto &[name, value] : userBind_)
      if (std::find(allNames.begin(), allNames.end(), name) == allNames.end()) {
        std::fprintf(stderr, "tessera: error: --bind %s: the function has no symbol '%s'\n", name.c_str(),
                     name.c_str());
        return kExitUsage;
      }
    std::string defaults;
    for (const std::string &name : allNames) {
      auto it = userBind_.find(name);
      symbols_[name] = it != userBind_.end() ? it->second : kDefaultSymbolValue;
      if (it == userBind_.end() && args_.inputs.empty())
        defaults += (defaults.empty() ? "" : ",") + name + "=" + std::to_string(kDefaultSymbolValue);
    }
    // Without --inputs the sizes are known: compile for them (every symbol
    // fixed). With --inputs, only --bind and the symbols no input determines.
    for (const std::string &name : allNames)
      if (args_.inputs.empty() || userBind_.count(name) ||
          std::find(fixed.begin(), fixed.end(), name) != fixed.end())
        compileBind_ += (compileBind_.empty() ? "" : ",") + name + "=" + std::to_string(symbols_[name]);
    if (!defaults.empty())
      std::printf("symbols: %s (defaults; set them with --bind)\n", defaults.c_str());

    CompileRequest request;
    request.path = args_.file;
    request.source = source;
    request.entry = args_.entry;
    request.bind = compileBind_;
    request.optLevel = args_.optLevel;
    request.device = device_;
    auto start = std::chrono::steady_clock::now();
    int rc = compileSource(context_, request, &module_);
    if (rc == kExitOk)
      std::printf("compile: %.1f ms\n", msSince(start));
    return rc;
  }

  int makeInputs() {
    size_t n = tessera_module_input_count(module_);
    std::vector<std::string> files = splitCommas(args_.inputs);
    if (!files.empty() && files.size() != n) {
      std::fprintf(stderr, "tessera: error: --inputs has %zu files; the module takes %zu inputs\n", files.size(), n);
      return kExitUsage;
    }
    for (size_t i = 0; i < n; ++i) {
      tessera_value_info_t info{};
      info.struct_size = TESSERA_VALUE_INFO_STRUCT_SIZE;
      if (tessera_status_t *s = tessera_module_get_input(module_, i, &info))
        return reportStatus(s, "module input");
      HostArray array;
      std::string error;
      if (!files.empty()) {
        HostArray raw;
        if (!readNpy(files[i], raw, error) || !convertArray(raw, info.dtype, array, error)) {
          std::fprintf(stderr, "tessera: error: input %zu (%%%s): %s\n", i, info.name, error.c_str());
          return kExitUsage;
        }
      } else {
        std::vector<int64_t> shape;
        for (uint32_t d = 0; d < info.rank; ++d) {
          int64_t size = info.dims[d].size;
          if (size < 0)
            defaultSymbols(info.dims[d].symbol);
          if (size < 0 && !evalDim(info.dims[d].symbol, symbols_, size, error)) {
            std::fprintf(stderr, "tessera: error: input %zu (%%%s): %s\n", i, info.name, error.c_str());
            return kExitUsage;
          }
          shape.push_back(size);
        }
        array = randomArray(info.dtype, shape, args_.seed * 1000003 + i);
      }
      tessera_tensor_t *t = nullptr;
      if (tessera_status_t *s = tessera_tensor_create(device_, array.dtype, static_cast<uint32_t>(array.shape.size()),
                                                      array.shape.data(), &t))
        return reportStatus(s, "input " + std::to_string(i));
      inputs_.push_back(t);
      if (tessera_status_t *s = tessera_tensor_copy_from_host(t, array.bytes.data(), array.bytes.size()))
        return reportStatus(s, "input " + std::to_string(i));
      std::printf("input  %%%s: %s%s\n", info.name, shapeText(array.dtype, array.shape).c_str(),
                  files.empty() ? " (random)" : "");
    }
    return kExitOk;
  }

  int execute() {
    size_t n = tessera_module_output_count(module_);
    tessera_run_options_t options{};
    options.struct_size = TESSERA_RUN_OPTIONS_STRUCT_SIZE;
    options.num_threads = args_.threads;
    std::vector<double> times;
    for (int r = 0; r < args_.repeat; ++r) {
      std::vector<tessera_tensor_t *> outs(n, nullptr);
      auto start = std::chrono::steady_clock::now();
      tessera_status_t *s = tessera_module_run(module_, &options, inputs_.size(), inputs_.data(), n, outs.data());
      times.push_back(msSince(start));
      if (s)
        return reportStatus(s, "run");
      for (tessera_tensor_t *t : outputs_)
        tessera_tensor_free(t);
      outputs_ = outs;
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    if (args_.repeat == 1)
      std::printf("run: %.3f ms\n", times[0]);
    else
      std::printf("run: %.3f ms median of %d (min %.3f, first %.3f)\n", sorted[sorted.size() / 2], args_.repeat,
                  sorted.front(), times[0]);
    tessera_module_stats_t stats{};
    stats.struct_size = TESSERA_MODULE_STATS_STRUCT_SIZE;
    if (tessera_status_t *s = tessera_module_get_stats(module_, &stats))
      return reportStatus(s, "module stats");
    std::printf("memory: %u kernels; intermediates %.1f KiB in an arena of %.1f KiB (peak live %.1f KiB, "
                "%u in place)\n",
                stats.kernels, stats.intermediate_bytes / 1024.0, stats.arena_bytes / 1024.0,
                stats.peak_live_bytes / 1024.0, stats.in_place);
    return kExitOk;
  }

  int writeOutputs() {
    std::vector<std::string> files = splitCommas(args_.outputs);
    if (!files.empty() && files.size() != outputs_.size()) {
      std::fprintf(stderr, "tessera: error: --outputs has %zu files; the module has %zu outputs\n", files.size(),
                   outputs_.size());
      return kExitUsage;
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
      tessera_value_info_t info{};
      info.struct_size = TESSERA_VALUE_INFO_STRUCT_SIZE;
      if (tessera_status_t *s = tessera_module_get_output(module_, i, &info))
        return reportStatus(s, "module output");
      HostArray array;
      if (!readTensor(outputs_[i], array))
        return kExitRuntime;
      double lo = INFINITY, hi = -INFINITY, sum = 0;
      size_t count = array.count();
      for (size_t k = 0; k < count; ++k) {
        double v = array.at(k);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        sum += v;
      }
      std::printf("output %%%s: %s min %.4g max %.4g mean %.4g\n", info.name,
                  shapeText(array.dtype, array.shape).c_str(), lo, hi, count ? sum / count : 0.0);
      std::string error;
      if (!files.empty() && !writeNpy(files[i], array, error)) {
        std::fprintf(stderr, "tessera: error: %s\n", error.c_str());
        return kExitRuntime;
      }
    }
    return kExitOk;
  }

  int check() {
    std::vector<tessera_tensor_t *> refs(outputs_.size(), nullptr);
    auto start = std::chrono::steady_clock::now();
    tessera_status_t *s = tessera_program_run_reference(program_, args_.entry.empty() ? nullptr : args_.entry.c_str(),
                                                        compileBind_.empty() ? nullptr : compileBind_.c_str(),
                                                        inputs_.size(), inputs_.data(), refs.size(), refs.data());
    if (s)
      return reportStatus(s, "reference interpreter");
    double refMs = msSince(start);
    bool pass = true;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      HostArray out, ref;
      bool ok = readTensor(outputs_[i], out) && readTensor(refs[i], ref);
      tessera_tensor_free(refs[i]);
      if (!ok)
        return kExitRuntime;
      tessera_value_info_t info{};
      info.struct_size = TESSERA_VALUE_INFO_STRUCT_SIZE;
      if (tessera_status_t *st = tessera_module_get_output(module_, i, &info))
        return reportStatus(st, "module output");
      double atol, rtol;
      tolerance(out.dtype, atol, rtol);
      double maxAbs = 0, maxRel = 0;
      size_t bad = 0;
      if (out.shape != ref.shape) {
        std::printf("check %%%s: shape %s, reference %s: FAIL\n", info.name, shapeText(out.dtype, out.shape).c_str(),
                    shapeText(ref.dtype, ref.shape).c_str());
        pass = false;
        continue;
      }
      for (size_t k = 0; k < out.count(); ++k) {
        double a = out.at(k), r = ref.at(k);
        if (std::isnan(a) || std::isnan(r)) {
          bad += std::isnan(a) != std::isnan(r);
          continue;
        }
        if (a == r)
          continue;
        double err = std::fabs(a - r);
        maxAbs = std::max(maxAbs, err);
        maxRel = std::max(maxRel, err / std::max(std::fabs(r), std::max(atol, 1e-30)));
        bad += !(err <= atol + rtol * std::fabs(r));
      }
      bool ok2 = bad == 0;
      pass &= ok2;
      std::printf("check %%%s vs reference: max abs err %.3e, max rel err %.3e (%s: atol %.0e, rtol %.0e)%s: %s\n",
                  info.name, maxAbs, maxRel, dtypeName(out.dtype), atol, rtol,
                  bad ? (" " + std::to_string(bad) + " elements off").c_str() : "", ok2 ? "PASS" : "FAIL");
    }
    std::printf("reference: %.1f ms\n", refMs);
    return pass ? kExitOk : kExitProblem;
  }

  static double msSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }

  const RunArgs &args_;
  std::map<std::string, int64_t> userBind_, symbols_;
  std::string compileBind_;
  tessera_context_t *context_ = nullptr;
  tessera_device_t *device_ = nullptr;
  tessera_program_t *program_ = nullptr;
  tessera_module_t *module_ = nullptr;
  std::vector<tessera_tensor_t *> inputs_, outputs_;
};

std::function<int()> setupRun(CLI::App &app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App *cmd = app.add_subcommand("run", "Compile and run a .tsr file (or run a .tsrm module) on a plugin's "
                                            "device; --check compares with the reference interpreter");
  cmd->add_option("file", args->file, "The .tsr file, an ONNX model (.onnx), or a module written by "
                                      "`tessera compile -o`")->required();
  cmd->add_option("--target", args->target, "Plugin whose first device runs it (default: cpu)");
  cmd->add_option("--entry", args->entry, "Function to run (default: main, else the first)");
  cmd->add_option("--inputs", args->inputs, "Comma-separated .npy files, one per input (default: random)");
  cmd->add_option("--outputs", args->outputs, "Comma-separated .npy files to write, one per output");
  cmd->add_flag("--check", args->check,
                "Compare the outputs with the float64 reference interpreter (dtype-aware tolerances; exit 1 on "
                "failure)");
  cmd->add_option("--bind", args->bind, "Symbol values, e.g. B=8,S=128 (default 8 each)");
  cmd->add_option("--repeat", args->repeat, "Run this many times and print the median time");
  cmd->add_option("--threads", args->threads, "Host threads for CPU plugins (default: the plugin's)");
  cmd->add_option("--seed", args->seed, "Seed of the random inputs (default 0)");
  cmd->add_option("-O,--opt-level", args->optLevel, "Optimization level 0..3 (0: no fusion)")
      ->check(CLI::Range(0, 3));
  cmd->add_option("--plugin-path", args->pluginPath, "Colon-separated directories searched for plugins first");
  return [args]() { return Runner(*args).run(); };
}

RegisterCommand registerRun{"run", setupRun};

} // namespace
} // namespace tessera::cli
