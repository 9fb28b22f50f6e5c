#include "api/Buffer.h"
#include "api/Context.h"
#include "api/Status.h"

#include <dlpack/dlpack.h>

#include <cstring>

using namespace tessera;
using namespace tessera::api;

namespace {

// DLPack type codes beyond the 0.6 header Debian ships (values from DLPack
// 1.1's DLDataTypeCode; they never change).
constexpr uint8_t kDLBoolCode = 6;
constexpr uint8_t kDLFloat8E4M3FnCode = 10;
constexpr uint8_t kDLFloat8E5M2Code = 12;
// Device types added after DLPack 0.6 (values from DLPack 1.1's DLDeviceType).
constexpr int kDLOneAPICode = 14;
constexpr int kDLWebGPUCode = 15;

tessera_dtype_t fromDLDataType(DLDataType t) {
  if (t.lanes != 1)
    return TESSERA_DTYPE_INVALID;
  switch (t.code) {
  case kDLFloat:
    return t.bits == 64 ? TESSERA_DTYPE_F64 : t.bits == 32 ? TESSERA_DTYPE_F32
                                            : t.bits == 16 ? TESSERA_DTYPE_F16 : TESSERA_DTYPE_INVALID;
  case kDLBfloat: return t.bits == 16 ? TESSERA_DTYPE_BF16 : TESSERA_DTYPE_INVALID;
  case kDLInt:
    return t.bits == 64 ? TESSERA_DTYPE_I64 : t.bits == 32 ? TESSERA_DTYPE_I32
                                            : t.bits == 16 ? TESSERA_DTYPE_I16
                                            : t.bits == 8  ? TESSERA_DTYPE_I8 : TESSERA_DTYPE_INVALID;
  case kDLUInt: return t.bits == 8 ? TESSERA_DTYPE_U8 : TESSERA_DTYPE_INVALID;
  case kDLBoolCode: return t.bits == 8 ? TESSERA_DTYPE_BOOL : TESSERA_DTYPE_INVALID;
  case kDLFloat8E4M3FnCode: return t.bits == 8 ? TESSERA_DTYPE_F8E4M3 : TESSERA_DTYPE_INVALID;
  case kDLFloat8E5M2Code: return t.bits == 8 ? TESSERA_DTYPE_F8E5M2 : TESSERA_DTYPE_INVALID;
  default: return TESSERA_DTYPE_INVALID;
  }
}

DLDataType toDLDataType(tessera_dtype_t d) {
  DLDataType t{0, static_cast<uint8_t>(dtypeSize(d) * 8), 1};
  switch (d) {
  case TESSERA_DTYPE_F64: case TESSERA_DTYPE_F32: case TESSERA_DTYPE_F16: t.code = kDLFloat; break;
  case TESSERA_DTYPE_BF16: t.code = kDLBfloat; break;
  case TESSERA_DTYPE_I64: case TESSERA_DTYPE_I32: case TESSERA_DTYPE_I16: case TESSERA_DTYPE_I8:
    t.code = kDLInt; break;
  case TESSERA_DTYPE_U8: t.code = kDLUInt; break;
  case TESSERA_DTYPE_BOOL: t.code = kDLBoolCode; break;
  case TESSERA_DTYPE_F8E4M3: t.code = kDLFloat8E4M3FnCode; break;
  case TESSERA_DTYPE_F8E5M2: t.code = kDLFloat8E5M2Code; break;
  default: break;
  }
  return t;
}

tessera_device_kind_t fromDLDevice(DLDeviceType t) {
  switch (static_cast<int>(t)) {
  case kDLCPU: case kDLCUDAHost: return TESSERA_DEVICE_KIND_CPU;
  case kDLCUDA: case kDLCUDAManaged: return TESSERA_DEVICE_KIND_CUDA;
  case kDLROCM: return TESSERA_DEVICE_KIND_ROCM;
  case kDLOneAPICode: return TESSERA_DEVICE_KIND_ONEAPI;
  case kDLWebGPUCode: return TESSERA_DEVICE_KIND_WEBGPU;
  default: return TESSERA_DEVICE_KIND_UNKNOWN;
  }
}

// Element count of a shape, or an error on negative dims / overflow.
tessera_status_t *elementCount(uint32_t rank, const int64_t *shape, tessera_dtype_t dtype, uint64_t *out_bytes) {
  if (rank > TESSERA_MAX_RANK)
    return makeStatus(TESSERA_STATUS_RESOURCE_EXHAUSTED,
                      "rank " + std::to_string(rank) + " exceeds the maximum " + std::to_string(TESSERA_MAX_RANK));
  size_t elemSize = dtypeSize(dtype);
  if (elemSize == 0)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "unknown dtype " + std::to_string(dtype));
  unsigned __int128 bytes = elemSize;
  for (uint32_t i = 0; i < rank; ++i) {
    if (shape[i] < 0)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                        "dimension " + std::to_string(i) + " is negative (" + std::to_string(shape[i]) + ")");
    bytes *= static_cast<uint64_t>(shape[i]);
    if (bytes > (static_cast<unsigned __int128>(1) << 62))
      return makeStatus(TESSERA_STATUS_RESOURCE_EXHAUSTED, "tensor size overflows (more than 2^62 bytes)");
  }
  *out_bytes = static_cast<uint64_t>(bytes);
  return nullptr;
}

