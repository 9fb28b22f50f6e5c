#include "CublasLt.h"
#include "SymbolLoader.h"

#include "CudaCodegen.h"
#include "Nvrtc.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <type_traits>

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define TESSERA_HAVE_CUBLASLT_H 1
#endif

namespace tessera::cuda {

using namespace tessera::schedule;
using K = IndexExpr::Kind;

LibraryChoice libraryChoice(const Kernel &k) {
  std::string lib = k.knobString("library");
  if (lib.empty() || lib == "auto")
    return LibraryChoice::Auto;
  if (lib == "cublaslt" || lib == "cublas")
    return LibraryChoice::Force;
  return LibraryChoice::Never;
}

// ---- Schedule IR analysis ------------------------------------------------------

namespace {

bool allAffine(const Instr &in) {
  for (const IndexExpr &e : in.index)
    if (!affineIndex(e))
      return false;
  return true;
}

bool libraryDtype(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_BF16 || d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_F32;
}

// The epilogue as cuBLASLt's D = alpha * acc + beta * C: every value of
// stage 1 classified, the one store checked.
void planDirect(const Kernel &k, const Instr &red, LibraryPlan *p) {
  auto notDirect = [&](const std::string &why) {
    p->direct = false;
    p->notDirect = why;
  };
  if (k.stages.size() != 2 || k.stages[1].kind != Stage::Kind::Map || !k.stages[1].inner.empty())
    return notDirect("the epilogue is not one map stage without loops");
  enum class V { Acc, Scaled, Residual, Const, Sum, Other };
  struct Val {
    V kind = V::Other;
    float c = 1.f;    // Const value / Scaled alpha
    size_t instr = 0; // Residual load
  };
  std::map<int64_t, Val> vals;
  vals[red.result] = {V::Acc, 1.f, 0};
  const Stage &s = k.stages[1];
  const Instr *store = nullptr;
  size_t storeIdx = 0;
  for (size_t i = 0; i < s.body.size(); ++i) {
    const Instr &in = s.body[i];
    if (in.isStore) {
      if (store)
        return notDirect("more than one store");
      store = &in;
      storeIdx = i;
      continue;
    }
    Val v;
    auto arg = [&](size_t a) {
      auto it = vals.find(in.args[a]);
      return it == vals.end() ? Val{} : it->second;
    };
    if (in.dtype != TESSERA_DTYPE_F32)
      return notDirect("an epilogue value is not f32 (rounded in between)");
    switch (in.op) {
    case Op::Load:
      if (in.mask || k.operands[in.operand].role == OperandRole::Out || !allAffine(in) ||
          !libraryDtype(k.operands[in.operand].dtype))
        return notDirect("an epilogue load is masked, not affine or not bf16/f16/f32");
      v = {V::Residual, 1.f, i};
      break;
    case Op::Const:
      v = {V::Const, static_cast<float>(in.constant), 0};
      break;
    case Op::Cast:
      v = arg(0);
      break; // f32 -> f32
    case Op::Mul: {
      Val a = arg(0), b = arg(1);
      if (a.kind == V::Acc && b.kind == V::Const)
        v = {V::Scaled, b.c, 0};
      else if (b.kind == V::Acc && a.kind == V::Const)
        v = {V::Scaled, a.c, 0};
      break;
    }
    case Op::Add: {
      Val a = arg(0), b = arg(1);
      if ((a.kind == V::Acc || a.kind == V::Scaled) && b.kind == V::Residual)
        v = {V::Sum, a.c, b.instr};
      else if ((b.kind == V::Acc || b.kind == V::Scaled) && a.kind == V::Residual)
        v = {V::Sum, b.c, a.instr};
      break;
    }
    default:
      break;
    }
    vals[in.result] = v;
  }
  if (!store)
    return notDirect("no store");
  const Operand &out = k.operands[store->operand];
  if (!allAffine(*store) || !libraryDtype(out.dtype))
    return notDirect("the output is not affine or not bf16/f16/f32");
  auto it = vals.find(store->args[0]);
  Val v = it == vals.end() ? Val{} : it->second;
  // The reduce value itself is stored: rounding to its dtype first is the
  // same as rounding to the output's once (or it is f32).
  if (v.kind == V::Acc && !(red.dtype == TESSERA_DTYPE_F32 || red.dtype == out.dtype))
    return notDirect("the reduce value is rounded to another dtype before the store");
  if (v.kind != V::Acc && red.dtype != TESSERA_DTYPE_F32)
    return notDirect("the reduce value is not f32");
  if (v.kind != V::Acc && v.kind != V::Scaled && v.kind != V::Sum)
    return notDirect("the epilogue is not [alpha *] acc [+ residual]");
  // cuBLASLt's types: bf16 in -> bf16|f32 out, f16 -> f16|f32, f32 -> f32;
  // C has D's type.
  bool outOk = out.dtype == TESSERA_DTYPE_F32 ? true : out.dtype == p->input;
  if (p->input == TESSERA_DTYPE_F32 && out.dtype != TESSERA_DTYPE_F32)
    outOk = false;
  if (!outOk)
    return notDirect("cuBLASLt has no such input/output dtype pair");
  if (v.kind == V::Sum && k.operands[s.body[v.instr].operand].dtype != out.dtype)
    return notDirect("the residual's dtype differs from the output's");
  if (v.kind == V::Sum && k.operands[s.body[v.instr].operand].role == OperandRole::InOut &&
      s.body[v.instr].operand != store->operand)
    return notDirect("the residual is written by the kernel");
  p->direct = true;
  p->outOperand = store->operand;
  p->outInstr = storeIdx;
  p->alpha = v.kind == V::Acc ? 1.f : v.c;
  if (v.kind == V::Sum) {
    p->residualOperand = s.body[v.instr].operand;
    p->residualInstr = v.instr;
  }
}

// LibraryPlan::narrow: one map stage without loops, one store of the
// inputs' narrow dtype to an Out operand at [p0, ..., pn] over a shape equal
// to the parallel extents (dense, parallel-point order), and loads only of
// operands shaped unlike the output (so none can share its buffer: the
// runtime's in-place reuse needs equal shapes).
void planNarrow(const Kernel &k, LibraryPlan *p) {
  if (p->direct || p->input == TESSERA_DTYPE_F32 || k.stages.size() != 2 ||
      k.stages[1].kind != Stage::Kind::Map || !k.stages[1].inner.empty())
    return;
  const Stage &s = k.stages[1];
  const Instr *store = nullptr;
  size_t storeIdx = 0;
  for (size_t i = 0; i < s.body.size(); ++i)
    if (s.body[i].isStore) {
      if (store)
        return;
      store = &s.body[i];
      storeIdx = i;
    }
  if (!store || store->mask)
    return;
  const Operand &out = k.operands[store->operand];
  if (out.role != OperandRole::Out || out.dtype != p->input || out.shape.size() != k.parallel.size() ||
      store->index.size() != k.parallel.size() || !(out.shape == k.parallel))
    return;
  for (size_t d = 0; d < store->index.size(); ++d) {
    const IndexExpr &e = store->index[d];
    if (e.kind != IndexExpr::Kind::Parallel || e.value != static_cast<int64_t>(d))
      return;
  }
  for (const Instr &in : s.body)
    if (!in.isStore && in.op == Op::Load && (in.operand == store->operand || k.operands[in.operand].shape == out.shape))
      return;
  p->narrow = true;
  p->narrowOperand = store->operand;
  p->narrowInstr = storeIdx;
}

} // namespace

LibraryPlan planLibrary(const Kernel &k) {
  LibraryPlan p;
  auto no = [&](const std::string &why) {
    p.usable = false;
    p.why = why;
    return p;
  };
  if (k.kind != Kernel::Kind::Matmul)
    return no("not a matmul kernel");
  if (k.parallel.size() < 2 || k.stages.empty() || k.stages[0].kind != Stage::Kind::Reduce ||
      k.stages[0].inner.size() != 1 || k.stages[0].body.size() != 4)
    return no("not the canonical matmul form");
  const Stage &s0 = k.stages[0];
  const Instr &l0 = s0.body[0], &l1 = s0.body[1], &mul = s0.body[2], &red = s0.body[3];
  if (l0.isStore || l1.isStore || l0.op != Op::Load || l1.op != Op::Load || mul.op != Op::Mul || red.op != Op::Reduce ||
      red.reduce != ReduceKind::Sum || red.args.size() != 1 || red.args[0] != mul.result || mul.args.size() != 2 ||
      !((mul.args[0] == l0.result && mul.args[1] == l1.result) ||
        (mul.args[0] == l1.result && mul.args[1] == l0.result)))
    return no("the contraction is not sum(load A * load B)");
  if (l0.mask || l1.mask)
    return no("masked operand loads");
  if (l0.dtype != TESSERA_DTYPE_F32 || l1.dtype != TESSERA_DTYPE_F32 || mul.dtype != TESSERA_DTYPE_F32 ||
      red.dtype == TESSERA_DTYPE_F64 ||
      !(red.dtype == TESSERA_DTYPE_F32 || red.dtype == TESSERA_DTYPE_BF16 || red.dtype == TESSERA_DTYPE_F16))
    return no("the contraction does not accumulate in f32");
  if (indexMentions(s0.inner[0], K::Parallel))
    return no("the K extent depends on a parallel loop");
  if (!allAffine(l0) || !allAffine(l1))
    return no("an operand index is not affine");
  const size_t np = k.parallel.size();
  const int64_t pm = static_cast<int64_t>(np - 2), pn = static_cast<int64_t>(np - 1);
  auto dependsOn = [](const Instr &in, int64_t loop) {
    for (const IndexExpr &e : in.index)
      if (indexMentions(e, K::Parallel, loop))
        return true;
    return false;
  };
  size_t a = 0, b = 1;
  if (!dependsOn(l0, pn) && !dependsOn(l1, pm)) {
    a = 0;
    b = 1;
  } else if (!dependsOn(l1, pn) && !dependsOn(l0, pm)) {
    a = 1;
    b = 0;
  } else {
    return no("A depends on the N loop or B on the M loop");
  }
  tessera_dtype_t ta = k.operands[s0.body[a].operand].dtype, tb = k.operands[s0.body[b].operand].dtype;
  if (ta != tb || !libraryDtype(ta))
    return no("operand dtypes are not bf16/bf16, f16/f16 or f32/f32");
  p.input = ta;
  p.tf32 = ta == TESSERA_DTYPE_F32 && k.knobInt("tf32", 0) == 1;
  p.aOperand = s0.body[a].operand;
  p.bOperand = s0.body[b].operand;
  p.aLoad = a;
  p.bLoad = b;
  p.usable = true;
  planDirect(k, red, &p);
  planNarrow(k, &p);
  return p;
}

// ---- the problem for concrete sizes ------------------------------------------------

namespace {

// Offset at zero and the coefficient of every parallel loop and of r0.
struct Affine {
  int64_t base = 0, k = 0;
  std::vector<int64_t> par;
};
Affine affineOf(const Kernel &k, const Instr &in, const int64_t *symbols) {
  const size_t np = k.parallel.size();
  std::vector<int64_t> zero(np, 0);
  Affine a;
  a.base = accessOffset(k, in, symbols, zero, 0);
  a.k = accessOffset(k, in, symbols, zero, 1) - a.base;
  a.par.resize(np);
  for (size_t i = 0; i < np; ++i) {
    std::vector<int64_t> u = zero;
    u[i] = 1;
    a.par[i] = accessOffset(k, in, symbols, u, 0) - a.base;
  }
  return a;
}

// Column-major rows x cols with the given strides (elements): rows unit
// stride (or one row), columns at least `rows` apart (or one column).
bool colMajor(uint64_t rows, uint64_t cols, int64_t rowStride, int64_t colStride, int64_t *ld) {
  if (rows > 1 && rowStride != 1)
    return false;
  if (cols > 1 && (colStride <= 0 || uint64_t(colStride) < rows))
    return false;
  *ld = cols > 1 ? colStride : int64_t(std::max<uint64_t>(rows, 1));
  return true;
}

} // namespace

bool libraryProblem(const Program &program, size_t kernel, const LibraryPlan &plan, const int64_t *symbols, bool direct,
                    LtProblem *out, std::string *why) {
  auto fail = [&](const std::string &w) {
    if (why)
      *why = w;
    return false;
  };
  const Kernel &k = program.kernels[kernel];
  if (!plan.usable)
    return fail(plan.why);
  if (direct && !plan.direct)
    return fail(plan.notDirect);
  const size_t np = k.parallel.size(), nb = np - 2;
  std::vector<int64_t> ext(np);
  for (size_t i = 0; i < np; ++i)
    ext[i] = std::max<int64_t>(0, evalIndex(k.parallel[i], symbols, nullptr, nullptr, nullptr));
  const int64_t M = ext[nb], N = ext[nb + 1];
  const int64_t Kd = std::max<int64_t>(0, evalIndex(k.stages[0].inner[0], symbols, nullptr, nullptr, nullptr));
  if (Kd == 0)
    return fail("K is 0");
  int64_t batchAll = 1;
  for (size_t i = 0; i < nb; ++i)
    batchAll *= ext[i];
  if (M == 0 || N == 0 || batchAll == 0)
    return fail("empty");
  const Instr &la = k.stages[0].body[plan.aLoad], &lb = k.stages[0].body[plan.bLoad];
  Affine A = affineOf(k, la, symbols), B = affineOf(k, lb, symbols), D, C;
  bool hasC = false;
  LtProblem p;
  if (direct) {
    const Stage &s1 = k.stages[1];
    D = affineOf(k, s1.body[plan.outInstr], symbols);
    if (plan.residualOperand >= 0) {
      C = affineOf(k, s1.body[plan.residualInstr], symbols);
      hasC = true;
    }
    p.dOperand = plan.outOperand;
    p.d.type = k.operands[plan.outOperand].dtype;
    p.cOperand = hasC ? plan.residualOperand : -1;
    p.alpha = plan.alpha;
    p.beta = hasC ? 1.f : 0.f;
  } else if (plan.narrow) {
    // The output itself, dense in parallel-point order (planNarrow).
    D = affineOf(k, k.stages[1].body[plan.narrowInstr], symbols);
    p.dOperand = plan.narrowOperand;
    p.d.type = k.operands[plan.narrowOperand].dtype;
    p.narrow = true;
    p.alpha = 1.f;
    p.beta = 0.f;
  } else {
    // The scratch: dense [batch..., M, N] f32 in parallel-point order.
    D.base = 0;
    D.k = 0;
    D.par.assign(np, 0);
    int64_t stride = 1;
    for (size_t i = np; i-- > 0;) {
      D.par[i] = stride;
      stride *= ext[i];
    }
    p.dOperand = -1;
    p.d.type = TESSERA_DTYPE_F32;
    p.scratchElems = uint64_t(stride);
    p.alpha = 1.f;
    p.beta = 0.f;
  }
  p.c.type = p.d.type;
  p.aOperand = plan.bOperand; // Lt's A is our B
  p.bOperand = plan.aOperand;
  p.a.type = p.b.type = plan.input;
  p.fastTf32 = plan.tf32;
  const int64_t aM = A.par[nb], aK = A.k, bN = B.par[nb + 1], bK = B.k;
  const int64_t dM = D.par[nb], dN = D.par[nb + 1];
  const int64_t cM = hasC ? C.par[nb] : 0, cN = hasC ? C.par[nb + 1] : 0;

  // Batch dims of extent > 1, innermost last.
  struct Dim {
    int64_t e, a, b, c, d;
  };
  std::vector<Dim> dims;
  for (size_t i = 0; i < nb; ++i)
    if (ext[i] > 1)
      dims.push_back({ext[i], A.par[i], B.par[i], hasC ? C.par[i] : 0, D.par[i]});
  // Fold batch dims into M where A, D (and C) continue along M and B is
  // shared: one larger GEMM instead of a batch of small ones.
  int64_t Mf = M;
  while (!dims.empty()) {
    const Dim &d = dims.back();
    if (d.b == 0 && d.a == Mf * aM && d.d == Mf * dM && (!hasC || d.c == Mf * cM)) {
      Mf *= d.e;
      dims.pop_back();
    } else {
      break;
    }
  }
  // The longest suffix of the remaining dims that is one strided batch.
  size_t j = dims.size();
  if (!dims.empty()) {
    j = dims.size() - 1;
    while (j > 0) {
      const Dim &o = dims[j - 1], &i = dims[j];
      if (o.a == i.a * i.e && o.b == i.b * i.e && o.c == i.c * i.e && o.d == i.d * i.e)
        --j;
      else
        break;
    }
  }
  int64_t batch = 1;
  for (size_t i = j; i < dims.size(); ++i)
    batch *= dims[i].e;
  if (batch > INT32_MAX)
    return fail("batch too large");
  int64_t outer = 1;
  for (size_t i = 0; i < j; ++i)
    outer *= dims[i].e;
  if (outer > 4096)
    return fail("more than 4096 separate batch calls");
  p.batch = static_cast<int32_t>(batch);
  const Dim *inner = dims.empty() || j == dims.size() ? nullptr : &dims.back();

  // Lt's A = our B as N x K.
  if (colMajor(uint64_t(N), uint64_t(Kd), bN, bK, &p.a.ld)) {
    p.transA = false;
    p.a.rows = uint64_t(N);
    p.a.cols = uint64_t(Kd);
  } else if (colMajor(uint64_t(Kd), uint64_t(N), bK, bN, &p.a.ld)) {
    p.transA = true;
    p.a.rows = uint64_t(Kd);
    p.a.cols = uint64_t(N);
  } else {
    return fail("B is contiguous along neither n nor k");
  }
  // Lt's B = our A as K x M.
  if (colMajor(uint64_t(Kd), uint64_t(Mf), aK, aM, &p.b.ld)) {
    p.transB = false;
    p.b.rows = uint64_t(Kd);
    p.b.cols = uint64_t(Mf);
  } else if (colMajor(uint64_t(Mf), uint64_t(Kd), aM, aK, &p.b.ld)) {
    p.transB = true;
    p.b.rows = uint64_t(Mf);
    p.b.cols = uint64_t(Kd);
  } else {
    return fail("A is contiguous along neither k nor m");
  }
  p.d.rows = uint64_t(N);
  p.d.cols = uint64_t(Mf);
  if (!colMajor(uint64_t(N), uint64_t(Mf), dN, dM, &p.d.ld))
    return fail("the output is not contiguous along n");
  if (hasC) {
    p.c.rows = uint64_t(N);
    p.c.cols = uint64_t(Mf);
    if (!colMajor(uint64_t(N), uint64_t(Mf), cN, cM, &p.c.ld))
      return fail("the residual is not contiguous along n");
    // In place (C is D): cuBLASLt needs the same layout.
    if (plan.residualOperand == plan.outOperand && (C.base != D.base || C.par != D.par || p.c.ld != p.d.ld))
      return fail("the residual is the output with another layout");
  } else {
    p.c = p.d;
  }
  if (inner) {
    p.a.batchStride = inner->b;
    p.b.batchStride = inner->a;
    p.d.batchStride = inner->d;
    p.c.batchStride = hasC ? inner->c : inner->d;
    // Distinct batch points must not write the same output elements.
    if (batch > 1 && std::abs(inner->d) < p.d.ld * int64_t(p.d.cols))
      return fail("output batches overlap");
  }
  // Host-side calls over the outer dims.
  std::vector<int64_t> idx(j, 0);
  for (int64_t t = 0; t < outer; ++t) {
    int64_t rest = t;
    for (size_t i = j; i-- > 0;) {
      idx[i] = rest % dims[i].e;
      rest /= dims[i].e;
    }
    LtProblem::Call call{B.base, A.base, hasC ? C.base : D.base, D.base};
    for (size_t i = 0; i < j; ++i) {
      call.a += idx[i] * dims[i].b;
      call.b += idx[i] * dims[i].a;
      call.c += idx[i] * (hasC ? dims[i].c : dims[i].d);
      call.d += idx[i] * dims[i].d;
    }
    p.calls.push_back(call);
  }
  p.m = uint64_t(Mf);
  p.n = uint64_t(N);
  p.k = uint64_t(Kd);
  *out = std::move(p);
  return true;
}

// ---- runtime ------------------------------------------------------------------------

#ifdef TESSERA_HAVE_CUBLASLT_H

namespace {

struct LtApi {
  std::string unavailable;
  std::string soname;
  size_t version = 0;
  cublasStatus_t (*Create)(cublasLtHandle_t *);
  cublasStatus_t (*Destroy)(cublasLtHandle_t);
  const char *(*StatusString)(cublasStatus_t);
  size_t (*GetVersion)();
  cublasStatus_t (*DescCreate)(cublasLtMatmulDesc_t *, cublasComputeType_t, cudaDataType_t);
  cublasStatus_t (*DescDestroy)(cublasLtMatmulDesc_t);
  cublasStatus_t (*DescSet)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t, const void *, size_t);
  cublasStatus_t (*LayoutCreate)(cublasLtMatrixLayout_t *, cudaDataType, uint64_t, uint64_t, int64_t);
  cublasStatus_t (*LayoutDestroy)(cublasLtMatrixLayout_t);
  cublasStatus_t (*LayoutSet)(cublasLtMatrixLayout_t, cublasLtMatrixLayoutAttribute_t, const void *, size_t);
  cublasStatus_t (*PrefCreate)(cublasLtMatmulPreference_t *);
  cublasStatus_t (*PrefDestroy)(cublasLtMatmulPreference_t);
  cublasStatus_t (*PrefSet)(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t, const void *, size_t);
  cublasStatus_t (*Heuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                              cublasLtMatmulHeuristicResult_t[], int *);
  cublasStatus_t (*Matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t,
                           const void *, cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t,
                           void *, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t);
};

LtApi openLt() {
  LtApi api{};
  // TESSERA_CUBLASLT names the library explicitly; then the toolkit's.
  std::vector<std::string> candidates = toolkitLibraryCandidates("libcublasLt");
  if (const char *env = std::getenv("TESSERA_CUBLASLT"); env && *env)
    candidates.insert(candidates.begin(), env);
  std::string firstError;
  void *lib = dlopenFirst(candidates, &api.soname, &firstError);
  if (!lib) {
    api.unavailable = "cuBLASLt not found: " + firstError;
    return api;
  }
  SymbolLoader load(lib);
  load(api.Create, "cublasLtCreate");
  load(api.Destroy, "cublasLtDestroy");
  load(api.StatusString, "cublasLtGetStatusString");
  load(api.GetVersion, "cublasLtGetVersion");
  load(api.DescCreate, "cublasLtMatmulDescCreate");
  load(api.DescDestroy, "cublasLtMatmulDescDestroy");
  load(api.DescSet, "cublasLtMatmulDescSetAttribute");
  load(api.LayoutCreate, "cublasLtMatrixLayoutCreate");
  load(api.LayoutDestroy, "cublasLtMatrixLayoutDestroy");
  load(api.LayoutSet, "cublasLtMatrixLayoutSetAttribute");
  load(api.PrefCreate, "cublasLtMatmulPreferenceCreate");
  load(api.PrefDestroy, "cublasLtMatmulPreferenceDestroy");
  load(api.PrefSet, "cublasLtMatmulPreferenceSetAttribute");
  load(api.Heuristic, "cublasLtMatmulAlgoGetHeuristic");
  load(api.Matmul, "cublasLtMatmul");
  if (const std::string &missing = load.missing(); !missing.empty()) {
    api.unavailable = api.soname + " lacks " + missing;
    return api;
  }
  api.version = api.GetVersion();
  return api; // stays open for the process
}

const LtApi &lt() {
  static std::once_flag once;
  static LtApi api;
  std::call_once(once, [] { api = openLt(); });
  return api;
}

cudaDataType_t cudaType(tessera_dtype_t t) {
  switch (t) {
  case TESSERA_DTYPE_BF16:
    return CUDA_R_16BF;
  case TESSERA_DTYPE_F16:
    return CUDA_R_16F;
  default:
    return CUDA_R_32F;
  }
}

size_t elemBytes(tessera_dtype_t t) { return t == TESSERA_DTYPE_F32 ? 4 : 2; }

// Largest power of two (<= 256) dividing the address and, where they
// matter, the leading dimension and batch stride in bytes.
uint32_t alignment(uint64_t address, const LtMatrix &m, int32_t batch) {
  uint64_t v = address | 256;
  if (m.cols > 1)
    v |= uint64_t(m.ld) * elemBytes(m.type);
  if (batch > 1)
    v |= uint64_t(std::abs(m.batchStride)) * elemBytes(m.type);
  return static_cast<uint32_t>(v & (~v + 1));
}

std::string status(cublasStatus_t s) {
  const LtApi &api = lt();
  const char *t = api.StatusString ? api.StatusString(s) : nullptr;
  return t ? std::string(t) : "cuBLAS status " + std::to_string(static_cast<int>(s));
}

} // namespace

