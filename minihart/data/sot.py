"""Real single-object tracking (SOT) sequences in the folder formats trackers train and report on.

One sequence per folder, in any of three layouts (found automatically, mixed freely)::

    OTB      <seq>/img/0001.jpg ...       groundtruth_rect.txt   x,y,w,h a line (NaN: absent)
    GOT-10k  <seq>/00000001.jpg ...       groundtruth.txt        absence.label (1: absent)
    LaSOT    <class>-<n>/img/00000001.jpg groundtruth.txt        full_occlusion.txt,
                                                                 out_of_view.txt (1: absent)

Boxes are read as the files give them (the toolkits score in the same numbers); a frame whose
target is absent (NaN, ``w, h <= 0`` or a flag) gets presence 0 and the previous box, so it is
masked out of the loss and the scores and never crashes.

A *split* is a folder of sequences: ``<root>/train`` and ``<root>/val`` (or ``test``), or a list
file naming the sequences (GOT-10k's ``list.txt`` inside the split folder is used when present;
LaSOT's class folders are searched one level down). :func:`load` returns a :class:`SOTSet`:
frames resized to the preset's frame size (boxes scaled per axis), cached once as uint8
``.npy`` files so that later runs start at once, cut into windows of T frames and, for
training, augmented as a tracker trained on few sequences needs (see :class:`SOTSet`).
"""
from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minihart.boxes import validate_boxes
from minihart.data.batching import TrackSet, pad_batch
from minihart.data.camera import camera_path
from minihart.data.otb import read_boxes, read_image

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("otb", "got10k", "lasot")


class SequenceInfo(NamedTuple):
    """A sequence before its frames are read: ``images`` (N paths, in order), ``boxes``
    ``(N, 4)`` float32 ``[y, x, h, w]`` in the pixels of the images, ``presence (N,)``,
    ``image_hw`` the images' size, ``format`` one of :data:`FORMATS`."""
    name: str
    folder: Path
    images: list
    boxes: np.ndarray
    presence: np.ndarray
    image_hw: tuple
    format: str


# ----------------------------------------------------------------------------- ground truth
def read_flags(path, n):
    """``n`` 0/1 flags (one a line, GOT-10k; or one comma-separated line, LaSOT) as bool ``(n,)``;
    ``ValueError`` naming the file (and line) for another value or another count."""
    flags = []
    with open(path) as f:
        for k, line in enumerate(f, 1):
            for tok in (t for t in re.split(r"[,\s]+", line.strip()) if t):
                if tok not in ("0", "1"):
                    raise ValueError(f"{path} line {k}: expected 0 or 1, got {tok!r}")
                flags.append(tok == "1")
    if len(flags) != n:
        raise ValueError(f"{path}: {len(flags)} flags for {n} boxes")
    return np.array(flags, bool)


def detect_format(folder):
    """``"otb"``, ``"got10k"``, ``"lasot"`` or None for a folder that is not a sequence."""
    folder = Path(folder)
    if (folder / "img").is_dir() and (folder / "groundtruth_rect.txt").is_file():
        return "otb"
    if (folder / "img").is_dir() and (folder / "groundtruth.txt").is_file():
        return "lasot"
    if (folder / "groundtruth.txt").is_file() and any(p.suffix.lower() in IMAGE_EXT for p in folder.iterdir()):
        return "got10k"
    return None


def _images(folder):
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT and not p.name.startswith("."))


def _image_hw(path):
    from PIL import Image  # noqa: PLC0415  (installed with imageio)
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except OSError as exc:
        raise ValueError(f"cannot read image {str(path)!r} ({exc})") from None


def read_sequence(folder):
    """The :class:`SequenceInfo` of one sequence folder (any of :data:`FORMATS`). ``ValueError``
    naming the file for malformed ground truth, fewer or more images than boxes, no image, or
    fewer than 2 frames."""
    folder = Path(folder)
    fmt = detect_format(folder)
    if fmt is None:
        raise ValueError(f"{folder}: not a tracking sequence (expected img/ + groundtruth_rect.txt (OTB), "
                         "images + groundtruth.txt (GOT-10k) or img/ + groundtruth.txt (LaSOT))")
    gt = folder / ("groundtruth_rect.txt" if fmt == "otb" else "groundtruth.txt")
    images = _images(folder / "img" if fmt in ("otb", "lasot") else folder)
    boxes, presence = read_boxes(gt)
    if len(images) != len(boxes):
        raise ValueError(f"{gt}: {len(boxes)} boxes but {len(images)} images in "
                         f"{folder / 'img' if fmt != 'got10k' else folder}")
    absent = np.zeros(len(boxes), bool)
    if fmt == "got10k" and (folder / "absence.label").is_file():
        absent |= read_flags(folder / "absence.label", len(boxes))
    if fmt == "lasot":
        for flag in ("full_occlusion.txt", "out_of_view.txt"):
            if (folder / flag).is_file():
                absent |= read_flags(folder / flag, len(boxes))
    presence = presence * ~absent
    if presence.sum() < 1 or len(boxes) < 2:
        raise ValueError(f"{folder}: a sequence needs at least 2 frames and a visible target, "
                         f"got {len(boxes)} frames, {int(presence.sum())} with the target")
    return SequenceInfo(folder.name, folder, images, boxes, presence.astype(np.float32),
                        _image_hw(images[0]), fmt)


