// The persistent tuning and artifact cache: one SQLite database in WAL mode
// (https://sqlite.org/wal.html) under the cache directory. Tables:
//   meta(key, value)                        schema bookkeeping
//   tuning(key, knobs, seconds, predicted, default_seconds, updated)
//   artifacts(key, bytes, updated)          serialized plugin executables
// Schema version in PRAGMA user_version. Every failure degrades: a database
// that is not one (or is damaged) is moved aside with a warning and rebuilt;
// a schema from the future is left untouched and a sibling file for this
// schema is used; a locked or full database, or an unwritable directory,
// gives a warning and the cache answers "miss" (compiles still succeed).
// Thread-safe (one connection, serialized by a mutex); safe across processes
// (busy timeout + transactions).
#ifndef TESSERA_SCHEDULE_TUNINGCACHE_H
#define TESSERA_SCHEDULE_TUNINGCACHE_H

#include "support/Error.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

struct sqlite3;

namespace tessera::sched {

inline constexpr int kCacheSchemaVersion = 1;

using WarnFn = std::function<void(const std::string &)>;

// Resolves the cache directory: `option` if non-empty, else
// $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera, else ~/.cache/tessera.
// "off" (either way) disables the cache: returns "".
std::string resolveCacheDir(const std::string &option);

struct TuningRecord {
  std::string knobs;          // printKnobs text
  double seconds = 0;         // measured median (0 when model-only)
  double predicted = 0;       // cost model (0 when none)
  double defaultSeconds = 0;  // the default schedule, measured
};

struct CacheStats {
  std::string path;
  int64_t tuningEntries = 0, artifactEntries = 0, artifactBytes = 0, fileBytes = 0;
};

class TuningCache {
public:
  // Opens (creating) the database in `dir`. Never fails: on problems it
  // warns through `warn` and returns a cache that is disabled (or uses a
  // rebuilt/sibling file as described above).
  static std::unique_ptr<TuningCache> open(const std::string &dir, WarnFn warn);
  ~TuningCache();
  TuningCache(const TuningCache &) = delete;
  TuningCache &operator=(const TuningCache &) = delete;

  bool enabled() const { return db_ != nullptr; }
  const std::string &path() const { return path_; }

  std::optional<TuningRecord> lookupTuning(const std::string &key);
  void storeTuning(const std::string &key, const TuningRecord &record);
  std::optional<std::string> lookupArtifact(const std::string &key);
  void storeArtifact(const std::string &key, const std::string &bytes);

  Expected<CacheStats> stats();
  Error clear();
  // Tuning results only (artifacts are machine-specific), as a standalone
  // SQLite file; import merges one (newer entries win).
  Error exportTo(const std::string &file);
  Expected<int64_t> importFrom(const std::string &file);

private:
  TuningCache(std::string path, WarnFn warn) : path_(std::move(path)), warn_(std::move(warn)) {}
  bool openFile(bool allowRecover);
  void moveAside(const std::string &why);
  void failed(const char *what, int rc);

  std::string path_;
  WarnFn warn_;
  sqlite3 *db_ = nullptr;
  std::mutex mutex_;
};

} // namespace tessera::sched

#endif // TESSERA_SCHEDULE_TUNINGCACHE_H
