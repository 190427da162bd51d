"""Shared fixtures: ``xp`` runs a test body on NumPy and (marked ``gpu``) on CuPy."""
import numpy as np
import pytest

from minihart.backend import gpu_available


def _cupy_or_skip():
    if not gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    import cupy
    return cupy


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module under test: numpy, or cupy on a GPU machine."""
    return np if request.param == "numpy" else _cupy_or_skip()


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator (host side; move arrays with ``xp.asarray``)."""
    return np.random.default_rng(0)
