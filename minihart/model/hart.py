"""The HART tracker over a sequence: forward (paper eqs. 2-8), loss (eqs. 9-12) and a
hand-written backward pass through time (Figure 2 of the paper, drawn as code).

One time step, for a batch of B sequences, frame ``x_t (B, C, H, W)``:

  g_t   = A_y x_t A_x^T                        glimpse at attention a_t            (2)
  f_t   = V1(g_t - mean(g_t))                  shared CNN, dropout after it
  nu_t  = elu(conv1x1(f_t))                    ventral stream
  s_t   = sigmoid(conv1x1(DFN(f_t; alpha_t)))  dorsal stream, filters from MLP(alpha_t)  (3)
  v_t   = elu(W [vec(nu_t * s_t), a_t])        masked features                     (4)
  o_t   = LSTM(v_t, h_{t-1}) with zoneout                                          (5)
  alpha_{t+1} = o_t;  Delta a = tanh(MLP(o_t, elu(W vec s_t)));  Delta b = tanh(MLP(o_t))  (6)
  a_{t+1} = a_t + tanh(c) Delta a                                                  (7)
  b_t     = a_t + Delta b                                                           (8)

Attention ``a`` and the box correction live in normalised image coordinates
``[y/H, x/W, h/H, w/W]`` (see :mod:`minihart.nn.attention`); boxes returned are pixels.
As in the reference, the appearance vector alpha_{t+1} is the LSTM output itself (eq. 6's MLP
for alpha is the identity), and the initial state comes from one LSTM step on the features of
the first frame's glimpse at the first box (no dorsal stream yet: no appearance is known).
The first frame's box is given, so losses and IoU count time steps 2..T.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np

from minihart.backend import get_array_module
from minihart.boxes import iou, validate_boxes
from minihart.model.config import Config
from minihart.nn import losses as L
from minihart.nn.activations import ACTIVATIONS, sigmoid
from minihart.nn.attention import box_to_attention, glimpse_forward, glimpse_backward
from minihart.nn.conv import conv2d_forward, conv2d_backward, maxpool2d_forward, maxpool2d_backward, \
    lrn_forward, lrn_backward
from minihart.nn.dfn import dfn_filters_forward, dfn_filters_backward, dynamic_conv_forward, dynamic_conv_backward
from minihart.nn.linear import affine_forward, affine_backward, dropout_forward, dropout_backward, dropout_mask
from minihart.nn.lstm import lstm_step_forward, lstm_step_backward, zoneout_masks

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)  # AlexNet's norm1/norm2 (Caffe definition)


# ----------------------------------------------------------------------------- small blocks
def _dense_forward(p, name, x, act):
    """``act(x W + b)`` with the weights ``name.W``, ``name.b``."""
    y, c1 = affine_forward(x, p[name + ".W"], p[name + ".b"])
    y, c2 = ACTIVATIONS[act][0](y)
    return y, (name, act, c1, c2)


def _dense_backward(dy, cache, grads):
    name, act, c1, c2 = cache
    dx, dW, db = affine_backward(ACTIVATIONS[act][1](dy, c2), c1)
    grads[name + ".W"] += dW
    grads[name + ".b"] += db
    return dx


def _v1_forward(p, cfg, x):
    caches, n_conv = [], 0
    for spec in cfg.v1:
        kind = spec[0]
        if kind == "conv":
            n_conv += 1
            _, _, _, stride, pad, groups = spec
            if isinstance(pad, tuple):  # asymmetric "SAME" padding: pad explicitly
                xp = get_array_module(x)
                x = xp.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]))
                pad = 0
            x, c = conv2d_forward(x, p[f"v1.conv{n_conv}.W"], p[f"v1.conv{n_conv}.b"], stride, pad, groups)
            c = (n_conv, spec[4], c)
        elif kind == "pool":
            x, c = maxpool2d_forward(x, spec[1], spec[2])
        elif kind == "lrn":
            x, c = lrn_forward(x, **LRN)
        else:
            x, c = ACTIVATIONS[kind][0](x)
        caches.append(c)
    return x, caches


def _v1_backward(dx, cfg, caches, grads):
    for spec, c in zip(reversed(cfg.v1), reversed(caches)):
        kind = spec[0]
        if kind == "conv":
            n, pad, c = c
            dx, dW, db = conv2d_backward(dx, c)
            grads[f"v1.conv{n}.W"] += dW
            grads[f"v1.conv{n}.b"] += db
            if isinstance(pad, tuple):
                dx = dx[:, :, pad[0]:dx.shape[2] - pad[1], pad[2]:dx.shape[3] - pad[3]]
        elif kind == "pool":
            dx = maxpool2d_backward(dx, c)
        elif kind == "lrn":
            dx = lrn_backward(dx, c)
        else:
            dx = ACTIVATIONS[kind][1](dx, c)
    return dx


def _appearance_forward(p, cfg, frame, a, drop):
    """Glimpse (2), V1, dropout and the ventral stream: returns ``g, f, nu`` and a cache."""
    g, gc = glimpse_forward(frame, a, cfg.glimpse_hw)
    g0 = g - g.mean(axis=(2, 3), keepdims=True)  # per-glimpse mean removal (reference, AlexNet input)
    f, v1c = _v1_forward(p, cfg, g0)
    f, dc = dropout_forward(f, drop, cfg.dropout)
    nu, vc = conv2d_forward(f, p["ventral.W"], p["ventral.b"])
    nu, ec = ACTIVATIONS["elu"][0](nu)
    return g, f, nu, (gc, v1c, dc, vc, ec)


def _appearance_backward(df, dnu, cfg, cache, grads):
    gc, v1c, dc, vc, ec = cache
    dnu = ACTIVATIONS["elu"][1](dnu, ec)
    dfv, dW, db = conv2d_backward(dnu, vc)
    grads["ventral.W"] += dW
    grads["ventral.b"] += db
    df = dropout_backward(df + dfv, dc)
    dg0 = _v1_backward(df, cfg, v1c, grads)
    dg = dg0 - dg0.mean(axis=(2, 3), keepdims=True)
    return glimpse_backward(dg, gc, need_dx=False)[1]  # gradient to the attention parameters


# ----------------------------------------------------------------------------- one step
class StepCache(NamedTuple):
    app: tuple
    dfn: list
    loc: object
    s: object
    nu: object
    feat: tuple
    lstm: object
    mask: tuple
    att: tuple
    box: tuple
    d_att: object
    gain: object
    d_box: object
    unit: object


def step_forward(p, cfg, frame, a, h, c, alpha, noise=None):
    """One recurrent step (eqs. 2-8). ``noise``: None (evaluation) or a dict with the
    step's ``drop`` (dropout keep-mask), ``zh``, ``zc`` (zoneout keep-old masks).

    Returns ``out`` (dict: ``a_next, h, c, pred, logits, g, filters``) and a StepCache.
    """
    xp = get_array_module(frame)
    B = frame.shape[0]
    drop = None if noise is None else noise["drop"]
    g, f, nu, app = _appearance_forward(p, cfg, frame, a, drop)
    d, dfn_caches, filters = f, [], []
    for i, (k, maps) in enumerate(cfg.dfn, 1):  # dorsal stream, eq. (3)
        (w, b), fc = dfn_filters_forward(alpha, p, d.shape[1], maps, k, prefix=f"dfn{i}.")
        d, cc = dynamic_conv_forward(d, w, b, k // 2)
        d, ec = ACTIVATIONS["elu"][0](d)
        dfn_caches.append((fc, cc, ec))
        filters += [w, b]
    logits, lc = conv2d_forward(d, p["locmap.W"], p["locmap.b"])
    s = sigmoid(logits)                                   # location map s_t
    x_in = xp.concatenate([(nu * s).reshape(B, -1), a], axis=1)
    v, fc = _dense_forward(p, "feat", x_in, "elu")        # eq. (4)
    zh, zc = (None, None) if noise is None else (noise["zh"], noise["zc"])
    (h, c), lstm_c = lstm_step_forward(v, h, c, p["lstm.Wx"], p["lstm.Wh"], p["lstm.b"],
                                       zh, zc, cfg.zoneout, cfg.zoneout)  # eq. (5)
    m, mc = _dense_forward(p, "mask", s.reshape(B, -1), "elu")
    r, a1c = _dense_forward(p, "att1", xp.concatenate([h, m], axis=1), "elu")
    d_att, a2c = _dense_forward(p, "att2", r, "tanh")      # eq. (6)
    q, b1c = _dense_forward(p, "box1", xp.concatenate([h, m], axis=1) if cfg.box_reads_mask else h, "elu")
    d_box, b2c = _dense_forward(p, "box2", q, "tanh")
    gain = xp.tanh(p["att_gain"])
    unit = window_units(a, cfg)                            # 1, or the window's [h, w, h, w]
    out = dict(a_next=a + gain * d_att * unit, h=h, c=c, pred=a + d_box * unit, logits=logits[:, 0], g=g,
               filters=filters)                            # eqs. (7), (8)
    return out, StepCache(app, dfn_caches, lc, s, nu, fc, lstm_c, mc, (a1c, a2c), (b1c, b2c), d_att, gain,
                          d_box, unit)


def window_units(a, cfg):
    """The units of the updates of eqs. (7) and (8): 1 (frame units), or with
    ``cfg.relative_updates`` the attention window's size ``[h, w, h, w]`` ``(B, 4)``."""
    if not cfg.relative_updates:
        return 1.0
    xp = get_array_module(a)
    return xp.concatenate([a[:, 2:4], a[:, 2:4]], axis=1)


