"""CTest julia.grammar: parses the Julia sources with a real Julia grammar
(tree-sitter-julia from PyPI), since Julia itself cannot be installed here.

usage: check_grammar.py <venv dir> <file.jl>...
Creates the venv once (python3 -m venv; pip install --quiet tree-sitter
tree-sitter-julia) and reuses it. If the packages cannot be installed
(offline), prints why and exits 77 (CTest SKIP_RETURN_CODE). Fails when a
file has a syntax error (an ERROR or MISSING node), printing each location.
"""
import os
import subprocess
import sys

venv, files = sys.argv[1], sys.argv[2:]
py = os.path.join(venv, "bin", "python")
if os.environ.get("TESSERA_GRAMMAR_CHILD") != "1":
    if not os.path.exists(py):
        r = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
        if r.returncode:
            print(f"SKIP: cannot create a venv ({r.stderr.strip()[-300:]})")
            sys.exit(77)
    ok = subprocess.run([py, "-c", "import tree_sitter, tree_sitter_julia"], capture_output=True).returncode == 0
    if not ok:
        r = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "tree-sitter>=0.22", "tree-sitter-julia"], capture_output=True, text=True, timeout=600)
        if r.returncode:
            print(f"SKIP: cannot install tree-sitter-julia from PyPI (offline?): {r.stderr.strip()[-500:]}")
            sys.exit(77)
    sys.exit(subprocess.run([py, __file__, venv, *files], env=dict(os.environ, TESSERA_GRAMMAR_CHILD="1")).returncode)

import tree_sitter_julia  # noqa: E402
from tree_sitter import Language, Parser  # noqa: E402

parser = Parser(Language(tree_sitter_julia.language()))
bad = 0


def walk(node, path):
    global bad
    if node.type == "ERROR" or node.is_missing:
        r, c = node.start_point
        what = "missing " + node.type if node.is_missing else "syntax error"
        print(f"{path}:{r + 1}:{c + 1}: {what}: {node.text[:60]!r}")
        bad += 1
        return
    for ch in node.children:
        walk(ch, path)


for f in files:
    tree = parser.parse(open(f, "rb").read())
    walk(tree.root_node, f)
    print(f"parsed {f}: {tree.root_node.child_count} top-level nodes")
if bad:
    sys.exit(f"{bad} syntax error(s)")
print(f"julia grammar: {len(files)} files parse cleanly")
