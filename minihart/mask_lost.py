"""``--mask-lost`` and ``--map-lost``: the training loss with the frames where the tracker has lost the
object left out of the box terms (README, "Real footage": the recipe). Training uses it, and so does
first-frame adaptation (:mod:`minihart.adapt`), which trains with the recipe's loss."""
from __future__ import annotations

from minihart.backend import get_array_module
from minihart.boxes import iou
from minihart.model import hart


def forward_without_lost(params, cfg, frames, boxes, presence, noise, map_lost=False, state=None):
    """``--mask-lost``: :func:`minihart.model.forward`, with the frames where the window has lost the
    object (disjoint from its context window) or the box has (disjoint from it) left out of the loss.
    Those frames give the box losses ``-log(eps)`` with no gradient, and the location map the target
    "nothing here"; their large values lower the learned weight of eq. (9) (``lambda = 1 / L``), so
    every other frame teaches less, more objects are lost, and a run collapses. The returned ``iou``
    and ``presence`` still score every visible frame. ``map_lost`` (``--map-lost``): the location map's
    term keeps the lost frames (its target there: nothing in the window), the box terms still leave them out."""
    xp = get_array_module(frames)
    seq, seq_cache = hart.sequence_forward(params, cfg, frames, boxes[:, 0], noise, state)
    pres = presence.astype(frames.dtype)
    if state is None:
        pres[:, 0] = 0  # as forward: the first box is given
    target = xp.where(pres[..., None] > 0, boxes, xp.asarray([0, 0, 1, 1], frames.dtype))
    found = (iou(seq.att, hart.context_window(target, cfg.init_window_scale)) > 0) & (iou(seq.pred, target) > 0)
    (loss, terms), loss_cache = hart.loss_forward(params, cfg, seq, target, pres * found, frames.shape[3:],
                                                  pres if map_lost else None)
    out = dict(loss=loss, terms=terms, iou=iou(seq.pred, target) * pres, presence=pres)
    return out, hart.Cache(cfg, params, seq_cache, loss_cache)
