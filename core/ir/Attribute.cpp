#include "ir/Attribute.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace tessera::ir {

const char *attrKindName(AttrKind kind) {
  switch (kind) {
  case AttrKind::Int: return "int";
  case AttrKind::Float: return "float";
  case AttrKind::String: return "string";
  case AttrKind::Bool: return "bool";
  case AttrKind::IntList: return "int list";
  case AttrKind::FloatList: return "float list";
  case AttrKind::DType: return "dtype";
  }
  return "?";
}

std::string formatDouble(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v < 0 ? "-inf" : "inf";
  char buf[64];
  // Shortest precision that round-trips.
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

static std::string quote(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

std::string Attribute::str() const {
  switch (kind()) {
  case AttrKind::Int: return std::to_string(getInt());
  case AttrKind::Float: return formatDouble(getFloat());
  case AttrKind::String: return quote(getString());
  case AttrKind::Bool: return getBool() ? "true" : "false";
  case AttrKind::DType: return dtypeName(getDType());
  case AttrKind::IntList: {
    std::string out = "[";
    for (size_t i = 0; i < getInts().size(); ++i)
      out += (i ? ", " : "") + std::to_string(getInts()[i]);
    return out + "]";
  }
  case AttrKind::FloatList: {
    std::string out = "[";
    for (size_t i = 0; i < getFloats().size(); ++i)
      out += (i ? ", " : "") + formatDouble(getFloats()[i]);
    return out + "]";
  }
  }
  return "?";
}

bool Attribute::operator==(const Attribute &other) const {
  if (kind() != other.kind())
    return false;
  // Compare floats bitwise so that nan == nan for round-trip checks.
  auto same = [](double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0 || a == b; };
  if (kind() == AttrKind::Float)
    return same(getFloat(), other.getFloat());
  if (kind() == AttrKind::FloatList) {
    const auto &a = getFloats(), &b = other.getFloats();
    if (a.size() != b.size())
      return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i]))
        return false;
    return true;
  }
  return value_ == other.value_;
}

const Attribute *AttrList::find(const std::string &name) const {
  for (const auto &e : entries_)
    if (e.name == name)
      return &e.value;
  return nullptr;
}

void AttrList::set(const std::string &name, Attribute value) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                             [](const NamedAttribute &e, const std::string &n) { return e.name < n; });
  if (it != entries_.end() && it->name == name)
    it->value = std::move(value);
  else
    entries_.insert(it, NamedAttribute{name, std::move(value)});
}

bool AttrList::erase(const std::string &name) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->name == name) {
      entries_.erase(it);
      return true;
    }
  return false;
}

int64_t AttrList::getInt(const std::string &name, int64_t dflt) const {
  const Attribute *a = find(name);
  assert((!a || a->kind() == AttrKind::Int) && "attribute kind not normalized by the verifier");
  return a && a->kind() == AttrKind::Int ? a->getInt() : dflt;
}
double AttrList::getFloat(const std::string &name, double dflt) const {
  const Attribute *a = find(name);
  if (a && a->kind() == AttrKind::Int)
    return double(a->getInt());
  return a && a->kind() == AttrKind::Float ? a->getFloat() : dflt;
}
bool AttrList::getBool(const std::string &name, bool dflt) const {
  const Attribute *a = find(name);
  return a && a->kind() == AttrKind::Bool ? a->getBool() : dflt;
}
std::string AttrList::getString(const std::string &name, const std::string &dflt) const {
  const Attribute *a = find(name);
  return a && a->kind() == AttrKind::String ? a->getString() : dflt;
}
std::optional<std::vector<int64_t>> AttrList::getInts(const std::string &name) const {
  const Attribute *a = find(name);
  if (!a || a->kind() != AttrKind::IntList)
    return std::nullopt;
  return a->getInts();
}
std::optional<std::vector<double>> AttrList::getFloats(const std::string &name) const {
  const Attribute *a = find(name);
  if (!a)
    return std::nullopt;
  if (a->kind() == AttrKind::IntList)
    return std::vector<double>(a->getInts().begin(), a->getInts().end());
  if (a->kind() != AttrKind::FloatList)
    return std::nullopt;
  return a->getFloats();
}
std::optional<DType> AttrList::getDType(const std::string &name) const {
  const Attribute *a = find(name);
  if (!a || a->kind() != AttrKind::DType)
    return std::nullopt;
  return a->getDType();
}

bool AttrList::operator==(const AttrList &other) const {
  if (entries_.size() != other.entries_.size())
    return false;
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name != other.entries_[i].name || !(entries_[i].value == other.entries_[i].value))
      return false;
  return true;
}

} // namespace tessera::ir
