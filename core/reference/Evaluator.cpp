#include "reference/Evaluator.h"

#include "reference/Ops.h"
#include "shape/Binding.h"

#include <cassert>
#include <optional>
#include <string>

namespace tessera::ref {

Expected<DType> fromIRDType(ir::DType dtype) {
  switch (dtype) {
  case ir::DType::F64: return DType::F64;
  case ir::DType::F32: return DType::F32;
  case ir::DType::F16: return DType::F16;
  case ir::DType::BF16: return DType::BF16;
  case ir::DType::F8E4M3: return DType::F8E4M3FN;
  case ir::DType::F8E5M2: return DType::F8E5M2;
  case ir::DType::I64: return DType::I64;
  case ir::DType::I32: return DType::I32;
  case ir::DType::I16: return DType::I16;
  case ir::DType::I8: return DType::I8;
  case ir::DType::U8: return DType::U8;
  case ir::DType::Bool: return DType::Bool;
  case ir::DType::Invalid: break;
  }
  return makeError(ErrorCode::Unsupported, std::string("the reference interpreter has no dtype '") +
                                               ir::dtypeName(dtype) + "'");
}

ir::DType toIRDType(DType dtype) {
  switch (dtype) {
  case DType::F64: return ir::DType::F64;
  case DType::F32: return ir::DType::F32;
  case DType::F16: return ir::DType::F16;
  case DType::BF16: return ir::DType::BF16;
  case DType::F8E4M3FN: return ir::DType::F8E4M3;
  case DType::F8E5M2: return ir::DType::F8E5M2;
  case DType::I64: return ir::DType::I64;
  case DType::I32: return ir::DType::I32;
  case DType::I16: return ir::DType::I16;
  case DType::I8: return ir::DType::I8;
  case DType::U8: return ir::DType::U8;
  case DType::Bool: return ir::DType::Bool;
  }
  return ir::DType::Invalid;
}

RoundOptions roundOptionsFor(const ir::NumericPolicy &policy) {
  RoundOptions options;
  options.overflow = policy.saturate ? Overflow::Saturate : Overflow::Ieee;
  switch (policy.rounding) {
  case ir::Rounding::NearestEven:
  case ir::Rounding::Stochastic: // see Evaluator.h
    options.mode = RoundingMode::NearestEven;
    break;
  case ir::Rounding::TowardZero: options.mode = RoundingMode::TowardZero; break;
  case ir::Rounding::Up: options.mode = RoundingMode::Up; break;
  case ir::Rounding::Down: options.mode = RoundingMode::Down; break;
  }
  return options;
}

namespace {

using ir::OpKind;

Error invalidIR(const ir::Operation &op, const std::string &message) {
  return makeError(ErrorCode::InvalidIR, std::string(op.name()) + ": " + message, op.loc);
}

// Locates a kernel error at its op, keeping the code.
Error atOp(const ir::Operation &op, const Error &e) {
  return makeError(e.code(), std::string(op.name()) + ": " + e.message(), op.loc);
}

// Decodes hex ("hex:0a1b...") or base64 ("base64:...") constant payloads.
Expected<std::vector<uint8_t>> decodePayload(const std::string &data) {
  std::vector<uint8_t> bytes;
  if (data.rfind("hex:", 0) == 0) {
    std::string hex = data.substr(4);
    if (hex.size() % 2 != 0)
      return makeError(ErrorCode::InvalidIR, "hex constant data has an odd number of digits");
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9')
        return c - '0';
      if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
      if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
      return -1;
    };
    for (size_t i = 0; i < hex.size(); i += 2) {
      int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
      if (hi < 0 || lo < 0)
        return makeError(ErrorCode::InvalidIR, "hex constant data has a non-hex character");
      bytes.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
    return bytes;
  }
  if (data.rfind("base64:", 0) == 0) {
    // RFC 4648 section 4 alphabet; '=' padding only at the end.
    auto sextet = [](char c) -> int {
      if (c >= 'A' && c <= 'Z')
        return c - 'A';
      if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
      if (c >= '0' && c <= '9')
        return c - '0' + 52;
      if (c == '+')
        return 62;
      if (c == '/')
        return 63;
      return -1;
    };
    uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (char c : data.substr(7)) {
      if (c == '=') {
        padding = true;
        continue;
      }
      int v = sextet(c);
      if (v < 0 || padding)
        return makeError(ErrorCode::InvalidIR, "base64 constant data has an invalid character");
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
      }
    }
    return bytes;
  }
  return makeError(ErrorCode::InvalidIR, "constant data must start with \"hex:\" or \"base64:\"");
}

Expected<RefTensor> evalConstant(const ir::Operation &op, DType dtype, const Shape &shape) {
  int64_t n = numElements(shape);
  if (const ir::Attribute *value = op.attrs.find("value")) {
    std::vector<double> values;
    switch (value->kind()) {
    case ir::AttrKind::Int: values.push_back(static_cast<double>(value->getInt())); break;
    case ir::AttrKind::Float: values.push_back(value->getFloat()); break;
    case ir::AttrKind::Bool: values.push_back(value->getBool() ? 1.0 : 0.0); break;
    case ir::AttrKind::IntList:
      for (int64_t v : value->getInts())
        values.push_back(static_cast<double>(v));
      break;
    case ir::AttrKind::FloatList: values = value->getFloats(); break;
    default: return invalidIR(op, "'value' must be a number or a list of numbers");
    }
    bool scalarAttr = value->kind() == ir::AttrKind::Int || value->kind() == ir::AttrKind::Float ||
                      value->kind() == ir::AttrKind::Bool;
    if (scalarAttr)
      return RefTensor::filled(dtype, shape, values.front());
    if (static_cast<int64_t>(values.size()) != n)
      return makeError(ErrorCode::ShapeMismatch,
                       "constant: 'value' has " + std::to_string(values.size()) + " numbers, the type " +
                           shapeString(shape) + " has " + std::to_string(n) + " elements",
                       op.loc);
    return RefTensor(dtype, shape, std::move(values));
  }
  if (const ir::Attribute *data = op.attrs.find("data")) {
    if (data->kind() != ir::AttrKind::String)
      return invalidIR(op, "'data' must be a string");
    Expected<std::vector<uint8_t>> bytes = decodePayload(data->getString());
    if (!bytes)
      return atOp(op, bytes.error());
    size_t width = bitWidth(dtype) / 8;
    if (bytes->size() != static_cast<size_t>(n) * width)
      return makeError(ErrorCode::ShapeMismatch,
                       "constant: 'data' has " + std::to_string(bytes->size()) + " bytes, the type " +
                           shapeString(shape) + " of " + std::string(dtypeName(dtype)) + " needs " +
                           std::to_string(static_cast<size_t>(n) * width),
                       op.loc);
    std::vector<double> values(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      uint64_t bits = 0;
      for (size_t b = 0; b < width; ++b) // little-endian
        bits |= static_cast<uint64_t>((*bytes)[i * width + b]) << (8 * b);
      values[i] = fromBits(bits, dtype);
    }
    return RefTensor(dtype, shape, std::move(values));
  }
  return invalidIR(op, "constant needs 'value' or 'data'");
}

// Reads a 2-element int list attribute (e.g. stride), or `dflt`.
Expected<std::pair<int64_t, int64_t>> pairAttr(const ir::Operation &op, const char *name,
                                               std::pair<int64_t, int64_t> dflt) {
  std::optional<std::vector<int64_t>> v = op.attrs.getInts(name);
  if (!v)
    return dflt;
  if (v->size() != 2)
    return invalidIR(op, std::string("'") + name + "' needs 2 values, got " + std::to_string(v->size()));
  return std::make_pair((*v)[0], (*v)[1]);
}

// Reads `padding` as {top, left, bottom, right}: [ph, pw] or 4 values.
Error readPadding(const ir::Operation &op, int64_t (&pads)[4]) {
  std::optional<std::vector<int64_t>> v = op.attrs.getInts("padding");
  if (!v)
    return Error::success();
  if (v->size() == 2) {
    pads[0] = pads[2] = (*v)[0];
    pads[1] = pads[3] = (*v)[1];
  } else if (v->size() == 4) {
    for (int i = 0; i < 4; ++i)
      pads[i] = (*v)[i];
  } else {
    return invalidIR(op, "'padding' needs 2 or 4 values, got " + std::to_string(v->size()));
  }
  return Error::success();
}

Expected<UnaryOp> unaryFor(const ir::Operation &op) {
  switch (op.kind) {
  case OpKind::Neg: return UnaryOp::Neg;
  case OpKind::Abs: return UnaryOp::Abs;
  case OpKind::Exp: return UnaryOp::Exp;
  case OpKind::Log: return UnaryOp::Log;
  case OpKind::Sqrt: return UnaryOp::Sqrt;
  case OpKind::Rsqrt: return UnaryOp::Rsqrt;
  case OpKind::Tanh: return UnaryOp::Tanh;
  case OpKind::Sigmoid: return UnaryOp::Sigmoid;
  case OpKind::Relu: return UnaryOp::Relu;
  case OpKind::Gelu: {
    std::string approx = op.attrs.getString("approximate", "none");
    if (approx == "none")
      return UnaryOp::Gelu;
    if (approx == "tanh")
      return UnaryOp::GeluTanh;
    return invalidIR(op, "'approximate' must be \"none\" or \"tanh\", got \"" + approx + "\"");
  }
  case OpKind::Silu: return UnaryOp::Silu;
  case OpKind::Erf: return UnaryOp::Erf;
  case OpKind::Sin: return UnaryOp::Sin;
  case OpKind::Cos: return UnaryOp::Cos;
  case OpKind::Floor: return UnaryOp::Floor;
  case OpKind::Ceil: return UnaryOp::Ceil;
  case OpKind::Sign: return UnaryOp::Sign;
  case OpKind::Reciprocal: return UnaryOp::Reciprocal;
  case OpKind::Not: return UnaryOp::LogicalNot;
  default: break;
  }
  return makeError(ErrorCode::Internal, std::string("internal error: ") + op.name() + " is not unary");
}

BinaryOp binaryFor(OpKind kind) {
  switch (kind) {
  case OpKind::Add: return BinaryOp::Add;
  case OpKind::Sub: return BinaryOp::Sub;
  case OpKind::Mul: return BinaryOp::Mul;
  case OpKind::Div: return BinaryOp::Div;
  case OpKind::Pow: return BinaryOp::Pow;
  case OpKind::Max: return BinaryOp::Max;
  case OpKind::Min: return BinaryOp::Min;
  case OpKind::Mod: return BinaryOp::Mod;
  case OpKind::Eq: return BinaryOp::Eq;
  case OpKind::Ne: return BinaryOp::Ne;
  case OpKind::Lt: return BinaryOp::Lt;
  case OpKind::Le: return BinaryOp::Le;
  case OpKind::Gt: return BinaryOp::Gt;
  case OpKind::Ge: return BinaryOp::Ge;
  case OpKind::And: return BinaryOp::And;
  case OpKind::Or: return BinaryOp::Or;
  case OpKind::Xor: return BinaryOp::Xor;
  default: break;
  }
  assert(false && "binaryFor called on a non-binary op");
  return BinaryOp::Add;
}

ReduceOp reduceFor(OpKind kind) {
  switch (kind) {
  case OpKind::ReduceSum: return ReduceOp::Sum;
  case OpKind::ReduceMean: return ReduceOp::Mean;
  case OpKind::ReduceMax: return ReduceOp::Max;
  case OpKind::ReduceMin: return ReduceOp::Min;
  case OpKind::ReduceProd: return ReduceOp::Prod;
  default: break;
  }
  assert(false && "reduceFor called on a non-reduction");
  return ReduceOp::Sum;
}

// Axes from `axis` to the last one (the normalizations' convention).
Expected<std::vector<int64_t>> trailingAxes(const ir::Operation &op, int64_t rank) {
  Expected<int64_t> first = normalizeAxis(op.attrs.getInt("axis", -1), rank, "axis");
  if (!first)
    return first.takeError();
  std::vector<int64_t> axes;
  for (int64_t a = *first; a < rank; ++a)
    axes.push_back(a);
  return axes;
}

Expected<std::vector<RefTensor>> one(Expected<RefTensor> r) {
  if (!r)
    return r.takeError();
  std::vector<RefTensor> out;
  out.push_back(r.take());
  return out;
}

// Computes one op's results in float64 (unrounded). `ops` are the operand
// values; `resultShapes` the bound shapes of the results.
Expected<std::vector<RefTensor>> evalOp(const ir::Function &fn, const ir::Operation &op,
                                        const std::vector<const RefTensor *> &ops,
                                        const std::vector<Shape> &resultShapes, const std::vector<DType> &resultDTypes) {
  const ir::AttrList &attrs = op.attrs;
  if (ir::isElementwiseUnary(op.kind)) {
    Expected<UnaryOp> u = unaryFor(op);
    if (!u)
      return u.takeError();
    return one(unary(*u, *ops[0]));
  }
  if (ir::isElementwiseBinary(op.kind))
    return one(binary(binaryFor(op.kind), *ops[0], *ops[1], DivMode::Floor));
  switch (op.kind) {
  case OpKind::Select:
    return one(select(*ops[0], *ops[1], *ops[2]));
  case OpKind::Cast:
    return one(*ops[0]); // the rounding at the op boundary is the conversion
  case OpKind::ReduceSum:
  case OpKind::ReduceMean:
  case OpKind::ReduceMax:
  case OpKind::ReduceMin:
  case OpKind::ReduceProd:
    return one(reduce(reduceFor(op.kind), *ops[0], attrs.getInts("axes").value_or(std::vector<int64_t>{}),
                      attrs.getBool("keepdim", false)));
  case OpKind::Argmax:
  case OpKind::Argmin: {
    if (!attrs.find("axis"))
      return invalidIR(op, "'axis' is required");
    int64_t axis = attrs.getInt("axis", 0);
    bool keep = attrs.getBool("keepdim", false);
    return one(op.kind == OpKind::Argmax ? argmax(*ops[0], axis, keep) : argmin(*ops[0], axis, keep));
  }
  case OpKind::Softmax:
    return one(softmax(*ops[0], attrs.getInt("axis", -1)));
  case OpKind::LogSoftmax:
    return one(logSoftmax(*ops[0], attrs.getInt("axis", -1)));
  case OpKind::LayerNorm: {
    Expected<std::vector<int64_t>> axes = trailingAxes(op, ops[0]->rank());
    if (!axes)
      return axes.takeError();
    return one(layerNorm(*ops[0], ops.size() > 1 ? ops[1] : nullptr, ops.size() > 2 ? ops[2] : nullptr, *axes,
                         attrs.getFloat("epsilon", 1e-5)));
  }
  case OpKind::RmsNorm: {
    Expected<std::vector<int64_t>> axes = trailingAxes(op, ops[0]->rank());
    if (!axes)
      return axes.takeError();
    return one(rmsNorm(*ops[0], ops.size() > 1 ? ops[1] : nullptr, *axes, attrs.getFloat("epsilon", 1e-6)));
  }
  case OpKind::Matmul:
    return one(matmul(*ops[0], *ops[1]));
  case OpKind::Transpose:
    return one(transpose(*ops[0], attrs.getInts("perm").value_or(std::vector<int64_t>{})));
  case OpKind::Reshape:
    // The target comes from the bound result type, which already reflects
    // the `shape` attribute or the annotation.
    return one(reshape(*ops[0], resultShapes[0]));
  case OpKind::BroadcastTo:
    return one(broadcastTo(*ops[0], resultShapes[0]));
  case OpKind::ExpandDims:
    return one(expandDims(*ops[0], attrs.getInts("axes").value_or(std::vector<int64_t>{})));
  case OpKind::Squeeze: {
    std::optional<std::vector<int64_t>> axes = attrs.getInts("axes");
    if (!axes) {
      // Default: the dims that are literally 1 in the operand's type (a
      // symbolic dim that happens to be 1 at run time stays).
      axes.emplace();
      const ir::TensorType &type = fn.typeOf(op.operands[0]);
      for (size_t i = 0; i < type.dims.size(); ++i)
        if (type.dims[i].constantValue() == std::optional<int64_t>(1))
          axes->push_back(static_cast<int64_t>(i));
      if (axes->empty())
        return one(*ops[0]);
    }
    return one(squeeze(*ops[0], *axes));
  }
  case OpKind::Concat: {
    std::vector<RefTensor> xs;
    for (const RefTensor *x : ops)
      xs.push_back(*x);
    return one(concat(xs, attrs.getInt("axis", 0)));
  }
  case OpKind::Split: {
    int64_t axis = attrs.getInt("axis", 0);
    std::optional<std::vector<int64_t>> sizes = attrs.getInts("sizes");
    if (!sizes) {
      int64_t num = attrs.getInt("num", 0);
      Expected<int64_t> ax = normalizeAxis(axis, ops[0]->rank(), "split axis");
      if (!ax)
        return ax.takeError();
      int64_t dim = ops[0]->shape[*ax];
      if (num <= 0 || dim % num != 0)
        return makeError(ErrorCode::ShapeMismatch, "split: axis " + std::to_string(axis) + " of size " +
                                                       std::to_string(dim) + " does not split into " +
                                                       std::to_string(num) + " equal parts");
      sizes = std::vector<int64_t>(static_cast<size_t>(num), dim / num);
    }
    return split(*ops[0], axis, *sizes);
  }
  case OpKind::Slice: {
    std::optional<std::vector<int64_t>> starts = attrs.getInts("starts"), ends = attrs.getInts("ends");
    if (!starts || !ends)
      return invalidIR(op, "'starts' and 'ends' are required");
    for (int64_t step : attrs.getInts("steps").value_or(std::vector<int64_t>{}))
      if (step <= 0)
        return invalidIR(op, "'steps' must be positive, got " + std::to_string(step));
    return one(slice(*ops[0], *starts, *ends, attrs.getInts("steps").value_or(std::vector<int64_t>{}),
                     attrs.getInts("axes").value_or(std::vector<int64_t>{})));
  }
  case OpKind::Gather:
    return one(gather(*ops[0], *ops[1], attrs.getInt("axis", 0)));
  case OpKind::Pad: {
    std::vector<int64_t> pads = attrs.getInts("pads").value_or(std::vector<int64_t>{});
    if (static_cast<int64_t>(pads.size()) != 2 * ops[0]->rank())
      return invalidIR(op, "'pads' needs 2 values per axis (" + std::to_string(2 * ops[0]->rank()) + "), got " +
                               std::to_string(pads.size()));
    std::vector<int64_t> lows, highs;
    for (size_t i = 0; i < pads.size(); i += 2) {
      lows.push_back(pads[i]);
      highs.push_back(pads[i + 1]);
    }
    return one(pad(*ops[0], lows, highs, attrs.getFloat("value", 0.0)));
  }
  case OpKind::Iota:
    if (resultShapes[0].empty())
      return invalidIR(op, "iota needs a result of rank >= 1");
    return one(iota(resultShapes[0], attrs.getInt("axis", 0), resultDTypes[0]));
  case OpKind::Conv2d: {
    Conv2dParams p;
    Expected<std::pair<int64_t, int64_t>> stride = pairAttr(op, "stride", {1, 1});
    Expected<std::pair<int64_t, int64_t>> dilation = pairAttr(op, "dilation", {1, 1});
    if (!stride)
      return stride.takeError();
    if (!dilation)
      return dilation.takeError();
    p.strides[0] = stride->first;
    p.strides[1] = stride->second;
    p.dilations[0] = dilation->first;
    p.dilations[1] = dilation->second;
    if (Error e = readPadding(op, p.pads))
      return e;
    p.groups = attrs.getInt("groups", 1);
    return one(conv2d(*ops[0], *ops[1], ops.size() > 2 ? ops[2] : nullptr, p));
  }
  case OpKind::MaxPool2d:
  case OpKind::AvgPool2d: {
    Pool2dParams p;
    Expected<std::pair<int64_t, int64_t>> kernel = pairAttr(op, "kernel", {0, 0});
    if (!kernel)
      return kernel.takeError();
    if (!attrs.find("kernel"))
      return invalidIR(op, "'kernel' is required");
    Expected<std::pair<int64_t, int64_t>> stride = pairAttr(op, "stride", *kernel);
    Expected<std::pair<int64_t, int64_t>> dilation = pairAttr(op, "dilation", {1, 1});
    if (!stride)
      return stride.takeError();
    if (!dilation)
      return dilation.takeError();
    p.kernel[0] = kernel->first;
    p.kernel[1] = kernel->second;
    p.strides[0] = stride->first;
    p.strides[1] = stride->second;
    p.dilations[0] = dilation->first;
    p.dilations[1] = dilation->second;
    if (Error e = readPadding(op, p.pads))
      return e;
    p.countIncludePad = attrs.getBool("count_include_pad", false);
    return one(pool2d(op.kind == OpKind::MaxPool2d ? PoolKind::Max : PoolKind::Avg, *ops[0], p));
  }
  case OpKind::Constant:
    return one(evalConstant(op, resultDTypes[0], resultShapes[0]));
  case OpKind::Attention: {
    AttentionParams p;
    p.causal = attrs.getBool("causal", false);
    if (attrs.find("scale"))
      p.scale = attrs.getFloat("scale", 1.0);
    return one(attention(*ops[0], *ops[1], *ops[2], ops.size() > 3 ? ops[3] : nullptr, p));
  }
  default:
    break;
  }
  return makeError(ErrorCode::Unsupported,
                   std::string("the reference interpreter does not implement op '") + op.name() + "'", op.loc);
}

} // namespace

