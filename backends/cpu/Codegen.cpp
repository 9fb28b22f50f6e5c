// Schedule IR -> LLVM IR lowering, optimization, and ORC JIT (see Codegen.h).
// The only translation unit of the plugin that includes LLVM headers.
#include "Codegen.h"

#include "Fp8.h"
#include "Gemm.h"

#include "llvm/Config/llvm-config.h"
#include "llvm/ExecutionEngine/Orc/CompileUtils.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/MDBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/DynamicLibrary.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/X86TargetParser.h"
#include "llvm/Transforms/Utils/Cloning.h"
#include "llvm/Transforms/Utils/ModuleUtils.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace tessera::cpu {

namespace sir = tessera::schedule;
using llvm::BasicBlock;
using llvm::Function;
using llvm::IRBuilder;
using llvm::Type;
using llvm::Value;

// ---- Targets ----------------------------------------------------------------

namespace {

void initializeLlvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    // Vector math variants (libmvec) the loop vectorizer may call; loaded
    // once so the JIT can resolve them. Absence only disables the variants.
    llvm::sys::DynamicLibrary::LoadLibraryPermanently("libmvec.so.1");
  });
}

bool hasLibmvec() {
  initializeLlvm();
  static const bool present = llvm::sys::DynamicLibrary::SearchForAddressOfSymbol("_ZGVdN8v_expf") != nullptr;
  return present;
}

// All features (without '+') enabled for `cpu` plus the explicit list.
std::set<std::string> featureSet(const TargetInfo &t) {
  std::set<std::string> out;
  llvm::SmallVector<llvm::StringRef, 64> implied;
  llvm::X86::getFeaturesForCPU(t.cpu, implied, /*NeedPlus=*/false);
  for (llvm::StringRef f : implied)
    out.insert(f.str());
  llvm::SmallVector<llvm::StringRef, 32> explicitList;
  llvm::StringRef(t.features).split(explicitList, ',', -1, false);
  for (llvm::StringRef f : explicitList) {
    f = f.trim();
    if (f.consume_front("+"))
      out.insert(f.str());
    else if (f.consume_front("-"))
      out.erase(f.str());
    else if (!f.empty())
      out.insert(f.str());
  }
  return out;
}

void fillVectorInfo(TargetInfo &t) {
  std::set<std::string> f = featureSet(t);
  t.avx512 = f.count("avx512f") > 0;
  t.fma = f.count("fma") > 0;
  t.vectorBits = t.avx512 ? 512 : (f.count("avx2") || f.count("avx")) ? 256 : 128;
}

std::string hostLevel(const std::set<std::string> &f) {
  auto all = [&](std::initializer_list<const char *> names) {
    for (const char *n : names)
      if (!f.count(n))
        return false;
    return true;
  };
  if (!all({"cx16", "popcnt", "sse4.1", "sse4.2", "ssse3"}))
    return "x86-64";
  if (!all({"avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"}))
    return "x86-64-v2";
  if (!all({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}))
    return "x86-64-v3";
  return "x86-64-v4";
}

} // namespace

const TargetInfo &hostTarget() {
  static const TargetInfo host = [] {
    initializeLlvm();
    TargetInfo t;
    t.cpu = llvm::sys::getHostCPUName().str();
    std::set<std::string> on;
    std::string features;
    for (const auto &entry : llvm::sys::getHostCPUFeatures()) {
      if (!entry.second)
        continue;
      on.insert(entry.first().str());
      features += (features.empty() ? "+" : ",+") + entry.first().str();
    }
    t.features = features;
    t.architecture = hostLevel(on);
    fillVectorInfo(t);
    return t;
  }();
  return host;
}

bool resolveTarget(const char *architecture, const char *features, TargetInfo *out, std::string *error) {
  const TargetInfo &host = hostTarget();
  std::string arch = architecture ? architecture : "";
  std::string extra;
  if (features) {
    llvm::SmallVector<llvm::StringRef, 16> parts;
    llvm::StringRef(features).split(parts, ',', -1, false);
    for (llvm::StringRef p : parts) {
      p = p.trim();
      if (p.empty())
        continue;
      extra += extra.empty() ? "" : ",";
      extra += (p.starts_with("+") || p.starts_with("-")) ? p.str() : "+" + p.str();
    }
  }
  if (arch.empty() || arch == "native" || arch == "host") {
    *out = host;
    return true;
  }
  static const std::set<std::string> levels = {"x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"};
  if (!levels.count(arch)) {
    *error = "unsupported CPU architecture '" + arch + "' (this plugin targets x86-64, x86-64-v2, x86-64-v3, "
             "x86-64-v4 or native)";
    return false;
  }
  TargetInfo t;
  t.architecture = arch;
  t.cpu = arch;
  t.features = extra;
  // The host's own level without extra features: use the host CPU for its
  // scheduling model; the ISA is the same.
  if (arch == host.architecture) {
    std::string why;
    if (extra.empty() || runnableOnHost(t, &why)) {
      t.cpu = host.cpu;
      t.features = host.features;
    }
  }
  fillVectorInfo(t);
  *out = t;
  return true;
}

bool runnableOnHost(const TargetInfo &target, std::string *why) {
  std::set<std::string> need = featureSet(target);
  std::set<std::string> have = featureSet(hostTarget());
  for (const std::string &f : need)
    if (!have.count(f)) {
      if (why)
        *why = "code for " + target.architecture + " needs CPU feature '" + f + "', which this host lacks";
      return false;
    }
  return true;
}

// ---- Lowering -----------------------------------------------------------------

namespace {

bool isFloat(tessera_dtype_t d) {
  return d == TESSERA_DTYPE_F64 || d == TESSERA_DTYPE_F32 || d == TESSERA_DTYPE_F16 || d == TESSERA_DTYPE_BF16 ||
         d == TESSERA_DTYPE_F8E4M3 || d == TESSERA_DTYPE_F8E5M2;
}
bool isUnsigned(tessera_dtype_t d) { return d == TESSERA_DTYPE_U8 || d == TESSERA_DTYPE_BOOL; }
bool isNarrowFloat(tessera_dtype_t d) { return isFloat(d) && d != TESSERA_DTYPE_F32 && d != TESSERA_DTYPE_F64; }

class Lowerer {
public:
  Lowerer(llvm::LLVMContext &ctx, llvm::Module &mod, const sir::Program &program, const TargetInfo &target)
      : ctx_(ctx), mod_(mod), program_(program), target_(target), b_(ctx) {
    i1_ = b_.getInt1Ty();
    i8_ = b_.getInt8Ty();
    i16_ = b_.getInt16Ty();
    i32_ = b_.getInt32Ty();
    i64_ = b_.getInt64Ty();
    f32_ = b_.getFloatTy();
    f64_ = b_.getDoubleTy();
    ptr_ = b_.getPtrTy();
  }

  Function *emitKernel(const sir::Kernel &k, const std::string &name);
  Function *emitEpilogue(const sir::Kernel &k, const GemmForm &form, const std::string &name);
  Function *emitMicroKernel(int mr, int nr, int vl, const std::string &name);
  void finish(); // keeps referenced vector-math declarations alive

private:
  struct Fn {
    const sir::Kernel *k = nullptr;
    Function *fn = nullptr;
    BasicBlock *entry = nullptr;
    std::vector<Value *> sym, par, inner;
    std::vector<Value *> base;
    std::vector<std::vector<Value *>> strides;
    std::map<int64_t, Value *> vals;
    std::map<int64_t, tessera_dtype_t> dtypes;
    bool deterministic = false;
  };

  Function *newFunction(const std::string &name, llvm::FunctionType *type);
  Type *computeType(tessera_dtype_t d);
  Value *convert(Value *v, tessera_dtype_t from, tessera_dtype_t to);
  Value *truthy(Value *v, tessera_dtype_t d);
  Value *roundNarrow(Value *v, tessera_dtype_t to, bool saturate);
  Value *encodeBf16(Value *f);
  Value *decodeFp8(Value *byte, tessera_dtype_t d);
  Value *encodeFp8(Value *f, tessera_dtype_t d, bool saturate);
  Value *mathCall(const char *name, llvm::ArrayRef<Value *> args);
  Value *emitExp(Value *x);
  Value *intrinsic(llvm::Intrinsic::ID id, llvm::ArrayRef<Value *> args);
  Value *emitIndex(Fn &s, const sir::IndexExpr &e);
  Value *floorDivMod(Value *a, Value *b, bool mod);
  Value *elementPtr(Fn &s, int64_t operand, const std::vector<sir::IndexExpr> &index);
  Value *loadElement(Fn &s, int64_t operand, Value *ptr);
  void storeElement(Fn &s, int64_t operand, Value *ptr, Value *v, tessera_dtype_t vd);
  void emitLoop(Value *lo, Value *hi, const std::function<void(Value *)> &body);
  void emitPrologue(Fn &s, llvm::Argument *buffers, llvm::Argument *scalars);
  void emitStages(Fn &s, size_t first);
  void emitInstr(Fn &s, const sir::Instr &in, std::map<int64_t, std::vector<llvm::AllocaInst *>> &accs,
                 Value *linear);
  Value *emitUnary(sir::Op op, Value *x, tessera_dtype_t d);
  Value *emitBinary(sir::Op op, Value *x, Value *y, tessera_dtype_t d);
  llvm::AllocaInst *entryAlloca(Fn &s, Type *t);
  Value *constant(double v, tessera_dtype_t d);