def find_sequences(root, list_file=None):
    """The sequence folders of a split folder ``root``: the names in ``list_file`` (or in
    ``root/list.txt``, GOT-10k) in that order, else every sequence folder in ``root`` and one
    level down (LaSOT's class folders), sorted. ``root`` may itself be one sequence."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder (a folder of tracking sequences, or one sequence)")
    if detect_format(root):
        return [root]
    listed = Path(list_file) if list_file else root / "list.txt"
    if list_file or listed.is_file():
        if not listed.is_file():
            raise ValueError(f"{listed}: no such list file")
        names = [ln.strip() for ln in listed.read_text().splitlines() if ln.strip()]
        folders = [root / n for n in names]
        missing = [str(f) for f in folders if not detect_format(f)]
        if missing:
            raise ValueError(f"{listed}: {len(missing)} listed sequences are missing or not sequence "
                             f"folders, e.g. {missing[0]}")
        return folders
    found = []
    for p in sorted(q for q in root.iterdir() if q.is_dir() and not q.name.startswith(".")):
        if detect_format(p):
            found.append(p)
        else:
            found += sorted(q for q in p.iterdir() if q.is_dir() and detect_format(q))
    if not found:
        raise ValueError(f"{root}: no tracking sequences found (expected folders in the OTB, GOT-10k "
                         "or LaSOT layout, see minihart.data.sot)")
    return found


def split_folder(root, split):
    """``root/<split>``; ``val`` and ``test`` stand in for each other; ``root`` itself when it
    has neither (then ``split`` is ignored)."""
    root = Path(root)
    for name in (split, {"val": "test", "test": "val"}.get(split)):
        if name and (root / name).is_dir():
            return root / name
    return root


# ----------------------------------------------------------------------------- frames
def read_frames(info: SequenceInfo, frame_hw=None, cache_dir=None):
    """All frames of ``info`` as uint8 ``(N, H, W, 3)``, resized to ``frame_hw`` when given.
    With ``cache_dir`` they are kept there as ``.npy`` (written atomically, keyed by the folder,
    the images and the size) and memory-mapped on later calls."""
    H, W = frame_hw or info.image_hw
    cache = None
    if cache_dir is not None:
        key = f"{info.folder.resolve()}|{len(info.images)}|{info.images[-1].name}|{info.image_hw}|{H}x{W}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        cache = Path(cache_dir) / f"{info.name}-{H}x{W}-{digest}.npy"
        if cache.is_file():
            frames = np.load(cache, mmap_mode="r")
            if frames.shape == (len(info.images), H, W, 3):
                return frames

    def one(path):
        img = read_image(path, 3, (H, W) if frame_hw else None)
        if not frame_hw and img.shape[:2] != info.image_hw:
            raise ValueError(f"{path}: size {img.shape[:2]} differs from the first image's {info.image_hw}")
        return img
    if frame_hw:  # resized frames would hide a size change: check the sizes themselves
        for path in info.images:
            if _image_hw(path) != info.image_hw:
                raise ValueError(f"{path}: size {_image_hw(path)} differs from the first image's {info.image_hw}")
    with ThreadPoolExecutor(2) as pool:  # PIL decodes without the GIL
        frames = np.stack(list(pool.map(one, info.images)))
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, frames)
            os.replace(tmp, cache)
        except OSError:  # a read-only data folder: work from memory
            pass
    return frames


def scale_to(info: SequenceInfo, frame_hw):
    """Per-axis factors ``[sy, sx, sy, sx]`` from the images' pixels to ``frame_hw``."""
    (h, w), (H, W) = info.image_hw, frame_hw or info.image_hw
    return np.array([H / h, W / w, H / h, W / w], np.float32)


# ----------------------------------------------------------------------------- augmentation
def labelled_extent(boxes, presence):
    """``(y0, x0, y1, x1)``: the extent of a window's labelled boxes (the first box where none is)."""
    vis = boxes[presence > 0] if presence.any() else boxes[:1]
    return vis[:, 0].min(), vis[:, 1].min(), (vis[:, 0] + vis[:, 2]).max(), (vis[:, 1] + vis[:, 3]).max()


