#include "FlashAttention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace tessera::cuda {

using namespace tessera::schedule;

namespace {

// Device code shared by every flash kernel of a translation unit (guarded,
// so it is emitted once whatever the number of attention kernels).
//
// Fragments follow the PTX ISA, "Matrix Fragments for mma.m16n8k16" (g =
// lane / 4, q = lane % 4): A a0..a3 = rows g, g+8 x cols 2q..2q+1, then the
// same at cols +8; B b0, b1 = rows (k) 2q..2q+1 and +8 x col g; C c0..c3 =
// rows g, g+8 x cols 2q..2q+1. ldmatrix.x4 loads four 8x8 matrices, lane l
// giving the row address of matrix l / 8 (PTX ISA, "ldmatrix"); .trans
// hands out the transpose (V, whose rows are keys, becomes a col-major B).
//
// Shared-memory tiles of R rows x D 16-bit elements are stored as D/64
// "atoms" of R rows x 128 bytes, the 16-byte chunk c of row r at chunk
// c ^ (r % 8) of its row: the 128-byte swizzle of wgmma's canonical layouts
// (PTX ISA, "Shared Memory Matrix Layout", Swizzle<3,4,3>), and conflict-free
// for ldmatrix (the 8 rows of a matrix hit 8 different bank groups).
const char *kFlashCommon = R"CUDA(
#ifndef TSR_FLASH_COMMON
#define TSR_FLASH_COMMON
extern __shared__ __align__(1024) unsigned char tsr_dsmem[];
TSR_D unsigned tsr_smem_addr(const void *p) {
  unsigned r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}
TSR_D void tsr_cp_async16(unsigned dst, const void *src, bool pred) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(pred ? 16 : 0) : "memory");
}
TSR_D void tsr_cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> TSR_D void tsr_cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
TSR_D void tsr_ldsm4(unsigned a, unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
}
TSR_D void tsr_ldsm4t(unsigned a, unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(a));
}
TSR_D float tsr_ex2(float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; }
// Two floats rounded to nearest even into one register of 16-bit pairs (lo in bits 0..15).
template <bool BF16> TSR_D unsigned tsr_pack2(float lo, float hi) {
  unsigned r;
  if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <bool BF16> TSR_D float tsr_dec16(unsigned short x) { return BF16 ? tsr_bf2f(x) : tsr_h2f(x); }
template <bool BF16> TSR_D void tsr_mma16816(float *c, const unsigned *a, unsigned b0, unsigned b1) {
  if (BF16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Byte offset of 16-byte chunk c of row r in a swizzled tile of ROWS rows.
template <int ROWS> TSR_D unsigned tsr_swz(int r, int c) {
  return (unsigned)((c >> 3) * (ROWS * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}
// Rows [row0, row0 + ROWS) of a [nrows][D] matrix whose rows lie ld
// elements apart (ld = D dense; H * D for a [S, H, D] operand) into a
// swizzled tile at shared address s; rows at or past nrows are zero-filled.
template <int D, int ROWS, int THREADS>
TSR_D void tsr_load_tile(unsigned s, const unsigned short *g, long long row0, long long nrows, int tid, long long ld) {
  constexpr int C = D / 8;
#pragma unroll
  for (int e = 0; e < ROWS * C / THREADS; ++e) {
    const int idx = tid + e * THREADS, r = idx / C, c = idx % C;
    const bool in = row0 + r < nrows;
    tsr_cp_async16(s + tsr_swz<ROWS>(r, c), g + (in ? (row0 + r) * ld + c * 8 : 0), in);
  }
}

template <int N> TSR_D void tsr_zero(float (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int c = 0; c < 4; ++c) a[i][c] = 0.f;
}
// Key tile t's K and V (64 rows each) into the stage at shared address st,
// nothing past the last tile, then one commit (empty groups keep the
// cp.async.wait_group counts the same on every iteration).
template <int D, int THREADS>
TSR_D void tsr_load_kv(unsigned st, const unsigned short *k, const unsigned short *v, int t, int ntiles, long long sk,
                       int tid, long long ld) {
  if (t < ntiles) {
    tsr_load_tile<D, 64, THREADS>(st, k, (long long)t * 64, sk, tid, ld);
    tsr_load_tile<D, 64, THREADS>(st + 64 * D * 2, v, (long long)t * 64, sk, tid, ld);
  }
  tsr_cp_commit();
}

// The state of one warp's 16 query rows (two per lane: row0, row0 + 8).
// Scores are in log2 units (scale_log2 = scale * log2(e)): softmax is
// exp2(s - max). A row masked so far keeps max -inf and rescales nothing.
// tsr_softmax_scores turns a tile of scores into probabilities and updates
// the running max and sum; the factor O must be rescaled by comes back in
// alpha (tsr_rescale applies it).
template <int NT, bool BF16, bool CAUSAL, bool MASK>
TSR_D void tsr_softmax_scores(float (&s)[NT][4], float (&mrow)[2], float (&lrow)[2], float (&alpha)[2],
                              const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                              long long sk, long long n0, long long row0, long long wrow, float scale_log2, int qd) {
  const float NEG_INF = __int_as_float(0xff800000);
  // Scale, additive mask, key range and the causal diagonal.
  const bool edge = n0 + NT * 8 > sk || (CAUSAL && n0 + NT * 8 - 1 > wrow);
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      float x = s[j][c] * scale_log2;
      const long long col = n0 + j * 8 + 2 * qd + (c & 1), row = row0 + (c >> 1) * 8;
      if (MASK && col < sk && row < sq)
        x += tsr_dec16<BF16>(mask[row * msq + col * msk]) * 1.4426950408889634f;
      if (edge && (col >= sk || (CAUSAL && col > row)))
        x = NEG_INF;
      s[j][c] = x;
    }
  // Online softmax; each row's max and sum span the 4 lanes of a quad.
  float mx[2] = {mrow[0], mrow[1]};
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
  }
  float mu[2], rs[2] = {0.f, 0.f};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    mu[h] = mx[h] == NEG_INF ? 0.f : mx[h];
    alpha[h] = tsr_ex2(mrow[h] - mu[h]);
    mrow[h] = mx[h];
  }
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    s[j][0] = tsr_ex2(s[j][0] - mu[0]);
    s[j][1] = tsr_ex2(s[j][1] - mu[0]);
    s[j][2] = tsr_ex2(s[j][2] - mu[1]);
    s[j][3] = tsr_ex2(s[j][3] - mu[1]);
    rs[0] += s[j][0] + s[j][1];
    rs[1] += s[j][2] + s[j][3];
  }
  lrow[0] = lrow[0] * alpha[0] + rs[0];
  lrow[1] = lrow[1] * alpha[1] + rs[1];
}
template <int DT> TSR_D void tsr_rescale(float (&acc)[DT][4], const float (&alpha)[2]) {
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    acc[d][0] *= alpha[0];
    acc[d][1] *= alpha[0];
    acc[d][2] *= alpha[1];
    acc[d][3] *= alpha[1];
  }
}
template <int NT, int DT, bool BF16, bool CAUSAL, bool MASK>
TSR_D void tsr_softmax_tile(float (&s)[NT][4], float (&acc)[DT][4], float (&mrow)[2], float (&lrow)[2],
                            const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                            long long sk, long long n0, long long row0, long long wrow, float scale_log2, int qd) {
  float alpha[2];
  tsr_softmax_scores<NT, BF16, CAUSAL, MASK>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk, n0, row0, wrow, scale_log2,
                                             qd);
  tsr_rescale<DT>(acc, alpha);
}

