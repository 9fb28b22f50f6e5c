// libtessera-backend-interp: a test backend that interprets Schedule IR on
// the host, one scalar at a time, in double precision rounded to each
// value's dtype. Slow and simple on purpose: a second, independent backend
// for runtime tests and the conformance suite. One device ("interp:0",
// host memory). Executables serialize as "TSRINTERP1\n" + the program text.
//
// Built twice: `interp` receives attention decomposed like every plugin
// without the NATIVE_OPS extension (and refuses `attention` kernels);
// `interp-native` (INTERP_NATIVE_ATTENTION) declares "attention" native and
// evaluates `attention` kernels in double precision, rounded once at the
// store, so the conformance suite covers the core's whole-op path without a
// GPU.
#include "AttentionRef.h"
#include "tessera/sdk/backend_sdk.h"
#include "tessera/sdk/element.h"
#include "tessera/sdk/schedule_ir.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <vector>

using namespace tessera::schedule;

// A launch kept for later (TESSERA_INTERP_DEFER=1).
struct DeferredLaunch {
  const tessera_backend_executable_t *executable;
  uint32_t kernel;
  std::vector<tessera_backend_buffer_t *> buffers;
  std::vector<int64_t> scalars;
};

struct tessera_backend_plugin_t {
  const tessera_backend_host_t *host = nullptr;
  // TESSERA_INTERP_DEFER=1 makes the plugin behave like an asynchronous
  // device: launches queue up and run, in order, at synchronize or before
  // a copy or free (the ordering tessera_backend.h promises); new buffers
  // are zeroed so a test can see that a kernel has not run yet.
  bool defer = false;
  std::mutex mutex;
  std::vector<DeferredLaunch> queue;
  tessera_status_t *deferredError = nullptr; // the first failure of a queued launch
};
struct tessera_backend_buffer_t {
  void *data;
  uint64_t size;
};
struct tessera_backend_executable_t {
  Program program;
  std::vector<size_t> valueCount; // per kernel: max value id + 1
};

namespace {

constexpr char kExecMagic[] = "TSRINTERP1\n";
#ifdef INTERP_NATIVE_ATTENTION
constexpr bool kNativeAttention = true;
constexpr const char *kPluginName = "interp-native";
#else
constexpr bool kNativeAttention = false;
constexpr const char *kPluginName = "interp";
#endif

using tessera::sdk::makeStatus;

// ---- dtype storage and rounding -------------------------------------------

using tessera::sdk::loadElement;
using tessera::sdk::storeElement;

// v rounded to dtype, as a store and a load would leave it (sdk/element.h).
double roundTo(tessera_dtype_t dtype, double v) {
  unsigned char bytes[8];
  storeElement(dtype, v, bytes);
  return loadElement(dtype, bytes);
}

bool isFloatType(tessera_dtype_t d) { return tessera::sdk::isFloatDType(d); }

// ---- the interpreter --------------------------------------------------------

struct OperandView {
  unsigned char *data;
  tessera_dtype_t dtype;
  std::vector<int64_t> shape;
  size_t elem;
};

struct Interp {
  const tessera_backend_host_t *host;
  const Kernel &kernel;
  const int64_t *symbols;
  std::vector<OperandView> ops;
  std::vector<int64_t> parallel, inner;
  std::vector<double> values;
  std::string error;

  // Linear element offset, or -1 when an index is out of bounds.
  int64_t offset(const OperandView &v, const std::vector<IndexExpr> &index) {
    int64_t off = 0;
    for (size_t d = 0; d < index.size(); ++d) {
      int64_t i = evalIndex(index[d], symbols, parallel.data(), inner.data(), values.data());
      if (i < 0 || i >= v.shape[d])
        return -1;
      off = off * v.shape[d] + i;
    }
    return off;
  }

