#include "support/CStatus.h"

#include <new>

static_assert(TESSERA_STATUS_INTERNAL == static_cast<int>(tessera::ErrorCode::Internal),
              "tessera::ErrorCode must mirror tessera_status_code_t");
static_assert(TESSERA_STATUS_RESOURCE_EXHAUSTED == static_cast<int>(tessera::ErrorCode::ResourceExhausted));
static_assert(TESSERA_STATUS_SHAPE_MISMATCH == static_cast<int>(tessera::ErrorCode::ShapeMismatch));
static_assert(TESSERA_STATUS_NO_DEVICE == static_cast<int>(tessera::ErrorCode::NoDevice));

namespace tessera {

tessera_status_t *makeCStatus(tessera_status_code_t code, std::string message) {
  return new (std::nothrow) tessera_status_t{code, std::move(message), {}, 0, 0};
}

tessera_status_t *toCStatus(const Error &error) {
  if (!error)
    return nullptr;
  tessera_status_t *status = makeCStatus(static_cast<tessera_status_code_t>(error.code()), error.render());
  if (status) {
    status->file = error.location().file;
    status->line = error.location().line;
    status->column = error.location().column;
  }
  return status;
}

Error takeCStatus(tessera_status_t *status) {
  if (!status)
    return Error::success();
  int32_t raw = static_cast<int32_t>(status->code);
  ErrorCode code = (raw > 0 && raw <= static_cast<int32_t>(ErrorCode::Internal)) ? static_cast<ErrorCode>(raw)
                                                                                 : ErrorCode::Internal;
  SourceLocation loc{status->file, status->line, status->column};
  std::string message = std::move(status->message);
  delete status;
  // A plugin's message is already complete; keep it unrendered.
  return Error(code, std::move(message), loc);
}

} // namespace tessera
