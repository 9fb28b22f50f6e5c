/* Uses the installed libtessera through tessera.h only: finds the installed
 * plugins by default discovery, then round-trips data through a CPU buffer.
 * Usage: consumer EXPECTED_PLUGIN_DIR [EXTRA_PLUGIN_NAME] */
#include <tessera/tessera.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                      \
  do {                                                                                   \
    tessera_status_t *s_ = (expr);                                                       \
    if (s_) {                                                                            \
      fprintf(stderr, "FAIL %s: %s\n", #expr, tessera_status_message(s_));               \
      tessera_status_free(s_);                                                           \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: consumer EXPECTED_PLUGIN_DIR [EXTRA_PLUGIN_NAME]\n");
    return 2;
  }
  tessera_version_info_t version;
  memset(&version, 0, sizeof(version));
  version.struct_size = TESSERA_VERSION_INFO_STRUCT_SIZE;
  CHECK(tessera_get_version(&version));
  if (version.abi_major != TESSERA_ABI_VERSION_MAJOR) {
    fprintf(stderr, "FAIL: header ABI %d, library ABI %u\n", TESSERA_ABI_VERSION_MAJOR, version.abi_major);
    return 1;
  }
  tessera_context_t *context = NULL;
  CHECK(tessera_context_create(NULL, &context));
  int cpu_found = 0, extra_found = argc < 3;
  for (size_t i = 0; i < tessera_plugin_count(context); ++i) {
    tessera_plugin_info_t info;
    memset(&info, 0, sizeof(info));
    info.struct_size = TESSERA_PLUGIN_INFO_STRUCT_SIZE;
    CHECK(tessera_plugin_get_info(context, i, &info));
    printf("plugin %-8s %-12s %s\n", info.name ? info.name : "-", tessera_plugin_state_name(info.state), info.path);
    if (info.name && strcmp(info.name, "cpu") == 0 && info.state == TESSERA_PLUGIN_STATE_LOADED &&
        strncmp(info.path, argv[1], strlen(argv[1])) == 0)
      cpu_found = 1;
    if (argc >= 3 && info.name && strcmp(info.name, argv[2]) == 0 && info.state == TESSERA_PLUGIN_STATE_LOADED)
      extra_found = 1;
  }
  if (!cpu_found || !extra_found) {
    fprintf(stderr, "FAIL: cpu plugin loaded from %s: %d; extra plugin loaded: %d\n", argv[1], cpu_found,
            extra_found);
    return 1;
  }
  tessera_device_t *device = NULL;
  CHECK(tessera_context_get_device(context, 0, &device));
  tessera_buffer_t *buffer = NULL;
  double in[16], out[16];
  for (int i = 0; i < 16; ++i)
    in[i] = (double)rand() / RAND_MAX + 0.5;
  CHECK(tessera_buffer_allocate(device, sizeof(in), &buffer));
  CHECK(tessera_buffer_copy_from_host(buffer, 0, in, sizeof(in)));
  CHECK(tessera_buffer_copy_to_host(buffer, 0, out, sizeof(out)));
  if (memcmp(in, out, sizeof(in)) != 0) {
    fprintf(stderr, "FAIL: buffer round trip changed the data\n");
    return 1;
  }
  CHECK(tessera_buffer_free(buffer));
  CHECK(tessera_context_destroy(context));
  printf("consumer: OK (libtessera %s, ABI %u.%u)\n", version.version, version.abi_major, version.abi_minor);
  return 0;
}
