#include "CudaCodegen.h"

#include "FlashAttention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

namespace tessera::cuda {

using namespace tessera::schedule;
using K = IndexExpr::Kind;

const char *launchModeName(LaunchMode mode) {
  switch (mode) {
  case LaunchMode::Flat: return "flat";
  case LaunchMode::Thread: return "thread";
  case LaunchMode::Block: return "block";
  case LaunchMode::Gemm: return "gemm";
  case LaunchMode::GemmAsync: return "gemma";
  case LaunchMode::Wgmma: return "wgmma";
  case LaunchMode::LibEpilogue: return "epi";
  }
  return "?";
}

std::string KernelPlan::function(LaunchMode mode) const { return symbol + "_" + launchModeName(mode); }

bool parseArchitecture(const std::string &arch, int *sm, bool *archSpecific) {
  if (arch.size() < 5 || arch.compare(0, 3, "sm_") != 0)
    return false;
  size_t i = 3;
  int v = 0;
  while (i < arch.size() && std::isdigit(static_cast<unsigned char>(arch[i])) && v < 10000)
    v = v * 10 + (arch[i++] - '0');
  if (i == 3)
    return false;
  bool a = false;
  if (i < arch.size()) {
    if (arch[i] != 'a' || i + 1 != arch.size())
      return false;
    a = true;
  }
  *sm = v;
  *archSpecific = a;
  return true;
}

bool cubinRunsOn(const std::string &cubinArch, const std::string &deviceArch) {
  int c = 0, d = 0;
  bool ca = false, da = false;
  if (!parseArchitecture(cubinArch, &c, &ca) || !parseArchitecture(deviceArch, &d, &da))
    return false;
  if (ca)
    return c == d;
  return c / 10 == d / 10 && d % 10 >= c % 10;
}

namespace {

// ---- dtypes ----------------------------------------------------------------

bool isFloat(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_F64 || d == TESSERA_DTYPE_F32 || d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_BF16 ||
         d == TESSERA_DTYPE_F8E4M3 || d == TESSERA_DTYPE_F8E5M2;
}
bool isNarrowFloat(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_BF16 || d == TESSERA_DTYPE_F8E4M3 || d == TESSERA_DTYPE_F8E5M2;
}

// Register type a value of dtype `d` lives in: narrow floats compute in f32
// and are rounded to their dtype at definition (like the reference).
const char *ctype(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return "double";
  case TESSERA_DTYPE_F32: case TESSERA_DTYPE_F16: case TESSERA_DTYPE_BF16:
  case TESSERA_DTYPE_F8E4M3: case TESSERA_DTYPE_F8E5M2: return "float";
  case TESSERA_DTYPE_I64: return "long long";
  case TESSERA_DTYPE_I32: return "int";
  case TESSERA_DTYPE_I16: return "short";
  case TESSERA_DTYPE_I8: return "signed char";
  case TESSERA_DTYPE_U8: return "unsigned char";
  case TESSERA_DTYPE_BOOL: return "bool";
  default: return "void";
  }
}

// Element type in device memory.
const char *stype(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return "double";
  case TESSERA_DTYPE_F32: return "float";
  case TESSERA_DTYPE_F16: case TESSERA_DTYPE_BF16: return "unsigned short";
  case TESSERA_DTYPE_F8E4M3: case TESSERA_DTYPE_F8E5M2: case TESSERA_DTYPE_U8: case TESSERA_DTYPE_BOOL:
    return "unsigned char";
  case TESSERA_DTYPE_I64: return "long long";
  case TESSERA_DTYPE_I32: return "int";
  case TESSERA_DTYPE_I16: return "short";
  case TESSERA_DTYPE_I8: return "signed char";
  default: return "void";
  }
}

const char *roundFn(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F16: return "tsr_round_f16";
  case TESSERA_DTYPE_BF16: return "tsr_round_bf16";
  case TESSERA_DTYPE_F8E4M3: return "tsr_round_e4m3";
  case TESSERA_DTYPE_F8E5M2: return "tsr_round_e5m2";
  default: return "";
  }
}

// C expression converting `e` (a value of dtype `from`, in its register
// type) to dtype `to` with the reference's semantics: floats round to
// nearest even, float -> int truncates toward zero and wraps (NaN/inf -> 0),
// -> bool is `!= 0`.
std::string convert(const std::string &e, tessera_dtype_t from, tessera_dtype_t to) {
  if (from == to)
    return e;
  if (to == TESSERA_DTYPE_F64)
    return "((double)(" + e + "))";
  if (to == TESSERA_DTYPE_F32)
    return "((float)(" + e + "))";
  if (isNarrowFloat(to))
    return std::string(roundFn(to)) + "((float)(" + e + "))";
  if (to == TESSERA_DTYPE_BOOL)
    return "((" + e + ") != 0)";
  if (isFloat(from))
    return "((" + std::string(ctype(to)) + ")tsr_f2i(" + e + "))";
  return "((" + std::string(ctype(to)) + ")(" + e + "))";
}

std::string decode(tessera_dtype_t d, const std::string &e) {
  switch (d) {
  case TESSERA_DTYPE_F16: return "tsr_h2f(" + e + ")";
  case TESSERA_DTYPE_BF16: return "tsr_bf2f(" + e + ")";
  case TESSERA_DTYPE_F8E4M3: return "tsr_e4m3_to_f(" + e + ")";
  case TESSERA_DTYPE_F8E5M2: return "tsr_e5m2_to_f(" + e + ")";
  case TESSERA_DTYPE_BOOL: return "((" + e + ") != 0)";
  default: return e;
  }
}

// Value `e` of dtype `from` encoded for storage as dtype `to`.
std::string encode(const std::string &e, tessera_dtype_t from, tessera_dtype_t to) {
  switch (to) {
  case TESSERA_DTYPE_F16: return "tsr_f2h((float)(" + e + "))";
  case TESSERA_DTYPE_BF16: return "tsr_f2bf((float)(" + e + "))";
  case TESSERA_DTYPE_F8E4M3: return "tsr_f_to_e4m3((float)(" + e + "))";
  case TESSERA_DTYPE_F8E5M2: return "tsr_f_to_e5m2((float)(" + e + "))";
  case TESSERA_DTYPE_BOOL: return "((unsigned char)((" + e + ") != 0))";
  default: return convert(e, from, to);
  }
}

std::string floatLiteral(double v, bool dbl) {
  if (std::isnan(v))
    return dbl ? "TSR_DNAN" : "TSR_NAN";
  if (std::isinf(v))
    return std::string(v < 0 ? "-" : "") + (dbl ? "TSR_DINF" : "TSR_INF");
  char buf[64];
  // Hex literals are exact; the cast rounds once, like the reference.
  std::snprintf(buf, sizeof(buf), dbl ? "(%a)" : "((float)%a)", v);
  return buf;
}

std::string intLiteral(int64_t v) {
  if (v == INT64_MIN)
    return "(-9223372036854775807LL - 1)";
  return "(" + std::to_string(v) + "LL)";
}

// ---- the prelude --------------------------------------------------------------
//
// NVRTC ships no CUDA headers (CUDA 13.0: "could not open source file
// cuda_fp16.h"), so the generated code carries its own conversions: f16 and
// bf16 through the PTX cvt instructions (PTX ISA, "cvt": .f16 and .bf16
// with .rn, sm_80+), fp8 E4M3FN / E5M2 in software (OCP 8-bit floating point
// spec; nearest even, NaN kept).
const char *kPrelude = R"CUDA(// Generated by Tessera's CUDA backend (Schedule IR -> CUDA C++).
#define TSR_INF __int_as_float(0x7f800000)
#define TSR_NAN __int_as_float(0x7fffffff)
#define TSR_DINF __longlong_as_double(0x7ff0000000000000LL)
#define TSR_DNAN __longlong_as_double(0x7ff8000000000000LL)
typedef unsigned long long tsr_u64;
#define TSR_D __device__ __forceinline__
TSR_D long long tsr_fdiv(long long a, long long b) {
  if (b == 0) return 0;
  long long q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
TSR_D long long tsr_fmod(long long a, long long b) {
  if (b == 0) return 0;
  long long r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
TSR_D long long tsr_imin(long long a, long long b) { return a < b ? a : b; }
TSR_D long long tsr_imax(long long a, long long b) { return a > b ? a : b; }
TSR_D bool tsr_isnan(float x) { return x != x; }
TSR_D bool tsr_isnan(double x) { return x != x; }
TSR_D bool tsr_isnan(long long) { return false; }
TSR_D long long tsr_f2i(float x) { return (x - x == 0.f) ? (long long)x : 0; }
TSR_D long long tsr_f2i(double x) { return (x - x == 0.0) ? (long long)x : 0; }
TSR_D float tsr_fmaxn(float a, float b) { return (a != a || b != b) ? TSR_NAN : (a > b ? a : b); }
TSR_D float tsr_fminn(float a, float b) { return (a != a || b != b) ? TSR_NAN : (a < b ? a : b); }
TSR_D double tsr_fmaxn(double a, double b) { return (a != a || b != b) ? TSR_DNAN : (a > b ? a : b); }
TSR_D double tsr_fminn(double a, double b) { return (a != a || b != b) ? TSR_DNAN : (a < b ? a : b); }
TSR_D float tsr_fmodfl(float a, float b) { float r = fmodf(a, b); return (r != 0.f && ((r < 0.f) != (b < 0.f))) ? r + b : r; }
TSR_D double tsr_fmodfl(double a, double b) { double r = fmod(a, b); return (r != 0.0 && ((r < 0.0) != (b < 0.0))) ? r + b : r; }
template <class T> TSR_D T tsr_sign(T x) { return x > T(0) ? T(1) : x < T(0) ? T(-1) : x; }
TSR_D float tsr_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
TSR_D unsigned short tsr_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
TSR_D float tsr_bf2f(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
TSR_D unsigned short tsr_f2bf(float f) { unsigned short b; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f)); return b; }
TSR_D unsigned tsr_pack_bf16(float lo, float hi) { return (unsigned)tsr_f2bf(lo) | ((unsigned)tsr_f2bf(hi) << 16); }
TSR_D unsigned tsr_pack_f16(float lo, float hi) { return (unsigned)tsr_f2h(lo) | ((unsigned)tsr_f2h(hi) << 16); }
// Two f32 rounded (nearest even) and packed in one instruction (sm_80+); the
// first operand of cvt.rn.{bf16,f16}x2.f32 goes to the upper half.
TSR_D unsigned tsr_pack2_bf16(float lo, float hi) { unsigned r; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r; }
TSR_D unsigned tsr_pack2_f16(float lo, float hi) { unsigned r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r; }
// e^x as 2^(x log2 e) on the special-function unit (ex2.approx: about 2 ulp,
// plus |x| * 2^-24 relative from the product): used only where every output
// is a bf16/f16/fp8 store (Emitter::approxMath), 2 instructions instead of ~8.
// NaN-propagating max/min in one instruction (PTX max.NaN / min.NaN, sm_80+):
// reductions of f32 max/min (a NaN anywhere gives NaN, as the reference).
TSR_D float tsr_fmax_nan(float a, float b) { float r; asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
TSR_D float tsr_fmin_nan(float a, float b) { float r; asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r; }
// One 16-byte store, spelled in PTX: NVVM split some uint4 stores of values
// from inline asm into four 4-byte stores.
TSR_D void tsr_st16(void *p, unsigned a, unsigned b, unsigned c, unsigned d) {
  asm volatile("{ .reg .u64 g; cvta.to.global.u64 g, %0; st.global.v4.u32 [g], {%1, %2, %3, %4}; }"
               :: "l"(p), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}
TSR_D float tsr_exp_approx(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.4426950408889634f)); return y; }
__device__ float tsr_fp8_to_f(unsigned v, int E, int M, bool fn) {
  unsigned sign = v >> 7 & 1u, ex = v >> M & ((1u << E) - 1), man = v & ((1u << M) - 1);
  int bias = (1 << (E - 1)) - 1;
  float s = sign ? -1.f : 1.f;
  if (ex == (1u << E) - 1) {
    if (fn) { if (man == (1u << M) - 1) return TSR_NAN; }
    else return man ? TSR_NAN : s * TSR_INF;
  }
  if (ex == 0) return s * ldexpf((float)man, 1 - bias - M);
  return s * ldexpf((float)(man | (1u << M)), (int)ex - bias - M);
}
// Nearest even; beyond the largest finite value (after rounding) the result
// overflows like IEEE: inf for E5M2, NaN for E4M3FN (OCP OFP8 v1.0, section
// 5); casts with `saturate` clamp first (tsr_sat).
__device__ unsigned char tsr_f_to_fp8(float x, int E, int M, bool fn) {
  if (x != x) return fn ? 0x7f : 0x7e;
  unsigned sign = (__float_as_uint(x) >> 24) & 0x80u;
  float a = fabsf(x);
  int bias = (1 << (E - 1)) - 1;
  float maxf = fn ? 448.f : 57344.f;
  unsigned over = fn ? 0x7fu : 0x7cu;
  if (a == TSR_INF) return (unsigned char)(sign | over);
  int e;
  frexpf(a, &e);
  int ex = e - 1 < 1 - bias ? 1 - bias : e - 1;
  float q = ldexpf(1.f, ex - M);
  float r = rintf(a / q) * q;
  if (r > maxf) return (unsigned char)(sign | over);
  if (r == 0.f) return (unsigned char)sign;
  frexpf(r, &e);
  ex = e - 1;
  if (ex < 1 - bias) return (unsigned char)(sign | (unsigned)(r / ldexpf(1.f, 1 - bias - M)));
  unsigned man = (unsigned)(r / ldexpf(1.f, ex - M)) - (1u << M);
  return (unsigned char)(sign | ((unsigned)(ex + bias) << M) | man);
}
TSR_D float tsr_e4m3_to_f(unsigned char v) { return tsr_fp8_to_f(v, 4, 3, true); }
TSR_D float tsr_e5m2_to_f(unsigned char v) { return tsr_fp8_to_f(v, 5, 2, false); }
TSR_D unsigned char tsr_f_to_e4m3(float x) { return tsr_f_to_fp8(x, 4, 3, true); }
TSR_D unsigned char tsr_f_to_e5m2(float x) { return tsr_f_to_fp8(x, 5, 2, false); }
TSR_D float tsr_round_f16(float x) { return tsr_h2f(tsr_f2h(x)); }
TSR_D float tsr_round_bf16(float x) { return tsr_bf2f(tsr_f2bf(x)); }
TSR_D float tsr_round_e4m3(float x) { return tsr_e4m3_to_f(tsr_f_to_e4m3(x)); }
TSR_D float tsr_round_e5m2(float x) { return tsr_e5m2_to_f(tsr_f_to_e5m2(x)); }
TSR_D float tsr_sat(float x, float m) { return x != x ? x : fminf(fmaxf(x, -m), m); }
)CUDA";

// ---- index expressions --------------------------------------------------------

bool mentions(const IndexExpr &e, K kind, int64_t which = -1) {
  if (e.kind == kind && (which < 0 || e.value == which))
    return true;
  for (const IndexExpr &a : e.args)
    if (mentions(a, kind, which))
      return true;
  return false;
}

// Variable naming: symbols s<i>, parallel loops p<i>, inner loops r<i>,
// values v<i>. Values are converted to int64 like the reference
// (static_cast<int64_t> of the value).
std::string emitIndex(const IndexExpr &e, const std::map<int64_t, tessera_dtype_t> &types) {
  switch (e.kind) {
  case K::Const: return intLiteral(e.value);
  case K::Symbol: return "s" + std::to_string(e.value);
  case K::Parallel: return "p" + std::to_string(e.value);
  case K::Inner: return "r" + std::to_string(e.value);
  case K::Value: {
    auto it = types.find(e.value);
    tessera_dtype_t t = it == types.end() ? TESSERA_DTYPE_I64 : it->second;
    std::string v = "v" + std::to_string(e.value);
    return isFloat(t) ? "((long long)(" + v + "))" : "((long long)" + v + ")";
  }
  default: break;
  }
  std::string a = emitIndex(e.args[0], types), b = emitIndex(e.args[1], types);
  switch (e.kind) {
  case K::Add: return "(" + a + " + " + b + ")";
  case K::Sub: return "(" + a + " - " + b + ")";
  case K::Mul: return "(" + a + " * " + b + ")";
  case K::FloorDiv: return "tsr_fdiv(" + a + ", " + b + ")";
  case K::Mod: return "tsr_fmod(" + a + ", " + b + ")";
  case K::Min: return "tsr_imin(" + a + ", " + b + ")";
  case K::Max: return "tsr_imax(" + a + ", " + b + ")";
  case K::Lt: return "((long long)(" + a + " < " + b + "))";
  case K::Le: return "((long long)(" + a + " <= " + b + "))";
  case K::Eq: return "((long long)(" + a + " == " + b + "))";
  case K::Ne: return "((long long)(" + a + " != " + b + "))";
  case K::And: return "((long long)((" + a + " != 0) && (" + b + " != 0)))";
  default: return "0LL";
  }
}