  double unary(Op op, double x) {
    switch (op) {
    case Op::Neg: return -x;
    case Op::Abs: return std::fabs(x);
    case Op::Exp: return std::exp(x);
    case Op::Log: return std::log(x);
    case Op::Sqrt: return std::sqrt(x);
    case Op::Rsqrt: return 1.0 / std::sqrt(x);
    case Op::Tanh: return std::tanh(x);
    case Op::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case Op::Relu: return x > 0 ? x : 0.0;
    case Op::GeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Op::GeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Op::Silu: return x / (1.0 + std::exp(-x));
    case Op::Erf: return std::erf(x);
    case Op::Sin: return std::sin(x);
    case Op::Cos: return std::cos(x);
    case Op::Floor: return std::floor(x);
    case Op::Ceil: return std::ceil(x);
    case Op::Sign: return x > 0 ? 1.0 : x < 0 ? -1.0 : x;
    case Op::Reciprocal: return 1.0 / x;
    case Op::Not: return x == 0 ? 1.0 : 0.0;
    default: return 0;
    }
  }

  double binary(Op op, tessera_dtype_t argType, double a, double b) {
    bool fl = isFloatType(argType);
    switch (op) {
    case Op::Add: return a + b;
    case Op::Sub: return a - b;
    case Op::Mul: return a * b;
    case Op::Div:
      if (fl)
        return a / b;
      return b == 0 ? 0 : std::floor(a / b);
    case Op::Pow: return std::pow(a, b);
    case Op::Max: return std::isnan(a) || std::isnan(b) ? NAN : (a > b ? a : b);
    case Op::Min: return std::isnan(a) || std::isnan(b) ? NAN : (a < b ? a : b);
    case Op::Mod: {
      if (b == 0)
        return fl ? NAN : 0;
      double r = std::fmod(a, b);
      return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
    case Op::Eq: return a == b;
    case Op::Ne: return a != b;
    case Op::Lt: return a < b;
    case Op::Le: return a <= b;
    case Op::Gt: return a > b;
    case Op::Ge: return a >= b;
    case Op::And:
      return argType == TESSERA_DTYPE_BOOL ? double((a != 0) && (b != 0))
                                           : double(static_cast<int64_t>(a) & static_cast<int64_t>(b));
    case Op::Or:
      return argType == TESSERA_DTYPE_BOOL ? double((a != 0) || (b != 0))
                                           : double(static_cast<int64_t>(a) | static_cast<int64_t>(b));
    case Op::Xor:
      return argType == TESSERA_DTYPE_BOOL ? double((a != 0) != (b != 0))
                                           : double(static_cast<int64_t>(a) ^ static_cast<int64_t>(b));
    default: return 0;
    }
  }

  // Runs one body; `reduce` accumulators live in acc (indexed by value id).
  bool body(const Stage &stage, std::vector<double> &acc, std::vector<int64_t> &accIndex, int64_t innerLinear,
            std::vector<tessera_dtype_t> &types) {
    for (const Instr &in : stage.body) {
      if (in.isStore) {
        const OperandView &v = ops[in.operand];
        int64_t off = offset(v, in.index);
        if (off < 0) {
          error = "store out of bounds in kernel '" + kernel.name + "'";
          return false;
        }
        storeElement(v.dtype, values[in.args[0]], v.data + off * v.elem);
        continue;
      }
      double r = 0;
      switch (in.op) {
      case Op::Load: {
        if (in.mask && evalIndex(*in.mask, symbols, parallel.data(), inner.data(), values.data()) == 0) {
          r = in.fallback;
          break;
        }
        const OperandView &v = ops[in.operand];
        int64_t off = offset(v, in.index);
        if (off < 0) {
          error = "load out of bounds in kernel '" + kernel.name + "'";
          return false;
        }
        r = loadElement(v.dtype, v.data + off * v.elem);
        break;
      }
      case Op::Const: r = in.constant; break;
      case Op::Index:
        r = static_cast<double>(evalIndex(in.indexValue, symbols, parallel.data(), inner.data(), values.data()));
        break;
      case Op::Select: r = values[in.args[0]] != 0 ? values[in.args[1]] : values[in.args[2]]; break;
      case Op::Cast: r = values[in.args[0]]; break;
      case Op::Reduce: {
        double x = values[in.args[0]];
        double &a = acc[in.result];
        switch (in.reduce) {
        case ReduceKind::Sum: a += x; break;
        case ReduceKind::Prod: a *= x; break;
        case ReduceKind::Max: a = (std::isnan(x) || x > a) ? x : a; break;
        case ReduceKind::Min: a = (std::isnan(x) || x < a) ? x : a; break;
        case ReduceKind::Argmax:
          if (accIndex[in.result] < 0 || x > a) { a = x; accIndex[in.result] = innerLinear; }
          break;
        case ReduceKind::Argmin:
          if (accIndex[in.result] < 0 || x < a) { a = x; accIndex[in.result] = innerLinear; }
          break;
        }
        continue; // visible after the stage
      }
      default: {
        int arity = opArity(in.op);
        if (arity == 1)
          r = unary(in.op, values[in.args[0]]);
        else if (arity == 2)
          r = binary(in.op, types[in.args[0]], values[in.args[0]], values[in.args[1]]);
        else {
          error = std::string("unsupported op '") + opName(in.op) + "'";
          return false;
        }
      }
      }
      values[in.result] = roundTo(in.dtype, r);
      types[in.result] = in.dtype;
    }
    return true;
  }

  bool run() {
    std::vector<int64_t> pext;
    for (const IndexExpr &e : kernel.parallel)
      pext.push_back(evalIndex(e, symbols, nullptr, nullptr, nullptr));
    parallel.assign(pext.size(), 0);
    std::vector<tessera_dtype_t> types(values.size(), TESSERA_DTYPE_F64);
    std::vector<double> acc(values.size());
    std::vector<int64_t> accIndex(values.size());
    for (int64_t e : pext)
      if (e <= 0)
        return true;
    while (true) {
      for (const Stage &stage : kernel.stages) {
        std::vector<int64_t> iext;
        bool empty = false;
        for (const IndexExpr &e : stage.inner) {
          iext.push_back(evalIndex(e, symbols, parallel.data(), nullptr, values.data()));
          empty |= iext.back() <= 0;
        }
        inner.assign(iext.size(), 0);
        for (const Instr &in : stage.body)
          if (!in.isStore && in.op == Op::Reduce) {
            accIndex[in.result] = -1;
            switch (in.reduce) {
            case ReduceKind::Sum: acc[in.result] = 0; break;
            case ReduceKind::Prod: acc[in.result] = 1; break;
            case ReduceKind::Max: case ReduceKind::Argmax: acc[in.result] = -INFINITY; break;
            case ReduceKind::Min: case ReduceKind::Argmin: acc[in.result] = INFINITY; break;
            }
          }
        int64_t linear = 0;
        while (!empty) {
          if (!body(stage, acc, accIndex, linear, types))
            return false;
          ++linear;
          size_t d = iext.size();
          while (d > 0 && ++inner[d - 1] == iext[d - 1])
            inner[--d] = 0;
          if (d == 0)
            break;
        }
        for (const Instr &in : stage.body)
          if (!in.isStore && in.op == Op::Reduce) {
            bool arg = in.reduce == ReduceKind::Argmax || in.reduce == ReduceKind::Argmin;
            values[in.result] = roundTo(in.dtype, arg ? static_cast<double>(std::max<int64_t>(accIndex[in.result], 0))
                                                      : acc[in.result]);
            types[in.result] = in.dtype;
          }
      }
      size_t d = pext.size();
      while (d > 0 && ++parallel[d - 1] == pext[d - 1])
        parallel[--d] = 0;
      if (d == 0)
        return true;
    }
  }
};

size_t maxValueId(const Kernel &k) {
  int64_t m = -1;
  for (const Stage &s : k.stages)
    for (const Instr &in : s.body) {
      m = std::max(m, in.result);
      for (int64_t a : in.args)
        m = std::max(m, a);
    }
  return static_cast<size_t>(m + 1);
}

tessera_status_t *buildExecutable(tessera_backend_plugin_t *p, const std::string &text,
                                  tessera_backend_executable_t **out, tessera_status_code_t badCode) {
  auto exe = new (std::nothrow) tessera_backend_executable_t();
  if (!exe)
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "out of memory");
  ParseError error;
  if (!parseProgram(text, &exe->program, &error)) {
    delete exe;
    return makeStatus(p->host, badCode, "interp: Schedule IR does not parse: %s", error.str().c_str());
  }
  for (const Kernel &k : exe->program.kernels) {
    if (k.kind == Kernel::Kind::Attention && !kNativeAttention) {
      delete exe;
      return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED,
                        "interp: kernel '%s': attention kernels need the NATIVE_OPS extension (interp-native)",
                        k.name.c_str());
    }
    exe->valueCount.push_back(maxValueId(k));
  }
  *out = exe;
  return nullptr;
}

