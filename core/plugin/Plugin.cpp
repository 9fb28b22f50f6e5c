#include "plugin/Plugin.h"

#include "plugin/ElfCheck.h"
#include "support/CStatus.h"
#include "support/StringList.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::plugin {

namespace {

tessera_status_t *hostStatusCreate(tessera_status_code_t code, const char *message) {
  if (code == TESSERA_STATUS_OK)
    return nullptr;
  return makeCStatus(code, message ? message : "");
}

void *hostAllocate(void *, size_t size, size_t alignment) {
  if (alignment < alignof(std::max_align_t))
    alignment = alignof(std::max_align_t);
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  return std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
}

void hostDeallocate(void *, void *ptr) { std::free(ptr); }

void hostLog(void *, tessera_log_level_t level, const char *message) {
  // Plugins' warnings go to stderr; debug/info only when asked for.
  static const bool verbose = secure_getenv("TESSERA_LOG_VERBOSE") != nullptr;
  if (level >= TESSERA_LOG_WARNING || verbose)
    std::fprintf(stderr, "tessera: plugin: %s\n", message ? message : "");
}

const tessera_backend_host_t kHost = {
    TESSERA_BACKEND_HOST_STRUCT_SIZE,
    TESSERA_ABI_VERSION_MAJOR, 0,
    TESSERA_ABI_VERSION_MAJOR, TESSERA_ABI_VERSION_MINOR,
    hostStatusCreate,
    hostAllocate, hostDeallocate, nullptr,
    hostLog, nullptr,
};

std::string ownString(const char *s) { return s ? std::string(s) : std::string(); }

} // namespace

const tessera_backend_host_t &hostServices() { return kHost; }

Plugin::~Plugin() {
  // The context refuses to be destroyed while objects are alive, so this is
  // only reached with nothing outstanding.
  if (loaded())
    (void)unload();
}

void Plugin::fail(tessera_plugin_state_t state, std::string reason) {
  state_ = state;
  reason_ = std::move(reason);
  instance_ = nullptr;
  api_ = nullptr;
  apiSize_ = 0;
  if (handle_) {
    dlclose(handle_);
    handle_ = nullptr;
  }
}