struct ExportContext {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape;
  DLManagedTensor managed;
};

void exportDeleter(DLManagedTensor *self) { delete static_cast<ExportContext *>(self->manager_ctx); }

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_tensor_create(tessera_device_t *device, tessera_dtype_t dtype,
                                                       uint32_t rank, const int64_t *shape,
                                                       tessera_tensor_t **out_tensor) {
  TESSERA_API_REQUIRE(device);
  TESSERA_API_REQUIRE(out_tensor);
  if (rank > 0 && !shape)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_tensor_create: shape is NULL with rank > 0");
  uint64_t bytes = 0;
  if (tessera_status_t *s = elementCount(rank, shape, dtype, &bytes))
    return s;
  TESSERA_API_GUARD({
    Expected<std::shared_ptr<Storage>> storage = Storage::allocate(device, bytes);
    if (!storage)
      return toStatus(storage.error());
    auto tensor = std::make_unique<tessera_tensor_t>();
    tensor->storage = storage.take();
    tensor->dtype = dtype;
    tensor->shape.assign(shape, shape + rank);
    tensor->data = tensor->storage->data();
    tensor->sizeBytes = bytes;
    tensor->deviceKind = device->kind;
    tensor->deviceOrdinal = static_cast<int32_t>(device->ordinal);
    *out_tensor = tensor.release();
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_tensor_get_info(const tessera_tensor_t *tensor,
                                                         tessera_tensor_info_t *out_info) {
  TESSERA_API_REQUIRE(tensor);
  TESSERA_API_REQUIRE(out_info);
  if (out_info->struct_size < TESSERA_TENSOR_INFO_STRUCT_SIZE)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_tensor_get_info: struct_size too small");
  tessera_tensor_info_t info{};
  info.struct_size = sizeof(info);
  info.dtype = tensor->dtype;
  info.rank = static_cast<uint32_t>(tensor->shape.size());
  info.shape = tensor->shape.data();
  info.data = tensor->data;
  info.size_bytes = tensor->sizeBytes;
  info.device = tensor->storage->device();
  info.device_kind = tensor->deviceKind;
  info.device_ordinal = tensor->deviceOrdinal;
  copyOut(out_info, info);
  return nullptr;
}

TESSERA_EXPORT void tessera_tensor_free(tessera_tensor_t *tensor) { delete tensor; }

namespace {

// Host copies through the owning plugin; tensors of host memory no plugin
// owns (imported kDLCPU without a matching device) are plain memcpy.
tessera_status_t *tensorCopy(const tessera_tensor_t *tensor, void *host, uint64_t size, bool toDevice) {
  if (size != tensor->sizeBytes)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tensor copy of " + std::to_string(size) +
                                                           " bytes; the tensor holds " +
                                                           std::to_string(tensor->sizeBytes));
  tessera_device_t *device = tensor->storage->device();
  if (!device) {
    if (tensor->deviceKind != TESSERA_DEVICE_KIND_CPU)
      return makeStatus(TESSERA_STATUS_UNSUPPORTED, "tensor memory belongs to a device no plugin owns");
    if (toDevice)
      std::memcpy(tensor->data, host, size);
    else
      std::memcpy(host, tensor->data, size);
    return nullptr;
  }
  // Plugin buffers go through the plugin even on host memory: its copies
  // wait for launches still queued (TESSERA_RUN_ASYNC).
  if (device->kind == TESSERA_DEVICE_KIND_CPU && !tensor->storage->backendBuffer()) {
    if (toDevice)
      std::memcpy(tensor->data, host, size);
    else
      std::memcpy(host, tensor->data, size);
    return nullptr;
  }
  plugin::Plugin *p = device->plugin;
  tessera_backend_buffer_t *buffer = tensor->storage->backendBuffer();
  if (!buffer)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, "copies into imported device tensors are not supported");
  uint64_t offset = static_cast<uint64_t>(static_cast<char *>(tensor->data) -
                                          static_cast<char *>(tensor->storage->data()));
  if (toDevice) {
    auto fn = p->slot(&tessera_backend_api_t::buffer_copy_from_host);
    if (!fn)
      return makeStatus(TESSERA_STATUS_UNSUPPORTED, "plugin '" + p->name() + "' cannot copy to the device");
    return fn(p->instance(), buffer, offset, host, size);
  }
  auto fn = p->slot(&tessera_backend_api_t::buffer_copy_to_host);
  if (!fn)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, "plugin '" + p->name() + "' cannot copy from the device");
  return fn(p->instance(), buffer, offset, host, size);
}

} // namespace

