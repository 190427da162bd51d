"""The HART loss (paper section 4, eq. 9) and its parts, each a forward/backward pair.

``L = lambda_t L_t + lambda_s L_s + lambda_a L_a + R(lambda) + beta R(D, theta)``

* tracking, eq. (10): ``-log IoU(pred, target)``;
* spatial attention, eq. (11): the window must cover the object and must not grow to the frame;
* appearance attention, eq. (12): cross-entropy between the location map and a box mask tau;
* ``R(D, theta)``: :func:`l2_forward`; ``lambda`` and ``R(lambda)``: :func:`adaptive_loss_forward`.

Every term returns a scalar (a 0-d array; NumPy hands back a NumPy scalar). Sequence losses
take a presence mask ``(B, T)`` (float 0/1) and average over the *present* entries only:
``sum(p * l) / max(sum(p), 1)``,
so a batch with nothing present gives loss 0 and zero gradients. (The reference averages
over present objects per time step, then over time steps; the two agree when every step
has the same number of present objects.) Boxes are ``[y, x, h, w]`` pixels (minihart.boxes).
Logs are of clipped arguments, ``-log(clip(x, eps, 1))``, so losses are never infinite; the
gradient is zero where the clip is active.
"""
from __future__ import annotations

from typing import NamedTuple

from minihart.backend import fusable, get_array_module
from minihart.boxes import area, intersection_backward, intersection_forward, iou_backward, iou_forward
from minihart.nn.activations import sigmoid


def _presence_weights(presence, lead_shape, dtype, fn):
    """``p / max(sum p, 1)`` in ``dtype``: the weights of a mean over present entries."""
    if tuple(presence.shape) != tuple(lead_shape):
        raise ValueError(f"{fn}: presence{tuple(presence.shape)} must have shape {tuple(lead_shape)}")
    xp = get_array_module(presence)
    p = presence.astype(dtype)
    return p / xp.maximum(p.sum(), 1)


def _neg_log_clip(x, eps):
    """``-log(clip(x, eps, 1))`` and its derivative (0 where the clip is active)."""
    xp = get_array_module(x)
    c = xp.clip(x, eps, 1)
    return -xp.log(c), -(((x > eps) & (x < 1)) / c)


def _check_boxes(fn, **boxes):
    shapes = {k: tuple(v.shape) for k, v in boxes.items()}
    first = next(iter(shapes.values()))
    if len(first) < 1 or first[-1] != 4 or any(s != first for s in shapes.values()):
        raise ValueError(f"{fn}: boxes must share one shape (..., 4), got {shapes}")


class BoxLossCache(NamedTuple):
    grad: object   # d loss / d boxes (..., 4), presence weights included


def tracking_loss_forward(pred, target, presence, eps=1e-4, centre=False, scale=0.0):
    """Tracking loss, eq. (10): mean over present steps of ``-log(clip(IoU(pred, target), eps, 1))``,
    plus with ``centre`` the :func:`centre_penalty`, which still pulls a disjoint box back, and with
    ``scale`` > 0 that weight times the :func:`scale_penalty`.

    Args: pred, target ``(B, T, 4)`` boxes in pixels (any leading dims); presence ``(B, T)``.
    Returns: loss ``()`` and a :class:`BoxLossCache`: the gradient is computed with the loss
    (a few numbers per box; on a GPU one fused kernel does both). Disjoint or degenerate
    predictions give ``-log(eps)``, never inf.
    """
    _check_boxes("tracking_loss_forward", pred=pred, target=target)
    w = _presence_weights(presence, pred.shape[:-1], pred.dtype, "tracking_loss_forward")
    loss, dpred = iou_nll(pred, target, w, eps)
    for k, penalty in ((float(centre), centre_penalty), (scale, scale_penalty)):
        if k:
            pen, dpen = penalty(pred, target, w)
            loss, dpred = loss + k * pen, dpred + k * dpen
    return loss.sum(), BoxLossCache(dpred)