def zoom_shift(boxes, presence, rng, hw, max_zoom, max_stretch=1.0):
    """A random zoom ``z`` in ``[1, max_zoom]`` and shift of a window's frames ``(H, W)``: the crop
    of ``1/z`` of the frame, placed at random where it holds every labelled box of the window
    (``z`` shrinks until it can), to be resampled to ``(H, W)`` by nearest neighbours. Varies
    the target's size and place in the frame, as crops do in training trackers. With
    ``max_stretch`` S > 1 one axis, drawn at random, is zoomed by a further factor in ``[1, S]``
    (log-uniform; again no more than keeps the boxes inside), which changes the target's aspect
    ratio, as the stretch augmentation of Siamese trackers does.
    Returns ``rows (H,), cols (W,)`` (the source pixel of each output pixel) and the boxes
    ``(L, 4)`` in the zoomed frames."""
    H, W = hw
    y0, x0, y1, x1 = labelled_extent(boxes, presence)
    fit_y, fit_x = H / max(y1 - y0, 1e-3), W / max(x1 - x0, 1e-3)
    z = zy = zx = max(1.0, min(rng.uniform(1, max_zoom), fit_y, fit_x))
    if max_stretch > 1:
        r = float(np.exp(rng.uniform(0, np.log(max_stretch))))
        if rng.random() < 0.5:
            zy = max(z, min(z * r, fit_y))
        else:
            zx = max(z, min(z * r, fit_x))
    ch, cw = H / zy, W / zx
    lo_y, hi_y = max(0.0, y1 - ch), min(y0, H - ch)  # crop tops that keep [y0, y1] inside, in the frame
    lo_x, hi_x = max(0.0, x1 - cw), min(x0, W - cw)
    top, left = rng.uniform(lo_y, max(lo_y, hi_y)), rng.uniform(lo_x, max(lo_x, hi_x))
    rows = np.clip((top + (np.arange(H) + 0.5) / zy).astype(np.intp), 0, H - 1)
    cols = np.clip((left + (np.arange(W) + 0.5) / zx).astype(np.intp), 0, W - 1)
    boxes = (boxes - np.array([top, left, 0, 0], np.float32)) * np.array([zy, zx, zy, zx], np.float32)
    return rows, cols, boxes.astype(np.float32)


DRIFT_FRAMES = 50  # --zoom-drift D: the zoom changes by up to D times per this many frames of a window


def drifting_zoom(boxes, presence, rng, hw, max_zoom, drift):
    """Like :func:`zoom_shift` without stretch, but the zoom changes along the window: from ``z`` at
    one end to ``z * r`` at the other (log-linear in time), ``z`` in ``[1, max_zoom]`` and ``r`` up to
    ``drift`` per :data:`DRIFT_FRAMES` frames (``log r`` uniform), growing or shrinking at random, as a
    camera zooming or an object coming closer or going away changes the target's size. Every frame's
    crop holds every labelled box of the window (the zooms shrink until they can) at one relative
    place drawn for the window.
    Returns ``rows (L, H)``, ``cols (L, W)`` (per frame) and the boxes ``(L, 4)`` in the zoomed frames."""
    H, W = hw
    L = len(boxes)
    y0, x0, y1, x1 = labelled_extent(boxes, presence)
    fit = max(1.0, min(H / max(y1 - y0, 1e-3), W / max(x1 - x0, 1e-3)))
    z, r = rng.uniform(1, max_zoom), float(np.exp(rng.uniform(0, np.log(drift)) * (L - 1) / DRIFT_FRAMES))
    ends = np.minimum([z, z * r], fit)[::1 if rng.random() < 0.5 else -1]
    zt = np.exp(np.log(ends[0]) + (np.log(ends[1]) - np.log(ends[0])) * np.arange(L) / max(L - 1, 1))
    u = rng.uniform(0, 1, 2)
    ch, cw = H / zt, W / zt
    lo_y, lo_x = np.maximum(0.0, y1 - ch), np.maximum(0.0, x1 - cw)
    top = lo_y + u[0] * np.maximum(0.0, np.minimum(y0, H - ch) - lo_y)
    left = lo_x + u[1] * np.maximum(0.0, np.minimum(x0, W - cw) - lo_x)
    rows = np.clip((top[:, None] + (np.arange(H) + 0.5) / zt[:, None]).astype(np.intp), 0, H - 1)
    cols = np.clip((left[:, None] + (np.arange(W) + 0.5) / zt[:, None]).astype(np.intp), 0, W - 1)
    boxes = (boxes - np.stack([top, left, 0 * top, 0 * top], 1)) * zt[:, None]
    return rows, cols, boxes.astype(np.float32)


