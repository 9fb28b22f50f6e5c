// tessera_program_builder_* (abi/include/tessera/tessera_ir.h): build Graph
// IR op by op with the checks of the text path.
#include "api/Program.h"

#include "api/Status.h"
#include "ir/Verifier.h"
#include "shape/Builder.h"
#include "shape/ShapeInference.h"
#include "text/Parser.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

using namespace tessera;
using namespace tessera::api;

struct tessera_program_builder_t {
  ir::Module module;                              // finished functions
  std::unique_ptr<shape::FunctionBuilder> current; // the open function
};

namespace {

// Copies a caller struct of any size >= min into a zero-filled T (ABI rule 3).
template <typename T> bool readStruct(const T *in, size_t minSize, T &out) {
  std::memset(&out, 0, sizeof(T));
  if (!in || in->struct_size < minSize)
    return false;
  std::memcpy(&out, in, std::min(in->struct_size, sizeof(T)));
  return true;
}

tessera_status_t *invalidArg(std::string msg) { return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, std::move(msg)); }

Expected<ir::TensorType> convertType(const tessera_ir_type_t *in, const std::string &what) {
  tessera_ir_type_t t;
  if (!readStruct(in, TESSERA_IR_TYPE_STRUCT_SIZE, t))
    return makeError(ErrorCode::InvalidArgument, what + ": NULL type or struct_size too small");
  ir::TensorType out;
  if (t.dtype <= TESSERA_DTYPE_INVALID || t.dtype > TESSERA_DTYPE_I16)
    return makeError(ErrorCode::InvalidIR, what + ": invalid dtype " + std::to_string(int(t.dtype)));
  out.dtype = ir::DType(t.dtype);
  if (t.rank > ir::kMaxRank)
    return makeError(ErrorCode::ResourceExhausted, what + ": rank " + std::to_string(t.rank) +
                                                       " exceeds the maximum of " + std::to_string(ir::kMaxRank));
  if (t.rank && !t.dims)
    return makeError(ErrorCode::InvalidArgument, what + ": 'dims' is NULL but rank is " + std::to_string(t.rank));
  for (size_t i = 0; i < t.rank; ++i) {
    if (!t.dims[i])
      return makeError(ErrorCode::InvalidArgument, what + ": dim " + std::to_string(i) + " is NULL");
    auto d = text::parseDim(t.dims[i]);
    if (!d)
      return makeError(d.error().code(), what + ": dim " + std::to_string(i) + " \"" + t.dims[i] +
                                             "\": " + d.error().render());
    out.dims.push_back(d.take());
  }
  if (t.accum_dtype != TESSERA_DTYPE_INVALID) {
    if (t.accum_dtype < TESSERA_DTYPE_INVALID || t.accum_dtype > TESSERA_DTYPE_I16)
      return makeError(ErrorCode::InvalidIR, what + ": invalid accum_dtype " + std::to_string(int(t.accum_dtype)));
    out.policy.accum = ir::DType(t.accum_dtype);
  }
  if (t.rounding < TESSERA_IR_ROUNDING_NEAREST_EVEN || t.rounding > TESSERA_IR_ROUNDING_STOCHASTIC)
    return makeError(ErrorCode::InvalidIR, what + ": invalid rounding " + std::to_string(int(t.rounding)));
  out.policy.rounding = ir::Rounding(t.rounding);
  out.policy.saturate = t.saturate != 0;
  out.policy.deterministic = t.deterministic != 0;
  if (auto e = ir::checkType(out, {}, what))
    return e;
  return out;
}

Expected<ir::Attribute> convertAttr(const tessera_ir_attribute_t &a, const std::string &what) {
  switch (a.kind) {
  case TESSERA_IR_ATTR_INT: return ir::Attribute::ofInt(a.int_value);
  case TESSERA_IR_ATTR_FLOAT: return ir::Attribute::ofFloat(a.float_value);
  case TESSERA_IR_ATTR_BOOL:
    if (a.int_value != 0 && a.int_value != 1)
      return makeError(ErrorCode::InvalidIR, what + ": a BOOL attribute needs int_value 0 or 1");
    return ir::Attribute::ofBool(a.int_value != 0);
  case TESSERA_IR_ATTR_STRING:
    if (!a.string_value)
      return makeError(ErrorCode::InvalidArgument, what + ": string_value is NULL");
    return ir::Attribute::ofString(a.string_value);
  case TESSERA_IR_ATTR_INT_LIST:
    if (a.list_size && !a.int_list)
      return makeError(ErrorCode::InvalidArgument, what + ": int_list is NULL");
    if (a.list_size > (size_t(1) << 28))
      return makeError(ErrorCode::ResourceExhausted, what + ": list too long");
    return ir::Attribute::ofInts(std::vector<int64_t>(a.int_list, a.int_list + a.list_size));
  case TESSERA_IR_ATTR_FLOAT_LIST:
    if (a.list_size && !a.float_list)
      return makeError(ErrorCode::InvalidArgument, what + ": float_list is NULL");
    if (a.list_size > (size_t(1) << 28))
      return makeError(ErrorCode::ResourceExhausted, what + ": list too long");
    return ir::Attribute::ofFloats(std::vector<double>(a.float_list, a.float_list + a.list_size));
  case TESSERA_IR_ATTR_DTYPE:
    if (a.dtype_value <= TESSERA_DTYPE_INVALID || a.dtype_value > TESSERA_DTYPE_I16)
      return makeError(ErrorCode::InvalidIR, what + ": invalid dtype " + std::to_string(int(a.dtype_value)));
    return ir::Attribute::ofDType(ir::DType(a.dtype_value));
  default:
    return makeError(ErrorCode::InvalidIR, what + ": unknown attribute kind " + std::to_string(int(a.kind)));
  }
}

