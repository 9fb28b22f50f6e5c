// Asynchronous runs (TESSERA_RUN_ASYNC) on the interp test plugin in its
// deferred mode (TESSERA_INTERP_DEFER=1: launches queue up and run at
// synchronize or before a copy or free, like an asynchronous device), so
// the test can see that a run returned before its kernels ran, that
// tessera_module_synchronize runs them, and that back-to-back runs sharing
// one pooled arena still compute every output right.
#include "TestContext.h"

#include <dlpack/dlpack.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char *kProgram = R"(
func @main(%x: tensor<B x 8 x f32>, %w: tensor<8 x 4 x f32>) -> tensor<B x 4 x f32> {
  %h = matmul(%x, %w)
  %e = exp(%h)
  %s = softmax(%e) {axis = -1}
  return %s
}
)";

std::string message(tessera_status_t *s) {
  std::string m = s ? tessera_status_message(s) : "";
  tessera_status_free(s);
  return m;
}

class RuntimeAsync : public ::testing::Test {
protected:
  void SetUp() override {
    setenv("TESSERA_INTERP_DEFER", "1", 1);
    context = makeContext(TESSERA_TEST_INTERP_PLUGIN_DIR);
    unsetenv("TESSERA_INTERP_DEFER");
    ASSERT_NE(context, nullptr);
    device = findDevice(context, "interp");
    ASSERT_NE(device, nullptr) << "the interp test plugin did not load";
    tessera_compile_options_t options{};
    options.struct_size = sizeof(options);
    options.opt_level = 2;
    tessera_compile_target_t target{};
    target.struct_size = sizeof(target);
    target.device = device;
    tessera_status_t *s = tessera_compile(context, kProgram, std::strlen(kProgram), "tessera-ir", &options, &target,
                                          &module);
    ASSERT_EQ(s, nullptr) << message(s);
  }
  void TearDown() override {
    for (tessera_tensor_t *t : tensors)
      tessera_tensor_free(t);
    tessera_module_destroy(module);
    if (context) {
      EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_OK);
    }
  }

  tessera_tensor_t *input(std::vector<int64_t> shape, float seed) {
    tessera_tensor_t *t = nullptr;
    EXPECT_EQ(statusCode(tessera_tensor_create(device, TESSERA_DTYPE_F32, uint32_t(shape.size()), shape.data(), &t)),
              TESSERA_STATUS_OK);
    tensors.push_back(t);
    std::vector<float> v(size_t(shape[0] * shape[1]));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = std::sin(seed * float(i + 1));
    EXPECT_EQ(statusCode(tessera_tensor_copy_from_host(t, v.data(), v.size() * 4)), TESSERA_STATUS_OK);
    return t;
  }

  tessera_tensor_t *run(tessera_tensor_t *x, tessera_tensor_t *w, uint32_t flags) {
    tessera_run_options_t options{};
    options.struct_size = sizeof(options);
    options.flags = flags;
    tessera_tensor_t *in[] = {x, w}, *out = nullptr;
    tessera_status_t *s = tessera_module_run(module, &options, 2, in, 1, &out);
    EXPECT_EQ(s, nullptr) << message(s);
    if (out)
      tensors.push_back(out);
    return out;
  }

  // The output's memory as it is now, read through DLPack without a copy
  // (a copy would wait for the queued kernels).
  std::vector<float> raw(tessera_tensor_t *t) {
    DLManagedTensor *m = nullptr;
    EXPECT_EQ(statusCode(tessera_tensor_to_dlpack(t, &m)), TESSERA_STATUS_OK);
    if (!m)
      return {};
    const float *p = static_cast<const float *>(m->dl_tensor.data);
    std::vector<float> v(p, p + m->dl_tensor.shape[0] * m->dl_tensor.shape[1]);
    m->deleter(m);
    return v;
  }

  // float64 reference of the program for x (rows x 8) and w (8 x 4).
  std::vector<double> reference(tessera_tensor_t *x, tessera_tensor_t *w, int64_t rows) {
    std::vector<float> xv(size_t(rows * 8)), wv(32);
    EXPECT_EQ(statusCode(tessera_tensor_copy_to_host(x, xv.data(), xv.size() * 4)), TESSERA_STATUS_OK);
    EXPECT_EQ(statusCode(tessera_tensor_copy_to_host(w, wv.data(), wv.size() * 4)), TESSERA_STATUS_OK);
    std::vector<double> out(size_t(rows * 4));
    for (int64_t r = 0; r < rows; ++r) {
      double e[4], max = -INFINITY, sum = 0;
      for (int c = 0; c < 4; ++c) {
        double h = 0;
        for (int k = 0; k < 8; ++k)
          h += double(xv[size_t(r * 8 + k)]) * wv[size_t(k * 4 + c)];
        e[c] = std::exp(h);
        max = std::max(max, e[c]);
      }
      for (int c = 0; c < 4; ++c)
        sum += (e[c] = std::exp(e[c] - max));
      for (int c = 0; c < 4; ++c)
        out[size_t(r * 4 + c)] = e[c] / sum;
    }
    return out;
  }

  static double maxError(const std::vector<float> &a, const std::vector<double> &b) {
    if (a.size() != b.size())
      return INFINITY;
    double err = 0;
    for (size_t i = 0; i < a.size(); ++i)
      err = std::max(err, std::fabs(double(a[i]) - b[i]));
    return err;
  }

  tessera_context_t *context = nullptr;
  tessera_device_t *device = nullptr;
  tessera_module_t *module = nullptr;
  std::vector<tessera_tensor_t *> tensors;
};

} // namespace

