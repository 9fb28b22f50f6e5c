#include "text/Parser.h"

#include "ir/Verifier.h"
#include "shape/ShapeInference.h"
#include "text/Lexer.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>

namespace tessera::text {

using namespace tessera::ir;

namespace {

const char *const kDTypeList = "f64, f32, f16, bf16, f8e4m3, f8e5m2, i64, i32, i16, i8, u8 or bool";

class Parser {
public:
  Parser(std::string_view text, std::string sourceName) : lex_(text), file_(std::move(sourceName)) {
    tok_ = lex_.next();
  }

  Expected<Module> parseModule();
  Expected<Dim> parseDimExpr(size_t depth = 0);
  Expected<TensorType> parseType();
  bool atEof() const { return tok_.kind == TokKind::Eof; }
  Error expectEof() {
    if (tok_.kind != TokKind::Eof)
      return errorHere("expected end of input, got " + describe(tok_));
    return Error::success();
  }

private:
  Lexer lex_;
  std::string file_;
  Token tok_;

  SourceLocation locOf(const Token &t) const { return SourceLocation{file_, t.line, t.column}; }
  SourceLocation here() const { return locOf(tok_); }
  Error errorAt(const Token &t, std::string msg, ErrorCode code = ErrorCode::InvalidIR) const {
    if (t.kind == TokKind::Error)
      return makeError(ErrorCode::InvalidIR, t.text, locOf(t));
    return makeError(code, std::move(msg), locOf(t));
  }
  Error errorHere(std::string msg, ErrorCode code = ErrorCode::InvalidIR) const { return errorAt(tok_, msg, code); }
  Error expected(const std::string &what) const { return errorHere("expected " + what + ", got " + describe(tok_)); }

  void consume() { tok_ = lex_.next(); }
  bool is(TokKind k) const { return tok_.kind == k; }
  bool isIdent(const char *text) const { return tok_.kind == TokKind::Ident && tok_.text == text; }
  Error expect(TokKind k, const std::string &what) {
    if (tok_.kind != k)
      return expected(what);
    consume();
    return Error::success();
  }