  llvm::LLVMContext &ctx_;
  llvm::Module &mod_;
  const sir::Program &program_;
  const TargetInfo &target_;
  IRBuilder<> b_;
  Type *i1_, *i8_, *i16_, *i32_, *i64_, *f32_, *f64_, *ptr_;
  std::vector<Function *> vectorDecls_;
};

Function *Lowerer::newFunction(const std::string &name, llvm::FunctionType *type) {
  Function *f = Function::Create(type, Function::ExternalLinkage, name, mod_);
  f->addFnAttr("target-cpu", target_.cpu);
  if (!target_.features.empty())
    f->addFnAttr("target-features", target_.features);
  f->addFnAttr(llvm::Attribute::NoUnwind);
  return f;
}

Type *Lowerer::computeType(tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return f64_;
  case TESSERA_DTYPE_I64: return i64_;
  case TESSERA_DTYPE_I32: return i32_;
  case TESSERA_DTYPE_I16: return i16_;
  case TESSERA_DTYPE_I8:
  case TESSERA_DTYPE_U8: return i8_;
  case TESSERA_DTYPE_BOOL: return i1_;
  default: return f32_; // f32 and the narrow floats compute in f32
  }
}

Value *Lowerer::constant(double v, tessera_dtype_t d) {
  Type *t = computeType(d);
  if (isFloat(d))
    return llvm::ConstantFP::get(t, v);
  if (d == TESSERA_DTYPE_BOOL)
    return b_.getInt1(v != 0);
  if (std::isnan(v) || std::isinf(v))
    return llvm::ConstantInt::get(t, 0);
  return llvm::ConstantInt::get(t, static_cast<uint64_t>(static_cast<int64_t>(v)), true);
}

Value *Lowerer::intrinsic(llvm::Intrinsic::ID id, llvm::ArrayRef<Value *> args) {
  return b_.CreateIntrinsic(id, {args[0]->getType()}, args);
}

Value *Lowerer::truthy(Value *v, tessera_dtype_t d) {
  if (d == TESSERA_DTYPE_BOOL)
    return v;
  if (isFloat(d))
    return b_.CreateFCmpUNE(v, llvm::ConstantFP::get(v->getType(), 0.0));
  return b_.CreateICmpNE(v, llvm::ConstantInt::get(v->getType(), 0));
}

// Numeric conversion between compute types. float -> int truncates toward
// zero and wraps (NaN and +-inf give 0), like the reference interpreter.
Value *Lowerer::convert(Value *v, tessera_dtype_t from, tessera_dtype_t to) {
  Type *dst = computeType(to);
  if (from == to)
    return v;
  if (isFloat(from)) {
    if (isFloat(to))
      return v->getType() == dst ? v : b_.CreateFPCast(v, dst);
    if (to == TESSERA_DTYPE_BOOL)
      return truthy(v, from);
    Value *wide = b_.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {i64_, v->getType()}, {v});
    Value *isInf = b_.CreateFCmpOEQ(intrinsic(llvm::Intrinsic::fabs, {v}),
                                    llvm::ConstantFP::getInfinity(v->getType()));
    wide = b_.CreateSelect(isInf, b_.getInt64(0), wide);
    return b_.CreateTrunc(wide, dst);
  }
  if (isFloat(to))
    return isUnsigned(from) ? b_.CreateUIToFP(v, dst) : b_.CreateSIToFP(v, dst);
  if (to == TESSERA_DTYPE_BOOL)
    return truthy(v, from);
  return b_.CreateIntCast(v, dst, !isUnsigned(from));
}

// bf16 bits (as i16) of an f32, round to nearest even; NaN stays a quiet NaN.
Value *Lowerer::encodeBf16(Value *f) {
  Value *bits = b_.CreateBitCast(f, i32_);
  Value *lsb = b_.CreateAnd(b_.CreateLShr(bits, 16), 1);
  Value *rounded = b_.CreateLShr(b_.CreateAdd(b_.CreateAdd(bits, b_.getInt32(0x7FFF)), lsb), 16);
  Value *nan = b_.CreateOr(b_.CreateLShr(bits, 16), b_.getInt32(0x40));
  Value *isNan = b_.CreateFCmpUNO(f, f);
  return b_.CreateTrunc(b_.CreateSelect(isNan, nan, rounded), i16_);
}

Value *Lowerer::decodeFp8(Value *byte, tessera_dtype_t d) {
  const char *name = d == TESSERA_DTYPE_F8E4M3 ? "tessera.e4m3.table" : "tessera.e5m2.table";
  llvm::GlobalVariable *table = mod_.getGlobalVariable(name, true);
  if (!table) {
    std::vector<llvm::Constant *> values;
    for (int c = 0; c < 256; ++c)
      values.push_back(llvm::ConstantFP::get(
          f32_, d == TESSERA_DTYPE_F8E4M3 ? decodeE4M3(static_cast<uint8_t>(c)) : decodeE5M2(static_cast<uint8_t>(c))));
    auto *arrayTy = llvm::ArrayType::get(f32_, 256);
    table = new llvm::GlobalVariable(mod_, arrayTy, true, llvm::GlobalValue::PrivateLinkage,
                                     llvm::ConstantArray::get(arrayTy, values), name);
    table->setAlignment(llvm::Align(64));
  }
  Value *idx = b_.CreateZExt(byte, i64_);
  return b_.CreateLoad(f32_, b_.CreateInBoundsGEP(f32_, table, idx));
}

Value *Lowerer::encodeFp8(Value *f, tessera_dtype_t d, bool saturate) {
  const char *name = d == TESSERA_DTYPE_F8E4M3 ? "tessera_cpu_f32_to_e4m3" : "tessera_cpu_f32_to_e5m2";
  llvm::FunctionCallee callee =
      mod_.getOrInsertFunction(name, llvm::FunctionType::get(i8_, {f32_, i32_}, false));
  llvm::CallInst *call = b_.CreateCall(callee, {f, b_.getInt32(saturate ? 1 : 0)});
  call->setDoesNotAccessMemory();
  call->setDoesNotThrow();
  return call;
}

// Rounds an f32 compute value to what the narrow float `to` can hold (casts).
Value *Lowerer::roundNarrow(Value *v, tessera_dtype_t to, bool saturate) {
  switch (to) {
  case TESSERA_DTYPE_F16: {
    if (saturate) {
      v = intrinsic(llvm::Intrinsic::minnum, {v, llvm::ConstantFP::get(f32_, 65504.0)});
      v = intrinsic(llvm::Intrinsic::maxnum, {v, llvm::ConstantFP::get(f32_, -65504.0)});
    }
    return b_.CreateFPExt(b_.CreateFPTrunc(v, b_.getHalfTy()), f32_);
  }
  case TESSERA_DTYPE_BF16: {
    if (saturate) {
      const double maxBf16 = 3.3895313892515355e38;
      v = intrinsic(llvm::Intrinsic::minnum, {v, llvm::ConstantFP::get(f32_, maxBf16)});
      v = intrinsic(llvm::Intrinsic::maxnum, {v, llvm::ConstantFP::get(f32_, -maxBf16)});
    }
    Value *bits = b_.CreateShl(b_.CreateZExt(encodeBf16(v), i32_), 16);
    return b_.CreateBitCast(bits, f32_);
  }
  case TESSERA_DTYPE_F8E4M3:
  case TESSERA_DTYPE_F8E5M2: return decodeFp8(encodeFp8(v, to, saturate), to);
  default: return v;
  }
}

// exp. For f32 with libmvec, inputs below -87 (where the vector expf leaves
// its fast path for a per-lane scalar fallback, 10-40x slower: every
// causally masked -inf score of a softmax) are shifted into range:
// exp(x) = exp(x + 32) * exp(-32) for x in [-119, -87) (one extra rounding,
// results below 1.7e-38), 0 below -119 (the exact result rounds to 0), NaN
// stays NaN (comparisons with NaN are false).
Value *Lowerer::emitExp(Value *x) {
  Type *t = x->getType();
  if (!t->isFloatTy() || !hasLibmvec())
    return mathCall("exp", {x});
  auto fc = [&](double v) { return llvm::ConstantFP::get(t, v); };
  Value *low = b_.CreateFCmpOLT(x, fc(-87.0));
  Value *shifted = b_.CreateSelect(low, b_.CreateFAdd(x, fc(32.0)), x);
  Value *tiny = b_.CreateFCmpOLT(shifted, fc(-87.0));
  Value *e = mathCall("exp", {b_.CreateSelect(tiny, fc(-87.0), shifted)});
  Value *scaled = b_.CreateSelect(tiny, fc(0.0), b_.CreateFMul(e, fc(std::exp(-32.0))));
  return b_.CreateSelect(low, scaled, e);
}

