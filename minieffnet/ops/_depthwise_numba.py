"""Numba CPU kernels of the depthwise convolution: the plain forward and backward of
:mod:`minieffnet.ops.depthwise`, and the evaluation-mode forward that finishes each tile with
BatchNorm and swish for :mod:`minieffnet.ops.depthwise_bn`.

The maths, the NumPy reference and the public ops live in those two modules; this one is the
``"numba"`` backend's implementation, and everything in it works on one tile layout,
explained by the comment below. Callers pass validated, C-contiguous ``x`` and the geometry
from :func:`minieffnet.ops.padding.depthwise_geometry`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._fastmath import sigmoid

# Why the kernels do not simply loop over NCHW planes: EfficientNet's depthwise layers run on
# tiny images (4x4 and 2x2 in the late stages, with 5x5 kernels), where rows are 2-4 pixels
# long and a per-plane loop spends its time on loop overhead instead of arithmetic. So each
# parallel task takes a block of ``lanes`` channels and copies their planes, one image at a
# time, into a cache-resident *tile* that stores the channels side by side: the tile's row
# ``iy`` holds ``x[n, c0:c0+lanes, iy, ix]`` for every column ``ix`` in turn. Then every
# kernel tap (ky, kx) that lands inside the image is one contiguous multiply-add over the
# tile row -- ``(number of valid ox) * lanes`` elements, which LLVM vectorises -- with the
# weights repeated along the row so that each lane meets its own channel's weight.
#
# Stride 2 would make the input read of a tap a strided one; instead the tile stores each
# row's even columns first, then its odd ones ("phases"), so a tap's inputs are contiguous
# again. Padding is never materialised: each tap's range of output columns is clipped to the
# inputs that exist (_valid_range), and taps whose input row is padding are skipped.
#
# Parallel tasks are (group of images, block of channels) pairs. A task owns its channels'
# output, so the forward and dx need no synchronisation; dw sums over images, so each task
# keeps its own partial sum (one per image group) and the wrapper adds the few groups up.
# The number of groups depends only on the shapes, never on the thread count: the result is
# the same, bit for bit, on any machine.

_TASKS = 16  # aim for at least this many parallel tasks (image groups x channel blocks)


def _lanes(C: int, H: int, W: int) -> int:
    """Channels per tile. Small images want many lanes, so that a tap's run is long enough to
    vectorise well; large ones want fewer, so that the tile stays in cache. Chosen from the
    B0 shapes timed with 8/16/32/64 lanes (benchmarks/RESULTS.md, "Earlier measurements").
    Never more lanes than channels (rounded up to 8), which would only multiply zeros."""
    lanes = 16 if H * W >= 256 else 32 if H * W >= 64 else 64
    return min(lanes, -(-C // 8) * 8)


def _partition(N: int, C: int, lanes: int) -> int:
    """How many image groups to split the batch into, so that groups x blocks >= _TASKS."""
    blocks = -(-C // lanes)
    return min(N, -(-_TASKS // blocks))


@njit(cache=True, inline="always")
def _valid_range(count, offset, stride, size):
    """Indices ``o`` in ``[0, count)`` with ``0 <= o*stride + offset < size``, as ``(lo, hi)``.

    Clips a loop to the taps that fall inside the input rather than in the zero padding
    (``lo == hi`` when none do). Floor division keeps it right for negative offsets.
    """
    lo = max(0, -(offset // stride))
    hi = min(count, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True)
def _column_taps(k, Wo, W, stride, pl):
    """Per kernel column kx: first valid output column, how many, and the tile column they read.

    Output column ox reads input column ``ix = ox*stride + kx - pl``; in a tile with
    ``stride`` phases that is column ``(ix % stride) * ceil(W / stride) + ix // stride``,
    which grows by one per ox -- the reason for the phases.
    """
    wq = (W + stride - 1) // stride
    first = np.empty(k, np.int64)
    count = np.empty(k, np.int64)
    col = np.empty(k, np.int64)
    for kx in range(k):
        d = kx - pl
        lo, hi = _valid_range(Wo, d, stride, W)
        first[kx], count[kx] = lo, hi - lo
        col[kx] = (d % stride) * wq + lo + d // stride
    return first, count, col


@njit(cache=True, inline="always")
def _task(task, C, N, lanes, groups):
    """Task ``task``'s channels ``c0 .. c0+nc-1`` and images ``n0 .. n1-1``, and its group."""
    blocks = (C + lanes - 1) // lanes
    g, b = task // blocks, task % blocks
    per_group = (N + groups - 1) // groups
    c0 = b * lanes
    return g, c0, min(lanes, C - c0), g * per_group, min(N, (g + 1) * per_group)


