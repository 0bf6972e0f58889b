"""Weight initialisation as in the paper's TensorFlow code (and torchvision's EfficientNet).

* Convolutions: normal with std ``sqrt(2 / fan_out)``, ``fan_out = k * k * out / groups``
  (He/"fan_out" init, ``kernel_initializer`` of the reference implementation).
* Dense layers: uniform in ``±1 / sqrt(out_features)``.
* Biases zero; BatchNorm scale one, shift zero.

Every draw goes through an explicit ``numpy.random.Generator``: the same seed, the same model.
"""
from __future__ import annotations

import numpy as np


def conv_weight(rng: np.random.Generator, shape: tuple, groups: int = 1,
                dtype=np.float32) -> np.ndarray:
    """Conv weight of ``shape = (out, in/groups, k, k)`` drawn N(0, 2 / fan_out)."""
    out, _, kh, kw = shape
    fan_out = kh * kw * out // groups
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(dtype)


def dense_weight(rng: np.random.Generator, shape: tuple, dtype=np.float32) -> np.ndarray:
    """Dense weight of ``shape = (out, in)`` drawn U(-1/sqrt(out), 1/sqrt(out))."""
    bound = 1.0 / np.sqrt(shape[0])
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