// A libm call marked as pure, with libmvec variants the loop vectorizer can
// substitute (vector-function-abi-variant, glibc's x86 vector ABI).
Value *Lowerer::mathCall(const char *name, llvm::ArrayRef<Value *> args) {
  Type *t = args[0]->getType();
  bool isF32 = t->isFloatTy();
  std::string scalar = std::string(name) + (isF32 ? "f" : "");
  std::vector<Type *> params(args.size(), t);
  auto *fnTy = llvm::FunctionType::get(t, params, false);
  llvm::FunctionCallee callee = mod_.getOrInsertFunction(scalar, fnTy);
  llvm::CallInst *call = b_.CreateCall(callee, args);
  call->setDoesNotAccessMemory();
  call->setDoesNotThrow();
  call->addFnAttr(llvm::Attribute::WillReturn);
  if (!hasLibmvec())
    return call;
  std::string params_(args.size(), 'v');
  struct Isa {
    char letter;
    unsigned bits;
    bool enabled;
  };
  const Isa isas[] = {{'b', 128, true}, {'d', 256, target_.vectorBits >= 256 && target_.fma}, {'e', 512, target_.avx512}};
  std::string variants;
  for (const Isa &isa : isas) {
    if (!isa.enabled)
      continue;
    unsigned lanes = isa.bits / (isF32 ? 32 : 64);
    std::string vecName = "_ZGV" + std::string(1, isa.letter) + "N" + std::to_string(lanes) + params_ + "_" + scalar;
    auto *vecTy = llvm::FixedVectorType::get(t, lanes);
    std::vector<Type *> vparams(args.size(), vecTy);
    llvm::FunctionCallee vf = mod_.getOrInsertFunction(vecName, llvm::FunctionType::get(vecTy, vparams, false));
    if (auto *vfn = llvm::dyn_cast<Function>(vf.getCallee())) {
      if (std::find(vectorDecls_.begin(), vectorDecls_.end(), vfn) == vectorDecls_.end())
        vectorDecls_.push_back(vfn);
    }
    variants += (variants.empty() ? "" : ",") + std::string("_ZGV_LLVM_N") + std::to_string(lanes) + params_ + "_" +
                scalar + "(" + vecName + ")";
  }
  call->addFnAttr(llvm::Attribute::get(ctx_, "vector-function-abi-variant", variants));
  return call;
}

void Lowerer::finish() {
  if (!vectorDecls_.empty()) {
    std::vector<llvm::GlobalValue *> keep(vectorDecls_.begin(), vectorDecls_.end());
    llvm::appendToCompilerUsed(mod_, keep);
  }
}

// Floored division / modulo; a zero divisor gives 0 (like evalIndex).
Value *Lowerer::floorDivMod(Value *a, Value *d, bool mod) {
  auto *cd = llvm::dyn_cast<llvm::ConstantInt>(d);
  bool safe = cd && !cd->isZero();
  Value *zero = b_.getInt64(0);
  Value *isZero = safe ? nullptr : b_.CreateICmpEQ(d, zero);
  Value *div = safe ? d : b_.CreateSelect(isZero, b_.getInt64(1), d);
  Value *q = b_.CreateSDiv(a, div);
  Value *r = b_.CreateSRem(a, div);
  Value *adjust = b_.CreateAnd(b_.CreateICmpNE(r, zero), b_.CreateICmpSLT(b_.CreateXor(r, div), zero));
  Value *out = mod ? b_.CreateSelect(adjust, b_.CreateAdd(r, div), r)
                   : b_.CreateSub(q, b_.CreateZExt(adjust, i64_));
  return safe ? out : b_.CreateSelect(isZero, zero, out);
}

Value *Lowerer::emitIndex(Fn &s, const sir::IndexExpr &e) {
  using K = sir::IndexExpr::Kind;
  switch (e.kind) {
  case K::Const: return b_.getInt64(static_cast<uint64_t>(e.value));
  case K::Symbol: return s.sym[e.value];
  case K::Parallel: return s.par[e.value];
  case K::Inner: return s.inner[e.value];
  case K::Value: return convert(s.vals.at(e.value), s.dtypes.at(e.value), TESSERA_DTYPE_I64);
  default: break;
  }
  Value *a = emitIndex(s, e.args[0]);
  Value *c = emitIndex(s, e.args[1]);
  switch (e.kind) {
  case K::Add: return b_.CreateAdd(a, c);
  case K::Sub: return b_.CreateSub(a, c);
  case K::Mul: return b_.CreateMul(a, c);
  case K::FloorDiv: return floorDivMod(a, c, false);
  case K::Mod: return floorDivMod(a, c, true);
  case K::Min: return b_.CreateSelect(b_.CreateICmpSLT(a, c), a, c);
  case K::Max: return b_.CreateSelect(b_.CreateICmpSGT(a, c), a, c);
  case K::Lt: return b_.CreateZExt(b_.CreateICmpSLT(a, c), i64_);
  case K::Le: return b_.CreateZExt(b_.CreateICmpSLE(a, c), i64_);
  case K::Eq: return b_.CreateZExt(b_.CreateICmpEQ(a, c), i64_);
  case K::Ne: return b_.CreateZExt(b_.CreateICmpNE(a, c), i64_);
  case K::And:
    return b_.CreateZExt(b_.CreateAnd(b_.CreateICmpNE(a, b_.getInt64(0)), b_.CreateICmpNE(c, b_.getInt64(0))), i64_);
  default: return b_.getInt64(0);
  }
}

Type *storageType(llvm::IRBuilder<> &b, tessera_dtype_t d) {
  switch (d) {
  case TESSERA_DTYPE_F64: return b.getDoubleTy();
  case TESSERA_DTYPE_F32: return b.getFloatTy();
  case TESSERA_DTYPE_F16: return b.getHalfTy();
  case TESSERA_DTYPE_BF16:
  case TESSERA_DTYPE_I16: return b.getInt16Ty();
  case TESSERA_DTYPE_I64: return b.getInt64Ty();
  case TESSERA_DTYPE_I32: return b.getInt32Ty();
  default: return b.getInt8Ty(); // fp8, i8, u8, bool
  }
}

Value *Lowerer::elementPtr(Fn &s, int64_t operand, const std::vector<sir::IndexExpr> &index) {
  Value *linear = b_.getInt64(0);
  for (size_t d = 0; d < index.size(); ++d)
    linear = b_.CreateAdd(linear, b_.CreateMul(emitIndex(s, index[d]), s.strides[operand][d]));
  tessera_dtype_t dt = s.k->operands[operand].dtype;
  return b_.CreateGEP(storageType(b_, dt), s.base[operand], linear);
}

// Loads one element and widens it to the operand dtype's compute type.
Value *Lowerer::loadElement(Fn &s, int64_t operand, Value *ptr) {
  tessera_dtype_t dt = s.k->operands[operand].dtype;
  Value *raw = b_.CreateLoad(storageType(b_, dt), ptr);
  switch (dt) {
  case TESSERA_DTYPE_F16: return b_.CreateFPExt(raw, f32_);
  case TESSERA_DTYPE_BF16: return b_.CreateBitCast(b_.CreateShl(b_.CreateZExt(raw, i32_), 16), f32_);
  case TESSERA_DTYPE_F8E4M3:
  case TESSERA_DTYPE_F8E5M2: return decodeFp8(raw, dt);
  case TESSERA_DTYPE_BOOL: return b_.CreateICmpNE(raw, b_.getInt8(0));
  default: return raw;
  }
}

// Narrows a value to the operand's storage (round to nearest even) and stores.
void Lowerer::storeElement(Fn &s, int64_t operand, Value *ptr, Value *v, tessera_dtype_t vd) {
  tessera_dtype_t dt = s.k->operands[operand].dtype;
  v = convert(v, vd, dt);
  Value *raw = v;
  switch (dt) {
  case TESSERA_DTYPE_F16: raw = b_.CreateFPTrunc(v, b_.getHalfTy()); break;
  case TESSERA_DTYPE_BF16: raw = encodeBf16(v); break;
  case TESSERA_DTYPE_F8E4M3:
  case TESSERA_DTYPE_F8E5M2: raw = encodeFp8(v, dt, false); break;
  case TESSERA_DTYPE_BOOL: raw = b_.CreateZExt(v, i8_); break;
  default: break;
  }
  b_.CreateStore(raw, ptr);
}

void Lowerer::emitLoop(Value *lo, Value *hi, const std::function<void(Value *)> &body) {
  Function *f = b_.GetInsertBlock()->getParent();
  BasicBlock *pre = b_.GetInsertBlock();
  BasicBlock *loop = BasicBlock::Create(ctx_, "loop", f);
  BasicBlock *exit = BasicBlock::Create(ctx_, "exit", f);
  b_.CreateCondBr(b_.CreateICmpSLT(lo, hi), loop, exit);
  b_.SetInsertPoint(loop);
  llvm::PHINode *iv = b_.CreatePHI(i64_, 2, "iv");
  iv->addIncoming(lo, pre);
  body(iv);
  Value *next = b_.CreateAdd(iv, b_.getInt64(1), "iv.next", true, true);
  iv->addIncoming(next, b_.GetInsertBlock());
  b_.CreateCondBr(b_.CreateICmpSLT(next, hi), loop, exit);
  b_.SetInsertPoint(exit);
}

llvm::AllocaInst *Lowerer::entryAlloca(Fn &s, Type *t) {
  IRBuilder<> eb(s.entry, s.entry->begin());
  return eb.CreateAlloca(t);
}

