"""Pictures for notebooks and run folders: images with boxes, glimpses.

Figures are made with ``matplotlib.figure.Figure`` directly, not ``pyplot``: no display or
backend is needed (``fig.savefig("x.png")`` renders with Agg), nothing global is left open,
and a returned figure still shows in Jupyter. matplotlib is imported inside the functions,
so ``import minihart`` never needs it.

Coordinates follow :mod:`minihart.boxes`: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``;
:func:`show_image` sets the axes' extent to match, so :func:`draw_box` draws boxes
``[y, x, h, w]`` exactly where they are.
"""
from __future__ import annotations

import numpy as np

from minihart.backend import asnumpy


def new_figure(**kwargs):
    """A ``matplotlib.figure.Figure(**kwargs)`` that needs no display (save it with ``savefig``)."""
    from matplotlib.figure import Figure  # noqa: PLC0415
    return Figure(**kwargs)


def show_image(ax, image, title=None):
    """Draw a float image ``(C, H, W)`` with C in (1, 3), or ``(H, W)``, min-max scaled to [0, 1].

    The extent is ``(0, W, H, 0)``: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``.
    """
    im = asnumpy(image).astype(np.float64)
    if im.ndim == 3:
        if im.shape[0] not in (1, 3):
            raise ValueError(f"show_image: image must be (C, H, W) with C in (1, 3) or (H, W), got {im.shape}")
        im = im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0)
    elif im.ndim != 2:
        raise ValueError(f"show_image: image must be (C, H, W) or (H, W), got {im.shape}")
    lo, hi = im.min(), im.max()
    im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
    H, W = im.shape[:2]
    ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1,
              extent=(0, W, H, 0), interpolation="nearest")
    if title:
        ax.set_title(title)
    return ax


def draw_box(ax, box, color="r", label=None):
    """Draw a box ``[y, x, h, w]`` (pixels) as a rectangle outline, with an optional label."""
    from matplotlib.patches import Rectangle  # noqa: PLC0415
    y, x, h, w = (float(v) for v in asnumpy(box).reshape(4))
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.5))
    if label:
        ax.text(x, y, label, color=color, fontsize=8, va="bottom")
    return ax


def show_glimpse(image, box, glimpse, title=None):
    """The image with the attention window drawn on it, and the glimpse beside it (eq. 2).

    Args: image ``(C, H, W)`` or ``(H, W)``; box ``(4,)`` the window ``[y, x, h, w]`` in pixels
      (``attention_to_box(a, (H, W))``); glimpse ``(C, h, w)`` or ``(h, w)``; title optional.
    Returns: the ``Figure`` (``fig.savefig(path)`` writes a PNG).
    """
    fig = new_figure(figsize=(8, 4), layout="constrained")
    ax_img, ax_g = fig.subplots(1, 2, width_ratios=[2, 1])
    show_image(ax_img, image, "image and attention window")
    draw_box(ax_img, box, "r", "attention")
    show_image(ax_g, glimpse, "glimpse")
    if title:
        fig.suptitle(title)
    return fig
