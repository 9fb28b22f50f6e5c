#include "onnx/Tensor.h"

#include "reference/Evaluator.h"
#include "tessera/sdk/element.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <fstream>

namespace tessera::onnx {

namespace {

using ::onnx::TensorProto;

template <typename T> void put(std::vector<uint8_t> &out, size_t index, T v) {
  std::memcpy(out.data() + index * sizeof(T), &v, sizeof(T));
}
template <typename T> T get(const std::vector<uint8_t> &in, size_t index) {
  T v;
  std::memcpy(&v, in.data() + index * sizeof(T), sizeof(T));
  return v;
}

size_t elementBytes(ir::DType dtype) { return ir::dtypeBits(dtype) / 8; }

Error corrupt(const std::string &name, const std::string &what) {
  return makeError(ErrorCode::CorruptData, "tensor '" + name + "': " + what);
}

Expected<std::vector<uint8_t>> readExternal(const TensorProto &proto, const std::string &baseDir) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : proto.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset" || kv.key() == "length") {
      char *end = nullptr;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (kv.value().empty() || *end || v < 0)
        return corrupt(proto.name(), "external data " + kv.key() + " '" + kv.value() + "' is not a non-negative integer");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty())
    return corrupt(proto.name(), "external data without a 'location'");
  if (location.find("..") != std::string::npos || location[0] == '/')
    return corrupt(proto.name(), "external data location '" + location + "' must be relative to the model directory");
  std::string path = baseDir.empty() ? location : baseDir + "/" + location;
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return makeError(ErrorCode::IOError, "tensor '" + proto.name() + "': cannot open external data file '" + path + "'");
  file.seekg(0, std::ios::end);
  int64_t fileSize = file.tellg();
  if (offset > fileSize)
    return corrupt(proto.name(), "external data offset " + std::to_string(offset) + " is beyond the end of '" + path +
                                     "' (" + std::to_string(fileSize) + " bytes)");
  if (length < 0)
    length = fileSize - offset;
  if (offset + length > fileSize)
    return corrupt(proto.name(), "external data [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                                     ") is beyond the end of '" + path + "' (" + std::to_string(fileSize) + " bytes)");
  std::vector<uint8_t> bytes(static_cast<size_t>(length));
  file.seekg(offset);
  file.read(reinterpret_cast<char *>(bytes.data()), length);
  if (!file)
    return makeError(ErrorCode::IOError, "tensor '" + proto.name() + "': cannot read external data file '" + path + "'");
  return bytes;
}

} // namespace

int64_t HostTensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

const char *onnxTypeName(int32_t t) {
  switch (t) {
  case TensorProto::FLOAT: return "FLOAT";
  case TensorProto::UINT8: return "UINT8";
  case TensorProto::INT8: return "INT8";
  case TensorProto::UINT16: return "UINT16";
  case TensorProto::INT16: return "INT16";
  case TensorProto::INT32: return "INT32";
  case TensorProto::INT64: return "INT64";
  case TensorProto::STRING: return "STRING";
  case TensorProto::BOOL: return "BOOL";
  case TensorProto::FLOAT16: return "FLOAT16";
  case TensorProto::DOUBLE: return "DOUBLE";
  case TensorProto::UINT32: return "UINT32";
  case TensorProto::UINT64: return "UINT64";
  case TensorProto::COMPLEX64: return "COMPLEX64";
  case TensorProto::COMPLEX128: return "COMPLEX128";
  case TensorProto::BFLOAT16: return "BFLOAT16";
  case TensorProto::UNDEFINED: return "UNDEFINED";
  default: return "unknown";
  }
}

