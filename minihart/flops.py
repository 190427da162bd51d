"""FLOPs of the model, counted analytically: 2 per multiply-add of every matrix product and
convolution (element-wise work left out); a layer's backward pass costs twice its forward, except
the glimpse's (no image gradient). Used by ``python -m minihart.bench`` and notebook 09.
"""
from __future__ import annotations

from minihart.model.params import v1_shapes


def frame_flops(cfg, image_hw):
    """FLOPs of one frame of one sequence: ``dict(glimpse, glimpse_bwd, v1, init, step)``;
    ``init`` and ``step`` leave out the glimpse (appearance + LSTM, and the whole time step);
    ``v1`` is V1's part of both."""
    (H, W), (h, w), C = image_hw, cfg.glimpse_hw, cfg.channels
    u, m = cfg.n_units, cfg.mask_features
    v1 = 0
    for spec, (_, (f, ho, wo)) in zip(cfg.v1, v1_shapes(cfg)[0]):
        if spec[0] == "conv":
            v1 += 2 * f * (C // spec[5]) * spec[2] ** 2 * ho * wo
            C = f
    cv, hv, wv = v1_shapes(cfg)[1]
    n = hv * wv
    init = v1 + 2 * cfg.ventral_maps * cv * n + 2 * (cfg.ventral_maps * n + 4) * u + 2 * 2 * u * 4 * u
    dorsal, cin = 0, cv
    for k, maps in cfg.dfn:  # filter MLP and the per-sample convolution
        dorsal += 2 * u * (u + maps * cin * k * k + maps) + 2 * maps * cin * k * k * n
        cin = maps
    heads = 2 * cin * n + 2 * n * m + 2 * (u + m) * u + 2 * u * 4 + 2 * u * u + 2 * u * 4
    c = cfg.channels
    return dict(glimpse=2 * c * H * w * (W + h), glimpse_bwd=2 * c * H * w * (W + 2 * h),
                v1=v1, init=init, step=init + dorsal + heads)


def model_flops(cfg, image_hw, B, T):
    """``(train, track)``: FLOPs of a training step on (B, T) and of tracking one frame."""
    f = frame_flops(cfg, image_hw)
    train = B * ((T + 1) * (f["glimpse"] + f["glimpse_bwd"]) + 3 * (f["init"] + T * f["step"]))
    return train, f["glimpse"] + f["step"]