TESSERA_EXPORT tessera_status_t *tessera_tensor_copy_from_host(tessera_tensor_t *tensor, const void *src,
                                                               uint64_t size_bytes) {
  TESSERA_API_REQUIRE(tensor);
  if (size_bytes == 0 && tensor->sizeBytes == 0)
    return nullptr; // an empty tensor: nothing to copy, src may be NULL
  TESSERA_API_REQUIRE(src);
  TESSERA_API_GUARD({ return tensorCopy(tensor, const_cast<void *>(src), size_bytes, true); })
}

TESSERA_EXPORT tessera_status_t *tessera_tensor_copy_to_host(const tessera_tensor_t *tensor, void *dst,
                                                             uint64_t size_bytes) {
  TESSERA_API_REQUIRE(tensor);
  if (size_bytes == 0 && tensor->sizeBytes == 0)
    return nullptr; // an empty tensor: nothing to copy, dst may be NULL
  TESSERA_API_REQUIRE(dst);
  TESSERA_API_GUARD({ return tensorCopy(tensor, dst, size_bytes, false); })
}

TESSERA_EXPORT tessera_status_t *tessera_tensor_from_dlpack(tessera_context_t *context, DLManagedTensor *managed,
                                                            tessera_tensor_t **out_tensor) {
  TESSERA_API_REQUIRE(context);
  TESSERA_API_REQUIRE(managed);
  TESSERA_API_REQUIRE(out_tensor);
  const DLTensor &dl = managed->dl_tensor;
  tessera_dtype_t dtype = fromDLDataType(dl.dtype);
  if (dtype == TESSERA_DTYPE_INVALID)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, "DLPack dtype (code " + std::to_string(dl.dtype.code) +
                                                      ", bits " + std::to_string(dl.dtype.bits) + ", lanes " +
                                                      std::to_string(dl.dtype.lanes) + ") has no Tessera dtype");
  if (dl.ndim < 0 || (dl.ndim > 0 && !dl.shape))
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "DLPack tensor has a bad ndim/shape");
  uint64_t bytes = 0;
  if (tessera_status_t *s = elementCount(static_cast<uint32_t>(dl.ndim), dl.shape, dtype, &bytes))
    return s;
  if (dl.strides) {
    int64_t expected = 1;
    for (int i = dl.ndim - 1; i >= 0; --i) {
      if (dl.shape[i] != 1 && dl.strides[i] != expected)
        return makeStatus(TESSERA_STATUS_UNSUPPORTED,
                          "DLPack tensor is not compact row-major (dim " + std::to_string(i) + " has stride " +
                              std::to_string(dl.strides[i]) + ", expected " + std::to_string(expected) + ")");
      expected *= dl.shape[i];
    }
  }
  tessera_device_kind_t kind = fromDLDevice(dl.device.device_type);
  TESSERA_API_GUARD({
    tessera_device_t *device = nullptr;
    {
      std::lock_guard<std::mutex> lock(context->mutex);
      for (tessera_device_t *d : context->registry->devices())
        if (d->kind == kind && static_cast<int32_t>(d->ordinal) == dl.device.device_id) {
          device = d;
          break;
        }
    }
    void *data = static_cast<char *>(dl.data) + dl.byte_offset;
    auto tensor = std::make_unique<tessera_tensor_t>();
    tensor->dtype = dtype;
    tensor->shape.assign(dl.shape, dl.shape + dl.ndim);
    tensor->data = data;
    tensor->sizeBytes = bytes;
    tensor->deviceKind = kind;
    tensor->deviceOrdinal = dl.device.device_id;
    tensor->storage = Storage::adopt(managed, device, data, bytes);
    *out_tensor = tensor.release();
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_tensor_to_dlpack(tessera_tensor_t *tensor, DLManagedTensor **out_managed) {
  TESSERA_API_REQUIRE(tensor);
  TESSERA_API_REQUIRE(out_managed);
  TESSERA_API_GUARD({
    auto ctx = std::make_unique<ExportContext>();
    ctx->storage = tensor->storage;
    ctx->shape = tensor->shape;
    DLTensor &dl = ctx->managed.dl_tensor;
    dl.data = tensor->data;
    int deviceType = tensor->deviceKind == TESSERA_DEVICE_KIND_CUDA     ? kDLCUDA
                     : tensor->deviceKind == TESSERA_DEVICE_KIND_ROCM   ? kDLROCM
                     : tensor->deviceKind == TESSERA_DEVICE_KIND_ONEAPI ? kDLOneAPICode
                     : tensor->deviceKind == TESSERA_DEVICE_KIND_WEBGPU ? kDLWebGPUCode
                                                                        : kDLCPU;
    dl.device.device_type = static_cast<DLDeviceType>(deviceType);
    dl.device.device_id = tensor->deviceOrdinal;
    dl.ndim = static_cast<int32_t>(ctx->shape.size());
    dl.dtype = toDLDataType(tensor->dtype);
    dl.shape = ctx->shape.data();
    dl.strides = nullptr; // compact row-major
    dl.byte_offset = 0;
    ctx->managed.manager_ctx = ctx.get();
    ctx->managed.deleter = exportDeleter;
    *out_managed = &ctx.release()->managed;
    return nullptr;
  })
}

} // extern "C"
