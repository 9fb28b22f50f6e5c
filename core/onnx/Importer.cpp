// The graph walker: model checks, initializers, inputs, nodes in order,
// outputs; plus the helpers converters use (OnnxOps.cpp).
#include "onnx/ImporterImpl.h"

#include "reference/Evaluator.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace tessera::onnx {

using ::onnx::AttributeProto;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::TensorProto;
using ::onnx::ValueInfoProto;

ir::AttrList attrs(std::initializer_list<std::pair<const char *, ir::Attribute>> list) {
  ir::AttrList out;
  for (const auto &[name, value] : list)
    out.set(name, value);
  return out;
}

namespace {

bool isDefaultDomain(const std::string &d) { return d.empty() || d == "ai.onnx"; }

// A valid IR identifier made from `s`: letters, digits, '_' and '.', not
// starting with a digit, not a reserved word.
std::string sanitize(const std::string &s, const char *prefix) {
  std::string out;
  for (char c : s)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0])) || out[0] == '.' || out == "x" ||
      ir::parseDType(out) || out == "tensor" || out == "func" || out == "return" || out == "loc" || out == "inf" ||
      out == "nan" || out == "true" || out == "false")
    out = prefix + out;
  return out;
}

std::string shapeText(const std::vector<Dim> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + dims[i].str();
  return s + "]";
}

} // namespace

std::string Importer::label() const {
  if (!node_)
    return "graph";
  std::string name = node_->name().empty() ? "#" + std::to_string(nodeIndex_) : "'" + node_->name() + "'";
  return "node " + name + " (" + node_->op_type() + ")";
}

Error Importer::unsupported(const std::string &what) const {
  return makeError(ErrorCode::Unsupported, label() + ": " + what);
}
Error Importer::invalid(const std::string &what) const {
  return makeError(ErrorCode::InvalidIR, label() + ": " + what);
}
Error Importer::wrap(Error e) const {
  if (!node_ || e.code() == ErrorCode::Unsupported || e.message().rfind("node ", 0) == 0)
    return e;
  return makeError(e.code(), label() + ": " + e.message());
}

