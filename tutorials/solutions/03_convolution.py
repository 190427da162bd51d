"""Solutions to the exercises of notebook 03 (convolution from scratch).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# average pooling is the mean of each window's column; its adjoint spreads dout / size^2 back
# over the window with col2im
from typing import NamedTuple

import numpy as np

from minihart.nn.conv import col2im, im2col


class AvgPoolCache(NamedTuple):
    x_shape: tuple
    size: int
    stride: int


def avgpool_forward(x, size, stride):
    cols = im2col(x, size, size, stride, 0)  # (N, C, size, size, Ho, Wo)
    return cols.mean(axis=(2, 3)), AvgPoolCache(x.shape, size, stride)


def avgpool_backward(dout, cache):
    n, c, ho, wo = dout.shape
    k = cache.size
    dcols = np.broadcast_to(dout[:, :, None, None] / (k * k), (n, c, k, k, ho, wo))
    return col2im(np.ascontiguousarray(dcols), cache.x_shape, cache.stride, 0)


# %% Exercise 2
# out[n, f, r, q] = b[f] + sum_{c,i,j} w[f, c, i, j] xpad[n, c, r s + i, q s + j], so
# dw[f, c, i, j] = sum_{n, r, q} dout[n, f, r, q] xpad[n, c, r s + i, q s + j]
import numpy as np


def conv2d_dw_naive(x, dout, w_shape, stride, pad):
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, C, kh, kw = w_shape
    _, _, Ho, Wo = dout.shape
    dw = np.zeros(w_shape)
    for f in range(F):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    patch = xpad[:, c, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
                    dw[f, c, i, j] = np.sum(dout[:, f] * patch)
    return dw


# %% Exercise 3
# a window of `size` fits with `stride` when stride divides H + 2 pad - size (and the window fits)
import numpy as np

from minihart.nn.conv import maxpool2d_forward


def pool_output_size(H, size, stride, pad):
    if H + 2 * pad < size or (H + 2 * pad - size) % stride:
        return None
    return (H + 2 * pad - size) // stride + 1


pads_for_56 = [pad for pad in (0, 1) if pool_output_size(56, 3, 2, pad) is not None]
try:
    maxpool2d_forward(np.zeros((1, 1, 56, 56)), 3, 2, 0)
except ValueError as exc:
    print("ValueError:", exc)
print("paddings that fit 56 x 56:", pads_for_56, "- 56 + 2 pad - 3 is odd for every pad. AlexNet's maps are odd:",
      [55, pool_output_size(55, 3, 2, 0), pool_output_size(27, 3, 2, 0)])
