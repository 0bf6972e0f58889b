"""BatchNorm's normalise-and-activate step, shared by the ops that apply it.

Once the statistics are fixed (a training batch's, or the running ones in evaluation),
BatchNorm is a per-channel map, optionally followed by swish::

    out = act((x - mean) * inv_std * gamma + beta)

:func:`~minieffnet.ops.batchnorm2d_forward` applies it after computing the statistics;
:func:`~minieffnet.ops.depthwise_bn_eval_forward` applies it, with the running statistics, as
the epilogue of each depthwise convolution tile; :func:`~minieffnet.ops.conv_bn_eval_forward`
folds it into a convolution's weights. What they need lives here, so no op reaches into
another: the checks of BatchNorm's arguments, the evaluation statistics, the per-channel
constants the Numba kernels take, the NumPy reference of the map, and the fused ops' cache.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_float_array, check_same_dtype, check_shape
from .activations import swish_forward_ref

ACTIVATIONS = (None, "swish")
AXES = (0, 2, 3)  # the axes a channel's statistics run over


class FusedEvalCache(NamedTuple):
    """What a fused evaluation op's backward needs (convolution -> BatchNorm -> activation):
    the stage's input, the convolution's weights and geometry, and BatchNorm's parameters."""
    x: np.ndarray
    w: np.ndarray
    stride: int
    padding: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray      # float64 running mean, as BatchNorm's cache holds it
    inv_std: np.ndarray   # float64 1 / sqrt(running_var + eps)
    activation: str | None


def per_channel(v: np.ndarray) -> np.ndarray:
    """View a (C,) vector as (1, C, 1, 1) so it broadcasts against NCHW."""
    return v.reshape(1, -1, 1, 1)


def check_params(op: str, x, gamma, beta, running_mean, running_var, activation,
                 channels: int | None = None) -> None:
    """Validate BatchNorm's arguments: x (N, C, H, W); gamma, beta and the running statistics
    (C,) in x's dtype, or (channels,) when BatchNorm follows a convolution of x to
    ``channels`` channels; activation in :data:`ACTIVATIONS`. Raises ValueError naming
    ``op``."""
    check_float_array(op, "x", x, ndim=4)
    params = {"gamma": gamma, "beta": beta, "running_mean": running_mean,
              "running_var": running_var}
    for name, p in params.items():
        check_float_array(op, name, p, ndim=1)
    check_same_dtype(op, x=x, **params)
    for name, p in params.items():
        check_shape(op, name, p, (x.shape[1] if channels is None else channels,))
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: activation must be one of {ACTIVATIONS}, got {activation!r}")


def eval_statistics(running_mean: np.ndarray, running_var: np.ndarray, eps: float):
    """Evaluation mode's ``(mean, inv_std)``, (C,) float64 each: copies, because the running
    arrays may be updated in place before the backward reads the cache."""
    return running_mean.astype(np.float64), 1.0 / np.sqrt(running_var.astype(np.float64) + eps)


def constants_in_dtype(x, gamma, beta, mean, inv_std):
    """The per-channel constants of the normalisation in x's dtype: mean as hi + lo,
    gamma * inv_std, beta.

    The mean is split in two because float32(mean) alone is off by up to half an ulp of the
    mean, which is a large fraction of the std when |mean| >> std. ``x - hi`` is exact for x
    near the mean (Sterbenz), and subtracting ``lo`` then restores the float64 accuracy.
    """
    hi = mean.astype(x.dtype)
    return (hi, (mean - hi).astype(x.dtype), (gamma * inv_std).astype(x.dtype),
            np.ascontiguousarray(beta, dtype=x.dtype))


def normalize_ref(x, gamma, beta, mean, inv_std, activation):
    """The NumPy map: x (N, C, H, W) -> ``(out in x's dtype, per-channel sums of out)``; the
    sums (float64, (C,)) are finite exactly when out is, the ops' NaN / infinity check."""
    xhat = (x - per_channel(mean)) * per_channel(inv_std)
    out = (per_channel(gamma) * xhat + per_channel(beta)).astype(x.dtype)
    if activation == "swish":
        out = swish_forward_ref(out)
    return out, out.sum(axis=AXES, dtype=np.float64)
