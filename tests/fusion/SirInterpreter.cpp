#include "SirInterpreter.h"

#include "AttentionRef.h"

#include "reference/Evaluator.h"
#include "reference/Ops.h"
#include "shape/Binding.h"

#include <cmath>
#include <limits>
#include <string>

namespace tessera::sirtest {
namespace {

using schedule::Op;

struct Buffer {
  ref::DType dtype = ref::DType::F64;
  std::vector<int64_t> shape;
  std::vector<double> data;
};

Expected<ref::DType> refType(tessera_dtype_t d) {
  return ref::fromIRDType(static_cast<ir::DType>(static_cast<int32_t>(d)));
}

std::optional<ref::UnaryOp> unaryOf(Op op) {
  switch (op) {
  case Op::Neg: return ref::UnaryOp::Neg;
  case Op::Abs: return ref::UnaryOp::Abs;
  case Op::Exp: return ref::UnaryOp::Exp;
  case Op::Log: return ref::UnaryOp::Log;
  case Op::Sqrt: return ref::UnaryOp::Sqrt;
  case Op::Rsqrt: return ref::UnaryOp::Rsqrt;
  case Op::Tanh: return ref::UnaryOp::Tanh;
  case Op::Sigmoid: return ref::UnaryOp::Sigmoid;
  case Op::Relu: return ref::UnaryOp::Relu;
  case Op::GeluErf: return ref::UnaryOp::Gelu;
  case Op::GeluTanh: return ref::UnaryOp::GeluTanh;
  case Op::Silu: return ref::UnaryOp::Silu;
  case Op::Erf: return ref::UnaryOp::Erf;
  case Op::Sin: return ref::UnaryOp::Sin;
  case Op::Cos: return ref::UnaryOp::Cos;
  case Op::Floor: return ref::UnaryOp::Floor;
  case Op::Ceil: return ref::UnaryOp::Ceil;
  case Op::Sign: return ref::UnaryOp::Sign;
  case Op::Reciprocal: return ref::UnaryOp::Reciprocal;
  case Op::Not: return ref::UnaryOp::LogicalNot;
  default: return std::nullopt;
  }
}

std::optional<ref::BinaryOp> binaryOf(Op op) {
  switch (op) {
  case Op::Add: return ref::BinaryOp::Add;
  case Op::Sub: return ref::BinaryOp::Sub;
  case Op::Mul: return ref::BinaryOp::Mul;
  case Op::Div: return ref::BinaryOp::Div;
  case Op::Pow: return ref::BinaryOp::Pow;
  case Op::Max: return ref::BinaryOp::Max;
  case Op::Min: return ref::BinaryOp::Min;
  case Op::Mod: return ref::BinaryOp::Mod;
  case Op::Eq: return ref::BinaryOp::Eq;
  case Op::Ne: return ref::BinaryOp::Ne;
  case Op::Lt: return ref::BinaryOp::Lt;
  case Op::Le: return ref::BinaryOp::Le;
  case Op::Gt: return ref::BinaryOp::Gt;
  case Op::Ge: return ref::BinaryOp::Ge;
  case Op::And: return ref::BinaryOp::And;
  case Op::Or: return ref::BinaryOp::Or;
  case Op::Xor: return ref::BinaryOp::Xor;
  default: return std::nullopt;
  }
}

struct Reducer {
  schedule::ReduceKind kind;
  double acc = 0, best = 0;
  int64_t bestIndex = -1;
  bool any = false;
};

class KernelRun {
public:
  KernelRun(const schedule::Kernel &k, std::vector<Buffer *> operands, const std::vector<int64_t> &symbols)
      : k_(k), ops_(std::move(operands)), sym_(symbols) {}

