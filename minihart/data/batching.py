"""Batches, padding, reproducible shuffling and the sequence-length curriculum.

Every dataset is a list of *windows*: a window is a piece of one track, at most ``seq_len``
frames long, starting on a frame where the target is labelled (the tracker is initialised
from the first box). :class:`WindowSet` turns windows into padded batches;
:class:`TrackSet` cuts labelled tracks of stored videos into windows (KTH, KITTI, OTB).
"""
from __future__ import annotations

import numpy as np

from minihart.backend import get_array_module
from minihart.boxes import validate_boxes


class DatasetNotPrepared(Exception):
    """A dataset's files are missing. The message names the folder, the ``data_scripts``
    command that fills it, and the offline alternative; commands print it without a traceback."""

    @classmethod
    def for_dataset(cls, name, root, files, command):
        return cls(f"The {name} dataset is not prepared: {files} not found in {root}/\n"
                   f"Download and prepare it with:\n    {command}\n"
                   "or train offline on the embedded synthetic set with --dataset synthetic, e.g.\n"
                   "    python -m minihart.train --dataset synthetic")


def parse_numbers(tokens, where, finite=True):
    """The strings ``tokens`` as a float64 array; ``ValueError`` naming ``where`` (file and
    line) and the first value that is not a number, or (``finite``) not a finite one."""
    out = []
    for tok in tokens:
        try:
            out.append(float(tok))
        except ValueError:
            raise ValueError(f"{where}: non-numeric value {tok!r}") from None
        if finite and not np.isfinite(out[-1]):  # "nan" parses; only OTB files mean "absent" by it
            raise ValueError(f"{where}: non-finite value {tok!r}")
    return np.array(out)


def to_float_frames(frames, channels):
    """uint8 frames ``(L, H, W)`` or ``(L, H, W, 3)`` -> float32 ``(L, C, H, W)`` in ``[0, 1]``,
    on the device of ``frames`` (training moves the uint8 batch and converts it there).

    Colour becomes grey by the ITU-R 601 luma weights; grey becomes colour by repetition.
    """
    xp = get_array_module(frames)
    x = xp.asarray(frames)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 3 and channels == 1:
        x = (x.astype(xp.float32) * xp.float32(1 / 255)) @ xp.asarray([[0.299], [0.587], [0.114]], dtype=xp.float32)
        return x.reshape(x.shape[0], 1, *x.shape[1:3])  # (L, H, W, 1) -> (L, 1, H, W): the same memory
    x = x.transpose(0, 3, 1, 2).astype(xp.float32, order="C")  # transposed as stored: a quarter of the bytes
    x *= xp.float32(1 / 255)
    return xp.repeat(x, 3, axis=1) if x.shape[1] == 1 and channels == 3 else x


def pad_batch(items, seq_len=None):
    """Stack windows of different lengths into one batch.

    Args:
      items: list of ``(frames (L, ...), boxes (L, 4), presence (L,))``, ``L >= 1``: frames
        float ``(L, C, H, W)``, or as stored (uint8 ``(L, H, W[, 3])``, see ``WindowSet.gather``).
      seq_len: length ``T`` of the batch; default the longest window.
    Returns:
      frames ``(B, T, ...)`` (float frames as float32, uint8 kept), boxes ``(B, T, 4)``
      float32, presence ``(B, T)`` float32 (0 in the padding). Padding repeats the last frame
      and box, so every box stays valid (``h, w > 0``) for losses that are masked by
      ``presence`` afterwards.
    """
    T = seq_len or max(len(b) for _, b, _ in items)
    f0 = np.asarray(items[0][0])
    # stored uint8 frames stay uint8 until they reach the device; written once into the batch
    frames = np.empty((len(items), T) + f0.shape[1:], np.uint8 if f0.dtype == np.uint8 else np.float32)
    boxes, presence = np.empty((len(items), T, 4), np.float32), np.zeros((len(items), T), np.float32)
    for n, (f, b, p) in enumerate(items):
        L = len(b)
        if L > T:
            raise ValueError(f"pad_batch: a window has {L} frames, more than seq_len={T}")
        frames[n, :L], frames[n, L:] = f, f[L - 1]
        boxes[n, :L], boxes[n, L:] = b, b[L - 1]
        presence[n, :L] = p
    return frames, boxes, presence


