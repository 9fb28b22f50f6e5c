#include "tessera/sdk/schedule_ir.h"

#include "tessera/sdk/element.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>

namespace tessera::schedule {

// ---- Small helpers --------------------------------------------------------

IndexExpr IndexExpr::binary(Kind k, IndexExpr a, IndexExpr b) {
  IndexExpr e;
  e.kind = k;
  e.args.push_back(std::move(a));
  e.args.push_back(std::move(b));
  return e;
}
IndexExpr operator+(IndexExpr a, IndexExpr b) { return IndexExpr::binary(IndexExpr::Kind::Add, std::move(a), std::move(b)); }
IndexExpr operator-(IndexExpr a, IndexExpr b) { return IndexExpr::binary(IndexExpr::Kind::Sub, std::move(a), std::move(b)); }
IndexExpr operator*(IndexExpr a, IndexExpr b) { return IndexExpr::binary(IndexExpr::Kind::Mul, std::move(a), std::move(b)); }

Instr::Instr(const Instr &o)
    : result(o.result), dtype(o.dtype), op(o.op), args(o.args), operand(o.operand), index(o.index),
      mask(o.mask ? std::make_unique<IndexExpr>(*o.mask) : nullptr), fallback(o.fallback), constant(o.constant),
      indexValue(o.indexValue), reduce(o.reduce), saturate(o.saturate), isStore(o.isStore) {}

Instr &Instr::operator=(const Instr &o) {
  if (this != &o) {
    Instr copy(o);
    *this = std::move(copy);
  }
  return *this;
}

namespace {

struct OpRow {
  Op op;
  const char *name;
  int arity;
};
constexpr OpRow kOps[] = {
    {Op::Load, "load", -1},       {Op::Const, "const", -1},     {Op::Index, "index", -1},
    {Op::Acc, "acc", -1},         {Op::Neg, "neg", 1},          {Op::Abs, "abs", 1},
    {Op::Exp, "exp", 1},          {Op::Log, "log", 1},          {Op::Sqrt, "sqrt", 1},
    {Op::Rsqrt, "rsqrt", 1},      {Op::Tanh, "tanh", 1},        {Op::Sigmoid, "sigmoid", 1},
    {Op::Relu, "relu", 1},        {Op::GeluErf, "gelu_erf", 1}, {Op::GeluTanh, "gelu_tanh", 1},
    {Op::Silu, "silu", 1},        {Op::Erf, "erf", 1},          {Op::Sin, "sin", 1},
    {Op::Cos, "cos", 1},          {Op::Floor, "floor", 1},      {Op::Ceil, "ceil", 1},
    {Op::Sign, "sign", 1},        {Op::Reciprocal, "reciprocal", 1}, {Op::Not, "not", 1},
    {Op::Add, "add", 2},          {Op::Sub, "sub", 2},          {Op::Mul, "mul", 2},
    {Op::Div, "div", 2},          {Op::Pow, "pow", 2},          {Op::Max, "max", 2},
    {Op::Min, "min", 2},          {Op::Mod, "mod", 2},          {Op::Eq, "eq", 2},
    {Op::Ne, "ne", 2},            {Op::Lt, "lt", 2},            {Op::Le, "le", 2},
    {Op::Gt, "gt", 2},            {Op::Ge, "ge", 2},            {Op::And, "and", 2},
    {Op::Or, "or", 2},            {Op::Xor, "xor", 2},          {Op::Select, "select", 3},
    {Op::Cast, "cast", 1},        {Op::Reduce, "reduce", 1},
};

constexpr const char *kReduceNames[] = {"sum", "max", "min", "prod", "argmax", "argmin"};


std::string formatNumber(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

int64_t floorDiv(int64_t a, int64_t b) {
  if (b == 0)
    return 0;
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}

int64_t floorMod(int64_t a, int64_t b) { return b == 0 ? 0 : a - floorDiv(a, b) * b; }

} // namespace

const char *opName(Op op) {
  for (const OpRow &r : kOps)
    if (r.op == op)
      return r.name;
  return "?";
}

int opArity(Op op) {
  for (const OpRow &r : kOps)
    if (r.op == op)
      return r.arity;
  return -1;
}

const char *reduceKindName(ReduceKind kind) { return kReduceNames[static_cast<int>(kind)]; }

const char *attentionLayoutName(AttentionLayout layout) {
  return layout == AttentionLayout::Bshd ? "bshd" : "bhsd";
}

const char *kernelKindName(Kernel::Kind kind) {
  switch (kind) {
  case Kernel::Kind::Matmul: return "matmul";
  case Kernel::Kind::Attention: return "attention";
  default: return "loop";
  }
}

size_t dtypeSize(tessera_dtype_t dtype) { return sdk::dtypeSize(dtype); }

const char *dtypeName(tessera_dtype_t dtype) { return sdk::dtypeName(dtype); }

int64_t Kernel::knobInt(const std::string &key, int64_t fallback) const {
  auto it = knobs.find(key);
  if (it == knobs.end())
    return fallback;
  if (auto *v = std::get_if<int64_t>(&it->second))
    return *v;
  return fallback;
}

std::vector<int64_t> Kernel::knobInts(const std::string &key) const {
  auto it = knobs.find(key);
  if (it == knobs.end())
    return {};
  if (auto *v = std::get_if<std::vector<int64_t>>(&it->second))
    return *v;
  if (auto *v = std::get_if<int64_t>(&it->second))
    return {*v};
  return {};
}

std::string Kernel::knobString(const std::string &key) const {
  auto it = knobs.find(key);
  if (it == knobs.end())
    return {};
  if (auto *v = std::get_if<std::string>(&it->second))
    return *v;
  return {};
}

std::string ParseError::str() const {
  return "line " + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

int64_t evalIndex(const IndexExpr &e, const int64_t *symbols, const int64_t *parallel, const int64_t *inner,
                  const double *values) {
  using K = IndexExpr::Kind;
  switch (e.kind) {
  case K::Const: return e.value;
  case K::Symbol: return symbols[e.value];
  case K::Parallel: return parallel[e.value];
  case K::Inner: return inner[e.value];
  case K::Value: return static_cast<int64_t>(values[e.value]);
  default: break;
  }
  int64_t a = evalIndex(e.args[0], symbols, parallel, inner, values);
  int64_t b = evalIndex(e.args[1], symbols, parallel, inner, values);
  switch (e.kind) {
  case K::Add: return a + b;
  case K::Sub: return a - b;
  case K::Mul: return a * b;
  case K::FloorDiv: return floorDiv(a, b);
  case K::Mod: return floorMod(a, b);
  case K::Min: return a < b ? a : b;
  case K::Max: return a > b ? a : b;
  case K::Lt: return a < b;
  case K::Le: return a <= b;
  case K::Eq: return a == b;
  case K::Ne: return a != b;
  case K::And: return (a != 0) && (b != 0);
  default: return 0;
  }
}

// ---- Printer --------------------------------------------------------------

std::string printIndex(const IndexExpr &e) {
  using K = IndexExpr::Kind;
  switch (e.kind) {
  case K::Const: return std::to_string(e.value);
  case K::Symbol: return "s" + std::to_string(e.value);
  case K::Parallel: return "p" + std::to_string(e.value);
  case K::Inner: return "r" + std::to_string(e.value);
  case K::Value: return "v" + std::to_string(e.value);
  case K::Min: return "min(" + printIndex(e.args[0]) + ", " + printIndex(e.args[1]) + ")";
  case K::Max: return "max(" + printIndex(e.args[0]) + ", " + printIndex(e.args[1]) + ")";
  default: break;
  }
  const char *op = "?";
  switch (e.kind) {
  case K::Add: op = "+"; break;
  case K::Sub: op = "-"; break;
  case K::Mul: op = "*"; break;
  case K::FloorDiv: op = "//"; break;
  case K::Mod: op = "%"; break;
  case K::Lt: op = "<"; break;
  case K::Le: op = "<="; break;
  case K::Eq: op = "=="; break;
  case K::Ne: op = "!="; break;
  case K::And: op = "&&"; break;
  default: break;
  }
  return "(" + printIndex(e.args[0]) + " " + op + " " + printIndex(e.args[1]) + ")";
}

namespace {

std::string printList(const std::vector<IndexExpr> &list) {
  std::string s = "[";
  for (size_t i = 0; i < list.size(); ++i)
    s += (i ? ", " : "") + printIndex(list[i]);
  return s + "]";
}

void printInstr(std::ostringstream &out, const Instr &in) {
  out << "    ";
  if (in.isStore) {
    out << "store " << in.operand << " " << printList(in.index) << " v" << in.args[0] << "\n";
    return;
  }
  out << "v" << in.result << ": " << dtypeName(in.dtype) << " = " << opName(in.op);
  switch (in.op) {
  case Op::Load:
    out << " " << in.operand << " " << printList(in.index);
    if (in.mask)
      out << " if " << printIndex(*in.mask) << " else " << formatNumber(in.fallback);
    break;
  case Op::Const: out << " " << formatNumber(in.constant); break;
  case Op::Index: out << " " << printIndex(in.indexValue); break;
  case Op::Reduce: out << " " << reduceKindName(in.reduce) << " v" << in.args[0]; break;
  default:
    for (int64_t a : in.args)
      out << " v" << a;
    if (in.op == Op::Cast && in.saturate)
      out << " saturate";
    break;
  }
  out << "\n";
}

} // namespace

std::string printProgram(const Program &program) {
  std::ostringstream out;
  out << "tessera-schedule v1\n";
  out << "symbols";
  for (const std::string &s : program.symbols)
    out << " " << s;
  out << "\n";
  for (const Kernel &k : program.kernels) {
    out << "kernel \"" << k.name << "\" " << kernelKindName(k.kind) << " {\n";
    for (size_t i = 0; i < k.operands.size(); ++i) {
      const Operand &o = k.operands[i];
      const char *role = o.role == OperandRole::In ? "in" : o.role == OperandRole::Out ? "out" : "inout";
      out << "  operand " << i << " " << role << " " << dtypeName(o.dtype) << " " << printList(o.shape) << "\n";
    }
    out << "  parallel " << printList(k.parallel) << "\n";
    if (k.kind == Kernel::Kind::Attention)
      out << "  attention scale=" << formatNumber(k.attention.scale) << " causal=" << (k.attention.causal ? 1 : 0)
          << (k.attention.layout == AttentionLayout::Bshd ? " layout=bshd" : "") << "\n";
    if (!k.knobs.empty()) {
      out << "  knobs";
      for (const auto &[key, value] : k.knobs) {
        out << " " << key << "=";
        if (auto *i = std::get_if<int64_t>(&value)) {
          out << *i;
        } else if (auto *l = std::get_if<std::vector<int64_t>>(&value)) {
          out << "[";
          for (size_t j = 0; j < l->size(); ++j)
            out << (j ? ", " : "") << (*l)[j];
          out << "]";
        } else {
          out << "\"" << std::get<std::string>(value) << "\"";
        }
      }
      out << "\n";
    }
    for (const Stage &s : k.stages) {
      out << "  stage " << (s.kind == Stage::Kind::Map ? "map" : "reduce") << " " << printList(s.inner) << " {\n";
      for (const Instr &in : s.body)
        printInstr(out, in);
      out << "  }\n";
    }
    out << "}\n";
  }
  return out.str();
}

// ---- Parser ---------------------------------------------------------------

namespace {

struct Token {
  enum class Kind { Ident, Int, Float, String, Punct, End } kind = Kind::End;
  std::string text;
  uint32_t line = 1, column = 1;
};

class Lexer {
public:
  explicit Lexer(const std::string &text) : text_(text) {}

  Token next() {
    skipSpace();
    Token t;
    t.line = line_;
    t.column = column_;
    if (pos_ >= text_.size())
      return t;
    char c = text_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      t.kind = Token::Kind::Ident;
      while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
        t.text += take();
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && pos_ + 1 < text_.size() &&
         (std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])) || text_[pos_ + 1] == 'i'))) {
      t.kind = Token::Kind::Int;
      if (c == '-')
        t.text += take();
      if (text_.compare(pos_, 3, "inf") == 0) {
        t.text += "inf";
        advance(3);
        t.kind = Token::Kind::Float;
        return t;
      }
      while (pos_ < text_.size()) {
        char d = text_[pos_];
        if (std::isdigit(static_cast<unsigned char>(d))) {
          t.text += take();
        } else if (d == '.' || d == 'e' || d == 'E' ||
                   ((d == '-' || d == '+') && (t.text.back() == 'e' || t.text.back() == 'E'))) {
          t.kind = Token::Kind::Float;
          t.text += take();
        } else {
          break;
        }
      }
      return t;
    }
    if (c == '"') {
      t.kind = Token::Kind::String;
      take();
      while (pos_ < text_.size() && text_[pos_] != '"' && text_[pos_] != '\n')
        t.text += take();
      if (pos_ < text_.size() && text_[pos_] == '"')
        take();
      return t;
    }
    t.kind = Token::Kind::Punct;
    static const char *two[] = {"//", "<=", "==", "!=", "&&", ">="};
    for (const char *op : two) {
      if (text_.compare(pos_, 2, op) == 0) {
        t.text = op;
        advance(2);
        return t;
      }
    }
    t.text = std::string(1, take());
    return t;
  }

