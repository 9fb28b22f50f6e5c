// Comma-separated lists as the ABI spells them ("attention", "tile,target").
#ifndef TESSERA_SUPPORT_STRINGLIST_H
#define TESSERA_SUPPORT_STRINGLIST_H

#include <string>
#include <string_view>
#include <vector>

namespace tessera {

// The items of `text` split at commas, each trimmed of blanks; empty items
// are dropped ("a, ,b" -> {"a", "b"}).
std::vector<std::string> splitCommaList(std::string_view text);

} // namespace tessera

#endif // TESSERA_SUPPORT_STRINGLIST_H
