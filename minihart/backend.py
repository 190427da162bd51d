"""The one place that decides the array module: NumPy on the CPU, CuPy on a GPU.

Set ``MINIHART_DEVICE`` to ``auto`` (default: CuPy when it imports and sees a GPU,
else NumPy), ``cpu`` or ``gpu`` (an error naming the cause when no GPU is usable).
Every op finds its module from its inputs with :func:`get_array_module`, so one
code path serves both devices (the Chainer / DeZero way). Importing minihart never
requires CuPy. :func:`fusable` is the one door to the fused GPU kernels.
"""
from __future__ import annotations

import functools
import os

import numpy as np

DEFAULT_DTYPE = np.float32  # training dtype; gradient checks use float64
DEVICES = ("auto", "cpu", "gpu")


def _import_cupy():
    """Return ``(cupy, None)`` or ``(None, reason)`` without raising."""
    try:
        import cupy  # noqa: PLC0415  (optional dependency)
    except Exception as exc:  # ImportError, or a broken CUDA install
        return None, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        if not cupy.cuda.is_available():
            return None, "CuPy is installed but sees no CUDA GPU (cupy.cuda.is_available() is False)"
    except Exception as exc:
        return None, f"CuPy cannot query the CUDA driver ({type(exc).__name__}: {exc})"
    return cupy, None


def gpu_available() -> bool:
    """True when CuPy imports and a CUDA device is visible."""
    return _import_cupy()[0] is not None


def resolve_device(device: str | None = None) -> str:
    """Map ``auto|cpu|gpu`` (default: ``$MINIHART_DEVICE`` or ``auto``) to ``cpu`` or ``gpu``: ``ValueError``
    for an unknown name, ``RuntimeError`` naming the cause when ``gpu`` is asked for but cannot be had."""
    name = (device or os.environ.get("MINIHART_DEVICE") or "auto").strip().lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {name!r} "
                         "(from the argument or MINIHART_DEVICE)")
    if name == "cpu":
        return "cpu"
    cupy, reason = _import_cupy()
    if name == "gpu" and cupy is None:
        raise RuntimeError(f"device 'gpu' was requested but cannot be used: {reason}. "
                           "Install requirements-gpu.txt on a machine with an NVIDIA GPU, "
                           "or use --device cpu.")
    return "gpu" if cupy is not None else "cpu"


def array_module(device: str | None = None):
    """The module (numpy or cupy) for a device name, see :func:`resolve_device`."""
    if resolve_device(device) == "gpu":
        return _import_cupy()[0]
    return np


def get_array_module(*arrays):
    """numpy or cupy, whichever holds the first CuPy array among ``arrays``."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy  # noqa: PLC0415
            return cupy
    return np


def fusable(fn):
    """Decorator: on CuPy arrays ``fn`` runs as the fused kernel of the same name in
    :mod:`minihart.nn.kernels` (one launch where the array code of ``fn`` makes several; on a
    GPU a small model spends its time launching), unless ``MINIHART_FUSED=0``. The code of
    ``fn`` is what the kernel computes and the twin it is tested against."""
    @functools.wraps(fn)
    def dispatch(*args, **kwargs):
        if get_array_module(args[0]) is not np:
            from minihart.nn import kernels  # noqa: PLC0415  (only reached with CuPy arrays)
            out = kernels.run(fn.__name__, *args, **kwargs)
            if out is not NotImplemented:  # NotImplemented: switched off, or a case it does not take
                return out
        return fn(*args, **kwargs)
    return dispatch


def to_device(a, device: str | None = None, dtype=None):
    """Copy a NumPy/CuPy array (or nested dict/list/tuple of them) to ``device``."""
    if isinstance(a, dict):
        return {k: to_device(v, device, dtype) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return type(a)(to_device(v, device, dtype) for v in a)
    xp = array_module(device)
    out = xp.asarray(asnumpy(a) if xp is np else a)
    return out.astype(dtype, copy=False) if dtype is not None else out


def asnumpy(a):
    """A NumPy array from a NumPy or CuPy array (or a scalar); dicts, lists, tuples are mapped."""
    if isinstance(a, dict):
        return {k: asnumpy(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return [asnumpy(v) for v in a]
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)
