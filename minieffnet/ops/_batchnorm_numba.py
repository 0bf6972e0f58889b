"""Numba CPU kernels of BatchNorm2d (+ fused swish): statistics, normalisation, backward.

The maths, the NumPy reference and the public ops live in :mod:`minieffnet.ops.batchnorm`;
this module is the ``"numba"`` backend's implementation. Two kernel families: channel-major
(one thread per channel) for large images, sample-major for small ones
(:data:`ROWS_BELOW_PIXELS`); the host functions at the end choose between them.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ._bn_epilogue import constants_in_dtype
from ._fastmath import FMA, cast_like, sigmoid, swish_grad, zero_like

# --- Large images: channel-major (prange over channels: each thread owns one) --------------
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


# --- Small images: sample-major ------------------------------------------------------------
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


# --- Host entry points (NumPy in, NumPy out) -----------------------------------------------

def _small(x: np.ndarray) -> bool:
    return x.shape[2] * x.shape[3] < ROWS_BELOW_PIXELS


def stats_numba(x):
    """Per-channel batch mean and biased variance of x (N, C, H, W): ``(mean, var)``, (C,)
    float64 each."""
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


def normalize_numba(x, gamma, beta, mean, inv_std, activation):
    """:func:`._bn_epilogue.normalize_ref` by the Numba kernels: ``(out, sums)``, sums per
    channel or per sample (finite exactly when out is)."""
    out = np.empty(x.shape, dtype=x.dtype)
    constants = constants_in_dtype(x, gamma, beta, mean, inv_std)
    if not _small(x):
        sums = np.empty(x.shape[1])
        _normalize_kernel(_as_ncp(x), *constants, activation == "swish", _as_ncp(out), sums)
    else:
        sums = np.empty(x.shape[0], dtype=x.dtype)
        _normalize_rows_kernel(_rows_of(x), *_per_value(x.shape[2] * x.shape[3], *constants),
                               activation == "swish", _rows_of(out), sums)
    return out, sums


def backward_numba(dout, x, gamma, beta, mean, inv_std, training, activation):
    """``(dx, dgamma, dbeta)`` of BatchNorm (+ swish) in the mode given by ``training``;
    arguments as the reference's in :mod:`minieffnet.ops.batchnorm`."""
    N, C, H, W = x.shape
    dout = dout.astype(x.dtype, copy=False)
    dx = np.empty(x.shape, dtype=x.dtype)
    hi, lo, scale, beta_t = constants_in_dtype(x, gamma, beta, mean, inv_std)
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
