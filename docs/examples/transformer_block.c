/*
 * The transformer block (transformer_block.tsr) from C: compile it for a
 * target, run it on random bf16 inputs and print the max error against the
 * float64 reference interpreter (tessera_program_run_reference). Exits 1
 * when the error is above the bf16 tolerance. Same program in Python, Rust
 * and Julia beside this file.
 *
 *   transformer_block_c [path.tsr] [target] [plugin_dir]
 * Sizes: B=2, S=8, D=16, H=2. H is bound at compile (only reshapes name it);
 * D is bound too, because the pipeline decomposes attention only with a
 * static head dim D/H. B and S come from the inputs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/tessera.h"

static int check(tessera_status_t *s, const char *what) {
  if (!s) return 0;
  fprintf(stderr, "%s failed [%s]: %s\n", what, tessera_status_code_name(tessera_status_code(s)),
          tessera_status_message(s));
  tessera_status_free(s);
  return 1;
}

static uint16_t to_bf16(float f) { /* round to nearest even */
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
static double from_bf16(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint64_t seed = 42;
static float next_random(void) { /* in [-1, 1) */
  seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)(seed >> 40) / (float)(1u << 24) * 2.0f - 1.0f;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "docs/examples/transformer_block.tsr";
  const char *target = argc > 2 ? argv[2] : "cpu";
  const char *plugin_dir = argc > 3 ? argv[3] : NULL;
  const char *bind = "H=2,D=16";
  enum { B = 2, S = 8, D = 16, N_IN = 11 };

  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); return 1; }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *source = malloc((size_t)size);
  if (fread(source, 1, (size_t)size, f) != (size_t)size) { perror(path); return 1; }
  fclose(f);

  tessera_context_options_t copts = {TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE, NULL, plugin_dir,
                                     plugin_dir ? TESSERA_CONTEXT_FLAG_NO_DEFAULT_PATHS : 0};
  tessera_context_t *ctx = NULL;
  if (check(tessera_context_create(&copts, &ctx), "context")) return 1;
  tessera_device_t *device = NULL;
  for (size_t i = 0; i < tessera_device_count(ctx) && !device; ++i) {
    tessera_device_t *d = NULL;
    tessera_device_info_t info;
    memset(&info, 0, sizeof info);
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    if (!tessera_context_get_device(ctx, i, &d) && !tessera_device_get_info(d, &info) &&
        strcmp(info.plugin, target) == 0)
      device = d;
  }
  if (!device) { fprintf(stderr, "no device of plugin '%s'\n", target); return 1; }

  tessera_compile_options_t opts = {0};
  opts.struct_size = TESSERA_COMPILE_OPTIONS_STRUCT_SIZE;
  opts.source_name = path;
  opts.opt_level = 2;
  opts.bind = bind;
  tessera_compile_target_t tgt = {TESSERA_COMPILE_TARGET_STRUCT_SIZE, device, NULL};
  tessera_module_t *module = NULL;
  if (check(tessera_compile(ctx, source, (size_t)size, "tessera-ir", &opts, &tgt, &module), "compile")) return 1;

  const int64_t shapes[N_IN][3] = {{B, S, D}, {D}, {D}, {D, D}, {D, D}, {D, D}, {D, D}, {D}, {D}, {D, 4 * D}, {4 * D, D}};
  const uint32_t ranks[N_IN] = {3, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2};
  tessera_tensor_t *inputs[N_IN];
  for (int i = 0; i < N_IN; ++i) {
    int64_t n = 1;
    for (uint32_t r = 0; r < ranks[i]; ++r) n *= shapes[i][r];
    uint16_t *data = malloc((size_t)n * 2);
    for (int64_t j = 0; j < n; ++j) data[j] = to_bf16(next_random() * (ranks[i] == 2 ? 0.2f : 1.0f));
    if (check(tessera_tensor_create(device, TESSERA_DTYPE_BF16, ranks[i], shapes[i], &inputs[i]), "tensor") ||
        check(tessera_tensor_copy_from_host(inputs[i], data, (uint64_t)n * 2), "copy"))
      return 1;
    free(data);
  }

  tessera_tensor_t *out = NULL, *ref = NULL;
  if (check(tessera_module_run(module, NULL, N_IN, inputs, 1, &out), "run")) return 1;
  tessera_program_t *program = NULL;
  if (check(tessera_program_parse(source, (size_t)size, path, &program), "parse") ||
      check(tessera_program_run_reference(program, NULL, bind, N_IN, inputs, 1, &ref), "reference"))
    return 1;

  enum { N_OUT = B * S * D };
  uint16_t got[N_OUT], want[N_OUT];
  if (check(tessera_tensor_copy_to_host(out, got, sizeof got), "copy out") ||
      check(tessera_tensor_copy_to_host(ref, want, sizeof want), "copy ref"))
    return 1;
  double err = 0;
  for (int i = 0; i < N_OUT; ++i) err = fmax(err, fabs(from_bf16(got[i]) - from_bf16(want[i])));
  printf("transformer_block on %s: output [%d, %d, %d] bf16, max abs error vs reference %.3e\n", target, B, S, D, err);

  tessera_tensor_free(out);
  tessera_tensor_free(ref);
  for (int i = 0; i < N_IN; ++i) tessera_tensor_free(inputs[i]);
  tessera_program_destroy(program);
  tessera_module_destroy(module);
  if (check(tessera_context_destroy(ctx), "destroy")) return 1;
  free(source);
  if (err > 0.1) { fprintf(stderr, "error above the bf16 tolerance 0.1\n"); return 1; }
  return 0;
}
