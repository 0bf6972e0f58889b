"""Fully connected layer ``out = x @ w.T + b``, forward and backward.

The weight uses PyTorch's ``(out_features, in_features)`` layout, so torchvision's classifier
weights load unchanged. Both directions are single matrix products, and BLAS runs those
faster than any hand-written loop, so this op calls BLAS under both backends and has no Numba
kernel.

    dx = dout @ w        dw = dout.T @ x        db = sum_n dout[n]
"""
from __future__ import annotations

import numpy as np

from ._checks import check_float_array, check_shape, check_weights


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    """Affine map of each row of x.

    x: (N, D); w: (M, D); b: (M,) or None; one float dtype.
    Returns ``(out (N, M), cache)``.
    """
    op = "linear_forward"
    check_weights(op, x, w, b, 2, "features")
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(dout: np.ndarray, cache):
    """Gradients of :func:`linear_forward`.

    dout: (N, M). Returns ``(dx (N, D), dw (M, D), db (M,) or None)``; db is None when the
    forward had no bias.
    """
    x, w, has_bias = cache
    check_float_array("linear_backward", "dout", dout)
    check_shape("linear_backward", "dout", dout, (x.shape[0], w.shape[0]))
    d = dout.astype(x.dtype, copy=False)
    db = d.sum(axis=0) if has_bias else None
    return d @ w, d.T @ x, db
