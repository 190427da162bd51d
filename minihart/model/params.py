"""Parameters of the tracker: a flat ``dict[str, array]`` with readable names, their shapes
and initialisation (paper section 5 and the reference code). Files of them (checkpoints, the
AlexNet importer) are :mod:`minihart.checkpoint`.
"""
from __future__ import annotations

import numpy as np

from minihart.model.config import Config
from minihart.nn.dfn import init_dfn_params
from minihart.nn.linear import init_affine
from minihart.nn.lstm import init_lstm_params


def v1_shapes(cfg: Config):
    """Walk V1: returns ``[(kind, (C, H, W) after the layer)]`` and ``(C_v, h_v, w_v)``."""
    c, h, w = cfg.channels, *cfg.glimpse_hw
    out = []
    for spec in cfg.v1:
        if spec[0] in ("conv", "pool"):
            k, s = spec[2:4] if spec[0] == "conv" else spec[1:3]
            pad = spec[4] if spec[0] == "conv" else 0
            top, bot, left, right = pad if isinstance(pad, tuple) else (pad,) * 4
            hp, wp = h + top + bot, w + left + right
            if (hp - k) % s or (wp - k) % s or hp < k or wp < k:
                raise ValueError(f"preset {cfg.name!r}: V1 layer {spec} does not fit its {h}x{w} input "
                                 f"(size {k}, stride {s}, padding {pad} must give an integer output size)")
            c, h, w = (spec[1] if spec[0] == "conv" else c), (hp - k) // s + 1, (wp - k) // s + 1
        out.append((spec[0], (c, h, w)))
    return out, (c, h, w)


def init_params(cfg: Config, rng: np.random.Generator) -> dict:
    """Fresh float32 parameters (NumPy; move them with ``backend.to_device``).

    Initialisation: Glorot-uniform for layers, He-normal for V1 convolutions, orthogonal LSTM
    weights with forget bias 1, small read-out weights for the attention and box updates
    (uniform +-1e-3 as the reference's ``_rec_init``), attention gain ``c`` = cfg.att_gain,
    the learnable bias on the first attention = 0, loss-weight variables v = 1 (lambda = 1).
    """
    p, c_in, n_conv = {}, cfg.channels, 0
    for spec in cfg.v1:
        if spec[0] == "conv":
            n_conv += 1
            _, f, k, _, _, groups = spec
            fan_in = c_in // groups * k * k
            p[f"v1.conv{n_conv}.W"] = (rng.standard_normal((f, c_in // groups, k, k))
                                       * np.sqrt(2.0 / fan_in)).astype(np.float32)
            p[f"v1.conv{n_conv}.b"] = np.zeros(f, np.float32)
            c_in = f
    _, (cv, hv, wv) = v1_shapes(cfg)
    u = cfg.n_units
    p["ventral.W"] = (rng.standard_normal((cfg.ventral_maps, cv, 1, 1)) * np.sqrt(2.0 / cv)).astype(np.float32)
    p["ventral.b"] = np.zeros(cfg.ventral_maps, np.float32)
    cin = cv
    for i, (k, maps) in enumerate(cfg.dfn, 1):
        p.update(init_dfn_params(rng, f"dfn{i}.", u, cin, maps, k))
        cin = maps
    p["locmap.W"] = (rng.standard_normal((1, cin, 1, 1)) * np.sqrt(1.0 / cin)).astype(np.float32)
    p["locmap.b"] = np.zeros(1, np.float32)
    p["feat.W"], p["feat.b"] = init_affine(rng, cfg.ventral_maps * hv * wv + 4, u)
    p.update({f"lstm.{k}": v for k, v in init_lstm_params(rng, u, u).items()})
    p["mask.W"], p["mask.b"] = init_affine(rng, hv * wv, cfg.mask_features)
    p["att1.W"], p["att1.b"] = init_affine(rng, u + cfg.mask_features, u)
    p["att2.W"], p["att2.b"] = init_affine(rng, u, 4, scale=1e-3)
    p["box1.W"], p["box1.b"] = init_affine(rng, u, u)
    p["box2.W"], p["box2.b"] = init_affine(rng, u, 4, scale=1e-3)
    p["att_gain"] = np.full(1, cfg.att_gain, np.float32)
    p["att_bias"] = np.zeros(4, np.float32)
    p["loss_v"] = np.ones(3, np.float32)
    return p


def count_params(params: dict) -> dict:
    """Parameter count per block (the name before the first dot) and ``total``."""
    counts = {}
    for k, v in params.items():
        block = k.split(".")[0]
        counts[block] = counts.get(block, 0) + int(np.prod(v.shape))
    counts["total"] = sum(counts.values())
    return counts
