// schedule_ir.h: Schedule IR, the program a backend plugin compiles.
//
// The core fuses Graph IR into kernels and hands them to a plugin's
// `compile` slot as the bytes of this IR in its text form (program_format
// "tessera-schedule-v1"). A plugin parses them with parseProgram(), lowers each
// kernel to its own tile IR and target code, and launches kernel i with the
// kernel's operands as buffers (in operand order) and the program's symbol
// values as scalars (in symbol order). Header + one source in the SDK; C++17;
// no dependency on the core.
//
// A kernel is a loop nest over an iteration space:
//
//   for p0 in [0, parallel[0]) ... for pN in [0, parallel[N])    -- parallel, any order
//     stage 0:  for r0 in [0, inner[0]) ... { body }              -- map or reduce
//     stage 1:  ...
//
// Values (v0, v1, ...) are SSA scalars. A value defined in a stage is
// visible in that stage; a reduce stage's `reduce` results are also visible in
// every later stage of the same parallel point. Loads and stores address a
// dense row-major operand with one index expression per dimension. Index
// expressions are integer arithmetic over constants, symbols (s0..),
// parallel loop variables (p0..), the current stage's inner loop variables
// (r0..) and integer values (v3), so gathers are expressible.
//
// Text form (what --dump=schedule prints):
//
//   tessera-schedule v1
//   symbols B S
//   kernel "softmax_0" loop {
//     operand 0 in f32 [s0, s1]
//     operand 1 out f32 [s0, s1]
//     parallel [s0]
//     knobs vector=16
//     stage reduce [s1] {
//       v0: f32 = load 0 [p0, r0]
//       v1: f32 = reduce max v0
//     }
//     stage reduce [s1] {
//       v2: f32 = load 0 [p0, r0]
//       v3: f32 = sub v2 v1
//       v4: f32 = exp v3
//       v5: f32 = reduce sum v4
//     }
//     stage map [s1] {
//       v6: f32 = load 0 [p0, r0]
//       v7: f32 = sub v6 v1
//       v8: f32 = exp v7
//       v9: f32 = div v8 v5
//       store 1 [p0, r0] v9
//     }
//   }
//
// Masked loads read nothing where the mask is false:
//   v2: f32 = load 0 [p0, (p1 - 1)] if ((p1 >= 1) && (p1 < 9)) else 0
//
// Kernel kind `matmul` promises the canonical contraction form, so a plugin
// can use its GEMM path: the first stage is `reduce [K]` whose body is
// exactly two loads A and B, one `mul`, and one `reduce sum`; the last two
// parallel loops are M and N (leading ones are batch), A's index is affine in
// (batch, p_M, r0) and B's in (batch, r0, p_N). Later stages are the epilogue.
// A plugin may always ignore the kind and run the generic loop nest.
//
// Kernel kind `attention` is one whole attention op, handed only to plugins
// that list "attention" in their NATIVE_OPS extension (tessera_backend.h);
// the core decomposes attention for every other plugin. It has no stages:
//
//   kernel "attention_0" attention {
//     operand 0 in bf16 [s0, 16, s1, 128]     q    [batch..., Sq, D]
//     operand 1 in bf16 [s0, 16, s2, 128]     k    [batch..., Sk, D]
//     operand 2 in bf16 [s0, 16, s2, 128]     v    [batch..., Sk, Dv]
//     operand 3 in bf16 [s1, s2]              mask (optional) additive,
//                                             broadcast to [batch..., Sq, Sk]
//     operand 4 out bf16 [s0, 16, s1, 128]    out  [batch..., Sq, Dv]
//     parallel [s0, 16, s1, 128]              the out shape
//     attention scale=0.088388347648318447 causal=1
//   }
//
// out = softmax(q k^T * scale [+ mask] [causal]) v over the last two dims,
// per batch point; every operand dense row-major with the same float dtype.
// Causal masks key j > query i (top-left aligned). Mask dims are right-
// aligned against [batch..., Sq, Sk]; a dim written as the constant 1
// broadcasts, every other dim equals the score dim (the same expression).
// Scores, softmax and the weighted sum compute in f32 (f64 for f64
// operands); the result is rounded once to nearest even. A row whose every
// key is masked (-inf) is NaN, as in the reference.
//
// An optional `layout=bshd` on the attention line (after causal; the
// default, `bhsd`, is not printed) says q, k, v and out are stored
// [batch..., S, H, D] (the projections' own layout after a head split, as
// FlashAttention's API takes them) while attention is computed per
// (batch..., H) point exactly as above; their shapes are written in that
// storage order (rank >= 3) and `parallel` is out's storage shape. The
// mask keeps its form, right-aligned against [batch..., H, Sq, Sk]:
//
//   kernel "attention_7" attention {
//     operand 0 in bf16 [s0, s1, 8, 128]      q    [batch..., Sq, H, D]
//     operand 1 in bf16 [s0, s2, 8, 128]      k    [batch..., Sk, H, D]
//     operand 2 in bf16 [s0, s2, 8, 128]      v    [batch..., Sk, H, Dv]
//     operand 3 out bf16 [s0, s1, 8, 128]     out  [batch..., Sq, H, Dv]
//     parallel [s0, s1, 8, 128]
//     attention scale=0.088388347648318447 causal=1 layout=bshd
//   }
//
// Element (batch b, head h, row i, column e) of q is then at
// ((b * Sq + i) * H + h) * D + e: row stride H * D instead of D.
//
// Knobs are hints from the schedule search (tile sizes per parallel loop,
// vector width, unroll, threads, or library="onednn"); a plugin may clamp or
// ignore what it cannot honour but must stay correct.
#ifndef TESSERA_SDK_SCHEDULE_IR_H_
#define TESSERA_SDK_SCHEDULE_IR_H_

