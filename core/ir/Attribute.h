// Op attributes: typed, named constants attached to an operation.
#ifndef TESSERA_IR_ATTRIBUTE_H
#define TESSERA_IR_ATTRIBUTE_H

#include "ir/DType.h"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tessera::ir {

enum class AttrKind : uint8_t { Int, Float, String, Bool, IntList, FloatList, DType };
const char *attrKindName(AttrKind kind); // "int", "float", "string", ...

class Attribute {
public:
  using Storage = std::variant<int64_t, double, std::string, bool, std::vector<int64_t>,
                               std::vector<double>, DType>;

  Attribute() : value_(int64_t(0)) {}
  static Attribute ofInt(int64_t v) { return Attribute(Storage(std::in_place_index<0>, v)); }
  static Attribute ofFloat(double v) { return Attribute(Storage(std::in_place_index<1>, v)); }
  static Attribute ofString(std::string v) { return Attribute(Storage(std::in_place_index<2>, std::move(v))); }
  static Attribute ofBool(bool v) { return Attribute(Storage(std::in_place_index<3>, v)); }
  static Attribute ofInts(std::vector<int64_t> v) { return Attribute(Storage(std::in_place_index<4>, std::move(v))); }
  static Attribute ofFloats(std::vector<double> v) { return Attribute(Storage(std::in_place_index<5>, std::move(v))); }
  static Attribute ofDType(DType v) { return Attribute(Storage(std::in_place_index<6>, v)); }

  AttrKind kind() const { return AttrKind(value_.index()); }
  int64_t getInt() const { return std::get<0>(value_); }
  double getFloat() const { return std::get<1>(value_); }
  const std::string &getString() const { return std::get<2>(value_); }
  bool getBool() const { return std::get<3>(value_); }
  const std::vector<int64_t> &getInts() const { return std::get<4>(value_); }
  const std::vector<double> &getFloats() const { return std::get<5>(value_); }
  DType getDType() const { return std::get<6>(value_); }

  // Canonical text: 3, 0.5, "s", true, [1, 2], [0.5, 1.0], bf16, inf, -inf, nan.
  std::string str() const;
  bool operator==(const Attribute &other) const;

private:
  explicit Attribute(Storage v) : value_(std::move(v)) {}
  Storage value_;
};

struct NamedAttribute {
  std::string name;
  Attribute value;
};

// Attributes of one op, kept sorted by name (the canonical order).
class AttrList {
public:
  const Attribute *find(const std::string &name) const;
  // Inserts or replaces, keeping the order.
  void set(const std::string &name, Attribute value);
  bool erase(const std::string &name);

  // Typed reads with a default when absent. The verifier guarantees kinds
  // for registered attributes, so a wrong kind here is an internal bug.
  int64_t getInt(const std::string &name, int64_t dflt) const;
  double getFloat(const std::string &name, double dflt) const;
  bool getBool(const std::string &name, bool dflt) const;
  std::string getString(const std::string &name, const std::string &dflt) const;
  std::optional<std::vector<int64_t>> getInts(const std::string &name) const;
  std::optional<std::vector<double>> getFloats(const std::string &name) const;
  std::optional<DType> getDType(const std::string &name) const;

  const std::vector<NamedAttribute> &entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool operator==(const AttrList &other) const;

private:
  std::vector<NamedAttribute> entries_;
};

// Formats a double so it re-parses to the same value and reads as a float
// ("1.0", "0.125", "1e-05", "inf", "-inf", "nan").
std::string formatDouble(double value);

} // namespace tessera::ir

#endif // TESSERA_IR_ATTRIBUTE_H
