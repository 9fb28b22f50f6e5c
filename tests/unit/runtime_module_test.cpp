// Compile, run, module info, serialize/load and run-time errors through the
// C ABI, on the Schedule IR interpreter test plugin (tests/runtime_plugin)
// and checked against the reference interpreter entry of tessera_ir.h.
#include "TestContext.h"

#include <dlpack/dlpack.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char *kMlp = R"(
func @main(%x: tensor<B x 8 x f32>, %w: tensor<8 x 4 x f32>, %b: tensor<4 x f32>) -> tensor<B x 4 x f32> {
  %h = matmul(%x, %w)
  %hb = add(%h, %b)
  %a = relu(%hb)
  %e = exp(%a)
  %s = softmax(%e) {axis = -1}
  return %s
}
)";

const char *kHeads = R"(
func @heads(%x: tensor<B x D x f32>) -> tensor<B x H x D/H x f32> {
  %y = reshape(%x) : tensor<B x H x D/H x f32>
  %z = mul(%y, %y)
  return %z
}
)";

std::string message(tessera_status_t *s) {
  std::string m = tessera_status_message(s);
  tessera_status_free(s);
  return m;
}

class RuntimeModule : public ::testing::Test {
protected:
  void SetUp() override {
    context = makeContext(std::string(TESSERA_TEST_INTERP_PLUGIN_DIR) + ":" + TESSERA_TEST_INTERP_NATIVE_PLUGIN_DIR +
                          ":" + TESSERA_TEST_PLUGIN_DIR);
    ASSERT_NE(context, nullptr);
    device = findDevice(context, "interp");
    ASSERT_NE(device, nullptr) << "the interp test plugin did not load";
  }
  void TearDown() override {
    for (tessera_tensor_t *t : tensors)
      tessera_tensor_free(t);
    for (tessera_module_t *m : modules)
      tessera_module_destroy(m);
    if (context) {
      EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_OK);
    }
  }

  tessera_status_t *compile(const std::string &source, tessera_module_t **out, const char *bind = nullptr,
                            bool compileOnly = false, const char *entry = nullptr) {
    tessera_compile_options_t options{};
    options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
    options.opt_level = 2;
    options.bind = bind;
    options.entry = entry;
    tessera_device_description_t description{};
    description.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
    description.plugin = "interp";
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    if (compileOnly)
      target.description = &description;
    else
      target.device = device;
    tessera_status_t *s = tessera_compile(context, source.data(), source.size(), "tessera-ir", &options, &target, out);
    if (!s)
      modules.push_back(*out);
    return s;
  }

  tessera_module_t *compileOk(const std::string &source, const char *bind = nullptr) {
    tessera_module_t *m = nullptr;
    tessera_status_t *s = compile(source, &m, bind);
    EXPECT_EQ(s, nullptr) << tessera_status_message(s);
    tessera_status_free(s);
    return m;
  }

  // A tensor on `device` filled with values from a fixed sequence.
  tessera_tensor_t *tensor(tessera_dtype_t dtype, std::vector<int64_t> shape, float seed = 0.1f,
                           tessera_device_t *on = nullptr) {
    tessera_tensor_t *t = nullptr;
    tessera_status_t *s =
        tessera_tensor_create(on ? on : device, dtype, static_cast<uint32_t>(shape.size()), shape.data(), &t);
    EXPECT_EQ(s, nullptr) << tessera_status_message(s);
    tessera_status_free(s);
    if (!t)
      return nullptr;
    tensors.push_back(t);
    if (dtype == TESSERA_DTYPE_F32) {
      size_t n = 1;
      for (int64_t d : shape)
        n *= static_cast<size_t>(d);
      std::vector<float> v(n);
      for (size_t i = 0; i < n; ++i)
        v[i] = std::sin(seed * static_cast<float>(i + 1)) * 0.9f;
      EXPECT_EQ(statusCode(tessera_tensor_copy_from_host(t, v.data(), n * 4)), TESSERA_STATUS_OK);
    }
    return t;
  }

  std::vector<float> read(tessera_tensor_t *t) {
    tessera_tensor_info_t info{};
    info.struct_size = TESSERA_TENSOR_INFO_STRUCT_SIZE;
    EXPECT_EQ(statusCode(tessera_tensor_get_info(t, &info)), TESSERA_STATUS_OK);
    std::vector<float> v(info.size_bytes / 4);
    EXPECT_EQ(statusCode(tessera_tensor_copy_to_host(t, v.data(), info.size_bytes)), TESSERA_STATUS_OK);
    return v;
  }

  // Runs the module and the reference on the same inputs; max abs error.
  double runAndCompare(tessera_module_t *m, const std::string &source, std::vector<tessera_tensor_t *> inputs,
                       const char *bind = nullptr, const char *entry = nullptr) {
    tessera_tensor_t *out = nullptr;
    tessera_status_t *s = tessera_module_run(m, nullptr, inputs.size(), inputs.data(), 1, &out);
    EXPECT_EQ(s, nullptr) << tessera_status_message(s);
    tessera_status_free(s);
    if (!out)
      return INFINITY;
    tensors.push_back(out);
    tessera_program_t *program = nullptr;
    EXPECT_EQ(statusCode(tessera_program_parse(source.data(), source.size(), "test.tsr", &program)),
              TESSERA_STATUS_OK);
    tessera_tensor_t *ref = nullptr;
    s = tessera_program_run_reference(program, entry, bind, inputs.size(), inputs.data(), 1, &ref);
    EXPECT_EQ(s, nullptr) << tessera_status_message(s);
    tessera_status_free(s);
    tessera_program_destroy(program);
    if (!ref)
      return INFINITY;
    tensors.push_back(ref);
    std::vector<float> a = read(out), b = read(ref);
    EXPECT_EQ(a.size(), b.size());
    double err = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i)
      err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
    return err;
  }

  tessera_context_t *context = nullptr;
  tessera_device_t *device = nullptr;
  std::vector<tessera_tensor_t *> tensors;
  std::vector<tessera_module_t *> modules;
};

} // namespace

