#include "Npy.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace tessera::ref::npy {

namespace {

Error corrupt(const std::string &path, const std::string &what) {
  return makeError(ErrorCode::CorruptData, path + ": not a valid .npy file: " + what);
}

// The value text of `key` in the header dict, up to the next top-level ',' or
// '}' (tuples kept whole).
bool headerField(const std::string &header, const std::string &key, std::string &out) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos)
    return false;
  size_t colon = header.find(':', k);
  if (colon == std::string::npos)
    return false;
  size_t i = colon + 1;
  int depth = 0;
  std::string v;
  for (; i < header.size(); ++i) {
    char c = header[i];
    if (c == '(')
      ++depth;
    if (c == ')')
      --depth;
    if (depth == 0 && (c == ',' || c == '}'))
      break;
    v += c;
  }
  size_t b = v.find_first_not_of(" "), e = v.find_last_not_of(" ");
  out = b == std::string::npos ? "" : v.substr(b, e - b + 1);
  return true;
}

} // namespace

Expected<RefTensor> read(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return makeError(ErrorCode::IOError, "cannot open " + path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return corrupt(path, "bad magic");
  uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return corrupt(path, "truncated header");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    return corrupt(path, "unknown version " + std::to_string(major));
  }
  if (bytes.size() < offset + headerLen)
    return corrupt(path, "truncated header");
  std::string header = bytes.substr(offset, headerLen);
  std::string descr, fortran, shapeText;
  if (!headerField(header, "descr", descr) || !headerField(header, "fortran_order", fortran) ||
      !headerField(header, "shape", shapeText))
    return corrupt(path, "header lacks descr/fortran_order/shape");
  if (fortran != "False")
    return makeError(ErrorCode::Unsupported, path + ": Fortran-order arrays are not supported");
  if (descr.size() < 2)
    return corrupt(path, "bad descr " + descr);
  descr = descr.substr(1, descr.size() - 2); // strip quotes
  struct Kind {
    const char *descr;
    DType dtype;
    size_t size;
  };
  static const Kind kKinds[] = {
      {"<f8", DType::F64, 8}, {"<f4", DType::F32, 4}, {"<f2", DType::F16, 2}, {"<i8", DType::I64, 8},
      {"<i4", DType::I32, 4}, {"<i2", DType::I16, 2}, {"|i1", DType::I8, 1},  {"|u1", DType::U8, 1},
      {"|b1", DType::Bool, 1},
  };
  const Kind *kind = nullptr;
  for (const Kind &k : kKinds)
    if (descr == k.descr)
      kind = &k;
  if (!kind)
    return makeError(ErrorCode::Unsupported, path + ": dtype '" + descr + "' is not supported");
  Shape shape;
  {
    // "(2, 3)", "(4,)", "()"
    std::string s;
    for (char c : shapeText)
      s += (c == '(' || c == ')' || c == ',') ? ' ' : c;
    std::istringstream ss(s);
    std::string tok;
    while (ss >> tok) {
      char *end = nullptr;
      long long d = std::strtoll(tok.c_str(), &end, 10);
      if (*end != '\0' || d < 0)
        return corrupt(path, "bad shape " + shapeText);
      shape.push_back(d);
    }
  }
  Expected<int64_t> n = checkedNumElements(shape);
  if (!n)
    return n.takeError();
  size_t dataOffset = offset + headerLen;
  if (bytes.size() - dataOffset != static_cast<size_t>(*n) * kind->size)
    return corrupt(path, "data size does not match shape " + shapeString(shape));
  std::vector<double> values(static_cast<size_t>(*n));
  for (int64_t i = 0; i < *n; ++i) {
    uint64_t bits = 0;
    for (size_t b = 0; b < kind->size; ++b)
      bits |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[dataOffset + i * kind->size + b])) << (8 * b);
    values[i] = fromBits(bits, kind->dtype);
  }
  return RefTensor(kind->dtype, shape, std::move(values));
}

Error write(const std::string &path, const RefTensor &t) {
  std::string shapeText = "(";
  for (size_t i = 0; i < t.shape.size(); ++i)
    shapeText += std::to_string(t.shape[i]) + (t.shape.size() == 1 ? "," : (i + 1 < t.shape.size() ? ", " : ""));
  shapeText += ")";
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shapeText + ", }";
  // Pad with spaces so magic + lengths + header + '\n' is a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out)
    return makeError(ErrorCode::IOError, "cannot write " + path);
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {static_cast<char>(header.size() & 0xFF), static_cast<char>((header.size() >> 8) & 0xFF)};
  out.write(len, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (double v : t.data) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = static_cast<char>((bits >> (8 * i)) & 0xFF);
    out.write(b, 8);
  }
  if (!out)
    return makeError(ErrorCode::IOError, "error writing " + path);
  return Error::success();
}

} // namespace tessera::ref::npy