def scale_penalty(pred, target, w):
    """``w * (log(h_pred / h_target)^2 + log(w_pred / w_target)^2)`` per box ``(...)`` and its gradient ``(..., 4)``:
    least at the true size wherever the centre is (-log IoU prefers a larger box when it is uncertain)."""
    xp = get_array_module(pred)
    hw = xp.maximum(pred[..., 2:], 1e-3)
    r = xp.log(hw / xp.maximum(target[..., 2:], 1e-3))
    dhw = 2 * r / hw * (pred[..., 2:] > 1e-3) * w[..., None]
    return (r * r).sum(-1) * w, xp.concatenate([xp.zeros_like(dhw), dhw], axis=-1)


def centre_penalty(pred, target, w):
    """DIoU's term (Zheng et al., AAAI 2020) ``w * |c_pred - c_target|^2 / diag^2`` per box ``(...)``,
    ``diag`` the diagonal of the smallest box enclosing both, and its gradient ``(..., 4)``. It lies
    in [0, 1), does not depend on the scale, and has a gradient where the IoU has none."""
    xp = get_array_module(pred)
    d = pred[..., :2] + pred[..., 2:] / 2 - target[..., :2] - target[..., 2:] / 2
    p_end, t_end = pred[..., :2] + pred[..., 2:], target[..., :2] + target[..., 2:]
    e = xp.maximum(p_end, t_end) - xp.minimum(pred[..., :2], target[..., :2])
    rho2, c2 = (d * d).sum(-1, keepdims=True), (e * e).sum(-1, keepdims=True) + 1e-9
    dd, de = 2 * d / c2 * w[..., None], -2 * rho2 * e / (c2 * c2) * w[..., None]
    de_end, de_start = de * (p_end >= t_end), -de * (pred[..., :2] < target[..., :2])
    return (rho2 / c2)[..., 0] * w, xp.concatenate([dd + de_end + de_start, dd / 2 + de_end], axis=-1)


@fusable
def iou_nll(pred, target, w, eps):
    """Per box ``w * -log(clip(IoU(pred, target), eps, 1))`` ``(...)`` and its gradient ``(..., 4)``."""
    iou, icache = iou_forward(pred, target)
    nll, dnll = _neg_log_clip(iou, eps)
    return nll * w, iou_backward(dnll * w, icache)[0]


def tracking_loss_backward(dloss, cache: BoxLossCache):
    """Returns ``dpred (B, T, 4)`` of :func:`tracking_loss_forward` (zero at absent steps)."""
    return dloss * cache.grad


def attention_loss_forward(att, target, presence, image_hw, eps=1e-4):
    """Spatial attention loss, eq. (11), mean over present steps of

    ``-log(clip(|att n target| / |target|)) - log(clip(1 - IoU(att, frame)))``

    where ``frame = [0, 0, H, W]``: the first term asks the window to cover the object, the
    second keeps it from growing to the whole frame. Both clips are to ``[eps, 1]``.

    The reference's second term is ``-r log(1 - clip(|att| / HW, 0, 1))``, ``r = clip(|att| / HW, 1, 10)``:
    the same for a window inside the frame, where ``IoU(att, frame) = |att| / HW``; eq. (11) counts
    only the visible part of a window that reaches past the border.

    Args: att ``(B, T, 4)`` attention windows as pixel boxes (``attention_to_box(a)``);
      target ``(B, T, 4)`` object boxes (absent steps may hold zero-size boxes);
      presence ``(B, T)``; image_hw ``(H, W)``.
    Returns: loss ``()`` and a :class:`BoxLossCache` (the gradient, computed with the loss).
    """
    _check_boxes("attention_loss_forward", att=att, target=target)
    w = _presence_weights(presence, att.shape[:-1], att.dtype, "attention_loss_forward")
    loss, datt = attention_nll(att, target, w, eps, image_hw)
    return loss.sum(), BoxLossCache(datt)


