"""Fused CuPy kernels: one GPU launch where the plain array code launches several.

On a GPU every array operation is a kernel launch, and a small model like HART spends its
time launching, not computing. Each function of :data:`FUSED` does in *one* CuPy
``ElementwiseKernel`` (two for LRN's backward) the work of the op function of the same name,
which is marked ``@fusable`` (:func:`minihart.backend.fusable`, the one door from the ops to
this module): on CuPy arrays, and unless ``MINIHART_FUSED=0``, it runs instead of that function.

* ``relu_backward``, ``elu``, ``elu_backward``, ``sigmoid``, ``sigmoid_backward``,
  ``tanh_backward``: :mod:`minihart.nn.activations`;
* ``lstm_gates``, ``lstm_gates_backward``: the element-wise part of :mod:`minihart.nn.lstm`,
  eq. (5), zoneout included (the matrix products stay cuBLAS calls);
* ``iou_nll``, ``attention_nll``: the per-box tracking (10) and attention (11) losses of
  :mod:`minihart.nn.losses` *and their gradients* in one pass;
* ``im2col``, ``col2im``: :mod:`minihart.nn.conv`, one launch instead of one per kernel offset
  (121 for AlexNet's conv1); col2im gathers, so it needs no atomic adds; ``lrn``,
  ``lrn_backward``: one and two launches instead of about fourteen and ten;
* ``filterbank``, ``filterbank_backward``: :mod:`minihart.nn.attention`, a Gaussian row per
  thread (sigma from the stride, the row, its normaliser): one launch for about twenty-five;
* ``rmsprop_update``, ``adam_update``: :mod:`minihart.optim`, a parameter's update in one launch.

A function returns ``NotImplemented`` for a case it does not take (sizes that do not fit, which
the plain function then names in its error); the plain function runs instead. The plain code is
the twin: ``tests/test_kernels.py`` runs every op both ways on a GPU, and without one on
``tests/cupy_emulator.py`` (the bodies compiled as host C++); :func:`plain` switches the kernels
off. Subgradients follow :mod:`minihart.boxes` (ties go to the first box, zero where a clip is
active). This module imports nothing of minihart: the ops import it (through the dispatch),
never the other way round.

``cupy.fuse`` on the plain code was considered: the element-wise bodies here are one line
each, the functions that need more take caches or write several outputs (which ``cupy.fuse``
does not), and a fused Python function could not be compiled or counted without a GPU.
"""
from __future__ import annotations

import contextlib
import functools
import os

import numpy as np

_ON = [os.environ.get("MINIHART_FUSED", "1") != "0"]

PREAMBLE = r"""
template <typename T> __device__ T sigm(T x) {  // stable logistic, as activations.sigmoid
  T z = exp(-fabs(x));
  return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}
template <typename T> __device__ T overlap(const T* a, const T* b, T* g) {
  // |a n b| of boxes [y, x, h, w]; g = d|a n b| / da (ties to a, 0 where closed)
  T side[2]; bool first[2], last[2], open[2];
  for (int k = 0; k < 2; ++k) {
    T ea = a[k] + a[k + 2], eb = b[k] + b[k + 2];
    first[k] = a[k] >= b[k];
    last[k] = ea <= eb;
    T raw = (last[k] ? ea : eb) - (first[k] ? a[k] : b[k]);
    open[k] = raw > 0;
    side[k] = open[k] ? raw : (T)0;
  }
  for (int k = 0; k < 2; ++k) {
    T ds = open[k] ? side[1 - k] : (T)0;
    g[k] = (last[k] ? ds : (T)0) - (first[k] ? ds : (T)0);
    g[k + 2] = last[k] ? ds : (T)0;
  }
  return side[0] * side[1];
}
template <typename T> __device__ T iou(const T* a, const T* b, T* g) {
  // IoU and g = dIoU / da (union <= 0: IoU 0, no gradient)
  T gi[4];
  T inter = overlap(a, b, gi);
  T u = a[2] * a[3] + b[2] * b[3] - inter;
  bool valid = u > 0;
  u = valid ? u : (T)1;
  T q = valid ? 1 / (u * u) : (T)0;
  T dinter = q * (u + inter), darea = -q * inter;
  for (int k = 0; k < 4; ++k) g[k] = dinter * gi[k];
  g[2] += darea * a[3];
  g[3] += darea * a[2];
  return inter / u;
}
template <typename T> __device__ T neg_log_clip(T x, T eps, T* d) {
  T c = min(max(x, eps), (T)1);
  *d = (x > eps && x < 1) ? -1 / c : (T)0;
  return -log(c);
}
"""

