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
    y, x, h, w = (float(v) for v in np.asarray(asnumpy(box), np.float64).reshape(4))  # a list too
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


# ----------------------------------------------------------------------------- run folders
COLOURS = {"truth": (40, 220, 40), "pred": (230, 40, 40), "att": (60, 120, 255)}


def to_rgb8(image, size=None, vrange=None):
    """Float ``(C, H, W)`` or ``(H, W)`` -> uint8 ``(H, W, 3)``, scaled from ``vrange``
    (default: min-max); optionally enlarged by an integer ``size`` factor (nearest)."""
    im = asnumpy(image).astype(np.float32)
    im = im if im.ndim == 2 else (im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))
    lo, hi = vrange or (float(im.min()), float(im.max()))
    im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
    im = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im
    if size and size > 1:
        im = im.repeat(size, axis=0).repeat(size, axis=1)
    return (im * 255 + 0.5).astype(np.uint8)


def draw_rect(img, box, colour, width=1):
    """Draw a box ``[y, x, h, w]`` outline into an RGB uint8 image ``(H, W, 3)`` in place
    (clipped to the image)."""
    H, W = img.shape[:2]
    y0, x0, h, w = (float(v) for v in box)
    y1, x1 = y0 + h, x0 + w
    for k in range(width):
        for yy in (int(round(y0)) + k, int(round(y1)) - 1 - k):
            if 0 <= yy < H:
                img[yy, max(0, int(round(x0))):max(0, min(W, int(round(x1))))] = colour
        for xx in (int(round(x0)) + k, int(round(x1)) - 1 - k):
            if 0 <= xx < W:
                img[max(0, int(round(y0))):max(0, min(H, int(round(y1)))), xx] = colour
    return img


def tracking_frame(frame, boxes: dict, glimpse=None, loc_map=None, scale=2):
    """One video frame like the paper's Figures 1 and 4: the frame with boxes (``truth`` green,
    ``pred`` red, ``att`` blue) and, beside it, the glimpse and the location map."""
    img = to_rgb8(frame, scale)
    for name, box in boxes.items():
        if box is not None:
            draw_rect(img, np.asarray(asnumpy(box), np.float64) * scale, COLOURS[name], width=max(1, scale))
    panels = [img]
    H = img.shape[0]
    for extra in (glimpse, loc_map):
        if extra is not None:
            e = asnumpy(extra)
            k = max(1, H // 2 // e.shape[-2])
            panel = np.zeros((H, e.shape[-1] * k, 3), np.uint8)
            small = to_rgb8(e, k, None if extra is glimpse else (0.0, 1.0))
            panel[:small.shape[0]] = small[:H]
            panels.append(panel)
    return np.concatenate(panels, axis=1)


def write_video(path, frames, fps=8):
    """Write uint8 RGB frames as a GIF (``.gif``) or MP4 (``.mp4``, needs imageio-ffmpeg)."""
    import imageio.v2 as imageio  # noqa: PLC0415
    if str(path).endswith(".gif"):
        imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path


def plot_history(history, path):
    """Loss terms, learned loss weights and IoU over training steps (a metrics-CSV picture)."""
    fig = new_figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    steps = [r["step"] for r in history]
    for key in ("tracking", "attention", "appearance", "l2"):
        axes[0].plot(steps, [r[key] for r in history], label=key)
    axes[0].set_yscale("log")
    axes[0].set_title("loss terms (eqs. 10-12, L2)")
    for key in ("lambda_tracking", "lambda_attention", "lambda_appearance"):
        axes[1].plot(steps, [r[key] for r in history], label=key[7:])
    axes[1].set_title("learned loss weights (Kendall et al.)")
    axes[2].plot(steps, [r["train_iou"] for r in history], label="train")
    axes[2].plot(steps, [r["test_iou"] for r in history], label="held-out")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("average IoU")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    return path


def plot_evaluation(result, path, label="minihart"):
    """IoU over time steps (the paper's Figure 5) and the success plot with its AUC."""
    fig = new_figure(figsize=(9, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    t = np.arange(1, len(result["iou_per_step"]) + 1)
    ax1.plot(t, result["iou_per_step"], label=label)
    ax1.set(xlabel="time step", ylabel="IoU", ylim=(0, 1), title="IoU over time (Figure 5)")
    ax2.plot(result["thresholds"], result["success"], label=f"{label} (AUC {result['auc']:.3f})")
    ax2.set(xlabel="IoU threshold", ylabel="fraction of frames", ylim=(0, 1), title="success plot")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    return path


def plot_success_precision(curves: dict, path):
    """The benchmarks' two plots of one-pass evaluation: success (fraction of frames with IoU above
    each threshold; legend: AUC) and precision (fraction within each centre distance in pixels;
    legend: precision at 20 px). ``curves``: ``{label: mean_scores(...)}`` of
    :mod:`minihart.scoring`, one line per label."""
    from minihart.scoring import IOU_THRESHOLDS, PIXEL_THRESHOLDS  # noqa: PLC0415
    fig = new_figure(figsize=(9, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for label, r in curves.items():
        ax1.plot(IOU_THRESHOLDS, r["success"], label=f"{label} [{r['auc']:.3f}]")
        ax2.plot(PIXEL_THRESHOLDS, r["precision"], label=f"{label} [{r['precision20']:.3f}]")
    ax1.set(xlabel="overlap threshold", ylabel="success rate", xlim=(0, 1), ylim=(0, 1),
            title="success plot of OPE (AUC)")
    ax2.set(xlabel="location error threshold (px)", ylabel="precision", xlim=(0, 50), ylim=(0, 1),
            title="precision plot of OPE (at 20 px)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=90)
    return path
