"""Solutions to the exercises of notebook 03 (convolution from scratch).

Run ``python tutorials/solutions/03_convolution.py`` from the repository root, or
``%load solutions/03_convolution.py`` in a notebook cell.
"""
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

import numpy as np

from minihart.gradcheck import check, rel_error
from minihart.nn.conv import col2im, conv2d_backward, conv2d_forward, im2col, maxpool2d_forward


# Exercise 1: average pooling = the mean of each window's column; its adjoint spreads
# dout / size^2 back over the window with col2im.
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


# Exercise 2: out[n, f, r, q] = b[f] + sum_{c,i,j} w[f, c, i, j] xpad[n, c, r s + i, q s + j], so
# dw[f, c, i, j] = sum_{n, r, q} dout[n, f, r, q] xpad[n, c, r s + i, q s + j].
def conv2d_dw_naive(x, dout, w_shape, stride, pad):
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, C, kh, kw = w_shape
    N, _, Ho, Wo = dout.shape
    dw = np.zeros(w_shape)
    for f in range(F):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    patch = xpad[:, c, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
                    dw[f, c, i, j] = np.sum(dout[:, f] * patch)
    return dw


def main():
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 9))
    print("exercise 1, average pooling:", check(lambda x: avgpool_forward(x, 3, 2), avgpool_backward, {"x": x}))

    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 7, 5)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
    out, cache = conv2d_forward(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape)
    print("exercise 2, dw by loops vs conv2d_backward:",
          rel_error(conv2d_dw_naive(x, dout, w.shape, 2, 1), conv2d_backward(dout, cache)[1]))

    m = np.zeros((1, 1, 56, 56))
    for pad in (0, 1):
        try:
            maxpool2d_forward(m, 3, 2, pad)
            print(f"exercise 3: pad {pad} works")
        except ValueError as exc:
            print(f"exercise 3: pad {pad}: {exc}")
    print("   H + 2 pad - 3 must be even, i.e. H odd: no padding <= 1 fits 56. AlexNet's 55 -> 27 -> 13 are")
    print("   all odd: (55 - 3) / 2 + 1 = 27, (27 - 3) / 2 + 1 = 13. minihart's KITTI V1 skips the pools.")


if __name__ == "__main__":
    main()