# Numba checks every *signed* index for negative wraparound (``a[-1]``), and that branch
# stops LLVM from vectorising a loop whose start is only known at run time. The three helpers
# below therefore index with unsigned integers; everything else stays in plain int64.

@njit(cache=True, inline="always")
def _strided_copy(dst, d0, dstep, src, s0, sstep, n):
    """``dst[d0 + m*dstep] = src[s0 + m*sstep]`` for ``m < n``."""
    d0, dstep, s0, sstep = np.uint64(d0), np.uint64(dstep), np.uint64(s0), np.uint64(sstep)
    for m in range(np.uint64(n)):
        dst[d0 + m * dstep] = src[s0 + m * sstep]


@njit(cache=True, inline="always")
def _tap_forward(out, o0, wrep, w0, xt, i0, n):
    """One tap along a tile row: ``out[o0+q] += wrep[w0+q] * xt[i0+q]`` for ``q < n``."""
    o0, w0, i0 = np.uint64(o0), np.uint64(w0), np.uint64(i0)
    for q in range(np.uint64(n)):
        out[o0 + q] += wrep[w0 + q] * xt[i0 + q]


@njit(cache=True, inline="always")
def _tap_backward(dt, o0, wrep, dwrep, w0, xt, dxt, i0, n):
    """One tap, both gradients: dx gets ``w * dout`` back, dw's lanes collect ``dout * x``."""
    o0, w0, i0 = np.uint64(o0), np.uint64(w0), np.uint64(i0)
    for q in range(np.uint64(n)):
        g = dt[o0 + q]
        dxt[i0 + q] += wrep[w0 + q] * g
        dwrep[w0 + q] += g * xt[i0 + q]


# Moving planes into and out of a tile is a transpose, so one side is always read with a
# stride. Both helpers write contiguously and read strided: on the 16x16 and 32x32 images
# that measured 3-15x faster than the other way round (interleaved write streams, 4 KiB
# apart in a 32x32 image, thrash L1), and about the same on the small ones.
# Pixel ``(iy, ph + m*stride)`` of plane ``p0 + j`` lives in tile slot
# ``((iy*stride + ph) * wq + m) * lanes + j`` with ``wq = ceil(W / stride)``; for stride 1
# the rows follow each other, so callers pass the plane as one row of H*W pixels
# (_plane_rows) and every copy is as long as possible.

_RUN = 256  # pixels per chunk when storing, so the part of the tile being read stays in L1


@njit(cache=True, inline="always")
def _plane_rows(H, W, stride):
    """How _load_tile/_store_tile should see an H x W plane: stride 1 makes it one long row."""
    return (1, H * W) if stride == 1 else (H, W)


