"""First-frame adaptation: before tracking a video, a few training steps on windows made from its
first frame alone, so that the model learns this target's look against this scene.

The first frame and its box are all a tracker is told about the target. Online trackers learn from
them (correlation filters fit their filter to it; MDNet and ATOM train their last layers on crops of
it); HART, trained offline, only reads them through its first glimpse and appearance vector
(paper, eqs. 3 and 6). Here the whole model takes ``steps`` Adam steps of the training loss (eq. 9, with
the recipe's lost frames left out of the box terms) on ``batch`` windows of ``length`` frames in
which a virtual camera pans and zooms over the first frame: the target moves as it would in a
video, with the scene around it that it will be tracked in. Each window starts from an imprecise
box, as training's windows do (``--box-jitter``): adapted from the exact box, the tracker lost on
new scenes (the thirty-fifth round: unseen 0.214 against 0.261 over nine checkpoints, val level).
The model and its loss are the paper's; only the parameters differ from one video to the next
(README, "first-frame adaptation").

Which windows the adaptation draws changes where a tracker loses its target, sequence by sequence, so
:class:`AdaptedTracker` adapts ``draws`` copies, each from its own seed, lets each track on its own, and
reports their median box (the thirty-sixth round: unseen 0.314 against 0.275 for its three copies alone).
"""
from __future__ import annotations

import numpy as np

from minihart.backend import asnumpy, get_array_module
from minihart.data.camera import camera_path
from minihart.mask_lost import forward_without_lost
from minihart.model import backward, sample_noise
from minihart.model.tracker import Tracker
from minihart.optim import Adam, clip_by_global_norm

# the defaults of track, evaluate and HARTTracker (README, "first-frame adaptation": chosen on val)
ADAPT_STEPS = 50
ADAPT_LR = 1e-4
ADAPT_LENGTH = 16
# the first box of every window is imprecise, as in training (``--box-jitter 1.6`` of the ``real`` preset)
ADAPT_JITTER = 1.6
# copies adapted from seeds 0, 1, 2, tracking on their own; the box is their median (AdaptedTracker)
ADAPT_DRAWS = 3


def jitter_first_boxes(boxes, rng, jitter, hw):
    """``boxes (batch, length, 4)`` with each window's first box (where the tracker starts) made
    imprecise as training makes it (``--box-jitter``): its height and width scaled by factors in
    ``[1/jitter, jitter]``, its centre moved by up to ``(jitter - 1) / 4`` of its size, then kept
    inside the ``hw`` frame. The later boxes, the targets, are untouched."""
    boxes, size_max = boxes.copy(), np.array(hw, np.float64)
    for b in range(len(boxes)):
        first = boxes[b, 0].astype(np.float64)
        size = np.minimum(first[2:] * np.exp(rng.uniform(-np.log(jitter), np.log(jitter), 2)), size_max)
        centre = first[:2] + first[2:] / 2 + rng.uniform(-0.5, 0.5, 2) * (jitter - 1) * first[2:] / 2
        centre = np.clip(centre, size / 2, size_max - size / 2)
        boxes[b, 0] = np.concatenate([centre - size / 2, size])
    return boxes


def still_windows(frame, box, rng, batch=8, length=ADAPT_LENGTH, jitter=1.0, **camera):
    """Training windows made from one frame: ``frame`` ``(C, H, W)`` float (any device), ``box``
    ``[y, x, h, w]`` pixels. Returns ``frames (batch, length, C, H, W)`` on ``frame``'s device, and
    ``boxes (batch, length, 4)`` and ``presence (batch, length)`` there too (:func:`camera_path`,
    whose keywords ``camera`` passes on); ``jitter > 1``: each window starts from an imprecise box
    (:func:`jitter_first_boxes`)."""
    xp = get_array_module(frame)
    rows, cols, boxes, presence = camera_path(box, frame.shape[1:], rng, batch, length, **camera)
    if jitter > 1:
        boxes = jitter_first_boxes(boxes, rng, jitter, frame.shape[1:])
    x = frame[:, xp.asarray(rows)[..., :, None], xp.asarray(cols)[..., None, :]]  # (C, batch, length, H, W)
    return xp.ascontiguousarray(x.transpose(1, 2, 0, 3, 4)), xp.asarray(boxes), xp.asarray(presence)


