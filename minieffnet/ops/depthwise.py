"""Depthwise 2-D convolution (one k×k filter per channel, no bias), forward and backward.

EfficientNet's MBConv block filters every expanded channel on its own: channel ``c`` of the
output sees only channel ``c`` of the input, through the filter ``w[c, 0]`` (PyTorch's
``groups=C`` weight layout ``(C, 1, k, k)``)::

    out[n, c, oy, ox] = sum_{ky, kx} w[c, 0, ky, kx] * xpad[n, c, oy*s + ky, ox*s + kx]

where ``xpad`` is ``x`` with zeros around it (``padding.conv_geometry`` says how many on
each side). Differentiating the sum, every tap ``(ky, kx)`` links one output element to one
input element, so the backward pass walks the same taps and

    dx[n, c, iy, ix]  += w[c, 0, ky, kx] * dout[n, c, oy, ox]     (scatter back along the tap)
    dw[c, 0, ky, kx]  += dout[n, c, oy, ox] * x[n, c, iy, ix]      (sum over n, oy, ox)

with ``iy = oy*s + ky - pad_top`` and ``ix = ox*s + kx - pad_left``; taps that land in the
padding contribute nothing.

Two implementations, chosen by :func:`minieffnet.backend.pick`:

* the NumPy reference loops over the k×k offsets; each offset is one strided slice of the
  padded input, so every step is a whole-array multiply-add over ``(N, C, Ho, Wo)``;
* the Numba kernels walk the same taps, but over cache-resident tiles that hold a block of
  channels side by side (so the late stages' 2x2 and 4x4 images still give long, vectorised
  loops), skip the padding by clipping each tap's range instead of building a padded copy,
  and run (image group, channel block) tasks in parallel. The comment that opens the Numba
  section below explains the layout. In evaluation the forward kernel can also finish each
  tile with BatchNorm and swish before storing it (:mod:`minieffnet.ops.depthwise_bn`).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import backend
from ._checks import check_float_array, check_same_dtype, check_shape
from ._fastmath import sigmoid
from .padding import conv_geometry


# --- NumPy reference -----------------------------------------------------------------------

def _tap_window(ky: int, kx: int, stride: int, Ho: int, Wo: int):
    """The slice of the padded input that tap ``(ky, kx)`` multiplies, shaped ``(Ho, Wo)``."""
    return (slice(None), slice(None),
            slice(ky, ky + stride * (Ho - 1) + 1, stride),
            slice(kx, kx + stride * (Wo - 1) + 1, stride))


def forward_ref(x, w, stride, pads, out_hw):
    """The NumPy forward: x (N, C, H, W) padded by ``pads``, one strided slice per tap."""
    pt, pb, pl, pr = pads
    Ho, Wo = out_hw
    k = w.shape[2]
    xpad = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for ky in range(k):
        for kx in range(k):
            out += w[None, :, 0, ky, kx, None, None] * xpad[_tap_window(ky, kx, stride, Ho, Wo)]
    return out


def _backward_ref(dout, x, w, stride, pads):
    pt, pb, pl, pr = pads
    N, C, H, W = x.shape
    Ho, Wo = dout.shape[2:]
    k = w.shape[2]
    xpad = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    for ky in range(k):
        for kx in range(k):
            window = _tap_window(ky, kx, stride, Ho, Wo)
            dxpad[window] += w[None, :, 0, ky, kx, None, None] * dout
            dw[:, 0, ky, kx] = np.sum(dout * xpad[window], axis=(0, 2, 3))
    # Gradient that flowed into the padding belongs to no input element: crop it away.
    return dxpad[:, :, pt:pt + H, pl:pl + W], dw


# --- Numba fast path -----------------------------------------------------------------------
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
    k = w.shape[2]
    wrep = np.zeros(k * k * Wo * lanes, w.dtype)
    for t in range(k * k):
        for ox in range(Wo):
            for j in range(nc):
                wrep[(t * Wo + ox) * lanes + j] = w[c0 + j, 0, t // k, t % k]
    return wrep


@njit(cache=True, inline="always")
def _normalize_tile(ot, npix, bn, swish, acc):
    """Evaluation BatchNorm (and swish) on a finished output tile, in BatchNorm's own arithmetic
    (``batchnorm._normalize_kernel``): lane j's ``((v - hi) - lo) * scale + beta``, with
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
def _forward_nb(x, w, out, stride, pt, pl, lanes, groups, bn, swish, sums):
    """out = depthwise(x, w); with bn (4, C) (rows: mean hi, mean lo, scale, beta) each tile
    also goes through evaluation BatchNorm (+ swish) before it is stored, and sums[task] gets
    the task's output sum. bn of shape (4, 0): the plain convolution."""
    N, C, H, W = x.shape
    k = w.shape[2]
    Ho, Wo = out.shape[2], out.shape[3]
    xrow = stride * ((W + stride - 1) // stride) * lanes  # tile row lengths
    orow = Wo * lanes
    x_flat, out_flat = x.reshape(x.size), out.reshape(out.size)
    first, count, col = _column_taps(k, Wo, W, stride, pl)
    rows, cols = _plane_rows(H, W, stride)
    for task in prange(groups * ((C + lanes - 1) // lanes)):
        _, c0, nc, n0, n1 = _task(task, C, N, lanes, groups)
        # Zeroed once: lanes past nc (a partial last block) stay zero and are never stored.
        xt = np.zeros(H * xrow, x.dtype)
        ot = np.empty(Ho * orow, x.dtype)
        wrep = _repeat_weights(w, c0, nc, Wo, lanes)
        post = bn.shape[1] > 0
        bn_lanes = np.zeros((4, lanes), x.dtype)  # lanes past nc: all zero, output 0
        if post:
            bn_lanes[:, :nc] = bn[:, c0:c0 + nc]
        acc = np.zeros(lanes, x.dtype)
        for n in range(n0, n1):
            _load_tile(x_flat, n * C + c0, nc, rows, cols, stride, xt, lanes)
            ot[:] = 0
            for oy in range(Ho):
                iy0 = oy * stride - pt
                ky_lo, ky_hi = _valid_range(k, iy0, 1, H)
                for ky in range(ky_lo, ky_hi):
                    for kx in range(k):
                        o0 = first[kx] * lanes
                        _tap_forward(ot, oy * orow + o0, wrep, (ky * k + kx) * orow + o0,
                                     xt, (iy0 + ky) * xrow + col[kx] * lanes, count[kx] * lanes)
            if post:
                _normalize_tile(ot, Ho * Wo, bn_lanes, swish, acc)
            _store_tile(ot, out_flat, n * C + c0, nc, 1, Ho * Wo, 1, lanes)
        if post:
            sums[task] = acc.sum()


@njit(cache=True, parallel=True, fastmath={"contract"})
def _backward_nb(dout, x, w, dx, dw_parts, stride, pt, pl, lanes):
    # dx and dw in one pass over the taps: both read dout at the same place, so fusing them
    # reads dout (and x) from memory once instead of twice.
    N, C, H, W = x.shape
    k = w.shape[2]
    Ho, Wo = dout.shape[2], dout.shape[3]
    groups = dw_parts.shape[0]
    xrow = stride * ((W + stride - 1) // stride) * lanes
    orow = Wo * lanes
    x_flat, dx_flat, dout_flat = x.reshape(x.size), dx.reshape(dx.size), dout.reshape(dout.size)
    first, count, col = _column_taps(k, Wo, W, stride, pl)
    rows, cols = _plane_rows(H, W, stride)
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


def forward_fast(x, w, stride, pads, out_hw, bn=None, swish=False):
    """The Numba forward. With ``bn`` ((4, C) in x's dtype: mean hi, mean lo, scale, beta of an
    evaluation BatchNorm) the normalisation (and swish) runs in the same pass, and the result
    is ``(out, sums)`` with sums the per-task output sums (NaN/inf check); else just out."""
    lanes = _lanes(*x.shape[1:])
    out = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    groups = _partition(x.shape[0], x.shape[1], lanes)
    sums = np.zeros(groups * -(-x.shape[1] // lanes), dtype=x.dtype)
    post = np.zeros((4, 0), x.dtype) if bn is None else np.ascontiguousarray(bn, dtype=x.dtype)
    _forward_nb(x, np.ascontiguousarray(w), out, stride, pads[0], pads[2], lanes, groups, post,
                swish, sums)
    return out if bn is None else (out, sums)


def _backward_fast(dout, x, w, stride, pads):
    N, C, H, W = x.shape
    lanes = _lanes(C, H, W)
    dx = np.empty_like(x)
    dw_parts = np.empty((_partition(N, C, lanes), C, w.shape[2] ** 2), dtype=x.dtype)
    _backward_nb(np.ascontiguousarray(dout), x, np.ascontiguousarray(w), dx, dw_parts,
                 stride, pads[0], pads[2], lanes)
    return dx, dw_parts.sum(axis=0).reshape(w.shape)


# --- Public ops ----------------------------------------------------------------------------

def conv_shapes(op: str, x_shape, w_shape, stride, padding: str):
    """Check a depthwise convolution's shapes and hyper-parameters (shared with the GPU op).

    x_shape: (N, C, H, W); w_shape: (C, 1, k, k). Returns ``(stride, pads, (Ho, Wo))`` with
    ``pads = (top, bottom, left, right)``. Raises ValueError naming ``op``.
    """
    C = x_shape[1]
    if w_shape[0] != C or w_shape[1] != 1 or w_shape[2] != w_shape[3]:
        raise ValueError(f"{op}: w must have shape (C, 1, k, k) with C = {C} (x's channels),"
                         f" got {tuple(w_shape)}")
    # conv_geometry checks the value; refuse 1.0 or True first, which would pass `in (1, 2)`
    # and then break slicing or silently mean 1.
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)):
        raise ValueError(f"{op}: stride must be the integer 1 or 2, got {stride!r}")
    pads, out_hw = conv_geometry(op, x_shape[2], x_shape[3], w_shape[2], int(stride), padding)
    return int(stride), pads, out_hw


def check_inputs(op: str, x, w, stride, padding: str):
    """Validate the forward's arguments as NumPy arrays; returns like :func:`conv_shapes`."""
    check_float_array(op, "x", x, ndim=4)
    check_float_array(op, "w", w, ndim=4)
    check_same_dtype(op, x=x, w=w)
    return conv_shapes(op, x.shape, w.shape, stride, padding)


def depthwise_conv2d_forward(x: np.ndarray, w: np.ndarray, stride: int = 1,
                             padding: str = "symmetric"):
    """Depthwise convolution: each channel convolved with its own k×k filter, no bias.

    x: (N, C, H, W) float32 or float64.
    w: (C, 1, k, k), same dtype as x (PyTorch's ``groups=C`` layout); k odd.
    stride: 1 or 2.
    padding: ``"symmetric"`` ((k-1)//2 zeros each side, torchvision) or ``"same"``
        (TensorFlow: ``Ho = ceil(H / stride)``, extra zero at the bottom/right).

    Returns ``(out, cache)`` with out: (N, C, Ho, Wo), dtype of x.
    Raises ValueError naming the op for any malformed input.
    """
    stride, pads, out_hw = check_inputs("depthwise_conv2d_forward", x, w, stride, padding)
    # The Numba kernels index planes directly, so they need C order; copying here (not in the
    # fast path) stores the contiguous copy in the cache and the backward does not repeat it.
    x = np.ascontiguousarray(x)
    out = backend.pick(forward_ref, forward_fast)(x, w, stride, pads, out_hw)
    return out, (x, w, stride, padding)


def depthwise_conv2d_backward(dout: np.ndarray, cache):
    """Gradients of :func:`depthwise_conv2d_forward`.

    dout: (N, C, Ho, Wo), the upstream gradient (cast to the forward's dtype).
    cache: the forward's cache ``(x, w, stride, padding)``.

    Returns ``(dx, dw)``: dx (N, C, H, W) like x, dw (C, 1, k, k) like w.
    """
    op = "depthwise_conv2d_backward"
    x, w, stride, padding = cache
    _, pads, out_hw = conv_shapes(op, x.shape, w.shape, stride, padding)
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, x.shape[:2] + out_hw)
    dout = dout.astype(x.dtype, copy=False)
    return backend.pick(_backward_ref, _backward_fast)(dout, x, w, stride, pads)
