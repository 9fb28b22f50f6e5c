// Plugin isolation: each fault plugin is recorded with its exact reason and
// the good plugins keep working beside them.
#include "TestContext.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace {

struct Seen {
  tessera_plugin_state_t state;
  std::string reason;
  std::string name;
  uint32_t abiMajor, abiMinor, devices;
};

std::map<std::string, Seen> listByFile(tessera_context_t *context) {
  std::map<std::string, Seen> out;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info{};
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    EXPECT_EQ(statusCode(tessera_plugin_get_info(context, i, &info)), TESSERA_STATUS_OK);
    std::string path = info.path;
    std::string file = path.substr(path.rfind('/') + 1);
    out[file] = {info.state, info.reason, info.name ? info.name : "", info.abi_major, info.abi_minor,
                 info.device_count};
  }
  return out;
}

class FaultPlugins : public ::testing::Test {
protected:
  void SetUp() override {
    context = makeContext(std::string(TESSERA_TEST_PLUGIN_DIR) + ":" + TESSERA_TEST_FAULT_PLUGIN_DIR);
    ASSERT_NE(context, nullptr);
    seen = listByFile(context);
  }
  void TearDown() override { TESSERA_ASSERT_OK(tessera_context_destroy(context)); }

  void expectState(const std::string &file, tessera_plugin_state_t state, const std::string &reasonPart) {
    auto it = seen.find(file);
    ASSERT_NE(it, seen.end()) << file << " was not discovered";
    EXPECT_EQ(it->second.state, state) << file << ": " << tessera_plugin_state_name(it->second.state) << " / "
                                       << it->second.reason;
    EXPECT_NE(it->second.reason.find(reasonPart), std::string::npos)
        << file << ": reason '" << it->second.reason << "' lacks '" << reasonPart << "'";
  }

  tessera_context_t *context = nullptr;
  std::map<std::string, Seen> seen;
};

TEST_F(FaultPlugins, GoodPluginsStillWork) {
  expectState("libtessera-backend-cpu.so", TESSERA_PLUGIN_STATE_LOADED, "");
  tessera_device_t *cpu = findDevice(context, "cpu");
  ASSERT_NE(cpu, nullptr);
  tessera_buffer_t *buffer = nullptr;
  TESSERA_ASSERT_OK(tessera_buffer_allocate(cpu, 64, &buffer));
  TESSERA_ASSERT_OK(tessera_buffer_free(buffer));
}

TEST_F(FaultPlugins, WrongMajorIsIncompatible) {
  expectState("libtessera-backend-fault-wrong-major.so", TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION,
              "plugin implements ABI 99.");
}

TEST_F(FaultPlugins, PluginIgnoringTheRangeIsCaughtByTheHost) {
  expectState("libtessera-backend-fault-ignores-range.so", TESSERA_PLUGIN_STATE_INCOMPATIBLE_VERSION,
              "plugin answered ABI 7.0");
}

TEST_F(FaultPlugins, NewerMinorLoadsAtTheHostsVersion) {
  expectState("libtessera-backend-fault-newer-minor.so", TESSERA_PLUGIN_STATE_LOADED, "");
  const Seen &s = seen["libtessera-backend-fault-newer-minor.so"];
  EXPECT_EQ(s.abiMajor, TESSERA_ABI_VERSION_MAJOR);
  EXPECT_EQ(s.abiMinor, TESSERA_ABI_VERSION_MINOR);
  EXPECT_EQ(s.devices, 1u);
}

TEST_F(FaultPlugins, OlderMinorLoadsWithMissingFeaturesUnsupported) {
  expectState("libtessera-backend-fault-older-minor.so", TESSERA_PLUGIN_STATE_LOADED, "");
  EXPECT_EQ(seen["libtessera-backend-fault-older-minor.so"].abiMinor, 0u);
  tessera_device_t *device = findDevice(context, "fault-older-minor");
  ASSERT_NE(device, nullptr);
  // Its table ends before buffer_allocate (even though the slot is set in
  // memory past struct_size): the host must not read it.
  tessera_buffer_t *buffer = nullptr;
  tessera_status_t *s = tessera_buffer_allocate(device, 64, &buffer);
  EXPECT_EQ(tessera_status_code(s), TESSERA_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(tessera_status_message(s)).find("cannot allocate"), std::string::npos);
  tessera_status_free(s);
}

TEST_F(FaultPlugins, MissingEntryPoint) {
  expectState("libtessera-backend-fault-missing-entry.so", TESSERA_PLUGIN_STATE_MISSING_ENTRY,
              "no entry point tessera_backend_get_api");
}

TEST_F(FaultPlugins, EntryReturningAnError) {
  expectState("libtessera-backend-fault-entry-error.so", TESSERA_PLUGIN_STATE_ENTRY_FAILED,
              "simulated failure: libvendor.so.3 not found");
}

TEST_F(FaultPlugins, NullRequiredSlot) {
  expectState("libtessera-backend-fault-null-slot.so", TESSERA_PLUGIN_STATE_INVALID_API,
              "required entry 'device_count' is NULL");
}

TEST_F(FaultPlugins, DuplicateNameKeepsTheFirst) {
  expectState("libtessera-backend-fault-dup-a.so", TESSERA_PLUGIN_STATE_LOADED, "");
  expectState("libtessera-backend-fault-dup-b.so", TESSERA_PLUGIN_STATE_DUPLICATE,
              "another plugin already provides 'fault-dup'");
}

TEST_F(FaultPlugins, GarbageFile) {
  expectState("libtessera-backend-fault-garbage.so", TESSERA_PLUGIN_STATE_NOT_A_PLUGIN, "not an ELF file");
}

TEST_F(FaultPlugins, WrongArchitectureElf) {
  expectState("libtessera-backend-fault-wrong-arch.so", TESSERA_PLUGIN_STATE_NOT_A_PLUGIN,
              "ELF for aarch64, this host is x86-64");
}

TEST_F(FaultPlugins, UnreadableCandidates) {
  expectState("libtessera-backend-fault-unreadable.so", TESSERA_PLUGIN_STATE_UNREADABLE,
              "cannot read: No such file or directory");
  expectState("libtessera-backend-fault-not-a-file.so", TESSERA_PLUGIN_STATE_UNREADABLE,
              "not a regular file");
}

TEST(FaultPermissions, PermissionDeniedFile) {
  if (geteuid() == 0) {
    std::printf("[ NOTE     ] running as root: permission bits do not stop root, so the permission-denied "
                "case cannot be produced; the dangling-symlink and directory cases cover 'unreadable'.\n");
    // Root reads anything: the file is then judged by its content.
  }
  char dir[] = "/tmp/tessera-perm-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/libtessera-backend-locked.so";
  { std::ofstream(file) << "locked"; }
  ASSERT_EQ(chmod(file.c_str(), 0), 0);
  tessera_context_t *context = makeContext(dir);
  auto seen = listByFile(context);
  ASSERT_EQ(seen.count("libtessera-backend-locked.so"), 1u);
  const Seen &s = seen["libtessera-backend-locked.so"];
  if (geteuid() == 0) {
    EXPECT_EQ(s.state, TESSERA_PLUGIN_STATE_NOT_A_PLUGIN) << s.reason;
  } else {
    EXPECT_EQ(s.state, TESSERA_PLUGIN_STATE_UNREADABLE) << s.reason;
    EXPECT_NE(s.reason.find("Permission denied"), std::string::npos) << s.reason;
  }
  TESSERA_ASSERT_OK(tessera_context_destroy(context));
  std::remove(file.c_str());
  rmdir(dir);
}

} // namespace
