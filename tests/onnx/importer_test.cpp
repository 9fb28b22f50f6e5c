// Unit tests of the ONNX importer on models built with the protobuf API.
#include "onnx/Importer.h"
#include "onnx/Tensor.h"
#include "reference/Evaluator.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace {

using namespace tessera;
namespace tonnx = tessera::onnx;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::TensorProto;

struct ModelBuilder {
  ModelProto model;
  explicit ModelBuilder(int64_t opset = 13) {
    model.set_ir_version(7);
    auto *o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
  }
  ::onnx::GraphProto &g() { return *model.mutable_graph(); }
  // dims: >= 0 static, -1 a dim_param named `sym`.
  void valueInfo(::onnx::ValueInfoProto *v, const std::string &name, int32_t type, std::vector<int64_t> dims,
                 const std::string &sym) {
    v->set_name(name);
    auto *t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    auto *s = t->mutable_shape();
    for (int64_t d : dims) {
      auto *dim = s->add_dim();
      if (d >= 0)
        dim->set_dim_value(d);
      else
        dim->set_dim_param(sym);
    }
  }
  void input(const std::string &name, std::vector<int64_t> dims, int32_t type = TensorProto::FLOAT,
             const std::string &sym = "N") {
    valueInfo(g().add_input(), name, type, dims, sym);
  }
  void output(const std::string &name, std::vector<int64_t> dims, int32_t type = TensorProto::FLOAT,
              const std::string &sym = "N") {
    valueInfo(g().add_output(), name, type, dims, sym);
  }
  TensorProto *init(const std::string &name, std::vector<int64_t> dims, std::vector<float> data) {
    TensorProto *t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::FLOAT);
    for (int64_t d : dims)
      t->add_dims(d);
    for (float f : data)
      t->add_float_data(f);
    return t;
  }
  TensorProto *initInts(const std::string &name, std::vector<int64_t> data) {
    TensorProto *t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::INT64);
    t->add_dims(int64_t(data.size()));
    for (int64_t v : data)
      t->add_int64_data(v);
    return t;
  }
  NodeProto *node(const std::string &op, std::vector<std::string> ins, std::vector<std::string> outs,
                  const std::string &name = "") {
    NodeProto *n = g().add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto &i : ins)
      n->add_input(i);
    for (auto &o : outs)
      n->add_output(o);
    return n;
  }
  static void attrInt(NodeProto *n, const std::string &name, int64_t v) {
    auto *a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(v);
  }
  Expected<ir::Module> import(const tonnx::ImportOptions &o = {}) {
    std::string bytes = model.SerializeAsString();
    return tonnx::importOnnx(bytes.data(), bytes.size(), o);
  }
};

ref::RefTensor f32(ref::Shape shape, std::vector<double> data) {
  return ref::RefTensor(ref::DType::F32, std::move(shape), std::move(data));
}

std::vector<ref::RefTensor> run(const ir::Module &m, std::vector<ref::RefTensor> inputs) {
  Expected<std::vector<ref::RefTensor>> r = ref::evaluate(m.functions.at(0), std::move(inputs));
  EXPECT_TRUE(r) << (r ? "" : r.error().message());
  return r ? r.take() : std::vector<ref::RefTensor>{};
}