// P (the C fragments of 16 keys) as the A fragment of the next product.
template <int NT, bool BF16> TSR_D void tsr_p_frag(const float (&s)[NT][4], int kk, unsigned (&a)[4]) {
  a[0] = tsr_pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
  a[1] = tsr_pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
  a[2] = tsr_pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = tsr_pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Row sums across the quad, O / l rounded to the dtype (a row with every
// key masked is 0 / 0 = NaN, as in the reference); o's rows ld apart.
template <int D, bool BF16>
TSR_D void tsr_store_rows(unsigned short *__restrict__ o, float (&acc)[D / 8][4], float (&lrow)[2], long long row0,
                          long long sq, int qd, long long ld) {
  float inv[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    lrow[h] += __shfl_xor_sync(0xffffffffu, lrow[h], 1);
    lrow[h] += __shfl_xor_sync(0xffffffffu, lrow[h], 2);
    inv[h] = 1.f / lrow[h];
  }
#pragma unroll
  for (int d = 0; d < D / 8; ++d) {
    const int col = d * 8 + 2 * qd;
    if (row0 < sq)
      *(unsigned *)(o + row0 * ld + col) = tsr_pack2<BF16>(acc[d][0] * inv[0], acc[d][1] * inv[0]);
    if (row0 + 8 < sq)
      *(unsigned *)(o + (row0 + 8) * ld + col) = tsr_pack2<BF16>(acc[d][2] * inv[1], acc[d][3] * inv[1]);
  }
}

// Q rows [m0, m0 + 128) into registers as mma A fragments (16 rows a warp),
// through shared memory at s; returns once the shared memory is free again.
template <int D>
TSR_D void tsr_load_q(unsigned s, const unsigned short *__restrict__ q, long long m0, long long sq, int tid,
                      long long ld, unsigned (&qf)[D / 16][4]) {
  const int lane = tid & 31, warp = tid >> 5;
  tsr_load_tile<D, 128, 256>(s, q, m0, sq, tid, ld);
  tsr_cp_commit();
  tsr_cp_wait<0>();
  __syncthreads();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    tsr_ldsm4(s + tsr_swz<128>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1], qf[kk][2],
              qf[kk][3]);
  __syncthreads();
}

// Key tiles of 64 a block of 128 query rows from m0 on visits: every key, or
// (causal) those up to its last row.
template <bool CAUSAL> TSR_D int tsr_key_tiles(long long sk, long long m0) {
  const long long kend = CAUSAL ? min(sk, m0 + 128) : sk;
  return (int)((kend + 63) / 64);
}

// Shared memory from 1024-byte alignment on (wgmma's 128-byte swizzle
// repeats every 1024 bytes); the launch asks for 1 KB more than the tiles.
TSR_D unsigned tsr_smem_base() { return (tsr_smem_addr(tsr_dsmem) + 1023u) & ~1023u; }

// One block: query rows [m0, m0 + 128) of one batch point, on mma.sync.
// q/o: [sq][D], k/v: [sk][D], rows ld elements apart (D, or H * D for the
// [S, H, D] layout); mask (MASK) already offset to the batch point,
// element (i, j) at i * msq + j * msk. K/V tiles of 64 keys stream through
// STAGES buffers (stage s: K at s * 2 * TILE, V right after).
template <int D, int STAGES, bool BF16, bool CAUSAL, bool MASK>
TSR_D void tsr_flash_fwd(const unsigned short *__restrict__ q, const unsigned short *__restrict__ k,
                         const unsigned short *__restrict__ v, unsigned short *__restrict__ o,
                         const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                         long long sk, long long m0, float scale_log2, long long ld) {
  constexpr int BN = 64, THREADS = 256, KT = D / 16, NT = BN / 8, DT = D / 8;
  constexpr unsigned TILE = BN * D * 2;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, qd = lane & 3;
  const unsigned sbase = tsr_smem_base();
  unsigned qf[KT][4];
  tsr_load_q<D>(sbase, q, m0, sq, tid, ld, qf);
  const int ntiles = tsr_key_tiles<CAUSAL>(sk, m0);
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s)
    tsr_load_kv<D, THREADS>(sbase + s * 2 * TILE, k, v, s, ntiles, sk, tid, ld);
  float acc[DT][4];
  tsr_zero(acc);
  float mrow[2] = {__int_as_float(0xff800000), __int_as_float(0xff800000)}, lrow[2] = {0.f, 0.f};
  const long long wrow = m0 + warp * 16, row0 = wrow + (lane >> 2);
  for (int t = 0; t < ntiles; ++t) {
    tsr_load_kv<D, THREADS>(sbase + ((t + STAGES - 1) % STAGES) * 2 * TILE, k, v, t + STAGES - 1, ntiles, sk, tid,
                            ld);
    tsr_cp_wait<STAGES - 1>();
    __syncthreads();
    const unsigned sK = sbase + (t % STAGES) * 2 * TILE, sV = sK + TILE;
    const long long n0 = (long long)t * BN;
    // Causal: a tile whose first key follows every row of this warp adds nothing.
    if (!(CAUSAL && n0 > wrow + 15)) {
      float s[NT][4];
      tsr_zero(s);
#pragma unroll
      for (int kk = 0; kk < KT; ++kk)
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          unsigned b0, b1, b2, b3;
          const int mi = lane >> 3;
          tsr_ldsm4(sK + tsr_swz<BN>(np * 16 + (mi >> 1) * 8 + (lane & 7), kk * 2 + (mi & 1)), b0, b1, b2, b3);
          tsr_mma16816<BF16>(s[2 * np], qf[kk], b0, b1);
          tsr_mma16816<BF16>(s[2 * np + 1], qf[kk], b2, b3);
        }
      tsr_softmax_tile<NT, DT, BF16, CAUSAL, MASK>(s, acc, mrow, lrow, mask, msq, msk, sq, sk, n0, row0, wrow,
                                                   scale_log2, qd);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        unsigned a[4];
        tsr_p_frag<NT, BF16>(s, kk, a);
#pragma unroll
        for (int dp = 0; dp < DT / 2; ++dp) {
          unsigned b0, b1, b2, b3;
          const int mi = lane >> 3;
          tsr_ldsm4t(sV + tsr_swz<BN>(kk * 16 + (mi & 1) * 8 + (lane & 7), dp * 2 + (mi >> 1)), b0, b1, b2, b3);
          tsr_mma16816<BF16>(acc[2 * dp], a, b0, b1);
          tsr_mma16816<BF16>(acc[2 * dp + 1], a, b2, b3);
        }
      }
    }
    __syncthreads(); // the stage read here is refilled STAGES - 1 iterations on
  }
  tsr_cp_wait<0>();
  tsr_store_rows<D, BF16>(o, acc, lrow, row0, sq, qd, ld);
}
#endif
)CUDA";