// ---- 16-byte vector access analysis ---------------------------------------------

// True when `in` walks loop (kind, which) with unit stride: its innermost
// index is exactly that loop variable, no other dimension mentions it, an
// inner loop or a value, it has no mask, and its elements are 1, 2 or 4
// bytes, so 8 consecutive iterations are one 8-, 16- or 32-byte access.
bool unitStrideAlong(const Kernel &k, const Instr &in, K kind, int64_t which) {
  if (in.index.empty() || in.mask)
    return false;
  size_t sz = dtypeSize(k.operands[in.operand].dtype);
  if (sz != 1 && sz != 2 && sz != 4)
    return false;
  const IndexExpr &last = in.index.back();
  if (!(last.kind == kind && last.value == which))
    return false;
  for (size_t d = 0; d + 1 < in.index.size(); ++d)
    if (mentions(in.index[d], kind, which) || mentions(in.index[d], K::Inner) || mentions(in.index[d], K::Value))
      return false;
  return true;
}

// A load or store is in vector form when its innermost index is exactly r0
// (unit stride along the stage's only inner loop) and no other dimension
// mentions r0 or a value, so 8 consecutive r0 are 8 consecutive elements at
// a base that depends only on parallel loops and symbols. Elements of 1, 2
// or 4 bytes (8 of them: 8, 16 or 32 bytes per access).
bool vecForm(const Kernel &k, const Instr &in) { return unitStrideAlong(k, in, K::Inner, 0); }

// Every stage has exactly one inner loop (the same extent when several
// stages), every access touching r0 is in vector form, every store is.
bool vectorizable(const Kernel &k) {
  if (k.stages.empty())
    return false;
  for (const Stage &s : k.stages) {
    if (s.inner.size() != 1 || !(s.inner[0] == k.stages[0].inner[0]) || mentions(s.inner[0], K::Parallel))
      return false;
    for (const Instr &in : s.body) {
      bool memory = in.isStore || (in.op == Op::Load);
      if (!memory)
        continue;
      bool touches = false;
      for (const IndexExpr &e : in.index)
        touches |= mentions(e, K::Inner);
      if (in.mask && mentions(*in.mask, K::Inner))
        touches = true;
      if ((in.isStore || touches) && !vecForm(k, in))
        return false;
    }
    // The vector path loads a chunk before any of its stores: no stage may
    // read an operand after storing to it.
    std::set<int64_t> stored;
    for (const Instr &in : s.body) {
      if (in.isStore)
        stored.insert(in.operand);
      else if (in.op == Op::Load && stored.count(in.operand))
        return false;
    }
  }
  return true;
}

bool touchesInner(const Instr &in) {
  for (const IndexExpr &e : in.index)
    if (mentions(e, K::Inner))
      return true;
  return false;
}

// ---- kernel emission ----------------------------------------------------------

struct Emitter {
  const Program &program;
  const Kernel &kernel;
  size_t kernelIndex;
  const CodegenOptions &options;
  std::map<int64_t, tessera_dtype_t> types; // every value's dtype
  std::ostringstream out;
  std::string error;
  // Vector paths: loads replaced by an element of words already loaded (the
  // raw stored value), stores redirected to a per-element variable.
  std::map<const Instr *, std::string> loadOverride;
  std::map<const Instr *, std::string> storeSink;
  // Stores whose sink holds the f32 value (packed two at a time with
  // cvt.rn.bf16x2/f16x2 by emitVecStore) instead of the encoded element.
  std::set<const Instr *> sinkF32;
  // Row kernels with the row in registers (planRowValues, emitStagesVec):
  int rowChunks = kRowVecChunks;
  std::set<const Instr *> hoisted;            // uniform across the row: emitted once per stage
  std::map<const Instr *, std::string> rcpOf; // f32 division by a uniform value: times its reciprocal
  // Per-element values a later stage recomputes (exp(x - max) in softmax,
  // x - mean in layer_norm): kept in registers tsr_sh<id>_<chunk>_<element>.
  std::map<const Instr *, int> shareProduce, shareConsume;
  std::vector<tessera_dtype_t> shareType;
  std::string shareSuffix; // "_<chunk>_<element>" while a chunk's element is emitted
  bool approxMath = false; // tsr_exp_approx for f32 exp (every store a narrow float)

  Emitter(const Program &p, size_t k, const CodegenOptions &o)
      : program(p), kernel(p.kernels[k]), kernelIndex(k), options(o) {
    for (const Stage &s : kernel.stages)
      for (const Instr &in : s.body)
        if (!in.isStore)
          types[in.result] = in.dtype;
  }

  std::string idx(const IndexExpr &e) const { return emitIndex(e, types); }

  std::string offset(int64_t operand, const std::vector<IndexExpr> &index) const {
    std::string off;
    for (size_t d = 0; d < index.size(); ++d) {
      std::string i = idx(index[d]);
      if (d == 0)
        off = i;
      else
        off = "(" + off + " * d" + std::to_string(operand) + "_" + std::to_string(d) + " + " + i + ")";
    }
    return off.empty() ? "0LL" : off;
  }

  tessera_dtype_t typeOf(int64_t v) const {
    auto it = types.find(v);
    return it == types.end() ? TESSERA_DTYPE_F32 : it->second;
  }
  std::string val(int64_t v) const { return "v" + std::to_string(v); }

  // Compute dtype of a float operation over arguments of the given dtypes.
  static tessera_dtype_t floatCompute(tessera_dtype_t a, tessera_dtype_t b = TESSERA_DTYPE_F32) {
    return (a == TESSERA_DTYPE_F64 || b == TESSERA_DTYPE_F64) ? TESSERA_DTYPE_F64 : TESSERA_DTYPE_F32;
  }

  std::string unary(const Instr &in) {
    tessera_dtype_t at = typeOf(in.args[0]);
    std::string a = val(in.args[0]);
    if (isFloat(in.dtype) || isFloat(at) || in.op == Op::Not) {
      if (in.op == Op::Not)
        return convert("(" + a + " == 0)", TESSERA_DTYPE_BOOL, in.dtype);
      tessera_dtype_t ct = floatCompute(isFloat(in.dtype) ? in.dtype : at, at);
      bool d = ct == TESSERA_DTYPE_F64;
      std::string x = convert(a, at, ct);
      auto f = [&](const char *name) { return std::string(name) + (d ? "" : "f") + "(" + x + ")"; };
      std::string one = d ? "1.0" : "1.f", zero = d ? "0.0" : "0.f", half = d ? "0.5" : "0.5f";
      std::string r;
      switch (in.op) {
      case Op::Neg: r = "(-" + x + ")"; break;
      case Op::Abs: r = f("fabs"); break;
      case Op::Exp: r = approxMath && !d ? "tsr_exp_approx(" + x + ")" : f("exp"); break;
      case Op::Log: r = f("log"); break;
      case Op::Sqrt: r = f("sqrt"); break;
      case Op::Rsqrt: r = "(" + one + " / " + f("sqrt") + ")"; break;
      case Op::Tanh: r = f("tanh"); break;
      case Op::Sigmoid: r = "(" + one + " / (" + one + " + " + (d ? "exp(-" : "expf(-") + x + ")))"; break;
      case Op::Relu: r = "(" + x + " > " + zero + " ? " + x + " : " + zero + ")"; break;
      case Op::GeluErf:
        r = "(" + half + " * " + x + " * (" + one + " + " + (d ? "erf(" : "erff(") + x + " * " +
            (d ? "0.70710678118654752440" : "0.70710678118654752440f") + ")))";
        break;
      case Op::GeluTanh:
        r = "(" + half + " * " + x + " * (" + one + " + " + (d ? "tanh(" : "tanhf(") +
            (d ? "0.79788456080286535588" : "0.79788456080286535588f") + " * (" + x + " + " +
            (d ? "0.044715" : "0.044715f") + " * " + x + " * " + x + " * " + x + "))))";
        break;
      case Op::Silu: r = "(" + x + " / (" + one + " + " + (d ? "exp(-" : "expf(-") + x + ")))"; break;
      case Op::Erf: r = f("erf"); break;
      case Op::Sin: r = f("sin"); break;
      case Op::Cos: r = f("cos"); break;
      case Op::Floor: r = f("floor"); break;
      case Op::Ceil: r = f("ceil"); break;
      case Op::Sign: r = "tsr_sign(" + x + ")"; break;
      case Op::Reciprocal: r = "(" + one + " / " + x + ")"; break;
      default: error = std::string("unsupported unary op ") + opName(in.op); return "0";
      }
      return convert(r, ct, in.dtype);
    }
    // Integer and bool arguments: wrap like two's complement.
    std::string x = "((long long)" + a + ")";
    std::string r;
    switch (in.op) {
    case Op::Neg: r = "((long long)(0ULL - (tsr_u64)" + x + "))"; break;
    case Op::Abs: r = "(" + x + " < 0 ? (long long)(0ULL - (tsr_u64)" + x + ") : " + x + ")"; break;
    case Op::Sign: r = "((long long)(" + x + " > 0) - (long long)(" + x + " < 0))"; break;
    case Op::Relu: r = "(" + x + " > 0 ? " + x + " : 0LL)"; break;
    case Op::Floor: case Op::Ceil: r = x; break;
    default: {
      // Transcendentals of integers: through f64, truncated like the reference.
      std::string xd = "((double)" + a + ")", viaDouble;
      {
        tessera_dtype_t ct = TESSERA_DTYPE_F64;
        switch (in.op) {
        case Op::Exp: viaDouble = "exp(" + xd + ")"; break;
        case Op::Log: viaDouble = "log(" + xd + ")"; break;
        case Op::Sqrt: viaDouble = "sqrt(" + xd + ")"; break;
        case Op::Rsqrt: viaDouble = "(1.0 / sqrt(" + xd + "))"; break;
        case Op::Tanh: viaDouble = "tanh(" + xd + ")"; break;
        case Op::Sigmoid: viaDouble = "(1.0 / (1.0 + exp(-" + xd + ")))"; break;
        case Op::Silu: viaDouble = "(" + xd + " / (1.0 + exp(-" + xd + ")))"; break;
        case Op::GeluErf: viaDouble = "(0.5 * " + xd + " * (1.0 + erf(" + xd + " * 0.70710678118654752440)))"; break;
        case Op::GeluTanh:
          viaDouble = "(0.5 * " + xd + " * (1.0 + tanh(0.79788456080286535588 * (" + xd + " + 0.044715 * " + xd +
                      " * " + xd + " * " + xd + "))))";
          break;
        case Op::Erf: viaDouble = "erf(" + xd + ")"; break;
        case Op::Sin: viaDouble = "sin(" + xd + ")"; break;
        case Op::Cos: viaDouble = "cos(" + xd + ")"; break;
        case Op::Reciprocal: viaDouble = "(1.0 / " + xd + ")"; break;
        default: error = std::string("unsupported unary op ") + opName(in.op); return "0";
        }
        return convert(viaDouble, ct, in.dtype);
      }
    }
    }
    return convert(r, TESSERA_DTYPE_I64, in.dtype);
  }

  std::string binary(const Instr &in) {
    tessera_dtype_t ta = typeOf(in.args[0]), tb = typeOf(in.args[1]);
    std::string a = val(in.args[0]), b = val(in.args[1]);
    auto cmp = [&](const char *op, const std::string &x, const std::string &y) {
      return convert("(" + x + " " + op + " " + y + ")", TESSERA_DTYPE_BOOL, in.dtype);
    };
    if (isFloat(ta) || isFloat(tb)) {
      tessera_dtype_t ct = floatCompute(isFloat(ta) ? ta : TESSERA_DTYPE_F32, isFloat(tb) ? tb : TESSERA_DTYPE_F32);
      bool d = ct == TESSERA_DTYPE_F64;
      std::string x = convert(a, ta, ct), y = convert(b, tb, ct), r;
      if (auto it = rcpOf.find(&in); it != rcpOf.end() && in.op == Op::Div)
        return convert("(" + x + " * " + it->second + ")", ct, in.dtype);
      switch (in.op) {
      case Op::Add: r = "(" + x + " + " + y + ")"; break;
      case Op::Sub: r = "(" + x + " - " + y + ")"; break;
      case Op::Mul: r = "(" + x + " * " + y + ")"; break;
      case Op::Div: r = "(" + x + " / " + y + ")"; break;
      case Op::Pow: r = std::string(d ? "pow(" : "powf(") + x + ", " + y + ")"; break;
      case Op::Max: r = "tsr_fmaxn(" + x + ", " + y + ")"; break;
      case Op::Min: r = "tsr_fminn(" + x + ", " + y + ")"; break;
      case Op::Mod: r = "tsr_fmodfl(" + x + ", " + y + ")"; break;
      case Op::Eq: return cmp("==", x, y);
      case Op::Ne: return cmp("!=", x, y);
      case Op::Lt: return cmp("<", x, y);
      case Op::Le: return cmp("<=", x, y);
      case Op::Gt: return cmp(">", x, y);
      case Op::Ge: return cmp(">=", x, y);
      case Op::And: case Op::Or: case Op::Xor: {
        const char *op = in.op == Op::And ? "&" : in.op == Op::Or ? "|" : "^";
        return convert("(tsr_f2i(" + x + ") " + op + " tsr_f2i(" + y + "))", TESSERA_DTYPE_I64, in.dtype);
      }
      default: error = std::string("unsupported binary op ") + opName(in.op); return "0";
      }
      return convert(r, ct, in.dtype);
    }
    std::string x = "((long long)" + a + ")", y = "((long long)" + b + ")", r;
    bool boolArgs = ta == TESSERA_DTYPE_BOOL;
    switch (in.op) {
    case Op::Add: r = "((long long)((tsr_u64)" + x + " + (tsr_u64)" + y + "))"; break;
    case Op::Sub: r = "((long long)((tsr_u64)" + x + " - (tsr_u64)" + y + "))"; break;
    case Op::Mul: r = "((long long)((tsr_u64)" + x + " * (tsr_u64)" + y + "))"; break;
    case Op::Div: r = "tsr_fdiv(" + x + ", " + y + ")"; break;
    case Op::Mod: r = "tsr_fmod(" + x + ", " + y + ")"; break;
    case Op::Max: r = "tsr_imax(" + x + ", " + y + ")"; break;
    case Op::Min: r = "tsr_imin(" + x + ", " + y + ")"; break;
    case Op::Pow: return convert("pow((double)" + x + ", (double)" + y + ")", TESSERA_DTYPE_F64, in.dtype);
    case Op::Eq: return cmp("==", x, y);
    case Op::Ne: return cmp("!=", x, y);
    case Op::Lt: return cmp("<", x, y);
    case Op::Le: return cmp("<=", x, y);
    case Op::Gt: return cmp(">", x, y);
    case Op::Ge: return cmp(">=", x, y);
    case Op::And:
      if (boolArgs)
        return cmp("&&", "(" + x + " != 0)", "(" + y + " != 0)");
      r = "(" + x + " & " + y + ")";
      break;
    case Op::Or:
      if (boolArgs)
        return cmp("||", "(" + x + " != 0)", "(" + y + " != 0)");
      r = "(" + x + " | " + y + ")";
      break;
    case Op::Xor:
      if (boolArgs)
        return cmp("!=", "(" + x + " != 0)", "(" + y + " != 0)");
      r = "(" + x + " ^ " + y + ")";
      break;
    default: error = std::string("unsupported binary op ") + opName(in.op); return "0";
    }
    return convert(r, TESSERA_DTYPE_I64, in.dtype);
  }

  std::string loadExpr(const Instr &in) const {
    const Operand &o = kernel.operands[in.operand];
    std::string raw = "b" + std::to_string(in.operand) + "[" + offset(in.operand, in.index) + "]";
    return convert(decode(o.dtype, raw), o.dtype, in.dtype);
  }

