// Fusion: Graph IR -> Schedule IR. See docs/compiler.md for the rules.
//
// The lowering is built around one recursive function, emitValue(v, index):
// it produces the SSA scalar of value `v` at a multi-index given as Schedule
// IR index expressions. A materialized value (parameter, constant buffer,
// kernel output) becomes a load; an inlined value (elementwise op or data
// movement) recomputes itself from its operands at mapped indices. Kernels
// are therefore "roots" (the values that get stored) plus everything inlined
// into them. Heavy ops (reductions, normalizations, matmul, convolution,
// pooling) own the iteration structure of their kernel; elementwise
// consumers of their result are emitted in the kernel's last stage
// (epilogue fusion).
#include "fusion/Fusion.h"

#include "ir/OpRegistry.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace tessera::fusion {
namespace {

using ir::OpKind;
using ir::ValueId;
using IE = schedule::IndexExpr;
using IK = schedule::IndexExpr::Kind;
using SOp = schedule::Op;

//===----------------------------------------------------------------------===//
// Index expressions with light simplification (keeps dumps readable and
// index math cheap for plugins that do not simplify).
//===----------------------------------------------------------------------===//

IE cst(int64_t v) { return IE::constant(v); }
bool isConstVal(const IE &e, int64_t v) { return e.isConst() && e.value == v; }
bool isBoolIndex(const IE &e) {
  return e.kind == IK::Lt || e.kind == IK::Le || e.kind == IK::Eq || e.kind == IK::Ne || e.kind == IK::And;
}

IE bin(IK k, IE a, IE b) {
  if (a.isConst() && b.isConst() && !((k == IK::FloorDiv || k == IK::Mod) && b.value == 0)) {
    IE e = IE::binary(k, a, b);
    return cst(schedule::evalIndex(e, nullptr, nullptr, nullptr, nullptr));
  }
  switch (k) {
  case IK::Add:
    if (isConstVal(a, 0)) return b;
    if (isConstVal(b, 0)) return a;
    break;
  case IK::Sub:
    if (isConstVal(b, 0)) return a;
    if (a == b) return cst(0);
    break;
  case IK::Mul:
    if (isConstVal(a, 0) || isConstVal(b, 0)) return cst(0);
    if (isConstVal(a, 1)) return b;
    if (isConstVal(b, 1)) return a;
    break;
  case IK::FloorDiv:
    if (isConstVal(b, 1)) return a;
    break;
  case IK::Mod:
    if (isConstVal(b, 1)) return cst(0);
    break;
  case IK::And:
    if (isConstVal(a, 1) && isBoolIndex(b)) return b;
    if (isConstVal(b, 1) && isBoolIndex(a)) return a;
    if (isConstVal(a, 0) || isConstVal(b, 0)) return cst(0);
    break;
  default: break;
  }
  return IE::binary(k, std::move(a), std::move(b));
}
IE add(IE a, IE b) { return bin(IK::Add, std::move(a), std::move(b)); }
IE sub(IE a, IE b) { return bin(IK::Sub, std::move(a), std::move(b)); }
IE mul(IE a, IE b) { return bin(IK::Mul, std::move(a), std::move(b)); }
IE fdiv(IE a, IE b) { return bin(IK::FloorDiv, std::move(a), std::move(b)); }
IE mod(IE a, IE b) { return bin(IK::Mod, std::move(a), std::move(b)); }
IE imin(IE a, IE b) { return bin(IK::Min, std::move(a), std::move(b)); }
IE imax(IE a, IE b) { return bin(IK::Max, std::move(a), std::move(b)); }
IE lt(IE a, IE b) { return bin(IK::Lt, std::move(a), std::move(b)); }
IE le(IE a, IE b) { return bin(IK::Le, std::move(a), std::move(b)); }
IE land(IE a, IE b) { return bin(IK::And, std::move(a), std::move(b)); }

// True when `e` uses only + - * over constants, symbols and loop variables
// (what a GEMM path can turn into strides).
bool hasLoopVar(const IE &e) {
  if (e.kind == IK::Parallel || e.kind == IK::Inner || e.kind == IK::Value)
    return true;
  return std::any_of(e.args.begin(), e.args.end(), hasLoopVar);
}
bool isAffineIndex(const IE &e) {
  if (!hasLoopVar(e))
    return true; // constants and symbol arithmetic are fixed per launch
  switch (e.kind) {
  case IK::Const:
  case IK::Symbol:
  case IK::Parallel:
  case IK::Inner: return true;
  case IK::Add:
  case IK::Sub:
  case IK::Mul: return isAffineIndex(e.args[0]) && isAffineIndex(e.args[1]);
  default: return false;
  }
}

// The v1 text parser reads no negative literals, so `x + -3` is written
// `x - 3` and a lone -3 as `0 - 3` before a kernel is finished.
IE sanitize(const IE &e) {
  if (e.kind == IK::Const)
    return e.value < 0 && e.value != std::numeric_limits<int64_t>::min() ? IE::binary(IK::Sub, cst(0), cst(-e.value))
                                                                         : e;
  if (e.args.size() != 2)
    return e;
  if (e.kind == IK::Add && e.args[1].isConst() && e.args[1].value < 0 &&
      e.args[1].value != std::numeric_limits<int64_t>::min())
    return IE::binary(IK::Sub, sanitize(e.args[0]), cst(-e.args[1].value));
  if (e.kind == IK::Sub && e.args[1].isConst() && e.args[1].value < 0 &&
      e.args[1].value != std::numeric_limits<int64_t>::min())
    return IE::binary(IK::Add, sanitize(e.args[0]), cst(-e.args[1].value));
  return IE::binary(e.kind, sanitize(e.args[0]), sanitize(e.args[1]));
}

void sanitizeKernel(schedule::Kernel &k) {
  auto all = [](std::vector<IE> &v) {
    for (IE &e : v)
      e = sanitize(e);
  };
  for (schedule::Operand &o : k.operands)
    all(o.shape);
  all(k.parallel);
  for (schedule::Stage &s : k.stages) {
    all(s.inner);
    for (schedule::Instr &in : s.body) {
      all(in.index);
      if (in.mask)
        *in.mask = sanitize(*in.mask);
      if (in.op == SOp::Index)
        in.indexValue = sanitize(in.indexValue);
    }
  }
}

std::string indexKey(const std::vector<IE> &idx) {
  std::string s;
  for (const IE &e : idx)
    s += schedule::printIndex(e) + ",";
  return s;
}

//===----------------------------------------------------------------------===//
// Dtypes.
//===----------------------------------------------------------------------===//

tessera_dtype_t toSir(ir::DType d) { return static_cast<tessera_dtype_t>(static_cast<int32_t>(d)); }

// The dtype arithmetic on a value of storage dtype `d` runs in: f32 for the
// narrow floats, f64 stays f64, integers and bool compute in their own type.
ir::DType computeType(ir::DType d) {
  switch (d) {
  case ir::DType::F32:
  case ir::DType::F16:
  case ir::DType::BF16:
  case ir::DType::F8E4M3:
  case ir::DType::F8E5M2: return ir::DType::F32;
  default: return d;
  }
}
bool isNarrowFloat(ir::DType d) {
  return d == ir::DType::F16 || d == ir::DType::BF16 || d == ir::DType::F8E4M3 || d == ir::DType::F8E5M2;
}

// Accumulation dtype of a reduction producing `type`: @accum when present
// (never narrower than the compute type), else the compute type.
ir::DType accumType(const ir::TensorType &type) {
  ir::DType c = computeType(type.dtype);
  if (!type.policy.accum)
    return c;
  ir::DType a = computeType(*type.policy.accum);
  if (ir::isFloat(c) && ir::isFloat(a))
    return ir::dtypeBits(a) >= ir::dtypeBits(c) ? a : c;
  if (ir::isInteger(c) && ir::isInteger(a))
    return ir::dtypeBits(a) >= ir::dtypeBits(c) ? a : c;
  return c;
}

//===----------------------------------------------------------------------===//
// Constant payloads: decoding "hex:"/"base64:" data and encoding numbers in
// a dtype's storage format.
//===----------------------------------------------------------------------===//

std::optional<std::vector<uint8_t>> decodePayload(const std::string &data) {
  std::vector<uint8_t> bytes;
  if (data.rfind("hex:", 0) == 0) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    std::string hex = data.substr(4);
    if (hex.size() % 2)
      return std::nullopt;
    for (size_t i = 0; i < hex.size(); i += 2) {
      int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      bytes.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
    return bytes;
  }
  if (data.rfind("base64:", 0) == 0) {
    auto sextet = [](char c) -> int {
      if (c >= 'A' && c <= 'Z') return c - 'A';
      if (c >= 'a' && c <= 'z') return c - 'a' + 26;
      if (c >= '0' && c <= '9') return c - '0' + 52;
      if (c == '+') return 62;
      if (c == '/') return 63;
      return -1;
    };
    uint32_t acc = 0;
    int bits = 0;
    for (char c : data.substr(7)) {
      if (c == '=')
        break;
      int v = sextet(c);
      if (v < 0)
        return std::nullopt;
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
      }
    }
    return bytes;
  }
  return std::nullopt;
}

// Round-to-nearest-even float -> IEEE half / bfloat16 / OCP fp8 bits, by
// rounding the f32 bit pattern (exact for values already of that format;
// otherwise RNE like a store).
uint16_t f32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f))
    return static_cast<uint16_t>((u >> 16) | 0x40);
  uint32_t lsb = (u >> 16) & 1;
  u += 0x7FFF + lsb;
  return static_cast<uint16_t>(u >> 16);
}

// Generic encoder for small float formats (1 sign bit, `eb` exponent bits,
// `mb` mantissa bits, IEEE-style bias); `fnE4M3` selects OCP e4m3fn (no
// infinities; the all-ones exponent is normal except the NaN pattern).
uint32_t encodeSmallFloat(double x, int eb, int mb, bool fnE4M3) {
  uint32_t sign = std::signbit(x) ? 1u : 0u;
  uint32_t signBit = sign << (eb + mb);
  uint32_t expAllOnes = (1u << eb) - 1;
  if (std::isnan(x))
    return fnE4M3 ? (signBit | 0x7F) : (signBit | (expAllOnes << mb) | (1u << (mb - 1)));
  double a = std::fabs(x);
  int bias = (1 << (eb - 1)) - 1;
  double maxFinite = fnE4M3 ? 448.0 : std::ldexp(2.0 - std::ldexp(1.0, -mb), int(expAllOnes) - 1 - bias);
  if (std::isinf(a) || a > maxFinite) {
    if (fnE4M3)
      return signBit | 0x7F; // no infinities: NaN (callers pass rounded values)
    return signBit | (expAllOnes << mb);
  }
  if (a == 0)
    return signBit;
  int e;
  std::frexp(a, &e); // a = m * 2^e, m in [0.5, 1)
  int exp = e - 1;   // a = 1.f * 2^exp
  int minExp = 1 - bias;
  uint32_t biased, mant;
  if (exp < minExp) { // subnormal
    double scaled = std::nearbyint(std::ldexp(a, -(minExp - mb)));
    mant = static_cast<uint32_t>(scaled);
    biased = 0;
    if (mant >> mb) { // rounded up to the smallest normal
      biased = 1;
      mant &= (1u << mb) - 1;
    }
  } else {
    double scaled = std::nearbyint(std::ldexp(a, mb - exp)); // in [2^mb, 2^(mb+1)]
    uint32_t m = static_cast<uint32_t>(scaled);
    if (m >> (mb + 1)) {
      m >>= 1;
      ++exp;
    }
    biased = static_cast<uint32_t>(exp + bias);
    mant = m & ((1u << mb) - 1);
  }
  return signBit | (biased << mb) | mant;
}

