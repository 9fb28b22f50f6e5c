// tessera-cuda-bench: times Schedule IR kernels on the CUDA plugin through
// its ABI (dlopen) with the plugin's measurement extension (CUDA events,
// warm-up, median), and writes inputs and outputs to files so that
// scripts/gpu/cuda_bench.py can check them against PyTorch and time PyTorch
// on the same GPU. The kernels are the Schedule IR the fusion pass produces
// for these ops (docs/compiler.md, "Lowering per op"), written out here so the
// timing covers exactly one launch per kernel (no module-run overhead).
//
// Usage: tessera-cuda-bench --plugin-dir DIR --out DIR [--case GLOB[,GLOB...]] [--warmup N] [--reps N] [--small]
// Prints one "RESULT {json}" line per case; exit 1 if any case failed.
#include "tessera/sdk/backend_sdk.h"
#include "SirKernels.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fnmatch.h>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

struct tessera_status_t {
  tessera_status_code_t code;
  std::string message;
};

namespace {

tessera_status_t *statusCreate(tessera_status_code_t code, const char *message) {
  return code == TESSERA_STATUS_OK ? nullptr : new tessera_status_t{code, message ? message : ""};
}
void *hostAllocate(void *, size_t size, size_t alignment) {
  return std::aligned_alloc(alignment < 16 ? 16 : alignment, (size + 15) / 16 * 16);
}
void hostDeallocate(void *, void *p) { std::free(p); }

std::string take(tessera_status_t *s) {
  if (!s)
    return {};
  std::string m = "status " + std::to_string(s->code) + ": " + s->message;
  delete s;
  return m;
}

struct Buffer {
  std::string name, dtype; // "bf16" | "f32"
  std::vector<int64_t> shape;
  bool random = false;     // input drawn at random (written to a file)
  bool output = false;     // read back and written to a file
  float scale = 1.f;       // random inputs: uniform in [-scale, scale]
};

struct KernelUse {
  std::string sir;                   // one-kernel Schedule IR program
  std::vector<std::string> operands; // buffer per operand
  std::vector<int64_t> scalars;
};

struct Case {
  std::string name, peer; // peer: what the Python driver compares with
  double flops = 0;       // for TFLOP/s
  double bytes = 0;       // minimum traffic, for GB/s
  std::vector<Buffer> buffers;
  std::vector<KernelUse> kernels;
};

size_t dtypeBytes(const std::string &d) { return d == "f32" ? 4 : 2; }
int64_t elems(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

uint16_t toBf16(float f) {
  uint32_t w;
  std::memcpy(&w, &f, 4);
  w += 0x7fff + ((w >> 16) & 1);
  return static_cast<uint16_t>(w >> 16);
}

// --- the Schedule IR of each op (as fusion lowers it) --------------------------

// C = A B as fusion lowers it; `knobs` adds to fusion's (library=...,
// gemm_path=...), `gelu` fuses an erf GELU into the epilogue.
std::string gemmSir(const std::string &name, const std::string &knobs = "", bool gelu = false) {
  return "tessera-schedule v1\nsymbols M N K\n" + tessera::testing::matmulKernel(name, knobs, gelu);
}

// One attention op kept whole (Schedule IR kind `attention`, as fusion emits
// it for a plugin that declares attention native): q, k, v, out [B, H, S, D].
// bshd: q, k, v and out stored [B, S, H, D] (layout=bshd, as the
// transformer block's fused head split hands them over).
std::string attentionSir(int64_t d, bool causal, const std::string &knobs, bool bshd = false) {
  std::string dim = std::to_string(d);
  char scale[32];
  std::snprintf(scale, sizeof(scale), "%.17g", 1.0 / std::sqrt(double(d)));
  std::string t = (bshd ? "[s0, s2, s1, " : "[s0, s1, s2, ") + dim + "]";
  return "tessera-schedule v1\nsymbols B H S\nkernel \"attention\" attention {\n  operand 0 in bf16 " + t +
         "\n  operand 1 in bf16 " + t + "\n  operand 2 in bf16 " + t + "\n  operand 3 out bf16 " + t +
         "\n  parallel " + t + "\n  attention scale=" + scale + " causal=" + (causal ? "1" : "0") +
         (bshd ? " layout=bshd" : "") + "\n" + (knobs.empty() ? "" : "  knobs " + knobs + "\n") + "}\n";
}

// `knobs` adds to fusion's (row_chunks=N: chunks of 8 per thread).
std::string softmaxSir(const std::string &knobs = "") {
  return R"(tessera-schedule v1
symbols R C
)" + tessera::testing::softmaxKernel("bf16", "vector=8" + knobs);
}

std::string layerNormSir(const std::string &knobs = "") {
  return R"(tessera-schedule v1
symbols R C
)" + tessera::testing::layerNormKernel("layer_norm", "bf16", "vector=8" + knobs);
}

