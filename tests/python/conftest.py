"""Fixtures of the Python binding tests (run by CTest: python.bindings).

Environment (set by tests/python/CMakeLists.txt): PYTHONPATH = the staged
package (<build>/python), TESSERA_INTERP_DIR = the Schedule-IR interpreter
test plugin's folder, TESSERA_SOURCE_DIR = the repository.
Targets: "cpu" (the real backend) and "interp" (the test plugin); a target
whose plugin has no device is skipped with the plugin's reason.
"""
import os

import numpy as np
import pytest

import tessera

SOURCE_DIR = os.environ.get("TESSERA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
INTERP_DIR = os.environ.get("TESSERA_INTERP_DIR")


@pytest.fixture(scope="session")
def ctx():
    """The default context (the cpu plugin, found beside libtessera)."""
    return tessera.default_context()


@pytest.fixture(scope="session")
def interp_ctx():
    """A context with only the interp test plugin. Separate because
    tessera_tensor_from_dlpack attributes host memory to the first CPU-kind
    device of a context, and a module refuses inputs of another plugin."""
    if not INTERP_DIR:
        pytest.skip("TESSERA_INTERP_DIR not set: interp target skipped")
    return tessera.Context(plugin_path=INTERP_DIR, no_default_paths=True, ignore_environment=True)


def _device_or_skip(ctx, name):
    try:
        return ctx.device(name)
    except tessera.Error as e:
        pytest.skip(f"target {name} unavailable: {e}")


@pytest.fixture(params=["cpu", "interp"])
def target(request, ctx):
    """Each runnable target as a Device (its context: target.context)."""
    if request.param == "interp":
        return _device_or_skip(request.getfixturevalue("interp_ctx"), "interp")
    return _device_or_skip(ctx, request.param)


@pytest.fixture
def cpu(ctx):
    return _device_or_skip(ctx, "cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


ADD = """
func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {
  %c = add(%a, %b)
  return %c
}
"""
