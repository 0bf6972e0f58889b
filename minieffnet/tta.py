"""Test-time augmentation: average a network's logits over flipped and shifted views.

    >>> logits = tta_logits(model, x, level=1)   # x: (N, 3, H, W) -> (N, classes)

Levels, as airbench94 (Jordan, 2024) defines them (``tta_level``):

====  ==========================================================================================
0     the image alone: ``f(x)``
1     mirror: ``0.5 * f(x) + 0.5 * f(flip(x))``, the flip TTA of David Page's DAWNBench ResNet
2     mirror and translate: ``0.5 * mirror(x) + 0.25 * mirror(up_left(x)) + 0.25 *
      mirror(down_right(x))``, each translation a 1-pixel shift of the image padded by
      reflection (6 forward passes)
====  ==========================================================================================

The training augmentation (random crops of a 4-pixel zero-padded image, random flips) makes
the network nearly invariant to these views, so their average is a cheap ensemble.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

TTA_LEVELS = (0, 1, 2)
# Forward passes per image at each level (evaluation time grows in proportion).
TTA_VIEWS = {0: 1, 1: 2, 2: 6}


def hflip(x: np.ndarray) -> np.ndarray:
    """Mirror images left-right: (N, C, H, W) -> a C-contiguous (N, C, H, W) copy."""
    return np.ascontiguousarray(x[..., ::-1])


def shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate images by ``(dy, dx)`` pixels (each -1, 0 or 1), filling the uncovered edge
    by reflection (airbench's ``F.pad(x, 1, 'reflect')`` then a crop): (N, C, H, W) -> same.

    ``shift(x, 1, 1)[..., i, j] == x[..., i - 1, j - 1]`` inside the image: the content moves
    down and right.
    """
    _, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    return np.ascontiguousarray(padded[:, :, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w])


def tta_logits(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, level: int,
               plain: np.ndarray | None = None) -> np.ndarray:
    """Logits averaged over the views of ``level`` (module docstring).

    forward: the network in eval mode, (N, 3, H, W) -> (N, classes). x: its input batch.
    plain: ``forward(x)`` if already computed (the caller's plain evaluation), so that level
    1 costs one extra pass, not two. Returns (N, classes) in the logits' dtype.
    """
    if level not in TTA_LEVELS:
        raise ValueError(f"tta level must be one of {TTA_LEVELS}, got {level!r}")
    if plain is None:
        plain = forward(x)
    if level == 0:
        return plain

    def mirror(images, logits=None):
        logits = forward(images) if logits is None else logits
        return 0.5 * logits + 0.5 * forward(hflip(images))

    mirrored = mirror(x, plain)
    if level == 1:
        return mirrored
    translated = 0.5 * mirror(shift(x, -1, -1)) + 0.5 * mirror(shift(x, 1, 1))
    return 0.5 * mirrored + 0.5 * translated
