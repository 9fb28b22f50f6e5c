/* The C side of tests/bench/binding_overhead.py: ns per tessera_module_run
 * (+ tessera_tensor_free of the output) of `add` on two 4-element f32
 * tensors created once; prints "c_ns_per_call <wall> <cpu>" (best of 5). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tessera/tessera.h"

static const char *ADD =
    "func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {\n"
    "  %c = add(%a, %b)\n  return %c\n}\n";

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  tessera_context_t *ctx = NULL;
  tessera_device_t *dev = NULL;
  tessera_module_t *m = NULL;
  if (tessera_context_create(NULL, &ctx)) return 1;
  for (size_t i = 0; i < tessera_device_count(ctx) && !dev; ++i) {
    tessera_device_t *d = NULL;
    tessera_device_info_t info;
    memset(&info, 0, sizeof info);
    info.struct_size = TESSERA_DEVICE_INFO_STRUCT_SIZE;
    if (!tessera_context_get_device(ctx, i, &d) && !tessera_device_get_info(d, &info) && !strcmp(info.plugin, "cpu"))
      dev = d;
  }
  tessera_compile_target_t tgt = {TESSERA_COMPILE_TARGET_STRUCT_SIZE, dev, NULL};
  if (!dev || tessera_compile(ctx, ADD, strlen(ADD), "tessera-ir", NULL, &tgt, &m)) return 1;
  int64_t shape[1] = {4};
  float a[4] = {1, 2, 3, 4};
  tessera_tensor_t *in[2];
  for (int i = 0; i < 2; ++i)
    if (tessera_tensor_create(dev, TESSERA_DTYPE_F32, 1, shape, &in[i]) || tessera_tensor_copy_from_host(in[i], a, 16))
      return 1;
  const int iters = 200000;
  double best_wall = 1e30, best_cpu = 1e30;
  for (int r = 0; r < 5; ++r) {
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < iters; ++i) {
      tessera_tensor_t *out = NULL;
      if (tessera_module_run(m, NULL, 2, in, 1, &out)) return 1;
      tessera_tensor_free(out);
    }
    double w = (now(CLOCK_MONOTONIC) - w0) / iters, c = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / iters;
    if (w < best_wall) best_wall = w;
    if (c < best_cpu) best_cpu = c;
  }
  printf("c_ns_per_call %.0f %.0f\n", best_wall, best_cpu);
  for (int i = 0; i < 2; ++i) tessera_tensor_free(in[i]);
  tessera_module_destroy(m);
  return tessera_context_destroy(ctx) ? 1 : 0;
}
