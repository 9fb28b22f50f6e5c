// Helpers for fusion tests: build a function (C++ builder or .tsr text),
// evaluate it with the reference interpreter, fuse it, run the fused program
// with the Schedule IR test interpreter and compare with dtype-aware
// tolerances.
#ifndef TESSERA_TESTS_FUSION_TESTUTIL_H
#define TESSERA_TESTS_FUSION_TESTUTIL_H

#include "SirInterpreter.h"
#include "fusion/Fusion.h"
#include "reference/Evaluator.h"
#include "shape/Builder.h"
#include "text/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace tessera::fusiontest {

inline ir::TensorType T(const std::string &text) {
  auto t = text::parseType(text);
  EXPECT_TRUE(t.hasValue()) << (t ? "" : t.error().render());
  return t ? t.take() : ir::TensorType();
}

struct Attrs {
  ir::AttrList list;
  Attrs &i(const std::string &n, int64_t v) { list.set(n, ir::Attribute::ofInt(v)); return *this; }
  Attrs &f(const std::string &n, double v) { list.set(n, ir::Attribute::ofFloat(v)); return *this; }
  Attrs &b(const std::string &n, bool v) { list.set(n, ir::Attribute::ofBool(v)); return *this; }
  Attrs &s(const std::string &n, std::string v) { list.set(n, ir::Attribute::ofString(std::move(v))); return *this; }
  Attrs &is(const std::string &n, std::vector<int64_t> v) { list.set(n, ir::Attribute::ofInts(std::move(v))); return *this; }
  Attrs &fs(const std::string &n, std::vector<double> v) { list.set(n, ir::Attribute::ofFloats(std::move(v))); return *this; }
  Attrs &dt(const std::string &n, ir::DType v) { list.set(n, ir::Attribute::ofDType(v)); return *this; }
  operator ir::AttrList() const { return list; }
};

// How random inputs are drawn for one parameter.
struct InputSpec {
  double lo = 0.1, hi = 2.0; // magnitude range for floats (never zero)
  bool positive = false;     // floats and ints: no negative values
  int64_t intLo = -5, intHi = 5; // integers (zero skipped unless allowZero)
  bool allowZero = false;
};

struct Tolerance {
  double rtol, atol;
};
inline Tolerance toleranceFor(ref::DType d) {
  switch (d) {
  case ref::DType::F64: return {1e-9, 1e-9};
  case ref::DType::F32: return {2e-4, 2e-4};
  case ref::DType::F16: return {1e-2, 1e-2};
  case ref::DType::BF16: return {6e-2, 6e-2};
  case ref::DType::F8E4M3FN:
  case ref::DType::F8E5M2: return {0.3, 0.3};
  default: return {0, 0};
  }
}

inline std::vector<ref::RefTensor> randomInputs(const ir::Function &fn, const std::vector<ref::Shape> &shapes,
                                                const std::map<size_t, InputSpec> &specs, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<ref::RefTensor> in;
  for (size_t i = 0; i < fn.params.size(); ++i) {
    InputSpec spec;
    if (auto it = specs.find(i); it != specs.end())
      spec = it->second;
    ir::DType dt = fn.typeOf(fn.params[i]).dtype;
    auto refDt = ref::fromIRDType(dt);
    ref::RefTensor t = ref::RefTensor::filled(*refDt, shapes[i], 0.0);
    for (double &x : t.data) {
      if (ir::isFloat(dt)) {
        std::uniform_real_distribution<double> mag(spec.lo, spec.hi);
        double m = mag(rng);
        x = (spec.positive || (rng() & 1)) ? m : -m;
      } else if (dt == ir::DType::Bool) {
        x = static_cast<double>(rng() & 1);
      } else {
        int64_t lo = spec.positive ? std::max<int64_t>(spec.intLo, 1) : spec.intLo;
        std::uniform_int_distribution<int64_t> d(lo, spec.intHi);
        int64_t v = 0;
        do {
          v = d(rng);
        } while (v == 0 && !spec.allowZero && !(lo == 0 && spec.intHi == 0));
        x = static_cast<double>(v);
      }
    }
    ref::roundInPlace(t, *refDt);
    in.push_back(std::move(t));
  }
  return in;
}

// Compares fused-vs-reference results; returns a description of the first
// mismatch or "".
inline std::string compareResults(const std::vector<ref::RefTensor> &want, const std::vector<ref::RefTensor> &got) {
  if (want.size() != got.size())
    return "result count " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  for (size_t r = 0; r < want.size(); ++r) {
    if (want[r].shape != got[r].shape)
      return "result " + std::to_string(r) + " shape " + ref::shapeString(got[r].shape) + " vs " +
             ref::shapeString(want[r].shape);
    Tolerance tol = toleranceFor(want[r].dtype);
    for (size_t i = 0; i < want[r].data.size(); ++i) {
      double w = want[r].data[i], g = got[r].data[i];
      bool ok = (std::isnan(w) && std::isnan(g)) || w == g ||
                (std::isfinite(w) && std::fabs(w - g) <= tol.atol + tol.rtol * std::fabs(w));
      if (!ok)
        return "result " + std::to_string(r) + " element " + std::to_string(i) + ": got " + std::to_string(g) +
               ", want " + std::to_string(w);
    }
  }
  return "";
}

