"""Version, plugins, devices, errors, programs and the reference interpreter."""
import os

import numpy as np
import pytest

import tessera
from conftest import ADD


def test_version_and_library():
    version, abi, build = tessera.version()
    assert version == "0.1.0" and abi[0] == 0 and build
    assert ".so" in os.path.basename(tessera.library_path)


def test_plugins_and_devices_of_the_default_context():
    plugins = tessera.plugins()
    cpu = [p for p in plugins if p.name == "cpu"]
    assert cpu and cpu[0].state == "loaded" and cpu[0].kind == "backend", plugins
    devs = tessera.devices()
    assert any(d.info.plugin == "cpu" and d.info.kind == 1 and d.info.compute_units >= 1 for d in devs)


def test_context_with_a_plugin_path_lists_interp(interp_ctx):
    names = {p.name: p for p in interp_ctx.plugins()}
    assert names["interp"].state == "loaded" and "cpu" not in names


def test_unknown_target_is_not_found(ctx):
    with pytest.raises(tessera.NotFoundError) as e:
        tessera.compile(ADD, target="nonexistent", context=ctx)
    assert e.value.code == tessera.StatusCode.NOT_FOUND and "nonexistent" in e.value.message


def test_invalid_ir_is_located():
    src = "func @main(%a: tensor<N x f32>) -> tensor<N x f32> {\n  %c = frobnicate(%a)\n  return %c\n}\n"
    with pytest.raises(tessera.InvalidIRError) as e:
        tessera.compile(src, source_name="bad.tsr")
    err = e.value
    assert isinstance(err, tessera.Error) and isinstance(err, ValueError)
    assert err.code == tessera.StatusCode.INVALID_IR == 8
    assert err.location == ("bad.tsr", 2, 8)
    assert "unknown op 'frobnicate'" in err.message


def test_shape_error_from_parse():
    src = ("func @main(%a: tensor<3 x f32>, %b: tensor<4 x f32>) -> tensor<3 x f32> {\n"
           "  %c = add(%a, %b)\n  return %c\n}\n")
    with pytest.raises(tessera.ShapeMismatchError) as e:
        tessera.parse(src)
    assert e.value.location[1] == 2


def test_unknown_compile_option():
    with pytest.raises(tessera.InvalidArgumentError, match="frob"):
        tessera.compile(ADD, frob=1)


def test_program_parse_print_signatures_symbols(rng):
    p = tessera.parse(ADD)
    assert "add(%a, %b)" in p.text()
    assert p.signatures() == ["func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32>"]
    assert p.symbols() == ["N"]
    a, b = rng.standard_normal((2, 7)).astype(np.float32)
    (out,) = p.run_reference(a, b)
    np.testing.assert_array_equal(out, a + b)


def test_reference_needs_bind_for_undetermined_symbols(rng):
    p = tessera.parse(open(_example("transformer_block.tsr")).read())
    assert p.symbols(entry="transformer_block", undetermined=True) == ["H"]


def test_compile_from_path_and_pathlike(tmp_path, rng, cpu):
    f = tmp_path / "add.tsr"
    f.write_text(ADD)
    a, b = rng.standard_normal((2, 5)).astype(np.float32)
    for src in (f, str(f)):
        m = tessera.compile(src, target=cpu)
        np.testing.assert_allclose(m(a, b), a + b, rtol=1e-6)


def test_missing_file_is_an_os_error():
    with pytest.raises(FileNotFoundError):
        tessera.compile("/nonexistent/dir/x.tsr")


def test_error_classes_cover_every_code():
    for code in tessera.StatusCode:
        if code == tessera.StatusCode.OK:
            continue
        err = tessera.errors.make_error(int(code), "m")
        assert isinstance(err, tessera.Error) and err.code == code and str(err) == f"[{code.name}] m"
    assert isinstance(tessera.errors.make_error(999, "x"), tessera.InternalError)


def _example(name):
    import os
    from conftest import SOURCE_DIR
    return os.path.join(SOURCE_DIR, "docs", "examples", name)
