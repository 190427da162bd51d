"""Bounding boxes: the one convention of minihart, conversions, areas, intersection and IoU.

Convention: a box is ``[y, x, h, w]`` in image pixels, ``(y, x)`` its top-left corner,
``h, w`` its height and width; it covers the half-open rectangle ``[y, y + h) x [x, x + w)``.
Arrays of boxes have shape ``(..., 4)``; every function works elementwise over the leading
dimensions, on NumPy or CuPy, and keeps the dtype of its input.

File formats:

* KITTI labels give ``x1 y1 x2 y2`` (left, top, right, bottom) as float pixel coordinates;
  ``x2, y2`` are read as *exclusive* ends, so ``w = x2 - x1`` and ``h = y2 - y1``.
* KTH boxes (``KTHBoundingBoxInfo.txt``) give ``ymin xmin ymax xmax`` as 1-based pixels, both
  ends included; :mod:`minihart.data.kth` converts them: ``y = ymin - 1``, ``x = xmin - 1``,
  ``h = ymax - ymin + 1``, ``w = xmax - xmin + 1``.
* OTB ground truth gives ``x y w h``. OTB is 1-based (MATLAB); we keep the numbers as given
  (no -1 shift), so OTB boxes sit one pixel right and down of their 0-based array position.
  Callers who care subtract 1 from ``x, y`` before :func:`from_xywh`.

``intersection`` and ``iou`` have forward/backward pairs (the tracking loss, eq. 10, and the
attention loss, eq. 11, are built from them). Their gradients are subgradients at the
kinks of ``min``/``max`` (ties go to ``a``) and zero where boxes do not overlap.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minihart.backend import asnumpy, get_array_module


def _check_last_dim(boxes, name, fn):
    if getattr(boxes, "ndim", 0) < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: {name} must have shape (..., 4) ([y, x, h, w]), "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)}")


def validate_boxes(boxes, name, image_hw=None):
    """Raise ``ValueError`` naming ``name`` unless ``boxes`` are valid; return ``boxes``.

    Args:
      boxes: ``(..., 4)`` boxes ``[y, x, h, w]`` in pixels.
      name: the argument name used in the error message.
      image_hw: optional ``(H, W)``; then a box lying entirely outside ``[0, H) x [0, W)``
        (no overlap of positive area) is an error. Partly visible boxes are fine.
    Errors: wrong last dimension, NaN/inf, ``h <= 0`` or ``w <= 0``, outside the image.
    """
    _check_last_dim(boxes, name, "validate_boxes")
    xp = get_array_module(boxes)
    y, x, h, w = (boxes[..., k] for k in range(4))
    checks = [(~xp.all(xp.isfinite(boxes), axis=-1), "a non-finite value"), ((h <= 0) | (w <= 0), "h <= 0 or w <= 0")]
    if image_hw is not None:
        H, W = image_hw
        with np.errstate(invalid="ignore"):  # inf - inf: the finiteness check reports it first
            checks.append(((y >= H) | (x >= W) | (y + h <= 0) | (x + w <= 0),
                           f"a box entirely outside the image (H, W) = {(H, W)}"))
    # one device-to-host transfer for all checks: on a GPU the only synchronisation of a step
    for (bad, why), any_bad in zip(checks, asnumpy(xp.stack([xp.any(bad) for bad, _ in checks]))):
        if any_bad:
            idx = tuple(int(i) for i in np.argwhere(asnumpy(bad))[0])
            raise ValueError(f"validate_boxes: {name}{tuple(boxes.shape)} has {why} at index {idx}: "
                             f"{boxes[idx].tolist()}")
    return boxes


def from_xyxy(xyxy):
    """KITTI ``[x1, y1, x2, y2]`` (exclusive ends) -> ``[y, x, h, w]``; shapes ``(..., 4)``."""
    _check_last_dim(xyxy, "xyxy", "from_xyxy")
    xp = get_array_module(xyxy)
    x1, y1, x2, y2 = (xyxy[..., k] for k in range(4))
    return xp.stack([y1, x1, y2 - y1, x2 - x1], axis=-1)


def to_xyxy(boxes):
    """``[y, x, h, w]`` -> KITTI ``[x1, y1, x2, y2]`` with ``x2 = x + w`` (exclusive)."""
    _check_last_dim(boxes, "boxes", "to_xyxy")
    xp = get_array_module(boxes)
    y, x, h, w = (boxes[..., k] for k in range(4))
    return xp.stack([x, y, x + w, y + h], axis=-1)


def from_xywh(xywh):
    """OTB ``[x, y, w, h]`` (numbers kept as given) -> ``[y, x, h, w]``."""
    _check_last_dim(xywh, "xywh", "from_xywh")
    return xywh[..., [1, 0, 3, 2]]


def to_xywh(boxes):
    """``[y, x, h, w]`` -> OTB ``[x, y, w, h]``."""
    _check_last_dim(boxes, "boxes", "to_xywh")
    return boxes[..., [1, 0, 3, 2]]


def area(boxes):
    """``h * w`` of ``(..., 4)`` boxes, shape ``(...)``."""
    return boxes[..., 2] * boxes[..., 3]


class IntersectionCache(NamedTuple):
    a_first: object   # (..., 2) bool: a's start is the max of the starts (y, x)
    a_last: object    # (..., 2) bool: a's end is the min of the ends (y, x)
    side: object      # (..., 2) overlap height, width, already clipped at 0
    open_: object     # (..., 2) bool: the overlap is positive along y, x


def intersection_forward(a, b):
    """Area of overlap of two boxes, 0 when they are disjoint.

    Args: a, b ``(..., 4)`` boxes ``[y, x, h, w]`` of the same shape.
    Returns: inter ``(...)`` and an :class:`IntersectionCache` (backward reads cached masks).
    """
    _check_last_dim(a, "a", "intersection_forward")
    _check_last_dim(b, "b", "intersection_forward")
    if a.shape != b.shape:
        raise ValueError(f"intersection_forward: a{tuple(a.shape)} and b{tuple(b.shape)} must match")
    xp = get_array_module(a, b)
    start_a, start_b = a[..., :2], b[..., :2]
    end_a, end_b = start_a + a[..., 2:], start_b + b[..., 2:]
    a_first = start_a >= start_b
    a_last = end_a <= end_b
    raw = xp.where(a_last, end_a, end_b) - xp.where(a_first, start_a, start_b)
    open_ = raw > 0
    side = xp.where(open_, raw, 0)
    return side[..., 0] * side[..., 1], IntersectionCache(a_first, a_last, side, open_)


def intersection_backward(dinter, cache: IntersectionCache):
    """Gradients of :func:`intersection_forward`.

    Args: dinter ``(...)``.
    Returns: ``(da, db)``, each ``(..., 4)``.
    """
    xp = get_array_module(dinter)
    a_first, a_last, side, open_ = cache
    # d inter / d side_y = side_x and vice versa; zero where the overlap is closed
    dside = dinter[..., None] * side[..., ::-1] * open_
    dend, dstart = dside, -dside
    da = xp.concatenate([dstart * a_first + dend * a_last, dend * a_last], axis=-1)
    db = xp.concatenate([dstart * ~a_first + dend * ~a_last, dend * ~a_last], axis=-1)
    return da, db


class IoUCache(NamedTuple):
    inter_cache: IntersectionCache
    a: object       # (..., 4) kept for d area / d (h, w)
    b: object
    inter: object   # (...) overlap area
    union: object   # (...) union area, 1 where the true union is <= 0
    valid: object   # (...) bool: union > 0


def iou_forward(a, b):
    """Intersection over union ``|a n b| / (|a| + |b| - |a n b|)`` (paper section 4).

    Boxes with ``h <= 0`` or ``w <= 0`` (a degenerate prediction) have no overlap; where the
    union is not positive the IoU is defined as 0 (no division by zero).

    Args: a, b ``(..., 4)`` boxes of the same shape.
    Returns: iou ``(...)`` in [0, 1] and an :class:`IoUCache`.
    """
    xp = get_array_module(a, b)
    inter, icache = intersection_forward(a, b)
    union = area(a) + area(b) - inter
    valid = union > 0
    union = xp.where(valid, union, 1)
    return inter / union, IoUCache(icache, a, b, inter, union, valid)


def iou_backward(diou, cache: IoUCache):
    """Gradients of :func:`iou_forward`: with ``I / U``, ``U = |a| + |b| - I``,
    ``dI = (U + I) / U^2``, ``d|a| = d|b| = -I / U^2``.

    Args: diou ``(...)``. Returns: ``(da, db)``, each ``(..., 4)``.
    """
    xp = get_array_module(diou)
    icache, a, b, inter, union, valid = cache
    g = diou * valid / (union * union)
    dinter = g * (union + inter)
    darea = -g * inter
    da, db = intersection_backward(dinter, icache)
    zero = xp.zeros_like(darea)
    da = da + xp.stack([zero, zero, darea * a[..., 3], darea * a[..., 2]], axis=-1)
    db = db + xp.stack([zero, zero, darea * b[..., 3], darea * b[..., 2]], axis=-1)
    return da, db


def iou(a, b):
    """IoU of ``(..., 4)`` boxes (value only; ``a`` and ``b`` broadcast against each other)."""
    xp = get_array_module(a, b)
    try:
        a, b = xp.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(f"iou: boxes a{tuple(a.shape)} and b{tuple(b.shape)} do not broadcast together") from None
    return iou_forward(a, b)[0]