// ---- slots --------------------------------------------------------------------

tessera_status_t *initialize(const tessera_backend_host_t *host, tessera_backend_plugin_t **out) {
  *out = new tessera_backend_plugin_t;
  (*out)->host = host;
  const char *defer = std::getenv("TESSERA_INTERP_DEFER");
  (*out)->defer = defer && std::string(defer) == "1";
  return nullptr;
}
tessera_status_t *shutdown(tessera_backend_plugin_t *p) {
  delete p;
  return nullptr;
}
tessera_status_t *deviceCount(tessera_backend_plugin_t *, uint32_t *out) {
  *out = 1;
  return nullptr;
}
tessera_status_t *deviceGetInfo(tessera_backend_plugin_t *p, uint32_t ordinal, tessera_backend_device_info_t *out) {
  if (ordinal != 0)
    return makeStatus(p->host, TESSERA_STATUS_NOT_FOUND, "interp: no device %u", ordinal);
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  info.name = "Schedule IR interpreter";
  info.architecture = "interp";
  info.features = "";
  info.memory_bytes = uint64_t(1) << 30;
  info.compute_units = 1;
  info.kind = TESSERA_DEVICE_KIND_CPU;
  tessera::sdk::copyOut(out, info);
  return nullptr;
}

tessera_status_t *compile(tessera_backend_plugin_t *p, const tessera_backend_compile_args_t *args,
                          tessera_backend_executable_t **out) {
  if (!args->program_format || std::strcmp(args->program_format, kProgramFormat) != 0)
    return makeStatus(p->host, TESSERA_STATUS_UNSUPPORTED, "interp: unknown program format '%s'",
                      args->program_format ? args->program_format : "(null)");
  std::string text(static_cast<const char *>(args->program), args->program_size);
  if (tessera_status_t *s = buildExecutable(p, text, out, TESSERA_STATUS_INVALID_ARGUMENT))
    return s;
  if (args->dump && args->dump_stages) {
    std::string stages = args->dump_stages;
    std::string summary = "interp: " + std::to_string((*out)->program.kernels.size()) + " kernels, interpreted\n";
    if (stages.find("tile") != std::string::npos)
      args->dump(args->dump_user_data, "tile", summary.c_str(), summary.size());
    if (stages.find("target") != std::string::npos)
      args->dump(args->dump_user_data, "target", summary.c_str(), summary.size());
  }
  return nullptr;
}
tessera_status_t *executableDestroy(tessera_backend_plugin_t *, tessera_backend_executable_t *e) {
  delete e;
  return nullptr;
}
tessera_status_t *executableSerialize(tessera_backend_plugin_t *p, const tessera_backend_executable_t *e,
                                      void **out, size_t *outSize) {
  std::string bytes = std::string(kExecMagic) + printProgram(e->program);
  void *mem = p->host->allocate(p->host->allocator_data, bytes.size(), 16);
  if (!mem)
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "out of memory");
  std::memcpy(mem, bytes.data(), bytes.size());
  *out = mem;
  *outSize = bytes.size();
  return nullptr;
}
tessera_status_t *executableLoad(tessera_backend_plugin_t *p, const tessera_backend_load_args_t *args,
                                 tessera_backend_executable_t **out) {
  size_t magic = sizeof(kExecMagic) - 1;
  if (args->size < magic || std::memcmp(args->data, kExecMagic, magic) != 0)
    return makeStatus(p->host, TESSERA_STATUS_CORRUPT_DATA, "interp: not an interp executable");
  std::string text(static_cast<const char *>(args->data) + magic, args->size - magic);
  return buildExecutable(p, text, out, TESSERA_STATUS_CORRUPT_DATA);
}

