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
/* Frees a program; NULL is a no-op. Not thread-safe for the same program. */
TESSERA_EXPORT void tessera_program_destroy(tessera_program_t *program);
/* The canonical text of the program (what `tessera fmt` prints); owned
 * blob. Thread-safe. Errors: INVALID_ARGUMENT (NULL). */
TESSERA_EXPORT tessera_status_t *tessera_program_print(const tessera_program_t *program,
                                                       struct tessera_blob_t **out_text);
/* Number of functions; 0 for NULL. Thread-safe. */
TESSERA_EXPORT size_t tessera_program_function_count(const tessera_program_t *program);
/* The inferred signature of function `index`, e.g.
 * "func @mlp(%x: tensor<B x 784 x f32>) -> tensor<B x 10 x f32>"; owned blob.
 * Thread-safe. Errors: INVALID_ARGUMENT (NULL, index out of range). */
TESSERA_EXPORT tessera_status_t *tessera_program_function_signature(const tessera_program_t *program,
                                                                    size_t index,
                                                                    struct tessera_blob_t **out_text);

/* ---- Building programs op by op ---------------------------------------- */

/*
 * A builder makes programs without text: begin a function, add parameters,
 * add ops (each is checked and its result types inferred at once, so errors
 * point at the op being added), finish the function, repeat, then finish the
 * program. Values are numbered per function (uint32_t ids returned by the
 * builder). The checks and diagnostics are those of tessera_program_parse.
 * A builder is not thread-safe; distinct builders may be used concurrently.
 */
typedef struct tessera_program_builder_t tessera_program_builder_t;

/* Rounding modes of the numeric policy (docs/ir.md). */
typedef enum tessera_ir_rounding_t {
  TESSERA_IR_ROUNDING_NEAREST_EVEN = 0,
  TESSERA_IR_ROUNDING_TOWARD_ZERO = 1,
  TESSERA_IR_ROUNDING_UP = 2,
  TESSERA_IR_ROUNDING_DOWN = 3,
  TESSERA_IR_ROUNDING_STOCHASTIC = 4,
  TESSERA_IR_ROUNDING_FORCE32 = 0x7FFFFFFF
} tessera_ir_rounding_t;

/* A tensor type: dtype, dims and numeric policy. */
typedef struct tessera_ir_type_t {
  size_t struct_size;
  tessera_dtype_t dtype;
  size_t rank;                 /* <= TESSERA_MAX_RANK (16) */
  const char *const *dims;     /* rank NUL-terminated dims: "512", "B", "S*2", "D/H"; borrowed, copied */
  tessera_dtype_t accum_dtype; /* accumulation dtype; TESSERA_DTYPE_INVALID = the element dtype */
  tessera_ir_rounding_t rounding;
  int32_t saturate;            /* nonzero: clamp to the finite range on overflow */
  int32_t deterministic;       /* nonzero: bitwise reproducible reductions */
} tessera_ir_type_t;
#define TESSERA_IR_TYPE_STRUCT_SIZE (offsetof(tessera_ir_type_t, deterministic) + sizeof(int32_t))

typedef enum tessera_ir_attr_kind_t {
  TESSERA_IR_ATTR_INT = 1,
  TESSERA_IR_ATTR_FLOAT = 2,
  TESSERA_IR_ATTR_STRING = 3,
  TESSERA_IR_ATTR_BOOL = 4,
  TESSERA_IR_ATTR_INT_LIST = 5,
  TESSERA_IR_ATTR_FLOAT_LIST = 6,
  TESSERA_IR_ATTR_DTYPE = 7,
  TESSERA_IR_ATTR_KIND_FORCE32 = 0x7FFFFFFF
} tessera_ir_attr_kind_t;

/* A named, typed attribute; only the field of its kind is read. */
typedef struct tessera_ir_attribute_t {
  size_t struct_size;
  const char *name;            /* e.g. "axes"; borrowed, copied */
  tessera_ir_attr_kind_t kind;
  int64_t int_value;           /* INT; BOOL (0 or 1) */
  double float_value;          /* FLOAT */
  const char *string_value;    /* STRING, NUL-terminated; borrowed, copied */
  const int64_t *int_list;     /* INT_LIST: list_size values; borrowed, copied */
  const double *float_list;    /* FLOAT_LIST: list_size values; borrowed, copied */
  size_t list_size;
  tessera_dtype_t dtype_value; /* DTYPE */
} tessera_ir_attribute_t;
#define TESSERA_IR_ATTRIBUTE_STRUCT_SIZE (offsetof(tessera_ir_attribute_t, dtype_value) + sizeof(tessera_dtype_t))