// Prefixes unlocated builder errors with the function and op being built.
tessera_status_t *located(const Error &e, const std::string &where) {
  if (e.location().known())
    return toStatus(e);
  return toStatus(makeError(e.code(), where + ": " + e.message()));
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_program_builder_create(tessera_program_builder_t **out_builder) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(out_builder);
    *out_builder = new tessera_program_builder_t();
    return nullptr;
  })
}

TESSERA_EXPORT void tessera_program_builder_destroy(tessera_program_builder_t *builder) { delete builder; }

TESSERA_EXPORT tessera_status_t *tessera_program_builder_begin_function(tessera_program_builder_t *builder,
                                                                        const char *name) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    TESSERA_API_REQUIRE(name);
    if (builder->current)
      return invalidArg("tessera_program_builder_begin_function: @" + builder->current->function().name +
                        " is still open; finish it first");
    std::string n = name;
    bool ok = !n.empty() && n.size() <= 256;
    for (char c : n)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '$');
    if (!ok)
      return makeStatus(TESSERA_STATUS_INVALID_IR, "invalid function name '" + n + "' (letters, digits, _ . $)");
    if (builder->module.findFunction(n))
      return makeStatus(TESSERA_STATUS_INVALID_IR, "function @" + n + " is defined twice");
    builder->current = std::make_unique<shape::FunctionBuilder>(n);
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_builder_add_parameter(tessera_program_builder_t *builder,
                                                                       const char *name,
                                                                       const tessera_ir_type_t *type,
                                                                       uint32_t *out_value) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    TESSERA_API_REQUIRE(type);
    TESSERA_API_REQUIRE(out_value);
    if (!builder->current)
      return invalidArg("tessera_program_builder_add_parameter: no open function (call begin_function)");
    std::string where = "@" + builder->current->function().name + " parameter " +
                        std::to_string(builder->current->function().params.size());
    auto t = convertType(type, where);
    if (!t)
      return toStatus(t.error());
    auto v = builder->current->addParam(name ? name : "", t.take());
    if (!v)
      return located(v.error(), where);
    *out_value = *v;
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_builder_add_op(tessera_program_builder_t *builder,
                                                                const tessera_ir_op_desc_t *desc,
                                                                uint32_t *out_results, size_t results_capacity,
                                                                size_t *out_result_count) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    TESSERA_API_REQUIRE(desc);
    if (!builder->current)
      return invalidArg("tessera_program_builder_add_op: no open function (call begin_function)");
    tessera_ir_op_desc_t d;
    if (!readStruct(desc, TESSERA_IR_OP_DESC_STRUCT_SIZE, d))
      return invalidArg("tessera_program_builder_add_op: desc->struct_size is smaller than "
                        "TESSERA_IR_OP_DESC_STRUCT_SIZE");
    if (!d.op)
      return invalidArg("tessera_program_builder_add_op: desc->op is NULL");
    const ir::Function &fn = builder->current->function();
    std::string where = "@" + fn.name + " op " + std::to_string(fn.ops.size()) + " ('" + d.op + "')";
    const ir::OpInfo *info = ir::lookupOp(d.op);
    if (!info) {
      std::string msg = "unknown op '" + std::string(d.op) + "'";
      auto similar = ir::similarOpNames(d.op);
      if (!similar.empty())
        msg += "\nhint: did you mean '" + similar[0] + "'?";
      return toStatus(makeError(ErrorCode::InvalidIR, where + ": " + msg));
    }
    if ((d.operand_count && !d.operands) || (d.attribute_count && !d.attributes) ||
        (d.result_type_count && !d.result_types) || (d.result_name_count && !d.result_names))
      return invalidArg(where + ": a NULL array with a nonzero count");
    if (d.operand_count > 4096 || d.attribute_count > 256 || d.result_type_count > 4096 ||
        d.result_name_count > 4096)
      return makeStatus(TESSERA_STATUS_RESOURCE_EXHAUSTED, where + ": too many operands, attributes or results");
    SourceLocation loc;
    bool explicitLoc = false;
    if (d.location) {
      if (d.location->struct_size < TESSERA_SOURCE_LOCATION_STRUCT_SIZE)
        return invalidArg(where + ": location->struct_size is too small");
      loc.file = d.location->file ? d.location->file : "<builder>";
      loc.line = d.location->line;
      loc.column = d.location->column;
      explicitLoc = loc.known();
    }
    std::vector<ir::ValueId> operands(d.operands, d.operands + d.operand_count);
    ir::AttrList attrs;
    for (size_t i = 0; i < d.attribute_count; ++i) {
      tessera_ir_attribute_t a;
      if (!readStruct(&d.attributes[i], TESSERA_IR_ATTRIBUTE_STRUCT_SIZE, a))
        return invalidArg(where + ": attribute " + std::to_string(i) + " has a too small struct_size");
      if (!a.name)
        return invalidArg(where + ": attribute " + std::to_string(i) + " has a NULL name");
      auto v = convertAttr(a, where + " attribute '" + a.name + "'");
      if (!v)
        return toStatus(v.error());
      if (attrs.find(a.name))
        return toStatus(makeError(ErrorCode::InvalidIR, where + ": attribute '" + a.name + "' is given twice", loc));
      attrs.set(a.name, v.take());
    }
    std::vector<ir::TensorType> annotations;
    for (size_t i = 0; i < d.result_type_count; ++i) {
      auto t = convertType(&d.result_types[i], where + " result type " + std::to_string(i));
      if (!t)
        return toStatus(t.error());
      annotations.push_back(t.take());
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < d.result_name_count; ++i) {
      if (!d.result_names[i])
        return invalidArg(where + ": result name " + std::to_string(i) + " is NULL");
      names.emplace_back(d.result_names[i]);
    }
    // Check the capacity before adding so a failure leaves nothing behind.
    int expect = info->numResults;
    if (expect < 0) {
      const ir::Attribute *sizes = attrs.find("sizes");
      const ir::Attribute *num = attrs.find("num");
      expect = sizes && sizes->kind() == ir::AttrKind::IntList ? int(sizes->getInts().size())
               : num && num->kind() == ir::AttrKind::Int       ? int(std::min<int64_t>(num->getInt(), 1 << 20))
                                                               : 0;
    }
    // An absurd split count is left to the verifier, which names the limit.
    bool plausible = expect >= 0 && expect <= 4096;
    if (out_results == nullptr ? results_capacity != 0 : plausible && results_capacity < size_t(expect))
      return invalidArg(where + ": results_capacity " + std::to_string(results_capacity) + " is less than the " +
                        std::to_string(expect) + " results of the op");
    auto rs = builder->current->addOp(info->kind, std::move(operands), std::move(attrs), std::move(annotations), loc,
                                      explicitLoc, std::move(names));
    if (!rs)
      return located(rs.error(), where);
    for (size_t i = 0; i < rs->size() && i < results_capacity; ++i)
      out_results[i] = (*rs)[i];
    if (out_result_count)
      *out_result_count = rs->size();
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_builder_value_type(const tessera_program_builder_t *builder,
                                                                    uint32_t value, tessera_blob_t **out_text) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    TESSERA_API_REQUIRE(out_text);
    if (!builder->current)
      return invalidArg("tessera_program_builder_value_type: no open function");
    const ir::Function &fn = builder->current->function();
    if (value >= fn.values.size())
      return invalidArg("value " + std::to_string(value) + " is not a value of @" + fn.name);
    *out_text = makeBlob(fn.typeOf(value).str());
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_builder_finish_function(tessera_program_builder_t *builder,
                                                                         const uint32_t *results,
                                                                         size_t result_count) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    if (!builder->current)
      return invalidArg("tessera_program_builder_finish_function: no open function");
    if (result_count == 0 || !results)
      return invalidArg("tessera_program_builder_finish_function: a function returns at least one value");
    auto fn = builder->current->finish(std::vector<ir::ValueId>(results, results + result_count));
    if (!fn)
      return located(fn.error(), "@" + builder->current->function().name);
    builder->module.functions.push_back(fn.take());
    builder->current.reset();
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_builder_finish(tessera_program_builder_t *builder,
                                                                tessera_program_t **out_program) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(builder);
    TESSERA_API_REQUIRE(out_program);
    if (builder->current)
      return invalidArg("tessera_program_builder_finish: @" + builder->current->function().name +
                        " is still open; call finish_function first");
    if (builder->module.functions.empty())
      return invalidArg("tessera_program_builder_finish: the program has no functions");
    ir::Module m = std::move(builder->module);
    builder->module = ir::Module();
    if (auto e = shape::verifyAndInfer(m))
      return toStatus(e);
    *out_program = new tessera_program_t{std::move(m)};
    return nullptr;
  })
}

} // extern "C"
