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
The first frame's box is given, so losses and IoU count time steps 2..T (1..T from a given state).

Top down as the figure: appearance (glimpse, V1, ventral stream), dorsal stream, one step, the
initial state, the sequence; then the loss. Each ``*_backward`` adds the gradients of the
parameters it owns into the dict ``grads`` and returns those of its inputs.
"""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

import numpy as np

from minihart.backend import get_array_module
from minihart.boxes import iou, validate_boxes
from minihart.model.config import Config
from minihart.model.params import v1_shapes
from minihart.nn import attention, conv, dfn, linear, lstm
from minihart.nn import losses as L
from minihart.nn.activations import ACTIVATIONS, elu_backward, elu_forward, sigmoid

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)  # AlexNet's norm1/norm2 (Caffe definition)


# ----------------------------------------------------------------------------- read-outs and V1
class DenseCache(NamedTuple):
    name: str       # parameters name.W, name.b
    act: str        # a key of ACTIVATIONS
    affine: object  # AffineCache
    activation: object


def dense_forward(p, name, x, act):
    """``act(x W + b)`` with the weights ``name.W``, ``name.b``."""
    y, affine = linear.affine_forward(x, p[name + ".W"], p[name + ".b"])
    y, activation = ACTIVATIONS[act][0](y)
    return y, DenseCache(name, act, affine, activation)


def dense_backward(dy, cache: DenseCache, grads):
    dx, dW, db = linear.affine_backward(ACTIVATIONS[cache.act][1](dy, cache.activation), cache.affine)
    grads[cache.name + ".W"] += dW
    grads[cache.name + ".b"] += db
    return dx


class V1Layer(NamedTuple):
    spec: tuple     # the layer's spec in cfg.v1
    name: str       # its parameters' prefix, "v1.conv2" (convolutions only)
    cache: object


def v1_forward(p, cfg, x):
    """The shared CNN V1 on glimpses ``x (B, C, h, w)``: returns the feature maps and the
    caches of its layers (a list of :class:`V1Layer`)."""
    layers, n_conv = [], 0
    for spec in cfg.v1:
        name = None
        if spec[0] == "conv":
            n_conv += 1
            name, (_, _, _, stride, pad, groups) = f"v1.conv{n_conv}", spec
            if isinstance(pad, tuple):  # asymmetric "SAME" padding: pad explicitly
                x = get_array_module(x).pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]))
                pad = 0
            x, c = conv.conv2d_forward(x, p[name + ".W"], p[name + ".b"], stride, pad, groups)
        elif spec[0] == "pool":
            x, c = conv.maxpool2d_forward(x, spec[1], spec[2])
        elif spec[0] == "lrn":
            x, c = conv.lrn_forward(x, **LRN)
        else:
            x, c = ACTIVATIONS[spec[0]][0](x)
        layers.append(V1Layer(spec, name, c))
    return x, layers


def v1_backward(dx, layers, grads):
    for spec, name, c in reversed(layers):
        if spec[0] == "conv":
            dx, dW, db = conv.conv2d_backward(dx, c)
            grads[name + ".W"] += dW
            grads[name + ".b"] += db
            pad = spec[4]
            if isinstance(pad, tuple):
                dx = dx[:, :, pad[0]:dx.shape[2] - pad[1], pad[2]:dx.shape[3] - pad[3]]
        elif spec[0] == "pool":
            dx = conv.maxpool2d_backward(dx, c)
        elif spec[0] == "lrn":
            dx = conv.lrn_backward(dx, c)
        else:
            dx = ACTIVATIONS[spec[0]][1](dx, c)
    return dx


# ----------------------------------------------------------------------------- appearance attention
class AppearanceCache(NamedTuple):
    glimpse: object  # GlimpseCache
    v1: list         # V1Layer per layer
    dropout: object
    ventral: object  # ConvCache of the 1x1 convolution
    elu: object


def appearance_forward(p, cfg, frame, a, drop=None):
    """Glimpse (2), V1, dropout (``drop``: its keep-mask, None in evaluation) and the ventral
    stream of ``frame (B, C, H, W)`` at attention ``a (B, 4)``. Returns the glimpse ``g``, V1's
    features ``f`` (after dropout) and the ventral features ``nu``, and an :class:`AppearanceCache`."""
    g, gc = attention.glimpse_forward(frame, a, cfg.glimpse_hw)
    g0 = g - g.mean(axis=(2, 3), keepdims=True)  # per-glimpse mean removal (reference, AlexNet input)
    f, v1 = v1_forward(p, cfg, g0)
    f, dc = linear.dropout_forward(f, drop, cfg.dropout)
    nu, vc = conv.conv2d_forward(f, p["ventral.W"], p["ventral.b"])
    nu, ec = elu_forward(nu)
    return (g, f, nu), AppearanceCache(gc, v1, dc, vc, ec)


def appearance_backward(df, dnu, cache: AppearanceCache, grads):
    """Gradient to the attention ``a`` from those of ``f`` and ``nu``."""
    dfv, dW, db = conv.conv2d_backward(elu_backward(dnu, cache.elu), cache.ventral)
    grads["ventral.W"] += dW
    grads["ventral.b"] += db
    dg0 = v1_backward(linear.dropout_backward(df + dfv, cache.dropout), cache.v1, grads)
    dg = dg0 - dg0.mean(axis=(2, 3), keepdims=True)
    return attention.glimpse_backward(dg, cache.glimpse, need_dx=False)[1]  # no gradient to the frame


# ----------------------------------------------------------------------------- dorsal stream
class DorsalLayer(NamedTuple):
    filters: object  # DfnFiltersCache: the MLP that writes this layer's kernels, eq. (3)
    conv: object     # DynConvCache
    elu: object


def dorsal_forward(p, cfg, f, alpha):
    """The dynamic-filter layers of eq. (3) on V1's features ``f``, their kernels written from
    ``alpha (B, n_units)``: returns the last maps, the kernels and biases ``[w1, b1, w2, ...]``
    (the L2 term of eq. 9 counts them) and a list of :class:`DorsalLayer`."""
    d, filters, layers = f, [], []
    for i, (k, maps) in enumerate(cfg.dfn, 1):
        (w, b), fc = dfn.dfn_filters_forward(alpha, p, d.shape[1], maps, k, prefix=f"dfn{i}.")
        d, cc = dfn.dynamic_conv_forward(d, w, b, k // 2)
        d, ec = elu_forward(d)
        layers.append(DorsalLayer(fc, cc, ec))
        filters += [w, b]
    return d, filters, layers


def dorsal_backward(dd, dfilters, layers, grads):
    """Gradients of ``f`` and of ``alpha`` from those of the maps and of the kernels and biases."""
    dalpha = 0
    for i in range(len(layers), 0, -1):
        fc, cc, ec = layers[i - 1]
        dd, dw, db = dfn.dynamic_conv_backward(elu_backward(dd, ec), cc)
        dal, g = dfn.dfn_filters_backward((dw + dfilters[2 * i - 2], db + dfilters[2 * i - 1]), fc)
        dalpha = dalpha + dal
        for name, v in g.items():
            grads[name] += v
    return dd, dalpha


# ----------------------------------------------------------------------------- one step
class StepOut(NamedTuple):
    a_next: object   # (B, 4) attention for the next frame, eq. (7)
    h: object        # (B, n) LSTM state and output o_t, which is also alpha_{t+1}
    c: object        # (B, n) LSTM cell
    pred: object     # (B, 4) box of this frame, eq. (8), normalised coordinates
    logits: object   # (B, h_v, w_v) of the location map s_t
    g: object        # (B, C, h, w) the glimpse
    filters: list    # the dynamic kernels and biases of this step


class StepCache(NamedTuple):
    appearance: AppearanceCache
    dorsal: list     # DorsalLayer per layer
    locmap: object   # ConvCache of the location map's 1x1 convolution
    s: object        # (B, 1, h_v, w_v) the location map
    nu: object
    feat: DenseCache
    lstm: object     # LSTMCache
    mask: DenseCache
    att: tuple       # DenseCache of the two attention read-out layers
    box: tuple       # the same for the box read-out
    d_att: object    # Delta a of eq. (6)
    gain: object     # tanh(c) of eq. (7)


def step_forward(p, cfg, frame, a, h, c, alpha, noise=None):
    """One recurrent step (eqs. 2-8) on ``frame (B, C, H, W)`` from attention ``a (B, 4)``, the
    LSTM state ``h, c`` and the appearance ``alpha``. ``noise``: None (evaluation) or a dict with
    the step's ``drop`` (dropout keep-mask), ``zh``, ``zc`` (zoneout keep-old masks) and optionally
    ``kick (B, 4)``, a constant added to ``a_{t+1}`` (training moves the window; no gradient).
    Returns a :class:`StepOut` and a :class:`StepCache`."""
    xp, B = get_array_module(frame), frame.shape[0]
    noise = noise or dict(drop=None, zh=None, zc=None)
    (g, f, nu), app = appearance_forward(p, cfg, frame, a, noise["drop"])
    d, filters, dorsal = dorsal_forward(p, cfg, f, alpha)            # eq. (3)
    logits, loc = conv.conv2d_forward(d, p["locmap.W"], p["locmap.b"])
    s = sigmoid(logits)                                               # location map s_t
    x_in = xp.concatenate([(nu * s).reshape(B, -1), a], axis=1)
    v, fc = dense_forward(p, "feat", x_in, "elu")                     # eq. (4)
    (h, c), lc = lstm.lstm_step_forward(v, h, c, p["lstm.Wx"], p["lstm.Wh"], p["lstm.b"],
                                        noise["zh"], noise["zc"], cfg.zoneout, cfg.zoneout)  # eq. (5)
    m, mc = dense_forward(p, "mask", s.reshape(B, -1), "elu")
    r, a1c = dense_forward(p, "att1", xp.concatenate([h, m], axis=1), "elu")
    d_att, a2c = dense_forward(p, "att2", r, "tanh")                  # eq. (6)
    q, b1c = dense_forward(p, "box1", h, "elu")
    d_box, b2c = dense_forward(p, "box2", q, "tanh")
    gain = xp.tanh(p["att_gain"])
    # eq. (8) from the window or (box_from_object) its object part, as the reference's att_pred_bbox_wo_bias
    base = context_window(a, 1 / cfg.init_window_scale) if cfg.box_from_object else a
    out = StepOut(a_next=a + gain * d_att + noise.get("kick", 0), h=h, c=c, pred=base + d_box, logits=logits[:, 0],
                  g=g, filters=filters)                                    # eqs. (7), (8)
    return out, StepCache(app, dorsal, loc, s, nu, fc, lc, mc, (a1c, a2c), (b1c, b2c), d_att, gain)


def step_backward(d: StepOut, da_loss, cache: StepCache, cfg, grads):
    """Backward of :func:`step_forward`. ``d`` holds the gradients of the step's outputs (its
    ``g`` is unused), ``da_loss`` that of ``a`` from the attention loss.
    Returns ``(da, dh_prev, dc_prev, dalpha)``."""
    k, n = cache, cfg.n_units
    dbase = context_window_backward(d.pred, 1 / cfg.init_window_scale) if cfg.box_from_object else d.pred
    da = da_loss + dbase + d.a_next
    dq = dense_backward(d.pred, k.box[1], grads)
    dh = d.h + dense_backward(dq, k.box[0], grads)
    grads["att_gain"] += (d.a_next * k.d_att).sum().reshape(1) * (1 - k.gain ** 2)
    dr = dense_backward(d.a_next * k.gain, k.att[1], grads)
    dz = dense_backward(dr, k.att[0], grads)
    dh = dh + dz[:, :n]
    ds = dense_backward(dz[:, n:], k.mask, grads).reshape(k.s.shape)
    dv, dh_prev, dc_prev, dWx, dWh, dbl = lstm.lstm_step_backward((dh, d.c), k.lstm)
    for name, g in zip(("lstm.Wx", "lstm.Wh", "lstm.b"), (dWx, dWh, dbl)):
        grads[name] += g
    dx_in = dense_backward(dv, k.feat, grads)
    da = da + dx_in[:, -4:]
    dmasked = dx_in[:, :-4].reshape(k.nu.shape)
    dnu = dmasked * k.s
    ds = ds + (dmasked * k.nu).sum(axis=1, keepdims=True)
    dlogits = ds * k.s * (1 - k.s) + d.logits[:, None]
    dd, dW, db = conv.conv2d_backward(dlogits, k.locmap)
    grads["locmap.W"] += dW
    grads["locmap.b"] += db
    df, dalpha = dorsal_backward(dd, d.filters, k.dorsal, grads)
    da = da + appearance_backward(df, dnu, k.appearance, grads) * cfg.glimpse_grad  # False: stop-gradient
    return da, dh_prev, dc_prev, dalpha


# ----------------------------------------------------------------------------- the initial state
class InitCache(NamedTuple):
    nu: object           # the ventral features of the first glimpse
    appearance: AppearanceCache
    feat: DenseCache
    lstm: object
    tanh_bias: object    # tanh(att_bias)


def init_forward(p, cfg, frame0, box0):
    """Initial state from the first frame and box: attention ``a_1`` (with the learnable bias
    ``0.25 tanh(att_bias)``, as the reference), and ``h_0, c_0`` from one LSTM step on the
    unmasked ventral features of the first glimpse. Returns ``(a1, h0, c0)`` and an :class:`InitCache`."""
    xp, B = get_array_module(frame0), frame0.shape[0]
    tb = xp.tanh(p["att_bias"])
    # box0 was checked by the caller (validate_inputs, Tracker.init): no second device read here
    a1 = attention.box_to_attention(context_window(box0, cfg.init_window_scale), frame0.shape[2:], validate=False)
    a1 = (a1 + 0.25 * tb).astype(frame0.dtype)
    (_, _, nu), app = appearance_forward(p, cfg, frame0, a1)
    v, fc = dense_forward(p, "feat", xp.concatenate([nu.reshape(B, -1), a1], axis=1), "elu")
    zeros = xp.zeros((B, cfg.n_units), frame0.dtype)
    (h, c), lc = lstm.lstm_step_forward(v, zeros, zeros, p["lstm.Wx"], p["lstm.Wh"], p["lstm.b"])
    return (a1, h, c), InitCache(nu, app, fc, lc, tb)


def context_window(box, k):
    """Boxes ``(..., 4)`` enlarged ``k`` times about their centres: the object and its context."""
    xp = get_array_module(box)
    return xp.concatenate([box[..., :2] - (k - 1) * box[..., 2:] / 2, k * box[..., 2:]], axis=-1)


def context_window_backward(dout, k):
    """Gradient of :func:`context_window` with respect to its boxes."""
    xp = get_array_module(dout)
    return xp.concatenate([dout[..., :2], k * dout[..., 2:] - (k - 1) * dout[..., :2] / 2], axis=-1)


def init_backward(da, dh, dc, cache: InitCache, cfg, grads):
    dv, _, _, dWx, dWh, db = lstm.lstm_step_backward((dh, dc), cache.lstm)
    for name, g in zip(("lstm.Wx", "lstm.Wh", "lstm.b"), (dWx, dWh, db)):
        grads[name] += g
    dx = dense_backward(dv, cache.feat, grads)
    da = da + dx[:, -4:]
    # df = 0: the first glimpse's features feed no dorsal stream
    da = da + appearance_backward(0, dx[:, :-4].reshape(cache.nu.shape), cache.appearance, grads) * cfg.glimpse_grad
    grads["att_bias"] += (da * 0.25 * (1 - cache.tanh_bias ** 2)).sum(axis=0)


# ----------------------------------------------------------------------------- over the sequence
class Sequence(NamedTuple):
    pred: object      # (B, T, 4) boxes, eq. (8), pixels
    att: object       # (B, T, 4) attention windows, pixels
    logits: object    # (B, T, h_v, w_v) of the location maps
    glimpses: object  # (B, T, C, h, w)
    filters: list     # per step, the dynamic kernels and biases


class SequenceCache(NamedTuple):
    init: InitCache   # None when the sequence started from a given state
    steps: list       # StepCache per step
    scale: object     # [H, W, H, W]: normalised coordinates to pixels


def sequence_forward(p, cfg, frames, box0, noise=None, state=None):
    """HART over ``frames (B, T, C, H, W)`` from the first boxes ``box0 (B, 4)`` (pixels): the
    initial state, then :func:`step_forward` for every frame, the first one included (as the
    reference), or from a :class:`Tracker`'s ``state = (a, h, c, alpha)`` with no gradient to it
    (truncated backpropagation through time). Returns a :class:`Sequence` and a :class:`SequenceCache`."""
    xp = get_array_module(frames)
    H, W = frames.shape[3:]
    scale = xp.asarray([H, W, H, W], frames.dtype)
    (a, h, c), init = init_forward(p, cfg, frames[:, 0], box0) if state is None else (state[:3], None)
    alpha = h if state is None else state[3]
    outs, atts, caches = [], [], []
    for t in range(frames.shape[1]):
        o, k = step_forward(p, cfg, frames[:, t], a, h, c, alpha, None if noise is None else noise[t])
        outs.append(o)
        atts.append(a)
        caches.append(k)
        a, h, c, alpha = o.a_next, o.h, o.c, o.h
    seq = Sequence(pred=xp.stack([o.pred for o in outs], axis=1) * scale, att=xp.stack(atts, axis=1) * scale,
                   logits=xp.stack([o.logits for o in outs], axis=1), glimpses=xp.stack([o.g for o in outs], axis=1),
                   filters=[o.filters for o in outs])
    return seq, SequenceCache(init, caches, scale)


def sequence_backward(d: Sequence, cache: SequenceCache, cfg, grads):
    """Backpropagation through time: ``d`` holds the gradients of the :class:`Sequence`'s
    ``pred``, ``att``, ``logits`` and ``filters`` (pixels for the boxes)."""
    xp = get_array_module(cache.scale)
    dpred, datt = d.pred * cache.scale, d.att * cache.scale
    B, dtype = dpred.shape[0], cache.scale.dtype
    da = xp.zeros((B, 4), dtype)
    dh, dc = xp.zeros((B, cfg.n_units), dtype), xp.zeros((B, cfg.n_units), dtype)
    for t in range(len(cache.steps) - 1, -1, -1):
        dout = StepOut(a_next=da, h=dh, c=dc, pred=dpred[:, t], logits=d.logits[:, t], g=None, filters=d.filters[t])
        da, dh_prev, dc, dalpha = step_backward(dout, datt[:, t], cache.steps[t], cfg, grads)
        dh = dh_prev + dalpha  # h_{t-1} is both the LSTM state and the appearance alpha_t
    if cache.init is not None:  # else the sequence started from a given state: the gradient stops there
        init_backward(da, dh, dc, cache.init, cfg, grads)


# ----------------------------------------------------------------------------- loss and metric
class LossCache(NamedTuple):
    tracking: object     # caches of the three terms, eqs. (10)-(12)
    attention: object
    appearance: object
    adaptive: object     # AdaptiveCache of the learned weights
    filters: list        # the dynamic filters, for their L2 term (a mean over the B T steps)


def loss_forward(p, cfg, seq: Sequence, target, pres, image_hw, map_pres=None):
    """The loss of eq. (9) on a :class:`Sequence`: terms (10)-(12) with learned weights and ``R(lambda)``,
    and the L2 term on the weights and dynamic filters, against boxes ``target`` where ``pres`` (both as
    in :func:`forward`) is 1 (the location map's term where ``map_pres`` is, default ``pres``); ``image_hw``:
    the frames' ``(H, W)``. Returns ``(loss, terms)`` and a :class:`LossCache`."""
    xp, (B, T) = get_array_module(seq.pred), pres.shape
    mp = pres if map_pres is None else map_pres
    lt, ct = L.tracking_loss_forward(seq.pred, target, pres, centre=cfg.centre_loss, scale=cfg.scale_loss)
    context = context_window(target, cfg.init_window_scale)
    ls, cs = (L.tracking_loss_forward(seq.att, context, pres, centre=cfg.centre_loss, scale=cfg.scale_loss)
              if cfg.context_attention else L.attention_loss_forward(seq.att, target, pres, image_hw))
    tau = L.appearance_target(target, seq.att, seq.logits.shape[2:]) * mp[..., None, None]
    la, ca = L.appearance_loss_forward(seq.logits, tau, mp)
    total, cad = L.adaptive_loss_forward(xp.stack([lt, ls, la]), p["loss_v"])
    r_theta, _ = L.l2_forward([v for k, v in p.items() if is_weight(k)])
    r_psi, _ = L.l2_forward([f for fs in seq.filters for f in fs])
    reg = cfg.l2 * (r_theta + r_psi / (B * T))
    terms = dict(tracking=lt, attention=ls, appearance=la, l2=reg,
                 lambda_tracking=cad.lam[0], lambda_attention=cad.lam[1], lambda_appearance=cad.lam[2])
    return (total + reg, terms), LossCache(ct, cs, ca, cad, seq.filters)


def loss_backward(p, cfg, cache: LossCache, grads) -> Sequence:
    """Gradients of the loss: those of ``loss_v`` and of the weights' L2 term go into ``grads``;
    returns those of the :class:`Sequence` (``glimpses`` None)."""
    v = cache.adaptive.v
    dterms, dv = L.adaptive_loss_backward(get_array_module(v).asarray(1.0, v.dtype), cache.adaptive)
    grads["loss_v"] += dv
    for k, w in p.items():
        if is_weight(k):
            grads[k] += cfg.l2 * w
    n_steps = cache.tracking.grad.shape[0] * cache.tracking.grad.shape[1]  # B T
    return Sequence(pred=L.tracking_loss_backward(dterms[0], cache.tracking),
                    att=L.attention_loss_backward(dterms[1], cache.attention),  # either attention loss
                    logits=L.appearance_loss_backward(dterms[2], cache.appearance), glimpses=None,
                    filters=[[cfg.l2 / n_steps * f for f in fs] for fs in cache.filters])


def is_weight(name: str) -> bool:
    """Weight matrices and kernels (``*.W``, ``*.Wx``, ``*_W``) get the L2 term of eq. (9);
    biases, gains and loss weights do not (as the reference)."""
    last = name.split(".")[-1]
    return last.startswith("W") or last.endswith("_W")


# ----------------------------------------------------------------------------- the whole model
def sample_noise(cfg: Config, rng: np.random.Generator, batch: int, steps: int, xp=np):
    """Training-mode randomness as explicit arrays (so gradient checks are deterministic):
    per step a dropout keep-mask after V1 and zoneout keep-old masks for h and c. On a GPU
    they are drawn there, by a device generator seeded from ``rng`` (nothing to copy)."""
    fshape = v1_shapes(cfg)[1]  # V1's output (C_v, h_v, w_v)
    if xp is not np:
        rng = xp.random.default_rng(int(rng.integers(2 ** 63)))
    return [dict(drop=linear.dropout_mask(rng, (batch, *fshape), cfg.dropout, xp),
                 zh=lstm.zoneout_masks(rng, (batch, cfg.n_units), cfg.zoneout, xp),
                 zc=lstm.zoneout_masks(rng, (batch, cfg.n_units), cfg.zoneout, xp)) for _ in range(steps)]


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


class Cache(NamedTuple):
    cfg: Config
    params: dict
    sequence: SequenceCache
    loss: LossCache


def forward(p, cfg: Config, frames, boxes, presence, noise=None, check_boxes=True, state=None):
    """Run HART over ``frames (B, T, C, H, W)`` from the first boxes ``boxes[:, 0]`` and score it.

    Args: boxes ``(B, T, 4)`` pixels ``[y, x, h, w]`` (targets for t >= 2); presence ``(B, T)``
      1 where the object is visible; noise from :func:`sample_noise` (training) or None;
      check_boxes: False skips the check of the first boxes' values (shapes are always
      checked), which reads them back once. Batches from ``WindowSet.gather`` were checked on
      the host; ``train`` passes False, so forward and :func:`backward` never wait for a GPU.
      state: a :class:`Tracker`'s to start from (:func:`sequence_forward`), the first frame then scored.
    Returns ``out``: ``loss`` (0-d), ``terms`` (dict of 0-d arrays: tracking, attention,
    appearance, l2, and lambda_*), ``pred`` and ``att`` boxes ``(B, T, 4)`` in pixels, ``iou``
    ``(B, T)`` (the metric, zero where not scored), ``presence`` (what is scored),
    ``glimpses (B, T, C, h, w)``, ``maps (B, T, h_v, w_v)``; and a :class:`Cache` for :func:`backward`.
    """
    validate_inputs(cfg, frames, boxes, presence, check_boxes and state is None)
    xp = get_array_module(frames)
    seq, seq_cache = sequence_forward(p, cfg, frames, boxes[:, 0], noise, state)
    pres = presence.astype(frames.dtype)
    pres[:, 0] *= state is not None  # the first box is given, not predicted (unless we start from a state)
    # absent objects have no box: a dummy one keeps IoU finite; the mask zeroes its loss
    target = xp.where(pres[..., None] > 0, boxes, xp.asarray([0, 0, 1, 1], frames.dtype))
    (loss, terms), loss_cache = loss_forward(p, cfg, seq, target, pres, frames.shape[3:])
    out = dict(loss=loss, terms=terms, pred=seq.pred, att=seq.att, iou=iou(seq.pred, target) * pres,
               presence=pres, glimpses=seq.glimpses, maps=sigmoid(seq.logits))
    return out, Cache(cfg, p, seq_cache, loss_cache)


def backward(cache: Cache) -> dict:
    """Gradients of ``out["loss"]`` for every parameter (same keys and dtypes as ``params``), by
    backpropagation through time."""
    grads = defaultdict(lambda: 0)
    sequence_backward(loss_backward(cache.params, cache.cfg, cache.loss, grads), cache.sequence, cache.cfg, grads)
    xp = get_array_module(cache.sequence.scale)
    return {k: (grads[k] if not isinstance(grads[k], int) else xp.zeros_like(v)).astype(v.dtype, copy=False)
            for k, v in cache.params.items()}
