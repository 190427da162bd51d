"""The embedded synthetic tracking set: no download, generated on the fly, deterministic.

A sequence is a function of its seed only; the first ``T`` frames do not depend on how
long the sequence is, so the curriculum sees the same scenes grow longer. Each scene is
drawn back to front, vectorised over time:

1. background: a periodic texture (two smooth octaves and one of sharp-edged blocks),
   seen through a panning camera (sub-pixel, by interpolation matrices);
2. distractors behind the target, then the target, then distractors in front: textured
   superellipses (ellipse .. rounded box) whose size, aspect, corner shape and texture
   drift slowly; distractors copy the target's look in part and cross its path;
3. occluders: bars fixed in the world (they pan with the background) across the target's
   path, narrower (partial) or wider (full occlusion) than the target;
4. a lighting gradient times a brightness that changes over time, sensor noise, clip.

Motion is smooth and non-linear: a slowly turning heading, two sinusoidal wiggles, and a
mirror at the image border. Boxes are the target's full extent, also when occluded.

Flavours: ``kth`` (grey 120x160) and ``kitti`` (colour 187x621); any ``frame_hw`` works.
Difficulty: :data:`KNOBS` lists every knob with its value at difficulty 0 and 1; a level
(``easy`` = 0, ``medium`` = 0.5, ``hard`` = 1, or a number) interpolates them, and each knob
can be overridden. ``easy`` has no distractors or occluders; ``hard`` has all of the above.

Preview and speed: ``python -m minihart.data.synthetic --preview docs/ --speed``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from minihart.data.batching import WindowSet

FLAVOURS = {"kth": ((120, 160), 1), "kitti": ((187, 621), 3)}
LEVELS = {"easy": 0.0, "medium": 0.5, "hard": 1.0}
SPLITS = {"train": 0, "test": 1}
# knob: (value at difficulty 0, value at difficulty 1, meaning); lengths are in frame heights
KNOBS = {
    "clutter": (0.06, 0.16, "std of the background texture"),
    "contrast": (0.3, 0.1, "|target mean - background mean| intensity"),
    "texture": (0.06, 0.14, "amplitude of the target's own texture"),
    "speed": (0.012, 0.035, "mean target speed, frame heights per frame"),
    "wiggle": (0.04, 0.15, "amplitude of the sinusoidal part of the motion, frame heights"),
    "scale": (0.1, 0.35, "amplitude of the log-scale change"),
    "deform": (0.05, 0.25, "amplitude of the log-aspect change and texture drift"),
    "pan": (0.0, 0.02, "camera pan speed, frame heights per frame"),
    "distractors": (0, 3, "number of target look-alikes (rounded down)"),
    "similarity": (0.4, 0.9, "how much a distractor copies the target's look, 0..1"),
    "occluders": (0, 2, "number of occluding bars (rounded down)"),
    "occluder_width": (0.4, 1.4, "largest bar width / target width (> 1 can occlude fully)"),
    "lighting": (0.05, 0.3, "lighting gradient and brightness change amplitude"),
    "noise": (0.01, 0.04, "sensor noise std"),
}
HORIZON = 32  # crossings of distractors and occluders are scheduled within these frames
TWO_PI = 2 * np.pi


def knobs(difficulty="easy", **overrides):
    """The knob values at ``difficulty`` (a name in :data:`LEVELS` or a number in [0, 1]),
    with ``overrides`` replacing single knobs."""
    d = LEVELS.get(difficulty, difficulty)
    if isinstance(d, str) or not 0 <= d <= 1:
        raise ValueError(f"difficulty must be one of {list(LEVELS)} or a number in [0, 1], "
                         f"got {difficulty!r}")
    unknown = set(overrides) - set(KNOBS)
    if unknown:
        raise ValueError(f"unknown synthetic knob(s) {sorted(unknown)}; knobs are {list(KNOBS)}")
    k = {name: lo + d * (hi - lo) for name, (lo, hi, _) in KNOBS.items()}
    k.update(overrides)
    return k


def _grid_weights(pos, cell, n, nearest):
    """Interpolation weights ``(T, P, n)`` of pixel positions ``pos (T, P)`` on a periodic
    grid of ``n`` nodes ``cell`` pixels apart: linear (smooth) or nearest (blocks)."""
    q = pos / cell
    j = np.floor(q).astype(np.int64)
    eye = np.eye(n, dtype=np.float32)
    if nearest:
        return eye[j % n]
    f = (q - j).astype(np.float32)[..., None]
    return eye[j % n] * (1 - f) + eye[(j + 1) % n] * f


def _background(rng, pan, H, W, C, k):
    """Textured background ``(T, C, H, W)`` seen from camera offsets ``pan (T, 2)``."""
    T = len(pan)
    tint = rng.uniform(-0.1, 0.1, C) if C > 1 else np.zeros(1)
    mean = (rng.uniform(0.3, 0.7) + tint).astype(np.float32)
    rows, halves = [], []
    for cell, weight, nearest in ((H / 2.5, 0.6, False), (H / 8, 0.4, False), (H / 12, 0.6, True)):
        gh, gw = int(H / cell) + 4, int(W / cell) + 4
        grid = rng.standard_normal((1, gh, gw)) + 0.4 * rng.standard_normal((C, gh, gw))
        grid = (weight * k["clutter"] * grid).astype(np.float32)
        rows.append(_grid_weights(np.arange(H) + pan[:, :1], cell, gh, nearest))  # (T, H, gh)
        cols = _grid_weights(np.arange(W) + pan[:, 1:], cell, gw, nearest)  # (T, W, gw)
        half = grid.reshape(C * gh, gw) @ cols.reshape(T * W, gw).T  # columns, all frames at once
        halves.append(half.reshape(C, gh, T, W).transpose(2, 1, 0, 3).reshape(T, gh, C * W))
    out = np.concatenate(rows, 2) @ np.concatenate(halves, 1)  # rows: one product per frame
    return (out.reshape(T, H, C, W) + mean[:, None]).transpose(0, 2, 1, 3)


def _look(rng, C, background, k):
    """Random appearance of an object: intensity, colour, texture, corner shape."""
    level = background + rng.choice([-1, 1]) * k["contrast"] * rng.uniform(0.8, 1.2)
    if not 0.08 < level < 0.92:  # too close to black or white: go the other way
        level = 2 * background - level
    colour = rng.uniform(-0.15, 0.15, C) if C > 1 else np.zeros(1)
    return {"base": np.clip(level + colour, 0.05, 0.95),
            "gain": 1 + (rng.uniform(-0.3, 0.3, C) if C > 1 else np.zeros(1)),
            "amp": k["texture"] * rng.dirichlet(np.ones(4)) * 2 * rng.choice([-1, 1], 4),
            "freq": rng.uniform(0.4, 1.8, 4), "phase": rng.uniform(0, TWO_PI, 4),
            "drift": k["deform"] * rng.uniform(-0.5, 0.5, 4), "p": np.exp(rng.uniform(0.5, 1.6))}


def _shape_path(rng, t, h0, aspect, k):
    """Heights and widths ``(T,)``: a slow scale change and an aspect-ratio deformation."""
    s = k["scale"] * np.sin(TWO_PI * t / rng.uniform(40, 120) + rng.uniform(0, TWO_PI))
    d = k["deform"] * np.sin(TWO_PI * t / rng.uniform(15, 40) + rng.uniform(0, TWO_PI))
    return h0 * np.exp(s + d / 2), h0 * aspect * np.exp(s - d / 2)


def _motion(rng, t, H, k):
    """Unbounded smooth path ``(T, 2)`` starting at 0: a turning heading plus wiggles."""
    heading = rng.uniform(0, TWO_PI) + rng.uniform(-0.06, 0.06) * t
    speed = k["speed"] * H * rng.uniform(0.5, 1.5)
    vel = speed * np.stack([np.sin(heading), np.cos(heading)], 1)
    path = np.cumsum(vel, 0) - vel[0]
    for _ in range(2):
        amp, phase = k["wiggle"] * H * rng.uniform(0.3, 1, 2), rng.uniform(0, TWO_PI, 2)
        path += amp * (np.sin(TWO_PI * t[:, None] / rng.uniform(20, 60, 2) + phase) - np.sin(phase))
    return path


def _fold(c, lo, hi):
    """Mirror positions ``c`` into ``[lo, hi]`` (elementwise): objects bounce off the border."""
    span = hi - lo
    z = (c - lo) % (2 * span)
    return lo + span - np.abs(z - span)


def _boxes(centre, h, w, H, W):
    """Boxes ``(T, 4)`` from unbounded centres ``(T, 2)``, kept inside the image."""
    cy = _fold(centre[:, 0], h / 2, H - h / 2)
    cx = _fold(centre[:, 1], w / 2, W - w / 2)
    return np.stack([cy - h / 2, cx - w / 2, h, w], 1)


def _paint(canvas, box, look, t):
    """Alpha-blend a textured superellipse into ``canvas (T, C, H, W)``, in place.

    box: ``(T, 4)`` ``[y, x, h, w]`` per frame (may extend past the image); look: see
    :func:`_look`; t: ``(T,)`` frame times. Only the rows and columns the object covers in
    some frame are computed. Texture: a product term plus a sum term of cosines in the
    object's own coordinates ``u, v`` (-1..1 across it), so it scales with the object.
    """
    _, _, H, W = canvas.shape
    r0, c0 = (max(0, int(np.floor(box[:, j].min()))) for j in (0, 1))
    r1 = min(H, int(np.ceil((box[:, 0] + box[:, 2]).max())) + 1)
    c1 = min(W, int(np.ceil((box[:, 1] + box[:, 3]).max())) + 1)
    if r0 >= r1 or c0 >= c1:
        return
    half = (box[:, 2:] / 2).astype(np.float32)
    centre = (box[:, :2] + half).astype(np.float32)
    u = np.clip((np.arange(r0, r1, dtype=np.float32) + 0.5 - centre[:, :1]) / half[:, :1], -2, 2)
    v = np.clip((np.arange(c0, c1, dtype=np.float32) + 0.5 - centre[:, 1:]) / half[:, 1:], -2, 2)
    p = np.float32(look["p"])
    mask = (np.abs(u) ** p)[:, :, None] + (np.abs(v) ** p)[:, None, :]  # < 1 inside
    np.subtract(1, mask, out=mask)
    mask *= (half.min(1) / p)[:, None, None]  # soft edge about one pixel wide
    np.clip(mask, 0, 1, out=mask)
    a, f = look["amp"].astype(np.float32), (TWO_PI * look["freq"]).astype(np.float32)
    ph = (look["phase"] + look["drift"] * t[:, None]).astype(np.float32)  # (T, 4)
    tex = (a[0] * np.cos(f[0] * u + ph[:, :1]))[:, :, None] * np.cos(f[1] * v + ph[:, 1:2])[:, None]
    tex += (a[1] * np.cos(f[2] * u + ph[:, 2:3]) - a[3] * u * u)[:, :, None]
    tex += (a[2] * np.cos(f[3] * v + ph[:, 3:4]) - a[3] * v * v)[:, None, :]
    region = canvas[:, :, r0:r1, c0:c1]
    obj = tex[:, None] * look["gain"].astype(np.float32)[:, None, None]
    obj += look["base"].astype(np.float32)[:, None, None]
    obj -= region
    obj *= mask[:, None]
    region += obj


def sequence(seed, seq_len, frame_hw=(120, 160), channels=1, knob_values=None):
    """One synthetic sequence.

    Args:
      seed: an int or a tuple of ints (e.g. ``(base seed, split, index)``).
      seq_len: ``T``, the number of frames.
      frame_hw: ``(H, W)``; channels: 1 (grey) or 3 (colour).
      knob_values: dict from :func:`knobs` (default: ``knobs("easy")``).
    Returns:
      frames ``(T, C, H, W)`` float32 in ``[0, 1]``, boxes ``(T, 4)`` float32 ``[y, x, h, w]``
      of the target in pixels (always inside the image).
    """
    if seq_len < 1 or channels not in (1, 3) or len(frame_hw) != 2 or min(frame_hw) < 1:
        raise ValueError(f"sequence: need seq_len >= 1, channels 1 or 3 and frame_hw (H, W) >= 1, got "
                         f"seq_len={seq_len}, channels={channels}, frame_hw={frame_hw}")
    k = knob_values or knobs("easy")
    H, W = frame_hw
    rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    t = np.arange(max(seq_len, HORIZON), dtype=np.float64)  # paths do not depend on seq_len
    tt = t[:seq_len]
    heading = rng.uniform(-0.3, 0.3) + np.pi * rng.integers(2)  # mostly horizontal pans
    pan_velocity = k["pan"] * H * rng.uniform(0.5, 1) * np.array([np.sin(heading), np.cos(heading)])
    pan = pan_velocity * t[:, None]  # camera offset (T, 2) in pixels
    g = k["lighting"] * rng.uniform(-1, 1, 2)  # lighting gradient and brightness over time
    period, phase = rng.uniform(20, 60), rng.uniform(0, TWO_PI)
    gain = 1 + 0.7 * k["lighting"] * np.sin(TWO_PI * tt / period + phase)

    def track(h0, aspect):  # unbounded centres (T, 2), heights, widths
        h, w = _shape_path(rng, t, h0, aspect, k)
        return _motion(rng, t, H, k), np.minimum(h, 0.9 * H), np.minimum(w, 0.9 * W)

    h0, aspect = H * rng.uniform(0.22, 0.4), np.exp(rng.uniform(np.log(0.45), np.log(1.6)))
    centre, h, w = track(h0, aspect)
    target = _boxes(centre + rng.uniform(0, 1, 2) * (H, W), h, w, H, W)
    frames = _background(rng, pan[:seq_len], H, W, channels, k)
    background = float(frames[0].mean())
    look = _look(rng, channels, background, k)
    layers = [(0, target, look)]  # (depth, boxes, look): drawn from low to high depth
    for _ in range(int(k["distractors"] + 1e-9)):  # look-alikes crossing the target at `meet`
        s, meet = k["similarity"], rng.integers(1, HORIZON)
        own = _look(rng, channels, background, k)
        mixed = {key: s * look[key] + (1 - s) * own[key] for key in look}
        centre, h, w = track(h0 * np.exp(rng.uniform(-0.3, 0.3)),
                             aspect * np.exp((1 - s) * rng.uniform(-1, 1)))
        centre += target[meet, :2] + target[meet, 2:] / 2 - centre[meet]
        centre += rng.normal(0, 0.1, 2) * (h[meet], w[meet])
        layers.append((rng.choice([-1, 1]), _boxes(centre, h, w, H, W), mixed))
    for _ in range(int(k["occluders"] + 1e-9)):  # bars fixed in the world, on the target's path
        meet, along = rng.integers(1, HORIZON), int(rng.random() < 0.3)  # along 0: vertical pole
        across = 1 - along  # the coordinate in which the bar is thin
        width = k["occluder_width"] * target[meet, 2 + across] * rng.uniform(0.5, 1)
        world = target[meet, across] + target[meet, 2 + across] / 2 + pan[meet, across]
        box = np.zeros((len(t), 4))
        box[:, across], box[:, 2 + across] = world - pan[:, across] - width / 2, width
        box[:, along], box[:, 2 + along] = -max(H, W), 3 * max(H, W)  # across the whole image
        bar = _look(rng, channels, background, k)
        bar["p"], bar["amp"][[0, 3]] = 20.0, 0  # a box with straight stripes along its length
        layers.append((2, box, bar))
    for _, box, lk in sorted(layers, key=lambda layer: layer[0]):
        for c in range(0, seq_len, 8):  # in chunks of frames: smaller regions to paint
            _paint(frames[c:c + 8], box[c:min(c + 8, seq_len)], lk, tt[c:c + 8])

    rows, cols = np.arange(H)[:, None] / H - 0.5, np.arange(W) / W - 0.5
    frames *= (1 + g[0] * rows + g[1] * cols).astype(np.float32)
    frames *= gain.astype(np.float32)[:, None, None, None]
    # uniform sensor noise with the knob's standard deviation (3x cheaper than Gaussian)
    noise = noise_rng.random(frames.shape, dtype=np.float32) - np.float32(0.5)
    noise *= np.float32(k["noise"] * 12 ** 0.5)
    frames += noise
    np.clip(frames, 0, 1, out=frames)
    return np.ascontiguousarray(frames), target[:seq_len].astype(np.float32)


class Synthetic(WindowSet):
    """The synthetic set as a dataset: window ``i`` of a split is the sequence with seed
    ``(seed, split, i)``; train and test never share a seed.

    Args:
      split: ``train`` or ``test``.
      flavour: ``kth`` or ``kitti`` (frame size and channels, see :data:`FLAVOURS`).
      frame_hw, channels: override the flavour's.
      difficulty: see :func:`knobs`; ``**knob_overrides`` replace single knobs.
      size: number of sequences (default 5000 train, 256 test); an epoch visits each once.
      seed: base seed.
    """
    name = "synthetic"

    def __init__(self, split="train", flavour="kth", frame_hw=None, channels=None,
                 difficulty="easy", size=None, seed=0, **knob_overrides):
        if split not in SPLITS or flavour not in FLAVOURS:
            raise ValueError(f"Synthetic: split must be one of {list(SPLITS)} and flavour one of "
                             f"{list(FLAVOURS)}, got split={split!r}, flavour={flavour!r}")
        bad_size = size is not None and not (isinstance(size, (int, np.integer)) and size >= 1)
        if channels not in (None, 1, 3) or bad_size:
            raise ValueError(f"Synthetic: channels must be 1 or 3 and size a positive integer, got "
                             f"channels={channels!r}, size={size!r}")
        hw, c = FLAVOURS[flavour]
        self.image_hw, self.channels = tuple(frame_hw or hw), channels or c
        self.knobs = knobs(difficulty, **knob_overrides)
        self.size = size or (5000 if split == "train" else 256)
        self.split, self.seed = split, seed

    def num_windows(self, seq_len):
        return self.size

    def window(self, i, seq_len):
        frames, boxes = sequence((self.seed, SPLITS[self.split], i), seq_len or HORIZON,
                                 self.image_hw, self.channels, self.knobs)
        return frames, boxes, np.ones(len(boxes), np.float32)


def _draw_box(img, box, colour):
    """Draw a 1-pixel rectangle outline into an RGB uint8 image ``(H, W, 3)``, in place."""
    H, W = img.shape[:2]
    y0, x0 = (int(round(v)) for v in box[:2])
    y1 = min(H - 1, int(round(box[0] + box[2])) - 1)
    x1 = min(W - 1, int(round(box[1] + box[3])) - 1)
    y0, x0 = max(0, y0), max(0, x0)
    img[[y0, y1], x0:x1 + 1] = colour
    img[y0:y1 + 1, [x0, x1]] = colour


def preview(folder, seq_len=32, every=8):
    """Write ``synthetic.png`` (a row per flavour and level: every ``every``-th frame, KTH-like
    ones magnified twice, the target's box in red) and ``synthetic.gif`` (the KTH-like levels
    side by side, every second frame) into ``folder``."""
    import imageio.v3 as iio  # noqa: PLC0415  (only needed for pictures)
    from PIL import Image  # noqa: PLC0415  (installed with imageio)

    def film(flavour, level):  # RGB uint8 (T, H, W, 3) with the target's box drawn
        (H, W), C = FLAVOURS[flavour]
        frames, boxes = sequence((7, list(LEVELS).index(level)), seq_len, (H, W), C, knobs(level))
        rgb = (frames.repeat(3 // C, 1).transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        for img, box in zip(rgb, boxes):
            _draw_box(img, box, (255, 40, 40))
        return rgb

    kth = [film("kth", level) for level in LEVELS]
    strips = [np.concatenate(list(f[::every][:4]), 1).repeat(2, 0).repeat(2, 1) for f in kth]
    strips += [np.concatenate(list(film("kitti", level)[::every][:2]), 1) for level in LEVELS]
    width = max(x.shape[1] for x in strips)
    sheet = np.concatenate([np.pad(x, ((0, 4), (0, width - x.shape[1]), (0, 0)),
                                   constant_values=255) for x in strips])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).quantize(128).save(folder / "synthetic.png", optimize=True)  # ~0.5 MB
    iio.imwrite(folder / "synthetic.gif", np.concatenate([f[::2] for f in kth], 2),
                duration=160, loop=0)
    return folder / "synthetic.png", folder / "synthetic.gif"


def speed(flavour="kth", difficulty="easy", seq_len=30, n=40):
    """Frames per second of :func:`sequence`, per second of this process's CPU time (one core
    if BLAS runs single-threaded, e.g. ``OPENBLAS_NUM_THREADS=1``)."""
    (H, W), C = FLAVOURS[flavour]
    k = knobs(difficulty)
    start = time.process_time()
    for i in range(n):
        sequence(i, seq_len, (H, W), C, k)
    return n * seq_len / (time.process_time() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preview", metavar="FOLDER",
                        help="write synthetic.png and synthetic.gif into FOLDER")
    parser.add_argument("--speed", action="store_true",
                        help="print frames per second for each flavour and level")
    args = parser.parse_args(argv)
    if args.preview:
        print("wrote", *preview(args.preview))
    if args.speed:
        for flavour in FLAVOURS:
            for level in LEVELS:
                print(f"{flavour:5s} {level:6s} {speed(flavour, level):8.0f} frames/s")


if __name__ == "__main__":
    main()
