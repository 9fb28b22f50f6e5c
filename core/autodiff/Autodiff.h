// Reverse-mode automatic differentiation on Graph IR (docs/autodiff.md).
//
// vjp() takes an inferred function f(x0..xn) -> (y0..ym) and builds a new
// Graph IR function
//
//   f_vjp(x0..xn, ct.y0..ct.yk) -> (y0..ym, grad.xi...)
//
// with one cotangent parameter per *float* output (integer and boolean outputs
// get none) and one gradient per requested input, in the order requested.
// grad() is the scalar-loss form: output `lossOutput` must be a float scalar,
// its cotangent is 1 and no cotangent parameter is added.
//
// The result is an ordinary verified and inferred function: it prints, parses
// back and goes through the normal compile pipeline.
//
// Conventions at non-differentiable points (chosen to match PyTorch):
//  * relu'(0) = 0, abs'(0) = 0 (sign(0) = 0);
//  * floor, ceil, sign, comparisons, logical ops, argmax/argmin, iota and
//    casts to integer or bool have no gradient (their results are constants
//    for differentiation);
//  * max/min (binary) at a tie give half of the gradient to each side;
//    reduce_max/reduce_min and max_pool2d split the gradient evenly over all
//    tied maxima of a window;
//  * reduce_prod uses prod/x and assumes no zero inputs;
//  * pow(a, b): the gradient w.r.t. b is taken as 0 where a <= 0.
//
// Errors (no crash): unknown function or input name (NotFound), a requested
// input that is not a float tensor (InvalidArgument: integers and booleans
// have no gradient), no float output / a non-scalar or non-float loss
// (InvalidArgument). A requested input that does not reach a differentiable
// output gets a zero gradient and a warning in VjpResult::warnings, or an
// error with VjpOptions::unreachableIsError.
#ifndef TESSERA_AUTODIFF_AUTODIFF_H
#define TESSERA_AUTODIFF_AUTODIFF_H

#include "ir/Module.h"
#include "support/Error.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace tessera::autodiff {

struct VjpOptions {
  // Name of the new function; "" = "<name>_vjp" (vjp) or "<name>_grad" (grad).
  std::string name;
  // An unreachable input is an error instead of a zero gradient + warning.
  bool unreachableIsError = false;
  // Rematerialization: forward values (by name) that the backward pass
  // recomputes from their operands instead of keeping alive. The recomputed
  // ops are emitted right before each backward rule that reads them. An
  // attention's result selects its whole decomposition (as the `checkpoint`
  // attribute does). Parameters, constants and unknown names are rejected
  // (InvalidArgument).
  std::set<std::string> remat;
  // Rematerialize every value produced by an elementwise unary or binary op
  // (the cheap ones), in addition to `remat`.
  bool rematElementwise = false;
};

struct VjpResult {
  ir::Function function;
  // Human-readable warnings (e.g. "%b does not reach the output; its
  // gradient is zero").
  std::vector<std::string> warnings;
  // Number of original outputs; results [numOutputs, ...) are the gradients.
  size_t numOutputs = 0;
  // Indices (into the original params) of the inputs differentiated.
  std::vector<size_t> wrt;
};

// Resolves names ("x", "%x") or decimal indices ("0") of `fn`'s parameters.
Expected<std::vector<size_t>> resolveWrt(const ir::Function &fn, const std::vector<std::string> &wrt);

// Vector-Jacobian product of every float output (see the file comment).
Expected<VjpResult> vjp(const ir::Function &fn, const std::vector<size_t> &wrt, const VjpOptions &options = {});

// Gradient of the float scalar output `lossOutput`; other outputs are
// returned unchanged, without cotangents.
Expected<VjpResult> grad(const ir::Function &fn, const std::vector<size_t> &wrt, size_t lossOutput = 0,
                         const VjpOptions &options = {});

// Peak bytes of the values simultaneously live while running `fn` op by op
// in program order, under concrete symbol bindings (parameters count from
// the start; a value dies after its last use; returned values live to the
// end). A simple model of activation memory, used to compare remat choices.
Expected<int64_t> peakLiveBytes(const ir::Function &fn, const ir::SymbolBindings &symbols);

} // namespace tessera::autodiff

#endif // TESSERA_AUTODIFF_AUTODIFF_H
