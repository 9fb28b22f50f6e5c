#include "GemmKernel.h"

#include <algorithm>
#include <string>

namespace tessera::cuda {

int PipelinedGemm::sharedBytes() const {
  if (family == GemmFamily::WgmmaTma) // stages, epilogue slices, full + empty mbarriers
    return stages * stageBytes() + warpsM * 64 * kTmaSliceLd * 4 + stages * 16 + 1024;
  return std::max(stages * stageBytes(), epilogueBytes()) + 1024;
}

PipelinedGemm pipelinedGemmFor(GemmFamily family, int sm, bool bKContig, bool f16, bool plainStore) {
  PipelinedGemm g;
  g.family = family;
  g.bKContig = bKContig;
  g.f16 = f16;
  g.plainStore = plainStore;
  if (family == GemmFamily::Wgmma || family == GemmFamily::WgmmaTma) {
    // 2 warpgroups x m64n256k16; 4 stages of 48 KB (of Hopper's 227 KB).
    g.bm = 128;
    g.bn = 256;
    g.stages = 4;
    g.warpsM = 2;
    g.warpsN = 1;
  } else if (sm == 80 || sm == 90 || sm == 100) {
    // 163 KB (sm_80) to 227 KB of shared memory per block: 3 stages of 48 KB.
    g.bm = 128;
    g.bn = 256;
    g.stages = 3;
  } else {
    // 99 KB per block (sm_86, sm_89, sm_120): 3 stages of 32 KB.
    g.bm = 128;
    g.bn = 128;
    g.stages = 3;
  }
  return g;
}

namespace {

std::string S(long long v) { return std::to_string(v); }

// The 16-byte chunk address of the swizzled tile layouts (GemmKernel.h).
//   kTile(base, r, kc):  K-contiguous, row r of 128 bytes, chunk kc (0..7)
//   nTile(base, k, nc):  N-contiguous, k row, chunk nc (0..BN/8-1)
std::string kTile(const std::string &base, const std::string &r, const std::string &kc) {
  return base + " + (unsigned)((" + r + ") * 128 + ((((" + kc + ") ^ ((" + r + ") & 7))) << 4))";
}
std::string nTile(const PipelinedGemm &g, const std::string &base, const std::string &k, const std::string &nc) {
  return base + " + (unsigned)(((" + nc + ") >> 3) * " + S(g.bk * 128) + " + (" + k + ") * 128 + (((((" + nc +
         ") & 7) ^ ((" + k + ") & 7))) << 4))";
}

// The wgmma instruction with its 128 f32 accumulators (m64n256k16).
void emitWgmma(std::ostream &o, const PipelinedGemm &g, const std::string &indent, const std::string &da,
               const std::string &db) {
  const int n = g.bn / 2; // accumulator registers per thread: 64 * bn / 128
  const char *ty = g.f16 ? "f16" : "bf16";
  o << indent << "asm volatile(\"{\\n.reg .pred p;\\nsetp.ne.b32 p, %" << n + 2 << ", 0;\\n\"\n";
  o << indent << "    \"wgmma.mma_async.sync.aligned.m64n" << g.bn << "k16.f32." << ty << "." << ty << " {";
  for (int i = 0; i < n; ++i)
    o << (i ? ", " : "") << "%" << i;
  o << "}, %" << n << ", %" << n + 1 << ", p, 1, 1, 0, " << (g.bKContig ? 0 : 1) << ";\\n}\\n\"\n";
  o << indent << "    : ";
  for (int i = 0; i < n; ++i)
    o << (i ? ", " : "") << "\"+f\"(tsr_c[" << i << "])" << (i % 8 == 7 && i + 1 < n ? "\n" + indent + "      " : "");
  o << "\n" << indent << "    : \"l\"(" << da << "), \"l\"(" << db << "), \"r\"(1));\n";
}

// Dynamic shared memory base, aligned to 1024 bytes (the 128B swizzle atom).
void emitSharedBase(std::ostream &o) {
  o << "  extern __shared__ __align__(1024) unsigned char tsr_smem[];\n";
  o << "  const unsigned tsr_sraw = (unsigned)__cvta_generic_to_shared(tsr_smem);\n";
  o << "  const unsigned tsr_s0 = (tsr_sraw + 1023u) & ~1023u;\n";
}

// Row and column tile counts and K steps.
void emitTileCounts(std::ostream &o, const PipelinedGemm &g) {
  o << "  const long long tsr_tm = (tsr_M + " << g.bm - 1 << ") / " << g.bm << ", tsr_tn = (tsr_N + " << g.bn - 1
    << ") / " << g.bn << ";\n";
  o << "  const int tsr_kt = (int)((tsr_K + " << g.bk - 1 << ") / " << g.bk << ");\n";
}

// m0, n0 of tile tsr_tile in grouped order: 8 row tiles sweep the column
// tiles together (B panels stay in L2 while A panels are reused).
void emitTileOrigin(std::ostream &o, const PipelinedGemm &g, const std::string &ind) {
  o << ind << "const long long tsr_gw = 8LL * tsr_tn, tsr_gi = tsr_tile / tsr_gw, tsr_gf = tsr_gi * 8LL;\n";
  o << ind << "const long long tsr_gs = (tsr_tm - tsr_gf) < 8LL ? (tsr_tm - tsr_gf) : 8LL;\n";
  o << ind << "const long long tsr_gin = tsr_tile - tsr_gi * tsr_gw;\n";
  o << ind << "const long long m0 = (tsr_gf + tsr_gin % tsr_gs) * " << g.bm << ", n0 = (tsr_gin / tsr_gs) * " << g.bn
    << ";\n";
}

// Matrix descriptors (PTX ISA, "Matrix Descriptor Format"): start address,
// leading and stride byte offsets (>> 4), 128B swizzle (1 << 62).
void emitDescriptorFunction(std::ostream &o, const std::string &ind) {
  o << ind << "auto tsr_desc = [](unsigned a, unsigned lbo, unsigned sbo) -> unsigned long long {\n";
  o << ind << "  return (unsigned long long)((a & 0x3FFFFu) >> 4) | ((unsigned long long)(lbo >> 4) << 16) |\n";
  o << ind << "         ((unsigned long long)(sbo >> 4) << 32) | (1ULL << 62);\n";
  o << ind << "};\n";
}

// One stage's wgmma batch (A at tsr_ca, B at tsr_cb; warpgroup wgp's 64
// rows), committed as one group.
void emitWgmmaStage(std::ostream &o, const PipelinedGemm &g, const std::string &ind) {
  o << ind << "asm volatile(\"wgmma.fence.sync.aligned;\\n\" ::: \"memory\");\n";
  o << "#pragma unroll\n" << ind << "for (int kk = 0; kk < " << g.bk / 16 << "; ++kk) {\n";
  // A: this warpgroup's 64 rows, K-major; advancing k by 16 moves the
  // start address by 32 bytes inside the swizzle atom.
  o << ind << "  const unsigned long long da = tsr_desc(tsr_ca + (unsigned)wgp * " << 64 * 128
    << "u + (unsigned)kk * 32u, 16u, 1024u);\n";
  if (g.bKContig)
    o << ind << "  const unsigned long long db = tsr_desc(tsr_cb + (unsigned)kk * 32u, 16u, 1024u);\n";
  else
    o << ind << "  const unsigned long long db = tsr_desc(tsr_cb + (unsigned)kk * 2048u, " << g.bk * 128
      << "u, 1024u);\n";
  emitWgmma(o, g, ind + "  ", "da", "db");
  o << ind << "}\n";
  o << ind << "asm volatile(\"wgmma.commit_group.sync.aligned;\\n\" ::: \"memory\");\n";
}

// The accumulators are final only after the last wgmma wait: keep their
// reads below it.
void emitAccumulatorFence(std::ostream &o, const PipelinedGemm &g, const std::string &ind) {
  o << "#pragma unroll\n" << ind << "for (int i = 0; i < " << g.bn / 2
    << "; ++i) asm volatile(\"\" : \"+f\"(tsr_c[i]) :: \"memory\");\n";
}

// The epilogue over a rows x cols f32 tile staged at tsr_ep (row stride
// ld), thread `first` of `stride` threads, consecutive threads on
// consecutive columns; the tile starts at (rowBase, colBase) of the output.
// A plain store of a 2-byte output takes 8 columns and one 16-byte store
// per thread, other epilogues run per element.
void emitStagedEpilogue(std::ostream &o, const PipelinedGemm &g, const GemmHooks &h, const std::string &ind,
                        const std::string &first, int stride, int rows, int cols, int ld,
                        const std::string &rowBase, const std::string &colBase, bool unrollChunks = false) {
  const bool chunks = g.plainStore && h.chunk8;
  const int per = chunks ? cols / 8 : cols;
  if (chunks && unrollChunks)
    o << "#pragma unroll\n";
  o << ind << "for (int e = " << first << "; e < " << rows * per << "; e += " << stride << ") {\n";
  o << ind << "  const int r = e / " << per << ", c = " << (chunks ? "(e % " : "e % ") << per << (chunks ? ") * 8" : "")
    << ";\n";
  o << ind << "  const long long tsr_em = " << rowBase << " + r, tsr_en = " << colBase << " + c;\n";
  o << ind << "  if (tsr_em >= tsr_M || tsr_en >= tsr_N) continue;\n";
  if (chunks) {
    o << ind << "  const float4 tsr_x0 = *(const float4*)&tsr_ep[r * " << ld << " + c], tsr_x1 = *(const float4*)&tsr_ep[r * "
      << ld << " + c + 4];\n";
    o << ind << "  const float tsr_v0 = tsr_x0.x, tsr_v1 = tsr_x0.y, tsr_v2 = tsr_x0.z, tsr_v3 = tsr_x0.w;\n";
    o << ind << "  const float tsr_v4 = tsr_x1.x, tsr_v5 = tsr_x1.y, tsr_v6 = tsr_x1.z, tsr_v7 = tsr_x1.w;\n";
    o << ind << "  const int tsr_nv = (tsr_N - tsr_en) < 8LL ? (int)(tsr_N - tsr_en) : 8;\n";
    h.chunk8(ind + "  ");
  } else {
    o << ind << "  const float tsr_acc = tsr_ep[r * " << ld << " + c];\n";
    h.element(ind + "  ");
  }
  o << ind << "}\n";
}

// WgmmaTma (GemmKernel.h). mbarrier and bulk tensor copy semantics: PTX
// ISA 8.x, "mbarrier" (phases, expect-tx, try_wait.parity) and
// "cp.async.bulk.tensor"; the stage protocol is CUTLASS's PipelineTmaAsync.
void emitTmaGemm(const PipelinedGemm &g, const GemmHooks &h) {
  std::ostream &o = *h.out;
  const int BM = g.bm, BN = g.bn, BK = g.bk, ST = g.stages, stage = g.stageBytes(), aBytes = BM * BK * 2;
  const int NR = BN / 2, SC = PipelinedGemm::kTmaSliceCols, LD = PipelinedGemm::kTmaSliceLd;
  const int sliceBytes = 64 * LD * 4;
  h.prologue();
  o << "  // Warp-specialized persistent GEMM: TMA producer warpgroup, 2 consumer warpgroups of\n"
    << "  // wgmma.m64n" << BN << "k16, " << BM << "x" << BN << "x" << BK << " tiles, " << ST << " stages, B "
    << (g.bKContig ? "[n][k]" : "[k][n]") << ".\n";
  emitSharedBase(o);
  o << "  const unsigned tsr_slices = tsr_s0 + " << ST * stage << "u;\n";
  o << "  const unsigned tsr_full = tsr_slices + " << g.warpsM * sliceBytes << "u, tsr_empty = tsr_full + " << ST * 8
    << "u;\n";
  o << "  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, tsr_wg = tid >> 7;\n";
  o << "  (void)lane; (void)warp;\n";
  emitTileCounts(o, g);
  o << "  auto tsr_wait = [](unsigned bar, unsigned parity) {\n";
  o << "    asm volatile(\"{\\n.reg .pred p;\\nTSR_WAIT:\\n\"\n";
  o << "                 \"mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\\n\"\n";
  o << "                 \"@!p bra TSR_WAIT;\\n}\\n\" :: \"r\"(bar), \"r\"(parity) : \"memory\");\n";
  o << "  };\n";
  // full[s]: the producer's expect-tx arrival plus the copies' bytes;
  // empty[s]: one arrival per consumer warpgroup.
  o << "  if (tid == 0) {\n";
  o << "    for (int s = 0; s < " << ST << "; ++s) {\n";
  o << "      asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\" :: \"r\"(tsr_full + s * 8u));\n";
  o << "      asm volatile(\"mbarrier.init.shared::cta.b64 [%0], " << g.warpsM << ";\" :: \"r\"(tsr_empty + s * 8u));\n";
  o << "    }\n";
  o << "    asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");\n";
  o << "  }\n";
  o << "  __syncthreads();\n";
  // The stage counter runs on across tiles (and batch points): stage
  // it % ST, phase parity (it / ST) & 1.
  // Each role is one branch of a single top-level if/else, so that ptxas
  // allocates each under its setmaxnreg budget.
  o << "  unsigned tsr_it = 0;\n";
  o << "  if (tsr_wg == 0) {\n";
  o << "    asm volatile(\"setmaxnreg.dec.sync.aligned.u32 40;\\n\" ::: \"memory\");\n";
  o << "    if (tid == 0) {\n";
  o << "      for (long long tsr_bt = blockIdx.z; tsr_bt < tsr_B; tsr_bt += gridDim.z) {\n";
  o << "        const unsigned long long tsr_ma = (unsigned long long)&tsr_tma, tsr_mb = (unsigned long long)&tsr_tmb;\n";
  o << "        auto tsr_copy = [](unsigned dst, unsigned long long map, int c0, int c1, unsigned bar) {\n";
  o << "          asm volatile(\"cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes\"\n";
  o << "                       \" [%0], [%1, {%2, %3}], [%4];\" :: \"r\"(dst), \"l\"(map), \"r\"(c0), \"r\"(c1), \"r\"(bar)\n";
  o << "                       : \"memory\");\n";
  o << "        };\n";
  o << "        for (long long tsr_tile = blockIdx.x; tsr_tile < tsr_tm * tsr_tn; tsr_tile += gridDim.x) {\n";
  emitTileOrigin(o, g, "          ");
  o << "          for (int kt = 0; kt < tsr_kt; ++kt, ++tsr_it) {\n";
  o << "            const unsigned s = tsr_it % " << ST << "u, ph = (tsr_it / " << ST << "u) & 1u;\n";
  o << "            tsr_wait(tsr_empty + s * 8u, ph ^ 1u);\n";
  o << "            asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], " << stage
    << ";\" :: \"r\"(tsr_full + s * 8u) : \"memory\");\n";
  o << "            const unsigned la = tsr_s0 + s * " << stage << "u, lb = la + " << aBytes << "u;\n";
  o << "            const int k0 = kt * " << BK << ";\n";
  o << "            tsr_copy(la, tsr_ma, k0, (int)m0, tsr_full + s * 8u);\n";
  if (g.bKContig) {
    o << "            tsr_copy(lb, tsr_mb, k0, (int)n0, tsr_full + s * 8u);\n";
  } else {
    o << "#pragma unroll\n            for (int j = 0; j < " << BN / 64 << "; ++j)\n";
    o << "              tsr_copy(lb + j * " << BK * 128 << "u, tsr_mb, (int)n0 + j * 64, k0, tsr_full + s * 8u);\n";
  }
  o << "          }\n";
  o << "        }\n";
  o << "      }\n";
  o << "    }\n";
  o << "  } else {\n";
  o << "    asm volatile(\"setmaxnreg.inc.sync.aligned.u32 232;\\n\" ::: \"memory\");\n";
  o << "    for (long long tsr_bt = blockIdx.z; tsr_bt < tsr_B; tsr_bt += gridDim.z) {\n";
  h.batchSetup("      ");
  o << "      (void)gA; (void)gB;\n";
  o << "      const int wgp = tsr_wg - 1, wq = warp & 3, tsr_ct = tid & 127;\n";
  o << "      float* const tsr_ep = (float*)(tsr_smem + (tsr_slices - tsr_sraw)) + wgp * " << 64 * LD << ";\n";
  emitDescriptorFunction(o, "      ");
  o << "      float tsr_c[" << NR << "];\n";
  o << "      for (long long tsr_tile = blockIdx.x; tsr_tile < tsr_tm * tsr_tn; tsr_tile += gridDim.x) {\n";
  emitTileOrigin(o, g, "        ");
  o << "#pragma unroll\n        for (int i = 0; i < " << NR << "; ++i) tsr_c[i] = 0.f;\n";
  o << "        for (int kt = 0; kt < tsr_kt; ++kt, ++tsr_it) {\n";
  o << "          const unsigned s = tsr_it % " << ST << "u;\n";
  o << "          tsr_wait(tsr_full + s * 8u, (tsr_it / " << ST << "u) & 1u);\n";
  o << "          const unsigned tsr_ca = tsr_s0 + s * " << stage << "u, tsr_cb = tsr_ca + " << aBytes << "u;\n";
  emitWgmmaStage(o, g, "          ");
  // Batch kt-1 has retired: its stage goes back to the producer.
  o << "          asm volatile(\"wgmma.wait_group.sync.aligned 1;\\n\" ::: \"memory\");\n";
  o << "          if (kt > 0 && tsr_ct == 0)\n";
  o << "            asm volatile(\"mbarrier.arrive.shared::cta.b64 _, [%0];\" :: \"r\"(tsr_empty + ((tsr_it + "
    << ST - 1 << "u) % " << ST << "u) * 8u) : \"memory\");\n";
  o << "        }\n";
  o << "        asm volatile(\"wgmma.wait_group.sync.aligned 0;\\n\" ::: \"memory\");\n";
  o << "        if (tsr_kt > 0 && tsr_ct == 0)\n";
  o << "          asm volatile(\"mbarrier.arrive.shared::cta.b64 _, [%0];\" :: \"r\"(tsr_empty + ((tsr_it + " << ST - 1
    << "u) % " << ST << "u) * 8u) : \"memory\");\n";
  emitAccumulatorFence(o, g, "        ");
  // Epilogue in 64x32 column slices through this warpgroup's shared
  // memory (named barrier 1 + wgp over its 128 threads): the accumulator
  // fragment (PTX ISA, "wgmma D matrix fragment": warp wq owns rows 16wq+g
  // and +8, register 4i+c column 8i+2q+(c&1)) in, coalesced rows out.
  o << "        const int g = lane >> 2, q = lane & 3;\n";
  o << "#pragma unroll\n        for (int sl = 0; sl < " << BN / SC << "; ++sl) {\n";
  o << "          asm volatile(\"bar.sync %0, 128;\" :: \"r\"(1 + wgp) : \"memory\");\n";
  o << "#pragma unroll\n          for (int i = 0; i < " << SC / 8 << "; ++i)\n#pragma unroll\n            for (int hh = 0; hh < 2; ++hh) {\n";
  o << "              const int r = wq * 16 + g + hh * 8, c = i * 8 + 2 * q, ri = 4 * (sl * " << SC / 8
    << " + i) + 2 * hh;\n";
  o << "              *(float2*)&tsr_ep[r * " << LD << " + c] = make_float2(tsr_c[ri], tsr_c[ri + 1]);\n";
  o << "            }\n";
  o << "          asm volatile(\"bar.sync %0, 128;\" :: \"r\"(1 + wgp) : \"memory\");\n";
  emitStagedEpilogue(o, g, h, "          ", "tsr_ct", 128, 64, SC, LD, "m0 + wgp * 64",
                     "n0 + sl * " + std::to_string(SC), true);
  o << "        }\n";
  o << "      }\n";
  o << "    }\n";
  o << "  }\n}\n\n";
}

} // namespace