  Error run() {
    if (k_.kind == schedule::Kernel::Kind::Attention) {
      Buffer &out = *ops_[static_cast<size_t>(k_.attentionOut())];
      std::string e = testing::runAttentionKernel(
          k_, sym_.data(), [&](int64_t o, int64_t off) { return ops_[static_cast<size_t>(o)]->data.at(static_cast<size_t>(off)); },
          [&](int64_t off, double v) { out.data.at(static_cast<size_t>(off)) = ref::roundTo(v, out.dtype); });
      if (!e.empty())
        return makeError(ErrorCode::Internal, "kernel \"" + k_.name + "\": " + e);
      return Error::success();
    }
    int64_t maxId = -1;
    for (const auto &s : k_.stages)
      for (const auto &in : s.body)
        maxId = std::max(maxId, in.result);
    values_.assign(static_cast<size_t>(maxId + 1), 0.0);
    types_.assign(static_cast<size_t>(maxId + 1), ref::DType::F64);
    for (const auto &s : k_.stages)
      for (const auto &in : s.body)
        if (!in.isStore) {
          Expected<ref::DType> t = refType(in.dtype);
          if (!t)
            return t.takeError();
          types_[static_cast<size_t>(in.result)] = *t;
        }
    std::vector<int64_t> ext;
    for (const auto &e : k_.parallel)
      ext.push_back(schedule::evalIndex(e, sym_.data(), nullptr, nullptr, nullptr));
    std::vector<int64_t> p(ext.size(), 0);
    for (int64_t e : ext)
      if (e <= 0)
        return Error::success();
    while (true) {
      if (Error e = point(p))
        return e;
      size_t d = p.size();
      while (d > 0) {
        if (++p[d - 1] < ext[d - 1])
          break;
        p[d - 1] = 0;
        --d;
      }
      if (d == 0)
        break;
    }
    return Error::success();
  }

private:
  const schedule::Kernel &k_;
  std::vector<Buffer *> ops_;
  const std::vector<int64_t> &sym_;
  std::vector<double> values_;
  std::vector<ref::DType> types_;

  Expected<int64_t> offset(const schedule::Instr &in, const int64_t *p, const int64_t *r) {
    Buffer &b = *ops_[static_cast<size_t>(in.operand)];
    int64_t off = 0;
    for (size_t d = 0; d < in.index.size(); ++d) {
      int64_t i = schedule::evalIndex(in.index[d], sym_.data(), p, r, values_.data());
      if (i < 0 || i >= b.shape[d])
        return makeError(ErrorCode::Internal, "kernel \"" + k_.name + "\": operand " + std::to_string(in.operand) +
                                                  " dim " + std::to_string(d) + " index " + std::to_string(i) +
                                                  " out of range [0, " + std::to_string(b.shape[d]) + ")");
      off = off * b.shape[d] + i;
    }
    return off;
  }

  Error exec(const schedule::Instr &in, const int64_t *p, const int64_t *r, std::vector<Reducer> *reducers,
             int64_t innerLinear) {
    if (in.isStore) {
      Expected<int64_t> off = offset(in, p, r);
      if (!off)
        return off.takeError();
      Buffer &b = *ops_[static_cast<size_t>(in.operand)];
      b.data[static_cast<size_t>(*off)] = ref::roundTo(values_[static_cast<size_t>(in.args[0])], b.dtype);
      return Error::success();
    }
    size_t id = static_cast<size_t>(in.result);
    ref::DType t = types_[id];
    auto arg = [&](size_t i) { return values_[static_cast<size_t>(in.args[i])]; };
    auto argInt = [&](size_t i) { return ref::isInteger(types_[static_cast<size_t>(in.args[i])]); };
    double v = 0;
    switch (in.op) {
    case Op::Load: {
      if (in.mask && schedule::evalIndex(*in.mask, sym_.data(), p, r, values_.data()) == 0) {
        v = in.fallback;
        break;
      }
      Expected<int64_t> off = offset(in, p, r);
      if (!off)
        return off.takeError();
      v = ops_[static_cast<size_t>(in.operand)]->data[static_cast<size_t>(*off)];
      break;
    }
    case Op::Const: v = in.constant; break;
    case Op::Index: v = static_cast<double>(schedule::evalIndex(in.indexValue, sym_.data(), p, r, values_.data())); break;
    case Op::Select: v = arg(0) != 0 ? arg(1) : arg(2); break;
    case Op::Cast: {
      ref::RoundOptions o;
      if (in.saturate)
        o.overflow = ref::Overflow::Saturate;
      v = ref::roundTo(arg(0), t, o);
      break;
    }
    case Op::Reduce: {
      if (!reducers)
        return makeError(ErrorCode::Internal, "reduce outside a reduce stage");
      Reducer &red = (*reducers)[id];
      double x = arg(0);
      switch (in.reduce) {
      case schedule::ReduceKind::Sum: red.acc = ref::roundTo(red.acc + x, t); break;
      case schedule::ReduceKind::Prod: red.acc = ref::roundTo(red.acc * x, t); break;
      case schedule::ReduceKind::Max:
        if (!std::isnan(red.acc) && (std::isnan(x) || x > red.acc)) red.acc = x;
        break;
      case schedule::ReduceKind::Min:
        if (!std::isnan(red.acc) && (std::isnan(x) || x < red.acc)) red.acc = x;
        break;
      case schedule::ReduceKind::Argmax:
      case schedule::ReduceKind::Argmin: {
        bool isMax = in.reduce == schedule::ReduceKind::Argmax;
        if (red.bestIndex < 0 || (!std::isnan(red.best) && (std::isnan(x) || (isMax ? x > red.best : x < red.best)))) {
          red.best = x;
          red.bestIndex = innerLinear;
        }
        red.acc = static_cast<double>(red.bestIndex);
        break;
      }
      }
      return Error::success(); // the value is published after the stage
    }
    default: {
      if (std::optional<ref::UnaryOp> u = unaryOf(in.op)) {
        v = ref::applyUnary(*u, arg(0));
        if (argInt(0) && (in.op == Op::Neg || in.op == Op::Abs))
          v = ref::roundTo(v, t);
        break;
      }
      if (std::optional<ref::BinaryOp> b = binaryOf(in.op)) {
        v = ref::applyBinary(*b, arg(0), arg(1), argInt(0) && argInt(1));
        break;
      }
      return makeError(ErrorCode::Unsupported, std::string("interpreter: op ") + schedule::opName(in.op));
    }
    }
    values_[id] = in.op == Op::Load ? v : ref::roundTo(v, t);
    if (in.op == Op::Load && ref::isFloat(t))
      values_[id] = ref::roundTo(v, t);
    return Error::success();
  }