bool cublasLtAvailable(std::string *why) {
  const LtApi &api = lt();
  if (why)
    *why = api.unavailable;
  return api.unavailable.empty();
}

std::string cublasLtDescription() {
  const LtApi &api = lt();
  if (!api.unavailable.empty())
    return api.unavailable;
  size_t v = api.version;
  return api.soname + " (cuBLASLt " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100) + ")";
}

struct LtDevice::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulHeuristicResult_t result{};
  std::vector<cublasLtMatmulHeuristicResult_t> candidates; // the heuristic's, best first
  bool tuned = false;
  std::string error; // a problem cuBLASLt refused stays refused
  ~Plan() {
    const LtApi &api = lt();
    if (op)
      api.DescDestroy(op);
    for (cublasLtMatrixLayout_t l : {a, b, c, d})
      if (l)
        api.LayoutDestroy(l);
  }
};

LtDevice::LtDevice() {
  const LtApi &api = lt();
  if (!api.unavailable.empty()) {
    createError_ = api.unavailable;
    return;
  }
  cublasLtHandle_t h = nullptr;
  cublasStatus_t s = api.Create(&h);
  if (s != CUBLAS_STATUS_SUCCESS) {
    createError_ = "cublasLtCreate: " + status(s);
    return;
  }
  handle_ = h;
}