private:
  void skipSpace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n')
          take();
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        take();
      } else {
        break;
      }
    }
  }
  char take() {
    char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    return c;
  }
  void advance(size_t n) {
    for (size_t i = 0; i < n; ++i)
      take();
  }

  const std::string &text_;
  size_t pos_ = 0;
  uint32_t line_ = 1, column_ = 1;
};

class Parser {
public:
  explicit Parser(const std::string &text) : lexer_(text) { advance(); }

  bool parse(Program *out) {
    if (!expectIdent("tessera") || !expectPunct("-") || !expectIdent("schedule"))
      return false;
    if (!(tok_.kind == Token::Kind::Ident && tok_.text == "v1"))
      return fail("unsupported Schedule IR version '" + tok_.text + "' (this SDK reads v1)");
    advance();
    if (isIdent("symbols")) {
      advance();
      // Symbols run until the first 'kernel' keyword or the end.
      while (tok_.kind == Token::Kind::Ident && tok_.text != "kernel") {
        out->symbols.push_back(tok_.text);
        advance();
      }
    }
    while (tok_.kind != Token::Kind::End) {
      Kernel k;
      if (!parseKernel(k))
        return false;
      out->kernels.push_back(std::move(k));
    }
    return true;
  }

  ParseError error;

private:
  void advance() { tok_ = lexer_.next(); }
  bool fail(const std::string &message) {
    if (error.message.empty()) {
      error.message = message;
      error.line = tok_.line;
      error.column = tok_.column;
    }
    return false;
  }
  std::string describe() const { return tok_.kind == Token::Kind::End ? "end of input" : "'" + tok_.text + "'"; }
  bool isIdent(const char *s) const { return tok_.kind == Token::Kind::Ident && tok_.text == s; }
  bool isPunct(const char *s) const { return tok_.kind == Token::Kind::Punct && tok_.text == s; }
  bool expectIdent(const char *s) {
    if (!isIdent(s))
      return fail(std::string("expected '") + s + "', found " + describe());
    advance();
    return true;
  }
  bool expectPunct(const char *s) {
    if (!isPunct(s))
      return fail(std::string("expected '") + s + "', found " + describe());
    advance();
    return true;
  }
  bool parseInt(int64_t &out) {
    if (tok_.kind != Token::Kind::Int)
      return fail("expected an integer, found " + describe());
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(tok_.text.c_str(), &end, 10);
    if (errno != 0 || !end || *end)
      return fail("integer out of range: " + tok_.text);
    out = v;
    advance();
    return true;
  }
  bool parseNumber(double &out) {
    if (tok_.kind == Token::Kind::Ident && (tok_.text == "nan" || tok_.text == "inf")) {
      out = tok_.text == "nan" ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
      advance();
      return true;
    }
    if (tok_.kind != Token::Kind::Int && tok_.kind != Token::Kind::Float)
      return fail("expected a number, found " + describe());
    out = tok_.text == "-inf" ? -std::numeric_limits<double>::infinity() : std::strtod(tok_.text.c_str(), nullptr);
    advance();
    return true;
  }
  bool parseRef(char prefix, int64_t &out) {
    if (tok_.kind != Token::Kind::Ident || tok_.text.size() < 2 || tok_.text[0] != prefix)
      return fail(std::string("expected '") + prefix + "<n>', found " + describe());
    for (size_t i = 1; i < tok_.text.size(); ++i)
      if (!std::isdigit(static_cast<unsigned char>(tok_.text[i])))
        return fail(std::string("expected '") + prefix + "<n>', found " + describe());
    out = std::strtoll(tok_.text.c_str() + 1, nullptr, 10);
    advance();
    return true;
  }
  bool parseDType(tessera_dtype_t &out) {
    if (tok_.kind == Token::Kind::Ident)
      for (int d = TESSERA_DTYPE_F64; d <= TESSERA_DTYPE_I16; ++d)
        if (tok_.text == sdk::dtypeName(static_cast<tessera_dtype_t>(d))) {
          out = static_cast<tessera_dtype_t>(d);
          advance();
          return true;
        }
    return fail("expected a dtype, found " + describe());
  }

