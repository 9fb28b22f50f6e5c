// The reference interpreter: evaluates a verified, shape-inferred Graph IR
// function on the host in float64, rounding every op's result to its
// declared dtype (and numeric policy) at the op boundary. It is the oracle
// backends are compared against: simple loops, no fusion, no reordering.
//
// Semantics worth knowing when comparing against it:
//  * Inside one op everything is float64, including reductions and
//    contractions whatever their @accum dtype: the oracle is at least as
//    accurate as any accumulation a backend may choose.
//  * @rounding(nearest_even|toward_zero|up|down) and @saturate apply to the
//    op's result; @rounding(stochastic) is evaluated as nearest_even (a
//    single reproducible answer; compare with a tolerance of 1 ulp).
//  * Composite ops (attention) are evaluated as one op: one rounding.
//  * Integer div/mod are floored (NumPy // and %), per the op registry.
#ifndef TESSERA_REFERENCE_EVALUATOR_H
#define TESSERA_REFERENCE_EVALUATOR_H

#include "ir/DType.h"
#include "ir/Module.h"
#include "ir/Type.h"
#include "reference/RefTensor.h"
#include "support/Error.h"

#include <vector>

namespace tessera::ref {

// Dtype mapping between the IR and the interpreter (Unsupported for
// ir::DType::Invalid).
Expected<DType> fromIRDType(ir::DType dtype);
ir::DType toIRDType(DType dtype);
// The rounding a value of `type` gets at its defining op's boundary.
RoundOptions roundOptionsFor(const ir::NumericPolicy &policy);

// Evaluates `fn` (verified and inferred: shape::inferFunction or
// text::parseModule) on `inputs`, one per parameter in order.
//
// Input values are rounded to the parameter's dtype (so callers may pass
// float64 data for a bf16 parameter); their shapes bind the function's
// symbolic dims (shape::bindShapes): a wrong count, rank or size, or a symbol
// bound to two sizes, is ShapeMismatch naming the symbol, both sizes and the
// inputs. Run-time failures of an op (e.g. a gather index out of range) are
// located at the op. Returns the values of the function's `return`.
Expected<std::vector<RefTensor>> evaluate(const ir::Function &fn, std::vector<RefTensor> inputs);

} // namespace tessera::ref

#endif // TESSERA_REFERENCE_EVALUATOR_H
