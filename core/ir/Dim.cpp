#include "ir/Dim.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <set>

namespace tessera::ir {

namespace {

using i128 = __int128;

Error overflowError() {
  return makeError(ErrorCode::ResourceExhausted, "dimension expression overflows int64");
}

bool fits(i128 v) { return v >= INT64_MIN && v <= INT64_MAX; }

i128 gcd128(i128 a, i128 b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Reduces num/den; nullopt on overflow or den == 0.
std::optional<Rational> makeRational(i128 num, i128 den) {
  if (den == 0)
    return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  i128 g = gcd128(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  if (num == 0)
    den = 1;
  if (!fits(num) || !fits(den))
    return std::nullopt;
  return Rational{int64_t(num), int64_t(den)};
}

std::optional<Rational> addR(Rational a, Rational b) {
  return makeRational(i128(a.num) * b.den + i128(b.num) * a.den, i128(a.den) * b.den);
}
std::optional<Rational> mulR(Rational a, Rational b) {
  // Cross-reduce first so that exact results stay small.
  i128 g1 = gcd128(a.num, b.den), g2 = gcd128(b.num, a.den);
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  return makeRational((i128(a.num) / g1) * (i128(b.num) / g2), (i128(a.den) / g2) * (i128(b.den) / g1));
}

std::string monomialKey(const std::vector<Dim::Factor> &factors) {
  std::string key;
  for (const auto &f : factors) {
    key += f.atom->key;
    key += '^';
    key += std::to_string(f.power);
    key += ';';
  }
  return key;
}

bool isSimpleOperand(const Dim &d) {
  if (d.isSymbol())
    return true;
  auto c = d.constantValue();
  return c && *c >= 0;
}

std::string operandStr(const Dim &d) { return isSimpleOperand(d) ? d.str() : "(" + d.str() + ")"; }

// Bounds on expression size, so that absurd programs (thousands of chained
// strided slices on a symbolic dim) fail cleanly instead of growing without
// limit.
constexpr size_t kMaxTerms = 256;
constexpr size_t kMaxAtomKey = 4096;

Error tooComplex() {
  return makeError(ErrorCode::ResourceExhausted, "dimension expression is too complex (limits: " +
                                                     std::to_string(kMaxTerms) + " terms, powers up to 64, " +
                                                     std::to_string(kMaxAtomKey) + " characters per division)");
}

std::shared_ptr<const DimAtom> makeCompoundAtom(DimAtom::Kind kind, Dim lhs, Dim rhs) {
  auto atom = std::make_shared<DimAtom>();
  atom->kind = kind;
  atom->key = operandStr(lhs) + (kind == DimAtom::Kind::FloorDiv ? "//" : "/") + operandStr(rhs);
  atom->lhs = std::move(lhs);
  atom->rhs = std::move(rhs);
  return atom;
}

} // namespace

// Builds canonical Dims from raw terms.
struct DimBuilder {
  static Expected<Dim> fromTerms(std::vector<Dim::Term> raw) {
    std::map<std::string, Dim::Term> merged;
    for (auto &t : raw) {
      std::sort(t.factors.begin(), t.factors.end(),
                [](const Dim::Factor &a, const Dim::Factor &b) { return a.atom->key < b.atom->key; });
      // Merge equal atoms inside the monomial.
      std::vector<Dim::Factor> fs;
      for (auto &f : t.factors) {
        if (!fs.empty() && fs.back().atom->key == f.atom->key)
          fs.back().power += f.power;
        else
          fs.push_back(f);
      }
      fs.erase(std::remove_if(fs.begin(), fs.end(), [](const Dim::Factor &f) { return f.power == 0; }), fs.end());
      for (const auto &f : fs)
        if (f.power > 64 || f.power < -64)
          return tooComplex();
      t.factors = std::move(fs);
      std::string key = monomialKey(t.factors);
      auto it = merged.find(key);
      if (it == merged.end()) {
        merged.emplace(key, t);
      } else {
        auto sum = addR(it->second.coef, t.coef);
        if (!sum)
          return overflowError();
        it->second.coef = *sum;
      }
    }
    if (merged.size() > kMaxTerms)
      return tooComplex();
    Dim out;
    const Dim::Term *constant = nullptr;
    for (auto &[key, t] : merged) {
      if (t.coef.num == 0)
        continue;
      if (t.factors.empty())
        constant = &t;
      else
        out.terms_.push_back(t);
    }
    if (constant)
      out.terms_.push_back(*constant); // the constant term prints last
    return out;
  }

  static Dim fromAtom(std::shared_ptr<const DimAtom> atom) {
    Dim d;
    d.terms_.push_back(Dim::Term{Rational{1, 1}, {Dim::Factor{std::move(atom), 1}}});
    return d;
  }

  static Expected<Dim> mulTerms(const Dim &a, const Dim &b) {
    std::vector<Dim::Term> raw;
    for (const auto &ta : a.terms())
      for (const auto &tb : b.terms()) {
        auto c = mulR(ta.coef, tb.coef);
        if (!c)
          return overflowError();
        Dim::Term t{*c, ta.factors};
        t.factors.insert(t.factors.end(), tb.factors.begin(), tb.factors.end());
        raw.push_back(std::move(t));
      }
    return fromTerms(std::move(raw));
  }
};

Dim Dim::constant(int64_t value) {
  Dim d;
  if (value != 0)
    d.terms_.push_back(Term{Rational{value, 1}, {}});
  return d;
}

Dim Dim::symbol(std::string name) {
  auto atom = std::make_shared<DimAtom>();
  atom->kind = DimAtom::Kind::Symbol;
  atom->key = name;
  atom->name = std::move(name);
  return DimBuilder::fromAtom(std::move(atom));
}

Expected<Dim> Dim::add(const Dim &a, const Dim &b) {
  std::vector<Term> raw = a.terms_;
  raw.insert(raw.end(), b.terms_.begin(), b.terms_.end());
  return DimBuilder::fromTerms(std::move(raw));
}

Expected<Dim> Dim::sub(const Dim &a, const Dim &b) {
  std::vector<Term> raw = a.terms_;
  for (Term t : b.terms_) {
    if (t.coef.num == INT64_MIN)
      return overflowError();
    t.coef.num = -t.coef.num;
    raw.push_back(std::move(t));
  }
  return DimBuilder::fromTerms(std::move(raw));
}

Expected<Dim> Dim::mul(const Dim &a, const Dim &b) { return DimBuilder::mulTerms(a, b); }

Expected<Dim> Dim::div(const Dim &a, const Dim &b) {
  if (b.terms_.empty())
    return makeError(ErrorCode::InvalidIR, "division by zero in dimension '" + a.str() + "/0'");
  if (a == b)
    return Dim::constant(1);
  if (b.terms_.size() == 1) {
    // Multiply by the inverse monomial.
    const Term &t = b.terms_[0];
    auto inv = makeRational(t.coef.den, t.coef.num);
    if (!inv)
      return overflowError();
    Term invTerm{*inv, {}};
    for (const auto &f : t.factors)
      invTerm.factors.push_back(Factor{f.atom, -f.power});
    Dim invDim;
    invDim.terms_.push_back(std::move(invTerm));
    return DimBuilder::mulTerms(a, invDim);
  }
  auto atom = makeCompoundAtom(DimAtom::Kind::ExactDiv, a, b);
  if (atom->key.size() > kMaxAtomKey)
    return tooComplex();
  return DimBuilder::fromAtom(std::move(atom));
}

Expected<Dim> Dim::floorDiv(const Dim &a, const Dim &b) {
  if (b.terms_.empty())
    return makeError(ErrorCode::InvalidIR, "division by zero in dimension '" + operandStr(a) + "//0'");
  auto ca = a.constantValue(), cb = b.constantValue();
  if (ca && cb) {
    if (*ca == INT64_MIN && *cb == -1)
      return overflowError();
    int64_t q = *ca / *cb;
    if ((*ca % *cb != 0) && ((*ca < 0) != (*cb < 0)))
      --q;
    return Dim::constant(q);
  }
  if (a == b)
    return Dim::constant(1);
  if (b.terms_.size() == 1) {
    auto q = div(a, b);
    if (!q)
      return q.takeError();
    if (q->isPolynomial() || (cb && (*cb == 1 || *cb == -1)))
      return q;
  }
  auto atom = makeCompoundAtom(DimAtom::Kind::FloorDiv, a, b);
  if (atom->key.size() > kMaxAtomKey)
    return tooComplex();
  return DimBuilder::fromAtom(std::move(atom));
}

bool Dim::isConstant() const { return terms_.empty() || (terms_.size() == 1 && terms_[0].factors.empty()); }

std::optional<int64_t> Dim::constantValue() const {
  if (terms_.empty())
    return 0;
  if (terms_.size() == 1 && terms_[0].factors.empty() && terms_[0].coef.den == 1)
    return terms_[0].coef.num;
  return std::nullopt;
}

bool Dim::isSymbol() const {
  return terms_.size() == 1 && terms_[0].coef == Rational{1, 1} && terms_[0].factors.size() == 1 &&
         terms_[0].factors[0].power == 1 && terms_[0].factors[0].atom->kind == DimAtom::Kind::Symbol;
}

std::string Dim::symbolName() const { return isSymbol() ? terms_[0].factors[0].atom->name : std::string(); }

bool Dim::isPolynomial() const {
  for (const auto &t : terms_) {
    if (t.coef.den != 1)
      return false;
    for (const auto &f : t.factors)
      if (f.power < 0 || f.atom->kind == DimAtom::Kind::ExactDiv ||
          (f.atom->kind == DimAtom::Kind::FloorDiv && !(f.atom->lhs.isPolynomial() && f.atom->rhs.isPolynomial())))
        return false;
  }
  return true;
}

static void collectSymbols(const Dim &d, std::set<std::string> &out) {
  for (const auto &t : d.terms())
    for (const auto &f : t.factors) {
      if (f.atom->kind == DimAtom::Kind::Symbol) {
        out.insert(f.atom->name);
      } else {
        collectSymbols(f.atom->lhs, out);
        collectSymbols(f.atom->rhs, out);
      }
    }
}

std::vector<std::string> Dim::symbols() const {
  std::set<std::string> s;
  collectSymbols(*this, s);
  return {s.begin(), s.end()};
}

bool Dim::mentions(const std::string &symbol) const {
  auto syms = symbols();
  return std::find(syms.begin(), syms.end(), symbol) != syms.end();
}

static Expected<Dim> powDim(const Dim &base, int32_t power) {
  Dim acc = Dim::constant(1);
  for (int32_t i = 0; i < std::abs(power); ++i) {
    auto next = Dim::mul(acc, base);
    if (!next)
      return next.takeError();
    acc = next.take();
  }
  if (power < 0)
    return Dim::div(Dim::constant(1), acc);
  return acc;
}

Expected<Dim> Dim::substitute(const std::map<std::string, Dim> &subst) const {
  if (subst.empty())
    return *this;
  Dim sum;
  for (const auto &t : terms_) {
    Dim termDim;
    termDim.terms_.push_back(Term{t.coef, {}});
    for (const auto &f : t.factors) {
      Dim atomDim;
      if (f.atom->kind == DimAtom::Kind::Symbol) {
        auto it = subst.find(f.atom->name);
        atomDim = it == subst.end() ? DimBuilder::fromAtom(f.atom) : it->second;
      } else {
        auto l = f.atom->lhs.substitute(subst);
        if (!l)
          return l.takeError();
        auto r = f.atom->rhs.substitute(subst);
        if (!r)
          return r.takeError();
        auto a = f.atom->kind == DimAtom::Kind::FloorDiv ? floorDiv(*l, *r) : div(*l, *r);
        if (!a)
          return a.takeError();
        atomDim = a.take();
      }
      auto p = powDim(atomDim, f.power);
      if (!p)
        return p.takeError();
      auto m = mul(termDim, *p);
      if (!m)
        return m.takeError();
      termDim = m.take();
    }
    auto s = add(sum, termDim);
    if (!s)
      return s.takeError();
    sum = s.take();
  }
  return sum;
}

static Expected<int64_t> evalAtom(const DimAtom &atom, const SymbolBindings &b) {
  if (atom.kind == DimAtom::Kind::Symbol) {
    auto it = b.find(atom.name);
    if (it == b.end())
      return makeError(ErrorCode::InvalidArgument, "symbol '" + atom.name + "' is not bound");
    return it->second;
  }
  auto l = atom.lhs.evaluate(b);
  if (!l)
    return l.takeError();
  auto r = atom.rhs.evaluate(b);
  if (!r)
    return r.takeError();
  if (*r == 0)
    return makeError(ErrorCode::ShapeMismatch, "division by zero in dimension '" + atom.key + "'");
  if (atom.kind == DimAtom::Kind::ExactDiv) {
    if (*l % *r != 0)
      return makeError(ErrorCode::ShapeMismatch, "dimension '" + atom.key + "' is not exact: " +
                                                     std::to_string(*l) + " is not divisible by " +
                                                     std::to_string(*r));
    return *l / *r;
  }
  auto q = Dim::floorDiv(Dim::constant(*l), Dim::constant(*r));
  if (!q)
    return q.takeError();
  return *q->constantValue();
}

Expected<int64_t> Dim::evaluate(const SymbolBindings &b) const {
  Rational sum{0, 1};
  for (const auto &t : terms_) {
    Rational term = t.coef;
    for (const auto &f : t.factors) {
      auto v = evalAtom(*f.atom, b);
      if (!v)
        return v.takeError();
      for (int32_t i = 0; i < std::abs(f.power); ++i) {
        if (f.power < 0 && *v == 0)
          return makeError(ErrorCode::ShapeMismatch, "division by zero in dimension '" + str() + "'");
        auto next = f.power > 0 ? mulR(term, Rational{*v, 1}) : makeRational(i128(term.num), i128(term.den) * *v);
        if (!next)
          return overflowError();
        term = *next;
      }
    }
    auto s = addR(sum, term);
    if (!s)
      return overflowError();
    sum = *s;
  }
  if (sum.den != 1) {
    std::string values;
    for (const auto &name : symbols()) {
      auto it = b.find(name);
      if (it != b.end())
        values += (values.empty() ? "" : ", ") + name + "=" + std::to_string(it->second);
    }
    return makeError(ErrorCode::ShapeMismatch, "dimension '" + str() + "' is not an integer for " + values +
                                                   " (the division must be exact)");
  }
  return sum.num;
}

static std::string atomFactorStr(const DimAtom &atom) {
  if (atom.kind == DimAtom::Kind::Symbol)
    return atom.name;
  return "(" + atom.key + ")";
}

std::string Dim::str() const {
  if (terms_.empty())
    return "0";
  std::string out;
  for (size_t i = 0; i < terms_.size(); ++i) {
    const Term &t = terms_[i];
    bool negative = t.coef.num < 0;
    // |num| as text; INT64_MIN has no positive int64, print via i128.
    i128 absNum = negative ? -i128(t.coef.num) : i128(t.coef.num);
    std::string numStr;
    {
      i128 v = absNum;
      if (v == 0)
        numStr = "0";
      while (v > 0) {
        numStr.insert(numStr.begin(), char('0' + int(v % 10)));
        v /= 10;
      }
    }
    if (i == 0)
      out += negative ? "-" : "";
    else
      out += negative ? " - " : " + ";
    // A lone compound atom with coefficient 1 needs no parentheses, except
    // after a leading unary minus.
    if (t.factors.size() == 1 && t.factors[0].power == 1 && absNum == 1 && t.coef.den == 1 &&
        t.factors[0].atom->kind != DimAtom::Kind::Symbol && !(i == 0 && negative)) {
      out += t.factors[0].atom->key;
      continue;
    }
    std::string s;
    for (const auto &f : t.factors)
      for (int32_t k = 0; k < f.power; ++k)
        s += (s.empty() ? "" : "*") + atomFactorStr(*f.atom);
    if (s.empty())
      s = numStr;
    else if (absNum != 1)
      s += "*" + numStr;
    for (const auto &f : t.factors)
      for (int32_t k = 0; k < -f.power; ++k)
        s += "/" + atomFactorStr(*f.atom);
    if (t.coef.den != 1)
      s += "/" + std::to_string(t.coef.den);
    out += s;
  }
  return out;
}

bool Dim::operator==(const Dim &other) const {
  if (terms_.size() != other.terms_.size())
    return false;
  for (size_t i = 0; i < terms_.size(); ++i) {
    const Term &a = terms_[i], &b = other.terms_[i];
    if (!(a.coef == b.coef) || a.factors.size() != b.factors.size())
      return false;
    for (size_t j = 0; j < a.factors.size(); ++j)
      if (a.factors[j].power != b.factors[j].power || a.factors[j].atom->key != b.factors[j].atom->key)
        return false;
  }
  return true;
}

} // namespace tessera::ir
