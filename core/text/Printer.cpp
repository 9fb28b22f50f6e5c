#include "text/Printer.h"

namespace tessera::text {

using namespace tessera::ir;

static std::string quoted(const std::string &s) { return Attribute::ofString(s).str(); }

static std::string paramList(const Function &fn) {
  std::string out = "(";
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const Value &p = fn.value(fn.params[i]);
    out += (i ? ", %" : "%") + p.name + ": " + p.type.str();
  }
  return out + ")";
}

static std::string typeList(const std::vector<TensorType> &types) {
  if (types.size() == 1)
    return types[0].str();
  std::string out = "(";
  for (size_t i = 0; i < types.size(); ++i)
    out += (i ? ", " : "") + types[i].str();
  return out + ")";
}

std::string functionSignature(const Function &fn) {
  std::vector<TensorType> results;
  for (ValueId v : fn.returns)
    results.push_back(fn.typeOf(v));
  if (results.empty())
    results = fn.resultTypes;
  return "func @" + fn.name + paramList(fn) + " -> " + typeList(results);
}

std::string printFunction(const Function &fn) {
  std::string out = "func @" + fn.name + paramList(fn) + " -> " + typeList(fn.resultTypes) + " {\n";
  for (const Operation &op : fn.ops) {
    out += "  ";
    for (size_t i = 0; i < op.results.size(); ++i)
      out += (i ? ", %" : "%") + fn.value(op.results[i]).name;
    out += " = ";
    out += op.name();
    out += "(";
    for (size_t i = 0; i < op.operands.size(); ++i)
      out += (i ? ", %" : "%") + fn.value(op.operands[i]).name;
    out += ")";
    if (!op.attrs.empty()) {
      out += " {";
      for (size_t i = 0; i < op.attrs.entries().size(); ++i) {
        const auto &a = op.attrs.entries()[i];
        out += (i ? ", " : "") + a.name + " = " + a.value.str();
      }
      out += "}";
    }
    // Result types: the inferred ones, or the annotations of an unchecked module.
    std::vector<TensorType> types;
    for (size_t i = 0; i < op.results.size(); ++i) {
      const TensorType &t = fn.typeOf(op.results[i]);
      if (t.dtype != DType::Invalid)
        types.push_back(t);
      else if (i < op.annotations.size())
        types.push_back(op.annotations[i]);
    }
    if (types.size() == op.results.size() && !types.empty()) {
      out += " : ";
      for (size_t i = 0; i < types.size(); ++i)
        out += (i ? ", " : "") + types[i].str();
    }
    if (op.explicitLoc)
      out += " loc(" + quoted(op.loc.file) + ":" + std::to_string(op.loc.line) + ":" + std::to_string(op.loc.column) +
             ")";
    out += "\n";
  }
  out += "  return";
  for (size_t i = 0; i < fn.returns.size(); ++i)
    out += (i ? ", %" : " %") + fn.value(fn.returns[i]).name;
  out += "\n}\n";
  return out;
}

std::string printModule(const Module &module) {
  std::string out;
  for (size_t i = 0; i < module.functions.size(); ++i) {
    if (i)
      out += "\n";
    out += printFunction(module.functions[i]);
  }
  return out;
}

} // namespace tessera::text
