"""Datasets. Every loader yields batches in one format::

    frames   (B, T, C, H, W) float32 in [0, 1]
    boxes    (B, T, 4)       float32 [y, x, h, w] in pixels, (y, x) the top-left corner
    presence (B, T)          float32, 1 on labelled frames, 0 on padding / absent target

Frame 0 of every sequence is labelled: the tracker starts from ``boxes[:, 0]``. Batches are
NumPy arrays, or with ``xp=cupy`` made on the GPU: the stored uint8 frames travel there and
become float32 there, and the first boxes are checked on the host before the move.

API (what ``train``, ``evaluate`` and ``track`` call)::

    ds = make_dataset(name, root=None, split="train", **options)
        name: "synthetic" (embedded, the default), "kth", "kitti", "otb" (one folder) or
              "sot" (real tracking sequences, OTB / GOT-10k / LaSOT, split into train/ val/)
        root: data folder; default $MINIHART_DATA/<name>, or ./data/<name> (unused by synthetic)
        raises DatasetNotPrepared (message: folder, the data_scripts command, the offline
        alternative) when KTH / KITTI are not downloaded and prepared
    ds.name, ds.image_hw, ds.channels
    ds.batch(rng, batch_size, seq_len, xp=np)      -> frames, boxes, presence (random windows)
    ds.batches(batch_size, seq_len, seed=None, epoch=0, xp=np)
        -> iterator over every window once: in order (seed=None, evaluation) or shuffled
           reproducibly by (seed, epoch) and augmented (training epochs)
    ds.num_windows(seq_len), ds.batches_per_epoch(batch_size, seq_len)
    seq_len=None in batches()/num_windows(): whole tracks (KTH, KITTI, OTB), for evaluation

    Curriculum(start=5, stop=30, threshold=.7, threshold_decrease=.05, min_epochs=13)
        .seq_len; .epoch_end(train_iou) -> True when the sequences got longer
    otb.load_sequence(folder, frame_hw=None, channels=3) -> Sequence(name, frames uint8
        (N, H, W, C), boxes or None, presence or None, scale)   (for ``track`` on real video)

Options per dataset: synthetic: flavour ("kth" grey 120x160 | "kitti" colour 187x621),
frame_hw, channels, difficulty ("easy" | "medium" | "hard" | 0..1), size, seed and single
knobs (see :mod:`minihart.data.synthetic`); kth: split_by, test_subjects, overlap, augment; kitti:
split_by ("frames" | "sequence"), train_fraction, overlap, augment, channels,
max_truncation, max_occlusion; otb: frame_hw, channels, overlap; sot: frame_hw, channels,
overlap, augment, max_stride, max_zoom, box_jitter, mix, distract, patches, stretch, photo,
zoom_drift, occlude, list_file, cache (see :mod:`minihart.data.sot`).
Getting the real data: ``python data_scripts/get_kth.py``, ``python data_scripts/get_kitti.py``
and ``python data_scripts/get_sot.py`` (OTB / GOT-10k; the real mini-set: see the README).
"""
from __future__ import annotations

import os
from pathlib import Path

from minihart.data import kitti, kth, otb, sot
from minihart.data.batching import Curriculum, DatasetNotPrepared, TrackSet, WindowSet, pad_batch

__all__ = ["DATASETS", "Curriculum", "DatasetNotPrepared", "TrackSet", "WindowSet", "data_root",
           "make_dataset", "pad_batch"]
DATASETS = ("synthetic", "kth", "kitti", "otb", "sot")


def data_root(name, root=None):
    """``root`` if given, else ``$MINIHART_DATA/<name>``, else ``data/<name>``."""
    return Path(root) if root is not None else Path(os.environ.get("MINIHART_DATA", "data")) / name


def make_dataset(name, root=None, split="train", **options):
    """The dataset ``name`` (see the module docstring for names, splits and options)."""
    if name == "synthetic":
        # imported here so that `python -m minihart.data.synthetic` runs without a warning
        from minihart.data.synthetic import Synthetic  # noqa: PLC0415
        return Synthetic(split, **options)
    if name in ("kth", "kitti"):
        return {"kth": kth, "kitti": kitti}[name].load(data_root(name, root), split, **options)
    if name == "sot":
        return sot.load(data_root("real-sot", root), split, **options)
    if name == "otb":
        if root is None:
            raise ValueError("otb: give root, a sequence folder with img/ and groundtruth_rect.txt")
        return otb.load(root, **options)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
