#include "schedule/ScheduleFile.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace tessera::sched {

namespace {

struct RawEntry {
  std::string base;
  Knobs knobs;
};

bool toKnob(const YAML::Node &n, schedule::KnobValue &out, std::string &why) {
  if (n.IsSequence()) {
    std::vector<int64_t> list;
    for (const YAML::Node &e : n) {
      int64_t v = 0;
      if (!e.IsScalar() || !YAML::convert<int64_t>::decode(e, v)) {
        why = "a list of integers is expected";
        return false;
      }
      list.push_back(v);
    }
    out = list;
    return true;
  }
  if (!n.IsScalar()) {
    why = "an integer, a list of integers or a string is expected";
    return false;
  }
  int64_t v = 0;
  if (YAML::convert<int64_t>::decode(n, v))
    out = v;
  else
    out = n.Scalar();
  return true;
}

} // namespace

ScheduleFile parseScheduleText(const std::string &text, const std::string &name) {
  ScheduleFile out;
  auto problem = [&](const std::string &m) { out.problems.push_back(name + ": " + m); };
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception &e) {
    problem("not valid YAML: " + std::string(e.what()) + "; no schedule is forced");
    return out;
  }
  if (!root.IsMap() || !root["kernels"] || !root["kernels"].IsMap()) {
    problem("expected a map with a 'kernels' map; no schedule is forced");
    return out;
  }
  if (root["version"] && root["version"].IsScalar() && root["version"].Scalar() != "1") {
    problem("schedule file version " + root["version"].Scalar() + " is not supported (1 is); no schedule is forced");
    return out;
  }
  std::map<std::string, RawEntry> raw;
  for (const auto &kv : root["kernels"]) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const YAML::Node &v = kv.second;
    if (key.empty() || !v.IsMap()) {
      problem("entry '" + key + "' must be a map with 'knobs' and optional 'base'; ignored");
      continue;
    }
    RawEntry e;
    bool ok = true;
    for (const auto &field : v) {
      std::string f = field.first.Scalar();
      if (f == "base" && field.second.IsScalar()) {
        e.base = field.second.Scalar();
      } else if (f == "knobs" && field.second.IsMap()) {
        for (const auto &knob : field.second) {
          std::string why;
          schedule::KnobValue value;
          if (!toKnob(knob.second, value, why)) {
            problem("entry '" + key + "', knob '" + knob.first.Scalar() + "': " + why + "; entry ignored");
            ok = false;
            break;
          }
          e.knobs[knob.first.Scalar()] = value;
        }
      } else if (f != "hash" && f != "comment") {
        problem("entry '" + key + "': unknown field '" + f + "' (known: base, knobs); entry ignored");
        ok = false;
      }
    }
    if (ok)
      raw[key] = std::move(e);
  }
  // Resolve `base` chains; cycles and missing bases drop the entry.
  for (const auto &[key, entry] : raw) {
    std::vector<const RawEntry *> chain{&entry};
    std::set<std::string> seen{key};
    std::string base = entry.base;
    bool ok = true;
    while (!base.empty()) {
      auto it = raw.find(base);
      if (it == raw.end()) {
        problem("entry '" + key + "': base '" + base + "' is not defined; entry ignored");
        ok = false;
        break;
      }
      if (!seen.insert(base).second) {
        problem("entry '" + key + "': 'base' chain has a cycle through '" + base + "'; entry ignored");
        ok = false;
        break;
      }
      chain.push_back(&it->second);
      base = it->second.base;
    }
    if (!ok)
      continue;
    Knobs knobs;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      for (const auto &[k, v] : (*it)->knobs)
        knobs[k] = v;
    out.entries[key] = std::move(knobs);
  }
  return out;
}

ScheduleFile loadScheduleFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ScheduleFile out;
    out.problems.push_back(path + ": cannot read the schedule file; no schedule is forced");
    return out;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parseScheduleText(ss.str(), path);
}

std::string checkKnobs(const schedule::Kernel &k, const Knobs &knobs) {
  auto intIn = [&](const std::string &key, const schedule::KnobValue &v, int64_t lo, int64_t hi) -> std::string {
    const int64_t *i = std::get_if<int64_t>(&v);
    if (!i)
      return "knob '" + key + "' must be an integer";
    if (*i < lo || *i > hi)
      return "knob '" + key + "' = " + std::to_string(*i) + " is out of range [" + std::to_string(lo) + ", " +
             std::to_string(hi) + "]";
    return {};
  };
  for (const auto &[key, v] : knobs) {
    std::string why;
    if (key == "mc" || key == "kc" || key == "nc") {
      if (k.kind != schedule::Kernel::Kind::Matmul)
        why = "knob '" + key + "' applies only to matmul kernels";
      else
        why = intIn(key, v, 1, 8192);
    } else if (key == "threads") {
      why = intIn(key, v, 1, 1024);
    } else if (key == "unroll") {
      why = intIn(key, v, 1, 64);
    } else if (key == "deterministic") {
      why = intIn(key, v, 0, 1);
    } else if (key == "vector") {
      why = intIn(key, v, 1, 64);
      if (why.empty() && (std::get<int64_t>(v) & (std::get<int64_t>(v) - 1)) != 0)
        why = "knob 'vector' = " + std::to_string(std::get<int64_t>(v)) + " is not a power of two";
    } else if (key == "tile") {
      const auto *l = std::get_if<std::vector<int64_t>>(&v);
      if (!l)
        why = "knob 'tile' must be a list of integers";
      else if (l->size() != k.parallel.size())
        why = "knob 'tile' has " + std::to_string(l->size()) + " sizes; kernel \"" + k.name + "\" has " +
              std::to_string(k.parallel.size()) + " parallel loops";
      else
        for (int64_t t : *l)
          if (t < 1)
            why = "knob 'tile' sizes must be >= 1 (got " + std::to_string(t) + ")";
    } else if (key == "library" || key == "gemm_path") {
      if (!std::get_if<std::string>(&v))
        why = "knob '" + key + "' must be a string";
    } else if (key == "stages") {
      why = intIn(key, v, 1, 16);
    } else if (key == "warps") {
      why = intIn(key, v, 1, 32);
    } else {
      why = "unknown knob '" + key +
            "' (known: tile, vector, unroll, threads, mc, kc, nc, library, gemm_path, stages, warps, deterministic)";
    }
    if (!why.empty())
      return why;
  }
  return {};
}

std::string printScheduleFile(const std::vector<SavedSchedule> &schedules) {
  std::ostringstream out;
  out << "# Tessera schedules (docs/schedule.md); load with tessera_compile_options_t.schedule_file\n";
  out << "version: 1\nkernels:\n";
  for (const SavedSchedule &s : schedules) {
    out << "  " << s.kernel << ":\n";
    if (!s.comment.empty())
      out << "    # " << s.comment << "\n";
    out << "    hash: \"" << s.hash << "\"\n";
    out << "    knobs: {";
    bool first = true;
    for (const auto &[key, value] : s.knobs) {
      out << (first ? "" : ", ") << key << ": ";
      first = false;
      if (auto *i = std::get_if<int64_t>(&value)) {
        out << *i;
      } else if (auto *l = std::get_if<std::vector<int64_t>>(&value)) {
        out << "[";
        for (size_t j = 0; j < l->size(); ++j)
          out << (j ? ", " : "") << (*l)[j];
        out << "]";
      } else {
        out << "\"" << std::get<std::string>(value) << "\"";
      }
    }
    out << "}\n";
  }
  return out.str();
}

} // namespace tessera::sched
