"""What the commands share on their command lines: numbers checked as argparse parses them,
so that a bad value is an error naming its flag (``argument --batch-size: must be at least
1, got 0``), never a traceback later or a run that silently does something else."""
from __future__ import annotations

import argparse


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
