"""Tests of minihart/backend.py: device names, the CuPy fallbacks, moving arrays."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from minihart import backend
from minihart.backend import array_module, asnumpy, get_array_module, gpu_available, resolve_device, to_device

ROOT = Path(__file__).resolve().parents[1]


def fake_cupy(monkeypatch, is_available):
    """Install a stand-in for ``cupy`` whose ``cuda.is_available`` is the given callable."""
    cuda = types.SimpleNamespace(is_available=is_available)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=cuda))


def test_cpu_and_auto(monkeypatch):
    monkeypatch.delenv("MINIHART_DEVICE", raising=False)
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    assert resolve_device() == resolve_device("auto") == ("gpu" if gpu_available() else "cpu")
    assert array_module("cpu") is np


def test_environment_variable_and_argument(monkeypatch):
    monkeypatch.setenv("MINIHART_DEVICE", "cpu")
    assert resolve_device() == "cpu"
    monkeypatch.setenv("MINIHART_DEVICE", "gpu")
    assert resolve_device("cpu") == "cpu"  # the argument wins
    monkeypatch.setenv("MINIHART_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"'tpu'.*MINIHART_DEVICE"):
        resolve_device()


@pytest.mark.parametrize("name", ["tpu", "cuda", "gpu0"])
def test_unknown_device_name(name):
    with pytest.raises(ValueError, match=rf"device must be one of \('auto', 'cpu', 'gpu'\), got '{name}'"):
        resolve_device(name)


def test_gpu_without_a_gpu_names_the_cause():
    if gpu_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match=r"device 'gpu' was requested but cannot be used: CuPy "):
        resolve_device("gpu")


def test_gpu_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes ``import cupy`` raise ImportError
    assert not gpu_available() and resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match=r"CuPy is not importable \(ModuleNotFoundError"):
        resolve_device("gpu")


def test_gpu_with_cupy_but_no_device(monkeypatch):
    fake_cupy(monkeypatch, lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match=r"sees no CUDA GPU"):
        resolve_device("gpu")


def test_gpu_with_a_broken_driver(monkeypatch):
    def broken():
        raise OSError("libcuda.so: cannot open shared object file")

    fake_cupy(monkeypatch, broken)
    with pytest.raises(RuntimeError, match=r"cannot query the CUDA driver \(OSError: libcuda.so"):
        resolve_device("gpu")


def test_gpu_when_available(monkeypatch):
    fake_cupy(monkeypatch, lambda: True)
    assert resolve_device("auto") == resolve_device("gpu") == "gpu"
    assert array_module("gpu") is sys.modules["cupy"]


def test_get_array_module_on_numpy():
    assert get_array_module() is np
    assert get_array_module(np.zeros(2), 3.0, None) is np


def test_round_trip_arrays_and_containers(rng):
    tree = {"W": rng.standard_normal((3, 4)).astype(np.float32), "nested": {"b": np.arange(5)},
            "list": [np.ones(2), np.zeros((1, 2))], "tuple": (np.eye(2),)}
    moved = to_device(tree, "cpu")
    assert type(moved["list"]) is list and type(moved["tuple"]) is tuple
    np.testing.assert_array_equal(moved["W"], tree["W"])
    assert moved["W"].dtype == np.float32 and moved["nested"]["b"].dtype == tree["nested"]["b"].dtype
    back = asnumpy({k: moved[k] for k in ("W", "nested")})  # asnumpy maps dicts (not lists)
    np.testing.assert_array_equal(back["nested"]["b"], np.arange(5))
    np.testing.assert_array_equal(back["W"], tree["W"])
    assert isinstance(asnumpy(moved["W"]), np.ndarray)


def test_to_device_casts_dtype(rng):
    x = rng.standard_normal((2, 3))
    y = to_device({"x": x}, "cpu", dtype=np.float32)["x"]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, rtol=1e-6)
    assert asnumpy(2.5).shape == () and float(asnumpy(2.5)) == 2.5


@pytest.mark.gpu
def test_round_trip_through_the_gpu(rng):
    if not gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    tree = {"W": rng.standard_normal((3, 4)).astype(np.float32), "b": [np.arange(3.0)]}
    on_gpu = to_device(tree, "gpu")
    assert get_array_module(on_gpu["W"]).__name__ == "cupy"
    back = asnumpy(to_device(on_gpu, "cpu"))
    np.testing.assert_array_equal(back["W"], tree["W"])
    assert back["W"].dtype == np.float32


def test_importing_minihart_does_not_import_cupy():
    code = "import sys, minihart, minihart.nn, minihart.gradcheck; print('cupy' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MINIHART_DEVICE", None)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_default_dtype_is_float32():
    assert backend.DEFAULT_DTYPE is np.float32
