// The C ABI's status object, shared by the plugin host (which creates
// statuses on behalf of plugins) and the C API implementation.
#ifndef TESSERA_SUPPORT_CSTATUS_H
#define TESSERA_SUPPORT_CSTATUS_H

#include "support/Error.h"
#include "tessera/tessera_types.h"

#include <string>

struct tessera_status_t {
  tessera_status_code_t code;
  std::string message;
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
};

namespace tessera {

// An owned status; NULL if allocation fails.
tessera_status_t *makeCStatus(tessera_status_code_t code, std::string message);
// NULL for success; otherwise an owned status with the code, the rendered
// message and the location.
tessera_status_t *toCStatus(const Error &error);
// Takes ownership of `status` (frees it) and returns the equivalent Error.
// Unknown codes from a plugin become Internal.
Error takeCStatus(tessera_status_t *status);

} // namespace tessera

#endif // TESSERA_SUPPORT_CSTATUS_H
