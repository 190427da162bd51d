"""Shared fixtures: ``xp`` runs a test body on NumPy, on CuPy (marked ``gpu``), and on the
CPU stand-in for CuPy of ``cupy_emulator`` (the GPU code path and the fused kernels' CUDA
source, compiled for the host; skipped without a C++ compiler)."""
import numpy as np
import pytest

import cupy_emulator
from minihart.backend import gpu_available


def _cupy_or_skip():
    if not gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    import cupy
    return cupy


def emulated_cupy():
    """``cupy_emulator`` installed as ``cupy`` for the test (a generator fixture body)."""
    if cupy_emulator.compiler() is None:
        pytest.skip("no C++ compiler for the CuPy emulator")
    with cupy_emulator.installed() as fake:
        yield fake


@pytest.fixture
def emulator():
    """Only the CuPy emulator, installed as ``cupy`` for the test (for tests of the GPU path
    that need no GPU)."""
    yield from emulated_cupy()


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu), "emulated-cupy"])
def xp(request):
    """The array module under test: numpy, cupy on a GPU machine, or the CuPy emulator."""
    if request.param == "emulated-cupy":
        yield from emulated_cupy()
    else:
        yield np if request.param == "numpy" else _cupy_or_skip()


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator (host side; move arrays with ``xp.asarray``)."""
    return np.random.default_rng(0)