LtDevice::~LtDevice() {
  plans_.clear();
  if (handle_)
    lt().Destroy(static_cast<cublasLtHandle_t>(handle_));
}

bool LtDevice::run(const LtProblem &p, const uint64_t *operands, uint64_t scratch, void *stream, uint64_t workspace,
                   uint64_t workspaceBytes, std::string *why, const void **planHint, LtTimer *timer,
                   std::string *tuning) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!handle_) {
    *why = createError_;
    return false;
  }
  const LtApi &api = lt();
  auto addr = [&](int64_t operand, int64_t offset, tessera_dtype_t t) {
    uint64_t base = operand >= 0 ? operands[operand] : scratch;
    return base + uint64_t(offset) * elemBytes(t);
  };
  Plan *cached = planHint ? const_cast<Plan *>(static_cast<const Plan *>(*planHint)) : nullptr;
  if (!cached) {
    // Alignment over every call (the heuristic picks kernels by it).
    uint32_t al[4] = {256, 256, 256, 256};
    for (const LtProblem::Call &c : p.calls) {
      al[0] = std::min(al[0], alignment(addr(p.aOperand, c.a, p.a.type), p.a, p.batch));
      al[1] = std::min(al[1], alignment(addr(p.bOperand, c.b, p.b.type), p.b, p.batch));
      al[2] = std::min(al[2], alignment(addr(p.cOperand >= 0 ? p.cOperand : p.dOperand, c.c, p.c.type), p.c, p.batch));
      al[3] = std::min(al[3], alignment(addr(p.dOperand, c.d, p.d.type), p.d, p.batch));
    }
    char key[512];
    std::snprintf(
        key, sizeof(key),
        "%d%d%d|%d,%llu,%llu,%lld,%lld|%d,%llu,%llu,%lld,%lld|%d,%llu,%llu,%lld,%lld|%d,%llu,%llu,%lld,%lld|%d|%u,%u,"
        "%u,%u|%d",
        p.transA, p.transB, p.fastTf32, p.a.type, (unsigned long long)p.a.rows, (unsigned long long)p.a.cols,
        (long long)p.a.ld, (long long)p.a.batchStride, p.b.type, (unsigned long long)p.b.rows,
        (unsigned long long)p.b.cols, (long long)p.b.ld, (long long)p.b.batchStride, p.c.type,
        (unsigned long long)p.c.rows, (unsigned long long)p.c.cols, (long long)p.c.ld, (long long)p.c.batchStride,
        p.d.type, (unsigned long long)p.d.rows, (unsigned long long)p.d.cols, (long long)p.d.ld,
        (long long)p.d.batchStride, p.batch, al[0], al[1], al[2], al[3], p.beta != 0.f);
    auto &slot = plans_[key];
    if (!slot) {
      auto plan = std::make_unique<Plan>();
      auto check = [&](cublasStatus_t s, const char *what) {
        if (s != CUBLAS_STATUS_SUCCESS && plan->error.empty())
          plan->error = std::string(what) + ": " + status(s);
        return s == CUBLAS_STATUS_SUCCESS;
      };
      cublasComputeType_t compute = p.fastTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      if (check(api.DescCreate(&plan->op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate")) {
        int32_t ta = p.transA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
        check(api.DescSet(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "TRANSA");
        check(api.DescSet(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "TRANSB");
      }
      auto layout = [&](cublasLtMatrixLayout_t *l, const LtMatrix &m) {
        if (!check(api.LayoutCreate(l, cudaType(m.type), m.rows, m.cols, m.ld), "cublasLtMatrixLayoutCreate"))
          return;
        if (p.batch > 1) {
          int32_t count = p.batch;
          int64_t stride = m.batchStride;
          check(api.LayoutSet(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)), "BATCH_COUNT");
          check(api.LayoutSet(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)),
                "STRIDED_BATCH_OFFSET");
        }
      };
      layout(&plan->a, p.a);
      layout(&plan->b, p.b);
      layout(&plan->c, p.c);
      layout(&plan->d, p.d);
      cublasLtMatmulPreference_t pref = nullptr;
      if (plan->error.empty() && check(api.PrefCreate(&pref), "cublasLtMatmulPreferenceCreate")) {
        uint64_t ws = workspaceBytes;
        check(api.PrefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), "MAX_WORKSPACE_BYTES");
        const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4; ++i)
          check(api.PrefSet(pref, attrs[i], &al[i], sizeof(al[i])), "MIN_ALIGNMENT");
        cublasLtMatmulHeuristicResult_t results[8] = {};
        int count = 0;
        if (check(api.Heuristic(static_cast<cublasLtHandle_t>(handle_), plan->op, plan->a, plan->b, plan->c, plan->d,
                                pref, 8, results, &count),
                  "cublasLtMatmulAlgoGetHeuristic")) {
          for (int i = 0; i < count && i < 8; ++i)
            if (results[i].state == CUBLAS_STATUS_SUCCESS)
              plan->candidates.push_back(results[i]);
          if (plan->candidates.empty() && plan->error.empty())
            plan->error = "cuBLASLt has no algorithm for this problem";
          else if (!plan->candidates.empty())
            plan->result = plan->candidates[0];
        }
      }
      if (pref)
        api.PrefDestroy(pref);
      slot = std::move(plan);
    }
    cached = slot.get();
    if (planHint)
      *planHint = cached;
  }
  Plan &plan = *cached;
  if (!plan.error.empty()) {
    *why = plan.error;
    return false;
  }
  auto enqueue = [&](const cublasLtMatmulHeuristicResult_t &r) {
    for (const LtProblem::Call &c : p.calls) {
      void *a = reinterpret_cast<void *>(addr(p.aOperand, c.a, p.a.type));
      void *b = reinterpret_cast<void *>(addr(p.bOperand, c.b, p.b.type));
      void *cc = reinterpret_cast<void *>(addr(p.cOperand >= 0 ? p.cOperand : p.dOperand, c.c, p.c.type));
      void *d = reinterpret_cast<void *>(addr(p.dOperand, c.d, p.d.type));
      cublasStatus_t s = api.Matmul(static_cast<cublasLtHandle_t>(handle_), plan.op, &p.alpha, a, plan.a, b, plan.b,
                                    &p.beta, cc, plan.c, d, plan.d, &r.algo, reinterpret_cast<void *>(workspace),
                                    r.workspaceSize, static_cast<cudaStream_t>(stream));
      if (s != CUBLAS_STATUS_SUCCESS) {
        *why = "cublasLtMatmul: " + status(s);
        return false;
      }
    }
    return true;
  };
  if (!plan.tuned) {
    plan.tuned = true;
    static const bool tune = [] {
      const char *e = std::getenv("TESSERA_CUBLASLT_TUNE");
      return !(e && std::string(e) == "0");
    }();
    const double madds = double(p.m) * double(p.n) * double(p.k) * double(p.batch) * double(p.calls.size());
    if (tune && timer && plan.candidates.size() > 1 && madds >= double(1ull << 30) && p.cOperand < 0) {
      double best = 0, first = 0;
      size_t bestIndex = 0;
      for (size_t i = 0; i < plan.candidates.size(); ++i) {
        double fastest = 0;
        bool ok = enqueue(plan.candidates[i]); // warm-up
        for (int rep = 0; rep < 3 && ok; ++rep) {
          double t = 0;
          ok = timer->start() && enqueue(plan.candidates[i]) && timer->stop(&t);
          if (ok && (rep == 0 || t < fastest))
            fastest = t;
        }
        if (ok && i == 0)
          first = fastest;
        if (ok && (best == 0 || fastest < best)) {
          best = fastest;
          bestIndex = i;
        }
      }
      plan.result = plan.candidates[bestIndex];
      if (tuning) {
        char note[160];
        std::snprintf(note, sizeof(note), "timed %zu algorithms: #%zu %.4f ms (the heuristic's first %.4f ms)",
                      plan.candidates.size(), bestIndex, best * 1e3, first * 1e3);
        *tuning = note;
      }
    } else if (tuning) {
      *tuning = std::to_string(plan.candidates.size()) + " algorithm(s), the heuristic's first kept";
    }
  }
  return enqueue(plan.result);
}

#else // no cublasLt.h at build time

bool cublasLtAvailable(std::string *why) {
  if (why)
    *why = "this build of the cuda plugin has no cuBLASLt support (cublasLt.h was not found)";
  return false;
}
std::string cublasLtDescription() {
  std::string why;
  cublasLtAvailable(&why);
  return why;
}
struct LtDevice::Plan {};
LtDevice::LtDevice() { cublasLtAvailable(&createError_); }
LtDevice::~LtDevice() = default;
bool LtDevice::run(const LtProblem &, const uint64_t *, uint64_t, void *, uint64_t, uint64_t, std::string *why,
                   const void **, LtTimer *, std::string *) {
  *why = createError_;
  return false;
}

#endif

} // namespace tessera::cuda
