// The reference interpreter and the symbol list of a function through the C
// ABI (tessera_ir.h): lets clients such as `tessera run --check` compare a
// compiled module with the float64 oracle using only the public API.
#include "api/Buffer.h"
#include "api/Program.h"
#include "api/Status.h"
#include "tessera/sdk/element.h"

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

// Element codec: the values are already rounded to their dtype by the
// interpreter, so encoding is exact (sdk/element.h).
using sdk::loadElement;
using sdk::storeElement;

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