  std::string constant(const Instr &in) const {
    if (isFloat(in.dtype)) {
      bool d = in.dtype == TESSERA_DTYPE_F64;
      std::string lit = floatLiteral(in.constant, d);
      return isNarrowFloat(in.dtype) ? std::string(roundFn(in.dtype)) + "(" + lit + ")" : lit;
    }
    if (in.dtype == TESSERA_DTYPE_BOOL)
      return in.constant != 0 ? "true" : "false";
    int64_t v = std::isfinite(in.constant) ? static_cast<int64_t>(in.constant) : 0;
    return "((" + std::string(ctype(in.dtype)) + ")" + intLiteral(v) + ")";
  }

  // One instruction as a statement (not reduce, not store).
  void emitValue(const Instr &in, const std::string &indent) {
    std::string t = ctype(in.dtype), name = val(in.result), e;
    if (!shareSuffix.empty())
      if (auto it = shareConsume.find(&in); it != shareConsume.end()) {
        out << indent << "const " << t << " " << name << " = tsr_sh" << it->second << shareSuffix << ";\n";
        return;
      }
    switch (in.op) {
    case Op::Load:
      if (auto it = loadOverride.find(&in); it != loadOverride.end()) {
        const Operand &o = kernel.operands[in.operand];
        e = convert(decode(o.dtype, it->second), o.dtype, in.dtype);
        break;
      }
      if (in.mask) {
        out << indent << t << " " << name << ";\n";
        out << indent << "if (" << idx(*in.mask) << " != 0) " << name << " = " << loadExpr(in) << ";\n";
        Instr c = in;
        c.constant = in.fallback;
        out << indent << "else " << name << " = " << constant(c) << ";\n";
        return;
      }
      e = loadExpr(in);
      break;
    case Op::Const: e = constant(in); break;
    case Op::Index: e = convert("(" + idx(in.indexValue) + ")", TESSERA_DTYPE_I64, in.dtype); break;
    case Op::Select: {
      tessera_dtype_t tb = typeOf(in.args[1]), tc = typeOf(in.args[2]);
      e = "((" + val(in.args[0]) + " != 0) ? " + convert(val(in.args[1]), tb, in.dtype) + " : " +
          convert(val(in.args[2]), tc, in.dtype) + ")";
      break;
    }
    case Op::Cast: {
      tessera_dtype_t from = typeOf(in.args[0]);
      std::string x = val(in.args[0]);
      if (in.saturate && isNarrowFloat(in.dtype) && isFloat(from)) {
        const char *maxFinite = in.dtype == TESSERA_DTYPE_F16      ? "65504.f"
                                : in.dtype == TESSERA_DTYPE_BF16   ? "3.38953139e38f"
                                : in.dtype == TESSERA_DTYPE_F8E4M3 ? "448.f"
                                                                   : "57344.f";
        x = std::string("tsr_sat((float)(") + x + "), " + maxFinite + ")";
        from = TESSERA_DTYPE_F32;
      }
      e = convert(x, from, in.dtype);
      break;
    }
    default: {
      int arity = opArity(in.op);
      if (arity == 1)
        e = unary(in);
      else if (arity == 2)
        e = binary(in);
      else
        error = std::string("unsupported op ") + opName(in.op);
    }
    }
    out << indent << "const " << t << " " << name << " = " << e << ";\n";
    if (!shareSuffix.empty())
      if (auto it = shareProduce.find(&in); it != shareProduce.end())
        out << indent << "tsr_sh" << it->second << shareSuffix << " = " << name << ";\n";
  }

  void emitStore(const Instr &in, const std::string &indent) {
    const Operand &o = kernel.operands[in.operand];
    if (auto it = storeSink.find(&in); it != storeSink.end()) {
      if (sinkF32.count(&in))
        out << indent << it->second << " = " << val(in.args[0]) << ";\n";
      else
        out << indent << it->second << " = " << encode(val(in.args[0]), typeOf(in.args[0]), o.dtype) << ";\n";
      return;
    }
    out << indent << "b" << in.operand << "[" << offset(in.operand, in.index)
        << "] = " << encode(val(in.args[0]), typeOf(in.args[0]), o.dtype) << ";\n";
  }

  // Reduce accumulators: sum/prod/max/min accumulate in the result's compute
  // type (f32 for narrow floats, int64 for integers); arg reductions compare
  // in the argument's compute type and keep the first extreme's linear index.
  static bool isArg(ReduceKind k) { return k == ReduceKind::Argmax || k == ReduceKind::Argmin; }
  tessera_dtype_t accType(const Instr &in) const {
    tessera_dtype_t base = isArg(in.reduce) ? typeOf(in.args[0]) : in.dtype;
    if (isFloat(base))
      return base == TESSERA_DTYPE_F64 ? TESSERA_DTYPE_F64 : TESSERA_DTYPE_F32;
    return TESSERA_DTYPE_I64;
  }
  std::string accInit(const Instr &in) const {
    tessera_dtype_t at = accType(in);
    bool fl = isFloat(at), d = at == TESSERA_DTYPE_F64;
    switch (in.reduce) {
    case ReduceKind::Sum: return fl ? (d ? "0.0" : "0.f") : "0LL";
    case ReduceKind::Prod: return fl ? (d ? "1.0" : "1.f") : "1LL";
    case ReduceKind::Max: case ReduceKind::Argmax:
      return fl ? (d ? "(-TSR_DINF)" : "(-TSR_INF)") : "(-9223372036854775807LL - 1)";
    case ReduceKind::Min: case ReduceKind::Argmin:
      return fl ? (d ? "TSR_DINF" : "TSR_INF") : "9223372036854775807LL";
    }
    return "0";
  }
  // Statement folding `x` (with linear index `li`) into accumulator a<id>.
  std::string accUpdate(const Instr &in, const std::string &x, const std::string &li) const {
    std::string a = "a" + std::to_string(in.result), ai = "ai" + std::to_string(in.result);
    switch (in.reduce) {
    case ReduceKind::Sum: return a + " += " + x + ";";
    case ReduceKind::Prod: return a + " *= " + x + ";";
    case ReduceKind::Max:
      if (accType(in) == TESSERA_DTYPE_F32 && options.smVersion >= 80)
        return a + " = tsr_fmax_nan(" + a + ", " + x + ");";
      return "if (tsr_isnan(" + x + ") || " + x + " > " + a + ") " + a + " = " + x + ";";
    case ReduceKind::Min:
      if (accType(in) == TESSERA_DTYPE_F32 && options.smVersion >= 80)
        return a + " = tsr_fmin_nan(" + a + ", " + x + ");";
      return "if (tsr_isnan(" + x + ") || " + x + " < " + a + ") " + a + " = " + x + ";";
    case ReduceKind::Argmax: case ReduceKind::Argmin: {
      const char *cmp = in.reduce == ReduceKind::Argmax ? " > " : " < ";
      // The first extreme wins; the first NaN beats any number.
      return "if (" + ai + " < 0 || " + x + cmp + a + " || (tsr_isnan(" + x + ") && !tsr_isnan(" + a + "))) { " + a +
             " = " + x + "; " + ai + " = " + li + "; }";
    }
    }
    return "";
  }
  // Combines a partial (b, bi) into (a, ai) in a block reduction; for arg
  // reductions ties go to the smaller linear index so the result does not
  // depend on the thread count.
  std::string accCombine(const Instr &in, const std::string &a, const std::string &ai, const std::string &b,
                         const std::string &bi) const {
    switch (in.reduce) {
    case ReduceKind::Sum: return a + " += " + b + ";";
    case ReduceKind::Prod: return a + " *= " + b + ";";
    case ReduceKind::Max: return "if (tsr_isnan(" + b + ") || " + b + " > " + a + ") " + a + " = " + b + ";";
    case ReduceKind::Min: return "if (tsr_isnan(" + b + ") || " + b + " < " + a + ") " + a + " = " + b + ";";
    case ReduceKind::Argmax: case ReduceKind::Argmin: {
      const char *cmp = in.reduce == ReduceKind::Argmax ? " > " : " < ";
      std::string better = "(" + b + cmp + a + " || (tsr_isnan(" + b + ") && !tsr_isnan(" + a + ")))";
      std::string same = "(" + b + " == " + a + " || (tsr_isnan(" + b + ") && tsr_isnan(" + a + ")))";
      return "if (" + bi + " >= 0 && (" + ai + " < 0 || " + better + " || (" + same + " && " + bi + " < " + ai +
             "))) { " + a + " = " + b + "; " + ai + " = " + bi + "; }";
    }
    }
    return "";
  }

  // Statement list of one stage body at inner point (r...), linear index `li`.
  void emitBody(const Stage &stage, const std::string &indent, const std::string &li) {
    for (const Instr &in : stage.body) {
      if (in.isStore) {
        emitStore(in, indent);
      } else if (in.op == Op::Reduce) {
        tessera_dtype_t at = accType(in);
        std::string x = convert(val(in.args[0]), typeOf(in.args[0]), at);
        out << indent << "{ const " << ctype(at) << " x = " << x << "; " << accUpdate(in, "x", li) << " }\n";
      } else if (!hoisted.count(&in)) {
        emitValue(in, indent);
      }
    }
  }

  void emitInnerDecompose(const Stage &stage, size_t si, const std::string &indent, const std::string &lin) {
    size_t n = stage.inner.size();
    if (n == 0)
      return;
    if (n == 1) {
      out << indent << "const long long r0 = " << lin << ";\n";
      return;
    }
    out << indent << "long long tsr_t = " << lin << ";\n";
    for (size_t i = n; i-- > 0;) {
      std::string e = "tsr_n" + std::to_string(si) + "_" + std::to_string(i);
      if (i == 0)
        out << indent << "const long long r0 = tsr_t;\n";
      else
        out << indent << "const long long r" << i << " = tsr_t % " << e << "; tsr_t /= " << e << ";\n";
    }
  }

  // Declares extents tsr_n<si>_<i> and their product tsr_n<si>.
  void emitStageExtents(const Stage &stage, size_t si, const std::string &indent) {
    std::string prod = "1LL";
    for (size_t i = 0; i < stage.inner.size(); ++i) {
      std::string e = "tsr_n" + std::to_string(si) + "_" + std::to_string(i);
      out << indent << "const long long " << e << " = " << idx(stage.inner[i]) << ";\n";
      prod += " * (" + e + " > 0 ? " + e + " : 0LL)";
    }
    out << indent << "const long long tsr_n" << si << " = " << prod << ";\n";
  }

  void emitReduceDecls(const std::string &indent) {
    for (const Stage &s : kernel.stages)
      for (const Instr &in : s.body)
        if (!in.isStore && in.op == Op::Reduce)
          out << indent << ctype(in.dtype) << " " << val(in.result) << ";\n";
  }

  void emitReduceFinalize(const Stage &stage, const std::string &indent) {
    for (const Instr &in : stage.body)
      if (!in.isStore && in.op == Op::Reduce) {
        std::string r = std::to_string(in.result);
        if (isArg(in.reduce))
          out << indent << val(in.result) << " = " << convert("(ai" + r + " < 0 ? 0LL : ai" + r + ")", TESSERA_DTYPE_I64, in.dtype)
              << ";\n";
        else
          out << indent << val(in.result) << " = " << convert("a" + r, accType(in), in.dtype) << ";\n";
      }
  }

  void emitAccDecls(const Stage &stage, const std::string &indent) {
    for (const Instr &in : stage.body)
      if (!in.isStore && in.op == Op::Reduce) {
        tessera_dtype_t at = accType(in);
        out << indent << ctype(at) << " a" << in.result << " = " << accInit(in) << ";";
        if (isArg(in.reduce))
          out << " long long ai" << in.result << " = -1;";
        else
          out << " long long ai" << in.result << " = 0; (void)ai" << in.result << ";";
        out << "\n";
      }
  }

  // Stage loops. mode Thread: serial; Block: strided over the block's
  // threads, then a block-wide combine of every reduce.
  void emitStages(bool blockMode, const std::string &indent) {
    emitReduceDecls(indent);
    for (size_t si = 0; si < kernel.stages.size(); ++si) {
      const Stage &stage = kernel.stages[si];
      std::string in2 = indent + "  ", in3 = indent + "    ";
      out << indent << "{ // stage " << si << (stage.kind == Stage::Kind::Map ? " map" : " reduce") << "\n";
      emitStageExtents(stage, si, in2);
      emitAccDecls(stage, in2);
      std::string lin = "tsr_l" + std::to_string(si);
      if (blockMode)
        out << in2 << "for (long long " << lin << " = threadIdx.x; " << lin << " < tsr_n" << si << "; " << lin
            << " += blockDim.x) {\n";
      else
        out << in2 << "for (long long " << lin << " = 0; " << lin << " < tsr_n" << si << "; ++" << lin << ") {\n";
      emitInnerDecompose(stage, si, in3, lin);
      emitBody(stage, in3, lin);
      out << in2 << "}\n";
      bool hasStore = false;
      for (const Instr &in : stage.body)
        hasStore |= in.isStore;
      if (blockMode) {
        for (const Instr &in : stage.body)
          if (!in.isStore && in.op == Op::Reduce)
            emitBlockCombine(in, in2);
        // Later stages may read what this one stored (through memory).
        if (hasStore && si + 1 < kernel.stages.size())
          out << in2 << "__syncthreads();\n";
      }
      emitReduceFinalize(stage, in2);
      out << indent << "}\n";
    }
  }

  // Warp shuffle butterfly (CUDA C++ Programming Guide, "Warp Shuffle
  // Functions"), then one partial per warp through shared memory; every
  // thread folds the partials in the same order, so the result is uniform.
  // One barrier per reduce: the partials alternate between two buffers by
  // row parity (tsr_par, flipped per row of the block's loop), so a warp
  // that runs ahead to the next row writes the other buffer, and the one it
  // wrote two rows ago was read by every thread before the barrier of the
  // row in between.
  void emitBlockCombine(const Instr &in, const std::string &indent) {
    std::string r = std::to_string(in.result), t = ctype(accType(in));
    std::string a = "a" + r, ai = "ai" + r;
    const bool arg = isArg(in.reduce);
    out << indent << "{\n";
    out << indent << "  __shared__ " << t << " tsr_rv" << r << "[2][32];";
    if (arg)
      out << " __shared__ long long tsr_ri" << r << "[2][32];";
    out << "\n";
    out << indent << "#pragma unroll\n" << indent << "  for (int o = 16; o > 0; o >>= 1) {\n";
    out << indent << "    const " << t << " b = __shfl_xor_sync(0xffffffffu, " << a << ", o);\n";
    // The index only matters for arg reductions (no dead shuffles otherwise).
    out << indent << "    const long long bi = " << (arg ? "__shfl_xor_sync(0xffffffffu, " + ai + ", o)" : ai)
        << "; (void)bi;\n";
    out << indent << "    " << accCombine(in, a, ai, "b", "bi") << "\n";
    out << indent << "  }\n";
    out << indent << "  if ((threadIdx.x & 31) == 0) { tsr_rv" << r << "[tsr_par][threadIdx.x >> 5] = " << a << ";";
    if (arg)
      out << " tsr_ri" << r << "[tsr_par][threadIdx.x >> 5] = " << ai << ";";
    out << " }\n";
    out << indent << "  __syncthreads();\n";
    out << indent << "  " << a << " = tsr_rv" << r << "[tsr_par][0];";
    if (arg)
      out << " " << ai << " = tsr_ri" << r << "[tsr_par][0];";
    out << "\n";
    out << indent << "  for (int w = 1; w < (int)(blockDim.x >> 5); ++w) {\n";
    out << indent << "    const " << t << " b = tsr_rv" << r << "[tsr_par][w]; const long long bi = "
        << (arg ? "tsr_ri" + r + "[tsr_par][w]" : "0LL") << "; (void)bi;\n";
    out << indent << "    " << accCombine(in, a, ai, "b", "bi") << "\n";
    out << indent << "  }\n";
    out << indent << "}\n";
  }

  size_t numBase() const { return kernel.operands.size() + program.symbols.size(); }