Expected<int64_t> Importer::normAxis(int64_t axis, int64_t rank, const std::string &what) const {
  if (axis < -rank || axis >= rank)
    return invalid(what + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// ---- Inputs and outputs of the node.

Expected<ValueId> Importer::input(size_t i) {
  if (!hasInput(i))
    return invalid("missing required input " + std::to_string(i));
  auto it = values_.find(node_->input(int(i)));
  if (it == values_.end())
    return invalid("input '" + node_->input(int(i)) + "' is not defined before the node");
  return it->second;
}

Error Importer::setOutput(size_t i, ValueId v) {
  if (!hasOutput(i))
    return Error::success();
  values_[node_->output(int(i))] = v;
  return Error::success();
}

Error Importer::requireOutputs(size_t n) const {
  for (size_t i = n; i < numOutputs(); ++i)
    if (hasOutput(i))
      return unsupported("output " + std::to_string(i) + " ('" + node_->output(int(i)) + "') is not supported");
  return Error::success();
}

// ---- Attributes.

const AttributeProto *Importer::attrProto(const std::string &name) {
  for (const AttributeProto &a : node_->attribute())
    if (a.name() == name) {
      usedAttrs_.insert(name);
      return &a;
    }
  return nullptr;
}

bool Importer::hasAttr(const std::string &name) {
  for (const AttributeProto &a : node_->attribute())
    if (a.name() == name)
      return true;
  return false;
}

Expected<int64_t> Importer::attrInt(const std::string &name, std::optional<int64_t> dflt) {
  const AttributeProto *a = attrProto(name);
  if (!a) {
    if (!dflt)
      return invalid("missing required attribute '" + name + "'");
    return *dflt;
  }
  if (a->type() != AttributeProto::INT)
    return invalid("attribute '" + name + "' must be an INT");
  return a->i();
}

Expected<double> Importer::attrFloat(const std::string &name, std::optional<double> dflt) {
  const AttributeProto *a = attrProto(name);
  if (!a) {
    if (!dflt)
      return invalid("missing required attribute '" + name + "'");
    return *dflt;
  }
  if (a->type() == AttributeProto::INT)
    return double(a->i());
  if (a->type() != AttributeProto::FLOAT)
    return invalid("attribute '" + name + "' must be a FLOAT");
  return double(a->f());
}

Expected<std::string> Importer::attrString(const std::string &name, std::optional<std::string> dflt) {
  const AttributeProto *a = attrProto(name);
  if (!a) {
    if (!dflt)
      return invalid("missing required attribute '" + name + "'");
    return *dflt;
  }
  if (a->type() != AttributeProto::STRING)
    return invalid("attribute '" + name + "' must be a STRING");
  return a->s();
}

Expected<std::vector<int64_t>> Importer::attrInts(const std::string &name,
                                                  std::optional<std::vector<int64_t>> dflt) {
  const AttributeProto *a = attrProto(name);
  if (!a) {
    if (!dflt)
      return invalid("missing required attribute '" + name + "'");
    return *dflt;
  }
  if (a->type() != AttributeProto::INTS && !(a->type() == AttributeProto::UNDEFINED && a->ints_size() == 0))
    return invalid("attribute '" + name + "' must be INTS");
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

Expected<std::vector<double>> Importer::attrFloats(const std::string &name) {
  const AttributeProto *a = attrProto(name);
  if (!a)
    return invalid("missing required attribute '" + name + "'");
  if (a->type() != AttributeProto::FLOATS)
    return invalid("attribute '" + name + "' must be FLOATS");
  return std::vector<double>(a->floats().begin(), a->floats().end());
}

// ---- Building.

Expected<std::vector<int64_t>> Importer::staticShape(ValueId v, const std::string &what) const {
  std::optional<std::vector<int64_t>> s = type(v).staticShape();
  if (!s)
    return unsupported(what + " needs a static shape, got " + shapeText(dims(v)));
  return *s;
}

Expected<std::vector<ValueId>> Importer::opN(OpKind kind, std::vector<ValueId> operands, ir::AttrList as) {
  SourceLocation loc = loc_;
  auto r = builder_->addOp(kind, std::move(operands), std::move(as), {}, loc, true);
  if (!r)
    return wrap(r.takeError());
  return *r;
}

Expected<ValueId> Importer::op(OpKind kind, std::vector<ValueId> operands, ir::AttrList as,
                               std::vector<TensorType> annotations) {
  auto r = builder_->addOp(kind, std::move(operands), std::move(as), std::move(annotations), loc_, true);
  if (!r)
    return wrap(r.takeError());
  return (*r)[0];
}

Expected<ValueId> Importer::constant(const HostTensor &t) {
  std::vector<Dim> dims(t.shape.begin(), t.shape.end());
  std::string data = "base64:" + base64Encode(t.bytes.data(), t.bytes.size());
  if (t.bytes.empty()) // an empty tensor: a splat of nothing
    return op(OpKind::Constant, {}, attrs({{"value", ir::Attribute::ofInt(0)}}), {TensorType(t.dtype, dims)});
  Expected<ValueId> v = op(OpKind::Constant, {}, attrs({{"data", ir::Attribute::ofString(std::move(data))}}),
                           {TensorType(t.dtype, dims)});
  if (v && t.numElements() <= options_.maxFoldElements)
    if (Expected<ref::RefTensor> r = toRef(t))
      known_[*v] = r.take();
  return v;
}

Expected<ValueId> Importer::constantRef(const ref::RefTensor &t) {
  Expected<HostTensor> h = fromRef(t);
  if (!h)
    return h.takeError();
  return constant(*h);
}

Expected<ValueId> Importer::scalar(DType dtype, double value) {
  char key[64];
  std::snprintf(key, sizeof(key), "%d:%a", int(dtype), value);
  if (auto it = scalarCache_.find(key); it != scalarCache_.end())
    return it->second;
  ir::Attribute a = ir::isFloat(dtype) ? ir::Attribute::ofFloat(value)
                    : dtype == DType::Bool ? ir::Attribute::ofBool(value != 0)
                                           : ir::Attribute::ofInt(int64_t(value));
  Expected<ValueId> v = op(OpKind::Constant, {}, attrs({{"value", a}}), {TensorType(dtype, {})});
  if (!v)
    return v;
  Expected<ref::DType> rd = ref::fromIRDType(dtype);
  if (rd)
    known_[*v] = ref::RefTensor::scalar(*rd, value);
  scalarCache_[key] = *v;
  return v;
}

Expected<ValueId> Importer::constInts(const std::vector<int64_t> &values, std::vector<int64_t> shape) {
  if (shape.empty() && values.size() != 1)
    shape = {int64_t(values.size())};
  HostTensor t;
  t.dtype = DType::I64;
  t.shape = shape;
  t.bytes.resize(values.size() * 8);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return constant(t);
}

Expected<ValueId> Importer::cast(ValueId v, DType dtype) {
  if (this->dtype(v) == dtype)
    return v;
  return op(OpKind::Cast, {v}, attrs({{"dtype", ir::Attribute::ofDType(dtype)}}));
}

Expected<ValueId> Importer::reshape(ValueId v, std::vector<Dim> dims) {
  if (this->dims(v) == dims)
    return v;
  return op(OpKind::Reshape, {v}, {}, {TensorType(dtype(v), std::move(dims))});
}

Expected<ValueId> Importer::broadcastTo(ValueId v, std::vector<Dim> dims) {
  if (this->dims(v) == dims)
    return v;
  return op(OpKind::BroadcastTo, {v}, {}, {TensorType(dtype(v), std::move(dims))});
}

Expected<std::optional<ref::RefTensor>> Importer::tryConstant(ValueId v) {
  if (auto it = known_.find(v); it != known_.end())
    return std::optional<ref::RefTensor>(it->second);
  const ir::Function &fn = builder_->function();
  std::optional<std::vector<int64_t>> shape = fn.typeOf(v).staticShape();
  if (!shape)
    return std::optional<ref::RefTensor>();
  int64_t n = 1;
  for (int64_t d : *shape)
    n *= d;
  if (n > options_.maxFoldElements)
    return std::optional<ref::RefTensor>();
  // The ops v depends on; any parameter among its inputs means "not known".
  std::vector<char> needed(fn.ops.size(), 0);
  std::vector<ValueId> stack{v};
  std::vector<char> seen(fn.values.size(), 0);
  while (!stack.empty()) {
    ValueId id = stack.back();
    stack.pop_back();
    if (seen[id])
      continue;
    seen[id] = 1;
    int32_t def = fn.value(id).definingOp;
    if (def < 0)
      return std::optional<ref::RefTensor>();
    if (needed[size_t(def)])
      continue;
    needed[size_t(def)] = 1;
    for (ValueId operand : fn.ops[size_t(def)].operands)
      stack.push_back(operand);
  }
  ir::Function sub;
  sub.name = "fold";
  std::vector<ValueId> remap(fn.values.size(), ir::kNoValue);
  for (size_t i = 0; i < fn.ops.size(); ++i) {
    if (!needed[i])
      continue;
    ir::Operation o = fn.ops[i];
    for (ValueId &operand : o.operands)
      operand = remap[operand];
    for (size_t r = 0; r < o.results.size(); ++r) {
      const ir::Value &old = fn.value(o.results[r]);
      ValueId nv = sub.addValue(old.name, old.type, int32_t(sub.ops.size()), uint32_t(r));
      remap[o.results[r]] = nv;
      o.results[r] = nv;
    }
    sub.ops.push_back(std::move(o));
  }
  sub.returns = {remap[v]};
  sub.resultTypes = {fn.typeOf(v)};
  Expected<std::vector<ref::RefTensor>> r = ref::evaluate(sub, {});
  if (!r)
    return std::optional<ref::RefTensor>(); // left for run time (e.g. an index out of range)
  known_[v] = (*r)[0];
  return std::optional<ref::RefTensor>((*r)[0]);
}

Expected<ref::RefTensor> Importer::constInput(size_t i, const std::string &what) {
  Expected<ValueId> v = input(i);
  if (!v)
    return v.takeError();
  Expected<std::optional<ref::RefTensor>> c = tryConstant(*v);
  if (!c)
    return c.takeError();
  if (!*c)
    return unsupported(what + " (input " + std::to_string(i) + " '" + node_->input(int(i)) +
                       "') must be known at compile time");
  return **c;
}

Expected<std::vector<int64_t>> Importer::constInputInts(size_t i, const std::string &what) {
  Expected<ref::RefTensor> t = constInput(i, what);
  if (!t)
    return t.takeError();
  std::vector<int64_t> out;
  for (double d : t->data)
    out.push_back(int64_t(d));
  return out;
}

// ---- The graph.

std::string Importer::valueName(const std::string &onnxName) {
  std::string base = sanitize(onnxName, "v_");
  std::string name = base;
  for (int k = 1; usedNames_.count(name); ++k)
    name = base + "_" + std::to_string(k);
  usedNames_.insert(name);
  return name;
}

Expected<Dim> Importer::symbolFor(const std::string &param) {
  std::string name = sanitize(param, "s_");
  symbols_.insert(name);
  return Dim::symbol(name);
}

Expected<TensorType> Importer::declaredType(const ValueInfoProto &info, bool isInput) {
  std::string what = std::string(isInput ? "graph input" : "graph output") + " '" + info.name() + "'";
  if (!info.has_type() || info.type().value_case() != ::onnx::TypeProto::kTensorType) {
    if (info.has_type() && info.type().value_case() != ::onnx::TypeProto::VALUE_NOT_SET)
      return makeError(ErrorCode::Unsupported, what + ": only tensor types are supported (sequence, map, optional "
                                                      "and sparse values are not)");
    return makeError(ErrorCode::Unsupported, what + " has no tensor type");
  }
  const auto &tt = info.type().tensor_type();
  Expected<DType> dt = dtypeFromOnnx(tt.elem_type(), what);
  if (!dt)
    return dt.takeError();
  if (!tt.has_shape())
    return makeError(ErrorCode::Unsupported, what + " has no shape (unknown rank is not supported)");
  std::vector<Dim> dims;
  for (const auto &d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      if (d.dim_value() < 0)
        return makeError(ErrorCode::InvalidIR, what + ": negative dim " + std::to_string(d.dim_value()));
      dims.push_back(Dim(d.dim_value()));
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      Expected<Dim> s = symbolFor(d.dim_param());
      if (!s)
        return s.takeError();
      dims.push_back(*s);
    } else {
      dims.push_back(Dim::symbol("unk" + std::to_string(unknownDims_++)));
    }
  }
  if (dims.size() > ir::kMaxRank)
    return makeError(ErrorCode::ResourceExhausted, what + ": rank " + std::to_string(dims.size()) + " exceeds " +
                                                       std::to_string(ir::kMaxRank));
  return TensorType(*dt, std::move(dims));
}

Error Importer::checkDeclared(const ValueInfoProto &info, ValueId v, const std::string &what) {
  if (!info.has_type() || info.type().value_case() != ::onnx::TypeProto::kTensorType)
    return Error::success();
  const auto &tt = info.type().tensor_type();
  const TensorType &t = type(v);
  if (tt.elem_type() != 0 && dtypeToOnnx(t.dtype) != tt.elem_type())
    return makeError(ErrorCode::InvalidIR, what + " '" + info.name() + "' is declared " + onnxTypeName(tt.elem_type()) +
                                               " but computes " + ir::dtypeName(t.dtype));
  if (!tt.has_shape())
    return Error::success();
  std::string declared = "[";
  bool mismatch = size_t(tt.shape().dim_size()) != t.rank();
  for (int i = 0; i < tt.shape().dim_size(); ++i) {
    const auto &d = tt.shape().dim(i);
    declared += (i ? ", " : "") + (d.has_dim_value() ? std::to_string(d.dim_value()) : d.dim_param());
    if (!mismatch && d.has_dim_value()) {
      std::optional<int64_t> c = t.dims[size_t(i)].constantValue();
      if (c && *c != d.dim_value())
        mismatch = true;
    }
  }
  if (mismatch)
    return makeError(ErrorCode::InvalidIR, what + " '" + info.name() + "' is declared with shape " + declared +
                                               "] but the graph computes " + shapeText(t.dims));
  return Error::success();
}

Error Importer::importInitializer(const TensorProto &t) {
  Expected<HostTensor> h = decodeTensor(t, options_.baseDir);
  if (!h)
    return makeError(h.error().code(), "initializer " + h.error().message().substr(h.error().message().rfind("tensor ", 0) == 0 ? 7 : 0));
  Expected<ValueId> v = constant(*h);
  if (!v)
    return makeError(v.error().code(), "initializer '" + t.name() + "': " + v.error().message());
  values_[t.name()] = *v;
  return Error::success();
}

Error Importer::convertNode(const NodeProto &node, size_t index) {
  node_ = &node;
  nodeIndex_ = index;
  usedAttrs_.clear();
  loc_ = SourceLocation{node.name().empty() ? node.op_type() + "#" + std::to_string(index) : node.name(),
                        uint32_t(index + 1), 1};
  if (!isDefaultDomain(node.domain())) {
    if (!domains_.count(node.domain()))
      return invalid("domain '" + node.domain() + "' is not imported by the model (opset_import)");
    return unsupported("op '" + node.op_type() + "' of domain '" + node.domain() +
                       "' is not supported (only the default ONNX domain is)");
  }
  if (opset_ == 0)
    return invalid("the default ONNX domain is not imported by the model (opset_import)");
  const auto &table = converters();
  auto it = table.find(node.op_type());
  if (it == table.end())
    return unsupported("op '" + node.op_type() + "' is not supported");
  if (Error e = it->second(*this))
    return wrap(std::move(e));
  for (const AttributeProto &a : node.attribute())
    if (!usedAttrs_.count(a.name()))
      return unsupported("attribute '" + a.name() + "' is not supported");
  for (size_t i = 0; i < numOutputs(); ++i)
    if (hasOutput(i) && !values_.count(node.output(int(i))))
      return unsupported("output " + std::to_string(i) + " ('" + node.output(int(i)) + "') is not supported");
  return Error::success();
}

Expected<ir::Module> Importer::run(const ModelProto &model) {
  // Opsets.
  bool haveDefault = false;
  for (const auto &o : model.opset_import()) {
    const std::string &d = o.domain();
    if (isDefaultDomain(d)) {
      haveDefault = true;
      opset_ = o.version();
    } else if (d != "ai.onnx.ml" && d != "ai.onnx.preview.training" && d != "ai.onnx.training" &&
               d != "com.microsoft" && d.find('.') == std::string::npos) {
      return makeError(ErrorCode::InvalidIR, "opset_import: unknown domain '" + d + "'");
    }
    domains_[d] = o.version();
  }
  if (!haveDefault) {
    if (model.opset_import_size() == 0 && model.ir_version() >= 3)
      return makeError(ErrorCode::InvalidIR, "opset_import: the model imports no opset");
    // IR version 1-2 models carry no opset_import (opset 1); models that use
    // only other domains fail at their first node.
    opset_ = model.opset_import_size() == 0 ? 1 : 0;
  }
  if (opset_ != 0 && (opset_ < kMinOpset || opset_ > kMaxOpset))
    return makeError(ErrorCode::Unsupported, "opset_import: default-domain opset " + std::to_string(opset_) +
                                                 " is not supported (supported: " + std::to_string(kMinOpset) +
                                                 " to " + std::to_string(kMaxOpset) + ")");
  if (!model.has_graph())
    return makeError(ErrorCode::InvalidIR, "the model has no graph");
  const ::onnx::GraphProto &g = model.graph();
  if (g.sparse_initializer_size())
    return makeError(ErrorCode::Unsupported, "sparse initializer '" + g.sparse_initializer(0).values().name() +
                                                 "' is not supported");

  builder_ = std::make_unique<shape::FunctionBuilder>(options_.functionName);
  // Parameters first (the builder wants them before ops).
  std::set<std::string> initNames, fixedNames;
  for (const TensorProto &t : g.initializer())
    initNames.insert(t.name());
  for (const ValueInfoProto &in : g.input()) {
    if (initNames.count(in.name()))
      continue;
    if (values_.count(in.name()))
      return makeError(ErrorCode::InvalidIR, "graph input '" + in.name() + "' is listed twice");
    Expected<TensorType> t = declaredType(in, true);
    if (!t)
      return t.takeError();
    if (auto fixed = options_.fixedInputs.find(in.name()); fixed != options_.fixedInputs.end()) {
      fixedNames.insert(in.name());
      continue;
    }
    Expected<ValueId> p = builder_->addParam(valueName(in.name()), *t);
    if (!p)
      return makeError(p.error().code(), "graph input '" + in.name() + "': " + p.error().message());
    values_[in.name()] = *p;
  }
  for (const TensorProto &t : g.initializer())
    if (Error e = importInitializer(t))
      return e;
  for (const ValueInfoProto &in : g.input()) {
    if (!fixedNames.count(in.name()))
      continue;
    const HostTensor &h = options_.fixedInputs.at(in.name());
    Expected<ValueId> v = constant(h);
    if (!v)
      return v.takeError();
    values_[in.name()] = *v;
    if (Error e = checkDeclared(in, *v, "fixed graph input"))
      return makeError(ErrorCode::InvalidArgument, e.message());
  }
  // Declared initializer inputs must agree with the initializer.
  for (const ValueInfoProto &in : g.input())
    if (initNames.count(in.name()))
      if (Error e = checkDeclared(in, values_[in.name()], "graph input"))
        return e;

  for (int i = 0; i < g.node_size(); ++i)
    if (Error e = convertNode(g.node(i), size_t(i)))
      return e;
  node_ = nullptr;

  for (const ValueInfoProto &info : g.value_info())
    if (auto it = values_.find(info.name()); it != values_.end())
      if (Error e = checkDeclared(info, it->second, "value_info"))
        return e;
  std::vector<ValueId> returns;
  for (const ValueInfoProto &out : g.output()) {
    auto it = values_.find(out.name());
    if (it == values_.end())
      return makeError(ErrorCode::InvalidIR, "graph output '" + out.name() + "' is not computed by any node");
    if (Error e = checkDeclared(out, it->second, "graph output"))
      return e;
    returns.push_back(it->second);
  }
  if (returns.empty())
    return makeError(ErrorCode::InvalidIR, "the graph has no outputs");
  Expected<ir::Function> fn = builder_->finish(returns);
  if (!fn)
    return fn.takeError();
  ir::Module module;
  module.functions.push_back(fn.take());
  return module;
}

Expected<ir::Module> importOnnx(const void *bytes, size_t size, const ImportOptions &options) {
  if (!bytes && size)
    return makeError(ErrorCode::InvalidArgument, "importOnnx: NULL bytes");
  ModelProto model;
  if (size > size_t(INT32_MAX))
    return makeError(ErrorCode::ResourceExhausted, "ONNX model of " + std::to_string(size) +
                                                       " bytes exceeds protobuf's 2 GiB limit (use external data)");
  if (!model.ParseFromArray(bytes, int(size)))
    return makeError(ErrorCode::CorruptData, "the bytes are not a valid ONNX ModelProto (" + std::to_string(size) +
                                                 " bytes; truncated or corrupt)");
  Importer importer(options);
  return importer.run(model);
}

std::vector<std::string> supportedOps() {
  std::vector<std::string> out;
  for (const auto &[name, fn] : converters())
    out.push_back(name);
  return out;
}

} // namespace tessera::onnx