// Appends x encoded as `dtype` (little-endian).
void appendEncoded(std::vector<uint8_t> &out, double x, ir::DType dtype) {
  auto put = [&](uint64_t bits, unsigned bytes) {
    for (unsigned b = 0; b < bytes; ++b)
      out.push_back(static_cast<uint8_t>((bits >> (8 * b)) & 0xFF));
  };
  switch (dtype) {
  case ir::DType::F64: {
    uint64_t u;
    std::memcpy(&u, &x, 8);
    put(u, 8);
    return;
  }
  case ir::DType::F32: {
    float f = static_cast<float>(x);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    put(u, 4);
    return;
  }
  case ir::DType::BF16: put(f32ToBf16(static_cast<float>(x)), 2); return;
  case ir::DType::F16: put(encodeSmallFloat(x, 5, 10, false), 2); return;
  case ir::DType::F8E4M3: put(encodeSmallFloat(x, 4, 3, true), 1); return;
  case ir::DType::F8E5M2: put(encodeSmallFloat(x, 5, 2, false), 1); return;
  case ir::DType::Bool: put(x != 0 ? 1 : 0, 1); return;
  default: break;
  }
  // Integers: truncate toward zero, wrap (two's complement), like a cast.
  int64_t v = std::isfinite(x) ? static_cast<int64_t>(std::trunc(std::fmod(x, 18446744073709551616.0))) : 0;
  put(static_cast<uint64_t>(v), ir::dtypeBits(dtype) / 8);
}

//===----------------------------------------------------------------------===//
// The lowering.
//===----------------------------------------------------------------------===//

bool isElementwise(OpKind k) {
  return ir::isElementwiseUnary(k) || ir::isElementwiseBinary(k) || k == OpKind::Select || k == OpKind::Cast;
}
bool isHeavy(OpKind k) {
  switch (k) {
  case OpKind::ReduceSum: case OpKind::ReduceMean: case OpKind::ReduceMax: case OpKind::ReduceMin:
  case OpKind::ReduceProd: case OpKind::Argmax: case OpKind::Argmin: case OpKind::Softmax:
  case OpKind::LogSoftmax: case OpKind::LayerNorm: case OpKind::RmsNorm: case OpKind::Matmul:
  case OpKind::Conv2d: case OpKind::MaxPool2d: case OpKind::AvgPool2d:
    return true;
  default: return false;
  }
}
// Data movement whose index map is a pure function of the output index
// (no masks, no loaded indices): foldable into a load's index.
bool isPureView(OpKind k) {
  switch (k) {
  case OpKind::Transpose: case OpKind::Reshape: case OpKind::BroadcastTo: case OpKind::ExpandDims:
  case OpKind::Squeeze: case OpKind::Slice: case OpKind::Split:
    return true;
  default: return false;
  }
}

std::optional<SOp> unaryScalarOp(const ir::Operation &op) {
  switch (op.kind) {
  case OpKind::Neg: return SOp::Neg;
  case OpKind::Abs: return SOp::Abs;
  case OpKind::Exp: return SOp::Exp;
  case OpKind::Log: return SOp::Log;
  case OpKind::Sqrt: return SOp::Sqrt;
  case OpKind::Rsqrt: return SOp::Rsqrt;
  case OpKind::Tanh: return SOp::Tanh;
  case OpKind::Sigmoid: return SOp::Sigmoid;
  case OpKind::Relu: return SOp::Relu;
  case OpKind::Gelu: {
    std::string approx = op.attrs.getString("approximate", "none");
    if (approx == "none") return SOp::GeluErf;
    if (approx == "tanh") return SOp::GeluTanh;
    return std::nullopt;
  }
  case OpKind::Silu: return SOp::Silu;
  case OpKind::Erf: return SOp::Erf;
  case OpKind::Sin: return SOp::Sin;
  case OpKind::Cos: return SOp::Cos;
  case OpKind::Floor: return SOp::Floor;
  case OpKind::Ceil: return SOp::Ceil;
  case OpKind::Sign: return SOp::Sign;
  case OpKind::Reciprocal: return SOp::Reciprocal;
  case OpKind::Not: return SOp::Not;
  default: return std::nullopt;
  }
}

SOp binaryScalarOp(OpKind k) {
  switch (k) {
  case OpKind::Add: return SOp::Add;
  case OpKind::Sub: return SOp::Sub;
  case OpKind::Mul: return SOp::Mul;
  case OpKind::Div: return SOp::Div;
  case OpKind::Pow: return SOp::Pow;
  case OpKind::Max: return SOp::Max;
  case OpKind::Min: return SOp::Min;
  case OpKind::Mod: return SOp::Mod;
  case OpKind::Eq: return SOp::Eq;
  case OpKind::Ne: return SOp::Ne;
  case OpKind::Lt: return SOp::Lt;
  case OpKind::Le: return SOp::Le;
  case OpKind::Gt: return SOp::Gt;
  case OpKind::Ge: return SOp::Ge;
  case OpKind::And: return SOp::And;
  case OpKind::Or: return SOp::Or;
  case OpKind::Xor: return SOp::Xor;
  default: break;
  }
  assert(false && "binaryScalarOp on a non-binary op");
  return SOp::Add;
}

// How a reshape maps dims: minimal runs of input and output dims (size-1
// dims left out) whose products are equal. One group over everything when
// no finer grouping is provable (symbolic dims).
struct ReshapePlan {
  struct Group {
    size_t i0, i1, j0, j1;
  };
  std::vector<size_t> ins, outs; // non-unit dims
  std::vector<Group> groups;
  // Every group has one input dim: the index is affine (no div/mod of loop
  // variables).
  bool splitsOnly() const {
    return std::all_of(groups.begin(), groups.end(), [](const Group &g) { return g.i0 == g.i1; });
  }
};

ReshapePlan planReshape(const std::vector<ir::Dim> &in, const std::vector<ir::Dim> &out) {
  auto isOne = [](const ir::Dim &d) { return d.constantValue() == std::optional<int64_t>(1); };
  ReshapePlan plan;
  std::vector<size_t> &ins = plan.ins, &outs = plan.outs;
  std::vector<ReshapePlan::Group> &groups = plan.groups;
  for (size_t i = 0; i < in.size(); ++i)
    if (!isOne(in[i])) ins.push_back(i);
  for (size_t j = 0; j < out.size(); ++j)
    if (!isOne(out[j])) outs.push_back(j);
  auto product = [](const std::vector<ir::Dim> &dims, const std::vector<size_t> &sel, size_t from,
                    size_t to) -> std::optional<ir::Dim> {
    ir::Dim p(1);
    for (size_t k = from; k <= to; ++k) {
      Expected<ir::Dim> m = ir::Dim::mul(p, dims[sel[k]]);
      if (!m)
        return std::nullopt;
      p = m.take();
    }
    return p;
  };
  size_t i = 0, j = 0;
  bool ok = true;
  while (i < ins.size() && j < outs.size()) {
    std::optional<ReshapePlan::Group> best;
    for (size_t a = i; a < ins.size() && !best; ++a)
      for (size_t b = j; b < outs.size(); ++b) {
        std::optional<ir::Dim> pi = product(in, ins, i, a), po = product(out, outs, j, b);
        if (pi && po && *pi == *po) {
          best = ReshapePlan::Group{i, a, j, b};
          break;
        }
      }
    if (!best) {
      ok = false;
      break;
    }
    groups.push_back(*best);
    i = best->i1 + 1;
    j = best->j1 + 1;
  }
  if (!ok || i != ins.size() || j != outs.size()) {
    groups.clear();
    if (!ins.empty() && !outs.empty())
      groups.push_back(ReshapePlan::Group{0, ins.size() - 1, 0, outs.size() - 1});
  }
  return plan;
}

// One kernel under construction.
struct KernelBuilder {
  schedule::Kernel k;
  KernelPlan plan;
  int64_t nextValue = 0;
  std::vector<tessera_dtype_t> valueType; // by SSA id
  std::map<std::string, int64_t> memo;    // (value, index) -> SSA id, per stage
  // Values whose scalar is already known in the current stage at one index
  // (the heavy op's result inside its epilogue).
  std::map<ValueId, std::pair<std::string, int64_t>> overrides;

  schedule::Stage &stage() { return k.stages.back(); }
  void beginStage(schedule::Stage::Kind kind, std::vector<IE> inner) {
    schedule::Stage s;
    s.kind = kind;
    s.inner = std::move(inner);
    k.stages.push_back(std::move(s));
    memo.clear();
    overrides.clear();
  }
  int64_t push(schedule::Instr in) {
    in.result = nextValue++;
    valueType.push_back(in.dtype);
    stage().body.push_back(std::move(in));
    return nextValue - 1;
  }
  tessera_dtype_t typeOf(int64_t id) const { return valueType[static_cast<size_t>(id)]; }

  int64_t constant(double c, ir::DType dt) {
    std::ostringstream key;
    key << "#c" << int(dt) << ":" << std::hexfloat << c;
    if (auto it = memo.find(key.str()); it != memo.end())
      return it->second;
    schedule::Instr in;
    in.op = SOp::Const;
    in.dtype = toSir(dt);
    in.constant = c;
    int64_t id = push(std::move(in));
    memo[key.str()] = id;
    return id;
  }
  int64_t index(const IE &e, ir::DType dt) {
    std::string key = "#i" + std::to_string(int(dt)) + ":" + schedule::printIndex(e);
    if (auto it = memo.find(key); it != memo.end())
      return it->second;
    schedule::Instr in;
    in.op = SOp::Index;
    in.dtype = toSir(dt);
    in.indexValue = e;
    int64_t id = push(std::move(in));
    memo[key] = id;
    return id;
  }
  int64_t op(SOp o, ir::DType dt, std::vector<int64_t> args) {
    schedule::Instr in;
    in.op = o;
    in.dtype = toSir(dt);
    in.args = std::move(args);
    return push(std::move(in));
  }
  int64_t convert(int64_t id, ir::DType to) {
    if (typeOf(id) == toSir(to))
      return id;
    return op(SOp::Cast, to, {id});
  }
  int64_t reduce(schedule::ReduceKind kind, ir::DType dt, int64_t arg) {
    schedule::Instr in;
    in.op = SOp::Reduce;
    in.dtype = toSir(dt);
    in.reduce = kind;
    in.args = {arg};
    return push(std::move(in));
  }
};

// Longest chain of ops inlined into one load site.
constexpr int32_t kMaxInlineDepth = 128;

class Lowering {
public:
  Lowering(const ir::Function &fn, const FusionOptions &opt) : fn_(fn), opt_(opt) {}
  Expected<FusedProgram> run();

private:
  const ir::Function &fn_;
  const FusionOptions &opt_;
  FusedProgram out_;
  std::map<std::string, int64_t> symbols_;

  std::vector<std::vector<size_t>> users_; // per value: consuming op indices (with repeats)
  std::vector<bool> returned_;
  std::vector<bool> mat_;                  // has a buffer (param, constant, kernel output)
  std::vector<std::optional<OperandBinding>> src_; // where loads of a value read
  std::vector<std::vector<uint32_t>> resultSlots_; // result indices a value is stored to
  std::map<ValueId, size_t> tailOfHeavy_;  // epilogue tail -> heavy op index
  std::map<ValueId, std::vector<size_t>> chainOps_; // epilogue tail -> absorbed ops
  std::vector<bool> splat_;                // per value: splat constant
  // Attention ops whose head split and merge fold into the kernel
  // (layout=bshd, plan()): per op index, the [B, S, H, D] values its q, k, v
  // transposes read, the head merge transpose and the value the kernel
  // stores (that transpose, or the last of a single-use reshape chain after it).
  struct HeadFold {
    std::vector<ValueId> inputs;
    ValueId merged = 0, tail = 0;
    std::vector<std::string> folded; // Graph IR ops folded in, for the binding table
  };
  std::map<size_t, HeadFold> headFold_;
  std::map<ValueId, size_t> attentionTail_; // stored value -> attention op index

  const ir::Operation &defOp(ValueId v) const { return fn_.ops[static_cast<size_t>(fn_.value(v).definingOp)]; }
  bool isOpResult(ValueId v) const { return fn_.value(v).definingOp >= 0; }
  const std::vector<ir::Dim> &dimsOf(ValueId v) const { return fn_.typeOf(v).dims; }

  Error unsupported(const ir::Operation &op, const std::string &why) const {
    return makeError(ErrorCode::Unsupported, std::string(op.name()) + ": " + why, op.loc);
  }
  Error invalid(const ir::Operation &op, const std::string &why) const {
    return makeError(ErrorCode::InvalidIR, std::string(op.name()) + ": " + why, op.loc);
  }

