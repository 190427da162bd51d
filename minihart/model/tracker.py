"""Frame-by-frame inference: keep the recurrent state and track one video as it streams.

    tracker = Tracker(params, cfg)
    tracker.init(frame0, box0)          # frame (C, H, W) float32 in [0, 1], box [y, x, h, w]
    for frame in frames[1:]:
        box = tracker.step(frame)       # the box in this frame (eq. 8), pixels

Batched tracking works the same with frames (B, C, H, W) and boxes (B, 4).
"""
from __future__ import annotations

from minihart.backend import get_array_module
from minihart.boxes import validate_boxes
from minihart.model.hart import init_forward, step_forward
from minihart.nn.activations import sigmoid


class Tracker:
    """Evaluation-mode HART (no dropout, zoneout by its expectation) with state kept between
    calls. ``last`` holds the latest step's attention box, glimpse and location map."""

    def __init__(self, params: dict, cfg):
        self.p, self.cfg = params, cfg
        self.state, self.last = None, {}

    def _batch(self, frame):
        xp = get_array_module(frame)
        frame = xp.asarray(frame)
        if frame.dtype.kind != "f":  # uint8 video would be tracked at 255 times the scale
            raise ValueError(f"frame must be floating point in [0, 1], got {frame.dtype}; convert "
                             "uint8 video frames with minihart.data.batching.to_float_frames")
        frame = frame.astype(self.p["feat.W"].dtype, copy=False)
        frame, single = (frame[None], True) if frame.ndim == 3 else (frame, False)
        if frame.ndim != 4 or frame.shape[1] != self.cfg.channels:
            raise ValueError(f"frame must be (C={self.cfg.channels}, H, W) or (B, C, H, W), got "
                             f"{tuple(frame.shape if not single else frame.shape[1:])}")
        return frame, single

    def init(self, frame, box):
        """Start tracking the object in ``box`` ([y, x, h, w] pixels, or (B, 4)) of ``frame``."""
        frame, single = self._batch(frame)
        xp = get_array_module(frame)
        box = xp.asarray(box, dtype=frame.dtype)
        if box.shape != (len(frame), 4) and not (len(frame) == 1 and box.shape == (4,)):
            raise ValueError(f"box must be [y, x, h, w] (one frame) or (B, 4) for B = {len(frame)} frames, "
                             f"got shape {tuple(box.shape)}")
        box = box.reshape(-1, 4)
        validate_boxes(box, "box", frame.shape[2:])
        (a, h, c), _ = init_forward(self.p, self.cfg, frame, box)
        self.state, self.single, self.hw = (a, h, c, h), single, frame.shape[2:]
        self.scale = xp.asarray([*self.hw] * 2, frame.dtype)  # made once: a copy in step could wait for the GPU
        self.step(frame)  # as in training, the first step sees the first frame again
        return self

    def step(self, frame):
        """Process the next frame; returns the predicted box ``(4,)`` or ``(B, 4)`` in pixels."""
        if self.state is None:
            raise RuntimeError("Tracker.step called before Tracker.init(frame, box)")
        frame, _ = self._batch(frame)
        if tuple(frame.shape[2:]) != tuple(self.hw):
            raise ValueError(f"frame size {tuple(frame.shape[2:])} differs from the first frame's {tuple(self.hw)}")
        a, h, c, alpha = self.state
        out, _ = step_forward(self.p, self.cfg, frame, a, h, c, alpha, None)
        self.last = dict(att=a * self.scale, glimpse=out.g, map=sigmoid(out.logits))
        self.state = (out.a_next, out.h, out.c, out.h)
        box = out.pred * self.scale
        return box[0] if self.single else box
