"""Parameter: an array the optimiser updates, with its gradient."""
from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable array.

    data: the values (float32 for training, float64 for gradient checks).
    grad: filled by ``Module.backward``; same shape and dtype as data, or None before.
    name: dotted name inside its model, set by ``named_parameters``.
    decay: whether weight decay applies. False for BatchNorm scale/shift and biases,
        which the paper's and torchvision's recipes exclude from decay.
    """

    def __init__(self, data: np.ndarray, decay: bool = True, name: str = ""):
        self.data = data
        self.grad: np.ndarray | None = None
        self.decay = decay
        self.name = name

    @property
    def shape(self) -> tuple:
        return self.data.shape

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"
