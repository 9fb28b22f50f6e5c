// The optional YAML manifest beside a plugin.
#include "plugin/Manifest.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace tessera;
using namespace tessera::plugin;

namespace {

class ManifestTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tessera-manifest-XXXXXX";
    dir = mkdtemp(tmpl);
    so = dir + "/libtessera-backend-demo.so";
  }
  void TearDown() override { std::system(("rm -rf '" + dir + "'").c_str()); }
  void write(const std::string &text) { std::ofstream(dir + "/libtessera-backend-demo.yaml") << text; }
  std::string dir, so;
};

TEST_F(ManifestTest, AbsentIsNotAnError) {
  auto m = readManifest(so);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->has_value());
}

TEST_F(ManifestTest, ReadsAllFields) {
  write("name: demo\nvendor: ACME\nversion: 1.2.3\nabi_version: \"0.1\"\ntargets: [a, b]\n");
  auto m = readManifest(so);
  ASSERT_TRUE(m) << m.error().render();
  ASSERT_TRUE(m->has_value());
  const Manifest &v = **m;
  EXPECT_EQ(v.name, "demo");
  EXPECT_EQ(v.vendor, "ACME");
  EXPECT_EQ(v.abiMajor, 0u);
  EXPECT_EQ(v.abiMinor, 1u);
  EXPECT_EQ(v.targets, (std::vector<std::string>{"a", "b"}));
}

TEST_F(ManifestTest, MissingKeyIsLocated) {
  write("vendor: ACME\nabi_version: \"0.1\"\n");
  auto m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ErrorCode::CorruptData);
  EXPECT_NE(m.error().message().find("missing key 'name'"), std::string::npos);
}

TEST_F(ManifestTest, BadAbiVersion) {
  write("name: demo\nabi_version: \"one\"\n");
  auto m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("abi_version must look like"), std::string::npos);
  EXPECT_EQ(m.error().location().line, 2u);
}

TEST_F(ManifestTest, SyntaxErrorIsLocated) {
  write("name: demo\ntargets: [a, b\n");
  auto m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_GT(m.error().location().line, 0u);
  EXPECT_NE(m.error().render().find("libtessera-backend-demo.yaml:"), std::string::npos);
}

TEST_F(ManifestTest, SearchSpaceAlternatives) {
  write("name: demo\nabi_version: \"0.2\"\nsearch_space:\n  matmul:\n    - {library: vendor}\n"
        "    - {library: generic, stages: [2, 3]}\n  loop:\n    - {warps: 4}\n");
  auto m = readManifest(so);
  ASSERT_TRUE(m) << m.error().render();
  const auto &space = (**m).searchSpace;
  ASSERT_EQ(space.size(), 2u);
  ASSERT_EQ(space.at("matmul").size(), 2u);
  EXPECT_EQ(space.at("matmul")[1].knobs[1].first, "stages");
  EXPECT_EQ(space.at("matmul")[1].knobs[1].second, (std::vector<std::string>{"2", "3"}));
  EXPECT_EQ(space.at("loop")[0].knobs[0].second, (std::vector<std::string>{"4"}));
}

TEST_F(ManifestTest, SearchSpaceErrorsAreLocated) {
  write("name: demo\nabi_version: \"0.2\"\nsearch_space:\n  conv:\n    - {warps: 4}\n");
  auto m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("unknown kernel kind 'conv'"), std::string::npos) << m.error().message();
  EXPECT_EQ(m.error().location().line, 4u);
  write("name: demo\nabi_version: \"0.2\"\nsearch_space:\n  loop:\n    - {warps: []}\n");
  m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("needs a value or a non-empty list"), std::string::npos)
      << m.error().message();
  write("name: demo\nabi_version: \"0.2\"\nsearch_space: [1]\n");
  m = readManifest(so);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("'search_space' must map"), std::string::npos);
}

} // namespace
