"""Pickle-free, atomic storage of named arrays plus JSON metadata in one ``.npz`` file, and
atomic replacement of small text files (a run's ``config.json`` and ``metrics.jsonl``).

Why not pickle: a checkpoint may come from anywhere, and unpickling runs arbitrary code.
Here arrays are stored as plain ``.npy`` members and read with ``allow_pickle=False``; the
metadata (configuration, epoch, RNG states) is JSON text stored as a uint8 array.

Why atomic: a crash or Ctrl-C while writing must never leave a half-written checkpoint in
place of the last good one. We write to a temporary file in the same folder, flush it to disk
and ``os.replace`` it over the target, which is atomic on POSIX and Windows.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

META_KEY = "__meta__"


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and JSON-serialisable ``meta`` to ``path`` atomically; returns the path."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"save_npz_atomic: the key {META_KEY!r} is reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give the checkpoint the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_npz_atomic`: ``(arrays, meta)``.

    Raises FileNotFoundError if absent and ValueError, naming the file, if it is truncated,
    corrupt, holds pickled objects or lacks the metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({e})") from e
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path} has no metadata: not a minieffnet checkpoint")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path} has unreadable metadata ({e})") from e
    return arrays, meta


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` by a file holding ``text`` (UTF-8) in one step; returns the path.

    The text goes to a hidden temporary file beside ``path`` first, so a reader (or a crash)
    sees the old file or the new one, never half of it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
