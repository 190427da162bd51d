"""Download and prepare public single-object tracking (SOT) sets as the folders that
minihart's ``sot`` dataset reads (``python -m minihart.train --dataset sot --data-root ROOT``).

    python data_scripts/get_sot.py otb [--sequences Basketball Jogging ...] [--split val]
                                       [--root data/otb] [--keep-raw]
    python data_scripts/get_sot.py got10k [--got10k-zip val_data.zip ...] [--splits val train]
                                          [--root data/got10k] [--keep-raw]

OTB-100 (Wu, Lim & Yang, TPAMI 2015): one zip per video from the benchmark's site,
http://cvlab.hanyang.ac.kr/tracker_benchmark/seq/NAME.zip (all 98 videos by default, a few
GB; or the ones named with --sequences). Each is downloaded into ROOT/raw/ (resumed after an
interruption, size checked, CRC-32s tested) and laid out as ROOT/SPLIT/NAME/img/*.jpg and
groundtruth_rect.txt, one ``x,y,w,h`` line per image (commas, whatever the zip used). Videos
with several targets get one folder per target: Jogging.1, Jogging.2, Skating2.1, Skating2.2
(from groundtruth_rect.1.txt / .2.txt) and Human4.2 (the target OTB-100 scores). Where a
video has fewer boxes than images, only the annotated images are kept, under their own
names, so that images and box lines pair one to one: David's boxes start at frame 300,
BlurCar1's at 247, BlurCar3's at 3, BlurCar4's at 18 (the benchmark's own start frames);
any other video's boxes start at frame 1 and the images after the last box are left out
(e.g. Diving, 215 boxes). A video with more boxes than images is skipped with a message.
--split puts the sequences under ROOT/train/ or ROOT/val/ (the default).

GOT-10k (Huang, Zhao & Huang, TPAMI 2021) needs a sign-up at http://got-10k.aitestunion.com/
and its train split is tens of GB, so it is not downloaded here: get val_data.zip (and the
GOT-10k_Train_split_*.zip if you train on them) from the site's download page, put them in
ROOT/raw/ or pass them with --got10k-zip, and run the command. The zips' CRC-32s are tested
and the sequences of the --splits asked for (default: val) are unpacked keeping GOT-10k's
layout: ROOT/val/GOT-10k_Val_000001/00000001.jpg ..., groundtruth.txt, absence.label (and
the other label files), with ROOT/val/list.txt naming the sequences that are complete.
The test split (only first-frame boxes) is not supported.

Files already in place are used: an OTB sequence folder that exists is not downloaded again,
a zip in ROOT/raw/ is not fetched again, an unpacked file of the right size is not written
again. ROOT/raw/ is deleted at the end unless --keep-raw (a zip given with --got10k-zip
outside it is never deleted). Exit status: 0 done, 1 something to fix (printed), 2 network.
"""
from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from download import (DownloadError, NotAvailable, Unreachable, fetch, unreachable_message,  # noqa: E402
                      verify_zip)

from minihart.data import data_root  # noqa: E402
from minihart.data.batching import parse_numbers  # noqa: E402