/* One op to add. All pointers are borrowed for the call only. */
typedef struct tessera_ir_op_desc_t {
  size_t struct_size;
  const void *next;                          /* extension chain; NULL */
  const char *op;                            /* op name as in .tsr text, e.g. "matmul" */
  const uint32_t *operands;                  /* operand_count value ids */
  size_t operand_count;
  const tessera_ir_attribute_t *attributes;  /* attribute_count attributes */
  size_t attribute_count;
  const tessera_ir_type_t *result_types;     /* NULL/0 = inferred; required for constant, iota and
                                                reshape/broadcast_to without 'shape'; else checked */
  size_t result_type_count;
  const char *const *result_names;           /* NULL = numbered names; else one per result */
  size_t result_name_count;
  const tessera_source_location_t *location; /* NULL = none; else diagnostics point here and the
                                                printer writes loc("file":line:col) */
} tessera_ir_op_desc_t;
#define TESSERA_IR_OP_DESC_STRUCT_SIZE (offsetof(tessera_ir_op_desc_t, location) + sizeof(void *))

/* Creates an empty builder; owned, free with tessera_program_builder_destroy.
 * Errors: INVALID_ARGUMENT (NULL out), OUT_OF_MEMORY. */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_create(tessera_program_builder_t **out_builder);
/* Frees a builder and everything unfinished in it; NULL is a no-op. */
TESSERA_EXPORT void tessera_program_builder_destroy(tessera_program_builder_t *builder);
/* Starts function @name (letters, digits, _ . $). Errors: INVALID_ARGUMENT
 * (NULL, a function already open), INVALID_IR (bad or duplicate name). */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_begin_function(tessera_program_builder_t *builder,
                                                                        const char *name);
/* Adds a parameter (before the function's first op); name NULL = "argN".
 * Writes its value id to *out_value. Errors: INVALID_ARGUMENT (no open
 * function, struct_size too small), INVALID_IR (bad dim text, dtype, name),
 * RESOURCE_EXHAUSTED (rank, elements, int64 overflow). */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_add_parameter(tessera_program_builder_t *builder,
                                                                       const char *name,
                                                                       const tessera_ir_type_t *type,
                                                                       uint32_t *out_value);
/* Adds an op, checks it and infers its result types. Writes up to
 * results_capacity result ids to out_results (may be NULL when 0) and the
 * number of results to *out_result_count (may be NULL). On error the
 * function is unchanged. Errors: INVALID_ARGUMENT (no open function, NULL,
 * struct_size too small, capacity too small: nothing added), INVALID_IR
 * (unknown op, wrong attribute names or types, unknown operand id, dtype
 * rules), SHAPE_MISMATCH (with expected vs actual), RESOURCE_EXHAUSTED. */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_add_op(tessera_program_builder_t *builder,
                                                                const tessera_ir_op_desc_t *desc,
                                                                uint32_t *out_results, size_t results_capacity,
                                                                size_t *out_result_count);
/* The inferred type of a value of the open function as text, e.g.
 * "tensor<B x 10 x f32>"; owned blob. Errors: INVALID_ARGUMENT. */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_value_type(const tessera_program_builder_t *builder,
                                                                    uint32_t value, struct tessera_blob_t **out_text);
/* Ends the open function returning the given values (count >= 1); its
 * result types are the inferred ones. Errors: INVALID_ARGUMENT, INVALID_IR.
 * On error the function stays open. */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_finish_function(tessera_program_builder_t *builder,
                                                                         const uint32_t *results,
                                                                         size_t result_count);
/* Verifies all finished functions and returns them as an owned program;
 * the builder is then empty and reusable. Errors: INVALID_ARGUMENT (a
 * function still open, no functions), INVALID_IR, SHAPE_MISMATCH. */
TESSERA_EXPORT tessera_status_t *tessera_program_builder_finish(tessera_program_builder_t *builder,
                                                                tessera_program_t **out_program);

/* ---- Reference interpreter and symbols ---------------------------------- */

struct tessera_tensor_t;

/* Which symbols tessera_program_function_symbols lists. */
typedef enum tessera_program_symbols_t {
  TESSERA_PROGRAM_SYMBOLS_ALL = 0,          /* every symbol of the function */
  TESSERA_PROGRAM_SYMBOLS_UNDETERMINED = 1, /* only those the parameter shapes do not
                                               determine: they must be bound to compile */
  TESSERA_PROGRAM_SYMBOLS_FORCE32 = 0x7FFFFFFF
} tessera_program_symbols_t;

/*
 * The symbols of function `entry` (NULL = "main", else the first function)
 * as comma-separated text, e.g. "B,S,D,H": symbols of the parameter types
 * first, in order of appearance, then those only the body mentions (e.g. a
 * head count in a reshape annotation). Owned blob; "" when there are none.
 * Thread-safe. Errors: INVALID_ARGUMENT (NULL, unknown `which`), NOT_FOUND
 * (entry).
 */
TESSERA_EXPORT tessera_status_t *tessera_program_function_symbols(const tessera_program_t *program,
                                                                  const char *entry,
                                                                  tessera_program_symbols_t which,
                                                                  struct tessera_blob_t **out_text);