  void emitPrologue(const std::string &fn, size_t slots, int launchBounds, int minBlocks = 0,
                    const char *extraParams = "") {
    out << "extern \"C\" __global__ void __launch_bounds__(" << launchBounds
        << (minBlocks > 0 ? ", " + std::to_string(minBlocks) : std::string()) << ") " << fn << "(const TsrP" << slots
        << " P" << extraParams << ") {\n";
    for (size_t o = 0; o < kernel.operands.size(); ++o) {
      const Operand &op = kernel.operands[o];
      bool in = op.role == OperandRole::In;
      out << "  " << (in ? "const " : "") << stype(op.dtype) << "* b" << o << " = (" << (in ? "const " : "")
          << stype(op.dtype) << "*)P.u[" << o << "]; (void)b" << o << ";\n";
    }
    for (size_t s = 0; s < program.symbols.size(); ++s)
      out << "  const long long s" << s << " = (long long)P.u[" << kernel.operands.size() + s << "]; (void)s" << s
          << ";\n";
    for (size_t o = 0; o < kernel.operands.size(); ++o)
      for (size_t d = 1; d < kernel.operands[o].shape.size(); ++d)
        out << "  const long long d" << o << "_" << d << " = " << idx(kernel.operands[o].shape[d]) << "; (void)d" << o
            << "_" << d << ";\n";
  }

  void emitParallelExtents(const std::string &indent) {
    std::string prod = "1LL";
    for (size_t i = 0; i < kernel.parallel.size(); ++i) {
      out << indent << "const long long tsr_e" << i << " = " << idx(kernel.parallel[i]) << ";\n";
      prod += " * tsr_e" + std::to_string(i);
    }
    out << indent << "const long long tsr_P = " << prod << ";\n";
  }

  void emitParallelDecompose(const std::string &indent, const std::string &flat) {
    size_t n = kernel.parallel.size();
    if (n == 0)
      return;
    out << indent << "long long tsr_q = " << flat << ";\n";
    for (size_t i = n; i-- > 0;) {
      if (i == 0)
        out << indent << "const long long p0 = tsr_q;\n";
      else
        out << indent << "const long long p" << i << " = tsr_q % tsr_e" << i << "; tsr_q /= tsr_e" << i << ";\n";
    }
  }

  void emitThread(const std::string &fn, size_t slots) {
    emitPrologue(fn, slots, 256);
    emitParallelExtents("  ");
    out << "  for (long long tsr_pt = (long long)blockIdx.x * blockDim.x + threadIdx.x; tsr_pt < tsr_P; tsr_pt += "
           "(long long)gridDim.x * blockDim.x) {\n";
    emitParallelDecompose("    ", "tsr_pt");
    emitStages(false, "    ");
    out << "  }\n}\n\n";
  }

  // ---- 16-byte vector accesses ------------------------------------------------
  //
  // 8 consecutive elements of a vector-form access (vecForm) move as one
  // 16-byte ld/st.global.v4.u32 (PTX ISA, "ld": vector operands; the address
  // must be aligned to the access size, checked at run time), v2.u32 for
  // 1-byte elements, two v4 for 4-byte ones. Elements are unpacked from and
  // packed into 32-bit words with constant shifts, so everything stays in
  // registers (no local arrays).
  static std::string accessKey(const Instr &in) {
    std::string key = std::to_string(in.operand);
    for (const IndexExpr &e : in.index)
      key += "," + printIndex(e);
    return key;
  }
  int vecWords(const Instr &in) const { return static_cast<int>(2 * dtypeSize(kernel.operands[in.operand].dtype)); }

  void emitVecLoad(const Instr &in, const std::string &prefix, const std::string &r, bool declare,
                   const std::string &indent) {
    int words = vecWords(in);
    if (declare) {
      out << indent << "unsigned";
      for (int w = 0; w < words; ++w)
        out << (w ? ", " : " ") << prefix << "_w" << w;
      out << ";\n";
    }
    out << indent << "{\n" << indent << "  const long long r0 = " << r << "; (void)r0;\n";
    out << indent << "  const unsigned* tsr_p = (const unsigned*)(b" << in.operand << " + " << offset(in.operand, in.index)
        << ");\n";
    if (words == 2) {
      out << indent << "  const uint2 t = *(const uint2*)tsr_p; " << prefix << "_w0 = t.x; " << prefix << "_w1 = t.y;\n";
    } else {
      for (int q = 0; q < words / 4; ++q)
        out << indent << "  { const uint4 t = ((const uint4*)tsr_p)[" << q << "]; " << prefix << "_w" << 4 * q << " = t.x; "
            << prefix << "_w" << 4 * q + 1 << " = t.y; " << prefix << "_w" << 4 * q + 2 << " = t.z; " << prefix << "_w"
            << 4 * q + 3 << " = t.w; }\n";
    }
    out << indent << "}\n";
  }

  // Element e (0..7) of the words `prefix`_w*, as the stored type.
  std::string vecElem(tessera_dtype_t dt, const std::string &prefix, int e) const {
    size_t sz = dtypeSize(dt);
    std::string st = stype(dt);
    if (sz == 4) {
      std::string w = prefix + "_w" + std::to_string(e);
      return st == "float" ? "__uint_as_float(" + w + ")" : "((" + st + ")" + w + ")";
    }
    int per = sz == 2 ? 2 : 4, bits = static_cast<int>(8 * sz);
    std::string w = prefix + "_w" + std::to_string(e / per);
    std::string narrow = sz == 2 ? "unsigned short" : "unsigned char";
    return "((" + st + ")(" + narrow + ")(" + w + " >> " + std::to_string(bits * (e % per)) + "))";
  }

  void emitVecStore(const Instr &in, const std::string &sink, const std::string &r, const std::string &indent) {
    tessera_dtype_t dt = kernel.operands[in.operand].dtype;
    size_t sz = dtypeSize(dt);
    int words = vecWords(in);
    std::string st = stype(dt);
    auto el = [&](int e) { return sink + "_e" + std::to_string(e); };
    std::vector<std::string> w(words);
    const bool packF32 = sinkF32.count(&in) != 0;
    for (int i = 0; i < words; ++i) {
      if (packF32)
        w[i] = std::string(dt == TESSERA_DTYPE_BF16 ? "tsr_pack2_bf16(" : "tsr_pack2_f16(") + el(2 * i) + ", " +
               el(2 * i + 1) + ")";
      else if (sz == 4)
        w[i] = st == "float" ? "__float_as_uint(" + el(i) + ")" : "(unsigned)" + el(i);
      else if (sz == 2)
        w[i] = "((unsigned)(unsigned short)" + el(2 * i) + " | ((unsigned)(unsigned short)" + el(2 * i + 1) + " << 16))";
      else
        w[i] = "((unsigned)(unsigned char)" + el(4 * i) + " | ((unsigned)(unsigned char)" + el(4 * i + 1) +
               " << 8) | ((unsigned)(unsigned char)" + el(4 * i + 2) + " << 16) | ((unsigned)(unsigned char)" +
               el(4 * i + 3) + " << 24))";
    }
    out << indent << "{\n" << indent << "  const long long r0 = " << r << "; (void)r0;\n";
    out << indent << "  unsigned* tsr_p = (unsigned*)(b" << in.operand << " + " << offset(in.operand, in.index) << ");\n";
    if (words == 2)
      out << indent << "  *(uint2*)tsr_p = make_uint2(" << w[0] << ", " << w[1] << ");\n";
    else
      for (int q = 0; q < words / 4; ++q)
        out << indent << "  tsr_st16(tsr_p + " << 4 * q << ", " << w[4 * q] << ", " << w[4 * q + 1] << ", "
            << w[4 * q + 2] << ", " << w[4 * q + 3] << ");\n";
    out << indent << "}\n";
  }

  // One chunk of 8 elements of `stage` starting at r0 = `r`: vector loads
  // (or words cached by an earlier stage), the body per element with
  // constant element numbers, packed vector stores.
  // chunk >= 0: chunk number of a row kernel (names the registers of values
  // shared between stages).
  void emitVecChunk(const Stage &stage, const std::string &r, const std::string &tag,
                    std::map<std::string, std::pair<std::string, bool>> *cache, const std::string &indent,
                    int chunk = -1) {
    VecLoads vl = planVecLoads(stage, tag, cache, indent);
    emitVecLoads(vl, r, indent);
    emitVecCompute(stage, vl, r, tag, indent, chunk);
  }

  // A chunk's vector loads: (load, words prefix) per load touching r0, and
  // the loads still to issue (words declared by planVecLoads, or cached).
  struct VecLoads {
    std::vector<std::pair<const Instr *, std::string>> loads;
    std::vector<std::pair<const Instr *, std::string>> issue;
    std::vector<std::pair<const Instr *, std::string>> late; // issued with the elements (emitVecCompute)
  };
  VecLoads planVecLoads(const Stage &stage, const std::string &tag,
                        std::map<std::string, std::pair<std::string, bool>> *cache, const std::string &declIndent) {
    VecLoads vl;
    std::map<std::string, std::string> local;
    // With a cache (row kernels), loads that do not depend on the row (a
    // gain or bias [r0]: L1/L2 hits shared by every row) are issued with
    // their chunk's elements rather than all up front, keeping registers.
    auto rowIndependent = [&](const Instr &in) {
      for (const IndexExpr &e : in.index)
        if (mentions(e, K::Parallel))
          return false;
      return true;
    };
    int n = 0;
    for (const Instr &in : stage.body) {
      if (in.isStore || in.op != Op::Load || !touchesInner(in))
        continue;
      std::string key = accessKey(in);
      auto l = local.find(key);
      if (l == local.end()) {
        std::string prefix;
        if (cache) {
          auto c = cache->find(key);
          if (c != cache->end()) {
            prefix = c->second.first;
            if (!c->second.second)
              vl.issue.push_back({&in, prefix});
            c->second.second = true;
          }
        }
        if (prefix.empty()) {
          prefix = "tsr_x" + tag + "_" + std::to_string(n++);
          if (cache && rowIndependent(in)) {
            vl.late.push_back({&in, prefix});
          } else {
            out << declIndent << "unsigned";
            for (int w = 0; w < vecWords(in); ++w)
              out << (w ? ", " : " ") << prefix << "_w" << w << " = 0u";
            out << ";\n";
            vl.issue.push_back({&in, prefix});
          }
        }
        l = local.emplace(key, prefix).first;
      }
      vl.loads.push_back({&in, l->second});
    }
    return vl;
  }
  void emitVecLoads(const VecLoads &vl, const std::string &r, const std::string &indent) {
    for (auto &[in, prefix] : vl.issue)
      emitVecLoad(*in, prefix, r, false, indent);
  }
  // The chunk's elements (loads replaced by elements of the words) and its
  // packed vector stores.
  void emitVecCompute(const Stage &stage, const VecLoads &vl, const std::string &r, const std::string &tag,
                      const std::string &indent, int chunk) {
    std::vector<const Instr *> stores;
    for (const Instr &in : stage.body)
      if (in.isStore)
        stores.push_back(&in);
    for (auto &[in, prefix] : vl.late)
      emitVecLoad(*in, prefix, r, true, indent);
    sinkF32.clear();
    for (size_t k = 0; k < stores.size(); ++k) {
      // bf16/f16 stores of f32 values: the sinks keep the f32 value and
      // emitVecStore rounds pairs with one cvt.rn.*x2.f32 (sm_80+).
      tessera_dtype_t dt = kernel.operands[stores[k]->operand].dtype;
      const bool f32Sink = options.smVersion >= 80 && (dt == TESSERA_DTYPE_BF16 || dt == TESSERA_DTYPE_F16) &&
                           typeOf(stores[k]->args[0]) == TESSERA_DTYPE_F32;
      if (f32Sink)
        sinkF32.insert(stores[k]);
      out << indent << (f32Sink ? std::string("float") : std::string(stype(dt)));
      for (int e = 0; e < 8; ++e)
        out << (e ? ", " : " ") << "tsr_o" << tag << "_" << k << "_e" << e;
      out << ";\n";
    }
    for (int e = 0; e < 8; ++e) {
      loadOverride.clear();
      storeSink.clear();
      for (auto &[in, prefix] : vl.loads)
        loadOverride[in] = vecElem(kernel.operands[in->operand].dtype, prefix, e);
      for (size_t k = 0; k < stores.size(); ++k)
        storeSink[stores[k]] = "tsr_o" + tag + "_" + std::to_string(k) + "_e" + std::to_string(e);
      out << indent << "{\n" << indent << "  const long long r0 = " << r << " + " << e << "; (void)r0;\n";
      if (chunk >= 0)
        shareSuffix = "_" + std::to_string(chunk) + "_" + std::to_string(e);
      emitBody(stage, indent + "  ", "r0");
      shareSuffix.clear();
      out << indent << "}\n";
    }
    loadOverride.clear();
    storeSink.clear();
    for (size_t k = 0; k < stores.size(); ++k)
      emitVecStore(*stores[k], "tsr_o" + tag + "_" + std::to_string(k), r, indent);
    sinkF32.clear();
  }

  // Distinct vector-form accesses of the kernel (loads touching r0, stores).
  std::vector<const Instr *> vecAccesses() const {
    std::vector<const Instr *> v;
    std::set<std::string> seen;
    for (const Stage &s : kernel.stages)
      for (const Instr &in : s.body)
        if ((in.isStore || (in.op == Op::Load && touchesInner(in))) && seen.insert(accessKey(in)).second)
          v.push_back(&in);
    return v;
  }
  // Base pointers 16-byte aligned (device allocations are 256-byte aligned;
  // checked anyway).
  void emitPtrChecks(const std::string &flag, const std::string &indent) {
    std::set<int64_t> ops;
    for (const Instr *in : vecAccesses())
      if (ops.insert(in->operand).second)
        out << indent << flag << " = " << flag << " && (((unsigned long long)b" << in->operand << ") & 15ULL) == 0ULL;\n";
  }
  // Each access's element offset at r0 = 0 a multiple of 8 (16 bytes for
  // 2-byte elements), so every chunk of 8 is aligned.
  void emitBaseChecks(const std::string &flag, const std::string &indent) {
    for (const Instr *in : vecAccesses())
      out << indent << "{ const long long r0 = 0; " << flag << " = " << flag << " && ((" << offset(in->operand, in->index)
          << ") & 7LL) == 0LL; }\n";
  }

  // Values of a row kernel's stages, for the row-in-registers path:
  //  * uniform across the row (constants, index expressions without r0,
  //    earlier stages' reduce results and what is computed from only these)
  //    are hoisted out of the per-element code, once per stage;
  //  * an f32 division by a uniform value becomes a product with its
  //    reciprocal (computed once), where approxMath allows;
  //  * a per-element value that a later stage computes again from the same
  //    input loads and uniform values (the same structure) is kept in
  //    registers by the first stage and reused (softmax: exp(x - max) of the
  //    sum stage in the normalize stage; layer_norm: x - mean).
  // approxMath: every store is to a bf16/f16/fp8 operand, so f32 exp may go
  // through ex2.approx and divisions through a reciprocal (errors of a few
  // f32 ulps under outputs rounded to 11 or fewer significant bits).
  void planRowValues() {
    hoisted.clear();
    rcpOf.clear();
    shareProduce.clear();
    shareConsume.clear();
    shareType.clear();
    approxMath = true;
    for (const Stage &st : kernel.stages)
      for (const Instr &in : st.body)
        if (in.isStore && !isNarrowFloat(kernel.operands[in.operand].dtype))
          approxMath = false;
    std::map<int64_t, std::string> keyOf; // value -> structure ("" when not shareable)
    std::set<int64_t> reduced;            // reduce results of earlier stages
    std::map<std::string, std::pair<size_t, const Instr *>> firstPerElement;
    std::set<int64_t> costlyValues; // per-element values computed through a special function or division
    for (size_t si = 0; si < kernel.stages.size(); ++si) {
      std::set<int64_t> uniform;
      auto isUniform = [&](int64_t v) { return reduced.count(v) || uniform.count(v); };
      for (const Instr &in : kernel.stages[si].body) {
        if (in.isStore)
          continue;
        std::string key;
        bool uni = false;
        char num[64];
        switch (in.op) {
        case Op::Load:
          if (!in.mask && touchesInner(in) && kernel.operands[in.operand].role == OperandRole::In)
            key = "L" + accessKey(in) + ":" + dtypeName(in.dtype);
          break;
        case Op::Const:
          std::snprintf(num, sizeof(num), "%a", in.constant);
          key = std::string("C") + num + ":" + dtypeName(in.dtype);
          uni = true;
          break;
        case Op::Index:
          key = "I" + printIndex(in.indexValue) + ":" + dtypeName(in.dtype);
          uni = !mentions(in.indexValue, K::Inner) && !mentions(in.indexValue, K::Value);
          break;
        case Op::Reduce: break;
        default: {
          uni = true;
          key = std::string(opName(in.op)) + ":" + dtypeName(in.dtype) + (in.saturate ? ":sat(" : "(");
          for (int64_t v : in.args) {
            uni = uni && isUniform(v);
            auto k = keyOf.find(v);
            if (k == keyOf.end() || k->second.empty()) {
              key.clear();
              break;
            }
            key += k->second + ",";
          }
          if (!key.empty())
            key += ")";
        }
        }
        if (in.op == Op::Reduce) {
          keyOf[in.result] = "R" + std::to_string(in.result);
          continue;
        }
        keyOf[in.result] = key;
        if (uni) {
          hoisted.insert(&in);
          uniform.insert(in.result);
          continue;
        }
        if (approxMath && in.op == Op::Div && in.args.size() == 2 && isUniform(in.args[1]) &&
            typeOf(in.args[0]) == TESSERA_DTYPE_F32 && typeOf(in.args[1]) == TESSERA_DTYPE_F32 &&
            in.dtype != TESSERA_DTYPE_F64)
          rcpOf[&in] = "tsr_rcp" + std::to_string(in.result);
        // Shared only where recomputing costs more than keeping a register
        // per element: values computed through a special function or a
        // division (exp(x - max)); x - mean is recomputed from the words.
        bool costly = false;
        switch (in.op) {
        case Op::Exp: case Op::Log: case Op::Tanh: case Op::Sigmoid: case Op::Erf: case Op::Sin: case Op::Cos:
        case Op::Pow: case Op::GeluErf: case Op::GeluTanh: case Op::Silu: case Op::Sqrt: case Op::Rsqrt:
        case Op::Div: case Op::Reciprocal: costly = true; break;
        default: break;
        }
        for (int64_t v : in.args)
          costly |= costlyValues.count(v) != 0;
        if (costly)
          costlyValues.insert(in.result);
        if (costly && !key.empty() && in.op != Op::Load) {
          auto f = firstPerElement.find(key);
          if (f == firstPerElement.end()) {
            firstPerElement.emplace(key, std::make_pair(si, &in));
          } else if (f->second.first < si) {
            auto p = shareProduce.find(f->second.second);
            if (p == shareProduce.end()) {
              p = shareProduce.emplace(f->second.second, static_cast<int>(shareType.size())).first;
              shareType.push_back(f->second.second->dtype);
            }
            shareConsume[&in] = p->second;
          }
        }
      }
      for (const Instr &in : kernel.stages[si].body)
        if (!in.isStore && in.op == Op::Reduce)
          reduced.insert(in.result);
    }
  }

