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
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_finite, check_float_array, check_same_dtype, check_shape
from ._fastmath import FMA, cast_like, sigmoid, swish_grad, zero_like
from .activations import _swish_backward_ref, _swish_forward_ref

_OP = "batchnorm2d_forward"
_AXES = (0, 2, 3)  # the axes a channel's statistics run over


ACTIVATIONS = (None, "swish")


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


def _per_channel(v: np.ndarray) -> np.ndarray:
    """View a (C,) vector as (1, C, 1, 1) so it broadcasts against NCHW."""
    return v.reshape(1, -1, 1, 1)


# --- NumPy reference -----------------------------------------------------------------------

def _stats_ref(x):
    # Statistics in float64 whatever x's dtype; np.var is two-pass, so free of cancellation.
    return x.mean(axis=_AXES, dtype=np.float64), x.var(axis=_AXES, dtype=np.float64)


def _normalize_ref(x, gamma, beta, mean, inv_std, activation):
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
    out = (_per_channel(gamma) * xhat + _per_channel(beta)).astype(x.dtype)
    if activation == "swish":
        out = _swish_forward_ref(out)
    return out, out.sum(axis=_AXES, dtype=np.float64)


def _backward_ref(dout, x, gamma, beta, mean, inv_std, training, activation):
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
    if activation == "swish":  # through the activation first, recomputing its input
        y = (_per_channel(gamma) * xhat + _per_channel(beta)).astype(x.dtype)
        dout = _swish_backward_ref(dout, y)
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
# Arrays are C-contiguous (N, C, H*W) so the innermost loop walks contiguous memory. Sums are
# accumulated in float64 scalars, also for float32 data; the forward's elementwise work runs
# in x's dtype (per-channel constants are passed in it), so float32 loops vectorise 16 wide.
# ``fastmath={"reassoc"}`` lets LLVM split those sums across vector lanes; ``FMA`` lets it
# fuse multiply-adds (see :mod:`._fastmath`).

@njit(cache=True, parallel=True, fastmath={"reassoc", *FMA})
def _stats_kernel(x, mean, var):
    N, C, P = x.shape
    m = N * P
    for c in prange(C):
        # One-pass statistics of the data shifted by one of its own values. The shift is
        # within a few standard deviations of the mean, so sum(d*d) - sum(d)**2/m does not
        # cancel catastrophically even when |mean| >> std (the unshifted formula would).
        shift = np.float64(x[0, c, 0])
        s1 = 0.0
        s2 = 0.0
        for n in range(N):
            for i in range(P):
                d = x[n, c, i] - shift
                s1 += d
                s2 += d * d
        mean[c] = shift + s1 / m
        var[c] = max((s2 - s1 * s1 / m) / m, 0.0)


@njit(cache=True, parallel=True, fastmath={"reassoc", *FMA})
def _normalize_kernel(x, mean_hi, mean_lo, scale, beta, swish, out, sums):
    """out = act((x - mean) * scale + beta) per channel; sums[c] = the channel's sum of out,
    the NaN/inf detector, accumulated while each value is in a register."""
    N, C, P = x.shape
    for c in prange(C):
        hi, lo, a, b = mean_hi[c], mean_lo[c], scale[c], beta[c]
        s = 0.0
        for n in range(N):
            # Row by row, with a sum in x's dtype: a float64 accumulator (or per-element
            # indexing of the 3-D arrays) stops LLVM from vectorising the row, and measured
            # 2x slower with the swish.
            xr, yr = x[n, c], out[n, c]
            row = zero_like(a)
            for i in range(P):
                y = ((xr[i] - hi) - lo) * a + b
                if swish:
                    y = y * sigmoid(y)
                yr[i] = y
                row += y
            s += row
        sums[c] = s