def check_steps(steps, where="adapt: steps"):
    """``ValueError`` naming ``where`` unless ``steps`` is a whole number >= 0 (not a bool)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"{where} must be a whole number >= 0, got {steps!r}")


def adapt(params, cfg, frame, box, steps=ADAPT_STEPS, lr=ADAPT_LR, seed=0, batch=8, length=ADAPT_LENGTH, clip=0.3,
          jitter=ADAPT_JITTER):
    """A copy of ``params`` trained for ``steps`` Adam steps (learning rate ``lr``, gradients
    clipped to a global norm ``clip``) on :func:`still_windows` of ``frame`` ``(C, H, W)`` float
    in ``[0, 1]`` at the model's frame size, from ``box`` ``[y, x, h, w]`` (pixels), each window
    starting from an imprecise box (``jitter``, :func:`jitter_first_boxes`; 1: the box itself). Dropout and
    zoneout are on, as in training; ``seed`` draws the windows and the masks (on the host, for
    every device alike), so a tracker that adapts is deterministic. ``steps=0`` returns ``params`` unchanged."""
    check_steps(steps)
    if not lr > 0:
        raise ValueError(f"adapt: lr must be > 0, got {lr!r}")
    if not jitter >= 1:
        raise ValueError(f"adapt: jitter must be >= 1, got {jitter!r}")
    if frame.ndim != 3 or frame.shape[0] != cfg.channels or tuple(frame.shape[1:]) != tuple(cfg.image_hw):
        raise ValueError(f"adapt: frame must be (C={cfg.channels}, H, W={tuple(cfg.image_hw)}) for preset "
                         f"{cfg.name!r}, got {tuple(frame.shape)}")
    if steps == 0:
        return params
    xp = get_array_module(frame)
    rng = np.random.default_rng(seed)
    params = {k: v.copy() for k, v in params.items()}
    opt = Adam(lr=lr)
    for _ in range(steps):
        frames, boxes, presence = still_windows(frame.astype(params["feat.W"].dtype), box, rng, batch, length, jitter)
        # drawn on the host and moved, so that a GPU adapts (and tracks) as the CPU does
        noise = [{k: xp.asarray(v) for k, v in step.items()} for step in sample_noise(cfg, rng, batch, length)]
        _, cache = forward_without_lost(params, cfg, frames, boxes, presence, noise, map_lost=True)
        grads, _ = clip_by_global_norm(backward(cache), clip)
        opt.step(params, grads)
    return params


def check_draws(draws, where="draws"):
    """``ValueError`` naming ``where`` unless ``draws`` is a whole number >= 1 (not a bool)."""
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"{where} must be a whole number >= 1, got {draws!r}")


def median_box(boxes):
    """The median of boxes ``(D, ..., 4)`` ``[y, x, h, w]`` over axis 0, taken of their centres and of
    their sides' logarithms (so that a box twice too large and one half as large balance)."""
    boxes = np.asarray(boxes, np.float64)
    centre = np.median(boxes[..., :2] + boxes[..., 2:] / 2, axis=0)
    side = np.exp(np.median(np.log(np.maximum(boxes[..., 2:], 1e-6)), axis=0))
    return np.concatenate([centre - side / 2, side], axis=-1)


class AdaptedTracker:
    """One video tracked by ``draws`` copies of the model, each adapted to the first frame with its own
    seed (:func:`adapt`, seeds ``0 .. draws - 1``) and tracking on its own; each frame's box is their
    :func:`median_box`. ``steps=0``: no adaptation, one copy (the model as it is). ``last``: the first
    copy's attention window, glimpse and location map (:class:`minihart.model.tracker.Tracker`)."""

    def __init__(self, params, cfg, steps=ADAPT_STEPS, draws=ADAPT_DRAWS):
        check_steps(steps)
        check_draws(draws, "adapt: draws")
        self.params, self.cfg, self.steps, self.draws = params, cfg, steps, draws if steps else 1
        self.copies = []

    def init(self, frame, box):
        """Adapt and start on ``box`` ``[y, x, h, w]`` (pixels) of ``frame`` ``(C, H, W)`` float in ``[0, 1]``."""
        box = np.asarray(box, np.float32)
        self.copies = [Tracker(adapt(self.params, self.cfg, frame, box, self.steps, seed=d), self.cfg).init(frame, box)
                       for d in range(self.draws)]
        return self

    def step(self, frame):
        """The box ``(4,)`` of the next frame ``(C, H, W)``, pixels (float64, on the host)."""
        if not self.copies:
            raise RuntimeError("AdaptedTracker.step called before AdaptedTracker.init(frame, box)")
        return median_box([asnumpy(c.step(frame)) for c in self.copies])

    @property
    def last(self):
        return self.copies[0].last