tessera_status_t *bufferAllocate(tessera_backend_plugin_t *p, uint32_t, uint64_t size, tessera_backend_buffer_t **out) {
  void *data = std::aligned_alloc(64, (size + 63) / 64 * 64);
  if (!data)
    return makeStatus(p->host, TESSERA_STATUS_OUT_OF_MEMORY, "interp: cannot allocate %llu bytes",
                      static_cast<unsigned long long>(size));
  if (p->defer)
    std::memset(data, 0, (size + 63) / 64 * 64);
  *out = new tessera_backend_buffer_t{data, size};
  return nullptr;
}
void drain(tessera_backend_plugin_t *p);

tessera_status_t *bufferFree(tessera_backend_plugin_t *p, tessera_backend_buffer_t *b) {
  drain(p);
  std::free(b->data);
  delete b;
  return nullptr;
}
tessera_status_t *bufferPointer(tessera_backend_plugin_t *, const tessera_backend_buffer_t *b, void **out) {
  *out = b->data;
  return nullptr;
}
tessera_status_t *copyFromHost(tessera_backend_plugin_t *p, tessera_backend_buffer_t *b, uint64_t offset,
                               const void *src, uint64_t size) {
  drain(p);
  std::memcpy(static_cast<char *>(b->data) + offset, src, size);
  return nullptr;
}
tessera_status_t *copyToHost(tessera_backend_plugin_t *p, const tessera_backend_buffer_t *b, uint64_t offset,
                             void *dst, uint64_t size) {
  drain(p);
  std::memcpy(dst, static_cast<const char *>(b->data) + offset, size);
  return nullptr;
}

