"""Download and prepare the KITTI tracking benchmark for minihart.

    python data_scripts/get_kitti.py [--root data/kitti] [--size 187 621] [--keep-raw]

1. Downloads into ROOT/raw/: data_tracking_image_2.zip (about 15 GB) and
   data_tracking_label_2.zip (about 9 MB) from the benchmark's mirror. Downloads resume
   after an interruption; sizes are checked against the server's and the zips' CRC-32s
   are tested (a few minutes for the large one).
2. Unpacks training/image_02 and training/label_02 into ROOT/raw/ (the test split has no
   labels and is skipped).
3. Resizes the frames into the cache ROOT/SSSS.npy (default 187x621, as the reference) with
   the labels and ROOT/meta.json (see minihart/data/kitti.py); about 3 GB.
4. Deletes ROOT/raw/ unless --keep-raw.

KITTI asks users to register at https://www.cvlibs.net/datasets/kitti/eval_tracking.php and
to cite Geiger et al. 2013. If the mirror answers 404 (or 403), register there, download the
two zips by hand into ROOT/raw/ and rerun: files already in ROOT/raw/ are used as they are.
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

from minihart.data import data_root, kitti  # noqa: E402

URL = "https://s3.eu-central-1.amazonaws.com/avg-kitti/{}"
REGISTER = "https://www.cvlibs.net/datasets/kitti/eval_tracking.php"
ZIPS = ("data_tracking_label_2.zip", "data_tracking_image_2.zip")
KEEP = ("training/image_02/", "training/label_02/")


def main(argv=None, opener=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None,
                        help="dataset folder (default: $MINIHART_DATA/kitti or data/kitti)")
    parser.add_argument("--size", type=int, nargs=2, default=kitti.FRAME_HW, metavar=("H", "W"),
                        help="frame size of the cache (default: 187 621, half the original)")
    parser.add_argument("--keep-raw", action="store_true",
                        help="keep the zips and the PNGs in ROOT/raw/ (default: delete them)")
    args = parser.parse_args(argv)
    root = data_root("kitti", args.root)
    raw = root / "raw"
    fetch_kw = {} if opener is None else {"opener": opener}
    try:
        for name in ZIPS:
            path = fetch(URL.format(name), raw / name, **fetch_kw)
            print(f"verifying {path} ...")
            verify_zip(path)
    except Unreachable as exc:
        print(unreachable_message(exc, raw), file=sys.stderr)
        return 2
    except NotAvailable as exc:
        print(f"Download failed: {exc}.\nThe KITTI files need a registration: register at {REGISTER},\n"
              f"download {' and '.join(ZIPS)} by hand into\n"
              f"    {raw}/\nand rerun the same command; it uses files already there.", file=sys.stderr)
        return 1
    except DownloadError as exc:
        print(f"Download failed: {exc}", file=sys.stderr)
        return 1
    for name in ZIPS:
        with zipfile.ZipFile(raw / name) as z:
            for info in z.infolist():
                target = raw / info.filename
                if info.filename.startswith(KEEP) and not info.is_dir() and not (
                        target.exists() and target.stat().st_size == info.file_size):
                    z.extract(info, raw)
    summary = kitti.prepare(raw, root, tuple(args.size))
    print(f"prepared {summary['sequences']} sequences, {summary['frames']} frames in {root}")
    if not args.keep_raw:
        shutil.rmtree(raw)
    print(f"done: {root} is ready for python -m minihart.train --dataset kitti")
    return 0


if __name__ == "__main__":
    sys.exit(main())