TEST(OnnxImport, GemmReluWithSymbolicBatch) {
  ModelBuilder b;
  b.input("x", {-1, 2});
  b.init("w", {3, 2}, {1, 2, 3, 4, 5, 6});
  b.init("c", {3}, {0.5f, -100, 0});
  auto *n = b.node("Gemm", {"x", "w", "c"}, {"h"}, "fc");
  ModelBuilder::attrInt(n, "transB", 1);
  b.node("Relu", {"h"}, {"y"});
  b.output("y", {-1, 3});
  Expected<ir::Module> m = b.import();
  ASSERT_TRUE(m) << m.error().message();
  const ir::Function &fn = m->functions[0];
  EXPECT_EQ(fn.name, "main");
  ASSERT_EQ(fn.params.size(), 1u);
  EXPECT_EQ(fn.typeOf(fn.params[0]).dims[0].str(), "N");
  EXPECT_EQ(fn.typeOf(fn.returns[0]).dims[0].str(), "N");
  auto out = run(*m, {f32({2, 2}, {1, 1, -1, 2})});
  ASSERT_EQ(out.size(), 1u);
  // x @ w^T + c: [3.5, -93, 11], [3.5, -90, 7] -> relu.
  std::vector<double> want = {3.5, 0, 11, 3.5, 0, 7};
  EXPECT_EQ(out[0].shape, (ref::Shape{2, 3}));
  EXPECT_EQ(out[0].data, want);
}

TEST(OnnxImport, InputThatIsAlsoInitializerIsConstant) {
  ModelBuilder b(9);
  b.input("x", {2});
  b.input("bias", {2});
  b.init("bias", {2}, {10, 20});
  b.node("Add", {"x", "bias"}, {"y"});
  b.output("y", {2});
  Expected<ir::Module> m = b.import();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->functions[0].params.size(), 1u);
  auto out = run(*m, {f32({2}, {1, 2})});
  EXPECT_EQ(out.at(0).data, (std::vector<double>{11, 22}));
}

// Softmax before opset 13 flattens at `axis` (default 1); from 13 it is one axis (default -1).
TEST(OnnxImport, SoftmaxAxisSemanticsPerOpset) {
  for (int64_t opset : {11, 13}) {
    ModelBuilder b(opset);
    b.input("x", {1, 2, 2});
    b.node("Softmax", {"x"}, {"y"});
    b.output("y", {1, 2, 2});
    Expected<ir::Module> m = b.import();
    ASSERT_TRUE(m) << m.error().message();
    auto out = run(*m, {f32({1, 2, 2}, {0, 0, 0, 0})});
    double want = opset == 11 ? 0.25 : 0.5;
    for (double v : out.at(0).data)
      EXPECT_NEAR(v, want, 1e-6) << "opset " << opset;
  }
}

TEST(OnnxImport, ReshapeWithComputedShapeZeroAndMinusOne) {
  ModelBuilder b(13);
  b.input("x", {2, 3, 4});
  b.node("Shape", {"x"}, {"s"});
  b.initInts("idx", {0});
  b.node("Gather", {"s", "idx"}, {"d0"});
  b.initInts("rest", {-1});
  auto *c = b.node("Concat", {"d0", "rest"}, {"shape"});
  ModelBuilder::attrInt(c, "axis", 0);
  b.node("Reshape", {"x", "shape"}, {"y"});
  b.initInts("zero", {0, -1});
  b.node("Reshape", {"x", "zero"}, {"z"});
  b.output("y", {2, 12});
  b.output("z", {2, 12});
  Expected<ir::Module> m = b.import();
  ASSERT_TRUE(m) << m.error().message();
  const ir::Function &fn = m->functions[0];
  EXPECT_EQ(fn.typeOf(fn.returns[0]).str(), "tensor<2 x 12 x f32>");
  EXPECT_EQ(fn.typeOf(fn.returns[1]).str(), "tensor<2 x 12 x f32>");
}

TEST(OnnxImport, SliceWithNegativeStepAndClamping) {
  ModelBuilder b(13);
  b.input("x", {5});
  b.initInts("starts", {100});
  b.initInts("ends", {-100});
  b.initInts("axes", {0});
  b.initInts("steps", {-2});
  b.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
  b.output("y", {3});
  Expected<ir::Module> m = b.import();
  ASSERT_TRUE(m) << m.error().message();
  auto out = run(*m, {f32({5}, {0, 1, 2, 3, 4})});
  EXPECT_EQ(out.at(0).data, (std::vector<double>{4, 2, 0}));
}