tessera_status_t *execute(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args);

tessera_status_t *launch(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args) {
  if (!p->defer)
    return execute(p, args);
  const tessera_backend_executable_t *e = args->executable;
  if (!e || args->kernel_index >= e->program.kernels.size())
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "interp: bad kernel index %u", args->kernel_index);
  std::lock_guard<std::mutex> lock(p->mutex);
  p->queue.push_back({e, args->kernel_index, {args->buffers, args->buffers + args->num_buffers},
                      {args->scalars, args->scalars + args->num_scalars}});
  return nullptr;
}

void drain(tessera_backend_plugin_t *p) {
  if (!p->defer)
    return;
  std::lock_guard<std::mutex> lock(p->mutex);
  for (DeferredLaunch &d : p->queue) {
    tessera_backend_launch_args_t args{};
    args.struct_size = sizeof(args);
    args.executable = const_cast<tessera_backend_executable_t *>(d.executable);
    args.kernel_index = d.kernel;
    args.buffers = d.buffers.data();
    args.num_buffers = d.buffers.size();
    args.scalars = d.scalars.data();
    args.num_scalars = d.scalars.size();
    // Later failures are dropped (host statuses are freed by the host only).
    if (tessera_status_t *s = execute(p, &args); s && !p->deferredError)
      p->deferredError = s;
  }
  p->queue.clear();
}

