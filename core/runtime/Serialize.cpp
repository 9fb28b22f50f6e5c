#include "runtime/Serialize.h"

#include "text/Parser.h"
#include "text/Printer.h"

#include <cstring>

namespace tessera::runtime {

namespace {

uint64_t fnv1a(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

class Writer {
public:
  void raw(const void *data, size_t size) { out_.append(static_cast<const char *>(data), size); }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  std::string &bytes() { return out_; }

private:
  std::string out_;
};

class Reader {
public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t &v) {
    if (pos_ + 1 > in_.size())
      return false;
    v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool u32(uint32_t &v) {
    if (in_.size() - pos_ < 4)
      return false;
    v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t &v) {
    if (in_.size() - pos_ < 8)
      return false;
    v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool str(std::string &s) {
    uint64_t n = 0;
    if (!u64(n) || n > in_.size() - pos_)
      return false;
    s.assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A count of entries that each take at least `minBytes`: bounded by what is left.
  bool count(uint32_t &n, size_t minBytes) { return u32(n) && n <= (in_.size() - pos_) / minBytes; }
  bool atEnd() const { return pos_ == in_.size(); }

private:
  std::string_view in_;
  size_t pos_ = 0;
};

Error corrupt(const std::string &what) {
  return makeError(ErrorCode::CorruptData, "serialized module is damaged: " + what);
}

} // namespace

bool looksLikeModule(std::string_view bytes) {
  return bytes.size() >= sizeof(kModuleMagic) && std::memcmp(bytes.data(), kModuleMagic, sizeof(kModuleMagic)) == 0;
}

std::string encodeModule(const TargetInfo &target, const std::string &pluginVersion,
                         const CompiledModule::Parts &parts, std::string_view executable) {
  Writer w;
  w.raw(kModuleMagic, sizeof(kModuleMagic));
  w.u32(kModuleFormatVersion);
  w.u64(0); // length, patched below
  w.u32(TESSERA_ABI_VERSION_MAJOR);
  w.u32(TESSERA_ABI_VERSION_MINOR);
  w.str(target.plugin);
  w.str(pluginVersion);
  w.str(target.architecture);
  w.str(target.features);
  w.str(text::printFunction(parts.function));
  const fusion::FusedProgram &p = parts.program;
  w.str(schedule::printProgram(p.schedule));
  w.u32(static_cast<uint32_t>(p.kernels.size()));
  for (const fusion::KernelPlan &k : p.kernels) {
    w.u32(static_cast<uint32_t>(k.operands.size()));
    for (const fusion::OperandBinding &b : k.operands) {
      w.u8(static_cast<uint8_t>(b.kind));
      w.u32(b.index);
    }
    w.u32(static_cast<uint32_t>(k.fusedOps.size()));
    for (const std::string &op : k.fusedOps)
      w.str(op);
  }
  w.u32(static_cast<uint32_t>(p.intermediates.size()));
  for (const fusion::Intermediate &i : p.intermediates) {
    w.str(i.name);
    w.str(i.type.str());
  }
  w.u32(static_cast<uint32_t>(p.constants.size()));
  for (const fusion::ConstantData &c : p.constants) {
    w.str(c.name);
    w.str(c.type.str());
    w.str(std::string_view(reinterpret_cast<const char *>(c.bytes.data()), c.bytes.size()));
  }
  w.str(executable);
  std::string &out = w.bytes();
  uint64_t length = out.size() + 8;
  for (int i = 0; i < 8; ++i)
    out[sizeof(kModuleMagic) + 4 + i] = static_cast<char>(length >> (8 * i));
  w.u64(fnv1a(out));
  return out;
}

Expected<ModuleImage> decodeModule(std::string_view bytes) {
  if (!looksLikeModule(bytes))
    return corrupt("not a Tessera module (bad magic)");
  Reader header(bytes.substr(sizeof(kModuleMagic)));
  uint32_t version = 0;
  uint64_t length = 0;
  if (!header.u32(version) || !header.u64(length))
    return corrupt("truncated header");
  if (version != kModuleFormatVersion)
    return makeError(ErrorCode::IncompatibleVersion, "serialized module has format version " +
                                                         std::to_string(version) + "; this libtessera reads version " +
                                                         std::to_string(kModuleFormatVersion));
  if (length != bytes.size())
    return corrupt("header says " + std::to_string(length) + " bytes, got " + std::to_string(bytes.size()) +
                   (bytes.size() < length ? " (truncated)" : ""));
  std::string_view body = bytes.substr(0, bytes.size() - 8);
  Reader tail(bytes.substr(bytes.size() - 8));
  uint64_t checksum = 0;
  if (!tail.u64(checksum) || checksum != fnv1a(body))
    return corrupt("checksum mismatch");

  Reader r(body.substr(sizeof(kModuleMagic) + 12));
  ModuleImage image;
  std::string functionText, scheduleText;
  if (!r.u32(image.abiMajor) || !r.u32(image.abiMinor) || !r.str(image.target.plugin) ||
      !r.str(image.pluginVersion) || !r.str(image.target.architecture) || !r.str(image.target.features) ||
      !r.str(functionText) || !r.str(scheduleText))
    return corrupt("truncated compatibility or program section");
  if (image.abiMajor != TESSERA_ABI_VERSION_MAJOR)
    return makeError(ErrorCode::IncompatibleVersion,
                     "serialized module was built for ABI " + std::to_string(image.abiMajor) + "." +
                         std::to_string(image.abiMinor) + "; this libtessera implements ABI " +
                         std::to_string(TESSERA_ABI_VERSION_MAJOR) + "." + std::to_string(TESSERA_ABI_VERSION_MINOR));

  Expected<ir::Module> module = text::parseModule(functionText, "<serialized module>");
  if (!module)
    return corrupt("its Graph IR does not parse: " + module.error().render());
  if (module->functions.size() != 1)
    return corrupt("expected one function, found " + std::to_string(module->functions.size()));
  image.parts.function = std::move(module->functions[0]);

  fusion::FusedProgram &p = image.parts.program;
  schedule::ParseError parseError;
  if (!schedule::parseProgram(scheduleText, &p.schedule, &parseError))
    return corrupt("its Schedule IR does not parse: " + parseError.str());

  uint32_t kernels = 0;
  if (!r.count(kernels, 8))
    return corrupt("bad kernel count");
  p.kernels.resize(kernels);
  for (fusion::KernelPlan &k : p.kernels) {
    uint32_t operands = 0, fused = 0;
    if (!r.count(operands, 5))
      return corrupt("bad operand count");
    k.operands.resize(operands);
    for (fusion::OperandBinding &b : k.operands) {
      uint8_t kind = 0;
      if (!r.u8(kind) || !r.u32(b.index) || kind > static_cast<uint8_t>(fusion::OperandBinding::Kind::Constant))
        return corrupt("bad operand binding");
      b.kind = static_cast<fusion::OperandBinding::Kind>(kind);
    }
    if (!r.count(fused, 8))
      return corrupt("bad fused-op count");
    k.fusedOps.resize(fused);
    for (std::string &op : k.fusedOps)
      if (!r.str(op))
        return corrupt("truncated fused-op list");
  }
  auto readType = [&](ir::TensorType &type) -> Error {
    std::string text;
    if (!r.str(text))
      return corrupt("truncated type");
    Expected<ir::TensorType> parsed = text::parseType(text);
    if (!parsed)
      return corrupt("bad type '" + text + "': " + parsed.error().message());
    type = parsed.take();
    return Error::success();
  };
  uint32_t intermediates = 0;
  if (!r.count(intermediates, 16))
    return corrupt("bad intermediate count");
  p.intermediates.resize(intermediates);
  for (fusion::Intermediate &i : p.intermediates) {
    if (!r.str(i.name))
      return corrupt("truncated intermediate");
    if (Error e = readType(i.type))
      return e;
  }
  uint32_t constants = 0;
  if (!r.count(constants, 24))
    return corrupt("bad constant count");
  p.constants.resize(constants);
  for (fusion::ConstantData &c : p.constants) {
    std::string data;
    if (!r.str(c.name))
      return corrupt("truncated constant");
    if (Error e = readType(c.type))
      return e;
    if (!r.str(data))
      return corrupt("truncated constant data");
    c.bytes.assign(data.begin(), data.end());
  }
  if (!r.str(image.executable) || !r.atEnd())
    return corrupt("bad executable section");
  return image;
}

} // namespace tessera::runtime
