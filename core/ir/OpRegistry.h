// The op table: one row per Graph IR op with its name, operand count,
// attributes (name, type, required) and result-type rule. The parser, the
// verifier, the builder C API and docs all read this table.
#ifndef TESSERA_IR_OPREGISTRY_H
#define TESSERA_IR_OPREGISTRY_H

#include "ir/Attribute.h"

#include <cstdint>
#include <string_view>
#include <vector>

namespace tessera::ir {

enum class OpKind : uint16_t {
  // Elementwise unary.
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Tanh, Sigmoid, Relu, Gelu, Silu, Erf, Sin, Cos,
  Floor, Ceil, Sign, Reciprocal, Not,
  // Elementwise binary with NumPy broadcasting.
  Add, Sub, Mul, Div, Pow, Max, Min, Mod,
  Eq, Ne, Lt, Le, Gt, Ge, // comparisons -> bool
  And, Or, Xor,           // logical on bool
  Select, Cast,
  // Reductions.
  ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, Argmax, Argmin,
  Softmax, LogSoftmax, LayerNorm, RmsNorm,
  Matmul,
  // Data movement.
  Transpose, Reshape, BroadcastTo, ExpandDims, Squeeze, Concat, Split, Slice, Gather, Pad, Iota,
  // Convolution and pooling (NCHW).
  Conv2d, MaxPool2d, AvgPool2d,
  Constant,
  // Composite ops (have a decomposition, see shape/Decompose.h).
  Attention,
  NumOps // sentinel
};

enum class OpGroup : uint8_t {
  Unary, Binary, Compare, Logical, Select, Cast, Reduction, Normalization, Contraction,
  DataMovement, Convolution, Constant, Composite
};
const char *opGroupName(OpGroup group);

// Attribute types the registry accepts. Number = int, float or bool scalar or
// list (the `value` of constant).
enum class AttrType : uint8_t { Int, Float, String, Bool, IntList, FloatList, DType, Number };
const char *attrTypeName(AttrType type);

struct AttrSpec {
  const char *name;
  AttrType type;
  bool required;
  const char *doc; // one line for docs and diagnostics, includes the default
};

// How an op's result types come about.
enum class ResultRule : uint8_t {
  Inferred,         // inferred; an annotation is optional and must agree
  AnnotationOrAttr, // reshape/broadcast_to: from the annotation or a `shape` attribute
  Annotated,        // constant, iota: the annotation is the type
};

struct OpInfo {
  OpKind kind;
  const char *name;
  OpGroup group;
  int minOperands;
  int maxOperands;    // -1 = variadic
  int numResults;     // -1 = decided by attributes (split)
  ResultRule resultRule;
  std::vector<AttrSpec> attrs;
  const char *summary;

  const AttrSpec *findAttr(std::string_view attrName) const;
};

const OpInfo &opInfo(OpKind kind);
// By name; also resolves aliases ("where" -> select, "permute" -> transpose).
// nullptr for unknown names.
const OpInfo *lookupOp(std::string_view name);
// Every op, in OpKind order.
const std::vector<OpInfo> &allOps();
// Names of known ops close to `name` (edit distance <= 2), for hints.
std::vector<std::string> similarOpNames(std::string_view name);

inline bool isElementwiseUnary(OpKind k) { return k <= OpKind::Not; }
inline bool isElementwiseBinary(OpKind k) { return k >= OpKind::Add && k <= OpKind::Xor; }

} // namespace tessera::ir

#endif // TESSERA_IR_OPREGISTRY_H