  // Planning.
  Error plan();
  void planHeadFolds();
  std::optional<ValueId> headTransposeOperand(ValueId v) const;
  ValueId denseBuffer(ValueId v) const;
  bool loadable(ValueId v) const;
  int64_t inlineCost(ValueId v, std::map<ValueId, int64_t> &memo) const;
  std::vector<size_t> lastComputedAt() const;
  bool storingHoldsLess(ValueId v, const std::vector<size_t> &at);

  // Index conversion.
  Expected<IE> dimIndex(const ir::Dim &d) const;
  Expected<std::vector<IE>> dimsIndex(const std::vector<ir::Dim> &dims) const;

  // Emission.
  Expected<int64_t> emitValue(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx);
  Expected<int64_t> emitOp(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx);
  Expected<int64_t> emitBroadcast(KernelBuilder &kb, ValueId operand, const std::vector<ir::Dim> &outDims,
                                  const std::vector<IE> &idx);
  Expected<int64_t> emitGuarded(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, const IE &mask,
                                double fallback);
  Expected<int64_t> loadOf(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, const IE *mask,
                           double fallback);
  Expected<std::vector<IE>> viewIndex(const ir::Operation &op, ValueId v, const std::vector<IE> &idx);
  Expected<std::vector<IE>> reshapeIndex(const std::vector<ir::Dim> &in, const std::vector<ir::Dim> &out,
                                         const std::vector<IE> &idx) const;
  Expected<int> operandFor(KernelBuilder &kb, const OperandBinding &b, const ir::TensorType &type,
                           schedule::OperandRole role);
  Error storeValue(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, int64_t value);

  // Kernels.
  Error buildLoopKernel(ValueId v);
  Error buildCopyKernel(ValueId v);
  Error buildHeavyKernel(size_t opIndex, ValueId tail);
  Error buildAttentionKernel(size_t opIndex);
  Error finishEpilogue(KernelBuilder &kb, const ir::Operation &heavy, ValueId tail, const std::vector<IE> &outIdx,
                       int64_t heavyValue);
  void finishKernel(KernelBuilder &kb, const std::string &base);
};

//===----------------------------------------------------------------------===//
// Index conversion.
//===----------------------------------------------------------------------===//

Expected<IE> Lowering::dimIndex(const ir::Dim &d) const {
  struct Part {
    IE num, den;
  };
  std::function<Expected<IE>(const ir::DimAtom &)> atomIndex;
  std::function<Expected<IE>(const ir::Dim &)> convert;
  atomIndex = [&](const ir::DimAtom &a) -> Expected<IE> {
    if (a.kind == ir::DimAtom::Kind::Symbol) {
      auto it = symbols_.find(a.name);
      if (it == symbols_.end())
        return internalError("symbol '" + a.name + "' missing from the symbol table");
      return IE::symbol(it->second);
    }
    Expected<IE> l = convert(a.lhs), r = convert(a.rhs);
    if (!l) return l.takeError();
    if (!r) return r.takeError();
    return fdiv(*l, *r); // exact division is floor division of a multiple
  };
  convert = [&](const ir::Dim &dim) -> Expected<IE> {
    std::vector<Part> parts;
    for (const ir::Dim::Term &t : dim.terms()) {
      Part p{cst(t.coef.num), cst(t.coef.den)};
      for (const ir::Dim::Factor &f : t.factors) {
        Expected<IE> a = atomIndex(*f.atom);
        if (!a) return a.takeError();
        for (int32_t i = 0; i < std::abs(f.power); ++i) {
          if (f.power > 0) p.num = mul(p.num, *a);
          else p.den = mul(p.den, *a);
        }
      }
      parts.push_back(std::move(p));
    }
    if (parts.empty())
      return cst(0);
    bool sameDen = std::all_of(parts.begin(), parts.end(), [&](const Part &p) { return p.den == parts[0].den; });
    if (sameDen) {
      IE num = cst(0);
      for (Part &p : parts)
        num = add(num, p.num);
      return fdiv(num, parts[0].den);
    }
    // Common denominator: the product of all of them (exact, if verbose).
    IE den = cst(1);
    for (Part &p : parts)
      den = mul(den, p.den);
    IE num = cst(0);
    for (size_t i = 0; i < parts.size(); ++i) {
      IE term = parts[i].num;
      for (size_t j = 0; j < parts.size(); ++j)
        if (j != i) term = mul(term, parts[j].den);
      num = add(num, term);
    }
    return fdiv(num, den);
  };
  return convert(d);
}

Expected<std::vector<IE>> Lowering::dimsIndex(const std::vector<ir::Dim> &dims) const {
  std::vector<IE> out;
  for (const ir::Dim &d : dims) {
    Expected<IE> e = dimIndex(d);
    if (!e) return e.takeError();
    out.push_back(e.take());
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Planning: which values get buffers, which ops form epilogues.
//===----------------------------------------------------------------------===//

bool Lowering::loadable(ValueId v) const {
  if (mat_[v])
    return true;
  if (!isOpResult(v))
    return false;
  const ir::Operation &op = defOp(v);
  if (op.kind == OpKind::Reshape && !planReshape(dimsOf(op.operands[0]), dimsOf(v)).splitsOnly())
    return false; // merging dims needs div/mod: a copy kernel keeps the GEMM form
  return isPureView(op.kind) && loadable(op.operands[0]);
}

int64_t Lowering::inlineCost(ValueId v, std::map<ValueId, int64_t> &memo) const {
  if (mat_[v] || splat_[v])
    return 0;
  if (auto it = memo.find(v); it != memo.end())
    return it->second;
  const ir::Operation &op = defOp(v);
  int64_t cost = isPureView(op.kind) ? 0 : 1;
  for (ValueId o : op.operands)
    cost += inlineCost(o, memo);
  cost = std::min<int64_t>(cost, int64_t(1) << 40);
  memo[v] = cost;
  return cost;
}

// Kernels run in program order of the value they store. For every op, the
// position (op index) of the last kernel that computes it: its own when a
// result is stored, else the last position of its consumers (an inlined op
// is recomputed inside each of them).
std::vector<size_t> Lowering::lastComputedAt() const {
  std::vector<size_t> at(fn_.ops.size());
  for (size_t i = fn_.ops.size(); i-- > 0;) {
    const ir::Operation &op = fn_.ops[i];
    at[i] = i;
    if (std::any_of(op.results.begin(), op.results.end(), [&](ValueId r) { return mat_[r]; }))
      continue;
    for (ValueId r : op.results)
      for (size_t u : users_[r])
        at[i] = std::max(at[i], at[u]);
  }
  return at;
}

// True when storing the inline value `v` keeps fewer bytes alive than
// recomputing it: the intermediate buffers its inline expression reads
// whose lifetime recomputation stretches over at least one other kernel
// (past every other read) outweigh v's own buffer. Parameters, constants
// and results live for the whole run, so they never count. Symbolic dims
// are guessed (kSymbolicExtent): the comparison is between shapes that
// usually share their symbols.
bool Lowering::storingHoldsLess(ValueId v, const std::vector<size_t> &at) {
  constexpr int64_t kSymbolicExtent = 128;
  auto bytes = [&](ValueId x) {
    double n = ir::dtypeBits(fn_.typeOf(x).dtype) / 8.0;
    for (const ir::Dim &d : dimsOf(x))
      n *= static_cast<double>(d.constantValue().value_or(kSymbolicExtent));
    return n;
  };
  // Buffers read by v's inline expression that a run frees.
  std::vector<ValueId> leaves;
  std::set<ValueId> seen;
  std::vector<ValueId> work{v};
  while (!work.empty()) {
    ValueId x = work.back();
    work.pop_back();
    for (ValueId o : defOp(x).operands) {
      if (splat_[o] || !seen.insert(o).second)
        continue;
      if (!mat_[o])
        work.push_back(o);
      else if (isOpResult(o) && !returned_[o] && defOp(o).kind != OpKind::Constant)
        leaves.push_back(o);
    }
  }
  if (leaves.empty())
    return false;
  auto lastRead = [&](ValueId b, const std::vector<size_t> &pos) {
    size_t last = 0;
    for (size_t u : users_[b])
      last = std::max(last, pos[u]);
    return last;
  };
  // Positions with a kernel now (constant buffers are none).
  std::vector<size_t> kernelsBefore(fn_.ops.size() + 1, 0);
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    bool kernel = std::any_of(op.results.begin(), op.results.end(), [&](ValueId r) {
      return mat_[r] && !(op.kind == OpKind::Constant && !splat_[r]);
    });
    kernelsBefore[i + 1] = kernelsBefore[i] + (kernel ? 1 : 0);
  }
  mat_[v] = true;
  std::vector<size_t> stored = lastComputedAt();
  mat_[v] = false;
  double held = 0;
  for (ValueId b : leaves) {
    size_t inlined = lastRead(b, at), ifStored = lastRead(b, stored);
    if (inlined > ifStored + 1 && kernelsBefore[inlined] > kernelsBefore[ifStored + 1])
      held += bytes(b);
  }
  return held > bytes(v);
}

// The operand of `v` = transpose(x) {perm = [0, 2, 1, 3]} with x of rank 4
// (a head split [B, S, H, D] -> [B, H, S, D], or the merge back), if it is one.
std::optional<ValueId> Lowering::headTransposeOperand(ValueId v) const {
  if (!isOpResult(v))
    return std::nullopt;
  const ir::Operation &op = defOp(v);
  if (op.kind != OpKind::Transpose || op.operands.size() != 1 || dimsOf(op.operands[0]).size() != 4 ||
      op.attrs.getInts("perm").value_or(std::vector<int64_t>{}) != std::vector<int64_t>{0, 2, 1, 3} ||
      fn_.typeOf(op.operands[0]).dtype != fn_.typeOf(v).dtype)
    return std::nullopt;
  return op.operands[0];
}

// The materialized value whose buffer holds `v` in dense row-major order:
// v itself, or the first materialized value under a chain of reshapes (a
// reshape of a dense buffer is the same bytes). v itself when there is none.
ValueId Lowering::denseBuffer(ValueId v) const {
  ValueId b = v;
  while (!mat_[b] && isOpResult(b) && defOp(b).kind == OpKind::Reshape)
    b = defOp(b).operands[0];
  return mat_[b] ? b : v;
}

// Attention head layouts (docs/compiler.md, schedule_ir.h layout=bshd). An
// attention op whose q, k and v are each transpose(x) {perm = [0, 2, 1, 3]}
// of a rank-4 x (used by nothing else, not returned) and whose result's only
// use is that same transpose back reads the x's and writes the merged
// [B, S, H, Dv] value itself: the kernel gets layout=bshd, its q/k/v bound
// to the buffers the x's are reshapes of (the projections' outputs), its out
// to the buffer of the merge transpose or of the single-use reshape chain
// after it (the head merge [B, S, H, Dv] -> [B, S, H * Dv]), so neither the
// three split transposes nor the merge is a kernel. Anything else keeps the
// dense [B, H, S, D] operands. Runs after the other planning decisions.
void Lowering::planHeadFolds() {
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    if (op.kind != OpKind::Attention || op.operands.size() < 3 || op.results.size() != 1)
      continue;
    HeadFold f;
    bool ok = true;
    for (size_t j = 0; j < 3 && ok; ++j) {
      ValueId t = op.operands[j];
      std::optional<ValueId> x = headTransposeOperand(t);
      ok = x && !returned_[t] &&
           std::all_of(users_[t].begin(), users_[t].end(), [&](size_t u) { return u == i; }) &&
           (op.operands.size() < 4 || op.operands[3] != t);
      if (ok) {
        f.inputs.push_back(*x);
        f.folded.push_back(defOp(t).name());
      }
    }
    ValueId a = op.results[0];
    if (!ok || returned_[a] || users_[a].size() != 1)
      continue;
    f.merged = fn_.ops[users_[a][0]].results.empty() ? a : fn_.ops[users_[a][0]].results[0];
    if (headTransposeOperand(f.merged) != std::optional<ValueId>(a))
      continue;
    f.folded.push_back(op.name());
    f.folded.push_back(defOp(f.merged).name());
    f.tail = f.merged;
    std::vector<ValueId> chain{f.merged};
    while (!returned_[f.tail] && users_[f.tail].size() == 1) {
      const ir::Operation &u = fn_.ops[users_[f.tail][0]];
      if (u.kind != OpKind::Reshape || u.results.size() != 1 ||
          fn_.typeOf(u.results[0]).dtype != fn_.typeOf(f.tail).dtype)
        break;
      f.tail = u.results[0];
      chain.push_back(f.tail);
      f.folded.push_back(u.name());
    }
    // Commit: the split transposes and the attention result lose their
    // buffers, the x's are read where they lie (stored first if nothing
    // under them is), and the tail is what the attention kernel stores.
    for (size_t j = 0; j < 3; ++j)
      mat_[op.operands[j]] = false;
    for (ValueId x : f.inputs) {
      ValueId b = x;
      while (!mat_[b] && isOpResult(b) && defOp(b).kind == OpKind::Reshape)
        b = defOp(b).operands[0];
      mat_[b] = true;
    }
    mat_[a] = false;
    for (ValueId c : chain)
      mat_[c] = false;
    mat_[f.tail] = true;
    attentionTail_[f.tail] = i;
    headFold_[i] = std::move(f);
  }
}

