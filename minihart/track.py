"""``python -m minihart.track --video PATH --box x,y,w,h``: track one object through a video
file, a folder of frames, or a tracking sequence (OTB, GOT-10k or LaSOT folder, whose ground
truth then gives the first box and is scored over the whole sequence).

Without ``--checkpoint`` it uses the checkpoint shipped with minihart (trained on real footage).
Frames are resized to the frame size the model was trained at; boxes come back in the video's
pixels, their sides pulled half way (in log) to the first box's (``--size-prior``, README).
Writes, into ``--out`` (default ``tracks/``), the files the tracking toolkits read: ``NAME.txt``
(one ``x,y,w,h`` line per frame, comma-separated), ``NAME_time.txt`` and ``times/NAME_time.txt``
(seconds per frame), an annotated ``NAME.mp4`` (or ``.gif``) and, with
ground truth, ``NAME.json`` (average IoU, success AUC, precision at 20 px).

:class:`HARTTracker` is the same tracker behind the got10k toolkit's interface
(``init(image, box)`` / ``update(image) -> box``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

from minihart.adapt import ADAPT_DRAWS, ADAPT_STEPS, AdaptedTracker, check_draws, check_steps
from minihart.backend import array_module, to_device
from minihart.boxes import from_xywh, to_xywh, validate_boxes
from minihart.checkpoint import load
from minihart.cli import keep_freed_memory, number
from minihart.data.batching import to_float_frames
from minihart.data.otb import read_image
from minihart.scoring import SIZE_PRIOR, anchor_size, score_sequence, track_with_extras, write_toolkit_files
from minihart.viz import tracking_frame, write_video

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def read_frames(path, max_frames=None):
    """Frames of a video file, a folder of images or a tracking sequence as uint8
    ``(N, H, W, 3)``; for a sequence also its ground truth ``(N, 4)`` ``[y, x, h, w]`` and
    presence ``(N,)`` (else both None)."""
    from minihart.data import sot  # noqa: PLC0415
    if os.path.isdir(path):
        if sot.detect_format(path):
            info = sot.read_sequence(path)
            frames = sot.read_frames(info._replace(images=info.images[:max_frames]))
            n = len(frames)
            return frames, info.boxes[:n], info.presence[:n]
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if f.lower().endswith(IMAGE_EXT))
        if not files:
            raise ValueError(f"--video {path!r}: the folder holds no {'/'.join(IMAGE_EXT)} images")
        frames = [read_image(f) for f in files[:max_frames]]  # uint8 RGB whatever each file's mode
    elif os.path.isfile(path):
        import imageio.v3 as iio  # noqa: PLC0415
        try:
            frames = []
            for frame in iio.imiter(path):
                frame = np.asarray(frame)
                frames.append(np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame[..., :3])
                if max_frames and len(frames) >= max_frames:
                    break
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"--video {path!r} is not a readable video ({reason})") from None
        if not frames:
            raise ValueError(f"--video {path!r} has no frames")
    else:
        raise ValueError(f"--video {path!r} does not exist")
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"--video {path!r}: frames differ in size {sorted(shapes)}")
    return np.stack(frames), None, None


DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "real.npz")


def default_checkpoint():
    """The checkpoint shipped with minihart (trained on real footage, see the README), or a clear
    error when this copy of minihart has none."""
    if not os.path.isfile(DEFAULT_CHECKPOINT):
        raise ValueError(f"no --checkpoint given and no shipped checkpoint at {DEFAULT_CHECKPOINT}; "
                         "train one with python -m minihart.train --dataset sot and pass --checkpoint")
    return DEFAULT_CHECKPOINT


def resize_frames(frames, hw):
    """uint8 frames ``(N, H, W[, 3])`` resized to ``hw`` (bilinear), as the model was trained."""
    from PIL import Image  # noqa: PLC0415
    if tuple(frames.shape[1:3]) == tuple(hw):
        return frames
    out = [np.asarray(Image.fromarray(f).resize(hw[::-1], Image.BILINEAR)) for f in frames]
    return np.stack(out).reshape(len(frames), *hw, *frames.shape[3:])


class HARTTracker:
    """A trained HART behind the got10k toolkit's tracker interface::

        tracker = HARTTracker()                 # the shipped checkpoint, or HARTTracker("best.npz")
        tracker.init(image, [x, y, w, h])       # PIL image or uint8 array (H, W[, 3])
        box = tracker.update(next_image)        # x, y, w, h in the image's pixels
        boxes, times = tracker.track(img_files, box)   # what got10k's experiments call

    Images are resized to the frame size the model was trained at; boxes are in the images' own
    pixels, as the toolkits give and score them. ``size_prior``: the weight of the first box's
    size in every box (:func:`minihart.scoring.anchor_size`; 0 reports the model's own size).
    ``adapt_steps``: first-frame adaptation at every ``init`` (:func:`minihart.adapt.adapt`; 0: none),
    of ``draws`` copies whose median box is reported (:class:`minihart.adapt.AdaptedTracker`).
    """

    def __init__(self, checkpoint=None, device="auto", name="minihart", size_prior=SIZE_PRIOR,
                 adapt_steps=ADAPT_STEPS, draws=ADAPT_DRAWS):
        anchor_size(np.ones(4), np.ones(4), size_prior)  # a bad weight fails here, not at the first update
        check_steps(adapt_steps, "HARTTracker: adapt_steps")  # these fail here, not at the first init
        check_draws(draws, "HARTTracker: draws")
        self.name, self.is_deterministic, self.size_prior = name, True, size_prior
        self.adapt_steps, self.draws = adapt_steps, draws
        self.device = device
        self.xp = array_module(device)
        params, self.cfg, _ = load(checkpoint or default_checkpoint())
        self.params = to_device(params, device)
        self.tracker = None

    def _frame(self, image):
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise ValueError(f"HARTTracker: images must be uint8 (H, W[, 3]) or PIL images, got {arr.dtype}")
        self.scale = np.array([self.cfg.image_hw[0] / arr.shape[0], self.cfg.image_hw[1] / arr.shape[1]] * 2,
                              np.float32)
        x = to_float_frames(resize_frames(arr[None], self.cfg.image_hw), self.cfg.channels)[0]
        return self.xp.asarray(x)

    def init(self, image, box):
        """Start on ``box`` = ``x, y, w, h`` (pixels of ``image``)."""
        xywh = np.asarray(box, np.float32).reshape(-1)
        if xywh.shape != (4,):
            raise ValueError(f"HARTTracker.init: box must be x, y, w, h, got {box!r}")
        frame = self._frame(image)
        yxhw = from_xywh(xywh) * self.scale
        validate_boxes(yxhw[None], "HARTTracker.init box", self.cfg.image_hw)
        self.tracker = AdaptedTracker(self.params, self.cfg, self.adapt_steps, self.draws).init(frame, yxhw)
        self.box0 = yxhw

    def update(self, image):
        """The box ``x, y, w, h`` of the object in the next image."""
        if self.tracker is None:
            raise RuntimeError("HARTTracker.update called before HARTTracker.init(image, box)")
        box = anchor_size(self.tracker.step(self._frame(image)), self.box0, self.size_prior)
        return to_xywh(box / self.scale).astype(np.float64)

    def track(self, img_files, box, visualize=False):
        """Track a list of image files from ``box`` (``x, y, w, h`` in the first): the got10k
        toolkit's ``Tracker.track``. Returns boxes ``(N, 4)`` ``x, y, w, h`` and seconds per frame."""
        boxes, times = np.zeros((len(img_files), 4)), np.zeros(len(img_files))
        for f, path in enumerate(img_files):
            image = read_image(path)
            t0 = time.perf_counter()
            if f == 0:
                self.init(image, box)
                boxes[0] = box
            else:
                boxes[f] = self.update(image)
            times[f] = time.perf_counter() - t0
        return boxes, times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minihart.track", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a .npz checkpoint written by minihart.train (default: the one shipped "
                                        "with minihart, trained on real footage)")
    p.add_argument("--video", required=True,
                   help="a video file, a folder of frames, or a tracking sequence (OTB, GOT-10k or LaSOT folder)")
    p.add_argument("--box", help="x,y,w,h of the object in the first frame, pixels (default for a sequence "
                                 "with ground truth: its first box)")
    p.add_argument("--out", help="output folder (default: tracks/); files are named after the video")
    p.add_argument("--max-frames", type=number(int, 2), help="track at most this many frames")
    p.add_argument("--gif", action="store_true", help="write NAME.gif instead of NAME.mp4")
    p.add_argument("--no-video", action="store_true", help="write the boxes and times only")
    p.add_argument("--size-prior", type=number(float, 0.0, 1.0), default=SIZE_PRIOR,
                   help="the weight of the first box's size in every box: 0 reports the model's own size, 1 "
                        "keeps the first box's (default %(default)s; README, 'the size prior')")
    p.add_argument("--adapt", type=number(int, 0), default=ADAPT_STEPS, metavar="STEPS",
                   help="first-frame adaptation: train the model this many steps on windows made from the first "
                        "frame before tracking (default %(default)s; 0: none; README, 'first-frame adaptation')")
    p.add_argument("--draws", type=number(int, 1), default=ADAPT_DRAWS,
                   help="copies of the model adapted from different seeds, each tracking on its own; the box is "
                        "their median (default %(default)s; README, 'first-frame adaptation')")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="where to run")
    args = p.parse_args(argv)
    keep_freed_memory()
    try:
        xp = array_module(args.device)
        params, cfg, _ = load(args.checkpoint or default_checkpoint())
        raw, truth, presence = read_frames(args.video, args.max_frames)
        H0, W0 = raw.shape[1:3]
        if args.box:
            try:
                xywh = np.array([float(v) for v in args.box.replace(" ", ",").split(",") if v], np.float32)
            except ValueError:
                raise ValueError(f"--box must be four numbers x,y,w,h, got {args.box!r}") from None
            if xywh.shape != (4,):
                raise ValueError(f"--box must be four numbers x,y,w,h, got {args.box!r}")
            box = from_xywh(xywh)
        elif truth is not None:
            box = truth[0]
        else:
            raise ValueError("--box x,y,w,h is required (the video has no ground truth)")
        validate_boxes(np.asarray(box)[None], "--box", (H0, W0))
        # the model tracks at the frame size it was trained at; boxes return to the video's pixels
        scale = np.array([cfg.image_hw[0] / H0, cfg.image_hw[1] / W0] * 2, np.float32)
        frames = to_float_frames(resize_frames(raw, cfg.image_hw), cfg.channels)
        params = to_device(params, args.device)
        preds, extras, times = track_with_extras(params, cfg, frames, box * scale, xp, args.size_prior, args.adapt,
                                                  args.draws)
        boxes = preds / scale
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = os.path.splitext(os.path.basename(os.path.normpath(args.video)))[0]
    out = args.out or "tracks"
    write_toolkit_files(out, name, boxes, times)
    written = [f"{out}/{name}.txt", f"{out}/{name}_time.txt"]
    if not args.no_video:
        video = [tracking_frame(to_float_frames(raw[t:t + 1], 3)[0],
                                dict(truth=None if truth is None or not presence[t] else truth[t], pred=boxes[t],
                                     att=extras[t]["att"] / scale), extras[t]["glimpse"], extras[t]["map"], scale=1)
                 for t in range(len(boxes))]
        written.append(write_video(os.path.join(out, name + (".gif" if args.gif else ".mp4")), video))
    print(f"tracked {len(boxes)} frames at {len(boxes) / max(times.sum(), 1e-9):.0f} fps: " + ", ".join(written))
    if truth is not None:
        n = min(len(truth), len(boxes))
        r = score_sequence(boxes[:n], truth[:n], presence[:n])
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items() if k != "ious"},
                      f, indent=1)
        print(f"against the ground truth: average IoU {r['avg_iou']:.3f}, success AUC {r['auc']:.3f}, "
              f"precision@20px {r['precision20']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