  Expected<int64_t> parseIntToken(bool negate);
  Expected<Dim> parseDimTerm(size_t depth);
  Expected<Dim> parseDimUnary(size_t depth);
  Expected<Dim> parseDimPrimary(size_t depth);
  Error parsePolicy(NumericPolicy &policy);
  Expected<Attribute> parseAttrValue();
  Error parseAttrDict(AttrList &attrs);
  Expected<Function> parseFunction();
  Error parseOp(Function &fn, std::map<std::string, SourceLocation> &defined);
};

Expected<int64_t> Parser::parseIntToken(bool negate) {
  errno = 0;
  const char *begin = tok_.text.c_str();
  char *end = nullptr;
  unsigned long long v = std::strtoull(begin, &end, 10);
  unsigned long long limit = negate ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
  if (errno == ERANGE || v > limit)
    return errorHere("integer " + std::string(negate ? "-" : "") + tok_.text + " does not fit in int64",
                     ErrorCode::ResourceExhausted);
  consume();
  if (negate)
    return v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -int64_t(v);
  return int64_t(v);
}

// dim-expr := term (('+' | '-') term)*
Expected<Dim> Parser::parseDimExpr(size_t depth) {
  if (depth > kMaxNesting)
    return errorHere("dimension expression nests deeper than " + std::to_string(kMaxNesting) + " levels",
                     ErrorCode::ResourceExhausted);
  Token start = tok_;
  auto lhs = parseDimTerm(depth);
  if (!lhs)
    return lhs;
  while (is(TokKind::Plus) || is(TokKind::Minus)) {
    bool plus = is(TokKind::Plus);
    consume();
    auto rhs = parseDimTerm(depth);
    if (!rhs)
      return rhs;
    auto r = plus ? Dim::add(*lhs, *rhs) : Dim::sub(*lhs, *rhs);
    if (!r)
      return makeError(r.error().code(), r.error().message(), locOf(start));
    lhs = r.take();
  }
  return lhs;
}

// term := unary (('*' | '/' | '//') unary)*
Expected<Dim> Parser::parseDimTerm(size_t depth) {
  Token start = tok_;
  auto lhs = parseDimUnary(depth);
  if (!lhs)
    return lhs;
  while (is(TokKind::Star) || is(TokKind::Slash) || is(TokKind::SlashSlash)) {
    TokKind k = tok_.kind;
    consume();
    auto rhs = parseDimUnary(depth);
    if (!rhs)
      return rhs;
    auto r = k == TokKind::Star ? Dim::mul(*lhs, *rhs) : k == TokKind::Slash ? Dim::div(*lhs, *rhs)
                                                                             : Dim::floorDiv(*lhs, *rhs);
    if (!r)
      return makeError(r.error().code(), r.error().message(), locOf(start));
    lhs = r.take();
  }
  return lhs;
}

Expected<Dim> Parser::parseDimUnary(size_t depth) {
  if (is(TokKind::Minus)) {
    consume();
    if (depth + 1 > kMaxNesting)
      return errorHere("dimension expression nests deeper than " + std::to_string(kMaxNesting) + " levels",
                       ErrorCode::ResourceExhausted);
    if (is(TokKind::Int)) {
      auto v = parseIntToken(true);
      if (!v)
        return v.takeError();
      return Dim::constant(*v);
    }
    auto inner = parseDimUnary(depth + 1);
    if (!inner)
      return inner;
    return Dim::neg(*inner);
  }
  return parseDimPrimary(depth);
}

Expected<Dim> Parser::parseDimPrimary(size_t depth) {
  if (is(TokKind::Int)) {
    auto v = parseIntToken(false);
    if (!v)
      return v.takeError();
    return Dim::constant(*v);
  }
  if (is(TokKind::Ident)) {
    if (tok_.text == "x" || parseDType(tok_.text))
      return expected("a dimension (integer, symbol or expression)");
    std::string name = tok_.text;
    consume();
    return Dim::symbol(name);
  }
  if (is(TokKind::LParen)) {
    consume();
    auto inner = parseDimExpr(depth + 1);
    if (!inner)
      return inner;
    if (auto e = expect(TokKind::RParen, "')' to close the dimension expression"))
      return e;
    return inner;
  }
  return expected("a dimension (integer, symbol or expression)");
}

Error Parser::parsePolicy(NumericPolicy &p) {
  bool seenAccum = false, seenRounding = false;
  while (is(TokKind::AtName)) {
    Token at = tok_;
    std::string name = tok_.text;
    consume();
    if (name == "accum" && !seenAccum) {
      seenAccum = true;
      if (auto e = expect(TokKind::LParen, "'(' after @accum"))
        return e;
      std::optional<DType> d = is(TokKind::Ident) ? parseDType(tok_.text) : std::nullopt;
      if (!d)
        return expected("a dtype in @accum(...)");
      consume();
      p.accum = *d;
      if (auto e = expect(TokKind::RParen, "')' after the @accum dtype"))
        return e;
    } else if (name == "rounding" && !seenRounding) {
      seenRounding = true;
      if (auto e = expect(TokKind::LParen, "'(' after @rounding"))
        return e;
      std::optional<Rounding> r = is(TokKind::Ident) ? parseRounding(tok_.text) : std::nullopt;
      if (!r)
        return expected("a rounding mode (nearest_even, toward_zero, up, down, stochastic)");
      consume();
      p.rounding = *r;
      if (auto e = expect(TokKind::RParen, "')' after the rounding mode"))
        return e;
    } else if (name == "saturate" && !p.saturate) {
      p.saturate = true;
    } else if (name == "deterministic" && !p.deterministic) {
      p.deterministic = true;
    } else if (name == "accum" || name == "rounding" || name == "saturate" || name == "deterministic") {
      return errorAt(at, "numeric policy '@" + name + "' given twice");
    } else {
      return errorAt(at, "unknown numeric policy '@" + name +
                             "'; expected @accum(dtype), @rounding(mode), @saturate or @deterministic");
    }
  }
  return Error::success();
}

// type := 'tensor' '<' (dim 'x')* dtype policy* '>'
Expected<TensorType> Parser::parseType() {
  Token start = tok_;
  if (!isIdent("tensor"))
    return expected("a type 'tensor<...>'");
  consume();
  if (auto e = expect(TokKind::LAngle, "'<' after 'tensor'"))
    return e;
  TensorType t;
  for (;;) {
    if (is(TokKind::Ident)) {
      if (auto d = parseDType(tok_.text)) {
        t.dtype = *d;
        consume();
        break;
      }
    }
    if (t.dims.size() == kMaxRank)
      return errorHere("tensor rank exceeds the maximum of " + std::to_string(kMaxRank),
                       ErrorCode::ResourceExhausted);
    if (is(TokKind::RAngle))
      return expected(std::string("an element type (") + kDTypeList + ")");
    Token dimTok = tok_;
    auto d = parseDimExpr();
    if (!d)
      return d.takeError();
    t.dims.push_back(d.take());
    if (!isIdent("x")) {
      if (is(TokKind::RAngle) && t.dims.back().isSymbol())
        return errorAt(dimTok, "unknown element type '" + t.dims.back().symbolName() + "'; expected " + kDTypeList);
      if (is(TokKind::RAngle))
        return expected("'x' and an element type after the last dimension");
      return expected("'x' after a dimension");
    }
    consume();
  }
  if (auto e = parsePolicy(t.policy))
    return e;
  if (auto e = expect(TokKind::RAngle, "'>' to close the tensor type"))
    return e;
  if (auto e = checkType(t, locOf(start), "type " + t.str()))
    return e;
  return t;
}

Expected<Attribute> Parser::parseAttrValue() {
  if (is(TokKind::String)) {
    std::string s = tok_.text;
    consume();
    return Attribute::ofString(std::move(s));
  }
  if (is(TokKind::LBracket)) {
    consume();
    std::vector<int64_t> ints;
    std::vector<double> floats;
    bool anyFloat = false;
    while (!is(TokKind::RBracket)) {
      if (!ints.empty() || !floats.empty())
        if (auto e = expect(TokKind::Comma, "',' or ']' in the list"))
          return e;
      Token elemTok = tok_;
      if (is(TokKind::LBracket))
        return errorHere("nested lists are not supported; list elements must be numbers");
      auto v = parseAttrValue();
      if (!v)
        return v;
      if (v->kind() == AttrKind::Int) {
        ints.push_back(v->getInt());
        floats.push_back(double(v->getInt()));
      } else if (v->kind() == AttrKind::Float) {
        anyFloat = true;
        ints.push_back(0);
        floats.push_back(v->getFloat());
      } else {
        return errorAt(elemTok, "list elements must be numbers, got " + v->str());
      }
    }
    consume();
    return anyFloat ? Attribute::ofFloats(std::move(floats)) : Attribute::ofInts(std::move(ints));
  }
  bool negate = false;
  if (is(TokKind::Minus)) {
    negate = true;
    consume();
  }
  if (is(TokKind::Int)) {
    auto v = parseIntToken(negate);
    if (!v)
      return v.takeError();
    return Attribute::ofInt(*v);
  }
  if (is(TokKind::Float)) {
    errno = 0;
    double v = std::strtod(tok_.text.c_str(), nullptr);
    if (errno == ERANGE && std::isinf(v))
      return errorHere("float " + tok_.text + " is out of range", ErrorCode::ResourceExhausted);
    consume();
    return Attribute::ofFloat(negate ? -v : v);
  }
  if (is(TokKind::Ident)) {
    std::string id = tok_.text;
    if (id == "inf" || id == "nan") {
      consume();
      double v = id == "inf" ? INFINITY : NAN;
      return Attribute::ofFloat(negate ? -v : v);
    }
    if (!negate) {
      if (id == "true" || id == "false") {
        consume();
        return Attribute::ofBool(id == "true");
      }
      if (auto d = parseDType(id)) {
        consume();
        return Attribute::ofDType(*d);
      }
    }
  }
  return expected(negate ? std::string("a number after '-'")
                         : std::string("an attribute value (number, string, true/false, dtype or list)"));
}

// attr-dict := '{' (name '=' value (',' name '=' value)*)? '}'
Error Parser::parseAttrDict(AttrList &attrs) {
  consume(); // '{'
  while (!is(TokKind::RBrace)) {
    if (!attrs.empty())
      if (auto e = expect(TokKind::Comma, "',' or '}' in the attribute list"))
        return e;
    if (!is(TokKind::Ident))
      return expected("an attribute name");
    Token nameTok = tok_;
    std::string name = tok_.text;
    consume();
    if (auto e = expect(TokKind::Equal, "'=' after attribute name '" + name + "'"))
      return e;
    auto v = parseAttrValue();
    if (!v)
      return v.takeError();
    if (attrs.find(name))
      return errorAt(nameTok, "attribute '" + name + "' is given twice");
    attrs.set(name, v.take());
  }
  consume(); // '}'
  return Error::success();
}

// op := results '=' name '(' operands ')' attr-dict? (':' type (',' type)*)? loc?
Error Parser::parseOp(Function &fn, std::map<std::string, SourceLocation> &defined) {
  std::vector<std::pair<std::string, SourceLocation>> resultNames;
  for (;;) {
    if (!is(TokKind::ValueName))
      return expected("a result name like '%y'");
    std::string name = tok_.text;
    SourceLocation l = here();
    if (auto it = defined.find(name); it != defined.end())
      return errorHere("redefinition of value '%" + name + "' (first defined at " + it->second.str() + ")");
    for (auto &r : resultNames)
      if (r.first == name)
        return errorHere("redefinition of value '%" + name + "'");
    resultNames.emplace_back(name, l);
    consume();
    if (!is(TokKind::Comma))
      break;
    consume();
    if (resultNames.size() > 4096)
      return errorHere("too many results (the limit is 4096)", ErrorCode::ResourceExhausted);
  }
  if (auto e = expect(TokKind::Equal, "'=' after the result names"))
    return e;
  if (!is(TokKind::Ident))
    return expected("an op name");
  Token opTok = tok_;
  const OpInfo *info = lookupOp(tok_.text);
  if (!info) {
    std::string msg = "unknown op '" + tok_.text + "'";
    auto similar = similarOpNames(tok_.text);
    if (!similar.empty()) {
      msg += "\nhint: did you mean ";
      for (size_t i = 0; i < similar.size() && i < 3; ++i)
        msg += (i ? " or '" : "'") + similar[i] + "'";
      msg += "?";
    }
    return errorHere(msg);
  }
  consume();
  Operation op;
  op.kind = info->kind;
  op.loc = locOf(opTok);
  if (auto e = expect(TokKind::LParen, std::string("'(' after '") + info->name + "'"))
    return e;
  while (!is(TokKind::RParen)) {
    if (!op.operands.empty())
      if (auto e = expect(TokKind::Comma, "',' or ')' in the operand list"))
        return e;
    if (!is(TokKind::ValueName))
      return expected("an operand like '%x'");
    auto v = fn.findValue(tok_.text);
    if (!v)
      return errorHere("use of undefined value '%" + tok_.text + "'");
    op.operands.push_back(*v);
    consume();
  }
  consume(); // ')'
  if (is(TokKind::LBrace))
    if (auto e = parseAttrDict(op.attrs))
      return e;
  if (is(TokKind::Colon)) {
    consume();
    for (;;) {
      auto t = parseType();
      if (!t)
        return t.takeError();
      op.annotations.push_back(t.take());
      if (!is(TokKind::Comma))
        break;
      consume();
    }
  }
  if (isIdent("loc")) {
    consume();
    if (auto e = expect(TokKind::LParen, "'(' after 'loc'"))
      return e;
    if (!is(TokKind::String))
      return expected("a file name string in loc(\"file\":line:col)");
    SourceLocation l;
    l.file = tok_.text;
    consume();
    if (auto e = expect(TokKind::Colon, "':' after the file name in loc(...)"))
      return e;
    for (uint32_t *field : {&l.line, &l.column}) {
      if (!is(TokKind::Int))
        return expected("a line and column number in loc(\"file\":line:col)");
      auto v = parseIntToken(false);
      if (!v)
        return v.takeError();
      if (*v > UINT32_MAX)
        return errorHere("location number too large", ErrorCode::ResourceExhausted);
      *field = uint32_t(*v);
      if (field == &l.line)
        if (auto e = expect(TokKind::Colon, "':' between line and column in loc(...)"))
          return e;
    }
    if (auto e = expect(TokKind::RParen, "')' to close loc(...)"))
      return e;
    op.loc = l;
    op.explicitLoc = true;
  }
  if (fn.ops.size() >= kMaxOpsPerFunction)
    return errorAt(opTok, "function has more than " + std::to_string(kMaxOpsPerFunction) + " ops (the limit)",
                   ErrorCode::ResourceExhausted);
  int32_t opIndex = int32_t(fn.ops.size());
  for (size_t i = 0; i < resultNames.size(); ++i) {
    op.results.push_back(fn.addValue(resultNames[i].first, TensorType(), opIndex, uint32_t(i)));
    defined.emplace(resultNames[i].first, resultNames[i].second);
  }
  fn.ops.push_back(std::move(op));
  return Error::success();
}

// func := 'func' '@'name '(' params? ')' '->' results '{' op* 'return' values '}'
Expected<Function> Parser::parseFunction() {
  Function fn;
  fn.loc = here();
  consume(); // 'func'
  if (!is(TokKind::AtName))
    return expected("a function name like '@main'");
  fn.name = tok_.text;
  consume();
  if (auto e = expect(TokKind::LParen, "'(' to open the parameter list"))
    return e;
  std::map<std::string, SourceLocation> defined;
  while (!is(TokKind::RParen)) {
    if (!fn.params.empty())
      if (auto e = expect(TokKind::Comma, "',' or ')' in the parameter list"))
        return e;
    if (!is(TokKind::ValueName))
      return expected("a parameter like '%x: tensor<...>'");
    std::string name = tok_.text;
    if (auto it = defined.find(name); it != defined.end())
      return errorHere("duplicate parameter '%" + name + "'");
    defined.emplace(name, here());
    consume();
    if (auto e = expect(TokKind::Colon, "':' after parameter '%" + name + "'"))
      return e;
    auto t = parseType();
    if (!t)
      return t.takeError();
    fn.params.push_back(fn.addValue(name, t.take(), -1, uint32_t(fn.params.size())));
  }
  consume(); // ')'
  if (auto e = expect(TokKind::Arrow, "'->' and the result types"))
    return e;
  if (is(TokKind::LParen)) {
    consume();
    for (;;) {
      auto t = parseType();
      if (!t)
        return t.takeError();
      fn.resultTypes.push_back(t.take());
      if (!is(TokKind::Comma))
        break;
      consume();
    }
    if (auto e = expect(TokKind::RParen, "')' to close the result types"))
      return e;
  } else {
    auto t = parseType();
    if (!t)
      return t.takeError();
    fn.resultTypes.push_back(t.take());
  }
  if (auto e = expect(TokKind::LBrace, "'{' to open the function body"))
    return e;
  for (;;) {
    if (isIdent("return")) {
      fn.returnLoc = here();
      consume();
      for (;;) {
        if (!is(TokKind::ValueName))
          return expected("a returned value like '%y'");
        auto v = fn.findValue(tok_.text);
        if (!v)
          return errorHere("use of undefined value '%" + tok_.text + "'");
        fn.returns.push_back(*v);
        consume();
        if (!is(TokKind::Comma))
          break;
        consume();
      }
      if (auto e = expect(TokKind::RBrace, "'}' after return (return must be the last statement)"))
        return e;
      return fn;
    }
    if (is(TokKind::RBrace) || is(TokKind::Eof))
      return errorHere("function @" + fn.name + " has no 'return'");
    if (auto e = parseOp(fn, defined))
      return e;
  }
}

Expected<Module> Parser::parseModule() {
  Module m;
  while (!is(TokKind::Eof)) {
    if (!isIdent("func"))
      return expected("'func' at top level");
    auto f = parseFunction();
    if (!f)
      return f.takeError();
    m.functions.push_back(f.take());
  }
  return m;
}

} // namespace

Expected<Module> parseModuleUnchecked(std::string_view text, const std::string &sourceName) {
  if (text.size() > kMaxTextBytes)
    return makeError(ErrorCode::ResourceExhausted,
                     "input is " + std::to_string(text.size()) + " bytes; the limit is " +
                         std::to_string(kMaxTextBytes),
                     SourceLocation{sourceName, 1, 1});
  Parser p(text, sourceName.empty() ? "<input>" : sourceName);
  return p.parseModule();
}

Expected<Module> parseModule(std::string_view text, const std::string &sourceName) {
  auto m = parseModuleUnchecked(text, sourceName);
  if (!m)
    return m;
  if (auto e = shape::verifyAndInfer(*m))
    return e;
  return m;
}

Expected<Dim> parseDim(std::string_view text) {
  if (text.size() > 4096)
    return makeError(ErrorCode::ResourceExhausted, "dimension expression longer than 4096 characters");
  Parser p(text, "<dim>");
  auto d = p.parseDimExpr();
  if (!d)
    return d;
  if (auto e = p.expectEof())
    return e;
  return d;
}

Expected<TensorType> parseType(std::string_view text) {
  if (text.size() > 65536)
    return makeError(ErrorCode::ResourceExhausted, "type text longer than 65536 characters");
  Parser p(text, "<type>");
  auto t = p.parseType();
  if (!t)
    return t;
  if (auto e = p.expectEof())
    return e;
  return t;
}

} // namespace tessera::text
