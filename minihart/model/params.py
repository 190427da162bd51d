"""Parameters of the tracker: a flat ``dict[str, array]`` with readable names, their
initialisation (paper section 5 and the reference code), ``.npz`` files with the config
stored alongside, and the AlexNet importer for the ``kitti`` preset.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from minihart.backend import asnumpy
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
    p = {}
    c_in = cfg.channels
    n_conv = 0
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
    p["box1.W"], p["box1.b"] = init_affine(rng, u + (cfg.mask_features if cfg.box_reads_mask else 0), u)
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


def atomic_savez(path: str, **arrays) -> None:
    """``np.savez`` to a temporary file in the same folder, then ``os.replace``: a reader
    never sees a half-written file, even if the process is killed mid-write."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(path: str, params: dict, cfg: Config, **extra) -> None:
    """Parameters as ``param/<name>`` plus the config as JSON, written atomically.
    ``extra`` arrays (optimiser state, RNG state, ...) are stored under their own names."""
    arrays = {f"param/{k}": asnumpy(v) for k, v in params.items()}
    arrays["config"] = np.array(json.dumps(cfg.to_dict()))
    arrays.update({k: np.asarray(asnumpy(v)) for k, v in extra.items()})  # CuPy arrays too
    atomic_savez(path, **arrays)


def load(path: str, expect_preset: str | None = None):
    """Read a file written by :func:`save`: returns ``(params, cfg, extra)``.

    Raises ``ValueError`` naming the file when it is missing, corrupt, not a minihart file,
    or (with ``expect_preset``) made for another preset.
    """
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise ValueError(f"checkpoint {path!r} is not a readable .npz file ({exc})") from None
    if "config" not in data:
        raise ValueError(f"checkpoint {path!r} has no 'config' entry: not a minihart checkpoint")
    try:
        cfg = Config.from_dict(json.loads(str(data.pop("config"))))
    except (ValueError, TypeError) as exc:  # broken JSON, unknown fields, impossible values
        raise ValueError(f"checkpoint {path!r} has an unusable config ({exc})") from None
    if expect_preset is not None and cfg.name != expect_preset:
        raise ValueError(f"checkpoint {path!r} was made for preset {cfg.name!r}, not {expect_preset!r}")
    params = {k[6:]: v for k, v in data.items() if k.startswith("param/")}
    expected = init_params(cfg, np.random.default_rng(0))
    bad = [k for k in expected if k not in params or params[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"checkpoint {path!r} does not match its config: missing or misshaped {bad[:5]}")
    bad = [k for k in expected if params[k].dtype.kind != "f" or not np.isfinite(params[k]).all()]
    if bad:  # a run that diverged and was saved anyway would evaluate to NaN boxes without a word
        raise ValueError(f"checkpoint {path!r} has non-finite or non-float parameters {bad[:5]}")
    return params, cfg, {k: v for k, v in data.items() if not k.startswith("param/")}


def load_alexnet(params: dict, path: str) -> dict:
    """Copy AlexNet conv1-3 from a ``bvlc_alexnet.npy`` file into ``v1.conv{1,2,3}``.

    The widely used file is a pickled dict ``{"conv1": [W, b], ...}`` with TensorFlow layout
    ``W: (kh, kw, C_in/groups, C_out)``; we transpose to ``(C_out, C_in/groups, kh, kw)``.
    Colour order: that file expects BGR input in [0, 255] (Caffe); the model feeds RGB glimpses
    in [0, 1] with the per-glimpse mean removed, so fine-tuning adapts the first layer.
    """
    try:
        weights = np.load(path, allow_pickle=True, encoding="latin1").item()
    except Exception as exc:
        raise ValueError(f"{path!r} is not a bvlc_alexnet.npy weights dictionary ({exc})") from None
    out = dict(params)
    for i in (1, 2, 3):
        key = f"conv{i}"
        if key not in weights:
            raise ValueError(f"{path!r} has no {key!r} entry")
        W, b = (np.asarray(a, np.float32) for a in weights[key][:2])
        W = W.transpose(3, 2, 0, 1)
        if W.shape != params[f"v1.{key}.W"].shape or b.shape != params[f"v1.{key}.b"].shape:
            raise ValueError(f"{path!r}: {key} has W{W.shape} b{b.shape} after transposing, the "
                             f"model needs W{params[f'v1.{key}.W'].shape} b{params[f'v1.{key}.b'].shape}")
        out[f"v1.{key}.W"], out[f"v1.{key}.b"] = W, b
    return out