// The Hopper variant (sm_90a): each warpgroup (4 warps, 64 query rows)
// computes S = Q K^T and O += P V with wgmma.mma_async, A (Q, then P) from
// registers in the mma A-fragment layout, B from shared memory through
// matrix descriptors (PTX ISA, "Asynchronous Warpgroup Level Matrix
// Instructions"): K K-major (SBO = 1024 bytes between 8-row groups, the k16
// step advancing the start address by 32 bytes inside a 128-byte swizzle
// atom), V N-major with imm-trans-b = 1 (LBO = the next 64 columns' atom,
// SBO = 1024 bytes between 8-key groups). The accumulators' layout per warp
// equals the mma.m16n8 C layout, so the softmax code is shared.
const char *kFlashWgmma = R"CUDA(
#ifndef TSR_FLASH_WGMMA
#define TSR_FLASH_WGMMA
TSR_D void tsr_wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
TSR_D void tsr_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
TSR_D void tsr_wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
template <int N> TSR_D void tsr_fence_regs(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int c = 0; c < 4; ++c) asm volatile("" : "+f"(d[i][c])::"memory");
}
// Matrix descriptor: start address, leading / stride byte offsets, 128-byte swizzle.
TSR_D unsigned long long tsr_desc(unsigned addr, unsigned lbo, unsigned sbo) {
  return (unsigned long long)((addr & 0x3FFFFu) >> 4) | ((unsigned long long)((lbo & 0x3FFFFu) >> 4) << 16) |
         ((unsigned long long)((sbo & 0x3FFFFu) >> 4) << 32) | (1ull << 62);
}
template <int N, bool BF16, bool TRANS> struct TsrWgmma;
template <int N, bool BF16> struct TsrWgmmaSS;
@WGMMA_HELPERS@
// S += Q K^T for the 64-key tile whose K is at shared address sK (K-major:
// the k16 step moves 32 bytes inside a 128-byte atom, atoms 64 rows apart).
template <int D, bool BF16>
TSR_D void tsr_wg_qk(float (&s)[8][4], const unsigned (&qf)[D / 16][4], unsigned sK) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    TsrWgmma<64, BF16, false>::run(s, qf[kk], tsr_desc(sK + (kk >> 2) * (64 * 128) + (kk & 3) * 32, 16, 1024));
}
// O += P V for the tile whose V is at sV (N-major: 16 keys = 2048 bytes per
// step, the next 64 columns one atom of 64 rows on).
template <int D, bool BF16>
TSR_D void tsr_wg_pv(float (&acc)[D / 8][4], const unsigned (&pc)[4][4], unsigned sV) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    TsrWgmma<D, BF16, true>::run(acc, pc[kk], tsr_desc(sV + kk * 16 * 128, 64 * 128, 1024));
}
// The Hopper kernel. The softmax runs on the CUDA cores while the tensor
// cores work on other products; its two schedules share the prologue:
//
// OVERLAP = false ("wgmma2"): per tile t, S(t+1) = Q K(t+1) and
// O += P(t) V(t) are issued together; the softmax of S(t+1) runs while
// P(t) V(t) is still in flight, and O is rescaled once it lands. Three K/V
// stages: tile t (read by P V), t + 1 (read by Q K), t + 2 (loading).
//
// OVERLAP = true ("wgmma3", FlashAttention-3's Algorithm 2): Q K(t+1) is
// issued before the softmax of tile t; P(t) V(t) is issued once O has been
// rescaled and stays in flight through the next iteration's Q K(t+2) issue
// and softmax (one wait_group 0 per tile, after the softmax). Two score
// register sets (one written by wgmma, one exponentiated) and four K/V
// stages: after iteration t's barrier, tiles t - 1 (a P V of either
// warpgroup may still read it), t and t + 1 are in use, so tile t + 2 goes
// to the stage of tile t - 2.
//
// Both loop bodies issue their products unconditionally (the last P V is
// peeled off), so no wgmma is waited for on another control path, which
// would serialize them; causal blocks therefore let both warpgroups run
// every tile up to the block's last row (the tiles past a warpgroup's rows
// come out fully masked).
template <int D, bool BF16, bool CAUSAL, bool MASK, bool OVERLAP>
TSR_D void tsr_flash_fwd_wgmma(const unsigned short *__restrict__ q, const unsigned short *__restrict__ k,
                               const unsigned short *__restrict__ v, unsigned short *__restrict__ o,
                               const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                               long long sk, long long m0, float scale_log2, long long ld) {
  constexpr int BN = 64, THREADS = 256, STAGES = OVERLAP ? 4 : 3, KT = D / 16, NT = BN / 8, DT = D / 8,
                PT = BN / 16;
  constexpr unsigned TILE = BN * D * 2;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, qd = lane & 3;
  const unsigned sbase = tsr_smem_base();
  unsigned qf[KT][4];
  tsr_load_q<D>(sbase, q, m0, sq, tid, ld, qf);
  const int ntiles = tsr_key_tiles<CAUSAL>(sk, m0);
  const long long wrow = m0 + warp * 16, row0 = wrow + (lane >> 2);
  float acc[DT][4];
  tsr_zero(acc);
  float mrow[2] = {__int_as_float(0xff800000), __int_as_float(0xff800000)}, lrow[2] = {0.f, 0.f}, alpha[2];
  if (ntiles > 0) {
    auto stage = [&](int t) { return sbase + (unsigned)(t % STAGES) * 2 * TILE; };
    auto load = [&](int t) { tsr_load_kv<D, THREADS>(stage(t), k, v, t, ntiles, sk, tid, ld); };
    auto qk = [&](float (&s)[NT][4], int t) {
      tsr_zero(s);
      tsr_wg_qk<D, BF16>(s, qf, stage(t));
    };
    auto pv = [&](const unsigned (&pc)[PT][4], int t) { tsr_wg_pv<D, BF16>(acc, pc, stage(t) + TILE); };
    unsigned pc[PT][4]; // P of the current tile, as A fragments
    float s[NT][4];
    load(0);
    load(1);
    tsr_cp_wait<1>();
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    tsr_wg_fence();
    qk(s, 0);
    tsr_wg_commit();
    tsr_wg_wait0();
    tsr_fence_regs(s);
    if constexpr (!OVERLAP) {
      tsr_softmax_scores<NT, BF16, CAUSAL, MASK>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk, 0, row0, wrow,
                                                 scale_log2, qd);
#pragma unroll
      for (int kk = 0; kk < PT; ++kk)
        tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
      for (int t = 0; t + 1 < ntiles; ++t) {
        // Tile t + 1 has landed (the only group in flight); every warp is done
        // with tile t - 1, whose stage now takes tile t + 2.
        tsr_cp_wait<0>();
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
        load(t + 2);
        tsr_fence_regs(acc);
        tsr_wg_fence();
        qk(s, t + 1);
        tsr_wg_commit();
        pv(pc, t);
        tsr_wg_commit();
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); // S(t+1) done; P(t) V(t) may still run
        tsr_fence_regs(s);
        tsr_softmax_scores<NT, BF16, CAUSAL, MASK>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk,
                                                   (long long)(t + 1) * BN, row0, wrow, scale_log2, qd);
        tsr_wg_wait0();
        tsr_fence_regs(acc);
        tsr_rescale<DT>(acc, alpha);
#pragma unroll
        for (int kk = 0; kk < PT; ++kk)
          tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
      }
    } else {
      float sn[NT][4];
      for (int t = 0; t + 1 < ntiles; ++t) {
        // Tile t + 1 has landed (the only group in flight) and every warp is
        // past iteration t - 1; tile t + 2 goes to the stage of tile t - 2.
        tsr_cp_wait<0>();
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
        load(t + 2);
        tsr_wg_fence();
        qk(sn, t + 1);
        tsr_wg_commit();
        tsr_softmax_scores<NT, BF16, CAUSAL, MASK>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk, (long long)t * BN,
                                                   row0, wrow, scale_log2, qd);
        // P(t-1) V(t-1) and Q K(t+1) done: O can be rescaled, P(t) may take
        // the registers P(t-1) V(t-1) was reading, S(t+1) is complete.
        tsr_wg_wait0();
        tsr_fence_regs(sn);
#pragma unroll
        for (int kk = 0; kk < PT; ++kk)
          tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
        tsr_fence_regs(acc);
        tsr_rescale<DT>(acc, alpha);
        tsr_fence_regs(acc);
        tsr_wg_fence();
        pv(pc, t); // in flight through the next iteration's Q K and softmax
        tsr_wg_commit();
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int c = 0; c < 4; ++c) s[j][c] = sn[j][c];
      }
      tsr_softmax_scores<NT, BF16, CAUSAL, MASK>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk,
                                                 (long long)(ntiles - 1) * BN, row0, wrow, scale_log2, qd);
      tsr_wg_wait0();