Expected<ir::DType> dtypeFromOnnx(int32_t t, const std::string &what) {
  switch (t) {
  case TensorProto::FLOAT: return ir::DType::F32;
  case TensorProto::DOUBLE: return ir::DType::F64;
  case TensorProto::FLOAT16: return ir::DType::F16;
  case TensorProto::BFLOAT16: return ir::DType::BF16;
  case TensorProto::INT64: return ir::DType::I64;
  case TensorProto::INT32: return ir::DType::I32;
  case TensorProto::INT16: return ir::DType::I16;
  case TensorProto::INT8: return ir::DType::I8;
  case TensorProto::UINT8: return ir::DType::U8;
  case TensorProto::BOOL: return ir::DType::Bool;
  default:
    return makeError(ErrorCode::Unsupported, what + ": ONNX data type " + std::string(onnxTypeName(t)) + " (" +
                                                 std::to_string(t) + ") is not supported by the Graph IR");
  }
}

int32_t dtypeToOnnx(ir::DType dtype) {
  switch (dtype) {
  case ir::DType::F32: return TensorProto::FLOAT;
  case ir::DType::F64: return TensorProto::DOUBLE;
  case ir::DType::F16: return TensorProto::FLOAT16;
  case ir::DType::BF16: return TensorProto::BFLOAT16;
  case ir::DType::I64: return TensorProto::INT64;
  case ir::DType::I32: return TensorProto::INT32;
  case ir::DType::I16: return TensorProto::INT16;
  case ir::DType::I8: return TensorProto::INT8;
  case ir::DType::U8: return TensorProto::UINT8;
  case ir::DType::Bool: return TensorProto::BOOL;
  default: return TensorProto::UNDEFINED;
  }
}

Expected<HostTensor> decodeTensor(const TensorProto &proto, const std::string &baseDir) {
  HostTensor out;
  out.name = proto.name();
  std::string what = "tensor '" + proto.name() + "'";
  if (proto.has_segment())
    return makeError(ErrorCode::Unsupported, what + ": segmented tensors are not supported");
  Expected<ir::DType> dtype = dtypeFromOnnx(proto.data_type(), what);
  if (!dtype)
    return dtype.takeError();
  out.dtype = *dtype;
  int64_t count = 1;
  for (int64_t d : proto.dims()) {
    if (d < 0)
      return corrupt(proto.name(), "negative dim " + std::to_string(d));
    if (d != 0 && count > (int64_t(1) << 40) / d)
      return corrupt(proto.name(), "too many elements");
    count *= d;
    out.shape.push_back(d);
  }
  size_t esize = elementBytes(out.dtype);
  size_t expectBytes = size_t(count) * esize;
  auto sizeError = [&](size_t got, const char *field) {
    return corrupt(proto.name(), std::string(field) + " holds " + std::to_string(got) + " elements but dims " +
                                     ref::shapeString(out.shape) + " need " + std::to_string(count));
  };

  if (proto.data_location() == TensorProto::EXTERNAL) {
    Expected<std::vector<uint8_t>> bytes = readExternal(proto, baseDir);
    if (!bytes)
      return bytes.takeError();
    if (bytes->size() != expectBytes)
      return corrupt(proto.name(), "external data has " + std::to_string(bytes->size()) + " bytes but dims " +
                                       ref::shapeString(out.shape) + " of " + ir::dtypeName(out.dtype) + " need " +
                                       std::to_string(expectBytes));
    out.bytes = std::move(*bytes);
    return out;
  }
  if (proto.has_raw_data()) {
    const std::string &raw = proto.raw_data();
    if (raw.size() != expectBytes)
      return corrupt(proto.name(), "raw_data has " + std::to_string(raw.size()) + " bytes but dims " +
                                       ref::shapeString(out.shape) + " of " + ir::dtypeName(out.dtype) + " need " +
                                       std::to_string(expectBytes));
    out.bytes.assign(raw.begin(), raw.end());
    if (out.dtype == ir::DType::Bool)
      for (uint8_t &b : out.bytes)
        b = b != 0;
    return out;
  }
  out.bytes.assign(expectBytes, 0);
  size_t n = size_t(count);
  switch (out.dtype) {
  case ir::DType::F32:
    if (size_t(proto.float_data_size()) != n)
      return sizeError(proto.float_data_size(), "float_data");
    for (size_t i = 0; i < n; ++i)
      put<float>(out.bytes, i, proto.float_data(int(i)));
    break;
  case ir::DType::F64:
    if (size_t(proto.double_data_size()) != n)
      return sizeError(proto.double_data_size(), "double_data");
    for (size_t i = 0; i < n; ++i)
      put<double>(out.bytes, i, proto.double_data(int(i)));
    break;
  case ir::DType::I64:
    if (size_t(proto.int64_data_size()) != n)
      return sizeError(proto.int64_data_size(), "int64_data");
    for (size_t i = 0; i < n; ++i)
      put<int64_t>(out.bytes, i, proto.int64_data(int(i)));
    break;
  default: // int32_data carries every narrower type (f16/bf16 as bit patterns)
    if (size_t(proto.int32_data_size()) != n)
      return sizeError(proto.int32_data_size(), "int32_data");
    for (size_t i = 0; i < n; ++i) {
      int32_t v = proto.int32_data(int(i));
      switch (out.dtype) {
      case ir::DType::I32: put<int32_t>(out.bytes, i, v); break;
      case ir::DType::I16: put<int16_t>(out.bytes, i, int16_t(v)); break;
      case ir::DType::F16:
      case ir::DType::BF16: put<uint16_t>(out.bytes, i, uint16_t(v)); break;
      case ir::DType::I8: put<int8_t>(out.bytes, i, int8_t(v)); break;
      case ir::DType::U8: put<uint8_t>(out.bytes, i, uint8_t(v)); break;
      case ir::DType::Bool: put<uint8_t>(out.bytes, i, v != 0); break;
      default: return internalError("decodeTensor: unhandled dtype");
      }
    }
  }
  return out;
}

