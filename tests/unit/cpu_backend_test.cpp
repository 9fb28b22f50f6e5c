// The CPU plugin through its ABI (dlopen): Schedule IR programs of every op
// family compiled, launched and compared with a float64 interpreter written
// here (independent of the plugin's code generator), plus serialization,
// cost model, dumps and error paths.
#include "tessera/tessera_backend.h"
#include "tessera/sdk/schedule_ir.h"
#include "ObjectCode.h"
#include "SirKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

struct tessera_status_t {
  tessera_status_code_t code;
  std::string message;
};

namespace {

namespace sir = tessera::schedule;

tessera_status_t *statusCreate(tessera_status_code_t code, const char *message) {
  return code == TESSERA_STATUS_OK ? nullptr : new tessera_status_t{code, message ? message : ""};
}
void *hostAllocate(void *, size_t size, size_t alignment) {
  return std::aligned_alloc(alignment < 16 ? 16 : alignment, (size + 15) / 16 * 16);
}
void hostDeallocate(void *, void *p) { std::free(p); }

// ---- Independent numerics -------------------------------------------------------

double decodeFp8(uint8_t c, int manBits, int bias, bool ieee) {
  int sign = c >> 7, e = (c >> manBits) & ((1 << (7 - manBits)) - 1), m = c & ((1 << manBits) - 1);
  int emax = (1 << (7 - manBits)) - 1;
  if (ieee && e == emax)
    return m ? NAN : (sign ? -INFINITY : INFINITY);
  if (!ieee && e == emax && m == (1 << manBits) - 1)
    return NAN;
  double v = e == 0 ? m * std::pow(2.0, 1 - bias - manBits) : (1 + m / double(1 << manBits)) * std::pow(2.0, e - bias);
  return sign ? -v : v;
}

// Nearest fp8 code by exhaustive search, ties to the even code; values
// beyond max + half an ulp overflow (NaN for e4m3fn, inf for e5m2) unless
// saturating.
uint8_t encodeFp8Search(double x, bool e4m3, bool saturate) {
  const int manBits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  const double maxv = e4m3 ? 448 : 57344, halfUlpAtMax = e4m3 ? 16 : 4096;
  if (std::isnan(x))
    return e4m3 ? 0x7F : 0x7E;
  uint8_t sign = std::signbit(x) ? 0x80 : 0;
  double a = std::fabs(x);
  if (a > maxv + halfUlpAtMax || std::isinf(a) || (a == maxv + halfUlpAtMax && !e4m3 /* 0x7B odd */))
    return sign | (saturate ? (e4m3 ? 0x7E : 0x7B) : (e4m3 ? 0x7F : 0x7C));
  if (a == maxv + halfUlpAtMax) // e4m3: 448 = 1.110b x 2^8 is even; ties to it
    return sign | 0x7E;
  int best = -1;
  double bestErr = 0;
  for (int c = 0; c < 128; ++c) {
    double v = decodeFp8(uint8_t(c), manBits, bias, !e4m3);
    if (std::isnan(v) || std::isinf(v))
      continue;
    double err = std::fabs(v - a);
    if (best < 0 || err < bestErr || (err == bestErr && (c & 1) == 0)) {
      best = c;
      bestErr = err;
    }
  }
  return sign | uint8_t(best);
}

uint16_t bf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f))
    return uint16_t((u >> 16) | 0x40);
  if (std::isinf(f))
    return uint16_t(u >> 16);
  // Exact RNE via double arithmetic on the two candidates.
  uint32_t lo = u & 0xFFFF0000u, hi = lo + 0x10000u;
  float flo, fhi;
  std::memcpy(&flo, &lo, 4);
  std::memcpy(&fhi, &hi, 4);
  double dl = std::fabs(double(f) - flo), dh = std::fabs(double(fhi) - f);
  if (dl < dh || (dl == dh && ((lo >> 16) & 1) == 0))
    return uint16_t(lo >> 16);
  return uint16_t(hi >> 16);
}
float fromBf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f16 RNE from double by exhaustive binade arithmetic.
uint16_t f16Bits(double x) {
  if (std::isnan(x))
    return 0x7E00;
  uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  double a = std::fabs(x);
  int e = a == 0 ? -14 : std::max(std::ilogb(a), -14);
  double q = std::ldexp(1.0, e - 10);
  double r = std::nearbyint(a / q) * q;
  if (r >= 65520.0 || std::isinf(a))
    return sign | 0x7C00;
  if (r == 0)
    return sign;
  int re = std::ilogb(r);
  if (re < -14)
    return sign | uint16_t(r / std::ldexp(1.0, -24));
  return sign | uint16_t(((re + 15) << 10) | int((r / std::ldexp(1.0, re) - 1.0) * 1024));
}
double fromF16(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? m * std::ldexp(1.0, -24) : e == 31 ? (m ? NAN : INFINITY) : (1 + m / 1024.0) * std::ldexp(1.0, e - 15);
  return (h & 0x8000) ? -v : v;
}

bool isFloatType(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_F64 || d == TESSERA_DTYPE_F32 || d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_BF16 ||
         d == TESSERA_DTYPE_F8E4M3 || d == TESSERA_DTYPE_F8E5M2;
}

// Integer wraparound / bool, as values of dtype d (floats unchanged: the
// plugin computes them in f32, the interpreter in f64).
double toType(double x, tessera_dtype_t d) {
  if (isFloatType(d))
    return x;
  if (d == TESSERA_DTYPE_BOOL)
    return x != 0 ? 1 : 0;
  if (std::isnan(x) || std::isinf(x))
    return 0;
  int64_t i = int64_t(std::trunc(x));
  switch (d) {
  case TESSERA_DTYPE_I32: return double(int32_t(uint32_t(i)));
  case TESSERA_DTYPE_I16: return double(int16_t(uint16_t(i)));
  case TESSERA_DTYPE_I8: return double(int8_t(uint8_t(i)));
  case TESSERA_DTYPE_U8: return double(uint8_t(i));
  default: return double(i);
  }
}

// ---- Host tensors ---------------------------------------------------------------

struct Tensor {
  tessera_dtype_t dtype = TESSERA_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t count() const {
    size_t n = 1;
    for (int64_t d : shape)
      n *= size_t(d);
    return n;
  }
  double get(size_t i) const {
    const uint8_t *p = bytes.data() + i * sir::dtypeSize(dtype);
    switch (dtype) {
    case TESSERA_DTYPE_F64: { double v; std::memcpy(&v, p, 8); return v; }
    case TESSERA_DTYPE_F32: { float v; std::memcpy(&v, p, 4); return v; }
    case TESSERA_DTYPE_F16: { uint16_t v; std::memcpy(&v, p, 2); return fromF16(v); }
    case TESSERA_DTYPE_BF16: { uint16_t v; std::memcpy(&v, p, 2); return fromBf16(v); }
    case TESSERA_DTYPE_F8E4M3: return decodeFp8(*p, 3, 7, false);
    case TESSERA_DTYPE_F8E5M2: return decodeFp8(*p, 2, 15, true);
    case TESSERA_DTYPE_I64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
    case TESSERA_DTYPE_I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case TESSERA_DTYPE_I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case TESSERA_DTYPE_I8: return int8_t(*p);
    default: return *p; // u8, bool
    }
  }
  void set(size_t i, double x) {
    uint8_t *p = bytes.data() + i * sir::dtypeSize(dtype);
    switch (dtype) {
    case TESSERA_DTYPE_F64: std::memcpy(p, &x, 8); break;
    case TESSERA_DTYPE_F32: { float v = float(x); std::memcpy(p, &v, 4); break; }
    case TESSERA_DTYPE_F16: { uint16_t v = f16Bits(float(x)); std::memcpy(p, &v, 2); break; }
    case TESSERA_DTYPE_BF16: { uint16_t v = bf16Bits(float(x)); std::memcpy(p, &v, 2); break; }
    case TESSERA_DTYPE_F8E4M3: *p = encodeFp8Search(float(x), true, false); break;
    case TESSERA_DTYPE_F8E5M2: *p = encodeFp8Search(float(x), false, false); break;
    case TESSERA_DTYPE_I64: { int64_t v = int64_t(toType(x, dtype)); std::memcpy(p, &v, 8); break; }
    case TESSERA_DTYPE_I32: { int32_t v = int32_t(toType(x, dtype)); std::memcpy(p, &v, 4); break; }
    case TESSERA_DTYPE_I16: { int16_t v = int16_t(toType(x, dtype)); std::memcpy(p, &v, 2); break; }
    default: *p = uint8_t(int64_t(toType(x, dtype))); break;
    }
  }
};