@njit(cache=True, inline="always")
def _load_tile(flat, p0, nc, rows, cols, stride, tile, lanes):
    """Gather planes ``p0 .. p0+nc-1`` of ``flat`` (an NCHW array, flattened) into ``tile``.

    One pixel at a time, all lanes at once: each copy fills a contiguous run of the tile.
    """
    wq = (cols + stride - 1) // stride
    for iy in range(rows):
        for ph in range(stride):
            for m in range((cols - ph + stride - 1) // stride):
                _strided_copy(tile, ((iy * stride + ph) * wq + m) * lanes, 1,
                              flat, p0 * rows * cols + iy * cols + ph + m * stride,
                              rows * cols, nc)


@njit(cache=True, inline="always")
def _store_tile(tile, flat, p0, nc, rows, cols, stride, lanes):
    """Scatter ``tile`` back to planes ``p0 .. p0+nc-1`` of ``flat``; inverse of _load_tile.

    One plane at a time, a run of up to _RUN pixels each: every copy writes contiguously.
    """
    wq = (cols + stride - 1) // stride
    for iy in range(rows):
        for ph in range(stride):
            count = (cols - ph + stride - 1) // stride
            for m0 in range(0, count, _RUN):
                for j in range(nc):
                    _strided_copy(flat, (p0 + j) * rows * cols + iy * cols + ph + m0 * stride,
                                  stride, tile, ((iy * stride + ph) * wq + m0) * lanes + j,
                                  lanes, min(_RUN, count - m0))


@njit(cache=True, inline="always")
def _repeat_weights(w, c0, nc, Wo, lanes):
    """``wrep[(ky*k + kx) * Wo*lanes + ox*lanes + j] = w[c0 + j, 0, ky, kx]``.

    Each tap's weights repeated along a tile row; lanes past nc stay zero.
    """
    kk = w.shape[2] * w.shape[3]
    wrep = np.zeros(kk * Wo * lanes, w.dtype)
    w_flat = w.reshape(w.size)
    for t in range(kk):
        # Gather the block's weights of tap t once (a strided read of w), then copy them
        # along the row: contiguous copies, which vectorise.
        row = t * Wo * lanes
        _strided_copy(wrep, row, 1, w_flat, c0 * kk + t, kk, nc)
        for ox in range(1, Wo):
            _strided_copy(wrep, row + ox * lanes, 1, wrep, row, 1, lanes)
    return wrep



@njit(cache=True, inline="always")
def _plan(x, w, Ho, Wo, stride, pl, lanes):
    """What every task of a kernel shares: the row lengths ``(xrow, orow)`` of the input and
    output tiles, how an input plane is seen ``(rows, cols)`` (:func:`_plane_rows`), and the
    column taps ``(first, count, col)`` (:func:`_column_taps`), as ``(sizes, taps)``."""
    H, W = x.shape[2], x.shape[3]
    rows, cols = _plane_rows(H, W, stride)
    sizes = (stride * ((W + stride - 1) // stride) * lanes, Wo * lanes, rows, cols)
    return sizes, _column_taps(w.shape[2], Wo, W, stride, pl)


@njit(cache=True, inline="always")
def _forward_task(x, w, task, Ho, Wo, sizes, lanes, groups):
    """Forward task ``task``: its channels ``c0 .. c0+nc-1`` and images ``n0 .. n1-1``
    (:func:`_task`), an input tile, an output tile and the repeated weights, as
    ``(c0, nc, n0, n1, xt, ot, wrep)``. The input tile is zeroed once: lanes past nc (a
    partial last block) stay zero and are never stored."""
    xrow, orow = sizes[0], sizes[1]
    _, c0, nc, n0, n1 = _task(task, x.shape[1], x.shape[0], lanes, groups)
    return (c0, nc, n0, n1, np.zeros(x.shape[2] * xrow, x.dtype), np.empty(Ho * orow, x.dtype),
            _repeat_weights(w, c0, nc, Wo, lanes))


@njit(cache=True, inline="always")
def _convolve_image(x_flat, p0, nc, xt, ot, wrep, sizes, first, count, col, H, Ho, k, stride,
                    pt, lanes):
    """Output tile ``ot`` of planes ``p0 .. p0+nc-1`` (one image, one channel block): load
    the input planes into the tile ``xt``, then one contiguous multiply-add per valid tap."""
    xrow, orow, rows, cols = sizes
    _load_tile(x_flat, p0, nc, rows, cols, stride, xt, lanes)
    ot[:] = 0
    for oy in range(Ho):
        iy0 = oy * stride - pt
        ky_lo, ky_hi = _valid_range(k, iy0, 1, H)
        for ky in range(ky_lo, ky_hi):
            for kx in range(k):
                o0 = first[kx] * lanes
                _tap_forward(ot, oy * orow + o0, wrep, (ky * k + kx) * orow + o0,
                             xt, (iy0 + ky) * xrow + col[kx] * lanes, count[kx] * lanes)


@njit(cache=True, parallel=True, fastmath={"contract"})
def _forward_kernel(x, w, out, stride, pt, pl, lanes, groups):
    """out = depthwise(x, w), one (image group, channel block) task per prange iteration."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    sizes, (first, count, col) = _plan(x, w, Ho, Wo, stride, pl, lanes)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for task in prange(groups * ((C + lanes - 1) // lanes)):
        c0, nc, n0, n1, xt, ot, wrep = _forward_task(x, w, task, Ho, Wo, sizes, lanes, groups)
        for n in range(n0, n1):
            _convolve_image(x_flat, n * C + c0, nc, xt, ot, wrep, sizes, first, count, col, H,
                            Ho, w.shape[2], stride, pt, lanes)
            _store_tile(ot, out_flat, n * C + c0, nc, 1, Ho * Wo, 1, lanes)


@njit(cache=True, inline="always")
def _normalize_tile(ot, npix, bn, swish, acc):
    """Evaluation BatchNorm (and swish) on a finished output tile, in BatchNorm's own arithmetic
    (``_batchnorm_numba._normalize_kernel``): lane j's ``((v - hi) - lo) * scale + beta``, with
    bn = (4, lanes) rows hi, lo, scale, beta. ``acc[j]`` sums lane j's results (NaN check)."""
    lanes = np.uint64(bn.shape[1])
    hi, lo, scale, beta = bn[0], bn[1], bn[2], bn[3]
    for p in range(np.uint64(npix)):
        for j in range(lanes):
            y = ((ot[p * lanes + j] - hi[j]) - lo[j]) * scale[j] + beta[j]
            if swish:
                y = y * sigmoid(y)
            ot[p * lanes + j] = y
            acc[j] += y


@njit(cache=True, parallel=True, fastmath={"contract"})
def _forward_bn_eval_kernel(x, w, out, stride, pt, pl, lanes, groups, bn, swish, sums):
    """:func:`_forward_kernel` with each tile going through evaluation BatchNorm (+ swish)
    before it is stored: bn (4, C) rows mean hi, mean lo, scale, beta; sums[task] gets the
    task's output sum."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    sizes, (first, count, col) = _plan(x, w, Ho, Wo, stride, pl, lanes)
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    for task in prange(groups * ((C + lanes - 1) // lanes)):
        c0, nc, n0, n1, xt, ot, wrep = _forward_task(x, w, task, Ho, Wo, sizes, lanes, groups)
        bn_lanes = np.zeros((4, lanes), x.dtype)  # lanes past nc: all zero, output 0
        bn_lanes[:, :nc] = bn[:, c0:c0 + nc]
        acc = np.zeros(lanes, x.dtype)
        for n in range(n0, n1):
            _convolve_image(x_flat, n * C + c0, nc, xt, ot, wrep, sizes, first, count, col, H,
                            Ho, w.shape[2], stride, pt, lanes)
            _normalize_tile(ot, Ho * Wo, bn_lanes, swish, acc)
            _store_tile(ot, out_flat, n * C + c0, nc, 1, Ho * Wo, 1, lanes)
        sums[task] = acc.sum()


@njit(cache=True, parallel=True, fastmath={"contract"})
def _backward_kernel(dout, x, w, dx, dw_parts, stride, pt, pl, lanes):
    # dx and dw in one pass over the taps: both read dout at the same place, so fusing them
    # reads dout (and x) from memory once instead of twice.
    N, C, H, W = x.shape
    k = w.shape[2]
    Ho, Wo = dout.shape[2], dout.shape[3]
    groups = dw_parts.shape[0]
    (xrow, orow, rows, cols), (first, count, col) = _plan(x, w, Ho, Wo, stride, pl, lanes)
    x_flat, dx_flat, dout_flat = x.reshape(x.size), dx.reshape(dx.size), dout.reshape(dout.size)
    for task in prange(groups * ((C + lanes - 1) // lanes)):
        g, c0, nc, n0, n1 = _task(task, C, N, lanes, groups)
        xt = np.zeros(H * xrow, x.dtype)
        dxt = np.empty_like(xt)
        dt = np.zeros(Ho * orow, x.dtype)
        dwrep = np.zeros(k * k * orow, x.dtype)  # dw per (tap, ox, lane); folded over ox below
        wrep = _repeat_weights(w, c0, nc, Wo, lanes)
        for n in range(n0, n1):
            _load_tile(x_flat, n * C + c0, nc, rows, cols, stride, xt, lanes)
            _load_tile(dout_flat, n * C + c0, nc, 1, Ho * Wo, 1, dt, lanes)
            dxt[:] = 0
            for oy in range(Ho):
                iy0 = oy * stride - pt
                ky_lo, ky_hi = _valid_range(k, iy0, 1, H)
                for ky in range(ky_lo, ky_hi):
                    for kx in range(k):
                        o0 = first[kx] * lanes
                        _tap_backward(dt, oy * orow + o0, wrep, dwrep, (ky * k + kx) * orow + o0,
                                      xt, dxt, (iy0 + ky) * xrow + col[kx] * lanes,
                                      count[kx] * lanes)
            _store_tile(dxt, dx_flat, n * C + c0, nc, rows, cols, stride, lanes)
        for j in range(nc):
            for t in range(k * k):
                acc = dwrep[t * orow + j]
                for ox in range(1, Wo):
                    acc += dwrep[t * orow + ox * lanes + j]
                dw_parts[g, c0 + j, t] = acc


# --- Host entry points (NumPy in, NumPy out) -----------------------------------------------

def forward_numba(x, w, stride, pads, out_hw):
    """out = depthwise(x, w): x (N, C, H, W) C-contiguous, w (C, 1, k, k), pads (top, bottom,
    left, right), out_hw (Ho, Wo) -> out (N, C, Ho, Wo) in x's dtype."""
    lanes = _lanes(*x.shape[1:])
    out = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    _forward_kernel(x, np.ascontiguousarray(w), out, stride, pads[0], pads[2], lanes,
                    _partition(x.shape[0], x.shape[1], lanes))
    return out


def forward_bn_eval_numba(x, w, stride, pads, out_hw, bn, swish):
    """``act(BN_eval(depthwise(x, w)))`` in one pass; arguments as :func:`forward_numba`, plus
    bn (4, C) (mean hi, mean lo, scale, beta of an evaluation BatchNorm, cast to x's dtype)
    and swish (bool). Returns ``(out, sums)``: sums holds per-task output sums, finite
    exactly when out is (the NaN / infinity check)."""
    lanes = _lanes(*x.shape[1:])
    out = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    groups = _partition(x.shape[0], x.shape[1], lanes)
    sums = np.zeros(groups * -(-x.shape[1] // lanes), dtype=x.dtype)
    _forward_bn_eval_kernel(x, np.ascontiguousarray(w), out, stride, pads[0], pads[2], lanes,
                            groups, np.ascontiguousarray(bn, dtype=x.dtype), swish, sums)
    return out, sums


def backward_numba(dout, x, w, stride, pads):
    """Gradients of :func:`forward_numba`: dout (N, C, Ho, Wo) in x's dtype -> ``(dx, dw)``
    shaped like x and w."""
    N, C, H, W = x.shape
    lanes = _lanes(C, H, W)
    dx = np.empty_like(x)
    dw_parts = np.empty((_partition(N, C, lanes), C, w.shape[2] ** 2), dtype=x.dtype)
    _backward_kernel(np.ascontiguousarray(dout), x, np.ascontiguousarray(w), dx, dw_parts,
                     stride, pads[0], pads[2], lanes)
    return dx, dw_parts.sum(axis=0).reshape(w.shape)