// Loads symbols, operand bases and row-major strides at function entry.
void Lowerer::emitPrologue(Fn &s, llvm::Argument *buffers, llvm::Argument *scalars) {
  for (size_t i = 0; i < program_.symbols.size(); ++i)
    s.sym.push_back(b_.CreateLoad(i64_, b_.CreateConstInBoundsGEP1_64(i64_, scalars, i), "s" + std::to_string(i)));
  for (size_t o = 0; o < s.k->operands.size(); ++o) {
    s.base.push_back(b_.CreateLoad(ptr_, b_.CreateConstInBoundsGEP1_64(ptr_, buffers, o), "buf" + std::to_string(o)));
    const auto &shape = s.k->operands[o].shape;
    std::vector<Value *> strides(shape.size());
    Value *stride = b_.getInt64(1);
    for (size_t d = shape.size(); d-- > 0;) {
      strides[d] = stride;
      stride = b_.CreateMul(stride, emitIndex(s, shape[d]));
    }
    s.strides.push_back(std::move(strides));
  }
  for (const sir::Stage &st : s.k->stages)
    for (const sir::Instr &in : st.body)
      if (!in.isStore)
        s.dtypes[in.result] = in.dtype;
  s.deterministic = s.k->knobInt("deterministic", 0) != 0;
}

Value *Lowerer::emitUnary(sir::Op op, Value *x, tessera_dtype_t d) {
  using O = sir::Op;
  Type *t = x->getType();
  auto fc = [&](double v) { return llvm::ConstantFP::get(t, v); };
  if (!isFloat(d)) {
    Value *zero = llvm::ConstantInt::get(t, 0);
    switch (op) {
    case O::Neg: return b_.CreateNeg(x);
    case O::Abs: return d == TESSERA_DTYPE_BOOL || isUnsigned(d) ? x : intrinsic(llvm::Intrinsic::abs, {x, b_.getFalse()});
    case O::Relu: return isUnsigned(d) ? x : b_.CreateSelect(b_.CreateICmpSLT(x, zero), zero, x);
    case O::Sign:
      if (d == TESSERA_DTYPE_BOOL)
        return x;
      return b_.CreateSub(b_.CreateZExt(isUnsigned(d) ? b_.CreateICmpUGT(x, zero) : b_.CreateICmpSGT(x, zero), t),
                          b_.CreateZExt(isUnsigned(d) ? b_.getFalse() : b_.CreateICmpSLT(x, zero), t));
    case O::Not: return b_.CreateNot(x); // logical for i1, bitwise otherwise
    case O::Floor:
    case O::Ceil: return x;
    default: {
      // Transcendentals of integers: through f64, then back.
      Value *f = convert(x, d, TESSERA_DTYPE_F64);
      return convert(emitUnary(op, f, TESSERA_DTYPE_F64), TESSERA_DTYPE_F64, d);
    }
    }
  }
  switch (op) {
  case O::Neg: return b_.CreateFNeg(x);
  case O::Abs: return intrinsic(llvm::Intrinsic::fabs, {x});
  case O::Exp: return emitExp(x);
  case O::Log: return mathCall("log", {x});
  case O::Sqrt: return intrinsic(llvm::Intrinsic::sqrt, {x});
  case O::Rsqrt: return b_.CreateFDiv(fc(1.0), intrinsic(llvm::Intrinsic::sqrt, {x}));
  case O::Tanh: return mathCall("tanh", {x});
  case O::Sigmoid: return b_.CreateFDiv(fc(1.0), b_.CreateFAdd(fc(1.0), mathCall("exp", {b_.CreateFNeg(x)})));
  case O::Relu: return b_.CreateSelect(b_.CreateFCmpOLT(x, fc(0.0)), fc(0.0), x);
  case O::GeluErf: {
    Value *e = mathCall("erf", {b_.CreateFMul(x, fc(0.70710678118654752440))});
    return b_.CreateFMul(b_.CreateFMul(fc(0.5), x), b_.CreateFAdd(fc(1.0), e));
  }
  case O::GeluTanh: {
    Value *x3 = b_.CreateFMul(b_.CreateFMul(x, x), x);
    Value *inner = b_.CreateFMul(fc(0.79788456080286535588), b_.CreateFAdd(x, b_.CreateFMul(fc(0.044715), x3)));
    return b_.CreateFMul(b_.CreateFMul(fc(0.5), x), b_.CreateFAdd(fc(1.0), mathCall("tanh", {inner})));
  }
  case O::Silu: return b_.CreateFDiv(x, b_.CreateFAdd(fc(1.0), mathCall("exp", {b_.CreateFNeg(x)})));
  case O::Erf: return mathCall("erf", {x});
  case O::Sin: return mathCall("sin", {x});
  case O::Cos: return mathCall("cos", {x});
  case O::Floor: return intrinsic(llvm::Intrinsic::floor, {x});
  case O::Ceil: return intrinsic(llvm::Intrinsic::ceil, {x});
  case O::Sign: {
    Value *pos = b_.CreateSelect(b_.CreateFCmpOGT(x, fc(0.0)), fc(1.0), x);
    return b_.CreateSelect(b_.CreateFCmpOLT(x, fc(0.0)), fc(-1.0), pos);
  }
  case O::Reciprocal: return b_.CreateFDiv(fc(1.0), x);
  case O::Not: return b_.CreateSelect(b_.CreateFCmpOEQ(x, fc(0.0)), fc(1.0), fc(0.0));
  default: return x;
  }
}

// Arithmetic binary ops with both operands already in d's compute type.
Value *Lowerer::emitBinary(sir::Op op, Value *x, Value *y, tessera_dtype_t d) {
  using O = sir::Op;
  Type *t = x->getType();
  if (isFloat(d)) {
    switch (op) {
    case O::Add: return b_.CreateFAdd(x, y);
    case O::Sub: return b_.CreateFSub(x, y);
    case O::Mul: return b_.CreateFMul(x, y);
    case O::Div: return b_.CreateFDiv(x, y);
    case O::Pow: return mathCall("pow", {x, y});
    case O::Max: return intrinsic(llvm::Intrinsic::maximum, {x, y});
    case O::Min: return intrinsic(llvm::Intrinsic::minimum, {x, y});
    case O::Mod: {
      // NumPy/Python floored remainder: fmod moved into the divisor's sign.
      Value *zero = llvm::ConstantFP::get(t, 0.0);
      Value *r = b_.CreateFRem(x, y);
      Value *fix = b_.CreateAnd(b_.CreateFCmpONE(r, zero),
                                b_.CreateXor(b_.CreateFCmpOLT(r, zero), b_.CreateFCmpOLT(y, zero)));
      r = b_.CreateSelect(fix, b_.CreateFAdd(r, y), r);
      Value *signedZero = intrinsic(llvm::Intrinsic::copysign, {zero, y});
      return b_.CreateSelect(b_.CreateFCmpOEQ(r, zero), signedZero, r);
    }
    default: return x;
    }
  }
  bool u = isUnsigned(d);
  Value *zero = llvm::ConstantInt::get(t, 0);
  switch (op) {
  case O::Add: return b_.CreateAdd(x, y);
  case O::Sub: return b_.CreateSub(x, y);
  case O::Mul: return b_.CreateMul(x, y);
  case O::Max: return u ? intrinsic(llvm::Intrinsic::umax, {x, y}) : intrinsic(llvm::Intrinsic::smax, {x, y});
  case O::Min: return u ? intrinsic(llvm::Intrinsic::umin, {x, y}) : intrinsic(llvm::Intrinsic::smin, {x, y});
  case O::Div:
  case O::Mod: {
    // Floored (NumPy floor_divide / remainder); a zero divisor gives 0.
    Value *isZero = b_.CreateICmpEQ(y, zero);
    Value *safe = b_.CreateSelect(isZero, llvm::ConstantInt::get(t, 1), y);
    Value *out;
    if (u) {
      out = op == O::Div ? b_.CreateUDiv(x, safe) : b_.CreateURem(x, safe);
    } else {
      Value *q = b_.CreateSDiv(x, safe);
      Value *r = b_.CreateSRem(x, safe);
      Value *adjust = b_.CreateAnd(b_.CreateICmpNE(r, zero), b_.CreateICmpSLT(b_.CreateXor(r, safe), zero));
      out = op == O::Div ? b_.CreateSub(q, b_.CreateZExt(adjust, t)) : b_.CreateSelect(adjust, b_.CreateAdd(r, safe), r);
    }
    return b_.CreateSelect(isZero, zero, out);
  }
  case O::Pow: {
    Value *fx = convert(x, d, TESSERA_DTYPE_F64), *fy = convert(y, d, TESSERA_DTYPE_F64);
    return convert(mathCall("pow", {fx, fy}), TESSERA_DTYPE_F64, d);
  }
  default: return x;
  }
}

tessera_dtype_t commonType(tessera_dtype_t a, tessera_dtype_t b) {
  if (isFloat(a) || isFloat(b))
    return (a == TESSERA_DTYPE_F64 || b == TESSERA_DTYPE_F64) ? TESSERA_DTYPE_F64 : TESSERA_DTYPE_F32;
  if (a == b)
    return a;
  return TESSERA_DTYPE_I64;
}

