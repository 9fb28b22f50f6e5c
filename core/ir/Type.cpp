#include "ir/Type.h"

namespace tessera::ir {

const char *roundingName(Rounding r) {
  switch (r) {
  case Rounding::NearestEven: return "nearest_even";
  case Rounding::TowardZero: return "toward_zero";
  case Rounding::Up: return "up";
  case Rounding::Down: return "down";
  case Rounding::Stochastic: return "stochastic";
  }
  return "nearest_even";
}

std::optional<Rounding> parseRounding(std::string_view name) {
  for (Rounding r : {Rounding::NearestEven, Rounding::TowardZero, Rounding::Up, Rounding::Down, Rounding::Stochastic})
    if (name == roundingName(r))
      return r;
  return std::nullopt;
}

std::string NumericPolicy::str() const {
  std::string out;
  if (accum)
    out += std::string(" @accum(") + dtypeName(*accum) + ")";
  if (rounding != Rounding::NearestEven)
    out += std::string(" @rounding(") + roundingName(rounding) + ")";
  if (saturate)
    out += " @saturate";
  if (deterministic)
    out += " @deterministic";
  return out;
}

bool TensorType::isStatic() const {
  for (const auto &d : dims)
    if (!d.constantValue())
      return false;
  return true;
}

std::optional<std::vector<int64_t>> TensorType::staticShape() const {
  std::vector<int64_t> out;
  for (const auto &d : dims) {
    auto c = d.constantValue();
    if (!c)
      return std::nullopt;
    out.push_back(*c);
  }
  return out;
}

Expected<Dim> TensorType::elementCount() const {
  Dim n = Dim::constant(1);
  for (const auto &d : dims) {
    auto m = Dim::mul(n, d);
    if (!m)
      return m.takeError();
    n = m.take();
  }
  return n;
}

std::string TensorType::str() const {
  std::string out = "tensor<";
  for (const auto &d : dims)
    out += d.str() + " x ";
  out += dtypeName(dtype);
  out += policy.str();
  out += ">";
  return out;
}

std::string TensorType::shapeStr() const {
  if (dims.empty())
    return "scalar";
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i)
    out += (i ? " x " : "") + dims[i].str();
  return out;
}

} // namespace tessera::ir
