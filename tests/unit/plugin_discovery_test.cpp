// Plugin discovery: search order, environment, file patterns, de-duplication.
#include "plugin/Discovery.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace tessera::plugin;

namespace {

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/tessera-disc-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string touch(const std::string &name) const {
    std::string p = path + "/" + name;
    std::ofstream(p) << "x";
    return p;
  }
  std::string path;
};

// Restores an environment variable on scope exit.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name_(name) {
    if (const char *old = std::getenv(name))
      old_ = old, had_ = true;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { had_ ? setenv(name_, old_.c_str(), 1) : unsetenv(name_); }

private:
  const char *name_;
  std::string old_;
  bool had_ = false;
};

TEST(SplitPathList, DropsEmptyEntries) {
  EXPECT_EQ(splitPathList("a::b:"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(splitPathList("").empty());
}

TEST(SearchDirectories, OrderIsExplicitThenAddThenReplace) {
  ScopedEnv add("TESSERA_ADD_PLUGIN_PATH", "/add1:/add2");
  ScopedEnv replace("TESSERA_PLUGIN_PATH", "/replace");
  DiscoveryOptions o;
  o.explicitDirs = {"/explicit"};
  EXPECT_EQ(searchDirectories(o), (std::vector<std::string>{"/explicit", "/add1", "/add2", "/replace"}));
}

TEST(SearchDirectories, DefaultsWhenNoReplacement) {
  ScopedEnv add("TESSERA_ADD_PLUGIN_PATH", nullptr);
  ScopedEnv replace("TESSERA_PLUGIN_PATH", nullptr);
  std::vector<std::string> dirs = searchDirectories({});
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_NE(dirs[0].find("/tessera/plugins"), std::string::npos);
}

TEST(SearchDirectories, IgnoreEnvironmentFlag) {
  ScopedEnv replace("TESSERA_PLUGIN_PATH", "/replace");
  DiscoveryOptions o;
  o.ignoreEnvironment = true;
  o.noDefaultPaths = true;
  o.explicitDirs = {"/only"};
  EXPECT_EQ(searchDirectories(o), (std::vector<std::string>{"/only"}));
}

TEST(FindCandidates, MatchesPatternsSortsAndDeduplicates) {
  TempDir a, b;
  a.touch("libtessera-backend-zeta.so");
  a.touch("libtessera-backend-alpha.so");
  a.touch("libtessera-plugin-search.so");
  a.touch("libtessera-backend-.so");      // empty name: not a match
  a.touch("libtessera-backend-x.so.1");   // versioned: not a match
  a.touch("libother.so");
  // The same file reached through a second directory is listed once.
  ASSERT_EQ(symlink((a.path + "/libtessera-backend-alpha.so").c_str(),
                    (b.path + "/libtessera-backend-alpha.so").c_str()),
            0);
  b.touch("libtessera-backend-beta.so");
  std::vector<Candidate> found = findCandidates({a.path, "/nonexistent", b.path});
  std::vector<std::string> names;
  for (const Candidate &c : found)
    names.push_back(c.path.substr(c.path.rfind('/') + 1) + "/" + c.kind);
  EXPECT_EQ(names, (std::vector<std::string>{"libtessera-backend-alpha.so/backend",
                                             "libtessera-backend-zeta.so/backend",
                                             "libtessera-plugin-search.so/plugin",
                                             "libtessera-backend-beta.so/backend"}));
}

} // namespace