Tensor makeTensor(tessera_dtype_t dt, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.bytes.assign(t.count() * sir::dtypeSize(dt), 0);
  return t;
}

Tensor randomTensor(tessera_dtype_t dt, std::vector<int64_t> shape, std::mt19937 &rng, double lo = -2, double hi = 2) {
  Tensor t = makeTensor(dt, std::move(shape));
  std::uniform_real_distribution<double> u(lo, hi);
  for (size_t i = 0; i < t.count(); ++i) {
    double v = u(rng);
    if (!isFloatType(dt))
      v = dt == TESSERA_DTYPE_BOOL ? (v > (lo + hi) / 2) : std::floor(v);
    else if (std::fabs(v) < 1e-3)
      v = 0.5; // never zeros
    t.set(i, v);
  }
  return t;
}

// ---- The float64 interpreter ----------------------------------------------------

double floorDiv(double a, double b) { return b == 0 ? 0 : std::floor(a / b); }

double applyUnary(sir::Op op, double x) {
  using O = sir::Op;
  switch (op) {
  case O::Neg: return -x;
  case O::Abs: return std::fabs(x);
  case O::Exp: return std::exp(x);
  case O::Log: return std::log(x);
  case O::Sqrt: return std::sqrt(x);
  case O::Rsqrt: return 1 / std::sqrt(x);
  case O::Tanh: return std::tanh(x);
  case O::Sigmoid: return 1 / (1 + std::exp(-x));
  case O::Relu: return x < 0 ? 0 : x;
  case O::GeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  case O::GeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  case O::Silu: return x / (1 + std::exp(-x));
  case O::Erf: return std::erf(x);
  case O::Sin: return std::sin(x);
  case O::Cos: return std::cos(x);
  case O::Floor: return std::floor(x);
  case O::Ceil: return std::ceil(x);
  case O::Sign: return x > 0 ? 1 : x < 0 ? -1 : x;
  case O::Reciprocal: return 1 / x;
  default: return NAN;
  }
}

double applyBinary(sir::Op op, double a, double b, bool integer) {
  using O = sir::Op;
  switch (op) {
  case O::Add: return a + b;
  case O::Sub: return a - b;
  case O::Mul: return a * b;
  case O::Div: return integer ? floorDiv(a, b) : a / b;
  case O::Pow: return std::pow(a, b);
  case O::Max: return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
  case O::Min: return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
  case O::Mod: {
    if (integer)
      return b == 0 ? 0 : a - floorDiv(a, b) * b;
    double r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0)))
      r += b;
    return r;
  }
  case O::Eq: return a == b;
  case O::Ne: return a != b;
  case O::Lt: return a < b;
  case O::Le: return a <= b;
  case O::Gt: return a > b;
  case O::Ge: return a >= b;
  default: return NAN;
  }
}

void interpret(const sir::Program &prog, size_t ki, std::vector<Tensor> &ops, const std::vector<int64_t> &sym) {
  const sir::Kernel &k = prog.kernels[ki];
  const size_t np = k.parallel.size();
  std::vector<int64_t> ext(np);
  int64_t total = 1;
  for (size_t d = 0; d < np; ++d) {
    ext[d] = sir::evalIndex(k.parallel[d], sym.data(), nullptr, nullptr, nullptr);
    total *= ext[d];
  }
  std::map<int64_t, tessera_dtype_t> types;
  for (const auto &s : k.stages)
    for (const auto &in : s.body)
      if (!in.isStore)
        types[in.result] = in.dtype;
  std::vector<int64_t> par(np);
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t rest = flat;
    for (size_t d = np; d-- > 0;) {
      par[d] = rest % ext[d];
      rest /= ext[d];
    }
    std::vector<double> vals(4096, 0.0);
    for (const sir::Stage &st : k.stages) {
      std::vector<int64_t> ie;
      int64_t iters = 1;
      for (const auto &e : st.inner) {
        ie.push_back(std::max<int64_t>(0, sir::evalIndex(e, sym.data(), par.data(), nullptr, nullptr)));
        iters *= ie.back();
      }
      std::map<int64_t, std::pair<double, int64_t>> acc;
      for (const auto &in : st.body)
        if (!in.isStore && in.op == sir::Op::Reduce) {
          double init = 0;
          switch (in.reduce) {
          case sir::ReduceKind::Sum: init = 0; break;
          case sir::ReduceKind::Prod: init = 1; break;
          case sir::ReduceKind::Max: case sir::ReduceKind::Argmax: init = -INFINITY; break;
          default: init = INFINITY; break;
          }
          acc[in.result] = {init, 0};
        }
      std::vector<int64_t> inner(ie.size());
      for (int64_t it = 0; it < iters; ++it) {
        int64_t r = it;
        for (size_t d = ie.size(); d-- > 0;) {
          inner[d] = r % ie[d];
          r /= ie[d];
        }
        auto offset = [&](const sir::Instr &in) {
          const Tensor &t = ops[in.operand];
          int64_t off = 0;
          for (size_t d = 0; d < in.index.size(); ++d)
            off = off * t.shape[d] + sir::evalIndex(in.index[d], sym.data(), par.data(), inner.data(), vals.data());
          return size_t(off);
        };
        for (const sir::Instr &in : st.body) {
          auto arg = [&](size_t i) { return vals[in.args[i]]; };
          if (in.isStore) {
            ops[in.operand].set(offset(in), toType(arg(0), ops[in.operand].dtype));
            continue;
          }
          double v = 0;
          bool intResult = !isFloatType(in.dtype);
          switch (in.op) {
          case sir::Op::Load:
            if (in.mask && !sir::evalIndex(*in.mask, sym.data(), par.data(), inner.data(), vals.data()))
              v = in.fallback;
            else
              v = ops[in.operand].get(offset(in));
            break;
          case sir::Op::Const: v = in.constant; break;
          case sir::Op::Index: v = double(sir::evalIndex(in.indexValue, sym.data(), par.data(), inner.data(), vals.data())); break;
          case sir::Op::Cast: {
            v = arg(0);
            if (in.dtype == TESSERA_DTYPE_BF16)
              v = fromBf16(bf16Bits(float(v)));
            else if (in.dtype == TESSERA_DTYPE_F16)
              v = fromF16(f16Bits(float(v)));
            else if (in.dtype == TESSERA_DTYPE_F8E4M3)
              v = decodeFp8(encodeFp8Search(float(v), true, in.saturate), 3, 7, false);
            else if (in.dtype == TESSERA_DTYPE_F8E5M2)
              v = decodeFp8(encodeFp8Search(float(v), false, in.saturate), 2, 15, true);
            break;
          }
          case sir::Op::Select: v = arg(0) != 0 ? arg(1) : arg(2); break;
          case sir::Op::And: v = (arg(0) != 0) && (arg(1) != 0); break;
          case sir::Op::Or: v = (arg(0) != 0) || (arg(1) != 0); break;
          case sir::Op::Xor: v = (arg(0) != 0) != (arg(1) != 0); break;
          case sir::Op::Not: v = arg(0) == 0; break;
          case sir::Op::Reduce: {
            auto &a = acc[in.result];
            double x = arg(0);
            switch (in.reduce) {
            case sir::ReduceKind::Sum: a.first += x; break;
            case sir::ReduceKind::Prod: a.first *= x; break;
            case sir::ReduceKind::Max: a.first = applyBinary(sir::Op::Max, a.first, x, false); break;
            case sir::ReduceKind::Min: a.first = applyBinary(sir::Op::Min, a.first, x, false); break;
            case sir::ReduceKind::Argmax: if (x > a.first) { a.first = x; a.second = it; } break;
            case sir::ReduceKind::Argmin: if (x < a.first) { a.first = x; a.second = it; } break;
            }
            bool isArg = in.reduce == sir::ReduceKind::Argmax || in.reduce == sir::ReduceKind::Argmin;
            v = isArg ? double(a.second) : a.first;
            break;
          }
          default:
            if (sir::opArity(in.op) == 1)
              v = applyUnary(in.op, arg(0));
            else {
              bool cmp = in.op >= sir::Op::Eq && in.op <= sir::Op::Ge;
              bool integer = cmp ? (!isFloatType(types[in.args[0]]) && !isFloatType(types[in.args[1]])) : intResult;
              v = applyBinary(in.op, arg(0), arg(1), integer);
            }
            break;
          }
          vals[in.result] = toType(v, in.dtype);
        }
      }
      if (iters == 0)
        for (auto &[id, a] : acc)
          vals[id] = a.first;
    }
  }
}

