"""Download a file once, check its MD5, and never leave a half-written file behind."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm  # plain tqdm: tqdm.auto warns at import inside Jupyter without ipywidgets

_CHUNK = 1 << 20


class DownloadError(OSError):
    """The file could not be fetched (no network, HTTP error, interrupted transfer)."""


def md5sum(path) -> str:
    """Hex MD5 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest, md5: str | None = None, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Fetch ``url`` into the file ``dest``, atomically, checking the MD5 on the way.

    The bytes go to a temporary file in dest's folder, which replaces ``dest`` (``os.replace``)
    only once the transfer is complete and the digest matches, so an interrupted or corrupted
    download never leaves a file that looks finished. The folders it had to create for dest
    are removed again if the download fails, so a mistyped data path leaves no trace. A tqdm
    bar shows progress. md5: expected hex digest, or None to skip the check.
    Raises DownloadError if the transfer fails, ValueError if the MD5 differs. Returns dest.
    """
    dest = Path(dest)
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = response.headers.get("Content-Length")
                    with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                              unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError) as err:  # URLError covers HTTPError
                raise DownloadError(f"could not download {url}: {err}") from err
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(f"download of {url} is corrupt: MD5 {digest.hexdigest()}, expected {md5}; "
                             f"nothing was written to {dest}")
        os.replace(tmp, dest)
        done = True
    finally:
        tmp.unlink(missing_ok=True)
        if not done:
            for folder in created:
                with contextlib.suppress(OSError):  # not empty: something else put a file there
                    folder.rmdir()
    return dest
