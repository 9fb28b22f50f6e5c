// oneDNN matmul for the GEMM path (see OneDnn.h). Compiled with or without
// oneDNN; TESSERA_CPU_HAVE_ONEDNN selects the real implementation.
#include "OneDnn.h"

#ifdef TESSERA_CPU_HAVE_ONEDNN
#include "oneapi/dnnl/dnnl.hpp"

#include <algorithm>
#include <mutex>

// Debian's oneDNN uses the OpenMP runtime: its thread count is the calling
// thread's OpenMP setting. Declared here (weak, resolved through libdnnl's
// libgomp) so the plugin includes no OpenMP header.
extern "C" __attribute__((weak)) void omp_set_num_threads(int);
extern "C" __attribute__((weak)) int omp_get_max_threads(void);
#endif

namespace tessera::cpu {

#ifdef TESSERA_CPU_HAVE_ONEDNN

bool oneDnnBuilt() { return true; }

namespace {

bool dnnlType(tessera_dtype_t d, dnnl::memory::data_type *out) {
  switch (d) {
  case TESSERA_DTYPE_F32: *out = dnnl::memory::data_type::f32; return true;
  case TESSERA_DTYPE_BF16: *out = dnnl::memory::data_type::bf16; return true;
  case TESSERA_DTYPE_F16: *out = dnnl::memory::data_type::f16; return true;
  default: return false;
  }
}

size_t elementBytes(tessera_dtype_t d) { return d == TESSERA_DTYPE_F32 ? 4 : 2; }

} // namespace

bool oneDnnMatmul(const LibraryGemm &g, float *c, unsigned threads, std::string *why) {
  using dt = dnnl::memory::data_type;
  dt aType, bType;
  if (!dnnlType(g.aType, &aType) || !dnnlType(g.bType, &bType) || g.aType != g.bType) {
    *why = "oneDNN matmul needs f32, bf16 or f16 operands of one dtype";
    return false;
  }
  if (g.aStrideM < 0 || g.aStrideK < 0 || g.bStrideK < 0 || g.bStrideN < 0 || g.aOffset.size() != g.bOffset.size()) {
    *why = "negative operand strides";
    return false;
  }
  try {
    static std::once_flag once;
    static dnnl::engine *engine = nullptr;
    std::call_once(once, [] { engine = new dnnl::engine(dnnl::engine::kind::cpu, 0); });
    if (omp_set_num_threads)
      omp_set_num_threads(static_cast<int>(std::max(1u, threads)));
    dnnl::stream stream(*engine);
    // Zero strides (a broadcast row or column) are legal here: oneDNN reads
    // through the strides it is given.
    dnnl::memory::desc aDesc({g.m, g.k}, aType, {g.aStrideM, g.aStrideK});
    dnnl::memory::desc bDesc({g.k, g.n}, bType, {g.bStrideK, g.bStrideN});
    dnnl::memory::desc cDesc({g.m, g.n}, dt::f32, {g.n, 1});
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aDesc, bDesc, cDesc), *engine); // oneDNN 2.x API
    dnnl::matmul prim(pd);
    dnnl::memory aMem(aDesc, *engine, DNNL_MEMORY_NONE), bMem(bDesc, *engine, DNNL_MEMORY_NONE),
        cMem(cDesc, *engine, DNNL_MEMORY_NONE);
    const char *a = static_cast<const char *>(g.a), *b = static_cast<const char *>(g.b);
    for (size_t batch = 0; batch < g.aOffset.size(); ++batch) {
      aMem.set_data_handle(const_cast<char *>(a + g.aOffset[batch] * int64_t(elementBytes(g.aType))));
      bMem.set_data_handle(const_cast<char *>(b + g.bOffset[batch] * int64_t(elementBytes(g.bType))));
      cMem.set_data_handle(c + int64_t(batch) * g.m * g.n);
      prim.execute(stream, {{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bMem}, {DNNL_ARG_DST, cMem}});
    }
    stream.wait();
  } catch (const dnnl::error &e) {
    *why = std::string("oneDNN: ") + e.what();
    return false;
  }
  return true;
}

bool oneDnnSgemmSerial(const BlasGemm &g, float *c, int64_t ldc, std::string *why) {
  // Without the OpenMP entry points oneDNN would use every core from inside
  // a pool task.
  if (!omp_set_num_threads || !omp_get_max_threads) {
    *why = "oneDNN's OpenMP runtime does not export omp_set_num_threads";
    return false;
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const dnnl_status_t s =
      dnnl_sgemm(g.aTrans ? 'T' : 'N', g.bTrans ? 'T' : 'N', g.m, g.n, g.k, 1.0f, g.a, g.lda, g.b, g.ldb, 0.0f, c, ldc);
  omp_set_num_threads(saved);
  if (s != dnnl_success) {
    *why = "dnnl_sgemm failed with status " + std::to_string(int(s));
    return false;
  }
  return true;
}

#else

bool oneDnnBuilt() { return false; }

bool oneDnnSgemmSerial(const BlasGemm &, float *, int64_t, std::string *why) {
  *why = "this build of the cpu plugin has no oneDNN (configure with TESSERA_WITH_ONEDNN and libdnnl-dev)";
  return false;
}

bool oneDnnMatmul(const LibraryGemm &, float *, unsigned, std::string *why) {
  *why = "this build of the cpu plugin has no oneDNN (configure with TESSERA_WITH_ONEDNN and libdnnl-dev)";
  return false;
}

#endif

} // namespace tessera::cpu