Error Lowering::plan() {
  size_t n = fn_.values.size();
  users_.assign(n, {});
  returned_.assign(n, false);
  mat_.assign(n, false);
  src_.assign(n, std::nullopt);
  resultSlots_.assign(n, {});
  splat_.assign(n, false);
  for (size_t i = 0; i < fn_.ops.size(); ++i)
    for (ValueId o : fn_.ops[i].operands)
      users_[o].push_back(i);
  for (size_t r = 0; r < fn_.returns.size(); ++r) {
    returned_[fn_.returns[r]] = true;
    resultSlots_[fn_.returns[r]].push_back(static_cast<uint32_t>(r));
  }

  for (size_t i = 0; i < fn_.params.size(); ++i) {
    mat_[fn_.params[i]] = true;
    src_[fn_.params[i]] = OperandBinding{OperandBinding::Kind::Param, static_cast<uint32_t>(i)};
  }
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    if (op.kind == OpKind::Attention) {
      // Kept whole (the plugin claims it): one `attention` kernel whose
      // operands are buffers (docs/compiler.md).
      for (ValueId o : op.operands)
        mat_[o] = true;
      for (ValueId r : op.results)
        mat_[r] = true;
      continue;
    }
    if (op.kind == OpKind::NumOps || static_cast<size_t>(op.kind) > static_cast<size_t>(OpKind::NumOps))
      return invalid(op, "unknown op kind");
    if (op.kind == OpKind::Constant) {
      const ir::Attribute *value = op.attrs.find("value");
      bool splat = value && (value->kind() == ir::AttrKind::Int || value->kind() == ir::AttrKind::Float ||
                             value->kind() == ir::AttrKind::Bool);
      if (!splat && value && (value->kind() == ir::AttrKind::IntList || value->kind() == ir::AttrKind::FloatList)) {
        size_t count = value->kind() == ir::AttrKind::IntList ? value->getInts().size() : value->getFloats().size();
        splat = count == 1;
      }
      splat_[op.results[0]] = splat;
      if (!splat || returned_[op.results[0]])
        mat_[op.results[0]] = true; // a Constant buffer (bound below) or a stored splat
      continue;
    }
    for (ValueId r : op.results) {
      if (!opt_.fuse || isHeavy(op.kind))
        mat_[r] = true;
      if (returned_[r])
        mat_[r] = true;
    }
  }

  // Epilogue absorption: a heavy op's single-use elementwise consumer chain
  // (same shape as the heavy result) is computed in the heavy kernel's last
  // stage; only the chain's tail is stored.
  if (opt_.fuse && opt_.fuseEpilogues) {
    std::set<size_t> absorbed; // an op joins at most one epilogue
    for (size_t i = 0; i < fn_.ops.size(); ++i) {
      const ir::Operation &op = fn_.ops[i];
      if (!isHeavy(op.kind))
        continue;
      ValueId h = op.results[0];
      ValueId cur = h;
      std::vector<size_t> chain;
      while (!returned_[cur] && users_[cur].size() == 1) {
        const ir::Operation &c = fn_.ops[users_[cur][0]];
        if (!isElementwise(c.kind) || dimsOf(c.results[0]) != dimsOf(h) || absorbed.count(users_[cur][0]))
          break;
        chain.push_back(users_[cur][0]);
        absorbed.insert(users_[cur][0]);
        cur = c.results[0];
      }
      if (cur == h)
        continue;
      mat_[h] = false;
      mat_[cur] = true;
      tailOfHeavy_[cur] = i;
      chainOps_[cur] = chain;
    }
  }

  // Operands a matmul / conv / pool reads many times per output must be
  // buffers (or pure views of one), so nothing is recomputed K times and the
  // matmul keeps its canonical two-load form.
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    if (op.kind != OpKind::Matmul && op.kind != OpKind::Conv2d && op.kind != OpKind::MaxPool2d &&
        op.kind != OpKind::AvgPool2d)
      continue;
    for (size_t j = 0; j < op.operands.size() && j < 2; ++j) {
      ValueId o = op.operands[j];
      if (!loadable(o) && !splat_[o])
        mat_[o] = true;
    }
  }

  // Deep inline chains are cut (the emitter recurses once per inlined op).
  {
    std::vector<int32_t> depth(n, 0);
    for (size_t i = 0; i < fn_.ops.size(); ++i) {
      int32_t d = 0;
      for (ValueId o : fn_.ops[i].operands)
        d = std::max(d, depth[o]);
      for (ValueId r : fn_.ops[i].results) {
        depth[r] = mat_[r] ? 0 : d + 1;
        if (depth[r] > kMaxInlineDepth) {
          mat_[r] = true;
          depth[r] = 0;
        }
      }
    }
  }

  // Shared inline values: recompute while cheap, else materialize once.
  // Cheap in memory too: recomputing a value in a later kernel keeps the
  // buffers it reads alive until then (a gradient's adjoint chain would
  // otherwise keep every activation to the end, undoing rematerialization).
  {
    std::map<ValueId, int64_t> memo;
    std::vector<size_t> at = lastComputedAt();
    for (size_t i = 0; i < fn_.ops.size(); ++i) {
      for (ValueId r : fn_.ops[i].results) {
        if (mat_[r] || splat_[r])
          continue;
        std::set<size_t> distinct(users_[r].begin(), users_[r].end());
        if (distinct.size() > 1 &&
            (inlineCost(r, memo) > opt_.maxRecomputeInstrs || storingHoldsLess(r, at))) {
          mat_[r] = true;
          memo.clear();
          at = lastComputedAt();
        }
      }
    }
  }

  if (opt_.fuse)
    planHeadFolds();

  // Bindings for materialized values.
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    for (ValueId r : op.results) {
      if (!mat_[r])
        continue;
      if (op.kind == OpKind::Constant && !splat_[r]) {
        src_[r] = OperandBinding{OperandBinding::Kind::Constant, static_cast<uint32_t>(out_.constants.size())};
        ConstantData c;
        c.name = fn_.value(r).name;
        c.type = fn_.typeOf(r);
        std::optional<std::vector<int64_t>> shape = c.type.staticShape();
        if (!shape)
          return unsupported(op, "constant of symbolic shape " + c.type.shapeStr());
        int64_t count = 1;
        for (int64_t d : *shape)
          count *= d;
        if (const ir::Attribute *value = op.attrs.find("value")) {
          std::vector<double> vals;
          if (value->kind() == ir::AttrKind::IntList)
            for (int64_t x : value->getInts()) vals.push_back(static_cast<double>(x));
          else if (value->kind() == ir::AttrKind::FloatList)
            vals = value->getFloats();
          else
            return invalid(op, "'value' must be a number or a list of numbers");
          if (static_cast<int64_t>(vals.size()) != count)
            return makeError(ErrorCode::ShapeMismatch, "constant: 'value' has " + std::to_string(vals.size()) +
                                                           " numbers, the type has " + std::to_string(count),
                             op.loc);
          for (double x : vals)
            appendEncoded(c.bytes, x, c.type.dtype);
        } else if (const ir::Attribute *data = op.attrs.find("data")) {
          if (data->kind() != ir::AttrKind::String)
            return invalid(op, "'data' must be a string");
          std::optional<std::vector<uint8_t>> bytes = decodePayload(data->getString());
          if (!bytes)
            return invalid(op, "'data' must be \"hex:...\" or \"base64:...\"");
          if (bytes->size() != static_cast<size_t>(count) * (ir::dtypeBits(c.type.dtype) / 8))
            return makeError(ErrorCode::ShapeMismatch, "constant: 'data' has " + std::to_string(bytes->size()) +
                                                           " bytes for " + std::to_string(count) + " elements",
                             op.loc);
          c.bytes = std::move(*bytes);
        } else {
          return invalid(op, "constant needs 'value' or 'data'");
        }
        out_.constants.push_back(std::move(c));
        continue;
      }
      if (!resultSlots_[r].empty()) {
        src_[r] = OperandBinding{OperandBinding::Kind::Result, resultSlots_[r][0]};
      } else {
        src_[r] = OperandBinding{OperandBinding::Kind::Intermediate, static_cast<uint32_t>(out_.intermediates.size())};
        out_.intermediates.push_back(Intermediate{fn_.value(r).name, fn_.typeOf(r)});
      }
    }
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Emission.
//===----------------------------------------------------------------------===//

Expected<int> Lowering::operandFor(KernelBuilder &kb, const OperandBinding &b, const ir::TensorType &type,
                                   schedule::OperandRole role) {
  for (size_t i = 0; i < kb.plan.operands.size(); ++i)
    if (kb.plan.operands[i].kind == b.kind && kb.plan.operands[i].index == b.index &&
        kb.k.operands[i].role == role)
      return static_cast<int>(i);
  Expected<std::vector<IE>> shape = dimsIndex(type.dims);
  if (!shape)
    return shape.takeError();
  schedule::Operand o;
  o.role = role;
  o.dtype = toSir(type.dtype);
  o.shape = shape.take();
  kb.k.operands.push_back(std::move(o));
  kb.plan.operands.push_back(b);
  return static_cast<int>(kb.k.operands.size() - 1);
}

Expected<int64_t> Lowering::loadOf(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, const IE *mask,
                                   double fallback) {
  if (!src_[v])
    return internalError("value %" + fn_.value(v).name + " has no buffer to load from");
  Expected<int> operand = operandFor(kb, *src_[v], fn_.typeOf(v), schedule::OperandRole::In);
  if (!operand)
    return operand.takeError();
  schedule::Instr in;
  in.op = SOp::Load;
  in.dtype = toSir(computeType(fn_.typeOf(v).dtype));
  in.operand = *operand;
  in.index = idx;
  if (mask) {
    in.mask = std::make_unique<IE>(*mask);
    in.fallback = fallback;
  }
  return kb.push(std::move(in));
}

Expected<int64_t> Lowering::emitValue(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx) {
  std::string key = indexKey(idx);
  if (auto it = kb.overrides.find(v); it != kb.overrides.end() && it->second.first == key)
    return it->second.second;
  std::string memoKey = std::to_string(v) + "@" + key;
  if (auto it = kb.memo.find(memoKey); it != kb.memo.end())
    return it->second;
  Expected<int64_t> id = (mat_[v] && src_[v]) ? loadOf(kb, v, idx, nullptr, 0.0) : emitOp(kb, v, idx);
  if (id)
    kb.memo[memoKey] = *id;
  return id;
}

// Loads `operand` (broadcast against outDims, NumPy rules) at idx.
Expected<int64_t> Lowering::emitBroadcast(KernelBuilder &kb, ValueId operand, const std::vector<ir::Dim> &outDims,
                                          const std::vector<IE> &idx) {
  const std::vector<ir::Dim> &in = dimsOf(operand);
  if (in.size() > outDims.size())
    return internalError("broadcast operand of higher rank than the result");
  size_t lead = outDims.size() - in.size();
  std::vector<IE> mapped;
  for (size_t i = 0; i < in.size(); ++i) {
    bool stretched = in[i].constantValue() == std::optional<int64_t>(1) &&
                     outDims[lead + i].constantValue() != std::optional<int64_t>(1);
    mapped.push_back(stretched ? cst(0) : idx[lead + i]);
  }
  return emitValue(kb, operand, mapped);
}

