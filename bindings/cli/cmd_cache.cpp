// `tessera cache stats|clear|export FILE|import FILE [--cache-dir DIR]`:
// the tuning cache (tessera_cache_*).
#include "Command.h"

#include <cstdio>
#include <memory>

namespace tessera::cli {
namespace {

struct CacheArgs {
  std::string action, file, cacheDir;
};

int runCache(const CacheArgs &args) {
  const char *dir = args.cacheDir.empty() ? nullptr : args.cacheDir.c_str();
  if ((args.action == "export" || args.action == "import") && args.file.empty()) {
    std::fprintf(stderr, "tessera: error: `tessera cache %s` needs a FILE\n", args.action.c_str());
    return kExitUsage;
  }
  if (args.action == "stats") {
    tessera_blob_t *blob = nullptr;
    if (tessera_status_t *s = tessera_cache_stats(dir, &blob))
      return reportStatus(s, "cache stats");
    std::printf("%.*s\n", int(tessera_blob_size(blob)), static_cast<const char *>(tessera_blob_data(blob)));
    tessera_blob_free(blob);
    return kExitOk;
  }
  if (args.action == "clear") {
    if (tessera_status_t *s = tessera_cache_clear(dir))
      return reportStatus(s, "cache clear");
    std::printf("cache cleared\n");
    return kExitOk;
  }
  if (args.action == "export") {
    if (tessera_status_t *s = tessera_cache_export(dir, args.file.c_str()))
      return reportStatus(s, "cache export");
    std::printf("exported tuning results to %s\n", args.file.c_str());
    return kExitOk;
  }
  uint64_t n = 0;
  if (tessera_status_t *s = tessera_cache_import(dir, args.file.c_str(), &n))
    return reportStatus(s, "cache import");
  std::printf("imported %llu tuning results\n", static_cast<unsigned long long>(n));
  return kExitOk;
}

std::function<int()> setupCache(CLI::App &app) {
  auto args = std::make_shared<CacheArgs>();
  CLI::App *cmd = app.add_subcommand("cache", "Tuning cache: stats, clear, export FILE, import FILE");
  cmd->add_option("action", args->action, "stats | clear | export | import")
      ->required()
      ->check(CLI::IsMember({"stats", "clear", "export", "import"}));
  cmd->add_option("file", args->file, "File for export/import");
  cmd->add_option("--cache-dir", args->cacheDir, "Cache directory (default: $TESSERA_CACHE_DIR, XDG)");
  return [args]() { return runCache(*args); };
}

RegisterCommand registerCache{"cache", setupCache};

} // namespace
} // namespace tessera::cli
