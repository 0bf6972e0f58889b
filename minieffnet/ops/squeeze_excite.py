"""Squeeze-and-excitation (Hu et al., 2018), as one op, forward and backward.

EfficientNet's MBConv (Tan & Le, 2019, after MnasNet) reweights its expanded channels by

    s = mean_hw(x)                 (N, C)    squeeze
    z = s @ w1.T + b1              (N, Cr)   reduce, w1 (Cr, C)
    a = swish(z)
    e = a @ w2.T + b2              (N, C)    expand, w2 (C, Cr)
    g = sigmoid(e)                           gate
    out = x * g[:, :, None, None]            excite

torchvision's ``SqueezeExcitation`` does the two FCs as 1×1 convs with weights (Cr, C, 1, 1)
and (C, Cr, 1, 1), with SiLU and Sigmoid: our (Cr, C) and (C, Cr) are those reshaped.

Backward: out depends on x directly (through the scale) and through s, so

    dg = sum_hw(dout * x)  -> sigmoid' -> fc2 -> swish' -> fc1 -> ds
    dx = dout * g[:, :, None, None] + ds[:, :, None, None] / (H*W)

The FCs work on (N, C) vectors and stay NumPy (BLAS), reusing :mod:`.linear` and the
sigmoid/swish ops of :mod:`.activations`. The cost is in the passes over the (N, C, H, W)
tensors, which are memory-bound; the Numba path makes each of them a single parallel sweep
over the N*C planes: forward reads x twice (squeeze via :func:`global_avg_pool_forward`, then
the scale) and writes out once; backward reads dout and x once for ``dg`` and dout once more
for ``dx``: ``ds`` needs ``dg`` first, so two passes is the minimum.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_float_array, check_same_dtype, check_shape
from .activations import sigmoid_backward, sigmoid_forward, swish_backward, swish_forward
from .linear import linear_backward, linear_forward
from .pooling import global_avg_pool_forward


# --- NumPy reference -----------------------------------------------------------------------

def _scale_shift_ref(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    return x * scale[:, :, None, None] + shift[:, :, None, None]


def _sum_hw_product_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=(2, 3))


# --- Numba fast path: one parallel task per (n, c) plane, planes flattened to rows ---------

@njit(cache=True, parallel=True)
def _scale_shift_kernel(x, scale, shift, out):
    """out[r, :] = x[r, :] * scale[r] + shift[r] for every row r = (n, c)."""
    for r in prange(x.shape[0]):
        s = scale[r]
        t = shift[r]
        for i in range(x.shape[1]):
            out[r, i] = x[r, i] * s + t


@njit(cache=True, parallel=True, fastmath={"reassoc"})
def _sum_hw_product_kernel(a, b, out):
    """out[r] = sum_i a[r, i] * b[r, i], accumulated in float64."""
    for r in prange(a.shape[0]):
        acc = 0.0
        for i in range(a.shape[1]):
            acc += a[r, i] * b[r, i]
        out[r] = acc


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> C-contiguous (N*C, H*W) rows (a view when a is already contiguous)."""
    N, C, H, W = a.shape
    return np.ascontiguousarray(a).reshape(N * C, H * W)


def _scale_shift_numba(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=x.dtype)
    _scale_shift_kernel(_rows(x), np.ascontiguousarray(scale).reshape(-1),
                      np.ascontiguousarray(shift).reshape(-1), _rows(out))
    return out


def _sum_hw_product_numba(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[:2], dtype=a.dtype)
    _sum_hw_product_kernel(_rows(a), _rows(b), out.reshape(-1))
    return out


# --- Public op -----------------------------------------------------------------------------

def _check_inputs(op: str, x, w1, b1, w2, b2) -> None:
    check_float_array(op, "x", x, 4)
    for name, arr, ndim in (("w1", w1, 2), ("b1", b1, 1), ("w2", w2, 2), ("b2", b2, 1)):
        check_float_array(op, name, arr, ndim)
    check_same_dtype(op, x=x, w1=w1, b1=b1, w2=w2, b2=b2)
    C, Cr = x.shape[1], w1.shape[0]
    check_shape(op, "w1", w1, (Cr, C))
    check_shape(op, "b1", b1, (Cr,))
    check_shape(op, "w2", w2, (C, Cr))
    check_shape(op, "b2", b2, (C,))


def squeeze_excite_forward(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray,
                           b2: np.ndarray):
    """Squeeze-and-excitation: ``x`` times a per-(sample, channel) gate computed from x.

    x: (N, C, H, W); w1: (Cr, C); b1: (Cr,); w2: (C, Cr); b2: (C,); one float dtype.
    Returns ``(out (N, C, H, W), cache)``.
    """
    _check_inputs("squeeze_excite_forward", x, w1, b1, w2, b2)
    s, _ = global_avg_pool_forward(x)
    z, fc1 = linear_forward(s, w1, b1)
    a, act = swish_forward(z)
    e, fc2 = linear_forward(a, w2, b2)
    g, gate = sigmoid_forward(e)
    # The excite is the backward's per-plane affine map ``dout * g + ds / HW`` with no shift.
    out = backend.pick(_scale_shift_ref, _scale_shift_numba)(x, g, np.zeros_like(g))
    return out, (x, g, fc1, act, fc2, gate)


def squeeze_excite_backward(dout: np.ndarray, cache):
    """Gradients of :func:`squeeze_excite_forward`.

    dout: (N, C, H, W). Returns ``(dx (N, C, H, W), dw1 (Cr, C), db1 (Cr,), dw2 (C, Cr),
    db2 (C,))``.
    """
    x, g, fc1, act, fc2, gate = cache
    check_float_array("squeeze_excite_backward", "dout", dout)
    check_shape("squeeze_excite_backward", "dout", dout, x.shape)
    dout = dout.astype(x.dtype, copy=False)
    dg = backend.pick(_sum_hw_product_ref, _sum_hw_product_numba)(dout, x)
    de = sigmoid_backward(dg, gate)
    da, dw2, db2 = linear_backward(de, fc2)
    dz = swish_backward(da, act)
    ds, dw1, db1 = linear_backward(dz, fc1)
    hw = x.shape[2] * x.shape[3]
    dx = backend.pick(_scale_shift_ref, _scale_shift_numba)(dout, g, ds / hw)
    return dx, dw1, db1, dw2, db2
