// Device memory owned through a plugin, and the tensors that view it.
#ifndef TESSERA_API_BUFFER_H
#define TESSERA_API_BUFFER_H

#include "plugin/Plugin.h"
#include "support/Error.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

struct DLManagedTensor;

namespace tessera::api {

class BufferRecycler;

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
  friend class BufferRecycler;
  Storage() = default;
  // Set for buffers of a BufferRecycler: the buffer goes back to it.
  std::shared_ptr<BufferRecycler> recycler_;
  tessera_device_t *device_ = nullptr;
  tessera_backend_buffer_t *buffer_ = nullptr;
  DLManagedTensor *managed_ = nullptr;
  void *data_ = nullptr;
  uint64_t size_ = 0;
};

// Plugin buffers of one device kept for reuse (a module's run-time
// buffers: its outputs and staged inputs). A Storage it allocates returns
// its buffer here when it dies, wherever that happens (an output tensor may
// outlive its module); the next allocation of exactly that size takes it
// instead of calling the plugin. Bounded: small buffers only, a few per
// size, a cap on idle bytes; the rest is freed. Retains the plugin while it
// lives. Thread-safe.
class BufferRecycler : public std::enable_shared_from_this<BufferRecycler> {
public:
  explicit BufferRecycler(tessera_device_t *device);
  ~BufferRecycler();
  BufferRecycler(const BufferRecycler &) = delete;
  BufferRecycler &operator=(const BufferRecycler &) = delete;

  Expected<std::shared_ptr<Storage>> allocate(uint64_t sizeBytes);

  static constexpr uint64_t kMaxRecycledSize = 16ull << 20; // larger ones are freed
  static constexpr size_t kMaxIdlePerSize = 4;
  static constexpr uint64_t kMaxIdleBytes = 64ull << 20;

private:
  friend class Storage;
  struct Idle {
    tessera_backend_buffer_t *buffer;
    void *data;
  };
  // Takes `buffer` back (from a dying Storage): keeps it or frees it.
  void recycle(tessera_backend_buffer_t *buffer, void *data, uint64_t sizeBytes);
  void freeBuffer(tessera_backend_buffer_t *buffer);

  tessera_device_t *device_;
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::vector<Idle>> idle_;
  uint64_t idleBytes_ = 0;
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
