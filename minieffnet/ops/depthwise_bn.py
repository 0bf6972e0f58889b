"""Depthwise convolution -> BatchNorm -> swish in evaluation mode, as one pass.

In evaluation BatchNorm uses its running statistics, so it is a fixed per-channel map
``y = (h - mean) * gamma / sqrt(var + eps) + beta``. MBConv's depthwise stage
(depthwise conv -> BN -> swish) can then finish each output tile of the convolution in
cache, before it is stored: one write of the stage's output instead of a write, a read and a
second write. (In training the statistics are those of the whole batch, which the
convolution has not finished computing when a tile is stored, so training runs the two ops.)

The result equals :func:`~minieffnet.ops.depthwise_conv2d_forward` followed by
:func:`~minieffnet.ops.batchnorm2d_forward` with ``training=False``: the NumPy reference is
literally that composition, and the Numba kernel (in :mod:`._depthwise_numba`, beside the
plain convolution's) applies BatchNorm's own per-channel constants and arithmetic
(:mod:`._bn_epilogue`) to each tile. The backward recomputes the convolution's output from
the cached input and runs the two ops' backward passes, so gradients in evaluation mode
(saliency, input gradients) work as before. The op has no CUDA kernel: under the ``"cuda"``
backend its forward runs the Numba kernel, its backward the two ops (the convolution's on
the GPU).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ._bn_epilogue import (FusedEvalCache, check_params, constants_in_dtype, eval_statistics,
                           normalize_ref)
from ._checks import check_finite
from ._depthwise_numba import forward_bn_eval_numba
from .batchnorm import BatchNormCache, batchnorm2d_backward
from .depthwise import (check_inputs, depthwise_conv2d_backward, depthwise_conv2d_forward,
                        forward_ref)

_OP = "depthwise_bn_eval_forward"


def _fused_ref(x, w, stride, pads, out_hw, gamma, beta, mean, inv_std, activation):
    h = forward_ref(x, w, stride, pads, out_hw)
    return normalize_ref(h, gamma, beta, mean, inv_std, activation)


def _fused_numba(x, w, stride, pads, out_hw, gamma, beta, mean, inv_std, activation):
    bn = np.stack(constants_in_dtype(x, gamma, beta, mean, inv_std))
    return forward_bn_eval_numba(x, w, stride, pads, out_hw, bn, activation == "swish")


def depthwise_bn_eval_forward(x: np.ndarray, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                              running_mean: np.ndarray, running_var: np.ndarray, *,
                              stride: int = 1, padding: str = "symmetric", eps: float = 1e-5,
                              activation: str | None = "swish"):
    """``act(BN_eval(depthwise(x, w)))`` in one pass over the output.

    x: (N, C, H, W); w: (C, 1, k, k); gamma, beta, running_mean, running_var: (C,); all one
    float dtype. stride, padding: as :func:`~minieffnet.ops.depthwise_conv2d_forward`; eps,
    activation (None or "swish"): as :func:`~minieffnet.ops.batchnorm2d_forward`. The running
    statistics are read, never updated.

    Returns ``(out (N, C, Ho, Wo), cache)``. Raises ValueError for malformed input and
    NonFiniteError for NaN / infinity in the output.
    """
    stride, pads, out_hw = check_inputs(_OP, x, w, stride, padding)
    check_params(_OP, x, gamma, beta, running_mean, running_var, activation)
    x = np.ascontiguousarray(x)
    mean, inv_std = eval_statistics(running_mean, running_var, eps)
    with np.errstate(invalid="ignore", over="ignore"):
        out, sums = backend.pick(_fused_ref, _fused_numba)(x, w, stride, pads, out_hw, gamma,
                                                            beta, mean, inv_std, activation)
    check_finite(_OP, "output", sums)
    return out, FusedEvalCache(x, w, stride, padding, gamma, beta, mean, inv_std, activation)


def depthwise_bn_eval_backward(dout: np.ndarray, cache: FusedEvalCache):
    """Gradients of :func:`depthwise_bn_eval_forward`.

    dout: (N, C, Ho, Wo). Returns ``(dx (N, C, H, W), dw (C, 1, k, k), dgamma (C,),
    dbeta (C,))``, each in x's dtype; the BatchNorm part is evaluation mode's
    (``dx = gamma * inv_std * dout`` through the fixed statistics).
    """
    x, w, stride, padding, gamma, beta, mean, inv_std, activation = cache
    h, conv_cache = depthwise_conv2d_forward(x, w, stride, padding)  # recomputed
    dh, dgamma, dbeta = batchnorm2d_backward(
        dout, BatchNormCache(h, gamma, beta, mean, inv_std, False, activation))
    dx, dw = depthwise_conv2d_backward(dh, conv_cache)
    return dx, dw, dgamma, dbeta