void Lowerer::emitInstr(Fn &s, const sir::Instr &in, std::map<int64_t, std::vector<llvm::AllocaInst *>> &accs,
                        Value *linear) {
  using O = sir::Op;
  auto arg = [&](size_t i) { return s.vals.at(in.args[i]); };
  auto argType = [&](size_t i) { return s.dtypes.at(in.args[i]); };
  auto argAs = [&](size_t i, tessera_dtype_t d) { return convert(arg(i), argType(i), d); };
  if (in.isStore) {
    Value *ptr = elementPtr(s, in.operand, in.index);
    storeElement(s, in.operand, ptr, arg(0), argType(0));
    return;
  }
  const tessera_dtype_t d = in.dtype;
  Value *result = nullptr;
  switch (in.op) {
  case O::Load: {
    tessera_dtype_t od = s.k->operands[in.operand].dtype;
    if (!in.mask) {
      result = convert(loadElement(s, in.operand, elementPtr(s, in.operand, in.index)), od, d);
      break;
    }
    // Masked: the address is computed and read only where the mask holds.
    Value *cond = b_.CreateICmpNE(emitIndex(s, *in.mask), b_.getInt64(0));
    Function *f = b_.GetInsertBlock()->getParent();
    BasicBlock *from = b_.GetInsertBlock();
    BasicBlock *then = BasicBlock::Create(ctx_, "masked.load", f);
    BasicBlock *merge = BasicBlock::Create(ctx_, "masked.merge", f);
    b_.CreateCondBr(cond, then, merge);
    b_.SetInsertPoint(then);
    Value *loaded = convert(loadElement(s, in.operand, elementPtr(s, in.operand, in.index)), od, d);
    BasicBlock *thenEnd = b_.GetInsertBlock();
    b_.CreateBr(merge);
    b_.SetInsertPoint(merge);
    llvm::PHINode *phi = b_.CreatePHI(computeType(d), 2);
    phi->addIncoming(loaded, thenEnd);
    phi->addIncoming(constant(in.fallback, d), from);
    result = phi;
    break;
  }
  case O::Const: result = constant(in.constant, d); break;
  case O::Index: result = convert(emitIndex(s, in.indexValue), TESSERA_DTYPE_I64, d); break;
  case O::Cast: {
    tessera_dtype_t from = argType(0);
    Value *x = arg(0);
    if (isFloat(from) && !isFloat(d) && d != TESSERA_DTYPE_BOOL && in.saturate) {
      x = convert(x, from, TESSERA_DTYPE_F64);
      result = isUnsigned(d) ? b_.CreateIntrinsic(llvm::Intrinsic::fptoui_sat, {computeType(d), f64_}, {x})
                             : b_.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {computeType(d), f64_}, {x});
    } else {
      result = convert(x, from, d);
      if (isNarrowFloat(d))
        result = roundNarrow(result, d, in.saturate);
    }
    break;
  }
  case O::Eq: case O::Ne: case O::Lt: case O::Le: case O::Gt: case O::Ge: {
    tessera_dtype_t ct = commonType(argType(0), argType(1));
    Value *x = argAs(0, ct), *y = argAs(1, ct);
    Value *c;
    if (isFloat(ct)) {
      switch (in.op) {
      case O::Eq: c = b_.CreateFCmpOEQ(x, y); break;
      case O::Ne: c = b_.CreateFCmpUNE(x, y); break;
      case O::Lt: c = b_.CreateFCmpOLT(x, y); break;
      case O::Le: c = b_.CreateFCmpOLE(x, y); break;
      case O::Gt: c = b_.CreateFCmpOGT(x, y); break;
      default: c = b_.CreateFCmpOGE(x, y); break;
      }
    } else {
      bool u = isUnsigned(ct);
      switch (in.op) {
      case O::Eq: c = b_.CreateICmpEQ(x, y); break;
      case O::Ne: c = b_.CreateICmpNE(x, y); break;
      case O::Lt: c = u ? b_.CreateICmpULT(x, y) : b_.CreateICmpSLT(x, y); break;
      case O::Le: c = u ? b_.CreateICmpULE(x, y) : b_.CreateICmpSLE(x, y); break;
      case O::Gt: c = u ? b_.CreateICmpUGT(x, y) : b_.CreateICmpSGT(x, y); break;
      default: c = u ? b_.CreateICmpUGE(x, y) : b_.CreateICmpSGE(x, y); break;
      }
    }
    result = convert(c, TESSERA_DTYPE_BOOL, d);
    break;
  }
  case O::And: case O::Or: case O::Xor: {
    if (d == TESSERA_DTYPE_BOOL || isFloat(d)) {
      Value *x = truthy(arg(0), argType(0)), *y = truthy(arg(1), argType(1));
      Value *c = in.op == O::And ? b_.CreateAnd(x, y) : in.op == O::Or ? b_.CreateOr(x, y) : b_.CreateXor(x, y);
      result = convert(c, TESSERA_DTYPE_BOOL, d);
    } else {
      Value *x = argAs(0, d), *y = argAs(1, d);
      result = in.op == O::And ? b_.CreateAnd(x, y) : in.op == O::Or ? b_.CreateOr(x, y) : b_.CreateXor(x, y);
    }
    break;
  }
  case O::Not:
    result = d == TESSERA_DTYPE_BOOL || isFloat(d) ? convert(b_.CreateNot(truthy(arg(0), argType(0))), TESSERA_DTYPE_BOOL, d)
                                                   : b_.CreateNot(argAs(0, d));
    break;
  case O::Select: result = b_.CreateSelect(truthy(arg(0), argType(0)), argAs(1, d), argAs(2, d)); break;
  case O::Reduce: {
    auto &acc = accs.at(in.result);
    tessera_dtype_t at = (in.reduce == sir::ReduceKind::Argmax || in.reduce == sir::ReduceKind::Argmin)
                             ? commonType(argType(0), argType(0))
                             : d;
    if (isNarrowFloat(at))
      at = TESSERA_DTYPE_F32;
    Type *t = computeType(at);
    Value *x = argAs(0, at);
    Value *cur = b_.CreateLoad(t, acc[0]);
    llvm::FastMathFlags reassoc;
    if (!s.deterministic)
      reassoc.setAllowReassoc();
    Value *next = nullptr;
    switch (in.reduce) {
    case sir::ReduceKind::Sum:
      if (isFloat(at)) {
        next = b_.CreateFAdd(cur, x);
        llvm::cast<llvm::Instruction>(next)->setFastMathFlags(reassoc);
      } else {
        next = b_.CreateAdd(cur, x);
      }
      break;
    case sir::ReduceKind::Prod:
      if (isFloat(at)) {
        next = b_.CreateFMul(cur, x);
        llvm::cast<llvm::Instruction>(next)->setFastMathFlags(reassoc);
      } else {
        next = b_.CreateMul(cur, x);
      }
      break;
    case sir::ReduceKind::Max: next = emitBinary(O::Max, cur, x, at); break;
    case sir::ReduceKind::Min: next = emitBinary(O::Min, cur, x, at); break;
    case sir::ReduceKind::Argmax:
    case sir::ReduceKind::Argmin: {
      // First occurrence wins; the first NaN wins over everything (NumPy).
      bool isMax = in.reduce == sir::ReduceKind::Argmax;
      Value *take;
      if (isFloat(at)) {
        Value *better = isMax ? b_.CreateFCmpOGT(x, cur) : b_.CreateFCmpOLT(x, cur);
        Value *nanFirst = b_.CreateAnd(b_.CreateFCmpUNO(x, x), b_.CreateFCmpORD(cur, cur));
        take = b_.CreateOr(better, nanFirst);
      } else {
        bool u = isUnsigned(at);
        take = isMax ? (u ? b_.CreateICmpUGT(x, cur) : b_.CreateICmpSGT(x, cur))
                     : (u ? b_.CreateICmpULT(x, cur) : b_.CreateICmpSLT(x, cur));
      }
      next = b_.CreateSelect(take, x, cur);
      Value *curIdx = b_.CreateLoad(i64_, acc[1]);
      Value *nextIdx = b_.CreateSelect(take, linear, curIdx);
      b_.CreateStore(nextIdx, acc[1]);
      b_.CreateStore(next, acc[0]);
      s.vals[in.result] = convert(nextIdx, TESSERA_DTYPE_I64, d);
      return;
    }
    }
    b_.CreateStore(next, acc[0]);
    result = convert(next, at, d);
    break;
  }
  default: {
    int arity = sir::opArity(in.op);
    if (arity == 1) {
      result = emitUnary(in.op, argAs(0, d), d);
    } else if (arity == 2) {
      result = emitBinary(in.op, argAs(0, d), argAs(1, d), d);
    } else {
      result = constant(0, d);
    }
    break;
  }
  }
  s.vals[in.result] = result;
}

