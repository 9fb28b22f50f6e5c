#include "HostData.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace tessera::cli {

size_t HostArray::count() const {
  size_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<size_t>(d);
  return n;
}

bool convertArray(const HostArray &in, tessera_dtype_t to, HostArray &out, std::string &error) {
  out.dtype = to;
  out.shape = in.shape;
  size_t n = in.count(), size = dtypeSize(to);
  if (in.dtype == to) {
    out.bytes = in.bytes;
    return true;
  }
  if (!isFloatDType(to) || !isFloatDType(in.dtype)) {
    error = std::string("cannot convert ") + dtypeName(in.dtype) + " data to " + dtypeName(to);
    return false;
  }
  out.bytes.assign(n * size, 0);
  for (size_t i = 0; i < n; ++i)
    storeElement(to, in.at(i), out.bytes.data() + i * size);
  return true;
}

namespace {

struct NpyType {
  const char *descr;
  tessera_dtype_t dtype;
};
constexpr NpyType kNpyTypes[] = {
    {"<f8", TESSERA_DTYPE_F64}, {"<f4", TESSERA_DTYPE_F32}, {"<f2", TESSERA_DTYPE_F16}, {"<i8", TESSERA_DTYPE_I64},
    {"<i4", TESSERA_DTYPE_I32}, {"<i2", TESSERA_DTYPE_I16}, {"|i1", TESSERA_DTYPE_I8},  {"|u1", TESSERA_DTYPE_U8},
    {"|b1", TESSERA_DTYPE_BOOL}};

// The value text of 'key' in the header dict, e.g. "'<f4'" or "(2, 3)".
std::string dictValue(const std::string &header, const std::string &key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos)
    return {};
  size_t colon = header.find(':', k);
  if (colon == std::string::npos)
    return {};
  size_t b = header.find_first_not_of(' ', colon + 1);
  if (b == std::string::npos)
    return {};
  size_t e = header[b] == '(' ? header.find(')', b) + 1 : header.find_first_of(",}", b);
  return header.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

} // namespace

bool readNpy(const std::string &path, HostArray &out, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "'";
    return false;
  }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 10 || data.compare(0, 6, "\x93NUMPY") != 0) {
    error = "'" + path + "' is not a NumPy .npy file";
    return false;
  }
  uint8_t major = static_cast<uint8_t>(data[6]);
  size_t headerLen = 0, start = 0;
  if (major == 1) {
    headerLen = static_cast<uint8_t>(data[8]) | static_cast<uint8_t>(data[9]) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (data.size() < 12) {
      error = "'" + path + "': truncated header";
      return false;
    }
    for (int i = 0; i < 4; ++i)
      headerLen |= static_cast<size_t>(static_cast<uint8_t>(data[8 + i])) << (8 * i);
    start = 12;
  } else {
    error = "'" + path + "': unsupported .npy version " + std::to_string(major);
    return false;
  }
  if (start + headerLen > data.size()) {
    error = "'" + path + "': truncated header";
    return false;
  }
  std::string header = data.substr(start, headerLen);
  std::string descr = dictValue(header, "descr"), order = dictValue(header, "fortran_order"),
              shape = dictValue(header, "shape");
  if (descr.size() >= 2)
    descr = descr.substr(1, descr.size() - 2);
  if (descr == "=f8" || descr == "=f4" || descr == "=f2" || descr == "=i8" || descr == "=i4" || descr == "=i2")
    descr[0] = '<';
  if (descr == "<i1" || descr == "<u1" || descr == "<b1")
    descr[0] = '|';
  bool known = false;
  for (const NpyType &t : kNpyTypes)
    if (descr == t.descr) {
      out.dtype = t.dtype;
      known = true;
    }
  if (!known) {
    error = "'" + path + "': unsupported dtype '" + descr + "' (supported: f8 f4 f2 i8 i4 i2 i1 u1 b1, little-endian)";
    return false;
  }
  if (order != "False") {
    error = "'" + path + "': Fortran-order arrays are not supported (save with numpy.ascontiguousarray)";
    return false;
  }
  out.shape.clear();
  if (shape.size() < 2 || shape.front() != '(') {
    error = "'" + path + "': bad shape in header";
    return false;
  }
  std::stringstream dims(shape.substr(1, shape.size() - 2));
  std::string item;
  while (std::getline(dims, item, ',')) {
    size_t b = item.find_first_not_of(' ');
    if (b == std::string::npos)
      continue;
    char *end = nullptr;
    long long v = std::strtoll(item.c_str() + b, &end, 10);
    if (v < 0 || (*end != '\0' && *end != ' ' && *end != 'L')) {
      error = "'" + path + "': bad shape in header";
      return false;
    }
    out.shape.push_back(v);
  }
  size_t bytes = out.count() * dtypeSize(out.dtype), body = start + headerLen;
  if (data.size() - body != bytes) {
    error = "'" + path + "': expected " + std::to_string(bytes) + " data bytes, found " +
            std::to_string(data.size() - body);
    return false;
  }
  out.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(body), data.end());
  return true;
}

