#include "schedule/Key.h"

#include <cctype>
#include <cstdio>

namespace tessera::sched {

std::string hashHex(const std::string &bytes) {
  uint64_t h = 14695981039346656037ull; // FNV-1a 64-bit offset basis
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull; // FNV prime
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string structuralText(const schedule::Program &program, size_t kernel) {
  schedule::Program one;
  one.symbols = program.symbols;
  schedule::Kernel k = program.kernels.at(kernel);
  k.knobs.clear();
  k.name = "k";
  one.kernels.push_back(std::move(k));
  return schedule::printProgram(one);
}

std::string structuralHash(const schedule::Program &program, size_t kernel) {
  return hashHex(structuralText(program, kernel));
}

std::string TargetKey::str() const {
  return plugin + "@" + pluginVersion + "|" + architecture + "|" + features + "|O" + std::to_string(optLevel);
}

std::string tuningKey(const schedule::Program &program, size_t kernel, const std::vector<int64_t> *scalars,
                      const TargetKey &target) {
  const schedule::Kernel &k = program.kernels.at(kernel);
  std::string shapes;
  for (const schedule::Operand &o : k.operands) {
    shapes += std::string(schedule::dtypeName(o.dtype)) + "[";
    for (size_t d = 0; d < o.shape.size(); ++d) {
      if (d)
        shapes += ",";
      if (scalars && scalars->size() >= program.symbols.size())
        shapes += std::to_string(schedule::evalIndex(o.shape[d], scalars->data(), nullptr, nullptr, nullptr));
      else
        shapes += schedule::printIndex(o.shape[d]);
    }
    shapes += "]";
  }
  return structuralHash(program, kernel) + "|" + shapes + "|" + target.str();
}

std::string printKnobs(const Knobs &knobs) {
  std::string out;
  for (const auto &[key, value] : knobs) {
    if (!out.empty())
      out += " ";
    out += key + "=";
    if (auto *i = std::get_if<int64_t>(&value)) {
      out += std::to_string(*i);
    } else if (auto *l = std::get_if<std::vector<int64_t>>(&value)) {
      out += "[";
      for (size_t j = 0; j < l->size(); ++j)
        out += (j ? ", " : "") + std::to_string((*l)[j]);
      out += "]";
    } else {
      out += "\"" + std::get<std::string>(value) + "\"";
    }
  }
  return out;
}

namespace {

bool parseInt(const std::string &s, size_t &pos, int64_t &out) {
  size_t start = pos;
  if (pos < s.size() && s[pos] == '-')
    ++pos;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
    ++pos;
  if (pos == start || (pos == start + 1 && s[start] == '-') || pos - start > 18)
    return false;
  out = std::stoll(s.substr(start, pos - start));
  return true;
}

} // namespace

std::optional<Knobs> parseKnobs(const std::string &text) {
  Knobs out;
  size_t pos = 0;
  auto skip = [&] {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t'))
      ++pos;
  };
  while (true) {
    skip();
    if (pos >= text.size())
      return out;
    size_t start = pos;
    while (pos < text.size() && (std::isalnum(static_cast<unsigned char>(text[pos])) || text[pos] == '_'))
      ++pos;
    if (pos == start || pos >= text.size() || text[pos] != '=')
      return std::nullopt;
    std::string key = text.substr(start, pos - start);
    ++pos;
    if (pos < text.size() && text[pos] == '"') {
      size_t end = text.find('"', pos + 1);
      if (end == std::string::npos)
        return std::nullopt;
      out[key] = text.substr(pos + 1, end - pos - 1);
      pos = end + 1;
    } else if (pos < text.size() && text[pos] == '[') {
      ++pos;
      std::vector<int64_t> list;
      while (true) {
        skip();
        if (pos < text.size() && text[pos] == ']') {
          ++pos;
          break;
        }
        int64_t v = 0;
        if (!parseInt(text, pos, v))
          return std::nullopt;
        list.push_back(v);
        skip();
        if (pos < text.size() && text[pos] == ',')
          ++pos;
      }
      out[key] = list;
    } else {
      int64_t v = 0;
      if (!parseInt(text, pos, v))
        return std::nullopt;
      out[key] = v;
    }
  }
}

} // namespace tessera::sched
