#include "plugin/Discovery.h"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <set>
#include <sys/stat.h>

namespace tessera::plugin {

namespace {

bool hasPrefixAndSuffix(const std::string &s, const std::string &prefix, const std::string &suffix) {
  return s.size() > prefix.size() + suffix.size() && s.compare(0, prefix.size(), prefix) == 0 &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The directory holding libtessera.so itself, found through a symbol of ours.
std::string libraryDirectory() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void *>(&libraryDirectory), &info) || !info.dli_fname)
    return {};
  char resolved[PATH_MAX];
  if (!realpath(info.dli_fname, resolved))
    return {};
  std::string path(resolved);
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

} // namespace

std::vector<std::string> splitPathList(const std::string &list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t colon = list.find(':', start);
    if (colon == std::string::npos)
      colon = list.size();
    if (colon > start)
      out.push_back(list.substr(start, colon - start));
    start = colon + 1;
  }
  return out;
}

std::vector<std::string> searchDirectories(const DiscoveryOptions &options) {
  std::vector<std::string> dirs = options.explicitDirs;
  const char *add = options.ignoreEnvironment ? nullptr : secure_getenv("TESSERA_ADD_PLUGIN_PATH");
  const char *replace = options.ignoreEnvironment ? nullptr : secure_getenv("TESSERA_PLUGIN_PATH");
  if (add)
    for (auto &d : splitPathList(add))
      dirs.push_back(d);
  if (replace) {
    for (auto &d : splitPathList(replace))
      dirs.push_back(d);
  } else if (!options.noDefaultPaths) {
    std::string libDir = libraryDirectory();
    if (!libDir.empty()) {
      dirs.push_back(libDir + "/tessera/plugins");
      dirs.push_back(libDir);
    }
  }
  return dirs;
}

std::vector<Candidate> findCandidates(const std::vector<std::string> &dirs) {
  std::vector<Candidate> out;
  std::set<std::string> seen;
  for (const std::string &given : dirs) {
    // Report absolute paths whatever the caller passed.
    char absolute[PATH_MAX];
    std::string dir = realpath(given.c_str(), absolute) ? std::string(absolute) : given;
    DIR *d = opendir(dir.c_str());
    if (!d)
      continue; // a missing directory is normal (defaults that were never created)
    std::vector<Candidate> found;
    while (dirent *entry = readdir(d)) {
      std::string file = entry->d_name;
      std::string kind;
      if (hasPrefixAndSuffix(file, "libtessera-backend-", ".so"))
        kind = "backend";
      else if (hasPrefixAndSuffix(file, "libtessera-plugin-", ".so"))
        kind = "plugin";
      else
        continue;
      found.push_back({dir + "/" + file, kind});
    }
    closedir(d);
    std::sort(found.begin(), found.end(),
              [](const Candidate &a, const Candidate &b) { return a.path < b.path; });
    for (Candidate &c : found) {
      char resolved[PATH_MAX];
      // Broken links keep their own path as identity; they are reported later.
      std::string key = realpath(c.path.c_str(), resolved) ? std::string(resolved) : c.path;
      if (seen.insert(key).second)
        out.push_back(std::move(c));
    }
  }
  return out;
}

} // namespace tessera::plugin
