"""What the commands share (minihart/cli.py): checked numbers on the command line, and the
memory set-up of the process."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minihart import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind, low, high, above, text, ok", [
    (int, 1, None, False, "1", True), (int, 1, None, False, "0", False), (float, 0, None, True, "0", False),
    (float, 0, 1, False, "1.5", False), (float, 0, 1, False, "nan", False), (int, None, None, False, "x", False)])
def test_number_checks_as_argparse_parses(kind, low, high, above, text, ok):
    parse = cli.number(kind, low, high, above)
    if ok:
        assert parse(text) == kind(text)
    else:
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            parse(text)


def test_keep_freed_memory_applies_on_glibc_and_is_called_by_every_command():
    import platform  # noqa: PLC0415
    applied = cli.keep_freed_memory()
    assert applied is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")
    # a "step" holds twenty 8 MB arrays, then frees them: without the setting the second step
    # faults every page in again (about 10,000 faults), with it the freed heap is reused
    code = ("import resource, sys, numpy as np; from minihart.cli import keep_freed_memory\n"
            "if sys.argv[1] == '1': keep_freed_memory()\n"
            "def step(): return [np.ones(2 << 20, np.float32) for _ in range(20)]\n"
            "step(); f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt; step()\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)")
    if applied:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        faults = [int(subprocess.run([sys.executable, "-c", code, flag], cwd=ROOT, env=env, capture_output=True,
                                     text=True, timeout=120, check=True).stdout) for flag in "01"]
        # (with transparent huge pages the baseline can be small too: compare, don't assume)
        assert faults[1] <= max(50, faults[0] // 4), faults
    for cmd in ("train", "evaluate", "track", "bench"):
        assert "keep_freed_memory()" in (ROOT / "minihart" / f"{cmd}.py").read_text(), cmd
