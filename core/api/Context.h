// The C ABI's context: the plugin registry of one client.
#ifndef TESSERA_API_CONTEXT_H
#define TESSERA_API_CONTEXT_H

#include "plugin/PluginRegistry.h"

#include <memory>
#include <mutex>

struct tessera_context_t {
  std::unique_ptr<tessera::plugin::PluginRegistry> registry;
  // Serializes unload against device lookups.
  mutable std::mutex mutex;
};

#endif // TESSERA_API_CONTEXT_H