TEST_F(RuntimeModule, CompilesAndMatchesTheReference) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  double err = runAndCompare(m, kMlp, {tensor(TESSERA_DTYPE_F32, {3, 8}), tensor(TESSERA_DTYPE_F32, {8, 4}, 0.3f),
                                       tensor(TESSERA_DTYPE_F32, {4}, 0.7f)});
  EXPECT_LT(err, 1e-5);
}

TEST_F(RuntimeModule, OneModuleServesSeveralBatchSizes) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  tessera_tensor_t *w = tensor(TESSERA_DTYPE_F32, {8, 4}, 0.3f), *b = tensor(TESSERA_DTYPE_F32, {4}, 0.7f);
  for (int64_t batch : {1, 5, 2, 5}) {
    tessera_tensor_t *x = tensor(TESSERA_DTYPE_F32, {batch, 8});
    EXPECT_LT(runAndCompare(m, kMlp, {x, w, b}), 1e-5) << "B=" << batch;
  }
  tessera_module_stats_t stats{};
  stats.struct_size = TESSERA_MODULE_STATS_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_module_get_stats(m, &stats));
  EXPECT_EQ(stats.cached_plans, 3u); // B = 1, 5, 2; the second B = 5 hits the cache
  EXPECT_EQ(stats.runs, 4u);
  EXPECT_GE(stats.kernels, 1u);
  EXPECT_LE(stats.arena_bytes, stats.intermediate_bytes);
  if (stats.peak_live_bytes > 0) {
    EXPECT_LE(static_cast<double>(stats.arena_bytes), 1.2 * static_cast<double>(stats.peak_live_bytes));
  }
}

TEST_F(RuntimeModule, InfoDescribesTheSymbolicSignature) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(tessera_module_input_count(m), 3u);
  ASSERT_EQ(tessera_module_output_count(m), 1u);
  tessera_value_info_t info{};
  info.struct_size = TESSERA_VALUE_INFO_STRUCT_SIZE;
  TESSERA_ASSERT_OK(tessera_module_get_input(m, 0, &info));
  EXPECT_STREQ(info.name, "x");
  EXPECT_EQ(info.dtype, TESSERA_DTYPE_F32);
  ASSERT_EQ(info.rank, 2u);
  EXPECT_EQ(info.dims[0].size, -1);
  EXPECT_STREQ(info.dims[0].symbol, "B");
  EXPECT_EQ(info.dims[1].size, 8);
  EXPECT_EQ(info.dims[1].symbol, nullptr);
  TESSERA_ASSERT_OK(tessera_module_get_output(m, 0, &info));
  EXPECT_STREQ(info.name, "s");
  EXPECT_EQ(statusCode(tessera_module_get_input(m, 3, &info)), TESSERA_STATUS_NOT_FOUND);
}

