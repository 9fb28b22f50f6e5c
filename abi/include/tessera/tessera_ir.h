/*
 * tessera_ir.h: Graph IR programs through the application ABI: parse and
 * check .tsr text, print its canonical form, and build programs op by op.
 * Included by tessera.h; same conventions (docs/abi.md, docs/ir.md).
 */
#ifndef TESSERA_IR_H_
#define TESSERA_IR_H_

#include "tessera/tessera_types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tessera_blob_t;

/* A parsed, verified Graph IR module. Owned; free with
 * tessera_program_destroy(). Immutable: reading is thread-safe. */
typedef struct tessera_program_t tessera_program_t;

/*
 * Parses .tsr text (size bytes, need not be NUL-terminated), verifies it and
 * infers all shapes. source_name is used in diagnostics (NULL = "<input>").
 * Errors: INVALID_IR or SHAPE_MISMATCH, located (tessera_status_location),
 * message "file:line:col: error: ..." with notes and hints;
 * RESOURCE_EXHAUSTED past the documented limits (docs/ir.md). Thread-safe.
 */
TESSERA_EXPORT tessera_status_t *tessera_program_parse(const char *text, size_t size, const char *source_name,
                                                       tessera_program_t **out_program);
TESSERA_EXPORT void tessera_program_destroy(tessera_program_t *program);
/* The canonical text of the program (what `tessera fmt` prints); owned blob. */
TESSERA_EXPORT tessera_status_t *tessera_program_print(const tessera_program_t *program,
                                                       struct tessera_blob_t **out_text);
TESSERA_EXPORT size_t tessera_program_function_count(const tessera_program_t *program);
/* The inferred signature of function `index`, e.g.
 * "func @mlp(%x: tensor<B x 784 x f32>) -> tensor<B x 10 x f32>"; owned blob. */
TESSERA_EXPORT tessera_status_t *tessera_program_function_signature(const tessera_program_t *program,
                                                                    size_t index,
                                                                    struct tessera_blob_t **out_text);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TESSERA_IR_H_ */
