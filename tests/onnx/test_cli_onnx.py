"""`tessera compile model.onnx` and `tessera run model.onnx` on the cpu
plugin: inputs from .npy files, outputs checked against the ONNX test data,
external data resolved relative to the model, symbolic dims from the module's
input info.

Run by CTest with TESSERA_CLI and TESSERA_ONNX_TESTDATA.
"""
import os
import subprocess

import numpy as np
import pytest

CLI = os.environ["TESSERA_CLI"]
DATA = os.environ.get("TESSERA_ONNX_TESTDATA", "/usr/share/libonnx-testdata/data")

# Debian has no Python `onnx` package (only the test data), so the test reads
# and writes the few protobuf fields it needs itself (wire format: varint
# keys, varints and length-delimited fields).


def tessera(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_PLUGIN") and k != "TESSERA_ADD_PLUGIN_PATH"}
    r = subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=300)
    if "cannot run on 'cpu'" in r.stderr:
        pytest.skip("the cpu plugin has no device here: " + r.stderr.strip())
    return r


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def load_pb(path):
    """A float TensorProto with raw_data (as in the ONNX test data) -> array."""
    buf = open(path, "rb").read()
    dims, raw, dtype, i = [], None, None, 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            dims += [v] if field == 1 else []
            dtype = v if field == 2 else dtype
        elif wire == 2:
            n, i = _varint(buf, i)
            if field == 1:  # packed dims
                end, i0 = i + n, i
                while i0 < end:
                    v, i0 = _varint(buf, i0)
                    dims.append(v)
            raw = buf[i:i + n] if field == 9 else raw
            i += n
        else:
            raise ValueError(f"{path}: unexpected wire type {wire}")
    assert dtype == 1 and raw is not None, f"{path}: not a float tensor with raw_data"
    return np.frombuffer(raw, dtype="<f4").reshape(dims)


def _key(field, wire):
    return _enc_varint(field << 3 | wire)


def _enc_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _int(field, v):
    return _key(field, 0) + _enc_varint(v)


def _msg(field, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return _key(field, 2) + _enc_varint(len(payload)) + payload


def _value_info(name, dims):
    shape = b"".join(_msg(1, _msg(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _msg(1, name) + _msg(2, _msg(1, _int(1, 1) + _msg(2, shape)))


def _external_tensor(name, array, location, offset):
    ext = _msg(13, _msg(1, "location") + _msg(2, location)) + _msg(13, _msg(1, "offset") + _msg(2, str(offset))) + \
        _msg(13, _msg(1, "length") + _msg(2, str(array.nbytes)))
    return b"".join(_int(1, d) for d in array.shape) + _int(2, 1) + _msg(8, name) + ext + _int(14, 1)


@pytest.mark.parametrize("group,name", [("pytorch-converted", "test_Conv2d"),
                                        ("pytorch-converted", "test_Linear"),
                                        ("node", "test_softmax_axis_1")])
def test_run_matches_onnx_test_data(tmp_path, group, name):
    model = os.path.join(DATA, group, name, "model.onnx")
    if not os.path.exists(model):
        pytest.skip("libonnx-testdata is not installed")
    data = os.path.join(DATA, group, name, "test_data_set_0")
    inputs = []
    for i in range(len([f for f in os.listdir(data) if f.startswith("input_")])):
        p = tmp_path / f"in{i}.npy"
        np.save(p, load_pb(os.path.join(data, f"input_{i}.pb")))
        inputs.append(str(p))
    out = tmp_path / "out.npy"
    r = tessera("run", model, "--target", "cpu", "--inputs", ",".join(inputs), "--outputs", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "compile: " in r.stdout and "run: " in r.stdout
    want = load_pb(os.path.join(data, "output_0.pb"))
    got = np.load(out)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_compile_onnx_model():
    model = os.path.join(DATA, "pytorch-converted", "test_Conv2d", "model.onnx")
    if not os.path.exists(model):
        pytest.skip("libonnx-testdata is not installed")
    r = tessera("compile", model, "--target", "cpu")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 inputs, 1 outputs" in r.stdout + r.stderr


def test_external_data_and_symbolic_dims(tmp_path):
    # y = x @ W + b with W and b in an external data file next to the model,
    # and a symbolic batch dim N the CLI defaults to 8.
    w = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) / 7
    b = np.linspace(-1, 1, 4, dtype=np.float32)
    sub = tmp_path / "m"
    sub.mkdir()
    (sub / "weights.bin").write_bytes(w.tobytes() + b.tobytes())
    nodes = _msg(1, _msg(1, "x") + _msg(1, "W") + _msg(2, "xw") + _msg(4, "MatMul")) + \
        _msg(1, _msg(1, "xw") + _msg(1, "b") + _msg(2, "y") + _msg(4, "Add"))
    graph = nodes + _msg(2, "ext") + _msg(5, _external_tensor("W", w, "weights.bin", 0)) + \
        _msg(5, _external_tensor("b", b, "weights.bin", w.nbytes)) + _msg(11, _value_info("x", ["N", 3])) + \
        _msg(12, _value_info("y", ["N", 4]))
    model = _int(1, 8) + _msg(7, graph) + _msg(8, _msg(1, "") + _int(2, 13))
    (sub / "model.onnx").write_bytes(model)

    r = tessera("run", str(sub / "model.onnx"), "--target", "cpu")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "symbols: N=8" in r.stdout
    assert ": f32[8, 3] (random)" in r.stdout and ": f32[8, 4] min" in r.stdout

    x = np.linspace(-2, 2, 15, dtype=np.float32).reshape(5, 3)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    # From another working directory: the data file resolves next to the model.
    r = subprocess.run([CLI, "run", str(sub / "model.onnx"), "--target", "cpu", "--inputs", str(tmp_path / "x.npy"),
                        "--outputs", str(out)], capture_output=True, text=True, cwd="/", timeout=300,
                       env={k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")})
    assert r.returncode == 0, r.stdout + r.stderr
    np.testing.assert_allclose(np.load(out), x @ w + b, rtol=1e-5, atol=1e-6)