_LOAD = "T A[4], B[4], g[4], d; for (int k = 0; k < 4; ++k) { A[k] = a[4 * i + k]; B[k] = b[4 * i + k]; }"

SPECS = {  # name: (inputs, outputs, body)
    "elu": ("T x, T alpha", "T y", "y = x > 0 ? x : alpha * (exp(x) - 1)"),
    "elu_backward": ("T dout, T x, T alpha", "T dx", "dx = x > 0 ? dout : dout * (alpha * exp(x))"),
    "relu_backward": ("T dout, T x", "T dx", "dx = x > 0 ? dout : (T)0"),
    "sigmoid": ("T x", "T y", "y = sigm(x)"),
    "sigmoid_backward": ("T dout, T y", "T dx", "dx = dout * y * (1 - y)"),
    "tanh_backward": ("T dout, T y", "T dx", "dx = dout * (1 - y * y)"),
    "lstm_gates": (
        "raw T a, T c_prev, T h_prev, T m_h, T m_c, int32 H",
        "T gi, T gf, T go, T gg, T tc, T h, T c", """
        const ptrdiff_t r = (i / H) * 4 * H + i % H;
        gi = sigm(a[r]); gf = sigm(a[r + H]); go = sigm(a[r + 2 * H]); gg = tanh(a[r + 3 * H]);
        T c_new = gf * c_prev + gi * gg;
        tc = tanh(c_new);
        h = m_h * h_prev + (1 - m_h) * (go * tc);
        c = m_c * c_prev + (1 - m_c) * c_new;"""),
    "lstm_gates_backward": (
        "T dh, T dc, T gi, T gf, T go, T gg, T tc, T c_prev, T m_h, T m_c, int32 H",
        "raw T da, T dh_keep, T dc_prev", """
        const ptrdiff_t r = (i / H) * 4 * H + i % H;
        T dh_new = (1 - m_h) * dh;
        T dc_new = (1 - m_c) * dc + dh_new * go * (1 - tc * tc);
        da[r] = dc_new * gg * gi * (1 - gi);
        da[r + H] = dc_new * c_prev * gf * (1 - gf);
        da[r + 2 * H] = dh_new * tc * go * (1 - go);
        da[r + 3 * H] = dc_new * gi * (1 - gg * gg);
        dh_keep = m_h * dh;
        dc_prev = m_c * dc + dc_new * gf;"""),
    "iou_nll": ("raw T a, raw T b, T w, T eps", "T loss, raw T da", _LOAD + """
        loss = w * neg_log_clip(iou(A, B, g), eps, &d);
        for (int k = 0; k < 4; ++k) da[4 * i + k] = d * w * g[k];"""),
    "attention_nll": ("raw T a, raw T b, T w, T eps, T H, T W", "T loss, raw T da", _LOAD + """
        T frame[4] = {0, 0, H, W}, gf[4], ds;
        T area = B[2] * B[3] > 0 ? B[2] * B[3] : (T)1;
        T cover = neg_log_clip(overlap(A, B, g) / area, eps, &d);
        T spill = neg_log_clip(1 - iou(A, frame, gf), eps, &ds);
        loss = w * (cover + spill);
        for (int k = 0; k < 4; ++k) da[4 * i + k] = w * (d / area * g[k] - ds * gf[k]);"""),
    "im2col": (  # one launch instead of kh * kw slice copies; zero padding read as 0
        "raw T x, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, int32 ho, int32 wo, "
        "int32 stride, int32 pad, bool bi", "T col", """
        // col is (N, C, kh, kw, ho, wo) or, batch inner, (C, kh, kw, ho, wo, N)
        ptrdiff_t j = bi ? i / N : i, q = j / (ho * wo);  // q indexes (n, c, ki, kj) or (c, ki, kj)
        int s = j % wo, r = j / wo % ho, kj = q % kw, ki = q / kw % kh, c, n;
        if (bi) { n = i % N; c = q / kw / kh; }
        else { c = q / kw / kh % C; n = q / kw / kh / C; }
        int y = r * stride + ki - pad, xx = s * stride + kj - pad;
        col = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[((ptrdiff_t)(n * C + c) * H + y) * W + xx] : (T)0;"""),
    "lrn": (  # the channel window sum, the normaliser and its power, y: four passes in one
        "raw T x, int32 C, int32 rest, int32 lo, int32 hi, T scale, T k, T beta", "T y, T s, T s_pow", """
        const int c = i / rest % C;
        T sum = 0;
        for (int d = -lo; d <= hi; ++d)
          if (c + d >= 0 && c + d < C) { T v = x[i + (ptrdiff_t)d * rest]; sum += v * v; }
        s = k + scale * sum;
        s_pow = pow(s, -beta);
        y = x[i] * s_pow;"""),
    "lrn_backward": (  # t = dout s^-beta x / s from a first kernel, summed over the transposed window
        "raw T t, T dout, T x, T s_pow, int32 C, int32 rest, int32 lo, int32 hi, T coef", "T dx", """
        const int c = i / rest % C;
        T back = 0;
        for (int d = -lo; d <= hi; ++d)
          if (c + d >= 0 && c + d < C) back += t[i + (ptrdiff_t)d * rest];
        dx = dout * s_pow - back * x * coef;"""),
    "lrn_t": ("T dout, T s_pow, T x, T s", "T t", "t = dout * s_pow * x / s"),
    "filterbank": (  # one row (b, r) per element: sigma(gamma), the Gaussian row and its sum
        "raw T mu, raw T gamma, T c0, T c1, T c2, T c3, T c4, int32 n_out, int32 n_in, T sigma_min, "
        "T fit_max, T eps", "T centre, raw T A, raw T z, raw T sigma, raw T dsigma", """
        const ptrdiff_t b = i / n_out, row = i * (ptrdiff_t)n_in;
        const T g = gamma[b], gc = min(g, fit_max), c[5] = {c0, c1, c2, c3, c4};
        T p = c[4], dp = 0;
        for (int k = 3; k >= 0; --k) { dp = dp * gc + p; p = p * gc + c[k]; }
        const T pc = max(p, sigma_min), sd = pc * max(g / fit_max, (T)1);
        if (i % n_out == 0) {
          sigma[b] = sd;
          dsigma[b] = g > fit_max ? pc / fit_max : (p > sigma_min ? dp : (T)0);
        }
        centre = mu[b] + g * (T)(i % n_out);
        T sum = 0;
        for (int j = 0; j < n_in; ++j) {
          T zz = ((T)j + (T)0.5 - centre) / sd;
          z[row + j] = zz;
          A[row + j] = exp((T)-0.5 * zz * zz);
          sum += A[row + j];
        }
        for (int j = 0; j < n_in; ++j) A[row + j] /= sum + eps;"""),
    "filterbank_backward": (  # per row: the sums over pixels that the gradients need
        "raw T dA, raw T A, raw T z, int32 n_in", "T qz, T qzz", """
        const ptrdiff_t row = i * (ptrdiff_t)n_in;
        T dot = 0;
        for (int j = 0; j < n_in; ++j) dot += dA[row + j] * A[row + j];
        T a = 0, b = 0;
        for (int j = 0; j < n_in; ++j) {
          T q = A[row + j] * (dA[row + j] - dot);
          a += q * z[row + j];
          b += q * z[row + j] * z[row + j];
        }
        qz = a;
        qzz = b;"""),
    "rmsprop": ("T g, T rho, T one_minus_rho, T momentum, T lr, T eps", "T ms, T mom, T p", """
        ms = ms * rho + one_minus_rho * g * g;
        mom = mom * momentum + lr * g / sqrt(ms + eps);
        p = p - mom;"""),
    "adam": ("T g, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T lr_t, T eps", "T m, T v, T p", """
        m = m * beta1 + one_minus_beta1 * g;
        v = v * beta2 + one_minus_beta2 * g * g;
        p = p - lr_t * m / (sqrt(v) + eps);"""),
    "col2im": (  # gather: each pixel sums the column entries it feeds, in im2col's offset order
        "raw T col, int32 N, int32 C, int32 H, int32 W, int32 kh, int32 kw, int32 ho, int32 wo, "
        "int32 stride, int32 pad, bool bi", "T img", """
        int xx = i % W + pad, y = i / W % H + pad, c = i / W / H % C, n = i / W / H / C;
        T sum = 0;
        for (int ki = 0; ki < kh; ++ki) {
          int ry = y - ki, r = ry / stride;
          if (ry < 0 || ry % stride || r >= ho) continue;
          for (int kj = 0; kj < kw; ++kj) {
            int rx = xx - kj, s = rx / stride;
            if (rx < 0 || rx % stride || s >= wo) continue;
            if (bi) sum += col[(((((ptrdiff_t)c * kh + ki) * kw + kj) * ho + r) * wo + s) * N + n];
            else sum += col[(((((ptrdiff_t)n * C + c) * kh + ki) * kw + kj) * ho + r) * wo + s];
          }
        }
        img = sum;"""),
}