  Error point(const std::vector<int64_t> &p) {
    for (const schedule::Stage &s : k_.stages) {
      std::vector<int64_t> ext;
      for (const auto &e : s.inner)
        ext.push_back(schedule::evalIndex(e, sym_.data(), p.data(), nullptr, nullptr));
      bool reduce = s.kind == schedule::Stage::Kind::Reduce;
      std::vector<Reducer> reducers;
      if (reduce) {
        reducers.resize(values_.size());
        for (const auto &in : s.body)
          if (in.op == Op::Reduce && !in.isStore) {
            Reducer &r = reducers[static_cast<size_t>(in.result)];
            r.kind = in.reduce;
            switch (in.reduce) {
            case schedule::ReduceKind::Sum: r.acc = 0; break;
            case schedule::ReduceKind::Prod: r.acc = 1; break;
            case schedule::ReduceKind::Max: r.acc = -std::numeric_limits<double>::infinity(); break;
            case schedule::ReduceKind::Min: r.acc = std::numeric_limits<double>::infinity(); break;
            default: r.acc = 0; break;
            }
          }
      }
      std::vector<int64_t> r(ext.size(), 0);
      bool empty = false;
      for (int64_t e : ext)
        empty = empty || e <= 0;
      int64_t linear = 0;
      while (!empty) {
        for (const auto &in : s.body)
          if (Error e = exec(in, p.data(), r.data(), reduce ? &reducers : nullptr, linear))
            return e;
        ++linear;
        size_t d = r.size();
        while (d > 0) {
          if (++r[d - 1] < ext[d - 1])
            break;
          r[d - 1] = 0;
          --d;
        }
        if (d == 0)
          break;
      }
      if (reduce)
        for (const auto &in : s.body)
          if (in.op == Op::Reduce && !in.isStore)
            values_[static_cast<size_t>(in.result)] = reducers[static_cast<size_t>(in.result)].acc;
    }
    return Error::success();
  }
};

} // namespace

Expected<std::vector<ref::RefTensor>> runFused(const fusion::FusedProgram &program, const ir::Function &fn,
                                               const std::vector<ref::RefTensor> &inputs,
                                               const ir::SymbolBindings &explicitSymbols) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto &t : inputs)
    shapes.push_back(t.shape);
  Expected<shape::BoundShapes> bound = shape::bindShapes(fn, shapes, explicitSymbols);
  if (!bound)
    return bound.takeError();
  std::vector<int64_t> symbols;
  for (const std::string &s : program.schedule.symbols) {
    auto it = bound->symbols.find(s);
    if (it == bound->symbols.end())
      return makeError(ErrorCode::InvalidArgument, "symbol " + s + " is not bound");
    symbols.push_back(it->second);
  }
  auto alloc = [&](const ir::TensorType &type) -> Expected<Buffer> {
    Buffer b;
    Expected<ref::DType> t = ref::fromIRDType(type.dtype);
    if (!t)
      return t.takeError();
    b.dtype = *t;
    Expected<std::vector<int64_t>> s = shape::concreteShape(type, bound->symbols);
    if (!s)
      return s.takeError();
    b.shape = *s;
    b.data.assign(static_cast<size_t>(ref::numElements(b.shape)), std::numeric_limits<double>::quiet_NaN());
    return b;
  };
  std::vector<Buffer> params, results, inters, consts;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Expected<Buffer> b = alloc(fn.typeOf(fn.params[i]));
    if (!b)
      return b.takeError();
    for (size_t j = 0; j < b->data.size(); ++j)
      b->data[j] = ref::roundTo(inputs[i].data[j], b->dtype);
    params.push_back(b.take());
  }
  for (ir::ValueId r : fn.returns) {
    Expected<Buffer> b = alloc(fn.typeOf(r));
    if (!b)
      return b.takeError();
    results.push_back(b.take());
  }
  for (const auto &im : program.intermediates) {
    Expected<Buffer> b = alloc(im.type);
    if (!b)
      return b.takeError();
    inters.push_back(b.take());
  }
  for (const auto &c : program.constants) {
    Expected<Buffer> b = alloc(c.type);
    if (!b)
      return b.takeError();
    size_t width = ir::dtypeBits(c.type.dtype) / 8;
    if (c.bytes.size() != b->data.size() * width)
      return makeError(ErrorCode::Internal, "constant " + c.name + " has the wrong byte count");
    for (size_t j = 0; j < b->data.size(); ++j) {
      uint64_t bits = 0;
      for (size_t k = 0; k < width; ++k)
        bits |= static_cast<uint64_t>(c.bytes[j * width + k]) << (8 * k);
      b->data[j] = ref::fromBits(bits, b->dtype);
    }
    consts.push_back(b.take());
  }
  for (size_t ki = 0; ki < program.schedule.kernels.size(); ++ki) {
    const schedule::Kernel &k = program.schedule.kernels[ki];
    std::vector<Buffer *> ops;
    for (size_t o = 0; o < k.operands.size(); ++o) {
      const fusion::OperandBinding &b = program.kernels[ki].operands[o];
      Buffer *buf = nullptr;
      switch (b.kind) {
      case fusion::OperandBinding::Kind::Param: buf = &params.at(b.index); break;
      case fusion::OperandBinding::Kind::Result: buf = &results.at(b.index); break;
      case fusion::OperandBinding::Kind::Intermediate: buf = &inters.at(b.index); break;
      case fusion::OperandBinding::Kind::Constant: buf = &consts.at(b.index); break;
      }
      // The operand's declared shape and dtype must describe the buffer.
      Expected<ref::DType> t = refType(k.operands[o].dtype);
      if (!t || *t != buf->dtype)
        return makeError(ErrorCode::Internal, "kernel \"" + k.name + "\": operand " + std::to_string(o) +
                                                  " dtype differs from its buffer");
      // An attention kernel may view a buffer in another shape of the same
      // element count (layout=bshd reads the [B, S, H * D] projections as
      // [B, S, H, D]); every other kernel declares its buffers' shapes.
      if (k.kind == schedule::Kernel::Kind::Attention) {
        int64_t want = 1, have = 1;
        for (const schedule::IndexExpr &e : k.operands[o].shape)
          want *= schedule::evalIndex(e, symbols.data(), nullptr, nullptr, nullptr);
        for (int64_t d : buf->shape)
          have *= d;
        if (want != have)
          return makeError(ErrorCode::Internal, "kernel \"" + k.name + "\": operand " + std::to_string(o) +
                                                    " has " + std::to_string(want) + " elements, its buffer " +
                                                    std::to_string(have));
        ops.push_back(buf);
        continue;
      }
      if (k.operands[o].shape.size() != buf->shape.size())
        return makeError(ErrorCode::Internal, "kernel \"" + k.name + "\": operand " + std::to_string(o) +
                                                  " rank differs from its buffer");
      for (size_t d = 0; d < buf->shape.size(); ++d)
        if (schedule::evalIndex(k.operands[o].shape[d], symbols.data(), nullptr, nullptr, nullptr) !=
            buf->shape[d])
          return makeError(ErrorCode::Internal, "kernel \"" + k.name + "\": operand " + std::to_string(o) +
                                                    " shape differs from its buffer");
      ops.push_back(buf);
    }
    KernelRun run(k, ops, symbols);
    if (Error e = run.run())
      return e;
  }
  std::vector<ref::RefTensor> out;
  for (Buffer &b : results)
    out.push_back(ref::RefTensor(b.dtype, b.shape, std::move(b.data)));
  return out;
}

} // namespace tessera::sirtest