// Emits stages [first, end) at the current parallel point (s.par set).
void Lowerer::emitStages(Fn &s, size_t first) {
  const sir::Kernel &k = *s.k;
  for (size_t si = first; si < k.stages.size(); ++si) {
    const sir::Stage &st = k.stages[si];
    // Accumulators, initialized before the stage's loops.
    std::map<int64_t, std::vector<llvm::AllocaInst *>> accs;
    for (const sir::Instr &in : st.body) {
      if (in.isStore || in.op != sir::Op::Reduce)
        continue;
      bool arg = in.reduce == sir::ReduceKind::Argmax || in.reduce == sir::ReduceKind::Argmin;
      tessera_dtype_t at = arg ? commonType(s.dtypes.at(in.args[0]), s.dtypes.at(in.args[0])) : in.dtype;
      if (isNarrowFloat(at))
        at = TESSERA_DTYPE_F32;
      Type *t = computeType(at);
      llvm::AllocaInst *a = entryAlloca(s, t);
      Value *init;
      bool isF = isFloat(at);
      unsigned bits = t->getPrimitiveSizeInBits();
      bool u = isUnsigned(at);
      switch (in.reduce) {
      case sir::ReduceKind::Sum: init = isF ? llvm::ConstantFP::get(t, 0.0) : llvm::ConstantInt::get(t, 0); break;
      case sir::ReduceKind::Prod: init = isF ? llvm::ConstantFP::get(t, 1.0) : llvm::ConstantInt::get(t, 1); break;
      case sir::ReduceKind::Max:
      case sir::ReduceKind::Argmax:
        init = isF ? llvm::ConstantFP::getInfinity(t, true)
                   : llvm::ConstantInt::get(t, u ? llvm::APInt::getMinValue(bits) : llvm::APInt::getSignedMinValue(bits));
        break;
      default:
        init = isF ? llvm::ConstantFP::getInfinity(t, false)
                   : llvm::ConstantInt::get(t, u ? llvm::APInt::getMaxValue(bits) : llvm::APInt::getSignedMaxValue(bits));
        break;
      }
      b_.CreateStore(init, a);
      std::vector<llvm::AllocaInst *> slots{a};
      if (arg) {
        llvm::AllocaInst *idx = entryAlloca(s, i64_);
        b_.CreateStore(b_.getInt64(0), idx);
        slots.push_back(idx);
      }
      accs[in.result] = slots;
    }
    std::vector<Value *> extents;
    for (const sir::IndexExpr &e : st.inner)
      extents.push_back(emitIndex(s, e));
    std::map<int64_t, Value *> outer = s.vals;
    s.inner.assign(st.inner.size(), nullptr);
    std::function<void(size_t, Value *)> nest = [&](size_t d, Value *linear) {
      if (d == st.inner.size()) {
        for (const sir::Instr &in : st.body)
          emitInstr(s, in, accs, linear);
        return;
      }
      emitLoop(b_.getInt64(0), extents[d], [&](Value *iv) {
        s.inner[d] = iv;
        nest(d + 1, b_.CreateAdd(b_.CreateMul(linear, extents[d]), iv));
      });
    };
    nest(0, b_.getInt64(0));
    // Only reduce results survive the stage.
    s.vals = outer;
    for (const sir::Instr &in : st.body) {
      if (in.isStore || in.op != sir::Op::Reduce)
        continue;
      auto &acc = accs.at(in.result);
      bool arg = in.reduce == sir::ReduceKind::Argmax || in.reduce == sir::ReduceKind::Argmin;
      if (arg) {
        s.vals[in.result] = convert(b_.CreateLoad(i64_, acc[1]), TESSERA_DTYPE_I64, in.dtype);
      } else {
        tessera_dtype_t at = isNarrowFloat(in.dtype) ? TESSERA_DTYPE_F32 : in.dtype;
        s.vals[in.result] = convert(b_.CreateLoad(computeType(at), acc[0]), at, in.dtype);
      }
    }
    s.inner.clear();
  }
}

Function *Lowerer::emitKernel(const sir::Kernel &k, const std::string &name) {
  auto *fnTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, i64_, i64_}, false);
  Function *f = newFunction(name, fnTy);
  Fn s;
  s.k = &k;
  s.fn = f;
  s.entry = BasicBlock::Create(ctx_, "entry", f);
  b_.SetInsertPoint(s.entry);
  auto args = f->arg_begin();
  llvm::Argument *buffers = args++, *scalars = args++, *begin = args++, *end = args++;
  emitPrologue(s, buffers, scalars);
  const size_t np = k.parallel.size(), ns = program_.symbols.size();
  std::vector<Value *> extent(np), tile(np), count(np);
  for (size_t d = 0; d < np; ++d) {
    extent[d] = emitIndex(s, k.parallel[d]);
    Value *t = b_.CreateLoad(i64_, b_.CreateConstInBoundsGEP1_64(i64_, scalars, ns + d));
    tile[d] = b_.CreateSelect(b_.CreateICmpSLT(t, b_.getInt64(1)), b_.getInt64(1), t);
    Value *e = b_.CreateSelect(b_.CreateICmpSLT(extent[d], b_.getInt64(0)), b_.getInt64(0), extent[d]);
    count[d] = b_.CreateSDiv(b_.CreateAdd(e, b_.CreateSub(tile[d], b_.getInt64(1))), tile[d]);
    count[d] = b_.CreateSelect(b_.CreateICmpSLT(count[d], b_.getInt64(1)), b_.getInt64(1), count[d]);
  }
  s.par.assign(np, nullptr);
  emitLoop(begin, end, [&](Value *t) {
    std::vector<Value *> lo(np), hi(np);
    Value *rest = t;
    for (size_t d = np; d-- > 0;) {
      Value *c = b_.CreateURem(rest, count[d]);
      rest = b_.CreateUDiv(rest, count[d]);
      lo[d] = b_.CreateMul(c, tile[d]);
      Value *h = b_.CreateAdd(lo[d], tile[d]);
      hi[d] = b_.CreateSelect(b_.CreateICmpSLT(h, extent[d]), h, extent[d]);
    }
    std::function<void(size_t)> nest = [&](size_t d) {
      if (d == np) {
        emitStages(s, 0);
        return;
      }
      emitLoop(lo[d], hi[d], [&](Value *iv) {
        s.par[d] = iv;
        nest(d + 1);
      });
    };
    nest(0);
  });
  b_.CreateRetVoid();
  return f;
}

Function *Lowerer::emitEpilogue(const sir::Kernel &k, const GemmForm &form, const std::string &name) {
  auto *fnTy = llvm::FunctionType::get(b_.getVoidTy(), {ptr_, ptr_, ptr_, i64_, i64_, i64_, i64_, ptr_, i64_}, false);
  Function *f = newFunction(name, fnTy);
  Fn s;
  s.k = &k;
  s.fn = f;
  s.entry = BasicBlock::Create(ctx_, "entry", f);
  b_.SetInsertPoint(s.entry);
  auto args = f->arg_begin();
  llvm::Argument *buffers = args++, *scalars = args++, *batch = args++;
  llvm::Argument *m0 = args++, *m1 = args++, *n0 = args++, *n1 = args++, *c = args++, *ldc = args++;
  emitPrologue(s, buffers, scalars);
  const size_t nb = form.batchDims;
  s.par.assign(nb + 2, nullptr);
  for (size_t d = 0; d < nb; ++d)
    s.par[d] = b_.CreateLoad(i64_, b_.CreateConstInBoundsGEP1_64(i64_, batch, d));
  const tessera_dtype_t rd = k.stages[0].body[3].dtype;
  emitLoop(m0, m1, [&](Value *m) {
    s.par[nb] = m;
    Value *row = b_.CreateGEP(f32_, c, b_.CreateMul(b_.CreateSub(m, m0), ldc));
    emitLoop(n0, n1, [&](Value *n) {
      s.par[nb + 1] = n;
      std::map<int64_t, Value *> saved = s.vals;
      Value *v = b_.CreateLoad(f32_, b_.CreateGEP(f32_, row, b_.CreateSub(n, n0)));
      s.vals[form.result] = convert(v, TESSERA_DTYPE_F32, rd);
      emitStages(s, 1);
      s.vals = saved;
    });
  });
  b_.CreateRetVoid();
  return f;
}

