"""The generated ctypes layer matches the C ABI (layout baseline, symbols)."""
import ctypes
import os
import subprocess
import sys

from conftest import SOURCE_DIR
from tessera import _abi
from tessera._lib import lib


def test_struct_layout_matches_the_abi_baseline():
    """Every field the baseline lists has the same offset and size in ctypes."""
    checked = 0
    with open(os.path.join(SOURCE_DIR, "abi", "layout", "x86_64-linux.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            key, *vals = line.split()
            if "." not in key:
                continue
            struct, field = key.split(".")
            cls = getattr(_abi, struct, None)
            if cls is None:  # tessera_backend.h structs are not bound
                assert struct.startswith("tessera_backend_"), struct
                continue
            d = getattr(cls, field)
            assert (d.offset, d.size) == (int(vals[0]), int(vals[1])), key
            checked += 1
    assert checked > 60


def test_struct_size_constants_are_prefix_sizes():
    assert _abi.TESSERA_PLUGIN_INFO_STRUCT_SIZE == _abi.tessera_plugin_info_t.has_manifest.offset + 1
    assert _abi.TESSERA_PLUGIN_INFO_STRUCT_SIZE < ctypes.sizeof(_abi.tessera_plugin_info_t)
    assert _abi.TESSERA_VERSION_INFO_STRUCT_SIZE == ctypes.sizeof(_abi.tessera_version_info_t)


def test_every_declared_function_is_exported():
    missing = [n for n in _abi.FUNCTIONS if not hasattr(lib, n)]
    assert not missing


def test_generator_check_passes():
    r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "gen_bindings.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_generator_detects_a_stale_file(tmp_path):
    """--check fails (with a diff) when a generated file differs."""
    root = tmp_path / "root"
    for rel in ("bindings/python/tessera/_abi.py", "bindings/rust/tessera-sys/src/generated.rs",
                "bindings/julia/Tessera.jl/src/LibTessera.jl"):
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(open(os.path.join(SOURCE_DIR, rel)).read())
    py = root / "bindings/python/tessera/_abi.py"
    py.write_text(py.read_text().replace("TESSERA_MAX_RANK = 16", "TESSERA_MAX_RANK = 15"))
    gen = os.path.join(SOURCE_DIR, "scripts", "gen_bindings.py")
    r = subprocess.run([sys.executable, gen, "--check", "--root", str(root)], capture_output=True, text=True)
    assert r.returncode == 1 and "_abi.py is out of date" in r.stderr and "TESSERA_MAX_RANK = 16" in r.stderr


def test_generator_rejects_what_it_cannot_parse(tmp_path):
    inc = tmp_path / "inc" / "tessera"
    inc.mkdir(parents=True)
    for h in ("tessera_types.h", "tessera.h", "tessera_ir.h"):
        (inc / h).write_text(open(os.path.join(SOURCE_DIR, "abi", "include", "tessera", h)).read())
    (inc / "tessera_ir.h").write_text((inc / "tessera_ir.h").read_text().replace(
        "#ifdef __cplusplus\n} /* extern \"C\" */",
        "TESSERA_EXPORT float tessera_new(union weird x);\n#ifdef __cplusplus\n} /* extern \"C\" */", 1))
    gen = os.path.join(SOURCE_DIR, "scripts", "gen_bindings.py")
    r = subprocess.run([sys.executable, gen, "--check", "--include", str(tmp_path / "inc")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "parse error" in r.stderr
