// tessera-conformance: one suite for every backend plugin (in the spirit of
// IREE's HAL CTS). It drives a plugin only through the public C API:
// negotiation and enumeration, buffers and copies, every op of the op set
// compiled and run against the float64 reference interpreter on random
// inputs (including symbolic shapes bound at several sizes), fused patterns,
// compile-only, serialization, and error paths.
//
// A plugin declares what it does not support in its manifest, each with a
// reason; listed cases must then be *reported* unsupported by the plugin (or
// pass). Nothing is skipped silently:
//
//   conformance:
//     unsupported:
//       - case: "ops/conv2d*"
//         reason: "no direct convolution yet"
//
// Usage: tessera-conformance --plugin NAME [--plugin-path DIRS] [--filter GLOB]
//                            [--opt-level N] [--program FILE[:RUN_BIND[:COMPILE_BIND]]]...
// --opt-level N compiles every case at level N or above (default 0: each op
// unfused; 2: the fused kernels users get from tessera_compile's default).
#include "Cases.h"
#include "HostTensor.h"

#include "tessera/tessera.h"

#include <dlpack/dlpack.h>
#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace tessera::conformance;

namespace {

struct Exclusion {
  std::string pattern;
  std::string reason;
};

enum class Outcome { Pass, Fail, Unsupported, NotApplicable };

struct Result {
  Outcome outcome = Outcome::Pass;
  std::string detail;
};

struct Status {
  tessera_status_code_t code = TESSERA_STATUS_OK;
  std::string message;
  explicit Status(tessera_status_t *s) {
    code = tessera_status_code(s);
    message = tessera_status_message(s);
    tessera_status_free(s);
  }
  bool ok() const { return code == TESSERA_STATUS_OK; }
  std::string str() const { return std::string(tessera_status_code_name(code)) + ": " + message; }
};

struct TensorDeleter {
  void operator()(tessera_tensor_t *t) const { tessera_tensor_free(t); }
};
using TensorPtr = std::unique_ptr<tessera_tensor_t, TensorDeleter>;
struct ModuleDeleter {
  void operator()(tessera_module_t *m) const { tessera_module_destroy(m); }
};
using ModulePtr = std::unique_ptr<tessera_module_t, ModuleDeleter>;
struct ProgramDeleter {
  void operator()(tessera_program_t *p) const { tessera_program_destroy(p); }
};
using ProgramPtr = std::unique_ptr<tessera_program_t, ProgramDeleter>;

// Host memory handed to the reference interpreter through DLPack.
struct HostDLPack {
  HostTensor data;
  std::vector<int64_t> shape;
  DLManagedTensor managed{};
};

DLDataType dlType(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return {kDLFloat, 64, 1};
  case TESSERA_DTYPE_F32: return {kDLFloat, 32, 1};
  case TESSERA_DTYPE_F16: return {kDLFloat, 16, 1};
  case TESSERA_DTYPE_BF16: return {kDLBfloat, 16, 1};
  case TESSERA_DTYPE_I64: return {kDLInt, 64, 1};
  case TESSERA_DTYPE_I32: return {kDLInt, 32, 1};
  case TESSERA_DTYPE_I16: return {kDLInt, 16, 1};
  case TESSERA_DTYPE_I8: return {kDLInt, 8, 1};
  case TESSERA_DTYPE_U8: return {kDLUInt, 8, 1};
  case TESSERA_DTYPE_BOOL: return {6, 8, 1};          // kDLBool (DLPack 1.1)
  case TESSERA_DTYPE_F8E4M3: return {10, 8, 1};       // kDLFloat8_e4m3fn
  case TESSERA_DTYPE_F8E5M2: return {12, 8, 1};       // kDLFloat8_e5m2
  default: return {0, 0, 0};
  }
}

