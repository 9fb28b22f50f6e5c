#!/usr/bin/env python3
"""Benchmark: wall time of `tessera plugins list` with every plugin present
(real ones plus the 13 fault candidates), against a named peer measured in the
same run: `git --version`, a native CLI doing no work, as the floor of
process start-up on this machine.

Usage: cli_startup.py BUILD_DIR [--runs N]
"""
import argparse
import os
import statistics
import subprocess
import time


def median_ms(cmd, runs, env):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    cli = os.path.join(args.build, "bin", "tessera")
    fault = os.path.join(args.build, "tests", "fault_plugins", "dir")
    env = dict(os.environ, TESSERA_ADD_PLUGIN_PATH=fault)
    rows = [
        ("tessera plugins list (all plugins)", [cli, "plugins", "list"]),
        ("tessera plugins list --json", [cli, "plugins", "list", "--json"]),
        ("tessera version", [cli, "version"]),
        ("peer: git --version", ["git", "--version"]),
    ]
    results = {name: median_ms(cmd, args.runs, env) for name, cmd in rows}
    peer = results["peer: git --version"][0]
    print(f"{'command':40s} {'median ms':>10s} {'min':>7s} {'max':>7s} {'x peer':>7s}")
    for name, (med, lo, hi) in results.items():
        print(f"{name:40s} {med:10.2f} {lo:7.2f} {hi:7.2f} {med / peer:7.2f}")


if __name__ == "__main__":
    main()