def _window_units_backward(dunit, cfg):
    """The gradient to ``a`` of :func:`window_units` from the gradient of its output ``(B, 4)``."""
    xp = get_array_module(dunit)
    if not cfg.relative_updates:
        return 0.0
    zero = xp.zeros_like(dunit[:, :2])
    return xp.concatenate([zero, dunit[:, :2] + dunit[:, 2:]], axis=1)


def step_backward(d, cache: StepCache, cfg, grads):
    """Backward of :func:`step_forward`. ``d`` holds gradients of the step's outputs:
    ``a_next, h, c, pred, logits (B, h_v, w_v), filters (list)``, and ``a`` (from the losses
    on the attention box). Returns ``(da, dh_prev, dc_prev, dalpha)``."""
    k = cache
    xp = get_array_module(d["pred"])
    n = cfg.n_units
    da = d["a"] + d["pred"] + d["a_next"]
    da = da + _window_units_backward(d["a_next"] * k.gain * k.d_att + d["pred"] * k.d_box, cfg)
    dq = _dense_backward(d["pred"] * k.unit, k.box[1], grads)
    dzb = _dense_backward(dq, k.box[0], grads)
    dh = d["h"] + dzb[:, :n]
    grads["att_gain"] += (d["a_next"] * k.d_att * k.unit).sum().reshape(1) * (1 - k.gain ** 2)
    dr = _dense_backward(d["a_next"] * k.gain * k.unit, k.att[1], grads)
    dz = _dense_backward(dr, k.att[0], grads)
    dh = dh + dz[:, :n]
    dm = dz[:, n:] + dzb[:, n:] if cfg.box_reads_mask else dz[:, n:]
    ds = _dense_backward(dm, k.mask, grads).reshape(k.s.shape)
    dv, dh_prev, dc_prev, dWx, dWh, dbl = lstm_step_backward((dh, d["c"]), k.lstm)
    grads["lstm.Wx"] += dWx
    grads["lstm.Wh"] += dWh
    grads["lstm.b"] += dbl
    dx_in = _dense_backward(dv, k.feat, grads)
    da = da + dx_in[:, -4:]
    dmasked = dx_in[:, :-4].reshape(k.nu.shape)
    dnu = dmasked * k.s
    ds = ds + (dmasked * k.nu).sum(axis=1, keepdims=True)
    dlogits = ds * k.s * (1 - k.s) + d["logits"][:, None]
    dd, dW, db = conv2d_backward(dlogits, k.loc)
    grads["locmap.W"] += dW
    grads["locmap.b"] += db
    dalpha = xp.zeros_like(dh_prev)
    for i in range(len(cfg.dfn), 0, -1):
        fc, cc, ec = k.dfn[i - 1]
        dd = ACTIVATIONS["elu"][1](dd, ec)
        dd, dw, dbias = dynamic_conv_backward(dd, cc)
        dw, dbias = dw + d["filters"][2 * i - 2], dbias + d["filters"][2 * i - 1]
        dal, g = dfn_filters_backward((dw, dbias), fc)
        dalpha += dal
        for name, v in g.items():
            grads[name] += v
    da = da + _appearance_backward(dd, dnu, cfg, k.app, grads)
    return da, dh_prev, dc_prev, dalpha