std::string rmsNormSir(const std::string &knobs = "") {
  return R"(tessera-schedule v1
symbols R C
kernel "rms_norm" loop {
  operand 0 in bf16 [s0, s1]
  operand 1 in bf16 [s1]
  operand 2 out bf16 [s0, s1]
  parallel [s0]
  knobs vector=8)" + knobs + R"(
  stage reduce [s1] {
    v0: f32 = load 0 [p0, r0]
    v1: f32 = mul v0 v0
    v2: f32 = reduce sum v1
  }
  stage map [s1] {
    v3: f32 = load 0 [p0, r0]
    v4: f32 = index s1
    v5: f32 = div v2 v4
    v6: f32 = const 9.9999999999999995e-07
    v7: f32 = add v5 v6
    v8: f32 = rsqrt v7
    v9: f32 = mul v3 v8
    v10: f32 = load 1 [r0]
    v11: f32 = mul v9 v10
    store 2 [p0, r0] v11
  }
}
)";
}

std::string copySir() {
  return R"(tessera-schedule v1
symbols R C
kernel "copy" loop {
  operand 0 in bf16 [s0, s1]
  operand 1 out bf16 [s0, s1]
  parallel [s0]
  knobs vector=8
  stage map [s1] {
    v0: f32 = load 0 [p0, r0]
    store 1 [p0, r0] v0
  }
}
)";
}

