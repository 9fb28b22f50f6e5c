#include "api/Status.h"

#include <exception>
#include <new>

namespace tessera::api {

tessera_blob_t *makeBlob(std::string bytes) { return new tessera_blob_t{std::move(bytes)}; }

tessera_status_t *statusFromCurrentException() {
  try {
    throw;
  } catch (const std::bad_alloc &) {
    return makeStatus(TESSERA_STATUS_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception &e) {
    return makeStatus(TESSERA_STATUS_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return makeStatus(TESSERA_STATUS_INTERNAL, "internal error: unknown exception");
  }
}

} // namespace tessera::api

using namespace tessera::api;

extern "C" {

TESSERA_EXPORT tessera_status_code_t tessera_status_code(const tessera_status_t *status) {
  return status ? status->code : TESSERA_STATUS_OK;
}

TESSERA_EXPORT const char *tessera_status_message(const tessera_status_t *status) {
  return status ? status->message.c_str() : "";
}

TESSERA_EXPORT void tessera_status_location(const tessera_status_t *status,
                                            tessera_source_location_t *out_location) {
  if (!out_location || out_location->struct_size < TESSERA_SOURCE_LOCATION_STRUCT_SIZE)
    return;
  out_location->file = (status && !status->file.empty()) ? status->file.c_str() : nullptr;
  out_location->line = status ? status->line : 0;
  out_location->column = status ? status->column : 0;
}

TESSERA_EXPORT const char *tessera_status_code_name(tessera_status_code_t code) {
  if (code < TESSERA_STATUS_OK || code > TESSERA_STATUS_INTERNAL)
    return "unknown error";
  return tessera::errorCodeName(static_cast<tessera::ErrorCode>(code));
}

TESSERA_EXPORT void tessera_status_free(tessera_status_t *status) { delete status; }

TESSERA_EXPORT const void *tessera_blob_data(const tessera_blob_t *blob) {
  return blob ? blob->bytes.data() : nullptr;
}
TESSERA_EXPORT size_t tessera_blob_size(const tessera_blob_t *blob) { return blob ? blob->bytes.size() : 0; }
TESSERA_EXPORT void tessera_blob_free(tessera_blob_t *blob) { delete blob; }

} // extern "C"