#pragma unroll
      for (int kk = 0; kk < PT; ++kk)
        tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
      tsr_fence_regs(acc);
      tsr_rescale<DT>(acc, alpha);
    }
    // The last tile's P V.
    tsr_fence_regs(acc);
    tsr_wg_fence();
    pv(pc, ntiles - 1);
    tsr_wg_commit();
    tsr_wg_wait0();
    tsr_fence_regs(acc);
  }
  tsr_cp_wait<0>();
  tsr_store_rows<D, BF16>(o, acc, lrow, row0, sq, qd, ld);
}
// "wgmma2x" (knob impl; keys, kv_stages and rescale pick its geometry): the
// wgmma2 schedule (Q K(t+1) issued with P(t) V(t), the softmax of t + 1
// overlapping P(t) V(t)) with
//   - BN keys per tile (128 by default: half the per-tile barriers, waits,
//     row-max shuffles and rescales per key, and n = 128 for Q K);
//   - the scale folded into the exponent (p = exp2(s * c - m * c), one FFMA
//     per score; without a mask and with a positive scale, FUSED), and the
//     causal / key-range mask applied on the edge tiles only, in 32-bit
//     indices;
//   - LAZY rescaling (FlashAttention-4): a warp keeps its rows' stale
//     maxima until some row's grows by more than 8 (log2 units), so P stays
//     below 2^8, and O is rescaled only then (most tiles after the first
//     few skip the rescale; the final O / l is unchanged: both carry the
//     same stale max);
//   - Q in its own shared region, its load issued with the first K/V tiles
//     (no exposed Q round trip before them);
//   - STAGES K/V buffers: tiles t (read by P V), t + 1 (Q K), and
//     t + 2 .. t + STAGES - 1 loading (prefetch STAGES - 2 tiles ahead).
template <int NT, bool BF16, bool CAUSAL, bool MASK, bool FUSED, bool LAZY>
TSR_D bool tsr_softmax_x(float (&s)[NT][4], float (&mrow)[2], float (&lrow)[2], float (&alpha)[2],
                         const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                         long long sk, long long n0, long long row0, long long wrow, float scale_log2, int qd) {
  const float NEG_INF = __int_as_float(0xff800000);
  // c: the factor the scores still need (1 once scaled here).
  const float c = FUSED ? scale_log2 : 1.f;
  if (!FUSED) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[j][e] * scale_log2;
        const long long col = n0 + j * 8 + 2 * qd + (e & 1), row = row0 + (e >> 1) * 8;
        if (MASK && col < sk && row < sq)
          x += tsr_dec16<BF16>(mask[row * msq + col * msk]) * 1.4426950408889634f;
        s[j][e] = x;
      }
  }
  // Key range and the causal diagonal, on the tiles that cross them.
  if (n0 + NT * 8 > sk || (CAUSAL && n0 + NT * 8 - 1 > wrow)) {
    const long long kl = sk - n0, dl = row0 - n0;
    const int klim = (int)(kl < NT * 8 ? kl : NT * 8), dlim = (int)(dl < NT * 8 ? dl : NT * 8);
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j * 8 + 2 * qd + (e & 1);
        if (col >= klim || (CAUSAL && col > dlim + (e >> 1) * 8))
          s[j][e] = NEG_INF;
      }
  }
  float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
  }
  float mn[2];
  bool grow = false;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    mn[h] = fmaxf(mrow[h], mx[h] * c);
    grow |= mn[h] > mrow[h] + 8.f;
  }
  const bool upd = !LAZY || __any_sync(0xffffffffu, grow);
  float mu[2], rs[2] = {0.f, 0.f};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float m = upd ? mn[h] : mrow[h];
    mu[h] = m == NEG_INF ? 0.f : m;
    alpha[h] = upd ? tsr_ex2(mrow[h] - mu[h]) : 1.f;
    mrow[h] = m;
  }
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    s[j][0] = tsr_ex2(fmaf(s[j][0], c, -mu[0]));
    s[j][1] = tsr_ex2(fmaf(s[j][1], c, -mu[0]));
    s[j][2] = tsr_ex2(fmaf(s[j][2], c, -mu[1]));
    s[j][3] = tsr_ex2(fmaf(s[j][3], c, -mu[1]));
    rs[0] += s[j][0] + s[j][1];
    rs[1] += s[j][2] + s[j][3];
  }
  lrow[0] = lrow[0] * alpha[0] + rs[0];
  lrow[1] = lrow[1] * alpha[1] + rs[1];
  return upd;
}
// S += Q K^T for a tile of BN keys (K-major, atoms BN rows apart).
template <int D, int BN, bool BF16>
TSR_D void tsr_wgx_qk(float (&s)[BN / 8][4], const unsigned (&qf)[D / 16][4], unsigned sK) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    TsrWgmma<BN, BF16, false>::run(s, qf[kk], tsr_desc(sK + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024));
}
// The same with Q read from shared memory (rows [64 w, 64 w + 64) of the
// 128-row Q tile at sQ for warpgroup w).
template <int D, int BN, bool BF16>
TSR_D void tsr_wgx_qk_ss(float (&s)[BN / 8][4], unsigned sQw, unsigned sK) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    TsrWgmmaSS<BN, BF16>::run(s, tsr_desc(sQw + (kk >> 2) * (128 * 128) + (kk & 3) * 32, 16, 1024),
                              tsr_desc(sK + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024));
}
// O += P V for a tile of BN keys (N-major: 16 keys = 2048 bytes per step,
// the next 64 columns one atom of BN rows on).
template <int D, int BN, bool BF16>
TSR_D void tsr_wgx_pv(float (&acc)[D / 8][4], const unsigned (&pc)[BN / 16][4], unsigned sV) {
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk)
    TsrWgmma<D, BF16, true>::run(acc, pc[kk], tsr_desc(sV + kk * 16 * 128, BN * 128, 1024));
}
template <int D, int BN, int STAGES, bool BF16, bool CAUSAL, bool MASK, bool FUSED, bool LAZY, bool QSS>
TSR_D void tsr_flash_fwd_wgx(const unsigned short *__restrict__ q, const unsigned short *__restrict__ k,
                             const unsigned short *__restrict__ v, unsigned short *__restrict__ o,
                             const unsigned short *__restrict__ mask, long long msq, long long msk, long long sq,
                             long long sk, long long m0, float scale_log2, long long ld) {
  static_assert(STAGES >= 3, "the wgmma2 schedule reads two stages while one loads");
  constexpr int THREADS = 256, KT = D / 16, NT = BN / 8, DT = D / 8, PT = BN / 16;
  constexpr unsigned TILE = BN * D * 2;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, qd = lane & 3;
  const unsigned sbase = tsr_smem_base(), sQ = sbase + STAGES * 2 * TILE;
  const long long kend = CAUSAL ? min(sk, m0 + 128) : sk;
  const int ntiles = (int)((kend + BN - 1) / BN);
  const long long wrow = m0 + warp * 16, row0 = wrow + (lane >> 2);
  auto stage = [&](int t) { return sbase + (unsigned)(t % STAGES) * 2 * TILE; };
  auto load = [&](int t) {
    if (t < ntiles) {
      tsr_load_tile<D, BN, THREADS>(stage(t), k, (long long)t * BN, sk, tid, ld);
      tsr_load_tile<D, BN, THREADS>(stage(t) + TILE, v, (long long)t * BN, sk, tid, ld);
    }
    tsr_cp_commit();
  };
  // Q, then the first STAGES - 1 K/V tiles, in flight together.
  tsr_load_tile<D, 128, THREADS>(sQ, q, m0, sq, tid, ld);
  tsr_cp_commit();
#pragma unroll
  for (int t = 0; t < STAGES - 1; ++t)
    load(t);
  float acc[DT][4];
  tsr_zero(acc);
  float mrow[2] = {__int_as_float(0xff800000), __int_as_float(0xff800000)}, lrow[2] = {0.f, 0.f}, alpha[2];
  tsr_cp_wait<STAGES - 2>(); // Q and tile 0
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
  if (ntiles > 0) {
    unsigned qf[QSS ? 1 : KT][4];
    if (!QSS)
#pragma unroll
      for (int kk = 0; kk < KT; ++kk)
        tsr_ldsm4(sQ + tsr_swz<128>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)), qf[kk][0], qf[kk][1], qf[kk][2],
                  qf[kk][3]);
    const unsigned sQw = sQ + (unsigned)(warp >> 2) * 64 * 128;
    auto qk = [&](float (&sc)[NT][4], int t) {
      if constexpr (QSS)
        tsr_wgx_qk_ss<D, BN, BF16>(sc, sQw, stage(t));
      else
        tsr_wgx_qk<D, BN, BF16>(sc, qf, stage(t));
    };
    unsigned pc[PT][4]; // P of the current tile, as A fragments
    float s[NT][4];
    tsr_zero(s);
    tsr_wg_fence();
    qk(s, 0);
    tsr_wg_commit();
    tsr_wg_wait0();
    tsr_fence_regs(s);
    tsr_softmax_x<NT, BF16, CAUSAL, MASK, FUSED, LAZY>(s, mrow, lrow, alpha, mask, msq, msk, sq, sk, 0, row0, wrow,
                                                       scale_log2, qd);