std::vector<Case> cases(bool small) {
  std::vector<Case> c;
  int64_t n = small ? 512 : 4096;
  // GEMMs: the default schedule (cuBLASLt where the cost model prefers it),
  // the library forced, the generated kernel forced (wgmma on sm_90a; the
  // cp.async + ldmatrix mma.sync pipeline with gemm_path=mma_async), and a
  // fused GELU epilogue on both paths (cuBLASLt then the generated _epi).
  struct GemmCase {
    const char *name, *peer, *knobs;
    int64_t n;
    bool gelu;
  };
  const int64_t big = small ? 1024 : 8192;
  const GemmCase gemms[] = {
      {"gemm_bf16", "torch.matmul", "", n, false},
      {"gemm_bf16_8192", "torch.matmul", "", big, false},
      {"gemm_bf16_lib", "torch.matmul", " library=\"cublaslt\"", n, false},
      {"gemm_bf16_gen", "torch.matmul", " library=\"generic\"", n, false},
      {"gemm_bf16_gen_8192", "torch.matmul", " library=\"generic\"", big, false},
      {"gemm_bf16_gen_cpasync", "torch.matmul", " library=\"generic\" gemm_path=\"wgmma_cp_async\"", n, false},
      {"gemm_bf16_mma", "torch.matmul", " library=\"generic\" gemm_path=\"mma_async\"", n, false},
      {"gemm_gelu_lib", "matmul+gelu", " library=\"cublaslt\"", n, true},
      {"gemm_gelu_gen", "matmul+gelu", " library=\"generic\"", n, true},
  };
  for (const GemmCase &gc : gemms) {
    const int64_t m = gc.n;
    Case g{gc.name, gc.peer, 2.0 * m * m * m, 3.0 * m * m * 2, {}, {}};
    g.buffers = {{"a", "bf16", {m, m}, true, false}, {"b", "bf16", {m, m}, true, false}, {"c", "bf16", {m, m}, false, true}};
    g.kernels = {{gemmSir(gc.name, gc.knobs, gc.gelu), {"a", "b", "c"}, {m, m, m}}};
    c.push_back(g);
  }
  int64_t rows = small ? 1024 : 16384, cols = small ? 1024 : 4096;
  double rowBytes = 2.0 * rows * cols * 2;
  // Row kernels: the default schedule, then knob row_chunks (chunks of 8
  // elements per thread: 2 -> 256 threads per 4096 row, 8 -> 64).
  for (const char *variant : {"", "_c2", "_c8"}) {
    const std::string v = variant, knobs = v.empty() ? "" : " row_chunks=" + v.substr(2);
    {
      Case s{"softmax_bf16" + v, "torch.softmax", 0, rowBytes, {}, {}};
      s.buffers = {{"x", "bf16", {rows, cols}, true, false}, {"y", "bf16", {rows, cols}, false, true}};
      s.kernels = {{softmaxSir(knobs), {"x", "y"}, {rows, cols}}};
      c.push_back(s);
    }
    {
      Case l{"layer_norm_bf16" + v, "torch.layer_norm", 0, rowBytes, {}, {}};
      l.buffers = {{"x", "bf16", {rows, cols}, true, false}, {"g", "bf16", {cols}, true, false},
                   {"b", "bf16", {cols}, true, false}, {"y", "bf16", {rows, cols}, false, true}};
      l.kernels = {{layerNormSir(knobs), {"x", "g", "b", "y"}, {rows, cols}}};
      c.push_back(l);
    }
    {
      Case r{"rms_norm_bf16" + v, "torch.rms_norm", 0, rowBytes, {}, {}};
      r.buffers = {{"x", "bf16", {rows, cols}, true, false}, {"g", "bf16", {cols}, true, false},
                   {"y", "bf16", {rows, cols}, false, true}};
      r.kernels = {{rmsNormSir(knobs), {"x", "g", "y"}, {rows, cols}}};
      c.push_back(r);
    }
  }
  {
    Case k{"copy_bf16", "tensor.copy_", 0, rowBytes, {}, {}};
    k.buffers = {{"x", "bf16", {rows, cols}, true, false}, {"y", "bf16", {rows, cols}, false, true}};
    k.kernels = {{copySir(), {"x", "y"}, {rows, cols}}};
    c.push_back(k);
  }
  // Attention (B4 H16 S4096; flops = 4 B H S^2 D, halved when causal): the
  // flash kernel at D = 128 and 64, causal and not; on Hopper the other
  // variants of knob impl at D = 128 to compare with its default ("wgmma2"):
  // "wgmma3" (Q K overlaps the softmax too) and "mma" (mma.sync).
  //
  // Then the transformer block's shape (B4 H16 S2048 D128, causal; case
  // names with s2048, "bshd" when stored [B, S, H, D]): the default, the
  // causal block order before generator version 8 (order="heads"), and
  // impl="wgmma2x" (FlashAttention.h) with its knobs: 128-key tiles, Q in
  // shared memory and lazy rescaling by default; rescale="always",
  // q="regs", keys=64 (4 stages) one at a time.
  struct Att {
    const char *name;
    int64_t d;
    bool causal;
    const char *knobs;
    int64_t s = 4096;
    bool bshd = false;
  };
  const char *x = "impl=\"wgmma2x\"";
  for (Att at : {Att{"attention_bf16", 128, false, ""}, Att{"attention_causal_bf16", 128, true, ""},
                 Att{"attention_d64_bf16", 64, false, ""}, Att{"attention_d64_causal_bf16", 64, true, ""},
                 Att{"attention_wgmma3_bf16", 128, false, "impl=\"wgmma3\""},
                 Att{"attention_mma_bf16", 128, false, "impl=\"mma\""},
                 Att{"attention_x_bf16", 128, false, x},
                 Att{"attention_x_causal_bf16", 128, true, x},
                 Att{"attention_x_d64_bf16", 64, false, x},
                 Att{"attention_s2048_causal_bf16", 128, true, "", 2048},
                 Att{"attention_s2048_causal_heads_bf16", 128, true, "order=\"heads\"", 2048},
                 Att{"attention_s2048_causal_x_bf16", 128, true, x, 2048},
                 Att{"attention_s2048_causal_x_always_bf16", 128, true, "impl=\"wgmma2x\" rescale=\"always\"", 2048},
                 Att{"attention_s2048_causal_x_qregs_bf16", 128, true, "impl=\"wgmma2x\" q=\"regs\"", 2048},
                 Att{"attention_s2048_causal_x_k64_bf16", 128, true, "impl=\"wgmma2x\" keys=64", 2048},
                 Att{"attention_s2048_causal_x_heads_bf16", 128, true, "impl=\"wgmma2x\" order=\"heads\"", 2048},
                 Att{"attention_s2048_causal_bshd_bf16", 128, true, "", 2048, true},
                 Att{"attention_s2048_causal_bshd_heads_bf16", 128, true, "order=\"heads\"", 2048, true},
                 Att{"attention_s2048_causal_bshd_x_bf16", 128, true, x, 2048, true},
                 Att{"attention_s2048_causal_bshd_x_k64_bf16", 128, true, "impl=\"wgmma2x\" keys=64", 2048, true}}) {
    int64_t b = small ? 1 : 4, h = small ? 4 : 16, s = small ? 512 : at.s, d = at.d;
    double flops = 4.0 * b * h * s * s * d * (at.causal ? 0.5 : 1.0);
    Case a{at.name, at.causal ? "sdpa causal" : "sdpa", flops, 4.0 * b * h * s * d * 2, {}, {}};
    std::vector<int64_t> shape = at.bshd ? std::vector<int64_t>{b, s, h, d} : std::vector<int64_t>{b, h, s, d};
    // q up to 6: scores with a standard deviation of about 2, so softmax is
    // peaked and the running max moves between key tiles.
    a.buffers = {{"q", "bf16", shape, true, false, 6.f}, {"k", "bf16", shape, true, false},
                 {"v", "bf16", shape, true, false}, {"o", "bf16", shape, false, true}};
    a.kernels = {{attentionSir(d, at.causal, at.knobs, at.bshd), {"q", "k", "v", "o"}, {b, h, s}}};
    c.push_back(a);
  }
  return c;
}

