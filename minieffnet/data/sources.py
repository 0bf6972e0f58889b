"""Which data set a name means: the built-in ones, and your own as ``folder:PATH`` / ``npz:PATH``.

========================  ==================================================================
``synthetic``             the built-in generated set (:mod:`minieffnet.data.synthetic`)
``cifar10``, ``cifar100`` CIFAR, found or downloaded under the data root (:mod:`.cifar`)
``folder:PATH``           an image-folder tree ``PATH/{train,test}/<class>/*.png`` (:mod:`.folder`)
``npz:PATH``              arrays in ``PATH_train.npz`` and ``PATH_test.npz`` (:mod:`.arrays`)
========================  ==================================================================

:data:`DATASETS` lists them for option parsers and checks a value with ``in``: a ``folder:``
or ``npz:`` value is accepted with any non-empty path (whether it holds data is the
loader's to say, naming the file).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import BadOptionError
from .arrays import load_npz_dataset
from .cifar import load_cifar10, load_cifar100
from .dataset import Dataset
from .folder import load_image_folder

BUILTIN_DATASETS = ("synthetic", "cifar10", "cifar100")
_OWN_DATA = {"folder": load_image_folder, "npz": load_npz_dataset}


def _own_data(spec) -> tuple[str, str] | None:
    """``(kind, path)`` of a ``folder:PATH`` / ``npz:PATH`` value, else None."""
    if not isinstance(spec, str):
        return None
    kind, sep, path = spec.partition(":")
    return (kind, path) if sep and kind in _OWN_DATA and path else None


class DatasetNames(tuple):
    """The values a dataset option takes, as a tuple to list (``synthetic, cifar10, cifar100,
    folder:PATH, npz:PATH``) whose ``in`` also accepts ``folder:`` / ``npz:`` with any path:
    so argparse's ``choices`` and :class:`~minieffnet.train_config.TrainConfig` check a value
    in one way."""

    def __contains__(self, value) -> bool:
        return (isinstance(value, str) and value in BUILTIN_DATASETS) or \
            _own_data(value) is not None


DATASETS = DatasetNames((*BUILTIN_DATASETS, *(f"{kind}:PATH" for kind in _OWN_DATA)))


def dataset_label(spec: str) -> str:
    """A short name for a dataset value, fit for a folder name: the built-in name, or the last
    part of a ``folder:`` / ``npz:`` path (``folder:~/photos/pets`` -> ``pets``)."""
    own = _own_data(spec)
    return spec if own is None else Path(own[1]).expanduser().name or own[0]


def load_dataset(spec: str, data_dir=None) -> tuple[Dataset, Dataset]:
    """``(train, test)`` for ``cifar10``, ``cifar100``, ``folder:PATH`` or ``npz:PATH``
    (``data_dir``: the CIFAR root). The synthetic set needs sizes:
    :func:`~minieffnet.data.load_synthetic`."""
    own = _own_data(spec)
    if own is not None:
        return _OWN_DATA[own[0]](own[1])
    if spec == "cifar10":
        return load_cifar10(data_dir)
    if spec == "cifar100":
        return load_cifar100(data_dir)
    raise BadOptionError(f"load_dataset: unknown data set {spec!r}; choose one of "
                     f"{', '.join(DATASETS)}")