struct CheckOptions {
  std::map<size_t, InputSpec> inputs;
  ir::SymbolBindings explicitSymbols;
  int expectKernels = -1;       // with fusion on; -1: do not check
  bool alsoUnfused = true;      // also check FusionOptions::fuse = false
  fusion::FusionOptions fusion; // base options
};

inline CheckOptions kernels(int n) {
  CheckOptions o;
  o.expectKernels = n;
  return o;
}

// Reference vs fuse()+interpreter for each shape set; returns the fused
// program of the last run (fusion on).
inline fusion::FusedProgram checkFunction(const ir::Function &fn, const std::vector<std::vector<ref::Shape>> &shapeSets,
                                          const CheckOptions &opts = {}) {
  fusion::FusedProgram last;
  for (int mode = 0; mode < (opts.alsoUnfused ? 2 : 1); ++mode) {
    fusion::FusionOptions fo = opts.fusion;
    fo.fuse = mode == 0;
    auto fused = fusion::fuse(fn, fo);
    EXPECT_TRUE(fused.hasValue()) << (fused ? "" : fused.error().render());
    if (!fused)
      return last;
    std::string problem = fusion::validateFused(*fused, fn);
    EXPECT_EQ(problem, "") << fusion::dumpFused(*fused);
    // The text form round-trips (what a plugin receives).
    schedule::Program parsed;
    schedule::ParseError perr;
    bool parsedOk = schedule::parseProgram(schedule::printProgram(fused->schedule), &parsed, &perr);
    EXPECT_TRUE(parsedOk) << perr.str();
    if (mode == 0 && opts.expectKernels >= 0) {
      EXPECT_EQ(static_cast<int>(fused->schedule.kernels.size()), opts.expectKernels) << fusion::dumpFused(*fused);
    }
    uint32_t seed = 1234;
    for (const auto &shapes : shapeSets) {
      std::vector<ref::RefTensor> in = randomInputs(fn, shapes, opts.inputs, seed++);
      auto want = ref::evaluate(fn, in);
      EXPECT_TRUE(want.hasValue()) << (want ? "" : want.error().render());
      if (!want)
        continue;
      auto got = sirtest::runFused(*fused, fn, in, opts.explicitSymbols);
      EXPECT_TRUE(got.hasValue()) << (got ? "" : got.error().render()) << "\n" << fusion::dumpFused(*fused);
      if (!got)
        continue;
      std::string diff = compareResults(*want, *got);
      EXPECT_EQ(diff, "") << (mode == 0 ? "fused" : "unfused") << " shapes #" << (seed - 1234) << "\n"
                          << fusion::dumpFused(*fused);
    }
    if (mode == 0)
      last = fused.take();
  }
  return last;
}

// A one-function builder with the check attached.
struct Case {
  shape::FunctionBuilder b{"f"};
  std::vector<ir::ValueId> results;

  ir::ValueId param(const std::string &type) {
    auto v = b.addParam("", T(type));
    EXPECT_TRUE(v.hasValue()) << (v ? "" : v.error().render());
    return v ? *v : 0;
  }
  ir::ValueId op(ir::OpKind kind, std::vector<ir::ValueId> operands, ir::AttrList attrs = {},
                 std::vector<ir::TensorType> annotations = {}) {
    auto v = b.add(kind, std::move(operands), std::move(attrs), std::move(annotations));
    EXPECT_TRUE(v.hasValue()) << ir::opInfo(kind).name << ": " << (v ? "" : v.error().render());
    return v ? *v : 0;
  }
  std::vector<ir::ValueId> ops(ir::OpKind kind, std::vector<ir::ValueId> operands, ir::AttrList attrs = {}) {
    auto v = b.addOp(kind, std::move(operands), std::move(attrs));
    EXPECT_TRUE(v.hasValue()) << (v ? "" : v.error().render());
    return v ? *v : std::vector<ir::ValueId>{};
  }
  ir::Function finish(std::vector<ir::ValueId> rets) {
    auto f = b.finish(std::move(rets));
    EXPECT_TRUE(f.hasValue()) << (f ? "" : f.error().render());
    return f ? f.take() : ir::Function();
  }
};

inline ir::Function parseFunction(const std::string &text) {
  auto m = text::parseModule(text, "test.tsr");
  EXPECT_TRUE(m.hasValue()) << (m ? "" : m.error().render());
  if (!m || m->functions.empty())
    return ir::Function();
  return m->functions[0];
}

} // namespace tessera::fusiontest

#endif // TESSERA_TESTS_FUSION_TESTUTIL_H
