// The application C ABI: version, status objects, contexts, plugins,
// devices, buffers, and the lifetime rules between them.
#include "TestContext.h"

#include <cstring>
#include <random>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

TEST(Version, MatchesHeader) {
  tessera_version_info_t v{};
  v.struct_size = TESSERA_VERSION_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_get_version(&v));
  EXPECT_EQ(v.abi_major, TESSERA_ABI_VERSION_MAJOR);
  EXPECT_EQ(v.abi_minor, TESSERA_ABI_VERSION_MINOR);
  EXPECT_STRNE(v.version, "");
}

TEST(Version, RejectsTooSmallStruct) {
  tessera_version_info_t v{};
  v.struct_size = sizeof(size_t);
  EXPECT_EQ(statusCode(tessera_get_version(&v)), TESSERA_STATUS_INVALID_ARGUMENT);
}

TEST(Status, NullIsSuccess) {
  EXPECT_EQ(tessera_status_code(nullptr), TESSERA_STATUS_OK);
  EXPECT_STREQ(tessera_status_message(nullptr), "");
  tessera_status_free(nullptr);
  EXPECT_STREQ(tessera_status_code_name(TESSERA_STATUS_NO_DEVICE), "no device");
  EXPECT_STREQ(tessera_status_code_name(static_cast<tessera_status_code_t>(999)), "unknown error");
}

TEST(Context, EmptyPluginPathHasNoPlugins) {
  tessera_context_t *context = makeContext("/nonexistent/tessera-plugins");
  ASSERT_NE(context, nullptr);
  EXPECT_EQ(tessera_plugin_count(context), 0u);
  EXPECT_EQ(tessera_device_count(context), 0u);
  tessera_device_t *device = nullptr;
  EXPECT_EQ(statusCode(tessera_context_get_device(context, 0, &device)), TESSERA_STATUS_NOT_FOUND);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Context, NullArgumentsAreRejectedWithTheirName) {
  tessera_status_t *s = tessera_context_create(nullptr, nullptr);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tessera_status_message(s)).find("out_context"), std::string::npos);
  tessera_status_free(s);
  EXPECT_EQ(statusCode(tessera_context_destroy(nullptr)), TESSERA_STATUS_OK);
}

