#include "text/Lexer.h"

#include <cctype>

namespace tessera::text {

std::string describe(const Token &tok) {
  switch (tok.kind) {
  case TokKind::Eof: return "end of file";
  case TokKind::ValueName: return "'%" + tok.text + "'";
  case TokKind::AtName: return "'@" + tok.text + "'";
  case TokKind::String: return "string \"" + tok.text.substr(0, 40) + (tok.text.size() > 40 ? "...\"" : "\"");
  case TokKind::Error: return "invalid input";
  default: {
    std::string t = tok.text.size() > 40 ? tok.text.substr(0, 40) + "..." : tok.text;
    return "'" + t + "'";
  }
  }
}

void Lexer::advance() {
  if (pos_ >= text_.size())
    return;
  if (text_[pos_] == '\n') {
    ++line_;
    col_ = 1;
  } else {
    ++col_;
  }
  ++pos_;
}

void Lexer::skipSpaceAndComments() {
  for (;;) {
    char c = peek();
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      advance();
    } else if (c == '#') {
      while (pos_ < text_.size() && peek() != '\n')
        advance();
    } else {
      return;
    }
  }
}

static bool isIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
static bool isIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

Token Lexer::next() {
  skipSpaceAndComments();
  Token tok;
  tok.line = line_;
  tok.column = col_;
  if (pos_ >= text_.size()) {
    tok.kind = TokKind::Eof;
    return tok;
  }
  char c = peek();
  auto single = [&](TokKind k) {
    tok.kind = k;
    tok.text = std::string(1, c);
    advance();
    return tok;
  };
  if (isIdentStart(c)) {
    size_t start = pos_;
    // '.' is allowed inside names but not in identifiers like "x" separators;
    // dims never contain '.', so this is unambiguous.
    while (isIdentChar(peek()))
      advance();
    tok.kind = TokKind::Ident;
    tok.text = std::string(text_.substr(start, pos_ - start));
    return tok;
  }
  if (c == '%' || c == '@') {
    advance();
    size_t start = pos_;
    while (isIdentChar(peek()) || (c == '%' && peek() == '$'))
      advance();
    if (pos_ == start) {
      tok.kind = TokKind::Error;
      tok.text = std::string("expected a name after '") + c + "'";
      return tok;
    }
    tok.kind = c == '%' ? TokKind::ValueName : TokKind::AtName;
    tok.text = std::string(text_.substr(start, pos_ - start));
    return tok;
  }
  if (std::isdigit(static_cast<unsigned char>(c))) {
    size_t start = pos_;
    bool isFloat = false;
    while (std::isdigit(static_cast<unsigned char>(peek())))
      advance();
    if (peek() == '.' && std::isdigit(static_cast<unsigned char>(peek(1)))) {
      isFloat = true;
      advance();
      while (std::isdigit(static_cast<unsigned char>(peek())))
        advance();
    }
    if ((peek() == 'e' || peek() == 'E') &&
        (std::isdigit(static_cast<unsigned char>(peek(1))) ||
         ((peek(1) == '-' || peek(1) == '+') && std::isdigit(static_cast<unsigned char>(peek(2)))))) {
      isFloat = true;
      advance();
      if (peek() == '-' || peek() == '+')
        advance();
      while (std::isdigit(static_cast<unsigned char>(peek())))
        advance();
    }
    tok.kind = isFloat ? TokKind::Float : TokKind::Int;
    tok.text = std::string(text_.substr(start, pos_ - start));
    return tok;
  }
  if (c == '"') {
    advance();
    std::string out;
    for (;;) {
      char d = peek();
      if (pos_ >= text_.size() || d == '\n') {
        tok.kind = TokKind::Error;
        tok.text = "unterminated string";
        return tok;
      }
      advance();
      if (d == '"')
        break;
      if (d != '\\') {
        out += d;
        continue;
      }
      char e = peek();
      advance();
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'x': {
        auto hex = [](char h) {
          return std::isxdigit(static_cast<unsigned char>(h)) ? (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10)) : -1;
        };
        int hi = hex(peek()), lo = hex(peek(1));
        if (hi < 0 || lo < 0) {
          tok.kind = TokKind::Error;
          tok.text = "invalid \\x escape in string";
          return tok;
        }
        advance();
        advance();
        out += char(hi * 16 + lo);
        break;
      }
      default:
        tok.kind = TokKind::Error;
        tok.text = std::string("invalid escape '\\") + e + "' in string";
        return tok;
      }
    }
    tok.kind = TokKind::String;
    tok.text = std::move(out);
    return tok;
  }
  switch (c) {
  case '(': return single(TokKind::LParen);
  case ')': return single(TokKind::RParen);
  case '{': return single(TokKind::LBrace);
  case '}': return single(TokKind::RBrace);
  case '<': return single(TokKind::LAngle);
  case '>': return single(TokKind::RAngle);
  case '[': return single(TokKind::LBracket);
  case ']': return single(TokKind::RBracket);
  case ',': return single(TokKind::Comma);
  case ':': return single(TokKind::Colon);
  case '=': return single(TokKind::Equal);
  case '+': return single(TokKind::Plus);
  case '*': return single(TokKind::Star);
  case '-':
    if (peek(1) == '>') {
      advance();
      advance();
      tok.kind = TokKind::Arrow;
      tok.text = "->";
      return tok;
    }
    return single(TokKind::Minus);
  case '/':
    if (peek(1) == '/') {
      advance();
      advance();
      tok.kind = TokKind::SlashSlash;
      tok.text = "//";
      return tok;
    }
    return single(TokKind::Slash);
  default:
    break;
  }
  tok.kind = TokKind::Error;
  unsigned char uc = static_cast<unsigned char>(c);
  if (uc >= 0x20 && uc < 0x7f) {
    tok.text = std::string("unexpected character '") + c + "'";
  } else {
    char buf[48];
    std::snprintf(buf, sizeof buf, "unexpected byte 0x%02x", uc);
    tok.text = buf;
  }
  advance();
  return tok;
}

} // namespace tessera::text
