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

NaN / infinity in the input is caught without an extra pass over it: any such value makes its
channel's batch mean non-finite (training), or its channel's output sum non-finite (eval; the
Numba kernel accumulates that sum while writing the output).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_finite, check_float_array, check_same_dtype, check_shape

_OP = "batchnorm2d_forward"
_AXES = (0, 2, 3)  # the axes a channel's statistics run over


class BatchNormCache(NamedTuple):
    """What the backward needs. x: (N, C, H, W); gamma: (C,); mean, inv_std: (C,) float64."""

    x: np.ndarray
    gamma: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    training: bool


def _per_channel(v: np.ndarray) -> np.ndarray:
    """View a (C,) vector as (1, C, 1, 1) so it broadcasts against NCHW."""
    return v.reshape(1, -1, 1, 1)


# --- NumPy reference -----------------------------------------------------------------------

def _normalize_ref(x, gamma, beta, mean, inv_std):
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
    return (_per_channel(gamma) * xhat + _per_channel(beta)).astype(x.dtype)


def _train_ref(x, gamma, beta, eps):
    # Statistics in float64 whatever x's dtype; np.var is two-pass, so free of cancellation.
    mean = x.mean(axis=_AXES, dtype=np.float64)
    var = x.var(axis=_AXES, dtype=np.float64)
    return _normalize_ref(x, gamma, beta, mean, 1.0 / np.sqrt(var + eps)), mean, var


def _eval_ref(x, gamma, beta, mean, inv_std):
    out = _normalize_ref(x, gamma, beta, mean, inv_std)
    return out, out.sum(axis=_AXES, dtype=np.float64)