TEST_F(RuntimeModule, WrongInputsAreClearErrors) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  tessera_tensor_t *x = tensor(TESSERA_DTYPE_F32, {2, 8}), *w = tensor(TESSERA_DTYPE_F32, {8, 4});
  tessera_tensor_t *b = tensor(TESSERA_DTYPE_F32, {4});
  tessera_tensor_t *out = nullptr;

  std::vector<tessera_tensor_t *> two = {x, w};
  tessera_status_t *s = tessera_module_run(m, nullptr, 2, two.data(), 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(tessera_status_message(s)).find("takes 3 inputs"), std::string::npos)
      << tessera_status_message(s);
  tessera_status_free(s);

  tessera_tensor_t *wrongDtype = tensor(TESSERA_DTYPE_F16, {4});
  std::vector<tessera_tensor_t *> args = {x, w, wrongDtype};
  s = tessera_module_run(m, nullptr, 3, args.data(), 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  std::string msg = tessera_status_message(s);
  tessera_status_free(s);
  EXPECT_NE(msg.find("%b"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f16"), std::string::npos) << msg;

  tessera_tensor_t *wrongStatic = tensor(TESSERA_DTYPE_F32, {2, 7});
  args = {wrongStatic, w, b};
  s = tessera_module_run(m, nullptr, 3, args.data(), 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_SHAPE_MISMATCH) << tessera_status_message(s);
  tessera_status_free(s);

  args = {x, w, b};
  s = tessera_module_run(m, nullptr, 3, args.data(), 2, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  tessera_status_free(s);
  EXPECT_EQ(out, nullptr) << "nothing is written on error";
}

TEST_F(RuntimeModule, SymbolBoundTwiceNamesTheSymbol) {
  const char *source = R"(
func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {
  %c = add(%a, %b)
  return %c
}
)";
  tessera_module_t *m = compileOk(source);
  ASSERT_NE(m, nullptr);
  std::vector<tessera_tensor_t *> args = {tensor(TESSERA_DTYPE_F32, {4}), tensor(TESSERA_DTYPE_F32, {5})};
  tessera_tensor_t *out = nullptr;
  tessera_status_t *s = tessera_module_run(m, nullptr, 2, args.data(), 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_SHAPE_MISMATCH);
  std::string msg = message(s);
  EXPECT_NE(msg.find("symbol N"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("%b"), std::string::npos) << msg;
}

TEST_F(RuntimeModule, InputOnAnotherPluginsDeviceIsRejected) {
  tessera_device_t *cpu = findDevice(context, "cpu");
  if (!cpu)
    GTEST_SKIP() << "the cpu plugin has no device here";
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  std::vector<tessera_tensor_t *> args = {tensor(TESSERA_DTYPE_F32, {2, 8}, 0.1f, cpu), tensor(TESSERA_DTYPE_F32, {8, 4}),
                                          tensor(TESSERA_DTYPE_F32, {4})};
  tessera_tensor_t *out = nullptr;
  tessera_status_t *s = tessera_module_run(m, nullptr, 3, args.data(), 1, &out);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_ARGUMENT);
  std::string msg = message(s);
  EXPECT_NE(msg.find("cpu:0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("interp:0"), std::string::npos) << msg;
}

TEST_F(RuntimeModule, DLPackHostInputsAreStaged) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  // x as an imported DLPack tensor over plain host memory.
  static std::vector<float> host(2 * 8);
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = std::sin(0.1f * static_cast<float>(i + 1)) * 0.9f;
  static int64_t shape[2] = {2, 8};
  auto *managed = new DLManagedTensor{};
  managed->dl_tensor.data = host.data();
  managed->dl_tensor.device = {kDLCPU, 0};
  managed->dl_tensor.ndim = 2;
  managed->dl_tensor.dtype = {kDLFloat, 32, 1};
  managed->dl_tensor.shape = shape;
  managed->deleter = [](DLManagedTensor *self) { delete self; };
  tessera_tensor_t *x = nullptr;
  TESSERA_ASSERT_OK(tessera_tensor_from_dlpack(context, managed, &x));
  tensors.push_back(x);
  EXPECT_LT(runAndCompare(m, kMlp, {x, tensor(TESSERA_DTYPE_F32, {8, 4}, 0.3f), tensor(TESSERA_DTYPE_F32, {4}, 0.7f)}),
            1e-5);
}

TEST_F(RuntimeModule, CompileOnlyModuleCannotRun) {
  tessera_module_t *m = nullptr;
  TESSERA_ASSERT_OK(compile(kMlp, &m, nullptr, /*compileOnly=*/true));
  EXPECT_EQ(tessera_module_input_count(m), 3u);
  std::vector<tessera_tensor_t *> args = {tensor(TESSERA_DTYPE_F32, {2, 8}), tensor(TESSERA_DTYPE_F32, {8, 4}),
                                          tensor(TESSERA_DTYPE_F32, {4})};
  tessera_tensor_t *out = nullptr;
  EXPECT_EQ(statusCode(tessera_module_run(m, nullptr, 3, args.data(), 1, &out)), TESSERA_STATUS_NO_DEVICE);
  // It still serializes, and loads onto the live device and runs there.
  tessera_blob_t *blob = nullptr;
  TESSERA_ASSERT_OK(tessera_module_serialize(m, &blob));
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = device;
  tessera_module_t *loaded = nullptr;
  TESSERA_ASSERT_OK(tessera_module_load(context, tessera_blob_data(blob), tessera_blob_size(blob), &target, &loaded));
  modules.push_back(loaded);
  tessera_blob_free(blob);
  EXPECT_LT(runAndCompare(loaded, kMlp, args), 1e-5);
}

TEST_F(RuntimeModule, UnknownPluginAndFormats) {
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  tessera_device_description_t description{};
  description.struct_size = TESSERA_DEVICE_DESCRIPTION_STRUCT_SIZE;
  description.plugin = "no-such-plugin";
  target.description = &description;
  tessera_module_t *m = nullptr;
  std::string src = kMlp;
  EXPECT_EQ(statusCode(tessera_compile(context, src.data(), src.size(), "tessera-ir", nullptr, &target, &m)),
            TESSERA_STATUS_NOT_FOUND);
  target.description = nullptr;
  target.device = device;
  // Tessera IR text is not an ONNX model: unsupported without the importer, corrupt with it.
  tessera_status_t *s = tessera_compile(context, src.data(), src.size(), "onnx", nullptr, &target, &m);
  tessera_status_code_t code = tessera_status_code(s);
  EXPECT_TRUE(code == TESSERA_STATUS_UNSUPPORTED || code == TESSERA_STATUS_CORRUPT_DATA) << tessera_status_message(s);
  tessera_status_free(s);
  EXPECT_EQ(statusCode(tessera_compile(context, src.data(), src.size(), "pytorch", nullptr, &target, &m)),
            TESSERA_STATUS_UNSUPPORTED);
  std::string bad = "func @main(%x: tensor<4 x f32>) -> tensor<4 x f32> {\n  %y = frobnicate(%x)\n  return %y\n}\n";
  s = tessera_compile(context, bad.data(), bad.size(), "tessera-ir", nullptr, &target, &m);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_INVALID_IR);
  tessera_source_location_t loc{};
  loc.struct_size = TESSERA_SOURCE_LOCATION_STRUCT_SIZE;
  tessera_status_location(s, &loc);
  EXPECT_EQ(loc.line, 2u);
  tessera_status_free(s);
  EXPECT_EQ(statusCode(compile(kMlp, &m, nullptr, false, "nope")), TESSERA_STATUS_NOT_FOUND);
}

TEST_F(RuntimeModule, SymbolsOnlyInAnnotationsMustBeBound) {
  tessera_module_t *m = nullptr;
  tessera_status_t *s = compile(kHeads, &m);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_SHAPE_MISMATCH);
  EXPECT_NE(message(s).find("'H'"), std::string::npos);
  EXPECT_EQ(statusCode(compile(kHeads, &m, "H=")), TESSERA_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(statusCode(compile(kHeads, &m, "Q=2")), TESSERA_STATUS_INVALID_ARGUMENT);

  m = compileOk(kHeads, "H=2");
  ASSERT_NE(m, nullptr);
  tessera_tensor_t *x = tensor(TESSERA_DTYPE_F32, {3, 6});
  EXPECT_LT(runAndCompare(m, kHeads, {x}, "H=2"), 1e-6);
  // D = 5 is not divisible by H = 2.
  tessera_tensor_t *odd = tensor(TESSERA_DTYPE_F32, {3, 5});
  tessera_tensor_t *out = nullptr;
  EXPECT_EQ(statusCode(tessera_module_run(m, nullptr, 1, &odd, 1, &out)), TESSERA_STATUS_SHAPE_MISMATCH);

  tessera_program_t *program = nullptr;
  std::string src = kHeads;
  TESSERA_ASSERT_OK(tessera_program_parse(src.data(), src.size(), "heads.tsr", &program));
  tessera_blob_t *symbols = nullptr;
  TESSERA_ASSERT_OK(tessera_program_function_symbols(program, nullptr, TESSERA_PROGRAM_SYMBOLS_ALL, &symbols));
  EXPECT_STREQ(static_cast<const char *>(tessera_blob_data(symbols)), "B,D,H");
  tessera_blob_free(symbols);
  TESSERA_ASSERT_OK(
      tessera_program_function_symbols(program, nullptr, TESSERA_PROGRAM_SYMBOLS_UNDETERMINED, &symbols));
  EXPECT_STREQ(static_cast<const char *>(tessera_blob_data(symbols)), "H");
  tessera_blob_free(symbols);
  tessera_program_destroy(program);
}

TEST_F(RuntimeModule, SerializeLoadRoundTrip) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  tessera_blob_t *blob = nullptr;
  TESSERA_ASSERT_OK(tessera_module_serialize(m, &blob));
  std::string bytes(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
  tessera_blob_free(blob);
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = device;
  tessera_module_t *loaded = nullptr;
  TESSERA_ASSERT_OK(tessera_module_load(context, bytes.data(), bytes.size(), &target, &loaded));
  modules.push_back(loaded);
  EXPECT_EQ(tessera_module_input_count(loaded), 3u);
  std::vector<tessera_tensor_t *> args = {tensor(TESSERA_DTYPE_F32, {3, 8}), tensor(TESSERA_DTYPE_F32, {8, 4}, 0.3f),
                                          tensor(TESSERA_DTYPE_F32, {4}, 0.7f)};
  tessera_tensor_t *a = nullptr, *b = nullptr;
  TESSERA_ASSERT_OK(tessera_module_run(m, nullptr, 3, args.data(), 1, &a));
  tensors.push_back(a);
  TESSERA_ASSERT_OK(tessera_module_run(loaded, nullptr, 3, args.data(), 1, &b));
  tensors.push_back(b);
  EXPECT_EQ(read(a), read(b));
  // Serializing the loaded module gives the same bytes.
  TESSERA_ASSERT_OK(tessera_module_serialize(loaded, &blob));
  EXPECT_EQ(std::string(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob)), bytes);
  tessera_blob_free(blob);
}

TEST_F(RuntimeModule, CorruptModulesAreRejected) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  tessera_blob_t *blob = nullptr;
  TESSERA_ASSERT_OK(tessera_module_serialize(m, &blob));
  const std::string bytes(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
  tessera_blob_free(blob);
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = device;
  auto load = [&](const std::string &data) {
    tessera_module_t *out = nullptr;
    tessera_status_code_t code = statusCode(tessera_module_load(context, data.data(), data.size(), &target, &out));
    if (out)
      modules.push_back(out);
    return code;
  };
  for (size_t cut : {size_t(0), size_t(4), size_t(20), bytes.size() / 2, bytes.size() - 1})
    EXPECT_EQ(load(bytes.substr(0, cut)), TESSERA_STATUS_CORRUPT_DATA) << "truncated to " << cut;
  std::string badMagic = bytes;
  badMagic[0] = 'X';
  EXPECT_EQ(load(badMagic), TESSERA_STATUS_CORRUPT_DATA);
  for (size_t pos = 24; pos < bytes.size(); pos += std::max<size_t>(1, bytes.size() / 97)) {
    std::string flipped = bytes;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x5a);
    EXPECT_EQ(load(flipped), TESSERA_STATUS_CORRUPT_DATA) << "byte " << pos;
  }
  std::string newer = bytes;
  newer[8] = 9; // format version 9
  EXPECT_EQ(load(newer), TESSERA_STATUS_INCOMPATIBLE_VERSION);
  EXPECT_EQ(load(std::string(1000, '\0')), TESSERA_STATUS_CORRUPT_DATA);
}

