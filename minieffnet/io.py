"""Pickle-free, atomic storage of named arrays plus JSON metadata in one ``.npz`` file, and
atomic replacement of small text files (a run's ``config.json`` and ``metrics.jsonl``).

Why not pickle: a checkpoint may come from anywhere, and unpickling runs arbitrary code.
Here arrays are stored as plain ``.npy`` members and read with ``allow_pickle=False``; the
metadata (configuration, epoch, RNG states) is JSON text stored as a uint8 array.

Why atomic: a crash or Ctrl-C while writing must never leave a half-written checkpoint in
place of the last good one. We write to a temporary file in the same folder, flush it to disk
and ``os.replace`` it over the target, which is atomic on POSIX and Windows. A process killed
mid-write leaves its temporary file (``.<name>.<random>.tmp``) behind; the owner of the
folder removes them with :func:`remove_temporaries` when it next starts.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from .errors import BadFileError

META_KEY = "__meta__"
_TMP_SUFFIX = ".tmp"  # of the temporary files the atomic writes leave only when killed


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Replace ``path`` by what ``write(f)`` writes to the binary file ``f``, in one step;
    returns the path. Every file minieffnet replaces goes through here.

    The bytes go to a temporary file beside ``path`` whose name is new (``tempfile.mkstemp``
    opens it with ``O_CREAT | O_EXCL``, which refuses any name that exists, a planted link
    included, so the data never lands outside the folder), are flushed to disk, and the file
    is renamed over ``path`` (``os.replace`` replaces a link at ``path`` itself, never its
    target). If ``write`` raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically (:func:`write_atomic`,
    creating its folder); returns the path."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"save_npz_atomic: the key {META_KEY!r} is reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return write_atomic(path, lambda f: np.savez(f, **payload))


def load_npz(path: str | os.PathLike, what: str = "checkpoint"
             ) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_npz_atomic`: ``(arrays, meta)``.

    Raises FileNotFoundError if absent and :class:`~minieffnet.errors.BadFileError` (a
    ValueError), naming the file, if it is not a ``.npz`` archive (a ``.npy`` file, text),
    is truncated or corrupt, holds pickled objects or lacks the metadata. ``what`` is the
    kind of file the messages call it (``"checkpoint"``, ``"image-folder cache"``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    # np.load reads a .npy file as one bare array and text as whatever it resembles: only a
    # zip archive can be a .npz, so say so before NumPy guesses.
    if not zipfile.is_zipfile(path):
        raise BadFileError(f"{what} {path} is corrupt or truncated: not a .npz (zip) "
                           "archive (a .npy file, text, a file cut short?)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # BadZipFile, zlib.error, EOFError, pickled arrays, bad headers...
        raise BadFileError(f"{what} {path} is corrupt or truncated "
                           f"({type(e).__name__}: {e})") from e
    if META_KEY not in arrays:
        raise BadFileError(f"{what} {path} has no metadata: not a minieffnet {what}")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(f"{what} {path} has unreadable metadata ({e})") from e
    return arrays, meta


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` by a file holding ``text`` (UTF-8) in one step (:func:`write_atomic`);
    returns the path. A reader (or a crash) sees the old file or the new one, never half of it.
    """
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def remove_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer of ``path`` left beside it (``.<name>.tmp``
    and ``.<name>.<random>.tmp``); returns them. Call it only where no other process is
    writing ``path``: a run folder's owner does, when it starts or resumes."""
    path = Path(path)
    stale = [p for p in path.parent.glob(f".{path.name}*{_TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