#pragma unroll
    for (int kk = 0; kk < PT; ++kk)
      tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
    for (int t = 0; t + 1 < ntiles; ++t) {
      // Tile t + 1 has landed; every warp is done with tile t - 1, whose
      // stage now takes tile t + STAGES - 1.
      tsr_cp_wait<STAGES - 3>();
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      __syncthreads();
      load(t + STAGES - 1);
      tsr_zero(s);
      tsr_fence_regs(acc);
      tsr_wg_fence();
      qk(s, t + 1);
      tsr_wg_commit();
      tsr_wgx_pv<D, BN, BF16>(acc, pc, stage(t) + TILE);
      tsr_wg_commit();
      asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); // S(t+1) done; P(t) V(t) may still run
      tsr_fence_regs(s);
      const bool upd = tsr_softmax_x<NT, BF16, CAUSAL, MASK, FUSED, LAZY>(
          s, mrow, lrow, alpha, mask, msq, msk, sq, sk, (long long)(t + 1) * BN, row0, wrow, scale_log2, qd);
      tsr_wg_wait0();
      tsr_fence_regs(acc);
      if (upd)
        tsr_rescale<DT>(acc, alpha);
#pragma unroll
      for (int kk = 0; kk < PT; ++kk)
        tsr_p_frag<NT, BF16>(s, kk, pc[kk]);
    }
    // The last tile's P V.
    tsr_fence_regs(acc);
    tsr_wg_fence();
    tsr_wgx_pv<D, BN, BF16>(acc, pc, stage(ntiles - 1) + TILE);
    tsr_wg_commit();
    tsr_wg_wait0();
    tsr_fence_regs(acc);
  }
  tsr_cp_wait<0>();
  tsr_store_rows<D, BF16>(o, acc, lrow, row0, sq, qd, ld);
}
#endif
)CUDA";

// TsrWgmma<N, BF16, TRANS>::run: one wgmma.mma_async.m64nNk16 with f32
// accumulators d[N/8][4] (the operand order is the fragment order), A from
// four registers, B from a descriptor, accumulating into d.
std::string wgmmaHelpers() {
  std::string out;
  for (int n : {64, 128})
    for (bool bf16 : {true, false})
      for (bool trans : {false, true}) {
        std::string ty = bf16 ? "bf16" : "f16";
        int regs = n / 2;
        out += "template <> struct TsrWgmma<" + std::to_string(n) + ", " + (bf16 ? "true" : "false") + ", " +
               (trans ? "true" : "false") + "> {\n";
        out += "  TSR_D static void run(float (&d)[" + std::to_string(n / 8) +
               "][4], const unsigned (&a)[4], unsigned long long desc) {\n";
        out += "    asm volatile(\"wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." + ty + "." + ty +
               " {";
        for (int i = 0; i < regs; ++i)
          out += (i ? ", %" : "%") + std::to_string(i);
        out += "}, {%" + std::to_string(regs) + ", %" + std::to_string(regs + 1) + ", %" + std::to_string(regs + 2) +
               ", %" + std::to_string(regs + 3) + "}, %" + std::to_string(regs + 4) + ", 1, 1, 1, " +
               (trans ? "1" : "0") + ";\"\n      : ";
        for (int i = 0; i < regs; ++i)
          out += std::string(i ? ", " : "") + "\"+f\"(d[" + std::to_string(i / 4) + "][" + std::to_string(i % 4) + "])";
        out += "\n      : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"l\"(desc));\n  }\n};\n";
      }
  // TsrWgmmaSS<N, BF16>::run: the same with A from shared memory too
  // (K-major descriptors for both), for Q K with Q kept in shared memory.
  for (int n : {64, 128})
    for (bool bf16 : {true, false}) {
      std::string ty = bf16 ? "bf16" : "f16";
      int regs = n / 2;
      out += "template <> struct TsrWgmmaSS<" + std::to_string(n) + ", " + (bf16 ? "true" : "false") + "> {\n";
      out += "  TSR_D static void run(float (&d)[" + std::to_string(n / 8) +
             "][4], unsigned long long da, unsigned long long db) {\n";
      out += "    asm volatile(\"wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." + ty + "." + ty +
             " {";
      for (int i = 0; i < regs; ++i)
        out += (i ? ", %" : "%") + std::to_string(i);
      out += "}, %" + std::to_string(regs) + ", %" + std::to_string(regs + 1) + ", 1, 1, 1, 0, 0;\"\n      : ";
      for (int i = 0; i < regs; ++i)
        out += std::string(i ? ", " : "") + "\"+f\"(d[" + std::to_string(i / 4) + "][" + std::to_string(i % 4) + "])";
      out += "\n      : \"l\"(da), \"l\"(db));\n  }\n};\n";
    }
  return out;
}

// Extra parameter slots (after operands and symbols).
enum Extra : size_t { kBatch = 0, kSq, kSk, kD, kDv, kMaskRow, kMaskCol, kFixedExtras };
// Then per batch dim i (in the computation's order [batch..., H]): extent at
// kFixedExtras + 2i, mask stride at + 1; then, for layout=bshd, H (headsExtra).

size_t batchDims(const Kernel &k) { return k.operands[0].shape.size() - 2; }
bool bshd(const Kernel &k) { return k.attention.layout == AttentionLayout::Bshd; }
size_t headsExtra(const Kernel &k) { return kFixedExtras + 2 * batchDims(k); }
size_t extraCount(const Kernel &k) { return headsExtra(k) + (bshd(k) ? 1 : 0); }

std::string hexFloat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%a", v);
  return buf;
}

struct Shapes {
  int64_t batch = 1, sq = 0, sk = 0, d = 0, dv = 0, maskRow = 0, maskCol = 0;
  int64_t heads = 1; // H of a bshd kernel (row stride H * D), else 1
  std::vector<int64_t> batchExtent, maskBatchStride;
};