  void clearRowValues() {
    hoisted.clear();
    rcpOf.clear();
    shareProduce.clear();
    shareConsume.clear();
    shareType.clear();
    shareSuffix.clear();
    approxMath = false;
  }

  // Row kernel with the row in registers: every thread owns chunks
  // threadIdx.x + j * blockDim.x (j < rowChunks) of 8 elements; loads of
  // input operands that several stages repeat are read once and kept.
  void emitStagesVec(const std::string &indent) {
    planRowValues();
    emitReduceDecls(indent);
    std::map<std::string, int> stagesUsing;
    std::map<std::string, const Instr *> first;
    for (const Stage &s : kernel.stages) {
      std::set<std::string> here;
      for (const Instr &in : s.body)
        if (!in.isStore && in.op == Op::Load && touchesInner(in) &&
            kernel.operands[in.operand].role == OperandRole::In && here.insert(accessKey(in)).second) {
          ++stagesUsing[accessKey(in)];
          first.emplace(accessKey(in), &in);
        }
    }
    std::vector<std::map<std::string, std::pair<std::string, bool>>> caches(rowChunks);
    int id = 0;
    for (auto &[key, count] : stagesUsing) {
      if (count < 2)
        continue;
      for (int j = 0; j < rowChunks; ++j) {
        std::string prefix = "tsr_k" + std::to_string(id) + "_" + std::to_string(j);
        out << indent << "unsigned";
        for (int w = 0; w < vecWords(*first[key]); ++w)
          out << (w ? ", " : " ") << prefix << "_w" << w << " = 0u";
        out << ";\n";
        caches[j][key] = {prefix, false};
      }
      ++id;
    }
    for (size_t sh = 0; sh < shareType.size(); ++sh)
      for (int j = 0; j < rowChunks; ++j) {
        out << indent << ctype(shareType[sh]);
        for (int e = 0; e < 8; ++e)
          out << (e ? ", " : " ") << "tsr_sh" << sh << "_" << j << "_" << e << " = 0";
        out << ";\n";
      }
    for (size_t si = 0; si < kernel.stages.size(); ++si) {
      const Stage &stage = kernel.stages[si];
      std::string in2 = indent + "  ", in3 = indent + "    ";
      out << indent << "{ // stage " << si << " (16-byte chunks)\n";
      emitStageExtents(stage, si, in2);
      emitAccDecls(stage, in2);
      for (const Instr &in : stage.body)
        if (hoisted.count(&in))
          emitValue(in, in2);
      for (const Instr &in : stage.body)
        if (auto it = rcpOf.find(&in); it != rcpOf.end())
          out << in2 << "const float " << it->second << " = 1.f / "
              << convert(val(in.args[1]), typeOf(in.args[1]), TESSERA_DTYPE_F32) << ";\n";
      out << in2 << "const long long tsr_nc" << si << " = tsr_n" << si << " >> 3;\n";
      // Every chunk's loads first (independent 16-byte loads in flight
      // together), then the chunks' elements.
      std::vector<VecLoads> vl;
      for (int j = 0; j < rowChunks; ++j)
        vl.push_back(planVecLoads(stage, std::to_string(si) + "_" + std::to_string(j), &caches[j], in2));
      for (int pass = 0; pass < 2; ++pass)
        for (int j = 0; j < rowChunks; ++j) {
          if (pass == 0 && vl[j].issue.empty())
            continue;
          std::string ch = "((long long)threadIdx.x + " + std::to_string(j) + "LL * (long long)blockDim.x)";
          out << in2 << "if (" << ch << " < tsr_nc" << si << ") {\n";
          out << in3 << "const long long tsr_r = " << ch << " * 8;\n";
          if (pass == 0)
            emitVecLoads(vl[j], "tsr_r", in3);
          else
            emitVecCompute(stage, vl[j], "tsr_r", std::to_string(si) + "_" + std::to_string(j), in3, j);
          out << in2 << "}\n";
        }
      bool hasStore = false;
      for (const Instr &in : stage.body)
        hasStore |= in.isStore;
      for (const Instr &in : stage.body)
        if (!in.isStore && in.op == Op::Reduce)
          emitBlockCombine(in, in2);
      if (hasStore && si + 1 < kernel.stages.size())
        out << in2 << "__syncthreads();\n";
      emitReduceFinalize(stage, in2);
      out << indent << "}\n";
    }
    clearRowValues();
  }

  void emitBlock(const std::string &fn, size_t slots, bool vec) {
    emitPrologue(fn, slots, 512);
    emitParallelExtents("  ");
    if (vec) {
      out << "  bool tsr_vp = true;\n";
      emitPtrChecks("tsr_vp", "  ");
    }
    // tsr_par: the row's parity, for the reductions' shared buffers.
    out << "  unsigned tsr_par = 0u;\n";
    out << "  for (long long tsr_pt = blockIdx.x; tsr_pt < tsr_P; tsr_pt += gridDim.x, tsr_par ^= 1u) {\n";
    emitParallelDecompose("    ", "tsr_pt");
    if (!vec) {
      emitStages(true, "    ");
      out << "  }\n}\n\n";
      return;
    }
    // Uniform across the block (depends on the row and blockDim only), so
    // both branches keep their barriers block-wide.
    out << "    bool tsr_v = tsr_vp;\n";
    out << "    const long long tsr_vn = " << idx(kernel.stages[0].inner[0]) << ";\n";
    out << "    tsr_v = tsr_v && tsr_vn >= 0 && (tsr_vn & 7LL) == 0LL && tsr_vn <= " << rowChunks * 8
        << "LL * (long long)blockDim.x;\n";
    emitBaseChecks("tsr_v", "    ");
    out << "    if (tsr_v) {\n";
    emitStagesVec("      ");
    out << "    } else {\n";
    emitStages(true, "      ");
    out << "    }\n  }\n}\n\n";
  }

  // One map stage: parallel and inner loops flattened (inner fastest).
  void emitFlat(const std::string &fn, size_t slots, bool vec) {
    const Stage &stage = kernel.stages[0];
    emitPrologue(fn, slots, 256);
    emitParallelExtents("  ");
    emitStageExtents(stage, 0, "  ");
    out << "  const long long tsr_total = tsr_P * tsr_n0;\n";
    if (vec) {
      // One chunk of 8 consecutive r0 per thread and step (grid-stride); a
      // chunk whose bases are not 16-byte aligned runs its 8 elements scalar.
      out << "  bool tsr_v = tsr_n0 > 0 && (tsr_n0 & 7LL) == 0LL;\n";
      emitPtrChecks("tsr_v", "  ");
      out << "  if (tsr_v) {\n";
      out << "    const long long tsr_nc = tsr_n0 >> 3, tsr_tc = tsr_P * tsr_nc;\n";
      out << "    const bool tsr_small = tsr_tc <= 2147483647LL;\n";
      out << "    for (long long tsr_f = (long long)blockIdx.x * blockDim.x + threadIdx.x; tsr_f < tsr_tc; tsr_f += "
             "(long long)gridDim.x * blockDim.x) {\n";
      out << "      const long long tsr_pt = tsr_small ? (long long)((unsigned)tsr_f / (unsigned)tsr_nc) : tsr_f / tsr_nc;\n";
      out << "      const long long tsr_r = (tsr_f - tsr_pt * tsr_nc) * 8;\n";
      emitParallelDecompose("      ", "tsr_pt");
      out << "      bool tsr_a = true;\n";
      emitBaseChecks("tsr_a", "      ");
      out << "      if (tsr_a) {\n";
      emitVecChunk(stage, "tsr_r", "f", nullptr, "        ");
      out << "      } else {\n";
      for (int e = 0; e < 8; ++e) {
        out << "        {\n          const long long r0 = tsr_r + " << e << "; (void)r0;\n";
        emitBody(stage, "          ", "r0");
        out << "        }\n";
      }
      out << "      }\n    }\n    return;\n  }\n";
    }
    out << "  for (long long tsr_f = (long long)blockIdx.x * blockDim.x + threadIdx.x; tsr_f < tsr_total; tsr_f += "
           "(long long)gridDim.x * blockDim.x) {\n";
    if (stage.inner.empty()) {
      emitParallelDecompose("    ", "tsr_f");
    } else {
      out << "    const long long tsr_pt = tsr_f / tsr_n0, tsr_l0 = tsr_f - tsr_pt * tsr_n0;\n";
      emitParallelDecompose("    ", "tsr_pt");
      emitInnerDecompose(stage, 0, "    ", "tsr_l0");
    }
    emitBody(stage, "    ", "tsr_l0");
    out << "  }\n}\n\n";
  }

  // ---- GEMM ------------------------------------------------------------------

  void emitGemm(const std::string &fn, size_t slots, const GemmPlan &g);
  // Shared by every GEMM-path function: strides and extents after the
  // prologue, the batch point's coordinates and operand pointers, and the
  // epilogue stages with the reduce value bound.
  void emitGemmExtents(const GemmPlan &g);
  void emitGemmBatchSetup(const GemmPlan &g, const std::string &indent);
  void emitEpilogueStages(const std::string &accExpr, const std::string &indent);
  void emitPipelined(const std::string &fn, size_t slots, const GemmPlan &g, const PipelinedGemm &cfg);
  void emitLibraryEpilogue(const std::string &fn, size_t slots, const LibraryPlan &lib, bool vec);
};

// Affine in loop variables: no div/mod/min/max/comparison/value refs touching
// p/r variables, and products with at most one loop-dependent side.
bool affine(const IndexExpr &e) {
  auto loopy = [](const IndexExpr &x) { return mentions(x, K::Parallel) || mentions(x, K::Inner); };
  switch (e.kind) {
  case K::Const: case K::Symbol: case K::Parallel: case K::Inner: return true;
  case K::Value: return false;
  case K::Add: case K::Sub: return affine(e.args[0]) && affine(e.args[1]);
  case K::Mul:
    if (loopy(e.args[0]) && loopy(e.args[1]))
      return false;
    return affine(e.args[0]) && affine(e.args[1]);
  default: return !loopy(e) && !mentions(e, K::Value);
  }
}

// e is `v`, `v + x`, `x + v` or `v - x` with x free of v: unit stride in v.
bool unitTerm(const IndexExpr &e, K kind, int64_t which) {
  if (e.kind == kind && e.value == which)
    return true;
  if (e.kind == K::Add)
    return (unitTerm(e.args[0], kind, which) && !mentions(e.args[1], kind, which)) ||
           (unitTerm(e.args[1], kind, which) && !mentions(e.args[0], kind, which));
  if (e.kind == K::Sub)
    return unitTerm(e.args[0], kind, which) && !mentions(e.args[1], kind, which);
  return false;
}

// The access moves by one element per step of loop variable (kind, which):
// only the innermost index mentions it, with unit coefficient.
bool unitStride(const std::vector<IndexExpr> &index, K kind, int64_t which) {
  if (index.empty())
    return false;
  for (size_t d = 0; d + 1 < index.size(); ++d)
    if (mentions(index[d], kind, which))
      return false;
  return unitTerm(index.back(), kind, which);
}

GemmPlan planGemm(const Kernel &k) {
  GemmPlan g;
  auto no = [&](const std::string &why) {
    g.usable = false;
    g.why = why;
    return g;
  };
  if (k.kind != Kernel::Kind::Matmul)
    return no("not a matmul kernel");
  if (k.parallel.size() < 2 || k.stages.empty() || k.stages[0].body.size() != 4)
    return no("not in canonical form");
  const Stage &s0 = k.stages[0];
  const Instr &la = s0.body[0], &lb = s0.body[1], &mul = s0.body[2], &red = s0.body[3];
  if (la.mask || lb.mask)
    return no("masked operand loads");
  if (mul.args.size() != 2 || red.args.size() != 1 || red.args[0] != mul.result ||
      !((mul.args[0] == la.result && mul.args[1] == lb.result) || (mul.args[0] == lb.result && mul.args[1] == la.result)))
    return no("contraction body is not mul(load A, load B)");
  for (const IndexExpr &d : s0.inner)
    if (mentions(d, K::Parallel))
      return no("K extent depends on a parallel loop");
  for (const auto *l : {&la, &lb})
    for (const IndexExpr &e : l->index)
      if (!affine(e))
        return no("operand index is not affine");
  size_t np = k.parallel.size();
  g.mLoop = np - 2;
  g.nLoop = np - 1;
  // A must not depend on p_N, B not on p_M.
  for (const IndexExpr &e : la.index)
    if (mentions(e, K::Parallel, static_cast<int64_t>(g.nLoop)))
      return no("A depends on the N loop");
  for (const IndexExpr &e : lb.index)
    if (mentions(e, K::Parallel, static_cast<int64_t>(g.mLoop)))
      return no("B depends on the M loop");
  tessera_dtype_t ta = k.operands[la.operand].dtype, tb = k.operands[lb.operand].dtype;
  if (!isFloat(la.dtype) || la.dtype == TESSERA_DTYPE_F64 || red.dtype == TESSERA_DTYPE_F64)
    return no("contraction is not in f32");
  if (ta == TESSERA_DTYPE_BF16 && tb == TESSERA_DTYPE_BF16)
    g.input = GemmInput::BF16;
  else if (ta == TESSERA_DTYPE_F16 && tb == TESSERA_DTYPE_F16)
    g.input = GemmInput::F16;
  else if (ta == TESSERA_DTYPE_F32 && tb == TESSERA_DTYPE_F32 && k.knobInt("tf32", 0) == 1)
    g.input = GemmInput::TF32;
  else
    return no("operand dtypes are not bf16/bf16, f16/f16 or f32 with tf32=1");
  g.aOperand = la.operand;
  g.bOperand = lb.operand;
  g.usable = true;
  // Layouts for the pipelined variants.
  g.aKContig = unitStride(la.index, K::Inner, 0);
  g.bNContig = unitStride(lb.index, K::Parallel, static_cast<int64_t>(g.nLoop));
  g.bKContig = !g.bNContig && unitStride(lb.index, K::Inner, 0);
  if (k.stages.size() == 2 && k.stages[1].kind == Stage::Kind::Map && k.stages[1].inner.empty() &&
      k.stages[1].body.size() == 1 && k.stages[1].body[0].isStore && k.stages[1].body[0].args.size() == 1 &&
      k.stages[1].body[0].args[0] == red.result) {
    const Instr &st = k.stages[1].body[0];
    tessera_dtype_t od = k.operands[st.operand].dtype;
    g.plainStore = (od == TESSERA_DTYPE_BF16 || od == TESSERA_DTYPE_F16) && !st.mask &&
                   unitStride(st.index, K::Parallel, static_cast<int64_t>(g.nLoop));
  }
  return g;
}

