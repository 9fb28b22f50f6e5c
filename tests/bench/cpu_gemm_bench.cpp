// fp32 GEMM through the CPU plugin's ABI (dlopen): C = A x B with a `matmul`
// Schedule IR kernel, timed over repetitions (median), with a spot check of
// the result against float64. Driven by tests/bench/cpu_gemm.py, which runs
// NumPy/OpenBLAS side by side, and by tests/bench/cpu_gemm_shapes.py
// (transformer shapes against torch.mm).
//   tessera-cpu-gemm-bench PLUGIN_SO M N K THREADS REPS [LAYOUT [KNOBS]]
// LAYOUT: nn (A [M,K], B [K,N]; the default), nt (B stored [N,K], read
// transposed), tn (A stored [K,M]). KNOBS: the kernel's knob line, e.g.
// 'library="onednn"' or 'mc=128 kc=512'.
#include "tessera/tessera_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <random>
#include <string>
#include <vector>

struct tessera_status_t {
  tessera_status_code_t code;
  std::string message;
};

static tessera_status_t *statusCreate(tessera_status_code_t code, const char *message) {
  return code == TESSERA_STATUS_OK ? nullptr : new tessera_status_t{code, message ? message : ""};
}
static void *hostAllocate(void *, size_t size, size_t) { return std::malloc(size ? size : 1); }
static void hostDeallocate(void *, void *p) { std::free(p); }

static void check(tessera_status_t *s, const char *what) {
  if (s) {
    std::fprintf(stderr, "%s: %s\n", what, s->message.c_str());
    std::exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc < 7 || argc > 9) {
    std::fprintf(stderr, "usage: %s PLUGIN_SO M N K THREADS REPS [nn|nt|tn [KNOBS]]\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(argv[2]), N = std::atoll(argv[3]), K = std::atoll(argv[4]);
  const uint32_t threads = uint32_t(std::atoi(argv[5]));
  const int reps = std::atoi(argv[6]);
  const std::string layout = argc > 7 ? argv[7] : "nn", knobs = argc > 8 ? argv[8] : "";
  if (layout != "nn" && layout != "nt" && layout != "tn") {
    std::fprintf(stderr, "layout must be nn, nt or tn\n");
    return 2;
  }
  const bool aT = layout == "tn", bT = layout == "nt";
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  auto getApi = reinterpret_cast<tessera_backend_get_api_fn_t>(dlsym(h, TESSERA_BACKEND_ENTRY_SYMBOL));
  tessera_backend_host_t host{};
  host.struct_size = sizeof(host);
  host.abi_min_major = host.abi_max_major = TESSERA_ABI_VERSION_MAJOR;
  host.abi_max_minor = TESSERA_ABI_VERSION_MINOR;
  host.status_create = statusCreate;
  host.allocate = hostAllocate;
  host.deallocate = hostDeallocate;
  const tessera_backend_api_t *api = nullptr;
  check(getApi(&host, &api), "get_api");
  tessera_backend_plugin_t *plugin = nullptr;
  check(api->initialize(&host, &plugin), "initialize");

  const std::string text =
      std::string("tessera-schedule v1\nsymbols M N K\nkernel \"gemm\" matmul {\n") +
      (aT ? "  operand 0 in f32 [s2, s0]\n" : "  operand 0 in f32 [s0, s2]\n") +
      (bT ? "  operand 1 in f32 [s1, s2]\n" : "  operand 1 in f32 [s2, s1]\n") +
      "  operand 2 out f32 [s0, s1]\n  parallel [s0, s1]\n" + (knobs.empty() ? "" : "  knobs " + knobs + "\n") +
      "  stage reduce [s2] {\n" + (aT ? "    v0: f32 = load 0 [r0, p0]\n" : "    v0: f32 = load 0 [p0, r0]\n") +
      (bT ? "    v1: f32 = load 1 [p1, r0]\n" : "    v1: f32 = load 1 [r0, p1]\n") +
      "    v2: f32 = mul v0 v1\n    v3: f32 = reduce sum v2\n"
      "  }\n  stage map [] {\n    store 2 [p0, p1] v3\n  }\n}\n";
  tessera_device_description_t target{sizeof(target), nullptr, "cpu", nullptr, nullptr};
  tessera_backend_compile_args_t args{};
  args.struct_size = sizeof(args);
  args.program = text.data();
  args.program_size = text.size();
  args.program_format = "tessera-schedule-v1";
  args.target = &target;
  tessera_backend_executable_t *exe = nullptr;
  check(api->compile(plugin, &args, &exe), "compile");

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(size_t(M * K)), b(size_t(K * N)), c(size_t(M * N));
  for (float &x : a)
    x = u(rng);
  for (float &x : b)
    x = u(rng);
  tessera_backend_buffer_t *bufs[3];
  check(api->buffer_allocate(plugin, 0, a.size() * 4, &bufs[0]), "alloc");
  check(api->buffer_allocate(plugin, 0, b.size() * 4, &bufs[1]), "alloc");
  check(api->buffer_allocate(plugin, 0, c.size() * 4, &bufs[2]), "alloc");
  check(api->buffer_copy_from_host(plugin, bufs[0], 0, a.data(), a.size() * 4), "copy");
  check(api->buffer_copy_from_host(plugin, bufs[1], 0, b.data(), b.size() * 4), "copy");
  int64_t scalars[3] = {M, N, K};
  tessera_backend_launch_args_t la{};
  la.struct_size = sizeof(la);
  la.executable = exe;
  la.buffers = bufs;
  la.num_buffers = 3;
  la.scalars = scalars;
  la.num_scalars = 3;
  la.num_threads = threads;
  std::vector<double> times;
  for (int r = 0; r < reps + 2; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    check(api->launch(plugin, &la), "launch");
    auto t1 = std::chrono::steady_clock::now();
    if (r >= 2)
      times.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  check(api->buffer_copy_to_host(plugin, bufs[2], 0, c.data(), c.size() * 4), "copy");
  double maxErr = 0;
  for (int s = 0; s < 64; ++s) {
    int64_t i = (s * 7919) % M, j = (s * 104729) % N;
    double want = 0;
    for (int64_t k = 0; k < K; ++k)
      want += double(a[size_t(aT ? k * M + i : i * K + k)]) * b[size_t(bT ? j * K + k : k * N + j)];
    maxErr = std::max(maxErr, std::fabs(want - c[size_t(i * N + j)]) / (1 + std::fabs(want)));
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];
  std::printf("{\"median_s\": %.6g, \"min_s\": %.6g, \"gflops\": %.4g, \"max_rel_err\": %.3g}\n", median, times[0],
              2.0 * M * N * K / median / 1e9, maxErr);
  for (auto *buf : bufs)
    api->buffer_free(plugin, buf);
  api->executable_destroy(plugin, exe);
  api->shutdown(plugin);
  return maxErr < 1e-3 ? 0 : 1;
}
