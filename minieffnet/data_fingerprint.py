"""What a run trains on, recorded when it starts, so that a resumed run can tell whether its
data is still the same: :class:`DataFingerprint`.

A resumed run reloads its data from where its config says (a CIFAR root, an image folder, an
``.npz`` pair). If that data changed in between (a class folder renamed, images added), it
would continue with other class names, other normalisation statistics and another number of
steps per epoch, silently. The fingerprint catches that: class names, image counts per split,
the training normalisation and a digest of every split's images and labels. The run's
checkpoint stores it as metadata field ``data`` (:mod:`minieffnet.checkpoint`)::

    {"class_names": ["cat", "dog"], "images": {"train": 16, "val": 4, "test": 8},
     "mean": [r, g, b], "std": [r, g, b], "blake2b": {"train": "<hex>", "val": ..., ...}}

``val`` is there only for runs with a validation split. Each digest is BLAKE2b (16 bytes)
over the split's image and label arrays as stored (uint8 images, int64 labels) and their
shapes; all of CIFAR-10 (60,000 images, 184 MB) takes 0.3 to 0.6 s on a shared 2-core VM,
so a run computes it every time it loads its data.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .checkpoint import check_fields, check_statistics
from .data import Dataset
from .validate import is_int

# The splits a run may have, in the order changes are reported, with the word for each.
SPLITS = {"train": "training", "val": "validation", "test": "test"}
_DIGEST_BYTES = 16
# A list of class names longer than this is reported by what left and joined it.
_NAMES_SHOWN = 10


@dataclass(frozen=True)
class DataFingerprint:
    """The data a run trains on (module docstring).

    class_names: the training split's, in label order. images: ``{split: image count}``.
    mean, std: the training normalisation (3 floats each, 0..255 scale). blake2b:
    ``{split: hex digest}`` of each split's images and labels.
    """

    class_names: tuple[str, ...]
    images: dict[str, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    blake2b: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: every field by name (tuples as lists)."""
        return {"class_names": list(self.class_names), "images": dict(self.images),
                "mean": list(self.mean), "std": list(self.std), "blake2b": dict(self.blake2b)}

    @classmethod
    def from_dict(cls, d: Any) -> "DataFingerprint":
        """Rebuild from :meth:`to_dict`'s output, read from a file: ValueError naming the
        first field that is missing, unknown or malformed."""
        check_fields("data", d, cls)
        names = d["class_names"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ValueError(f"data: class_names must be a non-empty list of strings, got "
                             f"{names!r:.80}")
        mean, std = check_statistics(d["mean"], d["std"], "data")
        images, digests = d["images"], d["blake2b"]
        if not (isinstance(images, dict) and {"train", "test"} <= set(images) <= set(SPLITS)
                and all(is_int(n) and n >= 0 for n in images.values())):
            raise ValueError(f"data: images must map train, test (and val) to image counts, "
                             f"got {images!r:.80}")
        if not (isinstance(digests, dict) and set(digests) == set(images)
                and all(isinstance(h, str) for h in digests.values())):
            raise ValueError(f"data: blake2b must map {sorted(images)} to digests, got "
                             f"{digests!r:.80}")
        return cls(tuple(names), dict(images), mean, std, dict(digests))

    def changes_since(self, stored: "DataFingerprint") -> list[str]:
        """What differs from ``stored`` (the run's data when it started), one phrase each,
        e.g. ``["classes ['a', 'b'] -> ['a', 'c']", "16 -> 20 training images"]``; empty
        when the data is the same."""
        changes = []
        if self.class_names != stored.class_names:
            changes.append(_class_change(stored.class_names, self.class_names))
        for split, word in SPLITS.items():
            before, now = stored.images.get(split), self.images.get(split)
            if before != now:
                changes.append(f"{_count(before)} -> {_count(now)} {word} images")
            elif before is not None and stored.blake2b[split] != self.blake2b[split]:
                changes.append(f"other {word} images or labels (as many)")
        for stat in ("mean", "std"):
            before, now = getattr(stored, stat), getattr(self, stat)
            # Recomputed from identical images they agree to rounding at most: only a real
            # change (other images) is reported, and that one changes a digest as well.
            if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(before, now)):
                changes.append(f"normalisation {stat} {_triple(before)} -> {_triple(now)}")
        return changes


def data_fingerprint(splits: Mapping[str, Dataset | None], mean, std) -> DataFingerprint:
    """The fingerprint of a run's data: ``splits`` maps ``train``, ``test`` and optionally
    ``val`` to their Datasets (None: no such split); ``mean`` / ``std`` are the training
    normalisation the run uses. Class names are the training split's."""
    used = {name: data for name, data in splits.items() if data is not None}
    return DataFingerprint(
        class_names=used["train"].class_names,
        images={name: len(data) for name, data in used.items()},
        mean=tuple(map(float, mean)), std=tuple(map(float, std)),
        blake2b={name: _digest(data) for name, data in used.items()})


def _digest(data: Dataset) -> str:
    """BLAKE2b of a Dataset's images and labels, shapes included (so a reshaped array with
    the same bytes differs)."""
    h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    for array in (data.images, data.labels):
        h.update(repr((array.dtype.str, array.shape)).encode("ascii"))
        h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def _class_change(before: tuple[str, ...], now: tuple[str, ...]) -> str:
    """``classes ['a', 'b'] -> ['a', 'c']``; for long lists, the names that left and joined
    (or that only the order changed). Names are shown by repr: control characters escaped."""
    if max(len(before), len(now)) <= _NAMES_SHOWN:
        return f"classes {list(before)} -> {list(now)}"
    gone = [n for n in before if n not in now][:_NAMES_SHOWN]
    new = [n for n in now if n not in before][:_NAMES_SHOWN]
    if not (gone or new):
        return f"the order of the {len(now)} classes"
    return f"{len(before)} -> {len(now)} classes (without {gone}, new {new})"


def _count(n: int | None) -> str:
    return "no" if n is None else str(n)


def _triple(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"