// C[mr x nr] (+)= sum_k A[k][0..mr) (x) B[k][0..nr): mr x (nr / vl) vector
// accumulators live in registers across the k loop (unrolled by 4); each
// step loads nr/vl vectors of B and broadcasts mr scalars of A into FMAs.
Function *Lowerer::emitMicroKernel(int mr, int nr, int vl, const std::string &name) {
  auto *fnTy = llvm::FunctionType::get(b_.getVoidTy(), {i64_, ptr_, ptr_, ptr_, i64_, i64_}, false);
  Function *f = newFunction(name, fnTy);
  if (vl * 32 >= 512)
    f->addFnAttr("min-legal-vector-width", "512");
  auto args = f->arg_begin();
  llvm::Argument *kc = args++, *a = args++, *bp = args++, *c = args++, *ldc = args++, *accumulate = args++;
  for (llvm::Argument *p : {a, bp, c})
    p->addAttr(llvm::Attribute::NoAlias);
  const int nj = nr / vl;
  auto *vt = llvm::FixedVectorType::get(f32_, vl);
  BasicBlock *entry = BasicBlock::Create(ctx_, "entry", f);
  b_.SetInsertPoint(entry);
  std::vector<Value *> acc(mr * nj, llvm::Constant::getNullValue(vt));
  const unsigned bAlign = std::min(64, vl * 4);

  auto step = [&](Value *k, std::vector<Value *> &cur) {
    std::vector<Value *> bv(nj);
    Value *brow = b_.CreateGEP(f32_, bp, b_.CreateMul(k, b_.getInt64(nr)));
    for (int j = 0; j < nj; ++j)
      bv[j] = b_.CreateAlignedLoad(vt, b_.CreateConstInBoundsGEP1_64(f32_, brow, j * vl), llvm::Align(bAlign));
    Value *arow = b_.CreateGEP(f32_, a, b_.CreateMul(k, b_.getInt64(mr)));
    for (int i = 0; i < mr; ++i) {
      Value *s = b_.CreateLoad(f32_, b_.CreateConstInBoundsGEP1_64(f32_, arow, i));
      Value *splat = b_.CreateVectorSplat(vl, s);
      for (int j = 0; j < nj; ++j)
        cur[i * nj + j] = b_.CreateIntrinsic(llvm::Intrinsic::fma, {vt}, {splat, bv[j], cur[i * nj + j]});
    }
  };
  // Loop over k in steps of `unroll` then a remainder loop of single steps.
  auto loop = [&](Value *lo, Value *hi, int unroll) {
    BasicBlock *pre = b_.GetInsertBlock();
    BasicBlock *body = BasicBlock::Create(ctx_, "k.loop", f);
    BasicBlock *exit = BasicBlock::Create(ctx_, "k.exit", f);
    Value *limit = b_.CreateSub(hi, b_.getInt64(unroll - 1));
    b_.CreateCondBr(b_.CreateICmpSLT(lo, limit), body, exit);
    b_.SetInsertPoint(body);
    llvm::PHINode *kv = b_.CreatePHI(i64_, 2);
    kv->addIncoming(lo, pre);
    std::vector<llvm::PHINode *> phis;
    std::vector<Value *> cur;
    for (Value *v : acc) {
      llvm::PHINode *p = b_.CreatePHI(vt, 2);
      p->addIncoming(v, pre);
      phis.push_back(p);
      cur.push_back(p);
    }
    for (int u = 0; u < unroll; ++u)
      step(b_.CreateAdd(kv, b_.getInt64(u)), cur);
    Value *next = b_.CreateAdd(kv, b_.getInt64(unroll));
    BasicBlock *latch = b_.GetInsertBlock();
    kv->addIncoming(next, latch);
    for (size_t i = 0; i < phis.size(); ++i)
      phis[i]->addIncoming(cur[i], latch);
    b_.CreateCondBr(b_.CreateICmpSLT(next, limit), body, exit);
    b_.SetInsertPoint(exit);
    llvm::PHINode *kOut = b_.CreatePHI(i64_, 2);
    kOut->addIncoming(lo, pre);
    kOut->addIncoming(next, latch);
    for (size_t i = 0; i < acc.size(); ++i) {
      llvm::PHINode *p = b_.CreatePHI(vt, 2);
      p->addIncoming(acc[i], pre);
      p->addIncoming(cur[i], latch);
      acc[i] = p;
    }
    return kOut;
  };
  Value *k = loop(b_.getInt64(0), kc, 4);
  loop(k, kc, 1);
  Value *accFlag = b_.CreateICmpNE(accumulate, b_.getInt64(0));
  for (int i = 0; i < mr; ++i) {
    Value *crow = b_.CreateGEP(f32_, c, b_.CreateMul(b_.getInt64(i), ldc));
    for (int j = 0; j < nj; ++j) {
      Value *p = b_.CreateConstInBoundsGEP1_64(f32_, crow, j * vl);
      Value *old = b_.CreateAlignedLoad(vt, p, llvm::Align(4));
      Value *v = b_.CreateSelect(accFlag, b_.CreateFAdd(acc[i * nj + j], old), acc[i * nj + j]);
      b_.CreateAlignedStore(v, p, llvm::Align(4));
    }
  }
  b_.CreateRetVoid();
  return f;
}

std::string printModule(const llvm::Module &m) {
  std::string text;
  llvm::raw_string_ostream os(text);
  m.print(os, nullptr);
  return text;
}

void optimize(llvm::Module &m, llvm::TargetMachine &tm, unsigned level) {
  llvm::PipelineTuningOptions pto;
  pto.LoopVectorization = level >= 2;
  pto.SLPVectorization = level >= 2;
  pto.LoopUnrolling = level >= 2;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel ol = level == 0   ? llvm::OptimizationLevel::O0
                               : level == 1 ? llvm::OptimizationLevel::O1
                               : level == 2 ? llvm::OptimizationLevel::O2
                                            : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager mpm =
      level == 0 ? pb.buildO0DefaultPipeline(ol) : pb.buildPerModuleDefaultPipeline(ol);
  mpm.run(m, mam);
}

std::string emitAssembly(const llvm::Module &m, llvm::TargetMachine &tm) {
  std::unique_ptr<llvm::Module> clone = llvm::CloneModule(m);
  llvm::SmallString<0> text;
  llvm::raw_svector_ostream os(text);
  llvm::legacy::PassManager pm;
  if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::AssemblyFile))
    return "; this target cannot emit assembly\n";
  pm.run(*clone);
  return std::string(text.str());
}

} // namespace

// ---- JIT ----------------------------------------------------------------------

struct JitProgram::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
};

JitProgram::JitProgram() : impl_(std::make_unique<Impl>()) {}
JitProgram::~JitProgram() = default;

bool matchesGemm(const sir::Kernel &k, std::string *why) {
  GemmForm form;
  return matchGemmForm(k, &form, why);
}

namespace {

// One partition of a program: its own context and module, lowered,
// optimized and compiled to an object file on one thread.
struct Partition {
  std::vector<size_t> kernels;
  bool micro = false;
  std::unique_ptr<llvm::MemoryBuffer> object;
  std::string dataLayout, tileText, targetText, error;
};

// Rough per-kernel compile cost: instructions over all stages, with the
// GEMM path's epilogue counted twice (it is lowered a second time).
size_t compileWeight(const sir::Kernel &k, bool gemm) {
  size_t n = 1;
  for (const sir::Stage &st : k.stages)
    n += st.body.size();
  return gemm ? 2 * n + 8 : n;
}

void compilePartition(Partition &part, const sir::Program &program, const CompileOptions &options,
                      const llvm::orc::JITTargetMachineBuilder &jtmb, const std::vector<bool> &gemm, int mr,
                      int nr, int vl) {
  llvm::orc::JITTargetMachineBuilder builder = jtmb; // createTargetMachine() is not const
  auto tm = builder.createTargetMachine();
  if (!tm) {
    part.error = "cannot create an LLVM target machine for " + options.target.cpu + ": " +
                 llvm::toString(tm.takeError());
    return;
  }
  llvm::LLVMContext ctx;
  llvm::Module mod("tessera", ctx);
  mod.setDataLayout((*tm)->createDataLayout());
  part.dataLayout = mod.getDataLayout().getStringRepresentation();
  mod.setTargetTriple(llvm::sys::getProcessTriple());
  Lowerer lowerer(ctx, mod, program, options.target);
  for (size_t i : part.kernels) {
    const sir::Kernel &k = program.kernels[i];
    std::string name = "tessera_k" + std::to_string(i);
    Function *loop = lowerer.emitKernel(k, name);
    if (gemm[i]) {
      GemmForm form;
      std::string why;
      matchGemmForm(k, &form, &why);
      lowerer.emitEpilogue(k, form, name + "_epilogue");
      // The loop nest is only the fallback of the GEMM path (packing over
      // 1 GiB): optimize it for size, which keeps compile time down.
      loop->addFnAttr(llvm::Attribute::OptimizeForSize);
      loop->addFnAttr(llvm::Attribute::MinSize);
    }
  }
  if (part.micro)
    lowerer.emitMicroKernel(mr, nr, vl, "tessera_gemm_micro");
  lowerer.finish();

  std::string verifyErrors;
  llvm::raw_string_ostream vos(verifyErrors);
  if (llvm::verifyModule(mod, &vos)) {
    part.error = "internal error: generated LLVM IR is invalid: " + vos.str();
    return;
  }
  if (options.dumpTile && options.dump)
    part.tileText = printModule(mod);
  optimize(mod, **tm, options.optLevel);
  if (options.dumpTarget && options.dump)
    part.targetText = emitAssembly(mod, **tm);
  llvm::orc::SimpleCompiler compiler(**tm);
  auto object = compiler(mod);
  if (!object) {
    part.error = "code generation failed: " + llvm::toString(object.takeError());
    return;
  }
  part.object = std::move(*object);
}

// Threads used to compile one program: the cores, at most 4 and at most one
// per partition worth having (TESSERA_COMPILE_THREADS overrides).
unsigned compileThreads(size_t kernels) {
  unsigned n = std::thread::hardware_concurrency();
  if (const char *env = std::getenv("TESSERA_COMPILE_THREADS"))
    n = static_cast<unsigned>(std::max(1L, std::strtol(env, nullptr, 10)));
  n = std::clamp(n, 1u, 4u);
  return static_cast<unsigned>(std::min<size_t>(n, std::max<size_t>(kernels, 1)));
}

} // namespace