Shapes evalShapes(const Kernel &k, const int64_t *symbols) {
  auto dims = [&](int64_t o) {
    std::vector<int64_t> v;
    for (const IndexExpr &e : k.operands[static_cast<size_t>(o)].shape)
      v.push_back(evalIndex(e, symbols, nullptr, nullptr, nullptr));
    return v;
  };
  Shapes s;
  // The computation's order [batch..., S, D] (a bshd operand's H a batch dim).
  std::vector<int64_t> q = k.attentionDims(0, dims(0)), kd = k.attentionDims(1, dims(1)),
                       v = k.attentionDims(2, dims(2));
  size_t r = q.size();
  s.heads = bshd(k) ? q[r - 3] : 1;
  for (size_t i = 0; i + 2 < r; ++i) {
    s.batch *= std::max<int64_t>(0, q[i]);
    s.batchExtent.push_back(q[i]);
  }
  s.sq = q[r - 2];
  s.d = q[r - 1];
  s.sk = kd[r - 2];
  s.dv = v[r - 1];
  s.maskBatchStride.assign(r - 2, 0);
  if (int64_t m = k.attentionMask(); m >= 0) {
    const std::vector<IndexExpr> &shape = k.operands[static_cast<size_t>(m)].shape;
    std::vector<int64_t> md = dims(m);
    int64_t stride = 1;
    for (size_t i = md.size(); i-- > 0;) {
      size_t at = r - md.size() + i; // the score dim it lines up with
      bool broadcast = shape[i].isConst() && shape[i].value == 1;
      int64_t st = broadcast ? 0 : stride;
      if (at == r - 2)
        s.maskRow = st;
      else if (at == r - 1)
        s.maskCol = st;
      else
        s.maskBatchStride[at] = st;
      stride *= std::max<int64_t>(1, md[i]);
    }
  }
  return s;
}

class AttentionEmitter {
public:
  AttentionEmitter(const Program &p, size_t ki, const KernelPlan &plan, std::ostream &out)
      : program_(p), k_(p.kernels[ki]), plan_(plan), out_(out) {}

  // Slot index of extra `e`.
  size_t extra(size_t e) const { return k_.operands.size() + program_.symbols.size() + e; }

  void prologue(const std::string &fn, int threads, const char *minBlocks) {
    out_ << "extern \"C\" __global__ void __launch_bounds__(" << threads << minBlocks << ") " << fn << "(const TsrP"
         << plan_.numSlots << " P) {\n";
    const int64_t mask = k_.attentionMask();
    std::string st = storageType(k_.operands[0].dtype);
    out_ << "  const " << st << " *q = (const " << st << " *)P.u[0], *k = (const " << st << " *)P.u[1], *v = (const "
         << st << " *)P.u[2];\n";
    if (mask >= 0)
      out_ << "  const " << st << " *mask = (const " << st << " *)P.u[3];\n";
    out_ << "  " << st << " *o = (" << st << " *)P.u[" << k_.attentionOut() << "];\n";
    auto x = [&](const char *name, size_t e) {
      out_ << "  const long long " << name << " = (long long)P.u[" << extra(e) << "];\n";
    };
    x("batch", kBatch);
    x("sq", kSq);
    x("sk", kSk);
    x("hd", kD);
    x("hdv", kDv);
    x("msq", kMaskRow);
    x("msk", kMaskCol);
    out_ << "  (void)batch; (void)hd; (void)hdv; (void)msq; (void)msk;\n";
    if (bshd(k_))
      x("heads", headsExtra(k_));
  }

  // `mbase` = offset of batch point `b` in the (broadcast) mask.
  void maskBase(const std::string &indent, const std::string &b) {
    if (k_.attentionMask() < 0)
      return;
    out_ << indent << "long long mbase = 0;\n";
    out_ << indent << "{\n" << indent << "  long long rest = " << b << ";\n";
    for (size_t i = batchDims(k_); i-- > 0;) {
      size_t e = kFixedExtras + 2 * i;
      out_ << indent << "  { const long long e = (long long)P.u[" << extra(e)
           << "]; mbase += (rest % e) * (long long)P.u["
           << extra(e + 1) << "]; rest /= e; }\n";
    }
    out_ << indent << "}\n";
  }

  // The generic path: one warp per query row; 32 keys per step, each lane
  // scoring one; the row's output dims in chunks of 128 (4 per lane).
  void emitGeneric(const std::string &fn) {
    tessera_dtype_t dt = k_.operands[0].dtype;
    const bool f64 = dt == TESSERA_DTYPE_F64;
    const std::string A = f64 ? "double" : "float";
    const std::string ninf = f64 ? "TSR_DINF" : "TSR_INF";
    auto dec = [&](const std::string &e) { return "(" + A + ")" + decodeElement(dt, e); };
    prologue(fn, 128, "");
    out_ << "  const " << A << " scale = (" << A << ")" << hexFloat(k_.attention.scale) << ";\n";
    out_ << "  const int lane = threadIdx.x & 31;\n";
    out_ << "  const long long rows = batch * sq;\n";
    out_ << "  for (long long row = (long long)blockIdx.x * 4 + (threadIdx.x >> 5); row < rows;\n"
            "       row += (long long)gridDim.x * 4) {\n";
    out_ << "    const long long b = row / sq, i = row % sq; (void)i;\n";
    // Element indices: q[d] and out[e] of row i, k[d] of key j, v's row
    // j0 + t. Dense (bhsd) rows follow each other; layout=bshd: batch point
    // b = bo * H + hh, rows H * D apart from column hh * D of bo's block.
    const bool strided = bshd(k_);
    if (strided)
      out_ << "    const long long bo = b / heads, hh = b % heads;\n"
              "    const long long qo = ((bo * sq + i) * heads + hh) * hd, ko = (bo * sk * heads + hh) * hd, "
              "kst = heads * hd;\n"
              "    const long long vo = (bo * sk * heads + hh) * hdv, vst = heads * hdv, "
              "oo = ((bo * sq + i) * heads + hh) * hdv;\n";
    const std::string qIdx = strided ? "q[qo + d]" : "q[row * hd + d]",
                      kIdx = strided ? "k[ko + j * kst + d]" : "k[(b * sk + j) * hd + d]",
                      vRow = strided ? "vo + (j0 + t) * vst" : "(b * sk + j0 + t) * hdv",
                      oIdx = strided ? "o[oo + e]" : "o[row * hdv + e]";
    maskBase("    ", "b");
    out_ << "    const long long kend = " << (k_.attention.causal ? "(i + 1 < sk ? i + 1 : sk)" : "sk") << ";\n";
    out_ << "    for (long long e0 = 0; e0 < hdv; e0 += 128) {\n";
    out_ << "      " << A << " acc[4] = {0, 0, 0, 0}, m = -" << ninf << ", l = 0;\n";
    out_ << "      for (long long j0 = 0; j0 < kend; j0 += 32) {\n";
    out_ << "        const long long j = j0 + lane;\n";
    out_ << "        " << A << " s = -" << ninf << ";\n";
    out_ << "        if (j < kend) {\n";
    out_ << "          " << A << " dot = 0;\n";
    out_ << "          for (long long d = 0; d < hd; ++d) dot += " << dec(qIdx) << " * " << dec(kIdx) << ";\n";
    out_ << "          s = dot * scale;\n";
    if (k_.attentionMask() >= 0)
      out_ << "          s += " << dec("mask[mbase + i * msq + j * msk]") << ";\n";
    out_ << "        }\n";
    out_ << "        " << A << " mx = s;\n";
    out_ << "        for (int off = 16; off > 0; off >>= 1) { " << A
         << " y = __shfl_xor_sync(0xffffffffu, mx, off); mx = y > mx ? y : mx; }\n";
    out_ << "        const " << A << " mn = mx > m ? mx : m;\n";
    out_ << "        const " << A << " mu = mn == -" << ninf << " ? (" << A << ")0 : mn;\n";
    // One call site of exp for both (two would make f64's slow path spill).
    out_ << "        " << A << " alpha = 1, p = 0;\n";
    out_ << "#pragma unroll 1\n        for (int z = 0; z < 2; ++z) { const " << A << " ez = " << (f64 ? "exp" : "expf")
         << "(z ? s - mu : m - mu); if (z) p = ez; else alpha = ez; }\n";
    out_ << "        " << A << " ps = p;\n";
    out_ << "        for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);\n";
    out_ << "        l = l * alpha + ps;\n";
    out_ << "        m = mn;\n";
    out_ << "        const int cnt = kend - j0 < 32 ? (int)(kend - j0) : 32;\n";
    out_ << "#pragma unroll\n        for (int r = 0; r < 4; ++r) acc[r] *= alpha;\n";
    out_ << "        for (int t = 0; t < cnt; ++t) {\n";
    out_ << "          const " << A << " pt = __shfl_sync(0xffffffffu, p, t);\n";
    out_ << "          const long long vr = " << vRow << ";\n";
    out_ << "#pragma unroll\n          for (int r = 0; r < 4; ++r) {\n";
    out_ << "            const long long e = e0 + r * 32 + lane;\n";
    out_ << "            if (e < hdv) acc[r] += pt * " << dec("v[vr + e]") << ";\n";
    out_ << "          }\n";
    out_ << "        }\n";
    out_ << "      }\n";
    out_ << "#pragma unroll\n      for (int r = 0; r < 4; ++r) {\n";
    out_ << "        const long long e = e0 + r * 32 + lane;\n";
    out_ << "        if (e < hdv) " << oIdx << " = "
         << encodeElement("acc[r] / l", f64 ? TESSERA_DTYPE_F64 : TESSERA_DTYPE_F32, dt)
         << ";\n";
    out_ << "      }\n";
    out_ << "    }\n";
    out_ << "  }\n}\n\n";
  }