// Flattening needs every store to move with each inner loop (distinct inner
// points write distinct elements), else iterations could race.
bool flattenable(const Kernel &k) {
  if (k.stages.size() != 1 || k.stages[0].kind != Stage::Kind::Map)
    return false;
  const Stage &s = k.stages[0];
  for (const IndexExpr &d : s.inner)
    if (mentions(d, K::Parallel))
      return false;
  for (const Instr &in : s.body) {
    if (!in.isStore)
      continue;
    for (size_t r = 0; r < s.inner.size(); ++r) {
      bool found = false;
      for (const IndexExpr &e : in.index)
        found |= mentions(e, K::Inner, static_cast<int64_t>(r));
      if (!found)
        return false;
    }
  }
  return true;
}

// The _epi function's 16-byte path (KernelPlan::epiVec): epilogue stages
// without inner loops or reductions, whose stores and whose loads that move
// with the N loop (the last parallel loop) are [..., p_N] (p_N in no other
// index, no values, no mask; 1, 2 or 4-byte elements), and which read no
// operand they store to.
bool epiVectorizable(const Kernel &k) {
  if (k.parallel.size() < 2 || k.stages.size() < 2)
    return false;
  const int64_t pn = static_cast<int64_t>(k.parallel.size() - 1);
  auto vecAlongN = [&](const Instr &in) { return unitStrideAlong(k, in, K::Parallel, pn); };
  std::set<int64_t> stored;
  for (size_t si = 1; si < k.stages.size(); ++si)
    for (const Instr &in : k.stages[si].body)
      if (in.isStore)
        stored.insert(in.operand);
  for (size_t si = 1; si < k.stages.size(); ++si) {
    if (!k.stages[si].inner.empty())
      return false;
    for (const Instr &in : k.stages[si].body) {
      if (in.isStore) {
        if (!vecAlongN(in))
          return false;
        continue;
      }
      if (in.op == Op::Reduce)
        return false;
      if (in.op != Op::Load)
        continue;
      if (stored.count(in.operand))
        return false;
      bool along = in.mask && mentions(*in.mask, K::Parallel, pn);
      for (const IndexExpr &e : in.index)
        along |= mentions(e, K::Parallel, pn);
      if (along && !vecAlongN(in))
        return false;
    }
  }
  return true;
}

std::string sanitize(const std::string &name) {
  std::string s;
  for (char c : name)
    s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s.substr(0, 48);
}

} // namespace

// ---- GEMM on tensor cores (mma.sync) ---------------------------------------------
//
// Block tile BM x BN, K step BK; 8 warps as warpsM x warpsN, each warp a
// (BM/warpsM) x (BN/warpsN) sub-tile made of m16n8 MMA tiles. A and B tiles
// are staged in shared memory as 16-bit values (bf16/f16; tf32 keeps f32),
// loaded through the generic affine offset:
//   off_A(b, m, k) = A0 + m*sAm + k*sAk,  off_B(b, k, n) = B0 + k*sBk + n*sBn
// (A0/B0 per batch point, the strides from the launcher, which evaluates the
// affine index maps at unit points). Fragments follow PTX ISA "Matrix
// Fragments for mma.m16n8k16" (bf16/f16) and "mma.m16n8k8" (tf32):
//   a0..a3: rows g and g+8 (g = lane/4), cols 2*(lane%4)+{0,1} and +8;
//   b0..b1: rows 2*(lane%4)+{0,1} and +8, col g;
//   c0..c3: rows g and g+8, cols 2*(lane%4)+{0,1}.
// Double-buffered through registers: the next K tile is read from global
// memory while the current one feeds the tensor cores.
void Emitter::emitGemm(const std::string &fn, size_t slots, const GemmPlan &g) {
  const GemmTile &t = g.tile;
  const int wm = t.bm / t.warpsM, wn = t.bn / t.warpsN, mt = wm / 16, nt = wn / 8;
  const bool tf32 = g.input == GemmInput::TF32;
  const int kstep = tf32 ? 8 : 16;
  const std::string et = tf32 ? "float" : "unsigned short";
  const std::string pad = tf32 ? "4" : "8"; // breaks bank conflicts on fragment reads
  const Operand &opA = kernel.operands[g.aOperand], &opB = kernel.operands[g.bOperand];
  emitPrologue(fn, slots, t.threads());
  emitGemmExtents(g);
  // 16-byte loads when the launcher proved both operands contiguous along
  // their inner dim with 8-element aligned rows (checked per launch).
  out << "  const bool tsr_vec = P.u[" << numBase() + 4 << "] != 0ULL; (void)tsr_vec;\n";
  out << "  __shared__ __align__(16) " << et << " sA[" << t.bm << "][" << t.bk << " + " << pad << "];\n";
  out << "  __shared__ __align__(16) " << et << " sB[" << t.bk << "][" << t.bn << " + " << pad << "];\n";
  out << "  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;\n";
  out << "  const int wm0 = (warp / " << t.warpsN << ") * " << wm << ", wn0 = (warp % " << t.warpsN << ") * " << wn
      << ";\n";
  out << "  const int g = lane >> 2, q = lane & 3;\n";
  out << "  for (long long tsr_bt = blockIdx.z; tsr_bt < tsr_B; tsr_bt += gridDim.z) {\n";
  emitGemmBatchSetup(g, "    ");
  out << "    for (long long tsr_tile = blockIdx.x; ; tsr_tile += gridDim.x) {\n";
  out << "      const long long tilesN = (tsr_N + " << t.bn - 1 << ") / " << t.bn << ";\n";
  out << "      const long long tm = tsr_tile / tilesN, tn = tsr_tile % tilesN;\n";
  out << "      if (tm * " << t.bm << " >= tsr_M) break;\n";
  out << "      const long long m0 = tm * " << t.bm << ", n0 = tn * " << t.bn << ";\n";
  out << "      float acc[" << mt << "][" << nt << "][4];\n";
  out << "#pragma unroll\n      for (int i = 0; i < " << mt << "; ++i)\n#pragma unroll\n        for (int j = 0; j < "
      << nt << "; ++j)\n#pragma unroll\n          for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;\n";
  // Staging: with 16-byte loads the next K tile is read into registers
  // while the current one feeds the tensor cores; the scalar fallback
  // (strided or unaligned operands, tf32) loads straight into shared memory.
  const int aPer = t.bm * t.bk / t.threads(), bPer = t.bk * t.bn / t.threads();
  const bool vec16 = !tf32;
  const int aChunks = t.bm * t.bk / 8 / t.threads(), bChunks = t.bk * t.bn / 8 / t.threads();
  std::string lz = tf32 ? "0.f" : "(unsigned short)0";
  auto emitFetchVec = [&](const std::string &k0, const std::string &indent) {
    out << indent << "for (int e = 0; e < " << aChunks << "; ++e) {\n";
    out << indent << "  const int c = tid + e * " << t.threads() << ", mm = c / " << t.bk / 8 << ", kk = (c % " << t.bk / 8
        << ") * 8;\n";
    out << indent << "  const long long gm = m0 + mm, gk = " << k0 << " + kk;\n";
    out << indent << "  va[e] = (gm < tsr_M && gk < tsr_K) ? *(const uint4*)(gA + gm * sAm + gk) : make_uint4(0, 0, 0, 0);\n";
    out << indent << "}\n";
    out << indent << "for (int e = 0; e < " << bChunks << "; ++e) {\n";
    out << indent << "  const int c = tid + e * " << t.threads() << ", kk = c / " << t.bn / 8 << ", nn = (c % " << t.bn / 8
        << ") * 8;\n";
    out << indent << "  const long long gk = " << k0 << " + kk, gn = n0 + nn;\n";
    out << indent << "  vb[e] = (gk < tsr_K && gn < tsr_N) ? *(const uint4*)(gB + gk * sBk + gn) : make_uint4(0, 0, 0, 0);\n";
    out << indent << "}\n";
  };
  auto emitCommitVec = [&](const std::string &indent) {
    out << indent << "for (int e = 0; e < " << aChunks << "; ++e) { const int c = tid + e * " << t.threads()
        << "; *(uint4*)&sA[c / " << t.bk / 8 << "][(c % " << t.bk / 8 << ") * 8] = va[e]; }\n";
    out << indent << "for (int e = 0; e < " << bChunks << "; ++e) { const int c = tid + e * " << t.threads()
        << "; *(uint4*)&sB[c / " << t.bn / 8 << "][(c % " << t.bn / 8 << ") * 8] = vb[e]; }\n";
  };
  auto emitScalarTile = [&](const std::string &indent) {
    // A: consecutive threads along K; B: consecutive threads along N.
    std::string la = tf32 ? decode(opA.dtype, "gA[gm * sAm + gk * sAk]") : "gA[gm * sAm + gk * sAk]";
    std::string lb = tf32 ? decode(opB.dtype, "gB[gk * sBk + gn * sBn]") : "gB[gk * sBk + gn * sBn]";
    // Partly unrolled: fully unrolled, these strided loads pushed the
    // kernel past 255 registers (spills) for some index maps.
    out << "#pragma unroll 4\n" << indent << "for (int e = 0; e < " << aPer << "; ++e) {\n";
    out << indent << "  const int idx = tid + e * " << t.threads() << ", mm = idx / " << t.bk << ", kk = idx % " << t.bk << ";\n";
    out << indent << "  const long long gm = m0 + mm, gk = k0 + kk;\n";
    out << indent << "  sA[mm][kk] = (gm < tsr_M && gk < tsr_K) ? " << la << " : " << lz << ";\n";
    out << indent << "}\n";
    out << "#pragma unroll 4\n" << indent << "for (int e = 0; e < " << bPer << "; ++e) {\n";
    out << indent << "  const int idx = tid + e * " << t.threads() << ", kk = idx / " << t.bn << ", nn = idx % " << t.bn << ";\n";
    out << indent << "  const long long gk = k0 + kk, gn = n0 + nn;\n";
    out << indent << "  sB[kk][nn] = (gk < tsr_K && gn < tsr_N) ? " << lb << " : " << lz << ";\n";
    out << indent << "}\n";
  };
  if (vec16) {
    out << "      uint4 va[" << aChunks << "], vb[" << bChunks << "];\n";
    out << "      if (tsr_vec) {\n";
    emitFetchVec("0LL", "        ");
    out << "      }\n";
  }
  out << "      for (long long k0 = 0; k0 < tsr_K; k0 += " << t.bk << ") {\n";
  out << "        __syncthreads();\n";
  if (vec16) {
    out << "        if (tsr_vec) {\n";
    emitCommitVec("          ");
    out << "        } else {\n";
    emitScalarTile("          ");
    out << "        }\n";
  } else {
    emitScalarTile("        ");
  }
  out << "        __syncthreads();\n";
  if (vec16) {
    out << "        if (tsr_vec && k0 + " << t.bk << " < tsr_K) {\n";
    emitFetchVec("(k0 + " + std::to_string(t.bk) + ")", "          ");
    out << "        }\n";
  }
  out << "#pragma unroll\n        for (int ks = 0; ks < " << t.bk << "; ks += " << kstep << ") {\n";
  if (!tf32) {
    const char *ty = g.input == GemmInput::BF16 ? "bf16" : "f16";
    out << "          unsigned af[" << mt << "][4], bfr[" << nt << "][2];\n";
    out << "#pragma unroll\n          for (int i = 0; i < " << mt << "; ++i) {\n";
    out << "            const int r = wm0 + i * 16 + g;\n";
    out << "            af[i][0] = *(const unsigned*)&sA[r][ks + 2 * q];\n";
    out << "            af[i][1] = *(const unsigned*)&sA[r + 8][ks + 2 * q];\n";
    out << "            af[i][2] = *(const unsigned*)&sA[r][ks + 2 * q + 8];\n";
    out << "            af[i][3] = *(const unsigned*)&sA[r + 8][ks + 2 * q + 8];\n";
    out << "          }\n";
    out << "#pragma unroll\n          for (int j = 0; j < " << nt << "; ++j) {\n";
    out << "            const int c = wn0 + j * 8 + g;\n";
    out << "            bfr[j][0] = (unsigned)sB[ks + 2 * q][c] | ((unsigned)sB[ks + 2 * q + 1][c] << 16);\n";
    out << "            bfr[j][1] = (unsigned)sB[ks + 2 * q + 8][c] | ((unsigned)sB[ks + 2 * q + 9][c] << 16);\n";
    out << "          }\n";
    out << "#pragma unroll\n          for (int i = 0; i < " << mt << "; ++i)\n#pragma unroll\n            for (int j = 0; j < "
        << nt << "; ++j)\n";
    out << "              asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32." << ty << "." << ty
        << ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\"\n";
    out << "                  : \"+f\"(acc[i][j][0]), \"+f\"(acc[i][j][1]), \"+f\"(acc[i][j][2]), \"+f\"(acc[i][j][3])\n";
    out << "                  : \"r\"(af[i][0]), \"r\"(af[i][1]), \"r\"(af[i][2]), \"r\"(af[i][3]), \"r\"(bfr[j][0]), "
           "\"r\"(bfr[j][1]));\n";
  } else {
    // tf32 m16n8k8: a0..a3 rows g/g+8, cols q and q+4; b0..b1 rows q and q+4.
    out << "          unsigned af[" << mt << "][4], bfr[" << nt << "][2];\n";
    out << "#pragma unroll\n          for (int i = 0; i < " << mt << "; ++i) {\n";
    out << "            const int r = wm0 + i * 16 + g;\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(af[i][0]) : \"f\"(sA[r][ks + q]));\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(af[i][1]) : \"f\"(sA[r + 8][ks + q]));\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(af[i][2]) : \"f\"(sA[r][ks + q + 4]));\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(af[i][3]) : \"f\"(sA[r + 8][ks + q + 4]));\n";
    out << "          }\n";
    out << "#pragma unroll\n          for (int j = 0; j < " << nt << "; ++j) {\n";
    out << "            const int c = wn0 + j * 8 + g;\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(bfr[j][0]) : \"f\"(sB[ks + q][c]));\n";
    out << "            asm(\"cvt.rna.tf32.f32 %0, %1;\" : \"=r\"(bfr[j][1]) : \"f\"(sB[ks + q + 4][c]));\n";
    out << "          }\n";
    out << "#pragma unroll\n          for (int i = 0; i < " << mt << "; ++i)\n#pragma unroll\n            for (int j = 0; j < "
        << nt << "; ++j)\n";
    out << "              asm volatile(\"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
           "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\"\n";
    out << "                  : \"+f\"(acc[i][j][0]), \"+f\"(acc[i][j][1]), \"+f\"(acc[i][j][2]), \"+f\"(acc[i][j][3])\n";
    out << "                  : \"r\"(af[i][0]), \"r\"(af[i][1]), \"r\"(af[i][2]), \"r\"(af[i][3]), \"r\"(bfr[j][0]), "
           "\"r\"(bfr[j][1]));\n";
  }
  out << "        }\n";
  out << "      }\n";
  // Epilogue: every accumulator element in range runs stages 1.. with the
  // contraction's reduce value bound to it.
  out << "#pragma unroll\n      for (int i = 0; i < " << mt << "; ++i)\n#pragma unroll\n        for (int j = 0; j < " << nt
      << "; ++j)\n#pragma unroll\n          for (int c = 0; c < 4; ++c) {\n";
  out << "            const long long p" << g.mLoop << " = m0 + wm0 + i * 16 + g + (c >> 1) * 8;\n";
  out << "            const long long p" << g.nLoop << " = n0 + wn0 + j * 8 + 2 * q + (c & 1);\n";
  out << "            if (p" << g.mLoop << " >= tsr_M || p" << g.nLoop << " >= tsr_N) continue;\n";
  emitEpilogueStages("acc[i][j][c]", "            ");
  out << "          }\n";
  out << "    }\n";
  out << "  }\n}\n\n";
}

