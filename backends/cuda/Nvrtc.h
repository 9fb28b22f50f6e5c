// NVRTC, opened with dlopen at first use (like libcuda), so the plugin loads
// on machines without the CUDA toolkit and reports the absence as a status.
#ifndef TESSERA_BACKENDS_CUDA_NVRTC_H
#define TESSERA_BACKENDS_CUDA_NVRTC_H

#include <string>
#include <vector>

namespace tessera::cuda {

struct NvrtcResult {
  enum class Kind { Ok, Missing, BadArchitecture, CompileError, Internal } kind = Kind::Ok;
  std::string message;   // dlerror() text, the compile log, or NVRTC's error string
  std::vector<char> cubin;
  std::string ptx;
  std::string log;       // compiler log (warnings) on success
};

// dlopen (RTLD_NOW | RTLD_LOCAL) of the first candidate that loads; NULL
// with *firstError (dlerror() of the first candidate) when none does. Used
// for NVRTC and cuBLASLt.
void *dlopenFirst(const std::vector<std::string> &candidates, std::string *soname, std::string *firstError);
// Where a toolkit library "libX" may be: libX.so.13, .12 and .so (the loader
// path), then $CUDA_HOME/lib64, $CUDA_PATH/lib64 and /usr/local/cuda/lib64
// (often not on the loader path).
std::vector<std::string> toolkitLibraryCandidates(const std::string &stem);

// "libnvrtc.so.13 (NVRTC 13.0)" or why NVRTC is unavailable.
std::string nvrtcDescription();
bool nvrtcAvailable(std::string *why);
// Architectures NVRTC can target, e.g. {75, 80, ..., 120}; empty if absent.
std::vector<int> nvrtcSupportedArchs();

// Compiles one translation unit to a cubin for `arch` ("sm_80", "sm_90a").
// Thread-safe (NVRTC programs are independent).
NvrtcResult nvrtcCompile(const std::string &source, const std::string &name, const std::string &arch,
                         bool wantPtx, const std::vector<std::string> &extraOptions = {});

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_NVRTC_H