// v at idx where `mask` holds, `fallback` elsewhere; idx may be out of range
// where the mask is false. A buffer gets a masked load; an inlined value is
// evaluated at a clamped index and selected.
Expected<int64_t> Lowering::emitGuarded(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, const IE &mask,
                                        double fallback) {
  if (mask.isConst() && mask.value != 0)
    return emitValue(kb, v, idx);
  if (mat_[v] && src_[v]) {
    std::string memoKey = std::to_string(v) + "@" + indexKey(idx) + "?" + schedule::printIndex(mask) + ":" +
                          std::to_string(fallback);
    if (auto it = kb.memo.find(memoKey); it != kb.memo.end())
      return it->second;
    Expected<int64_t> id = loadOf(kb, v, idx, &mask, fallback);
    if (id)
      kb.memo[memoKey] = *id;
    return id;
  }
  Expected<std::vector<IE>> dims = dimsIndex(dimsOf(v));
  if (!dims)
    return dims.takeError();
  std::vector<IE> clamped;
  for (size_t i = 0; i < idx.size(); ++i)
    clamped.push_back(imax(imin(idx[i], sub((*dims)[i], cst(1))), cst(0)));
  Expected<int64_t> val = emitValue(kb, v, clamped);
  if (!val)
    return val;
  ir::DType ct = computeType(fn_.typeOf(v).dtype);
  int64_t cond = kb.index(mask, ir::DType::Bool);
  int64_t fb = kb.constant(fallback, ct);
  return kb.op(SOp::Select, ct, {cond, *val, fb});
}

Expected<std::vector<IE>> Lowering::reshapeIndex(const std::vector<ir::Dim> &in, const std::vector<ir::Dim> &out,
                                                 const std::vector<IE> &idx) const {
  std::vector<IE> result(in.size(), cst(0));
  ReshapePlan plan = planReshape(in, out);
  const std::vector<size_t> &ins = plan.ins, &outs = plan.outs;
  for (const ReshapePlan::Group &g : plan.groups) {
    // Flat offset within the group from the output index.
    IE flat = cst(0);
    for (size_t b = g.j0; b <= g.j1; ++b) {
      Expected<IE> d = dimIndex(out[outs[b]]);
      if (!d)
        return d.takeError();
      flat = add(mul(flat, *d), idx[outs[b]]);
    }
    // Split it over the input dims (row-major).
    IE stride = cst(1);
    for (size_t a = g.i1 + 1; a-- > g.i0;) {
      Expected<IE> d = dimIndex(in[ins[a]]);
      if (!d)
        return d.takeError();
      IE q = fdiv(flat, stride);
      result[ins[a]] = a == g.i0 ? q : mod(q, *d);
      stride = mul(stride, *d);
    }
  }
  return result;
}

// Index into the single data operand of a view op for its result v at idx.
Expected<std::vector<IE>> Lowering::viewIndex(const ir::Operation &op, ValueId v, const std::vector<IE> &idx) {
  const std::vector<ir::Dim> &inDims = dimsOf(op.operands[0]);
  const std::vector<ir::Dim> &outDims = dimsOf(v);
  int64_t inRank = static_cast<int64_t>(inDims.size());
  int64_t outRank = static_cast<int64_t>(outDims.size());
  auto norm = [](int64_t a, int64_t rank) { return a < 0 ? a + rank : a; };
  switch (op.kind) {
  case OpKind::Transpose: {
    std::vector<int64_t> perm = op.attrs.getInts("perm").value_or(std::vector<int64_t>{});
    if (perm.empty())
      for (int64_t i = inRank - 1; i >= 0; --i) perm.push_back(i);
    if (static_cast<int64_t>(perm.size()) != inRank)
      return invalid(op, "'perm' must have one entry per axis");
    std::vector<IE> in(inDims.size(), cst(0));
    for (size_t i = 0; i < perm.size(); ++i) {
      int64_t p = norm(perm[i], inRank);
      if (p < 0 || p >= inRank)
        return invalid(op, "'perm' entry out of range");
      in[static_cast<size_t>(p)] = idx[i];
    }
    return in;
  }
  case OpKind::Reshape: return reshapeIndex(inDims, outDims, idx);
  case OpKind::BroadcastTo: {
    size_t lead = outDims.size() - std::min(outDims.size(), inDims.size());
    std::vector<IE> in;
    for (size_t i = 0; i < inDims.size(); ++i) {
      bool stretched = inDims[i].constantValue() == std::optional<int64_t>(1) &&
                       outDims[lead + i].constantValue() != std::optional<int64_t>(1);
      in.push_back(stretched ? cst(0) : idx[lead + i]);
    }
    return in;
  }
  case OpKind::ExpandDims: {
    std::set<int64_t> axes;
    for (int64_t a : op.attrs.getInts("axes").value_or(std::vector<int64_t>{}))
      axes.insert(norm(a, outRank));
    std::vector<IE> in;
    for (int64_t i = 0; i < outRank; ++i)
      if (!axes.count(i)) in.push_back(idx[static_cast<size_t>(i)]);
    if (static_cast<int64_t>(in.size()) != inRank)
      return invalid(op, "'axes' do not match the ranks");
    return in;
  }
  case OpKind::Squeeze: {
    std::set<int64_t> axes;
    if (std::optional<std::vector<int64_t>> a = op.attrs.getInts("axes")) {
      for (int64_t x : *a) axes.insert(norm(x, inRank));
    } else {
      for (int64_t i = 0; i < inRank; ++i)
        if (inDims[static_cast<size_t>(i)].constantValue() == std::optional<int64_t>(1)) axes.insert(i);
    }
    std::vector<IE> in;
    size_t o = 0;
    for (int64_t i = 0; i < inRank; ++i) {
      if (axes.count(i)) in.push_back(cst(0));
      else if (o < idx.size()) in.push_back(idx[o++]);
      else return invalid(op, "'axes' do not match the ranks");
    }
    return in;
  }
  case OpKind::Slice: {
    std::vector<int64_t> starts = op.attrs.getInts("starts").value_or(std::vector<int64_t>{});
    std::vector<int64_t> ends = op.attrs.getInts("ends").value_or(std::vector<int64_t>{});
    std::vector<int64_t> axes = op.attrs.getInts("axes").value_or(std::vector<int64_t>{});
    std::vector<int64_t> steps = op.attrs.getInts("steps").value_or(std::vector<int64_t>{});
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (starts.size() != axes.size() || (!steps.empty() && steps.size() != axes.size()))
      return invalid(op, "'starts', 'axes' and 'steps' must have the same length");
    std::vector<IE> in = idx;
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = norm(axes[k], inRank);
      if (a < 0 || a >= inRank)
        return invalid(op, "slice axis out of range");
      int64_t step = steps.empty() ? 1 : steps[k];
      if (step <= 0)
        return unsupported(op, "non-positive slice steps");
      const ir::Dim &dim = inDims[static_cast<size_t>(a)];
      IE start;
      if (std::optional<int64_t> n = dim.constantValue()) {
        int64_t s = starts[k] < 0 ? std::max<int64_t>(starts[k] + *n, 0) : std::min(starts[k], *n);
        start = cst(s);
      } else {
        Expected<IE> d = dimIndex(dim);
        if (!d)
          return d.takeError();
        start = starts[k] < 0 ? imax(add(*d, cst(starts[k])), cst(0)) : imin(cst(starts[k]), *d);
      }
      in[static_cast<size_t>(a)] = add(start, mul(idx[static_cast<size_t>(a)], cst(step)));
    }
    return in;
  }
  case OpKind::Split: {
    int64_t a = norm(op.attrs.getInt("axis", 0), inRank);
    if (a < 0 || a >= inRank)
      return invalid(op, "split axis out of range");
    ir::Dim offset(0);
    for (ValueId r : op.results) {
      if (r == v)
        break;
      Expected<ir::Dim> s = ir::Dim::add(offset, dimsOf(r)[static_cast<size_t>(a)]);
      if (!s)
        return s.takeError();
      offset = s.take();
    }
    Expected<IE> off = dimIndex(offset);
    if (!off)
      return off.takeError();
    std::vector<IE> in = idx;
    in[static_cast<size_t>(a)] = add(*off, idx[static_cast<size_t>(a)]);
    return in;
  }
  default: break;
  }
  return internalError(std::string("viewIndex on ") + op.name());
}

