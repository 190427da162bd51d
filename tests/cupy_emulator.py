"""CuPy on the CPU, for tests: the GPU code path of minihart, fused kernels included, run
where there is no GPU.

* Arrays are NumPy arrays of a subclass whose module is named ``cupy_emulator...``, so
  :func:`minihart.backend.get_array_module` takes them for CuPy arrays and imports ``cupy``,
  which :func:`installed` replaces by this module for the duration of a test.
* Every NumPy function called through the module returns such arrays, and 0-d results stay
  0-d arrays, as on CuPy.
* ``ElementwiseKernel`` compiles the kernel's CUDA body as host C++ (``__device__`` defined
  away) with the system C++ compiler, and runs it over the elements in a loop. Non-``raw``
  arguments are broadcast as CuPy does; ``raw`` ones are indexed by the body.

So ``minihart.nn.kernels`` runs its real CUDA source, and the ``xp``/``cp`` fixtures can run
the GPU tests' bodies on a CPU. What it cannot show: CuPy API differences (see
``test_cupy_namespace.py``), speed, and anything of the GPU itself.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np


class HostRead(AssertionError):
    """Raised by a read of a device array inside :func:`no_host_reads`."""


_READS = [True]  # may device arrays be read back to the host now?


def _read(name):
    def method(self, *args, **kwargs):
        if not _READS[0]:
            raise HostRead(f"{name}() of a device array: on a GPU this waits for the device")
        return getattr(np.ndarray, name)(self, *args, **kwargs)
    return method


class ndarray(np.ndarray):
    """An "on the device" array: ``get()`` copies it to the host as CuPy's does; in
    :func:`no_host_reads` that and every other read on the host (``float``, ``bool``,
    ``int``, ``item``, ``tolist``) raise :class:`HostRead`."""
    __bool__, __float__, __int__, __index__ = (_read(n) for n in ("__bool__", "__float__", "__int__", "__index__"))
    item, tolist, tobytes = (_read(n) for n in ("item", "tolist", "tobytes"))

    def get(self):
        if not _READS[0]:
            raise HostRead("get() of a device array (asnumpy): on a GPU this waits for the device")
        return np.array(self)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return np.ndarray.__array_wrap__(self, arr, context, False)  # 0-d stays an array


ndarray.__module__ = "cupy_emulator"


def _dev(r):
    if isinstance(r, tuple):
        return tuple(_dev(v) for v in r)
    if isinstance(r, list):
        return [_dev(v) for v in r]
    if isinstance(r, np.generic):
        r = np.asarray(r)
    return r.view(ndarray) if type(r) is np.ndarray else r


_LAUNCHES = [None]  # the counter of count_launches while it runs
_COMPUTE = {"where", "vdot", "dot", "tensordot", "einsum"}  # functions, not ufuncs, that launch a kernel


class _Proxy(types.ModuleType):
    """``getattr`` on NumPy (or one of its submodules), results turned into device arrays."""

    def __init__(self, name, target):
        super().__init__(name)
        self._target = target

    def __getattr__(self, name):
        a = getattr(self._target, name)
        if isinstance(a, types.ModuleType):
            return _Proxy(f"{self.__name__}.{name}", a)
        if callable(a) and not isinstance(a, type):
            def call(*args, **kwargs):
                if _LAUNCHES[0] is not None and name in _COMPUTE:
                    _LAUNCHES[0][0] += 1
                return _dev(a(*args, **kwargs))
            return call
        return a


class _Generator:
    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def __getattr__(self, name):
        f = getattr(self._g, name)
        return lambda *args, **kwargs: _dev(f(*args, **kwargs))


class _Random(_Proxy):
    def default_rng(self, seed=None):
        return _Generator(seed)


# ------------------------------------------------------------------------ ElementwiseKernel
_CTYPES = {"float": "float", "double": "double", "int32": "int", "bool": "bool"}
_NPTYPES = {"float": np.float32, "double": np.float64, "int32": np.int32, "bool": np.bool_}


def _params(spec):
    """``"raw T a, int32 H"`` -> ``[(raw, type, name), ...]``."""
    out = []
    for p in spec.split(","):
        *raw, typ, name = p.split()
        out.append((bool(raw), typ, name))
    return out


def compiler():
    """The host C++ compiler, or None."""
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


class ElementwiseKernel:
    """The part of ``cupy.ElementwiseKernel`` that :mod:`minihart.nn.kernels` uses."""

    _libs = {}

    def __init__(self, in_params, out_params, operation, name="kernel", preamble=""):
        self.ins, self.outs = _params(in_params), _params(out_params)
        self.body, self.name, self.preamble = operation, name, preamble

    def _function(self, t):
        key = (self.name, t)
        if key not in self._libs:
            args, loads = ["long n"], []
            for k, (raw, typ, var) in enumerate(self.ins + self.outs):
                ct = t if typ == "T" else _CTYPES[typ]
                args.append(f"{ct}* {var}_p, long {var}_s")
                if raw:
                    loads.append(f"Raw<{ct}> {var}{{{var}_p}};")
                elif k < len(self.ins):
                    loads.append(f"const {ct} {var} = {var}_p[i * {var}_s];")
                else:
                    loads.append(f"{ct}& {var} = {var}_p[i * {var}_s];")
            src = ("#include <cmath>\n#include <cstddef>\n#include <algorithm>\nusing namespace std;\n"
                   "#define __device__\n" + self.preamble +
                   "\ntemplate <typename T> struct Raw { T* p; T& operator[](ptrdiff_t k) const { return p[k]; } };\n"
                   f"extern \"C\" void run({', '.join(args)}) {{\n  typedef {t} T;\n"
                   f"  for (ptrdiff_t i = 0; i < n; ++i) {{\n    {' '.join(loads)}\n{self.body};\n  }}\n}}\n")
            tag = hashlib.sha1(src.encode()).hexdigest()[:16]
            folder = os.path.join(tempfile.gettempdir(), "minihart_cupy_emulator")
            os.makedirs(folder, exist_ok=True)
            lib = os.path.join(folder, f"{self.name}_{t}_{tag}.so")
            if not os.path.exists(lib):
                cpp = lib[:-3] + ".cpp"
                with open(cpp, "w") as f:
                    f.write(src)
                done = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", lib + ".tmp", cpp],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(f"{self.name} ({t}) does not compile:\n{done.stderr}")
                os.replace(lib + ".tmp", lib)
            self._libs[key] = ctypes.CDLL(lib).run
        return self._libs[key]

    def __call__(self, *args):
        ins, given = args[:len(self.ins)], list(args[len(self.ins):])
        t_arg = next(a for a, (_, typ, _) in zip(args, self.ins + self.outs) if typ == "T" and hasattr(a, "dtype"))
        dtype = np.dtype(t_arg.dtype)
        t = {np.float32: "float", np.float64: "double"}[dtype.type]
        assert given or any(not raw for raw, _, _ in self.ins), f"{self.name}: CuPy needs an output or size="
        shape = np.broadcast_shapes(*(np.shape(a) for a, (raw, _, _) in zip(list(ins) + given, self.ins + self.outs)
                                      if not raw))  # the loop runs over the non-raw arguments
        outs = given + [np.empty(shape, dtype).view(ndarray) for _ in self.outs[len(given):]]
        call, keep = [int(np.prod(shape))], []
        for k, (a, (raw, typ, _)) in enumerate(zip(list(ins) + outs, self.ins + self.outs)):
            want = dtype if typ == "T" else np.dtype(_NPTYPES[typ])
            if k >= len(ins):  # outputs are written in place: CuPy allocated them contiguous
                assert a.dtype == want and a.flags.c_contiguous and (raw or a.shape == shape), (self.name, k)
                arr, step = a, 1
            elif raw:
                arr, step = np.ascontiguousarray(a, want), 1
            elif np.ndim(a) == 0:
                arr, step = np.asarray(a, want).reshape(1), 0
            else:
                arr, step = np.ascontiguousarray(np.broadcast_to(a, shape), want), 1
            assert raw or step == 0 or arr.dtype == want, (self.name, k, a.dtype, want)
            keep.append(arr)
            call += [ctypes.c_void_p(arr.ctypes.data), step]
        self._function(t)(*[ctypes.c_long(v) if isinstance(v, int) else v for v in call])
        return outs[0] if len(outs) == 1 else tuple(outs)


# ------------------------------------------------------------------------ the module
def module():
    """A fresh ``cupy`` stand-in."""
    m = _Proxy("cupy", np)
    m.ndarray, m.ElementwiseKernel = ndarray, ElementwiseKernel
    m.random = _Random("cupy.random", np.random)
    m.cuda = types.SimpleNamespace(
        is_available=lambda: True,
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None),
        runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"cupy_emulator (host C++)"}))
    # no pool to measure: the GPU bench reports 0 MiB here
    m.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None, total_bytes=lambda: 0)
    m.asnumpy = lambda a: np.array(a)

    def asarray(a, dtype=None, order=None):  # from the host: a copy, as a transfer is
        return _dev(np.array(a, dtype, order=order or "K") if type(a) is np.ndarray else np.asarray(a, dtype, order))
    m.asarray = asarray
    return m


@contextlib.contextmanager
def installed(monkeypatch=None):
    """Within the block ``import cupy`` gives the stand-in; minihart's compiled-kernel cache
    is emptied before and after, so real CuPy kernels and emulated ones never mix."""
    from minihart.nn import kernels  # noqa: PLC0415
    fake, old = module(), sys.modules.get("cupy")
    kernels.kernel.cache_clear()
    sys.modules["cupy"] = fake
    try:
        yield fake
    finally:
        kernels.kernel.cache_clear()
        if old is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = old


@contextlib.contextmanager
def no_host_reads():
    """Within the block, reading a device array back to the host raises :class:`HostRead`:
    what must hold for a GPU step to be queued without waiting."""
    old, _READS[0] = _READS[0], False
    try:
        yield
    finally:
        _READS[0] = old


def to_device(a):
    """NumPy arrays (in dicts, lists, tuples) as emulated device arrays."""
    if isinstance(a, dict):
        return {k: to_device(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)):
        return type(a)(to_device(v) for v in a)
    return _dev(a)


@contextlib.contextmanager
def count_launches():
    """Within the block, count what would be GPU kernel launches on CuPy: every ufunc call on
    device arrays (arithmetic, ``exp``, ``matmul``, reductions), every call of ``where``,
    ``vdot``, ``dot``, ``tensordot`` or ``einsum``, and every ``ElementwiseKernel`` call.
    Yields a one-element list holding the count. (Copies and new arrays are not counted.)"""
    count = [0]
    _LAUNCHES[0] = count
    call = ElementwiseKernel.__call__

    def kernel_call(self, *args):
        count[0] += 1
        return call(self, *args)

    def ufunc(self, uf, method, *inputs, **kwargs):
        count[0] += 1
        host = [np.asarray(a) if isinstance(a, ndarray) else a for a in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, ndarray) else o for o in kwargs["out"])
        return _dev(getattr(uf, method)(*host, **kwargs))
    ElementwiseKernel.__call__, ndarray.__array_ufunc__ = kernel_call, ufunc
    try:
        yield count
    finally:
        ElementwiseKernel.__call__ = call
        del ndarray.__array_ufunc__
        _LAUNCHES[0] = None