/*
 * Evaluates function `entry` (NULL = "main", else the first) with the
 * float64 reference interpreter (docs/ir.md): every op's result rounded to
 * its declared dtype. `bind` fixes symbols the inputs do not determine,
 * "NAME=VALUE,..." (NULL = none), as tessera_compile_options_t.bind does.
 * inputs (borrowed, one per parameter, any device whose memory can be
 * copied to the host) must match the parameter dtypes; their shapes bind
 * the other symbols. outputs[i] receives an owned host tensor (device NULL,
 * kind CPU) of the declared dtype; num_outputs must equal the result count.
 * Nothing is written on error. Thread-safe.
 * Errors: INVALID_ARGUMENT (counts, dtypes, bind), SHAPE_MISMATCH (names the
 * symbol, both sizes and the inputs), NOT_FOUND (entry), UNSUPPORTED (an op
 * the interpreter lacks), RESOURCE_EXHAUSTED (beyond its 2^28-element limit).
 */
TESSERA_EXPORT tessera_status_t *tessera_program_run_reference(const tessera_program_t *program, const char *entry,
                                                               const char *bind, size_t num_inputs,
                                                               struct tessera_tensor_t *const *inputs,
                                                               size_t num_outputs,
                                                               struct tessera_tensor_t **outputs);

/* ---- Automatic differentiation (docs/autodiff.md) ----------------------- */

/* What tessera_program_grad differentiates. */
typedef enum tessera_grad_mode_t {
  /* Gradient of a scalar loss: output `loss_output` must be a float scalar;
   * its cotangent is 1. Other outputs are returned unchanged. */
  TESSERA_GRAD_MODE_GRAD = 0,
  /* Vector-Jacobian product: one cotangent parameter per float output
   * (named "ct.<output value>"), appended after the original parameters. */
  TESSERA_GRAD_MODE_VJP = 1,
  TESSERA_GRAD_MODE_FORCE32 = 0x7FFFFFFF
} tessera_grad_mode_t;

/* Flags of tessera_grad_options_t. */
#define TESSERA_GRAD_UNREACHABLE_IS_ERROR 0x1u /* an input that does not reach a
                                                  differentiable output is INVALID_ARGUMENT
                                                  (default: zero gradient + warning) */
#define TESSERA_GRAD_REMAT_ELEMENTWISE 0x2u    /* recompute every elementwise result in
                                                  the backward pass instead of keeping it */

typedef struct tessera_grad_options_t {
  size_t struct_size;
  const void *next;          /* extension chain; NULL */
  tessera_grad_mode_t mode;
  uint32_t loss_output;      /* GRAD mode: index of the loss among the outputs */
  const char *name;          /* name of the new function; NULL = "<function>_grad"
                                (GRAD) or "<function>_vjp" (VJP); borrowed */
  /* Rematerialization: comma-separated names of forward values the backward
   * pass recomputes instead of keeping alive ("h,a"); NULL = none; borrowed. */
  const char *remat;
  uint32_t flags;            /* TESSERA_GRAD_* flags */
} tessera_grad_options_t;
#define TESSERA_GRAD_OPTIONS_STRUCT_SIZE (offsetof(tessera_grad_options_t, flags) + sizeof(uint32_t))

/*
 * Reverse-mode autodiff: builds the gradient of function `function` of
 * `program` (NULL = "main", else the first function) with respect to the
 * parameters named in wrt[0..num_wrt) (names with or without '%', or
 * decimal parameter indices). *out_program receives a new owned program
 * holding one function that takes the original parameters (then, in VJP
 * mode, one cotangent per float output) and returns the original outputs
 * followed by one gradient per wrt entry, in order. It is ordinary Graph IR:
 * print it, compile it, run it. options may be NULL (GRAD mode, output 0).
 * out_warnings (may be NULL) receives an owned blob of newline-separated
 * warnings, "" when there are none (e.g. an input that does not reach the
 * output gets a zero gradient). `program` is borrowed and unchanged.
 * Thread-safe (for distinct out parameters). Nothing is written on error.
 * Errors: INVALID_ARGUMENT (NULL, num_wrt 0, options, an integer or boolean
 * wrt input, a non-float or non-scalar loss, no float output, a bad remat
 * name), NOT_FOUND (function, wrt name), UNSUPPORTED (an op whose gradient
 * needs static dims it does not have), INVALID_IR / SHAPE_MISMATCH.
 */
TESSERA_EXPORT tessera_status_t *tessera_program_grad(const tessera_program_t *program, const char *function,
                                                      size_t num_wrt, const char *const *wrt,
                                                      const tessera_grad_options_t *options,
                                                      tessera_program_t **out_program,
                                                      struct tessera_blob_t **out_warnings);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TESSERA_IR_H_ */