void Plugin::openImpl(bool load, bool (*isNameTaken)(const std::string &, void *), void *ctx) {
  // 1. The file must be a readable regular file.
  struct stat st;
  if (stat(path_.c_str(), &st) != 0)
    return fail(TESSERA_PLUGIN_STATE_UNREADABLE, std::string("cannot read: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return fail(TESSERA_PLUGIN_STATE_UNREADABLE, "cannot read: not a regular file");
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(TESSERA_PLUGIN_STATE_UNREADABLE, std::string("cannot read: ") + std::strerror(errno));
  ::close(fd);

  // 2. Manifest (optional) gives identity without loading.
  Expected<std::optional<Manifest>> manifest = readManifest(path_);
  std::string manifestWarning;
  if (!manifest) {
    manifestWarning = "manifest ignored: " + manifest.error().render();
  } else if (manifest->has_value()) {
    manifest_ = **manifest;
    name_ = manifest_->name;
    vendor_ = manifest_->vendor;
    version_ = manifest_->version;
    for (size_t i = 0; i < manifest_->targets.size(); ++i)
      targets_ += (i ? "," : "") + manifest_->targets[i];
    if (manifest_->abiMajor != TESSERA_ABI_VERSION_MAJOR)
      return fail(TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION,
                  "manifest declares ABI " + std::to_string(manifest_->abiMajor) + "." +
                      std::to_string(manifest_->abiMinor) + "; host accepts " +
                      std::to_string(TESSERA_ABI_VERSION_MAJOR) + ".0 to " +
                      std::to_string(TESSERA_ABI_VERSION_MAJOR) + "." + std::to_string(TESSERA_ABI_VERSION_MINOR));
  }

  // 3. ELF header: right machine and class, a shared object.
  std::string elf = checkElfHeader(path_);
  if (!elf.empty())
    return fail(TESSERA_PLUGIN_STATE_NOT_A_PLUGIN, elf);

  if (kind_ != "backend") {
    return fail(TESSERA_PLUGIN_STATE_NOT_LOADED,
                "non-backend plugins (graph passes, search strategies) have no loader in ABI 0.1");
  }
  if (!load) {
    state_ = TESSERA_PLUGIN_STATE_NOT_LOADED;
    reason_ = manifestWarning.empty() ? "not loaded (listing only)" : manifestWarning;
    return;
  }

  // 4. dlopen and the entry symbol.
  dlerror();
  handle_ = dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char *err = dlerror();
    return fail(TESSERA_PLUGIN_STATE_LOAD_ERROR, err ? err : "dlopen failed");
  }
  dlerror();
  auto entry = reinterpret_cast<tessera_backend_get_api_fn_t>(dlsym(handle_, TESSERA_BACKEND_ENTRY_SYMBOL));
  if (!entry) {
    const char *err = dlerror();
    return fail(TESSERA_PLUGIN_STATE_MISSING_ENTRY,
                std::string("no entry point " TESSERA_BACKEND_ENTRY_SYMBOL ": ") + (err ? err : "symbol is NULL"));
  }

  // 5. Two-way negotiation.
  const tessera_backend_api_t *api = nullptr;
  if (tessera_status_t *status = entry(&kHost, &api)) {
    Error e = takeCStatus(status);
    return fail(e.code() == ErrorCode::IncompatibleVersion ? TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION
                                                           : TESSERA_PLUGIN_STATE_ENTRY_FAILED,
                (e.code() == ErrorCode::IncompatibleVersion ? "" : "entry point failed: ") + e.message());
  }
  if (!api)
    return fail(TESSERA_PLUGIN_STATE_INVALID_API, "entry point returned no function table");
  api_ = api;
  if (!negotiateAndValidate())
    return;

  // 6. Identity: the plugin's own answer wins over the manifest.
  std::string realName = ownString(api_->name);
  if (manifest_ && manifest_->name != realName)
    manifestWarning = "manifest name '" + manifest_->name + "' differs from the plugin's '" + realName + "'";
  name_ = realName;
  vendor_ = ownString(api_->vendor);
  version_ = ownString(api_->version);
  targets_ = ownString(api_->targets);
  if (isNameTaken(name_, ctx))
    return fail(TESSERA_PLUGIN_STATE_DUPLICATE, "duplicate: another plugin already provides '" + name_ + "'");

  // 7. Initialize and enumerate devices.
  tessera_backend_plugin_t *instance = nullptr;
  if (tessera_status_t *status = api_->initialize(&kHost, &instance))
    return fail(TESSERA_PLUGIN_STATE_ENTRY_FAILED, "initialize failed: " + takeCStatus(status).message());
  instance_ = instance;
  state_ = TESSERA_PLUGIN_STATE_LOADED;
  reason_ = manifestWarning;
  enumerateDevices();
}

bool Plugin::negotiateAndValidate() {
  if (api_->struct_size < TESSERA_BACKEND_API_MIN_STRUCT_SIZE) {
    fail(TESSERA_PLUGIN_STATE_INVALID_API, "function table is " + std::to_string(api_->struct_size) +
                                               " bytes, smaller than the " +
                                               std::to_string(TESSERA_BACKEND_API_MIN_STRUCT_SIZE) +
                                               "-byte minimum");
    return false;
  }
  apiSize_ = api_->struct_size < sizeof(tessera_backend_api_t) ? api_->struct_size : sizeof(tessera_backend_api_t);
  // A plugin that ignored the offered range is caught here.
  if (api_->abi_major != TESSERA_ABI_VERSION_MAJOR) {
    fail(TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION,
         "plugin answered ABI " + std::to_string(api_->abi_major) + "." + std::to_string(api_->abi_minor) +
             "; host accepts " + std::to_string(TESSERA_ABI_VERSION_MAJOR) + ".0 to " +
             std::to_string(TESSERA_ABI_VERSION_MAJOR) + "." + std::to_string(TESSERA_ABI_VERSION_MINOR));
    return false;
  }
  abiMajor_ = api_->abi_major;
  abiMinor_ = api_->abi_minor;
  if (!api_->name || !*api_->name) {
    fail(TESSERA_PLUGIN_STATE_INVALID_API, "function table has no plugin name");
    return false;
  }
  name_ = api_->name; // known even if the table turns out unusable
  struct Required {
    const char *name;
    bool present;
  } required[] = {
      {"initialize", api_->initialize != nullptr},
      {"shutdown", api_->shutdown != nullptr},
      {"device_count", api_->device_count != nullptr},
      {"device_get_info", api_->device_get_info != nullptr},
  };
  for (const Required &r : required) {
    if (!r.present) {
      fail(TESSERA_PLUGIN_STATE_INVALID_API, std::string("required entry '") + r.name + "' is NULL");
      return false;
    }
  }
  return true;
}

void Plugin::enumerateDevices() {
  uint32_t count = 0;
  if (tessera_status_t *status = api_->device_count(instance_, &count)) {
    Error e = takeCStatus(status);
    deviceStatus_ = static_cast<tessera_status_code_t>(e.code());
    reason_ = e.message();
    return;
  }
  for (uint32_t i = 0; i < count; ++i) {
    tessera_backend_device_info_t info{};
    info.struct_size = sizeof(info);
    if (tessera_status_t *status = api_->device_get_info(instance_, i, &info)) {
      Error e = takeCStatus(status);
      deviceStatus_ = static_cast<tessera_status_code_t>(e.code());
      reason_ = "device " + std::to_string(i) + ": " + e.message();
      continue;
    }
    auto device = std::make_unique<tessera_device_t>();
    device->plugin = this;
    device->ordinal = i;
    device->name = ownString(info.name);
    device->architecture = ownString(info.architecture);
    device->features = ownString(info.features);
    device->memoryBytes = info.memory_bytes;
    device->computeUnits = info.compute_units;
    device->kind = info.kind;
    devices_.push_back(std::move(device));
  }
}

const tessera_backend_extension_t *Plugin::extension(tessera_backend_extension_type_t type) const {
  if (!api_)
    return nullptr;
  // Guard against cycles in a malformed chain.
  int hops = 0;
  for (const tessera_backend_extension_t *e = api_->extensions; e && hops < 64; e = e->next, ++hops)
    if (e->type == type)
      return e;
  return nullptr;
}

std::vector<std::string> Plugin::nativeOps() const {
  const tessera_backend_extension_t *e = extension(TESSERA_BACKEND_EXTENSION_NATIVE_OPS);
  if (!e || e->struct_size < sizeof(tessera_backend_native_ops_extension_t))
    return {};
  const char *ops = reinterpret_cast<const tessera_backend_native_ops_extension_t *>(e)->ops;
  return ops ? splitCommaList(ops) : std::vector<std::string>();
}

Error Plugin::unload() {
  if (!loaded())
    return Error::success();
  if (liveObjects() > 0)
    return makeError(ErrorCode::Busy, "plugin '" + name_ + "' still has " + std::to_string(liveObjects()) +
                                          " live object(s); free them before unloading");
  Error shutdownError;
  if (instance_)
    shutdownError = takeCStatus(api_->shutdown(instance_));
  devices_.clear();
  fail(TESSERA_PLUGIN_STATE_NOT_LOADED, "unloaded");
  if (shutdownError)
    return makeError(shutdownError.code(), "plugin '" + name_ + "' shutdown: " + shutdownError.message());
  return Error::success();
}

} // namespace tessera::plugin