  // index := and ; and := cmp ('&&' cmp)* ; cmp := sum (op sum)? ; sum := term (('+'|'-') term)* ;
  // term := atom (('*'|'//'|'%') atom)* ; atom := int | sN | pN | rN | vN | min(..) | max(..) | '(' index ')'
  bool parseIndex(IndexExpr &out, int depth = 0) {
    if (depth > 200)
      return fail("index expression nested too deeply");
    IndexExpr lhs;
    if (!parseCompare(lhs, depth))
      return false;
    while (isPunct("&&")) {
      advance();
      IndexExpr rhs;
      if (!parseCompare(rhs, depth))
        return false;
      lhs = IndexExpr::binary(IndexExpr::Kind::And, std::move(lhs), std::move(rhs));
    }
    out = std::move(lhs);
    return true;
  }
  bool parseCompare(IndexExpr &out, int depth) {
    IndexExpr lhs;
    if (!parseSum(lhs, depth))
      return false;
    IndexExpr::Kind k;
    bool swap = false;
    if (isPunct("<")) k = IndexExpr::Kind::Lt;
    else if (isPunct("<=")) k = IndexExpr::Kind::Le;
    else if (isPunct("==")) k = IndexExpr::Kind::Eq;
    else if (isPunct("!=")) k = IndexExpr::Kind::Ne;
    else if (isPunct(">")) { k = IndexExpr::Kind::Lt; swap = true; }
    else if (isPunct(">=")) { k = IndexExpr::Kind::Le; swap = true; }
    else { out = std::move(lhs); return true; }
    advance();
    IndexExpr rhs;
    if (!parseSum(rhs, depth))
      return false;
    out = swap ? IndexExpr::binary(k, std::move(rhs), std::move(lhs)) : IndexExpr::binary(k, std::move(lhs), std::move(rhs));
    return true;
  }
  bool parseSum(IndexExpr &out, int depth) {
    IndexExpr lhs;
    if (!parseTerm(lhs, depth))
      return false;
    while (isPunct("+") || isPunct("-") || (tok_.kind == Token::Kind::Int && tok_.text[0] == '-')) {
      IndexExpr::Kind k = isPunct("+") ? IndexExpr::Kind::Add : IndexExpr::Kind::Sub;
      if (tok_.kind == Token::Kind::Int) { // "x -1" lexed as a negative number
        int64_t v;
        if (!parseInt(v))
          return false;
        lhs = IndexExpr::binary(IndexExpr::Kind::Add, std::move(lhs), IndexExpr::constant(v));
        continue;
      }
      advance();
      IndexExpr rhs;
      if (!parseTerm(rhs, depth))
        return false;
      lhs = IndexExpr::binary(k, std::move(lhs), std::move(rhs));
    }
    out = std::move(lhs);
    return true;
  }
  bool parseTerm(IndexExpr &out, int depth) {
    IndexExpr lhs;
    if (!parseAtom(lhs, depth))
      return false;
    while (isPunct("*") || isPunct("//") || isPunct("%")) {
      IndexExpr::Kind k = isPunct("*") ? IndexExpr::Kind::Mul : isPunct("//") ? IndexExpr::Kind::FloorDiv
                                                                              : IndexExpr::Kind::Mod;
      advance();
      IndexExpr rhs;
      if (!parseAtom(rhs, depth))
        return false;
      lhs = IndexExpr::binary(k, std::move(lhs), std::move(rhs));
    }
    out = std::move(lhs);
    return true;
  }
  bool parseAtom(IndexExpr &out, int depth) {
    if (tok_.kind == Token::Kind::Int) {
      int64_t v;
      if (!parseInt(v))
        return false;
      out = IndexExpr::constant(v);
      return true;
    }
    if (isPunct("(")) {
      advance();
      if (!parseIndex(out, depth + 1))
        return false;
      return expectPunct(")");
    }
    if (isIdent("min") || isIdent("max")) {
      IndexExpr::Kind k = isIdent("min") ? IndexExpr::Kind::Min : IndexExpr::Kind::Max;
      advance();
      IndexExpr a, b;
      if (!expectPunct("(") || !parseIndex(a, depth + 1) || !expectPunct(",") || !parseIndex(b, depth + 1) ||
          !expectPunct(")"))
        return false;
      out = IndexExpr::binary(k, std::move(a), std::move(b));
      return true;
    }
    if (tok_.kind == Token::Kind::Ident && tok_.text.size() >= 2 && std::strchr("sprv", tok_.text[0])) {
      char prefix = tok_.text[0];
      int64_t n;
      if (!parseRef(prefix, n))
        return false;
      out.kind = prefix == 's'   ? IndexExpr::Kind::Symbol
                 : prefix == 'p' ? IndexExpr::Kind::Parallel
                 : prefix == 'r' ? IndexExpr::Kind::Inner
                                 : IndexExpr::Kind::Value;
      out.value = n;
      out.args.clear();
      return true;
    }
    return fail("expected an index expression, found " + describe());
  }
  bool parseIndexList(std::vector<IndexExpr> &out) {
    if (!expectPunct("["))
      return false;
    while (!isPunct("]")) {
      IndexExpr e;
      if (!parseIndex(e))
        return false;
      out.push_back(std::move(e));
      if (!isPunct("]") && !expectPunct(","))
        return false;
    }
    advance();
    return true;
  }

