// A small Schedule IR interpreter for tests: executes a FusedProgram on host
// float64 buffers (values rounded to each instruction's / operand's dtype),
// so fusion can be checked against the reference interpreter without any
// backend. Loads and stores outside an operand are errors, as are results
// left unwritten (buffers start as NaN and every result element must be
// stored... checked by the caller comparing against the reference).
#ifndef TESSERA_TESTS_FUSION_SIRINTERPRETER_H
#define TESSERA_TESTS_FUSION_SIRINTERPRETER_H

#include "fusion/FusedProgram.h"
#include "reference/RefTensor.h"
#include "support/Error.h"

#include <vector>

namespace tessera::sirtest {

// Runs `program` (fused from `fn`) on `inputs` (one per parameter, values
// rounded to the parameter dtypes). Symbols are bound from the input shapes
// plus `explicitSymbols` (shape::bindShapes). Returns the function results.
Expected<std::vector<ref::RefTensor>> runFused(const fusion::FusedProgram &program, const ir::Function &fn,
                                               const std::vector<ref::RefTensor> &inputs,
                                               const ir::SymbolBindings &explicitSymbols = {});

} // namespace tessera::sirtest

#endif // TESSERA_TESTS_FUSION_SIRINTERPRETER_H
