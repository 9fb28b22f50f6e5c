// tessera_program_grad (abi/include/tessera/tessera_ir.h): reverse-mode
// autodiff of a program's function through core/autodiff (docs/autodiff.md).
#include "api/Program.h"
#include "api/Status.h"
#include "autodiff/Autodiff.h"
#include "pipeline/Pipeline.h"

#include <sstream>

using namespace tessera;
using namespace tessera::api;

namespace {

std::vector<std::string> splitCommaList(const char *text) {
  std::vector<std::string> out;
  if (!text)
    return out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos)
      out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

} // namespace

extern "C" {

TESSERA_EXPORT tessera_status_t *tessera_program_grad(const tessera_program_t *program, const char *function,
                                                      size_t num_wrt, const char *const *wrt,
                                                      const tessera_grad_options_t *options,
                                                      tessera_program_t **out_program,
                                                      tessera_blob_t **out_warnings) {
  TESSERA_API_GUARD({
    TESSERA_API_REQUIRE(program);
    TESSERA_API_REQUIRE(out_program);
    TESSERA_API_REQUIRE(wrt);
    if (num_wrt == 0)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT, "tessera_program_grad: num_wrt is 0; name at least one "
                                                         "input to differentiate with respect to");
    tessera_grad_options_t opts{};
    opts.struct_size = sizeof(opts);
    opts.mode = TESSERA_GRAD_MODE_GRAD;
    if (options) {
      if (options->struct_size < TESSERA_GRAD_OPTIONS_STRUCT_SIZE)
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                          "tessera_program_grad: options->struct_size " + std::to_string(options->struct_size) +
                              " is smaller than TESSERA_GRAD_OPTIONS_STRUCT_SIZE");
      std::memcpy(&opts, options, sizeof(opts) < options->struct_size ? sizeof(opts) : options->struct_size);
    }
    if (opts.mode != TESSERA_GRAD_MODE_GRAD && opts.mode != TESSERA_GRAD_MODE_VJP)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                        "tessera_program_grad: unknown mode " + std::to_string(int(opts.mode)));
    const uint32_t known = TESSERA_GRAD_UNREACHABLE_IS_ERROR | TESSERA_GRAD_REMAT_ELEMENTWISE;
    if (opts.flags & ~known)
      return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                        "tessera_program_grad: unknown flags " + std::to_string(opts.flags & ~known));
    std::vector<std::string> names;
    for (size_t i = 0; i < num_wrt; ++i) {
      if (!wrt[i])
        return makeStatus(TESSERA_STATUS_INVALID_ARGUMENT,
                          "tessera_program_grad: wrt[" + std::to_string(i) + "] is NULL");
      names.emplace_back(wrt[i]);
    }
    Expected<size_t> index = pipeline::selectEntry(program->module, function ? function : "");
    if (!index)
      return toStatus(index.error());
    const ir::Function &fn = program->module.functions[*index];
    Expected<std::vector<size_t>> idx = autodiff::resolveWrt(fn, names);
    if (!idx)
      return toStatus(idx.error());
    autodiff::VjpOptions vo;
    if (opts.name)
      vo.name = opts.name;
    vo.unreachableIsError = opts.flags & TESSERA_GRAD_UNREACHABLE_IS_ERROR;
    vo.rematElementwise = opts.flags & TESSERA_GRAD_REMAT_ELEMENTWISE;
    for (std::string &r : splitCommaList(opts.remat))
      vo.remat.insert(std::move(r));
    Expected<autodiff::VjpResult> res = opts.mode == TESSERA_GRAD_MODE_VJP
                                            ? autodiff::vjp(fn, *idx, vo)
                                            : autodiff::grad(fn, *idx, opts.loss_output, vo);
    if (!res)
      return toStatus(res.error());
    std::string warnings;
    for (const std::string &w : res->warnings)
      warnings += w + "\n";
    auto out = std::make_unique<tessera_program_t>();
    out->module.functions.push_back(std::move(res->function));
    if (out_warnings)
      *out_warnings = makeBlob(std::move(warnings));
    *out_program = out.release();
    return nullptr;
  })
}

} // extern "C"