def photometric(frames, rng, strength):
    """Light and camera changes for one window of stored uint8 frames ``(L, H, W[, 3])``, drawn
    once for the window: a gamma and a contrast (about the window's mean), each ``exp(U(-s, s))``
    for ``s = strength``, and a brightness that drifts linearly along the window, from ``b0`` to
    ``b0 + d`` with ``b0, d ~ U(-s/4, s/4)`` on the 0-1 range (light that changes as the target
    moves). Clipped to 0-255; returns new uint8 frames."""
    gamma, contrast = np.exp(rng.uniform(-strength, strength, 2))
    b0 = rng.uniform(-strength / 4, strength / 4)
    ramp = b0 + rng.uniform(-strength / 4, strength / 4) * np.linspace(0, 1, len(frames))
    f = (frames.astype(np.float32) / 255) ** gamma
    mean = f.mean()
    f = (f - mean) * contrast + mean + ramp.reshape(-1, *[1] * (f.ndim - 1)).astype(np.float32)
    return np.clip(np.round(f * 255), 0, 255).astype(np.uint8)


def feather_axes(boxes, hw, inner=0.05, outer=0.3):
    """The factors of :func:`feathered_mask` along the rows ``(L, H)`` and the columns ``(L, W)``."""
    b = np.asarray(boxes, np.float64)

    def axis(n, start, size):  # 1 near the box along one axis, 0 far from it
        size = np.maximum(size, 1e-3)[:, None]
        out = np.maximum(0, np.abs(np.arange(n) + 0.5 - (start[:, None] + size / 2)) - size / 2) / size
        return np.clip((outer - out) / (outer - inner), 0, 1)

    return axis(hw[0], b[:, 0], b[:, 2]), axis(hw[1], b[:, 1], b[:, 3])


def _feather_patch(rows, cols, ndim):
    """One frame's nonzero part of :func:`feather_axes`' factors ``rows (H,)``, ``cols (W,)``: its
    row and column indices (contiguous) and float32 weights ``(h, w[, 1])`` for frames of ``ndim``
    dimensions (L, H, W[, C]); None where it is empty (a box wholly outside the frame)."""
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    if not (ys.size and xs.size):
        return None
    alpha = np.outer(rows[ys], cols[xs]).astype(np.float32)
    return ys, xs, alpha.reshape(alpha.shape + (1,) * (ndim - 3))


def _blend(alpha, top, under):
    """``alpha * top + (1 - alpha) * under`` as uint8 pixels."""
    return (alpha * top + (1 - alpha) * under).round().astype(np.uint8)


def feathered_mask(boxes, presence, hw, inner=0.05, outer=0.3):
    """``(L, H, W)`` float32 weights of the target's pixels for :meth:`SOTSet.moving_window`'s
    scene mixing: 1 on each box and up to ``inner`` of its size outside it, falling linearly to 0
    at ``outer`` of its size; 0 everywhere in frames where the target is absent."""
    rows, cols = feather_axes(boxes, hw, inner, outer)
    mask = rows[:, :, None] * cols[:, None, :]
    return (mask * (np.asarray(presence) > 0)[:, None, None]).astype(np.float32)