def _backward_ref(dout, x, gamma, mean, inv_std, training):
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
    dbeta = dout.sum(axis=_AXES, dtype=np.float64)
    dgamma = (dout * xhat).sum(axis=_AXES)
    scale = _per_channel(gamma * inv_std)
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        dx = scale / m * (m * dout - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    else:
        dx = scale * dout
    return dx, dgamma, dbeta


# --- Numba fast path (prange over channels: each thread owns one channel, race-free) -------
# Arrays are C-contiguous (N, C, H*W) so the innermost loop walks contiguous memory; every
# accumulator is a float64 scalar, also for float32 data.

@njit(cache=True, parallel=True)
def _train_kernel(x, gamma, beta, eps, out, mean, var):
    N, C, P = x.shape
    m = N * P
    for c in prange(C):
        # Pass 1: one-pass statistics of the data shifted by one of its own values. The shift
        # is within a few standard deviations of the mean, so sum(d*d) - sum(d)**2/m does not
        # cancel catastrophically even when |mean| >> std (the unshifted formula would).
        shift = np.float64(x[0, c, 0])
        s1 = 0.0
        s2 = 0.0
        for n in range(N):
            for i in range(P):
                d = x[n, c, i] - shift
                s1 += d
                s2 += d * d
        mu = shift + s1 / m
        v = max((s2 - s1 * s1 / m) / m, 0.0)
        mean[c] = mu
        var[c] = v
        # Pass 2: normalise, subtracting the mean first (not x*scale + shift) for precision.
        scale = gamma[c] / np.sqrt(v + eps)
        b = np.float64(beta[c])
        for n in range(N):
            for i in range(P):
                out[n, c, i] = (x[n, c, i] - mu) * scale + b


@njit(cache=True, parallel=True)
def _eval_kernel(x, gamma, beta, mean, inv_std, out, sums):
    N, C, P = x.shape
    for c in prange(C):
        mu = mean[c]
        scale = gamma[c] * inv_std[c]
        b = np.float64(beta[c])
        s = 0.0
        for n in range(N):
            for i in range(P):
                y = (x[n, c, i] - mu) * scale + b
                out[n, c, i] = y
                s += y  # the NaN/inf detector, for free while the value is in a register
        sums[c] = s


@njit(cache=True, parallel=True)
def _backward_kernel(dout, x, gamma, mean, inv_std, training, dx, dgamma, dbeta):
    N, C, P = x.shape
    m = N * P
    for c in prange(C):
        mu = mean[c]
        istd = inv_std[c]
        # Pass 1: sum(dout) and sum(dout * (x - mean)); xhat is recomputed, never stored.
        sd = 0.0
        sdx = 0.0
        for n in range(N):
            for i in range(P):
                g = np.float64(dout[n, c, i])
                sd += g
                sdx += g * (x[n, c, i] - mu)
        sdxhat = sdx * istd
        dbeta[c] = sd
        dgamma[c] = sdxhat
        # Pass 2: the compact formula expanded as dx = a*dout + b*(x - mean) + k; in eval
        # mode b = k = 0, so one branch-free loop serves both modes.
        a = gamma[c] * istd
        b = -a * istd * sdxhat / m if training else 0.0
        k = -a * sd / m if training else 0.0
        for n in range(N):
            for i in range(P):
                dx[n, c, i] = a * dout[n, c, i] + b * (x[n, c, i] - mu) + k


def _as_ncp(a: np.ndarray) -> np.ndarray:
    """C-contiguous (N, C, H*W) view of an NCHW array (a copy only if a is not contiguous)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3])


def _train_fast(x, gamma, beta, eps):
    C = x.shape[1]
    out = np.empty(x.shape, dtype=x.dtype)
    mean, var = np.empty(C), np.empty(C)
    _train_kernel(_as_ncp(x), gamma, beta, eps, _as_ncp(out), mean, var)
    return out, mean, var


def _eval_fast(x, gamma, beta, mean, inv_std):
    out = np.empty(x.shape, dtype=x.dtype)
    sums = np.empty(x.shape[1])
    _eval_kernel(_as_ncp(x), gamma, beta, mean, inv_std, _as_ncp(out), sums)
    return out, sums


def _backward_fast(dout, x, gamma, mean, inv_std, training):
    C = x.shape[1]
    dx = np.empty(x.shape, dtype=x.dtype)
    dgamma, dbeta = np.empty(C), np.empty(C)
    _backward_kernel(_as_ncp(dout.astype(x.dtype, copy=False)), _as_ncp(x), gamma, mean,
                     inv_std, training, _as_ncp(dx), dgamma, dbeta)
    return dx, dgamma, dbeta


# --- Public ops ----------------------------------------------------------------------------

def _check_forward_inputs(x, gamma, beta, running_mean, running_var):
    check_float_array(_OP, "x", x, ndim=4)
    params = {"gamma": gamma, "beta": beta, "running_mean": running_mean,
              "running_var": running_var}
    for name, p in params.items():
        check_float_array(_OP, name, p, ndim=1)
    check_same_dtype(_OP, x=x, **params)
    for name, p in params.items():
        check_shape(_OP, name, p, (x.shape[1],))  # one value per channel of x


def batchnorm2d_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                        running_mean: np.ndarray, running_var: np.ndarray, *,
                        training: bool = True, momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation over N, H, W for each channel, like ``torch.nn.BatchNorm2d``.

    x: (N, C, H, W), float32 or float64. gamma, beta, running_mean, running_var: (C,), the
    dtype of x. training: normalise with the batch statistics and update ``running_mean`` /
    ``running_var`` IN PLACE (``running = (1 - momentum) * running + momentum * batch``, the
    variance unbiased); otherwise normalise with the running statistics and leave them as
    they are. momentum follows PyTorch (TF/paper 0.99 == PyTorch 0.01).

    Returns ``(out, cache)``: out (N, C, H, W) in x's dtype; cache a :class:`BatchNormCache`.
    Raises ValueError for a wrong rank, dtype or channel count, mixed dtypes, a single value
    per channel in training (``N * H * W == 1``), or NaN / infinity in x.
    """
    _check_forward_inputs(x, gamma, beta, running_mean, running_var)
    N, _, H, W = x.shape
    m = N * H * W
    if training:
        if m < 2:
            raise ValueError(f"{_OP}: training needs more than one value per channel to "
                             f"estimate a variance, got N*H*W = {m} for shape {x.shape}")
        # Non-finite input is reported just below as a ValueError, not first as NumPy's
        # "invalid value" RuntimeWarning.
        with np.errstate(invalid="ignore"):
            out, mean, var = backend.pick(_train_ref, _train_fast)(x, gamma, beta, eps)
        check_finite(_OP, "input", mean)  # before the running statistics are touched
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        inv_std = 1.0 / np.sqrt(var + eps)
    else:
        # float64 copies: the running arrays may be updated in place before the backward.
        mean = running_mean.astype(np.float64)
        inv_std = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        with np.errstate(invalid="ignore"):
            out, sums = backend.pick(_eval_ref, _eval_fast)(x, gamma, beta, mean, inv_std)
        check_finite(_OP, "input", sums)
    return out, BatchNormCache(x, gamma, mean, inv_std, bool(training))


def batchnorm2d_backward(dout: np.ndarray, cache: BatchNormCache):
    """Gradients of :func:`batchnorm2d_forward`, in the mode the forward ran in.

    dout: (N, C, H, W) like the forward's output. Returns ``(dx, dgamma, dbeta)``: dx
    (N, C, H, W), dgamma and dbeta (C,), all in the dtype of x. In training mode dx includes
    the paths through the batch mean and variance; in eval mode it is ``gamma * inv_std * dout``.
    """
    x, gamma, mean, inv_std, training = cache
    check_float_array("batchnorm2d_backward", "dout", dout)
    check_shape("batchnorm2d_backward", "dout", dout, x.shape)
    dx, dgamma, dbeta = backend.pick(_backward_ref, _backward_fast)(
        dout, x, gamma, mean, inv_std, training)
    dtype = x.dtype
    return (dx.astype(dtype, copy=False), dgamma.astype(dtype, copy=False),
            dbeta.astype(dtype, copy=False))