#include "tessera/tessera_types.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tessera::schedule {

inline constexpr const char *kProgramFormat = "tessera-schedule-v1";

// Integer index arithmetic. Division and modulo are floored (Python/NumPy).
struct IndexExpr {
  enum class Kind : uint8_t {
    Const,    // value
    Symbol,   // s<value>
    Parallel, // p<value>
    Inner,    // r<value>: inner loop of the current stage
    Value,    // v<value>: an SSA value converted to int64
    Add, Sub, Mul, FloorDiv, Mod, Min, Max, // binary, two args
    Lt, Le, Eq, Ne, And,                    // 0/1 results, for masks
  };
  Kind kind = Kind::Const;
  int64_t value = 0;
  std::vector<IndexExpr> args;

  static IndexExpr constant(int64_t v) { return {Kind::Const, v, {}}; }
  static IndexExpr symbol(int64_t i) { return {Kind::Symbol, i, {}}; }
  static IndexExpr parallel(int64_t i) { return {Kind::Parallel, i, {}}; }
  static IndexExpr inner(int64_t i) { return {Kind::Inner, i, {}}; }
  static IndexExpr fromValue(int64_t v) { return {Kind::Value, v, {}}; }
  static IndexExpr binary(Kind k, IndexExpr a, IndexExpr b);

  bool isConst() const { return kind == Kind::Const; }
  bool operator==(const IndexExpr &o) const { return kind == o.kind && value == o.value && args == o.args; }
};
IndexExpr operator+(IndexExpr a, IndexExpr b);
IndexExpr operator-(IndexExpr a, IndexExpr b);
IndexExpr operator*(IndexExpr a, IndexExpr b);

// Scalar operations of a kernel body.
enum class Op : uint8_t {
  // Sources.
  Load,   // operand + index; optional mask and fallback
  Const,  // literal (number)
  Index,  // an index expression as a value (iota, positions)
  Acc,    // reserved
  // Unary.
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, GeluErf, GeluTanh, Silu, Erf, Sin, Cos,
  Floor, Ceil, Sign, Reciprocal, Not,
  // Binary.
  Add, Sub, Mul, Div, Pow, Max, Min, Mod, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor,
  // Other.
  Select, // cond, a, b
  Cast,   // to the result dtype (round to nearest even, saturate per `saturate`)
  Reduce, // reduce <kind> arg: accumulates over the stage's inner loops
};
const char *opName(Op op);
int opArity(Op op); // operand values; -1 for sources

enum class ReduceKind : uint8_t { Sum, Max, Min, Prod, Argmax, Argmin };
const char *reduceKindName(ReduceKind kind);

struct Instr {
  int64_t result = -1;          // value id defined (-1 for store)
  tessera_dtype_t dtype = TESSERA_DTYPE_INVALID;
  Op op = Op::Const;
  std::vector<int64_t> args;    // value ids
  // Load: operand index, its index expressions, optional mask and fallback.
  int64_t operand = -1;
  std::vector<IndexExpr> index;
  std::unique_ptr<IndexExpr> mask;
  double fallback = 0.0;
  double constant = 0.0;        // Const
  IndexExpr indexValue;         // Index
  ReduceKind reduce = ReduceKind::Sum;
  bool saturate = false;        // Cast
  bool isStore = false;         // store <operand> [index] <args[0]>