struct Plugin {
  void *lib = nullptr;
  tessera_backend_host_t host{};
  const tessera_backend_api_t *api = nullptr;
  tessera_backend_plugin_t *plugin = nullptr;
  const tessera_backend_measurement_extension_t *measure = nullptr;
};

bool writeFile(const std::string &path, const void *data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char *>(data), static_cast<std::streamsize>(n));
  return static_cast<bool>(f);
}

std::string jsonShape(const std::vector<int64_t> &s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i)
    o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

// Runs one case; returns "" on success, else the failure.
std::string runCase(Plugin &p, const Case &c, const std::string &outDir, uint32_t warmup, uint32_t reps,
                    std::string *json) {
  std::map<std::string, tessera_backend_buffer_t *> bufs;
  std::string err;
  auto cleanup = [&] {
    for (auto &[n, b] : bufs)
      take(p.api->buffer_free(p.plugin, b));
  };
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::string files = "[";
  for (const Buffer &b : c.buffers) {
    size_t bytes = static_cast<size_t>(elems(b.shape)) * dtypeBytes(b.dtype);
    tessera_backend_buffer_t *buf = nullptr;
    if (!(err = take(p.api->buffer_allocate(p.plugin, 0, bytes, &buf))).empty()) {
      cleanup();
      return "allocate " + b.name + ": " + err;
    }
    bufs[b.name] = buf;
    if (b.random) {
      std::vector<uint16_t> host(static_cast<size_t>(elems(b.shape)));
      for (auto &h : host) {
        float v = dist(rng);
        h = toBf16((v == 0.f ? 0.5f : v) * b.scale);
      }
      if (!(err = take(p.api->buffer_copy_from_host(p.plugin, buf, 0, host.data(), bytes))).empty()) {
        cleanup();
        return "upload " + b.name + ": " + err;
      }
      std::string path = outDir + "/" + c.name + "." + b.name + ".bin";
      writeFile(path, host.data(), bytes);
    }
    if (b.random || b.output)
      files += std::string(files.size() > 1 ? "," : "") + "{\"name\":\"" + b.name + "\",\"dtype\":\"" + b.dtype +
               "\",\"shape\":" + jsonShape(b.shape) + ",\"role\":\"" + (b.output ? "out" : "in") + "\"}";
  }
  files += "]";
  double total = 0;
  std::string perKernel = "[";
  for (const KernelUse &k : c.kernels) {
    tessera_device_description_t desc{};
    desc.struct_size = sizeof(desc);
    desc.plugin = "cuda";
    tessera_backend_compile_args_t args{};
    args.struct_size = sizeof(args);
    args.program = k.sir.data();
    args.program_size = k.sir.size();
    args.program_format = "tessera-schedule-v1";
    args.target = &desc;
    args.device_ordinal = 0;
    tessera_backend_executable_t *exe = nullptr;
    if (!(err = take(p.api->compile(p.plugin, &args, &exe))).empty()) {
      cleanup();
      return "compile: " + err;
    }
    std::vector<tessera_backend_buffer_t *> ops;
    for (const std::string &o : k.operands)
      ops.push_back(bufs[o]);
    tessera_backend_launch_args_t launch{};
    launch.struct_size = sizeof(launch);
    launch.executable = exe;
    launch.kernel_index = 0;
    launch.device_ordinal = 0;
    launch.buffers = ops.data();
    launch.num_buffers = ops.size();
    launch.scalars = k.scalars.data();
    launch.num_scalars = k.scalars.size();
    // One launch for the numerics, synchronized so faults show here.
    err = take(p.api->launch(p.plugin, &launch));
    if (err.empty())
      err = take(p.api->synchronize(p.plugin, 0));
    tessera_backend_measurement_t m{};
    m.struct_size = sizeof(m);
    if (err.empty()) {
      tessera_backend_measure_args_t margs{};
      margs.struct_size = sizeof(margs);
      margs.launch = &launch;
      margs.warmup = warmup;
      margs.repetitions = reps;
      err = take(p.measure->measure(p.plugin, &margs, &m));
    }
    take(p.api->executable_destroy(p.plugin, exe));
    if (!err.empty()) {
      cleanup();
      return "run: " + err;
    }
    total += m.median_seconds;
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%s%.6f", perKernel.size() > 1 ? "," : "", m.median_seconds * 1e3);
    perKernel += buf;
  }
  perKernel += "]";
  for (const Buffer &b : c.buffers) {
    if (!b.output)
      continue;
    size_t bytes = static_cast<size_t>(elems(b.shape)) * dtypeBytes(b.dtype);
    std::vector<char> host(bytes);
    if (!(err = take(p.api->buffer_copy_to_host(p.plugin, bufs[b.name], 0, host.data(), bytes))).empty()) {
      cleanup();
      return "download: " + err;
    }
    writeFile(outDir + "/" + c.name + "." + b.name + ".bin", host.data(), bytes);
  }
  cleanup();
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "{\"case\":\"%s\",\"peer\":\"%s\",\"median_ms\":%.6f,\"kernel_ms\":%s,\"flops\":%.6g,\"bytes\":%.6g,"
                "\"files\":",
                c.name.c_str(), c.peer.c_str(), total * 1e3, perKernel.c_str(), c.flops, c.bytes);
  *json = std::string(buf) + files + "}";
  return {};
}

} // namespace