bool writeNpy(const std::string &path, const HostArray &array, std::string &error) {
  HostArray written = array;
  const char *descr = nullptr;
  for (const NpyType &t : kNpyTypes)
    if (t.dtype == array.dtype)
      descr = t.descr;
  if (!descr) { // bf16, fp8: float32 holds them exactly
    if (!convertArray(array, TESSERA_DTYPE_F32, written, error))
      return false;
    descr = "<f4";
  }
  std::string shape = "(";
  for (size_t i = 0; i < written.shape.size(); ++i)
    shape += std::to_string(written.shape[i]) + (written.shape.size() == 1 || i + 1 < written.shape.size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) {
    error = "cannot write '" + path + "'";
    return false;
  }
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
  out.write(len, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char *>(written.bytes.data()), static_cast<std::streamsize>(written.bytes.size()));
  if (!out) {
    error = "cannot write '" + path + "'";
    return false;
  }
  return true;
}

HostArray randomArray(tessera_dtype_t dtype, const std::vector<int64_t> &shape, uint64_t seed) {
  HostArray a;
  a.dtype = dtype;
  a.shape = shape;
  size_t n = a.count(), size = dtypeSize(dtype);
  a.bytes.assign(n * size, 0);
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
  auto next = [&state]() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  double scale = shape.size() >= 2 && shape[shape.size() - 2] > 0
                     ? 1.0 / std::sqrt(static_cast<double>(shape[shape.size() - 2]))
                     : 1.0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t r = next();
    double v;
    if (isFloatDType(dtype))
      v = (static_cast<double>(r >> 11) * 0x1.0p-53 * 2.0 - 1.0) * scale;
    else if (dtype == TESSERA_DTYPE_BOOL)
      v = static_cast<double>(r & 1);
    else
      v = static_cast<double>(r % 8);
    storeElement(dtype, v, a.bytes.data() + i * size);
  }
  return a;
}

namespace {

// Recursive descent over + - * / // ( ) integers and symbols.
class DimParser {
public:
  DimParser(const std::string &text, const std::map<std::string, int64_t> &symbols)
      : s_(text), symbols_(symbols) {}
  bool parse(int64_t &out, std::string &error) {
    if (!sum(out))
      return (error = error_), false;
    skip();
    if (pos_ != s_.size())
      return (error = "unexpected '" + s_.substr(pos_) + "' in '" + s_ + "'"), false;
    return true;
  }

private:
  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ')
      ++pos_;
  }
  bool fail(std::string m) {
    if (error_.empty())
      error_ = std::move(m);
    return false;
  }
  bool sum(int64_t &v) {
    if (!product(v))
      return false;
    while (true) {
      skip();
      if (pos_ >= s_.size() || (s_[pos_] != '+' && s_[pos_] != '-'))
        return true;
      char op = s_[pos_++];
      int64_t r;
      if (!product(r))
        return false;
      v = op == '+' ? v + r : v - r;
    }
  }
  bool product(int64_t &v) {
    if (!atom(v))
      return false;
    while (true) {
      skip();
      if (pos_ >= s_.size() || (s_[pos_] != '*' && s_[pos_] != '/'))
        return true;
      bool floor = s_.compare(pos_, 2, "//") == 0;
      char op = s_[pos_];
      pos_ += floor ? 2 : 1;
      int64_t r;
      if (!atom(r))
        return false;
      if (op == '*') {
        v *= r;
      } else if (r == 0) {
        return fail("division by zero in '" + s_ + "'");
      } else if (floor) {
        int64_t q = v / r;
        v = (v % r != 0 && ((v < 0) != (r < 0))) ? q - 1 : q;
      } else {
        if (v % r != 0)
          return fail("'" + s_ + "': " + std::to_string(v) + " is not divisible by " + std::to_string(r));
        v /= r;
      }
    }
  }
  bool atom(int64_t &v) {
    skip();
    if (pos_ >= s_.size())
      return fail("unexpected end of '" + s_ + "'");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      if (!sum(v))
        return false;
      skip();
      if (pos_ >= s_.size() || s_[pos_] != ')')
        return fail("missing ')' in '" + s_ + "'");
      ++pos_;
      return true;
    }
    if (c == '-') {
      ++pos_;
      if (!atom(v))
        return false;
      v = -v;
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t b = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_])))
        ++pos_;
      v = std::stoll(s_.substr(b, pos_ - b));
      return true;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        ++pos_;
      std::string name = s_.substr(b, pos_ - b);
      auto it = symbols_.find(name);
      if (it == symbols_.end())
        return fail("symbol '" + name + "' has no value (give it with --bind " + name + "=N)");
      v = it->second;
      return true;
    }
    return fail("unexpected '" + std::string(1, c) + "' in '" + s_ + "'");
  }

  const std::string &s_;
  const std::map<std::string, int64_t> &symbols_;
  size_t pos_ = 0;
  std::string error_;
};

} // namespace

bool evalDim(const std::string &expr, const std::map<std::string, int64_t> &symbols, int64_t &out,
             std::string &error) {
  return DimParser(expr, symbols).parse(out, error);
}

bool parseBindList(const std::string &text, std::map<std::string, int64_t> &out, std::string &error) {
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t eq = item.find('=');
    std::string name = item.substr(0, eq);
    while (!name.empty() && name.back() == ' ')
      name.pop_back();
    while (!name.empty() && name.front() == ' ')
      name.erase(0, 1);
    char *end = nullptr;
    long long v = eq == std::string::npos ? -1 : std::strtoll(item.c_str() + eq + 1, &end, 10);
    if (name.empty() || eq == std::string::npos || v < 0 || end == item.c_str() + eq + 1 || *end != '\0') {
      error = "bad binding '" + item + "' (expected NAME=VALUE with VALUE >= 0, e.g. B=8)";
      return false;
    }
    out[name] = v;
  }
  return true;
}

} // namespace tessera::cli