tessera_status_t *execute(tessera_backend_plugin_t *p, const tessera_backend_launch_args_t *args) {
  const tessera_backend_executable_t *e = args->executable;
  if (!e || args->kernel_index >= e->program.kernels.size())
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT, "interp: bad kernel index %u", args->kernel_index);
  const Kernel &k = e->program.kernels[args->kernel_index];
  if (args->num_scalars != e->program.symbols.size() || args->num_buffers != k.operands.size())
    return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                      "interp: kernel '%s' takes %zu buffers and %zu scalars, got %zu and %zu", k.name.c_str(),
                      k.operands.size(), e->program.symbols.size(), args->num_buffers, args->num_scalars);
  Interp in{p->host, k, args->scalars, {}, {}, {}, std::vector<double>(e->valueCount[args->kernel_index]), {}};
  for (size_t o = 0; o < k.operands.size(); ++o) {
    OperandView v{static_cast<unsigned char *>(args->buffers[o]->data), k.operands[o].dtype, {},
                  dtypeSize(k.operands[o].dtype)};
    uint64_t elems = 1;
    for (const IndexExpr &d : k.operands[o].shape) {
      v.shape.push_back(evalIndex(d, args->scalars, nullptr, nullptr, nullptr));
      elems *= static_cast<uint64_t>(v.shape.back());
    }
    if (elems * v.elem > args->buffers[o]->size)
      return makeStatus(p->host, TESSERA_STATUS_INVALID_ARGUMENT,
                        "interp: kernel '%s' operand %zu needs %llu bytes; its buffer has %llu", k.name.c_str(), o,
                        static_cast<unsigned long long>(elems * v.elem),
                        static_cast<unsigned long long>(args->buffers[o]->size));
    in.ops.push_back(std::move(v));
  }
  if (k.kind == Kernel::Kind::Attention) {
    OperandView &o = in.ops[static_cast<size_t>(k.attentionOut())];
    std::string e = tessera::testing::runAttentionKernel(
        k, args->scalars,
        [&](int64_t operand, int64_t off) {
          const OperandView &v = in.ops[static_cast<size_t>(operand)];
          return loadElement(v.dtype, v.data + off * v.elem);
        },
        [&](int64_t off, double value) { storeElement(o.dtype, value, o.data + off * o.elem); });
    if (!e.empty())
      return makeStatus(p->host, TESSERA_STATUS_DEVICE_ERROR, "interp: kernel '%s': %s", k.name.c_str(), e.c_str());
    return nullptr;
  }
  if (!in.run())
    return makeStatus(p->host, TESSERA_STATUS_DEVICE_ERROR, "interp: %s", in.error.c_str());
  return nullptr;
}
tessera_status_t *synchronize(tessera_backend_plugin_t *p, uint32_t) {
  drain(p);
  std::lock_guard<std::mutex> lock(p->mutex);
  tessera_status_t *error = p->deferredError;
  p->deferredError = nullptr;
  return error;
}

const tessera_backend_native_ops_extension_t kNativeOps = {
    {sizeof(tessera_backend_native_ops_extension_t), TESSERA_BACKEND_EXTENSION_NATIVE_OPS, nullptr}, "attention"};

tessera_backend_api_t makeApi() {
  tessera_backend_api_t api{};
  api.struct_size = sizeof(api);
  api.extensions = kNativeAttention ? &kNativeOps.base : nullptr;
  api.name = kPluginName;
  api.vendor = "Tessera tests";
  api.version = "0.1.0";
  api.targets = "interp";
  api.initialize = initialize;
  api.shutdown = shutdown;
  api.device_count = deviceCount;
  api.device_get_info = deviceGetInfo;
  api.compile = compile;
  api.executable_destroy = executableDestroy;
  api.executable_serialize = executableSerialize;
  api.executable_load = executableLoad;
  api.buffer_allocate = bufferAllocate;
  api.buffer_free = bufferFree;
  api.buffer_device_pointer = bufferPointer;
  api.buffer_copy_from_host = copyFromHost;
  api.buffer_copy_to_host = copyToHost;
  api.launch = launch;
  api.synchronize = synchronize;
  return api;
}

tessera_backend_api_t gApi = makeApi();

} // namespace

extern "C" TESSERA_EXPORT tessera_status_t *tessera_backend_get_api(const tessera_backend_host_t *host,
                                                                    const tessera_backend_api_t **out_api) {
  return tessera::sdk::provideApi(host, &gApi, out_api);
}
