#include "api/Buffer.h"

#include "api/Context.h"
#include "api/Status.h"

#include <dlpack/dlpack.h>

namespace tessera::api {

size_t dtypeSize(tessera_dtype_t dtype) {
  switch (dtype) {
  case TESSERA_DTYPE_F64: case TESSERA_DTYPE_I64: return 8;
  case TESSERA_DTYPE_F32: case TESSERA_DTYPE_I32: return 4;
  case TESSERA_DTYPE_F16: case TESSERA_DTYPE_BF16: case TESSERA_DTYPE_I16: return 2;
  case TESSERA_DTYPE_F8E4M3: case TESSERA_DTYPE_F8E5M2: case TESSERA_DTYPE_I8: case TESSERA_DTYPE_U8:
  case TESSERA_DTYPE_BOOL: return 1;
  default: return 0;
  }
}

Expected<std::shared_ptr<Storage>> Storage::allocate(tessera_device_t *device, uint64_t sizeBytes) {
  plugin::Plugin *p = device->plugin;
  auto allocateFn = p->slot(&tessera_backend_api_t::buffer_allocate);
  auto pointerFn = p->slot(&tessera_backend_api_t::buffer_device_pointer);
  auto freeFn = p->slot(&tessera_backend_api_t::buffer_free);
  if (!allocateFn || !pointerFn || !freeFn)
    return makeError(ErrorCode::Unsupported, "plugin '" + p->name() + "' cannot allocate device memory");
  tessera_backend_buffer_t *buffer = nullptr;
  // Zero-byte tensors still get a distinct, valid allocation.
  if (Error e = takeCStatus(allocateFn(p->instance(), device->ordinal, sizeBytes ? sizeBytes : 1, &buffer)))
    return e;
  void *pointer = nullptr;
  if (Error e = takeCStatus(pointerFn(p->instance(), buffer, &pointer))) {
    (void)takeCStatus(freeFn(p->instance(), buffer));
    return e;
  }
  std::shared_ptr<Storage> s(new Storage());
  s->device_ = device;
  s->buffer_ = buffer;
  s->data_ = pointer;
  s->size_ = sizeBytes;
  p->retain();
  return s;
}

std::shared_ptr<Storage> Storage::adopt(DLManagedTensor *managed, tessera_device_t *device, void *data,
                                        uint64_t sizeBytes) {
  std::shared_ptr<Storage> s(new Storage());
  s->device_ = device;
  s->managed_ = managed;
  s->data_ = data;
  s->size_ = sizeBytes;
  if (!device)
    return s;
  device->plugin->retain();
  // Memory on the device itself: wrap it so kernels launch on it directly.
  // Where the plugin cannot (no slot, or it refuses the memory), runs copy
  // it into a buffer of their own instead.
  plugin::Plugin *p = device->plugin;
  if (auto wrapFn = p->slot(&tessera_backend_api_t::buffer_wrap); wrapFn && sizeBytes) {
    tessera_backend_buffer_t *buffer = nullptr;
    if (!takeCStatus(wrapFn(p->instance(), device->ordinal, data, sizeBytes, &buffer)))
      s->buffer_ = buffer;
  }
  return s;
}

Storage::~Storage() {
  if (buffer_ && recycler_) {
    recycler_->recycle(buffer_, data_, size_);
  } else if (buffer_) {
    plugin::Plugin *p = device_->plugin;
    if (auto freeFn = p->slot(&tessera_backend_api_t::buffer_free))
      (void)takeCStatus(freeFn(p->instance(), buffer_));
  }
  if (managed_ && managed_->deleter)
    managed_->deleter(managed_);
  if (device_)
    device_->plugin->release();
}

BufferRecycler::BufferRecycler(tessera_device_t *device) : device_(device) { device_->plugin->retain(); }

BufferRecycler::~BufferRecycler() {
  for (auto &[size, list] : idle_)
    for (const Idle &b : list)
      freeBuffer(b.buffer);
  device_->plugin->release();
}

void BufferRecycler::freeBuffer(tessera_backend_buffer_t *buffer) {
  plugin::Plugin *p = device_->plugin;
  if (auto freeFn = p->slot(&tessera_backend_api_t::buffer_free))
    (void)takeCStatus(freeFn(p->instance(), buffer));
}

Expected<std::shared_ptr<Storage>> BufferRecycler::allocate(uint64_t sizeBytes) {
  if (sizeBytes <= kMaxRecycledSize) {
    Idle b{nullptr, nullptr};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = idle_.find(sizeBytes);
      if (it != idle_.end() && !it->second.empty()) {
        b = it->second.back();
        it->second.pop_back();
        idleBytes_ -= sizeBytes;
      }
    }
    if (b.buffer) {
      std::shared_ptr<Storage> s(new Storage());
      s->device_ = device_;
      s->buffer_ = b.buffer;
      s->data_ = b.data;
      s->size_ = sizeBytes;
      s->recycler_ = shared_from_this();
      device_->plugin->retain();
      return s;
    }
  }
  Expected<std::shared_ptr<Storage>> s = Storage::allocate(device_, sizeBytes);
  if (s && sizeBytes <= kMaxRecycledSize)
    (*s)->recycler_ = shared_from_this();
  return s;
}

