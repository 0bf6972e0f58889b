"""Your own images: an image-folder tree read as a (train, test) pair, decoded once, cached.

Layout (``--dataset folder:PATH``)::

    PATH/train/<class>/*.png | *.jpg | *.jpeg     one folder per class; its name is the class
    PATH/test/<class>/...                          the same class names (a subset is fine)

Classes are the training folder names in sorted order (label 0 first). Files whose names
start with a dot are skipped, as are files of other types; an empty class folder, an
unreadable or grayscale image, or a test class that training lacks is an error naming the
file or folder. Images are decoded with Pillow (:func:`~minieffnet.data.images.read_image`)
and stored at one size, the most common (H, W) of the training images; others are resized
to it (bilinear, aspect ratio not kept, as :func:`~minieffnet.inference.prepare_images`
does). Both splits are normalised with the training split's per-channel statistics.

Decoding thousands of files takes a while, so the arrays are cached in one ``.npz`` under
``$XDG_CACHE_HOME/minieffnet/folders/`` (``~/.cache/minieffnet/folders/``), keyed by every
file's path, size and modification time: editing, adding or removing an image rebuilds it.
The cache is written atomically and, being a cache, is simply rebuilt if it is unreadable;
the image folder itself is never written to.
"""
from __future__ import annotations

import collections
import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import BadFileError
from ..io import load_npz, save_npz_atomic
from .dataset import Dataset, channel_stats
from .images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
_CACHE_FORMAT = "minieffnet.image_folder"
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where decoded image folders are cached: ``$XDG_CACHE_HOME/minieffnet/folders``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minieffnet" / "folders"


def _list_split(root: Path, split: str) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` of ``root/split``; BadFileError if it is missing,
    has no class folder, or a class folder holds no image."""
    folder = root / split
    if not folder.is_dir():
        raise BadFileError(f"{folder}: missing; an image folder needs {root}/train/<class>/ "
                           f"and {root}/test/<class>/ with .png or .jpg files")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise BadFileError(f"{folder}: no class folders (expected {folder}/<class>/*.png)")
    files = {}
    for c in classes:
        images = sorted(p for p in c.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise BadFileError(f"{c}: holds no .png or .jpg image")
        files[c.name] = images
    return files


def _fingerprint(root: Path, listing: dict[str, dict[str, list[Path]]]) -> str:
    """A digest of every file's path (relative to ``root``), size and modification time."""
    digest = hashlib.sha256()
    for split, classes in listing.items():
        for name, files in classes.items():
            for f in files:
                st = f.stat()
                digest.update(f"{split}/{name}/{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n"
                              .encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _decode(files: dict[str, list[Path]], labels_of: dict[str, int]
            ) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = [], []
    for name, paths in files.items():
        for p in paths:
            images.append(read_image(p))
            labels.append(labels_of[name])
    return images, np.asarray(labels, np.int64)


def _stack(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8, each image resized to ``size`` (H, W) unless it has it."""
    from PIL import Image

    out = np.empty((len(images), *size, 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = img if img.shape[:2] == size else np.asarray(
            Image.fromarray(img).resize(size[::-1], Image.BILINEAR))
    return out


def _read_cache(path: Path, key: str):
    """The cached splits, or None if the cache is absent, unreadable or of other files."""
    try:
        arrays, meta = load_npz(path)
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get("format") != _CACHE_FORMAT
            or meta.get("version") != _CACHE_VERSION or meta.get("key") != key
            or not {f"{s}_{a}" for s in SPLITS for a in ("images", "labels")} <= set(arrays)):
        return None
    return arrays, meta


def load_image_folder(root: str | os.PathLike) -> tuple[Dataset, Dataset]:
    """``(train, test)`` Datasets from the image-folder tree at ``root`` (module docstring).

    Raises FileNotFoundError if ``root`` is not a folder, BadFileError naming the file or
    folder that is wrong.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (--dataset folder:PATH needs "
                                "PATH/train/<class>/ and PATH/test/<class>/)")
    listing = {split: _list_split(root, split) for split in SPLITS}
    names = tuple(listing["train"])
    extra = sorted(set(listing["test"]) - set(names))
    if extra:
        raise BadFileError(f"{root / 'test' / extra[0]}: class {extra[0]!r} has no training "
                           f"folder (the training classes are {', '.join(names)})")
    key = _fingerprint(root, listing)
    cache = cache_dir() / f"{root.name}-{key[:20]}.npz"
    cached = _read_cache(cache, key)
    if cached is None:
        labels_of = {name: i for i, name in enumerate(names)}
        train_images, train_labels = _decode(listing["train"], labels_of)
        test_images, test_labels = _decode(listing["test"], labels_of)
        counts = collections.Counter(img.shape[:2] for img in train_images)
        size = max(counts, key=lambda s: (counts[s], s))  # the most common; ties: the larger
        arrays = {"train_images": _stack(train_images, size), "train_labels": train_labels,
                  "test_images": _stack(test_images, size), "test_labels": test_labels}
        try:
            save_npz_atomic(cache, arrays, {"format": _CACHE_FORMAT, "version": _CACHE_VERSION,
                                            "key": key, "root": str(root)})
        except OSError:
            pass  # a read-only cache folder only costs decoding again next time
    else:
        arrays = cached[0]
    mean, std = channel_stats(arrays["train_images"])
    return tuple(Dataset(arrays[f"{split}_images"], arrays[f"{split}_labels"], names,
                         f"{root.name}-{split}", mean, std) for split in SPLITS)
