// Serialized CPU executables (see ObjectCode.h).
#include "ObjectCode.h"

#include <cstring>

namespace tessera::cpu {

namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'C', 'P', 'U', 'J', '1'};

// No allocation may exceed the input, so bogus lengths fail as truncation
// before anything is reserved.
class Reader {
public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  bool u32(uint32_t *v) { return raw(v, 4); }
  bool u64(uint64_t *v) { return raw(v, 8); }
  bool str(std::string *s) {
    uint32_t n;
    return u32(&n) && take(n, s);
  }
  bool blob(std::string *s) {
    uint64_t n;
    return u64(&n) && take(n, s);
  }
  size_t left() const { return bytes_.size() - pos_; }

private:
  bool raw(void *v, size_t n) {
    if (left() < n)
      return false;
    std::memcpy(v, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool take(uint64_t n, std::string *s) {
    if (left() < n)
      return false;
    s->assign(bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
};

void putU32(std::string &out, uint32_t v) { out.append(reinterpret_cast<const char *>(&v), 4); }
void putU64(std::string &out, uint64_t v) { out.append(reinterpret_cast<const char *>(&v), 8); }
void putStr(std::string &out, const std::string &s) {
  putU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}
void putBlob(std::string &out, const std::string &s) {
  putU64(out, s.size());
  out += s;
}

} // namespace

uint64_t checksum(const void *data, size_t size) {
  const auto *p = static_cast<const unsigned char *>(data);
  uint64_t h = 1469598103934665603ull ^ size;
  auto mix = [&h](uint64_t w) {
    h ^= w;
    h *= 1099511628211ull;
    h ^= h >> 29; // carries high bits down, so differences in two words do not cancel
  };
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  for (; i < size; ++i)
    mix(p[i]);
  return h;
}

std::string encodeExecutable(const SerializedExecutable &exe) {
  const ObjectImage &img = exe.image;
  size_t size = 256 + exe.scheduleText.size();
  for (const std::string &o : img.objects)
    size += 8 + o.size();
  std::string out;
  out.reserve(size);
  out.append(kMagic, sizeof(kMagic));
  putU32(out, kExecutableFormatVersion);
  putU32(out, exe.optLevel);
  putStr(out, exe.target.architecture);
  putStr(out, exe.target.cpu);
  putStr(out, exe.target.features);
  putBlob(out, exe.scheduleText);
  putStr(out, img.llvmVersion);
  putStr(out, img.triple);
  putStr(out, img.dataLayout);
  putStr(out, img.microSymbol);
  putU32(out, static_cast<uint32_t>(img.mr));
  putU32(out, static_cast<uint32_t>(img.nr));
  putU32(out, static_cast<uint32_t>(img.kernels.size()));
  for (const ObjectImage::Kernel &k : img.kernels) {
    putStr(out, k.loop);
    putStr(out, k.epilogue);
  }
  putU32(out, static_cast<uint32_t>(img.objects.size()));
  for (const std::string &o : img.objects)
    putBlob(out, o);
  putU64(out, checksum(out.data(), out.size()));
  return out;
}

bool decodeExecutable(std::string_view bytes, SerializedExecutable *out, DecodeError *error) {
  auto fail = [error](DecodeError::Kind kind, std::string message) {
    *error = {kind, std::move(message)};
    return false;
  };
  auto corrupt = [&](const char *what) { return fail(DecodeError::Kind::Corrupt, what); };
  if (bytes.size() < sizeof(kMagic) + 4 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return corrupt("not a CPU executable (bad magic)");
  // The version is read before the checksum: another version may lay out
  // (and check) its bytes differently, and deserves the clearer message.
  uint32_t version;
  std::memcpy(&version, bytes.data() + sizeof(kMagic), 4);
  if (version != kExecutableFormatVersion)
    return fail(DecodeError::Kind::Incompatible,
                "format version " + std::to_string(version) + "; this plugin reads version " +
                    std::to_string(kExecutableFormatVersion));
  if (bytes.size() < sizeof(kMagic) + 4 + 8)
    return corrupt("truncated");
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  std::string_view body = bytes.substr(0, bytes.size() - 8);
  if (checksum(body.data(), body.size()) != stored)
    return corrupt("checksum mismatch (truncated or damaged)");

  Reader r(body.substr(sizeof(kMagic) + 4));
  SerializedExecutable exe;
  ObjectImage &img = exe.image;
  uint32_t optLevel, mr, nr, kernels, objects;
  if (!r.u32(&optLevel) || !r.str(&exe.target.architecture) || !r.str(&exe.target.cpu) ||
      !r.str(&exe.target.features) || !r.blob(&exe.scheduleText) || !r.str(&img.llvmVersion) ||
      !r.str(&img.triple) || !r.str(&img.dataLayout) || !r.str(&img.microSymbol) || !r.u32(&mr) || !r.u32(&nr) ||
      !r.u32(&kernels))
    return corrupt("truncated header");
  if (optLevel > 3)
    return corrupt("bad optimization level");
  // Register blocks are small multiples of the vector length (Codegen.cpp).
  if (mr > 64 || nr > 256 || (img.microSymbol.empty() != (mr == 0)))
    return corrupt("bad micro-kernel block");
  exe.optLevel = optLevel;
  img.mr = static_cast<int>(mr);
  img.nr = static_cast<int>(nr);
  // Each kernel takes at least 8 bytes, so the count cannot outrun the data.
  if (kernels > r.left() / 8)
    return corrupt("bad kernel count");
  img.kernels.resize(kernels);
  for (ObjectImage::Kernel &k : img.kernels)
    if (!r.str(&k.loop) || !r.str(&k.epilogue) || k.loop.empty())
      return corrupt("truncated kernel table");
  if (!r.u32(&objects) || objects > r.left() / 8)
    return corrupt("bad object count");
  img.objects.resize(objects);
  for (std::string &o : img.objects)
    if (!r.blob(&o))
      return corrupt("truncated object");
  if (r.left() != 0)
    return corrupt("trailing bytes");
  *out = std::move(exe);
  return true;
}

} // namespace tessera::cpu
