// Device memory owned through a plugin, and the tensors that view it.
#ifndef TESSERA_API_BUFFER_H
#define TESSERA_API_BUFFER_H

#include "plugin/Plugin.h"
#include "support/Error.h"

#include <atomic>
#include <memory>
#include <vector>

struct DLManagedTensor;

namespace tessera::api {

// Memory behind a tensor or a buffer: either a plugin buffer or an imported
// DLPack tensor. Shared so exported DLPack tensors keep it alive.
class Storage {
public:
  // Allocates through the device's plugin.
  static Expected<std::shared_ptr<Storage>> allocate(tessera_device_t *device, uint64_t sizeBytes);
  // Adopts a DLPack tensor; its deleter runs when the storage dies.
  static std::shared_ptr<Storage> adopt(DLManagedTensor *managed, tessera_device_t *device, void *data,
                                        uint64_t sizeBytes);
  ~Storage();

  tessera_device_t *device() const { return device_; }
  tessera_backend_buffer_t *backendBuffer() const { return buffer_; }
  void *data() const { return data_; }
  uint64_t size() const { return size_; }

private:
  Storage() = default;
  tessera_device_t *device_ = nullptr;
  tessera_backend_buffer_t *buffer_ = nullptr;
  DLManagedTensor *managed_ = nullptr;
  void *data_ = nullptr;
  uint64_t size_ = 0;
};

size_t dtypeSize(tessera_dtype_t dtype);

} // namespace tessera::api

struct tessera_buffer_t {
  std::shared_ptr<tessera::api::Storage> storage;
};

struct tessera_tensor_t {
  std::shared_ptr<tessera::api::Storage> storage;
  tessera_dtype_t dtype = TESSERA_DTYPE_INVALID;
  std::vector<int64_t> shape;
  void *data = nullptr; // first element
  uint64_t sizeBytes = 0;
  tessera_device_kind_t deviceKind = TESSERA_DEVICE_KIND_CPU;
  int32_t deviceOrdinal = 0;
};

#endif // TESSERA_API_BUFFER_H
