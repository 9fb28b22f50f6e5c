// The reference interpreter and the symbol list of a function through the C
// ABI (tessera_ir.h): lets clients such as `tessera run --check` compare a
// compiled module with the float64 oracle using only the public API.
#include "api/Buffer.h"
#include "api/Program.h"
#include "api/Status.h"

#include "pipeline/Pipeline.h"
#include "reference/Evaluator.h"

#include <dlpack/dlpack.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

using namespace tessera;
using namespace tessera::api;

namespace {

// Decodes a float with `e` exponent and `m` mantissa bits (no sign handling
// beyond the top bit); `fn` formats (e4m3fn) have no infinities and one NaN.
double decodeMinifloat(uint32_t bits, int e, int m, bool fn) {
  uint32_t sign = bits >> (e + m) & 1, exp = bits >> m & ((1u << e) - 1), man = bits & ((1u << m) - 1);
  int bias = (1 << (e - 1)) - 1;
  double s = sign ? -1.0 : 1.0;
  if (exp == (1u << e) - 1) {
    if (fn) {
      if (man == (1u << m) - 1)
        return std::nan("");
    } else {
      return man ? std::nan("") : s * INFINITY;
    }
  }
  if (exp == 0)
    return s * std::ldexp(static_cast<double>(man), 1 - bias - m);
  return s * std::ldexp(static_cast<double>(man | (1u << m)), static_cast<int>(exp) - bias - m);
}

// Encodes a value already rounded to the 8-bit format (exact search).
uint8_t encodeFp8(double v, bool e4m3) {
  for (uint32_t code = 0; code < 256; ++code) {
    double d = e4m3 ? decodeMinifloat(code, 4, 3, true) : decodeMinifloat(code, 5, 2, false);
    if (std::isnan(v) ? std::isnan(d) : (d == v && std::signbit(d) == std::signbit(v)))
      return static_cast<uint8_t>(code);
  }
  return e4m3 ? 0x7f : 0x7e; // NaN: not reached for rounded values
}

double loadElement(tessera_dtype_t dtype, const unsigned char *p) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: { double v; std::memcpy(&v, p, 8); return v; }
  case TESSERA_DTYPE_F32: { float v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_F16: { _Float16 v; std::memcpy(&v, p, 2); return static_cast<double>(v); }
  case TESSERA_DTYPE_BF16: {
    uint16_t b; std::memcpy(&b, p, 2);
    uint32_t w = static_cast<uint32_t>(b) << 16; float v; std::memcpy(&v, &w, 4); return v;
  }
  case TESSERA_DTYPE_F8E4M3: return decodeMinifloat(*p, 4, 3, true);
  case TESSERA_DTYPE_F8E5M2: return decodeMinifloat(*p, 5, 2, false);
  case TESSERA_DTYPE_I64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  case TESSERA_DTYPE_I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  case TESSERA_DTYPE_I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
  case TESSERA_DTYPE_I8: return static_cast<int8_t>(*p);
  case TESSERA_DTYPE_U8: return *p;
  case TESSERA_DTYPE_BOOL: return *p ? 1.0 : 0.0;
  default: return 0;
  }
}

// Stores a value already rounded to `dtype` by the interpreter.
void storeElement(tessera_dtype_t dtype, double v, unsigned char *p) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: std::memcpy(p, &v, 8); break;
  case TESSERA_DTYPE_F32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
  case TESSERA_DTYPE_F16: { _Float16 h = static_cast<_Float16>(v); std::memcpy(p, &h, 2); break; }
  case TESSERA_DTYPE_BF16: {
    float f = static_cast<float>(v); uint32_t w; std::memcpy(&w, &f, 4);
    uint16_t b = static_cast<uint16_t>(w >> 16); std::memcpy(p, &b, 2); break;
  }
  case TESSERA_DTYPE_F8E4M3: *p = encodeFp8(v, true); break;
  case TESSERA_DTYPE_F8E5M2: *p = encodeFp8(v, false); break;
  case TESSERA_DTYPE_I64: { int64_t i = static_cast<int64_t>(v); std::memcpy(p, &i, 8); break; }
  case TESSERA_DTYPE_I32: { int32_t i = static_cast<int32_t>(v); std::memcpy(p, &i, 4); break; }
  case TESSERA_DTYPE_I16: { int16_t i = static_cast<int16_t>(v); std::memcpy(p, &i, 2); break; }
  case TESSERA_DTYPE_I8: *p = static_cast<unsigned char>(static_cast<int8_t>(v)); break;
  case TESSERA_DTYPE_U8: *p = static_cast<unsigned char>(v); break;
  case TESSERA_DTYPE_BOOL: *p = v != 0; break;
  default: break;
  }
}

// Host memory owned through a DLManagedTensor, so the tensor frees it.
struct HostBlock {
  DLManagedTensor managed{};
  std::vector<int64_t> shape;
  void *data = nullptr;
};

void hostDeleter(DLManagedTensor *self) {
  auto *block = static_cast<HostBlock *>(self->manager_ctx);
  std::free(block->data);
  delete block;
}