Expected<std::vector<RefTensor>> evaluate(const ir::Function &fn, std::vector<RefTensor> inputs) {
  if (inputs.size() != fn.params.size())
    return makeError(ErrorCode::ShapeMismatch, "@" + fn.name + " takes " + std::to_string(fn.params.size()) +
                                                   " inputs, got " + std::to_string(inputs.size()),
                     fn.loc);
  std::vector<std::vector<int64_t>> inputShapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Expected<int64_t> n = checkedNumElements(inputs[i].shape);
    if (!n)
      return n.takeError();
    if (*n != inputs[i].numElements())
      return makeError(ErrorCode::InvalidArgument, "input " + std::to_string(i) + " has " +
                                                       std::to_string(inputs[i].numElements()) +
                                                       " values for shape " + shapeString(inputs[i].shape));
    inputShapes.push_back(inputs[i].shape);
  }
  Expected<shape::BoundShapes> bound = shape::bindShapes(fn, inputShapes);
  if (!bound)
    return bound.takeError();

  std::vector<std::optional<RefTensor>> env(fn.values.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Value &param = fn.value(fn.params[i]);
    Expected<DType> dtype = fromIRDType(param.type.dtype);
    if (!dtype)
      return dtype.takeError();
    roundInPlace(inputs[i], *dtype, roundOptionsFor(param.type.policy));
    env[fn.params[i]] = std::move(inputs[i]);
  }

  for (const ir::Operation &op : fn.ops) {
    std::vector<const RefTensor *> operands;
    for (ir::ValueId id : op.operands) {
      if (id >= env.size() || !env[id])
        return makeError(ErrorCode::Internal,
                         std::string("internal error: operand of ") + op.name() + " is not defined before use",
                         op.loc);
      operands.push_back(&*env[id]);
    }
    std::vector<Shape> resultShapes;
    std::vector<DType> resultDTypes;
    for (ir::ValueId id : op.results) {
      // Refuse results beyond the oracle's limits before any kernel allocates.
      if (Expected<int64_t> n = checkedNumElements(bound->valueShapes[id]); !n)
        return atOp(op, n.error());
      resultShapes.push_back(bound->valueShapes[id]);
      Expected<DType> dtype = fromIRDType(fn.typeOf(id).dtype);
      if (!dtype)
        return atOp(op, dtype.error());
      resultDTypes.push_back(*dtype);
    }
    Expected<std::vector<RefTensor>> results = evalOp(fn, op, operands, resultShapes, resultDTypes);
    if (!results) {
      const Error &e = results.error();
      return e.location().known() ? results.takeError() : atOp(op, e);
    }
    if (results->size() != op.results.size())
      return makeError(ErrorCode::Internal,
                       std::string("internal error: ") + op.name() + " produced " + std::to_string(results->size()) +
                           " results, the IR has " + std::to_string(op.results.size()),
                       op.loc);
    for (size_t r = 0; r < op.results.size(); ++r) {
      RefTensor &t = (*results)[r];
      // Cross-check the kernel against shape inference: any disagreement is a
      // bug in one of the two.
      if (t.shape != resultShapes[r])
        return makeError(ErrorCode::Internal,
                         std::string("internal error: the reference kernel of ") + op.name() + " computed shape " +
                             shapeString(t.shape) + ", shape inference bound " + shapeString(resultShapes[r]),
                         op.loc);
      roundInPlace(t, resultDTypes[r], roundOptionsFor(fn.typeOf(op.results[r]).policy));
      env[op.results[r]] = std::move(t);
    }
  }

  std::vector<RefTensor> outputs;
  for (ir::ValueId id : fn.returns) {
    if (id >= env.size() || !env[id])
      return makeError(ErrorCode::Internal, "internal error: a returned value is undefined", fn.returnLoc);
    outputs.push_back(*env[id]);
  }
  return outputs;
}

} // namespace tessera::ref