TEST_F(RuntimeModule, ModulesKeepThePluginBusy) {
  tessera_module_t *m = compileOk(kMlp);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(statusCode(tessera_context_destroy(context)), TESSERA_STATUS_BUSY);
}

TEST_F(RuntimeModule, DumpsEveryStage) {
  std::vector<std::string> stages;
  tessera_compile_options_t options{};
  options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
  options.opt_level = 2;
  options.dump = "graph,schedule,tile,target,time";
  options.dump_user_data = &stages;
  options.dump_callback = [](void *user, const char *stage, const char *text, size_t size) {
    static_cast<std::vector<std::string> *>(user)->push_back(stage);
    EXPECT_EQ(std::strlen(text), size);
  };
  tessera_compile_target_t target{};
  target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
  target.device = device;
  tessera_module_t *m = nullptr;
  std::string src = kMlp;
  TESSERA_ASSERT_OK(tessera_compile(context, src.data(), src.size(), "tessera-ir", &options, &target, &m));
  modules.push_back(m);
  EXPECT_EQ(stages, (std::vector<std::string>{"graph", "schedule", "tile", "target", "time"}));
  options.dump = "graph,bogus";
  EXPECT_EQ(statusCode(tessera_compile(context, src.data(), src.size(), "tessera-ir", &options, &target, &m)),
            TESSERA_STATUS_INVALID_ARGUMENT);
}

