#include "Gemm.h"

#include "OneDnn.h"
#include "ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <set>

namespace tessera::cpu {

namespace sir = tessera::schedule;

namespace {

using Var = std::pair<sir::IndexExpr::Kind, int64_t>;

// True when e is affine in the loop variables (p*, r*) with loop-invariant
// coefficients; collects the loop variables it uses.
bool affine(const sir::IndexExpr &e, std::set<Var> *vars, int depth = 0) {
  using K = sir::IndexExpr::Kind;
  if (depth > 64)
    return false;
  switch (e.kind) {
  case K::Const:
  case K::Symbol: return true;
  case K::Parallel:
  case K::Inner: vars->insert({e.kind, e.value}); return true;
  case K::Value: return false;
  default: break;
  }
  if (e.args.size() != 2)
    return false;
  std::set<Var> a, b;
  if (!affine(e.args[0], &a, depth + 1) || !affine(e.args[1], &b, depth + 1))
    return false;
  bool loopA = !a.empty(), loopB = !b.empty();
  switch (e.kind) {
  case K::Add:
  case K::Sub: break;
  case K::Mul:
    if (loopA && loopB)
      return false;
    break;
  default:
    if (loopA || loopB)
      return false;
    break;
  }
  vars->insert(a.begin(), a.end());
  vars->insert(b.begin(), b.end());
  return true;
}

struct Affine {
  int64_t base = 0;
  std::vector<int64_t> batch; // per batch loop
  int64_t m = 0, n = 0, k = 0;
};

// Linear element offset of a load at the given loop point.
int64_t offsetAt(const sir::Kernel &kern, const sir::Instr &load, const int64_t *symbols, const int64_t *par,
                 int64_t r0) {
  const sir::Operand &op = kern.operands[load.operand];
  int64_t offset = 0, stride = 1;
  int64_t inner[1] = {r0};
  for (size_t d = op.shape.size(); d-- > 0;) {
    offset += sir::evalIndex(load.index[d], symbols, par, inner, nullptr) * stride;
    stride *= sir::evalIndex(op.shape[d], symbols, nullptr, nullptr, nullptr);
  }
  return offset;
}

// Coefficients by evaluation at the origin and unit offsets (exact for an
// affine map).
Affine coefficients(const sir::Kernel &kern, const sir::Instr &load, const int64_t *symbols, size_t nb) {
  std::vector<int64_t> par(nb + 2, 0);
  Affine a;
  a.base = offsetAt(kern, load, symbols, par.data(), 0);
  for (size_t d = 0; d < nb + 2; ++d) {
    par[d] = 1;
    int64_t v = offsetAt(kern, load, symbols, par.data(), 0) - a.base;
    par[d] = 0;
    if (d < nb)
      a.batch.push_back(v);
    else if (d == nb)
      a.m = v;
    else
      a.n = v;
  }
  a.k = offsetAt(kern, load, symbols, par.data(), 1) - a.base;
  return a;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 1023, bits;
  if (e == 31) {
    bits = sign | 0x7F800000u | (m << 13);
  } else if (e != 0) {
    bits = sign | ((e + 112) << 23) | (m << 13);
  } else if (m == 0) {
    bits = sign;
  } else { // subnormal: normalize
    e = 113;
    while (!(m & 1024)) {
      m <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((m & 1023) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// An operand read element-wise as f32; visit() hands a typed loader to a
// generic loop so each dtype gets its own (vectorizable) loop.
struct Source {
  const void *data;
  tessera_dtype_t dtype;
  template <typename Fn> void visit(Fn &&fn) const {
    switch (dtype) {
    case TESSERA_DTYPE_BF16: {
      const uint16_t *p = static_cast<const uint16_t *>(data);
      fn([p](int64_t i) {
        uint32_t bits = uint32_t(p[i]) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
      });
      break;
    }
    case TESSERA_DTYPE_F16: {
      const uint16_t *p = static_cast<const uint16_t *>(data);
      fn([p](int64_t i) { return halfToFloat(p[i]); });
      break;
    }
    default: {
      const float *p = static_cast<const float *>(data);
      fn([p](int64_t i) { return p[i]; });
      break;
    }
    }
  }
};

struct AlignedFree {
  void operator()(float *p) const { std::free(p); }
};
using FloatBuffer = std::unique_ptr<float[], AlignedFree>;

FloatBuffer allocateFloats(size_t n) {
  size_t bytes = (std::max<size_t>(n, 16) * sizeof(float) + 63) / 64 * 64;
  return FloatBuffer(static_cast<float *>(std::aligned_alloc(64, bytes)));
}

// library="onednn": the contraction through oneDNN into a dense f32 block,
// then the generated epilogue over row blocks in parallel. False (nothing
// written to the kernel's outputs) when oneDNN is absent or rejects it.
bool runLibraryGemm(const sir::Kernel &k, const GemmForm &form, const CompiledKernel &code, void **buffers,
                    const int64_t *scalars, ThreadPool &pool, unsigned threads, const std::vector<int64_t> &extent,
                    int64_t M, int64_t N, int64_t K, int64_t batches, const Affine &A, const Affine &B) {
  const size_t nb = form.batchDims;
  if (double(batches) * double(M) * double(N) * 4.0 > double(1ull << 30))
    return false;
  LibraryGemm g;
  g.m = M;
  g.n = N;
  g.k = K;
  g.a = buffers[form.aOperand];
  g.b = buffers[form.bOperand];
  g.aType = k.operands[form.aOperand].dtype;
  g.bType = k.operands[form.bOperand].dtype;
  g.aStrideM = A.m;
  g.aStrideK = A.k;
  g.bStrideK = B.k;
  g.bStrideN = B.n;
  std::vector<int64_t> coords(nb + 1, 0);
  for (int64_t flat = 0; flat < batches; ++flat) {
    for (size_t d = nb, rest = size_t(flat); d-- > 0;) {
      coords[d] = int64_t(rest) % extent[d];
      rest /= size_t(extent[d]);
    }
    int64_t ao = A.base, bo = B.base;
    for (size_t d = 0; d < nb; ++d) {
      ao += A.batch[d] * coords[d];
      bo += B.batch[d] * coords[d];
    }
    g.aOffset.push_back(ao);
    g.bOffset.push_back(bo);
  }
  FloatBuffer c = allocateFloats(size_t(batches * M * N));
  std::string why;
  if (!c || !oneDnnMatmul(g, c.get(), threads, &why))
    return false;
  constexpr int64_t kRows = 32;
  const int64_t rowBlocks = (M + kRows - 1) / kRows;
  pool.parallelFor(batches * rowBlocks, threads, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> at(nb + 1, 0);
    for (int64_t t = begin; t < end; ++t) {
      int64_t batch = t / rowBlocks, m0 = (t % rowBlocks) * kRows, m1 = std::min(M, m0 + kRows);
      for (int64_t d = int64_t(nb), rest = batch; d-- > 0;) {
        at[size_t(d)] = rest % extent[size_t(d)];
        rest /= extent[size_t(d)];
      }
      code.epilogue(buffers, scalars, at.data(), m0, m1, 0, N, c.get() + (batch * M + m0) * N, N);
    }
  });
  return true;
}

// A rows x cols operand with strides (sRow, sCol) in BLAS row-major form:
// unit column stride (*trans false, leading dimension the row stride) or
// unit row stride (stored transposed, leading dimension the column
// stride); a leading dimension must cover the other side, which rules out
// broadcasts (stride 0) and overlapping rows.
bool blasOperand(int64_t rows, int64_t cols, int64_t sRow, int64_t sCol, int64_t *ld, bool *trans) {
  if ((sCol == 1 || cols == 1) && (rows == 1 || sRow >= cols)) {
    *ld = rows == 1 ? std::max<int64_t>(cols, 1) : sRow;
    *trans = false;
    return true;
  }
  if ((sRow == 1 || rows == 1) && (cols == 1 || sCol >= rows)) {
    *ld = cols == 1 ? std::max<int64_t>(rows, 1) : sCol;
    *trans = true;
    return true;
  }
  return false;
}

struct Problem {
  std::vector<int64_t> extent; // parallel loop extents
  int64_t M = 0, N = 0, K = 0, batches = 1;
  Affine A, B;
};

Problem problemAt(const sir::Kernel &k, const GemmForm &form, const int64_t *scalars) {
  Problem p;
  const size_t nb = form.batchDims;
  for (const sir::IndexExpr &e : k.parallel)
    p.extent.push_back(std::max<int64_t>(0, sir::evalIndex(e, scalars, nullptr, nullptr, nullptr)));
  p.M = p.extent[nb];
  p.N = p.extent[nb + 1];
  p.K = std::max<int64_t>(0, sir::evalIndex(k.stages[0].inner[0], scalars, nullptr, nullptr, nullptr));
  for (size_t d = 0; d < nb; ++d)
    p.batches *= p.extent[d];
  p.A = coefficients(k, k.stages[0].body[form.aLoad], scalars, nb);
  p.B = coefficients(k, k.stages[0].body[form.bLoad], scalars, nb);
  return p;
}

// True when the rows of `x` (an operand indexed by batch and m, at row
// stride x.m) continue from one batch into the next: each batch dim's
// stride is M rows times the batches below it.
bool rowsContinue(const Affine &x, const Problem &p, size_t nb) {
  int64_t stride = x.m * p.M;
  for (size_t d = nb; d-- > 0;) {
    if (p.extent[d] > 1 && x.batch[d] != stride)
      return false;
    stride *= p.extent[d];
  }
  return true;
}

// The output oneDNN writes itself: when the epilogue is one unmasked f32
// store of the product at an affine index in BLAS row-major layout (unit
// stride along n, rows at least N apart), sgemm stores straight into it (no
// f32 block, no epilogue pass). Its operand index, or -1.
int64_t directOutput(const sir::Kernel &k, const GemmForm &form, const int64_t *scalars, const Problem &p, Affine *c) {
  if (k.stages.size() != 2 || !k.stages[1].inner.empty() || k.stages[1].body.size() != 1)
    return -1;
  const sir::Instr &st = k.stages[1].body[0];
  if (!st.isStore || st.mask || st.args.size() != 1 || st.args[0] != form.result ||
      k.stages[0].body[3].dtype != TESSERA_DTYPE_F32 || st.operand < 0 || size_t(st.operand) >= k.operands.size() ||
      k.operands[size_t(st.operand)].dtype != TESSERA_DTYPE_F32)
    return -1;
  std::set<Var> vars;
  for (const sir::IndexExpr &e : st.index)
    if (!affine(e, &vars))
      return -1;
  for (const Var &v : vars)
    if (v.first != sir::IndexExpr::Kind::Parallel)
      return -1;
  *c = coefficients(k, st, scalars, form.batchDims);
  if (c->n != 1 || c->m < std::max<int64_t>(p.N, 1))
    return -1;
  return st.operand;
}

// True when the batches of a BLAS-layout problem can run as one product of
// batches * M rows: B is shared by every batch and the rows of A (not
// transposed) and of the directly written output, if any, continue from one
// batch into the next, so oneDNN packs each B block once instead of once
// per batch.
bool foldsBatches(const Problem &p, size_t nb, const Affine *direct) {
  // Rows at stride A.m: what blasOperand made the leading dimension.
  if (nb == 0 || p.batches <= 1 || p.A.k != 1 || p.M < 2 || p.A.m < p.K)
    return false;
  for (size_t d = 0; d < nb; ++d)
    if (p.B.batch[d] != 0)
      return false;
  return rowsContinue(p.A, p, nb) && (!direct || rowsContinue(*direct, p, nb));
}

// The OneDnnBlas engine: dnnl_sgemm on each (batch, MC-row, NC-column) block
// of the output into a per-thread f32 block, then the generated epilogue over
// that block while it is in cache (as the generated driver's tasks do).
// Operands are read in place: no packing buffers of ours. False (nothing
// written) when the layouts are not BLAS ones or oneDNN refuses.
bool runBlasGemm(const sir::Kernel &k, const GemmForm &form, const CompiledKernel &code, void **buffers,
                 const int64_t *scalars, ThreadPool &pool, unsigned threads, const Problem &p) {
  const size_t nb = form.batchDims;
  BlasGemm g;
  if (p.K == 0 || k.operands[form.aOperand].dtype != TESSERA_DTYPE_F32 ||
      k.operands[form.bOperand].dtype != TESSERA_DTYPE_F32 || !blasOperand(p.M, p.K, p.A.m, p.A.k, &g.lda, &g.aTrans) ||
      !blasOperand(p.K, p.N, p.B.k, p.B.n, &g.ldb, &g.bTrans))
    return false;
  Affine c;
  const int64_t direct = directOutput(k, form, scalars, p, &c);
  float *out = direct >= 0 ? static_cast<float *>(buffers[direct]) : nullptr;
  // Folded, the blocks run over batches * M rows in one "batch".
  const bool fold = foldsBatches(p, nb, direct >= 0 ? &c : nullptr);
  const int64_t rows = fold ? p.batches * p.M : p.M, groups = fold ? 1 : p.batches;
  const LibraryBlocking blocks = libraryBlocking(rows, p.N, groups, threads);
  const int64_t mBlocks = (rows + blocks.mc - 1) / blocks.mc, nBlocks = (p.N + blocks.nc - 1) / blocks.nc;
  const float *a = static_cast<const float *>(buffers[form.aOperand]);
  const float *b = static_cast<const float *>(buffers[form.bOperand]);
  std::atomic<bool> failed{false}, wrote{false};
  pool.parallelFor(groups * mBlocks * nBlocks, threads, 1, [&](int64_t begin, int64_t end) {
    thread_local FloatBuffer scratch;
    thread_local size_t scratchSize = 0;
    const size_t need = out ? 0 : size_t(blocks.mc * blocks.nc);
    if (scratchSize < need) {
      scratch = allocateFloats(need);
      scratchSize = scratch ? need : 0;
    }
    if (need && !scratch) {
      failed = true;
      return;
    }
    std::vector<int64_t> coords(nb + 1, 0);
    auto setCoords = [&](int64_t flat) {
      for (int64_t d = int64_t(nb); d-- > 0;) {
        coords[size_t(d)] = flat % p.extent[size_t(d)];
        flat /= p.extent[size_t(d)];
      }
    };
    for (int64_t t = begin; t < end && !failed; ++t) {
      const int64_t group = t / (mBlocks * nBlocks), rest = t % (mBlocks * nBlocks);
      const int64_t ic = (rest / nBlocks) * blocks.mc, jc = (rest % nBlocks) * blocks.nc;
      setCoords(group);
      int64_t ao = p.A.base, bo = p.B.base, co = c.base;
      for (size_t d = 0; d < nb && !fold; ++d) {
        ao += p.A.batch[d] * coords[d];
        bo += p.B.batch[d] * coords[d];
        co += out ? c.batch[d] * coords[d] : 0;
      }
      BlasGemm blk = g;
      blk.m = std::min(blocks.mc, rows - ic);
      blk.n = std::min(blocks.nc, p.N - jc);
      blk.k = p.K;
      blk.a = a + ao + ic * p.A.m;
      blk.b = b + bo + jc * p.B.n;
      std::string why;
      if (!(out ? oneDnnSgemmSerial(blk, out + co + ic * c.m + jc, c.m, &why)
                : oneDnnSgemmSerial(blk, scratch.get(), blk.n, &why))) {
        failed = true;
        return;
      }
      wrote = true;
      if (out)
        continue;
      if (!fold) {
        code.epilogue(buffers, scalars, coords.data(), ic, ic + blk.m, jc, jc + blk.n, scratch.get(), blk.n);
        continue;
      }
      // The epilogue indexes (batch, m): one call per batch the rows cross.
      for (int64_t r = ic; r < ic + blk.m;) {
        const int64_t batch = r / p.M, m0 = r % p.M, m1 = std::min(p.M, m0 + (ic + blk.m - r));
        setCoords(batch);
        code.epilogue(buffers, scalars, coords.data(), m0, m1, jc, jc + blk.n, scratch.get() + (r - ic) * blk.n, blk.n);
        r += m1 - m0;
      }
    }
  });
  // oneDNN checks the same argument kinds for every block, so it refuses
  // all of them or none: then nothing was written and the caller falls back.
  // A failure after some epilogue ran is oneDNN or us running out of memory:
  // recomputing is no option then (an output may share its buffer with an
  // input it already overwrote, core/runtime/BufferPlan.cpp), so report it.
  if (failed && wrote)
    throw std::bad_alloc();
  return !failed;
}

} // namespace

LibraryBlocking libraryBlocking(int64_t M, int64_t N, int64_t batches, unsigned threads) {
  LibraryBlocking b{std::max<int64_t>(1, M), std::max<int64_t>(1, N)};
  const int64_t wanted = threads > 1 ? 2 * int64_t(threads) : 1;
  auto blocks = [&] { return std::max<int64_t>(1, batches) * ((M + b.mc - 1) / b.mc) * ((N + b.nc - 1) / b.nc); };
  while (b.mc * b.nc > kLibraryBlockElems || blocks() < wanted) {
    // Halving N repeats A's packing inside oneDNN per block, halving M
    // repeats B's: split the longer side.
    const bool canN = b.nc > 16, canM = b.mc > 8;
    if (canN && (b.nc >= b.mc || !canM))
      b.nc = (b.nc / 2 + 15) / 16 * 16;
    else if (canM)
      b.mc = (b.mc / 2 + 7) / 8 * 8;
    else
      break;
  }
  return b;
}

GemmEngine chooseGemmEngine(const sir::Kernel &k, const GemmForm &form, const int64_t *scalars, LibraryShape *shape) {
  const std::string library = k.knobString("library");
  if (!oneDnnBuilt() || library == "none" || library == "generic")
    return GemmEngine::Generated;
  const Problem p = problemAt(k, form, scalars);
  if (shape) {
    Affine c;
    const bool direct = directOutput(k, form, scalars, p, &c) >= 0;
    const bool fold = foldsBatches(p, form.batchDims, direct ? &c : nullptr);
    shape->m = fold ? p.batches * p.M : p.M;
    shape->n = p.N;
    shape->batches = fold ? 1 : p.batches;
    shape->direct = direct;
  }
  int64_t ld;
  bool trans;
  const bool blas = p.K > 0 && k.operands[form.aOperand].dtype == TESSERA_DTYPE_F32 &&
                    k.operands[form.bOperand].dtype == TESSERA_DTYPE_F32 &&
                    blasOperand(p.M, p.K, p.A.m, p.A.k, &ld, &trans) &&
                    blasOperand(p.K, p.N, p.B.k, p.B.n, &ld, &trans);
  if (library == "onednn")
    return blas ? GemmEngine::OneDnnBlas : GemmEngine::OneDnnMatmul;
  if (!library.empty() || k.knobs.count("mc") || k.knobs.count("kc") || k.knobs.count("nc"))
    return GemmEngine::Generated;
  const double flops = 2.0 * double(p.batches) * double(p.M) * double(p.N) * double(p.K);
  return blas && flops >= kLibraryMinFlops ? GemmEngine::OneDnnBlas : GemmEngine::Generated;
}

bool matchGemmForm(const sir::Kernel &k, GemmForm *form, std::string *why) {
  auto fail = [&](const std::string &w) {
    if (why)
      *why = w;
    return false;
  };
  if (k.kind != sir::Kernel::Kind::Matmul)
    return fail("not a matmul kernel");
  if (k.parallel.size() < 2 || k.stages.empty() || k.stages[0].kind != sir::Stage::Kind::Reduce ||
      k.stages[0].inner.size() != 1 || k.stages[0].body.size() != 4)
    return fail("not the canonical matmul form");
  const auto &body = k.stages[0].body;
  const sir::Instr &l0 = body[0], &l1 = body[1], &mul = body[2], &red = body[3];
  if (l0.op != sir::Op::Load || l1.op != sir::Op::Load || mul.op != sir::Op::Mul || red.op != sir::Op::Reduce ||
      red.reduce != sir::ReduceKind::Sum || red.args.size() != 1 || red.args[0] != mul.result ||
      mul.args.size() != 2)
    return fail("not the canonical matmul form");
  std::set<int64_t> mulArgs(mul.args.begin(), mul.args.end());
  if (mulArgs != std::set<int64_t>{l0.result, l1.result})
    return fail("the mul does not multiply the two loads");
  // f16/bf16 inputs are widened while packing: their products are exact in
  // f32 and the sum accumulates in f32, as in the generic lowering (narrow
  // values are computed in f32 and rounded only on store or cast).
  auto packable = [](tessera_dtype_t d) {
    return d == TESSERA_DTYPE_F32 || d == TESSERA_DTYPE_BF16 || d == TESSERA_DTYPE_F16;
  };
  for (const sir::Instr *in : {&l0, &l1, &mul, &red})
    if (!packable(in->dtype))
      return fail("the GEMM path handles f32, bf16 and f16 only");
  if (l0.mask || l1.mask)
    return fail("masked loads in the contraction");
  if (!packable(k.operands[l0.operand].dtype) || !packable(k.operands[l1.operand].dtype))
    return fail("the GEMM path handles f32, bf16 and f16 operands only");

  const size_t nb = k.parallel.size() - 2;
  using K = sir::IndexExpr::Kind;
  const Var pm{K::Parallel, static_cast<int64_t>(nb)}, pn{K::Parallel, static_cast<int64_t>(nb + 1)};
  auto classify = [&](const sir::Instr &load, std::set<Var> *vars) {
    for (const sir::IndexExpr &e : load.index)
      if (!affine(e, vars))
        return false;
    return true;
  };
  std::set<Var> v0, v1;
  if (!classify(l0, &v0) || !classify(l1, &v1))
    return fail("an index map is not affine");
  const sir::Instr *a = nullptr, *b = nullptr;
  if (!v0.count(pn) && !v1.count(pm)) {
    a = &l0;
    b = &l1;
  } else if (!v1.count(pn) && !v0.count(pm)) {
    a = &l1;
    b = &l0;
  } else {
    return fail("A must not depend on n and B not on m");
  }
  form->aOperand = a->operand;
  form->bOperand = b->operand;
  form->aLoad = a == &l0 ? 0 : 1;
  form->bLoad = a == &l0 ? 1 : 0;
  form->result = red.result;
  form->batchDims = nb;
  return true;
}

GemmBlocking launchBlocking(const GemmBlocking &blocking, int64_t M, int64_t N, int64_t batches, int64_t MR,
                            int64_t NR, unsigned threads) {
  GemmBlocking b;
  b.mc = std::max<int64_t>(MR, blocking.mc / MR * MR);
  b.nc = std::max<int64_t>(NR, blocking.nc / NR * NR);
  b.kc = std::max<int64_t>(1, blocking.kc);
  int64_t mBlocks = (M + b.mc - 1) / b.mc, nBlocks = (N + b.nc - 1) / b.nc;
  // Small problems (one 128 x 512 block for a projection at batch 1) would
  // leave threads idle: halve NC, then MC, until every thread has at least
  // two blocks (or the blocks are one register block).
  const int64_t wanted = 2 * int64_t(std::max(1u, threads));
  while (threads > 1 && batches * mBlocks * nBlocks < wanted && (b.nc > NR || b.mc > MR)) {
    if (b.nc > NR && nBlocks * 2 <= (N + NR - 1) / NR)
      b.nc = std::max<int64_t>(NR, (b.nc / 2 + NR - 1) / NR * NR);
    else if (b.mc > MR)
      b.mc = std::max<int64_t>(MR, (b.mc / 2 + MR - 1) / MR * MR);
    else
      break;
    mBlocks = (M + b.mc - 1) / b.mc;
    nBlocks = (N + b.nc - 1) / b.nc;
  }
  return b;
}

bool runGemm(const sir::Kernel &k, const GemmForm &form, const CompiledKernel &code, void **buffers,
             const int64_t *scalars, size_t numSymbols, ThreadPool &pool, unsigned threads,
             const GemmBlocking &blocking) {
  const size_t nb = form.batchDims;
  std::vector<int64_t> extent;
  for (const sir::IndexExpr &e : k.parallel)
    extent.push_back(std::max<int64_t>(0, sir::evalIndex(e, scalars, nullptr, nullptr, nullptr)));
  const int64_t M = extent[nb], N = extent[nb + 1];
  const int64_t K = std::max<int64_t>(0, sir::evalIndex(k.stages[0].inner[0], scalars, nullptr, nullptr, nullptr));
  int64_t batches = 1;
  for (size_t d = 0; d < nb; ++d)
    batches *= extent[d];
  if (M == 0 || N == 0 || batches == 0)
    return true;
  // Less work than one tile of the loop kernels (chooseTiles, CpuPlugin.cpp):
  // the calling thread alone, since waking the pool costs more than it saves.
  if (double(batches) * double(M) * double(N) * double(std::max<int64_t>(K, 1)) <= 65536.0)
    threads = 1;
  const int64_t MR = code.mr, NR = code.nr;
  const sir::Instr &aLoad = k.stages[0].body[form.aLoad], &bLoad = k.stages[0].body[form.bLoad];
  const Affine A = coefficients(k, aLoad, scalars, nb);
  const Affine B = coefficients(k, bLoad, scalars, nb);
  const bool aBatched = std::any_of(A.batch.begin(), A.batch.end(), [](int64_t c) { return c != 0; });
  const bool bBatched = std::any_of(B.batch.begin(), B.batch.end(), [](int64_t c) { return c != 0; });
  const int64_t aCopies = aBatched ? batches : 1, bCopies = bBatched ? batches : 1;
  const int64_t mSlivers = (M + MR - 1) / MR, nSlivers = (N + NR - 1) / NR;
  const int64_t MP = mSlivers * MR, NP = nSlivers * NR;
  const int64_t Kp = std::max<int64_t>(K, 1);
  switch (chooseGemmEngine(k, form, scalars)) {
  case GemmEngine::OneDnnBlas:
    if (runBlasGemm(k, form, code, buffers, scalars, pool, threads, problemAt(k, form, scalars)))
      return true;
    break;
  case GemmEngine::OneDnnMatmul:
    if (runLibraryGemm(k, form, code, buffers, scalars, pool, threads, extent, M, N, K, batches, A, B))
      return true;
    break;
  case GemmEngine::Generated: break;
  }
  // Output blocks: MC x NC, KC-deep panels.
  const GemmBlocking blocks = launchBlocking(blocking, M, N, batches, MR, NR, threads);
  const int64_t MC = blocks.mc, NC = blocks.nc, KC = blocks.kc;
  const int64_t mBlocks = (M + MC - 1) / MC, nBlocks = (N + NC - 1) / NC;
  const int64_t tasks = batches * mBlocks * nBlocks;
  // A batched A whose row blocks each feed one task (one column block) is
  // packed by that task just before use (in cache, no whole-A buffer);
  // otherwise all of A is packed once up front.
  const bool packAInTask = aBatched && nBlocks == 1;
  // Packing holds all of A and B once; beyond 1 GiB use the loop nest.
  const double packBytes = 4.0 * ((packAInTask ? 0.0 : double(aCopies) * MP * Kp) + double(bCopies) * NP * Kp);
  if (packBytes > double(1ull << 30))
    return false;
  FloatBuffer ap = allocateFloats(packAInTask ? 1 : size_t(aCopies * MP * Kp));
  FloatBuffer bp = allocateFloats(size_t(bCopies * NP * Kp));
  if (!ap || !bp)
    return false;

  auto batchCoords = [&](int64_t flat, int64_t *coords) {
    for (size_t d = nb; d-- > 0;) {
      coords[d] = flat % extent[d];
      flat /= extent[d];
    }
  };
  auto batchOffset = [&](const Affine &aff, const int64_t *coords) {
    int64_t off = aff.base;
    for (size_t d = 0; d < nb; ++d)
      off += aff.batch[d] * coords[d];
    return off;
  };
  const Source aSrc{buffers[form.aOperand], k.operands[form.aOperand].dtype};
  const Source bSrc{buffers[form.bOperand], k.operands[form.bOperand].dtype};

  // Phase 1: pack. A slivers are [k][MR] (rows m..m+MR), B slivers [k][NR];
  // padding rows/columns are zero so every micro-kernel call is full.
  // One A sliver (rows s*MR.. of the copy at element offset `off`) as [k][MR].
  auto packA = [&](int64_t off, int64_t s, float *dst) {
    // k in blocks so the strided writes of a block stay in L1.
    constexpr int64_t kBlock = 128;
    for (int64_t kb = 0; kb < K; kb += kBlock) {
      const int64_t ke = std::min(K, kb + kBlock);
      for (int64_t i = 0; i < MR; ++i) {
        int64_t m = s * MR + i;
        if (m >= M) {
          for (int64_t kk = kb; kk < ke; ++kk)
            dst[kk * MR + i] = 0.0f;
          continue;
        }
        const int64_t row = off + A.m * m;
        aSrc.visit([&](auto load) {
          for (int64_t kk = kb; kk < ke; ++kk)
            dst[kk * MR + i] = load(row + A.k * kk);
        });
      }
    }
  };
  const int64_t aTasks = packAInTask ? 0 : aCopies * mSlivers;
  const int64_t packTasks = aTasks + bCopies * nSlivers;
  pool.parallelFor(packTasks, threads, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> coords(nb + 1, 0);
    for (int64_t t = begin; t < end; ++t) {
      if (t < aTasks) {
        int64_t copy = t / mSlivers, s = t % mSlivers;
        batchCoords(copy, coords.data());
        packA(batchOffset(A, coords.data()), s, ap.get() + (copy * MP + s * MR) * Kp);
      } else {
        int64_t u = t - aTasks;
        int64_t copy = u / nSlivers, s = u % nSlivers;
        batchCoords(copy, coords.data());
        const int64_t off = batchOffset(B, coords.data());
        float *dst = bp.get() + (copy * NP + s * NR) * Kp;
        const int64_t n0 = s * NR, valid = std::min<int64_t>(NR, N - n0);
        if (B.k == 1 && B.n != 1) {
          // A transposed B (a weight read as [N, K]): columns are contiguous
          // runs of k, so read along k and transpose through L1 in k blocks
          // (as packA) instead of gathering NR strided values per k.
          constexpr int64_t kBlock = 128;
          for (int64_t kb = 0; kb < K; kb += kBlock) {
            const int64_t ke = std::min(K, kb + kBlock);
            bSrc.visit([&](auto load) {
              for (int64_t j = 0; j < valid; ++j) {
                const int64_t col = off + B.n * (n0 + j);
                for (int64_t kk = kb; kk < ke; ++kk)
                  dst[kk * NR + j] = load(col + kk);
              }
            });
            for (int64_t kk = kb; kk < ke; ++kk)
              for (int64_t j = valid; j < NR; ++j)
                dst[kk * NR + j] = 0.0f;
          }
        } else {
          for (int64_t kk = 0; kk < K; ++kk) {
            const int64_t first = off + B.k * kk + B.n * n0;
            float *row = dst + kk * NR;
            if (B.n == 1 && bSrc.dtype == TESSERA_DTYPE_F32) {
              std::memcpy(row, static_cast<const float *>(bSrc.data) + first, size_t(valid) * sizeof(float));
            } else {
              bSrc.visit([&](auto load) {
                for (int64_t j = 0; j < valid; ++j)
                  row[j] = load(first + B.n * j);
              });
            }
            for (int64_t j = valid; j < NR; ++j)
              row[j] = 0.0f;
          }
        }
      }
    }
  });

  pool.parallelFor(tasks, threads, 1, [&](int64_t begin, int64_t end) {
    thread_local FloatBuffer scratch;
    thread_local size_t scratchSize = 0;
    const size_t need = size_t(MC * NC);
    if (scratchSize < need) {
      scratch = allocateFloats(need);
      scratchSize = scratch ? need : 0;
    }
    thread_local FloatBuffer aScratch;
    thread_local size_t aScratchSize = 0;
    const size_t aNeed = packAInTask ? size_t(((MC + MR - 1) / MR * MR) * Kp) : 0;
    if (aScratchSize < aNeed) {
      aScratch = allocateFloats(aNeed);
      aScratchSize = aScratch ? aNeed : 0;
    }
    float *c = scratch.get();
    if (!c || (packAInTask && !aScratch))
      return; // unreachable in practice: allocations of a few hundred KiB
    std::vector<int64_t> coords(nb + 1, 0);
    for (int64_t t = begin; t < end; ++t) {
      int64_t batch = t / (mBlocks * nBlocks), rest = t % (mBlocks * nBlocks);
      int64_t ic = (rest / nBlocks) * MC, jc = (rest % nBlocks) * NC;
      int64_t mc = std::min(MC, M - ic), nc = std::min(NC, N - jc);
      int64_t mcp = (mc + MR - 1) / MR * MR, ncp = (nc + NR - 1) / NR * NR;
      const int64_t ldc = ncp;
      const float *aBlock = ap.get() + ((aBatched ? batch : 0) * MP + ic) * Kp;
      if (packAInTask) {
        batchCoords(batch, coords.data());
        const int64_t off = batchOffset(A, coords.data());
        for (int64_t ir = 0; ir < mcp; ir += MR)
          packA(off, (ic + ir) / MR, aScratch.get() + ir * Kp);
        aBlock = aScratch.get();
      }
      const float *bBase = bp.get() + (bBatched ? batch : 0) * NP * Kp;
      if (K == 0)
        std::memset(c, 0, size_t(mcp * ldc) * sizeof(float));
      for (int64_t pc = 0; pc < K; pc += KC) {
        int64_t kc = std::min(KC, K - pc);
        for (int64_t ir = 0; ir < mcp; ir += MR) {
          const float *a = aBlock + ir * Kp + pc * MR;
          for (int64_t jr = 0; jr < ncp; jr += NR) {
            const float *b = bBase + (jc + jr) * Kp + pc * NR;
            code.micro(kc, a, b, c + ir * ldc + jr, ldc, pc > 0);
          }
        }
      }
      batchCoords(batch, coords.data());
      code.epilogue(buffers, scalars, coords.data(), ic, ic + mc, jc, jc + nc, c, ldc);
    }
  });
  (void)numSymbols;
  return true;
}

} // namespace tessera::cpu
