"""``python -m minihart.track --checkpoint CKPT --video PATH|FOLDER --box x,y,w,h``: track one
object through a video file, a folder of frames, or an OTB-format sequence folder
(``img/*.jpg`` + ``groundtruth_rect.txt``, whose ground truth is then scored).

Writes ``boxes.txt`` (``x,y,w,h`` per frame, OTB style, pixels) and an annotated video
(``tracking.mp4``, or ``.gif`` with ``--gif``) into ``--out``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

from minihart.backend import array_module, asnumpy, to_device
from minihart.boxes import from_xywh, iou, to_xywh, validate_boxes
from minihart.checkpoint import load
from minihart.cli import keep_freed_memory, number
from minihart.data.batching import to_float_frames
from minihart.data.otb import read_image
from minihart.model import Tracker
from minihart.viz import tracking_frame, write_video

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def read_frames(path, max_frames=None):
    """Frames of a video file or a folder of images as uint8 ``(N, H, W[, 3])``, and the OTB
    ground truth ``(N, 4)`` ``[y, x, h, w]`` when ``path`` is an OTB-format folder (else None)."""
    truth = None
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "groundtruth_rect.txt")):
            from minihart.data.otb import load_sequence  # noqa: PLC0415
            seq = load_sequence(path)
            truth = None if seq.boxes is None else seq.boxes[:max_frames]
            return seq.frames[:max_frames], truth
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if f.lower().endswith(IMAGE_EXT))
        if not files:
            raise ValueError(f"--video {path!r}: the folder holds no {'/'.join(IMAGE_EXT)} images")
        frames = [read_image(f) for f in files[:max_frames]]  # uint8 RGB whatever each file's mode
    elif os.path.isfile(path):
        import imageio.v3 as iio  # noqa: PLC0415
        try:
            frames = []
            for frame in iio.imiter(path):
                frames.append(frame)
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
    return np.stack(frames), truth


def track(params, cfg, frames, box, xp=np):
    """Boxes ``(N, 4)`` ``[y, x, h, w]`` for float frames ``(N, C, H, W)`` from the first box;
    also the attention windows, glimpses and location maps of every frame."""
    tr = Tracker(params, cfg).init(xp.asarray(frames[0]), box)
    def last():
        return {k: asnumpy(v)[0] for k, v in tr.last.items()}
    boxes, extras = [np.asarray(box, np.float32)], [last()]
    for f in frames[1:]:
        boxes.append(asnumpy(tr.step(xp.asarray(f))))
        extras.append(last())
    return np.stack(boxes), extras


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m minihart.track", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .npz checkpoint written by minihart.train")
    p.add_argument("--video", required=True, help="a video file, a folder of frames, or an OTB folder")
    p.add_argument("--box", help="x,y,w,h of the object in the first frame, pixels (default for OTB: "
                                 "the first ground-truth box)")
    p.add_argument("--out", help="output folder (default: tracks/<video name>)")
    p.add_argument("--max-frames", type=number(int, 2), help="track at most this many frames")
    p.add_argument("--gif", action="store_true", help="write tracking.gif instead of tracking.mp4")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="where to run")
    args = p.parse_args(argv)
    keep_freed_memory()
    try:
        xp = array_module(args.device)
        params, cfg, _ = load(args.checkpoint)
        raw, truth = read_frames(args.video, args.max_frames)
        frames = to_float_frames(raw, cfg.channels)
        H, W = frames.shape[2:]
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
        validate_boxes(np.asarray(box)[None], "--box", (H, W))
        boxes, extras = track(to_device(params, args.device), cfg, frames, box, xp)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or os.path.join("tracks", os.path.splitext(os.path.basename(os.path.normpath(args.video)))[0])
    os.makedirs(out, exist_ok=True)
    np.savetxt(os.path.join(out, "boxes.txt"), to_xywh(boxes), fmt="%.2f", delimiter=",")
    video = [tracking_frame(frames[t], dict(truth=None if truth is None else truth[t], pred=boxes[t],
                                            att=e.get("att")), e.get("glimpse"), e.get("map"), scale=1)
             for t, e in enumerate(extras)]
    video_path = write_video(os.path.join(out, "tracking.gif" if args.gif else "tracking.mp4"), video)
    print(f"tracked {len(boxes)} frames: {out}/boxes.txt, {video_path}")
    if truth is not None:
        from minihart.evaluate import summarize  # noqa: PLC0415
        n = min(len(truth), len(boxes))
        scores = iou(boxes[:n], truth[:n])[None]
        scored = np.isfinite(truth[:n]).all(axis=1)[None].astype(float)
        scored[0, 0] = 0  # the first box is given
        result = summarize(scores, scored)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(result, f, indent=1)
        print(f"against the ground truth: average IoU {result['mean_iou']:.3f}, success AUC {result['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