  bool parseKernel(Kernel &k) {
    if (!expectIdent("kernel"))
      return false;
    if (tok_.kind != Token::Kind::String)
      return fail("expected the kernel name as a string, found " + describe());
    k.name = tok_.text;
    advance();
    if (isIdent("loop")) k.kind = Kernel::Kind::Loop;
    else if (isIdent("matmul")) k.kind = Kernel::Kind::Matmul;
    else if (isIdent("attention")) k.kind = Kernel::Kind::Attention;
    else return fail("expected 'loop', 'matmul' or 'attention', found " + describe());
    advance();
    if (!expectPunct("{"))
      return false;
    while (isIdent("operand")) {
      advance();
      int64_t index;
      if (!parseInt(index))
        return false;
      if (index != static_cast<int64_t>(k.operands.size()))
        return fail("operands must be numbered 0, 1, ... in order");
      Operand o;
      if (isIdent("in")) o.role = OperandRole::In;
      else if (isIdent("out")) o.role = OperandRole::Out;
      else if (isIdent("inout")) o.role = OperandRole::InOut;
      else return fail("expected 'in', 'out' or 'inout', found " + describe());
      advance();
      if (!parseDType(o.dtype) || !parseIndexList(o.shape))
        return false;
      k.operands.push_back(std::move(o));
    }
    if (!expectIdent("parallel") || !parseIndexList(k.parallel))
      return false;
    if (k.kind == Kernel::Kind::Attention) {
      // attention scale=<number> causal=<0|1>, both required, in this order.
      if (!expectIdent("attention") || !expectIdent("scale") || !expectPunct("=") ||
          !parseNumber(k.attention.scale) || !expectIdent("causal") || !expectPunct("="))
        return false;
      int64_t causal;
      if (!parseInt(causal))
        return false;
      if (causal != 0 && causal != 1)
        return fail("causal must be 0 or 1");
      k.attention.causal = causal == 1;
      // Optional: layout=<bhsd|bshd> (bhsd when absent).
      if (isIdent("layout")) {
        advance();
        if (!expectPunct("="))
          return false;
        if (isIdent("bhsd")) k.attention.layout = AttentionLayout::Bhsd;
        else if (isIdent("bshd")) k.attention.layout = AttentionLayout::Bshd;
        else return fail("attention layout must be 'bhsd' or 'bshd', found " + describe());
        advance();
      }
    }
    if (isIdent("knobs")) {
      advance();
      while (tok_.kind == Token::Kind::Ident && tok_.text != "stage") {
        std::string key = tok_.text;
        advance();
        if (!expectPunct("="))
          return false;
        if (tok_.kind == Token::Kind::String) {
          k.knobs[key] = tok_.text;
          advance();
        } else if (isPunct("[")) {
          advance();
          std::vector<int64_t> list;
          while (!isPunct("]")) {
            int64_t v;
            if (!parseInt(v))
              return false;
            list.push_back(v);
            if (!isPunct("]") && !expectPunct(","))
              return false;
          }
          advance();
          k.knobs[key] = list;
        } else {
          int64_t v;
          if (!parseInt(v))
            return false;
          k.knobs[key] = v;
        }
      }
    }
    while (isIdent("stage")) {
      advance();
      Stage s;
      if (isIdent("map")) s.kind = Stage::Kind::Map;
      else if (isIdent("reduce")) s.kind = Stage::Kind::Reduce;
      else return fail("expected 'map' or 'reduce', found " + describe());
      advance();
      if (!parseIndexList(s.inner) || !expectPunct("{"))
        return false;
      while (!isPunct("}")) {
        Instr in;
        if (!parseInstr(in))
          return false;
        s.body.push_back(std::move(in));
      }
      advance();
      k.stages.push_back(std::move(s));
    }
    return expectPunct("}");
  }