TEST_F(RuntimeModule, TransformerBlockMatchesTheReference) {
  std::ifstream in(std::string(TESSERA_IR_EXAMPLES_DIR) + "/transformer_block.tsr");
  ASSERT_TRUE(in) << "docs/examples/transformer_block.tsr is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string src = ss.str();
  // D stays fixed: attention's decomposition needs a static head dim D/H.
  tessera_module_t *m = compileOk(src, "H=2,D=8");
  ASSERT_NE(m, nullptr);
  // bf16 inputs: fill through f32 bit patterns truncated to bf16.
  const int64_t B = 1, S = 4, D = 8;
  auto bf16 = [&](std::vector<int64_t> shape, float seed, float scale) {
    tessera_tensor_t *t = tensor(TESSERA_DTYPE_BF16, shape);
    size_t n = 1;
    for (int64_t d : shape)
      n *= static_cast<size_t>(d);
    std::vector<uint16_t> v(n);
    for (size_t i = 0; i < n; ++i) {
      float f = std::sin(seed * static_cast<float>(i + 1)) * scale;
      uint32_t w;
      std::memcpy(&w, &f, 4);
      v[i] = static_cast<uint16_t>(w >> 16);
    }
    EXPECT_EQ(statusCode(tessera_tensor_copy_from_host(t, v.data(), n * 2)), TESSERA_STATUS_OK);
    return t;
  };
  std::vector<tessera_tensor_t *> args = {
      bf16({B, S, D}, 0.1f, 1.0f),  bf16({D}, 0.2f, 1.0f),     bf16({D}, 0.3f, 0.1f),     bf16({D, D}, 0.4f, 0.3f),
      bf16({D, D}, 0.5f, 0.3f),     bf16({D, D}, 0.6f, 0.3f),  bf16({D, D}, 0.7f, 0.3f),  bf16({D}, 0.8f, 1.0f),
      bf16({D}, 0.9f, 0.1f),        bf16({D, 4 * D}, 1.1f, 0.3f), bf16({4 * D, D}, 1.3f, 0.3f)};
  tessera_tensor_t *out = nullptr;
  TESSERA_ASSERT_OK(tessera_module_run(m, nullptr, args.size(), args.data(), 1, &out));
  tensors.push_back(out);
  tessera_program_t *program = nullptr;
  TESSERA_ASSERT_OK(tessera_program_parse(src.data(), src.size(), "transformer_block.tsr", &program));
  tessera_tensor_t *ref = nullptr;
  tessera_status_t *s = tessera_program_run_reference(program, nullptr, "H=2,D=8", args.size(), args.data(), 1, &ref);
  tessera_program_destroy(program);
  TESSERA_ASSERT_OK(s);
  tensors.push_back(ref);
  std::vector<uint16_t> a(B * S * D), r(B * S * D);
  TESSERA_ASSERT_OK(tessera_tensor_copy_to_host(out, a.data(), a.size() * 2));
  TESSERA_ASSERT_OK(tessera_tensor_copy_to_host(ref, r.data(), r.size() * 2));
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t wa = static_cast<uint32_t>(a[i]) << 16, wr = static_cast<uint32_t>(r[i]) << 16;
    float fa, fr;
    std::memcpy(&fa, &wa, 4);
    std::memcpy(&fr, &wr, 4);
    err = std::max(err, std::fabs(static_cast<double>(fa) - fr) / (1.0 + std::fabs(fr)));
  }
  EXPECT_LT(err, 0.05);
}