class SOTSet(TrackSet):
    """SOT sequences as a :class:`TrackSet` (one track per sequence, frames as stored uint8
    ``(N, H, W, 3)``), with ``sequences`` (their :class:`SequenceInfo`) and ``scales`` (image
    pixels to frame pixels, per sequence).

    Training augmentation (``augment=True``, in :meth:`batch` and shuffled :meth:`batches`), one
    gather of the stored frames per window: a random temporal stride in ``1..max_stride`` (skipped
    frames make faster motion), the reference's time reversal (from the last labelled frame) with
    probability 1/2, a random zoom up to ``max_zoom`` and shift of the frame around the target, one
    axis zoomed up to ``stretch`` times more (:func:`zoom_shift`), horizontal mirroring with
    probability 1/2, and the first box, from which the tracker starts, given imprecisely
    (``box_jitter``: its height and width scaled by factors in ``[1/j, j]``, its centre moved by up
    to ``(j - 1) / 4`` of its size), so that the tracker learns to find the object's extent from
    what it sees rather than keep the window it was given (the first box is not scored). With
    probability ``mix`` (scene mixing), the window's target, cut out with a feathered edge about its
    true boxes (:func:`feathered_mask`), is laid over consecutive frames of another training
    sequence (mirrored at random), so the same object moves over a scene it was never seen in;
    frames where it is absent show the other scene alone. With probability ``distract`` a look-alike
    is laid in behind the target (:meth:`distracted`): the target of a training sequence (this one
    included, at another time), moving as it did, scaled to about the target's size and placed 1 to
    2.5 target sizes away, so that the window sees two objects and must keep the right one. With
    probability ``patches`` the target itself is replaced (:meth:`patched`, before mixing): a random
    piece of a training scene, stretched onto the target's box in every frame, moves as the target
    moved, so the tracker must follow what the first box shows, whatever it is. Last, with
    ``photo`` > 0, the window's light and contrast change (:func:`photometric`). With ``zoom_drift``
    D > 1 the zoom changes along the window by up to D times per 50 frames (:func:`drifting_zoom`), so
    the target grows or shrinks. With probability ``occlude`` an occluder (:meth:`occluded`), a
    piece of a training scene, crosses in front of the target once, so that the tracker learns to
    hold the window through an occlusion and find the target again after it; the frames where it
    hides at least 70% of the target count as frames where the target is not visible (presence 0).
    With probability ``stills`` the window is made from one labelled frame instead (:meth:`still_window`):
    a virtual camera pans and zooms over it as over the first frame in first-frame adaptation.
    """

    def __init__(self, name, videos, tracks, channels, sequences, scales, overlap=0.5, augment=False,
                 max_stride=3, max_zoom=1.5, box_jitter=1.0, mix=0.0, distract=0.0, patches=0.0, stretch=1.0,
                 photo=0.0, zoom_drift=1.0, occlude=0.0, stills=0.0):
        super().__init__(name, videos, tracks, channels, overlap, augment)
        if max_stride < 1 or max_zoom < 1 or box_jitter < 1 or stretch < 1:
            raise ValueError(f"SOTSet: max_stride, max_zoom, box_jitter and stretch must be >= 1, got {max_stride}, "
                             f"{max_zoom}, {box_jitter}, {stretch}")
        if not all(0 <= q <= 1 for q in (mix, distract, patches, occlude, stills)):
            raise ValueError(f"SOTSet: mix, distract, patches, occlude and stills are probabilities, got {mix}, "
                             f"{distract}, {patches}, {occlude}, {stills}")
        if not 0 <= photo <= 1:
            raise ValueError(f"SOTSet: photo must be in [0, 1], got {photo}")
        if zoom_drift < 1 or (zoom_drift > 1 and stretch > 1):
            raise ValueError(f"SOTSet: zoom_drift must be >= 1 and is not combined with stretch, got {zoom_drift} "
                             f"with stretch {stretch}")
        self.sequences, self.scales = sequences, scales
        self.max_stride, self.max_zoom, self.box_jitter, self.mix = max_stride, max_zoom, box_jitter, mix
        self.distract, self.patches, self.stretch, self.photo = distract, patches, stretch, photo
        self.zoom_drift, self.occlude, self.stills = zoom_drift, occlude, stills

    def augmented_window(self, i, seq_len, rng):
        """Window ``i`` augmented as the class docstring says: stored frames, boxes, presence."""
        if self.stills > 0 and rng.random() < self.stills:
            return self.still_window(i, seq_len, rng)
        return self.moving_window(i, seq_len, rng)

    def moving_window(self, i, seq_len, rng):
        """Window ``i``'s frames of the video, augmented as the class docstring says."""
        k, s, L = self.windows(seq_len)[i]
        video, first, boxes, presence = self.tracks[k]
        idx = np.arange(s, len(boxes), int(rng.integers(1, self.max_stride + 1)))[:seq_len]
        if len(idx) < 2:
            idx = np.arange(s, s + L)
        if rng.random() < 0.5:  # time reversal, starting on the window's last labelled frame
            idx = idx[:np.flatnonzero(presence[idx])[-1] + 1][::-1]
        b, p = boxes[idx], presence[idx]
        if self.zoom_drift > 1:
            rows, cols, b = drifting_zoom(b, p, rng, self.image_hw, self.max_zoom, self.zoom_drift)
        else:
            rows, cols, b = zoom_shift(b, p, rng, self.image_hw, self.max_zoom, self.stretch)
        if rng.random() < 0.5:  # mirror
            cols = cols[..., ::-1]
            b[:, 1] = self.image_hw[1] - b[:, 1] - b[:, 3]
        true, b = b.copy(), self.jittered_first_box(b, rng)  # the tracker starts from an imprecise box
        frames = self.videos[video][first + idx]  # (L, H, W, 3): one gather of flat pixel indices
        H, W = self.image_hw
        if rows.ndim == 1:  # one crop for the whole window
            pixels = (rows[:, None] * W + cols).ravel()
            frames = np.take(frames.reshape(len(idx), H * W, -1), pixels, axis=1).reshape(frames.shape)
        else:  # a crop per frame (zoom drift)
            pixels = (rows[:, :, None] * W + cols[:, None, :]).reshape(len(idx), H * W, 1)
            frames = np.take_along_axis(frames.reshape(len(idx), H * W, -1), pixels, axis=1).reshape(frames.shape)
        if self.patches > 0 and rng.random() < self.patches:
            frames = self.patched(frames, true, p, rng)
        if self.mix > 0 and len(self.tracks) > 1 and rng.random() < self.mix:
            frames = self.mixed(frames, true, p, k, rng)
        if self.distract > 0 and rng.random() < self.distract:
            frames = self.distracted(frames, true, p, rng)
        if self.occlude > 0 and rng.random() < self.occlude:
            frames, p = self.occluded(frames, true, p, rng)
        if self.photo > 0:
            frames = photometric(frames, rng, self.photo)
        return frames, b, p

    def jittered_first_box(self, b, rng):
        """``b`` ``(L, 4)`` with its first box (where the tracker starts) scaled and shifted (``box_jitter``)."""
        if self.box_jitter <= 1:
            return b
        j, b = self.box_jitter, b.copy()
        size = b[0, 2:] * np.exp(rng.uniform(-np.log(j), np.log(j), 2))
        centre = b[0, :2] + b[0, 2:] / 2 + rng.uniform(-0.5, 0.5, 2) * (j - 1) * b[0, 2:] / 2
        b[0] = np.concatenate([centre - size / 2, size]).astype(np.float32)
        return b

    def still_window(self, i, seq_len, rng):
        """Window ``i`` made from one of its labelled frames, drawn at random: a virtual camera pans and
        zooms over it (:func:`minihart.data.camera.camera_path`, as first-frame adaptation's windows),
        then the window is mirrored with probability 1/2, its first box jittered and an occluder laid in
        as in :meth:`moving_window`. The target keeps its look and only the camera moves, as in the
        windows a tracker adapts on (the forty-first round). A draw whose first frame does not show the
        target's centre gives an ordinary window instead."""
        k, s, L = self.windows(seq_len)[i]
        video, first, boxes, presence = self.tracks[k]
        labelled = s + np.flatnonzero(presence[s:s + L] > 0)
        j = int(labelled[rng.integers(len(labelled))])
        rows, cols, b, p = (a[0] for a in camera_path(boxes[j], self.image_hw, rng, 1, L))
        if not p[0]:
            return self.moving_window(i, seq_len, rng)
        if rng.random() < 0.5:  # mirror
            cols = cols[:, ::-1]
            b[:, 1] = self.image_hw[1] - b[:, 1] - b[:, 3]
        true, b = b.copy(), self.jittered_first_box(b, rng)
        frames = np.ascontiguousarray(self.videos[video][first + j][rows[:, :, None], cols[:, None, :]])
        if self.occlude > 0 and rng.random() < self.occlude:
            frames, p = self.occluded(frames, true, p, rng)
        return frames, b, p

    def _consecutive(self, k, L, rng):
        """``L`` consecutive frames of track ``k`` from a random start (its last one repeated where the
        track is shorter): its video, their indices in it, and the track's boxes and presence there."""
        video, first, boxes, presence = self.tracks[k]
        n = len(boxes)
        idx = np.minimum(int(rng.integers(max(1, n - L + 1))) + np.arange(L), n - 1)
        return video, first + idx, boxes[idx], presence[idx]

    def mixed(self, frames, boxes, presence, k, rng):
        """Scene mixing (see the class docstring): ``frames`` (L, H, W[, 3]) uint8 of track ``k``,
        its target at ``boxes`` where ``presence``, over frames of another track."""
        other = int(rng.integers(len(self.tracks) - 1))
        video, idx, _, _ = self._consecutive(other + (other >= k), len(frames), rng)
        # a copy (fancy indexing), blended in place only where feathered_mask is not 0: the same
        # frames as blending whole ones, faster
        out = self.videos[video][idx]
        if rng.random() < 0.5:
            out = out[:, :, ::-1]
        rows, cols = feather_axes(boxes, self.image_hw)
        for t in np.flatnonzero(presence > 0):
            if (patch := _feather_patch(rows[t], cols[t], frames.ndim)) is None:  # wholly outside the frame
                continue
            ys, xs, alpha = patch
            region = np.s_[t, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            out[region] = _blend(alpha, frames[region], out[region])
        return out

    def distracted(self, frames, boxes, presence, rng):
        """A look-alike behind the target (see the class docstring), laid into ``frames`` (L, H, W[, 3])
        uint8 in place; the target, at ``boxes`` where ``presence``, is kept in front."""
        src = int(rng.integers(len(self.tracks)))  # any sequence's target, this one's included
        video, idx, db, dp = self._consecutive(src, len(frames), rng)
        db = db.astype(np.float64)
        if not (dp.any() and presence.any()):
            return frames
        H, W = self.image_hw
        mirror = rng.random() < 0.5
        if mirror:
            db[:, 1] = W - db[:, 1] - db[:, 3]
        t0, d0 = np.flatnonzero(presence > 0)[0], np.flatnonzero(dp > 0)[0]
        size = boxes[t0, 2:].astype(np.float64)
        s = np.sqrt(size.prod() / max(db[d0, 2:].prod(), 1e-3)) * np.exp(rng.uniform(-0.3, 0.3))
        s = float(np.clip(s, 0.25, 4))
        angle = rng.uniform(0, 2 * np.pi)  # the look-alike's first centre, 1 to 2.5 target sizes away
        centre = boxes[t0, :2] + size / 2 + rng.uniform(1, 2.5) * size * [np.sin(angle), np.cos(angle)]
        offset = centre - s * (db[d0, :2] + db[d0, 2:] / 2)  # frame = s * source + offset
        placed = np.concatenate([s * db[:, :2] + offset, s * db[:, 2:]], axis=1)
        rows, cols = feather_axes(placed, self.image_hw)
        # the target in front: its box and a margin of 0.1 of its size, as it was
        front_rows, front_cols = feather_axes(boxes, self.image_hw, inner=0.0, outer=0.1)
        for t in np.flatnonzero(dp > 0):
            if (patch := _feather_patch(rows[t], cols[t], frames.ndim)) is None:  # placed wholly outside
                continue
            ys, xs, alpha = patch
            sy = np.clip(((ys + 0.5 - offset[0]) / s).astype(np.intp), 0, H - 1)
            sx = np.clip(((xs + 0.5 - offset[1]) / s).astype(np.intp), 0, W - 1)
            look_alike = self.videos[video][idx[t]][np.ix_(sy, W - 1 - sx if mirror else sx)]
            region = np.s_[t, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            front = np.outer(front_rows[t, region[1]], front_cols[t, region[2]]) * (presence[t] > 0)
            alpha *= 1 - front.astype(np.float32).reshape(alpha.shape)
            frames[region] = _blend(alpha, look_alike, frames[region])
        return frames

    def patched(self, frames, boxes, presence, rng):
        """A random-patch target (see the class docstring), laid into ``frames`` (L, H, W[, 3]) uint8
        in place: consecutive frames of a random training sequence at one box, anywhere in its frame
        (its size the target's first one times exp(U(-0.5, 0.5)), each side then times up to
        exp(±0.3), mirrored at random), stretched onto the target's ``boxes`` where ``presence``
        with scene mixing's feathered edge."""
        video, idx, _, _ = self._consecutive(int(rng.integers(len(self.tracks))), len(frames), rng)
        if not presence.any():
            return frames
        H, W = self.image_hw
        t0 = np.flatnonzero(presence > 0)[0]
        size = boxes[t0, 2:].astype(np.float64) * np.exp(rng.uniform(-0.5, 0.5) + rng.uniform(-0.3, 0.3, 2))
        size = np.minimum(size, [H / 1.6, W / 1.6])  # the piece and its feathered margin inside the frame
        lo, hi = 0.3 * size, np.array([H, W]) - 1.3 * size
        top_left = rng.uniform(lo, np.maximum(hi, lo + 1e-3))
        mirror = rng.random() < 0.5
        rows, cols = feather_axes(boxes, self.image_hw)
        for t in np.flatnonzero(presence > 0):
            if (patch := _feather_patch(rows[t], cols[t], frames.ndim)) is None:  # wholly outside the frame
                continue
            ys, xs, alpha = patch
            b = boxes[t].astype(np.float64)
            sy = np.clip((top_left[0] + (ys + 0.5 - b[0]) / max(b[2], 1e-3) * size[0]).astype(np.intp), 0, H - 1)
            sx = np.clip((top_left[1] + (xs + 0.5 - b[1]) / max(b[3], 1e-3) * size[1]).astype(np.intp), 0, W - 1)
            piece = self.videos[video][idx[t]][np.ix_(sy, W - 1 - sx if mirror else sx)]
            region = np.s_[t, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            frames[region] = _blend(alpha, piece, frames[region])
        return frames

    def occluded(self, frames, boxes, presence, rng, hidden=0.7):
        """An occluder crossing the target once (see the class docstring), laid into ``frames``
        (L, H, W[, 3]) uint8 in place over frames 1..L-1; returns them and a copy of ``presence``, 0
        where it hides at least ``hidden`` of the target's box (``boxes``, true ones). The occluder is
        a piece of a random training frame (mirrored at random), 1.2 to 2 times the target's size
        across its path (so it can hide it whole) and 0.5 to 1.5 times it along it; it crosses along
        the rows or the columns, from a random visible frame t0 >= 1 on, in D = 3..12 frames at a steady
        speed relative to the target (first overlap at t0, last at t0 + D - 1), and is drawn wherever
        it lies inside the frame."""
        presence = presence.copy()
        L, (H, W) = len(frames), self.image_hw
        seen = np.flatnonzero(presence[1:] > 0) + 1
        if L < 3 or not seen.size:
            return frames, presence
        t0, D = int(rng.choice(seen)), int(rng.integers(3, 13))
        axis = int(rng.integers(2))  # 0: it moves along the rows (vertically), 1: along the columns
        b = boxes.astype(np.float64)
        b = np.where(np.isfinite(b).all(1, keepdims=True), b, b[t0])  # unlabelled frames: as at t0
        size = np.empty(2)
        size[axis] = b[t0, 2 + axis] * rng.uniform(0.5, 1.5)
        size[1 - axis] = b[t0, 3 - axis] * rng.uniform(1.2, 2.0)
        size = np.clip(size, 2, [H, W])
        span = b[t0, 2 + axis] + size[axis]  # centre offsets over which the two overlap
        direction = rng.choice([-1.0, 1.0])
        centre = b[:, :2] + b[:, 2:] / 2
        offset = np.zeros((L, 2))  # the occluder's centre minus the target's
        offset[:, axis] = direction * (-span / 2 + (np.arange(L) - t0 + 0.5) * span / D)
        offset[:, 1 - axis] = rng.uniform(-0.1, 0.1) * b[t0, 3 - axis]
        top = np.round(centre + offset - size / 2).astype(np.intp)
        h, w = (int(v) for v in np.round(size))
        video, idx, _, _ = self._consecutive(int(rng.integers(len(self.tracks))), 1, rng)
        y, x = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
        piece = self.videos[video][idx[0], y:y + h, x:x + w]
        if rng.random() < 0.5:
            piece = piece[:, ::-1]
        for t in range(1, L):
            y0, x0 = top[t]
            ys, xs = slice(max(y0, 0), min(y0 + h, H)), slice(max(x0, 0), min(x0 + w, W))
            if ys.start < ys.stop and xs.start < xs.stop:
                frames[t, ys, xs] = piece[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
            overlap = [max(0.0, min(top[t, a] + (h, w)[a], b[t, a] + b[t, 2 + a]) - max(top[t, a], b[t, a]))
                       for a in (0, 1)]
            if overlap[0] * overlap[1] >= hidden * max(b[t, 2] * b[t, 3], 1e-6):
                presence[t] = 0
        return frames, presence

    def gather(self, indices, seq_len, rng=None, xp=np):
        if not (self.augment and rng is not None):
            return super().gather(indices, seq_len, None, xp)
        frames, boxes, presence = pad_batch([self.augmented_window(int(i), seq_len, rng) for i in indices], seq_len)
        validate_boxes(boxes[:, 0], f"{self.name}: the first boxes of a batch", self.image_hw)  # as TrackSet
        return self.frames_to(frames, xp), xp.asarray(boxes), xp.asarray(presence)


def default_cache_dir(root):
    """``$MINIHART_CACHE``, else ``<root>/.minihart-cache``."""
    return Path(os.environ.get("MINIHART_CACHE", Path(root) / ".minihart-cache"))


def load(root, split="train", frame_hw=None, channels=3, overlap=0.5, augment=None, max_stride=3,
         max_zoom=1.5, box_jitter=1.0, mix=0.0, distract=0.0, patches=0.0, stretch=1.0, photo=0.0, list_file=None,
         cache=True, zoom_drift=1.0, occlude=0.0, stills=0.0):
    """The ``split`` of a folder of SOT sequences as a :class:`SOTSet`.

    Args:
      root: a folder with ``train/`` and ``val/`` (or ``test/``) sequence folders, a folder of
        sequences, or one sequence.
      split: ``"train"``, ``"val"`` or ``"test"`` (see :func:`split_folder`).
      frame_hw: resize every frame to ``(H, W)`` (boxes scaled per axis); None keeps the images'
        size, which must then be the same for every sequence.
      channels: 1 (grey) or 3 (colour) for the frames the batches return.
      augment: default ``split == "train"``; see :class:`SOTSet` for max_stride, max_zoom, box_jitter,
        mix, distract, patches, stretch, photo, zoom_drift, occlude and stills.
      list_file: a file naming the sequences of the split, one a line.
      cache: keep resized frames as ``.npy`` in :func:`default_cache_dir` (read-only data: no cache).
    """
    folder = split_folder(root, split)
    infos = [read_sequence(f) for f in find_sequences(folder, list_file)]
    if frame_hw is None and len({s.image_hw for s in infos}) > 1:
        raise ValueError(f"{folder}: sequences differ in image size {sorted({s.image_hw for s in infos})}; "
                         "pass frame_hw to resize them to one size")
    cache_dir = default_cache_dir(root) if cache else None
    videos, tracks, scales = [], [], []
    for k, info in enumerate(infos):
        scale = scale_to(info, frame_hw)
        videos.append(read_frames(info, frame_hw, cache_dir))
        tracks.append((k, 0, info.boxes * scale, info.presence))
        scales.append(scale)
    return SOTSet("sot", videos, tracks, channels, infos, scales, overlap,
                  split == "train" if augment is None else augment, max_stride, max_zoom, box_jitter,
                  mix, distract, patches, stretch, photo, zoom_drift, occlude, stills)
