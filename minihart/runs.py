"""What ``train`` and ``evaluate`` share about runs: opening a run's data in the frame size and
channels of its model, and reading the run description a checkpoint carries."""
from __future__ import annotations

import json


def open_dataset(name, split, cfg, root=None, difficulty=None, **options):
    """The ``split`` (``train``, or ``test``: held out; for ``sot`` the ``val/`` folder) of dataset
    ``name`` in the frame size and channels of ``cfg``. ``options`` go to the dataset (for
    ``sot``: max_stride, max_zoom, augment, list_file, see :mod:`minihart.data.sot`)."""
    from minihart.data import make_dataset  # noqa: PLC0415
    if name == "synthetic":
        return make_dataset(name, split=split, flavour="kth" if cfg.channels == 1 else "kitti",
                            frame_hw=cfg.image_hw, channels=cfg.channels, difficulty=difficulty or "easy")
    if name == "sot":
        from minihart.data import DatasetNotPrepared, data_root  # noqa: PLC0415
        if not data_root("real-sot", root).is_dir():
            raise DatasetNotPrepared.for_dataset(
                "sot", data_root("real-sot", root), "train/ and val/ folders of tracking sequences",
                "python ../shared/real-sot/assemble.py --mirrors MIRRORS --out data/real-sot  (README, "
                "'Real footage'),\n    or python data_scripts/get_sot.py otb, then pass --data-root")
        return make_dataset(name, root, "val" if split == "test" else split, frame_hw=cfg.image_hw,
                            channels=cfg.channels, **options)
    return make_dataset(name, root, split, **({"channels": cfg.channels} if name == "kitti" else {}))


def run_info(extra) -> dict:
    """The run description stored in a checkpoint (``{}`` for a bare parameter file)."""
    return json.loads(str(extra["run"])) if "run" in extra else {}
