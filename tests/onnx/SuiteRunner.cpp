// tessera-onnx-suite: runs the ONNX backend test data (Debian's
// libonnx-testdata) through the importer and an engine, and classifies every
// model as pass / fail (wrong numbers) / unsupported / error. --engine takes a
// comma-separated list; the table then has a column group per engine.
//
//   tessera-onnx-suite [--data DIR] [--groups node,simple,...] [--engine reference,cpu]
//                      [--filter SUBSTR] [--timeout SECONDS] [-j N]
//                      [--table docs/onnx-conformance.md] [--min-pass N] [-O N] [-v]
//
// Each model runs in a forked child with a time limit, so a crash or a hang
// is an "error" for that model and never stops the run. Outputs are compared
// like onnx/backend/test/runner: same shape, then
// |actual - expected| <= atol + rtol*|expected| with rtol=1e-3, atol=1e-7,
// NaN equal to NaN.
#include "onnx/Importer.h"
#include "onnx/Tensor.h"
#include "reference/Evaluator.h"
#include "text/Printer.h"

#include <tessera/tessera.h>

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct Config {
  std::string data = "/usr/share/libonnx-testdata/data";
  std::vector<std::string> groups = {"node", "simple", "pytorch-converted", "pytorch-operator"};
  std::string engine = "reference"; // of this run (set per child)
  std::vector<std::string> engines = {"reference"};
  std::string filter;
  double timeout = 30;
  int jobs = 1;
  std::string table;
  long minPass = -1;
  bool verbose = false;
  double rtol = 1e-3, atol = 1e-7;
  // cpu engine: compile option opt_level (0..3).
  int optLevel = 2;
};

struct Result {
  std::string group, name, engine, cls, reason;
  std::vector<std::string> ops;
  double seconds = 0;
};

std::string readFile(const fs::path &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string oneLine(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\t' || c == '|')
      c = ' ';
  if (s.size() > 300)
    s = s.substr(0, 297) + "...";
  return s;
}

std::string classify(ErrorCode code) { return code == ErrorCode::Unsupported ? "unsupported" : "error"; }

// Compares one output; "" when it matches.
std::string compare(const ref::RefTensor &got, const tessera::onnx::HostTensor &want, const Config &cfg) {
  Expected<ref::RefTensor> w = tessera::onnx::toRef(want);
  if (!w)
    return "expected output: " + w.error().message();
  if (got.shape != w->shape)
    return "shape " + ref::shapeString(got.shape) + " vs expected " + ref::shapeString(w->shape);
  if (ref::toIRDType(got.dtype) != want.dtype)
    return std::string("dtype ") + ir::dtypeName(ref::toIRDType(got.dtype)) + " vs expected " +
           ir::dtypeName(want.dtype);
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < got.data.size(); ++i) {
    double a = got.data[i], e = w->data[i];
    if (std::isnan(a) && std::isnan(e))
      continue;
    if (std::isinf(a) || std::isinf(e)) {
      if (a != e && !bad++)
        first = i;
      continue;
    }
    double err = std::fabs(a - e);
    if (!(err <= cfg.atol + cfg.rtol * std::fabs(e))) {
      if (!bad++)
        first = i;
      worst = std::max(worst, err);
    }
  }
  if (!bad)
    return "";
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%zu of %zu elements differ (first at %zu: %.9g vs %.9g; max abs err %.3g)", bad,
                got.data.size(), first, got.data[first], w->data[first], worst);
  return buf;
}

// The cpu engine: compiles and runs through the public C API on the cpu
// plugin's first device, as an application would. One instance per forked
// child; everything it creates is freed before the context.
class CpuEngine {
public:
  ~CpuEngine() {
    tessera_module_destroy(module_);
    if (context_)
      tessera_status_free(tessera_context_destroy(context_));
  }

  // "" when the cpu device is ready; else the reason.
  std::string init() {
    if (tessera_status_t *s = tessera_context_create(nullptr, &context_))
      return "context: " + take(s);
    for (size_t i = 0; i < tessera_device_count(context_); ++i) {
      tessera_device_t *device = nullptr;
      tessera_device_info_t info{};
      info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
      if (tessera_status_t *s = tessera_context_get_device(context_, i, &device)) {
        tessera_status_free(s);
        continue;
      }
      if (tessera_status_t *s = tessera_device_get_info(device, &info)) {
        tessera_status_free(s);
        continue;
      }
      if (std::strcmp(info.plugin, "cpu") == 0) {
        device_ = device;
        return "";
      }
    }
    return "no device of the cpu plugin (is libtessera-backend-cpu.so next to libtessera?)";
  }

