// `tessera grad FILE.tsr --wrt x,w [--function NAME]`: prints the gradient
// function built by reverse-mode autodiff (docs/autodiff.md), through
// tessera_program_grad. Warnings (an input that does not reach the output)
// go to stderr.
#include "Command.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

namespace tessera::cli {

int parseProgram(const std::string &path, tessera_program_t **out_program); // cmd_check.cpp

namespace {

std::function<int()> setupGrad(CLI::App &app) {
  struct Options {
    std::string file, function, wrt, name, remat, output;
    unsigned loss = 0;
    bool vjp = false, rematElementwise = false, strict = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App *cmd = app.add_subcommand(
      "grad", "Print the gradient of a Graph IR function: it returns the original outputs, then the gradient of "
              "the loss (output 0, a float scalar) with respect to each --wrt input");
  cmd->add_option("file", opts->file, "The .tsr file ('-' reads standard input)")->required();
  cmd->add_option("--wrt", opts->wrt, "Comma-separated inputs to differentiate with respect to (names or indices)")
      ->required();
  cmd->add_option("-f,--function", opts->function, "Function to differentiate (default: main, else the first)");
  cmd->add_option("--loss", opts->loss, "Index of the scalar loss among the outputs (default 0)");
  cmd->add_flag("--vjp", opts->vjp, "Vector-Jacobian product: add one cotangent parameter per float output");
  cmd->add_option("--name", opts->name, "Name of the gradient function (default <function>_grad / _vjp)");
  cmd->add_option("--remat", opts->remat, "Comma-separated forward values to recompute in the backward pass");
  cmd->add_flag("--remat-elementwise", opts->rematElementwise, "Recompute every elementwise result");
  cmd->add_flag("--strict", opts->strict, "An input that does not reach the output is an error, not a warning");
  cmd->add_option("-o,--output", opts->output, "Write to this file instead of standard output");
  return [opts]() {
    std::vector<std::string> wrt;
    std::stringstream ss(opts->wrt);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty())
        wrt.push_back(item);
    if (wrt.empty()) {
      std::fprintf(stderr, "tessera: error: --wrt names no input\n");
      return static_cast<int>(kExitUsage);
    }
    std::vector<const char *> wrtPtrs;
    for (const auto &w : wrt)
      wrtPtrs.push_back(w.c_str());
    tessera_program_t *program = nullptr;
    if (int rc = parseProgram(opts->file, &program))
      return rc;
    tessera_grad_options_t go{};
    go.struct_size = sizeof(go);
    go.mode = opts->vjp ? TESSERA_GRAD_MODE_VJP : TESSERA_GRAD_MODE_GRAD;
    go.loss_output = opts->loss;
    go.name = opts->name.empty() ? nullptr : opts->name.c_str();
    go.remat = opts->remat.empty() ? nullptr : opts->remat.c_str();
    go.flags = (opts->rematElementwise ? TESSERA_GRAD_REMAT_ELEMENTWISE : 0u) |
               (opts->strict ? TESSERA_GRAD_UNREACHABLE_IS_ERROR : 0u);
    tessera_program_t *gradProgram = nullptr;
    tessera_blob_t *warnings = nullptr;
    tessera_status_t *s =
        tessera_program_grad(program, opts->function.empty() ? nullptr : opts->function.c_str(), wrtPtrs.size(),
                             wrtPtrs.data(), &go, &gradProgram, &warnings);
    tessera_program_destroy(program);
    if (s)
      return reportStatus(s, opts->file);
    std::string warn(static_cast<const char *>(tessera_blob_data(warnings)), tessera_blob_size(warnings));
    tessera_blob_free(warnings);
    std::stringstream ws(warn);
    for (std::string line; std::getline(ws, line);)
      std::fprintf(stderr, "tessera: warning: %s\n", line.c_str());
    tessera_blob_t *text = nullptr;
    s = tessera_program_print(gradProgram, &text);
    tessera_program_destroy(gradProgram);
    if (s)
      return reportStatus(s, opts->file);
    std::string out(static_cast<const char *>(tessera_blob_data(text)), tessera_blob_size(text));
    tessera_blob_free(text);
    if (opts->output.empty() || opts->output == "-") {
      std::fwrite(out.data(), 1, out.size(), stdout);
      return static_cast<int>(kExitOk);
    }
    std::ofstream f(opts->output, std::ios::binary | std::ios::trunc);
    f.write(out.data(), std::streamsize(out.size()));
    if (!f) {
      std::fprintf(stderr, "tessera: error: cannot write '%s'\n", opts->output.c_str());
      return static_cast<int>(kExitRuntime);
    }
    return static_cast<int>(kExitOk);
  };
}

RegisterCommand registerGrad{"grad", setupGrad};

} // namespace
} // namespace tessera::cli