// ---- Plugin fixture -------------------------------------------------------------

class CpuBackend : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string path = std::string(TESSERA_TEST_PLUGIN_DIR) + "/libtessera-backend-cpu.so";
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
    auto getApi = reinterpret_cast<tessera_backend_get_api_fn_t>(dlsym(handle_, TESSERA_BACKEND_ENTRY_SYMBOL));
    ASSERT_NE(getApi, nullptr);
    host_.struct_size = sizeof(host_);
    host_.abi_min_major = TESSERA_ABI_VERSION_MAJOR;
    host_.abi_max_major = TESSERA_ABI_VERSION_MAJOR;
    host_.abi_max_minor = TESSERA_ABI_VERSION_MINOR;
    host_.status_create = statusCreate;
    host_.allocate = hostAllocate;
    host_.deallocate = hostDeallocate;
    ASSERT_EQ(getApi(&host_, &api_), nullptr);
    ASSERT_EQ(api_->initialize(&host_, &plugin_), nullptr);
  }
  static void TearDownTestSuite() {
    if (api_ && plugin_)
      api_->shutdown(plugin_);
    // The plugin stays loaded: LLVM registers process-wide state.
  }

  static tessera_status_code_t code(tessera_status_t *s) {
    if (!s)
      return TESSERA_STATUS_OK;
    tessera_status_code_t c = s->code;
    delete s;
    return c;
  }

  struct Compiled {
    tessera_backend_executable_t *exe = nullptr;
    std::string error;
    tessera_status_code_t status = TESSERA_STATUS_OK;
    std::map<std::string, std::string> dumps;
  };

  static Compiled compile(const std::string &text, const char *arch = nullptr, const char *stages = nullptr) {
    Compiled c;
    tessera_device_description_t target{};
    target.struct_size = sizeof(target);
    target.plugin = "cpu";
    target.architecture = arch;
    tessera_backend_compile_args_t args{};
    args.struct_size = sizeof(args);
    args.program = text.data();
    args.program_size = text.size();
    args.program_format = "tessera-schedule-v1";
    args.target = &target;
    args.device_ordinal = 0;
    args.dump_stages = stages;
    args.dump = [](void *user, const char *stage, const char *t, size_t n) {
      (*static_cast<std::map<std::string, std::string> *>(user))[stage] = std::string(t, n);
    };
    args.dump_user_data = &c.dumps;
    tessera_status_t *s = api_->compile(plugin_, &args, &c.exe);
    if (s) {
      c.status = s->code;
      c.error = s->message;
      delete s;
    }
    return c;
  }

  static tessera_status_code_t launch(tessera_backend_executable_t *exe, uint32_t kernel, std::vector<Tensor> &ops,
                                      const std::vector<int64_t> &scalars, uint32_t threads = 0,
                                      std::string *message = nullptr) {
    std::vector<tessera_backend_buffer_t *> bufs;
    for (Tensor &t : ops) {
      tessera_backend_buffer_t *b = nullptr;
      EXPECT_EQ(code(api_->buffer_allocate(plugin_, 0, t.bytes.size(), &b)), TESSERA_STATUS_OK);
      EXPECT_EQ(code(api_->buffer_copy_from_host(plugin_, b, 0, t.bytes.data(), t.bytes.size())), TESSERA_STATUS_OK);
      bufs.push_back(b);
    }
    tessera_backend_launch_args_t la{};
    la.struct_size = sizeof(la);
    la.executable = exe;
    la.kernel_index = kernel;
    la.buffers = bufs.data();
    la.num_buffers = bufs.size();
    la.scalars = scalars.data();
    la.num_scalars = scalars.size();
    la.num_threads = threads;
    tessera_status_t *s = api_->launch(plugin_, &la);
    tessera_status_code_t c = s ? s->code : TESSERA_STATUS_OK;
    if (s && message)
      *message = s->message;
    delete s;
    EXPECT_EQ(code(api_->synchronize(plugin_, 0)), TESSERA_STATUS_OK);
    for (size_t i = 0; i < ops.size(); ++i) {
      EXPECT_EQ(code(api_->buffer_copy_to_host(plugin_, bufs[i], 0, ops[i].bytes.data(), ops[i].bytes.size())),
                TESSERA_STATUS_OK);
      api_->buffer_free(plugin_, bufs[i]);
    }
    return c;
  }

  static void destroy(tessera_backend_executable_t *exe) { EXPECT_EQ(code(api_->executable_destroy(plugin_, exe)), TESSERA_STATUS_OK); }

  // Compiles `text`, runs every kernel on the plugin and the interpreter with
  // the same random inputs (operands of each kernel bound by `bind`), and
  // compares every output operand.
  static void checkProgram(const std::string &text, const std::vector<int64_t> &scalars, double rtol = 1e-4,
                           double atol = 1e-5, uint32_t threads = 0, unsigned seed = 1,
                           std::function<void(size_t, std::vector<Tensor> &)> fill = nullptr) {
    sir::Program prog;
    sir::ParseError perr;
    ASSERT_TRUE(sir::parseProgram(text, &prog, &perr)) << perr.str();
    Compiled c = compile(text);
    ASSERT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
    std::mt19937 rng(seed);
    for (size_t ki = 0; ki < prog.kernels.size(); ++ki) {
      const sir::Kernel &k = prog.kernels[ki];
      std::vector<Tensor> ops;
      for (const sir::Operand &o : k.operands) {
        std::vector<int64_t> shape;
        for (const auto &e : o.shape)
          shape.push_back(sir::evalIndex(e, scalars.data(), nullptr, nullptr, nullptr));
        ops.push_back(o.role == sir::OperandRole::Out ? makeTensor(o.dtype, shape) : randomTensor(o.dtype, shape, rng));
      }
      if (fill)
        fill(ki, ops);
      std::vector<Tensor> expect = ops;
      interpret(prog, ki, expect, scalars);
      ASSERT_EQ(launch(c.exe, uint32_t(ki), ops, scalars, threads), TESSERA_STATUS_OK);
      for (size_t o = 0; o < ops.size(); ++o) {
        if (k.operands[o].role == sir::OperandRole::In)
          continue;
        size_t bad = 0;
        for (size_t i = 0; i < ops[o].count(); ++i) {
          double g = ops[o].get(i), w = expect[o].get(i);
          bool ok = (std::isnan(g) && std::isnan(w)) || std::fabs(g - w) <= atol + rtol * std::fabs(w);
          if (!ok && bad++ < 5)
            ADD_FAILURE() << "kernel " << k.name << " operand " << o << " element " << i << ": got " << g
                          << ", want " << w;
        }
        EXPECT_EQ(bad, 0u) << "kernel " << k.name;
      }
    }
    destroy(c.exe);
  }

  static void *handle_;
  static tessera_backend_host_t host_;
  static const tessera_backend_api_t *api_;
  static tessera_backend_plugin_t *plugin_;
};