# ----------------------------------------------------------------------------- the sequence
def _initial_window(boxes0, scale):
    """The first box enlarged by ``scale`` about its centre (context around the object)."""
    y, x, h, w = (boxes0[:, i] for i in range(4))
    xp = get_array_module(boxes0)
    return xp.stack([y - (scale - 1) * h / 2, x - (scale - 1) * w / 2, scale * h, scale * w], axis=1)


def init_forward(p, cfg, frame0, box0):
    """Initial state from the first frame and box: attention ``a_1`` (with the learnable bias
    ``0.25 tanh(att_bias)``, as the reference), and ``h_0, c_0`` from one LSTM step on the
    unmasked ventral features of the first glimpse. Returns ``(a1, h0, c0), cache``."""
    xp = get_array_module(frame0)
    B = frame0.shape[0]
    tb = xp.tanh(p["att_bias"])
    # box0 was checked by the caller (validate_inputs, Tracker.init): no second device read here
    a0 = box_to_attention(_initial_window(box0, cfg.init_window_scale), frame0.shape[2:], validate=False)
    a1 = a0 + 0.25 * tb * window_units(a0, cfg)
    a1 = a1.astype(frame0.dtype)
    _, f, nu, app = _appearance_forward(p, cfg, frame0, a1, None)
    v, fc = _dense_forward(p, "feat", xp.concatenate([nu.reshape(B, -1), a1], axis=1), "elu")
    zeros = xp.zeros((B, cfg.n_units), frame0.dtype)
    (h, c), lc = lstm_step_forward(v, zeros, zeros, p["lstm.Wx"], p["lstm.Wh"], p["lstm.b"])
    return (a1, h, c), (f, nu, app, fc, lc, tb, window_units(a0, cfg))


