// core/schedule: cache keys, the SQLite tuning cache's recovery paths
// (garbage file, future schema, read-only directory, two writer
// processes), knob text, schedule YAML forcing, Spearman.
#include "schedule/Key.h"
#include "schedule/ScheduleFile.h"
#include "schedule/Search.h"
#include "schedule/TuningCache.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::sched;

namespace {

const char *kProgram = R"(tessera-schedule v1
symbols
kernel "softmax_0" loop {
  operand 0 in f32 [4, 8]
  operand 1 out f32 [4, 8]
  parallel [4]
  knobs vector=16
  stage map [8] {
    v0: f32 = load 0 [p0, r0]
    store 1 [p0, r0] v0
  }
}
)";

schedule::Program parse(const std::string &text) {
  schedule::Program p;
  schedule::ParseError e;
  EXPECT_TRUE(schedule::parseProgram(text, &p, &e)) << e.str();
  return p;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("tessera-sched-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, ec);
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<TuningCache> openWith(const fs::path &dir, std::vector<std::string> &warnings) {
  return TuningCache::open(dir.string(), [&warnings](const std::string &m) { warnings.push_back(m); });
}

} // namespace

TEST(ScheduleKey, StableAndIgnoresKnobsAndName) {
  schedule::Program a = parse(kProgram);
  schedule::Program b = a;
  b.kernels[0].knobs["tile"] = std::vector<int64_t>{2};
  b.kernels[0].name = "other";
  EXPECT_EQ(structuralHash(a, 0), structuralHash(b, 0));
  EXPECT_EQ(structuralHash(a, 0), structuralHash(parse(kProgram), 0)); // deterministic across parses
  TargetKey t{"cpu", "0.1.0", "x86-64-v3", "", 2};
  std::string k1 = tuningKey(a, 0, nullptr, t);
  t.optLevel = 1;
  EXPECT_NE(k1, tuningKey(a, 0, nullptr, t));
  schedule::Program c = a;
  c.kernels[0].operands[0].dtype = TESSERA_DTYPE_F16;
  EXPECT_NE(structuralHash(a, 0), structuralHash(c, 0));
  EXPECT_EQ(hashHex("abc"), "e71fa2190541574b"); // FNV-1a 64 reference value
}

TEST(ScheduleKey, KnobTextRoundTrips) {
  Knobs k{{"mc", int64_t(64)}, {"tile", std::vector<int64_t>{1, 32}}, {"library", std::string("generic")}};
  std::optional<Knobs> back = parseKnobs(printKnobs(k));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, k);
  EXPECT_FALSE(parseKnobs("mc="));
  EXPECT_FALSE(parseKnobs("=3"));
  EXPECT_FALSE(parseKnobs("tile=[1, x]"));
}

TEST(TuningCache, StoresAndReadsBack) {
  TempDir dir;
  std::vector<std::string> warnings;
  {
    auto cache = openWith(dir.path, warnings);
    ASSERT_TRUE(cache->enabled());
    cache->storeTuning("k1", {"mc=64", 1e-3, 2e-3, 3e-3});
    cache->storeArtifact("a1", std::string("\0bytes", 6));
  }
  auto cache = openWith(dir.path, warnings);
  auto rec = cache->lookupTuning("k1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->knobs, "mc=64");
  EXPECT_DOUBLE_EQ(rec->defaultSeconds, 3e-3);
  EXPECT_EQ(cache->lookupArtifact("a1").value_or(""), std::string("\0bytes", 6));
  EXPECT_FALSE(cache->lookupTuning("missing"));
  EXPECT_TRUE(warnings.empty());
  Expected<CacheStats> s = cache->stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->tuningEntries, 1);
  EXPECT_EQ(s->artifactEntries, 1);
}

TEST(TuningCache, GarbageFileIsMovedAsideAndRebuilt) {
  TempDir dir;
  std::ofstream(dir.path / "tessera-cache.db") << "this is not a database, just garbage bytes ............";
  std::vector<std::string> warnings;
  auto cache = openWith(dir.path, warnings);
  ASSERT_TRUE(cache->enabled());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("damaged"), std::string::npos) << warnings[0];
  cache->storeTuning("k", {"mc=1", 0, 0, 0});
  EXPECT_TRUE(cache->lookupTuning("k"));
  bool aside = false;
  for (const auto &e : fs::directory_iterator(dir.path))
    aside |= e.path().filename().string().find(".corrupt-") != std::string::npos;
  EXPECT_TRUE(aside);
}

TEST(TuningCache, FutureSchemaIsLeftUntouched) {
  TempDir dir;
  fs::path file = dir.path / "tessera-cache.db";
  {
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE future(x); PRAGMA user_version=99;", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto before = fs::file_size(file);
  std::vector<std::string> warnings;
  auto cache = openWith(dir.path, warnings);
  ASSERT_TRUE(cache->enabled());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("newer"), std::string::npos);
  EXPECT_NE(cache->path(), file.string());
  cache->storeTuning("k", {"mc=1", 0, 0, 0});
  EXPECT_EQ(fs::file_size(file), before);
  sqlite3 *db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  sqlite3_stmt *s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 99);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST(TuningCache, ReadOnlyDirectoryDisablesWithWarning) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir;
  fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
  std::vector<std::string> warnings;
  auto cache = openWith(dir.path, warnings);
  EXPECT_FALSE(cache->enabled());
  EXPECT_FALSE(warnings.empty());
  cache->storeTuning("k", {"mc=1", 0, 0, 0}); // a no-op, not a crash
  EXPECT_FALSE(cache->lookupTuning("k"));
}