// The core keeps `attention` whole only for a plugin whose NATIVE_OPS
// extension lists it (interp-native): one Schedule IR `attention` kernel.
// The plain interp plugin gets the decomposition. Both match the reference.
TEST_F(RuntimeModule, AttentionStaysWholeOnlyForPluginsThatClaimIt) {
  const std::string src = R"(
func @main(%q: tensor<B x 2 x S x 8 x f32>, %k: tensor<B x 2 x T x 8 x f32>, %v: tensor<B x 2 x T x 4 x f32>,
           %m: tensor<S x T x f32>) -> tensor<B x 2 x S x 4 x f32> {
  %y = attention(%q, %k, %v, %m) {causal = true, scale = 0.3}
  return %y
}
)";
  for (std::string plugin : {"interp", "interp-native"}) {
    SCOPED_TRACE(plugin);
    device = findDevice(context, plugin);
    ASSERT_NE(device, nullptr) << plugin << " did not load";
    std::string schedule;
    tessera_compile_options_t options{};
    options.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
    options.opt_level = 2;
    options.dump = "schedule";
    options.dump_user_data = &schedule;
    options.dump_callback = [](void *user, const char *, const char *text, size_t size) {
      static_cast<std::string *>(user)->append(text, size);
    };
    tessera_compile_target_t target{};
    target.struct_size = TESSERA_COMPILE_TARGET_STRUCT_SIZE;
    target.device = device;
    tessera_module_t *m = nullptr;
    TESSERA_ASSERT_OK(tessera_compile(context, src.data(), src.size(), "tessera-ir", &options, &target, &m));
    modules.push_back(m);
    size_t kernels = 0;
    for (size_t at = schedule.find("kernel \""); at != std::string::npos; at = schedule.find("kernel \"", at + 1))
      ++kernels;
    bool whole = schedule.find("\" attention {") != std::string::npos;
    if (plugin == "interp-native") {
      EXPECT_TRUE(whole) << schedule;
      EXPECT_EQ(kernels, 1u) << schedule;
      EXPECT_NE(schedule.find("attention scale=0.29999999999999999 causal=1"), std::string::npos) << schedule;
    } else {
      EXPECT_FALSE(whole) << schedule;
      EXPECT_GE(kernels, 3u) << schedule; // scores (+ scale, mask, causal), softmax, p v
    }
    double err = runAndCompare(m, src,
                               {tensor(TESSERA_DTYPE_F32, {2, 2, 5, 8}, 0.1f), tensor(TESSERA_DTYPE_F32, {2, 2, 7, 8}, 0.2f),
                                tensor(TESSERA_DTYPE_F32, {2, 2, 7, 4}, 0.3f), tensor(TESSERA_DTYPE_F32, {5, 7}, 0.4f)});
    EXPECT_LT(err, 1e-5);
  }
}
