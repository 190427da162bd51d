"""Checkpoint files: parameters as ``.npz`` with the config stored alongside (and whatever a
command adds: optimiser, curriculum and RNG state), written atomically and checked when read;
and the importers of pretrained first layers: AlexNet's for the ``kitti`` preset, DCFNet's for a
``real`` model (``train --dcfnet``).
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


# DCFNet (Wang et al. 2017, github.com/foolwood/DCFNet, MIT licence): two 3x3 convolutions and an LRN that its
# authors trained end to end for correlation-filter tracking on ImageNet VID. The 2x2 max-pool is ours: V1's map is
# then the size of SMALL_V1's (16x16 from a 32x32 glimpse), and the streams after it keep their shapes.
DCFNET_V1 = (("conv", 32, 3, 1, 1, 1), ("relu",), ("conv", 32, 3, 1, 1, 1), ("lrn",), ("pool", 2, 2))


def load_dcfnet(params: dict, path: str) -> dict:
    """Copy DCFNet's conv1 and conv2 from its MatConvNet file (``DCFNet/DCFNet-net-7-125-2.mat`` of
    its repository) into ``v1.conv1`` and ``v1.conv2`` of a model whose V1 is :data:`DCFNET_V1`.

    The file holds ``net.layers``: conv1 ``W (3, 3, 3, 32)``, relu, conv2 ``W (3, 3, 32, 32)``, an
    LRN ``[5, 1, 2e-5, 0.75]`` (MatConvNet: ``x / (1 + 2e-5 sum x^2)^0.75``, our LRN with ``k = 1``,
    exactly). DCFNet reads RGB in [0, 255] less the mean colour, the model glimpses in [0, 1] less
    their mean: the weights are transposed to ``(C_out, C_in, kh, kw)`` and the biases divided by
    255, so that (ReLU being positively homogeneous) V1 computes DCFNet's conv2 / 255; a grey
    model's conv1 sums the three colour filters (a grey pixel is R = G = B).
    """
    try:
        from scipy.io import loadmat  # noqa: PLC0415  (only this importer needs scipy)
    except ImportError:  # pragma: no cover - scipy is in requirements.txt
        raise ValueError("reading DCFNet's .mat file needs scipy: pip install scipy") from None
    try:
        layers = loadmat(path, squeeze_me=True, struct_as_record=False)["net"].layers
        convs = {str(layer.name): [np.asarray(a, np.float32) for a in layer.weights]
                 for layer in layers if str(layer.type) == "conv"}
    except Exception as exc:
        raise ValueError(f"{path!r} is not DCFNet's MatConvNet network file ({type(exc).__name__}: {exc})") from None
    out = dict(params)
    for key in ("conv1", "conv2"):
        if key not in convs or len(convs[key]) != 2:
            raise ValueError(f"{path!r} has no {key!r} layer with weights and biases")
        W, b = convs[key]
        W = W.reshape(W.shape + (1,) * (4 - W.ndim)).transpose(3, 2, 0, 1)  # squeeze_me drops a 1-channel axis
        name, need = f"v1.{key}", params.get(f"v1.{key}.W")
        if key == "conv1" and need is not None and W.shape[1] == 3 and need.shape[1] == 1:  # a grey model
            W = W.sum(axis=1, keepdims=True)
        if need is None or W.shape != need.shape or b.shape != params[name + ".b"].shape:
            raise ValueError(f"{path!r}: {key} has W{W.shape} b{b.shape} after transposing; the model needs "
                             f"W{None if need is None else need.shape} (is its V1 DCFNET_V1?)")
        out[name + ".W"], out[name + ".b"] = W, b / 255.0
    return out