void emitPipelinedGemm(const std::string &fn, const PipelinedGemm &g, const GemmHooks &h) {
  if (g.family == GemmFamily::WgmmaTma)
    return emitTmaGemm(g, h);
  std::ostream &o = *h.out;
  (void)fn;
  const bool wg = g.family == GemmFamily::Wgmma;
  const int T = g.threads(), BM = g.bm, BN = g.bn, BK = g.bk, ST = g.stages;
  const int aBytes = BM * BK * 2, stage = g.stageBytes(), ldE = BN + 8;
  const int aChunks = BM * BK / 8 / T, bChunks = BK * BN / 8 / T;
  h.prologue();
  o << "  // Pipelined GEMM: " << (wg ? "wgmma.m64n256k16" : "ldmatrix + mma.sync.m16n8k16") << ", " << BM << "x" << BN
    << "x" << BK << " tiles, " << ST << " cp.async stages, B " << (g.bKContig ? "[n][k]" : "[k][n]") << ".\n";
  emitSharedBase(o);
  o << "  float* const tsr_ep = (float*)(tsr_smem + (tsr_s0 - tsr_sraw));\n";
  o << "  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;\n";
  o << "  (void)lane; (void)warp;\n";
  emitTileCounts(o, g);
  o << "  for (long long tsr_bt = blockIdx.z; tsr_bt < tsr_B; tsr_bt += gridDim.z) {\n";
  h.batchSetup("    ");
  o << "    for (long long tsr_tile = blockIdx.x; tsr_tile < tsr_tm * tsr_tn; tsr_tile += gridDim.x) {\n";
  emitTileOrigin(o, g, "      ");
  // Loader: one K tile into one stage, 16-byte cp.async with zero fill past
  // the edges (src-size 0: nothing is read).
  o << "      auto tsr_load = [&](int tsr_st, int tsr_k) {\n";
  o << "        const unsigned tsr_la = tsr_s0 + (unsigned)tsr_st * " << stage << "u, tsr_lb = tsr_la + " << aBytes
    << "u;\n";
  o << "        const long long tsr_k0 = (long long)tsr_k * " << BK << ";\n";
  o << "#pragma unroll\n        for (int e = 0; e < " << aChunks << "; ++e) {\n";
  o << "          const int c = tid + e * " << T << ", r = c >> 3, kc = c & 7;\n";
  o << "          const long long gm = m0 + r, gk = tsr_k0 + kc * 8;\n";
  o << "          const bool ok = gm < tsr_M && gk < tsr_K;\n";
  o << "          const unsigned short* src = ok ? gA + gm * sAm + gk : gA;\n";
  o << "          asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\" :: \"r\"("
    << kTile("tsr_la", "r", "kc") << "), \"l\"(src), \"r\"(ok ? 16 : 0));\n";
  o << "        }\n";
  o << "#pragma unroll\n        for (int e = 0; e < " << bChunks << "; ++e) {\n";
  if (g.bKContig) {
    o << "          const int c = tid + e * " << T << ", r = c >> 3, kc = c & 7;\n";
    o << "          const long long gn = n0 + r, gk = tsr_k0 + kc * 8;\n";
    o << "          const bool ok = gn < tsr_N && gk < tsr_K;\n";
    o << "          const unsigned short* src = ok ? gB + gn * sBn + gk : gB;\n";
    o << "          asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\" :: \"r\"("
      << kTile("tsr_lb", "r", "kc") << "), \"l\"(src), \"r\"(ok ? 16 : 0));\n";
  } else {
    o << "          const int c = tid + e * " << T << ", kr = c / " << BN / 8 << ", nc = c % " << BN / 8 << ";\n";
    o << "          const long long gk = tsr_k0 + kr, gn = n0 + nc * 8;\n";
    o << "          const bool ok = gk < tsr_K && gn < tsr_N;\n";
    o << "          const unsigned short* src = ok ? gB + gk * sBk + gn : gB;\n";
    o << "          asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\" :: \"r\"("
      << nTile(g, "tsr_lb", "kr", "nc") << "), \"l\"(src), \"r\"(ok ? 16 : 0));\n";
  }
  o << "        }\n";
  o << "      };\n";

  if (!wg) {
    const int TM = BM / g.warpsM, TN = BN / g.warpsN, MT = TM / 16, NT = TN / 8;
    const char *ty = g.f16 ? "f16" : "bf16";
    o << "      const int wm0 = (warp / " << g.warpsN << ") * " << TM << ", wn0 = (warp % " << g.warpsN << ") * " << TN
      << ";\n";
    o << "      float acc[" << MT << "][" << NT << "][4];\n";
    o << "#pragma unroll\n      for (int i = 0; i < " << MT << "; ++i)\n#pragma unroll\n        for (int j = 0; j < "
      << NT << "; ++j)\n#pragma unroll\n          for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;\n";
    // Prologue: ST-1 tiles in flight.
    o << "#pragma unroll\n      for (int s = 0; s < " << ST - 1 << "; ++s) {\n";
    o << "        if (s < tsr_kt) tsr_load(s, s);\n";
    o << "        asm volatile(\"cp.async.commit_group;\\n\" ::);\n";
    o << "      }\n";
    o << "      for (int kt = 0; kt < tsr_kt; ++kt) {\n";
    // Tile kt has landed once at most ST-2 younger groups are pending; the
    // barrier also frees the stage computed in iteration kt-1.
    o << "        asm volatile(\"cp.async.wait_group " << ST - 2 << ";\\n\" ::);\n";
    o << "        __syncthreads();\n";
    o << "        if (kt + " << ST - 1 << " < tsr_kt) tsr_load((kt + " << ST - 1 << ") % " << ST << ", kt + " << ST - 1
      << ");\n";
    o << "        asm volatile(\"cp.async.commit_group;\\n\" ::);\n";
    o << "        const unsigned tsr_ca = tsr_s0 + (unsigned)(kt % " << ST << ") * " << stage << "u, tsr_cb = tsr_ca + "
      << aBytes << "u;\n";
    o << "#pragma unroll\n        for (int kk = 0; kk < " << BK / 16 << "; ++kk) {\n";
    o << "          unsigned af[" << MT << "][4], bf[" << NT << "][2];\n";
    // A fragments: lanes 0-15 address rows 0-15 at k chunk 2kk, lanes 16-31
    // the same rows at chunk 2kk+1 -> a0..a3 (PTX ISA, "ldmatrix").
    o << "#pragma unroll\n          for (int i = 0; i < " << MT << "; ++i) {\n";
    o << "            const int r = wm0 + i * 16 + (lane & 15), kc = kk * 2 + (lane >> 4);\n";
    o << "            asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\\n\"\n";
    o << "                : \"=r\"(af[i][0]), \"=r\"(af[i][1]), \"=r\"(af[i][2]), \"=r\"(af[i][3]) : \"r\"("
      << kTile("tsr_ca", "r", "kc") << "));\n";
    o << "          }\n";
    // B fragments for n tiles j, j+1: matrices (k 0-7, n j), (k 8-15, n j),
    // (k 0-7, n j+1), (k 8-15, n j+1) -> b0, b1 of j and of j+1.
    o << "#pragma unroll\n          for (int j = 0; j < " << NT << "; j += 2) {\n";
    if (g.bKContig) {
      o << "            const int r = wn0 + j * 8 + (lane & 7) + ((lane >> 4) << 3), kc = kk * 2 + ((lane >> 3) & "
           "1);\n";
      o << "            asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\\n\"\n";
      o << "                : \"=r\"(bf[j][0]), \"=r\"(bf[j][1]), \"=r\"(bf[j + 1][0]), \"=r\"(bf[j + 1][1]) : \"r\"("
        << kTile("tsr_cb", "r", "kc") << "));\n";
    } else {
      o << "            const int k = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), nc = ((wn0 + j * 8) >> 3) + "
           "(lane >> 4);\n";
      o << "            asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\\n\"\n";
      o << "                : \"=r\"(bf[j][0]), \"=r\"(bf[j][1]), \"=r\"(bf[j + 1][0]), \"=r\"(bf[j + 1][1]) : \"r\"("
        << nTile(g, "tsr_cb", "k", "nc") << "));\n";
    }
    o << "          }\n";
    o << "#pragma unroll\n          for (int i = 0; i < " << MT
      << "; ++i)\n#pragma unroll\n            for (int j = 0; j < " << NT << "; ++j)\n";
    o << "              asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32." << ty << "." << ty
      << ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n\"\n";
    o << "                  : \"+f\"(acc[i][j][0]), \"+f\"(acc[i][j][1]), \"+f\"(acc[i][j][2]), \"+f\"(acc[i][j][3])\n";
    o << "                  : \"r\"(af[i][0]), \"r\"(af[i][1]), \"r\"(af[i][2]), \"r\"(af[i][3]), \"r\"(bf[j][0]), "
         "\"r\"(bf[j][1]));\n";
    o << "        }\n";
    o << "      }\n";
    o << "      asm volatile(\"cp.async.wait_group 0;\\n\" ::);\n";
    o << "      __syncthreads();\n";
    // Accumulators -> shared memory: c0,c1 at (row g, cols 2q, 2q+1), c2,c3
    // eight rows below.
    o << "      {\n        const int g = lane >> 2, q = lane & 3;\n";
    o << "#pragma unroll\n        for (int i = 0; i < " << MT
      << "; ++i)\n#pragma unroll\n          for (int j = 0; j < " << NT
      << "; ++j)\n#pragma unroll\n            for (int h = 0; h < 2; ++h) {\n";
    o << "              const int r = wm0 + i * 16 + g + h * 8, c = wn0 + j * 8 + 2 * q;\n";
    o << "              *(float2*)&tsr_ep[r * " << ldE
      << " + c] = make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);\n";
    o << "            }\n      }\n";
  } else {
    const int NR = BN / 2; // accumulators per thread
    o << "      const int wgp = warp >> 2, wq = warp & 3;\n";
    o << "      float tsr_c[" << NR << "];\n";
    o << "#pragma unroll\n      for (int i = 0; i < " << NR << "; ++i) tsr_c[i] = 0.f;\n";
    emitDescriptorFunction(o, "      ");
    // Prologue: ST-2 tiles in flight; a stage is refilled two iterations
    // after its wgmma batch was issued (one batch stays in flight).
    o << "#pragma unroll\n      for (int s = 0; s < " << ST - 2 << "; ++s) {\n";
    o << "        if (s < tsr_kt) tsr_load(s, s);\n";
    o << "        asm volatile(\"cp.async.commit_group;\\n\" ::);\n";
    o << "      }\n";
    o << "      for (int kt = 0; kt < tsr_kt; ++kt) {\n";
    o << "        asm volatile(\"cp.async.wait_group " << ST - 3 << ";\\n\" ::);\n";
    // Generic-proxy writes (cp.async) must be fenced before the async proxy
    // (wgmma) reads them; the barrier publishes every thread's chunks and
    // orders after every warpgroup's wait for batch kt-2.
    o << "        asm volatile(\"fence.proxy.async.shared::cta;\\n\" ::: \"memory\");\n";
    o << "        __syncthreads();\n";
    o << "        if (kt + " << ST - 2 << " < tsr_kt) tsr_load((kt + " << ST - 2 << ") % " << ST << ", kt + " << ST - 2
      << ");\n";
    o << "        asm volatile(\"cp.async.commit_group;\\n\" ::);\n";
    o << "        const unsigned tsr_ca = tsr_s0 + (unsigned)(kt % " << ST << ") * " << stage << "u, tsr_cb = tsr_ca + "
      << aBytes << "u;\n";
    emitWgmmaStage(o, g, "        ");
    o << "        asm volatile(\"wgmma.wait_group.sync.aligned 1;\\n\" ::: \"memory\");\n";
    o << "      }\n";
    o << "      asm volatile(\"wgmma.wait_group.sync.aligned 0;\\n\" ::: \"memory\");\n";
    emitAccumulatorFence(o, g, "      ");
    o << "      asm volatile(\"cp.async.wait_group 0;\\n\" ::);\n";
    o << "      __syncthreads();\n";
    // D fragment of m64nNk16 (PTX ISA, "wgmma D matrix fragment"): warp wq
    // of the warpgroup owns rows 16*wq + g and +8; register 4i+c holds
    // column 8i + 2q + (c & 1).
    o << "      {\n        const int g = lane >> 2, q = lane & 3;\n";
    o << "#pragma unroll\n        for (int i = 0; i < " << BN / 8
      << "; ++i)\n#pragma unroll\n          for (int h = 0; h < 2; ++h) {\n";
    o << "            const int r = wgp * 64 + wq * 16 + g + h * 8, c = i * 8 + 2 * q;\n";
    o << "            *(float2*)&tsr_ep[r * " << ldE
      << " + c] = make_float2(tsr_c[4 * i + 2 * h], tsr_c[4 * i + 2 * h + 1]);\n";
    o << "          }\n      }\n";
  }
  o << "      __syncthreads();\n";
  emitStagedEpilogue(o, g, h, "      ", "tid", T, BM, BN, ldE, "m0", "n0");
  // The next tile's loads overwrite what the epilogue reads.
  o << "      __syncthreads();\n";
  o << "    }\n";
  o << "  }\n}\n\n";
}

} // namespace tessera::cuda
