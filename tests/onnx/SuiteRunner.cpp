// tessera-onnx-suite: runs the ONNX backend test data (Debian's
// libonnx-testdata) through the importer and an engine, and classifies every
// model as pass / fail (wrong numbers) / unsupported / error.
//
//   tessera-onnx-suite [--data DIR] [--groups node,simple,...] [--engine reference|cpu]
//                      [--filter SUBSTR] [--timeout SECONDS] [-j N]
//                      [--table docs/onnx-conformance.md] [--min-pass N] [-v]
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
  std::string engine = "reference";
  std::string filter;
  double timeout = 30;
  int jobs = 1;
  std::string table;
  long minPass = -1;
  bool verbose = false;
  double rtol = 1e-3, atol = 1e-7;
};

struct Result {
  std::string group, name, cls, reason;
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
  if (cfg.engine != "reference")
    return {"error", "engine '" + cfg.engine + "' is not available in this build"};
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
      for (size_t i = 0; i < hosts.size(); ++i)
        if (!fixedOpts.fixedInputs.count(inputNames[i])) {
          Expected<ref::RefTensor> r = tessera::onnx::toRef(hosts[i]);
          if (!r)
            return {"error", r.error().message()};
          inputs.push_back(r.take());
        }
    } else {
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
    Expected<std::vector<ref::RefTensor>> outs = ref::evaluate(fn, std::move(inputs));
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

void writeTable(const Config &cfg, const std::vector<Result> &results) {
  std::ofstream f(cfg.table);
  std::map<std::string, std::map<std::string, int>> byGroup;
  std::map<std::string, int> total;
  for (const Result &r : results) {
    byGroup[r.group][r.cls]++;
    total[r.cls]++;
  }
  f << "# ONNX backend test suite conformance\n\n"
    << "Generated by `tessera-onnx-suite --engine " << cfg.engine << " --table docs/onnx-conformance.md` "
    << "(tests/onnx/SuiteRunner.cpp) over Debian's libonnx-testdata (" << cfg.data << "). "
    << "Every model ends in one class: **pass**, **fail** (wrong numbers), **unsupported** (a named op, attribute "
    << "or dtype), **error** (anything else: crash, time limit, rejected model). Tolerances as ONNX's backend "
    << "runner: rtol=" << cfg.rtol << ", atol=" << cfg.atol << ".\n\n"
    << "Engine: `" << cfg.engine
    << "` (`reference` = the float64 reference interpreter on the imported Graph IR; `cpu` = compiled on the CPU "
       "plugin).\n\n";
  std::map<std::string, int> fixed;
  int fixedTotal = 0;
  for (const Result &r : results)
    if (r.cls == "pass" && !r.reason.empty()) {
      fixed[r.group]++;
      fixedTotal++;
    }
  f << "\"of which with inputs fixed\": passes that needed an integer graph input (a Reshape shape, Slice bounds, "
       "axes, ...) to be known at compile time; the runner then fixes those inputs from each data set "
       "(`ImportOptions::fixedInputs`) and compiles once per data set.\n\n";
  f << "| group | models | pass | of which with inputs fixed | fail | unsupported | error |\n"
       "|---|---|---|---|---|---|---|\n";
  for (auto &[g, m] : byGroup)
    f << "| " << g << " | " << m["pass"] + m["fail"] + m["unsupported"] + m["error"] << " | " << m["pass"] << " | "
      << fixed[g] << " | " << m["fail"] << " | " << m["unsupported"] << " | " << m["error"] << " |\n";
  f << "| **all** | " << results.size() << " | " << total["pass"] << " | " << fixedTotal << " | " << total["fail"]
    << " | " << total["unsupported"] << " | " << total["error"] << " |\n\n";

  std::map<std::string, std::map<std::string, int>> byOp;
  for (const Result &r : results)
    for (const std::string &op : r.ops)
      byOp[op][r.cls]++;
  f << "## Per op\n\nA model counts for every op it contains (node tests: usually one op; `_expanded` tests: the "
       "ops of the function body).\n\n"
    << "| op | models | pass | fail | unsupported | error |\n|---|---|---|---|---|---|\n";
  for (auto &[op, m] : byOp) {
    int n = m["pass"] + m["fail"] + m["unsupported"] + m["error"];
    f << "| " << op << " | " << n << " | " << m["pass"] << " | " << m["fail"] << " | " << m["unsupported"] << " | "
      << m["error"] << " |\n";
  }
  f << "\n## Models that pass with inputs fixed at compile time\n\n| group | model | fixed inputs |\n|---|---|---|\n";
  for (const Result &r : results)
    if (r.cls == "pass" && !r.reason.empty())
      f << "| " << r.group << " | " << r.name << " | " << oneLine(r.reason.substr(r.reason.find(": ") + 2)) << " |\n";
  f << "\n## Models that do not pass\n\n| group | model | class | reason |\n|---|---|---|---|\n";
  for (const Result &r : results)
    if (r.cls != "pass")
      f << "| " << r.group << " | " << r.name << " | " << r.cls << " | " << oneLine(r.reason) << " |\n";
}

int usage() {
  std::fprintf(stderr, "usage: tessera-onnx-suite [--data DIR] [--groups g1,g2] [--engine reference|cpu] "
                       "[--filter S] [--timeout S] [-j N] [--table FILE] [--min-pass N] [-v]\n");
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
    } else if (a == "--engine")
      cfg.engine = next();
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
    else if (a == "-v")
      cfg.verbose = true;
    else
      return usage();
  }
  if (cfg.engine != "reference" && cfg.engine != "cpu")
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
      results.push_back(r);
      dirs.push_back(m);
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
    std::printf("%-12s %-18s %-60s %s\n", r.cls.c_str(), r.group.c_str(), r.name.c_str(), oneLine(r.reason).c_str());
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
        auto [cls, reason] = runModel(dirs[nextIndex], cfg);
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

  std::map<std::string, std::map<std::string, int>> byGroup;
  std::map<std::string, int> total;
  for (const Result &r : results) {
    byGroup[r.group][r.cls]++;
    total[r.cls]++;
  }
  std::printf("\n%-20s %6s %6s %6s %12s %6s\n", "group", "models", "pass", "fail", "unsupported", "error");
  for (auto &[g, m] : byGroup)
    std::printf("%-20s %6d %6d %6d %12d %6d\n", g.c_str(), m["pass"] + m["fail"] + m["unsupported"] + m["error"],
                m["pass"], m["fail"], m["unsupported"], m["error"]);
  std::printf("%-20s %6zu %6d %6d %12d %6d\n", "all", results.size(), total["pass"], total["fail"],
              total["unsupported"], total["error"]);
  if (!cfg.table.empty())
    writeTable(cfg, results);
  if (cfg.minPass >= 0 && total["pass"] < cfg.minPass) {
    std::printf("FAILED: %d models pass, the floor is %ld\n", total["pass"], cfg.minPass);
    return 1;
  }
  return 0;
}
