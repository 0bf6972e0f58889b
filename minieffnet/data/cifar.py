"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009), read without trusting pickle.

Accepted forms, looked for in this order in ``<root>/cifar10/`` and then ``<root>/`` itself
(``cifar100`` likewise)::

    cifar10_train.npz + cifar10_test.npz    plain arrays (numpy.load, allow_pickle=False)
    cifar-10-batches-py/                    the official archive, extracted
    cifar-10-python.tar.gz                  the official archive (read in place, not extracted)

``<root>`` is the ``data_dir`` argument, else the environment variable ``MINIEFFNET_DATA``,
else the user cache folder ``$XDG_CACHE_HOME/minieffnet`` (``~/.cache/minieffnet``). When
nothing is found and ``download=True``, the official archive is downloaded (MD5-checked,
written atomically) to ``<root>/cifar10/cifar-10-python.tar.gz``.

The ``.npz`` form: ``images`` uint8 (N, 32, 32, 3) HWC RGB, ``labels`` integer (N,), and
optionally ``classes`` (the class names, str). For CIFAR-100, ``labels`` are the fine labels;
``coarse_labels`` may be added for ``label_mode="coarse"``.

The official batches are Python pickles. Unpickling can run arbitrary code, so they are read
by an unpickler that admits exactly four globals: numpy's ndarray reconstruction
(``numpy.core.multiarray._reconstruct``, also under numpy 2's name ``numpy._core``),
``numpy.ndarray`` and ``numpy.dtype``. Anything else (``os.system``, ``builtins.eval``, ...)
is refused before it is looked up. Each batch holds ``data``: uint8 (n, 3072), every row
one image as the 1024 red, then green, then blue values in row-major order (CHW), and
``labels`` (CIFAR-10) or ``fine_labels`` / ``coarse_labels`` (CIFAR-100).
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadFileError, BadOptionError
from .arrays import check_classes, check_labels, check_names, read_npz_split, text
from .dataset import Dataset, channel_stats
from .download import download_url

try:  # numpy >= 2 keeps the function here; numpy.core is a deprecated alias
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

ENV_VAR = "MINIEFFNET_DATA"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)

_IMAGE_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class _Spec:
    """Where one CIFAR variant lives and how its files are laid out."""

    name: str                 # folder and npz prefix: "cifar10"
    title: str                # for messages: "CIFAR-10"
    archive: str              # official archive file name
    url: str
    md5: str
    folder: str               # top folder inside the archive
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_member: str
    # label_mode -> (label key in the batches, class-name key in the meta file,
    #                label array in the .npz form, official class names)
    label_modes: dict


CIFAR10 = _Spec("cifar10", "CIFAR-10", "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                "batches.meta", {"fine": ("labels", "label_names", "labels", CIFAR10_CLASSES)})
CIFAR100 = _Spec("cifar100", "CIFAR-100", "cifar-100-python.tar.gz",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python", ("train",), ("test",), "meta",
                 {"fine": ("fine_labels", "fine_label_names", "labels", CIFAR100_CLASSES),
                  "coarse": ("coarse_labels", "coarse_label_names", "coarse_labels", CIFAR100_COARSE_CLASSES)})


# --- the restricted unpickler ----------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for data files: plain containers and numpy arrays, no other globals."""

    def find_class(self, module, name):
        # Never import or look anything up: an allow-list of exact (module, name) pairs.
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}': a CIFAR batch holds only "
                                         f"dicts, lists, strings, numbers and numpy arrays") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids: a CIFAR batch has none")


