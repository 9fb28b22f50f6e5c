#include "shape/Binding.h"

#include <map>

namespace tessera::shape {

using namespace tessera::ir;

namespace {

Error mismatch(std::string msg, SourceLocation loc = {}) {
  return makeError(ErrorCode::ShapeMismatch, std::move(msg), std::move(loc));
}

std::string inputDesc(const Function &fn, size_t i) {
  return "input " + std::to_string(i) + " (%" + fn.value(fn.params[i]).name + ")";
}

std::string shapeText(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Solves dim(sym) == value for the only unbound symbol of `dim` when dim is
// linear in it; verified by evaluating, so a wrong guess is never kept.
std::optional<int64_t> solveLinear(const Dim &dim, const std::string &sym, SymbolBindings b, int64_t value) {
  auto at = [&](int64_t x) -> std::optional<int64_t> {
    b[sym] = x;
    auto v = dim.evaluate(b);
    if (!v)
      return std::nullopt;
    return *v;
  };
  auto f1 = at(1), f2 = at(2);
  if (!f1 || !f2)
    return std::nullopt;
  __int128 c = __int128(*f2) - *f1, k = __int128(*f1) - c;
  if (c == 0 || (__int128(value) - k) % c != 0)
    return std::nullopt;
  __int128 x = (__int128(value) - k) / c;
  if (x < 0 || x > INT64_MAX)
    return std::nullopt;
  auto check = at(int64_t(x));
  if (!check || *check != value)
    return std::nullopt;
  return int64_t(x);
}

} // namespace

Expected<std::vector<int64_t>> concreteShape(const TensorType &type, const SymbolBindings &symbols) {
  std::vector<int64_t> out;
  __int128 count = 1;
  for (const Dim &d : type.dims) {
    auto v = d.evaluate(symbols);
    if (!v)
      return v.takeError();
    if (*v < 0)
      return mismatch("dimension '" + d.str() + "' evaluates to " + std::to_string(*v) + " (negative)");
    count *= *v;
    if (count > kMaxElements)
      return makeError(ErrorCode::ResourceExhausted, "tensor " + type.str() + " would have more than " +
                                                         std::to_string(kMaxElements) + " elements (the limit)");
    out.push_back(*v);
  }
  return out;
}

Expected<BoundShapes> bindShapes(const Function &fn, const std::vector<std::vector<int64_t>> &inputShapes,
                                 const SymbolBindings &explicitSymbols) {
  if (inputShapes.size() != fn.params.size())
    return mismatch("@" + fn.name + " takes " + std::to_string(fn.params.size()) + " inputs, got " +
                    std::to_string(inputShapes.size()));
  BoundShapes out;
  SymbolBindings &b = out.symbols;
  std::map<std::string, std::string> origin;
  for (const auto &[name, value] : explicitSymbols) {
    if (value < 0)
      return mismatch("explicit symbol " + name + " = " + std::to_string(value) + " is negative");
    b[name] = value;
    origin[name] = "the explicit binding";
  }
  // Pass 1: ranks, literal dims and plain symbols.
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const TensorType &t = fn.typeOf(fn.params[i]);
    const auto &shape = inputShapes[i];
    if (shape.size() != t.rank())
      return mismatch(inputDesc(fn, i) + " has rank " + std::to_string(shape.size()) + " " + shapeText(shape) +
                      ", @" + fn.name + " expects rank " + std::to_string(t.rank()) + " " + t.str());
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0)
        return mismatch(inputDesc(fn, i) + " dim " + std::to_string(d) + " is negative (" +
                        std::to_string(shape[d]) + ")");
      const Dim &dim = t.dims[d];
      std::string here = inputDesc(fn, i) + " dim " + std::to_string(d);
      if (auto c = dim.constantValue()) {
        if (*c != shape[d])
          return mismatch(here + " is " + std::to_string(shape[d]) + ", expected " + std::to_string(*c) + " (" +
                          t.str() + ")");
      } else if (dim.isSymbol()) {
        std::string s = dim.symbolName();
        auto it = b.find(s);
        if (it == b.end()) {
          b[s] = shape[d];
          origin[s] = here;
        } else if (it->second != shape[d]) {
          return mismatch("symbol " + s + " is " + std::to_string(it->second) + " from " + origin[s] + " but " +
                          std::to_string(shape[d]) + " from " + here);
        }
      }
    }
  }
  // Pass 2: expression dims (solving for one unbound symbol where linear).
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const TensorType &t = fn.typeOf(fn.params[i]);
    for (size_t d = 0; d < t.rank(); ++d) {
      const Dim &dim = t.dims[d];
      if (dim.isSymbol() || dim.isConstant())
        continue;
      int64_t actual = inputShapes[i][d];
      std::string here = inputDesc(fn, i) + " dim " + std::to_string(d);
      std::vector<std::string> unbound;
      for (const auto &s : dim.symbols())
        if (!b.count(s))
          unbound.push_back(s);
      if (unbound.size() == 1) {
        if (auto x = solveLinear(dim, unbound[0], b, actual)) {
          b[unbound[0]] = *x;
          origin[unbound[0]] = here + " (" + dim.str() + ")";
          continue;
        }
        return mismatch(here + " is " + std::to_string(actual) + ", which no value of " + unbound[0] +
                        " makes equal to " + dim.str());
      }
      auto v = dim.evaluate(b);
      if (!v)
        return mismatch(here + ": " + v.error().message());
      if (*v != actual) {
        std::string vals;
        for (const auto &s : dim.symbols())
          vals += (vals.empty() ? "" : ", ") + s + "=" + std::to_string(b[s]);
        return mismatch(here + " is " + std::to_string(actual) + ", expected " + dim.str() + " = " +
                        std::to_string(*v) + " (with " + vals + ")");
      }
    }
  }
  // Free symbols unified during inference.
  for (const auto &[sym, dim] : fn.unified) {
    auto v = dim.evaluate(b);
    if (!v)
      continue; // may depend on a symbol bound later; checked with the values below
    auto it = b.find(sym);
    if (it == b.end()) {
      b[sym] = *v;
      origin[sym] = "unification with " + dim.str();
    } else if (it->second != *v) {
      return mismatch("symbol " + sym + " is " + std::to_string(it->second) + " from " + origin[sym] +
                      " but must equal " + dim.str() + " = " + std::to_string(*v));
    }
  }
  auto describeValues = [&](const Dim &a, const Dim &c) {
    std::string vals;
    auto syms = a.symbols();
    for (const auto &s : c.symbols())
      syms.push_back(s);
    std::map<std::string, int64_t> shown;
    for (const auto &s : syms)
      if (b.count(s))
        shown[s] = b[s];
    for (const auto &[s, v] : shown)
      vals += (vals.empty() ? "" : ", ") + s + "=" + std::to_string(v);
    return vals;
  };
  for (const auto &c : fn.constraints) {
    auto l = c.lhs.evaluate(b);
    if (!l)
      return makeError(l.error().code(), c.reason + ": " + l.error().message(), c.loc);
    auto r = c.rhs.evaluate(b);
    if (!r)
      return makeError(r.error().code(), c.reason + ": " + r.error().message(), c.loc);
    if (*l != *r)
      return mismatch(c.reason + " fails at run time: " + c.lhs.str() + " = " + std::to_string(*l) + " but " +
                          c.rhs.str() + " = " + std::to_string(*r) + " (with " + describeValues(c.lhs, c.rhs) + ")",
                      c.loc);
  }
  out.valueShapes.resize(fn.values.size());
  for (size_t v = 0; v < fn.values.size(); ++v) {
    const Value &val = fn.values[v];
    if (val.type.dtype == DType::Invalid)
      return internalError("bindShapes on a function that was not inferred");
    auto s = concreteShape(val.type, b);
    if (!s) {
      Error e = s.takeError();
      std::string msg = e.message();
      std::vector<std::string> syms;
      for (const auto &d : val.type.dims)
        for (const auto &sym : d.symbols())
          syms.push_back(sym);
      for (const auto &sym : syms)
        if (!b.count(sym))
          msg = "symbol " + sym + " is not bound: it does not occur in the input types of @" + fn.name +
                "; pass it as an explicit binding";
      SourceLocation loc = val.definingOp >= 0 ? fn.ops[size_t(val.definingOp)].loc : fn.loc;
      std::string where = val.definingOp >= 0
                              ? "%" + val.name + " = " + fn.ops[size_t(val.definingOp)].name() + ": "
                              : "parameter %" + val.name + ": ";
      return makeError(e.code() == ErrorCode::InvalidArgument ? ErrorCode::ShapeMismatch : e.code(), where + msg,
                       loc);
    }
    out.valueShapes[v] = s.take();
  }
  return out;
}

} // namespace tessera::shape