  Instr() = default;
  Instr(const Instr &o);
  Instr &operator=(const Instr &o);
  Instr(Instr &&) = default;
  Instr &operator=(Instr &&) = default;
};

struct Stage {
  enum class Kind : uint8_t { Map, Reduce };
  Kind kind = Kind::Map;
  std::vector<IndexExpr> inner; // inner loop extents (over constants and symbols)
  std::vector<Instr> body;
};

enum class OperandRole : uint8_t { In, Out, InOut };

struct Operand {
  OperandRole role = OperandRole::In;
  tessera_dtype_t dtype = TESSERA_DTYPE_F32;
  std::vector<IndexExpr> shape; // over constants and symbols; row-major, dense
};

using KnobValue = std::variant<int64_t, std::vector<int64_t>, std::string>;

// How q, k, v and out of an attention kernel are stored (the mask never
// changes): Bhsd = [batch..., H, S, D] (every dim before S is batch),
// Bshd = [batch..., S, H, D].
enum class AttentionLayout : uint8_t { Bhsd, Bshd };
const char *attentionLayoutName(AttentionLayout layout); // "bhsd", "bshd"

// The `attention` line of a kernel of kind Attention.
struct AttentionSpec {
  double scale = 1.0; // finite
  bool causal = false;
  AttentionLayout layout = AttentionLayout::Bhsd;
};

struct Kernel {
  enum class Kind : uint8_t { Loop, Matmul, Attention };
  std::string name;
  Kind kind = Kind::Loop;
  std::vector<Operand> operands;
  std::vector<IndexExpr> parallel; // extents over constants and symbols
  std::map<std::string, KnobValue> knobs;
  std::vector<Stage> stages;
  AttentionSpec attention;         // kind Attention only

  // Kind Attention: operand indices (the mask is -1 when absent).
  int64_t attentionMask() const { return operands.size() == 5 ? 3 : -1; }
  int64_t attentionOut() const { return static_cast<int64_t>(operands.size()) - 1; }
  // Kind Attention: operand `o`'s dims (its shape, or their values) in the
  // computation's order [batch..., S, D] with H a batch dim: storage order,
  // with S and H swapped for q, k, v and out of a Bshd kernel.
  template <class T> std::vector<T> attentionDims(size_t o, std::vector<T> dims) const {
    if (attention.layout == AttentionLayout::Bshd && static_cast<int64_t>(o) != attentionMask() && dims.size() >= 3)
      std::swap(dims[dims.size() - 3], dims[dims.size() - 2]);
    return dims;
  }

  // Knob lookups with defaults.
  int64_t knobInt(const std::string &key, int64_t fallback) const;
  std::vector<int64_t> knobInts(const std::string &key) const;
  std::string knobString(const std::string &key) const;
};

struct Program {
  std::vector<std::string> symbols;
  std::vector<Kernel> kernels;
};

// A parse or validation failure with its 1-based line and column.
struct ParseError {
  std::string message;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string str() const; // "line L:C: message"
};

// The canonical text form (round-trips through parseProgram).
std::string printProgram(const Program &program);
std::string printIndex(const IndexExpr &e);

// Parses and validates text produced by printProgram (or written by hand).
// Returns false and fills *error on malformed input; never throws.
bool parseProgram(const std::string &text, Program *out, ParseError *error);

// Structural checks: operand and value references, loop-variable ranges,
// store/reduce placement, matmul and attention forms. Empty string when valid.
std::string validateProgram(const Program &program);

// Evaluates an index expression; `values` gives integer values for Value
// refs (may be null when none occur). Floored division and modulo.
int64_t evalIndex(const IndexExpr &e, const int64_t *symbols, const int64_t *parallel, const int64_t *inner,
                  const double *values);

// Size in bytes of one element; 0 for invalid.
size_t dtypeSize(tessera_dtype_t dtype);
const char *dtypeName(tessera_dtype_t dtype);
// "loop", "matmul", "attention".
const char *kernelKindName(Kernel::Kind kind);

} // namespace tessera::schedule

#endif // TESSERA_SDK_SCHEDULE_IR_H_
