// `tessera`: the command-line client of libtessera's public C API.
#include "Command.h"

#include <algorithm>

using namespace tessera::cli;

int main(int argc, char **argv) {
  CLI::App app{"Tessera: a plugin-based ML compiler.", "tessera"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success; 1 the command found a problem (diagnostics, failed check);\n"
             "            2 bad command line; 3 runtime failure (I/O, plugin, device, internal).\n"
             "Environment: TESSERA_PLUGIN_PATH replaces the default plugin directories;\n"
             "             TESSERA_ADD_PLUGIN_PATH is searched before them.");
  auto &registry = commandRegistry();
  std::sort(registry.begin(), registry.end(),
            [](const CommandSpec &a, const CommandSpec &b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App *, std::function<int()>>> runners;
  for (const CommandSpec &spec : registry) {
    std::function<int()> run = spec.setup(app); // adds subcommand spec.name
    runners.emplace_back(app.get_subcommand(spec.name), std::move(run));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    app.exit(e);
    return kExitUsage;
  }
  for (auto &[sub, run] : runners)
    if (sub->parsed())
      return run();
  return kExitUsage;
}