def run(name, *args, **kwargs):
    """The fused version of the op function ``name`` on CuPy arguments, or ``NotImplemented``
    (switched off, no fused version, or a case it does not take): called by
    :func:`minihart.backend.fusable`."""
    fn = FUSED.get(name) if _ON[0] else None
    return NotImplemented if fn is None else fn(*args, **kwargs)


@contextlib.contextmanager
def plain():
    """Run the plain array code inside the block, also on CuPy (the tests' reference)."""
    old, _ON[0] = _ON[0], False
    try:
        yield
    finally:
        _ON[0] = old


@functools.cache
def kernel(name):
    """The compiled-on-first-use ``cupy.ElementwiseKernel`` of :data:`SPECS` ``name``."""
    import cupy  # noqa: PLC0415  (only reached with CuPy arrays)
    return cupy.ElementwiseKernel(*SPECS[name], name=f"minihart_{name}", preamble=PREAMBLE)


def _t(like, v):
    """A scalar in the dtype of ``like`` (the kernels' ``T``), arrays pass through."""
    return v if hasattr(v, "shape") else like.dtype.type(v)


def _ints(*values):
    return tuple(np.int32(v) for v in values)


# ----------------------------------------------------------------------------- activations
def relu_backward(dout, cache):
    return kernel("relu_backward")(dout, cache.x)


