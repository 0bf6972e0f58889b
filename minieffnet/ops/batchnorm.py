"""BatchNorm2d (Ioffe & Szegedy, 2015), forward and backward, NCHW.

Per channel ``c``, over the ``m = N * H * W`` values of the batch:

    mean = sum(x) / m,   var = sum((x - mean)**2) / m          (biased: used to normalise)
    xhat = (x - mean) / sqrt(var + eps),   out = gamma * xhat + beta

Training mode normalises with these batch statistics and updates the running ones in place,
with PyTorch's momentum convention (exactly like ``torch.nn.BatchNorm2d``)::

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased)

The paper / TensorFlow write the same update with the weight on the *old* value, so TF's
``momentum=0.99`` is PyTorch's ``momentum=0.01`` (and TF 0.9 is PyTorch 0.1).
Eval mode normalises with the running statistics and leaves them untouched.

Backward. Because mean and var depend on every x of the channel, the training-mode input
gradient is not just ``dout * gamma / std``; collecting the three paths gives

    dx = gamma * inv_std / m * (m * dout - sum(dout) - xhat * sum(dout * xhat)),

    dgamma = sum(dout * xhat),   dbeta = sum(dout)            (sums over N, H, W)

In eval mode the statistics are constants and ``dx = gamma * inv_std * dout``.

The cache holds the *input* and the per-channel ``mean`` / ``inv_std`` (float64), not
``xhat``: the backward recomputes ``xhat`` on the fly, which saves an activation-sized array
per layer at the cost of one subtract and multiply per element. All cache entries are plain
arrays, so a forward under one backend can be followed by a backward under the other.

``activation="swish"`` fuses MBConv's BN -> swish into the same passes (forward: statistics,
then normalise-and-activate; backward: the swish derivative is applied on the fly to ``dout``,
recomputing the BN output from x), so the pair moves about 40 % fewer bytes than two ops and
caches one array instead of two.

NaN / infinity in the input is caught without an extra pass over it: any such value makes its
channel's batch mean non-finite (training), or its channel's output sum non-finite (eval; the
Numba kernel accumulates that sum while writing the output).

Where things are: the NumPy reference and the public ops here; the normalise-and-activate
step and the argument checks in :mod:`._bn_epilogue` (the fused depthwise op applies the
same step); the Numba kernels in :mod:`._batchnorm_numba`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import backend
from ._batchnorm_numba import backward_numba, normalize_numba, stats_numba
from ._bn_epilogue import AXES, check_params, eval_statistics, normalize_ref, per_channel
from ._checks import check_finite, check_float_array, check_shape
from .activations import swish_backward_ref

_OP = "batchnorm2d_forward"


class BatchNormCache(NamedTuple):
    """What the backward needs. x: (N, C, H, W); gamma, beta: (C,); mean, inv_std: (C,)
    float64; activation: None or "swish" (applied after the affine map)."""

    x: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    training: bool
    activation: str | None


# --- NumPy reference -----------------------------------------------------------------------

# The normalisation itself is _bn_epilogue.normalize_ref, shared with the fused depthwise op.

def _stats_ref(x):
    # Statistics in float64 whatever x's dtype; np.var is two-pass, so free of cancellation.
    return x.mean(axis=AXES, dtype=np.float64), x.var(axis=AXES, dtype=np.float64)


def _backward_ref(dout, x, gamma, beta, mean, inv_std, training, activation):
    xhat = (x - per_channel(mean)) * per_channel(inv_std)
    if activation == "swish":  # through the activation first, recomputing its input
        y = (per_channel(gamma) * xhat + per_channel(beta)).astype(x.dtype)
        dout = swish_backward_ref(dout, y)
    dbeta = dout.sum(axis=AXES, dtype=np.float64)
    dgamma = (dout * xhat).sum(axis=AXES)
    scale = per_channel(gamma * inv_std)
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        dx = scale / m * (m * dout - per_channel(dbeta) - xhat * per_channel(dgamma))
    else:
        dx = scale * dout
    return dx, dgamma, dbeta


# --- Public ops ----------------------------------------------------------------------------

def batchnorm2d_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                        running_mean: np.ndarray, running_var: np.ndarray, *,
                        training: bool = True, momentum: float = 0.1, eps: float = 1e-5,
                        activation: str | None = None):
    """Batch normalisation over N, H, W for each channel, like ``torch.nn.BatchNorm2d``.

    x: (N, C, H, W), float32 or float64. gamma, beta, running_mean, running_var: (C,), the
    dtype of x. training: normalise with the batch statistics and update ``running_mean`` /
    ``running_var`` IN PLACE (``running = (1 - momentum) * running + momentum * batch``, the
    variance unbiased); otherwise normalise with the running statistics and leave them as
    they are. momentum follows PyTorch (TF/paper 0.99 == PyTorch 0.01). activation: None, or
    "swish" to return ``swish(BN(x))`` in the same pass (the fused path of MBConv's
    BN -> swish: one read of x and one write instead of two of each, and no cached BN output;
    equal to :func:`~minieffnet.ops.swish_forward` of the unfused result).

    Returns ``(out, cache)``: out (N, C, H, W) in x's dtype; cache a :class:`BatchNormCache`.
    Raises ValueError for a wrong rank, dtype or channel count, mixed dtypes, a single value
    per channel in training (``N * H * W == 1``), or NaN / infinity in x, in the output or in
    the updated running variance; the running statistics change only when it returns.
    """
    check_params(_OP, x, gamma, beta, running_mean, running_var, activation)
    N, _, H, W = x.shape
    m = N * H * W
    if training:
        if m < 2:
            raise ValueError(f"{_OP}: training needs more than one value per channel to "
                             f"estimate a variance, got N*H*W = {m} for shape {x.shape}")
        # Non-finite input is reported just below as a ValueError, not first as NumPy's
        # "invalid value" RuntimeWarning.
        with np.errstate(invalid="ignore"):
            mean, var = backend.pick(_stats_ref, stats_numba)(x)
        check_finite(_OP, "input", mean)
        # The new running statistics, in x's dtype: a batch whose variance overflows it (inputs
        # near float32's limit) is refused here rather than leaving inf in running_var.
        with np.errstate(over="ignore"):
            new_mean = ((1 - momentum) * running_mean + momentum * mean).astype(x.dtype)
            new_var = ((1 - momentum) * running_var
                       + momentum * var * (m / (m - 1))).astype(x.dtype)
        check_finite(_OP, "batch variance", new_var)
        inv_std = 1.0 / np.sqrt(var + eps)
    else:
        mean, inv_std = eval_statistics(running_mean, running_var, eps)
    with np.errstate(invalid="ignore", over="ignore"):
        out, sums = backend.pick(normalize_ref, normalize_numba)(x, gamma, beta, mean, inv_std,
                                                                 activation)
    check_finite(_OP, "input", sums)
    if training:  # only once the forward has succeeded: a refused batch changes nothing
        running_mean[...] = new_mean
        running_var[...] = new_var
    return out, BatchNormCache(x, gamma, beta, mean, inv_std, bool(training), activation)


def batchnorm2d_backward(dout: np.ndarray, cache: BatchNormCache):
    """Gradients of :func:`batchnorm2d_forward`, in the mode the forward ran in.

    dout: (N, C, H, W) like the forward's output. Returns ``(dx, dgamma, dbeta)``: dx
    (N, C, H, W), dgamma and dbeta (C,), all in the dtype of x. In training mode dx includes
    the paths through the batch mean and variance; in eval mode it is ``gamma * inv_std * dout``.
    With a fused activation, dout is the gradient at the activation's output.
    """
    x, gamma, beta, mean, inv_std, training, activation = cache
    check_float_array("batchnorm2d_backward", "dout", dout)
    check_shape("batchnorm2d_backward", "dout", dout, x.shape)
    dx, dgamma, dbeta = backend.pick(_backward_ref, backward_numba)(
        dout, x, gamma, beta, mean, inv_std, training, activation)
    dtype = x.dtype
    return (dx.astype(dtype, copy=False), dgamma.astype(dtype, copy=False),
            dbeta.astype(dtype, copy=False))
