"""Sequences in the format of the single-object tracking benchmarks (OTB, and many others):
a folder with ``img/0001.jpg ...`` (or ``.png``) and ``groundtruth_rect.txt``, one
``x y w h`` box per frame separated by commas, tabs or spaces. Numbers are used as given
(see :mod:`minihart.boxes`). A line of ``NaN`` (or ``w, h <= 0``) marks a frame without the
target: presence 0, and the box of the previous frame is repeated so boxes stay valid.
For ``track`` the ground truth may be absent; then ``boxes`` and ``presence`` are None.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minihart.boxes import from_xywh
from minihart.data.batching import TrackSet, parse_numbers

GROUNDTRUTH = "groundtruth_rect.txt"


class Sequence(NamedTuple):
    """frames uint8 ``(N, H, W, C)``; boxes ``(N, 4)`` float32 ``[y, x, h, w]`` in the pixels
    of ``frames``; presence ``(N,)`` float32; scale ``(4,)`` = new / original size per axis."""
    name: str
    frames: np.ndarray
    boxes: np.ndarray | None
    presence: np.ndarray | None
    scale: np.ndarray


def read_boxes(path):
    """Boxes ``(N, 4)`` ``[y, x, h, w]`` float32 and presence ``(N,)`` from an ``x,y,w,h`` file
    (commas, tabs or spaces). A line of NaN or with ``w, h <= 0`` is an absent target: presence
    0 and the previous box (the first present box for leading absent lines). ``ValueError``
    naming the file and line for a line that is not four numbers."""
    boxes, presence = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            tok = [t for t in re.split(r"[,\s]+", line.strip()) if t]
            if not tok:
                continue
            if len(tok) != 4:
                raise ValueError(f"{path} line {n}: expected 4 numbers 'x,y,w,h', got {len(tok)}: {line.strip()!r}")
            v = parse_numbers(tok, f"{path} line {n}", finite=False)  # NaN: target absent
            present = bool(np.isfinite(v).all() and v[2] > 0 and v[3] > 0)
            boxes.append(from_xywh(v) if present else None)
            presence.append(float(present))
    if not any(presence):
        raise ValueError(f"{path}: no box shows the target" if boxes else f"{path}: no boxes")
    last = next(b for b in boxes if b is not None)
    for i, b in enumerate(boxes):  # absent frames repeat the previous box: boxes stay valid
        boxes[i] = last = last if b is None else b
    return np.array(boxes, np.float32), np.array(presence, np.float32)


def read_groundtruth(path):
    """:func:`read_boxes` of a sequence that must start with the target visible (it is tracked
    from the first box); ``ValueError`` naming the file otherwise."""
    boxes, presence = read_boxes(path)
    if not presence[0]:
        raise ValueError(f"{path} line 1: the first box must show the target")
    return boxes, presence


def read_image(path, channels=3, frame_hw=None):
    """One image as uint8 ``(H, W, channels)`` whatever its mode (grey, palette, RGBA and
    16-bit images of one folder come out alike; 16 bits keep their high byte), resized to
    ``frame_hw`` when given. ``ValueError`` naming the file when it cannot be read."""
    from PIL import Image  # noqa: PLC0415  (installed with imageio)
    try:
        with Image.open(path) as img:
            if img.mode in ("I", "F"):
                raise ValueError(f"image {str(path)!r} has {img.mode!r} pixels (32-bit); use 8- or 16-bit images")
            if img.mode.startswith("I;16"):
                img = Image.fromarray((np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8))
            img = img.convert("RGB" if channels == 3 else "L")
            if frame_hw is not None:
                img = img.resize(frame_hw[::-1], Image.BILINEAR)
            return np.asarray(img).reshape(img.height, img.width, channels)
    except OSError as exc:
        raise ValueError(f"cannot read image {str(path)!r} ({exc})") from None


def load_sequence(folder, frame_hw=None, channels=3, first_frame=1):
    """An OTB-format sequence. frame_hw: resize frames to ``(H, W)`` (boxes scaled per axis);
    channels: 1 (grey) or 3; first_frame: the 1-based image of the first ground-truth line
    (needed only when there are more images than boxes)."""
    from PIL import Image  # noqa: PLC0415  (installed with imageio)

    folder = Path(folder)
    images = sorted(p for p in (folder / "img").glob("*")
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise ValueError(f"{folder / 'img'}: empty sequence folder (no .jpg or .png images)")
    boxes = presence = None
    if (folder / GROUNDTRUTH).is_file():
        boxes, presence = read_groundtruth(folder / GROUNDTRUTH)
        last = first_frame - 1 + len(boxes)
        if (first_frame == 1 and len(boxes) != len(images)) or last > len(images):
            raise ValueError(f"{folder}: {len(boxes)} boxes in {GROUNDTRUTH} but {len(images)} "
                             f"images from image {first_frame}; pass first_frame if the boxes "
                             "start later")
        images = images[first_frame - 1:last]
    frames = []
    for path in images:
        frames.append(read_image(path, channels, frame_hw))
        if frames[-1].shape != frames[0].shape:
            raise ValueError(f"{path}: size {frames[-1].shape[:2]} differs from the first image's "
                             f"{frames[0].shape[:2]} (pass frame_hw to resize)")
    frames = np.stack(frames)
    scale = np.ones(4, np.float32)
    if frame_hw is not None:
        with Image.open(images[0]) as img:
            scale = np.array([frame_hw[0] / img.height, frame_hw[1] / img.width] * 2, np.float32)
    if boxes is not None:
        boxes = boxes * scale
    return Sequence(folder.name, frames, boxes, presence, scale)


def load(root, frame_hw=None, channels=3, overlap=0.5):
    """One OTB-format sequence (``root`` holds ``img/``) or a folder of them, as a
    :class:`TrackSet` with one track per sequence (for ``evaluate``)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder (an OTB-format sequence or a folder of them)")
    folders = [root] if (root / "img").is_dir() else sorted(
        p for p in root.iterdir() if (p / "img").is_dir())
    if not folders:
        raise ValueError(f"{root}: not an OTB-format sequence (no img/) nor a folder of them")
    seqs = [load_sequence(f, frame_hw, channels) for f in folders]
    missing = [s.name for s in seqs if s.boxes is None]
    if missing:
        raise ValueError(f"{root}: no {GROUNDTRUTH} for {missing}")
    tracks = [(k, 0, s.boxes, s.presence) for k, s in enumerate(seqs)]
    return TrackSet("otb", [s.frames for s in seqs], tracks, channels=channels, overlap=overlap)