  bool parseInstr(Instr &in) {
    if (isIdent("store")) {
      advance();
      in.isStore = true;
      int64_t v;
      if (!parseInt(in.operand) || !parseIndexList(in.index) || !parseRef('v', v))
        return false;
      in.args.push_back(v);
      return true;
    }
    if (!parseRef('v', in.result) || !expectPunct(":") || !parseDType(in.dtype) || !expectPunct("="))
      return false;
    if (tok_.kind != Token::Kind::Ident)
      return fail("expected an operation, found " + describe());
    std::string name = tok_.text;
    const OpRow *row = nullptr;
    for (const OpRow &r : kOps)
      if (name == r.name)
        row = &r;
    if (!row || row->op == Op::Acc)
      return fail("unknown operation '" + name + "'");
    in.op = row->op;
    advance();
    switch (in.op) {
    case Op::Load:
      if (!parseInt(in.operand) || !parseIndexList(in.index))
        return false;
      if (isIdent("if")) {
        advance();
        in.mask = std::make_unique<IndexExpr>();
        if (!parseIndex(*in.mask) || !expectIdent("else") || !parseNumber(in.fallback))
          return false;
      }
      return true;
    case Op::Const: return parseNumber(in.constant);
    case Op::Index: return parseIndex(in.indexValue);
    case Op::Reduce: {
      bool found = false;
      for (int i = 0; i < 6; ++i)
        if (isIdent(kReduceNames[i])) {
          in.reduce = static_cast<ReduceKind>(i);
          found = true;
        }
      if (!found)
        return fail("expected a reduction kind (sum, max, min, prod, argmax, argmin), found " + describe());
      advance();
      int64_t v;
      if (!parseRef('v', v))
        return false;
      in.args.push_back(v);
      return true;
    }
    default:
      for (int i = 0; i < row->arity; ++i) {
        int64_t v;
        if (!parseRef('v', v))
          return false;
        in.args.push_back(v);
      }
      if (in.op == Op::Cast && isIdent("saturate")) {
        in.saturate = true;
        advance();
      }
      return true;
    }
  }