@njit(cache=True, parallel=True, fastmath={"reassoc", *FMA})
def _backward_kernel(dout, x, inv_std, gamma, mean_hi, mean_lo, scale_t, beta_t, swish,
                     training, dx, dgamma, dbeta):
    # Both passes run in x's dtype like the forward (row sums, constants cast once per
    # channel); the float64 versions measured 2x slower with the swish.
    N, C, P = x.shape
    m = N * P
    for c in prange(C):
        hi, lo, at, bt = mean_hi[c], mean_lo[c], scale_t[c], beta_t[c]
        # Pass 1: sum(g) and sum(g * (x - mean)), g the gradient at the BN output (through
        # the swish, whose input is recomputed as in the forward). g goes into dx, which
        # pass 2 overwrites in place: one store is cheaper than a second sigmoid.
        sd = 0.0
        sdx = 0.0
        for n in range(N):
            xr, gr, dr = x[n, c], dout[n, c], dx[n, c]
            row_d = zero_like(at)
            row_dx = zero_like(at)
            for i in range(P):
                d = (xr[i] - hi) - lo
                g = gr[i]
                if swish:
                    g = g * swish_grad(d * at + bt)
                dr[i] = g
                row_d += g
                row_dx += g * d
            sd += row_d
            sdx += row_dx
        sdxhat = sdx * inv_std[c]
        dbeta[c] = sd
        dgamma[c] = sdxhat
        # Pass 2: the compact formula expanded as dx = a*g + k1*(x - mean) + k0; in eval
        # mode k1 = k0 = 0, so one loop serves both modes.
        a = gamma[c] * inv_std[c]
        k1 = cast_like(-a * inv_std[c] * sdxhat / m if training else 0.0, at)
        k0 = cast_like(-a * sd / m if training else 0.0, at)
        for n in range(N):
            xr, dr = x[n, c], dx[n, c]
            for i in range(P):
                dr[i] = at * dr[i] + k1 * ((xr[i] - hi) - lo) + k0


def _as_ncp(a: np.ndarray) -> np.ndarray:
    """C-contiguous (N, C, H*W) view of an NCHW array (a copy only if a is not contiguous)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], a.shape[2] * a.shape[3])


def _in_dtype_of(x, gamma, beta, mean, inv_std):
    """The per-channel constants of the normalisation in x's dtype: mean as hi + lo,
    gamma * inv_std, beta.

    The mean is split in two because float32(mean) alone is off by up to half an ulp of the
    mean, which is a large fraction of the std when |mean| >> std. ``x - hi`` is exact for x
    near the mean (Sterbenz), and subtracting ``lo`` then restores the float64 accuracy.
    """
    hi = mean.astype(x.dtype)
    return (hi, (mean - hi).astype(x.dtype), (gamma * inv_std).astype(x.dtype),
            np.ascontiguousarray(beta, dtype=x.dtype))


# --- Numba fast path for small images: sample-major ---------------------------------------
# With a few pixels per channel (EfficientNet's last stages: 4x4, 2x2), a channel's values are
# N runs of P = 4..16 floats, and the per-run overhead (loop set-up, a horizontal add for the
# row sum) made the channel-major kernels above 4x slower per value than on large images.
# These kernels walk each sample's whole (C * P) row instead, with the per-channel constants
# repeated to one per value, so the inner loop is long and contiguous and has no reduction:
# each thread sums into its own (C * P) accumulators, folded to per-channel sums afterwards.

ROWS_BELOW_PIXELS = 128  # use the sample-major kernels below this many pixels per channel


@njit(cache=True, parallel=True, fastmath=FMA)
def _stats_rows_kernel(x, shift, s1, s2):
    """Per thread t: s1[t] += x[n] - shift, s2[t] += (x[n] - shift)**2 over its samples n.
    x: (N, L); shift, s1[t], s2[t]: (L,) float64."""
    N, L = x.shape
    T = s1.shape[0]
    for t in prange(T):
        for n in range(t * N // T, (t + 1) * N // T):
            xr = x[n]
            for j in range(L):
                d = xr[j] - shift[j]
                s1[t, j] += d
                s2[t, j] += d * d


@njit(cache=True, parallel=True, fastmath={"reassoc", *FMA})
def _normalize_rows_kernel(x, hi, lo, scale, beta, swish, out, sums):
    """out[n] = act(((x[n] - hi) - lo) * scale + beta); sums[n] = the row's sum (the NaN/inf
    detector). x, out: (N, L); the constants: (L,) in x's dtype."""
    N, L = x.shape
    for n in prange(N):
        xr, yr = x[n], out[n]
        row = zero_like(scale[0])
        for j in range(L):
            y = ((xr[j] - hi[j]) - lo[j]) * scale[j] + beta[j]
            if swish:
                y = y * sigmoid(y)
            yr[j] = y
            row += y
        sums[n] = row


