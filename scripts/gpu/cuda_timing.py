"""CUDA-event timing shared by the GPU scripts (scripts/gpu)."""
import statistics
import time

import torch


def median_ms(fn, warmup=10, reps=50):
    """Median wall time in milliseconds of one call of fn, measured on the
    GPU with a pair of CUDA events around each call after `warmup` calls.
    Without a CUDA device (a dry run of the calling script): one call timed
    on the host."""
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)