  Lexer lexer_;
  Token tok_;
};

// Checks that every reference in an index expression is in range.
std::string checkIndex(const IndexExpr &e, size_t symbols, size_t parallel, size_t inner,
                       const std::set<int64_t> &defined, int depth = 0) {
  using K = IndexExpr::Kind;
  if (depth > 200)
    return "index expression nested too deeply";
  switch (e.kind) {
  case K::Const: return {};
  case K::Symbol: return e.value >= 0 && static_cast<size_t>(e.value) < symbols ? "" : "symbol s" + std::to_string(e.value) + " out of range";
  case K::Parallel: return e.value >= 0 && static_cast<size_t>(e.value) < parallel ? "" : "parallel loop p" + std::to_string(e.value) + " out of range";
  case K::Inner: return e.value >= 0 && static_cast<size_t>(e.value) < inner ? "" : "inner loop r" + std::to_string(e.value) + " out of range for this stage";
  case K::Value: return defined.count(e.value) ? "" : "value v" + std::to_string(e.value) + " used before its definition";
  default: break;
  }
  if (e.args.size() != 2)
    return "binary index operation without two operands";
  for (const IndexExpr &a : e.args)
    if (std::string err = checkIndex(a, symbols, parallel, inner, defined, depth + 1); !err.empty())
      return err;
  return {};
}