def _unpickle(data: bytes, source: str) -> dict:
    """Decode one batch or meta file (bytes) into a dict with str keys; source names it in errors."""
    try:
        # latin1 is what Python 3 needs for the Python 2 pickles of the official archives:
        # str objects (keys, numpy's raw array bytes) arrive intact, byte for byte.
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # any failure means the file cannot be a CIFAR batch
        raise BadFileError(f"{source}: not a valid CIFAR pickle ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise BadFileError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _decode_batch(batch: dict, label_key: str, num_classes: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch dict -> images (n, 32, 32, 3) uint8 (HWC, from CHW rows) and labels (n,) int64."""
    for key in ("data", label_key):
        if key not in batch:
            raise BadFileError(f"{source}: missing entry {key!r} (has {sorted(map(str, batch))})")
    data = batch["data"]
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.size % 3072:
        raise BadFileError(f"{source}: 'data' must be uint8 rows of 3072 values, got "
                           f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    n = data.size // 3072
    images = np.ascontiguousarray(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as err:
        raise BadFileError(f"{source}: {label_key!r} must be a list of integers ({err})") from err
    check_labels(labels, n, num_classes, f"{source}: {label_key!r}")
    return images, labels


# --- the three on-disk forms --------------------------------------------------------------------

def _decode_members(spec: _Spec, label_mode: str, read, where: str):
    """Decode train, test and meta members; ``read(member) -> bytes``. Returns
    ``(x_train, y_train, x_test, y_test, class_names)``."""
    label_key, names_key, _, official = spec.label_modes[label_mode]
    meta = _unpickle(read(spec.meta_member), f"{where}: {spec.meta_member}")
    if names_key not in meta:
        raise BadFileError(f"{where}: {spec.meta_member} lacks {names_key!r} (has {sorted(map(str, meta))})")
    listed = meta[names_key]
    if not isinstance(listed, (list, tuple)) or len(listed) != len(official):
        count = len(listed) if isinstance(listed, (list, tuple)) else type(listed).__name__
        raise BadFileError(f"{where}: {spec.meta_member} lists {count} class names under {names_key!r}, "
                           f"expected {len(official)}")
    names = tuple(text(v) for v in listed)
    check_names(names, f"{where}: {spec.meta_member} {names_key!r}")
    splits = []
    for members in (spec.train_members, spec.test_members):
        parts = [_decode_batch(_unpickle(read(m), f"{where}: {m}"), label_key, len(names), f"{where}: {m}")
                 for m in members]
        if not sum(len(p[1]) for p in parts):
            raise BadFileError(f"{where}: {', '.join(members)} hold no images")
        splits += [np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])]
    return (*splits, names)


def _read_archive(path: Path, spec: _Spec, label_mode: str):
    """Read the official .tar.gz in one sequential pass (no extraction to disk)."""
    wanted = {f"{spec.folder}/{m}" for m in (*spec.train_members, *spec.test_members, spec.meta_member)}
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            # Iterating to the end also makes gzip verify its CRC: truncation and
            # corruption surface here rather than as garbage pixels.
            for member in tar:
                if member.name in wanted and member.isfile():
                    contents[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as err:
        raise BadFileError(f"{path}: corrupt or truncated archive ({type(err).__name__}: {err}); delete it and "
                           f"download it again from {spec.url}") from err
    missing = sorted(wanted - contents.keys())
    if missing:
        raise BadFileError(f"{path}: archive lacks {', '.join(missing)}; is it really {spec.archive}?")
    return _decode_members(spec, label_mode, lambda m: contents[f"{spec.folder}/{m}"], str(path))


def _read_folder(folder: Path, spec: _Spec, label_mode: str):
    """Read the extracted batch files from ``folder`` (e.g. .../cifar-10-batches-py)."""
    def read(member: str) -> bytes:
        path = folder / member
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing {spec.title} batch file (the extracted {spec.archive} "
                                    f"has {', '.join((*spec.train_members, *spec.test_members, spec.meta_member))})")
        return path.read_bytes()
    return _decode_members(spec, label_mode, read, str(folder))


def _read_npz(path: Path, spec: _Spec, label_mode: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One split from the plain-array form: images (N, 32, 32, 3) uint8, labels (N,) int64, names."""
    _, _, label_key, official = spec.label_modes[label_mode]
    # 'classes' names the fine labels only; the coarse names are always the official ones.
    images, labels, names = read_npz_split(path, label_key=label_key, image_size=_IMAGE_SHAPE[:2],
                                           num_classes=len(official),
                                           names_key="classes" if label_key == "labels" else None)
    return images, labels, names or official


# --- finding (or fetching) the files -----------------------------------------------------------

def default_data_dir() -> Path:
    """The data root used when no ``data_dir`` is given: ``$MINIEFFNET_DATA``, else the user
    cache folder ``$XDG_CACHE_HOME/minieffnet`` (default ``~/.cache/minieffnet``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minieffnet"


def _locate(root: Path, spec: _Spec):
    """First available form under root: ("npz", (train, test)) | ("folder", dir) | ("archive", file) | None."""
    for folder in (root / spec.name, root):
        train, test = folder / f"{spec.name}_train.npz", folder / f"{spec.name}_test.npz"
        if train.is_file() or test.is_file():
            for path in (train, test):
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: missing (its other split is there); {spec.title} in .npz "
                                            f"form needs both {train.name} and {test.name}")
            return "npz", (train, test)
        if (folder / spec.folder).is_dir():
            return "folder", folder / spec.folder
        if folder.name == spec.folder and (folder / spec.meta_member).is_file():
            return "folder", folder
        if (folder / spec.archive).is_file():
            return "archive", folder / spec.archive
    return None


def _load(spec: _Spec, data_dir, download: bool, label_mode: str) -> tuple[Dataset, Dataset]:
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    found = _locate(root, spec)
    if found is None:
        target = root / spec.name / spec.archive
        how = (f"download {spec.url} (MD5 {spec.md5}) and put {spec.archive} in {target.parent}/, "
               f"or point data_dir / ${ENV_VAR} at a folder that holds it (or {spec.name}_train.npz and "
               f"{spec.name}_test.npz)")
        if not download:
            raise FileNotFoundError(f"{spec.title} not found under {root} and download=False: {how}")
        try:
            download_url(spec.url, target, spec.md5)
        except OSError as err:  # no network, HTTP error, read-only folder
            raise FileNotFoundError(f"{spec.title} not found under {root}, and the download failed ({err}): "
                                    f"{how}") from err
        found = ("archive", target)
    kind, where = found
    if kind == "npz":
        x_train, y_train, names = _read_npz(where[0], spec, label_mode)
        x_test, y_test, test_names = _read_npz(where[1], spec, label_mode)
        if test_names != names:
            raise BadFileError(f"{where[1]}: class names differ from those in {where[0]}")
    elif kind == "folder":
        x_train, y_train, x_test, y_test, names = _read_folder(where, spec, label_mode)
    else:
        x_train, y_train, x_test, y_test, names = _read_archive(where, spec, label_mode)
    check_classes(y_train, names, str(where[0] if kind == "npz" else where))
    # Both splits are normalised with the training statistics.
    mean, std = channel_stats(x_train)
    suffix = "-coarse" if label_mode == "coarse" else ""
    return (Dataset(x_train, y_train, names, f"{spec.name}{suffix}-train", mean, std),
            Dataset(x_test, y_test, names, f"{spec.name}{suffix}-test", mean, std))


def load_cifar10(data_dir=None, download: bool = True) -> tuple[Dataset, Dataset]:
    """CIFAR-10 as ``(train, test)`` Datasets: 50,000 and 10,000 images, 10 classes.

    data_dir: folder holding ``cifar10/`` (or the files themselves); default
    :func:`default_data_dir`. download: fetch the official archive if nothing is found.
    Images (N, 32, 32, 3) uint8 HWC RGB; labels (N,) int64 in 0..9; mean/std of the train split.
    Raises FileNotFoundError (with what to put where) or :class:`~minieffnet.errors.BadFileError`
    (a ValueError; a damaged file, named).
    """
    return _load(CIFAR10, data_dir, download, "fine")


def load_cifar100(data_dir=None, download: bool = True, label_mode: str = "fine") -> tuple[Dataset, Dataset]:
    """CIFAR-100 as ``(train, test)`` Datasets: 50,000 and 10,000 images.

    label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses). Otherwise as
    :func:`load_cifar10`, with ``cifar100/`` and ``cifar-100-python.tar.gz``.
    """
    if label_mode not in ("fine", "coarse"):
        raise BadOptionError(f"load_cifar100: label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    return _load(CIFAR100, data_dir, download, label_mode)
