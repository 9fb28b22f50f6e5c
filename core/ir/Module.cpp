#include "ir/Module.h"

#include <algorithm>

namespace tessera::ir {

std::vector<std::string> Function::paramSymbols() const {
  std::vector<std::string> out;
  for (ValueId p : params)
    for (const auto &d : values[p].type.dims)
      for (const auto &s : d.symbols())
        if (std::find(out.begin(), out.end(), s) == out.end())
          out.push_back(s);
  return out;
}

ValueId Function::addValue(std::string name, TensorType type, int32_t definingOp, uint32_t resultIndex) {
  values.push_back(Value{std::move(name), std::move(type), definingOp, resultIndex});
  return ValueId(values.size() - 1);
}

std::optional<ValueId> Function::findValue(const std::string &name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name)
      return ValueId(i);
  return std::nullopt;
}

const Function *Module::findFunction(const std::string &name) const {
  for (const auto &f : functions)
    if (f.name == name)
      return &f;
  return nullptr;
}

Function *Module::findFunction(const std::string &name) {
  for (auto &f : functions)
    if (f.name == name)
      return &f;
  return nullptr;
}

} // namespace tessera::ir