@fusable
def attention_nll(att, target, w, eps, image_hw):
    """Per box both terms of eq. (11) times ``w`` ``(...)``, and their gradient ``d/datt (..., 4)``."""
    xp = get_array_module(att)
    inter, icache = intersection_forward(att, target)
    target_area = area(target)
    target_area = xp.where(target_area > 0, target_area, 1)  # zero-size targets: cover = 0
    cover, dcover = _neg_log_clip(inter / target_area, eps)
    frame = xp.broadcast_to(xp.asarray([0, 0, image_hw[0], image_hw[1]], dtype=att.dtype), att.shape)
    frame_iou, fcache = iou_forward(att, frame)
    spill, dspill = _neg_log_clip(1 - frame_iou, eps)
    datt = intersection_backward(dcover * w / target_area, icache)[0] - iou_backward(dspill * w, fcache)[0]
    return (cover + spill) * w, datt


def attention_loss_backward(dloss, cache: BoxLossCache):
    """Returns ``datt (B, T, 4)`` of :func:`attention_loss_forward` (of any :class:`BoxLossCache`)."""
    return dloss * cache.grad


def appearance_target(box, att_box, map_hw):
    """tau(a, b) of eq. (12): which cells of the glimpse's feature map show the object.

    The glimpse covers ``att_box``; cell ``(i, j)`` of an ``h_v x w_v`` map covers
    ``[att_y + i att_h / h_v, att_y + (i+1) att_h / h_v) x [att_x + j att_w / w_v, ...)``.
    Rule: a cell is 1 when its *centre* lies inside the box (half-open ``[y, y + h)``), so a
    box that covers the window gives all ones and a disjoint box all zeros. No gradient. (The
    reference resizes a pixel mask of the box bilinearly, so its target is soft at the edges.)

    Args: box, att_box ``(..., 4)`` pixel boxes; map_hw ``(h_v, w_v)``.
    Returns: ``(..., h_v, w_v)`` 0/1 mask in the dtype of ``box``.
    """
    _check_boxes("appearance_target", box=box, att_box=att_box)
    h_v, w_v = (int(n) for n in map_hw)
    if h_v < 1 or w_v < 1:
        raise ValueError(f"appearance_target: map_hw must be positive, got {tuple(map_hw)}")
    xp = get_array_module(box)

    def inside(k, n):  # (..., n): the n cell centres along axis k (0 = y, 1 = x) in the box
        centre = att_box[..., k, None] + (xp.arange(n, dtype=box.dtype) + 0.5) * (att_box[..., k + 2, None] / n)
        return (centre >= box[..., k, None]) & (centre < box[..., k, None] + box[..., k + 2, None])

    return (inside(0, h_v)[..., :, None] & inside(1, w_v)[..., None, :]).astype(box.dtype)


class AppearanceLossCache(NamedTuple):
    dlogits: object   # d loss / d logits, read by backward


def appearance_loss_forward(logits, target, presence):
    """Appearance attention loss, eq. (12): class-balanced ``H(tau, sigmoid(logits))``.

    Per cell ``xe = max(z, 0) - z t + log(1 + exp(-|z|))`` (sigmoid cross-entropy from logits,
    no overflow), weighted as in the reference: ``1 / frac_pos`` on positive cells and
    ``1 / frac_neg`` on negative ones, the fractions counted per map (a map with no
    positives, or no negatives, just has weight 1 on what it has). The loss is the mean of
    ``weight * xe`` over cells and present steps.

    Args: logits ``(B, T, h_v, w_v)`` of the location map ``s``; target same shape, 0/1
      (:func:`appearance_target`); presence ``(B, T)``.
    Returns: loss ``()`` and an :class:`AppearanceLossCache`.
    """
    if logits.ndim < 2 or target.shape != logits.shape:
        raise ValueError(f"appearance_loss_forward: logits{tuple(logits.shape)} and "
                         f"target{tuple(target.shape)} must share one shape (..., h_v, w_v)")
    xp = get_array_module(logits)
    n_cells = logits.shape[-1] * logits.shape[-2]
    w = _presence_weights(presence, logits.shape[:-2], logits.dtype, "appearance_loss_forward")
    w = w[..., None, None] / n_cells
    t = target.astype(logits.dtype)
    positive = t > 0
    frac_pos = t.sum(axis=(-2, -1), keepdims=True) / n_cells
    frac = xp.where(positive, frac_pos, 1 - frac_pos)
    w = w / xp.where(frac > 0, frac, 1)
    xe = xp.maximum(logits, 0) - logits * t + xp.log1p(xp.exp(-xp.abs(logits)))
    return (w * xe).sum(), AppearanceLossCache(w * (sigmoid(logits) - t))


