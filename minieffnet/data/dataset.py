"""The one container every data source returns: images as stored, integer labels, names.

Images stay uint8 HWC (the way CIFAR and the synthetic set are stored, 4x smaller than
float32); conversion to normalised float32 NCHW happens per batch in
:mod:`minieffnet.data.transforms`, so a 50,000-image training set costs 150 MB, not 600 MB.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np


def channel_stats(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0..255 scale.

    images: (N, H, W, 3) uint8. Returns ``(mean, std)``, each a tuple of 3 floats (R, G, B):
    the statistics over all pixels of all images, as quoted for CIFAR-10
    (mean 125.31, 122.95, 113.87; std 62.99, 62.09, 66.71). A channel holding one value
    everywhere (std 0) gets std 1, as scikit-learn's ``StandardScaler`` does: normalising
    then only centres it (to 0), where dividing by 0 would make it NaN. Images whose value
    in that channel differs from the constant come out unscaled (on the 0..255 scale).
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"channel_stats: images must be an (N, H, W, 3) array, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.shape[0] == 0:
        raise ValueError("channel_stats: images is empty")
    rows = np.ascontiguousarray(images).reshape(images.shape[0], -1)  # one image per row, RGB interleaved
    total = np.zeros(3)
    total_sq = np.zeros(3)
    # Column sums of (images, H*W*3) blocks run over long contiguous rows (fast), then fold
    # the interleaved channels. float32 holds every square exactly (255^2 < 2^24) and the
    # sums accumulate in float64, so the result is exact to ~1e-12 without a float64 copy.
    for start in range(0, rows.shape[0], 1024):
        block = rows[start:start + 1024].astype(np.float32)
        total += block.sum(axis=0, dtype=np.float64).reshape(-1, 3).sum(axis=0)
        block *= block
        total_sq += block.sum(axis=0, dtype=np.float64).reshape(-1, 3).sum(axis=0)
    count = rows.size // 3
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    std[std == 0] = 1.0  # a constant channel (exact: integer sums are exact in float64)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def repeated_names(names) -> str | None:
    """What is wrong with the class ``names`` if one occurs more than once (a phrase to
    follow the list's name in a message), else None."""
    twice = [n for n, k in collections.Counter(names).items() if k > 1]
    return (f"holds {', '.join(map(repr, twice))} more than once; every class needs its own "
            f"name") if twice else None


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image set, validated on construction.

    images: (N, H, W, 3) uint8, HWC RGB as stored (CIFAR and the synthetic set: H = W = 32).
    labels: (N,) int64, each in ``0 .. len(class_names) - 1``.
    class_names: one name per class, in label order.
    name: a short identifier such as ``"cifar10-train"``.
    mean, std: per-channel normalisation statistics on the 0..255 scale (3 floats each),
        normally those of the *training* split, shared by its test split so that both are
        normalised alike. ``None`` means "compute from these images" (:meth:`normalization`).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str = "dataset"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        where = f"Dataset {self.name!r}"
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray):
            raise ValueError(f"{where}: images must be a numpy.ndarray, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise ValueError(f"{where}: images must be uint8 (0..255 as stored), got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{where}: images must have shape (N, H, W, 3) (HWC RGB), got {images.shape}")
        if not isinstance(labels, np.ndarray):
            raise ValueError(f"{where}: labels must be a numpy.ndarray, got {type(labels).__name__}")
        if labels.dtype != np.int64:
            raise ValueError(f"{where}: labels must be int64, got dtype {labels.dtype} "
                             f"(convert with labels.astype(np.int64))")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{where}: labels must have shape ({images.shape[0]},) to match "
                             f"{images.shape[0]} images, got {labels.shape}")
        names = tuple(self.class_names)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{where}: class_names must be a non-empty sequence of str, got {self.class_names!r}")
        problem = repeated_names(names)
        if problem:
            raise ValueError(f"{where}: class_names {problem}")
        # frozen dataclass: store the normalised tuple through object.__setattr__
        object.__setattr__(self, "class_names", names)
        if labels.size:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= len(names):
                bad = lo if lo < 0 else hi
                raise ValueError(f"{where}: label {bad} is out of range 0..{len(names) - 1} "
                                 f"for {len(names)} classes")
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"{where}: give both mean and std, or neither")
        for stat in ("mean", "std"):
            value = getattr(self, stat)
            if value is None:
                continue
            value = tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
            if len(value) != 3 or not all(np.isfinite(value)):
                raise ValueError(f"{where}: {stat} must be 3 finite floats (R, G, B), got {getattr(self, stat)!r}")
            if stat == "std" and min(value) <= 0:
                raise ValueError(f"{where}: std must be positive, got {value}")
            object.__setattr__(self, stat, value)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, images={self.images.shape} {self.images.dtype}, "
                f"num_classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the stored images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def class_counts(self) -> np.ndarray:
        """(num_classes,) int64: how many images each class has."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """``(mean, std)`` to normalise with: the stored ones, else computed from these images."""
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        return channel_stats(self.images)

    def balanced_subset(self, n: int, seed: int = 0) -> "Dataset":
        """``n`` images, as evenly spread over the classes as the counts allow, in a random order
        fixed by ``seed`` (so every run asking for ``n`` sees the same images).

        Not simply the first ``n``: files such as the shared CIFAR-10 arrays are grouped by
        class, and their first 5000 images are all aeroplanes.
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"balanced_subset: n must be a positive integer, got {n!r}")
        if n >= len(self):
            return self
        return self.subset(self.balanced_indices(n, seed))

    def balanced_indices(self, n: int, seed: int = 0) -> np.ndarray:
        """The sorted indices (int64, ``min(n, len)`` of them) that :meth:`balanced_subset`
        keeps; their complement is the rest of the set (a held-out split)."""
        rng = np.random.default_rng(seed)
        # Deal the classes out like cards: shuffle each class, then take round-robin by rank
        # within class, so any prefix of the deal is balanced to within one image per class.
        order = rng.permutation(len(self))
        rank = np.empty(len(self), np.int64)
        for c in range(self.num_classes):
            members = order[self.labels[order] == c]
            rank[members] = np.arange(len(members))
        dealt = order[np.lexsort((self.labels[order], rank[order]))]
        return np.sort(dealt[:n])

    def subset(self, indices, name: str | None = None) -> "Dataset":
        """A new Dataset holding ``images[indices]``, ``labels[indices]`` (a copy).

        indices: an int array / slice / boolean mask along N. Keeps class names and the
        normalisation statistics, so a subset is normalised exactly like its parent.
        """
        if isinstance(indices, slice):
            images, labels = self.images[indices], self.labels[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise ValueError(f"subset: boolean mask must have shape ({len(self)},), got {idx.shape}")
            elif not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"subset: indices must be integers, a boolean mask or a slice, got dtype {idx.dtype}")
            images, labels = self.images[idx], self.labels[idx]
        return Dataset(np.ascontiguousarray(images), np.ascontiguousarray(labels), self.class_names,
                       name if name is not None else self.name, self.mean, self.std)
