"""Build hook of the tessera package: bundles or records libtessera.

At build time (pip install / pip wheel), one of:
  TESSERA_LIBRARY=/path/to/libtessera.so    or
  TESSERA_BUILD_DIR=/path/to/cmake-build    (uses <dir>/lib/libtessera.so)
  -> copies libtessera.so into tessera/_lib/ and its plugins
     (<libdir>/tessera/plugins/*.so, *.yaml) into tessera/_lib/tessera/plugins/,
     where libtessera's own plugin search finds them (docs/abi.md).
  With TESSERA_BUNDLE=0 as well, records the absolute path in
  tessera/_build_config.py instead of copying.
Neither set: a pure package that finds an installed libtessera at run time
(see tessera/_lib.py for the search order).
"""
import glob
import os
import shutil

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py


def _library():
    lib = os.environ.get("TESSERA_LIBRARY")
    if not lib and os.environ.get("TESSERA_BUILD_DIR"):
        lib = os.path.join(os.environ["TESSERA_BUILD_DIR"], "lib", "libtessera.so")
    if lib and not os.path.exists(lib):
        raise SystemExit(f"tessera setup.py: {lib} does not exist")
    return os.path.abspath(lib) if lib else None


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = _library()
        if not lib:
            return
        pkg = os.path.join(self.build_lib, "tessera")
        if os.environ.get("TESSERA_BUNDLE", "1") == "0":
            with open(os.path.join(pkg, "_build_config.py"), "w") as f:
                f.write(f"# Written by setup.py: libtessera recorded at build time.\nLIBRARY = {lib!r}\n")
            return
        dest = os.path.join(pkg, "_lib")
        plugdest = os.path.join(dest, "tessera", "plugins")
        os.makedirs(plugdest, exist_ok=True)
        shutil.copyfile(os.path.realpath(lib), os.path.join(dest, "libtessera.so"))
        for p in glob.glob(os.path.join(os.path.dirname(lib), "tessera", "plugins", "*")):
            if p.endswith((".so", ".yaml")):
                shutil.copyfile(os.path.realpath(p), os.path.join(plugdest, os.path.basename(p)))


class BinaryDistribution(Distribution):
    """A bundled libtessera makes the wheel platform-specific."""

    def has_ext_modules(self):
        return _library() is not None and os.environ.get("TESSERA_BUNDLE", "1") != "0"


setup(cmdclass={"build_py": BuildPy}, distclass=BinaryDistribution)
