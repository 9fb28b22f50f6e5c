// Tensors and DLPack exchange: zero copy both ways, deleters called exactly
// once, and bad DLPack input refused with ownership left to the caller.
#include "TestContext.h"

#include <dlpack/dlpack.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

struct Owned {
  std::vector<float> data;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int *deleted;
  DLManagedTensor managed{};
};

void ownedDeleter(DLManagedTensor *self) {
  auto *o = static_cast<Owned *>(self->manager_ctx);
  ++*o->deleted;
  delete o;
}

DLManagedTensor *makeManaged(std::vector<int64_t> shape, int *deleted, std::vector<int64_t> strides = {}) {
  auto *o = new Owned;
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  o->data.resize(static_cast<size_t>(n));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float &x : o->data)
    x = dist(rng);
  o->shape = std::move(shape);
  o->strides = std::move(strides);
  o->deleted = deleted;
  DLTensor &t = o->managed.dl_tensor;
  t.data = o->data.data();
  t.device = {kDLCPU, 0};
  t.ndim = static_cast<int32_t>(o->shape.size());
  t.dtype = {kDLFloat, 32, 1};
  t.shape = o->shape.data();
  t.strides = o->strides.empty() ? nullptr : o->strides.data();
  o->managed.manager_ctx = o;
  o->managed.deleter = ownedDeleter;
  return &o->managed;
}

class TensorTest : public ::testing::Test {
protected:
  void SetUp() override {
    context = makeContext(TESSERA_TEST_PLUGIN_DIR);
    ASSERT_NE(context, nullptr);
    cpu = findDevice(context, "cpu");
    ASSERT_NE(cpu, nullptr);
  }
  void TearDown() override { TESSERA_ASSERT_OK(tessera_context_destroy(context)); }
  tessera_context_t *context = nullptr;
  tessera_device_t *cpu = nullptr;
};

TEST_F(TensorTest, CreateDescribesShapeAndSize) {
  int64_t shape[] = {3, 4, 5};
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(cpu, TESSERA_DTYPE_BF16, 3, shape, &t));
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(t, &info));
  EXPECT_EQ(info.dtype, TESSERA_DTYPE_BF16);
  EXPECT_EQ(info.rank, 3u);
  EXPECT_EQ(info.shape[2], 5);
  EXPECT_EQ(info.size_bytes, 3u * 4 * 5 * 2);
  EXPECT_EQ(info.device, cpu);
  EXPECT_NE(info.data, nullptr);
  tessera_tensor_free(t);
}

TEST_F(TensorTest, CreateRejectsBadShapes) {
  tessera_tensor_t *t = nullptr;
  int64_t negative[] = {2, -1};
  EXPECT_EQ(statusCode(tessera_tensor_create(cpu, TESSERA_DTYPE_F32, 2, negative, &t)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  int64_t huge[] = {INT64_MAX, INT64_MAX};
  EXPECT_EQ(statusCode(tessera_tensor_create(cpu, TESSERA_DTYPE_F32, 2, huge, &t)),
            TESSERA_STATUS_RESOURCE_EXHAUSTED);
  std::vector<int64_t> tooDeep(TESSERA_MAX_RANK + 1, 1);
  EXPECT_EQ(statusCode(tessera_tensor_create(cpu, TESSERA_DTYPE_F32, static_cast<uint32_t>(tooDeep.size()),
                                             tooDeep.data(), &t)),
            TESSERA_STATUS_RESOURCE_EXHAUSTED);
  int64_t ok[] = {2};
  EXPECT_EQ(statusCode(tessera_tensor_create(cpu, static_cast<tessera_dtype_t>(77), 1, ok, &t)),
            TESSERA_STATUS_INVALID_ARGUMENT);
}

TEST_F(TensorTest, ImportIsZeroCopyAndCallsDeleterOnce) {
  int deleted = 0;
  DLManagedTensor *managed = makeManaged({2, 3}, &deleted);
  void *original = managed->dl_tensor.data;
  float first = static_cast<float *>(original)[0];
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_from_dlpack(context, managed, &t));
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(t, &info));
  EXPECT_EQ(info.data, original);
  EXPECT_EQ(static_cast<float *>(info.data)[0], first);
  EXPECT_EQ(info.dtype, TESSERA_DTYPE_F32);
  EXPECT_EQ(info.device, cpu);
  EXPECT_EQ(deleted, 0);
  tessera_tensor_free(t);
  EXPECT_EQ(deleted, 1);
}