  void emitFlash(const std::string &fn, const FlashPlan &f) {
    prologue(fn, f.tile.threads, ", 1");
    const int64_t mask = k_.attentionMask();
    out_ << "  const long long tiles = (sq + " << f.tile.rows - 1 << ") / " << f.tile.rows << ";\n";
    // Causal: longest first, every batch point's last (heaviest) query tile,
    // then the ones before, so that the light tiles fill the SMs at the end
    // instead of a heavy one starting last (the block's attention 0.060 ->
    // 0.044 ms at B4 H8 S1024, docs/perf.md). Otherwise consecutive blocks
    // walk one batch point's query tiles (its K/V stay in L2).
    //
    // Sectioned (the default since generator version 8; FlashAttention-3's
    // L2 swizzle): batch points in sections of G, G as many as 32 MB of
    // K/V hold (or knob section), each section's query tiles longest first
    // with its batch points interleaved, so the blocks in flight share the
    // K/V of few batch points and re-read them from L2 rather than DRAM.
    if (k_.attention.causal && f.sectioned) {
      if (f.section > 0)
        out_ << "  long long sec_g = " << f.section << ";\n";
      else
        out_ << "  long long sec_g = (32ll << 20) / (sk * " << 4 * f.headDim << " > 0 ? sk * " << 4 * f.headDim
             << " : 1);\n";
      out_ << "  sec_g = sec_g < 1 ? 1 : sec_g > batch ? batch : sec_g;\n"
              "  const long long sec_n = (long long)blockIdx.x / (sec_g * tiles), "
              "sec_r = (long long)blockIdx.x % (sec_g * tiles);\n"
              "  const long long sec_w = batch - sec_n * sec_g < sec_g ? batch - sec_n * sec_g : sec_g;\n"
              "  const long long b = sec_n * sec_g + sec_r % sec_w, tile = tiles - 1 - sec_r / sec_w;\n";
    } else if (k_.attention.causal)
      out_ << "  const long long b = (long long)blockIdx.x % batch, tile = tiles - 1 - (long long)blockIdx.x / batch;\n";
    else
      out_ << "  const long long b = (long long)blockIdx.x / tiles, tile = tiles - 1 - (long long)blockIdx.x % tiles;\n";
    out_ << "  if (b >= batch) return;\n";
    maskBase("  ", "b");
    double scaleLog2 = k_.attention.scale * 1.4426950408889634;
    // Batch point b's q/k/v/out and their row stride: dense [S, D] blocks
    // (bhsd), or, for layout=bshd (b = bo * H + hh), column hh * D of the
    // [S, H * D] block of bo, rows H * D apart.
    const std::string D = std::to_string(f.headDim);
    std::string qb, kb, ld;
    if (bshd(k_)) {
      out_ << "  const long long bo = b / heads, hh = b % heads;\n";
      qb = "(bo * sq * heads + hh) * " + D;
      kb = "(bo * sk * heads + hh) * " + D;
      ld = "heads * " + D;
    } else {
      qb = "b * sq * " + D;
      kb = "b * sk * " + D;
      ld = D;
    }
    out_ << "  ";
    if (f.x)
      out_ << "tsr_flash_fwd_wgx<" << f.headDim << ", " << f.tile.keys << ", " << f.tile.stages << ", ";
    else if (f.wgmma)
      out_ << "tsr_flash_fwd_wgmma<" << f.headDim << ", ";
    else
      out_ << "tsr_flash_fwd<" << f.headDim << ", " << f.tile.stages << ", ";
    out_ << (f.bf16 ? "true" : "false") << ", " << (k_.attention.causal ? "true" : "false") << ", "
         << (mask >= 0 ? "true" : "false");
    if (f.x)
      out_ << (f.fused ? ", true" : ", false") << (f.lazy ? ", true" : ", false") << (f.qShared ? ", true" : ", false");
    else if (f.wgmma)
      out_ << (f.overlapped ? ", true" : ", false");
    out_ << ">(q + " << qb << ", k + " << kb << ", v + " << kb << ", o + " << qb << ", "
         << (mask >= 0 ? "mask + mbase" : "nullptr") << ", msq, msk, sq, sk, tile * " << f.tile.rows << ", (float)"
         << hexFloat(scaleLog2) << ", " << ld << ");\n";
    out_ << "}\n\n";
  }

private:
  const Program &program_;
  const Kernel &k_;
  const KernelPlan &plan_;
  std::ostream &out_;
};

} // namespace

uint32_t FlashPlan::sharedBytes() const {
  // wgmma2x: its stages, then Q. Otherwise the same for every variant: the
  // deepest pipeline's 4 stages (Q passes through them at the start).
  // Plus alignment to 1 KB.
  uint32_t q = static_cast<uint32_t>(tile.rows * headDim * 2);
  if (tile.qRegion)
    return static_cast<uint32_t>(tile.stages * 2 * tile.keys * headDim * 2) + q + 1024;
  uint32_t kv = static_cast<uint32_t>(4 * 2 * tile.keys * headDim * 2);
  return std::max(q, kv) + 1024;
}

