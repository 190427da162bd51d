"""A virtual camera that pans and zooms over one still frame: the windows of first-frame adaptation
(:mod:`minihart.adapt`) and the still windows of training (``--stills``, :class:`minihart.data.sot.SOTSet`)."""
from __future__ import annotations

import numpy as np


def camera_path(box, hw, rng, batch, length, shift=0.15, zoom=0.03, max_scale=1.25, damping=0.7):
    """Where a virtual camera looks in each frame of ``batch`` windows of ``length`` frames.

    The camera starts at a random point of the middle half of the frame, at a random scale (frame
    pixels per output pixel, ``1/max_scale`` to ``max_scale``), and moves with a damped random
    velocity: each frame ``v = damping * v + N(0, shift * box size)``, and the log scale alike with
    ``zoom``. Args: ``box`` ``[y, x, h, w]`` (pixels), ``hw`` the frame's ``(H, W)``. Returns
    ``rows (batch, length, H)`` and ``cols (batch, length, W)``, the source pixel of every output
    row and column (nearest, clamped to the frame's edge), the box in every output frame
    ``(batch, length, 4)``, and presence ``(batch, length)``: 1 where the box's centre is in view.
    """
    H, W = hw
    box = np.asarray(box, np.float64)
    centre, size = box[:2] + box[2:] / 2, box[2:]
    half = np.array([H, W], np.float64) / 2
    rows = np.empty((batch, length, H), np.intp)
    cols = np.empty((batch, length, W), np.intp)
    boxes = np.empty((batch, length, 4), np.float32)
    for b in range(batch):
        cam = half + rng.uniform(-0.25, 0.25, 2) * [H, W]
        log_s = rng.uniform(-np.log(max_scale), np.log(max_scale))
        vel, vel_s = rng.normal(0, shift, 2) * size, rng.normal(0, zoom)
        for t in range(length):
            if t:
                vel = damping * vel + rng.normal(0, shift, 2) * size
                vel_s = damping * vel_s + rng.normal(0, zoom)
                cam, log_s = cam + vel, log_s + vel_s
            s = np.exp(log_s)
            rows[b, t] = np.clip(np.round(cam[0] + (np.arange(H) + 0.5 - half[0]) * s - 0.5), 0, H - 1)
            cols[b, t] = np.clip(np.round(cam[1] + (np.arange(W) + 0.5 - half[1]) * s - 0.5), 0, W - 1)
            c = (centre - cam) / s + half
            boxes[b, t] = np.concatenate([c - size / s / 2, size / s])
    c = boxes[..., :2] + boxes[..., 2:] / 2
    presence = ((c >= 0) & (c < [H, W])).all(-1).astype(np.float32)
    return rows, cols, boxes, presence