  // Compiles `source` in `format`; on failure returns {class, reason}.
  std::pair<std::string, std::string> compile(const std::string &source, const char *format,
                                              const std::string &sourceName, int optLevel) {
    tessera_module_destroy(module_);
    module_ = nullptr;
    tessera_compile_options_t options{};
    options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
    options.source_name = sourceName.c_str();
    options.opt_level = static_cast<uint32_t>(optLevel);
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    if (tessera_status_t *s =
            tessera_compile(context_, source.data(), source.size(), format, &options, &target, &module_))
      return statusClass(s, "compile: ");
    return {"", ""};
  }

  // Runs the module on `inputs`; on failure returns {class, reason}.
  std::pair<std::string, std::string> run(const std::vector<tessera::onnx::HostTensor> &inputs,
                                          std::vector<tessera::onnx::HostTensor> &outputs) {
    std::vector<tessera_tensor_t *> ins, outs(tessera_module_output_count(module_), nullptr);
    auto freeAll = [&] {
      for (tessera_tensor_t *t : ins)
        tessera_tensor_free(t);
      for (tessera_tensor_t *t : outs)
        tessera_tensor_free(t);
    };
    for (const tessera::onnx::HostTensor &h : inputs) {
      tessera_tensor_t *t = nullptr;
      if (tessera_status_t *s = tessera_tensor_create(device_, static_cast<tessera_dtype_t>(h.dtype),
                                                      static_cast<uint32_t>(h.shape.size()), h.shape.data(), &t)) {
        freeAll();
        return statusClass(s, "input '" + h.name + "': ");
      }
      ins.push_back(t);
      // Empty tensors have no data to copy (and the API refuses NULL).
      if (tessera_status_t *s = h.bytes.empty() ? nullptr
                                                : tessera_tensor_copy_from_host(t, h.bytes.data(), h.bytes.size())) {
        freeAll();
        return statusClass(s, "input '" + h.name + "': ");
      }
    }
    if (tessera_status_t *s = tessera_module_run(module_, nullptr, ins.size(), ins.data(), outs.size(), outs.data())) {
      freeAll();
      return statusClass(s, "run: ");
    }
    outputs.clear();
    for (tessera_tensor_t *t : outs) {
      tessera_tensor_info_t info{};
      info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
      tessera::onnx::HostTensor h;
      if (tessera_status_t *s = tessera_tensor_get_info(t, &info)) {
        freeAll();
        return statusClass(s, "output: ");
      }
      h.dtype = static_cast<ir::DType>(info.dtype);
      h.shape.assign(info.shape, info.shape + info.rank);
      h.bytes.resize(info.size_bytes);
      if (tessera_status_t *s =
              h.bytes.empty() ? nullptr : tessera_tensor_copy_to_host(t, h.bytes.data(), info.size_bytes)) {
        freeAll();
        return statusClass(s, "output: ");
      }
      outputs.push_back(std::move(h));
    }
    freeAll();
    return {"", ""};
  }

private:
  static std::string take(tessera_status_t *s) {
    std::string m = std::string(tessera_status_code_name(tessera_status_code(s))) + ": " + tessera_status_message(s);
    tessera_status_free(s);
    return m;
  }
  static std::pair<std::string, std::string> statusClass(tessera_status_t *s, const std::string &prefix) {
    bool unsupported = tessera_status_code(s) == TESSERA_STATUS_UNSUPPORTED;
    return {unsupported ? "unsupported" : "error", prefix + take(s)};
  }

  tessera_context_t *context_ = nullptr;
  tessera_device_t *device_ = nullptr;
  tessera_module_t *module_ = nullptr;
};