def init_backward(da, dh, dc, cache, cfg, grads):
    f, nu, app, fc, lc, tb, unit0 = cache
    dv, _, _, dWx, dWh, db = lstm_step_backward((dh, dc), lc)
    grads["lstm.Wx"] += dWx
    grads["lstm.Wh"] += dWh
    grads["lstm.b"] += db
    dx = _dense_backward(dv, fc, grads)
    da = da + dx[:, -4:]
    da = da + _appearance_backward(get_array_module(f).zeros_like(f), dx[:, :-4].reshape(nu.shape), cfg, app, grads)
    grads["att_bias"] += (da * 0.25 * unit0 * (1 - tb ** 2)).sum(axis=0)


def sample_noise(cfg: Config, rng: np.random.Generator, batch: int, steps: int, xp=np):
    """Training-mode randomness as explicit arrays (so gradient checks are deterministic):
    per step a dropout keep-mask after V1 and zoneout keep-old masks for h and c. On a GPU
    they are drawn there, by a device generator seeded from ``rng`` (nothing to copy)."""
    from minihart.model.params import v1_shapes  # noqa: PLC0415
    _, fshape = v1_shapes(cfg)
    if xp is not np:
        rng = xp.random.default_rng(int(rng.integers(2 ** 63)))
    return [dict(drop=dropout_mask(rng, (batch, *fshape), cfg.dropout, xp),
                 zh=zoneout_masks(rng, (batch, cfg.n_units), cfg.zoneout, xp),
                 zc=zoneout_masks(rng, (batch, cfg.n_units), cfg.zoneout, xp)) for _ in range(steps)]


