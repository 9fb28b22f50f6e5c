// Internal: the import state shared by the graph walker (Importer.cpp) and
// the op converters (OnnxOps.cpp).
#ifndef TESSERA_ONNX_IMPORTERIMPL_H
#define TESSERA_ONNX_IMPORTERIMPL_H

#include "onnx/Importer.h"
#include "onnx/Tensor.h"
#include "reference/RefTensor.h"
#include "shape/Builder.h"

#include <onnx/onnx_pb.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tessera::onnx {

using ir::Dim;
using ir::DType;
using ir::OpKind;
using ir::TensorType;
using ir::ValueId;

class Importer;
// Converts the current node; sets its outputs with Importer::setOutput.
using Converter = Error (*)(Importer &);
const std::map<std::string, Converter> &converters();

class Importer {
public:
  explicit Importer(const ImportOptions &options) : options_(options) {}
  Expected<ir::Module> run(const ::onnx::ModelProto &model);

  // ---- The node being converted.
  const ::onnx::NodeProto &node() const { return *node_; }
  int64_t opset() const { return opset_; }
  // "node 'name' (OpType)" (or "node #3 (OpType)" when unnamed).
  std::string label() const;
  // Errors located at the node.
  Error unsupported(const std::string &what) const;
  Error invalid(const std::string &what) const;

  // Inputs: present = listed with a non-empty name.
  size_t numInputs() const { return size_t(node_->input_size()); }
  bool hasInput(size_t i) const { return i < numInputs() && !node_->input(int(i)).empty(); }
  Expected<ValueId> input(size_t i);
  size_t numOutputs() const { return size_t(node_->output_size()); }
  bool hasOutput(size_t i) const { return i < numOutputs() && !node_->output(int(i)).empty(); }
  Error setOutput(size_t i, ValueId v);
  // Unsupported unless only outputs [0, n) are requested.
  Error requireOutputs(size_t n) const;

  // Attributes. Every attribute a converter does not read (or ignore) makes
  // the node Unsupported, so unknown semantics never pass silently.
  bool hasAttr(const std::string &name);
  Expected<int64_t> attrInt(const std::string &name, std::optional<int64_t> dflt = std::nullopt);
  Expected<double> attrFloat(const std::string &name, std::optional<double> dflt = std::nullopt);
  Expected<std::string> attrString(const std::string &name, std::optional<std::string> dflt = std::nullopt);
  Expected<std::vector<int64_t>> attrInts(const std::string &name,
                                          std::optional<std::vector<int64_t>> dflt = std::nullopt);
  Expected<std::vector<double>> attrFloats(const std::string &name);
  const ::onnx::AttributeProto *attrProto(const std::string &name);
  void ignoreAttr(const std::string &name) { usedAttrs_.insert(name); }

  // ---- Building.
  const TensorType &type(ValueId v) const { return builder_->typeOf(v); }
  DType dtype(ValueId v) const { return type(v).dtype; }
  int64_t rank(ValueId v) const { return int64_t(type(v).rank()); }
  const std::vector<Dim> &dims(ValueId v) const { return type(v).dims; }
  // Static shape or Unsupported naming `what`.
  Expected<std::vector<int64_t>> staticShape(ValueId v, const std::string &what) const;

  Expected<ValueId> op(OpKind kind, std::vector<ValueId> operands, ir::AttrList attrs = {},
                       std::vector<TensorType> annotations = {});
  Expected<std::vector<ValueId>> opN(OpKind kind, std::vector<ValueId> operands, ir::AttrList attrs = {});
  Expected<ValueId> constant(const HostTensor &tensor);
  Expected<ValueId> constantRef(const ref::RefTensor &tensor);
  Expected<ValueId> scalar(DType dtype, double value);
  Expected<ValueId> constInts(const std::vector<int64_t> &values, std::vector<int64_t> shape = {});
  Expected<ValueId> cast(ValueId v, DType dtype);
  Expected<ValueId> reshape(ValueId v, std::vector<Dim> dims);
  Expected<ValueId> broadcastTo(ValueId v, std::vector<Dim> dims);

  // Value of `v` when it is computable at import (constants and ops on them),
  // nullopt otherwise.
  Expected<std::optional<ref::RefTensor>> tryConstant(ValueId v);
  // Integer contents of input `i` that must be known at import; Unsupported
  // naming `what` otherwise.
  Expected<std::vector<int64_t>> constInputInts(size_t i, const std::string &what);
  Expected<ref::RefTensor> constInput(size_t i, const std::string &what);

  // Normalizes an axis against a rank; InvalidIR naming `what` when out of range.
  Expected<int64_t> normAxis(int64_t axis, int64_t rank, const std::string &what) const;

  const ImportOptions &options() const { return options_; }

private:
  Error wrap(Error e) const;
  Error importInitializer(const ::onnx::TensorProto &t);
  Expected<TensorType> declaredType(const ::onnx::ValueInfoProto &info, bool isInput);
  Expected<Dim> symbolFor(const std::string &param);
  std::string valueName(const std::string &onnxName);
  Error convertNode(const ::onnx::NodeProto &node, size_t index);
  Error checkDeclared(const ::onnx::ValueInfoProto &info, ValueId v, const std::string &what);

  ImportOptions options_;
  std::unique_ptr<shape::FunctionBuilder> builder_;
  std::map<std::string, ValueId> values_; // ONNX value name -> IR value
  std::map<ValueId, ref::RefTensor> known_;
  std::set<std::string> usedNames_, symbols_;
  std::map<std::string, ValueId> scalarCache_;
  int64_t opset_ = 0;
  std::map<std::string, int64_t> domains_;
  const ::onnx::NodeProto *node_ = nullptr;
  size_t nodeIndex_ = 0;
  SourceLocation loc_;
  std::set<std::string> usedAttrs_;
  uint32_t unknownDims_ = 0;
};

// Attribute list in one expression: attrs({{"axis", ir::Attribute::ofInt(1)}}).
ir::AttrList attrs(std::initializer_list<std::pair<const char *, ir::Attribute>> list);

} // namespace tessera::onnx

#endif // TESSERA_ONNX_IMPORTERIMPL_H