TEST(Plugins, CpuPluginLoadsWithOneDevice) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  ASSERT_NE(context, nullptr);
  bool sawCpu = false;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    TESSERA_ASSERT_OK(tessera_plugin_get_info(context, i, &info));
    if (info.name && std::string(info.name) == "cpu") {
      sawCpu = true;
      EXPECT_EQ(info.state, TESSERA_PLUGIN_STATE_LOADED) << info.reason;
      EXPECT_EQ(info.device_count, 1u);
      EXPECT_EQ(info.abi_major, TESSERA_ABI_VERSION_MAJOR);
      EXPECT_EQ(info.abi_minor, TESSERA_ABI_VERSION_MINOR);
      EXPECT_EQ(info.has_manifest, 1);
      EXPECT_STREQ(info.kind, "backend");
    }
  }
  EXPECT_TRUE(sawCpu);
  tessera_device_t *cpu = findDevice(context, "cpu");
  ASSERT_NE(cpu, nullptr);
  tessera_device_info_t d{};
  d.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_device_get_info(cpu, &d));
  EXPECT_EQ(d.kind, TESSERA_DEVICE_KIND_CPU);
  EXPECT_EQ(d.compute_units, static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GT(d.memory_bytes, 0u);
  EXPECT_STRNE(d.name, "");
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool avx2 = std::string(d.features).find("avx2") != std::string::npos;
  EXPECT_EQ(avx2, __builtin_cpu_supports("avx2") != 0) << d.features;
#endif
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Plugins, InfoStructGrowthIsRespected) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  ASSERT_NE(context, nullptr);
  // A caller compiled against a future, larger struct: bytes past what this
  // library knows stay untouched.
  struct Future {
    tessera_plugin_info_t known;
    unsigned char future[32];
  } f;
  std::memset(&f, 0xAB, sizeof(f));
  f.known.struct_size = sizeof(f);
  TESSERA_ASSERT_OK(tessera_plugin_get_info(context, 0, &f.known));
  EXPECT_EQ(f.known.struct_size, sizeof(f));
  for (unsigned char c : f.future)
    EXPECT_EQ(c, 0xAB);
  // A caller that is too old to know the required fields is refused.
  tessera_plugin_info_t small{};
  small.struct_size = 8;
  EXPECT_EQ(statusCode(tessera_plugin_get_info(context, 0, &small)), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(statusCode(tessera_plugin_get_info(context, 1000, &f.known)), TESSERA_STATUS_NOT_FOUND);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Plugins, NoLoadListsFromManifest) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR, TESSERA_CONTEXT_FLAG_NO_LOAD);
  ASSERT_NE(context, nullptr);
  ASSERT_GE(tessera_plugin_count(context), 1u);
  bool sawCpu = false;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    TESSERA_ASSERT_OK(tessera_plugin_get_info(context, i, &info));
    EXPECT_EQ(info.state, TESSERA_PLUGIN_STATE_NOT_LOADED);
    if (info.name && std::string(info.name) == "cpu") {
      sawCpu = true;
      EXPECT_EQ(info.has_manifest, 1);
      EXPECT_NE(std::string(info.targets).find("x86-64"), std::string::npos);
    }
  }
  EXPECT_TRUE(sawCpu);
  EXPECT_EQ(tessera_device_count(context), 0u);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Buffers, RoundTripRandomBytes) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  tessera_device_t *cpu = findDevice(context, "cpu");
  ASSERT_NE(cpu, nullptr);
  std::mt19937 rng(42);
  std::vector<unsigned char> in(4096), out(4096, 0);
  for (auto &b : in)
    b = static_cast<unsigned char>(rng());
  tessera_buffer_t *buffer = nullptr;
  TESSERA_ASSERT_OK(tessera_buffer_allocate(cpu, in.size(), &buffer));
  EXPECT_EQ(tessera_buffer_size(buffer), in.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tessera_buffer_device_pointer(buffer)) % 64, 0u);
  TESSERA_ASSERT_OK(tessera_buffer_copy_from_host(buffer, 0, in.data(), in.size()));
  TESSERA_ASSERT_OK(tessera_buffer_copy_to_host(buffer, 0, out.data(), out.size()));
  EXPECT_EQ(in, out);
  // Partial copy at an offset.
  std::vector<unsigned char> part(100);
  TESSERA_ASSERT_OK(tessera_buffer_copy_to_host(buffer, 1000, part.data(), part.size()));
  EXPECT_TRUE(std::equal(part.begin(), part.end(), in.begin() + 1000));
  EXPECT_EQ(statusCode(tessera_buffer_copy_to_host(buffer, 4000, part.data(), 100)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(statusCode(tessera_buffer_copy_from_host(buffer, UINT64_MAX, in.data(), 2)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  tessera_buffer_t *empty = nullptr;
  EXPECT_EQ(statusCode(tessera_buffer_allocate(cpu, 0, &empty)), TESSERA_STATUS_INVALID_ARGUMENT);
  TESSERA_ASSERT_OK(tessera_buffer_free(buffer));
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Lifetime, ContextAndPluginRefuseWhileObjectsLive) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  tessera_device_t *cpu = findDevice(context, "cpu");
  ASSERT_NE(cpu, nullptr);
  size_t cpuIndex = 0;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    TESSERA_ASSERT_OK(tessera_plugin_get_info(context, i, &info));
    if (info.name && std::string(info.name) == "cpu")
      cpuIndex = i;
  }
  size_t devicesBefore = tessera_device_count(context);
  tessera_buffer_t *buffer = nullptr;
  TESSERA_ASSERT_OK(tessera_buffer_allocate(cpu, 256, &buffer));
  EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_BUSY);
  EXPECT_EQ(statusCode(tessera_plugin_unload(context, cpuIndex)), TESSERA_STATUS_BUSY);
  // Still fully usable after the refusals.
  std::vector<unsigned char> bytes(256, 7);
  TESSERA_ASSERT_OK(tessera_buffer_copy_from_host(buffer, 0, bytes.data(), bytes.size()));
  TESSERA_ASSERT_OK(tessera_buffer_free(buffer));
  TESSERA_ASSERT_OK(tessera_plugin_unload(context, cpuIndex));
  tessera_plugin_info_t info{};
  info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_plugin_get_info(context, cpuIndex, &info));
  EXPECT_EQ(info.state, TESSERA_PLUGIN_STATE_NOT_LOADED);
  EXPECT_EQ(tessera_device_count(context), devicesBefore - 1);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

