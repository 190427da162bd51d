"""KTH pedestrians (Schuldt et al., ICPR 2004) with the per-frame person boxes of
Lin, Jiang & Davis (ICCV 2009) that RATM (Kahou et al.) and HART (sec. 5.1) track on.

Sources (``python data_scripts/get_kth.py`` fetches them): the videos ``walking.zip``,
``jogging.zip``, ``running.zip`` from the KTH site, and ``KTHBoundingBoxInfo.txt``. Each
data line of that file is ``person scenario action sequence start end`` followed by
``ymin xmin ymax xmax`` for every frame ``start..end`` (1-based, inclusive) of video
``personPP_ACTION_dS_uncomp.avi``; action codes 1-6 are :data:`ACTIONS`; header lines
(``#`` or free text before the first data line) are skipped. The box corners are 1-based
pixels, both included (the values run 1..120 and 1..160, never 0): a box becomes
``[y, x, h, w] = [ymin - 1, xmin - 1, ymax - ymin + 1, xmax - xmin + 1]``, the library's
0-based, half-open convention (:mod:`minihart.boxes`).

Cache (:func:`prepare`): ``frames.npy`` uint8 ``(N, 120, 160)`` grey, only the annotated
frames; ``tracks.npz`` with ``info`` int ``(M, 7)`` = person, scenario, action, sequence,
start, row in ``frames.npy``, length, ``boxes`` float32 ``(N, 4)`` ``[y, x, h, w]`` and
``version`` (:data:`CACHE_VERSION`; a cache without it has the boxes 1 px off: prepare again).

Splits (``load(split_by=...)``), whole subjects or scenarios are left out of training:

* ``"subjects"`` (the default): the test subjects default to KTH's own test set (persons 2,
  3, 5, 6, 7, 8, 9, 10, 22); the other 16 train. RATM and HART report leave-one-subject-out
  runs instead: pass ``test_subjects=(k,)`` for subject ``k``.
* ``"scenario"``: scenarios d1-d3 (outdoors, scale changes, other clothes) train, d4
  (indoors) is the validation / test set, all 25 subjects in both.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from minihart.data.batching import DatasetNotPrepared, TrackSet, parse_numbers

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
USED_ACTIONS = ("walking", "jogging", "running")
TEST_SUBJECTS = (2, 3, 5, 6, 7, 8, 9, 10, 22)
FRAME_HW = (120, 160)
BOXES_NAME = "KTHBoundingBoxInfo.txt"
SPLITS_BY = ("subjects", "scenario")
TEST_SCENARIOS = (4,)
CACHE_VERSION = 2  # 2: boxes read as 1-based inclusive corners


class BoxEntry(NamedTuple):
    """One data line of ``KTHBoundingBoxInfo.txt``; boxes ``(end - start + 1, 4)`` [y, x, h, w]."""
    person: int
    scenario: int
    action: str
    sequence: int
    start: int
    end: int
    boxes: np.ndarray
    line: int


def video_name(person, action, scenario):
    return f"person{person:02d}_{action}_d{scenario}_uncomp.avi"


def parse_boxes_file(path, actions=USED_ACTIONS):
    """Entries of ``KTHBoundingBoxInfo.txt`` for ``actions``, boxes converted from 1-based
    inclusive corners (see the module docstring) and at least 1 pixel high and wide.

    ``ValueError`` naming the file and line for a malformed line, and naming the file when it
    is not a boxes file at all: empty, binary, an HTML page (a failed download saves one), or
    without a single data line.
    """
    entries, seen_data = [], False
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                tok = line.split()
                if tok and tok[0].startswith("<"):
                    raise ValueError(f"{path} line {n}: HTML, not {BOXES_NAME} (a web page saved "
                                     f"by a failed download?): {line.strip()[:60]!r}")
                if not tok or tok[0].startswith("#") or (not seen_data and not tok[0].isdigit()):
                    continue
                seen_data = True
                entry = _parse_line(tok, f"{path} line {n}", n)
                if entry.action in actions:
                    entries.append(entry)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file, so not {BOXES_NAME}") from None
    if not seen_data:
        raise ValueError(f"{path}: no data line ('person scenario action sequence start end' and "
                         f"'ymin xmin ymax xmax' per frame): empty or not {BOXES_NAME}")
    return entries


def _parse_line(tok, where, n):
    """One data line (split into tokens ``tok``) as a :class:`BoxEntry`."""
    try:
        person, scenario, code, seq, start, end = (int(v) for v in tok[:6])
    except ValueError:
        raise ValueError(f"{where}: expected 6 integers 'person scenario action sequence "
                         f"start end', got {' '.join(tok[:6])!r}") from None
    if not (1 <= code <= len(ACTIONS) and 1 <= start <= end):
        raise ValueError(f"{where}: action code must be 1-6 and 1 <= start <= end, "
                         f"got action {code}, frames {start}..{end}")
    numbers = tok[6:]
    if len(numbers) != 4 * (end - start + 1):
        raise ValueError(f"{where}: frames {start}..{end} need {4 * (end - start + 1)} box "
                         f"numbers (ymin xmin ymax xmax per frame), got {len(numbers)}")
    ymin, xmin, ymax, xmax = parse_numbers(numbers, where).reshape(-1, 4).T
    # 1-based, both ends included -> 0-based top-left corner, half-open extent
    boxes = np.stack([ymin - 1, xmin - 1, ymax - ymin + 1, xmax - xmin + 1], axis=-1)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
    return BoxEntry(person, scenario, ACTIONS[code - 1], seq, start, end,
                    boxes.astype(np.float32), n)


def read_video(path, frame_hw=FRAME_HW):
    """All frames of a video as grey uint8 ``(N, H, W)`` (decoded by imageio-ffmpeg, resized
    when the video is not ``frame_hw``). ``ValueError`` naming the file if it cannot be decoded."""
    import imageio_ffmpeg  # noqa: PLC0415  (only needed to prepare data)
    from PIL import Image  # noqa: PLC0415

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bpp=1)
        W, H = next(reader)["size"]
        frames = [np.frombuffer(b, np.uint8).reshape(H, W) for b in reader]
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: cannot decode the video ({reason}); the file is corrupt or "
                         "not a video: delete it and download it again") from None
    if not frames:
        raise ValueError(f"{path}: the video has no frames; delete it and download it again")
    if (H, W) != tuple(frame_hw):
        size = (frame_hw[1], frame_hw[0])
        frames = [np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames]
    return np.stack(frames)


def prepare(video_dir, boxes_file, out_dir, actions=USED_ACTIONS, progress=True):
    """Decode the annotated frames of every video named in ``boxes_file`` (searched for under
    ``video_dir``) into the cache in ``out_dir``. Entries whose video is absent are skipped and
    listed in the returned summary ``{"frames", "tracks", "missing_videos"}``."""
    from tqdm import tqdm  # noqa: PLC0415

    entries = parse_boxes_file(boxes_file, actions)
    if not entries:
        raise ValueError(f"{boxes_file}: no line for the actions {', '.join(actions)}")
    found = {p.name: p for p in Path(video_dir).rglob("*.avi")}
    kept = [e for e in entries if video_name(e.person, e.action, e.scenario) in found]
    missing = sorted({video_name(e.person, e.action, e.scenario) for e in entries} - set(found))
    if not kept:
        raise ValueError(f"none of the {len(entries)} videos listed in {boxes_file} is under "
                         f"{video_dir} (looked for e.g. {missing[:1]})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lengths = [len(e.boxes) for e in kept]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frames = np.lib.format.open_memmap(out / "frames.part.npy", "w+", np.uint8,
                                       (sum(lengths), *FRAME_HW))
    by_video = {}
    for e, off in zip(kept, offsets):
        by_video.setdefault(video_name(e.person, e.action, e.scenario), []).append((e, off))
    for name, items in tqdm(sorted(by_video.items()), desc="decoding KTH", disable=not progress):
        video = read_video(found[name])
        for e, off in items:
            if e.end > len(video):
                raise ValueError(f"{boxes_file} line {e.line}: frames {e.start}..{e.end} but "
                                 f"{found[name]} has only {len(video)} frames (truncated?)")
            frames[off:off + len(e.boxes)] = video[e.start - 1:e.end]
    frames.flush()
    del frames
    (out / "frames.part.npy").replace(out / "frames.npy")
    info = np.array([(e.person, e.scenario, ACTIONS.index(e.action) + 1, e.sequence, e.start,
                      off, n) for e, off, n in zip(kept, offsets, lengths)], dtype=np.int64)
    np.savez(out / "tracks.npz", info=info, boxes=np.concatenate([e.boxes for e in kept]),
             version=CACHE_VERSION)
    return {"frames": int(sum(lengths)), "tracks": len(kept), "missing_videos": missing}


def load(root, split="train", split_by="subjects", test_subjects=None, overlap=0.5, augment=None):
    """The prepared KTH set in ``root`` as a :class:`TrackSet` of grey 120x160 frames.

    split: ``train`` or ``test``; split_by: ``"subjects"`` (test: the persons in
    ``test_subjects``, default :data:`TEST_SUBJECTS`; ``(k,)`` leaves subject ``k`` out) or
    ``"scenario"`` (train: d1-d3, test: d4); augment: time reversal and mirroring (default:
    on for ``train``). Raises :class:`DatasetNotPrepared` when the cache is missing and
    ``ValueError`` for a bad option or an empty split.
    """
    root = Path(root)
    if split not in ("train", "test") or split_by not in SPLITS_BY:
        raise ValueError(f"kth: split must be 'train' or 'test' and split_by one of {SPLITS_BY}, "
                         f"got split={split!r}, split_by={split_by!r}")
    if split_by == "scenario" and test_subjects is not None:
        raise ValueError("kth: test_subjects only go with split_by='subjects'; the scenario split "
                         "has all subjects in both halves")
    subjects = TEST_SUBJECTS if test_subjects is None else tuple(test_subjects)
    if not ((root / "frames.npy").is_file() and (root / "tracks.npz").is_file()):
        raise DatasetNotPrepared.for_dataset("kth", root, "frames.npy and tracks.npz",
                                             f"python data_scripts/get_kth.py --root {root}")
    frames = np.load(root / "frames.npy", mmap_mode="r")
    with np.load(root / "tracks.npz") as z:
        if "version" not in z:  # made before the 1-based fix: every box 1 px off, silently
            raise ValueError(f"{root / 'tracks.npz'} was prepared by an older minihart that read the "
                             "KTH boxes 1 pixel off; prepare it again with "
                             f"python data_scripts/get_kth.py --root {root}")
        info, boxes = z["info"], z["boxes"]
    if split_by == "subjects":
        held_out, rule = np.isin(info[:, 0], subjects), f"test subjects {subjects}"
    else:
        held_out, rule = np.isin(info[:, 1], TEST_SCENARIOS), "test scenario d4"
    chosen = held_out == (split == "test")
    if not chosen.any():
        raise ValueError(f"kth: the {split} split ({rule}) of {root} has no track")
    tracks = [(0, off, boxes[off:off + n], np.ones(n, np.float32)) for *_, off, n in info[chosen]]
    return TrackSet("kth", [frames], tracks, channels=1, overlap=overlap,
                    augment=split == "train" if augment is None else augment)