void Emitter::emitGemmExtents(const GemmPlan &g) {
  const size_t base = numBase();
  out << "  const long long sAm = (long long)P.u[" << base + 0 << "], sAk = (long long)P.u[" << base + 1 << "];\n";
  out << "  const long long sBk = (long long)P.u[" << base + 2 << "], sBn = (long long)P.u[" << base + 3 << "];\n";
  out << "  (void)sAm; (void)sAk; (void)sBk; (void)sBn;\n";
  emitParallelExtents("  ");
  out << "  const long long tsr_M = tsr_e" << g.mLoop << ", tsr_N = tsr_e" << g.nLoop << ";\n";
  out << "  const long long tsr_K = " << idx(kernel.stages[0].inner[0]) << ";\n";
  out << "  const long long tsr_B = tsr_P / (tsr_M * tsr_N > 0 ? tsr_M * tsr_N : 1LL);\n";
}

void Emitter::emitGemmBatchSetup(const GemmPlan &g, const std::string &indent) {
  const Operand &opA = kernel.operands[g.aOperand], &opB = kernel.operands[g.bOperand];
  // Batch coordinates: the leading parallel loops.
  if (g.mLoop > 0)
    out << indent << "long long tsr_q = tsr_bt;\n";
  for (size_t i = g.mLoop; i-- > 0;) {
    if (i == 0)
      out << indent << "const long long p0 = tsr_q;\n";
    else
      out << indent << "const long long p" << i << " = tsr_q % tsr_e" << i << "; tsr_q /= tsr_e" << i << ";\n";
  }
  // A0/B0: the loads' offsets at m = n = k = 0 for this batch point.
  auto zeroOffset = [&](const Instr &l) {
    out << indent << "{\n" << indent << "  const long long p" << g.mLoop << " = 0, p" << g.nLoop << " = 0, r0 = 0; (void)p"
        << g.mLoop << "; (void)p" << g.nLoop << "; (void)r0;\n";
    out << indent << "  " << (l.operand == g.aOperand ? "tsr_A0" : "tsr_B0") << " = " << offset(l.operand, l.index)
        << ";\n";
    out << indent << "}\n";
  };
  out << indent << "long long tsr_A0, tsr_B0;\n";
  zeroOffset(kernel.stages[0].body[0].operand == g.aOperand ? kernel.stages[0].body[0] : kernel.stages[0].body[1]);
  zeroOffset(kernel.stages[0].body[0].operand == g.bOperand ? kernel.stages[0].body[0] : kernel.stages[0].body[1]);
  out << indent << "const " << stype(opA.dtype) << "* gA = b" << g.aOperand << " + tsr_A0;\n";
  out << indent << "const " << stype(opB.dtype) << "* gB = b" << g.bOperand << " + tsr_B0;\n";
}

// Stages 1.. (the epilogue) at one (m, n) point whose parallel loop
// variables are declared, with the contraction's reduce value `accExpr`.
void Emitter::emitEpilogueStages(const std::string &accExpr, const std::string &indent) {
  const Instr &red = kernel.stages[0].body[3];
  out << indent << "const " << ctype(red.dtype) << " " << val(red.result) << " = "
      << convert(accExpr, TESSERA_DTYPE_F32, red.dtype) << ";\n";
  // Later stages with their own reduce declarations.
  for (size_t si = 1; si < kernel.stages.size(); ++si)
    for (const Instr &in : kernel.stages[si].body)
      if (!in.isStore && in.op == Op::Reduce)
        out << indent << ctype(in.dtype) << " " << val(in.result) << ";\n";
  for (size_t si = 1; si < kernel.stages.size(); ++si) {
    const Stage &stage = kernel.stages[si];
    out << indent << "{\n";
    emitStageExtents(stage, si, indent + "  ");
    emitAccDecls(stage, indent + "  ");
    std::string lin = "tsr_l" + std::to_string(si);
    out << indent << "  for (long long " << lin << " = 0; " << lin << " < tsr_n" << si << "; ++" << lin << ") {\n";
    emitInnerDecompose(stage, si, indent + "    ", lin);
    emitBody(stage, indent + "    ", lin);
    out << indent << "  }\n";
    emitReduceFinalize(stage, indent + "  ");
    out << indent << "}\n";
  }
}

// The pipelined main loops of GemmKernel.h with this kernel's prologue,
// batch pointers and epilogue.
void Emitter::emitPipelined(const std::string &fn, size_t slots, const GemmPlan &g, const PipelinedGemm &cfg) {
  GemmHooks h;
  h.out = &out;
  h.prologue = [&] {
    emitPrologue(fn, slots, cfg.threads(), 1, cfg.family == GemmFamily::WgmmaTma ? kTensorMapParams : "");
    emitGemmExtents(g);
  };
  h.batchSetup = [&](const std::string &indent) { emitGemmBatchSetup(g, indent); };
  auto bind = [&](const std::string &indent) {
    out << indent << "const long long p" << g.mLoop << " = tsr_em, p" << g.nLoop << " = tsr_en; (void)p" << g.mLoop
        << "; (void)p" << g.nLoop << ";\n";
  };
  h.element = [&](const std::string &indent) {
    out << indent << "{\n";
    bind(indent + "  ");
    emitEpilogueStages("tsr_acc", indent + "  ");
    out << indent << "}\n";
  };
  if (cfg.plainStore) {
    // One store of the reduce value at [..., p_M, p_N] (unit stride along
    // p_N): 8 columns per thread, one 16-byte store when the row chunk is
    // whole and aligned.
    h.chunk8 = [&](const std::string &indent) {
      const Instr &red = kernel.stages[0].body[3];
      const Instr &st = kernel.stages[1].body[0];
      const Operand &o = kernel.operands[st.operand];
      auto enc = [&](int e) {
        return "(unsigned)(" + encode(convert("tsr_v" + std::to_string(e), TESSERA_DTYPE_F32, red.dtype), red.dtype,
                                      o.dtype) +
               ")";
      };
      out << indent << "{\n";
      bind(indent + "  ");
      out << indent << "  " << stype(o.dtype) << "* tsr_o = b" << st.operand << " + " << offset(st.operand, st.index)
          << ";\n";
      // Inline PTX: as a plain uint4 store, NVRTC merged it with the
      // scalar branch into four 4-byte stores.
      out << indent << "  if (tsr_nv == 8 && (((unsigned long long)tsr_o) & 15ULL) == 0ULL) {\n";
      out << indent << "    asm volatile(\"st.global.v4.u32 [%0], {%1, %2, %3, %4};\" :: \"l\"(__cvta_generic_to_global(tsr_o)), \"r\"("
          << enc(0) << " | (" << enc(1) << " << 16)), \"r\"(" << enc(2) << " | (" << enc(3) << " << 16)), \"r\"(" << enc(4)
          << " | (" << enc(5) << " << 16)), \"r\"(" << enc(6) << " | (" << enc(7) << " << 16)) : \"memory\");\n";
      out << indent << "  } else {\n";
      for (int e = 0; e < 8; ++e)
        out << indent << "    if (" << e << " < tsr_nv) tsr_o[" << e << "] = (" << stype(o.dtype) << ")" << enc(e)
            << ";\n";
      out << indent << "  }\n" << indent << "}\n";
    };
  }
  emitPipelinedGemm(fn, cfg, h);
}

// After cuBLASLt wrote the f32 product P (dense [batch..., M, N], slot
// numBase() + 5): the epilogue stages per parallel point, grid-stride.
// LibraryPlan::narrow: P is the output itself, rounded to its dtype.
// vec (KernelPlan::epiVec): where N % 8 == 0 and the bases are 16-byte
// aligned, each thread takes 8 consecutive columns per step: the product
// through one (narrow) or two (f32) 16-byte loads, epilogue loads and
// stores of the [..., p_N] form through 16-byte accesses (elements of 1, 2
// or 4 bytes; bf16/f16 outputs packed two at a time), a chunk whose
// operand offsets are not 8-element aligned element by element.
void Emitter::emitLibraryEpilogue(const std::string &fn, size_t slots, const LibraryPlan &lib, bool vec) {
  emitPrologue(fn, slots, 256);
  const tessera_dtype_t pt = lib.narrow ? kernel.operands[lib.narrowOperand].dtype : TESSERA_DTYPE_F32;
  out << "  const " << stype(pt) << "* tsr_prod = (const " << stype(pt) << "*)P.u[" << numBase() + 5 << "];\n";
  emitParallelExtents("  ");
  if (vec) {
    const size_t pn = kernel.parallel.size() - 1;
    const std::string pnv = "p" + std::to_string(pn);
    const Instr &red = kernel.stages[0].body[3];
    // Distinct vector accesses of the epilogue (loads along p_N, stores).
    std::vector<const Instr *> acc;
    std::set<std::string> seen;
    for (size_t si = 1; si < kernel.stages.size(); ++si)
      for (const Instr &in : kernel.stages[si].body) {
        bool along = false;
        for (const IndexExpr &e : in.index)
          along |= mentions(e, K::Parallel, static_cast<int64_t>(pn));
        if ((in.isStore || (in.op == Op::Load && along)) && seen.insert(accessKey(in)).second)
          acc.push_back(&in);
      }
    out << "  bool tsr_v = tsr_e" << pn << " > 0 && (tsr_e" << pn << " & 7LL) == 0LL && (((unsigned long long)tsr_prod) & 15ULL) == 0ULL;\n";
    std::set<int64_t> ops;
    for (const Instr *in : acc)
      if (ops.insert(in->operand).second)
        out << "  tsr_v = tsr_v && (((unsigned long long)b" << in->operand << ") & 15ULL) == 0ULL;\n";
    out << "  if (tsr_v) {\n";
    out << "    const long long tsr_nc = tsr_P >> 3;\n";
    out << "    for (long long tsr_f = (long long)blockIdx.x * blockDim.x + threadIdx.x; tsr_f < tsr_nc; tsr_f += "
           "(long long)gridDim.x * blockDim.x) {\n";
    out << "      const long long tsr_pt = tsr_f * 8;\n";
    emitParallelDecompose("      ", "tsr_pt");
    out << "      const long long tsr_pnb = " << pnv << ";\n";
    const int pw = static_cast<int>(2 * dtypeSize(pt));
    out << "      unsigned";
    for (int w = 0; w < pw; ++w)
      out << (w ? ", " : " ") << "tsr_pw_w" << w;
    out << ";\n";
    for (int q = 0; q < pw / 4; ++q)
      out << "      { const uint4 t = ((const uint4*)(tsr_prod + tsr_pt))[" << q << "]; tsr_pw_w" << 4 * q
          << " = t.x; tsr_pw_w" << 4 * q + 1 << " = t.y; tsr_pw_w" << 4 * q + 2 << " = t.z; tsr_pw_w" << 4 * q + 3
          << " = t.w; }\n";
    out << "      bool tsr_a = true;\n";
    for (const Instr *in : acc)
      out << "      tsr_a = tsr_a && ((" << offset(in->operand, in->index) << ") & 7LL) == 0LL;\n";
    out << "      if (tsr_a) {\n";
    const std::string in4 = "        ";
    std::map<std::string, std::string> prefixOf;
    std::vector<const Instr *> stores;
    int n = 0;
    for (const Instr *in : acc)
      if (!in->isStore) {
        std::string prefix = "tsr_x" + std::to_string(n++);
        emitVecLoad(*in, prefix, "0LL", true, in4);
        prefixOf[accessKey(*in)] = prefix;
      }
    sinkF32.clear();
    for (size_t si = 1; si < kernel.stages.size(); ++si)
      for (const Instr &in : kernel.stages[si].body)
        if (in.isStore) {
          const size_t k = stores.size();
          stores.push_back(&in);
          tessera_dtype_t dt = kernel.operands[in.operand].dtype;
          const bool f32Sink = options.smVersion >= 80 && (dt == TESSERA_DTYPE_BF16 || dt == TESSERA_DTYPE_F16) &&
                               typeOf(in.args[0]) == TESSERA_DTYPE_F32;
          if (f32Sink)
            sinkF32.insert(&in);
          out << in4 << (f32Sink ? std::string("float") : std::string(stype(dt)));
          for (int e = 0; e < 8; ++e)
            out << (e ? ", " : " ") << "tsr_oe_" << k << "_e" << e;
          out << ";\n";
        }
    for (int e = 0; e < 8; ++e) {
      loadOverride.clear();
      storeSink.clear();
      for (size_t si = 1; si < kernel.stages.size(); ++si)
        for (const Instr &in : kernel.stages[si].body)
          if (!in.isStore && in.op == Op::Load)
            if (auto it = prefixOf.find(accessKey(in)); it != prefixOf.end())
              loadOverride[&in] = vecElem(kernel.operands[in.operand].dtype, it->second, e);
      for (size_t k = 0; k < stores.size(); ++k)
        storeSink[stores[k]] = "tsr_oe_" + std::to_string(k) + "_e" + std::to_string(e);
      out << in4 << "{\n" << in4 << "  const long long " << pnv << " = tsr_pnb + " << e << "; (void)" << pnv << ";\n";
      out << in4 << "  const " << ctype(red.dtype) << " " << val(red.result) << " = "
          << convert(decode(pt, vecElem(pt, "tsr_pw", e)), TESSERA_DTYPE_F32, red.dtype) << ";\n";
      for (size_t si = 1; si < kernel.stages.size(); ++si) {
        out << in4 << "  {\n";
        emitBody(kernel.stages[si], in4 + "    ", "0LL");
        out << in4 << "  }\n";
      }
      out << in4 << "}\n";
    }
    loadOverride.clear();
    storeSink.clear();
    for (size_t k = 0; k < stores.size(); ++k)
      emitVecStore(*stores[k], "tsr_oe_" + std::to_string(k), "0LL", in4);
    sinkF32.clear();
    out << "      } else {\n";
    for (int e = 0; e < 8; ++e) {
      out << "        {\n          const long long " << pnv << " = tsr_pnb + " << e << "; (void)" << pnv << ";\n";
      emitEpilogueStages(decode(pt, "tsr_prod[tsr_pt + " + std::to_string(e) + "]"), "          ");
      out << "        }\n";
    }
    out << "      }\n    }\n    return;\n  }\n";
  }
  out << "  for (long long tsr_pt = (long long)blockIdx.x * blockDim.x + threadIdx.x; tsr_pt < tsr_P; tsr_pt += "
         "(long long)gridDim.x * blockDim.x) {\n";
  emitParallelDecompose("    ", "tsr_pt");
  emitEpilogueStages(decode(pt, "tsr_prod[tsr_pt]"), "    ");
  out << "  }\n}\n\n";
}

bool indexMentions(const IndexExpr &e, K kind, int64_t which) { return mentions(e, kind, which); }
bool affineIndex(const IndexExpr &e) { return affine(e); }

// Evaluates the index maps with the operand's dims.
int64_t accessOffset(const Kernel &k, const Instr &access, const int64_t *symbols, const std::vector<int64_t> &par,
                     int64_t r0) {
  const Operand &o = k.operands[access.operand];
  int64_t off = 0;
  int64_t inner[1] = {r0};
  for (size_t d = 0; d < access.index.size(); ++d) {
    int64_t i = evalIndex(access.index[d], symbols, par.data(), inner, nullptr);
    int64_t dim = evalIndex(o.shape[d], symbols, nullptr, nullptr, nullptr);
    off = d == 0 ? i : off * dim + i;
  }
  return off;
}

std::string storageType(tessera_dtype_t dtype) { return stype(dtype); }
std::string decodeElement(tessera_dtype_t dtype, const std::string &e) { return decode(dtype, e); }
std::string encodeElement(const std::string &e, tessera_dtype_t from, tessera_dtype_t to) {
  return encode(e, from, to);
}