void *CpuBackend::handle_ = nullptr;
tessera_backend_host_t CpuBackend::host_{};
const tessera_backend_api_t *CpuBackend::api_ = nullptr;
tessera_backend_plugin_t *CpuBackend::plugin_ = nullptr;

std::string unaryKernel(const std::string &op, const std::string &dt = "f32") {
  // Inputs of log/sqrt/rsqrt are made positive with abs + 0.1.
  bool positive = op == "log" || op == "sqrt" || op == "rsqrt";
  std::string body = "    v0: " + dt + " = load 0 [p0, p1]\n";
  std::string x = "v0";
  if (positive) {
    body += "    v1: " + dt + " = abs v0\n    v2: " + dt + " = const 0.1\n    v3: " + dt + " = add v1 v2\n";
    x = "v3";
  }
  body += "    v9: " + dt + " = " + op + " " + x + "\n    store 1 [p0, p1] v9\n";
  return "kernel \"" + op + "\" loop {\n  operand 0 in " + dt + " [s0, s1]\n  operand 1 out " + dt +
         " [s0, s1]\n  parallel [s0, s1]\n  stage map [] {\n" + body + "  }\n}\n";
}

TEST_F(CpuBackend, ElementwiseUnaryOps) {
  std::string text = "tessera-schedule v1\nsymbols M N\n";
  for (const char *op : {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu_erf",
                         "gelu_tanh", "silu", "erf", "sin", "cos", "floor", "ceil", "sign", "reciprocal"})
    text += unaryKernel(op);
  checkProgram(text, {7, 301});
  checkProgram(text, {3, 5}); // shorter than a vector
}

TEST_F(CpuBackend, ElementwiseUnaryF64) {
  std::string text = "tessera-schedule v1\nsymbols M N\n";
  for (const char *op : {"exp", "log", "tanh", "erf", "sin", "gelu_erf", "sigmoid"})
    text += unaryKernel(op, "f64");
  checkProgram(text, {5, 67}, 1e-12, 1e-13);
}

TEST_F(CpuBackend, ElementwiseBinaryOpsAndComparisons) {
  std::string text = "tessera-schedule v1\nsymbols M N\n";
  for (const char *op : {"add", "sub", "mul", "div", "max", "min", "mod", "pow"}) {
    bool pow = std::string(op) == "pow";
    text += std::string("kernel \"") + op + "\" loop {\n  operand 0 in f32 [s0, s1]\n  operand 1 in f32 [s0, s1]\n"
            "  operand 2 out f32 [s0, s1]\n  parallel [s0, s1]\n  stage map [] {\n    v0: f32 = load 0 [p0, p1]\n"
            "    v1: f32 = load 1 [p0, p1]\n" +
            (pow ? "    v5: f32 = abs v0\n    v2: f32 = " + std::string(op) + " v5 v1\n"
                 : "    v2: f32 = " + std::string(op) + " v0 v1\n") +
            "    store 2 [p0, p1] v2\n  }\n}\n";
  }
  for (const char *op : {"eq", "ne", "lt", "le", "gt", "ge"})
    text += std::string("kernel \"") + op + "\" loop {\n  operand 0 in f32 [s0, s1]\n  operand 1 in f32 [s0, s1]\n"
            "  operand 2 out bool [s0, s1]\n  parallel [s0, s1]\n  stage map [] {\n    v0: f32 = load 0 [p0, p1]\n"
            "    v1: f32 = load 1 [p0, p1]\n    v3: f32 = floor v0\n    v4: f32 = floor v1\n    v2: bool = " + op +
            " v3 v4\n    store 2 [p0, p1] v2\n  }\n}\n";
  for (const char *op : {"and", "or", "xor"})
    text += std::string("kernel \"") + op + "\" loop {\n  operand 0 in bool [s0, s1]\n  operand 1 in bool [s0, s1]\n"
            "  operand 2 out bool [s0, s1]\n  parallel [s0, s1]\n  stage map [] {\n    v0: bool = load 0 [p0, p1]\n"
            "    v1: bool = load 1 [p0, p1]\n    v2: bool = " + op + " v0 v1\n    v3: bool = not v2\n"
            "    v4: bool = xor v3 v0\n    store 2 [p0, p1] v4\n  }\n}\n";
  text += "kernel \"select\" loop {\n  operand 0 in bool [s0, s1]\n  operand 1 in f32 [s0, s1]\n"
          "  operand 2 out f32 [s0, s1]\n  parallel [s0, s1]\n  stage map [] {\n    v0: bool = load 0 [p0, p1]\n"
          "    v1: f32 = load 1 [p0, p1]\n    v2: f32 = neg v1\n    v3: f32 = select v0 v1 v2\n"
          "    store 2 [p0, p1] v3\n  }\n}\n";
  checkProgram(text, {9, 133});
}

TEST_F(CpuBackend, Broadcasting) {
  const char *text = R"(tessera-schedule v1
symbols M N
kernel "bcast" loop {
  operand 0 in f32 [s0, s1]
  operand 1 in f32 [1, s1]
  operand 2 in f32 [s0]
  operand 3 out f32 [s0, s1]
  parallel [s0, s1]
  stage map [] {
    v0: f32 = load 0 [p0, p1]
    v1: f32 = load 1 [0, p1]
    v2: f32 = load 2 [p0]
    v3: f32 = add v0 v1
    v4: f32 = mul v3 v2
    store 3 [p0, p1] v4
  }
}
)";
  checkProgram(text, {13, 77});
}

TEST_F(CpuBackend, MaskedLoadsPadAndShift) {
  const char *text = R"(tessera-schedule v1
symbols M N
kernel "pad" loop {
  operand 0 in f32 [s0, s1]
  operand 1 out f32 [s0, (s1 + 4)]
  parallel [s0, (s1 + 4)]
  stage map [] {
    v0: f32 = load 0 [p0, (p1 - 2)] if ((p1 >= 2) && (p1 < (s1 + 2))) else -7.5
    v1: f32 = load 0 [(s0 - 1 - p0), min(p1, (s1 - 1))] if (p1 < s1) else 0
    v2: f32 = add v0 v1
    store 1 [p0, p1] v2
  }
}
)";
  checkProgram(text, {6, 37});
  checkProgram(text, {1, 1});
}

