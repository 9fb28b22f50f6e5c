// ONNX import: a serialized ModelProto becomes a Graph IR module with one
// function, "main", whose parameters are the graph inputs that are not
// initializers and whose results are the graph outputs.
//
//  * Initializers and Constant nodes become `constant` ops; a graph input that
//    is also an initializer is a constant.
//  * Dims with a dim_param become symbols of that name (made a valid
//    identifier); dims with neither value nor name get generated symbols.
//  * Opsets 7 to 17 of the default domain (older ones where understood), each op with its attribute
//    semantics and opset-dependent form (attributes that became inputs).
//    Inputs that must be known at compile time (Reshape's shape, Slice's
//    starts, ...) may be computed from constants: such subgraphs are folded
//    with the reference interpreter during import.
//  * External data is read relative to ImportOptions::baseDir.
//
// Errors: Unsupported names the op, the attribute or dtype, and the node;
// CorruptData for bytes that do not parse or tensors whose data do not match
// their dims; InvalidIR for graphs that are inconsistent (unknown domains,
// undefined values, declared shapes that disagree with inferred ones). Each
// message names the node ("node 'conv1' (Conv): ...") or field.
#ifndef TESSERA_ONNX_IMPORTER_H
#define TESSERA_ONNX_IMPORTER_H

#include "ir/Module.h"
#include "support/Error.h"

#include "onnx/Tensor.h"

#include <cstddef>
#include <map>
#include <string>

namespace tessera::onnx {

struct ImportOptions {
  // Directory that external data locations are relative to ("" = cwd).
  std::string baseDir;
  // Name of the produced function.
  std::string functionName = "main";
  // Statically known tensors up to this many elements are folded at import.
  int64_t maxFoldElements = 1 << 20;
  // Graph inputs whose values are fixed at compile time (by ONNX name): they
  // become constants instead of parameters, which lets inputs such as a
  // Reshape target shape or Slice bounds be graph inputs. Dtype and shape
  // must match the declaration (InvalidArgument otherwise).
  std::map<std::string, HostTensor> fixedInputs;
};

// Default-domain opsets the importer accepts. 7 to 17 are the targeted
// range; older models (1 to 6, e.g. early PyTorch exports) import where their
// ops' legacy forms are understood (`broadcast`/`axis` of binary ops, Reshape's
// `shape` attribute, Cast's string `to`, `is_test`); any other legacy attribute
// is reported Unsupported by name.
inline constexpr int64_t kMinOpset = 1;
inline constexpr int64_t kMaxOpset = 17;

Expected<ir::Module> importOnnx(const void *bytes, size_t size, const ImportOptions &options = {});

// The ONNX op types the importer converts (sorted), for docs and the suite.
std::vector<std::string> supportedOps();

} // namespace tessera::onnx

#endif // TESSERA_ONNX_IMPORTER_H