def validate_inputs(cfg: Config, frames, boxes, presence, check_boxes=True):
    """``ValueError`` naming the argument for inputs the model cannot use: shapes, and with
    ``check_boxes`` the first boxes' values (which reads them back from a GPU)."""
    if frames.ndim != 5 or frames.shape[2] != cfg.channels:
        raise ValueError(f"frames must be (B, T, C={cfg.channels}, H, W) for preset {cfg.name!r}, "
                         f"got {tuple(frames.shape)}")
    if frames.dtype.kind != "f":  # uint8 video would run silently at 255 times the scale
        raise ValueError(f"frames must be floating point in [0, 1], got {frames.dtype}; convert "
                         "stored uint8 frames with minihart.data.batching.to_float_frames")
    B, T = frames.shape[:2]
    if tuple(boxes.shape) != (B, T, 4):
        raise ValueError(f"boxes must be (B, T, 4) = {(B, T, 4)} to match frames{tuple(frames.shape)}, "
                         f"got {tuple(boxes.shape)}")
    if tuple(presence.shape) != (B, T):
        raise ValueError(f"presence must be (B, T) = {(B, T)}, got {tuple(presence.shape)}")
    if check_boxes:
        validate_boxes(boxes[:, 0], "boxes[:, 0] (the first frame's boxes)", frames.shape[3:])


def forward(p, cfg: Config, frames, boxes, presence, noise=None, check_boxes=True, state=None):
    """Run HART over ``frames (B, T, C, H, W)`` from the first boxes ``boxes[:, 0]``.

    Args: boxes ``(B, T, 4)`` pixels ``[y, x, h, w]`` (targets for t >= 2); presence ``(B, T)``
      1 where the object is visible; noise from :func:`sample_noise` (training) or None;
      check_boxes: False skips the check of the first boxes' values (shapes are always
      checked), which reads them back once. Batches from ``WindowSet.gather`` were checked on
      the host; ``train`` passes False, so forward and :func:`backward` never wait for a GPU.
      state: ``out["state"]`` of the previous piece of the same sequences, to continue them
      (truncated backpropagation through time: no gradient flows into it; every frame,
      the first included, is then a prediction and scored).
    Returns ``out``: ``loss`` (0-d), ``terms`` (dict of 0-d arrays: tracking, attention,
    appearance, l2, and lambda_*), ``pred`` and ``att`` boxes ``(B, T, 4)`` in pixels, ``iou``
    ``(B, T)``, ``glimpses (B, T, C, h, w)``, ``maps (B, T, h_v, w_v)``, ``state`` (the
    recurrent state after the last frame); and a cache for :func:`backward`.
    """
    validate_inputs(cfg, frames, boxes, presence, check_boxes and state is None)
    xp = get_array_module(frames)
    B, T, _, H, W = frames.shape
    scale = xp.asarray([H, W, H, W], frames.dtype)
    if state is None:
        (a, h, c), init_cache = init_forward(p, cfg, frames[:, 0], boxes[:, 0])
        alpha = h
    else:
        (a, h, c, alpha), init_cache = state, None
    steps, caches = [], []
    for t in range(T):
        o, k = step_forward(p, cfg, frames[:, t], a, h, c, alpha, None if noise is None else noise[t])
        steps.append(dict(a=a, pred=o["pred"], logits=o["logits"], g=o["g"], filters=o["filters"]))
        caches.append(k)
        a, h, c, alpha = o["a_next"], o["h"], o["c"], o["h"]
    pred = xp.stack([s["pred"] for s in steps], axis=1) * scale
    att = xp.stack([s["a"] for s in steps], axis=1) * scale
    logits = xp.stack([s["logits"] for s in steps], axis=1)
    pres = presence.astype(frames.dtype)
    if state is None:
        pres[:, 0] = 0  # the first box is given, not predicted
    # absent objects have no box: a dummy one keeps IoU finite; the mask zeroes its loss
    safe = xp.where(pres[..., None] > 0, boxes, xp.asarray([0, 0, 1, 1], frames.dtype))
    lt, ct = L.tracking_loss_forward(pred, safe, pres)
    if cfg.context_attention:  # -log IoU of the window with the box's context window (k times the box)
        k = cfg.init_window_scale
        context = xp.concatenate([safe[..., :2] - (k - 1) * safe[..., 2:] / 2, k * safe[..., 2:]], axis=-1)
        ls, cs = L.tracking_loss_forward(att, context, pres)
    else:
        ls, cs = L.attention_loss_forward(att, safe, pres, (H, W))
    tau = L.appearance_target(safe, att, logits.shape[2:]) * pres[..., None, None]
    la, ca = L.appearance_loss_forward(logits, tau, pres)
    if cfg.loss_weights:  # fixed weights; loss_v stays as it is
        lam = xp.asarray(cfg.loss_weights, frames.dtype)
        total, cad = (lam * xp.stack([lt, ls, la])).sum(), lam
    else:
        total, cad = L.adaptive_loss_forward(xp.stack([lt, ls, la]), p["loss_v"])
        lam = p["loss_v"] ** 2 + 1e-8
    weights = [v for k, v in p.items() if is_weight(k)]
    r_theta, _ = L.l2_forward(weights)
    r_psi, _ = L.l2_forward([f for s in steps for f in s["filters"]])
    reg = cfg.l2 * (r_theta + r_psi / (B * T))
    iou_values = iou(pred, safe) * pres  # a metric, no gradient
    out = dict(loss=total + reg, pred=pred, att=att, iou=iou_values, presence=pres, state=(a, h, c, alpha),
               glimpses=xp.stack([s["g"] for s in steps], axis=1), maps=sigmoid(logits),
               terms=dict(tracking=lt, attention=ls, appearance=la, l2=reg,
                          lambda_tracking=lam[0], lambda_attention=lam[1], lambda_appearance=lam[2]))
    return out, (cfg, p, scale, init_cache, caches, steps, ct, cs, ca, cad, B * T)