void BufferRecycler::recycle(tessera_backend_buffer_t *buffer, void *data, uint64_t sizeBytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Idle> &list = idle_[sizeBytes];
    if (list.size() < kMaxIdlePerSize && idleBytes_ + sizeBytes <= kMaxIdleBytes) {
      list.push_back({buffer, data});
      idleBytes_ += sizeBytes;
      return;
    }
  }
  freeBuffer(buffer);
}

} // namespace tessera::api

using namespace tessera;
using namespace tessera::api;

namespace {

tessera_status_t *checkRange(const tessera_buffer_t *buffer, uint64_t offset, uint64_t size, const char *fn) {
  uint64_t total = buffer->storage->size();
  if (offset > total || size > total - offset)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, std::string(fn) + ": range [" + std::to_string(offset) +
                                                           ", " + std::to_string(offset) + "+" +
                                                           std::to_string(size) + ") outside the " +
                                                           std::to_string(total) + "-byte buffer");
  return nullptr;
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_buffer_allocate(tessera_device_t *device, uint64_t size_bytes,
                                                         tessera_buffer_t **out_buffer) {
  TESSERA_API_REQUIRE(device);
  TESSERA_API_REQUIRE(out_buffer);
  if (size_bytes == 0)
    return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_buffer_allocate: size_bytes must be > 0");
  TESSERA_API_GUARD({
    Expected<std::shared_ptr<Storage>> storage = Storage::allocate(device, size_bytes);
    if (!storage)
      return toStatus(storage.error());
    *out_buffer = new tessera_buffer_t{storage.take()};
    return nullptr;
  })
}

TESSERA_EXPORT tessera_status_t *tessera_buffer_free(tessera_buffer_t *buffer) {
  if (!buffer)
    return nullptr;
  if (buffer->storage.use_count() > 1)
    return makeStatus(TESSERA_STATUS_BUSY, "tessera_buffer_free: the buffer is still viewed by a tensor");
  delete buffer;
  return nullptr;
}

TESSERA_EXPORT uint64_t tessera_buffer_size(const tessera_buffer_t *buffer) {
  return buffer ? buffer->storage->size() : 0;
}

TESSERA_EXPORT void *tessera_buffer_device_pointer(const tessera_buffer_t *buffer) {
  return buffer ? buffer->storage->data() : nullptr;
}

TESSERA_EXPORT tessera_status_t *tessera_buffer_copy_from_host(tessera_buffer_t *buffer, uint64_t offset,
                                                               const void *src, uint64_t size) {
  TESSERA_API_REQUIRE(buffer);
  TESSERA_API_REQUIRE(src);
  if (tessera_status_t *s = checkRange(buffer, offset, size, __func__))
    return s;
  plugin::Plugin *p = buffer->storage->device()->plugin;
  auto fn = p->slot(&tessera_backend_api_t::buffer_copy_from_host);
  if (!fn)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, "plugin '" + p->name() + "' cannot copy to the device");
  return fn(p->instance(), buffer->storage->backendBuffer(), offset, src, size);
}

TESSERA_EXPORT tessera_status_t *tessera_buffer_copy_to_host(const tessera_buffer_t *buffer, uint64_t offset,
                                                             void *dst, uint64_t size) {
  TESSERA_API_REQUIRE(buffer);
  TESSERA_API_REQUIRE(dst);
  if (tessera_status_t *s = checkRange(buffer, offset, size, __func__))
    return s;
  plugin::Plugin *p = buffer->storage->device()->plugin;
  auto fn = p->slot(&tessera_backend_api_t::buffer_copy_to_host);
  if (!fn)
    return makeStatus(TESSERA_STATUS_UNSUPPORTED, "plugin '" + p->name() + "' cannot copy from the device");
  return fn(p->instance(), buffer->storage->backendBuffer(), offset, dst, size);
}

} // extern "C"