def epoch_order(n, seed, epoch):
    """The shuffled order of ``n`` windows in ``epoch``: a function of ``(seed, epoch)`` only,
    so a resumed run sees the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def augment(frames, boxes, presence, rng, width_axis=3):
    """Training augmentation of the reference: time reversal and horizontal mirroring, each
    with probability 1/2. frames ``(L, C, H, W)`` (or stored ``(L, H, W[, 3])`` with
    ``width_axis=2``), boxes ``(L, 4)``, presence ``(L,)``.
    A reversed window starts on its last labelled frame."""
    if rng.random() < 0.5:
        end = int(np.flatnonzero(presence)[-1]) + 1  # the reversed window starts on a labelled frame
        frames, boxes, presence = frames[end - 1::-1], boxes[end - 1::-1], presence[end - 1::-1]
    if rng.random() < 0.5:
        W = frames.shape[width_axis]
        frames = np.flip(frames, width_axis)
        boxes = boxes.copy()
        boxes[:, 1] = W - boxes[:, 1] - boxes[:, 3]
    return np.ascontiguousarray(frames), boxes, presence


class WindowSet:
    """Base of every dataset. Subclasses set ``name``, ``image_hw``, ``channels``, ``augment``
    and define ``num_windows(seq_len)`` and ``window(i, seq_len) -> (frames, boxes, presence)``.
    """
    augment = False

    def __len__(self):
        return self.num_windows(None)

    width_axis = 3  # of the frames raw_window returns

    def raw_window(self, i, seq_len):
        """Window ``i`` with its frames as stored, for :meth:`frames_to` (default :meth:`window`)."""
        return self.window(i, seq_len)

    def frames_to(self, frames, xp):
        """A padded batch of stored frames as float32 ``(B, T, C, H, W)`` on ``xp``'s device."""
        return xp.asarray(frames, dtype=xp.float32)

    def gather(self, indices, seq_len, rng=None, xp=np):
        """The windows ``indices`` as a padded batch (augmented when ``self.augment`` and an
        ``rng`` is given), on the device of ``xp``: the frames travel as stored (uint8 for
        videos, a quarter of float32) and become float32 there. The first boxes are checked
        on the host, so the model need not read them back (``forward(check_boxes=False)``)."""
        items = [self.raw_window(int(i), seq_len) for i in indices]
        if self.augment and rng is not None:
            items = [augment(*item, rng, self.width_axis) for item in items]
        frames, boxes, presence = pad_batch(items, seq_len)
        validate_boxes(boxes[:, 0], f"{self.name}: the first boxes of a batch", self.image_hw)
        return self.frames_to(frames, xp), xp.asarray(boxes), xp.asarray(presence)

    def _check(self, batch_size, seq_len):
        """``ValueError`` naming the argument unless batch_size >= 1 and seq_len is None or >= 1."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{self.name}: batch_size must be a positive integer, got {batch_size!r}")
        if seq_len is not None and (not isinstance(seq_len, (int, np.integer)) or seq_len < 1):
            raise ValueError(f"{self.name}: seq_len must be a positive integer or None (whole tracks), "
                             f"got {seq_len!r}")

    def batch(self, rng, batch_size, seq_len, xp=np):
        """``batch_size`` random windows of ``seq_len`` frames (without replacement when there
        are enough): ``frames (B, T, C, H, W), boxes (B, T, 4), presence (B, T)`` on ``xp``."""
        self._check(batch_size, seq_len)
        n = self.num_windows(seq_len)
        if n == 0:
            raise ValueError(f"{self.name}: no window of {seq_len} frames (tracks too short?)")
        return self.gather(rng.choice(n, batch_size, replace=n < batch_size), seq_len, rng, xp)

    def batches(self, batch_size, seq_len, seed=None, epoch=0, xp=np):
        """Every window once, in batches (the last one may be smaller). ``seed=None``: in order,
        not augmented (evaluation); else shuffled by :func:`epoch_order` and augmented."""
        self._check(batch_size, seq_len)
        n = self.num_windows(seq_len)
        order = np.arange(n) if seed is None else epoch_order(n, seed, epoch)
        rng = None if seed is None else np.random.default_rng([seed, epoch, 1])
        for s in range(0, n, batch_size):
            yield self.gather(order[s:s + batch_size], seq_len, rng, xp)

    def batches_per_epoch(self, batch_size, seq_len):
        return -(-self.num_windows(seq_len) // batch_size)


class TrackSet(WindowSet):
    """Labelled tracks in stored videos, cut into windows (KTH, KITTI and OTB).

    Args:
      name: dataset name.
      videos: list of uint8 arrays ``(N, H, W)`` or ``(N, H, W, 3)`` (memory-maps are fine),
        all of the same ``(H, W)``.
      tracks: list of ``(video index, first frame, boxes (n, 4) float32, presence (n,))``;
        track ``k`` covers frames ``first .. first + n - 1`` of its video.
      channels: 1 or 3, the channels of the returned frames.
      overlap: consecutive windows of a track share ``int(overlap * seq_len)`` frames (the
        reference's resampling); the last window of a track may be shorter.
      augment: time reversal and mirroring in :meth:`batch` / shuffled :meth:`batches`.
    ``seq_len=None`` gives whole tracks, one window each.
    """

    def __init__(self, name, videos, tracks, channels, overlap=0.5, augment=False):
        if not 0 <= overlap < 1:
            raise ValueError(f"TrackSet: overlap must be in [0, 1), got {overlap}")
        self.name, self.videos, self.tracks = name, videos, tracks
        self.channels, self.overlap, self.augment = channels, overlap, augment
        self.image_hw = tuple(videos[0].shape[1:3]) if videos else (0, 0)
        self._windows = {}

    def windows(self, seq_len):
        """List of ``(track, offset, length)`` for windows of at most ``seq_len`` frames."""
        if seq_len not in self._windows:
            out = []
            for k, (_, _, boxes, presence) in enumerate(self.tracks):
                n = len(boxes)
                T = n if seq_len is None else seq_len
                step = max(1, T - int(self.overlap * T))
                for s in range(0, n, step):
                    if presence[s] and min(T, n - s) >= 2:  # starts on a labelled frame
                        out.append((k, s, min(T, n - s)))
                    if s + T >= n:
                        break
            self._windows[seq_len] = out
        return self._windows[seq_len]

    def num_windows(self, seq_len):
        return len(self.windows(seq_len))

    width_axis = 2  # stored frames (L, H, W) or (L, H, W, 3)

    def raw_window(self, i, seq_len):
        k, s, L = self.windows(seq_len)[i]
        video, first, boxes, presence = self.tracks[k]
        return self.videos[video][first + s:first + s + L], boxes[s:s + L], presence[s:s + L]

    def window(self, i, seq_len):
        frames, boxes, presence = self.raw_window(i, seq_len)
        return to_float_frames(frames, self.channels), boxes, presence

    def frames_to(self, frames, xp):
        B, T = frames.shape[:2]
        x = to_float_frames(xp.asarray(frames).reshape(B * T, *frames.shape[2:]), self.channels)
        return x.reshape(B, T, *x.shape[1:])


class Curriculum:
    """Sequence-length curriculum (paper sec. 5.2; the reference's ``TrainSchedule``).

    Training starts at ``start`` frames. At the end of every epoch call :meth:`epoch_end`
    with the train IoU: the length grows by one when the IoU reaches :attr:`iou_needed` and
    at least ``min_epochs`` epochs were spent at the current length. :attr:`iou_needed` falls
    linearly from ``threshold`` at ``start`` to ``threshold - threshold_decrease`` at
    ``stop``. ``threshold=0`` gives the paper's plain rule (longer every ``min_epochs``).
    Defaults are the reference's KITTI settings. State is the plain attributes
    (``vars(curriculum)`` can be saved and passed back as keyword arguments).
    """

    def __init__(self, start=5, stop=30, threshold=0.7, threshold_decrease=0.05, min_epochs=13,
                 seq_len=None, epochs_at_len=0):
        if not 1 <= start <= stop:
            raise ValueError(f"Curriculum: need 1 <= start <= stop, got start={start}, stop={stop}")
        if not 0 <= threshold <= 1 or min_epochs < 0:
            raise ValueError(f"Curriculum: threshold is an IoU in [0, 1] and min_epochs >= 0, got "
                             f"threshold={threshold}, min_epochs={min_epochs}")
        self.start, self.stop, self.min_epochs = start, stop, min_epochs
        self.threshold, self.threshold_decrease = threshold, threshold_decrease
        self.seq_len = start if seq_len is None else seq_len
        self.epochs_at_len = epochs_at_len

    @property
    def iou_needed(self):
        frac = (self.seq_len - self.start) / max(1, self.stop - self.start)
        return self.threshold - frac * self.threshold_decrease

    def epoch_end(self, train_iou):
        """Count a finished epoch; lengthen the sequences when due. Returns True if it did."""
        self.epochs_at_len += 1
        if (self.seq_len < self.stop and train_iou >= self.iou_needed
                and self.epochs_at_len >= self.min_epochs):
            self.seq_len += 1
            self.epochs_at_len = 0
            return True
        return False
