// The cpu plugin's serialized machine code (backends/cpu/ObjectCode.h and
// JitProgram::load): a loaded program runs no code generation and computes
// bit-identical results to the compiled one; damaged, truncated and forged
// bytes are refused with the right kind of error, never a crash.
#include "Codegen.h"
#include "Gemm.h"
#include "ObjectCode.h"
#include "ThreadPool.h"

#include "SirKernels.h"

#include "tessera/sdk/schedule_ir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

namespace sir = tessera::schedule;
using namespace tessera::cpu;

// A GEMM-path matmul with an epilogue (micro-kernel + epilogue symbols), a
// softmax and an elementwise kernel: several partitions on a multi-core host.
std::string programText() {
  return "tessera-schedule v1\n"
         "symbols M N\n"
         "kernel \"mm\" matmul {\n"
         "  operand 0 in f32 [s0, 48]\n"
         "  operand 1 in f32 [48, s1]\n"
         "  operand 2 out f32 [s0, s1]\n"
         "  parallel [s0, s1]\n"
         "  stage reduce [48] {\n"
         "    v0: f32 = load 0 [p0, r0]\n"
         "    v1: f32 = load 1 [r0, p1]\n"
         "    v2: f32 = mul v0 v1\n"
         "    v3: f32 = reduce sum v2\n"
         "  }\n"
         "  stage map [] {\n"
         "    v4: f32 = tanh v3\n"
         "    store 2 [p0, p1] v4\n"
         "  }\n"
         "}\n" +
         tessera::testing::softmaxKernel("f32") +
         "kernel \"ew\" loop {\n"
         "  operand 0 in f32 [s0, s1]\n"
         "  operand 1 out f32 [s0, s1]\n"
         "  parallel [s0, s1]\n"
         "  stage map [] {\n"
         "    v0: f32 = load 0 [p0, p1]\n"
         "    v1: f32 = exp v0\n"
         "    v2: f32 = sin v1\n"
         "    store 1 [p0, p1] v2\n"
         "  }\n"
         "}\n";
}

sir::Program parse(const std::string &text) {
  sir::Program p;
  sir::ParseError err;
  EXPECT_TRUE(sir::parseProgram(text, &p, &err)) << err.str();
  return p;
}

// Runs every kernel of programText() at M x N on fixed random inputs and
// returns the outputs, concatenated as bytes.
std::string runAll(const sir::Program &p, const JitProgram &jit, int64_t m, int64_t n) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  auto random = [&](size_t count) {
    std::vector<float> v(count);
    for (float &x : v)
      x = dist(rng);
    return v;
  };
  std::string out;
  ThreadPool pool;
  // mm: [M, 48] x [48, N] through the GEMM path.
  {
    std::vector<float> a = random(size_t(m * 48)), b = random(size_t(48 * n)), c(size_t(m * n), NAN);
    void *bufs[3] = {a.data(), b.data(), c.data()};
    int64_t scalars[2] = {m, n};
    GemmForm form;
    std::string why;
    EXPECT_TRUE(matchGemmForm(p.kernels[0], &form, &why)) << why;
    EXPECT_TRUE(jit.kernel(0).epilogue && jit.kernel(0).micro);
    EXPECT_TRUE(runGemm(p.kernels[0], form, jit.kernel(0), bufs, scalars, 2, pool, 2, GemmBlocking{}));
    out.append(reinterpret_cast<const char *>(c.data()), c.size() * sizeof(float));
  }
  // softmax and ew: the loop nest as one tile (tile sizes = extents).
  for (size_t k = 1; k < 3; ++k) {
    std::vector<float> x = random(size_t(m * n)), y(size_t(m * n), NAN);
    void *bufs[2] = {x.data(), y.data()};
    std::vector<int64_t> scalars = {m, n};
    for (const sir::IndexExpr &e : p.kernels[k].parallel)
      scalars.push_back(sir::evalIndex(e, scalars.data(), nullptr, nullptr, nullptr));
    jit.kernel(k).loop(bufs, scalars.data(), 0, 1);
    out.append(reinterpret_cast<const char *>(y.data()), y.size() * sizeof(float));
  }
  return out;
}

struct Compiled {
  sir::Program program;
  std::unique_ptr<JitProgram> jit;
  SerializedExecutable blob;
};

Compiled compileProgram() {
  Compiled c;
  c.program = parse(programText());
  CompileOptions options;
  options.target = hostTarget();
  std::string error;
  c.jit = JitProgram::compile(c.program, options, &error);
  EXPECT_TRUE(c.jit) << error;
  if (c.jit) {
    c.blob.target = options.target;
    c.blob.scheduleText = programText();
    c.blob.image = c.jit->image();
  }
  return c;
}

