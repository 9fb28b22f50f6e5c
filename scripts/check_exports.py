#!/usr/bin/env python3
"""Checks exported dynamic symbols (docs/abi.md, rule 1 and 11).

  libtessera.so  exports only tessera_* symbols, and exactly the functions
                 the abi/ headers declare with TESSERA_EXPORT (so a declared
                 function cannot be left unimplemented, nor an internal one leak)
  each plugin    exports exactly tessera_backend_get_api

Usage: check_exports.py --include DIR --libtessera SO [--plugin SO ...]
"""
import argparse
import os
import re
import subprocess
import sys

DECL_RE = re.compile(r"TESSERA_EXPORT[^;{]*?\b(tessera_\w+)\s*\(", re.S)


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        # Upper case: global/weak binding. Lower case entries are LOCAL (not
        # bindable from outside): e.g. libstdc++ unique statics the linker
        # keeps in .dynsym because a linked library (libdnnl) shares them.
        if len(parts) == 3 and parts[1] in "TWDBRVi":
            syms.add(parts[2].split("@")[0])
    return syms


def declared(include_dir):
    names = set()
    for header in ("tessera.h", "tessera_ir.h", "tessera_types.h"):
        path = os.path.join(include_dir, "tessera", header)
        if os.path.exists(path):
            text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
            names.update(DECL_RE.findall(text))
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--include", required=True)
    ap.add_argument("--libtessera", required=True)
    ap.add_argument("--plugin", action="append", default=[])
    args = ap.parse_args()
    failures = []

    lib = exported(args.libtessera)
    decl = declared(args.include)
    stray = sorted(s for s in lib if not s.startswith("tessera_"))
    undeclared = sorted(s for s in lib if s.startswith("tessera_") and s not in decl)
    missing = sorted(decl - lib)
    if stray:
        failures.append("libtessera exports non-tessera symbols: " + ", ".join(stray[:20]))
    if undeclared:
        failures.append("libtessera exports symbols no header declares: " + ", ".join(undeclared))
    if missing:
        failures.append("declared in abi/ but not exported by libtessera: " + ", ".join(missing))
    print("libtessera: %d exported, %d declared" % (len(lib), len(decl)))

    for plugin in args.plugin:
        syms = exported(plugin)
        if syms != {"tessera_backend_get_api"}:
            failures.append("%s exports %s (expected only tessera_backend_get_api)"
                            % (os.path.basename(plugin), sorted(syms)[:20]))
        else:
            print("%s: only tessera_backend_get_api" % os.path.basename(plugin))

    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
