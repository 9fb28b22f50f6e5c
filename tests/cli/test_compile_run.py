"""`tessera compile` and `tessera run`: the pipeline end to end through the
public C API, on the Schedule IR interpreter test plugin (always) and the cpu
plugin, with .npy inputs/outputs, serialized modules and --check.

Run by CTest with TESSERA_CLI, TESSERA_INTERP_DIR and TESSERA_EXAMPLES.
"""
import os
import subprocess

import numpy as np
import pytest

CLI = os.environ["TESSERA_CLI"]
INTERP_DIR = os.environ["TESSERA_INTERP_DIR"]
EXAMPLES = os.environ["TESSERA_EXAMPLES"]

ADD = """
func @main(%a: tensor<N x 3 x f32>, %b: tensor<N x 3 x f32>) -> tensor<N x 3 x f32> {
  %c = add(%a, %b)
  %d = mul(%c, %a)
  return %d
}
"""


def tessera(*args, interp=True):
    extra = ["--plugin-path", INTERP_DIR] if interp and args[0] in ("run", "compile") else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_PLUGIN") and k != "TESSERA_ADD_PLUGIN_PATH"}
    return subprocess.run([CLI, *args, *extra], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def add_file(tmp_path):
    path = tmp_path / "add.tsr"
    path.write_text(ADD)
    return path


def test_run_mlp_check_passes_on_interp():
    r = tessera("run", f"{EXAMPLES}/mlp.tsr", "--target", "interp", "--check", "--bind", "B=3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check %p vs reference: max abs err" in r.stdout and "PASS" in r.stdout
    assert "run: " in r.stdout and " ms" in r.stdout
    assert "input  %x: f32[3, 784] (random)" in r.stdout


def test_run_transformer_check_on_interp():
    r = tessera("run", f"{EXAMPLES}/transformer_block.tsr", "--target", "interp", "--check",
                "--bind", "B=1,S=8,D=16,H=2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check %y vs reference" in r.stdout and "PASS" in r.stdout and "bf16" in r.stdout


def test_npy_inputs_and_outputs_round_trip(tmp_path, add_file):
    a = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    b = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out.npy"
    r = tessera("run", str(add_file), "--target", "interp", "--inputs",
                f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", "--outputs", str(out), "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_allclose(got, (a + b) * a, rtol=1e-6)


def test_float64_npy_converts_to_the_input_dtype(tmp_path, add_file):
    a = np.ones((2, 3))
    np.save(tmp_path / "a.npy", a)
    out = tmp_path / "o.npy"
    r = tessera("run", str(add_file), "--target", "interp", "--inputs",
                f"{tmp_path / 'a.npy'},{tmp_path / 'a.npy'}", "--outputs", str(out))
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), np.full((2, 3), 2.0, dtype=np.float32))


def test_mismatched_inputs_name_the_symbol(tmp_path, add_file):
    np.save(tmp_path / "a.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros((5, 3), dtype=np.float32))
    r = tessera("run", str(add_file), "--target", "interp", "--inputs", f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}")
    assert r.returncode == 1, r.stderr
    assert "symbol N" in r.stderr and "4" in r.stderr and "5" in r.stderr


def test_wrong_input_count_and_bad_npy(tmp_path, add_file):
    np.save(tmp_path / "a.npy", np.zeros((4, 3), dtype=np.float32))
    r = tessera("run", str(add_file), "--target", "interp", "--inputs", str(tmp_path / "a.npy"))
    assert r.returncode == 2 and "takes 2 inputs" in r.stderr
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    r = tessera("run", str(add_file), "--target", "interp", "--inputs",
                f"{tmp_path / 'bad.npy'},{tmp_path / 'bad.npy'}")
    assert r.returncode == 2 and "not a NumPy .npy file" in r.stderr
    np.save(tmp_path / "i.npy", np.zeros((4, 3), dtype=np.int32))
    r = tessera("run", str(add_file), "--target", "interp", "--inputs", f"{tmp_path / 'i.npy'},{tmp_path / 'i.npy'}")
    assert r.returncode == 2 and "cannot convert i32" in r.stderr


def test_compile_dumps_every_stage_and_times_them():
    r = tessera("compile", f"{EXAMPLES}/mlp.tsr", "--target", "interp", "--dump=graph,schedule,tile,target", "--time")
    assert r.returncode == 0, r.stderr
    for stage in ("graph", "schedule", "tile", "target"):
        assert f"==== {stage} ====" in r.stdout
    assert "tessera-schedule v1" in r.stdout and "func @mlp" in r.stdout
    for stage in ("parse+verify", "graph passes", "fusion", "schedule", "plugin compile", "total"):
        assert stage in r.stderr
    r = tessera("compile", f"{EXAMPLES}/mlp.tsr", "--target", "interp", "--dump=bogus")
    assert r.returncode == 2 and "unknown dump stage 'bogus'" in r.stderr


def test_compile_needs_unbound_symbols():
    r = tessera("compile", f"{EXAMPLES}/transformer_block.tsr", "--target", "interp")
    assert r.returncode == 1
    assert "symbol 'H'" in r.stderr and "transformer_block.tsr:" in r.stderr


def test_serialized_module_runs_and_corruption_is_reported(tmp_path):
    module = tmp_path / "mlp.tsrm"
    r = tessera("compile", f"{EXAMPLES}/mlp.tsr", "--target", "interp", "-o", str(module))
    assert r.returncode == 0, r.stderr
    assert module.stat().st_size > 0
    r = tessera("run", str(module), "--target", "interp", "--bind", "B=2")
    assert r.returncode == 0, r.stderr
    assert "output %p: f32[2, 10]" in r.stdout
    r = tessera("run", str(module), "--target", "interp", "--check")
    assert r.returncode == 2 and "needs the .tsr source" in r.stderr
    data = bytearray(module.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tsrm"
    bad.write_bytes(bytes(data))
    r = tessera("run", str(bad), "--target", "interp")
    assert r.returncode == 3 and "damaged" in r.stderr and "corrupt data" in r.stderr
    bad.write_bytes(bytes(module.read_bytes()[: len(data) // 3]))
    r = tessera("run", str(bad), "--target", "interp")
    assert r.returncode == 3 and "truncated" in r.stderr


def test_compile_only_for_a_description(tmp_path):
    module = tmp_path / "mlp.tsrm"
    r = tessera("compile", f"{EXAMPLES}/mlp.tsr", "--target", "interp", "--arch", "interp", "-o", str(module))
    assert r.returncode == 0, r.stderr
    assert "compile-only" in r.stderr
    r = tessera("run", str(module), "--target", "interp", "--bind", "B=1")
    assert r.returncode == 0, r.stderr


def test_unknown_target_is_reported():
    r = tessera("run", f"{EXAMPLES}/mlp.tsr", "--target", "nosuch")
    assert r.returncode == 3 and "no plugin named 'nosuch'" in r.stderr


def test_transformer_check_on_cpu():
    r = tessera("run", f"{EXAMPLES}/transformer_block.tsr", "--check", "--bind", "B=2,S=16,D=32,H=4",
                interp=False)
    if "cannot run on 'cpu'" in r.stderr:
        pytest.skip("the cpu plugin has no device here: " + r.stderr.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "run: " in r.stdout


def test_onnx_model_compiles_and_runs():
    model = "/usr/share/libonnx-testdata/data/node/test_softmax_axis_1/model.onnx"
    if not os.path.exists(model):
        pytest.skip("libonnx-testdata is not installed")
    r = tessera("run", model, "--target", "interp")
    if "not supported" in r.stderr:
        pytest.skip("this libtessera has no ONNX import: " + r.stderr.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run: " in r.stdout and "output %" in r.stdout
    r = tessera("run", model, "--target", "interp", "--check")
    assert r.returncode == 2 and "ONNX model" in r.stderr
