// Checks a file's ELF header before dlopen, so "wrong architecture" and
// "not a shared object" get a precise reason instead of dlerror's wording.
#ifndef TESSERA_PLUGIN_ELFCHECK_H
#define TESSERA_PLUGIN_ELFCHECK_H

#include <string>

namespace tessera::plugin {

// Empty when `path` is an ELF shared object for this process's machine and
// class; otherwise why not (e.g. "ELF for aarch64, this host is x86-64").
std::string checkElfHeader(const std::string &path);

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_ELFCHECK_H
