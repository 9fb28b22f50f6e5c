#include "support/StringList.h"

namespace tessera {

std::vector<std::string> splitCommaList(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos)
      comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    size_t b = item.find_first_not_of(" \t\n"), e = item.find_last_not_of(" \t\n");
    if (b != std::string_view::npos)
      out.emplace_back(item.substr(b, e - b + 1));
    pos = comma + 1;
  }
  return out;
}

} // namespace tessera
