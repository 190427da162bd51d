"""Checkpoint files: parameters as ``.npz`` with the config stored alongside (and whatever a
command adds: optimiser, curriculum and RNG state), written atomically and checked when read;
and the importer of AlexNet's weights for the ``kitti`` preset.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from minihart.backend import asnumpy
from minihart.model.config import Config
from minihart.model.params import init_params


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


def config_from_dict(d: dict) -> Config:
    """The inverse of ``Config.to_dict`` after a trip through JSON (lists back to tuples)."""
    def tuples(v):
        return tuple(tuples(i) for i in v) if isinstance(v, (list, tuple)) else v
    return Config(**{k: tuples(v) for k, v in d.items()})


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
        cfg = config_from_dict(json.loads(str(data.pop("config"))))
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
