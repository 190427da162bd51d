"""Download and prepare KTH for minihart: the walking, jogging and running videos, and the
per-frame person boxes (``KTHBoundingBoxInfo.txt``) of the RATM / HART experiment.

    python data_scripts/get_kth.py [--root data/kth] [--keep-raw]

1. Downloads into ROOT/raw/ the boxes file (first, and checks it at once), then (about
   560 MB) walking.zip, jogging.zip, running.zip from https://www.csc.kth.se/cvap/actions/.
   Downloads resume after an interruption; sizes are checked against the server's and the
   zips' CRC-32s are tested.
2. Unpacks the .avi videos into ROOT/raw/videos/.
3. Prepares the cache ROOT/frames.npy and ROOT/tracks.npz (see minihart/data/kth.py).
4. Deletes ROOT/raw/ unless --keep-raw.

The boxes file comes from the authors of "Recognizing actions by shape-motion prototype
trees" (Lin, Jiang, Davis; linked from the RATM repository github.com/saebrahimi/RATM).
Its address has moved over the years: if the default --boxes-url fails, find the file,
and pass it with --boxes-file PATH (or put it in ROOT/raw/ and rerun). A downloaded file
that is not a boxes file (a server's error page) is moved aside to ROOT/raw/
KTHBoundingBoxInfo.txt.invalid, never reused. Files already in ROOT/raw/ are used as they
are, so anything can be downloaded by hand.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from download import (DownloadError, NotAvailable, Unreachable, fetch, unreachable_message,  # noqa: E402
                      verify_zip)

from minihart.data import data_root, kth  # noqa: E402

VIDEOS_URL = "https://www.csc.kth.se/cvap/actions/{}.zip"
BOXES_URL = "http://www.umiacs.umd.edu/~zhuolin/PrototypeTree/KTHBoundingBoxInfo.txt"
BOXES_NAME = kth.BOXES_NAME
VIDEOS_PAGE = "https://www.csc.kth.se/cvap/actions/"


def boxes_file_ok(path, downloaded):
    """Whether ``path`` parses as a boxes file; if not, print why and, for a file in ROOT/raw/
    (downloaded or put there), move it aside to ``.invalid`` so that no later run reuses it."""
    try:
        kth.parse_boxes_file(path)
        return True
    except ValueError as exc:
        print(f"{path} is not a valid {BOXES_NAME}:\n    {exc}", file=sys.stderr)
    if downloaded:
        aside = path.with_name(path.name + ".invalid")
        path.replace(aside)
        print(f"It was moved to {aside} (look at it: a server's error page?); the next run "
              "downloads the file again.", file=sys.stderr)
    print("Get the file by hand and pass it with --boxes-file PATH.", file=sys.stderr)
    return False


def main(argv=None, opener=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None,
                        help="dataset folder (default: $MINIHART_DATA/kth or data/kth)")
    parser.add_argument("--boxes-url", default=BOXES_URL,
                        help="where to download KTHBoundingBoxInfo.txt (default: %(default)s)")
    parser.add_argument("--boxes-file", type=Path,
                        help="use this local KTHBoundingBoxInfo.txt instead of downloading it")
    parser.add_argument("--keep-raw", action="store_true",
                        help="keep the zips and videos in ROOT/raw/ (default: delete them)")
    args = parser.parse_args(argv)
    root = data_root("kth", args.root)
    raw = root / "raw"
    fetch_kw = {} if opener is None else {"opener": opener}
    if args.boxes_file is not None and not args.boxes_file.is_file():
        print(f"--boxes-file {args.boxes_file}: no such file", file=sys.stderr)
        return 1
    try:  # the small boxes file first: a problem with it shows before 560 MB of videos
        boxes = args.boxes_file or fetch(args.boxes_url, raw / BOXES_NAME, **fetch_kw)
        if not boxes_file_ok(boxes, downloaded=args.boxes_file is None):
            return 1
        zips = []
        for action in kth.USED_ACTIONS:
            path = fetch(VIDEOS_URL.format(action), raw / f"{action}.zip", **fetch_kw)
            print(f"verifying {path} ...")
            verify_zip(path)
            zips.append(path)
    except Unreachable as exc:
        print(unreachable_message(exc, raw), file=sys.stderr)
        return 2
    except NotAvailable as exc:
        if exc.url == args.boxes_url:
            hint = (f"The boxes file has moved. Find {BOXES_NAME} (Lin, Jiang & Davis, linked from "
                    "the RATM repository github.com/saebrahimi/RATM) and pass it with\n"
                    f"    python data_scripts/get_kth.py --boxes-file PATH\n"
                    f"or put it in {raw}/ and rerun the same command.")
        else:
            hint = (f"Download {Path(exc.url).name} by hand from {VIDEOS_PAGE} into {raw}/ and "
                    "rerun the same command; it uses files already there.")
        print(f"Download failed: {exc}.\n{hint}", file=sys.stderr)
        return 1
    except DownloadError as exc:
        print(f"Download failed: {exc}", file=sys.stderr)
        return 1
    for path in zips:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                target = raw / "videos" / Path(member).name
                if member.endswith(".avi") and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    summary = kth.prepare(raw / "videos", boxes, root)
    print(f"prepared {summary['tracks']} annotated sequences, {summary['frames']} frames in {root}")
    if summary["missing_videos"]:
        print(f"skipped {len(summary['missing_videos'])} boxes entries without a video: "
              f"{summary['missing_videos'][:5]}...")
    if not args.keep_raw:
        shutil.rmtree(raw)
    print(f"done: {root} is ready for python -m minihart.train --dataset kth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
