// `tessera fmt FILE.tsr`: prints the canonical form of Graph IR text (every
// result type written out, attributes sorted, comments dropped).
#include "Command.h"

#include <cstdio>
#include <fstream>
#include <memory>

namespace tessera::cli {

int parseProgram(const std::string &path, tessera_program_t **out_program); // cmd_check.cpp

namespace {

std::function<int()> setupFmt(CLI::App &app) {
  struct Options {
    std::string file;
    std::string output;
    bool inPlace = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App *cmd = app.add_subcommand("fmt", "Print the canonical form of Graph IR text (.tsr)");
  cmd->add_option("file", opts->file, "The .tsr file ('-' reads standard input)")->required();
  cmd->add_option("-o,--output", opts->output, "Write to this file instead of standard output");
  cmd->add_flag("-i,--in-place", opts->inPlace, "Rewrite the file in place");
  return [opts]() {
    tessera_program_t *program = nullptr;
    if (int rc = parseProgram(opts->file, &program))
      return rc;
    tessera_blob_t *text = nullptr;
    tessera_status_t *s = tessera_program_print(program, &text);
    tessera_program_destroy(program);
    if (s)
      return reportStatus(s, opts->file);
    std::string out(static_cast<const char *>(tessera_blob_data(text)), tessera_blob_size(text));
    tessera_blob_free(text);
    std::string target = opts->inPlace ? opts->file : opts->output;
    if (target.empty() || target == "-") {
      std::fwrite(out.data(), 1, out.size(), stdout);
      return static_cast<int>(kExitOk);
    }
    std::ofstream f(target, std::ios::binary | std::ios::trunc);
    f.write(out.data(), std::streamsize(out.size()));
    if (!f) {
      std::fprintf(stderr, "tessera: error: cannot write '%s'\n", target.c_str());
      return static_cast<int>(kExitRuntime);
    }
    return static_cast<int>(kExitOk);
  };
}

RegisterCommand registerFmt{"fmt", setupFmt};

} // namespace
} // namespace tessera::cli
