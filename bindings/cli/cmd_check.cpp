// `tessera check FILE.tsr...`: parses, verifies and shape-checks Graph IR
// text; prints the inferred signature of every function, or the located
// diagnostics (exit code 1).
#include "Command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>

namespace tessera::cli {

// Reads FILE, or standard input for "-".
bool readSource(const std::string &path, std::string &out) {
  if (path != "-")
    return readFile(path, out);
  out.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  return true;
}

// Parses one .tsr source through the C API; reports and returns the exit
// code on failure (then *out_program is NULL).
int parseProgram(const std::string &path, tessera_program_t **out_program) {
  *out_program = nullptr;
  std::string text;
  if (!readSource(path, text))
    return kExitRuntime;
  const char *name = path == "-" ? "<stdin>" : path.c_str();
  if (tessera_status_t *s = tessera_program_parse(text.data(), text.size(), name, out_program))
    return reportStatus(s, name);
  return kExitOk;
}

namespace {

std::string blobText(tessera_blob_t *blob) {
  std::string s(static_cast<const char *>(tessera_blob_data(blob)), tessera_blob_size(blob));
  tessera_blob_free(blob);
  return s;
}

std::function<int()> setupCheck(CLI::App &app) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App *cmd = app.add_subcommand("check", "Check Graph IR text (.tsr) and print each function's inferred "
                                              "signature, or its diagnostics (exit code 1)");
  cmd->add_option("files", *files, "The .tsr files ('-' reads standard input)")->required();
  return [files]() {
    int worst = kExitOk;
    for (const std::string &path : *files) {
      tessera_program_t *program = nullptr;
      int rc = parseProgram(path, &program);
      if (rc != kExitOk) {
        worst = std::max(worst, rc);
        continue;
      }
      for (size_t i = 0; i < tessera_program_function_count(program); ++i) {
        tessera_blob_t *sig = nullptr;
        if (tessera_status_t *s = tessera_program_function_signature(program, i, &sig)) {
          worst = std::max(worst, reportStatus(s, path));
          break;
        }
        std::printf("%s\n", blobText(sig).c_str());
      }
      tessera_program_destroy(program);
    }
    return worst;
  };
}

RegisterCommand registerCheck{"check", setupCheck};

} // namespace
} // namespace tessera::cli
