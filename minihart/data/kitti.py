"""KITTI tracking (Geiger et al. 2013): cars, vans, trucks, pedestrians, cyclists, trams...

Sources (``python data_scripts/get_kitti.py`` fetches them): ``data_tracking_image_2.zip``
(left colour frames ``training/image_02/SSSS/FFFFFF.png``) and ``data_tracking_label_2.zip``
(``training/label_02/SSSS.txt``). A label line has 17 space-separated columns::

    frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l X Y Z rotation_y

Tracks, as in the reference: every class but ``DontCare``; objects with truncation <= 1 and
occlusion <= 1 only; an object that disappears (or fails those limits) and comes back starts
a new track. Boxes ``x1 y1 x2 y2`` become ``[y, x, h, w]`` scaled by ``h_new / H`` and
``w_new / W`` per axis (sequences differ slightly in size, e.g. 375x1242 and 370x1224).

Cache (:func:`prepare`): ``SSSS.npy`` uint8 ``(N, h, w, 3)`` per sequence (default 187x621,
the reference's halved frames), ``labels/SSSS.txt`` copies, and ``meta.json`` with the frame
size and every sequence's original size.

Split: ``split_by="frames"`` (the reference): the first ``train_fraction`` (80%) of every
sequence's frames train, the rest test; tracks crossing the cut are cut. ``split_by=
"sequence"``: the last 20% of the sequences (by number: 0017-0020 of 21) are the test set.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minihart.boxes import from_xyxy
from minihart.data.batching import DatasetNotPrepared, TrackSet, parse_numbers

FRAME_HW = (187, 621)
COLUMNS = ("frame track_id type truncated occluded alpha x1 y1 x2 y2 "
           "h w l X Y Z rotation_y").split()


class Label(NamedTuple):
    """One label line: frame, track id, class, truncation, occlusion, ``[x1, y1, x2, y2]``."""
    frame: int
    track: int
    cls: str
    truncated: float
    occluded: int
    xyxy: tuple
    line: int


def parse_labels(path):
    """All lines of a ``label_02`` file; ``ValueError`` naming the file and line when one has
    not 17 columns, a non-numeric value, an inverted box, or repeats a (track, frame) pair
    (``DontCare`` regions share the id -1 and may)."""
    labels, first_line = [], {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) != len(COLUMNS):
                raise ValueError(f"{path} line {n}: expected {len(COLUMNS)} columns "
                                 f"({' '.join(COLUMNS)}), got {len(tok)}")
            v = parse_numbers(tok[:2] + tok[3:], f"{path} line {n}")
            if v[7] < v[5] or v[8] < v[6]:  # bbox left top right bottom
                raise ValueError(f"{path} line {n}: bbox right < left or bottom < top: {tok[6:10]}")
            frame, track = int(v[0]), int(v[1])
            if track != -1:  # a repeat would otherwise split the track at that frame, silently
                seen = first_line.setdefault((track, frame), n)
                if seen != n:
                    raise ValueError(f"{path} line {n}: track {track} has a second line for frame "
                                     f"{frame} (the first is line {seen})")
            labels.append(Label(frame, track, tok[2], v[2], int(v[3]), tuple(v[5:9]), n))
    return labels


def tracks_from_labels(labels, max_truncation=1, max_occlusion=1):
    """Contiguous tracks ``[(first frame, xyxy (n, 4) float64)]`` from :func:`parse_labels`
    output, filtered and split where an object is missing for a frame or more."""
    by_id = {}
    for lab in labels:
        if lab.cls == "DontCare" or lab.truncated > max_truncation or lab.occluded > max_occlusion:
            continue
        by_id.setdefault(lab.track, []).append(lab)
    tracks = []
    for rows in by_id.values():
        rows.sort(key=lambda lab: lab.frame)
        frames = np.array([lab.frame for lab in rows])
        xyxy = np.array([lab.xyxy for lab in rows], dtype=np.float64)
        for part in np.split(np.arange(len(rows)), np.flatnonzero(np.diff(frames) != 1) + 1):
            tracks.append((int(frames[part[0]]), xyxy[part]))
    return sorted(tracks, key=lambda t: t[0])


def prepare(src, out_dir, frame_hw=FRAME_HW, progress=True):
    """Resize the frames of every labelled sequence under ``src`` (the folder holding
    ``training/``, or ``training/`` itself) into the cache in ``out_dir``.

    Errors name the file: an empty or gappy sequence folder, a label for a frame without an
    image, a malformed label line, images of different sizes within a sequence.
    """
    from PIL import Image  # noqa: PLC0415  (only needed to prepare data)
    from tqdm import tqdm  # noqa: PLC0415

    base = Path(src) / "training" if (Path(src) / "training").is_dir() else Path(src)
    image_root, label_root = base / "image_02", base / "label_02"
    for folder in (image_root, label_root):
        if not folder.is_dir():
            raise FileNotFoundError(f"KITTI folder {folder} not found (zips unpacked in {src}?)")
    label_files = sorted(label_root.glob("*.txt"))
    if not label_files:
        raise ValueError(f"{label_root}: no label files (SSSS.txt)")
    out = Path(out_dir)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    orig_hw, n_frames = {}, 0
    for label_file in tqdm(label_files, desc="resizing KITTI", disable=not progress):
        seq, folder = label_file.stem, image_root / label_file.stem
        images = sorted(folder.glob("*.png"))
        if not images:
            raise ValueError(f"{folder}: empty sequence folder (no .png frames)")
        for i, path in enumerate(images):
            if path.name != f"{i:06d}.png":
                raise ValueError(f"{folder}: missing frame image {i:06d}.png (next is {path.name})")
        for lab in parse_labels(label_file):
            if lab.frame >= len(images):
                missing = folder / f"{lab.frame:06d}.png"
                raise ValueError(f"{label_file} line {lab.line}: frame {lab.frame} has no image "
                                 f"{missing} (the folder has {len(images)})")
        n_frames += len(images)
        frames = np.lib.format.open_memmap(out / f"{seq}.part.npy", "w+", np.uint8,
                                           (len(images), *frame_hw, 3))
        for i, path in enumerate(images):
            with Image.open(path) as img:
                hw = (img.height, img.width)
                orig_hw.setdefault(seq, hw)
                if hw != orig_hw[seq]:
                    raise ValueError(f"{path}: size {hw} differs from the sequence's "
                                     f"{orig_hw[seq]}")
                frames[i] = np.asarray(img.convert("RGB").resize(frame_hw[::-1], Image.BILINEAR))
        frames.flush()
        del frames
        (out / f"{seq}.part.npy").replace(out / f"{seq}.npy")
        shutil.copyfile(label_file, out / "labels" / label_file.name)
    (out / "meta.json").write_text(json.dumps({"frame_hw": list(frame_hw), "orig_hw": orig_hw}))
    return {"sequences": len(orig_hw), "frames": n_frames}


def load(root, split="train", split_by="frames", train_fraction=0.8, overlap=0.5, augment=None,
         channels=3, max_truncation=1, max_occlusion=1):
    """The prepared KITTI set in ``root`` as a :class:`TrackSet` (see the module docstring for
    the filters and splits). augment: time reversal and mirroring (default: on for ``train``).
    Raises :class:`DatasetNotPrepared` when the cache is missing."""
    root = Path(root)
    if split not in ("train", "test") or split_by not in ("frames", "sequence"):
        raise ValueError(f"kitti: split must be 'train' or 'test' and split_by 'frames' or "
                         f"'sequence', got split={split!r}, split_by={split_by!r}")
    if not (root / "meta.json").is_file():
        raise DatasetNotPrepared.for_dataset("kitti", root, "meta.json and the frame arrays",
                                             f"python data_scripts/get_kitti.py --root {root}")
    meta = json.loads((root / "meta.json").read_text())
    h, w = meta["frame_hw"]
    seqs = sorted(meta["orig_hw"])
    test_seqs = set(seqs[len(seqs) - round((1 - train_fraction) * len(seqs)):])
    videos, tracks = [], []
    for seq in seqs:
        if split_by == "sequence" and (seq in test_seqs) != (split == "test"):
            continue
        video = np.load(root / f"{seq}.npy", mmap_mode="r")
        H, W = meta["orig_hw"][seq]
        scale = np.array([h / H, w / W, h / H, w / W], np.float32)
        cut = int(train_fraction * len(video) + 0.5) if split_by == "frames" else None
        for first, xyxy in tracks_from_labels(parse_labels(root / "labels" / f"{seq}.txt"),
                                              max_truncation, max_occlusion):
            boxes = from_xyxy(xyxy).astype(np.float32) * scale
            lo, hi = 0, len(boxes)  # the part of the track on this side of the cut
            if cut is not None and split == "train":
                hi = min(hi, cut - first)
            elif cut is not None:
                lo = max(lo, cut - first)
            if hi - lo >= 2:
                tracks.append((len(videos), first + lo, boxes[lo:hi], np.ones(hi - lo, np.float32)))
        videos.append(video)
    return TrackSet("kitti", videos, tracks, channels=channels, overlap=overlap,
                    augment=split == "train" if augment is None else augment)