std::unique_ptr<tessera_tensor_t> hostTensor(tessera_dtype_t dtype, const std::vector<int64_t> &shape) {
  uint64_t bytes = dtypeSize(dtype);
  for (int64_t d : shape)
    bytes *= static_cast<uint64_t>(d);
  auto block = std::make_unique<HostBlock>();
  block->data = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (!block->data)
    throw std::bad_alloc();
  block->shape = shape;
  block->managed.manager_ctx = block.get();
  block->managed.deleter = hostDeleter;
  DLTensor &dl = block->managed.dl_tensor;
  dl.data = block->data;
  dl.device = {kDLCPU, 0};
  dl.ndim = static_cast<int32_t>(shape.size());
  dl.shape = block->shape.data();
  auto t = std::make_unique<tessera_tensor_t>();
  t->dtype = dtype;
  t->shape = shape;
  t->data = block->data;
  t->sizeBytes = bytes;
  t->deviceKind = TESSERA_DEVICE_KIND_CPU;
  t->deviceOrdinal = 0;
  void *data = block->data;
  t->storage = Storage::adopt(&block.release()->managed, nullptr, data, bytes);
  return t;
}

Expected<ir::Function> entryFunction(const tessera_program_t *program, const char *entry) {
  Expected<size_t> index = pipeline::selectEntry(program->module, entry ? entry : "");
  if (!index)
    return index.takeError();
  return program->module.functions[*index];
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_program_function_symbols(const tessera_program_t *program,
                                                                  const char *entry, tessera_program_symbols_t which,
                                                                  tessera_blob_t **out_text) {
  TESSERA_API_REQUIRE(program);
  TESSERA_API_REQUIRE(out_text);
  if (which != TESSERA_PROGRAM_SYMBOLS_ALL && which != TESSERA_PROGRAM_SYMBOLS_UNDETERMINED)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                      "tessera_program_function_symbols: unknown selector " + std::to_string(which));
  TESSERA_API_GUARD({
    Expected<ir::Function> fn = entryFunction(program, entry);
    if (!fn)
      return toStatus(fn.error());
    std::vector<std::string> fromParams = fn->paramSymbols();
    std::string text;
    for (const std::string &s : pipeline::functionSymbols(*fn)) {
      bool determined = std::find(fromParams.begin(), fromParams.end(), s) != fromParams.end();
      if (which == TESSERA_PROGRAM_SYMBOLS_UNDETERMINED && determined)
        continue;
      text += (text.empty() ? "" : ",") + s;
    }
    *out_text = makeBlob(std::move(text));
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_program_run_reference(const tessera_program_t *program, const char *entry,
                                                               const char *bind, size_t num_inputs,
                                                               tessera_tensor_t *const *inputs, size_t num_outputs,
                                                               tessera_tensor_t **outputs) {
  TESSERA_API_REQUIRE(program);
  if (num_inputs > 0)
    TESSERA_API_REQUIRE(inputs);
  if (num_outputs > 0)
    TESSERA_API_REQUIRE(outputs);
  TESSERA_API_GUARD({
    Expected<ir::Function> fn = entryFunction(program, entry);
    if (!fn)
      return toStatus(fn.error());
    if (bind) {
      Expected<ir::SymbolBindings> bindings = pipeline::parseBindings(bind);
      if (!bindings)
        return toStatus(bindings.error());
      if (!bindings->empty())
        if (Error e = pipeline::specialize(*fn, *bindings))
          return toStatus(e);
    }
    if (num_inputs != fn->params.size())
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "@" + fn->name + " takes " +
                                                             std::to_string(fn->params.size()) + " inputs, got " +
                                                             std::to_string(num_inputs));
    if (num_outputs != fn->returns.size())
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "@" + fn->name + " returns " +
                                                             std::to_string(fn->returns.size()) +
                                                             " results; num_outputs is " + std::to_string(num_outputs));
    std::vector<ref::RefTensor> refInputs;
    for (size_t i = 0; i < num_inputs; ++i) {
      const tessera_tensor_t *t = inputs[i];
      const ir::Value &param = fn->value(fn->params[i]);
      std::string which = "input " + std::to_string(i) + " (%" + param.name + ")";
      if (!t)
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, which + " is NULL");
      if (static_cast<int32_t>(t->dtype) != static_cast<int32_t>(param.type.dtype))
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                          which + " has dtype " + ir::dtypeName(static_cast<ir::DType>(t->dtype)) + ", expected " +
                              ir::dtypeName(param.type.dtype));
      std::vector<unsigned char> bytes(t->sizeBytes);
      if (tessera_status_t *s = tessera_tensor_copy_to_host(t, bytes.data(), t->sizeBytes))
        return s;
      Expected<ref::DType> dtype = ref::fromIRDType(param.type.dtype);
      if (!dtype)
        return toStatus(dtype.error());
      size_t elem = dtypeSize(t->dtype), count = elem ? t->sizeBytes / elem : 0;
      std::vector<double> values(count);
      for (size_t k = 0; k < count; ++k)
        values[k] = loadElement(t->dtype, bytes.data() + k * elem);
      refInputs.emplace_back(*dtype, t->shape, std::move(values));
    }
    Expected<std::vector<ref::RefTensor>> results = ref::evaluate(*fn, std::move(refInputs));
    if (!results)
      return toStatus(results.error());
    std::vector<std::unique_ptr<tessera_tensor_t>> out;
    for (size_t r = 0; r < num_outputs; ++r) {
      const ref::RefTensor &rt = (*results)[r];
      tessera_dtype_t dtype = static_cast<tessera_dtype_t>(fn->typeOf(fn->returns[r]).dtype);
      std::unique_ptr<tessera_tensor_t> t = hostTensor(dtype, rt.shape);
      size_t elem = dtypeSize(dtype);
      auto *p = static_cast<unsigned char *>(t->data);
      for (size_t k = 0; k < rt.data.size(); ++k)
        storeElement(dtype, rt.data[k], p + k * elem);
      out.push_back(std::move(t));
    }
    for (size_t r = 0; r < num_outputs; ++r)
      outputs[r] = out[r].release();
    return nullptr;
  })
}

} // extern "C"
