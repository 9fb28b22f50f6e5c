# lit configuration for the Graph IR golden tests (tests/ir). Run through
# CTest (tests/ir/CMakeLists.txt), which passes the tool paths as params:
#   --param tessera=<path to the tessera CLI> --param llvm_bin=<dir with FileCheck>
import os

import lit.formats

config.name = "tessera-ir"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".tsr"]
config.excludes = ["Inputs", "lit.cfg.py", "CMakeLists.txt"]
config.test_source_root = os.path.dirname(__file__)
exec_root = lit_config.params.get("exec_root")
if exec_root:
    config.test_exec_root = exec_root

tessera = lit_config.params.get("tessera")
if not tessera:
    lit_config.fatal("pass --param tessera=<path to the tessera binary>")
llvm_bin = lit_config.params.get("llvm_bin", "/usr/lib/llvm-19/bin")

config.substitutions.append(("%tessera", tessera))
config.substitutions.append(("%examples", os.path.join(config.test_source_root, "..", "..", "docs", "examples")))
# FileCheck, split-file and not come from LLVM's tools.
config.environment["PATH"] = os.pathsep.join([llvm_bin, os.environ.get("PATH", "")])
