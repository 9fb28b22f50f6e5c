// The `tessera` command: one file per subcommand, each registering itself
// here. Every command uses only the public C API (tessera.h).
#ifndef TESSERA_CLI_COMMAND_H
#define TESSERA_CLI_COMMAND_H

#include "tessera/tessera.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace tessera::cli {

// Exit codes (documented in `tessera --help` and README.md).
enum ExitCode : int {
  kExitOk = 0,       // success
  kExitProblem = 1,  // the command ran and found a problem (diagnostics, check failed)
  kExitUsage = 2,    // bad command line
  kExitRuntime = 3,  // environment or runtime failure (I/O, no plugin or device, internal error)
};

// A subcommand: `setup` adds it to the app and returns the function run when
// it is selected (which returns the exit code).
struct CommandSpec {
  std::string name;
  std::function<std::function<int()>(CLI::App &app)> setup;
};

// Static registration: `static RegisterCommand reg{"plugins", setupPlugins};`
std::vector<CommandSpec> &commandRegistry();
struct RegisterCommand {
  RegisterCommand(std::string name, std::function<std::function<int()>(CLI::App &)> setup) {
    commandRegistry().push_back({std::move(name), std::move(setup)});
  }
};

// Prints "tessera: error: <message>" to stderr, frees the status, and returns
// the exit code that fits its code.
int reportStatus(tessera_status_t *status, const std::string &what = {});

// Options shared by commands that create a context.
struct ContextOptions {
  std::string pluginPath;
  bool noLoad = false;
  void addTo(CLI::App &cmd);
};

// Creates a context; on failure reports and returns NULL.
tessera_context_t *createContext(const ContextOptions &options);

// Reads a whole file; on failure prints the reason and returns false.
bool readFile(const std::string &path, std::string &out);

} // namespace tessera::cli

#endif // TESSERA_CLI_COMMAND_H
