#include "plugin/Manifest.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

namespace tessera::plugin {

std::string manifestPathFor(const std::string &pluginPath) {
  std::string base = pluginPath;
  if (base.size() > 3 && base.compare(base.size() - 3, 3, ".so") == 0)
    base.resize(base.size() - 3);
  return base + ".yaml";
}

namespace {

Error manifestError(const std::string &path, const std::string &what, const YAML::Mark &mark) {
  SourceLocation loc{path, mark.line >= 0 ? static_cast<uint32_t>(mark.line + 1) : 0,
                     mark.column >= 0 ? static_cast<uint32_t>(mark.column + 1) : 0};
  return makeError(ErrorCode::CorruptData, "malformed plugin manifest: " + what, loc);
}

} // namespace

Expected<std::optional<Manifest>> readManifest(const std::string &pluginPath) {
  std::string path = manifestPathFor(pluginPath);
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return std::optional<Manifest>();
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap())
      return manifestError(path, "top level must be a mapping", root.Mark());
    Manifest m;
    auto str = [&](const char *key, std::string &out, bool required) -> Error {
      YAML::Node n = root[key];
      if (!n) {
        if (required)
          return manifestError(path, std::string("missing key '") + key + "'", root.Mark());
        return Error::success();
      }
      if (!n.IsScalar())
        return manifestError(path, std::string("'") + key + "' must be a string", n.Mark());
      out = n.as<std::string>();
      return Error::success();
    };
    if (Error e = str("name", m.name, true))
      return e;
    if (Error e = str("vendor", m.vendor, false))
      return e;
    if (Error e = str("version", m.version, false))
      return e;
    std::string abi;
    if (Error e = str("abi_version", abi, true))
      return e;
    unsigned major = 0, minor = 0;
    char tail = 0;
    if (std::sscanf(abi.c_str(), "%u.%u%c", &major, &minor, &tail) != 2)
      return manifestError(path, "abi_version must look like \"0.1\", got \"" + abi + "\"",
                           root["abi_version"].Mark());
    m.abiMajor = major;
    m.abiMinor = minor;
    if (YAML::Node t = root["targets"]) {
      if (!t.IsSequence())
        return manifestError(path, "'targets' must be a list", t.Mark());
      for (const auto &item : t)
        m.targets.push_back(item.as<std::string>());
    }
    if (YAML::Node space = root["search_space"]) {
      if (!space.IsMap())
        return manifestError(path, "'search_space' must map kernel kinds to lists of knob alternatives",
                             space.Mark());
      for (const auto &entry : space) {
        std::string kind = entry.first.as<std::string>();
        if (kind != "matmul" && kind != "loop" && kind != "attention")
          return manifestError(path, "search_space: unknown kernel kind '" + kind +
                                         "' (known: matmul, loop, attention)",
                               entry.first.Mark());
        if (!entry.second.IsSequence())
          return manifestError(path, "search_space." + kind + " must be a list of knob mappings",
                               entry.second.Mark());
        for (const auto &alt : entry.second) {
          if (!alt.IsMap() || alt.size() == 0)
            return manifestError(path, "search_space." + kind + ": each alternative must be a non-empty mapping",
                                 alt.Mark());
          KnobChoices choices;
          for (const auto &knob : alt) {
            std::vector<std::string> values;
            if (knob.second.IsScalar()) {
              values.push_back(knob.second.as<std::string>());
            } else if (knob.second.IsSequence() && knob.second.size() > 0) {
              for (const auto &v : knob.second) {
                if (!v.IsScalar())
                  return manifestError(path, "search_space: values of knob '" + knob.first.as<std::string>() +
                                                 "' must be scalars",
                                       v.Mark());
                values.push_back(v.as<std::string>());
              }
            } else {
              return manifestError(path, "search_space: knob '" + knob.first.as<std::string>() +
                                             "' needs a value or a non-empty list of values",
                                   knob.second.Mark());
            }
            choices.knobs.emplace_back(knob.first.as<std::string>(), std::move(values));
          }
          m.searchSpace[kind].push_back(std::move(choices));
        }
      }
    }
    return std::optional<Manifest>(std::move(m));
  } catch (const YAML::Exception &e) {
    return manifestError(path, e.msg, e.mark);
  }
}

} // namespace tessera::plugin
