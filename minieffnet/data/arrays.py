"""Labelled images stored as plain arrays in ``.npz`` files, read without trusting them.

One split per file: ``images`` uint8 (N, H, W, 3) HWC RGB, an integer label array (N,)
(``labels`` unless told otherwise) and optionally ``classes``, one name per class (str).
Read with ``allow_pickle=False``, so an object array is refused instead of unpickled. The
CIFAR ``.npz`` form (:mod:`minieffnet.data.cifar`, 32x32 images and the official class
count) and ``--dataset npz:PATH`` (:func:`load_npz_dataset`, any image size) both read their
files here; every problem is a :class:`~minieffnet.errors.BadFileError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BadFileError
from .dataset import Dataset, channel_stats, repeated_names


def text(value) -> str:
    """A stored name as str: bytes (Python 2 pickles, ``S`` arrays) decoded as UTF-8."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def check_labels(labels: np.ndarray, n: int, num_classes: int, where: str) -> None:
    """Raise BadFileError (``where`` names the array) unless ``labels`` is (n,) in
    ``0 .. num_classes - 1``."""
    if labels.shape != (n,):
        raise BadFileError(f"{where} must hold {n} labels (one per image), got shape "
                           f"{labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise BadFileError(f"{where} must lie in 0..{num_classes - 1}, got "
                           f"{labels.min()}..{labels.max()}")


def check_names(names, where: str) -> None:
    """Raise BadFileError (``where`` names the list) if a class name occurs twice."""
    problem = repeated_names(names)
    if problem:
        raise BadFileError(f"{where} {problem}")


def check_classes(labels: np.ndarray, names, where: str) -> None:
    """Raise BadFileError naming ``where`` unless the training ``labels`` (N,) hold at least
    two classes: with one, a classifier scores 100 % by always giving that answer."""
    present = np.unique(labels)
    if present.size < 2:
        raise BadFileError(f"{where}: every training image is of class {names[present[0]]!r}; "
                           f"a classifier needs images of at least 2 classes")


def read_npz_split(path: Path, *, label_key: str = "labels", image_size=None,
                   num_classes: int | None = None, names_key: str | None = "classes"
                   ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """One split: ``(images (N, H, W, 3) uint8, labels (N,) int64, class names or None)``.

    image_size: the (H, W) every image must have, or None for any. num_classes: the class
    count labels must stay below and ``names_key`` (if present) must name; None takes it from
    the names, else from the labels. names_key: the array of class names, or None to ignore
    one. Raises BadFileError naming ``path`` and the array.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # BadZipFile, pickled object arrays, truncation, a .npy, ...
        raise BadFileError(f"{path}: cannot read as a .npz of plain arrays "
                           f"({type(err).__name__}: {err})") from err
    for key in ("images", label_key):
        if key not in arrays:
            raise BadFileError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    images, labels = arrays["images"], arrays[label_key]
    expected = "(N, H, W, 3)" if image_size is None else f"(N, {image_size[0]}, {image_size[1]}, 3)"
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3
            or 0 in images.shape
            or (image_size is not None and images.shape[1:3] != tuple(image_size))):
        raise BadFileError(f"{path}: 'images' must be uint8 {expected} HWC with N >= 1, got "
                           f"{images.dtype} {images.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BadFileError(f"{path}: {label_key!r} must be integers, got dtype {labels.dtype}")
    names = None
    if names_key is not None and names_key in arrays:
        classes = arrays[names_key]
        if (classes.dtype.kind not in "US" or classes.ndim != 1 or classes.size == 0
                or (num_classes is not None and classes.size != num_classes)):
            raise BadFileError(f"{path}: {names_key!r} must hold {num_classes or 'one or more'} "
                               f"names, got {classes.dtype} {classes.shape}")
        names = tuple(text(c) for c in classes)
        check_names(names, f"{path}: {names_key!r}")
        num_classes = len(names)
    labels = labels.astype(np.int64)
    if num_classes is None:  # neither the caller nor the file says: the labels do
        num_classes = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 1
    check_labels(labels, images.shape[0], num_classes, f"{path}: {label_key!r}")
    return images, labels, names


def load_npz_dataset(prefix: str | os.PathLike) -> tuple[Dataset, Dataset]:
    """``--dataset npz:PREFIX``: ``(train, test)`` from ``PREFIX_train.npz`` and
    ``PREFIX_test.npz`` (module docstring; images of any size, the same in both splits).

    Class names: the files' ``classes`` (they must agree, and name each class once), else
    ``"0"``, ``"1"``, ... up to the largest label K - 1 of either split, where K may not exceed
    the number of training images (more classes than images means a label is not a class
    index). The training labels must hold at least 2 classes. Both splits are normalised
    with the training split's per-channel statistics. Raises FileNotFoundError naming a
    missing file, BadFileError for a bad one.
    """
    prefix = Path(prefix).expanduser()
    paths = [prefix.with_name(f"{prefix.name}_{split}.npz") for split in ("train", "test")]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; --dataset npz:{prefix} reads "
                                    f"{paths[0].name} and {paths[1].name}")
    (x_train, y_train, names), (x_test, y_test, test_names) = (read_npz_split(p) for p in paths)
    if x_test.shape[1:] != x_train.shape[1:]:
        raise BadFileError(f"{paths[1]}: images are {x_test.shape[1]}x{x_test.shape[2]}, but "
                           f"those of {paths[0].name} are {x_train.shape[1]}x{x_train.shape[2]}")
    if names is None and test_names is None:
        # Bound the class count before building one name per class: a stray label of 10^12
        # would otherwise ask for 10^12 names.
        top = [int(y.max(initial=0)) for y in (y_train, y_test)]
        worst = int(np.argmax(top))
        if top[worst] >= len(y_train):
            raise BadFileError(f"{paths[worst]}: label {top[worst]} is too large: without a "
                               f"'classes' array the labels must be class indices 0..K-1 with "
                               f"K at most the {len(y_train)} training images; renumber them "
                               f"or add 'classes'")
        names = tuple(str(i) for i in range(1 + max(top)))
    elif names != test_names:
        raise BadFileError(f"{paths[1]}: its 'classes' differ from those of {paths[0].name}")
    for path, labels in zip(paths, (y_train, y_test)):
        check_labels(labels, len(labels), len(names), f"{path}: 'labels'")
    check_classes(y_train, names, str(paths[0]))
    mean, std = channel_stats(x_train)
    name = prefix.name
    return (Dataset(x_train, y_train, names, f"{name}-train", mean, std),
            Dataset(x_test, y_test, names, f"{name}-test", mean, std))