Expected<int64_t> Lowering::emitOp(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx) {
  if (!isOpResult(v))
    return internalError("parameter %" + fn_.value(v).name + " without a binding");
  const ir::Operation &op = defOp(v);
  const ir::TensorType &type = fn_.typeOf(v);
  ir::DType ct = computeType(type.dtype);
  const std::vector<ir::Dim> &outDims = type.dims;
  if (ir::isElementwiseUnary(op.kind)) {
    std::optional<SOp> s = unaryScalarOp(op);
    if (!s)
      return invalid(op, "'approximate' must be \"none\" or \"tanh\"");
    Expected<int64_t> x = emitBroadcast(kb, op.operands[0], outDims, idx);
    if (!x) return x;
    return kb.op(*s, ct, {kb.convert(*x, ct)});
  }
  if (ir::isElementwiseBinary(op.kind)) {
    Expected<int64_t> a = emitBroadcast(kb, op.operands[0], outDims, idx);
    if (!a) return a;
    Expected<int64_t> b = emitBroadcast(kb, op.operands[1], outDims, idx);
    if (!b) return b;
    ir::DType operandType = ct;
    if (ir::opInfo(op.kind).group == ir::OpGroup::Compare)
      operandType = computeType(fn_.typeOf(op.operands[0]).dtype);
    else if (ir::opInfo(op.kind).group == ir::OpGroup::Logical)
      operandType = ir::DType::Bool;
    return kb.op(binaryScalarOp(op.kind), ct, {kb.convert(*a, operandType), kb.convert(*b, operandType)});
  }
  switch (op.kind) {
  case OpKind::Select: {
    Expected<int64_t> c = emitBroadcast(kb, op.operands[0], outDims, idx);
    if (!c) return c;
    Expected<int64_t> a = emitBroadcast(kb, op.operands[1], outDims, idx);
    if (!a) return a;
    Expected<int64_t> b = emitBroadcast(kb, op.operands[2], outDims, idx);
    if (!b) return b;
    return kb.op(SOp::Select, ct, {kb.convert(*c, ir::DType::Bool), kb.convert(*a, ct), kb.convert(*b, ct)});
  }
  case OpKind::Cast: {
    Expected<int64_t> x = emitValue(kb, op.operands[0], idx);
    if (!x) return x;
    ir::DType from = computeType(fn_.typeOf(op.operands[0]).dtype);
    if (from == type.dtype)
      return *x; // f32 -> f32 (or f16 -> f32: already computed in f32)
    schedule::Instr in;
    in.op = SOp::Cast;
    in.dtype = toSir(type.dtype);
    in.args = {*x};
    in.saturate = type.policy.saturate;
    int64_t c = kb.push(std::move(in));
    return kb.convert(c, ct); // narrow floats compute in f32 again (exact)
  }
  case OpKind::Constant: {
    const ir::Attribute *value = op.attrs.find("value");
    if (!value)
      return internalError("splat constant without 'value'");
    double c = 0;
    switch (value->kind()) {
    case ir::AttrKind::Int: c = static_cast<double>(value->getInt()); break;
    case ir::AttrKind::Float: c = value->getFloat(); break;
    case ir::AttrKind::Bool: c = value->getBool() ? 1.0 : 0.0; break;
    case ir::AttrKind::IntList: c = static_cast<double>(value->getInts().at(0)); break;
    case ir::AttrKind::FloatList: c = value->getFloats().at(0); break;
    default: return invalid(op, "'value' must be a number");
    }
    // Splats take their storage dtype's value (e.g. 0.1 as bf16), then widen.
    if (type.dtype != ct) {
      int64_t raw = kb.constant(c, ir::DType::F64);
      schedule::Instr in;
      in.op = SOp::Cast;
      in.dtype = toSir(type.dtype);
      in.args = {raw};
      return kb.convert(kb.push(std::move(in)), ct);
    }
    return kb.constant(c, ct);
  }
  case OpKind::Iota: {
    int64_t axis = op.attrs.getInt("axis", 0);
    if (axis < 0)
      axis += static_cast<int64_t>(idx.size());
    if (axis < 0 || axis >= static_cast<int64_t>(idx.size()))
      return invalid(op, "iota axis out of range");
    return kb.index(idx[static_cast<size_t>(axis)], ct);
  }
  case OpKind::Gather: {
    ValueId x = op.operands[0], ind = op.operands[1];
    int64_t xr = static_cast<int64_t>(dimsOf(x).size());
    int64_t ir_ = static_cast<int64_t>(dimsOf(ind).size());
    int64_t axis = op.attrs.getInt("axis", 0);
    if (axis < 0)
      axis += xr;
    if (axis < 0 || axis >= xr)
      return invalid(op, "gather axis out of range");
    std::vector<IE> indIdx(idx.begin() + axis, idx.begin() + axis + ir_);
    Expected<int64_t> iv = emitValue(kb, ind, indIdx);
    if (!iv) return iv;
    int64_t pos = kb.convert(*iv, ir::DType::I64);
    Expected<IE> dim = dimIndex(dimsOf(x)[static_cast<size_t>(axis)]);
    if (!dim) return dim.takeError();
    IE raw = IE::fromValue(pos);
    // Negative indices count from the end; out-of-range ones are clamped so
    // no kernel reads outside the tensor (the reference reports them).
    IE wrapped = add(raw, mul(*dim, lt(raw, cst(0))));
    IE safe = imax(imin(wrapped, sub(*dim, cst(1))), cst(0));
    std::vector<IE> xIdx(idx.begin(), idx.begin() + axis);
    xIdx.push_back(safe);
    xIdx.insert(xIdx.end(), idx.begin() + axis + ir_, idx.end());
    return emitValue(kb, x, xIdx);
  }
  case OpKind::Pad: {
    std::vector<int64_t> pads = op.attrs.getInts("pads").value_or(std::vector<int64_t>{});
    const std::vector<ir::Dim> &inDims = dimsOf(op.operands[0]);
    if (pads.size() != 2 * inDims.size())
      return invalid(op, "'pads' needs 2 values per axis");
    std::vector<IE> in;
    IE mask = cst(1);
    for (size_t i = 0; i < inDims.size(); ++i) {
      IE lo = cst(pads[2 * i]);
      in.push_back(sub(idx[i], lo));
      if (pads[2 * i] == 0 && pads[2 * i + 1] == 0)
        continue;
      Expected<IE> d = dimIndex(inDims[i]);
      if (!d) return d.takeError();
      mask = land(mask, land(le(lo, idx[i]), lt(idx[i], add(lo, *d))));
    }
    return emitGuarded(kb, op.operands[0], in, mask, op.attrs.getFloat("value", 0.0));
  }
  case OpKind::Concat: {
    int64_t rank = static_cast<int64_t>(outDims.size());
    int64_t axis = op.attrs.getInt("axis", 0);
    if (axis < 0)
      axis += rank;
    if (axis < 0 || axis >= rank)
      return invalid(op, "concat axis out of range");
    size_t a = static_cast<size_t>(axis);
    std::vector<int64_t> parts;
    std::vector<IE> conds;
    IE offset = cst(0);
    for (ValueId operand : op.operands) {
      Expected<IE> d = dimIndex(dimsOf(operand)[a]);
      if (!d) return d.takeError();
      IE end = add(offset, *d);
      IE mask = land(le(offset, idx[a]), lt(idx[a], end));
      std::vector<IE> in = idx;
      in[a] = sub(idx[a], offset);
      Expected<int64_t> val = emitGuarded(kb, operand, in, mask, 0.0);
      if (!val) return val;
      parts.push_back(kb.convert(*val, ct));
      conds.push_back(mask);
      offset = end;
    }
    int64_t acc = parts.back();
    for (size_t k = parts.size() - 1; k-- > 0;)
      acc = kb.op(SOp::Select, ct, {kb.index(conds[k], ir::DType::Bool), parts[k], acc});
    return acc;
  }
  default: break;
  }
  if (isPureView(op.kind)) {
    Expected<std::vector<IE>> in = viewIndex(op, v, idx);
    if (!in) return in.takeError();
    return emitValue(kb, op.operands[0], *in);
  }
  return internalError(std::string("op '") + op.name() + "' reached inline emission without a buffer");
}