TEST_F(CpuBackend, ReductionsOfEachKind) {
  std::string text = "tessera-schedule v1\nsymbols M N\n";
  for (const char *kind : {"sum", "max", "min", "prod", "argmax", "argmin"}) {
    bool arg = std::string(kind).rfind("arg", 0) == 0;
    bool prod = std::string(kind) == "prod";
    text += std::string("kernel \"") + kind + "\" loop {\n  operand 0 in f32 [s0, s1]\n  operand 1 out " +
            (arg ? "i64" : "f32") + " [s0]\n  parallel [s0]\n  stage reduce [s1] {\n    v0: f32 = load 0 [p0, r0]\n" +
            (prod ? "    v5: f32 = const 0.02\n    v6: f32 = mul v0 v5\n    v7: f32 = exp v6\n    v1: f32 = reduce prod v7\n"
                  : std::string("    v1: ") + (arg ? "i64" : "f32") + " = reduce " + kind + " v0\n") +
            "  }\n  stage map [] {\n    store 1 [p0] v1\n  }\n}\n";
  }
  // Integer sum and max over two inner loops.
  text += R"(kernel "isum" loop {
  operand 0 in i32 [s0, 3, s1]
  operand 1 out i32 [s0]
  operand 2 out i32 [s0]
  parallel [s0]
  stage reduce [3, s1] {
    v0: i32 = load 0 [p0, r0, r1]
    v1: i32 = reduce sum v0
    v2: i32 = reduce max v0
  }
  stage map [] {
    store 1 [p0] v1
    store 2 [p0] v2
  }
}
)";
  checkProgram(text, {11, 1000}, 1e-4, 1e-4);
  checkProgram(text, {3, 7});
}

TEST_F(CpuBackend, RankZeroParallelFullReduction) {
  const char *text = R"(tessera-schedule v1
symbols N
kernel "total" loop {
  operand 0 in f32 [s0, 7]
  operand 1 out f32 []
  operand 2 out i64 []
  parallel []
  stage reduce [s0, 7] {
    v0: f32 = load 0 [r0, r1]
    v1: f32 = reduce sum v0
    v2: i64 = reduce argmin v0
  }
  stage map [] {
    store 1 [] v1
    store 2 [] v2
  }
}
)";
  checkProgram(text, {1001}, 1e-4, 1e-4);
}

TEST_F(CpuBackend, SoftmaxAndLayerNorm) {
  const std::string text = R"(tessera-schedule v1
symbols B S
)" + tessera::testing::softmaxKernel("f32") + tessera::testing::layerNormKernel("layernorm", "f32");
  checkProgram(text, {33, 515});
  checkProgram(text, {2, 3});
}

TEST_F(CpuBackend, GatherWithValueIndex) {
  const char *text = R"(tessera-schedule v1
symbols N V D
kernel "embedding" loop {
  operand 0 in f32 [s1, s2]
  operand 1 in i64 [s0]
  operand 2 out f32 [s0, s2]
  parallel [s0, s2]
  stage map [] {
    v0: i64 = load 1 [p0]
    v1: f32 = load 0 [v0, p1]
    store 2 [p0, p1] v1
  }
}
)";
  checkProgram(text, {50, 17, 40}, 1e-6, 0, 0, 3, [](size_t, std::vector<Tensor> &ops) {
    for (size_t i = 0; i < ops[1].count(); ++i)
      ops[1].set(i, double((i * 7) % 17));
  });
}

std::string matmulText(const char *kind, bool transposeB, bool batched) {
  std::string b = transposeB ? "[s2, s1]" : "[s1, s2]";
  std::string bidx = transposeB ? "[p1, r0]" : "[r0, p1]";
  std::string a = "[s0, s1]", aidx = "[p0, r0]", out = "[s0, s2]", par = "[s0, s2]", oidx = "[p0, p1]";
  std::string bias = "[p1]", res = "[p0, p1]";
  if (batched) {
    a = "[s3, s0, s1]";
    aidx = "[p0, p1, r0]";
    bidx = transposeB ? "[p2, r0]" : "[r0, p2]";
    out = "[s3, s0, s2]";
    par = "[s3, s0, s2]";
    oidx = "[p0, p1, p2]";
    bias = "[p2]";
    res = oidx;
  }
  return std::string("kernel \"mm\" ") + kind + " {\n  operand 0 in f32 " + a + "\n  operand 1 in f32 " + b +
         "\n  operand 2 in f32 [s2]\n  operand 3 in f32 " + out + "\n  operand 4 out f32 " + out + "\n  parallel " +
         par + "\n  stage reduce [s1] {\n    v0: f32 = load 0 " + aidx + "\n    v1: f32 = load 1 " + bidx +
         "\n    v2: f32 = mul v0 v1\n    v3: f32 = reduce sum v2\n  }\n  stage map [] {\n    v4: f32 = load 2 " +
         bias + "\n    v5: f32 = add v3 v4\n    v6: f32 = gelu_erf v5\n    v7: f32 = load 3 " + res +
         "\n    v8: f32 = add v6 v7\n    store 4 " + oidx + " v8\n  }\n}\n";
}

TEST_F(CpuBackend, MatmulKindWithEpilogue) {
  for (bool t : {false, true}) {
    std::string text = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("matmul", t, false);
    checkProgram(text, {37, 29, 53, 1}, 1e-4, 1e-4);
    checkProgram(text, {200, 300, 530, 1}, 1e-4, 1e-4, 2);
    checkProgram(text, {1, 1, 1, 1}, 1e-4, 1e-4);
    checkProgram(text, {5, 0, 7, 1}, 1e-4, 1e-4); // empty contraction: the epilogue sees 0
  }
  std::string batched = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("matmul", false, true);
  checkProgram(batched, {19, 40, 33, 3}, 1e-4, 1e-4);
}

TEST_F(CpuBackend, MatmulKindBf16AndF16Operands) {
  for (const char *dt : {"bf16", "f16"}) {
    std::string text = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("matmul", false, false);
    // A and B in the narrow type, accumulation in f32, output narrow too.
    for (const char *op : {"operand 0 in f32", "operand 1 in f32", "operand 4 out f32"}) {
      std::string repl = std::string(op).replace(std::string(op).find("f32"), 3, dt);
      text.replace(text.find(op), std::strlen(op), repl);
    }
    for (const char *v : {"v0: f32", "v1: f32"})
      text.replace(text.find(v), std::strlen(v), std::string(v).replace(4, 3, dt));
    checkProgram(text, {45, 70, 90, 1}, 1e-2, 1e-2);
  }
}

TEST_F(CpuBackend, GenericReduceLoopMatmul) {
  std::string text = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("loop", false, false);
  checkProgram(text, {37, 29, 53, 1}, 1e-4, 1e-4);
  std::string det = text;
  det.replace(det.find("  stage reduce"), 0, "  knobs deterministic=1 tile=[4, 16]\n");
  checkProgram(det, {37, 29, 53, 1}, 1e-4, 1e-4);
}

TEST_F(CpuBackend, ConvStyleReduceWithMasks) {
  const char *text = R"(tessera-schedule v1
symbols N C L
kernel "conv1d" loop {
  operand 0 in f32 [s0, s1, s2]
  operand 1 in f32 [4, s1, 3]
  operand 2 out f32 [s0, 4, s2]
  parallel [s0, 4, s2]
  stage reduce [s1, 3] {
    v0: f32 = load 0 [p0, r0, ((p2 + r1) - 1)] if ((((p2 + r1) - 1) >= 0) && (((p2 + r1) - 1) < s2)) else 0
    v1: f32 = load 1 [p1, r0, r1]
    v2: f32 = mul v0 v1
    v3: f32 = reduce sum v2
  }
  stage map [] {
    v4: f32 = relu v3
    store 2 [p0, p1, p2] v4
  }
}
)";
  checkProgram(text, {2, 5, 31}, 1e-4, 1e-4);
}

