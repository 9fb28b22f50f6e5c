// Resolving a dlopen'ed vendor library's entry points (libcuda, NVRTC,
// cuBLASLt), collecting the names it lacks so the caller can report them
// all in one message.
#ifndef TESSERA_BACKENDS_CUDA_SYMBOLLOADER_H
#define TESSERA_BACKENDS_CUDA_SYMBOLLOADER_H

#include <dlfcn.h>

#include <string>
#include <type_traits>

namespace tessera::cuda {

class SymbolLoader {
public:
  explicit SymbolLoader(void *library) : library_(library) {}

  // Sets `fn` to the symbol `name`, or to nullptr and records the name.
  template <typename Fn> void operator()(Fn &fn, const char *name) {
    fn = reinterpret_cast<std::remove_reference_t<Fn>>(dlsym(library_, name));
    if (!fn)
      missing_ += (missing_.empty() ? "" : ", ") + std::string(name);
  }

  // Comma-separated names not found; empty when all were.
  const std::string &missing() const { return missing_; }

private:
  void *library_;
  std::string missing_;
};

} // namespace tessera::cuda

#endif // TESSERA_BACKENDS_CUDA_SYMBOLLOADER_H