// The attention form (schedule_ir.h): q, k, v, [mask], out with matching
// shapes (compared as expressions), one float dtype, no stages.
std::string checkAttention(const Kernel &k) {
  if (!k.stages.empty())
    return "attention kernels have no stages";
  size_t n = k.operands.size();
  if (n != 4 && n != 5)
    return "attention kernels take q, k, v, an optional mask and out (4 or 5 operands), got " + std::to_string(n);
  for (size_t i = 0; i < n; ++i) {
    OperandRole want = i + 1 == n ? OperandRole::Out : OperandRole::In;
    if (k.operands[i].role != want)
      return "attention operand " + std::to_string(i) + " must be '" + (want == OperandRole::Out ? "out" : "in") + "'";
    tessera_dtype_t d = k.operands[i].dtype;
    if (!sdk::isFloatDType(d) || d != k.operands[0].dtype)
      return "attention operands need one float dtype";
  }
  if (!std::isfinite(k.attention.scale))
    return "attention scale must be finite";
  const bool bshd = k.attention.layout == AttentionLayout::Bshd;
  // Compared in the computation's order [batch..., S, D] (H a batch dim).
  const std::vector<IndexExpr> q = k.attentionDims(0, k.operands[0].shape),
                               kk = k.attentionDims(1, k.operands[1].shape),
                               v = k.attentionDims(2, k.operands[2].shape),
                               o = k.attentionDims(n - 1, k.operands[n - 1].shape);
  size_t r = q.size();
  if (r < (bshd ? 3u : 2u) || kk.size() != r || v.size() != r || o.size() != r)
    return bshd ? "attention layout=bshd needs q, k, v and out of the same rank >= 3 ([batch..., S, H, D])"
                : "attention q, k, v and out need the same rank >= 2";
  for (size_t i = 0; i + 2 < r; ++i)
    if (!(kk[i] == q[i]) || !(v[i] == q[i]) || !(o[i] == q[i]))
      return bshd && i + 3 == r ? std::string("attention head counts (H) differ between operands")
                                : "attention batch dim " + std::to_string(i) + " differs between operands";
  if (!(kk[r - 1] == q[r - 1]))
    return "attention head dims of q and k differ";
  if (!(v[r - 2] == kk[r - 2]))
    return "attention key lengths of k and v differ";
  if (!(o[r - 2] == q[r - 2]) || !(o[r - 1] == v[r - 1]))
    return bshd ? "attention out must be [batch..., Sq, H, Dv]" : "attention out must be [batch..., Sq, Dv]";
  if (!(k.parallel == k.operands[n - 1].shape))
    return "attention parallel loops must be the out shape";
  if (n == 5) {
    std::vector<IndexExpr> scores(q.begin(), q.end() - 1);
    scores.push_back(kk[r - 2]);
    const std::vector<IndexExpr> &m = k.operands[3].shape;
    if (m.empty() || m.size() > scores.size())
      return "attention mask rank must be 1.." + std::to_string(scores.size());
    size_t lead = scores.size() - m.size();
    for (size_t i = 0; i < m.size(); ++i)
      if (!(m[i] == scores[lead + i]) && !(m[i].isConst() && m[i].value == 1))
        return "attention mask dim " + std::to_string(i) + " neither 1 nor the score dim";
  }
  return {};
}

} // namespace

