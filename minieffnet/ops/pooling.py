"""Global average pooling (N, C, H, W) -> (N, C), forward and backward.

EfficientNet pools once before the classifier and, inside every MBConv, as the *squeeze* of
squeeze-and-excitation (:mod:`minieffnet.ops.squeeze_excite` calls this op). The mean over
H*W is a pure memory-bound reduction; the Numba path reads each (n, c) plane once, in
parallel over the N*C planes, accumulating in float64 so float32 inputs lose no precision to
long sums. The backward spreads each gradient evenly: ``dx[n, c, :, :] = dout[n, c] / (H*W)``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_float_array, check_shape


def _mean_hw_ref(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=(2, 3))


@njit(cache=True, parallel=True, fastmath={"reassoc"})
def _mean_hw_kernel(x, out):
    """out[r] = mean of row r of the 2-D array x; one parallel task per row (an (n, c) plane)."""
    for r in prange(x.shape[0]):
        acc = 0.0
        for i in range(x.shape[1]):
            acc += x[r, i]
        out[r] = acc / x.shape[1]


def _mean_hw_numba(x: np.ndarray) -> np.ndarray:
    N, C, H, W = x.shape
    out = np.empty((N, C), dtype=x.dtype)
    _mean_hw_kernel(np.ascontiguousarray(x).reshape(N * C, H * W), out.reshape(N * C))
    return out


def global_avg_pool_forward(x: np.ndarray):
    """Mean over the spatial axes.

    x: (N, C, H, W), float32 or float64. Returns ``(out (N, C), cache)``.
    """
    check_float_array("global_avg_pool_forward", "x", x, 4)
    out = backend.pick(_mean_hw_ref, _mean_hw_numba)(x)
    return out, (x.shape, x.dtype)


def global_avg_pool_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of the mean: dout (N, C) -> dx (N, C, H, W), ``dout / (H*W)`` everywhere."""
    shape, dtype = cache
    check_float_array("global_avg_pool_backward", "dout", dout)
    check_shape("global_avg_pool_backward", "dout", dout, shape[:2])
    dx = np.empty(shape, dtype=dtype)
    dx[...] = (dout / (shape[2] * shape[3]))[:, :, None, None]
    return dx
