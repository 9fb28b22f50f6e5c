// Parser for the .tsr text format (grammar in docs/ir.md).
#ifndef TESSERA_TEXT_PARSER_H
#define TESSERA_TEXT_PARSER_H

#include "ir/Module.h"
#include "support/Error.h"

#include <string>
#include <string_view>

namespace tessera::text {

// Limits (docs/ir.md); exceeding them is ResourceExhausted.
inline constexpr size_t kMaxNesting = 64;          // parentheses in dim expressions
inline constexpr size_t kMaxTextBytes = 256u << 20; // input size
inline constexpr size_t kMaxOpsPerFunction = 1u << 20;

// Parses, verifies and infers shapes. Errors: "file:line:col: error: ...".
Expected<ir::Module> parseModule(std::string_view text, const std::string &sourceName = "<input>");
// Parses only (no verification or inference).
Expected<ir::Module> parseModuleUnchecked(std::string_view text, const std::string &sourceName = "<input>");

// A lone dim expression ("S*2", "D/H", "(H - 1)//2 + 1") or type
// ("tensor<B x 4 x f32>"), e.g. for the builder API.
Expected<ir::Dim> parseDim(std::string_view text);
Expected<ir::TensorType> parseType(std::string_view text);

} // namespace tessera::text

#endif // TESSERA_TEXT_PARSER_H