TEST_F(CpuBackend, NarrowFloatStoresRoundExactly) {
  const char *text = R"(tessera-schedule v1
symbols N
kernel "narrow" loop {
  operand 0 in f32 [s0]
  operand 1 out bf16 [s0]
  operand 2 out f16 [s0]
  operand 3 out f8e4m3 [s0]
  operand 4 out f8e5m2 [s0]
  operand 5 out f32 [s0]
  operand 6 out f32 [s0]
  parallel [s0]
  stage map [] {
    v0: f32 = load 0 [p0]
    store 1 [p0] v0
    store 2 [p0] v0
    store 3 [p0] v0
    store 4 [p0] v0
    v1: f8e4m3 = cast v0 saturate
    v2: f32 = cast v1
    store 5 [p0] v2
    v3: bf16 = cast v0
    v4: f32 = cast v3
    store 6 [p0] v4
  }
}
)";
  Compiled c = compile(text);
  ASSERT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
  std::mt19937 rng(5);
  std::vector<float> xs = {0.0f, -0.0f, 1.0f, 1.5f, 448.0f, 464.0f, 465.0f, 500.0f, -1000.0f, 57344.0f, 61440.0f,
                           1e6f, 0.001953125f, 0.0009765625f, 1e-6f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256,
                           65519.0f, 65520.0f, 3.0e-8f, INFINITY, -INFINITY, NAN};
  std::uniform_real_distribution<float> u(-600.0f, 600.0f);
  std::uniform_int_distribution<uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 2000; ++i)
    xs.push_back(u(rng));
  for (int i = 0; i < 2000; ++i) { // arbitrary bit patterns: every binade, ties included
    uint32_t b = bits(rng);
    float f;
    std::memcpy(&f, &b, 4);
    xs.push_back(f);
  }
  const int64_t n = int64_t(xs.size());
  std::vector<Tensor> ops = {makeTensor(TESSERA_DTYPE_F32, {n}),    makeTensor(TESSERA_DTYPE_BF16, {n}),
                             makeTensor(TESSERA_DTYPE_F16, {n}),    makeTensor(TESSERA_DTYPE_F8E4M3, {n}),
                             makeTensor(TESSERA_DTYPE_F8E5M2, {n}), makeTensor(TESSERA_DTYPE_F32, {n}),
                             makeTensor(TESSERA_DTYPE_F32, {n})};
  std::memcpy(ops[0].bytes.data(), xs.data(), xs.size() * 4);
  ASSERT_EQ(launch(c.exe, 0, ops, {n}), TESSERA_STATUS_OK);
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 10; ++i) {
    float x = xs[size_t(i)];
    uint16_t b16, h16;
    std::memcpy(&b16, ops[1].bytes.data() + 2 * i, 2);
    std::memcpy(&h16, ops[2].bytes.data() + 2 * i, 2);
    uint8_t e4 = ops[3].bytes[size_t(i)], e5 = ops[4].bytes[size_t(i)];
    bool ok = b16 == bf16Bits(x) && (std::isnan(x) ? (h16 & 0x7C00) == 0x7C00 && (h16 & 0x3FF) : h16 == f16Bits(x)) &&
              e4 == encodeFp8Search(x, true, false) && e5 == encodeFp8Search(x, false, false);
    double sat = ops[5].get(size_t(i)), wantSat = decodeFp8(encodeFp8Search(x, true, true), 3, 7, false);
    ok = ok && ((std::isnan(sat) && std::isnan(wantSat)) || sat == wantSat);
    double viaBf16 = ops[6].get(size_t(i));
    ok = ok && ((std::isnan(viaBf16) && std::isnan(x)) || viaBf16 == fromBf16(bf16Bits(x)));
    if (!ok) {
      ++bad;
      ADD_FAILURE() << "x=" << x << " bf16 " << b16 << "/" << bf16Bits(x) << " f16 " << h16 << "/" << f16Bits(x)
                    << " e4m3 " << int(e4) << "/" << int(encodeFp8Search(x, true, false)) << " e5m2 " << int(e5)
                    << "/" << int(encodeFp8Search(x, false, false)) << " sat " << sat << "/" << wantSat;
    }
  }
  destroy(c.exe);
}

TEST_F(CpuBackend, IntegerOps) {
  const char *text = R"(tessera-schedule v1
symbols N
kernel "ints" loop {
  operand 0 in i32 [s0]
  operand 1 in i32 [s0]
  operand 2 out i32 [s0]
  operand 3 out i32 [s0]
  operand 4 out i64 [s0]
  operand 5 out u8 [s0]
  operand 6 out i8 [s0]
  operand 7 out i32 [s0]
  parallel [s0]
  stage map [] {
    v0: i32 = load 0 [p0]
    v1: i32 = load 1 [p0]
    v2: i32 = div v0 v1
    v3: i32 = mod v0 v1
    store 2 [p0] v2
    store 3 [p0] v3
    v4: i64 = mul v0 v1
    v5: i64 = const 1000000007
    v6: i64 = mul v4 v5
    store 4 [p0] v6
    v7: u8 = cast v4
    store 5 [p0] v7
    v8: i8 = add v0 v1
    v9: i8 = mul v8 v8
    store 6 [p0] v9
    v10: f32 = cast v0
    v11: f32 = const 0.37
    v12: f32 = mul v10 v11
    v13: i32 = cast v12
    v14: i32 = max v13 v1
    v15: i32 = abs v14
    store 7 [p0] v15
  }
}
)";
  checkProgram(text, {1000}, 0, 0, 0, 9, [](size_t, std::vector<Tensor> &ops) {
    for (size_t i = 0; i < ops[0].count(); ++i) {
      ops[0].set(i, double(int64_t(i * 37 % 201) - 100));
      ops[1].set(i, double(int64_t(i * 13 % 19) - 9)); // includes 0: division by zero gives 0
    }
  });
}

TEST_F(CpuBackend, SymbolicExtentsWithDifferentScalars) {
  std::string text = "tessera-schedule v1\nsymbols M N\n" + unaryKernel("gelu_tanh");
  sir::Program prog;
  sir::ParseError perr;
  ASSERT_TRUE(sir::parseProgram(text, &prog, &perr));
  Compiled c = compile(text);
  ASSERT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
  std::mt19937 rng(11);
  for (std::vector<int64_t> s : {std::vector<int64_t>{3, 5}, {17, 33}, {64, 1}, {1, 1000}, {0, 5}}) {
    std::vector<Tensor> ops = {randomTensor(TESSERA_DTYPE_F32, {s[0], s[1]}, rng),
                               makeTensor(TESSERA_DTYPE_F32, {s[0], s[1]})};
    std::vector<Tensor> want = ops;
    interpret(prog, 0, want, s);
    for (uint32_t threads : {1u, 2u, 3u}) {
      std::vector<Tensor> got = ops;
      ASSERT_EQ(launch(c.exe, 0, got, s, threads), TESSERA_STATUS_OK);
      for (size_t i = 0; i < got[1].count(); ++i)
        ASSERT_NEAR(got[1].get(i), want[1].get(i), 1e-5 + 1e-4 * std::fabs(want[1].get(i)));
    }
  }
  destroy(c.exe);
}

TEST_F(CpuBackend, TileKnobAndThreadsGiveTheSameResult) {
  std::string text = "tessera-schedule v1\nsymbols M N\n" + unaryKernel("exp");
  text.replace(text.find("  stage"), 0, "  knobs tile=[3, 7]\n");
  checkProgram(text, {29, 45}, 1e-5, 1e-6, 1);
  checkProgram(text, {29, 45}, 1e-5, 1e-6, 2);
}

