// ONNX TensorProto <-> host tensors: dtype mapping, the typed and raw data
// fields, external data files, and conversion to the reference
// interpreter's float64 tensors.
#ifndef TESSERA_ONNX_TENSOR_H
#define TESSERA_ONNX_TENSOR_H

#include "ir/DType.h"
#include "reference/RefTensor.h"
#include "support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace onnx {
class TensorProto;
} // namespace onnx

namespace tessera::onnx {

// A tensor as raw little-endian elements in the IR dtype's storage encoding
// (the encoding of constant `data` and of DLPack buffers).
struct HostTensor {
  std::string name;
  ir::DType dtype = ir::DType::Invalid;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numElements() const;
};

// ONNX TensorProto.DataType -> IR dtype. Unsupported (naming the ONNX type
// and `what`) for types the IR lacks (uint16/32/64, string, complex, ...).
Expected<ir::DType> dtypeFromOnnx(int32_t onnxType, const std::string &what);
// Name of an ONNX data type ("FLOAT", "UINT16", ...).
const char *onnxTypeName(int32_t onnxType);
// IR dtype -> ONNX TensorProto.DataType.
int32_t dtypeToOnnx(ir::DType dtype);

// Decodes a TensorProto. `baseDir` resolves external data (data_location =
// EXTERNAL, relative `location`, `offset`, `length`). Errors: Unsupported
// dtype; CorruptData when the data size does not match the dims (naming the
// tensor and both sizes); IOError for unreadable external files.
Expected<HostTensor> decodeTensor(const ::onnx::TensorProto &proto, const std::string &baseDir);
// Parses serialized TensorProto bytes (a test_data_set_*/*.pb file) and
// decodes them. CorruptData for bytes that do not parse.
Expected<HostTensor> parseTensor(const void *bytes, size_t size, const std::string &baseDir = "");

// Host tensor <-> reference tensor (values as doubles).
Expected<ref::RefTensor> toRef(const HostTensor &tensor);
Expected<HostTensor> fromRef(const ref::RefTensor &tensor);

// Standard base64 of `bytes` (for constant `data = "base64:..."`).
std::string base64Encode(const uint8_t *bytes, size_t size);

} // namespace tessera::onnx

#endif // TESSERA_ONNX_TENSOR_H
