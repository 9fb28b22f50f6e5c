#include "schedule/TuningCache.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace tessera::sched {

namespace {

constexpr const char *kFileName = "tessera-cache.db";
constexpr int kBusyTimeoutMs = 5000;

const char *kSchema = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
                      "CREATE TABLE IF NOT EXISTS tuning(key TEXT PRIMARY KEY, knobs TEXT NOT NULL,"
                      " seconds REAL, predicted REAL, default_seconds REAL, updated INTEGER);"
                      "CREATE TABLE IF NOT EXISTS artifacts(key TEXT PRIMARY KEY, bytes BLOB NOT NULL,"
                      " updated INTEGER);";

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool isCorrupt(int rc) {
  rc &= 0xff;
  return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

// A prepared statement that finalizes itself.
class Stmt {
public:
  Stmt(sqlite3 *db, const char *sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt &) = delete;
  Stmt &operator=(const Stmt &) = delete;
  bool ok() const { return rc_ == SQLITE_OK && s_; }
  int prepareRc() const { return rc_; }
  sqlite3_stmt *get() { return s_; }
  void bind(int i, const std::string &v) { sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT); }
  void bindBlob(int i, const std::string &v) {
    sqlite3_bind_blob(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  void bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  int step() { return sqlite3_step(s_); }

private:
  sqlite3_stmt *s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

} // namespace

std::string resolveCacheDir(const std::string &option) {
  std::string dir = option;
  if (dir.empty())
    if (const char *env = std::getenv("TESSERA_CACHE_DIR"))
      dir = env;
  if (dir == "off")
    return {};
  if (!dir.empty())
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/tessera";
  if (const char *home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/tessera";
  return {};
}

std::unique_ptr<TuningCache> TuningCache::open(const std::string &dir, WarnFn warn) {
  std::unique_ptr<TuningCache> cache(new TuningCache(dir.empty() ? std::string() : dir + "/" + kFileName,
                                                     std::move(warn)));
  if (dir.empty())
    return cache;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    cache->warn_("tuning cache disabled: cannot create '" + dir + "': " + ec.message());
    return cache;
  }
  cache->openFile(/*allowRecover=*/true);
  return cache;
}

TuningCache::~TuningCache() {
  if (db_)
    sqlite3_close(db_);
}

void TuningCache::failed(const char *what, int rc) {
  std::string msg = std::string("tuning cache: ") + what + " failed (" + sqlite3_errstr(rc) + ") on '" + path_ + "'";
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    msg += "; the database is locked by another process, continuing without it";
  else if ((rc & 0xff) == SQLITE_FULL)
    msg += "; the disk is full, continuing without caching";
  else
    msg += "; continuing without it";
  warn_(msg);
  if (isCorrupt(rc) || (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED || (rc & 0xff) == SQLITE_FULL ||
      (rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_IOERR) {
    sqlite3_close(db_);
    db_ = nullptr;
  }
}

void TuningCache::moveAside(const std::string &why) {
  std::string aside = path_ + ".corrupt-" + std::to_string(now());
  std::error_code ec;
  fs::rename(path_, aside, ec);
  fs::remove(path_ + "-wal", ec);
  fs::remove(path_ + "-shm", ec);
  warn_("tuning cache '" + path_ + "' is damaged (" + why + "); moved it to '" + aside + "' and rebuilt it");
}

bool TuningCache::openFile(bool allowRecover) {
  int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    warn_("tuning cache disabled: cannot open '" + path_ + "': " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
    sqlite3_close(db_);
    db_ = nullptr;
    return false;
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  int version = -1;
  {
    Stmt s(db_, "PRAGMA user_version");
    rc = s.ok() ? s.step() : s.prepareRc();
    if (rc == SQLITE_ROW) {
      version = sqlite3_column_int(s.get(), 0);
      rc = SQLITE_OK;
    }
  }
  if (rc == SQLITE_OK && version == 0) {
    // A file with user_version 0 but foreign tables is not ours.
    Stmt s(db_, "SELECT count(*) FROM sqlite_master WHERE name NOT IN ('meta','tuning','artifacts')");
    rc = s.ok() ? s.step() : s.prepareRc();
    if (rc == SQLITE_ROW)
      rc = sqlite3_column_int(s.get(), 0) == 0 ? SQLITE_OK : SQLITE_NOTADB;
  }
  if (rc != SQLITE_OK) {
    std::string why = sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    if (isCorrupt(rc) && allowRecover) {
      moveAside(why);
      return openFile(false);
    }
    failed("opening", rc);
    return false;
  }
  if (version > kCacheSchemaVersion) {
    sqlite3_close(db_);
    db_ = nullptr;
    if (!allowRecover) {
      warn_("tuning cache disabled: '" + path_ + "' has a newer schema too");
      return false;
    }
    std::string sibling = path_.substr(0, path_.size() - 3) + "-v" + std::to_string(kCacheSchemaVersion) + ".db";
    warn_("tuning cache '" + path_ + "' has schema version " + std::to_string(version) + ", newer than this " +
          "Tessera's " + std::to_string(kCacheSchemaVersion) + "; leaving it untouched and using '" + sibling + "'");
    path_ = sibling;
    return openFile(false);
  }
  sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  if (version < kCacheSchemaVersion) {
    std::string sql = std::string("BEGIN IMMEDIATE;") + kSchema + "PRAGMA user_version=" +
                      std::to_string(kCacheSchemaVersion) + ";COMMIT;";
    rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      if (isCorrupt(rc) && allowRecover) {
        sqlite3_close(db_);
        db_ = nullptr;
        moveAside(sqlite3_errstr(rc));
        return openFile(false);
      }
      failed("creating the schema", rc);
      return false;
    }
  }
  return true;
}

std::optional<TuningRecord> TuningCache::lookupTuning(const std::string &key) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return std::nullopt;
  Stmt s(db_, "SELECT knobs, seconds, predicted, default_seconds FROM tuning WHERE key = ?");
  if (!s.ok()) {
    failed("lookup", s.prepareRc());
    return std::nullopt;
  }
  s.bind(1, key);
  int rc = s.step();
  if (rc == SQLITE_ROW) {
    TuningRecord r;
    const unsigned char *t = sqlite3_column_text(s.get(), 0);
    r.knobs = t ? reinterpret_cast<const char *>(t) : "";
    r.seconds = sqlite3_column_double(s.get(), 1);
    r.predicted = sqlite3_column_double(s.get(), 2);
    r.defaultSeconds = sqlite3_column_double(s.get(), 3);
    return r;
  }
  if (rc != SQLITE_DONE)
    failed("lookup", rc);
  return std::nullopt;
}

void TuningCache::storeTuning(const std::string &key, const TuningRecord &r) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return;
  Stmt s(db_, "INSERT OR REPLACE INTO tuning(key, knobs, seconds, predicted, default_seconds, updated) "
              "VALUES(?, ?, ?, ?, ?, ?)");
  if (!s.ok())
    return failed("store", s.prepareRc());
  s.bind(1, key);
  s.bind(2, r.knobs);
  s.bind(3, r.seconds);
  s.bind(4, r.predicted);
  s.bind(5, r.defaultSeconds);
  s.bind(6, now());
  if (int rc = s.step(); rc != SQLITE_DONE)
    failed("store", rc);
}

std::optional<std::string> TuningCache::lookupArtifact(const std::string &key) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return std::nullopt;
  Stmt s(db_, "SELECT bytes FROM artifacts WHERE key = ?");
  if (!s.ok()) {
    failed("artifact lookup", s.prepareRc());
    return std::nullopt;
  }
  s.bind(1, key);
  int rc = s.step();
  if (rc == SQLITE_ROW) {
    const void *p = sqlite3_column_blob(s.get(), 0);
    int n = sqlite3_column_bytes(s.get(), 0);
    return std::string(static_cast<const char *>(p), p ? size_t(n) : 0);
  }
  if (rc != SQLITE_DONE)
    failed("artifact lookup", rc);
  return std::nullopt;
}

void TuningCache::storeArtifact(const std::string &key, const std::string &bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return;
  Stmt s(db_, "INSERT OR REPLACE INTO artifacts(key, bytes, updated) VALUES(?, ?, ?)");
  if (!s.ok())
    return failed("artifact store", s.prepareRc());
  s.bind(1, key);
  s.bindBlob(2, bytes);
  s.bind(3, now());
  if (int rc = s.step(); rc != SQLITE_DONE)
    failed("artifact store", rc);
}

Expected<CacheStats> TuningCache::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  CacheStats out;
  out.path = path_;
  if (!db_)
    return out;
  auto count = [&](const char *sql, int64_t &v) -> Error {
    Stmt s(db_, sql);
    int rc = s.ok() ? s.step() : s.prepareRc();
    if (rc != SQLITE_ROW)
      return makeError(ErrorCode::IOError, std::string("cache query failed: ") + sqlite3_errstr(rc));
    v = sqlite3_column_int64(s.get(), 0);
    return Error::success();
  };
  if (Error e = count("SELECT count(*) FROM tuning", out.tuningEntries))
    return e;
  if (Error e = count("SELECT count(*) FROM artifacts", out.artifactEntries))
    return e;
  if (Error e = count("SELECT coalesce(sum(length(bytes)), 0) FROM artifacts", out.artifactBytes))
    return e;
  std::error_code ec;
  uintmax_t size = fs::file_size(path_, ec);
  out.fileBytes = ec ? 0 : int64_t(size);
  return out;
}

Error TuningCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return makeError(ErrorCode::Unsupported, "the tuning cache is disabled ('" + path_ + "')");
  int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE; DELETE FROM tuning; DELETE FROM artifacts; COMMIT;", nullptr, nullptr,
                        nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return makeError(ErrorCode::IOError, std::string("clearing the cache failed: ") + sqlite3_errmsg(db_));
  }
  sqlite3_exec(db_, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;", nullptr, nullptr, nullptr);
  return Error::success();
}