TEST(CpuObjectCode, LoadGeneratesNoCodeAndMatchesBitForBit) {
  Compiled c = compileProgram();
  ASSERT_TRUE(c.jit);
  EXPECT_EQ(c.jit->image().kernels.size(), 3u);
  EXPECT_FALSE(c.jit->image().microSymbol.empty());
  std::string bytes = encodeExecutable(c.blob);

  const uint64_t before = codegenCount();
  SerializedExecutable decoded;
  DecodeError err;
  ASSERT_TRUE(decodeExecutable(bytes, &decoded, &err)) << err.message;
  std::string why;
  ASSERT_TRUE(objectImageCompatible(decoded.image, &why)) << why;
  std::string error;
  std::unique_ptr<JitProgram> loaded = JitProgram::load(std::move(decoded.image), decoded.target, &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(codegenCount(), before) << "loading serialized code must not generate code";

  EXPECT_EQ(runAll(c.program, *loaded, 37, 41), runAll(c.program, *c.jit, 37, 41));
  // The loaded program serializes to the same bytes (a warm compile can be
  // stored again unchanged).
  SerializedExecutable again = c.blob;
  again.image = loaded->image();
  EXPECT_EQ(encodeExecutable(again), bytes);
}

TEST(CpuObjectCode, TruncatedAndDamagedBytesAreCorrupt) {
  Compiled c = compileProgram();
  ASSERT_TRUE(c.jit);
  const std::string bytes = encodeExecutable(c.blob);
  SerializedExecutable out;
  DecodeError err;
  // Every prefix (a sample of long ones) is refused as corrupt.
  for (size_t n = 0; n < bytes.size(); n += n < 256 ? 1 : 97) {
    ASSERT_FALSE(decodeExecutable(std::string_view(bytes).substr(0, n), &out, &err)) << n;
    EXPECT_EQ(err.kind, DecodeError::Kind::Corrupt) << n << ": " << err.message;
  }
  // One flipped byte anywhere: corrupt, except in the version (incompatible).
  for (size_t i = 0; i < bytes.size(); i += i < 512 ? 1 : 61) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    ASSERT_FALSE(decodeExecutable(bad, &out, &err)) << i;
    bool version = i >= 8 && i < 12;
    EXPECT_EQ(err.kind, version ? DecodeError::Kind::Incompatible : DecodeError::Kind::Corrupt) << i;
  }
  std::string older = bytes;
  older[8] = 2; // the previous format (Schedule IR text only)
  ASSERT_FALSE(decodeExecutable(older, &out, &err));
  EXPECT_EQ(err.kind, DecodeError::Kind::Incompatible);
  EXPECT_NE(err.message.find("format version 2"), std::string::npos) << err.message;
}

// Damage with a recomputed checksum reaches the structure checks: every
// length and count is bounded by the bytes, so nothing reads outside them
// or allocates more than they hold.
TEST(CpuObjectCode, ForgedStructureNeverReadsOutside) {
  Compiled c = compileProgram();
  ASSERT_TRUE(c.jit);
  const std::string bytes = encodeExecutable(c.blob);
  auto reseal = [](std::string b) {
    uint64_t sum = checksum(b.data(), b.size() - 8);
    std::memcpy(&b[b.size() - 8], &sum, 8);
    return b;
  };
  SerializedExecutable out;
  DecodeError err;
  ASSERT_TRUE(decodeExecutable(reseal(bytes), &out, &err)) << err.message;
  // The header, the kernel table and the object lengths: every byte in turn
  // set to 0xFF (huge lengths) and to 0x00 (short ones).
  std::vector<size_t> positions;
  for (size_t i = 12; i < bytes.size() - 8; i += i < 4096 ? 1 : 127)
    positions.push_back(i);
  for (size_t i : positions)
    for (char v : {'\xff', '\0'}) {
      std::string bad = bytes;
      if (bad[i] == v)
        continue;
      bad[i] = v;
      if (!decodeExecutable(reseal(bad), &out, &err)) {
        EXPECT_EQ(err.kind, DecodeError::Kind::Corrupt) << i;
      }
    }
}

// Decoded but unusable images: the checks before linking and the linker's
// own errors, each reported, none fatal.
TEST(CpuObjectCode, UnusableImagesAreRefused) {
  Compiled c = compileProgram();
  ASSERT_TRUE(c.jit);
  const ObjectImage good = c.jit->image();
  std::string why, error;

  ObjectImage other = good;
  other.llvmVersion = "18.1.8";
  EXPECT_FALSE(objectImageCompatible(other, &why));
  EXPECT_NE(why.find("LLVM 18.1.8"), std::string::npos) << why;
  other = good;
  other.triple = "aarch64-unknown-linux-gnu";
  EXPECT_FALSE(objectImageCompatible(other, &why));

  other = good;
  other.dataLayout = "not a data layout";
  EXPECT_FALSE(JitProgram::load(other, hostTarget(), &error));
  other = good;
  other.objects[0] = "\x7f" "ELF garbage that is no object file";
  EXPECT_FALSE(JitProgram::load(other, hostTarget(), &error));
  EXPECT_FALSE(error.empty());
  other = good;
  other.objects[0].resize(other.objects[0].size() / 2);
  EXPECT_FALSE(JitProgram::load(other, hostTarget(), &error));
  other = good;
  other.kernels[2].loop = "tessera_no_such_kernel";
  EXPECT_FALSE(JitProgram::load(other, hostTarget(), &error));
  EXPECT_NE(error.find("tessera_no_such_kernel"), std::string::npos) << error;
  other = good;
  other.microSymbol.clear();
  EXPECT_FALSE(JitProgram::load(other, hostTarget(), &error));
}

} // namespace