// Evaluates a symbolic dim as printed in signatures ("B", "D*4", "D/H",
// "(S + 1)//2") under a binding. Returns false on unknown symbols or syntax.
bool evalDim(const std::string &text, const std::map<std::string, int64_t> &binding, int64_t &out) {
  size_t pos = 0;
  std::function<bool(int64_t &)> sum, term, atom;
  auto skip = [&] {
    while (pos < text.size() && text[pos] == ' ')
      ++pos;
  };
  atom = [&](int64_t &v) {
    skip();
    if (pos < text.size() && text[pos] == '(') {
      ++pos;
      if (!sum(v))
        return false;
      skip();
      return pos < text.size() && text[pos++] == ')';
    }
    size_t start = pos;
    while (pos < text.size() && (std::isalnum(static_cast<unsigned char>(text[pos])) || text[pos] == '_'))
      ++pos;
    std::string tok = text.substr(start, pos - start);
    if (tok.empty())
      return false;
    if (std::isdigit(static_cast<unsigned char>(tok[0]))) {
      v = std::stoll(tok);
      return true;
    }
    auto it = binding.find(tok);
    if (it == binding.end())
      return false;
    v = it->second;
    return true;
  };
  term = [&](int64_t &v) {
    if (!atom(v))
      return false;
    for (;;) {
      skip();
      if (text.compare(pos, 2, "//") == 0 || (pos < text.size() && (text[pos] == '/' || text[pos] == '*'))) {
        char op = text[pos];
        pos += text.compare(pos, 2, "//") == 0 ? 2 : 1;
        int64_t r;
        if (!atom(r) || (op != '*' && r == 0))
          return false;
        v = op == '*' ? v * r : v / r;
      } else {
        return true;
      }
    }
  };
  sum = [&](int64_t &v) {
    if (!term(v))
      return false;
    for (;;) {
      skip();
      if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        char op = text[pos++];
        int64_t r;
        if (!term(r))
          return false;
        v = op == '+' ? v + r : v - r;
      } else {
        return true;
      }
    }
  };
  return sum(out) && (skip(), pos == text.size());
}

class Suite {
public:
  Suite(tessera_context_t *context, std::string pluginName, std::vector<Exclusion> exclusions, std::string filter,
        uint32_t minOptLevel)
      : context_(context), plugin_(std::move(pluginName)), exclusions_(std::move(exclusions)),
        filter_(std::move(filter)), minOptLevel_(minOptLevel) {}

  int run(const std::vector<std::pair<std::string, std::string>> &extraPrograms) {
    findPlugin();
    check("plugin/negotiation", [&] { return negotiation(); });
    check("plugin/enumeration", [&] { return enumeration(); });
    check("buffers/round_trip", [&] { return buffers(); });
    check("buffers/out_of_range", [&] { return bufferRange(); });
    for (const ProgramCase &c : programCases())
      for (const std::string &dtype : c.dtypes)
        check(c.name + "." + dtype, [&] { return programCase(c, dtype); });
    for (const auto &[file, bind] : extraPrograms)
      check("programs/" + baseName(file), [&] { return fileCase(file, bind); });
    check("module/compile_only", [&] { return compileOnly(); });
    check("module/serialize_round_trip", [&] { return serializeRoundTrip(); });
    check("errors/invalid_ir", [&] { return invalidIr(); });
    check("errors/wrong_input_count", [&] { return wrongInputs(false); });
    check("errors/shape_mismatch", [&] { return wrongInputs(true); });
    check("errors/unknown_format", [&] { return unknownFormat(); });

    std::printf("\n%s: %d passed, %d failed, %d unsupported (listed), %d not applicable\n", plugin_.c_str(),
                passed_, failed_, unsupported_, notApplicable_);
    std::printf("%d passed, %d failed\n", passed_, failed_);
    return failed_ == 0 ? 0 : 1;
  }

private:
  static std::string baseName(const std::string &path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
  }

  const Exclusion *excluded(const std::string &name) const {
    for (const Exclusion &e : exclusions_)
      if (fnmatch(e.pattern.c_str(), name.c_str(), 0) == 0)
        return &e;
    return nullptr;
  }

