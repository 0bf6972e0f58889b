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

A training folder needs at least two class folders (with one, a classifier scores 100 % by
always giving the same answer).

Decoding thousands of files takes a while, so the decoded images are cached in one ``.npz``
under ``$XDG_CACHE_HOME/minieffnet/folders/`` (``~/.cache/minieffnet/folders/``), named
after the folder and keyed by what it holds: a SHA-256 of every image file's bytes and
relative path (``split/class/file``), read on every load (about 0.4 s for Imagenette's
13,400 64-pixel JPEGs, against 8 s to decode them). Editing, adding, removing or renaming
an image rebuilds the cache, and so does a second folder holding other images under the
same names, sizes and times. Where the folder lives is not part of the key: two folders of
the same name holding the same files share one cache, rightly, since their images are the
same, and a moved folder keeps its cache. The images are decoded from the very bytes that
were hashed, so a file changed mid-read cannot leave its new pixels under its old key.

A cache is untrusted input too. It is read without unpickling (``allow_pickle=False``) and
checked against the folder (format, content key, class names, image counts, dtype and
shape); one that is unreadable or does not fit is decoded again and rewritten, with one
line on stderr saying which file and why. Writes go to a uniquely named temporary file
that ``os.replace`` moves into place, so concurrent runs and crashes never leave half a
cache. The labels are not cached: they follow from the listing. The image folder itself is
never written to.
"""
from __future__ import annotations

import collections
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import BadFileError
from ..io import load_npz, save_npz_atomic
from .arrays import check_classes
from .dataset import Dataset, channel_stats
from .images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
_CACHE_FORMAT = "minieffnet.image_folder"
_CACHE_VERSION = 2  # raised whenever the key or the arrays change: older caches are rebuilt


def cache_dir() -> Path:
    """Where decoded image folders are cached: ``$XDG_CACHE_HOME/minieffnet/folders``."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minieffnet" / "folders"


def _cache_path(root: Path, key: str) -> Path:
    """The cache file of the folder ``root`` whose content key is ``key``."""
    return cache_dir() / f"{root.name}-{key[:20]}.npz"


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


def _labels(listing: dict[str, dict[str, list[Path]]], names: tuple[str, ...]
            ) -> dict[str, np.ndarray]:
    """``{split: (N,) int64 labels}`` in listing order: class ``names[i]`` is label ``i``."""
    return {split: np.repeat(np.array([names.index(c) for c in classes], np.int64),
                             [len(files) for files in classes.values()])
            for split, classes in listing.items()}


def _read_files(listing: dict[str, dict[str, list[Path]]], visit=None) -> str:
    """The content key of the listing: a SHA-256 hex digest of every file's relative path
    (``split/class/file``), length and bytes, in listing order. ``visit(split, path, data)``,
    if given, sees each file's bytes as they are hashed."""
    digest = hashlib.sha256(f"{_CACHE_FORMAT} {_CACHE_VERSION}\n".encode())
    for split, classes in listing.items():
        for name, files in classes.items():
            for f in files:
                try:
                    data = f.read_bytes()
                except OSError as e:
                    raise BadFileError(f"{f}: cannot read the image ({type(e).__name__}: "
                                       f"{e.strerror or e})") from e
                digest.update(f"{split}/{name}/{f.name}\0{len(data)}\0"
                              .encode("utf-8", "surrogateescape"))
                digest.update(data)
                if visit is not None:
                    visit(split, f, data)
    return digest.hexdigest()


def _decode(listing: dict[str, dict[str, list[Path]]]) -> tuple[str, dict[str, np.ndarray]]:
    """``(content key, {split: (N, H, W, 3) uint8})``: every image decoded from the bytes
    the key was computed from, and stored at the most common (H, W) of the training images."""
    decoded = {split: [] for split in listing}
    key = _read_files(listing, lambda split, f, data: decoded[split].append(read_image(f, data)))
    counts = collections.Counter(img.shape[:2] for img in decoded["train"])
    size = max(counts, key=lambda s: (counts[s], s))  # the most common; ties: the larger
    return key, {split: _stack(images, size) for split, images in decoded.items()}


