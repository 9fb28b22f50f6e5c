// Compile and module entry points. The surface is fixed by the ABI draft;
// the pipeline behind it (graph passes, fusion, Schedule IR, plugin compile)
// lands with the compile-and-run work, so until then these report
// UNSUPPORTED with a clear reason rather than pretending to work.
#include "api/Status.h"

using namespace tessera::api;

namespace {

tessera_status_t *pipelineMissing(const char *fn) {
  return makeStatus(TESSERA_STATUS_UNSUPPORTED,
                    std::string(fn) + ": this build of libtessera has no compile pipeline yet "
                                      "(ABI 0.1 draft; see docs/abi.md, \"Implementation status\")");
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_compile(tessera_context_t *context, const void *source, size_t size,
                                                 const char *format, const tessera_compile_options_t *options,
                                                 const tessera_compile_target_t *target,
                                                 tessera_module_t **out_module) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(source);
  TESSERA_API_REQUIRE(format);
  TESSERA_API_REQUIRE(target);
  TESSERA_API_REQUIRE(out_module);
  return pipelineMissing(__func__);
}

TESSERA_EXPORT void tessera_module_destroy(tessera_module_t *) {}

TESSERA_EXPORT size_t tessera_module_input_count(const tessera_module_t *) { return 0; }
TESSERA_EXPORT size_t tessera_module_output_count(const tessera_module_t *) { return 0; }

TESSERA_EXPORT tessera_status_t *tessera_module_get_input(const tessera_module_t *module, size_t,
                                                          tessera_value_info_t *) {
  TESSERA_API_REQUIRE(module);
  return pipelineMissing(__func__);
}

TESSERA_EXPORT tessera_status_t *tessera_module_get_output(const tessera_module_t *module, size_t,
                                                           tessera_value_info_t *) {
  TESSERA_API_REQUIRE(module);
  return pipelineMissing(__func__);
}

TESSERA_EXPORT tessera_status_t *tessera_module_run(tessera_module_t *module, const tessera_run_options_t *, size_t,
                                                    tessera_tensor_t *const *, size_t, tessera_tensor_t **) {
  TESSERA_API_REQUIRE(module);
  return pipelineMissing(__func__);
}

TESSERA_EXPORT tessera_status_t *tessera_module_serialize(const tessera_module_t *module, tessera_blob_t **) {
  TESSERA_API_REQUIRE(module);
  return pipelineMissing(__func__);
}

TESSERA_EXPORT tessera_status_t *tessera_module_load(tessera_context_t *context, const void *data, size_t,
                                                     const tessera_compile_target_t *, tessera_module_t **) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(data);
  return pipelineMissing(__func__);
}

} // extern "C"
