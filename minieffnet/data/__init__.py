"""Data: data sets (built-in synthetic, CIFAR-10/100, your own image folders and arrays),
augmentation and mini-batches.

    >>> from minieffnet.data import load_synthetic, iterate_batches, AugmentConfig
    >>> train, test = load_synthetic(n_train=10000, n_test=2000, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> for x, y in iterate_batches(train, 128, rng, augment=AugmentConfig(), resolution=32):
    ...     ...   # x: (128, 3, 32, 32) float32 normalised, y: (128,) int64
    >>> train, test = load_dataset("folder:~/photos/pets")   # or "npz:...", "cifar10"

Images are stored as uint8 HWC (:class:`Dataset`) and become normalised float32 NCHW one
batch at a time.
"""
from .arrays import load_npz_dataset
from .cifar import (CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR100_COARSE_CLASSES, default_data_dir, load_cifar10,
                    load_cifar100)
from .dataset import Dataset, channel_stats
from .download import DownloadError, download_url, md5sum
from .folder import load_image_folder
from .images import read_image
from .loader import AugmentConfig, BatchIterator, BatchLoader, iterate_batches
from .sources import BUILTIN_DATASETS, DATASETS, dataset_label, load_dataset
from .synthetic import load_synthetic, make_synthetic
from .transforms import crop_flip, cutout, random_crop_flip, resize_bilinear, to_float_nchw

__all__ = [
    "AugmentConfig", "BUILTIN_DATASETS", "BatchIterator", "BatchLoader", "CIFAR10_CLASSES",
    "CIFAR100_CLASSES", "CIFAR100_COARSE_CLASSES", "DATASETS", "Dataset", "DownloadError",
    "channel_stats", "crop_flip", "cutout", "dataset_label", "default_data_dir", "download_url",
    "iterate_batches", "load_cifar10", "load_cifar100", "load_dataset", "load_image_folder",
    "load_npz_dataset", "load_synthetic", "make_synthetic", "md5sum", "random_crop_flip",
    "read_image", "resize_bilinear", "to_float_nchw",
]
