#include "plugin/PluginRegistry.h"

namespace tessera::plugin {

std::unique_ptr<PluginRegistry> PluginRegistry::discover(const DiscoveryOptions &options, bool noLoad) {
  auto registry = std::make_unique<PluginRegistry>();
  registry->dirs_ = plugin::searchDirectories(options);
  for (Candidate &c : findCandidates(registry->dirs_)) {
    auto p = std::make_unique<Plugin>(std::move(c.path), std::move(c.kind));
    PluginRegistry *self = registry.get();
    p->open(!noLoad, [self](const std::string &name) { return self->findLoaded(name) != nullptr; });
    registry->plugins_.push_back(std::move(p));
  }
  return registry;
}

Plugin *PluginRegistry::findLoaded(const std::string &name) const {
  for (const auto &p : plugins_)
    if (p->loaded() && p->name() == name)
      return p.get();
  return nullptr;
}

std::vector<tessera_device_t *> PluginRegistry::devices() const {
  std::vector<tessera_device_t *> out;
  for (const auto &p : plugins_)
    if (p->loaded())
      for (const auto &d : p->devices())
        out.push_back(d.get());
  return out;
}

int64_t PluginRegistry::liveObjects() const {
  int64_t total = 0;
  for (const auto &p : plugins_)
    total += p->liveObjects();
  return total;
}

} // namespace tessera::plugin
