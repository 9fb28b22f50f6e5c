// Bridges core errors to the C ABI's status and blob objects, and keeps
// C++ exceptions from crossing it.
#ifndef TESSERA_API_STATUS_H
#define TESSERA_API_STATUS_H

#include "support/CStatus.h"
#include "support/Error.h"
#include "tessera/tessera.h"

#include <cstring>
#include <string>

struct tessera_blob_t {
  std::string bytes; // std::string keeps a NUL after the data
};

namespace tessera::api {

// NULL for success; otherwise an owned status carrying the code, the rendered
// message and the location.
inline tessera_status_t *toStatus(const Error &error) { return toCStatus(error); }
inline tessera_status_t *makeStatus(tessera_status_code_t code, std::string message) {
  return makeCStatus(code, std::move(message));
}
tessera_blob_t *makeBlob(std::string bytes);

// Copies a filled info struct into the caller's, writing no byte past the
// caller's struct_size and keeping that struct_size (docs/abi.md, rule 3).
template <typename T> void copyOut(T *dst, const T &src) {
  size_t keep = dst->struct_size;
  std::memcpy(static_cast<void *>(dst), &src, keep < sizeof(T) ? keep : sizeof(T));
  dst->struct_size = keep;
}

// The status for an exception that escaped core code: never rethrown across
// the ABI.
tessera_status_t *statusFromCurrentException();

} // namespace tessera::api

// Wraps the body of an exported function that returns tessera_status_t*:
//   TESSERA_API_GUARD({ ...; return nullptr; })
#define TESSERA_API_GUARD(...)                                                   \
  try {                                                                          \
    __VA_ARGS__                                                                  \
  } catch (...) {                                                                \
    return ::tessera::api::statusFromCurrentException();                         \
  }

// Rejects a NULL pointer argument with INVALID_ARGUMENT naming it.
#define TESSERA_API_REQUIRE(ptr)                                                 \
  do {                                                                           \
    if (!(ptr))                                                                  \
      return ::tessera::api::makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,         \
                                        std::string(__func__) + ": '" #ptr       \
                                        "' must not be NULL");                   \
  } while (0)

#endif // TESSERA_API_STATUS_H