  void check(const std::string &name, const std::function<Result()> &body) {
    if (!filter_.empty() && fnmatch(filter_.c_str(), name.c_str(), 0) != 0)
      return;
    auto start = std::chrono::steady_clock::now();
    Result r;
    try {
      r = body();
    } catch (const std::exception &e) {
      r = {Outcome::Fail, std::string("exception in the suite: ") + e.what()};
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const Exclusion *ex = excluded(name);
    const char *tag = "PASS";
    switch (r.outcome) {
    case Outcome::Pass:
      ++passed_;
      if (ex)
        r.detail += (r.detail.empty() ? "" : "; ") + std::string("listed unsupported but passes: remove it from the list");
      break;
    case Outcome::Unsupported:
      if (ex) {
        ++unsupported_;
        tag = "UNSUPPORTED";
        r.detail = ex->reason + " (plugin said: " + r.detail + ")";
      } else {
        ++failed_;
        tag = "FAIL";
        r.detail = "reported unsupported but not listed in the manifest: " + r.detail;
      }
      break;
    case Outcome::NotApplicable:
      ++notApplicable_;
      tag = "N/A";
      break;
    case Outcome::Fail:
      ++failed_;
      tag = "FAIL";
      if (ex)
        r.detail += " (listed unsupported: the plugin must report UNSUPPORTED instead of failing)";
      break;
    }
    std::printf("%-12s %-48s %8.1f ms  %s\n", tag, name.c_str(), ms, r.detail.c_str());
    std::fflush(stdout);
  }

  void findPlugin() {
    for (size_t i = 0; i < tessera_plugin_count(context_); ++i) {
      tessera_plugin_info_t info{};
      info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
      if (!Status(tessera_plugin_get_info(context_, i, &info)).ok() || !info.name || plugin_ != info.name)
        continue;
      if (info.state != TESSERA_PLUGIN_STATE_LOADED) {
        if (pluginState_.empty()) {
          pluginState_ = tessera_plugin_state_name(info.state);
          pluginReason_ = info.reason ? info.reason : "";
        }
        continue;
      }
      pluginState_ = "loaded";
      pluginReason_ = info.reason ? info.reason : "";
      abiMajor_ = info.abi_major;
    }
    for (size_t i = 0; i < tessera_device_count(context_); ++i) {
      tessera_device_t *d = nullptr;
      tessera_device_info_t info{};
      info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
      if (Status(tessera_context_get_device(context_, i, &d)).ok() &&
          Status(tessera_device_get_info(d, &info)).ok() && plugin_ == info.plugin) {
        device_ = d;
        architecture_ = info.architecture;
        break;
      }
    }
  }

  Result needDevice() const {
    return {Outcome::NotApplicable, "no device: " + (pluginReason_.empty() ? pluginState_ : pluginReason_)};
  }

  Result negotiation() {
    if (pluginState_ != "loaded")
      return {Outcome::Fail, "plugin '" + plugin_ + "' is " + (pluginState_.empty() ? "not found" : pluginState_) +
                                 (pluginReason_.empty() ? "" : ": " + pluginReason_)};
    if (abiMajor_ != TESSERA_ABI_VERSION_MAJOR)
      return {Outcome::Fail, "negotiated ABI major " + std::to_string(abiMajor_)};
    return {};
  }

  Result enumeration() {
    if (!device_)
      return needDevice();
    tessera_device_info_t info{};
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    Status s(tessera_device_get_info(device_, &info));
    if (!s.ok())
      return {Outcome::Fail, s.str()};
    if (!info.name || !*info.name || !info.architecture || !*info.architecture || info.compute_units == 0)
      return {Outcome::Fail, "device info incomplete (name, architecture, compute units)"};
    return {Outcome::Pass, std::string(info.name) + ", " + info.architecture};
  }

  Result buffers() {
    if (!device_)
      return needDevice();
    std::mt19937_64 rng(11);
    for (uint64_t size : {1ull, 63ull, 4096ull, 1ull << 20}) {
      std::vector<uint8_t> in(size), out(size, 0);
      for (auto &b : in)
        b = static_cast<uint8_t>(rng());
      tessera_buffer_t *buffer = nullptr;
      Status a(tessera_buffer_allocate(device_, size, &buffer));
      if (!a.ok())
        return {a.code == TESSERA_STATUS_UNSUPPORTED ? Outcome::Unsupported : Outcome::Fail, a.str()};
      Status c1(tessera_buffer_copy_from_host(buffer, 0, in.data(), size));
      Status c2(tessera_buffer_copy_to_host(buffer, 0, out.data(), size));
      Status f(tessera_buffer_free(buffer));
      if (!c1.ok() || !c2.ok() || !f.ok())
        return {Outcome::Fail, c1.ok() ? (c2.ok() ? f.str() : c2.str()) : c1.str()};
      if (in != out)
        return {Outcome::Fail, "data changed in a " + std::to_string(size) + "-byte round trip"};
    }
    return {};
  }

  Result bufferRange() {
    if (!device_)
      return needDevice();
    tessera_buffer_t *buffer = nullptr;
    Status a(tessera_buffer_allocate(device_, 128, &buffer));
    if (!a.ok())
      return {a.code == TESSERA_STATUS_UNSUPPORTED ? Outcome::Unsupported : Outcome::Fail, a.str()};
    uint8_t bytes[64] = {};
    Status s(tessera_buffer_copy_to_host(buffer, 100, bytes, 64));
    (void)Status(tessera_buffer_free(buffer));
    if (s.code != TESSERA_STATUS_INVALID_ARGUMENT)
      return {Outcome::Fail, "out-of-range copy gave " + s.str()};
    return {};
  }

  // Compiles `text` for the device; Unsupported/Fail results carry the reason.
  Result compile(const std::string &text, const std::string &bind, ModulePtr &out,
                 const tessera_compile_target_t *targetOverride = nullptr, uint32_t optLevel = 0) {
    tessera_compile_options_t options{};
    options.struct_size = sizeof(options);
    options.opt_level = std::max(optLevel, minOptLevel_);
    options.bind = bind.empty() ? nullptr : bind.c_str();
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    tessera_module_t *module = nullptr;
    Status s(tessera_compile(context_, text.data(), text.size(), "tessera-ir", &options,
                             targetOverride ? targetOverride : &target, &module));
    if (!s.ok())
      return {s.code == TESSERA_STATUS_UNSUPPORTED ? Outcome::Unsupported : Outcome::Fail, "compile: " + s.str()};
    out.reset(module);
    return {};
  }

  static std::string substitute(std::string text, const std::string &dtype) {
    for (size_t pos; (pos = text.find("{T}")) != std::string::npos;)
      text.replace(pos, 3, dtype);
    return text;
  }

  TensorPtr deviceTensor(const HostTensor &h, std::string &error) {
    tessera_tensor_t *t = nullptr;
    Status s(tessera_tensor_create(device_, h.dtype, static_cast<uint32_t>(h.shape.size()), h.shape.data(), &t));
    if (!s.ok()) {
      error = s.str();
      return nullptr;
    }
    TensorPtr owned(t);
    Status c(tessera_tensor_copy_from_host(t, h.bytes.data(), h.bytes.size()));
    if (!c.ok()) {
      error = c.str();
      return nullptr;
    }
    return owned;
  }

  TensorPtr hostTensor(const HostTensor &h, std::string &error) {
    auto *ctx = new HostDLPack{h, h.shape, {}};
    DLTensor &dl = ctx->managed.dl_tensor;
    dl.data = ctx->data.bytes.empty() ? static_cast<void *>(ctx) : ctx->data.bytes.data();
    dl.device = {kDLCPU, 0};
    dl.ndim = static_cast<int32_t>(ctx->shape.size());
    dl.dtype = dlType(h.dtype);
    dl.shape = ctx->shape.data();
    ctx->managed.manager_ctx = ctx;
    ctx->managed.deleter = [](DLManagedTensor *self) { delete static_cast<HostDLPack *>(self->manager_ctx); };
    tessera_tensor_t *t = nullptr;
    Status s(tessera_tensor_from_dlpack(context_, &ctx->managed, &t));
    if (!s.ok()) {
      delete ctx;
      error = s.str();
      return nullptr;
    }
    return TensorPtr(t);
  }

  static bool readBack(const tessera_tensor_t *t, HostTensor &out, std::string &error) {
    tessera_tensor_info_t info{};
    info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
    Status s(tessera_tensor_get_info(t, &info));
    if (!s.ok()) {
      error = s.str();
      return false;
    }
    out.dtype = info.dtype;
    out.shape.assign(info.shape, info.shape + info.rank);
    out.bytes.assign(info.size_bytes, 0);
    Status c(tessera_tensor_copy_to_host(t, out.bytes.data(), out.bytes.size()));
    if (!c.ok()) {
      error = c.str();
      return false;
    }
    return true;
  }

  // Runs `text` with random inputs under each binding and compares every
  // output with the reference interpreter.
  // wholeProgram: small inputs and a norm-wise comparison (rounding at every
  // op boundary compounds over a whole model; elementwise bounds suit one op).
  Result runAgainstReference(const std::string &text, const std::string &compileBind, const std::vector<InputKind> &kinds,
                             int64_t indexBound, const std::vector<std::map<std::string, int64_t>> &bindings,
                             bool wholeProgram = false, int narrowScaleLog2 = 0, uint32_t optLevel = 0) {
    if (!device_)
      return needDevice();
    ModulePtr module;
    Result r = compile(text, compileBind, module, nullptr, optLevel);
    if (r.outcome != Outcome::Pass)
      return r;
    tessera_program_t *rawProgram = nullptr;
    Status ps(tessera_program_parse(text.data(), text.size(), "conformance", &rawProgram));
    if (!ps.ok())
      return {Outcome::Fail, "reference parse: " + ps.str()};
    ProgramPtr program(rawProgram);
    std::mt19937_64 rng(std::hash<std::string>{}(text));
    double worst = 0;
    std::string worstWhere;
    for (const auto &binding : bindings) {
      std::string bindText;
      for (const auto &[k, v] : binding)
        bindText += (bindText.empty() ? "" : ",") + k + "=" + std::to_string(v);
      size_t nin = tessera_module_input_count(module.get()), nout = tessera_module_output_count(module.get());
      std::vector<TensorPtr> devIn, refIn;
      for (size_t i = 0; i < nin; ++i) {
        tessera_value_info_t vi{};
        vi.struct_size = TESSERA_VALUE_INFO_STRUCT_SIZE;
        Status s(tessera_module_get_input(module.get(), i, &vi));
        if (!s.ok())
          return {Outcome::Fail, "input info: " + s.str()};
        std::vector<int64_t> shape;
        for (uint32_t d = 0; d < vi.rank; ++d) {
          if (vi.dims[d].size >= 0) {
            shape.push_back(vi.dims[d].size);
          } else {
            int64_t value = 0;
            std::string expr = vi.dims[d].symbol ? vi.dims[d].symbol : "";
            if (!evalDim(expr, binding, value))
              return {Outcome::Fail, "suite: cannot evaluate input dim '" + expr + "' from the binding"};
            shape.push_back(value);
          }
        }
        InputKind kind = i < kinds.size() ? kinds[i] : InputKind::Normal;
        bool narrow = vi.dtype == TESSERA_DTYPE_BF16 || vi.dtype == TESSERA_DTYPE_F16 ||
                      vi.dtype == TESSERA_DTYPE_F8E4M3 || vi.dtype == TESSERA_DTYPE_F8E5M2;
        HostTensor h = randomTensor(vi.dtype, shape, kind, indexBound, rng,
                                    wholeProgram ? 4 : narrow ? narrowScaleLog2 : 0);
        std::string error;
        devIn.push_back(deviceTensor(h, error));
        refIn.push_back(hostTensor(h, error));
        if (!devIn.back() || !refIn.back())
          return {Outcome::Fail, "inputs: " + error};
      }
      std::vector<tessera_tensor_t *> din, rin;
      for (auto &t : devIn)
        din.push_back(t.get());
      for (auto &t : refIn)
        rin.push_back(t.get());
      std::vector<tessera_tensor_t *> dout(nout, nullptr), rout(nout, nullptr);
      Status run(tessera_module_run(module.get(), nullptr, din.size(), din.data(), dout.size(), dout.data()));
      if (!run.ok())
        return {run.code == TESSERA_STATUS_UNSUPPORTED ? Outcome::Unsupported : Outcome::Fail,
                "run [" + bindText + "]: " + run.str()};
      std::vector<TensorPtr> ownedOut;
      for (auto *t : dout)
        ownedOut.emplace_back(t);
      Status ref(tessera_program_run_reference(program.get(), nullptr, compileBind.empty() ? nullptr : compileBind.c_str(),
                                               rin.size(), rin.data(), rout.size(), rout.data()));
      if (!ref.ok())
        return {Outcome::Fail, "reference [" + bindText + "]: " + ref.str()};
      for (auto *t : rout)
        ownedOut.emplace_back(t);
      for (size_t o = 0; o < nout; ++o) {
        HostTensor got, want;
        std::string error;
        if (!readBack(dout[o], got, error) || !readBack(rout[o], want, error))
          return {Outcome::Fail, "read back: " + error};
        if (got.shape != want.shape || got.dtype != want.dtype)
          return {Outcome::Fail, "output " + std::to_string(o) + " shape/dtype differs from the reference"};
        if (wholeProgram && want.dtype != TESSERA_DTYPE_BOOL && dtypeBytes(want.dtype) > 0) {
          double diff = 0, norm = 0;
          for (int64_t i = 0; i < want.elements(); ++i) {
            double g = got.get(i), w = want.get(i);
            if (!std::isfinite(g) || !std::isfinite(w))
              return {Outcome::Fail, "non-finite value at output " + std::to_string(o) + "[" + std::to_string(i) + "]"};
            diff += (g - w) * (g - w);
            norm += w * w;
          }
          double rel = std::sqrt(diff) / (std::sqrt(norm) + 1e-300);
          double bound = normToleranceFor(want.dtype);
          char msg[160];
          std::snprintf(msg, sizeof(msg), "output %zu [%s]: ||got - ref|| / ||ref|| = %.3g (bound %.3g, %s)", o,
                        bindText.c_str(), rel, bound, dtypeText(want.dtype));
          if (rel > bound)
            return {Outcome::Fail, msg};
          worst = std::max(worst, rel / bound);
          worstWhere = msg;
          continue;
        }
        Tolerance tol = toleranceFor(want.dtype);
        for (int64_t i = 0; i < want.elements(); ++i) {
          double g = got.get(i), w = want.get(i);
          bool bothNan = std::isnan(g) && std::isnan(w);
          double err = std::fabs(g - w);
          bool ok = bothNan || (g == w) || err <= tol.atol + tol.rtol * std::fabs(w);
          double rel = err / (tol.atol + tol.rtol * std::fabs(w) + 1e-300);
          if (!bothNan && std::isfinite(rel) && rel > worst) {
            worst = rel;
            worstWhere = "output " + std::to_string(o) + "[" + std::to_string(i) + "] [" + bindText + "]";
          }
          if (!ok) {
            char msg[256];
            std::snprintf(msg, sizeof(msg), "output %zu element %lld [%s]: got %.9g, reference %.9g (%s tolerance)",
                          o, static_cast<long long>(i), bindText.c_str(), g, w, dtypeText(want.dtype));
            return {Outcome::Fail, msg};
          }
        }
      }
    }
    char msg[128];
    std::snprintf(msg, sizeof(msg), "%zu binding(s); worst error %.2f of tolerance", bindings.size(), worst);
    return {Outcome::Pass, msg};
  }

  Result programCase(const ProgramCase &c, const std::string &dtype) {
    return runAgainstReference(substitute(c.text, dtype), c.compileBind, c.inputs, c.indexBound, c.bindings, false,
                               c.narrowScaleLog2, c.optLevel);
  }

  Result fileCase(const std::string &file, const std::string &bind) {
    std::ifstream in(file);
    if (!in)
      return {Outcome::Fail, "cannot read " + file};
    std::stringstream ss;
    ss << in.rdbuf();
    // bind: "B=2,S=16:H=2": run-time symbols, then compile-time symbols.
    std::string runPart = bind.substr(0, bind.find(':'));
    std::string compilePart = bind.find(':') == std::string::npos ? "" : bind.substr(bind.find(':') + 1);
    // Both parts size the inputs; only the compile part is fixed in the module.
    std::map<std::string, int64_t> binding;
    std::stringstream parts(runPart + "," + compilePart);
    for (std::string kv; std::getline(parts, kv, ',');)
      if (size_t eq = kv.find('='); eq != std::string::npos)
        binding[kv.substr(0, eq)] = std::stoll(kv.substr(eq + 1));
    return runAgainstReference(ss.str(), compilePart, {}, 0, {binding}, true);
  }

  Result compileOnly() {
    tessera_device_description_t desc{};
    desc.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
    desc.plugin = plugin_.c_str();
    desc.architecture = architecture_.empty() ? nullptr : architecture_.c_str();
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.description = &desc;
    ModulePtr module;
    Result r = compile("func @main(%x: tensor<B x 4 x f32>) -> tensor<B x 4 x f32> {\n  %y = exp(%x)\n  return %y\n}\n",
                       "", module, &target);
    if (r.outcome != Outcome::Pass)
      return r;
    int64_t shape[] = {2, 4};
    if (!device_)
      return {Outcome::Pass, "compiled without a device"};
    tessera_tensor_t *in = nullptr;
    if (!Status(tessera_tensor_create(device_, TESSERA_DTYPE_F32, 2, shape, &in)).ok())
      return {Outcome::Fail, "cannot create a tensor"};
    TensorPtr owned(in);
    tessera_tensor_t *out = nullptr;
    Status s(tessera_module_run(module.get(), nullptr, 1, &in, 1, &out));
    if (s.code != TESSERA_STATUS_NO_DEVICE)
      return {Outcome::Fail, "running a compile-only module gave " + s.str() + " (expected NO_DEVICE)"};
    return {};
  }

  Result serializeRoundTrip() {
    if (!device_)
      return needDevice();
    const std::string text = "func @main(%x: tensor<B x 8 x f32>, %w: tensor<8 x 3 x f32>) -> tensor<B x 3 x f32> {\n"
                             "  %m = matmul(%x, %w)\n  %y = tanh(%m)\n  return %y\n}\n";
    ModulePtr module;
    Result r = compile(text, "", module);
    if (r.outcome != Outcome::Pass)
      return r;
    tessera_blob_t *blob = nullptr;
    Status s(tessera_module_serialize(module.get(), &blob));
    if (!s.ok())
      return {s.code == TESSERA_STATUS_UNSUPPORTED ? Outcome::Unsupported : Outcome::Fail, "serialize: " + s.str()};
    std::string bytes(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
    tessera_blob_free(blob);
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    tessera_module_t *loaded = nullptr;
    Status l(tessera_module_load(context_, bytes.data(), bytes.size(), &target, &loaded));
    if (!l.ok())
      return {Outcome::Fail, "load: " + l.str()};
    ModulePtr loadedOwned(loaded);
    // A damaged copy is refused, not crashed on.
    std::string damaged = bytes.substr(0, bytes.size() / 2);
    tessera_module_t *bad = nullptr;
    Status d(tessera_module_load(context_, damaged.data(), damaged.size(), &target, &bad));
    if (d.ok()) {
      tessera_module_destroy(bad);
      return {Outcome::Fail, "a truncated module loaded"};
    }
    if (d.code != TESSERA_STATUS_CORRUPT_DATA && d.code != TESSERA_STATUS_INCOMPATIBLE_VERSION)
      return {Outcome::Fail, "truncated module gave " + d.str()};
    // Both modules compute the same thing.
    std::mt19937_64 rng(5);
    std::string error;
    TensorPtr x = deviceTensor(randomTensor(TESSERA_DTYPE_F32, {4, 8}, InputKind::Normal, 0, rng), error);
    TensorPtr w = deviceTensor(randomTensor(TESSERA_DTYPE_F32, {8, 3}, InputKind::Normal, 0, rng), error);
    if (!x || !w)
      return {Outcome::Fail, error};
    tessera_tensor_t *inputs[] = {x.get(), w.get()};
    tessera_tensor_t *a = nullptr, *b = nullptr;
    Status ra(tessera_module_run(module.get(), nullptr, 2, inputs, 1, &a));
    Status rb(tessera_module_run(loaded, nullptr, 2, inputs, 1, &b));
    if (!ra.ok() || !rb.ok())
      return {Outcome::Fail, "run: " + (ra.ok() ? rb.str() : ra.str())};
    TensorPtr oa(a), ob(b);
    HostTensor ha, hb;
    if (!readBack(a, ha, error) || !readBack(b, hb, error))
      return {Outcome::Fail, error};
    if (ha.bytes != hb.bytes)
      return {Outcome::Fail, "the loaded module computes different results"};
    return {};
  }

  Result invalidIr() {
    if (!device_)
      return needDevice();
    ModulePtr module;
    const std::string text = "func @main(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = frobnicate(%x)\n  return %y\n}\n";
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    tessera_module_t *m = nullptr;
    tessera_status_t *raw = tessera_compile(context_, text.data(), text.size(), "tessera-ir", nullptr, &target, &m);
    tessera_source_location_t loc{};
    loc.struct_size = TESSERA_SOURCE_LOCATION_STRUCT_SIZE;
    tessera_status_location(raw, &loc);
    Status s(raw);
    if (s.code != TESSERA_STATUS_INVALID_IR)
      return {Outcome::Fail, "unknown op gave " + s.str()};
    if (loc.line != 2)
      return {Outcome::Fail, "diagnostic not located at line 2: " + s.message};
    return {};
  }

  Result wrongInputs(bool shapeMismatch) {
    if (!device_)
      return needDevice();
    ModulePtr module;
    Result r = compile("func @main(%x: tensor<B x 4 x f32>, %y: tensor<B x 4 x f32>) -> tensor<B x 4 x f32> {\n"
                       "  %z = add(%x, %y)\n  return %z\n}\n", "", module);
    if (r.outcome != Outcome::Pass)
      return r;
    std::mt19937_64 rng(3);
    std::string error;
    TensorPtr a = deviceTensor(randomTensor(TESSERA_DTYPE_F32, {2, 4}, InputKind::Normal, 0, rng), error);
    TensorPtr b = deviceTensor(randomTensor(TESSERA_DTYPE_F32, {3, 4}, InputKind::Normal, 0, rng), error);
    if (!a || !b)
      return {Outcome::Fail, error};
    tessera_tensor_t *out = nullptr;
    if (shapeMismatch) {
      tessera_tensor_t *inputs[] = {a.get(), b.get()};
      Status s(tessera_module_run(module.get(), nullptr, 2, inputs, 1, &out));
      if (s.code != TESSERA_STATUS_SHAPE_MISMATCH || s.message.find('B') == std::string::npos)
        return {Outcome::Fail, "B=2 vs B=3 gave " + s.str()};
    } else {
      tessera_tensor_t *inputs[] = {a.get()};
      Status s(tessera_module_run(module.get(), nullptr, 1, inputs, 1, &out));
      if (s.code != TESSERA_STATUS_INVALID_ARGUMENT)
        return {Outcome::Fail, "one input for two gave " + s.str()};
    }
    if (out)
      return {Outcome::Fail, "an output was written despite the error"};
    return {};
  }

  Result unknownFormat() {
    if (!device_)
      return needDevice();
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device_;
    tessera_module_t *m = nullptr;
    Status s(tessera_compile(context_, "x", 1, "no-such-format", nullptr, &target, &m));
    if (s.code != TESSERA_STATUS_UNSUPPORTED || s.message.find("no-such-format") == std::string::npos)
      return {Outcome::Fail, "unknown format gave " + s.str()};
    return {};
  }

  tessera_context_t *context_;
  std::string plugin_;
  std::vector<Exclusion> exclusions_;
  std::string filter_;
  uint32_t minOptLevel_ = 0; // --opt-level: cases compile at no lower level
  std::string pluginState_, pluginReason_, architecture_;
  uint32_t abiMajor_ = 0;
  tessera_device_t *device_ = nullptr;
  int passed_ = 0, failed_ = 0, unsupported_ = 0, notApplicable_ = 0;
};

// Reads the `conformance: unsupported:` list from the plugin's manifest.
std::vector<Exclusion> readExclusions(tessera_context_t *context, const std::string &plugin, std::string &error) {
  std::vector<Exclusion> out;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    if (!Status(tessera_plugin_get_info(context, i, &info)).ok() || !info.name || plugin != info.name ||
        !info.has_manifest)
      continue;
    std::string path = info.path;
    path = path.substr(0, path.size() - 3) + ".yaml";
    try {
      YAML::Node root = YAML::LoadFile(path);
      if (YAML::Node list = root["conformance"]["unsupported"])
        for (const auto &item : list) {
          if (!item["case"] || !item["reason"]) {
            error = path + ": every conformance.unsupported entry needs 'case' and 'reason'";
            return {};
          }
          out.push_back({item["case"].as<std::string>(), item["reason"].as<std::string>()});
        }
    } catch (const YAML::Exception &e) {
      error = path + ": " + e.what();
    }
    break;
  }
  return out;
}

} // namespace

