"""Input validation shared by the ops: every error names the op and what was wrong."""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import NonFiniteError  # noqa: F401  (raised here, imported from here by ops)

FLOAT_DTYPES = (np.float32, np.float64)
STRIDES = (1, 2)


def check_float_array(op: str, name: str, x, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` if it is a float32/float64 ndarray of rank ``ndim``, else raise ValueError."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{op}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{op}: {name} must be float32 or float64, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {x.shape}")
    return x


def check_same_dtype(op: str, **arrays: np.ndarray) -> None:
    """Raise ValueError unless all given arrays share one dtype (no silent up-casting)."""
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in dtypes.items())
        raise ValueError(f"{op}: arrays must share one dtype, got {listed}")


def check_shape(op: str, name: str, x: np.ndarray, shape: tuple) -> None:
    """Raise ValueError unless ``x.shape == shape``."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(x.shape)}")


def check_weights(op: str, x, w, b, ndim: int, unit: str) -> None:
    """Validate the arguments of a weighted op: ``x`` and ``w`` of rank ``ndim``, ``b`` (O,) or
    None, one dtype, and ``w.shape[1]`` matching ``x.shape[1]`` (``unit`` names that axis)."""
    check_float_array(op, "x", x, ndim)
    check_float_array(op, "w", w, ndim)
    if b is not None:
        check_float_array(op, "b", b, 1)
    check_same_dtype(op, x=x, w=w, b=b)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{op}: w expects {w.shape[1]} input {unit}, x has {x.shape[1]} "
                         f"(x {x.shape}, w {w.shape})")
    if b is not None:
        check_shape(op, "b", b, (w.shape[0],))


def check_finite(op: str, name: str, x: np.ndarray) -> None:
    """Raise NonFiniteError if ``x`` holds NaN or infinity (call on small arrays or reductions)."""
    if not np.all(np.isfinite(x)):
        raise NonFiniteError(f"{op}: {name} contains NaN or infinity")


def check_stride(op: str, stride) -> int:
    """Return ``stride`` as an int if it is the integer 1 or 2 (Python or NumPy), else raise
    ValueError. ``1.0`` and ``True`` are refused: they would pass ``in (1, 2)`` and then
    break slicing or silently mean 1."""
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral):
        raise ValueError(f"{op}: stride must be the integer 1 or 2, got {stride!r}")
    if stride not in STRIDES:
        raise ValueError(f"{op}: stride must be 1 or 2, got {stride!r}")
    return int(stride)


def check_probability(op: str, p: float) -> None:
    """Raise ValueError unless ``0 <= p < 1``."""
    if not (0.0 <= float(p) < 1.0):
        raise ValueError(f"{op}: drop probability must be in [0, 1), got {p}")
