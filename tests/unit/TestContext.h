// Shared fixtures for C API tests: contexts over the build tree's plugins.
#ifndef TESSERA_TESTS_UNIT_TESTCONTEXT_H
#define TESSERA_TESTS_UNIT_TESTCONTEXT_H

#include "tessera/tessera.h"

#include <gtest/gtest.h>

#include <string>

// Asserts success, printing the status message on failure.
#define TESSERA_ASSERT_OK(expr)                                                  \
  do {                                                                           \
    tessera_status_t *status_ = (expr);                                          \
    std::string message_ = tessera_status_message(status_);                      \
    tessera_status_free(status_);                                                \
    ASSERT_TRUE(status_ == nullptr) << #expr << ": " << message_;                \
  } while (0)

// The status code of `expr`, freeing the status.
inline tessera_status_code_t statusCode(tessera_status_t *status) {
  tessera_status_code_t code = tessera_status_code(status);
  tessera_status_free(status);
  return code;
}

// A context that sees only `dirs` (no environment, no default paths).
inline tessera_context_t *makeContext(const std::string &dirs, uint32_t extraFlags = 0) {
  tessera_context_options_t options{};
  options.struct_size = TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE;
  options.plugin_path = dirs.c_str();
  options.flags = TESSERA_CONTEXT_FLAG_IGNORE_ENVIRONMENT | TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS | extraFlags;
  tessera_context_t *context = nullptr;
  tessera_status_t *status = tessera_context_create(&options, &context);
  EXPECT_EQ(status, nullptr) << tessera_status_message(status);
  tessera_status_free(status);
  return context;
}

// The first device of the plugin named `plugin`, or NULL.
inline tessera_device_t *findDevice(tessera_context_t *context, const std::string &plugin) {
  for (size_t i = 0; i < tessera_device_count(context); ++i) {
    tessera_device_t *device = nullptr;
    tessera_device_info_t info{};
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    if (statusCode(tessera_context_get_device(context, i, &device)) != TESSERA_STATUS_OK)
      return nullptr;
    if (statusCode(tessera_device_get_info(device, &info)) == TESSERA_STATUS_OK && plugin == info.plugin)
      return device;
  }
  return nullptr;
}

#endif // TESSERA_TESTS_UNIT_TESTCONTEXT_H
