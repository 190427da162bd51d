"""Whole-sequence tracking and the measures of the single-object tracking benchmarks (OTB, as the
got10k toolkit and pytracking compute them).

A tracker starts from the first box and runs to the last frame on its own (one-pass evaluation,
OPE). Per sequence, over the frames where the target is visible (the first frame included, its
box given, as the toolkits do; absent frames are not scored):

* **average IoU** (GOT-10k's *average overlap*);
* the **success curve**: the fraction of frames whose IoU exceeds each of 21 thresholds
  0, 0.05, ..., 1, and its mean, the **success AUC**;
* the **precision curve**: the fraction of frames whose centre error is at most 0..50 pixels of
  the original images, and **precision at 20 px**;
* **fps**, frames per second of tracking that one sequence alone.

Benchmark figures average the per-sequence values (and curves) over sequences.
"""
from __future__ import annotations

import time

import numpy as np

from minihart.adapt import ADAPT_DRAWS, ADAPT_STEPS, AdaptedTracker
from minihart.backend import asnumpy
from minihart.boxes import iou
from minihart.data.batching import to_float_frames
from minihart.model.hart import init_forward, step_forward

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PIXEL_THRESHOLDS = np.arange(51)
# the weight of the first box's size in every reported box (README, "the size prior"): the trained
# model's own size is worse than a constant on scenes it was not trained on
SIZE_PRIOR = 0.5


def anchor_size(boxes, box0, weight=SIZE_PRIOR):
    """Boxes ``(..., 4)`` ``[y, x, h, w]`` with their centres kept and each side the weighted
    geometric mean of its own and the first box's: ``h^(1 - weight) * h0^weight`` (and ``w``).
    ``weight`` 0 reports the model's boxes, 1 keeps the first box's size. ``box0``: ``(4,)`` or
    one box per row of ``boxes``. This is the tracker's prior that a target keeps its size; it
    does not feed back into the model (the next attention window is the model's own)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"size prior must be in [0, 1], got {weight}")
    boxes = np.asarray(boxes)
    if weight == 0.0:
        return boxes
    box0 = np.asarray(box0, np.float64)
    side = np.exp((1.0 - weight) * np.log(np.maximum(boxes[..., 2:], 1e-6)) + weight * np.log(box0[..., 2:]))
    centre = boxes[..., :2] + boxes[..., 2:] / 2
    return np.concatenate([centre - side / 2, side], -1).astype(boxes.dtype)


def center_error(a, b):
    """Distance in pixels between the centres of boxes ``[y, x, h, w]`` ``(..., 4)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.hypot(a[..., 0] + a[..., 2] / 2 - b[..., 0] - b[..., 2] / 2,
                    a[..., 1] + a[..., 3] / 2 - b[..., 1] - b[..., 3] / 2)