// Serialized executables carry machine code (backends/cpu/ObjectCode.h):
// a load computes bit-identical results; damaged, truncated, foreign or
// older bytes answer CORRUPT_DATA or INCOMPATIBLE_VERSION, never a crash.
class CpuSerialize : public CpuBackend {
protected:
  static bool hostHas(const std::string &flag) {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("flags", 0) == 0)
        return (line + " ").find(" " + flag + " ") != std::string::npos;
    return false;
  }
  static std::vector<uint8_t> serialize(tessera_backend_executable_t *exe) {
    void *data = nullptr;
    size_t size = 0;
    EXPECT_EQ(code(api_->executable_serialize(plugin_, exe, &data, &size)), TESSERA_STATUS_OK);
    std::vector<uint8_t> bytes(static_cast<uint8_t *>(data), static_cast<uint8_t *>(data) + size);
    hostDeallocate(nullptr, data);
    return bytes;
  }
  // The serialized bytes of `text`, compiled for the host.
  static std::vector<uint8_t> compiledBytes(const std::string &text) {
    Compiled c = compile(text);
    EXPECT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
    if (!c.exe)
      return {};
    std::vector<uint8_t> bytes = serialize(c.exe);
    destroy(c.exe);
    return bytes;
  }
  static tessera_status_code_t load(const std::vector<uint8_t> &b, tessera_backend_executable_t **out,
                                    std::string *message = nullptr) {
    tessera_backend_load_args_t la{};
    la.struct_size = sizeof(la);
    la.data = b.data();
    la.size = b.size();
    la.device_ordinal = 0;
    *out = nullptr;
    tessera_status_t *s = api_->executable_load(plugin_, &la, out);
    if (s && message)
      *message = s->message;
    return code(s);
  }
  // Decodes with the plugin's own format code, lets `edit` change it, and
  // encodes it again with a valid checksum.
  static std::vector<uint8_t> reencode(const std::vector<uint8_t> &bytes,
                                       const std::function<void(tessera::cpu::SerializedExecutable &)> &edit) {
    tessera::cpu::SerializedExecutable blob;
    tessera::cpu::DecodeError err;
    EXPECT_TRUE(tessera::cpu::decodeExecutable(
        std::string_view(reinterpret_cast<const char *>(bytes.data()), bytes.size()), &blob, &err))
        << err.message;
    edit(blob);
    std::string out = tessera::cpu::encodeExecutable(blob);
    return std::vector<uint8_t>(out.begin(), out.end());
  }
};

TEST_F(CpuSerialize, RoundTripIsBitIdentical) {
  std::string text = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("matmul", false, false) +
                     tessera::testing::softmaxKernel("f32");
  Compiled c = compile(text);
  ASSERT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
  std::vector<uint8_t> bytes = serialize(c.exe);
  tessera_backend_executable_t *loaded = nullptr;
  std::string msg;
  ASSERT_EQ(load(bytes, &loaded, &msg), TESSERA_STATUS_OK) << msg;
  // A loaded executable serializes to the same bytes.
  EXPECT_EQ(serialize(loaded), bytes);
  const std::vector<int64_t> scalars = {67, 45, 83, 1};
  std::mt19937 rng(2);
  std::vector<Tensor> mm = {randomTensor(TESSERA_DTYPE_F32, {67, 45}, rng), randomTensor(TESSERA_DTYPE_F32, {45, 83}, rng),
                            randomTensor(TESSERA_DTYPE_F32, {83}, rng), randomTensor(TESSERA_DTYPE_F32, {67, 83}, rng),
                            makeTensor(TESSERA_DTYPE_F32, {67, 83})};
  std::vector<Tensor> mm2 = mm;
  ASSERT_EQ(launch(c.exe, 0, mm, scalars), TESSERA_STATUS_OK);
  ASSERT_EQ(launch(loaded, 0, mm2, scalars), TESSERA_STATUS_OK);
  EXPECT_EQ(mm[4].bytes, mm2[4].bytes);
  std::vector<Tensor> sm = {randomTensor(TESSERA_DTYPE_F32, {67, 45}, rng), makeTensor(TESSERA_DTYPE_F32, {67, 45})};
  std::vector<Tensor> sm2 = sm;
  ASSERT_EQ(launch(c.exe, 1, sm, scalars), TESSERA_STATUS_OK);
  ASSERT_EQ(launch(loaded, 1, sm2, scalars), TESSERA_STATUS_OK);
  EXPECT_EQ(sm[1].bytes, sm2[1].bytes);
  destroy(loaded);
  destroy(c.exe);
}

TEST_F(CpuSerialize, DamagedTruncatedAndOlderBytesAreRefused) {
  std::vector<uint8_t> bytes = compiledBytes("tessera-schedule v1\nsymbols M N\n" + unaryKernel("sin"));
  ASSERT_FALSE(bytes.empty());
  tessera_backend_executable_t *none = nullptr;
  for (size_t n = 0; n < bytes.size(); n += n < 64 ? 1 : 331) {
    EXPECT_EQ(load(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n), &none), TESSERA_STATUS_CORRUPT_DATA) << n;
    EXPECT_EQ(none, nullptr);
  }
  for (size_t i = 12; i < bytes.size(); i += 257) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x5A;
    EXPECT_EQ(load(bad, &none), TESSERA_STATUS_CORRUPT_DATA) << i;
  }
  EXPECT_EQ(load({}, &none), TESSERA_STATUS_CORRUPT_DATA);
  std::vector<uint8_t> junk(4096, 0xA5);
  EXPECT_EQ(load(junk, &none), TESSERA_STATUS_CORRUPT_DATA);
  std::string msg;
  for (uint8_t version : {2, 99}) { // 2: the Schedule IR-only format before machine code
    std::vector<uint8_t> other = bytes;
    other[8] = version;
    EXPECT_EQ(load(other, &none, &msg), TESSERA_STATUS_INCOMPATIBLE_VERSION);
    EXPECT_NE(msg.find("format version " + std::to_string(version)), std::string::npos) << msg;
  }
  EXPECT_EQ(none, nullptr);
}

TEST_F(CpuSerialize, ForeignOrInconsistentContentsAreRefused) {
  std::vector<uint8_t> bytes = compiledBytes("tessera-schedule v1\nsymbols M N\n" + unaryKernel("exp"));
  ASSERT_FALSE(bytes.empty());
  using Blob = tessera::cpu::SerializedExecutable;
  struct Case {
    const char *what;
    std::function<void(Blob &)> edit;
    tessera_status_code_t want;
    const char *message;
  };
  const Case cases[] = {
      {"other LLVM", [](Blob &b) { b.image.llvmVersion = "18.1.8"; }, TESSERA_STATUS_INCOMPATIBLE_VERSION, "LLVM 18.1.8"},
      {"other triple", [](Blob &b) { b.image.triple = "aarch64-unknown-linux-gnu"; },
       TESSERA_STATUS_INCOMPATIBLE_VERSION, "aarch64"},
      {"other architecture", [](Blob &b) { b.target.architecture = "sm_90"; }, TESSERA_STATUS_INCOMPATIBLE_VERSION,
       "sm_90"},
      {"missing CPU feature", [](Blob &b) { b.target.features += ",+amx-tile,+amx-int8"; },
       TESSERA_STATUS_INCOMPATIBLE_VERSION, "amx"},
      {"bad Schedule IR", [](Blob &b) { b.scheduleText = "garbage"; }, TESSERA_STATUS_CORRUPT_DATA, "Schedule IR"},
      {"kernel table", [](Blob &b) { b.image.kernels.push_back(b.image.kernels[0]); }, TESSERA_STATUS_CORRUPT_DATA,
       "kernel table"},
      {"object bytes", [](Blob &b) { b.image.objects[0] = "not an object file"; }, TESSERA_STATUS_CORRUPT_DATA,
       "machine code"},
      {"object truncated", [](Blob &b) { b.image.objects[0].resize(b.image.objects[0].size() / 3); },
       TESSERA_STATUS_CORRUPT_DATA, "machine code"},
      {"missing symbol", [](Blob &b) { b.image.kernels[0].loop = "tessera_k9"; }, TESSERA_STATUS_CORRUPT_DATA,
       "tessera_k9"},
  };
  for (const Case &k : cases) {
    if (std::string(k.what) == "missing CPU feature" && hostHas("amx_tile"))
      continue;
    tessera_backend_executable_t *none = nullptr;
    std::string msg;
    EXPECT_EQ(load(reencode(bytes, k.edit), &none, &msg), k.want) << k.what << ": " << msg;
    EXPECT_NE(msg.find(k.message), std::string::npos) << k.what << ": " << msg;
    EXPECT_EQ(none, nullptr) << k.what;
  }
  // Unchanged contents re-encoded still load (the cases above fail for
  // their edit, not for re-encoding).
  tessera_backend_executable_t *loaded = nullptr;
  ASSERT_EQ(load(reencode(bytes, [](Blob &) {}), &loaded), TESSERA_STATUS_OK);
  destroy(loaded);
}

