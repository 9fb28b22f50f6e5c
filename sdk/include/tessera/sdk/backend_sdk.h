// backend_sdk.h: small C++17 helpers for backend plugin authors, on top of
// tessera_backend.h. Header-only; depends on nothing but the ABI headers, so
// an out-of-tree plugin can use it from an installed SDK.
#ifndef TESSERA_SDK_BACKEND_SDK_H_
#define TESSERA_SDK_BACKEND_SDK_H_

#include "tessera/tessera_backend.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

namespace tessera::sdk {

// Creates a host-owned status with a printf-style message.
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
inline tessera_status_t *
makeStatus(const tessera_backend_host_t *host, tessera_status_code_t code, const char *format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  return host->status_create(code, message);
}

// The two-way negotiation every plugin performs in tessera_backend_get_api:
// picks the version to follow from the host's [min, max] range and the
// plugin's own (major, minor), or explains the mismatch.
//
// Rule (docs/abi.md): same major required; the minor used is the smaller of
// the two, so a newer plugin runs on an older host (slots past the host's
// struct size are simply never read) and an older plugin runs on a newer host
// (missing slots are treated as unsupported).
inline tessera_status_t *negotiate(const tessera_backend_host_t *host, uint32_t pluginMajor,
                                   uint32_t pluginMinor, uint32_t *outMajor, uint32_t *outMinor) {
  // The host struct's leading fields (through status_create) never change,
  // so they are readable whatever version the host is.
  const bool belowMin = pluginMajor < host->abi_min_major;
  const bool aboveMax = pluginMajor > host->abi_max_major;
  if (belowMin || aboveMax)
    return makeStatus(host, TESSERA_STATUS_INCOMPATIBLE_VERSION,
                      "plugin implements ABI %u.%u; host accepts %u.%u to %u.%u", pluginMajor, pluginMinor,
                      host->abi_min_major, host->abi_min_minor, host->abi_max_major, host->abi_max_minor);
  *outMajor = pluginMajor;
  *outMinor = pluginMinor;
  if (pluginMajor == host->abi_max_major && pluginMinor > host->abi_max_minor)
    *outMinor = host->abi_max_minor;
  return nullptr;
}

// The whole body of a plugin's tessera_backend_get_api for a static table
// that follows ABI (major, minor): negotiates with the host, stamps the
// agreed version into the table and hands it out.
//
//   extern "C" TESSERA_EXPORT tessera_status_t *
//   tessera_backend_get_api(const tessera_backend_host_t *host, const tessera_backend_api_t **out_api) {
//     return tessera::sdk::provideApi(host, &gApi, out_api);
//   }
//
// Every call writes the same version for a given host, so concurrent calls
// store equal values.
inline tessera_status_t *provideApi(const tessera_backend_host_t *host, tessera_backend_api_t *api,
                                    const tessera_backend_api_t **outApi,
                                    uint32_t major = TESSERA_ABI_VERSION_MAJOR,
                                    uint32_t minor = TESSERA_ABI_VERSION_MINOR) {
  uint32_t agreedMajor = 0, agreedMinor = 0;
  if (tessera_status_t *s = negotiate(host, major, minor, &agreedMajor, &agreedMinor))
    return s;
  api->abi_major = agreedMajor;
  api->abi_minor = agreedMinor;
  *outApi = api;
  return nullptr;
}

// Copies a plugin-side info struct into a host-provided one of possibly
// different (smaller or larger) size: writes at most the host's struct_size
// and keeps the host's struct_size field. For POD info structs only.
template <typename T> inline void copyOut(T *dst, const T &src) {
  size_t n = dst->struct_size < sizeof(T) ? dst->struct_size : sizeof(T);
  size_t keep = dst->struct_size;
  std::memcpy(static_cast<void *>(dst), &src, n);
  dst->struct_size = keep;
}

// True when the caller's struct is large enough to hold `field`'s end.
#define TESSERA_SDK_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

} // namespace tessera::sdk

#endif // TESSERA_SDK_BACKEND_SDK_H_
