#!/usr/bin/env python3
"""Adds the fault candidates that cannot be built as plugins to a directory:

  libtessera-backend-fault-garbage.so       text, not an ELF file
  libtessera-backend-fault-wrong-arch.so    a real plugin with e_machine = aarch64
  libtessera-backend-fault-unreadable.so    a dangling symlink (unreadable even for root)
  libtessera-backend-fault-not-a-file.so    a directory named like a plugin

Usage: make_fault_files.py DIR GOOD_PLUGIN_SO
"""
import os
import shutil
import struct
import sys

EM_AARCH64 = 183
E_MACHINE_OFFSET = 18  # Elf64_Ehdr.e_machine (ELF spec, 64-bit header layout)


def main() -> int:
    out_dir, good = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "libtessera-backend-fault-garbage.so"), "w") as f:
        f.write("this is not a shared object\n")
    wrong = os.path.join(out_dir, "libtessera-backend-fault-wrong-arch.so")
    shutil.copyfile(good, wrong)
    with open(wrong, "r+b") as f:
        f.seek(E_MACHINE_OFFSET)
        f.write(struct.pack("<H", EM_AARCH64))
    link = os.path.join(out_dir, "libtessera-backend-fault-unreadable.so")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink("does-not-exist.so", link)
    os.makedirs(os.path.join(out_dir, "libtessera-backend-fault-not-a-file.so"), exist_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