TEST_F(CpuBackend, CrossCompileAndDumps) {
  std::string text = "tessera-schedule v1\nsymbols M N\n" + unaryKernel("exp");
  Compiled c = compile(text, "x86-64", "tile,target");
  ASSERT_EQ(c.status, TESSERA_STATUS_OK) << c.error;
  EXPECT_NE(c.dumps["tile"].find("define void @tessera_k0"), std::string::npos);
  EXPECT_NE(c.dumps["target"].find("tessera_k0:"), std::string::npos);
  // Baseline x86-64 code also runs here.
  sir::Program prog;
  sir::ParseError perr;
  ASSERT_TRUE(sir::parseProgram(text, &prog, &perr));
  std::mt19937 rng(4);
  std::vector<Tensor> ops = {randomTensor(TESSERA_DTYPE_F32, {8, 19}, rng), makeTensor(TESSERA_DTYPE_F32, {8, 19})};
  std::vector<Tensor> want = ops;
  interpret(prog, 0, want, {8, 19});
  ASSERT_EQ(launch(c.exe, 0, ops, {8, 19}), TESSERA_STATUS_OK);
  for (size_t i = 0; i < ops[1].count(); ++i)
    ASSERT_NEAR(ops[1].get(i), want[1].get(i), 1e-4 * std::fabs(want[1].get(i)));
  destroy(c.exe);
  Compiled bad = compile(text, "sm_90");
  EXPECT_EQ(bad.status, TESSERA_STATUS_UNSUPPORTED) << bad.error;
}

TEST_F(CpuBackend, BadInputIsReportedNotCrashed) {
  EXPECT_EQ(compile("tessera-schedule v1\nkernel \"x\" loop {").status, TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(compile("garbage").status, TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(compile("tessera-schedule v1\nsymbols N\nkernel \"x\" loop {\n  operand 0 in f32 [s0]\n  parallel [s0]\n"
                    "  stage map [] {\n    v0: f32 = load 3 [p0]\n  }\n}\n")
                .status,
            TESSERA_STATUS_INVALID_ARGUMENT);
  tessera_device_description_t target{sizeof(tessera_device_description_t), nullptr, "cpu", nullptr, nullptr};
  tessera_backend_compile_args_t args{};
  args.struct_size = sizeof(args);
  args.program = "x";
  args.program_size = 1;
  args.program_format = "onnx";
  args.target = &target;
  tessera_backend_executable_t *exe = nullptr;
  EXPECT_EQ(code(api_->compile(plugin_, &args, &exe)), TESSERA_STATUS_UNSUPPORTED);
  EXPECT_EQ(code(api_->compile(plugin_, nullptr, &exe)), TESSERA_STATUS_INVALID_ARGUMENT);

  std::string text = "tessera-schedule v1\nsymbols M N\n" + unaryKernel("exp");
  Compiled c = compile(text);
  ASSERT_EQ(c.status, TESSERA_STATUS_OK);
  std::vector<Tensor> ops = {makeTensor(TESSERA_DTYPE_F32, {4, 4}), makeTensor(TESSERA_DTYPE_F32, {4, 4})};
  std::string msg;
  EXPECT_EQ(launch(c.exe, 0, ops, {4, 5}, 0, &msg), TESSERA_STATUS_INVALID_ARGUMENT) << "buffer too small";
  EXPECT_EQ(launch(c.exe, 1, ops, {4, 4}), TESSERA_STATUS_INVALID_ARGUMENT) << "kernel index";
  EXPECT_EQ(launch(c.exe, 0, ops, {4}), TESSERA_STATUS_INVALID_ARGUMENT) << "scalars";
  std::vector<Tensor> one = {makeTensor(TESSERA_DTYPE_F32, {4, 4})};
  EXPECT_EQ(launch(c.exe, 0, one, {4, 4}), TESSERA_STATUS_INVALID_ARGUMENT) << "buffer count";
  EXPECT_EQ(code(api_->launch(plugin_, nullptr)), TESSERA_STATUS_INVALID_ARGUMENT);
  destroy(c.exe);
}

TEST_F(CpuBackend, CostModelRooflineAndInfeasibleKnobs) {
  const tessera_backend_cost_model_extension_t *cm = nullptr;
  for (const tessera_backend_extension_t *e = api_->extensions; e; e = e->next)
    if (e->type == TESSERA_BACKEND_EXTENSION_COST_MODEL)
      cm = reinterpret_cast<const tessera_backend_cost_model_extension_t *>(e);
  ASSERT_NE(cm, nullptr);
  auto estimate = [&](const std::string &text, std::vector<int64_t> scalars, tessera_backend_cost_estimate_t *out) {
    tessera_device_description_t target{sizeof(tessera_device_description_t), nullptr, "cpu", nullptr, nullptr};
    tessera_backend_cost_query_t q{};
    q.struct_size = sizeof(q);
    q.program = text.data();
    q.program_size = text.size();
    q.program_format = "tessera-schedule-v1";
    q.target = &target;
    q.scalars = scalars.data();
    q.num_scalars = scalars.size();
    out->struct_size = sizeof(*out);
    return code(cm->estimate(plugin_, &q, out));
  };
  std::string mm = "tessera-schedule v1\nsymbols M K N B\n" + matmulText("matmul", false, false);
  tessera_backend_cost_estimate_t small{}, big{};
  ASSERT_EQ(estimate(mm, {64, 64, 64, 1}, &small), TESSERA_STATUS_OK);
  ASSERT_EQ(estimate(mm, {1024, 1024, 1024, 1}, &big), TESSERA_STATUS_OK);
  EXPECT_TRUE(small.feasible);
  EXPECT_GE(big.flops, 2.0 * 1024 * 1024 * 1024);
  EXPECT_GT(big.seconds, small.seconds * 100);
  EXPECT_GT(big.bytes, 3 * 4.0 * 1024 * 1024);
  std::string wide = mm;
  wide.replace(wide.find("  stage"), 0, "  knobs vector=128\n");
  tessera_backend_cost_estimate_t w{};
  ASSERT_EQ(estimate(wide, {64, 64, 64, 1}, &w), TESSERA_STATUS_OK);
  EXPECT_FALSE(w.feasible);
  ASSERT_NE(w.reason, nullptr);
  std::string tiles = mm;
  tiles.replace(tiles.find("  stage"), 0, "  knobs tile=[8]\n");
  ASSERT_EQ(estimate(tiles, {64, 64, 64, 1}, &w), TESSERA_STATUS_OK);
  EXPECT_FALSE(w.feasible);
  EXPECT_EQ(estimate("junk", {}, &w), TESSERA_STATUS_INVALID_ARGUMENT);
}

} // namespace
