#include "Nvrtc.h"
#include "SymbolLoader.h"

#include <nvrtc.h>

#include <cstdlib>
#include <dlfcn.h>
#include <mutex>

namespace tessera::cuda {

namespace {

struct NvrtcApi {
  std::string unavailable; // empty when usable
  std::string soname;
  int major = 0, minor = 0;
  const char *(*GetErrorString)(nvrtcResult);
  nvrtcResult (*Version)(int *, int *);
  nvrtcResult (*GetNumSupportedArchs)(int *);
  nvrtcResult (*GetSupportedArchs)(int *);
  nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                               const char *const *);
  nvrtcResult (*DestroyProgram)(nvrtcProgram *);
  nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*GetPTXSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetPTX)(nvrtcProgram, char *);
  nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
};

NvrtcApi open() {
  NvrtcApi api{};
  std::string firstError;
  void *lib = dlopenFirst(toolkitLibraryCandidates("libnvrtc"), &api.soname, &firstError);
  if (!lib) {
    api.unavailable = "NVRTC not found: " + firstError;
    return api;
  }
  SymbolLoader load(lib);
  load(api.GetErrorString, "nvrtcGetErrorString");
  load(api.Version, "nvrtcVersion");
  load(api.GetNumSupportedArchs, "nvrtcGetNumSupportedArchs");
  load(api.GetSupportedArchs, "nvrtcGetSupportedArchs");
  load(api.CreateProgram, "nvrtcCreateProgram");
  load(api.DestroyProgram, "nvrtcDestroyProgram");
  load(api.CompileProgram, "nvrtcCompileProgram");
  load(api.GetPTXSize, "nvrtcGetPTXSize");
  load(api.GetPTX, "nvrtcGetPTX");
  load(api.GetCUBINSize, "nvrtcGetCUBINSize");
  load(api.GetCUBIN, "nvrtcGetCUBIN");
  load(api.GetProgramLogSize, "nvrtcGetProgramLogSize");
  load(api.GetProgramLog, "nvrtcGetProgramLog");
  if (const std::string &missing = load.missing(); !missing.empty()) {
    api.unavailable = api.soname + " lacks " + missing + " (NVRTC 11.1 or newer is needed)";
    return api;
  }
  api.Version(&api.major, &api.minor);
  return api; // stays open for the process: programs may be compiled any time
}

const NvrtcApi &nvrtc() {
  static std::once_flag once;
  static NvrtcApi api;
  std::call_once(once, [] { api = open(); });
  return api;
}

} // namespace

std::vector<std::string> toolkitLibraryCandidates(const std::string &stem) {
  std::vector<std::string> c;
  for (const char *v : {".so.13", ".so.12", ".so"})
    c.push_back(stem + v);
  for (const char *env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *home = std::getenv(env))
      c.push_back(std::string(home) + "/lib64/" + stem + ".so");
  for (const char *v : {".so.13", ".so.12", ".so"})
    c.push_back("/usr/local/cuda/lib64/" + stem + v);
  return c;
}

void *dlopenFirst(const std::vector<std::string> &candidates, std::string *soname, std::string *firstError) {
  for (const std::string &c : candidates) {
    dlerror();
    if (void *lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      *soname = c;
      return lib;
    }
    if (firstError->empty()) {
      const char *e = dlerror();
      *firstError = e ? e : c + ": dlopen failed";
    }
  }
  return nullptr;
}

bool nvrtcAvailable(std::string *why) {
  const NvrtcApi &api = nvrtc();
  if (why)
    *why = api.unavailable;
  return api.unavailable.empty();
}

std::string nvrtcDescription() {
  const NvrtcApi &api = nvrtc();
  if (!api.unavailable.empty())
    return api.unavailable;
  return api.soname + " (NVRTC " + std::to_string(api.major) + "." + std::to_string(api.minor) + ")";
}

std::vector<int> nvrtcSupportedArchs() {
  const NvrtcApi &api = nvrtc();
  std::vector<int> out;
  int n = 0;
  if (!api.unavailable.empty() || api.GetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0)
    return out;
  out.resize(static_cast<size_t>(n));
  if (api.GetSupportedArchs(out.data()) != NVRTC_SUCCESS)
    out.clear();
  return out;
}

NvrtcResult nvrtcCompile(const std::string &source, const std::string &name, const std::string &arch, bool wantPtx,
                         const std::vector<std::string> &extraOptions) {
  NvrtcResult r;
  const NvrtcApi &api = nvrtc();
  if (!api.unavailable.empty()) {
    r.kind = NvrtcResult::Kind::Missing;
    r.message = api.unavailable;
    return r;
  }
  nvrtcProgram prog = nullptr;
  nvrtcResult e = api.CreateProgram(&prog, source.c_str(), name.c_str(), 0, nullptr, nullptr);
  if (e != NVRTC_SUCCESS) {
    r.kind = NvrtcResult::Kind::Internal;
    r.message = std::string("nvrtcCreateProgram: ") + api.GetErrorString(e);
    return r;
  }
  // A real architecture (sm_*) makes NVRTC emit SASS, so nothing is JIT-
  // compiled at load. No fast-math: results must match the reference's
  // IEEE semantics within the conformance tolerances.
  std::vector<std::string> opts = {"--gpu-architecture=" + arch, "-std=c++17", "--device-as-default-execution-space"};
  opts.insert(opts.end(), extraOptions.begin(), extraOptions.end());
  std::vector<const char *> argv;
  for (const std::string &o : opts)
    argv.push_back(o.c_str());
  e = api.CompileProgram(prog, static_cast<int>(argv.size()), argv.data());
  size_t logSize = 0;
  api.GetProgramLogSize(prog, &logSize);
  std::string log(logSize, '\0');
  if (logSize)
    api.GetProgramLog(prog, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n'))
    log.pop_back();
  if (e != NVRTC_SUCCESS) {
    r.kind = e == NVRTC_ERROR_INVALID_OPTION ? NvrtcResult::Kind::BadArchitecture : NvrtcResult::Kind::CompileError;
    r.message = std::string(api.GetErrorString(e)) + (log.empty() ? "" : ":\n" + log);
    api.DestroyProgram(&prog);
    return r;
  }
  r.log = log;
  size_t n = 0;
  if (api.GetCUBINSize(prog, &n) == NVRTC_SUCCESS && n > 0) {
    r.cubin.resize(n);
    api.GetCUBIN(prog, r.cubin.data());
  }
  if (wantPtx && api.GetPTXSize(prog, &n) == NVRTC_SUCCESS && n > 0) {
    r.ptx.assign(n, '\0');
    api.GetPTX(prog, r.ptx.data());
    while (!r.ptx.empty() && r.ptx.back() == '\0')
      r.ptx.pop_back();
  }
  api.DestroyProgram(&prog);
  if (r.cubin.empty()) {
    r.kind = NvrtcResult::Kind::Internal;
    r.message = "NVRTC produced no cubin for " + arch;
  }
  return r;
}

} // namespace tessera::cuda