namespace {

std::atomic<uint64_t> gCodegenCount{0};

llvm::orc::JITTargetMachineBuilder targetMachineBuilder(const TargetInfo &target, unsigned optLevel) {
  llvm::orc::JITTargetMachineBuilder jtmb((llvm::Triple(llvm::sys::getProcessTriple())));
  jtmb.setCPU(target.cpu);
  llvm::SmallVector<llvm::StringRef, 64> feats;
  llvm::StringRef(target.features).split(feats, ',', -1, false);
  std::vector<std::string> featList;
  for (llvm::StringRef f : feats)
    featList.push_back(f.str());
  jtmb.addFeatures(featList);
  jtmb.setCodeGenOptLevel(optLevel >= 2 ? llvm::CodeGenOptLevel::Aggressive : llvm::CodeGenOptLevel::Default);
  return jtmb;
}

} // namespace

uint64_t codegenCount() { return gCodegenCount.load(std::memory_order_relaxed); }

bool objectImageCompatible(const ObjectImage &image, std::string *why) {
  if (image.llvmVersion != LLVM_VERSION_STRING) {
    *why = "code generated by LLVM " + image.llvmVersion + "; this plugin uses LLVM " LLVM_VERSION_STRING;
    return false;
  }
  if (image.triple != llvm::sys::getProcessTriple()) {
    *why = "code for target triple " + image.triple + "; this process is " + llvm::sys::getProcessTriple();
    return false;
  }
  return true;
}

std::unique_ptr<JitProgram> JitProgram::compile(const sir::Program &program, const CompileOptions &options,
                                                std::string *error) {
  initializeLlvm();
  gCodegenCount.fetch_add(1, std::memory_order_relaxed);
  const TargetInfo &target = options.target;
  llvm::orc::JITTargetMachineBuilder jtmb = targetMachineBuilder(target, options.optLevel);

  // Micro-kernel register block from the vector ISA: 14x32 (AVX-512: 28 zmm
  // accumulators of 32), 6x16 (AVX2/FMA: 12 of 16 ymm), 4x8 (SSE: 8 of 16 xmm).
  int vl = target.avx512 ? 16 : target.vectorBits >= 256 ? 8 : 4;
  int mr = target.avx512 ? 14 : target.vectorBits >= 256 ? 6 : 4;
  int nr = vl * 2;

  std::vector<bool> gemm(program.kernels.size(), false);
  std::vector<size_t> weight(program.kernels.size());
  for (size_t i = 0; i < program.kernels.size(); ++i) {
    const sir::Kernel &k = program.kernels[i];
    GemmForm form;
    std::string why;
    gemm[i] = k.knobString("library") != "generic" && matchGemmForm(k, &form, &why);
    weight[i] = compileWeight(k, gemm[i]);
  }
  bool anyGemm = std::find(gemm.begin(), gemm.end(), true) != gemm.end();

  // Kernels are independent functions: split them over partitions (largest
  // first onto the lightest), each lowered, optimized and compiled to an
  // object on its own thread with its own LLVMContext and TargetMachine.
  std::vector<Partition> parts(compileThreads(program.kernels.size()));
  std::vector<size_t> load(parts.size(), 0);
  std::vector<size_t> order(program.kernels.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return weight[a] > weight[b]; });
  if (anyGemm) {
    parts[0].micro = true;
    load[0] += 16;
  }
  for (size_t i : order) {
    size_t p = std::min_element(load.begin(), load.end()) - load.begin();
    parts[p].kernels.push_back(i);
    load[p] += weight[i];
  }
  for (Partition &p : parts)
    std::sort(p.kernels.begin(), p.kernels.end());
  {
    std::vector<std::thread> threads;
    for (size_t p = 1; p < parts.size(); ++p)
      threads.emplace_back([&, p] { compilePartition(parts[p], program, options, jtmb, gemm, mr, nr, vl); });
    compilePartition(parts[0], program, options, jtmb, gemm, mr, nr, vl);
    for (std::thread &t : threads)
      t.join();
  }
  std::string tileText, targetText;
  for (Partition &p : parts) {
    if (!p.error.empty()) {
      *error = p.error;
      return nullptr;
    }
    tileText += p.tileText;
    targetText += p.targetText;
  }
  if (options.dumpTile && options.dump)
    options.dump("tile", tileText);
  if (options.dumpTarget && options.dump)
    options.dump("target", targetText);

  ObjectImage image;
  image.llvmVersion = LLVM_VERSION_STRING;
  image.triple = llvm::sys::getProcessTriple();
  image.dataLayout = parts[0].dataLayout;
  for (Partition &p : parts)
    image.objects.emplace_back(p.object->getBufferStart(), p.object->getBufferSize());
  if (anyGemm) {
    image.microSymbol = "tessera_gemm_micro";
    image.mr = mr;
    image.nr = nr;
  }
  for (size_t i = 0; i < program.kernels.size(); ++i) {
    std::string name = "tessera_k" + std::to_string(i);
    image.kernels.push_back({name, gemm[i] ? name + "_epilogue" : std::string()});
  }
  return link(std::move(image), target, error);
}

std::unique_ptr<JitProgram> JitProgram::load(ObjectImage image, const TargetInfo &target, std::string *error) {
  initializeLlvm();
  return link(std::move(image), target, error);
}

std::unique_ptr<JitProgram> JitProgram::link(ObjectImage image, const TargetInfo &target, std::string *error) {
  auto layout = llvm::DataLayout::parse(image.dataLayout);
  if (!layout) {
    *error = "bad data layout: " + llvm::toString(layout.takeError());
    return nullptr;
  }
  // The data layout is given and IR compilers are created on demand (none
  // ever is: only objects are added), so creating the JIT builds no
  // TargetMachine. No platform: the kernels have no static initializers.
  auto jit = llvm::orc::LLJITBuilder()
                 .setJITTargetMachineBuilder(targetMachineBuilder(target, /*optLevel=*/3))
                 .setDataLayout(std::move(*layout))
                 .setCompileFunctionCreator([](llvm::orc::JITTargetMachineBuilder jtmb)
                                                -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
                   return std::make_unique<llvm::orc::ConcurrentIRCompiler>(std::move(jtmb));
                 })
                 .setPlatformSetUp(llvm::orc::setUpInactivePlatform)
                 .create();
  if (!jit) {
    *error = "cannot create the JIT: " + llvm::toString(jit.takeError());
    return nullptr;
  }
  llvm::orc::JITDylib &jd = (*jit)->getMainJITDylib();
  char prefix = (*jit)->getDataLayout().getGlobalPrefix();
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix);
  if (!process) {
    *error = "cannot search process symbols: " + llvm::toString(process.takeError());
    return nullptr;
  }
  jd.addGenerator(std::move(*process));
  if (hasLibmvec()) {
    if (auto mvec = llvm::orc::DynamicLibrarySearchGenerator::Load("libmvec.so.1", prefix))
      jd.addGenerator(std::move(*mvec));
    else
      llvm::consumeError(mvec.takeError());
  }
  llvm::orc::SymbolMap helpers;
  auto &es = (*jit)->getExecutionSession();
  helpers[es.intern("tessera_cpu_f32_to_e4m3")] = {llvm::orc::ExecutorAddr::fromPtr(&tessera_cpu_f32_to_e4m3),
                                                   llvm::JITSymbolFlags::Exported};
  helpers[es.intern("tessera_cpu_f32_to_e5m2")] = {llvm::orc::ExecutorAddr::fromPtr(&tessera_cpu_f32_to_e5m2),
                                                   llvm::JITSymbolFlags::Exported};
  if (llvm::Error e = jd.define(llvm::orc::absoluteSymbols(std::move(helpers)))) {
    *error = "cannot define helper symbols: " + llvm::toString(std::move(e));
    return nullptr;
  }
  // The JIT gets buffers that borrow the image's bytes, which the program
  // owns from here on.
  std::unique_ptr<JitProgram> out(new JitProgram());
  out->image_ = std::move(image);
  const ObjectImage &img = out->image_;
  for (const std::string &object : img.objects) {
    auto buffer = llvm::MemoryBuffer::getMemBuffer(llvm::StringRef(object), "tessera-object",
                                                   /*RequiresNullTerminator=*/false);
    if (llvm::Error e = (*jit)->addObjectFile(std::move(buffer))) {
      *error = "cannot add an object to the JIT: " + llvm::toString(std::move(e));
      return nullptr;
    }
  }

  auto lookup = [&](const std::string &name) -> void * {
    auto sym = (*jit)->lookup(name);
    if (!sym) {
      *error = "JIT lookup of " + name + " failed: " + llvm::toString(sym.takeError());
      return nullptr;
    }
    return sym->toPtr<void *>();
  };
  MicroKernelFn micro = nullptr;
  if (!img.microSymbol.empty() && !(micro = reinterpret_cast<MicroKernelFn>(lookup(img.microSymbol))))
    return nullptr;
  for (const ObjectImage::Kernel &k : img.kernels) {
    CompiledKernel ck;
    if (!(ck.loop = reinterpret_cast<KernelFn>(lookup(k.loop))))
      return nullptr;
    if (!k.epilogue.empty()) {
      if (!micro) {
        *error = "kernel " + k.loop + " has a GEMM epilogue but the program has no micro-kernel";
        return nullptr;
      }
      if (!(ck.epilogue = reinterpret_cast<EpilogueFn>(lookup(k.epilogue))))
        return nullptr;
      ck.micro = micro;
      ck.mr = img.mr;
      ck.nr = img.nr;
    }
    out->kernels_.push_back(ck);
  }
  out->impl_->jit = std::move(*jit);
  return out;
}

} // namespace tessera::cpu