int main(int argc, char **argv) {
  std::string pluginDir, outDir = ".", filter;
  uint32_t warmup = 10, reps = 50;
  bool small = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--plugin-dir") pluginDir = next();
    else if (a == "--out") outDir = next();
    else if (a == "--case") filter = next();
    else if (a == "--warmup") warmup = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--reps") reps = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--small") small = true;
    else {
      std::fprintf(stderr, "usage: tessera-cuda-bench --plugin-dir DIR --out DIR [--case GLOB[,GLOB...]] [--warmup N] [--reps N] "
                           "[--small]\n");
      return 2;
    }
  }
  Plugin p;
  std::string path = pluginDir + "/libtessera-backend-cuda.so";
  p.lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p.lib) {
    std::fprintf(stderr, "cannot load %s: %s\n", path.c_str(), dlerror());
    return 3;
  }
  auto entry = reinterpret_cast<tessera_backend_get_api_fn_t>(dlsym(p.lib, TESSERA_BACKEND_ENTRY_SYMBOL));
  p.host.struct_size = sizeof(p.host);
  p.host.abi_min_major = p.host.abi_max_major = TESSERA_ABI_VERSION_MAJOR;
  p.host.abi_max_minor = TESSERA_ABI_VERSION_MINOR;
  p.host.status_create = statusCreate;
  p.host.allocate = hostAllocate;
  p.host.deallocate = hostDeallocate;
  std::string err;
  if (!entry || !(err = take(entry(&p.host, &p.api))).empty() || !(err = take(p.api->initialize(&p.host, &p.plugin))).empty()) {
    std::fprintf(stderr, "cannot start the cuda plugin: %s\n", err.c_str());
    return 3;
  }
  for (const tessera_backend_extension_t *e = p.api->extensions; e; e = e->next)
    if (e->type == TESSERA_BACKEND_EXTENSION_MEASUREMENT)
      p.measure = reinterpret_cast<const tessera_backend_measurement_extension_t *>(e);
  uint32_t count = 0;
  if (!(err = take(p.api->device_count(p.plugin, &count))).empty() || count == 0 || !p.measure) {
    std::fprintf(stderr, "no CUDA device: %s\n", err.c_str());
    take(p.api->shutdown(p.plugin));
    return 3;
  }
  tessera_backend_device_info_t info{};
  info.struct_size = sizeof(info);
  take(p.api->device_get_info(p.plugin, 0, &info));
  std::printf("device: %s (%s, %u SMs)\n", info.name, info.architecture, info.compute_units);
  int failed = 0;
  auto selected = [&](const std::string &name) {
    if (filter.empty())
      return true;
    for (size_t at = 0; at <= filter.size();) {
      size_t comma = filter.find(',', at);
      std::string glob = filter.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      if (!glob.empty() && fnmatch(glob.c_str(), name.c_str(), 0) == 0)
        return true;
      if (comma == std::string::npos)
        break;
      at = comma + 1;
    }
    return false;
  };
  for (const Case &c : cases(small)) {
    if (!selected(c.name))
      continue;
    std::string json;
    std::string e = runCase(p, c, outDir, warmup, reps, &json);
    if (!e.empty()) {
      ++failed;
      std::printf("RESULT {\"case\":\"%s\",\"peer\":\"%s\",\"error\":\"", c.name.c_str(), c.peer.c_str());
      for (char ch : e.substr(0, 600))
        std::putchar(ch == '"' || ch == '\\' ? '\'' : ch == '\n' ? ' ' : ch);
      std::printf("\"}\n");
    } else {
      std::printf("RESULT %s\n", json.c_str());
    }
    std::fflush(stdout);
  }
  take(p.api->shutdown(p.plugin));
  return failed ? 1 : 0;
}
