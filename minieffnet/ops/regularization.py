"""Dropout and drop connect (stochastic depth): random masks, forward and backward.

Both are *inverted*: kept values are scaled by ``1 / (1 - p)`` during training so that the
expected output equals the input and evaluation is the identity (no rescaling at test time).

* Dropout (Srivastava et al., 2014) zeroes each element independently with probability p;
  EfficientNet applies it once, before the classifier (0.2 for B0 up to 0.5 for B7).
* Drop connect, as the EfficientNet code calls it, is stochastic depth (Huang et al., 2016):
  during training a residual block's branch is dropped for a whole *sample*, so the block is
  the identity for that sample. One Bernoulli(1 - p) draw per sample n scales all of x[n];
  torchvision's ``StochasticDepth(p, mode="row")``.

Randomness comes only from the ``numpy.random.Generator`` passed in (same seed, same mask).
Masks are drawn in x's dtype and already include the ``1 / (1 - p)`` scale, so the backward
is a single product ``dx = dout * mask``. The cache is ``(mask, shape, dtype)``, with
``mask = None`` when the op was the identity (evaluation, or p == 0). The work is one draw and
one product, memory-bound in NumPy already, so these ops have no Numba path.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_float_array, check_probability, check_shape


def _check_inputs(op: str, x, p, rng) -> None:
    check_float_array(op, "x", x)
    check_probability(op, p)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{op}: rng must be a numpy.random.Generator, got {type(rng).__name__}")


def _keep_mask(shape: tuple, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """Inverted-dropout mask of ``shape``: ``1/(1-p)`` with probability ``1-p``, else 0."""
    mask = (rng.random(shape, dtype=dtype) >= p).astype(dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


def _masked_forward(x: np.ndarray, p: float, rng, training: bool, mask_shape: tuple):
    """Apply a fresh mask of ``mask_shape`` (broadcast over x), or pass x through unchanged."""
    if not training or p == 0:
        return x, (None, x.shape, x.dtype)
    mask = _keep_mask(mask_shape, p, rng, x.dtype)
    return x * mask, (mask, x.shape, x.dtype)


def _masked_backward(op: str, dout: np.ndarray, cache) -> np.ndarray:
    mask, shape, dtype = cache
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, shape)
    dout = dout.astype(dtype, copy=False)
    return dout if mask is None else dout * mask


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, training: bool = True):
    """Inverted dropout: keep each element with probability ``1 - p``, scaled by ``1/(1-p)``.

    x: any shape, float32 or float64. p: in [0, 1). rng: numpy.random.Generator.
    Returns ``(out like x, cache)``; the identity (out is x, no draw) when not training or
    p == 0.
    """
    _check_inputs("dropout_forward", x, p, rng)
    return _masked_forward(x, p, rng, training, x.shape)


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of dropout: dout (like x) -> ``dx = dout * mask``."""
    return _masked_backward("dropout_backward", dout, cache)


def drop_connect_forward(x: np.ndarray, p: float, rng: np.random.Generator,
                         training: bool = True):
    """Per-sample stochastic depth: ``out[n] = x[n] * keep[n] / (1 - p)``, keep ~ Bernoulli(1-p).

    x: (N, ...) with at least one axis, the batch first (a residual branch, (N, C, H, W)).
    p: in [0, 1). rng: numpy.random.Generator.
    Returns ``(out like x, cache)``; the identity when not training or p == 0.
    """
    op = "drop_connect_forward"
    _check_inputs(op, x, p, rng)
    if x.ndim == 0:
        raise ValueError(f"{op}: x must have a batch axis, got a 0-dimensional array")
    return _masked_forward(x, p, rng, training, (x.shape[0],) + (1,) * (x.ndim - 1))


def drop_connect_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of drop connect: dout (like x) -> ``dx = dout * mask[n]`` per sample."""
    return _masked_backward("drop_connect_backward", dout, cache)
