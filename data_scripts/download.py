"""Resumable, verified downloads for the data scripts (standard library only, plus tqdm).

* :func:`fetch` writes to ``<file>.part`` and renames it when complete. A ``.part`` left by
  an interrupted run is resumed with an HTTP Range request, or restarted when the server
  ignores the range. The received size must match the server's Content-Length (or the total
  of its Content-Range), else the ``.part`` is kept for the next run to resume.
* :func:`verify_zip` checks every member's CRC-32 (the zip's own checksums) and deletes a
  corrupt archive so that the next run downloads it again.
* Network failures raise :class:`Unreachable`; :func:`unreachable_message` says what to do.
* HTTP 401, 403, 404 and 410 raise :class:`NotAvailable` (the file moved, or needs a login):
  each script says where else to get that file.
"""
from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from pathlib import Path


class DownloadError(Exception):
    """A download or an archive failed its checks; the message says what to do."""


class NotAvailable(DownloadError):
    """The server answered that the file is not there, or not for us (HTTP 401/403/404/410)."""

    def __init__(self, url, code, reason):
        super().__init__(f"{url}: HTTP error {code} {reason}")
        self.url, self.code = url, code


class Unreachable(DownloadError):
    """The server could not be reached (no network, DNS failure, refused, timed out)."""

    def __init__(self, url, reason):
        super().__init__(f"cannot reach {url} ({reason})")
        self.url, self.reason = url, reason


def unreachable_message(exc, folder):
    """What to print when :class:`Unreachable` was raised while filling ``folder``."""
    return (f"Network problem: {exc}.\n"
            "Check the connection (or set https_proxy / http_proxy) and rerun the same command;\n"
            "finished files are kept and partial ones resume. Or download by hand into\n"
            f"    {folder}/\n"
            f"the file\n    {exc.url}\nand rerun the same command; it uses files already there.\n"
            "Meanwhile, train offline on the embedded synthetic set:\n"
            "    python -m minihart.train --dataset synthetic")


def _total_size(response, have):
    """The full file size announced by the server, or None."""
    content_range = response.headers.get("Content-Range")  # "bytes 100-999/1000"
    if content_range and "/" in content_range and not content_range.endswith("*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None else None


def fetch(url, dest, opener=urllib.request.urlopen, chunk=1 << 20, progress=True):
    """Download ``url`` to ``dest`` (kept as is if it already exists); see the module notes.
    ``opener(request, timeout=...)`` is ``urllib.request.urlopen`` (tests pass a fake)."""
    from tqdm import tqdm  # noqa: PLC0415

    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = opener(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is stale; start over
            part.unlink()
            return fetch(url, dest, opener, chunk, progress)
        if exc.code in (401, 403, 404, 410):
            raise NotAvailable(url, exc.code, exc.reason) from None
        raise DownloadError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(url, getattr(exc, "reason", exc)) from None
    with response:
        if have and getattr(response, "status", 200) != 206:
            have = 0  # the server ignored the Range header: restart from zero
        total = _total_size(response, have)
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                     disable=not progress) as bar:
            while True:
                try:
                    block = response.read(chunk)
                except OSError as exc:  # connection dropped mid-way: keep the .part
                    raise Unreachable(url, f"connection lost after {part.stat().st_size} bytes: "
                                           f"{exc}; rerun to resume") from None
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: received {size} of {total} bytes; rerun to resume")
    part.replace(dest)
    return dest


def verify_zip(path, delete=True):
    """Check the CRC-32 of every member of the zip ``path``; raise :class:`DownloadError` if
    it is corrupt, after deleting it (``delete``: a download, so that the next run fetches it
    again; a file the user gave keeps)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        bad = f"not a readable zip: {exc}"
    if bad is not None and delete:
        Path(path).unlink()
        raise DownloadError(f"{path} is corrupt ({bad}); it was deleted, rerun to download it "
                            "again")
    if bad is not None:
        raise DownloadError(f"{path} is corrupt ({bad}); download it again")