def _stack(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8, each image resized to ``size`` (H, W) unless it has it."""
    from PIL import Image

    out = np.empty((len(images), *size, 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = img if img.shape[:2] == size else np.asarray(
            Image.fromarray(img).resize(size[::-1], Image.BILINEAR))
    return out


def _cache_problem(arrays: dict[str, np.ndarray], meta, key: str, names: tuple[str, ...],
                   counts: dict[str, int]) -> str | None:
    """Why a loaded cache does not fit the folder (a phrase), or None if it does."""
    if (not isinstance(meta, dict) or meta.get("format") != _CACHE_FORMAT
            or meta.get("version") != _CACHE_VERSION):
        return f"is not a version-{_CACHE_VERSION} image-folder cache"
    if meta.get("key") != key:
        return "holds other images (its content key differs from the folder's)"
    if meta.get("classes") != list(names):
        return f"lists other classes than the folder's {len(names)}"
    wanted = sorted(f"{split}_images" for split in SPLITS)
    if sorted(arrays) != wanted:
        return f"holds the arrays {sorted(arrays)}, not {wanted}"
    size = arrays["train_images"].shape[1:3]
    for split in SPLITS:
        images = arrays[f"{split}_images"]
        if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != counts[split]
                or images.shape[1:] != (*size, 3) or 0 in images.shape[1:]):
            return (f"holds {split} images of {images.dtype} {images.shape}, where the folder "
                    f"has {counts[split]} (uint8, N x H x W x 3, one H x W for both splits)")
    return None


def _cached(path: Path, key: str, names: tuple[str, ...], counts: dict[str, int]
            ) -> dict[str, np.ndarray] | None:
    """``{split: images}`` from the cache at ``path``, or None if there is none or it is
    unusable (then saying why on stderr, in one line)."""
    try:
        arrays, meta = load_npz(path, what="image-folder cache")
        problem = _cache_problem(arrays, meta, key, names, counts)
        if problem is None:
            return {split: arrays[f"{split}_images"] for split in SPLITS}
        why = f"image-folder cache {path} {problem}"
    except FileNotFoundError:
        return None
    except BadFileError as e:
        why = str(e)
    except OSError as e:  # a cache folder we may not read, say
        why = f"image-folder cache {path} cannot be read ({type(e).__name__}: {e.strerror or e})"
    print(f"minieffnet: {' '.join(why.splitlines())}; decoding the images again",
          file=sys.stderr)
    return None


def _write_cache(path: Path, images: dict[str, np.ndarray], key: str, names: tuple[str, ...],
                 root: Path) -> None:
    """Store ``{split: images}`` of the folder ``root`` at ``path`` (atomically), or say on
    stderr, in one line, why it cannot."""
    meta = {"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "key": key,
            "classes": list(names), "root": str(root)}  # root: for a reader, not checked
    try:
        save_npz_atomic(path, {f"{split}_images": images[split] for split in SPLITS}, meta)
    except OSError as e:  # a read-only cache folder only costs decoding again next time
        print(f"minieffnet: cannot write the image-folder cache {path} "
              f"({type(e).__name__}: {e.strerror or e}); the images are decoded again next time",
              file=sys.stderr)


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
    labels = _labels(listing, names)
    check_classes(labels["train"], names, str(root / "train"))
    counts = {split: len(labels[split]) for split in SPLITS}
    key = _read_files(listing)
    images = _cached(_cache_path(root, key), key, names, counts)
    if images is None:
        key, images = _decode(listing)  # the key of the bytes decoded, should a file change
        _write_cache(_cache_path(root, key), images, key, names, root)
    mean, std = channel_stats(images["train"])
    return tuple(Dataset(images[split], labels[split], names, f"{root.name}-{split}", mean, std)
                 for split in SPLITS)