// Runs one model in this process: returns class and reason. When the model
// needs an input's value at compile time (a Reshape shape fed as a graph
// input), its integer inputs are fixed from each data set and the model is
// imported once per data set; such a pass says so in its reason.
std::pair<std::string, std::string> runModel(const fs::path &dir, const Config &cfg) {
  std::string bytes = readFile(dir / "model.onnx");
  tessera::onnx::ImportOptions opts;
  opts.baseDir = dir.string();
  Expected<ir::Module> module = tessera::onnx::importOnnx(bytes.data(), bytes.size(), opts);
  bool specialize = false;
  if (!module) {
    if (module.error().code() != ErrorCode::Unsupported ||
        module.error().message().find("known at compile time") == std::string::npos)
      return {classify(module.error().code()), "import: " + module.error().message()};
    specialize = true;
  }
  bool cpu = cfg.engine == "cpu";
  CpuEngine engine;
  if (cpu) {
    if (std::string why = engine.init(); !why.empty())
      return {"error", why};
    if (!specialize) {
      auto [cls, reason] = engine.compile(bytes, "onnx", (dir / "model.onnx").string(), cfg.optLevel);
      if (!cls.empty())
        return {cls, reason};
    }
  }
  std::vector<std::string> inputNames; // graph inputs that are not initializers
  {
    ::onnx::ModelProto m;
    m.ParseFromString(bytes);
    std::set<std::string> inits;
    for (const auto &t : m.graph().initializer())
      inits.insert(t.name());
    for (const auto &in : m.graph().input())
      if (!inits.count(in.name()))
        inputNames.push_back(in.name());
  }
  std::vector<fs::path> sets;
  for (const auto &e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty())
    return {"error", "no test_data_set_* directory"};
  std::set<std::string> fixedNames;
  for (const fs::path &set : sets) {
    std::vector<tessera::onnx::HostTensor> hosts;
    for (size_t i = 0;; ++i) {
      fs::path p = set / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p))
        break;
      std::string b = readFile(p);
      Expected<tessera::onnx::HostTensor> t = tessera::onnx::parseTensor(b.data(), b.size());
      if (!t)
        return {classify(t.error().code()), p.filename().string() + ": " + t.error().message()};
      hosts.push_back(t.take());
    }
    if (hosts.size() != inputNames.size())
      return {"error", std::to_string(hosts.size()) + " inputs for " + std::to_string(inputNames.size()) +
                           " graph inputs"};
    std::vector<ref::RefTensor> inputs;
    std::vector<tessera::onnx::HostTensor> cpuInputs;
    if (specialize) {
      tessera::onnx::ImportOptions fixedOpts = opts;
      for (size_t i = 0; i < hosts.size(); ++i)
        if (ir::isInteger(hosts[i].dtype) || hosts[i].dtype == ir::DType::Bool) {
          fixedOpts.fixedInputs[inputNames[i]] = hosts[i];
          fixedNames.insert(inputNames[i]);
        }
      module = tessera::onnx::importOnnx(bytes.data(), bytes.size(), fixedOpts);
      if (!module)
        return {classify(module.error().code()), "import (integer inputs fixed at compile time): " +
                                                     module.error().message()};
      if (cpu) {
        // The C API takes no fixed inputs: compile the specialized module
        // as Graph IR text.
        auto [cls, reason] =
            engine.compile(text::printModule(*module), "tessera-ir", (dir / "model.onnx").string(), cfg.optLevel);
        if (!cls.empty())
          return {cls, reason + " (integer inputs fixed at compile time)"};
      }
      for (size_t i = 0; i < hosts.size(); ++i)
        if (!fixedOpts.fixedInputs.count(inputNames[i])) {
          cpuInputs.push_back(hosts[i]);
          Expected<ref::RefTensor> r = tessera::onnx::toRef(hosts[i]);
          if (!r)
            return {"error", r.error().message()};
          inputs.push_back(r.take());
        }
    } else {
      cpuInputs = hosts;
      for (const auto &h : hosts) {
        Expected<ref::RefTensor> r = tessera::onnx::toRef(h);
        if (!r)
          return {"error", r.error().message()};
        inputs.push_back(r.take());
      }
    }
    const ir::Function &fn = module->functions[0];
    if (cfg.verbose)
      std::fprintf(stderr, "%s\n", text::printFunction(fn).c_str());
    Expected<std::vector<ref::RefTensor>> outs = std::vector<ref::RefTensor>{};
    if (cpu) {
      std::vector<tessera::onnx::HostTensor> hostOuts;
      auto [cls, reason] = engine.run(cpuInputs, hostOuts);
      if (!cls.empty())
        return {cls, reason};
      for (const tessera::onnx::HostTensor &h : hostOuts) {
        Expected<ref::RefTensor> r = tessera::onnx::toRef(h);
        if (!r)
          return {"error", "output: " + r.error().message()};
        outs->push_back(r.take());
      }
    } else {
      outs = ref::evaluate(fn, std::move(inputs));
    }
    if (!outs)
      return {classify(outs.error().code()), "run: " + outs.error().render()};
    for (size_t i = 0; i < outs->size(); ++i) {
      fs::path p = set / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(p))
        return {"error", "missing " + p.filename().string()};
      std::string b = readFile(p);
      Expected<tessera::onnx::HostTensor> t = tessera::onnx::parseTensor(b.data(), b.size());
      if (!t)
        return {classify(t.error().code()), p.filename().string() + ": " + t.error().message()};
      std::string diff = compare((*outs)[i], *t, cfg);
      if (!diff.empty())
        return {"fail", set.filename().string() + " output " + std::to_string(i) + ": " + diff};
    }
    if (fs::exists(set / ("output_" + std::to_string(outs->size()) + ".pb")))
      return {"fail", set.filename().string() + ": " + std::to_string(outs->size()) +
                          " outputs, the test data has more"};
  }
  if (specialize) {
    std::string names;
    for (const std::string &n : fixedNames)
      names += (names.empty() ? "" : ", ") + n;
    return {"pass", "with inputs fixed at compile time: " + names};
  }
  return {"pass", ""};
}

