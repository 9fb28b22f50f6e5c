// The CUDA plugin on a real GPU: device description and device memory.
// Skips, saying why, where the plugin or a CUDA device is absent (CI).
#include "TestContext.h"

#include <dlpack/dlpack.h>

#include <random>
#include <vector>

namespace {

class CudaDevice : public ::testing::Test {
protected:
  void SetUp() override {
    context = makeContext(TESSERA_TEST_PLUGIN_DIR);
    ASSERT_NE(context, nullptr);
    std::string reason = "the CUDA plugin was not built";
    for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
      tessera_plugin_info_t info{};
      info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
      TESSERA_ASSERT_OK(tessera_plugin_get_info(context, i, &info));
      if (info.name && std::string(info.name) == "cuda")
        reason = info.reason;
    }
    gpu = findDevice(context, "cuda");
    if (!gpu)
      GTEST_SKIP() << "no CUDA device: " << reason;
  }
  void TearDown() override {
    if (context)
      TESSERA_ASSERT_OK(tessera_context_destroy(context));
  }
  tessera_context_t *context = nullptr;
  tessera_device_t *gpu = nullptr;
};

TEST_F(CudaDevice, DescribesTheGpu) {
  tessera_device_info_t info{};
  info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_device_get_info(gpu, &info));
  EXPECT_EQ(info.kind, TESSERA_DEVICE_KIND_CUDA);
  EXPECT_EQ(std::string(info.architecture).rfind("sm_", 0), 0u) << info.architecture;
  EXPECT_GT(info.compute_units, 0u);
  EXPECT_GT(info.memory_bytes, 1ull << 30);
  std::printf("[ INFO     ] %s %s, %u SMs, %.1f GiB, features %s\n", info.name, info.architecture,
              info.compute_units, info.memory_bytes / 1073741824.0, info.features);
}

TEST_F(CudaDevice, BufferRoundTripAndDLPackExport) {
  const size_t n = 1 << 20;
  std::vector<float> in(n), out(n, -1.0f);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  for (float &x : in)
    x = dist(rng);
  int64_t shape[] = {static_cast<int64_t>(n)};
  tessera_tensor_t *t = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(gpu, TESSERA_DTYPE_F32, 1, shape, &t));
  tessera_tensor_info_t info{};
  info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_tensor_get_info(t, &info));
  EXPECT_EQ(info.device_kind, TESSERA_DEVICE_KIND_CUDA);
  tessera_buffer_t *buffer = nullptr;
  TESSERA_ASSERT_OK(tessera_buffer_allocate(gpu, n * sizeof(float), &buffer));
  TESSERA_ASSERT_OK(tessera_buffer_copy_from_host(buffer, 0, in.data(), n * sizeof(float)));
  TESSERA_ASSERT_OK(tessera_buffer_copy_to_host(buffer, 0, out.data(), n * sizeof(float)));
  EXPECT_EQ(in, out);
  DLManagedTensor *exported = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_to_dlpack(t, &exported));
  EXPECT_EQ(exported->dl_tensor.device.device_type, kDLCUDA);
  EXPECT_EQ(exported->dl_tensor.data, info.data);
  exported->deleter(exported);
  tessera_tensor_free(t);
  TESSERA_ASSERT_OK(tessera_buffer_free(buffer));
}

} // namespace
