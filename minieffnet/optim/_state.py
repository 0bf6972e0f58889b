"""Plumbing shared by the optimisers and EMA: state keys, validated loading, scratch arrays."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..nn.parameter import Parameter


def param_keys(params: Sequence[Parameter]) -> list[str]:
    """The key under which each parameter's state is saved.

    Each parameter's dotted name when every name is set and unique (``model.parameters()`` sets
    them), so checkpoints are readable and survive a reordering; otherwise its index in
    ``params``, the only identity an unnamed parameter has.
    """
    names = [p.name for p in params]
    if all(names) and len(set(names)) == len(names):
        return names
    return [str(i) for i in range(len(params))]


def load_into(targets: dict[str, np.ndarray], state: Mapping[str, Any], owner: str) -> None:
    """Copy ``state[k]`` into ``targets[k]`` in place, for every key.

    ``state`` may be any mapping, e.g. the ``NpzFile`` that ``np.load`` returns. Raises
    ValueError naming the missing or unexpected keys, or the first key whose shape differs;
    nothing is modified unless the whole mapping fits.
    """
    missing = sorted(set(targets) - set(state))
    unexpected = sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"{owner}.load_state_dict: missing keys {missing[:8]}, "
                         f"unexpected keys {unexpected[:8]}")
    values = {key: np.asarray(state[key]) for key in targets}
    for key, target in targets.items():
        if values[key].shape != target.shape:
            raise ValueError(f"{owner}.load_state_dict: {key!r} has shape {values[key].shape}, "
                             f"expected {target.shape}")
    for key, target in targets.items():
        target[...] = values[key]


class Scratch:
    """Reusable work arrays, so that an update allocates nothing after the first step.

    One flat array per (dtype, slot), grown to the largest array it has been asked to shadow;
    ``get(like, slot)`` returns a view of it shaped like ``like``. Two different slots never
    alias, so an update may hold slot 0 and slot 1 at the same time.
    """

    def __init__(self) -> None:
        self._flat: dict[tuple[np.dtype, int], np.ndarray] = {}

    def get(self, like: np.ndarray, slot: int) -> np.ndarray:
        """A work array with ``like``'s shape and dtype; its contents are garbage."""
        key = (like.dtype, slot)
        flat = self._flat.get(key)
        if flat is None or flat.size < like.size:
            flat = self._flat[key] = np.empty(like.size, like.dtype)
        return flat[:like.size].reshape(like.shape)