std::vector<std::string> modelOps(const fs::path &dir) {
  std::string bytes = readFile(dir / "model.onnx");
  ::onnx::ModelProto m;
  std::set<std::string> ops;
  if (m.ParseFromString(bytes))
    for (const auto &n : m.graph().node())
      ops.insert(n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type() : n.domain() + "." + n.op_type());
  return {ops.begin(), ops.end()};
}

struct Child {
  pid_t pid;
  int fd;
  size_t index;
  std::chrono::steady_clock::time_point start;
  std::string out;
};

using Counts = std::map<std::string, int>; // class -> models

int modelCount(Counts &m) { return m["pass"] + m["fail"] + m["unsupported"] + m["error"]; }

// Writes the conformance table: one column group per engine.
void writeTable(const Config &cfg, const std::vector<Result> &results) {
  std::ofstream f(cfg.table);
  const std::vector<std::string> &engines = cfg.engines;
  std::string engineList;
  for (const std::string &e : engines)
    engineList += (engineList.empty() ? "" : ",") + e;
  std::map<std::string, std::map<std::string, Counts>> byGroup; // group -> engine -> counts
  std::map<std::string, Counts> total;                          // engine -> counts
  std::map<std::string, std::map<std::string, int>> fixed;      // group -> engine -> passes with fixed inputs
  std::map<std::string, int> fixedTotal;
  std::map<std::string, std::map<std::string, Counts>> byOp;    // op -> engine -> counts
  for (const Result &r : results) {
    byGroup[r.group][r.engine][r.cls]++;
    total[r.engine][r.cls]++;
    if (r.cls == "pass" && !r.reason.empty()) {
      fixed[r.group][r.engine]++;
      fixedTotal[r.engine]++;
    }
    for (const std::string &op : r.ops)
      byOp[op][r.engine][r.cls]++;
  }
  f << "# ONNX backend test suite conformance\n\n"
    << "Generated by `tessera-onnx-suite --engine " << engineList << " -j 2 --table docs/onnx-conformance.md` "
    << "(tests/onnx/SuiteRunner.cpp) over Debian's libonnx-testdata (" << cfg.data << "). "
    << "Every model ends in one class: **pass**, **fail** (wrong numbers), **unsupported** (a named op, attribute "
    << "or dtype), **error** (anything else: crash, time limit, rejected model). Tolerances as ONNX's backend "
    << "runner: rtol=" << cfg.rtol << ", atol=" << cfg.atol << ".\n\n"
    << "Engines: `reference` = the float64 reference interpreter on the imported Graph IR; `cpu` = compiled "
       "(opt level "
    << cfg.optLevel
    << ") and run on the cpu plugin through the public C API (`tessera_compile` format \"onnx\", "
       "`tessera_module_run`). Both run in CTest (`onnx.suite.reference`, `onnx.suite.cpu`) with a floor on the "
       "pass count.\n\n";
  f << "\"fixed\": passes that needed an integer graph input (a Reshape shape, Slice bounds, axes, ...) to be "
       "known at compile time; the runner then fixes those inputs from each data set "
       "(`ImportOptions::fixedInputs`; on cpu the specialized module is compiled as Graph IR text) and compiles "
       "once per data set.\n\n";
  f << "| group | models";
  for (const std::string &e : engines)
    f << " | " << e << " pass | " << e << " fixed | " << e << " fail | " << e << " unsupported | " << e
      << " error";
  f << " |\n|---|---";
  for (size_t i = 0; i < engines.size(); ++i)
    f << "|---|---|---|---|---";
  f << "|\n";
  auto row = [&](const std::string &label, std::map<std::string, Counts> &m, std::map<std::string, int> &fx) {
    f << "| " << label << " | " << modelCount(m[engines[0]]);
    for (const std::string &e : engines)
      f << " | " << m[e]["pass"] << " | " << fx[e] << " | " << m[e]["fail"] << " | " << m[e]["unsupported"] << " | "
        << m[e]["error"];
    f << " |\n";
  };
  for (auto &[g, m] : byGroup)
    row(g, m, fixed[g]);
  row("**all**", total, fixedTotal);

  f << "\n## Per op\n\nA model counts for every op it contains (node tests: usually one op; `_expanded` tests: "
       "the ops of the function body).\n\n| op | models";
  for (const std::string &e : engines)
    f << " | " << e << " pass | " << e << " fail | " << e << " unsupported | " << e << " error";
  f << " |\n|---|---";
  for (size_t i = 0; i < engines.size(); ++i)
    f << "|---|---|---|---";
  f << "|\n";
  for (auto &[op, m] : byOp) {
    f << "| " << op << " | " << modelCount(m[engines[0]]);
    for (const std::string &e : engines)
      f << " | " << m[e]["pass"] << " | " << m[e]["fail"] << " | " << m[e]["unsupported"] << " | " << m[e]["error"];
    f << " |\n";
  }
  f << "\n## Models that pass with inputs fixed at compile time\n\n| group | model | engine | fixed inputs |\n"
       "|---|---|---|---|\n";
  for (const Result &r : results)
    if (r.cls == "pass" && !r.reason.empty())
      f << "| " << r.group << " | " << r.name << " | " << r.engine << " | "
        << oneLine(r.reason.substr(r.reason.find(": ") + 2)) << " |\n";
  f << "\n## Models that do not pass\n\n| group | model | engine | class | reason |\n|---|---|---|---|---|\n";
  for (const Result &r : results)
    if (r.cls != "pass")
      f << "| " << r.group << " | " << r.name << " | " << r.engine << " | " << r.cls << " | " << oneLine(r.reason)
        << " |\n";
}

