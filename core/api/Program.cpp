// tessera_program_* (abi/include/tessera/tessera_ir.h): parse, print and
// inspect Graph IR programs.
#include "api/Program.h"

#include "api/Status.h"
#include "text/Parser.h"
#include "text/Printer.h"

using namespace tessera;
using namespace tessera::api;

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_program_parse(const char *text, size_t size, const char *source_name,
                                                       tessera_program_t **out_program) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(out_program);
    if (!text && size != 0)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_program_parse: 'text' is NULL but size is not 0");
    auto m = text::parseModule(std::string_view(text ? text : "", size), source_name ? source_name : "<input>");
    if (!m)
      return toStatus(m.error());
    *out_program = new tessera_program_t{m.take()};
    return nullptr;
  })
}

TESSERA_EXPORT void tessera_program_destroy(tessera_program_t *program) { delete program; }

TESSERA_EXPORT tessera_status_t *tessera_program_print(const tessera_program_t *program,
                                                       tessera_blob_t **out_text) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(program);
    TESSERA_API_REQUIRE(out_text);
    *out_text = makeBlob(text::printModule(program->module));
    return nullptr;
  })
}

TESSERA_EXPORT size_t tessera_program_function_count(const tessera_program_t *program) {
  return program ? program->module.functions.size() : 0;
}

TESSERA_EXPORT tessera_status_t *tessera_program_function_signature(const tessera_program_t *program, size_t index,
                                                                    tessera_blob_t **out_text) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(program);
    TESSERA_API_REQUIRE(out_text);
    if (index >= program->module.functions.size())
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                        "function index " + std::to_string(index) + " is out of range (the program has " +
                            std::to_string(program->module.functions.size()) + ")");
    *out_text = makeBlob(text::functionSignature(program->module.functions[index]));
    return nullptr;
  })
}

} // extern "C"