def appearance_loss_backward(dloss, cache: AppearanceLossCache):
    """Returns ``dlogits`` of :func:`appearance_loss_forward`: ``weight (sigmoid(z) - t)``."""
    return dloss * cache.dlogits


def sum_of_squares(arrays):
    """``sum_k sum(x_k^2)`` on the arrays' device, one pass (a ``vdot``) per array, no ``x * x``."""
    xp = get_array_module(*arrays)
    return sum(xp.vdot(x.ravel(), x.ravel()) for x in arrays)


def l2_forward(arrays):
    """Weight decay ``R = 0.5 sum_k sum(x_k^2)`` (R(D, theta) of eq. 9, TF's ``l2_loss``).

    Used for parameters and for the generated dynamic filters (the caller averages those
    over batch and time). Args: arrays, a list of arrays of any shapes.
    Returns: R ``()`` and the list itself as the cache.
    """
    if len(arrays) == 0:
        raise ValueError("l2_forward: arrays is empty")
    return 0.5 * sum_of_squares(arrays), list(arrays)


def l2_backward(dR, cache):
    """Returns the list ``[dR * x_k]`` of :func:`l2_forward`."""
    return [dR * x for x in cache]


class AdaptiveCache(NamedTuple):
    terms: object   # (K,) the loss terms
    v: object       # (K,) the weight variables
    lam: object     # (K,) lambda = v^2 + 1e-8, for logging


def adaptive_loss_forward(terms, v):
    """Adaptive loss weights (Kendall et al. 2017; paper "Adaptive Loss Weights"):

    ``total = sum_i lambda_i L_i + R(lambda)``, ``lambda_i = v_i^2 + 1e-8``,
    ``R(lambda) = -sum_i log(lambda_i)``.

    ``v`` is trained and starts at 1 (the reference's ``sqrt(weight)`` with weight 1). For fixed
    ``L_i`` the optimum is ``lambda_i = 1 / L_i``. The paper prints ``R = -sum log(lambda_i^-1)``,
    which would drive every lambda to 0; the reference adds ``log(1 / lambda)``, as here.

    Args: terms ``(K,)`` the loss terms (e.g. ``xp.stack([L_t, L_s, L_a])``); v ``(K,)``.
    Returns: total ``()`` and an :class:`AdaptiveCache` (``cache.lam`` are the weights).
    """
    if terms.ndim != 1 or terms.shape != v.shape:
        raise ValueError(f"adaptive_loss_forward: terms{tuple(terms.shape)} and v{tuple(v.shape)} "
                         "must both have shape (K,)")
    xp = get_array_module(terms, v)
    lam = v * v + 1e-8
    return (lam * terms).sum() - xp.log(lam).sum(), AdaptiveCache(terms, v, lam)


def adaptive_loss_backward(dtotal, cache: AdaptiveCache):
    """Returns ``(dterms, dv)``, each ``(K,)``: ``dterms = lambda``, ``dv = 2 v (L - 1/lambda)``."""
    terms, v, lam = cache
    return dtotal * lam, dtotal * 2 * v * (terms - 1 / lam)