def is_weight(name: str) -> bool:
    """Weight matrices and kernels (``*.W``, ``*.Wx``, ``*_W``) get the L2 term of eq. (9);
    biases, gains and loss weights do not (as the reference)."""
    last = name.split(".")[-1]
    return last.startswith("W") or last.endswith("_W")


def backward(cache) -> dict:
    """Gradients of ``out["loss"]`` for every parameter (same keys as ``params``),
    by backpropagation through time."""
    cfg, p, scale, init_cache, caches, steps, ct, cs, ca, cad, BT = cache
    xp = get_array_module(scale)
    grads = defaultdict(lambda: 0)
    if cfg.loss_weights:
        dterms = cad  # the fixed weights
    else:
        dterms, dv = L.adaptive_loss_backward(xp.asarray(1.0, scale.dtype), cad)
        grads["loss_v"] += dv
    dpred = L.tracking_loss_backward(dterms[0], ct) * scale
    datt = (L.tracking_loss_backward(dterms[1], cs) if cfg.context_attention
            else L.attention_loss_backward(dterms[1], cs)) * scale
    dlogits = L.appearance_loss_backward(dterms[2], ca)
    for k, v in p.items():
        if is_weight(k):
            grads[k] += cfg.l2 * v
    B = steps[0]["pred"].shape[0]
    da = xp.zeros((B, 4), scale.dtype)
    dh, dc = xp.zeros((B, cfg.n_units), scale.dtype), xp.zeros((B, cfg.n_units), scale.dtype)
    for t in range(len(caches) - 1, -1, -1):
        d = dict(a=datt[:, t], pred=dpred[:, t], logits=dlogits[:, t], a_next=da, h=dh, c=dc,
                 filters=[cfg.l2 / BT * f for f in steps[t]["filters"]])
        da, dh_prev, dc, dalpha = step_backward(d, caches[t], cfg, grads)
        dh = dh_prev + dalpha  # h_{t-1} is both the LSTM state and the appearance alpha_t
    if init_cache is not None:  # a continued piece (``state``) ends the gradient here
        init_backward(da, dh, dc, init_cache, cfg, grads)
    return {k: (grads[k] if not isinstance(grads[k], int) else xp.zeros_like(v)).astype(v.dtype, copy=False)
            for k, v in p.items()}
