// One plugin candidate: its file, what loading it found, and, when loaded,
// its negotiated function table, instance and devices.
#ifndef TESSERA_PLUGIN_PLUGIN_H
#define TESSERA_PLUGIN_PLUGIN_H

#include "plugin/Manifest.h"
#include "support/Error.h"
#include "tessera/tessera.h"
#include "tessera/tessera_backend.h"

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera::plugin {
class Plugin;
}

// The host-side record of a device; the C ABI's opaque tessera_device_t.
struct tessera_device_t {
  tessera::plugin::Plugin *plugin = nullptr;
  uint32_t ordinal = 0;
  std::string name;
  std::string architecture;
  std::string features;
  uint64_t memoryBytes = 0;
  uint32_t computeUnits = 0;
  tessera_device_kind_t kind = TESSERA_DEVICE_KIND_UNKNOWN;
};

namespace tessera::plugin {

// The host services every plugin receives (version range, status factory,
// allocator, logging). One static instance; immutable.
const tessera_backend_host_t &hostServices();

class Plugin {
public:
  Plugin(std::string path, std::string kind) : path_(std::move(path)), kind_(std::move(kind)) {}
  ~Plugin();
  Plugin(const Plugin &) = delete;
  Plugin &operator=(const Plugin &) = delete;

  // Reads the manifest and checks the file; with `load`, also dlopens,
  // negotiates and initializes. Never fails: the outcome is in state() and
  // reason(). `isNameTaken` answers whether another plugin already owns a name.
  template <typename NameTaken> void open(bool load, NameTaken isNameTaken) {
    openImpl(load, [](const std::string &n, void *ctx) { return (*static_cast<NameTaken *>(ctx))(n); },
             &isNameTaken);
  }

  // shutdown() then dlclose(). Busy while objects of the plugin are alive.
  Error unload();

  const std::string &path() const { return path_; }
  const std::string &kind() const { return kind_; }
  tessera_plugin_state_t state() const { return state_; }
  const std::string &reason() const { return reason_; }
  tessera_status_code_t deviceStatus() const { return deviceStatus_; }
  const std::string &name() const { return name_; }
  const std::string &vendor() const { return vendor_; }
  const std::string &version() const { return version_; }
  const std::string &targets() const { return targets_; }
  uint32_t abiMajor() const { return abiMajor_; }
  uint32_t abiMinor() const { return abiMinor_; }
  bool hasManifest() const { return manifest_.has_value(); }
  // The manifest's search_space (empty without a manifest or the key).
  const std::map<std::string, std::vector<KnobChoices>> &searchSpace() const {
    static const std::map<std::string, std::vector<KnobChoices>> none;
    return manifest_ ? manifest_->searchSpace : none;
  }
  bool loaded() const { return state_ == TESSERA_PLUGIN_STATE_LOADED; }

  std::vector<std::unique_ptr<tessera_device_t>> &devices() { return devices_; }
  const std::vector<std::unique_ptr<tessera_device_t>> &devices() const { return devices_; }

  // The plugin's slot, or nullptr when it is NULL or lies beyond the table's
  // struct_size (an older plugin): callers treat both as "unsupported".
  template <typename Fn> Fn slot(Fn tessera_backend_api_t::*member) const {
    if (!api_)
      return nullptr;
    size_t offset = reinterpret_cast<size_t>(&(static_cast<tessera_backend_api_t *>(nullptr)->*member));
    if (offset + sizeof(Fn) > apiSize_)
      return nullptr;
    return api_->*member;
  }
  // The extension node of `type`, or nullptr.
  const tessera_backend_extension_t *extension(tessera_backend_extension_type_t type) const;
  // Op names the plugin's NATIVE_OPS extension lists (composites it compiles
  // whole); empty without the extension.
  std::vector<std::string> nativeOps() const;

  tessera_backend_plugin_t *instance() const { return instance_; }

  // Objects (buffers, tensors, executables, modules) alive on this plugin.
  void retain() { liveObjects_.fetch_add(1, std::memory_order_relaxed); }
  void release() { liveObjects_.fetch_sub(1, std::memory_order_relaxed); }
  int64_t liveObjects() const { return liveObjects_.load(std::memory_order_relaxed); }

private:
  void openImpl(bool load, bool (*isNameTaken)(const std::string &, void *), void *ctx);
  void fail(tessera_plugin_state_t state, std::string reason);
  bool negotiateAndValidate();
  void enumerateDevices();

  std::string path_;
  std::string kind_;
  tessera_plugin_state_t state_ = TESSERA_PLUGIN_STATE_NOT_LOADED;
  std::string reason_;
  tessera_status_code_t deviceStatus_ = TESSERA_STATUS_OK;
  std::string name_, vendor_, version_, targets_;
  uint32_t abiMajor_ = 0, abiMinor_ = 0;
  std::optional<Manifest> manifest_;
  void *handle_ = nullptr;
  const tessera_backend_api_t *api_ = nullptr;
  size_t apiSize_ = 0; // min(api->struct_size, sizeof(tessera_backend_api_t))
  tessera_backend_plugin_t *instance_ = nullptr;
  std::vector<std::unique_ptr<tessera_device_t>> devices_;
  std::atomic<int64_t> liveObjects_{0};
};

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_PLUGIN_H