OTB_URL = "http://cvlab.hanyang.ac.kr/tracker_benchmark/seq/{}.zip"
OTB_PAGE = "http://cvlab.hanyang.ac.kr/tracker_benchmark/datasets.html"
OTB100 = tuple("""Basketball Biker Bird1 Bird2 BlurBody BlurCar1 BlurCar2 BlurCar3 BlurCar4 BlurFace
BlurOwl Board Bolt Bolt2 Box Boy Car1 Car2 Car24 Car4 CarDark CarScale ClifBar Coke Couple Coupon
Crossing Crowds Dancer Dancer2 David David2 David3 Deer Diving Dog Dog1 Doll DragonBaby Dudek
FaceOcc1 FaceOcc2 Fish FleetFace Football Football1 Freeman1 Freeman3 Freeman4 Girl Girl2 Gym
Human2 Human3 Human4 Human5 Human6 Human7 Human8 Human9 Ironman Jogging Jump Jumping KiteSurf
Lemming Liquor Man Matrix Mhyang MotorRolling MountainBike Panda RedTeam Rubik Shaking Singer1
Singer2 Skater Skater2 Skating1 Skating2 Skiing Soccer Subway Surfer Suv Sylvester Tiger1 Tiger2
Toy Trans Trellis Twinnings Vase Walking Walking2 Woman""".split())
TARGETS = {"Jogging": ("1", "2"), "Skating2": ("1", "2"), "Human4": ("2",)}  # groundtruth_rect.K.txt
FIRST_BOX = {"David": 300, "BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18}  # 1-based frame
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
GOT10K_PAGE = "http://got-10k.aitestunion.com/"
GOT10K_MEMBER = re.compile(r"(?:^|/)(GOT-10k_(Train|Val|Test)_\d+)/([^/]+)$")


# ---------------------------------------------------------------------------------- OTB
def otb_targets(name):
    """The folder names video ``name`` becomes (``Jogging`` -> ``Jogging.1``, ``Jogging.2``)."""
    return [f"{name}.{k}" for k in TARGETS[name]] if name in TARGETS else [name]


def otb_sequence_names(asked):
    """OTB-100 video names for the command-line names ``asked`` (any case; ``Jogging.1`` means
    the video Jogging); ``ValueError`` naming an unknown one and the closest known names."""
    by_lower = {n.lower(): n for n in OTB100}
    names = []
    for a in asked:
        base = re.sub(r"[.-]\d$", "", a) if a.lower() not in by_lower else a
        if base.lower() not in by_lower:
            close = difflib.get_close_matches(a, OTB100, n=3)
            raise ValueError(f"--sequences: {a!r} is not an OTB-100 video"
                             + (f" (did you mean {', '.join(close)}?)" if close else ""))
        if by_lower[base.lower()] not in names:
            names.append(by_lower[base.lower()])
    return names


def read_otb_boxes(z, member):
    """The box lines of ground-truth file ``member`` of zip ``z`` as lists of 4 number strings
    (commas, tabs or spaces; NaN allowed: an absent target); ``ValueError`` naming the zip,
    the file and the line otherwise."""
    rows = []
    text = z.read(member).decode("utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), 1):
        tok = [t for t in re.split(r"[,\s]+", line.strip()) if t]
        if not tok:
            continue
        where = f"{z.filename}: {member} line {n}"
        if len(tok) != 4:
            raise ValueError(f"{where}: expected 4 numbers 'x,y,w,h', got {line.strip()[:60]!r}")
        parse_numbers(tok, where, finite=False)
        rows.append(tok)
    if not rows:
        raise ValueError(f"{z.filename}: {member} has no box")
    return rows


def unpack_otb(zip_path, name, out_dir, tmp_dir):
    """Lay out the video ``name`` of ``zip_path`` as one OTB folder per target in ``out_dir``
    (written in ``tmp_dir`` and moved into place when complete). Returns notes to print;
    ``ValueError`` naming the zip and file for a zip that is not such a video."""
    notes = []
    with zipfile.ZipFile(zip_path) as z:
        members = [i for i in z.infolist() if not i.is_dir() and "__MACOSX" not in i.filename
                   and not Path(i.filename).name.startswith(".")]
        images = sorted((i for i in members if Path(i.filename).parent.name == "img"
                         and Path(i.filename).suffix.lower() in IMAGE_EXT),
                        key=lambda i: Path(i.filename).name)
        folders = {str(Path(i.filename).parent) for i in images}
        if len(folders) != 1:
            raise ValueError(f"{zip_path}: expected one img/ folder of images, found {len(folders)}")
        gt_files = {Path(i.filename).name: i.filename for i in members
                    if re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", Path(i.filename).name)}
        for target in otb_targets(name):
            k = target[len(name) + 1:]
            gt_name = f"groundtruth_rect.{k}.txt" if k else "groundtruth_rect.txt"
            if gt_name not in gt_files:
                raise ValueError(f"{zip_path}: no {gt_name} (has {sorted(gt_files) or 'none'})")
            rows = read_otb_boxes(z, gt_files[gt_name])
            first = FIRST_BOX.get(name, 1) if len(rows) < len(images) else 1
            if first - 1 + len(rows) > len(images):
                raise ValueError(f"{zip_path}: {gt_name} has {len(rows)} boxes but img/ has only "
                                 f"{len(images)} images" + (f" from frame {first}" if first > 1 else ""))
            kept = images[first - 1:first - 1 + len(rows)]
            if len(kept) < len(images):
                notes.append(f"{target}: {len(rows)} boxes for {len(images)} images; kept the "
                             f"annotated frames {first}..{first - 1 + len(rows)}")
            part = tmp_dir / target
            shutil.rmtree(part, ignore_errors=True)
            (part / "img").mkdir(parents=True)
            for info in kept:
                with z.open(info) as src, open(part / "img" / Path(info.filename).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            (part / "groundtruth_rect.txt").write_text("".join(",".join(r) + "\n" for r in rows))
            out_dir.mkdir(parents=True, exist_ok=True)
            part.replace(out_dir / target)
    return notes


def get_otb(args, opener):
    root = data_root("otb", args.root)
    raw, out = root / "raw", root / args.split
    try:
        names = otb_sequence_names(args.sequences or OTB100)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    fetch_kw = {} if opener is None else {"opener": opener}
    done, failed = [], []
    for i, name in enumerate(names, 1):
        targets = otb_targets(name)
        if all((out / t).is_dir() for t in targets):
            print(f"[{i}/{len(names)}] {name}: already in {out}")
            done += targets
            continue
        print(f"[{i}/{len(names)}] {name}")
        url = OTB_URL.format(name)
        try:
            path = fetch(url, raw / f"{name}.zip", **fetch_kw)
            verify_zip(path)
            notes = unpack_otb(path, name, out, raw / "partial")
        except Unreachable as exc:
            print(unreachable_message(exc, raw), file=sys.stderr)
            return 2
        except NotAvailable as exc:
            failed.append(f"{name}: {exc}; download {url} by hand (or from {OTB_PAGE}) into "
                          f"{raw}/ and rerun")
            continue
        except (DownloadError, ValueError) as exc:  # corrupt zips are deleted: a rerun refetches
            failed.append(f"{name}: {exc}")
            continue
        for note in notes:
            print(f"    {note}")
        done += targets
        if not args.keep_raw:
            path.unlink()
    return finish(root, raw, args.keep_raw, done, failed)


def finish(root, raw, keep_raw, done, failed):
    """Print the summary, delete ``raw`` (unless ``keep_raw`` or something failed: then the
    downloads and partial files stay for the rerun) and return the exit status."""
    print(f"prepared {len(done)} sequences in {root}")
    if failed:
        print(f"{len(failed)} not prepared (the others are kept; fix and rerun the same command):\n"
              + "\n".join(f"    {f}" for f in failed), file=sys.stderr)
        return 1
    if not keep_raw and raw.exists():
        shutil.rmtree(raw)
    print(f"done: python -m minihart.train --dataset sot --data-root {root}")
    return 0


# ------------------------------------------------------------------------------ GOT-10k
def unpack_got10k(zip_path, root, splits, progress=True):
    """Unpack the sequences of ``splits`` in the zip ``zip_path`` into ``root/<split>/<seq>/``
    (files of the right size already there are kept). Returns the sequence names unpacked;
    ``ValueError`` naming the zip when it holds no GOT-10k sequence."""
    from tqdm import tqdm  # noqa: PLC0415

    seqs = set()
    with zipfile.ZipFile(zip_path) as z:
        found = [(info, GOT10K_MEMBER.search(info.filename)) for info in z.infolist()]
        found = [(info, m) for info, m in found if m and not info.is_dir()]
        if not found:
            inner = [n for n in z.namelist() if n.endswith(".zip")]
            raise ValueError(f"{zip_path}: no GOT-10k sequence (GOT-10k_Val_000001/...) inside"
                             + (f"; it holds zips ({inner[0]}, ...): unpack it and pass those"
                                if inner else ""))
        for info, m in tqdm(found, desc=zip_path.name, unit="file", disable=not progress):
            seq, split, file = m.group(1), m.group(2).lower(), m.group(3)
            if split not in splits:
                continue
            seqs.add((split, seq))
            target = root / split / seq / file
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(file + ".part")
            with z.open(info) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(target)
    return seqs


def got10k_problem(folder):
    """Why the sequence ``folder`` is incomplete (images, ground-truth and absence lines must
    pair one to one), or None."""
    gt = folder / "groundtruth.txt"
    if not gt.is_file():
        return f"{folder}: no groundtruth.txt"
    n_boxes = sum(1 for line in gt.read_text().splitlines() if line.strip())
    n_images = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT)
    if n_boxes != n_images:
        return f"{gt}: {n_boxes} boxes but {n_images} images"
    absence = folder / "absence.label"
    if absence.is_file():
        n_flags = sum(1 for line in absence.read_text().splitlines() if line.strip())
        if n_flags != n_boxes:
            return f"{absence}: {n_flags} flags for {n_boxes} boxes"
    return None


def get_got10k(args):
    root = data_root("got10k", args.root)
    raw = root / "raw"
    given = [Path(p) for p in args.got10k_zip]
    zips = given + [p for p in sorted(raw.glob("*.zip")) if p.resolve() not in {g.resolve() for g in given}]
    if not zips:
        print(f"No GOT-10k zip. GOT-10k needs a sign-up: register at {GOT10K_PAGE}, download "
              f"val_data.zip (and the GOT-10k_Train_split_*.zip for --splits train),\nput them in\n"
              f"    {raw}/\nor pass them with --got10k-zip PATH, and rerun.", file=sys.stderr)
        return 1
    failed, seqs = [], set()
    for path in zips:
        if not path.is_file():
            failed.append(f"--got10k-zip {path}: no such file")
            continue
        try:
            print(f"verifying {path} ...")
            verify_zip(path, delete=False)
            seqs |= unpack_got10k(path, root, args.splits)
        except (DownloadError, ValueError) as exc:
            failed.append(str(exc))
    done = []
    for split in args.splits:
        names = sorted(seq for s, seq in seqs if s == split)
        if not names and (root / split / "list.txt").is_file():
            names = (root / split / "list.txt").read_text().split()  # unpacked by an earlier run
        complete = []
        for name in names:
            problem = got10k_problem(root / split / name)
            if problem:
                failed.append(problem)
            else:
                complete.append(name)
        if complete:
            (root / split / "list.txt").write_text("".join(f"{n}\n" for n in complete))
            print(f"{split}: {len(complete)} sequences, listed in {root / split / 'list.txt'}")
        elif not failed:
            failed.append(f"no {split} sequence in {', '.join(str(p) for p in zips)}")
        done += complete
    return finish(root, raw, args.keep_raw, done, failed)


def main(argv=None, opener=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sets = parser.add_subparsers(dest="set", required=True, metavar="{otb,got10k}")
    otb = sets.add_parser("otb", help="OTB-100, downloaded per video from the benchmark's site")
    otb.add_argument("--root", type=Path, help="dataset folder (default: $MINIHART_DATA/otb or data/otb)")
    otb.add_argument("--sequences", nargs="+", metavar="NAME",
                     help="OTB-100 videos to get, e.g. Basketball Jogging (default: all 98)")
    otb.add_argument("--split", choices=("train", "val"), default="val",
                     help="put the sequences in ROOT/train/ or ROOT/val/ (default: %(default)s)")
    otb.add_argument("--keep-raw", action="store_true", help="keep the zips in ROOT/raw/")
    got = sets.add_parser("got10k", help="GOT-10k, from zips downloaded by hand (sign-up)")
    got.add_argument("--root", type=Path, help="dataset folder (default: $MINIHART_DATA/got10k or data/got10k)")
    got.add_argument("--got10k-zip", nargs="+", default=[], metavar="PATH",
                     help="GOT-10k zips (val_data.zip, GOT-10k_Train_split_01.zip ...); zips in "
                          "ROOT/raw/ are used too")
    got.add_argument("--splits", nargs="+", choices=("val", "train"), default=["val"],
                     help="the GOT-10k splits to unpack (default: val)")
    got.add_argument("--keep-raw", action="store_true", help="keep the zips in ROOT/raw/")
    args = parser.parse_args(argv)
    return get_otb(args, opener) if args.set == "otb" else get_got10k(args)


if __name__ == "__main__":
    sys.exit(main())
