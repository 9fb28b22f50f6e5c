// Error values for the core. Layers return Error / Expected<T> instead of
// throwing; the C API (core/api) turns them into tessera_status_t objects.
//
// Two families, kept apart on purpose:
//  * user errors (bad IR, shape mismatch, bad file): a located, readable
//    diagnostic for the person who wrote the input;
//  * internal errors (compiler bugs): ErrorCode::Internal, message says what
//    invariant broke.
#ifndef TESSERA_SUPPORT_ERROR_H
#define TESSERA_SUPPORT_ERROR_H

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tessera {

// Mirrors tessera_status_code_t value for value (checked in core/api).
enum class ErrorCode : int32_t {
  Ok = 0,
  InvalidArgument = 1,
  OutOfMemory = 2,
  NotFound = 3,
  Unsupported = 4,
  IncompatibleVersion = 5,
  MissingDependency = 6,
  NoDevice = 7,
  InvalidIR = 8,
  ShapeMismatch = 9,
  LoadFailed = 10,
  Busy = 11,
  DeviceError = 12,
  CorruptData = 13,
  IOError = 14,
  ResourceExhausted = 15,
  Internal = 16,
};

const char *errorCodeName(ErrorCode code);

// A position in a source text. Lines and columns are 1-based; 0 means unknown.
struct SourceLocation {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;

  bool known() const { return line != 0; }
  // "file:line:col", or "file" / "<unknown>" when parts are missing.
  std::string str() const;
};

class [[nodiscard]] Error {
public:
  Error() = default; // success
  Error(ErrorCode code, std::string message, SourceLocation loc = {})
      : code_(code), message_(std::move(message)), location_(std::move(loc)) {}

  static Error success() { return Error(); }

  explicit operator bool() const { return code_ != ErrorCode::Ok; }
  ErrorCode code() const { return code_; }
  const std::string &message() const { return message_; }
  const SourceLocation &location() const { return location_; }

  // "file:line:col: error: message" when located, else the message alone.
  std::string render() const;

private:
  ErrorCode code_ = ErrorCode::Ok;
  std::string message_;
  SourceLocation location_;
};

// Builds an error in one call: makeError(ErrorCode::InvalidIR, loc, "...").
inline Error makeError(ErrorCode code, std::string message, SourceLocation loc = {}) {
  return Error(code, std::move(message), std::move(loc));
}

// Internal errors are compiler bugs, not user mistakes.
inline Error internalError(std::string message) {
  return Error(ErrorCode::Internal, "internal error: " + std::move(message));
}

// Either a value or an Error (never a success Error).
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : storage_(std::move(value)) {}
  Expected(Error error) : storage_(std::move(error)) {
    assert(std::get<Error>(storage_) && "Expected<T> built from a success Error");
  }

  explicit operator bool() const { return storage_.index() == 0; }
  bool hasValue() const { return storage_.index() == 0; }

  T &operator*() & { return get(); }
  const T &operator*() const & { return get(); }
  T *operator->() { return &get(); }
  const T *operator->() const { return &get(); }

  T &get() {
    assert(hasValue() && "value taken from an Expected holding an error");
    return std::get<0>(storage_);
  }
  const T &get() const {
    assert(hasValue() && "value taken from an Expected holding an error");
    return std::get<0>(storage_);
  }
  T take() { return std::move(get()); }

  const Error &error() const {
    assert(!hasValue() && "error taken from an Expected holding a value");
    return std::get<1>(storage_);
  }
  Error takeError() {
    assert(!hasValue() && "error taken from an Expected holding a value");
    return std::move(std::get<1>(storage_));
  }

private:
  std::variant<T, Error> storage_;
};

} // namespace tessera

#endif // TESSERA_SUPPORT_ERROR_H