@njit(cache=True, parallel=True, fastmath=FMA)
def _backward_sums_rows_kernel(dout, x, hi, lo, scale, beta, swish, g, sd, sdx):
    """Pass 1 of the backward, sample-major: g = the gradient at the BN output (through the
    swish), stored; per thread t, sd[t] += g and sdx[t] += g * (x - mean)."""
    N, L = x.shape
    T = sd.shape[0]
    for t in prange(T):
        for n in range(t * N // T, (t + 1) * N // T):
            xr, gr, dr = x[n], dout[n], g[n]
            for j in range(L):
                d = (xr[j] - hi[j]) - lo[j]
                v = gr[j]
                if swish:
                    v = v * swish_grad(d * scale[j] + beta[j])
                dr[j] = v
                sd[t, j] += v
                sdx[t, j] += v * d


@njit(cache=True, parallel=True, fastmath=FMA)
def _backward_dx_rows_kernel(x, hi, lo, scale, k1, k0, dx):
    """Pass 2, in place on dx (holding g): dx = scale * g + k1 * (x - mean) + k0."""
    N, L = x.shape
    for n in prange(N):
        xr, dr = x[n], dx[n]
        for j in range(L):
            dr[j] = scale[j] * dr[j] + k1[j] * ((xr[j] - hi[j]) - lo[j]) + k0[j]


def _rows_of(a: np.ndarray) -> np.ndarray:
    """C-contiguous (N, C*H*W) view of an NCHW array (a copy only if a is not contiguous)."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], -1)


def _per_value(P: int, *constants: np.ndarray) -> list[np.ndarray]:
    """Each (C,) constant repeated to (C * P,): one per value of a sample's row."""
    return [np.repeat(c, P) for c in constants]


def _channel_sums(acc: np.ndarray, C: int) -> np.ndarray:
    """(T, C * P) per-thread accumulators -> (C,) per-channel totals."""
    return acc.sum(axis=0).reshape(C, -1).sum(axis=1)


def _small(x: np.ndarray) -> bool:
    return x.shape[2] * x.shape[3] < ROWS_BELOW_PIXELS


def _stats_fast(x):
    N, C, H, W = x.shape
    if not _small(x):
        mean, var = np.empty(C), np.empty(C)
        _stats_kernel(_as_ncp(x), mean, var)
        return mean, var
    # As in _stats_kernel, shift each channel by one of its own values against cancellation.
    rows = _rows_of(x)
    shift = x[0, :, 0, 0].astype(np.float64)
    T = numba.get_num_threads()
    s1, s2 = np.zeros((T, rows.shape[1])), np.zeros((T, rows.shape[1]))
    _stats_rows_kernel(rows, *_per_value(H * W, shift), s1, s2)
    m = N * H * W
    s1, s2 = _channel_sums(s1, C), _channel_sums(s2, C)
    return shift + s1 / m, np.maximum((s2 - s1 * s1 / m) / m, 0.0)


def _normalize_fast(x, gamma, beta, mean, inv_std, activation):
    out = np.empty(x.shape, dtype=x.dtype)
    constants = _in_dtype_of(x, gamma, beta, mean, inv_std)
    if not _small(x):
        sums = np.empty(x.shape[1])
        _normalize_kernel(_as_ncp(x), *constants, activation == "swish", _as_ncp(out), sums)
    else:
        sums = np.empty(x.shape[0], dtype=x.dtype)
        _normalize_rows_kernel(_rows_of(x), *_per_value(x.shape[2] * x.shape[3], *constants),
                               activation == "swish", _rows_of(out), sums)
    return out, sums


def _backward_fast(dout, x, gamma, beta, mean, inv_std, training, activation):
    N, C, H, W = x.shape
    dout = dout.astype(x.dtype, copy=False)
    dx = np.empty(x.shape, dtype=x.dtype)
    hi, lo, scale, beta_t = _in_dtype_of(x, gamma, beta, mean, inv_std)
    swish = activation == "swish"
    if not _small(x):
        dgamma, dbeta = np.empty(C), np.empty(C)
        _backward_kernel(_as_ncp(dout), _as_ncp(x), inv_std, gamma.astype(np.float64), hi, lo,
                         scale, beta_t, swish, training, _as_ncp(dx), dgamma, dbeta)
        return dx, dgamma, dbeta
    P, T = H * W, numba.get_num_threads()
    rows, drows = _rows_of(x), _rows_of(dx)
    hi_v, lo_v, scale_v, beta_v = _per_value(P, hi, lo, scale, beta_t)
    sd, sdx = np.zeros((T, C * P)), np.zeros((T, C * P))
    _backward_sums_rows_kernel(_rows_of(dout), rows, hi_v, lo_v, scale_v, beta_v, swish, drows,
                               sd, sdx)
    dbeta = _channel_sums(sd, C)
    dgamma = _channel_sums(sdx, C) * inv_std
    # The same compact formula as _backward_kernel's pass 2, per channel, then per value.
    m = N * P
    a = gamma * inv_std
    k1 = -a * inv_std * dgamma / m if training else np.zeros(C)
    k0 = -a * dbeta / m if training else np.zeros(C)
    _backward_dx_rows_kernel(rows, hi_v, lo_v, scale_v,
                             *_per_value(P, k1.astype(x.dtype), k0.astype(x.dtype)), drows)
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
    per channel in training (``N * H * W == 1``), or NaN / infinity in x.
    """
    _check_forward_inputs(x, gamma, beta, running_mean, running_var)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{_OP}: activation must be one of {ACTIVATIONS}, got {activation!r}")
    N, _, H, W = x.shape
    m = N * H * W
    if training:
        if m < 2:
            raise ValueError(f"{_OP}: training needs more than one value per channel to "
                             f"estimate a variance, got N*H*W = {m} for shape {x.shape}")
        # Non-finite input is reported just below as a ValueError, not first as NumPy's
        # "invalid value" RuntimeWarning.
        with np.errstate(invalid="ignore"):
            mean, var = backend.pick(_stats_ref, _stats_fast)(x)
        check_finite(_OP, "input", mean)  # before the running statistics are touched
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        inv_std = 1.0 / np.sqrt(var + eps)
    else:
        # float64 copies: the running arrays may be updated in place before the backward.
        mean = running_mean.astype(np.float64)
        inv_std = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    with np.errstate(invalid="ignore", over="ignore"):
        out, sums = backend.pick(_normalize_ref, _normalize_fast)(x, gamma, beta, mean, inv_std,
                                                                  activation)
    check_finite(_OP, "input", sums)
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
    dx, dgamma, dbeta = backend.pick(_backward_ref, _backward_fast)(
        dout, x, gamma, beta, mean, inv_std, training, activation)
    dtype = x.dtype
    return (dx.astype(dtype, copy=False), dgamma.astype(dtype, copy=False),
            dbeta.astype(dtype, copy=False))