def elu(x, alpha=1.0):
    return kernel("elu")(x, _t(x, alpha))


def elu_backward(dout, cache, alpha=1.0):
    return kernel("elu_backward")(dout, cache.x, _t(dout, alpha))


def sigmoid(x):
    return kernel("sigmoid")(x)


def sigmoid_backward(dout, cache):
    return kernel("sigmoid_backward")(dout, cache.y)


def tanh_backward(dout, cache):
    return kernel("tanh_backward")(dout, cache.y)


# ----------------------------------------------------------------------------- lstm
def lstm_gates(a, h_prev, c_prev, m_h, m_c):
    return kernel("lstm_gates")(a, c_prev, h_prev, _t(a, m_h), _t(a, m_c), np.int32(c_prev.shape[1]))


def lstm_gates_backward(dh, dc, cache):
    import cupy  # noqa: PLC0415
    B, H = dh.shape
    out = (cupy.empty((B, 4 * H), dh.dtype), cupy.empty_like(dh), cupy.empty_like(dh))
    return kernel("lstm_gates_backward")(dh, dc, cache.i, cache.f, cache.o, cache.g, cache.tc, cache.c_prev,
                                         _t(dh, cache.m_h), _t(dh, cache.m_c), np.int32(H), *out)


# ----------------------------------------------------------------------------- conv
def _fits(size, k, stride, pad):
    ok = all(isinstance(v, (int, np.integer)) for v in (k, stride, pad)) and stride >= 1 and pad >= 0
    return ok and size + 2 * pad >= k and (size + 2 * pad - k) % stride == 0


def im2col(x, kh, kw, stride=1, pad=0, batch_inner=False):
    import cupy  # noqa: PLC0415
    if x.ndim != 4 or not (_fits(x.shape[2], kh, stride, pad) and _fits(x.shape[3], kw, stride, pad)):
        return NotImplemented  # the plain function names what does not fit
    N, C, H, W = x.shape
    ho, wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    col = cupy.empty((C, kh, kw, ho, wo, N) if batch_inner else (N, C, kh, kw, ho, wo), x.dtype)
    return kernel("im2col")(x, *_ints(N, C, H, W, kh, kw, ho, wo, stride, pad), np.bool_(batch_inner), col)