int usage() {
  std::fprintf(stderr, "usage: tessera-onnx-suite [--data DIR] [--groups g1,g2] [--engine reference,cpu] "
                       "[--filter S] [--timeout S] [-j N] [--table FILE] [--min-pass N] [-O N] [-v]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--data")
      cfg.data = next();
    else if (a == "--groups") {
      cfg.groups.clear();
      std::stringstream ss(next());
      for (std::string g; std::getline(ss, g, ',');)
        cfg.groups.push_back(g);
    } else if (a == "--engine") {
      cfg.engines.clear();
      std::stringstream ss(next());
      for (std::string e; std::getline(ss, e, ',');)
        cfg.engines.push_back(e);
    }
    else if (a == "--filter")
      cfg.filter = next();
    else if (a == "--timeout")
      cfg.timeout = std::atof(next().c_str());
    else if (a == "-j")
      cfg.jobs = std::max(1, std::atoi(next().c_str()));
    else if (a == "--table")
      cfg.table = next();
    else if (a == "--min-pass")
      cfg.minPass = std::atol(next().c_str());
    else if (a == "-O")
      cfg.optLevel = std::clamp(std::atoi(next().c_str()), 0, 3);
    else if (a == "-v")
      cfg.verbose = true;
    else
      return usage();
  }
  for (const std::string &e : cfg.engines)
    if (e != "reference" && e != "cpu")
      return usage();
  if (cfg.engines.empty())
    return usage();

  std::vector<Result> results;
  std::vector<fs::path> dirs;
  for (const std::string &g : cfg.groups) {
    fs::path gd = fs::path(cfg.data) / g;
    if (!fs::is_directory(gd)) {
      std::fprintf(stderr, "tessera-onnx-suite: no test data at %s (install libonnx-testdata)\n", gd.c_str());
      return 2;
    }
    std::vector<fs::path> models;
    for (const auto &e : fs::directory_iterator(gd))
      if (fs::exists(e.path() / "model.onnx") &&
          (cfg.filter.empty() || e.path().filename().string().find(cfg.filter) != std::string::npos))
        models.push_back(e.path());
    std::sort(models.begin(), models.end());
    for (const fs::path &m : models) {
      Result r;
      r.group = g;
      r.name = m.filename().string();
      r.ops = modelOps(m);
      for (const std::string &e : cfg.engines) {
        r.engine = e;
        results.push_back(r);
        dirs.push_back(m);
      }
    }
  }

  std::vector<Child> running;
  size_t nextIndex = 0;
  auto finish = [&](Child &c, int status, bool timedOut) {
    Result &r = results[c.index];
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - c.start).count();
    if (timedOut) {
      r.cls = "error";
      r.reason = "time limit (" + std::to_string(int(cfg.timeout)) + " s) exceeded";
    } else if (WIFSIGNALED(status)) {
      r.cls = "error";
      r.reason = std::string("crashed: ") + strsignal(WTERMSIG(status));
    } else {
      size_t tab = c.out.find('\t');
      r.cls = tab == std::string::npos ? "error" : c.out.substr(0, tab);
      r.reason = tab == std::string::npos ? "no result (exit status " + std::to_string(WEXITSTATUS(status)) + ")"
                                          : c.out.substr(tab + 1);
    }
    std::printf("%-12s %-9s %-18s %-60s %s\n", r.cls.c_str(), r.engine.c_str(), r.group.c_str(), r.name.c_str(),
                oneLine(r.reason).c_str());
    std::fflush(stdout);
  };
  while (nextIndex < dirs.size() || !running.empty()) {
    while (nextIndex < dirs.size() && running.size() < size_t(cfg.jobs)) {
      int fds[2];
      if (pipe(fds) != 0) {
        std::perror("pipe");
        return 2;
      }
      pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        Config childCfg = cfg;
        childCfg.engine = results[nextIndex].engine;
        auto [cls, reason] = runModel(dirs[nextIndex], childCfg);
        std::string msg = cls + "\t" + reason;
        size_t off = 0;
        while (off < msg.size()) {
          ssize_t w = write(fds[1], msg.data() + off, msg.size() - off);
          if (w <= 0)
            break;
          off += size_t(w);
        }
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], nextIndex++, std::chrono::steady_clock::now(), ""});
    }
    bool progressed = false;
    for (size_t k = 0; k < running.size();) {
      Child &c = running[k];
      // Drain the pipe (non-blocking via poll-less read of what is there).
      char buf[4096];
      fd_set set;
      FD_ZERO(&set);
      FD_SET(c.fd, &set);
      timeval tv{0, 0};
      while (select(c.fd + 1, &set, nullptr, nullptr, &tv) > 0) {
        ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n <= 0)
          break;
        c.out.append(buf, size_t(n));
        FD_ZERO(&set);
        FD_SET(c.fd, &set);
      }
      int status = 0;
      pid_t done = waitpid(c.pid, &status, WNOHANG);
      bool timedOut = false;
      if (done == 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - c.start).count() > cfg.timeout) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &status, 0);
        timedOut = true;
        done = c.pid;
      }
      if (done == c.pid) {
        ssize_t n;
        while (!timedOut && (n = read(c.fd, buf, sizeof(buf))) > 0)
          c.out.append(buf, size_t(n));
        close(c.fd);
        finish(c, status, timedOut);
        running.erase(running.begin() + long(k));
        progressed = true;
      } else {
        ++k;
      }
    }
    if (!progressed)
      usleep(2000);
  }

  bool belowFloor = false;
  for (const std::string &e : cfg.engines) {
    std::map<std::string, Counts> byGroup;
    Counts total;
    for (const Result &r : results)
      if (r.engine == e) {
        byGroup[r.group][r.cls]++;
        total[r.cls]++;
      }
    std::printf("\nengine %s\n%-20s %6s %6s %6s %12s %6s\n", e.c_str(), "group", "models", "pass", "fail",
                "unsupported", "error");
    for (auto &[g, m] : byGroup)
      std::printf("%-20s %6d %6d %6d %12d %6d\n", g.c_str(), modelCount(m), m["pass"], m["fail"], m["unsupported"],
                  m["error"]);
    std::printf("%-20s %6d %6d %6d %12d %6d\n", "all", modelCount(total), total["pass"], total["fail"],
                total["unsupported"], total["error"]);
    if (cfg.minPass >= 0 && total["pass"] < cfg.minPass) {
      std::printf("FAILED: %d models pass on %s, the floor is %ld\n", total["pass"], e.c_str(), cfg.minPass);
      belowFloor = true;
    }
  }
  if (!cfg.table.empty())
    writeTable(cfg, results);
  if (belowFloor)
    return 1;
  return 0;
}