FlashPlan planFlash(const Kernel &k, const CodegenOptions &options) {
  FlashPlan f;
  tessera_dtype_t dt = k.operands[0].dtype;
  const IndexExpr &d = k.operands[0].shape.back(), &dv = k.operands[2].shape.back();
  if (dt != TESSERA_DTYPE_BF16 && dt != TESSERA_DTYPE_F16)
    f.why = std::string("flash attention takes bf16/f16, not ") + dtypeName(dt);
  else if (!d.isConst() || !dv.isConst())
    f.why = "flash attention needs static head dims";
  else if (d.value != dv.value || (d.value != 64 && d.value != 128))
    f.why = "flash attention takes D == Dv in {64, 128}";
  else if (options.smVersion < 80)
    f.why = "flash attention needs sm_80 or newer";
  if (!f.why.empty())
    return f;
  f.usable = true;
  f.headDim = static_cast<int>(d.value);
  f.bf16 = dt == TESSERA_DTYPE_BF16;
  // wgmma needs the arch-specific Hopper target. Knob impl: "mma" keeps
  // mma.sync there, "wgmma2" overlaps P V with the next softmax, "wgmma3"
  // Q K(t+1) with the softmax of tile t too, "wgmma2x" (the default) is
  // wgmma2 over 128-key tiles. Measured on an H200, B4 H16 (docs/perf.md,
  // 2026-11-21): wgmma2x 1.33 ms vs wgmma2 1.40 at D = 128 S4096, 0.69 vs
  // 0.98 causal, 0.92 vs wgmma3's 1.06 at D = 64, 0.20 vs 0.28 causal
  // S2048 D = 128.
  std::string impl = k.knobString("impl");
  if (impl.empty())
    impl = "wgmma2x";
  f.wgmma = options.smVersion == 90 && options.archSpecific && impl != "mma";
  f.overlapped = f.wgmma && impl == "wgmma3";
  // wgmma2x (tsr_flash_fwd_wgx): knob keys (64 | 128, default 128),
  // kv_stages (3 | 4; default 3 at 128 keys, 4 at 64), rescale ("always",
  // the default, | "lazy": O rescaled only when a row max grows by more
  // than 2^8; as fast at S2048 causal, 0.2022 vs 0.2011 ms, and less exact,
  // 2.1e-3 vs 1.9e-3 against float64). 128 keys x 3 stages + Q take 225 KB
  // at D = 128.
  f.x = f.wgmma && impl == "wgmma2x";
  if (f.x) {
    f.tile.keys = k.knobInt("keys", 128) == 64 ? 64 : 128;
    const int64_t st = k.knobInt("kv_stages", f.tile.keys == 128 ? 3 : 4);
    f.tile.stages = st == 4 ? 4 : 3;
    if (f.tile.keys == 128 && f.headDim == 128)
      f.tile.stages = 3; // 4 x 64 KB + Q would pass 227 KB
    f.tile.qRegion = true;
    f.lazy = k.knobString("rescale") == "lazy";
    f.fused = k.attentionMask() < 0 && k.attention.scale > 0;
    // Knob q: "smem" (Q K reads Q from shared memory: 32 registers fewer,
    // the default at 128 keys) or "regs" (the default at 64).
    const std::string qk = k.knobString("q");
    f.qShared = qk == "smem" || (qk != "regs" && f.tile.keys == 128);
  }
  f.sectioned = k.knobString("order") != "heads";
  f.section = std::max<int64_t>(0, k.knobInt("section", 0));
  return f;
}

bool emitAttention(const Program &program, size_t kernel, const CodegenOptions &options, KernelPlan *plan,
                   std::ostream &out, std::string *error) {
  const Kernel &k = program.kernels[kernel];
  if (k.kind != Kernel::Kind::Attention) {
    *error = "not an attention kernel";
    return false;
  }
  FlashPlan f = planFlash(k, options);
  plan->gemm.usable = f.usable;
  plan->gemm.why = f.why;
  plan->flashSharedBytes = f.usable ? f.sharedBytes() : 0;
  plan->hasReduce = true;
  plan->extraSlots = extraCount(k);
  plan->numSlots = k.operands.size() + program.symbols.size() + plan->extraSlots;
  AttentionEmitter em(program, kernel, *plan, out);
  em.emitGeneric(plan->function(LaunchMode::Thread));
  if (f.usable) {
    out << kFlashCommon << "\n";
    if (f.wgmma) {
      std::string w = kFlashWgmma;
      w.replace(w.find("@WGMMA_HELPERS@"), 15, wgmmaHelpers());
      out << w << "\n";
    }
    em.emitFlash(plan->function(LaunchMode::Gemm), f);
  }
  return true;
}

bool planAttentionLaunch(const Program &program, size_t kernel, const KernelPlan &plan, const int64_t *symbols,
                         uint32_t smCount, LaunchConfig *out, std::string *error) {
  const Kernel &k = program.kernels[kernel];
  (void)error;
  Shapes s = evalShapes(k, symbols);
  LaunchConfig cfg;
  cfg.extras = {s.batch, s.sq, s.sk, s.d, s.dv, s.maskRow, s.maskCol};
  for (size_t i = 0; i < s.batchExtent.size(); ++i) {
    cfg.extras.push_back(s.batchExtent[i]);
    cfg.extras.push_back(s.maskBatchStride[i]);
  }
  if (bshd(k))
    cfg.extras.push_back(s.heads);
  if (s.batch <= 0 || s.sq <= 0 || s.dv <= 0) {
    cfg.empty = true;
    *out = cfg;
    return true;
  }
  FlashTile t;
  int64_t blocks = s.batch * ((s.sq + t.rows - 1) / t.rows);
  if (plan.gemm.usable && blocks <= std::numeric_limits<int32_t>::max()) {
    CodegenOptions o;
    FlashPlan f = planFlash(k, o);
    cfg.mode = LaunchMode::Gemm;
    cfg.grid[0] = static_cast<uint32_t>(blocks);
    cfg.block[0] = static_cast<uint32_t>(f.tile.threads);
    // The plan was made for the compiled architecture (wgmma2x's geometry).
    cfg.sharedBytes = plan.flashSharedBytes ? plan.flashSharedBytes : f.sharedBytes();
    *out = cfg;
    return true;
  }
  cfg.mode = LaunchMode::Thread;
  cfg.block[0] = 128;
  int64_t rows = s.batch * s.sq;
  int64_t cap = int64_t(smCount ? smCount : 132) * 64; // grid-stride beyond 64 blocks per SM
  cfg.grid[0] = static_cast<uint32_t>(std::max<int64_t>(1, std::min<int64_t>((rows + 3) / 4, cap)));
  *out = cfg;
  return true;
}

CostResult estimateAttentionCost(const Program &program, size_t kernel, const KernelPlan &plan, const GpuModel &gpu,
                                 const int64_t *symbols) {
  const Kernel &k = program.kernels[kernel];
  CostResult r;
  LaunchConfig cfg;
  std::string error;
  planAttentionLaunch(program, kernel, plan, symbols, static_cast<uint32_t>(gpu.smCount), &cfg, &error);
  r.mode = cfg.mode;
  Shapes s = evalShapes(k, symbols);
  for (const Operand &o : k.operands) {
    double n = 1;
    for (const IndexExpr &e : o.shape)
      n *= double(std::max<int64_t>(0, evalIndex(e, symbols, nullptr, nullptr, nullptr)));
    r.bytes += n * double(dtypeSize(o.dtype));
  }
  double keys = double(s.sk);
  if (k.attention.causal && s.sq > 0) // query i sees min(i + 1, Sk) keys
    keys = std::min(keys, (double(s.sq) + 1) / 2);
  r.flops = 2.0 * double(s.batch) * double(s.sq) * keys * double(s.d + s.dv);
  if (cfg.empty) {
    r.seconds = gpu.launchSeconds;
    return r;
  }
  double rate;
  if (cfg.mode == LaunchMode::Gemm) {
    FlashPlan f = planFlash(k, CodegenOptions{});
    if (cfg.sharedBytes > uint32_t(gpu.sharedBytesPerBlock)) {
      r.feasible = false;
      r.reason = "shared memory per block exceeds the architecture's limit";
      return r;
    }
    double fill = std::min(1.0, double(cfg.grid[0]) / gpu.smCount);
    rate = gpu.tensorFlopsPerSecond * 0.4 * fill; // mma.sync, softmax between the products
    r.occupancy = double(f.tile.threads) / gpu.maxThreadsPerSm;
  } else {
    rate = gpu.fp32FlopsPerSecond * 0.1; // scalar dot products, uncoalesced K reads
    r.occupancy = 0.5;
  }
  double tMem = r.bytes / (gpu.dramBytesPerSecond * 0.8);
  r.seconds = gpu.launchSeconds + std::max(tMem, r.flops / std::max(1.0, rate));
  return r;
}

} // namespace tessera::cuda
