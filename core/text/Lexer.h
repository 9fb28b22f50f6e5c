// Tokens of the .tsr text format.
#ifndef TESSERA_TEXT_LEXER_H
#define TESSERA_TEXT_LEXER_H

#include "support/Error.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::text {

enum class TokKind : uint8_t {
  Eof,
  Ident,     // func, return, tensor, loc, x, f32, true, names
  ValueName, // %x       (text without '%')
  AtName,    // @mlp, @accum (text without '@')
  Int,       // 123
  Float,     // 1.5, 1e-5
  String,    // "..."   (text is the decoded contents)
  LParen, RParen, LBrace, RBrace, LAngle, RAngle, LBracket, RBracket,
  Comma, Colon, Equal, Arrow, Plus, Minus, Star, Slash, SlashSlash,
  Error,     // text holds the message
};

struct Token {
  TokKind kind = TokKind::Eof;
  std::string text;
  uint32_t line = 1;
  uint32_t column = 1;
};

// How a token reads in diagnostics: "'foo'", "end of file".
std::string describe(const Token &tok);

class Lexer {
public:
  explicit Lexer(std::string_view text) : text_(text) {}
  Token next();

private:
  std::string_view text_;
  size_t pos_ = 0;
  uint32_t line_ = 1, col_ = 1;

  char peek(size_t off = 0) const { return pos_ + off < text_.size() ? text_[pos_ + off] : '\0'; }
  void advance();
  void skipSpaceAndComments();
};

} // namespace tessera::text

#endif // TESSERA_TEXT_LEXER_H
