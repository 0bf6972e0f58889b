"""Mini-batches from a Dataset: shuffle, convert, augment, resize.

One :class:`BatchLoader` serves every epoch; each ``iter(loader)`` is one epoch whose
length is known in advance. All randomness (the shuffle and the augmentation) is drawn from
the ``numpy.random.Generator`` given to the loader, in a fixed order, so a loader built with
``np.random.default_rng(seed)`` yields the same batches, epoch after epoch, on every run.
Give the loader its own Generator (not the one that initialises the model), so that changing
the model does not change the data order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadOptionError
from .dataset import Dataset
from .transforms import cutout, random_crop_flip, resize_bilinear, to_float_nchw


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, applied per batch in this order.

    crop_padding: random crop after padding each side with this many zeros (0: no crop).
    flip: random horizontal flip with probability 1/2.
    cutout: side of the square zeroed by cutout (0: no cutout; 8 or 16 are usual on CIFAR).
    """

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"AugmentConfig: {name} must be a non-negative integer, got {value!r}")

    @property
    def active(self) -> bool:
        """Whether this configuration changes images at all."""
        return self.crop_padding > 0 or self.flip or self.cutout > 0


class BatchIterator:
    """One epoch of batches (what ``iter(BatchLoader)`` returns): ``len()`` is the batch count."""

    def __init__(self, loader: "BatchLoader", order: np.ndarray):
        self._loader = loader
        self._order = order
        self._next = 0
        self._len = len(loader)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        if self._next >= self._len:
            raise StopIteration
        size = self._loader.batch_size
        idx = self._order[self._next * size:(self._next + 1) * size]
        self._next += 1
        return self._loader._make_batch(idx)


class BatchLoader:
    """Iterable over mini-batches ``(x, y)`` of a :class:`~minieffnet.data.Dataset`.

    dataset: the images to serve. batch_size: images per batch (the last one may be smaller
    unless ``drop_last``). rng: the ``numpy.random.Generator`` for shuffling and augmentation.
    shuffle: a fresh random order each epoch (else dataset order). augment: an
    :class:`AugmentConfig`, ``True`` for ``AugmentConfig()``, or ``None`` / ``False`` for none
    (evaluation); its cutout must be smaller than the images. resolution: side R of the
    square model input; images are bilinearly resized to R x R after augmentation (``None``:
    keep the stored size). drop_last: skip a final
    incomplete batch (keeps BatchNorm statistics from a tiny batch out of training).
    mean, std: per-channel normalisation on the 0..255 scale; default
    ``dataset.normalization()`` (the training statistics for the built-in data sets).

    Each batch: ``x`` (B, 3, R, R) float32, ``y`` (B,) int64.
    """

    def __init__(self, dataset: Dataset, batch_size: int, rng: np.random.Generator, *, shuffle: bool = True,
                 augment: AugmentConfig | bool | None = None, resolution: int | None = None,
                 drop_last: bool = False, mean=None, std=None):
        if not isinstance(dataset, Dataset):
            raise ValueError(f"BatchLoader: dataset must be a minieffnet.data.Dataset, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"BatchLoader: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"BatchLoader: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                             f"got {type(rng).__name__}")
        if augment is True:
            augment = AugmentConfig()
        elif augment is False:
            augment = None
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise ValueError(f"BatchLoader: augment must be an AugmentConfig, a bool or None, got {augment!r}")
        if augment is not None and augment.cutout >= min(dataset.image_size):
            # A square as large as the image can erase all of it: the network would then learn
            # from blank images (and BatchNorm divide by a zero variance).
            raise BadOptionError(f"BatchLoader: cutout {augment.cutout} must be smaller than the images of "
                                 f"{dataset.name} ({dataset.image_size[0]}x{dataset.image_size[1]} px)")
        if resolution is not None and (isinstance(resolution, bool) or int(resolution) != resolution
                                       or resolution < 1):
            raise ValueError(f"BatchLoader: resolution must be a positive integer or None, got {resolution!r}")
        if (mean is None) != (std is None):
            raise ValueError("BatchLoader: give both mean and std, or neither")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.rng = rng
        self.shuffle = bool(shuffle)
        self.augment = augment if augment is not None and augment.active else None
        self.resolution = None if resolution is None else int(resolution)
        self.drop_last = bool(drop_last)
        self.mean, self.std = (mean, std) if mean is not None else dataset.normalization()

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> BatchIterator:
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        return BatchIterator(self, order)

    def _make_batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gather ``idx`` and run the transform pipeline: (B, 3, R, R) float32, (B,) int64."""
        x = to_float_nchw(self.dataset.images[idx], self.mean, self.std)
        aug = self.augment
        if aug is not None:
            if aug.crop_padding or aug.flip:
                x = random_crop_flip(x, self.rng, padding=aug.crop_padding, flip=aug.flip)
            if aug.cutout:
                x = cutout(x, self.rng, aug.cutout)
        if self.resolution is not None and x.shape[2:] != (self.resolution, self.resolution):
            x = resize_bilinear(x, self.resolution)
        return x, self.dataset.labels[idx]


def iterate_batches(dataset: Dataset, batch_size: int, rng: np.random.Generator, shuffle: bool = True,
                    augment: AugmentConfig | bool | None = None, resolution: int | None = None,
                    drop_last: bool = False, mean=None, std=None) -> BatchIterator:
    """One epoch of ``(x, y)`` batches: ``iter(BatchLoader(...))`` with the same arguments.

    Returns an iterator with ``len()``; each item is ``x`` (B, 3, R, R) float32 and ``y`` (B,)
    int64 (see :class:`BatchLoader` for every argument).
    """
    return iter(BatchLoader(dataset, batch_size, rng, shuffle=shuffle, augment=augment, resolution=resolution,
                            drop_last=drop_last, mean=mean, std=std))