bool generateProgram(const Program &program, const CodegenOptions &options, GeneratedProgram *out,
                     std::string *error) {
  GeneratedProgram gp;
  std::ostringstream src;
  src << kPrelude;
  std::set<size_t> structs;
  bool usesTensorMaps = false;
  std::ostringstream bodies;
  for (size_t ki = 0; ki < program.kernels.size(); ++ki) {
    const Kernel &k = program.kernels[ki];
    KernelPlan plan;
    plan.name = k.name;
    plan.symbol = "tsr_" + std::to_string(ki) + "_" + sanitize(k.name);
    if (k.kind == Kernel::Kind::Attention) { // FlashAttention.cpp
      std::ostringstream body;
      if (!emitAttention(program, ki, options, &plan, body, error))
        return false;
      structs.insert(plan.numSlots);
      bodies << "// ---- kernel " << ki << ": \"" << k.name << "\" (attention)\n" << body.str();
      gp.kernels.push_back(std::move(plan));
      continue;
    }
    for (const Stage &s : k.stages) {
      for (const Instr &in : s.body)
        plan.hasReduce |= !in.isStore && in.op == Op::Reduce;
      for (const IndexExpr &d : s.inner)
        plan.extentsUseParallel |= mentions(d, K::Parallel);
    }
    plan.flat = flattenable(k);
    plan.block = plan.hasReduce;
    plan.flatVec = plan.flat && vectorizable(k);
    plan.blockVec = plan.block && !plan.extentsUseParallel && vectorizable(k);
    plan.rowChunks = static_cast<int>(std::clamp<int64_t>(k.knobInt("row_chunks", kRowVecChunks), 1, kMaxRowVecChunks));
    plan.gemm = planGemm(k);
    if (plan.gemm.usable && plan.gemm.input == GemmInput::TF32 && options.smVersion < 80)
      plan.gemm.usable = false;
    GemmPlan &gm = plan.gemm;
    if (gm.usable && gm.input != GemmInput::TF32 && gm.aKContig && (gm.bNContig || gm.bKContig) &&
        options.smVersion >= 80) {
      const bool f16 = gm.input == GemmInput::F16;
      gm.wgmma = options.smVersion == 90 && options.archSpecific;
      // Where wgmma exists the mma.sync pipeline is only generated on
      // request (gemm_path=mma_async): each variant costs NVRTC ~1 s.
      gm.async = !gm.wgmma || k.knobString("gemm_path") == "mma_async";
      gm.asyncConfig = pipelinedGemmFor(GemmFamily::MmaAsync, options.smVersion, gm.bKContig, f16, gm.plainStore);
      // Kernels without batch dims take the TMA producer design (2-D tensor
      // maps); batched ones, or gemm_path=wgmma_cp_async, the cp.async one.
      const bool tma = k.parallel.size() == 2 && k.knobString("gemm_path") != "wgmma_cp_async";
      gm.wgmmaConfig = pipelinedGemmFor(tma ? GemmFamily::WgmmaTma : GemmFamily::Wgmma, options.smVersion,
                                        gm.bKContig, f16, gm.plainStore);
      usesTensorMaps |= gm.wgmma && tma;
      // Knob stages: the cp.async pipeline depth of the path gemm_path
      // selects. wgmma refills a stage two K tiles after reading it (3 or
      // more), mma.sync one later (2 or more); all stages must fit in the
      // shared memory of a block.
      if (k.knobs.count("stages")) {
        const bool wg = gm.wgmma && !(gm.async && k.knobString("gemm_path") == "mma_async");
        PipelinedGemm &c = wg ? gm.wgmmaConfig : gm.asyncConfig;
        const int64_t st = k.knobInt("stages", c.stages),
                      least = wg && c.family == GemmFamily::Wgmma ? 3 : 2;
        const int limit = options.smVersion == 90 || options.smVersion == 100 ? 227 * 1024
                          : options.smVersion == 80                              ? 163 * 1024
                                                                                 : 99 * 1024;
        PipelinedGemm tried = c;
        tried.stages = static_cast<int>(std::clamp<int64_t>(st, 1, 64));
        if (st < least || st > 16)
          plan.knobIssue = "knob stages=" + std::to_string(st) + ": the " + (wg ? "wgmma" : "mma_async") +
                           " pipeline needs " + std::to_string(least) + " to 16 stages";
        else if (tried.sharedBytes() > limit)
          plan.knobIssue = "knob stages=" + std::to_string(st) + ": " + std::to_string(tried.sharedBytes() / 1024) +
                           " KB of shared memory per block (the limit is " + std::to_string(limit / 1024) + " KB)";
        else
          c.stages = tried.stages;
      }
    }
    plan.library = planLibrary(k);
    plan.epiVec = plan.library.usable && epiVectorizable(k);
    size_t base = k.operands.size() + program.symbols.size();
    plan.extraSlots = plan.gemm.usable || plan.library.usable ? kGemmExtraSlots : 0;
    plan.numSlots = std::max<size_t>(1, base + plan.extraSlots);
    structs.insert(plan.numSlots);

    Emitter em(program, ki, options);
    em.rowChunks = plan.rowChunks;
    em.emitThread(plan.function(LaunchMode::Thread), plan.numSlots);
    if (plan.block)
      em.emitBlock(plan.function(LaunchMode::Block), plan.numSlots, plan.blockVec);
    if (plan.flat)
      em.emitFlat(plan.function(LaunchMode::Flat), plan.numSlots, plan.flatVec);
    if (plan.gemm.usable)
      em.emitGemm(plan.function(LaunchMode::Gemm), plan.numSlots, plan.gemm);
    if (gm.async)
      em.emitPipelined(plan.function(LaunchMode::GemmAsync), plan.numSlots, gm, gm.asyncConfig);
    if (gm.wgmma)
      em.emitPipelined(plan.function(LaunchMode::Wgmma), plan.numSlots, gm, gm.wgmmaConfig);
    if (plan.library.usable)
      em.emitLibraryEpilogue(plan.function(LaunchMode::LibEpilogue), plan.numSlots, plan.library, plan.epiVec);
    if (!em.error.empty()) {
      *error = "kernel \"" + k.name + "\": " + em.error;
      return false;
    }
    bodies << "// ---- kernel " << ki << ": \"" << k.name << "\"\n" << em.out.str();
    gp.kernels.push_back(std::move(plan));
  }
  for (size_t n : structs)
    src << "struct TsrP" << n << " { unsigned long long u[" << n << "]; };\n";
  if (usesTensorMaps)
    src << kTensorMapStruct;
  src << "\n" << bodies.str();
  gp.source = src.str();
  *out = std::move(gp);
  return true;
}

// ---- launch planning ------------------------------------------------------------

namespace {

uint32_t clampGrid(int64_t blocks) { return static_cast<uint32_t>(std::max<int64_t>(1, std::min<int64_t>(blocks, 1 << 30))); }

// Offset of an affine load at (batch..., pM, pN, r0) relative to (0.., 0, 0, 0).
int64_t linearOffset(const Program &p, const Kernel &k, const Instr &load, const int64_t *symbols,
                     const std::vector<int64_t> &par, int64_t r0) {
  (void)p;
  return accessOffset(k, load, symbols, par, r0);
}

} // namespace

bool planLaunch(const Program &program, size_t kernel, const KernelPlan &plan, const int64_t *symbols,
                uint32_t smCount, LaunchConfig *out, std::string *error) {
  const Kernel &k = program.kernels[kernel];
  if (k.kind == Kernel::Kind::Attention)
    return planAttentionLaunch(program, kernel, plan, symbols, smCount, out, error);
  if (smCount == 0)
    smCount = 132;
  LaunchConfig cfg;
  int64_t P = 1;
  std::vector<int64_t> ext;
  for (const IndexExpr &e : k.parallel) {
    ext.push_back(evalIndex(e, symbols, nullptr, nullptr, nullptr));
    if (ext.back() <= 0) {
      cfg.empty = true;
      *out = cfg;
      return true;
    }
    P *= ext.back();
  }
  auto stageElems = [&](const Stage &s) {
    int64_t n = 1;
    for (const IndexExpr &e : s.inner)
      n *= std::max<int64_t>(0, evalIndex(e, symbols, nullptr, nullptr, nullptr));
    return n;
  };
  if (plan.gemm.usable) {
    const Instr &la = k.stages[0].body[0].operand == plan.gemm.aOperand ? k.stages[0].body[0] : k.stages[0].body[1];
    const Instr &lb = &la == &k.stages[0].body[0] ? k.stages[0].body[1] : k.stages[0].body[0];
    std::vector<int64_t> zero(k.parallel.size(), 0), um = zero, un = zero;
    um[plan.gemm.mLoop] = 1;
    un[plan.gemm.nLoop] = 1;
    int64_t a0 = linearOffset(program, k, la, symbols, zero, 0), b0 = linearOffset(program, k, lb, symbols, zero, 0);
    cfg.extras = {linearOffset(program, k, la, symbols, um, 0) - a0, linearOffset(program, k, la, symbols, zero, 1) - a0,
                  linearOffset(program, k, lb, symbols, zero, 1) - b0, linearOffset(program, k, lb, symbols, un, 0) - b0};
    const GemmTile &t = plan.gemm.tile;
    int64_t M = ext[plan.gemm.mLoop], N = ext[plan.gemm.nLoop], batch = P / (M * N);
    int64_t K = evalIndex(k.stages[0].inner[0], symbols, nullptr, nullptr, nullptr);
    // 16-byte loads: unit inner strides, 8-element aligned rows, bases and
    // batch offsets (device allocations are 256-byte aligned).
    bool vec = plan.gemm.input != GemmInput::TF32 && cfg.extras[1] == 1 && cfg.extras[0] % 8 == 0 && K % 8 == 0 &&
               cfg.extras[3] == 1 && cfg.extras[2] % 8 == 0 && N % 8 == 0 && a0 % 8 == 0 && b0 % 8 == 0;
    for (size_t i = 0; i < plan.gemm.mLoop && vec; ++i) {
      std::vector<int64_t> ub = zero;
      ub[i] = 1;
      vec = (linearOffset(program, k, la, symbols, ub, 0) - a0) % 8 == 0 &&
            (linearOffset(program, k, lb, symbols, ub, 0) - b0) % 8 == 0;
    }
    cfg.extras.push_back(vec ? 1 : 0);
    cfg.extras.push_back(0); // the f32 product of the library path (_epi only)
    // The pipelined variants: A contiguous along k, B along n (or k), rows
    // and bases in whole 16-byte chunks.
    const GemmPlan &g = plan.gemm;
    const int64_t sAm = cfg.extras[0], sAk = cfg.extras[1], sBk = cfg.extras[2], sBn = cfg.extras[3];
    bool pipe = (g.async || g.wgmma) && sAk == 1 && sAm % 8 == 0 && K % 8 == 0 && a0 % 8 == 0 && b0 % 8 == 0 &&
                (g.bKContig ? sBk == 1 && sBn % 8 == 0 : sBn == 1 && sBk % 8 == 0 && N % 8 == 0);
    for (size_t i = 0; i < g.mLoop && pipe; ++i) {
      std::vector<int64_t> ub = zero;
      ub[i] = 1;
      pipe = (linearOffset(program, k, la, symbols, ub, 0) - a0) % 8 == 0 &&
             (linearOffset(program, k, lb, symbols, ub, 0) - b0) % 8 == 0;
    }
    const std::string path = k.knobString("gemm_path");
    cfg.grid[2] = static_cast<uint32_t>(std::min<int64_t>(batch, 65535));
    if (pipe && path != "mma") {
      const bool wg = g.wgmma && !(g.async && path == "mma_async");
      const PipelinedGemm &c = wg ? g.wgmmaConfig : g.asyncConfig;
      cfg.mode = wg ? LaunchMode::Wgmma : LaunchMode::GemmAsync;
      cfg.grid[0] = clampGrid(((M + c.bm - 1) / c.bm) * ((N + c.bn - 1) / c.bn));
      if (wg && c.family == GemmFamily::WgmmaTma) {
        // Persistent: one block per SM walks the tiles.
        cfg.grid[0] = std::min<uint32_t>(cfg.grid[0], smCount);
        const bool f16 = g.input == GemmInput::F16;
        TensorMapSpec a{static_cast<size_t>(g.aOperand), a0, {uint64_t(K), uint64_t(M)}, sAm,
                        {uint32_t(c.bk), uint32_t(c.bm)}, f16};
        TensorMapSpec b{static_cast<size_t>(g.bOperand), b0, {uint64_t(N), uint64_t(K)}, sBk, {64u, uint32_t(c.bk)},
                        f16};
        if (g.bKContig)
          b = {static_cast<size_t>(g.bOperand), b0, {uint64_t(K), uint64_t(N)}, sBn,
               {uint32_t(c.bk), uint32_t(c.bn)}, f16};
        cfg.tensorMaps = {a, b};
      }
      cfg.block[0] = static_cast<uint32_t>(c.threads());
      cfg.sharedBytes = static_cast<uint32_t>(c.sharedBytes());
      *out = cfg;
      return true;
    }
    int64_t tiles = ((M + t.bm - 1) / t.bm) * ((N + t.bn - 1) / t.bn);
    cfg.mode = LaunchMode::Gemm;
    cfg.grid[0] = clampGrid(tiles);
    cfg.block[0] = static_cast<uint32_t>(t.threads());
    *out = cfg;
    return true;
  }
  if (plan.flat) {
    int64_t total = P * stageElems(k.stages[0]);
    if (total <= 0) {
      cfg.empty = true;
      *out = cfg;
      return true;
    }
    cfg.mode = LaunchMode::Flat;
    cfg.block[0] = 256;
    // The 16-byte path gives each thread 8 elements per step.
    int64_t n0 = stageElems(k.stages[0]);
    int64_t work = plan.flatVec && n0 > 0 && n0 % 8 == 0 ? total / 8 : total;
    cfg.grid[0] = clampGrid(std::min<int64_t>((work + 255) / 256, int64_t(smCount) * 32));
    *out = cfg;
    return true;
  }
  int64_t maxInner = 0;
  if (!plan.extentsUseParallel)
    for (const Stage &s : k.stages)
      maxInner = std::max(maxInner, stageElems(s));
  // A block per parallel point pays off when rows are long, or when there
  // are too few points to fill the GPU with one thread each.
  bool useBlock = plan.block && !plan.extentsUseParallel && plan.hasReduce &&
                  (maxInner >= 256 || (maxInner >= 32 && P < int64_t(smCount) * 256));
  if (useBlock) {
    int64_t threads = maxInner >= 8192 ? 512 : maxInner >= 1024 ? 256 : std::max<int64_t>(32, (maxInner + 31) / 32 * 32);
    threads = std::min<int64_t>(threads, 256);
    if (maxInner >= 8192)
      threads = 512;
    // Row in registers: plan.rowChunks chunks of 8 per thread.
    const int64_t rc = plan.rowChunks;
    if (plan.blockVec && maxInner % 8 == 0 && maxInner <= rc * 8 * 512) {
      int64_t threadsNeeded = (maxInner / 8 + rc - 1) / rc;
      threads = std::min<int64_t>(512, std::max<int64_t>(32, (threadsNeeded + 31) / 32 * 32));
    }
    // Knob warps: the block size (the _block code strides by blockDim.x and
    // keeps the row in registers only where rowChunks * 8 * blockDim.x
    // covers it, so any size up to its launch bound of 512 is correct).
    if (int64_t w = k.knobInt("warps", 0); w >= 1 && w <= 16)
      threads = 32 * w;
    cfg.mode = LaunchMode::Block;
    cfg.block[0] = static_cast<uint32_t>(threads);
    cfg.grid[0] = clampGrid(P);
    *out = cfg;
    return true;
  }
  cfg.mode = LaunchMode::Thread;
  cfg.block[0] = 128;
  cfg.grid[0] = clampGrid(std::min<int64_t>((P + 127) / 128, int64_t(smCount) * 32));
  (void)error;
  *out = cfg;
  return true;
}

bool planLibraryEpilogue(const Program &program, size_t kernel, const KernelPlan &plan, const int64_t *symbols,
                         uint32_t smCount, LaunchConfig *out) {
  const Kernel &k = program.kernels[kernel];
  if (!plan.library.usable)
    return false;
  LaunchConfig cfg;
  int64_t P = 1;
  for (const IndexExpr &e : k.parallel)
    P *= std::max<int64_t>(0, evalIndex(e, symbols, nullptr, nullptr, nullptr));
  cfg.empty = P == 0;
  cfg.mode = LaunchMode::LibEpilogue;
  cfg.block[0] = 256;
  // The 16-byte path gives each thread 8 columns per step.
  const int64_t N = std::max<int64_t>(0, evalIndex(k.parallel.back(), symbols, nullptr, nullptr, nullptr));
  const int64_t work = plan.epiVec && N % 8 == 0 ? P / 8 : P;
  cfg.grid[0] = clampGrid(std::min<int64_t>((work + 255) / 256, int64_t(smCount ? smCount : 132) * 32));
  cfg.extras.assign(kGemmExtraSlots, 0);
  *out = cfg;
  return true;
}

} // namespace tessera::cuda