TEST_F(RuntimeAsync, RunReturnsBeforeTheKernelsAndSynchronizeRunsThem) {
  tessera_tensor_t *w = input({8, 4}, 0.3f);
  // Three runs back to back: each takes the arena the one before returned
  // to the pool while its kernels were still queued.
  // (Inputs first: their uploads would wait for queued kernels.)
  std::vector<tessera_tensor_t *> xs, outs;
  for (int i = 0; i < 3; ++i)
    xs.push_back(input({5, 8}, 0.1f + 0.2f * float(i)));
  for (int i = 0; i < 3; ++i) {
    outs.push_back(run(xs[size_t(i)], w, TESSERA_RUN_ASYNC));
    ASSERT_NE(outs.back(), nullptr);
  }
  // Not computed yet: the plugin zeroes new buffers and nothing ran.
  for (tessera_tensor_t *out : outs)
    for (float v : raw(out))
      ASSERT_EQ(v, 0.0f);
  ASSERT_EQ(message(tessera_module_synchronize(module)), "");
  for (int i = 0; i < 3; ++i)
    EXPECT_LT(maxError(raw(outs[size_t(i)]), reference(xs[size_t(i)], w, 5)), 1e-6) << "run " << i;
}

TEST_F(RuntimeAsync, SynchronousRunsHaveFinishedOnReturn) {
  tessera_tensor_t *w = input({8, 4}, 0.3f), *x = input({2, 8}, 0.7f);
  tessera_tensor_t *out = run(x, w, 0);
  ASSERT_NE(out, nullptr);
  EXPECT_LT(maxError(raw(out), reference(x, w, 2)), 1e-6);
}

TEST_F(RuntimeAsync, CopiesWaitForQueuedKernels) {
  tessera_tensor_t *w = input({8, 4}, 0.3f), *x = input({4, 8}, 0.2f);
  tessera_tensor_t *out = run(x, w, TESSERA_RUN_ASYNC);
  ASSERT_NE(out, nullptr);
  std::vector<float> v(16);
  ASSERT_EQ(statusCode(tessera_tensor_copy_to_host(out, v.data(), v.size() * 4)), TESSERA_STATUS_OK);
  EXPECT_LT(maxError(v, reference(x, w, 4)), 1e-6);
}

TEST_F(RuntimeAsync, UnknownFlagsAreRejected) {
  tessera_tensor_t *w = input({8, 4}, 0.3f), *x = input({1, 8}, 0.2f);
  tessera_run_options_t options{};
  options.struct_size = sizeof(options);
  options.flags = TESSERA_RUN_ASYNC | 0x6;
  tessera_tensor_t *in[] = {x, w}, *out = nullptr;
  tessera_status_t *s = tessera_module_run(module, &options, 2, in, 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(message(s).find("unknown bits 0x6"), std::string::npos);
  EXPECT_EQ(out, nullptr);
  // A 0.1-sized options struct (no flags field) still runs synchronously.
  options.struct_size = TESSERA_RUN_OPTIONS_STRUCT_SIZE;
  s = tessera_module_run(module, &options, 2, in, 1, &out);
  ASSERT_EQ(s, nullptr) << message(s);
  tensors.push_back(out);
  EXPECT_LT(maxError(raw(out), reference(x, w, 1)), 1e-6);
}

TEST_F(RuntimeAsync, SynchronizeNeedsALiveDevice) {
  tessera_device_description_t description{};
  description.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
  description.plugin = "interp";
  tessera_compile_target_t target{};
  target.struct_size = sizeof(target);
  target.description = &description;
  tessera_module_t *compileOnly = nullptr;
  ASSERT_EQ(statusCode(tessera_compile(context, kProgram, std::strlen(kProgram), "tessera-ir", nullptr, &target,
                                       &compileOnly)),
            TESSERA_STATUS_OK);
  tessera_status_t *s = tessera_module_synchronize(compileOnly);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_NO_DEVICE);
  tessera_status_free(s);
  tessera_module_destroy(compileOnly);
}