def col2im(cols, x_shape, stride=1, pad=0, batch_inner=False):
    import cupy  # noqa: PLC0415
    N, C, H, W = x_shape
    kh, kw, ho, wo = cols.shape[1:5] if batch_inner else cols.shape[2:]
    img = cupy.empty(tuple(x_shape), cols.dtype)
    return kernel("col2im")(cols, *_ints(N, C, H, W, kh, kw, ho, wo, stride, pad), np.bool_(batch_inner), img)


def lrn(x, size, alpha, beta, k):
    import cupy  # noqa: PLC0415
    out = tuple(cupy.empty_like(x) for _ in range(3))
    rest = int(np.prod(x.shape[2:]))
    return kernel("lrn")(x, *_ints(x.shape[1], rest, size // 2, (size - 1) // 2), _t(x, alpha / size), _t(x, k),
                         _t(x, beta), *out)


def lrn_backward(dout, cache):
    x, s, s_pow, size, alpha, beta = cache
    t = kernel("lrn_t")(dout, s_pow, x, s)
    rest = int(np.prod(x.shape[2:]))
    return kernel("lrn_backward")(t, dout, x, s_pow, *_ints(x.shape[1], rest, (size - 1) // 2, size // 2),
                                  _t(x, 2 * alpha * beta / size))


# ----------------------------------------------------------------------------- attention
def filterbank(mu, gamma, n_out, n_in, coeffs, sigma_min, fit_max, eps):
    import cupy  # noqa: PLC0415
    if len(coeffs) != 5 or mu.dtype != gamma.dtype:  # the kernel's polynomial has degree 4
        return NotImplemented
    B, dtype = mu.shape[0], mu.dtype
    A, z = cupy.empty((B, n_out, n_in), dtype), cupy.empty((B, n_out, n_in), dtype)
    sigma, dsigma = cupy.empty(B, dtype), cupy.empty(B, dtype)
    kernel("filterbank")(mu, gamma, *(_t(mu, c) for c in coeffs), *_ints(n_out, n_in), _t(mu, sigma_min),
                         _t(mu, fit_max), _t(mu, eps), cupy.empty((B, n_out), dtype), A, z, sigma, dsigma)
    return A, z, sigma, dsigma


def filterbank_backward(dA, cache):
    import cupy  # noqa: PLC0415
    A, z, sigma, dsigma = cache
    # per row, sum_j q z and sum_j q z^2 with q = A (dA - sum_j dA A); the rest as the plain code
    qz, qzz = kernel("filterbank_backward")(dA, A, z, np.int32(A.shape[2]),
                                            cupy.empty(A.shape[:2], A.dtype), cupy.empty(A.shape[:2], A.dtype))
    dcentre = qz / sigma[:, None]
    dsig = qzz.sum(axis=1) / sigma
    r = cupy.arange(A.shape[1], dtype=dcentre.dtype)
    return dcentre.sum(axis=1), dcentre @ r + dsig * dsigma


# ----------------------------------------------------------------------------- losses, optimisers
def _box_loss(name, a, b, w, *scalars):
    import cupy  # noqa: PLC0415
    da = cupy.empty(a.shape, a.dtype)
    loss = cupy.empty(w.shape, a.dtype)
    return kernel(name)(a, b, w, *(_t(a, s) for s in scalars), loss, da)


def iou_nll(pred, target, w, eps):
    return _box_loss("iou_nll", pred, target, w, eps)


def attention_nll(att, target, w, eps, image_hw):
    return _box_loss("attention_nll", att, target, w, eps, *image_hw)


def rmsprop_update(g, ms, mom, p, rho, momentum, lr, eps):
    kernel("rmsprop")(g, *(_t(g, v) for v in (rho, 1 - rho, momentum, lr, eps)), ms, mom, p)


def adam_update(g, m, v, p, beta1, beta2, lr_t, eps):
    kernel("adam")(g, *(_t(g, s) for s in (beta1, 1 - beta1, beta2, 1 - beta2, lr_t, eps)), m, v, p)


FUSED = {f.__name__: f for f in (
    relu_backward, elu, elu_backward, sigmoid, sigmoid_backward, tanh_backward, lstm_gates, lstm_gates_backward,
    im2col, col2im, lrn, lrn_backward, filterbank, filterbank_backward, iou_nll, attention_nll, rmsprop_update,
    adam_update)}