Error Lowering::storeValue(KernelBuilder &kb, ValueId v, const std::vector<IE> &idx, int64_t value) {
  const ir::TensorType &type = fn_.typeOf(v);
  const ir::Operation *op = isOpResult(v) ? &defOp(v) : nullptr;
  ir::DType ct = computeType(type.dtype);
  if (type.dtype != ct) {
    ir::Rounding r = type.policy.rounding;
    if (r != ir::Rounding::NearestEven && r != ir::Rounding::Stochastic)
      return makeError(ErrorCode::Unsupported,
                       std::string(op ? op->name() : "copy") + ": rounding mode '" + ir::roundingName(r) +
                           "' on a narrowing store (Schedule IR v1 stores round to nearest even)",
                       op ? op->loc : SourceLocation{});
  }
  value = kb.convert(value, ct);
  if (type.policy.saturate && isNarrowFloat(type.dtype)) {
    schedule::Instr in;
    in.op = SOp::Cast;
    in.dtype = toSir(type.dtype);
    in.args = {value};
    in.saturate = true;
    value = kb.push(std::move(in));
  }
  std::vector<OperandBinding> targets;
  if (src_[v] && src_[v]->kind != OperandBinding::Kind::Param && src_[v]->kind != OperandBinding::Kind::Constant)
    targets.push_back(*src_[v]);
  for (uint32_t slot : resultSlots_[v]) {
    OperandBinding b{OperandBinding::Kind::Result, slot};
    if (targets.empty() || targets[0].kind != b.kind || targets[0].index != b.index)
      targets.push_back(b);
  }
  for (const OperandBinding &b : targets) {
    Expected<int> operand = operandFor(kb, b, type, schedule::OperandRole::Out);
    if (!operand)
      return operand.takeError();
    schedule::Instr st;
    st.isStore = true;
    st.operand = *operand;
    st.index = idx;
    st.args = {value};
    kb.stage().body.push_back(std::move(st));
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Kernels.
//===----------------------------------------------------------------------===//

void Lowering::finishKernel(KernelBuilder &kb, const std::string &base) {
  kb.k.name = base + "_" + std::to_string(out_.schedule.kernels.size());
  sanitizeKernel(kb.k);
  if (!kb.k.knobs.count("vector"))
    kb.k.knobs["vector"] = opt_.vector;
  out_.schedule.kernels.push_back(std::move(kb.k));
  out_.kernels.push_back(std::move(kb.plan));
}

// Parallel over all dims but the last, one map stage over the last (the
// vectorizable loop). Rank 0: one point.
static std::vector<IE> loopNest(KernelBuilder &kb, const std::vector<IE> &dims) {
  std::vector<IE> idx;
  if (dims.empty()) {
    kb.beginStage(schedule::Stage::Kind::Map, {});
    return idx;
  }
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    kb.k.parallel.push_back(dims[i]);
    idx.push_back(IE::parallel(static_cast<int64_t>(i)));
  }
  kb.beginStage(schedule::Stage::Kind::Map, {dims.back()});
  idx.push_back(IE::inner(0));
  return idx;
}

Error Lowering::buildLoopKernel(ValueId v) {
  KernelBuilder kb;
  Expected<std::vector<IE>> dims = dimsIndex(dimsOf(v));
  if (!dims)
    return dims.takeError();
  std::vector<IE> idx = loopNest(kb, *dims);
  const ir::Operation &op = defOp(v);
  Expected<int64_t> val = emitOp(kb, v, idx);
  if (!val)
    return val.takeError();
  if (Error e = storeValue(kb, v, idx, *val))
    return e;
  // The ops inlined into this kernel, for dumps: every non-buffer value
  // reachable from v.
  std::set<size_t> ops;
  std::function<void(ValueId)> walk = [&](ValueId x) {
    if (!isOpResult(x) || (x != v && mat_[x]))
      return;
    size_t oi = static_cast<size_t>(fn_.value(x).definingOp);
    if (!ops.insert(oi).second)
      return;
    for (ValueId o : fn_.ops[oi].operands)
      walk(o);
  };
  walk(v);
  for (size_t oi : ops)
    kb.plan.fusedOps.push_back(fn_.ops[oi].name());
  finishKernel(kb, op.name());
  return Error::success();
}

Error Lowering::buildCopyKernel(ValueId v) {
  KernelBuilder kb;
  Expected<std::vector<IE>> dims = dimsIndex(dimsOf(v));
  if (!dims)
    return dims.takeError();
  std::vector<IE> idx = loopNest(kb, *dims);
  Expected<int64_t> val = emitValue(kb, v, idx);
  if (!val)
    return val.takeError();
  if (Error e = storeValue(kb, v, idx, *val))
    return e;
  kb.plan.fusedOps.push_back("copy");
  finishKernel(kb, "copy");
  return Error::success();
}

// Emits the epilogue chain ending at `tail` in the current (last) stage, the
// heavy result being `heavyValue` at outIdx, and stores the tail.
Error Lowering::finishEpilogue(KernelBuilder &kb, const ir::Operation &heavy, ValueId tail,
                               const std::vector<IE> &outIdx, int64_t heavyValue) {
  ValueId h = heavy.results[0];
  kb.overrides[h] = {indexKey(outIdx), heavyValue};
  kb.plan.fusedOps.push_back(heavy.name());
  int64_t val = heavyValue;
  if (tail != h) {
    for (size_t oi : chainOps_[tail])
      kb.plan.fusedOps.push_back(fn_.ops[oi].name());
    Expected<int64_t> t = emitOp(kb, tail, outIdx);
    if (!t)
      return t.takeError();
    val = *t;
  }
  return storeValue(kb, tail, outIdx, val);
}

Error Lowering::buildHeavyKernel(size_t opIndex, ValueId tail) {
  const ir::Operation &op = fn_.ops[opIndex];
  ValueId h = op.results[0];
  const ir::TensorType &htype = fn_.typeOf(h);
  ir::DType ct = computeType(htype.dtype);
  ir::DType acc = accumType(htype);
  KernelBuilder kb;
  using SK = schedule::Stage::Kind;
  using RK = schedule::ReduceKind;
  auto fail = [](Error e) { return e; };
  auto P = [](size_t i) { return IE::parallel(static_cast<int64_t>(i)); };
  auto R = [](size_t i) { return IE::inner(static_cast<int64_t>(i)); };

  switch (op.kind) {
  case OpKind::ReduceSum:
  case OpKind::ReduceMean:
  case OpKind::ReduceMax:
  case OpKind::ReduceMin:
  case OpKind::ReduceProd:
  case OpKind::Argmax:
  case OpKind::Argmin: {
    ValueId x = op.operands[0];
    const std::vector<ir::Dim> &xd = dimsOf(x);
    int64_t rank = static_cast<int64_t>(xd.size());
    std::set<int64_t> axes;
    if (op.kind == OpKind::Argmax || op.kind == OpKind::Argmin) {
      int64_t a = op.attrs.getInt("axis", 0);
      axes.insert(a < 0 ? a + rank : a);
    } else if (std::optional<std::vector<int64_t>> a = op.attrs.getInts("axes"); a && !a->empty()) {
      for (int64_t ax : *a) axes.insert(ax < 0 ? ax + rank : ax);
    } else {
      for (int64_t i = 0; i < rank; ++i) axes.insert(i);
    }
    for (int64_t a : axes)
      if (a < 0 || a >= rank)
        return invalid(op, "reduction axis out of range");
    bool keep = op.attrs.getBool("keepdim", false);
    std::vector<IE> inner, xIdx, outIdx;
    IE count = cst(1);
    for (int64_t i = 0; i < rank; ++i) {
      Expected<IE> d = dimIndex(xd[static_cast<size_t>(i)]);
      if (!d) return d.takeError();
      if (axes.count(i)) {
        xIdx.push_back(R(inner.size()));
        inner.push_back(*d);
        count = mul(count, *d);
        if (keep) outIdx.push_back(cst(0));
      } else {
        xIdx.push_back(P(kb.k.parallel.size()));
        outIdx.push_back(P(kb.k.parallel.size()));
        kb.k.parallel.push_back(*d);
      }
    }
    kb.beginStage(SK::Reduce, inner);
    Expected<int64_t> xv = emitValue(kb, x, xIdx);
    if (!xv) return xv.takeError();
    int64_t red;
    switch (op.kind) {
    case OpKind::Argmax:
    case OpKind::Argmin:
      red = kb.reduce(op.kind == OpKind::Argmax ? RK::Argmax : RK::Argmin, ir::DType::I64, *xv);
      break;
    case OpKind::ReduceMax: red = kb.reduce(RK::Max, ct, kb.convert(*xv, ct)); break;
    case OpKind::ReduceMin: red = kb.reduce(RK::Min, ct, kb.convert(*xv, ct)); break;
    case OpKind::ReduceProd: red = kb.reduce(RK::Prod, acc, kb.convert(*xv, acc)); break;
    default: red = kb.reduce(RK::Sum, acc, kb.convert(*xv, acc)); break;
    }
    kb.beginStage(SK::Map, {});
    int64_t hv = red;
    if (op.kind == OpKind::ReduceMean)
      hv = kb.op(SOp::Div, acc, {red, kb.index(count, acc)});
    hv = kb.convert(hv, op.kind == OpKind::Argmax || op.kind == OpKind::Argmin ? ir::DType::I64 : ct);
    if (Error e = finishEpilogue(kb, op, tail, outIdx, hv))
      return fail(std::move(e));
    kb.k.knobs["vector"] = opt_.vector;
    finishKernel(kb, op.name());
    return Error::success();
  }
  case OpKind::Softmax:
  case OpKind::LogSoftmax:
  case OpKind::LayerNorm:
  case OpKind::RmsNorm: {
    ValueId x = op.operands[0];
    const std::vector<ir::Dim> &xd = dimsOf(x);
    int64_t rank = static_cast<int64_t>(xd.size());
    if (rank == 0)
      return unsupported(op, "normalization of a rank-0 tensor");
    int64_t a = op.attrs.getInt("axis", -1);
    if (a < 0) a += rank;
    if (a < 0 || a >= rank)
      return invalid(op, "axis out of range");
    std::set<int64_t> axes;
    if (op.kind == OpKind::Softmax || op.kind == OpKind::LogSoftmax)
      axes.insert(a);
    else
      for (int64_t i = a; i < rank; ++i) axes.insert(i);
    std::vector<IE> inner, xIdx;
    IE count = cst(1);
    for (int64_t i = 0; i < rank; ++i) {
      Expected<IE> d = dimIndex(xd[static_cast<size_t>(i)]);
      if (!d) return d.takeError();
      if (axes.count(i)) {
        xIdx.push_back(R(inner.size()));
        inner.push_back(*d);
        count = mul(count, *d);
      } else {
        xIdx.push_back(P(kb.k.parallel.size()));
        kb.k.parallel.push_back(*d);
      }
    }
    auto loadX = [&](ir::DType t) -> Expected<int64_t> {
      Expected<int64_t> v = emitValue(kb, x, xIdx);
      if (!v) return v;
      return kb.convert(*v, t);
    };
    if (op.kind == OpKind::Softmax || op.kind == OpKind::LogSoftmax) {
      kb.beginStage(SK::Reduce, inner);
      Expected<int64_t> x0 = loadX(acc);
      if (!x0) return x0.takeError();
      int64_t m = kb.reduce(RK::Max, acc, *x0);
      kb.beginStage(SK::Reduce, inner);
      Expected<int64_t> x1 = loadX(acc);
      if (!x1) return x1.takeError();
      int64_t e1 = kb.op(SOp::Exp, acc, {kb.op(SOp::Sub, acc, {*x1, m})});
      int64_t s = kb.reduce(RK::Sum, acc, e1);
      kb.beginStage(SK::Map, inner);
      Expected<int64_t> x2 = loadX(acc);
      if (!x2) return x2.takeError();
      int64_t d = kb.op(SOp::Sub, acc, {*x2, m});
      int64_t r = op.kind == OpKind::Softmax ? kb.op(SOp::Div, acc, {kb.op(SOp::Exp, acc, {d}), s})
                                             : kb.op(SOp::Sub, acc, {d, kb.op(SOp::Log, acc, {s})});
      if (Error e = finishEpilogue(kb, op, tail, xIdx, kb.convert(r, ct)))
        return e;
    } else if (op.kind == OpKind::LayerNorm) {
      double eps = op.attrs.getFloat("epsilon", 1e-5);
      kb.beginStage(SK::Reduce, inner);
      Expected<int64_t> x0 = loadX(acc);
      if (!x0) return x0.takeError();
      int64_t s1 = kb.reduce(RK::Sum, acc, *x0);
      // Two-pass variance: sum((x - mean)^2), no cancellation.
      kb.beginStage(SK::Reduce, inner);
      int64_t mean1 = kb.op(SOp::Div, acc, {s1, kb.index(count, acc)});
      Expected<int64_t> x1 = loadX(acc);
      if (!x1) return x1.takeError();
      int64_t d1 = kb.op(SOp::Sub, acc, {*x1, mean1});
      int64_t s2 = kb.reduce(RK::Sum, acc, kb.op(SOp::Mul, acc, {d1, d1}));
      kb.beginStage(SK::Map, inner);
      int64_t n = kb.index(count, acc);
      int64_t mean = kb.op(SOp::Div, acc, {s1, n});
      int64_t var = kb.op(SOp::Div, acc, {s2, n});
      int64_t rstd = kb.op(SOp::Rsqrt, acc, {kb.op(SOp::Add, acc, {var, kb.constant(eps, acc)})});
      Expected<int64_t> x2 = loadX(acc);
      if (!x2) return x2.takeError();
      int64_t y = kb.op(SOp::Mul, acc, {kb.op(SOp::Sub, acc, {*x2, mean}), rstd});
      for (size_t k = 1; k < op.operands.size(); ++k) {
        Expected<int64_t> g = emitBroadcast(kb, op.operands[k], xd, xIdx);
        if (!g) return g.takeError();
        y = kb.op(k == 1 ? SOp::Mul : SOp::Add, acc, {y, kb.convert(*g, acc)});
      }
      if (Error e = finishEpilogue(kb, op, tail, xIdx, kb.convert(y, ct)))
        return e;
    } else {
      double eps = op.attrs.getFloat("epsilon", 1e-6);
      kb.beginStage(SK::Reduce, inner);
      Expected<int64_t> x0 = loadX(acc);
      if (!x0) return x0.takeError();
      int64_t ss = kb.reduce(RK::Sum, acc, kb.op(SOp::Mul, acc, {*x0, *x0}));
      kb.beginStage(SK::Map, inner);
      int64_t ms = kb.op(SOp::Div, acc, {ss, kb.index(count, acc)});
      int64_t rr = kb.op(SOp::Rsqrt, acc, {kb.op(SOp::Add, acc, {ms, kb.constant(eps, acc)})});
      Expected<int64_t> x1 = loadX(acc);
      if (!x1) return x1.takeError();
      int64_t y = kb.op(SOp::Mul, acc, {*x1, rr});
      if (op.operands.size() > 1) {
        Expected<int64_t> g = emitBroadcast(kb, op.operands[1], xd, xIdx);
        if (!g) return g.takeError();
        y = kb.op(SOp::Mul, acc, {y, kb.convert(*g, acc)});
      }
      if (Error e = finishEpilogue(kb, op, tail, xIdx, kb.convert(y, ct)))
        return e;
    }
    finishKernel(kb, op.name());
    return Error::success();
  }
  case OpKind::Matmul: {
    ValueId a = op.operands[0], b = op.operands[1];
    const std::vector<ir::Dim> &ad = dimsOf(a), &bd = dimsOf(b), &od = htype.dims;
    if (ad.empty() || bd.empty())
      return invalid(op, "matmul operands need rank >= 1");
    Expected<std::vector<IE>> odi = dimsIndex(od);
    if (!odi) return odi.takeError();
    Expected<IE> K = dimIndex(ad.back());
    if (!K) return K.takeError();
    for (size_t i = 0; i < od.size(); ++i)
      kb.k.parallel.push_back((*odi)[i]);
    std::vector<IE> outIdx;
    for (size_t i = 0; i < od.size(); ++i)
      outIdx.push_back(P(i));
    // Result layout: batch..., [M if a is not 1-D], [N if b is not 1-D].
    size_t nb = od.size() - (ad.size() > 1 ? 1 : 0) - (bd.size() > 1 ? 1 : 0);
    auto batchIdx = [&](const std::vector<ir::Dim> &dims, size_t matrixDims) {
      std::vector<IE> idx;
      size_t ownBatch = dims.size() - matrixDims;
      size_t lead = nb - ownBatch;
      for (size_t i = 0; i < ownBatch; ++i) {
        bool stretched = dims[i].constantValue() == std::optional<int64_t>(1) &&
                         od[lead + i].constantValue() != std::optional<int64_t>(1);
        idx.push_back(stretched ? cst(0) : P(lead + i));
      }
      return idx;
    };
    std::vector<IE> aIdx, bIdx;
    if (ad.size() == 1) {
      aIdx = {R(0)};
    } else {
      aIdx = batchIdx(ad, 2);
      aIdx.push_back(P(nb));
      aIdx.push_back(R(0));
    }
    if (bd.size() == 1) {
      bIdx = {R(0)};
    } else {
      bIdx = batchIdx(bd, 2);
      bIdx.push_back(R(0));
      bIdx.push_back(P(od.size() - 1));
    }
    kb.beginStage(SK::Reduce, {*K});
    Expected<int64_t> av = emitValue(kb, a, aIdx);
    if (!av) return av.takeError();
    Expected<int64_t> bv = emitValue(kb, b, bIdx);
    if (!bv) return bv.takeError();
    int64_t prod = kb.op(SOp::Mul, acc, {kb.convert(*av, acc), kb.convert(*bv, acc)});
    int64_t sum = kb.reduce(RK::Sum, acc, prod);
    const auto &body = kb.stage().body;
    // Only float GEMMs promise the canonical form (integer matmuls run as
    // loop nests).
    bool canonical = (acc == ir::DType::F32 || acc == ir::DType::F64) && ad.size() >= 2 && bd.size() >= 2 &&
                     body.size() == 4 && body[0].op == SOp::Load &&
                     body[1].op == SOp::Load && !body[0].mask && !body[1].mask;
    for (size_t i = 0; canonical && i < 2; ++i)
      for (const IE &e : body[i].index)
        canonical = canonical && isAffineIndex(e);
    kb.k.kind = canonical ? schedule::Kernel::Kind::Matmul : schedule::Kernel::Kind::Loop;
    kb.beginStage(SK::Map, {});
    if (Error e = finishEpilogue(kb, op, tail, outIdx, kb.convert(sum, ct)))
      return e;
    if (canonical) {
      std::vector<int64_t> tile(od.size(), 1);
      tile[od.size() - 2] = opt_.matmulTileM;
      tile[od.size() - 1] = opt_.matmulTileN;
      kb.k.knobs["tile"] = tile;
      kb.k.knobs["tile_k"] = opt_.matmulTileK;
    }
    finishKernel(kb, op.name());
    return Error::success();
  }
  case OpKind::Conv2d:
  case OpKind::MaxPool2d:
  case OpKind::AvgPool2d: {
    auto pair = [&](const char *name, std::pair<int64_t, int64_t> dflt) -> Expected<std::pair<int64_t, int64_t>> {
      std::optional<std::vector<int64_t>> v = op.attrs.getInts(name);
      if (!v) return dflt;
      if (v->size() != 2) return invalid(op, std::string("'") + name + "' needs 2 values");
      return std::make_pair((*v)[0], (*v)[1]);
    };
    int64_t pads[4] = {0, 0, 0, 0};
    if (std::optional<std::vector<int64_t>> p = op.attrs.getInts("padding")) {
      if (p->size() == 2) {
        pads[0] = pads[2] = (*p)[0];
        pads[1] = pads[3] = (*p)[1];
      } else if (p->size() == 4) {
        for (int i = 0; i < 4; ++i) pads[i] = (*p)[i];
      } else {
        return invalid(op, "'padding' needs 2 or 4 values");
      }
    }
    ValueId x = op.operands[0];
    const std::vector<ir::Dim> &xd = dimsOf(x), &od = htype.dims;
    if (xd.size() < 2 || (op.kind == OpKind::Conv2d && xd.size() != 4))
      return invalid(op, "unexpected input rank");
    Expected<std::vector<IE>> odi = dimsIndex(od);
    if (!odi) return odi.takeError();
    Expected<std::vector<IE>> xdi = dimsIndex(xd);
    if (!xdi) return xdi.takeError();
    std::vector<IE> outIdx;
    for (size_t i = 0; i < od.size(); ++i) {
      kb.k.parallel.push_back((*odi)[i]);
      outIdx.push_back(P(i));
    }
    Expected<std::pair<int64_t, int64_t>> dil = pair("dilation", {1, 1});
    if (!dil) return dil.takeError();
    size_t r = xd.size();
    IE H = (*xdi)[r - 2], W = (*xdi)[r - 1];
    auto window = [&](std::pair<int64_t, int64_t> stride, IE ky, IE kx, std::vector<IE> &hw, IE &mask) {
      IE iy = add(sub(mul(P(od.size() - 2), cst(stride.first)), cst(pads[0])), mul(ky, cst(dil->first)));
      IE ix = add(sub(mul(P(od.size() - 1), cst(stride.second)), cst(pads[1])), mul(kx, cst(dil->second)));
      mask = cst(1);
      if (pads[0] || pads[2])
        mask = land(mask, land(le(cst(0), iy), lt(iy, H)));
      if (pads[1] || pads[3])
        mask = land(mask, land(le(cst(0), ix), lt(ix, W)));
      hw = {iy, ix};
    };
    if (op.kind == OpKind::Conv2d) {
      ValueId w = op.operands[1];
      Expected<std::pair<int64_t, int64_t>> stride = pair("stride", {1, 1});
      if (!stride) return stride.takeError();
      int64_t groups = op.attrs.getInt("groups", 1);
      if (groups <= 0)
        return invalid(op, "'groups' must be positive");
      Expected<std::vector<IE>> wdi = dimsIndex(dimsOf(w));
      if (!wdi) return wdi.takeError();
      if (wdi->size() != 4)
        return invalid(op, "weight must have rank 4");
      IE cPerGroup = (*wdi)[1];
      IE oPerGroup = fdiv((*wdi)[0], cst(groups));
      kb.beginStage(SK::Reduce, {cPerGroup, (*wdi)[2], (*wdi)[3]});
      std::vector<IE> hw;
      IE mask;
      window(*stride, R(1), R(2), hw, mask);
      IE c = add(mul(fdiv(P(1), oPerGroup), cPerGroup), R(0));
      Expected<int64_t> xv = emitGuarded(kb, x, {P(0), c, hw[0], hw[1]}, mask, 0.0);
      if (!xv) return xv.takeError();
      Expected<int64_t> wv = emitValue(kb, w, {P(1), R(0), R(1), R(2)});
      if (!wv) return wv.takeError();
      int64_t s = kb.reduce(RK::Sum, acc, kb.op(SOp::Mul, acc, {kb.convert(*xv, acc), kb.convert(*wv, acc)}));
      kb.beginStage(SK::Map, {});
      int64_t y = s;
      if (op.operands.size() > 2) {
        Expected<int64_t> bv = emitValue(kb, op.operands[2], {P(1)});
        if (!bv) return bv.takeError();
        y = kb.op(SOp::Add, acc, {y, kb.convert(*bv, acc)});
      }
      if (Error e = finishEpilogue(kb, op, tail, outIdx, kb.convert(y, ct)))
        return e;
    } else {
      Expected<std::pair<int64_t, int64_t>> kernel = pair("kernel", {1, 1});
      if (!kernel) return kernel.takeError();
      Expected<std::pair<int64_t, int64_t>> stride = pair("stride", *kernel);
      if (!stride) return stride.takeError();
      kb.beginStage(SK::Reduce, {cst(kernel->first), cst(kernel->second)});
      std::vector<IE> hw;
      IE mask;
      window(*stride, R(0), R(1), hw, mask);
      std::vector<IE> xIdx(outIdx.begin(), outIdx.end() - 2);
      xIdx.push_back(hw[0]);
      xIdx.push_back(hw[1]);
      bool isMax = op.kind == OpKind::MaxPool2d;
      double fallback = isMax ? -std::numeric_limits<double>::infinity() : 0.0;
      Expected<int64_t> xv = emitGuarded(kb, x, xIdx, mask, fallback);
      if (!xv) return xv.takeError();
      int64_t y;
      if (isMax) {
        int64_t m = kb.reduce(RK::Max, acc, kb.convert(*xv, acc));
        kb.beginStage(SK::Map, {});
        y = m;
      } else {
        int64_t s = kb.reduce(RK::Sum, acc, kb.convert(*xv, acc));
        bool includePad = op.attrs.getBool("count_include_pad", false);
        int64_t cnt = includePad ? -1 : kb.reduce(RK::Sum, acc, kb.index(mask, acc));
        kb.beginStage(SK::Map, {});
        int64_t div = includePad ? kb.constant(double(kernel->first * kernel->second), acc) : cnt;
        y = kb.op(SOp::Div, acc, {s, div});
      }
      if (Error e = finishEpilogue(kb, op, tail, outIdx, kb.convert(y, ct)))
        return e;
    }
    finishKernel(kb, op.name());
    return Error::success();
  }
  default: break;
  }
  return internalError(std::string("buildHeavyKernel on ") + op.name());
}

// An attention op kept whole: operands q, k, v, [mask] (all buffers, see
// plan()) and the result, in that fixed order (repeats allowed: q = k = v is
// three operands bound to one buffer), plus the op's scale and causal flag.
//
// With a head fold (planHeadFolds), layout=bshd: q, k, v are the [B, S, H, D]
// values the split transposes read, bound to the buffers they are reshapes
// of, and out is the merged [B, S, H, Dv] value, bound to the fold's tail.
Error Lowering::buildAttentionKernel(size_t opIndex) {
  const ir::Operation &op = fn_.ops[opIndex];
  auto fold = headFold_.find(opIndex);
  const HeadFold *hf = fold == headFold_.end() ? nullptr : &fold->second;
  ValueId r = hf ? hf->tail : op.results[0];
  const ir::TensorType &rtype = fn_.typeOf(r);
  KernelBuilder kb;
  kb.k.kind = schedule::Kernel::Kind::Attention;
  // Operand of v's dims, bound to the buffer of `buffer`.
  auto addOperand = [&](ValueId v, ValueId buffer, schedule::OperandRole role) -> Error {
    if (!src_[buffer])
      return internalError("attention operand %" + fn_.value(v).name + " has no buffer");
    Expected<std::vector<IE>> shape = dimsIndex(dimsOf(v));
    if (!shape)
      return shape.takeError();
    schedule::Operand o;
    o.role = role;
    o.dtype = toSir(fn_.typeOf(v).dtype);
    o.shape = shape.take();
    kb.k.operands.push_back(std::move(o));
    kb.plan.operands.push_back(*src_[buffer]);
    return Error::success();
  };
  for (size_t j = 0; j < op.operands.size(); ++j) {
    ValueId o = hf && j < 3 ? hf->inputs[j] : op.operands[j];
    if (Error e = addOperand(o, hf && j < 3 ? denseBuffer(o) : o, schedule::OperandRole::In))
      return e;
  }
  if (rtype.dtype != computeType(rtype.dtype)) {
    ir::Rounding rm = rtype.policy.rounding;
    if (rm != ir::Rounding::NearestEven && rm != ir::Rounding::Stochastic)
      return unsupported(op, std::string("rounding mode '") + ir::roundingName(rm) +
                                 "' on a narrowing store (Schedule IR v1 stores round to nearest even)");
  }
  ValueId outValue = hf ? hf->merged : r;
  if (Error e = addOperand(outValue, r, schedule::OperandRole::Out))
    return e;
  Expected<std::vector<IE>> par = dimsIndex(dimsOf(outValue));
  if (!par)
    return par.takeError();
  kb.k.parallel = par.take();
  if (hf)
    kb.k.attention.layout = schedule::AttentionLayout::Bshd;
  const ir::TensorType &q = fn_.typeOf(op.operands[0]);
  if (const ir::Attribute *a = op.attrs.find("scale")) {
    kb.k.attention.scale = a->getFloat();
  } else {
    std::optional<int64_t> d = q.dims.back().constantValue();
    if (!d || *d <= 0)
      return unsupported(op, "a symbolic head dim " + q.dims.back().str() + " needs an explicit 'scale'");
    kb.k.attention.scale = 1.0 / std::sqrt(double(*d));
  }
  if (!std::isfinite(kb.k.attention.scale))
    return invalid(op, "'scale' must be finite");
  kb.k.attention.causal = op.attrs.getBool("causal", false);
  if (hf)
    kb.plan.fusedOps = hf->folded;
  else
    kb.plan.fusedOps.push_back(op.name());
  finishKernel(kb, op.name());
  out_.schedule.kernels.back().knobs.clear(); // no loop nest to tune with the generic knobs
  // A result returned in several slots: the kernel writes the first; a copy
  // kernel writes the others.
  if (resultSlots_[r].size() > 1)
    return buildCopyKernel(r);
  return Error::success();
}

Expected<FusedProgram> Lowering::run() {
  // Symbols: the parameters' (first appearance), then any other symbol in a
  // value type (e.g. a head count only named in a reshape annotation).
  out_.schedule.symbols = fn_.paramSymbols();
  for (const ir::Value &v : fn_.values)
    for (const ir::Dim &d : v.type.dims)
      for (const std::string &s : d.symbols())
        if (std::find(out_.schedule.symbols.begin(), out_.schedule.symbols.end(), s) ==
            out_.schedule.symbols.end())
          out_.schedule.symbols.push_back(s);
  for (size_t i = 0; i < out_.schedule.symbols.size(); ++i)
    symbols_[out_.schedule.symbols[i]] = static_cast<int64_t>(i);

  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    for (ValueId o : fn_.ops[i].operands)
      if (o >= fn_.values.size())
        return makeError(ErrorCode::InvalidIR, "operand out of range", fn_.ops[i].loc);
  }
  for (const ir::Value &v : fn_.values)
    if (v.type.dtype == ir::DType::Invalid || v.type.rank() > ir::kMaxRank)
      return makeError(ErrorCode::InvalidIR, "@" + fn_.name + ": value %" + v.name +
                                                 " has no valid type (fusion needs a verified, inferred function)",
                       fn_.loc);
  for (ValueId r : fn_.returns)
    if (r >= fn_.values.size())
      return makeError(ErrorCode::InvalidIR, "returned value out of range", fn_.returnLoc);

  if (Error e = plan())
    return e;

  // Results that are parameters or constant buffers are copied.
  for (size_t r = 0; r < fn_.returns.size(); ++r) {
    ValueId v = fn_.returns[r];
    if (resultSlots_[v][0] != r)
      continue; // a value returned twice is stored to both slots by one kernel
    if (!isOpResult(v) || (src_[v] && src_[v]->kind == OperandBinding::Kind::Constant))
      if (Error e = buildCopyKernel(v))
        return e;
  }
  for (size_t i = 0; i < fn_.ops.size(); ++i) {
    const ir::Operation &op = fn_.ops[i];
    for (ValueId r : op.results) {
      if (!mat_[r] || (op.kind == OpKind::Constant && !splat_[r]))
        continue;
      Error e;
      if (auto at = attentionTail_.find(r); at != attentionTail_.end())
        e = buildAttentionKernel(at->second);
      else if (op.kind == OpKind::Attention)
        e = buildAttentionKernel(i);
      else if (auto it = tailOfHeavy_.find(r); it != tailOfHeavy_.end())
        e = buildHeavyKernel(it->second, r);
      else if (isHeavy(op.kind))
        e = buildHeavyKernel(i, r);
      else
        e = buildLoopKernel(r);
      if (e)
        return e;
    }
  }
  if (std::string problem = schedule::validateProgram(out_.schedule); !problem.empty())
    return internalError("fusion produced invalid Schedule IR: " + problem);
  return std::move(out_);
}

} // namespace

Expected<FusedProgram> fuse(const ir::Function &fn, const FusionOptions &options) {
  Lowering lowering(fn, options);
  return lowering.run();
}

} // namespace tessera::fusion