Expected<HostTensor> parseTensor(const void *bytes, size_t size, const std::string &baseDir) {
  TensorProto proto;
  if (size > size_t(INT32_MAX) || !proto.ParseFromArray(bytes, int(size)))
    return makeError(ErrorCode::CorruptData, "the bytes are not a valid ONNX TensorProto");
  return decodeTensor(proto, baseDir);
}

Expected<ref::RefTensor> toRef(const HostTensor &t) {
  Expected<ref::DType> dtype = ref::fromIRDType(t.dtype);
  if (!dtype)
    return dtype.takeError();
  size_t n = size_t(t.numElements());
  auto dt = static_cast<tessera_dtype_t>(t.dtype); // ir::DType mirrors the ABI enum
  if (sdk::dtypeSize(dt) == 0)
    return makeError(ErrorCode::Unsupported, std::string("toRef: dtype ") + ir::dtypeName(t.dtype));
  std::vector<double> data(n);
  for (size_t i = 0; i < n; ++i)
    data[i] = sdk::loadElement(dt, t.bytes.data() + i * sdk::dtypeSize(dt));
  return ref::RefTensor(*dtype, t.shape, std::move(data));
}

Expected<HostTensor> fromRef(const ref::RefTensor &t) {
  HostTensor out;
  out.dtype = ref::toIRDType(t.dtype);
  out.shape = t.shape;
  size_t n = t.data.size();
  out.bytes.assign(n * elementBytes(out.dtype), 0);
  auto dt = static_cast<tessera_dtype_t>(out.dtype);
  if (sdk::dtypeSize(dt) == 0)
    return makeError(ErrorCode::Unsupported, std::string("fromRef: dtype ") + ir::dtypeName(out.dtype));
  // Reference results are already rounded to their dtype: encoding is exact.
  for (size_t i = 0; i < n; ++i)
    sdk::storeElement(dt, t.data[i], out.bytes.data() + i * sdk::dtypeSize(dt));
  return out;
}

std::string base64Encode(const uint8_t *bytes, size_t size) {
  static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    uint32_t v = uint32_t(bytes[i]) << 16;
    if (i + 1 < size)
      v |= uint32_t(bytes[i + 1]) << 8;
    if (i + 2 < size)
      v |= bytes[i + 2];
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < size ? table[(v >> 6) & 63] : '=';
    out += i + 2 < size ? table[v & 63] : '=';
  }
  return out;
}

} // namespace tessera::onnx