TEST(TuningCache, UnwritablePathDisablesWithWarning) {
  TempDir dir;
  std::ofstream(dir.path / "file") << "x";
  std::vector<std::string> warnings;
  auto cache = openWith(dir.path / "file" / "sub", warnings); // parent is a file
  EXPECT_FALSE(cache->enabled());
  EXPECT_FALSE(warnings.empty());
}

TEST(TuningCache, TwoWriterProcesses) {
  TempDir dir;
  { std::vector<std::string> w; openWith(dir.path, w); } // create the schema first
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  const int n = 200;
  auto write = [&](const std::string &prefix) {
    std::vector<std::string> w;
    auto cache = openWith(dir.path, w);
    for (int i = 0; i < n; ++i)
      cache->storeTuning(prefix + std::to_string(i), {"mc=" + std::to_string(i), 0, 0, 0});
    return w.empty();
  };
  if (child == 0)
    ::_exit(write("child") ? 0 : 1);
  bool ok = write("parent");
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::vector<std::string> w;
  Expected<CacheStats> s = openWith(dir.path, w)->stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->tuningEntries, 2 * n);
}

TEST(TuningCache, ExportImport) {
  TempDir a, b;
  std::vector<std::string> w;
  auto ca = openWith(a.path, w);
  ca->storeTuning("k", {"mc=8", 1, 1, 1});
  ASSERT_FALSE(ca->exportTo((a.path / "out.db").string()));
  auto cb = openWith(b.path, w);
  Expected<int64_t> n = cb->importFrom((a.path / "out.db").string());
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(cb->lookupTuning("k").value_or(TuningRecord{}).knobs, "mc=8");
  std::ofstream(b.path / "junk.db") << "junk junk junk junk junk junk junk junk junk junk junk junk junk";
  EXPECT_FALSE(cb->importFrom((b.path / "junk.db").string()));
  EXPECT_FALSE(cb->importFrom((b.path / "missing.db").string()));
}

TEST(ScheduleFile, ForcesAndInherits) {
  ScheduleFile f = parseScheduleText(R"(version: 1
kernels:
  matmul_0:
    knobs: {mc: 64, kc: 256, nc: 512}
  big:
    base: matmul_0
    knobs: {mc: 128}
)",
                                     "s.yaml");
  EXPECT_TRUE(f.problems.empty());
  ASSERT_EQ(f.entries.count("big"), 1u);
  EXPECT_EQ(std::get<int64_t>(f.entries["big"]["mc"]), 128);
  EXPECT_EQ(std::get<int64_t>(f.entries["big"]["kc"]), 256);
}

TEST(ScheduleFile, BadInputGivesMessagesNotCrashes) {
  EXPECT_FALSE(parseScheduleText("kernels: [", "a.yaml").problems.empty());
  EXPECT_FALSE(parseScheduleText("kernels:\n  a:\n    base: b\n  b:\n    base: a\n", "c.yaml").problems.empty());
  EXPECT_FALSE(parseScheduleText("kernels:\n  a:\n    base: nope\n", "d.yaml").problems.empty());
  EXPECT_FALSE(loadScheduleFile("/nonexistent/s.yaml").problems.empty());
  schedule::Program p = parse(kProgram);
  EXPECT_NE(checkKnobs(p.kernels[0], {{"tile", std::vector<int64_t>{1, 2}}}), "");
  EXPECT_NE(checkKnobs(p.kernels[0], {{"mc", int64_t(64)}}), ""); // not a matmul
  EXPECT_NE(checkKnobs(p.kernels[0], {{"vector", int64_t(3)}}), "");
  EXPECT_NE(checkKnobs(p.kernels[0], {{"threads", int64_t(-1)}}), "");
  EXPECT_NE(checkKnobs(p.kernels[0], {{"bogus", int64_t(1)}}), "");
  EXPECT_EQ(checkKnobs(p.kernels[0], {{"tile", std::vector<int64_t>{2}}}), "");
}

TEST(ScheduleSearch, SpaceHasDefaultFirstAndSpearman) {
  schedule::Program p = parse(kProgram);
  std::vector<Knobs> space = enumerateSpace(p, 0, {}, 2);
  ASSERT_GT(space.size(), 2u);
  EXPECT_EQ(space[0], p.kernels[0].knobs);
  // No plugin space: only the generic knobs.
  for (const Knobs &kn : space)
    EXPECT_EQ(kn.count("warps"), 0u);
  // A plugin's declared alternatives add every combination, integers typed.
  PluginSpace extra;
  plugin::KnobChoices warps;
  warps.knobs = {{"warps", {"2", "8"}}, {"mode", {"fast"}}};
  extra["loop"].push_back(warps);
  extra["matmul"].push_back(warps); // another kind: not used here
  std::vector<Knobs> withPlugin = enumerateSpace(p, 0, {}, 2, extra);
  ASSERT_EQ(withPlugin.size(), space.size() + 2);
  const Knobs &last = withPlugin.back();
  EXPECT_EQ(std::get<int64_t>(last.at("warps")), 8);
  EXPECT_EQ(std::get<std::string>(last.at("mode")), "fast");
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_NEAR(spearman({1, 2, 3}, {1, 1, 2}), 0.866, 1e-3); // ties averaged
}
