"""Sigmoid and Swish (SiLU), forward and backward.

Swish (Ramachandran et al., 2017; the paper's activation) is ``swish(x) = x * sigmoid(x)`` and

    d swish / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x))).

The NumPy reference computes both without overflow for any finite input: ``sigmoid`` only
ever exponentiates ``-|x|`` (``exp(-|x|) <= 1``), choosing ``1 / (1 + z)`` or ``z / (1 + z)``
by the sign of x. The Numba path uses the branch-free ``1 / (1 + exp(-x))`` of
:mod:`._fastmath` instead, which vectorises: in compiled code ``exp(-x)`` overflowing to inf
gives exactly 0, with no warning and no NaN.

Swish's cache holds only its *input*: the backward recomputes the sigmoid, trading one
``exp`` for not storing a second activation-sized array (the "memory-efficient swish").
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_float_array, check_shape
from ._fastmath import FMA, sigmoid, swish_grad


# --- NumPy reference -----------------------------------------------------------------------

def _sigmoid_ref(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def swish_forward_ref(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid_ref(x)


def swish_backward_ref(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = _sigmoid_ref(x)
    return dout * s * (1 + x * (1 - s))


# --- Numba fast path (flat, parallel, one pass over memory) --------------------------------
# Arithmetic stays in the input's dtype: a Python literal such as ``1.0`` would promote every
# float32 operation to float64 (and to scalar code), so these kernels contain none.

@njit(cache=True, parallel=True, fastmath=FMA)
def _sigmoid_kernel(x, out):
    for i in prange(x.size):
        out[i] = sigmoid(x[i])


@njit(cache=True, parallel=True, fastmath=FMA)
def _swish_forward_kernel(x, out):
    for i in prange(x.size):
        out[i] = x[i] * sigmoid(x[i])


@njit(cache=True, parallel=True, fastmath=FMA)
def _swish_backward_kernel(dout, x, dx):
    for i in prange(x.size):
        dx[i] = dout[i] * swish_grad(x[i])


def _elementwise(kernel, *arrays: np.ndarray) -> np.ndarray:
    """Run a flat kernel over C-contiguous views and reshape the result like ``arrays[0]``."""
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = np.empty_like(flat[0])
    kernel(*flat, out)
    return out.reshape(arrays[0].shape)


def _sigmoid_numba(x):
    return _elementwise(_sigmoid_kernel, x)


def _swish_forward_numba(x):
    return _elementwise(_swish_forward_kernel, x)


def _swish_backward_numba(dout, x):
    return _elementwise(_swish_backward_kernel, dout.astype(x.dtype, copy=False), x)


# --- Public ops ----------------------------------------------------------------------------

def sigmoid_forward(x: np.ndarray):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, elementwise.

    x: any shape, float32 or float64. Returns ``(out, cache)``, out like x.
    """
    check_float_array("sigmoid_forward", "x", x)
    out = backend.pick(_sigmoid_ref, _sigmoid_numba)(x)
    return out, out


def sigmoid_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of sigmoid: ``dx = dout * s * (1 - s)`` with ``s`` the cached output."""
    s = cache
    check_shape("sigmoid_backward", "dout", dout, s.shape)
    return (dout * s * (1 - s)).astype(s.dtype, copy=False)


def swish_forward(x: np.ndarray):
    """Swish / SiLU ``x * sigmoid(x)``, elementwise.

    x: any shape, float32 or float64. Returns ``(out, cache)``; cache is x itself.
    """
    check_float_array("swish_forward", "x", x)
    out = backend.pick(swish_forward_ref, _swish_forward_numba)(x)
    return out, x


def swish_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of swish, recomputing sigmoid from the cached input.

    dout: same shape as the forward input. Returns dx (dtype of the input).
    """
    x = cache
    check_shape("swish_backward", "dout", dout, x.shape)
    dx = backend.pick(swish_backward_ref, _swish_backward_numba)(dout, x)
    return dx.astype(x.dtype, copy=False)
