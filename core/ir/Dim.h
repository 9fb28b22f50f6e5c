// Symbolic tensor dimensions.
//
// A Dim is a canonical sum of terms; each term is a rational coefficient times
// a product of atoms raised to (possibly negative) integer powers. Atoms are
// symbols (`B`, `S`), floor divisions (`(H - 1)//2`) and exact divisions by a
// sum. `/` in a type is *exact* division: `D/H` is the monomial D*H^-1 and
// asserts that H divides D (checked when shapes are bound). Because the form
// is canonical, two Dims are equal iff they print the same, and `H*(D/H)`
// simplifies to `D`.
//
// All arithmetic is overflow-checked and reports ResourceExhausted.
#ifndef TESSERA_IR_DIM_H
#define TESSERA_IR_DIM_H

#include "support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera::ir {

// Concrete values of symbols, e.g. {"B": 8, "S": 128}.
using SymbolBindings = std::map<std::string, int64_t>;

class Dim;
struct DimAtom;

// A reduced fraction num/den with den > 0.
struct Rational {
  int64_t num = 0;
  int64_t den = 1;
  bool isInteger() const { return den == 1; }
  bool operator==(const Rational &) const = default;
};

class Dim {
public:
  struct Factor {
    std::shared_ptr<const DimAtom> atom;
    int32_t power = 1; // never 0
  };
  struct Term {
    Rational coef;               // never 0
    std::vector<Factor> factors; // sorted by atom key; empty for the constant term
  };

  Dim() = default; // the constant 0
  Dim(int64_t value) : Dim(constant(value)) {}
  static Dim constant(int64_t value);
  static Dim symbol(std::string name);

  // Overflow-checked arithmetic.
  static Expected<Dim> add(const Dim &a, const Dim &b);
  static Expected<Dim> sub(const Dim &a, const Dim &b);
  static Expected<Dim> mul(const Dim &a, const Dim &b);
  // Exact division (asserts divisibility). Division by constant 0 is an error.
  static Expected<Dim> div(const Dim &a, const Dim &b);
  // Floor division; simplifies when the quotient is exact and polynomial.
  static Expected<Dim> floorDiv(const Dim &a, const Dim &b);
  static Expected<Dim> neg(const Dim &a) { return sub(Dim(), a); }

  bool isConstant() const;
  std::optional<int64_t> constantValue() const; // only when an integer constant
  bool isSymbol() const;                        // exactly one symbol, coefficient 1
  std::string symbolName() const;               // "" unless isSymbol()
  // True when the value is known to be an integer for all symbol values
  // (no rational coefficients, no negative powers).
  bool isPolynomial() const;

  // Symbols appearing anywhere (also inside divisions), sorted, unique.
  std::vector<std::string> symbols() const;
  bool mentions(const std::string &symbol) const;

  // Replaces symbols by Dims (unlisted symbols stay).
  Expected<Dim> substitute(const std::map<std::string, Dim> &subst) const;
  // Concrete value; errors name unbound symbols, non-exact division,
  // division by zero or overflow (InvalidArgument / ShapeMismatch /
  // ResourceExhausted).
  Expected<int64_t> evaluate(const SymbolBindings &bindings) const;

  // Canonical text: "512", "B", "S*2", "D/H", "S - 1", "(H - 1)//2 + 1".
  std::string str() const;

  const std::vector<Term> &terms() const { return terms_; }
  bool operator==(const Dim &other) const;
  bool operator!=(const Dim &other) const { return !(*this == other); }

private:
  std::vector<Term> terms_; // canonical: sorted, merged, no zero coefficients
  friend struct DimBuilder;
};

// An indivisible part of a Dim.
struct DimAtom {
  enum class Kind { Symbol, FloorDiv, ExactDiv };
  Kind kind = Kind::Symbol;
  std::string name; // Symbol
  Dim lhs, rhs;     // FloorDiv / ExactDiv
  std::string key;  // canonical text, used for ordering and equality
};

} // namespace tessera::ir

#endif // TESSERA_IR_DIM_H