TEST_F(TensorTest, ExportOutlivesTheTensor) {
  int64_t shape[] = {8};
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(cpu, TESSERA_DTYPE_I32, 1, shape, &t));
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(t, &info));
  for (int i = 0; i < 8; ++i)
    static_cast<int32_t *>(info.data)[i] = i * i;
  DLManagedTensor *exported = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_to_dlpack(t, &exported));
  tessera_tensor_free(t);
  // The context must still refuse to go away: the export holds the memory.
  EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_BUSY);
  const DLTensor &dl = exported->dl_tensor;
  EXPECT_EQ(dl.device.device_type, kDLCPU);
  EXPECT_EQ(dl.dtype.code, kDLInt);
  EXPECT_EQ(dl.dtype.bits, 32);
  EXPECT_EQ(dl.ndim, 1);
  EXPECT_EQ(dl.shape[0], 8);
  EXPECT_EQ(static_cast<int32_t *>(dl.data)[7], 49);
  exported->deleter(exported);
}

TEST_F(TensorTest, RoundTripThroughDLPackKeepsTheSameMemory) {
  int64_t shape[] = {4, 4};
  tessera_tensor_t *a = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(cpu, TESSERA_DTYPE_F64, 2, shape, &a));
  DLManagedTensor *exported = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_to_dlpack(a, &exported));
  tessera_tensor_t *b = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_from_dlpack(context, exported, &b));
  tessera_tensor_info_t ia{}, ib{};
  ia.struct_size = ib.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(a, &ia));
  TESSERA_ASSERT_OK(tessera_tensor_get_info(b, &ib));
  EXPECT_EQ(ia.data, ib.data);
  EXPECT_EQ(ib.dtype, TESSERA_DTYPE_F64);
  tessera_tensor_free(a);
  tessera_tensor_free(b);
}

TEST_F(TensorTest, ImportRefusesNonCompactStridesAndKeepsOwnership) {
  int deleted = 0;
  DLManagedTensor *managed = makeManaged({2, 3}, &deleted, {1, 2}); // column-major
  tessera_tensor_t *t = nullptr;
  tessera_status_t *s = tessera_tensor_from_dlpack(context, managed, &t);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(tessera_status_message(s)).find("row-major"), std::string::npos);
  tessera_status_free(s);
  EXPECT_EQ(deleted, 0);
  managed->deleter(managed);
  EXPECT_EQ(deleted, 1);
}

TEST_F(TensorTest, ImportRefusesUnknownDtype) {
  int deleted = 0;
  DLManagedTensor *managed = makeManaged({4}, &deleted);
  managed->dl_tensor.dtype = {kDLComplex, 64, 1};
  tessera_tensor_t *t = nullptr;
  EXPECT_EQ(statusCode(tessera_tensor_from_dlpack(context, managed, &t)), TESSERA_STATUS_UNSUPPORTED);
  managed->dl_tensor.dtype = {kDLFloat, 32, 4}; // vector lanes
  EXPECT_EQ(statusCode(tessera_tensor_from_dlpack(context, managed, &t)), TESSERA_STATUS_UNSUPPORTED);
  managed->deleter(managed);
  EXPECT_EQ(deleted, 1);
}

TEST_F(TensorTest, ImportHonoursByteOffset) {
  int deleted = 0;
  DLManagedTensor *managed = makeManaged({6}, &deleted);
  float *base = static_cast<float *>(managed->dl_tensor.data);
  managed->dl_tensor.shape[0] = 4;
  managed->dl_tensor.byte_offset = 2 * sizeof(float);
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_from_dlpack(context, managed, &t));
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(t, &info));
  EXPECT_EQ(info.data, base + 2);
  EXPECT_EQ(info.size_bytes, 4 * sizeof(float));
  tessera_tensor_free(t);
  EXPECT_EQ(deleted, 1);
}

} // namespace

namespace {

TEST_F(TensorTest, HostCopiesCheckTheSize) {
  int64_t shape[] = {2, 3};
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(cpu, TESSERA_DTYPE_F32, 2, shape, &t));
  float in[6] = {1.5f, -2, 3, 4.25f, 5, -6}, out[6] = {};
  TESSERA_ASSERT_OK(tessera_tensor_copy_from_host(t, in, sizeof(in)));
  TESSERA_ASSERT_OK(tessera_tensor_copy_to_host(t, out, sizeof(out)));
  EXPECT_EQ(0, std::memcmp(in, out, sizeof(in)));
  EXPECT_EQ(statusCode(tessera_tensor_copy_from_host(t, in, 8)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(statusCode(tessera_tensor_copy_from_host(t, nullptr, sizeof(in))), TESSERA_STATUS_INVALID_ARGUMENT);
  tessera_tensor_free(t);
  int64_t empty[] = {0, 3};
  TESSERA_ASSERT_OK(tessera_tensor_create(cpu, TESSERA_DTYPE_F32, 2, empty, &t));
  TESSERA_ASSERT_OK(tessera_tensor_copy_from_host(t, nullptr, 0));
  TESSERA_ASSERT_OK(tessera_tensor_copy_to_host(t, nullptr, 0));
  tessera_tensor_free(t);
}

} // namespace
