// The conformance cases: programs and how to feed them.
#ifndef TESSERA_CONFORMANCE_CASES_H
#define TESSERA_CONFORMANCE_CASES_H

#include "HostTensor.h"

#include <map>
#include <string>
#include <vector>

namespace tessera::conformance {

// One program run against the reference interpreter. The text uses {T} for
// the dtype under test; the case is instantiated once per dtype.
struct ProgramCase {
  std::string name;                  // "ops/add", "patterns/softmax", ...
  std::vector<std::string> dtypes;   // instantiations, e.g. {"f32", "f16", "bf16"}
  std::string text;                  // .tsr with func @main
  std::vector<InputKind> inputs;     // per parameter (missing = Normal)
  int64_t indexBound = 0;            // for Index inputs
  // Symbol bindings to run with; each run draws fresh random inputs.
  std::vector<std::map<std::string, int64_t>> bindings;
  std::string compileBind;           // symbols fixed at compile time ("H=2")
  // Inputs of the narrow-float instantiations (bf16, f16, fp8) scaled by
  // 2^-n: a backend that decomposes the op rounds its intermediates (e.g.
  // attention's scores) to the dtype, an error that grows with their size.
  int narrowScaleLog2 = 0;
  // tessera_compile_options_t.opt_level the case compiles at. The suite's
  // cases compile at 0 (no fusion: each op its own kernel); cases about what
  // fusion does (attention's head split folded into the kernel) ask for 2.
  uint32_t optLevel = 0;
};

// Every op of the op set and the fused patterns (Cases.cpp).
std::vector<ProgramCase> programCases();

} // namespace tessera::conformance

#endif // TESSERA_CONFORMANCE_CASES_H