def score_sequence(pred, truth, presence):
    """The OTB measures of one sequence: pred, truth ``(N, 4)`` ``[y, x, h, w]`` in the original
    images' pixels, presence ``(N,)`` (0: target absent, not scored). Returns a dict with
    ``avg_iou, auc, precision20, success (21,), precision (51,), ious (N,), n_frames``."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape != truth.shape or pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(f"score_sequence: pred and truth must both be (N, 4), got {pred.shape} and {truth.shape}")
    keep = np.asarray(presence) > 0
    lost = ~np.isfinite(pred).all(axis=1)  # a window that overflowed: the target is lost
    pred = np.where(lost[:, None], 0.0, pred)
    ious = np.where(keep, np.where(lost, 0.0, iou(pred, np.where(keep[:, None], truth, 1.0))), np.nan)
    ok, err = ious[keep], np.where(lost, np.inf, center_error(pred, truth))[keep]
    success = (ok[:, None] > IOU_THRESHOLDS).mean(axis=0) if ok.size else np.zeros(21)
    precision = (err[:, None] <= PIXEL_THRESHOLDS).mean(axis=0) if ok.size else np.zeros(51)
    return dict(avg_iou=float(ok.mean()) if ok.size else 0.0, auc=float(success.mean()),
                precision20=float(precision[20]), success=success, precision=precision, ious=ious,
                n_frames=int(ok.size))


def mean_scores(per_sequence: dict) -> dict:
    """Benchmark figures from ``{name: score_sequence(...) (+ fps)}``: every measure and curve
    averaged over sequences (each sequence weighs the same, as in OTB)."""
    rows = list(per_sequence.values())
    if not rows:
        raise ValueError("mean_scores: no sequences")
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("avg_iou", "auc", "precision20")}
    out.update(success=np.mean([r["success"] for r in rows], axis=0),
               precision=np.mean([r["precision"] for r in rows], axis=0),
               n_sequences=len(rows), n_frames=int(sum(r["n_frames"] for r in rows)))
    if all("fps" in r for r in rows):
        out["fps"] = float(np.mean([r["fps"] for r in rows]))
    return out


def track_sequences(params, cfg, videos, first_boxes, xp=np, batch_size=16, size_prior=SIZE_PRIOR,
                    adapt_steps=ADAPT_STEPS, draws=ADAPT_DRAWS):
    """Track whole sequences from their first boxes, in evaluation mode.

    Args:
      videos: list of uint8 frames ``(N_i, H, W[, 3])``, all ``(H, W)`` = the preset's frame size.
      first_boxes: ``(len(videos), 4)`` ``[y, x, h, w]`` in those frames' pixels.
      batch_size: sequences tracked together (longest first; a batch shrinks as its sequences
        end). Use 1 to time each sequence alone.
      size_prior: the weight of the first box's size in the reported boxes (:func:`anchor_size`).
      adapt_steps: first-frame adaptation: each sequence is tracked alone by ``draws`` copies of the
        model trained that many steps on its first frame, the box their median
        (:class:`minihart.adapt.AdaptedTracker`); 0: none, the sequences tracked ``batch_size`` at a
        time by the model as it is.
    Returns: a list of boxes ``(N_i, 4)`` (frame 0: the given box) and a list of per-frame
    seconds ``(N_i,)`` (frame 0: the initialisation, adaptation included) of the batch step that
    made each box.
    """
    if adapt_steps:
        out = [track_adapted(params, cfg, v, b, xp, size_prior, adapt_steps, draws)
               for v, b in zip(videos, first_boxes)]
        return [b for b, _ in out], [t for _, t in out]
    order = sorted(range(len(videos)), key=lambda i: -len(videos[i]))
    preds, times = [None] * len(videos), [None] * len(videos)
    dtype = params["feat.W"].dtype
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        lengths = [len(videos[i]) for i in idx]

        def frames_at(t, n):
            x = to_float_frames(xp.asarray(np.stack([videos[i][t] for i in idx[:n]])), cfg.channels)
            return x.astype(dtype, copy=False)
        t0 = time.perf_counter()
        frame = frames_at(0, len(idx))
        H, W = frame.shape[2:]
        scale = xp.asarray([H, W, H, W], dtype)
        box0_np = np.stack([first_boxes[i] for i in idx]).astype(np.float32)
        box0 = xp.asarray(box0_np, dtype)
        (a, h, c), _ = init_forward(params, cfg, frame, box0)
        out, _ = step_forward(params, cfg, frame, a, h, c, h)  # as in training: frame 0 seen again
        state = (out.a_next, out.h, out.c, out.h)
        boxes, secs = [asnumpy(box0)], [np.full(len(idx), time.perf_counter() - t0)]
        for t in range(1, lengths[0]):
            n = sum(L > t for L in lengths)  # lengths fall: the active sequences are a prefix
            t0 = time.perf_counter()
            state = tuple(v[:n] for v in state)
            out, _ = step_forward(params, cfg, frames_at(t, n), *state)
            state = (out.a_next, out.h, out.c, out.h)
            boxes.append(anchor_size(asnumpy(out.pred * scale[None]), box0_np[:n], size_prior))
            secs.append(np.full(n, time.perf_counter() - t0))
        for j, i in enumerate(idx):
            preds[i] = np.stack([b[j] for b in boxes[:lengths[j]]]).astype(np.float32)
            times[i] = np.array([t[j] for t in secs[:lengths[j]]])
    return preds, times


def track_adapted(params, cfg, frames, box, xp=np, size_prior=SIZE_PRIOR, adapt_steps=ADAPT_STEPS,
                  draws=ADAPT_DRAWS, extras=None):
    """One sequence through an :class:`minihart.adapt.AdaptedTracker`, from ``box`` ``[y, x, h, w]``:
    ``frames`` uint8 ``(N, H, W[, 3])`` or float ``(N, C, H, W)`` in ``[0, 1]``, at the model's frame
    size. Returns boxes ``(N, 4)`` (frame 0: ``box``) and per-frame seconds ``(N,)`` (frame 0:
    adaptation and initialisation). ``extras``: a list that gets each frame's attention window,
    glimpse and location map (the first copy's), for pictures."""
    dtype = params["feat.W"].dtype

    def frame_at(t):
        f = xp.asarray(frames[t:t + 1])
        return (to_float_frames(f, cfg.channels) if f.dtype == np.uint8 else f)[0].astype(dtype, copy=False)
    t0 = time.perf_counter()
    box = np.asarray(box, np.float32)
    tr = AdaptedTracker(params, cfg, adapt_steps, draws).init(frame_at(0), box)
    boxes, secs = [box], [time.perf_counter() - t0]
    for t in range(len(frames)):
        if t:
            t0 = time.perf_counter()
            boxes.append(anchor_size(tr.step(frame_at(t)), box, size_prior))
            secs.append(time.perf_counter() - t0)
        if extras is not None:
            extras.append({k: asnumpy(v)[0] for k, v in tr.last.items()})
    return np.stack(boxes).astype(np.float32), np.array(secs)


def first_boxes(dataset):
    """Per sequence of a SOT set: the index of its first visible frame and that box (frame pixels)."""
    starts = [int(np.flatnonzero(presence)[0]) for _, _, _, presence in dataset.tracks]
    return starts, np.stack([t[2][s] for t, s in zip(dataset.tracks, starts)])


def sequence_videos(dataset, starts):
    """Each sequence's stored frames from its first visible one (``starts``, :func:`first_boxes`)."""
    return [dataset.videos[v][first + s:first + len(b)] for (v, first, b, _), s in zip(dataset.tracks, starts)]


def score_boxes(dataset, preds, starts=None):
    """Score boxes in the frames' pixels, one ``(N_i - start_i, 4)`` array per sequence of a
    :class:`minihart.data.sot.SOTSet` (from its first visible frame), in the original images'
    pixels. Returns ``(per_sequence, boxes)``: ``{name: score_sequence(...)}`` and the whole
    sequences' boxes ``{name: (N_i, 4)}`` in original pixels (frames before the first visible one
    keep that first box)."""
    starts = starts if starts is not None else first_boxes(dataset)[0]
    per_sequence, out = {}, {}
    for k, info in enumerate(dataset.sequences):
        full = np.concatenate([np.repeat(preds[k][:1], starts[k], axis=0), preds[k]]) / dataset.scales[k]
        out[info.name] = full
        per_sequence[info.name] = score_sequence(full, info.boxes, info.presence)
    return per_sequence, out


def score_dataset(params, cfg, dataset, xp=np, batch_size=16, timed=False, static=False, size_prior=SIZE_PRIOR,
                  adapt_steps=ADAPT_STEPS, draws=ADAPT_DRAWS):
    """Track every sequence of a :class:`minihart.data.sot.SOTSet` from its first visible box to
    its last frame and score it (:func:`score_boxes`). ``timed``: track each sequence alone
    (batch 1) and add its ``fps``; ``static``: the baseline that keeps the first box (no model);
    ``size_prior``: :func:`anchor_size`; ``adapt_steps``, ``draws``: first-frame adaptation (:func:`track_sequences`).
    Returns a dict: ``per_sequence``, ``mean`` (:func:`mean_scores`), ``boxes`` (original pixels)
    and ``times`` (seconds per frame, per sequence; None for ``static``)."""
    starts, box0 = first_boxes(dataset)
    lengths = [len(t[2]) - s for t, s in zip(dataset.tracks, starts)]
    if static:
        preds, times = [np.repeat(b[None], n, axis=0) for b, n in zip(box0, lengths)], None
    else:
        videos = sequence_videos(dataset, starts)
        preds, times = track_sequences(params, cfg, videos, box0, xp, 1 if timed else batch_size, size_prior,
                                       adapt_steps, draws)
    per_sequence, boxes = score_boxes(dataset, preds, starts)
    if timed and times is not None:
        for k, name in enumerate(per_sequence):
            per_sequence[name]["fps"] = float(len(times[k]) / max(times[k].sum(), 1e-9))
    return dict(per_sequence=per_sequence, mean=mean_scores(per_sequence), boxes=boxes, times=times)


def mean_iou_by_prior(params, cfg, dataset, xp=np, priors=(0.0, SIZE_PRIOR)):
    """The average IoU over the whole sequences of ``dataset`` for each size prior in ``priors``, from
    one tracking run (the prior changes the reported boxes, never the tracker's path), without
    first-frame adaptation (training picks its checkpoints by the model as it is)."""
    starts, box0 = first_boxes(dataset)
    videos = sequence_videos(dataset, starts)
    preds, _ = track_sequences(params, cfg, videos, box0, xp, size_prior=0.0, adapt_steps=0)
    return [mean_scores(score_boxes(dataset, [anchor_size(p, b, w) for p, b in zip(preds, box0)], starts)[0])
            ["avg_iou"] for w in priors]


def track_with_extras(params, cfg, frames, box, xp=np, size_prior=SIZE_PRIOR, adapt_steps=ADAPT_STEPS,
                      draws=ADAPT_DRAWS):
    """Boxes ``(N, 4)`` ``[y, x, h, w]`` for float frames ``(N, C, H, W)`` from the first box,
    with the attention window, glimpse and location map of every frame (for pictures), and the
    seconds each frame took (frame 0: the initialisation, adaptation included). ``size_prior``:
    :func:`anchor_size`; ``adapt_steps``, ``draws``: first-frame adaptation (:func:`track_adapted`)."""
    extras = []
    boxes, times = track_adapted(params, cfg, frames, box, xp, size_prior, adapt_steps, draws, extras)
    return boxes, extras, times


def write_toolkit_files(folder, name, boxes, times=None):
    """Boxes ``(N, 4)`` ``[y, x, h, w]`` as the tracking toolkits read them: ``folder/<name>.txt``
    with one ``x,y,w,h`` line per frame (comma-separated, the got10k toolkit's and pytracking's
    results), and the seconds of each frame in ``folder/<name>_time.txt`` (pytracking) and
    ``folder/times/<name>_time.txt`` (got10k). Each file is written whole, then renamed."""
    import os  # noqa: PLC0415

    from minihart.boxes import to_xywh  # noqa: PLC0415

    def save(path, array, fmt):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.savetxt(path + ".tmp", array, fmt=fmt, delimiter=",")
        os.replace(path + ".tmp", path)
    save(os.path.join(folder, f"{name}.txt"), to_xywh(np.asarray(boxes, np.float64)), "%.3f")
    if times is not None:
        for path in (os.path.join(folder, f"{name}_time.txt"), os.path.join(folder, "times", f"{name}_time.txt")):
            save(path, np.asarray(times, np.float64), "%.8f")