std::string validateProgram(const Program &program) {
  size_t nsym = program.symbols.size();
  for (const Kernel &k : program.kernels) {
    std::string where = "kernel \"" + k.name + "\": ";
    std::set<int64_t> none;
    for (const Operand &o : k.operands)
      for (const IndexExpr &d : o.shape)
        if (std::string e = checkIndex(d, nsym, 0, 0, none); !e.empty())
          return where + "operand shape: " + e;
    for (const IndexExpr &d : k.parallel)
      if (std::string e = checkIndex(d, nsym, 0, 0, none); !e.empty())
        return where + "parallel extent: " + e;
    std::set<int64_t> defined;
    std::set<int64_t> visibleAfterStage;
    for (size_t si = 0; si < k.stages.size(); ++si) {
      const Stage &s = k.stages[si];
      for (const IndexExpr &d : s.inner)
        if (std::string e = checkIndex(d, nsym, k.parallel.size(), 0, none); !e.empty())
          return where + "stage extent: " + e;
      defined = visibleAfterStage;
      for (const Instr &in : s.body) {
        auto check = [&](const std::vector<IndexExpr> &idx) -> std::string {
          for (const IndexExpr &e : idx)
            if (std::string err = checkIndex(e, nsym, k.parallel.size(), s.inner.size(), defined); !err.empty())
              return err;
          return {};
        };
        if (in.op == Op::Load || in.isStore) {
          if (in.operand < 0 || static_cast<size_t>(in.operand) >= k.operands.size())
            return where + "operand " + std::to_string(in.operand) + " out of range";
          if (in.index.size() != k.operands[in.operand].shape.size())
            return where + "operand " + std::to_string(in.operand) + " has rank " +
                   std::to_string(k.operands[in.operand].shape.size()) + " but is indexed with " +
                   std::to_string(in.index.size()) + " expressions";
          if (std::string err = check(in.index); !err.empty())
            return where + err;
          if (in.mask)
            if (std::string err = check({*in.mask}); !err.empty())
              return where + err;
        }
        if (in.isStore) {
          if (s.kind == Stage::Kind::Reduce)
            return where + "store inside a reduce stage";
          if (k.operands[in.operand].role == OperandRole::In)
            return where + "store to input operand " + std::to_string(in.operand);
        }
        if (in.op == Op::Index)
          if (std::string err = check({in.indexValue}); !err.empty())
            return where + err;
        for (int64_t a : in.args)
          if (!defined.count(a))
            return where + "value v" + std::to_string(a) + " used before its definition";
        if (!in.isStore && in.op != Op::Load && in.op != Op::Const && in.op != Op::Index &&
            static_cast<int>(in.args.size()) != opArity(in.op))
          return where + opName(in.op) + " takes " + std::to_string(opArity(in.op)) + " operand(s)";
        if (in.op == Op::Reduce && s.kind != Stage::Kind::Reduce)
          return where + "reduce outside a reduce stage";
        if (!in.isStore) {
          if (in.dtype == TESSERA_DTYPE_INVALID || dtypeSize(in.dtype) == 0)
            return where + "value v" + std::to_string(in.result) + " has no dtype";
          if (defined.count(in.result) || visibleAfterStage.count(in.result))
            return where + "value v" + std::to_string(in.result) + " defined twice";
          defined.insert(in.result);
          if (in.op == Op::Reduce)
            visibleAfterStage.insert(in.result);
        }
      }
    }
    if (k.kind == Kernel::Kind::Attention)
      if (std::string e = checkAttention(k); !e.empty())
        return where + e;
    if (k.kind == Kernel::Kind::Matmul) {
      if (k.parallel.size() < 2 || k.stages.empty() || k.stages[0].kind != Stage::Kind::Reduce ||
          k.stages[0].inner.size() != 1)
        return where + "matmul kernels need >= 2 parallel loops and a first reduce stage over one loop";
      const auto &b = k.stages[0].body;
      if (b.size() != 4 || b[0].op != Op::Load || b[1].op != Op::Load || b[2].op != Op::Mul ||
          b[3].op != Op::Reduce || b[3].reduce != ReduceKind::Sum)
        return where + "matmul first stage must be: load A, load B, mul, reduce sum";
    }
  }
  return {};
}

bool parseProgram(const std::string &text, Program *out, ParseError *error) {
  try {
    Parser parser(text);
    Program program;
    if (!parser.parse(&program)) {
      if (error)
        *error = parser.error;
      return false;
    }
    if (std::string problem = validateProgram(program); !problem.empty()) {
      if (error)
        *error = ParseError{problem, 0, 0};
      return false;
    }
    *out = std::move(program);
    return true;
  } catch (const std::exception &e) {
    if (error)
      *error = ParseError{std::string("internal error while parsing: ") + e.what(), 0, 0};
    return false;
  }
}

} // namespace tessera::schedule