TEST(OnnxImport, UnsupportedOpNamesOpAndNode) {
  ModelBuilder b;
  b.input("x", {2});
  b.node("NonZero", {"x"}, {"y"}, "nz1");
  b.output("y", {1, 2}, TensorProto::INT64);
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::Unsupported);
  EXPECT_NE(m.error().message().find("NonZero"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("nz1"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, UnsupportedAttributeIsNamed) {
  ModelBuilder b;
  b.input("x", {2});
  auto *n = b.node("Relu", {"x"}, {"y"}, "r");
  ModelBuilder::attrInt(n, "mystery", 1);
  b.output("y", {2});
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::Unsupported);
  EXPECT_NE(m.error().message().find("'mystery'"), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("'r'"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, UnsupportedDtypeIsNamed) {
  ModelBuilder b;
  b.input("x", {2}, TensorProto::UINT32);
  b.node("Identity", {"x"}, {"y"});
  b.output("y", {2}, TensorProto::UINT32);
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::Unsupported);
  EXPECT_NE(m.error().message().find("UINT32"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, TruncatedBytesAreCorruptData) {
  ModelBuilder b;
  b.input("x", {2});
  b.init("w", {2}, {1, 2});
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y", {2});
  std::string bytes = b.model.SerializeAsString();
  Expected<ir::Module> m = tonnx::importOnnx(bytes.data(), bytes.size() / 2);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::CorruptData);
  std::string garbage(64, '\xff');
  Expected<ir::Module> g = tonnx::importOnnx(garbage.data(), garbage.size());
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code(), ErrorCode::CorruptData);
}

TEST(OnnxImport, InitializerSizeMismatchNamesTensor) {
  ModelBuilder b;
  b.input("x", {3});
  b.init("w", {3}, {1, 2}); // 2 values for 3 elements
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y", {3});
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::CorruptData);
  EXPECT_NE(m.error().message().find("'w'"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, UnknownDomainIsReported) {
  ModelBuilder b;
  b.input("x", {2});
  auto *n = b.node("Frob", {"x"}, {"y"}, "f");
  n->set_domain("com.example.unknown");
  b.output("y", {2});
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::InvalidIR);
  EXPECT_NE(m.error().message().find("com.example.unknown"), std::string::npos) << m.error().message();
  auto *o = b.model.add_opset_import();
  o->set_domain("bogusdomain");
  o->set_version(1);
  Expected<ir::Module> m2 = b.import();
  ASSERT_FALSE(m2);
  EXPECT_EQ(m2.error().code(), ErrorCode::InvalidIR);
  EXPECT_NE(m2.error().message().find("bogusdomain"), std::string::npos) << m2.error().message();
}

TEST(OnnxImport, InconsistentDeclaredShapeNamesOutput) {
  ModelBuilder b;
  b.input("x", {2, 3});
  b.node("Relu", {"x"}, {"y"});
  b.output("y", {3, 2});
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::InvalidIR);
  EXPECT_NE(m.error().message().find("'y'"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, ShapeErrorNamesNode) {
  ModelBuilder b;
  b.input("a", {2, 3});
  b.input("b", {4, 5});
  b.node("MatMul", {"a", "b"}, {"y"}, "mm");
  b.output("y", {2, 5});
  Expected<ir::Module> m = b.import();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::ShapeMismatch);
  EXPECT_NE(m.error().message().find("'mm' (MatMul)"), std::string::npos) << m.error().message();
}

TEST(OnnxImport, ExternalData) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tessera_onnx_ext_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  float data[3] = {1, 2, 3};
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    f.write("pad!", 4);
    f.write(reinterpret_cast<const char *>(data), sizeof(data));
  }
  ModelBuilder b;
  b.input("x", {3});
  TensorProto *w = b.g().add_initializer();
  w->set_name("w");
  w->set_data_type(TensorProto::FLOAT);
  w->add_dims(3);
  w->set_data_location(TensorProto::EXTERNAL);
  for (auto [k, v] : {std::pair<const char *, const char *>{"location", "weights.bin"}, {"offset", "4"},
                      {"length", "12"}}) {
    auto *e = w->add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  b.node("Mul", {"x", "w"}, {"y"});
  b.output("y", {3});
  tonnx::ImportOptions o;
  o.baseDir = dir.string();
  Expected<ir::Module> m = b.import(o);
  ASSERT_TRUE(m) << m.error().message();
  auto out = run(*m, {f32({3}, {2, 2, 2})});
  EXPECT_EQ(out.at(0).data, (std::vector<double>{2, 4, 6}));
  // A length beyond the file is CorruptData naming the tensor.
  w->mutable_external_data(2)->set_value("400");
  Expected<ir::Module> bad = b.import(o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::CorruptData);
  EXPECT_NE(bad.error().message().find("'w'"), std::string::npos) << bad.error().message();
  std::filesystem::remove_all(dir);
}

TEST(OnnxImport, LegacyOpsetForms) {
  ModelBuilder b(4);
  b.input("x", {2, 3});
  b.init("v", {3}, {1, 2, 3});
  auto *n = b.node("Add", {"x", "v"}, {"s"});
  ModelBuilder::attrInt(n, "broadcast", 1);
  auto *r = b.node("Reshape", {"s"}, {"y"});
  auto *a = r->add_attribute();
  a->set_name("shape");
  a->set_type(::onnx::AttributeProto::INTS);
  a->add_ints(3);
  a->add_ints(-1);
  b.output("y", {3, 2});
  Expected<ir::Module> m = b.import();
  ASSERT_TRUE(m) << m.error().message();
  auto out = run(*m, {f32({2, 3}, {0, 0, 0, 1, 1, 1})});
  EXPECT_EQ(out.at(0).data, (std::vector<double>{1, 2, 3, 2, 3, 4}));
}

TEST(OnnxImport, IntegerDivTruncatesAndModFollowsFmod) {
  ModelBuilder b(13);
  b.input("a", {4}, TensorProto::INT32);
  b.input("b", {4}, TensorProto::INT32);
  b.node("Div", {"a", "b"}, {"q"});
  auto *m = b.node("Mod", {"a", "b"}, {"r"});
  ModelBuilder::attrInt(m, "fmod", 1);
  b.output("q", {4}, TensorProto::INT32);
  b.output("r", {4}, TensorProto::INT32);
  Expected<ir::Module> mod = b.import();
  ASSERT_TRUE(mod) << mod.error().message();
  auto i32 = [](std::vector<double> v) { return ref::RefTensor(ref::DType::I32, {4}, v); };
  auto out = run(*mod, {i32({7, -7, 7, -7}), i32({2, 2, -2, -2})});
  EXPECT_EQ(out.at(0).data, (std::vector<double>{3, -3, -3, 3}));
  EXPECT_EQ(out.at(1).data, (std::vector<double>{1, -1, 1, -1}));
}

TEST(OnnxTensor, HalfRoundTrip) {
  TensorProto t;
  t.set_name("h");
  t.set_data_type(TensorProto::FLOAT16);
  t.add_dims(3);
  for (int v : {0x3c00, 0xc000, 0x0001}) // 1, -2, smallest subnormal
    t.add_int32_data(v);
  Expected<tonnx::HostTensor> h = tonnx::decodeTensor(t, "");
  ASSERT_TRUE(h) << h.error().message();
  Expected<ref::RefTensor> r = tonnx::toRef(*h);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data[0], 1.0);
  EXPECT_EQ(r->data[1], -2.0);
  EXPECT_EQ(r->data[2], std::ldexp(1.0, -24));
  Expected<tonnx::HostTensor> back = tonnx::fromRef(*r);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->bytes, h->bytes);
}

} // namespace
