// All plugin candidates of one context, in discovery order, with the
// devices of the loaded ones.
#ifndef TESSERA_PLUGIN_PLUGINREGISTRY_H
#define TESSERA_PLUGIN_PLUGINREGISTRY_H

#include "plugin/Discovery.h"
#include "plugin/Plugin.h"

#include <memory>
#include <vector>

namespace tessera::plugin {

class PluginRegistry {
public:
  // Discovers and (unless noLoad) loads every candidate. Failures are
  // recorded per plugin; this never fails as a whole.
  static std::unique_ptr<PluginRegistry> discover(const DiscoveryOptions &options, bool noLoad);

  const std::vector<std::unique_ptr<Plugin>> &plugins() const { return plugins_; }
  const std::vector<std::string> &searchDirectories() const { return dirs_; }

  // The loaded plugin of that name, or nullptr.
  Plugin *findLoaded(const std::string &name) const;
  // Devices of all loaded plugins, in plugin order.
  std::vector<tessera_device_t *> devices() const;
  // Objects alive over all plugins.
  int64_t liveObjects() const;

private:
  std::vector<std::string> dirs_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
};

} // namespace tessera::plugin

#endif // TESSERA_PLUGIN_PLUGINREGISTRY_H
