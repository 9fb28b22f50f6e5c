"""The transformer block (transformer_block.tsr) from Python: compile it for
a target, run it on random bf16 inputs and print the max error against the
float64 reference interpreter. Exits 1 above the bf16 tolerance. Same
program in C, Rust and Julia beside this file.

    python3 transformer_block.py [path.tsr] [target]
("interp" loads $TESSERA_INTERP_DIR.) Sizes: B=2, S=8, D=16, H=2. H is bound
at compile (only reshapes name it); D is bound too, because the pipeline
decomposes attention only with a static head dim D/H. B and S come from
the inputs.
"""
import os
import sys

import numpy as np

import tessera

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "transformer_block.tsr")
target = sys.argv[2] if len(sys.argv) > 2 else "cpu"
ctx = (tessera.Context(plugin_path=os.environ["TESSERA_INTERP_DIR"], no_default_paths=True)
       if target == "interp" else tessera.default_context())
device = ctx.device(target)
bind = {"H": 2, "D": 16}
module = tessera.compile(path, target=device, bind=bind)

B, S, D = 2, 8, 16
rng = np.random.default_rng(42)
shapes = [(B, S, D), (D,), (D,), (D, D), (D, D), (D, D), (D, D), (D,), (D,), (D, 4 * D), (4 * D, D)]
inputs = [tessera.Tensor.from_numpy(rng.uniform(-1, 1, s) * (0.2 if len(s) == 2 else 1.0), dtype="bf16",
                                    device=device) for s in shapes]
out = np.asarray(module(*inputs), np.float64)
ref = np.asarray(tessera.parse(open(path).read(), path).run_reference(*inputs, bind=bind)[0], np.float64)
err = float(np.max(np.abs(out - ref)))
print(f"transformer_block on {target}: output {list(out.shape)} bf16, max abs error vs reference {err:.3e}")
sys.exit(1 if err > 0.1 else 0)