Error TuningCache::exportTo(const std::string &file) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return makeError(ErrorCode::Unsupported, "the tuning cache is disabled ('" + path_ + "')");
  std::error_code ec;
  fs::remove(file, ec);
  Stmt attach(db_, "ATTACH DATABASE ? AS ex");
  attach.bind(1, file);
  if (!attach.ok() || attach.step() != SQLITE_DONE)
    return makeError(ErrorCode::IOError, "cannot create '" + file + "': " + sqlite3_errmsg(db_));
  std::string sql = "BEGIN; CREATE TABLE ex.tuning(key TEXT PRIMARY KEY, knobs TEXT NOT NULL, seconds REAL,"
                    " predicted REAL, default_seconds REAL, updated INTEGER);"
                    "INSERT INTO ex.tuning SELECT * FROM main.tuning; PRAGMA ex.user_version=" +
                    std::to_string(kCacheSchemaVersion) + "; COMMIT;";
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  std::string msg = rc == SQLITE_OK ? "" : sqlite3_errmsg(db_);
  if (rc != SQLITE_OK)
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_exec(db_, "DETACH DATABASE ex", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK)
    return makeError(ErrorCode::IOError, "exporting to '" + file + "' failed: " + msg);
  return Error::success();
}

Expected<int64_t> TuningCache::importFrom(const std::string &file) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!db_)
    return makeError(ErrorCode::Unsupported, "the tuning cache is disabled ('" + path_ + "')");
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return makeError(ErrorCode::NotFound, "no file '" + file + "'");
  Stmt attach(db_, "ATTACH DATABASE ? AS im");
  attach.bind(1, file);
  if (!attach.ok() || attach.step() != SQLITE_DONE)
    return makeError(ErrorCode::IOError, "cannot open '" + file + "': " + sqlite3_errmsg(db_));
  Error result = Error::success();
  int64_t changed = 0;
  {
    Stmt v(db_, "PRAGMA im.user_version");
    int rc = v.ok() ? v.step() : v.prepareRc();
    if (rc != SQLITE_ROW) {
      result = makeError(ErrorCode::CorruptData, "'" + file + "' is not a Tessera cache export: " + sqlite3_errstr(rc));
    } else if (int version = sqlite3_column_int(v.get(), 0); version != kCacheSchemaVersion) {
      result = makeError(ErrorCode::IncompatibleVersion, "'" + file + "' has cache schema " +
                                                             std::to_string(version) + "; this Tessera reads " +
                                                             std::to_string(kCacheSchemaVersion));
    }
  }
  if (!result) {
    int rc = sqlite3_exec(db_,
                          "BEGIN IMMEDIATE; INSERT INTO main.tuning SELECT * FROM im.tuning WHERE true "
                          "ON CONFLICT(key) DO UPDATE SET knobs=excluded.knobs, seconds=excluded.seconds, "
                          "predicted=excluded.predicted, default_seconds=excluded.default_seconds, "
                          "updated=excluded.updated WHERE excluded.updated >= tuning.updated;",
                          nullptr, nullptr, nullptr);
    changed = sqlite3_changes(db_);
    if (rc == SQLITE_OK)
      rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      result = makeError(isCorrupt(rc) ? ErrorCode::CorruptData : ErrorCode::IOError,
                         "importing '" + file + "' failed: " + sqlite3_errmsg(db_));
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  sqlite3_exec(db_, "DETACH DATABASE im", nullptr, nullptr, nullptr);
  if (result)
    return result;
  return changed;
}

} // namespace tessera::sched
