"""CTest python.pip_install: `pip install` the package (from a copy of
bindings/python, so the source tree stays clean) into a folder, then import
it from a clean environment (no TESSERA_* variables, cwd elsewhere) and
check that it finds libtessera and the cpu plugin by itself.

usage: pip_install_check.py <bindings/python> <cmake build dir> <work dir>
Mode 1 (bundle): TESSERA_BUILD_DIR set at build time -> libtessera and its
plugins are copied into tessera/_lib. Mode 2 (record): TESSERA_BUNDLE=0 ->
only the path is recorded in tessera/_build_config.py.
"""
import os
import shutil
import subprocess
import sys

src, build, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
copy = os.path.join(work, "src")
shutil.copytree(src, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))

PROBE = r"""
import os, sys, numpy as np, tessera
print("library:", tessera.library_path)
assert tessera.library_path.startswith(sys.argv[1]), tessera.library_path
cpu = [p for p in tessera.plugins() if p.name == "cpu"]
assert cpu and cpu[0].state == "loaded", tessera.plugins()
m = tessera.compile("func @main(%a: tensor<N x f32>) -> tensor<N x f32> {\n  %b = mul(%a, %a)\n  return %b\n}")
x = np.arange(5, dtype=np.float32)
assert np.array_equal(m(x), x * x)
print("ok:", cpu[0].path)
"""

clean = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA") and k != "PYTHONPATH"}
for mode, extra, expect_prefix in (("bundle", {}, None), ("record", {"TESSERA_BUNDLE": "0"}, build)):
    target = os.path.join(work, mode)
    env = dict(clean, TESSERA_BUILD_DIR=build, **extra)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", target, copy], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        sys.exit(f"pip install ({mode}) failed")
    r = subprocess.run([sys.executable, "-c", PROBE, expect_prefix or target], cwd=work,
                       env=dict(clean, PYTHONPATH=target), capture_output=True, text=True)
    print(f"[{mode}]", r.stdout.strip(), r.stderr.strip()[-2000:])
    if r.returncode != 0:
        sys.exit(f"import after pip install ({mode}) failed")
print("pip install: both modes ok")
