// Finds plugin candidate files: which directories, in which order, and which
// file names count (docs/abi.md, "Plugin discovery").
#ifndef TESSERA_PLUGIN_DISCOVERY_H
#define TESSERA_PLUGIN_DISCOVERY_H

#include <string>
#include <vector>

namespace tessera::plugin {

struct DiscoveryOptions {
  std::vector<std::string> explicitDirs; // searched first (context option)
  bool ignoreEnvironment = false;
  bool noDefaultPaths = false;
};

struct Candidate {
  std::string path; // as found (directory + file name)
  std::string kind; // "backend" or "plugin"
};

// The directories to search, in order:
//   explicitDirs, TESSERA_ADD_PLUGIN_PATH, then TESSERA_PLUGIN_PATH if set,
//   else <libdir>/tessera/plugins and the directory of libtessera.
// Environment variables are read with secure_getenv, so setuid processes
// ignore them.
std::vector<std::string> searchDirectories(const DiscoveryOptions &options);

// Files named libtessera-backend-*.so / libtessera-plugin-*.so in `dirs`,
// sorted by name within each directory; a file reached twice (same real
// path) is listed once, at its first position.
std::vector<Candidate> findCandidates(const std::vector<std::string> &dirs);

// Splits a colon-separated path list, dropping empty entries.
std::vector<std::string> splitPathList(const std::string &list);

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_DISCOVERY_H
