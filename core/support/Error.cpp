#include "support/Error.h"

namespace tessera {

const char *errorCodeName(ErrorCode code) {
  switch (code) {
  case ErrorCode::Ok: return "ok";
  case ErrorCode::InvalidArgument: return "invalid argument";
  case ErrorCode::OutOfMemory: return "out of memory";
  case ErrorCode::NotFound: return "not found";
  case ErrorCode::Unsupported: return "unsupported";
  case ErrorCode::IncompatibleVersion: return "incompatible version";
  case ErrorCode::MissingDependency: return "missing dependency";
  case ErrorCode::NoDevice: return "no device";
  case ErrorCode::InvalidIR: return "invalid IR";
  case ErrorCode::ShapeMismatch: return "shape mismatch";
  case ErrorCode::LoadFailed: return "load failed";
  case ErrorCode::Busy: return "busy";
  case ErrorCode::DeviceError: return "device error";
  case ErrorCode::CorruptData: return "corrupt data";
  case ErrorCode::IOError: return "I/O error";
  case ErrorCode::ResourceExhausted: return "resource exhausted";
  case ErrorCode::Internal: return "internal error";
  }
  return "unknown error";
}

std::string SourceLocation::str() const {
  std::string out = file.empty() ? std::string("<input>") : file;
  if (line != 0) {
    out += ":" + std::to_string(line);
    if (column != 0)
      out += ":" + std::to_string(column);
  }
  return out;
}

std::string Error::render() const {
  if (!location_.known())
    return message_;
  return location_.str() + ": error: " + message_;
}

} // namespace tessera