int main(int argc, char **argv) {
  std::string pluginPath, plugin, filter;
  uint32_t optLevel = 0;
  std::vector<std::pair<std::string, std::string>> programs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--plugin-path") pluginPath = value();
    else if (arg == "--plugin") plugin = value();
    else if (arg == "--filter") filter = value();
    else if (arg == "--opt-level") {
      std::string v = value();
      if (v.size() != 1 || v[0] < '0' || v[0] > '3') {
        std::fprintf(stderr, "tessera-conformance: --opt-level takes 0..3, got '%s'\n", v.c_str());
        return 2;
      }
      optLevel = static_cast<uint32_t>(v[0] - '0');
    }
    else if (arg == "--program") {
      std::string v = value();
      size_t colon = v.find(':');
      programs.emplace_back(v.substr(0, colon), colon == std::string::npos ? "" : v.substr(colon + 1));
    } else {
      std::fprintf(stderr,
                   "usage: tessera-conformance --plugin NAME [--plugin-path DIRS] [--filter GLOB] "
                   "[--opt-level N] [--program FILE[:B=2,S=8[:H=2]]]...\n");
      return 2;
    }
  }
  if (plugin.empty()) {
    std::fprintf(stderr, "tessera-conformance: --plugin NAME is required\n");
    return 2;
  }
  tessera_context_options_t options{};
  options.struct_size = TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE;
  options.plugin_path = pluginPath.empty() ? nullptr : pluginPath.c_str();
  tessera_context_t *context = nullptr;
  if (tessera_status_t *s = tessera_context_create(&options, &context)) {
    std::fprintf(stderr, "tessera-conformance: %s\n", tessera_status_message(s));
    tessera_status_free(s);
    return 3;
  }
  std::string error;
  std::vector<Exclusion> exclusions = readExclusions(context, plugin, error);
  if (!error.empty()) {
    std::fprintf(stderr, "tessera-conformance: bad manifest: %s\n", error.c_str());
    return 3;
  }
  std::printf("Tessera conformance suite: plugin '%s', opt level >= %u, %zu listed unsupported case pattern(s)\n",
              plugin.c_str(), optLevel, exclusions.size());
  int rc;
  {
    Suite suite(context, plugin, std::move(exclusions), filter, optLevel);
    rc = suite.run(programs);
  }
  if (tessera_status_t *s = tessera_context_destroy(context)) {
    std::fprintf(stderr, "tessera-conformance: context shutdown: %s\n", tessera_status_message(s));
    tessera_status_free(s);
    return 1;
  }
  return rc;
}