TEST(Compile, RunsOnTheCpuAndRejectsBadInput) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = findDevice(context, "cpu");
  ASSERT_NE(target.device, nullptr);
  tessera_module_t *module = nullptr;
  const std::string src = "func @main(%x: tensor<N x f32>) -> tensor<N x f32> {\n  %y = mul(%x, %x)\n  return %y\n}\n";
  TESSERA_ASSERT_OK(tessera_compile(context, src.data(), src.size(), "tessera-ir", nullptr, &target, &module));
  int64_t shape[] = {5};
  tessera_tensor_t *x = nullptr, *y = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_create(target.device, TESSERA_DTYPE_F32, 1, shape, &x));
  float in[5] = {1.5f, -2, 3, 0.25f, 7}, out[5] = {};
  TESSERA_ASSERT_OK(tessera_tensor_copy_from_host(x, in, sizeof(in)));
  // A live module keeps the plugin and the context from going away.
  EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_BUSY);
  TESSERA_ASSERT_OK(tessera_module_run(module, nullptr, 1, &x, 1, &y));
  TESSERA_ASSERT_OK(tessera_tensor_copy_to_host(y, out, sizeof(out)));
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(out[i], in[i] * in[i]);
  tessera_tensor_free(x);
  tessera_tensor_free(y);
  tessera_module_destroy(module);
  const char bad[] = "func @f(";
  EXPECT_EQ(statusCode(tessera_compile(context, bad, sizeof(bad) - 1, "tessera-ir", nullptr, &target, &module)),
            TESSERA_STATUS_INVALID_IR);
  EXPECT_EQ(statusCode(tessera_compile(context, src.data(), src.size(), "no-such-format", nullptr, &target, &module)),
            TESSERA_STATUS_UNSUPPORTED);
  EXPECT_EQ(statusCode(tessera_compile(context, nullptr, 0, "tessera-ir", nullptr, &target, &module)),
            TESSERA_STATUS_INVALID_ARGUMENT);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

// Rule 10: the functions documented thread-safe are exercised concurrently.
TEST(Threading, ConcurrentQueriesAndBuffers) {
  tessera_context_t *context = makeContext(TESSERA_TEST_PLUGIN_DIR);
  tessera_device_t *cpu = findDevice(context, "cpu");
  ASSERT_NE(cpu, nullptr);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<unsigned char> in(512, static_cast<unsigned char>(t)), out(512);
      for (int i = 0; i < 200; ++i) {
        tessera_plugin_info_t info{};
        info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
        if (statusCode(tessera_plugin_get_info(context, 0, &info)) != TESSERA_STATUS_OK)
          ++failures;
        tessera_device_info_t d{};
        d.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
        if (statusCode(tessera_device_get_info(cpu, &d)) != TESSERA_STATUS_OK)
          ++failures;
        tessera_buffer_t *buffer = nullptr;
        if (statusCode(tessera_buffer_allocate(cpu, in.size(), &buffer)) != TESSERA_STATUS_OK) {
          ++failures;
          continue;
        }
        (void)statusCode(tessera_buffer_copy_from_host(buffer, 0, in.data(), in.size()));
        (void)statusCode(tessera_buffer_copy_to_host(buffer, 0, out.data(), out.size()));
        if (in != out)
          ++failures;
        (void)statusCode(tessera_buffer_free(buffer));
      }
    });
  }
  for (auto &th : threads)
    th.join();
  EXPECT_EQ(failures.load(), 0);
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
}

} // namespace
