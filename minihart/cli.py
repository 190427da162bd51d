"""What the commands share: numbers checked as argparse parses them, so that a bad value is an
error naming its flag (``argument --batch-size: must be at least 1, got 0``), never a traceback
later or a run that silently does something else; and the memory set-up of the process."""
from __future__ import annotations

import argparse
import ctypes
import sys


def number(kind=int, low=None, high=None, above=False):
    """An argparse ``type``: ``kind`` (int or float) in ``[low, high]`` (``(low, high]`` if ``above``)."""
    def parse(text):
        v = kind(text)  # a ValueError becomes argparse's "invalid int value: 'x'"
        if v != v:
            raise argparse.ArgumentTypeError("must be a number, got nan")
        if low is not None and (v <= low if above else v < low):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low}, got {text}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {text}")
        return v
    parse.__name__ = kind.__name__
    return parse


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process (every command calls this; the library never does).

    A training step allocates and frees hundreds of MB of temporaries. By default glibc hands
    large freed blocks back to the OS and takes fresh pages on the next step, and each fresh
    page costs a page fault: about 70,000 per ``kitti`` training step, 10% of its time (more
    in a VM), and a chain of NumPy temporaries of a few MB runs several times slower. Serving
    blocks up to 32 MiB from the heap and trimming it only above 1 GiB removes that. Returns
    whether it applied (glibc only; elsewhere nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters, <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
