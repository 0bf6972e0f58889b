"""Depthwise 2-D convolution on an NVIDIA GPU with ``numba.cuda``: forward, dx and dw.

The same operation as :mod:`minieffnet.ops.depthwise` (same weight layout ``(C, 1, k, k)``,
same padding through ``padding.depthwise_geometry``), written twice, as the GPU lessons do:

``method="naive"``: one thread per output element, a bounds guard, every operand read from
    global memory. For the forward that is ``k*k`` loads of x per output; neighbouring
    threads load almost the same pixels, and only the caches save them.

``method="tiled"`` (default): a 16x16 thread block computes a 16x16 tile of one channel's
    output. It first copies into shared memory everything the tile needs -- the input tile
    plus a *halo* of ``k - 1`` rows and columns (more with stride 2), zeros where the halo
    falls into the padding -- and the channel's k x k filter. After one barrier every thread
    reads its k*k operands from shared memory: x is read from global memory about once
    instead of k*k times. The input gradient is tiled the same way over dout (a dx tile
    needs the dout tile that its taps reach, again with a halo). The weight gradient is a
    reduction: one block per (channel, tap) walks all ``N * Ho * Wo`` products with a
    grid-stride loop, each thread keeping a private sum, then the block adds the sums in
    shared memory with a tree (halving the active threads each step).

Every barrier (``cuda.syncthreads()``) is reached by all threads of a block: threads whose
output lies outside the image still help load the tile and only skip the final store.
Tiled kernels hold the filter and halo in fixed-size shared arrays, sized for ``k <= 7``
(EfficientNet uses 3 and 5); larger kernels run the naive kernels.

Two ways in. The public ops :func:`minieffnet.ops.depthwise_conv2d_forward` and
``_backward`` under the ``"cuda"`` backend (NumPy in and out, the same plain-array cache as
on the CPU, tiled kernels) call :func:`forward_cuda` and :func:`backward_cuda`, which copy the
arrays to the device and back. The ``*_device`` entry points are the advanced API: they take
and return ``numba.cuda`` device arrays (wrap CuPy or PyTorch tensors with
``cuda.as_cuda_array``) and a ``method``, so a caller can keep activations on the GPU
between layers. Without a GPU the kernels run in Numba's CUDA simulator when
``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported (the tests do this): correct,
but about 0.2 ms per thread, so only for tiny shapes. Importing this module imports
``numba.cuda`` (about 0.2 s), which is why :mod:`minieffnet.ops.depthwise` imports it only
when the ``"cuda"`` backend first runs.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import cuda

from .. import backend
from ._checks import FLOAT_DTYPES, check_same_dtype, check_shape
from .padding import depthwise_geometry

METHODS = ("tiled", "naive")

_TILE = 16                              # output tile edge = thread block edge (256 threads)
_MAX_K = 7                              # largest kernel the tiled kernels' arrays hold
_PATCH = (_TILE - 1) * 2 + _MAX_K       # input rows/cols a forward tile reads (stride <= 2)
_DPATCH = _TILE + _MAX_K - 1            # dout rows/cols a dx tile reads (stride 1 is widest)
_THREADS = 128                          # 1-D blocks: naive kernels and the dw reduction;
                                        # a power of two, as the tree reduction halves it


# --- Naive kernels: one thread per output element ------------------------------------------

@cuda.jit
def _forward_naive_kernel(x, w, out, stride, pt, pl):
    i = cuda.grid(1)
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    if i >= N * C * Ho * Wo:  # the last block overhangs the output
        return
    ox, oy, c, n = i % Wo, (i // Wo) % Ho, (i // (Wo * Ho)) % C, i // (Wo * Ho * C)
    k = w.shape[2]
    acc = x.dtype.type(0)  # accumulate in x's precision
    for ky in range(k):
        iy = oy * stride - pt + ky
        for kx in range(k):
            ix = ox * stride - pl + kx
            if 0 <= iy < H and 0 <= ix < W:
                acc += w[c, 0, ky, kx] * x[n, c, iy, ix]
    out[n, c, oy, ox] = acc


@cuda.jit
def _dx_naive_kernel(dout, w, dx, stride, pt, pl):
    # Gather form: dx[iy, ix] sums the taps (ky, kx) whose output oy*stride - pt + ky = iy
    # exists, so each thread writes only its own element (no atomics).
    i = cuda.grid(1)
    N, C, H, W = dx.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    if i >= N * C * H * W:
        return
    ix, iy, c, n = i % W, (i // W) % H, (i // (W * H)) % C, i // (W * H * C)
    k = w.shape[2]
    acc = dx.dtype.type(0)
    for ky in range(k):
        ty = iy + pt - ky  # = oy * stride for a tap that reaches iy
        for kx in range(k):
            tx = ix + pl - kx
            if ty % stride == 0 and tx % stride == 0:  # floor modulo: right for ty < 0
                oy, ox = ty // stride, tx // stride
                if 0 <= oy < Ho and 0 <= ox < Wo:
                    acc += w[c, 0, ky, kx] * dout[n, c, oy, ox]
    dx[n, c, iy, ix] = acc


@cuda.jit
def _dw_naive_kernel(dout, x, dw, stride, pt, pl):
    # One thread per weight, each walking all N * Ho * Wo products alone: little parallelism
    # (C * k * k threads), the baseline the reduction kernel improves on.
    i = cuda.grid(1)
    N, C, H, W = x.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    k = dw.shape[2]
    if i >= C * k * k:
        return
    kx, ky, c = i % k, (i // k) % k, i // (k * k)
    acc = x.dtype.type(0)
    for n in range(N):
        for oy in range(Ho):
            iy = oy * stride - pt + ky
            for ox in range(Wo):
                ix = ox * stride - pl + kx
                if 0 <= iy < H and 0 <= ix < W:
                    acc += dout[n, c, oy, ox] * x[n, c, iy, ix]
    dw[c, 0, ky, kx] = acc


# --- Tiled kernels: shared-memory tiles with halos -----------------------------------------
# Grid: blockIdx.x = plane n*C + c (grid x allows 2^31 - 1 blocks; N*C passes 65535 in
# EfficientNet's late stages), blockIdx.y = tile within the plane, row-major.

@cuda.jit(device=True, inline=True)
def _load_filter(w, c, k, wk, tid):
    """The block's threads copy channel c's filter into the shared array wk."""
    for i in range(tid, k * k, _TILE * _TILE):  # a loop, so no block size is assumed
        wk[i // k, i % k] = w[c, 0, i // k, i % k]


@cuda.jit(device=True, inline=True)
def _tile_of_block(C, width):
    """This block's plane (n, c) and tile origin (y0, x0) in a plane ``width`` wide, this
    thread's place (ty, tx) in the tile and its flat index tid (see the grid layout above)."""
    n, c = cuda.blockIdx.x // C, cuda.blockIdx.x % C
    tiles_x = (width + _TILE - 1) // _TILE
    y0, x0 = (cuda.blockIdx.y // tiles_x) * _TILE, (cuda.blockIdx.y % tiles_x) * _TILE
    ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
    return n, c, y0, x0, ty, tx, ty * _TILE + tx


@cuda.jit(device=True, inline=True)
def _load_patch(src, n, c, r0, c0, rows, cols, patch, tid):
    """All threads copy ``src[n, c, r0:r0+rows, c0:c0+cols]`` into ``patch``, zero outside."""
    H, W = src.shape[2], src.shape[3]
    for i in range(tid, rows * cols, _TILE * _TILE):
        r, q = i // cols, i % cols
        if 0 <= r0 + r < H and 0 <= c0 + q < W:
            patch[r, q] = src[n, c, r0 + r, c0 + q]
        else:
            patch[r, q] = 0


@cuda.jit
def _forward_tiled_kernel(x, w, out, stride, pt, pl):
    C = x.shape[1]
    Ho, Wo = out.shape[2], out.shape[3]
    k = w.shape[2]
    n, c, oy0, ox0, ty, tx, tid = _tile_of_block(C, Wo)

    patch = cuda.shared.array((_PATCH, _PATCH), dtype=x.dtype)
    wk = cuda.shared.array((_MAX_K, _MAX_K), dtype=x.dtype)
    # Output (oy0 + ty) reads input rows (oy0 + ty)*stride - pt + ky: the tile's span starts
    # at oy0*stride - pt and covers (_TILE - 1)*stride + k rows.
    span = (_TILE - 1) * stride + k
    _load_patch(x, n, c, oy0 * stride - pt, ox0 * stride - pl, span, span, patch, tid)
    _load_filter(w, c, k, wk, tid)
    cuda.syncthreads()  # every thread gets here: nobody returned early

    oy, ox = oy0 + ty, ox0 + tx
    if oy < Ho and ox < Wo:
        acc = x.dtype.type(0)
        for ky in range(k):
            for kx in range(k):
                acc += wk[ky, kx] * patch[ty * stride + ky, tx * stride + kx]
        out[n, c, oy, ox] = acc


@cuda.jit
def _dx_tiled_kernel(dout, w, dx, stride, pt, pl):
    C = dx.shape[1]
    H, W = dx.shape[2], dx.shape[3]
    k = w.shape[2]
    n, c, iy0, ix0, ty, tx, tid = _tile_of_block(C, W)

    patch = cuda.shared.array((_DPATCH, _DPATCH), dtype=dout.dtype)
    wk = cuda.shared.array((_MAX_K, _MAX_K), dtype=dout.dtype)
    # Input row iy is reached from output rows oy = (iy + pt - ky) / stride. Over the tile
    # (iy0 .. iy0+_TILE-1) and the taps (0 .. k-1) the smallest is floor((iy0+pt-k+1)/stride)
    # and the rows span at most ceil((_TILE + k - 2) / stride) + 1 <= _DPATCH.
    oyb = (iy0 + pt - k + 1) // stride
    oxb = (ix0 + pl - k + 1) // stride
    span = (_TILE + k - 2 + stride - 1) // stride + 1
    _load_patch(dout, n, c, oyb, oxb, span, span, patch, tid)
    _load_filter(w, c, k, wk, tid)
    cuda.syncthreads()

    iy, ix = iy0 + ty, ix0 + tx
    if iy < H and ix < W:
        acc = dx.dtype.type(0)
        for ky in range(k):
            sy = iy + pt - ky
            if sy % stride == 0:  # this tap reaches row iy from a whole output row
                for kx in range(k):
                    sx = ix + pl - kx
                    if sx % stride == 0:
                        # Rows outside 0 .. Ho-1 were loaded as zeros: no bounds test here.
                        acc += wk[ky, kx] * patch[sy // stride - oyb, sx // stride - oxb]
        dx[n, c, iy, ix] = acc


@cuda.jit
def _dw_reduce_kernel(dout, x, dw, stride, pt, pl):
    # Block (c, t) computes dw[c, 0, ky, kx] with t = ky*k + kx.
    N, C, H, W = x.shape
    Ho, Wo = dout.shape[2], dout.shape[3]
    k = dw.shape[2]
    c, t = cuda.blockIdx.x, cuda.blockIdx.y
    ky, kx = t // k, t % k
    tid = cuda.threadIdx.x

    # 1. Grid-stride loop: consecutive threads take consecutive ox, so loads coalesce.
    acc = x.dtype.type(0)
    for i in range(tid, N * Ho * Wo, _THREADS):
        n, oy, ox = i // (Ho * Wo), (i // Wo) % Ho, i % Wo
        iy, ix = oy * stride - pt + ky, ox * stride - pl + kx
        if 0 <= iy < H and 0 <= ix < W:
            acc += dout[n, c, oy, ox] * x[n, c, iy, ix]

    # 2. Tree reduction in shared memory. The barrier sits outside the `if`, so every thread
    #    reaches it on every step, including those with nothing left to add.
    partial = cuda.shared.array(_THREADS, dtype=x.dtype)
    partial[tid] = acc
    cuda.syncthreads()
    half = _THREADS // 2
    while half > 0:
        if tid < half:
            partial[tid] += partial[tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        dw[c, 0, ky, kx] = partial[0]


# --- Launches --------------------------------------------------------------------------------

def _blocks(count: int) -> int:
    return (count + _THREADS - 1) // _THREADS


def _tiles(N: int, C: int, H: int, W: int):
    """Launch shape of a tiled kernel over (N, C, H, W): (grid, block)."""
    return (N * C, ((H + _TILE - 1) // _TILE) * ((W + _TILE - 1) // _TILE)), (_TILE, _TILE)


def _launch_forward(x, w, stride, pads, out_hw, method):
    """out = depthwise(x, w) on device arrays, by the kernels ``method`` names."""
    (pt, _, pl, _), (N, C) = pads, x.shape[:2]
    out = cuda.device_array((N, C) + tuple(out_hw), dtype=x.dtype)
    if method == "tiled" and w.shape[2] <= _MAX_K:
        grid, block = _tiles(N, C, *out_hw)
        _forward_tiled_kernel[grid, block](x, w, out, stride, pt, pl)
    else:
        _forward_naive_kernel[_blocks(out.size), _THREADS](x, w, out, stride, pt, pl)
    return out


def _launch_backward(dout, x, w, stride, pads, method):
    """``(dx, dw)`` of :func:`_launch_forward` on device arrays."""
    (pt, _, pl, _), (N, C, H, W), k = pads, x.shape, w.shape[2]
    dx = cuda.device_array(x.shape, dtype=x.dtype)
    dw = cuda.device_array(w.shape, dtype=x.dtype)
    if method == "tiled" and k <= _MAX_K:
        grid, block = _tiles(N, C, H, W)
        _dx_tiled_kernel[grid, block](dout, w, dx, stride, pt, pl)
        _dw_reduce_kernel[(C, k * k), _THREADS](dout, x, dw, stride, pt, pl)
    else:
        _dx_naive_kernel[_blocks(dx.size), _THREADS](dout, w, dx, stride, pt, pl)
        _dw_naive_kernel[_blocks(C * k * k), _THREADS](dout, x, dw, stride, pt, pl)
    return dx, dw


# --- The "cuda" backend of minieffnet.ops.depthwise_conv2d_forward / _backward --------------

def forward_cuda(x, w, stride, pads, out_hw):
    """The public forward's GPU path: NumPy x (N, C, H, W) and w (C, 1, k, k), validated by
    the op, are copied to the device, convolved by the tiled kernels and copied back."""
    # to_device needs one contiguous buffer; the kernels themselves accept any strides.
    x_d, w_d = cuda.to_device(np.ascontiguousarray(x)), cuda.to_device(np.ascontiguousarray(w))
    return _launch_forward(x_d, w_d, stride, pads, out_hw, "tiled").copy_to_host()


def backward_cuda(dout, x, w, stride, pads):
    """The public backward's GPU path: NumPy dout (N, C, Ho, Wo) in x's dtype, x, w ->
    ``(dx, dw)`` shaped like x and w."""
    dx, dw = _launch_backward(*(cuda.to_device(np.ascontiguousarray(a)) for a in (dout, x, w)),
                              stride, pads, "tiled")
    return dx.copy_to_host(), dw.copy_to_host()


# --- Device entry points: the arrays stay on the GPU ---------------------------------------

def _require_gpu(op: str) -> None:
    reason = backend.unavailable_reason("cuda")
    if reason is not None:
        raise RuntimeError(f"{op}: {reason}")


def _check_device(op: str, method: str, **arrays) -> None:
    """Validate device arrays: 4-D, float32/float64, one dtype; and the method name."""
    if method not in METHODS:
        raise ValueError(f"{op}: unknown method {method!r}; choose one of {METHODS}")
    for name, a in arrays.items():
        if isinstance(a, np.ndarray):  # would work, but copied to the GPU on every launch
            raise ValueError(f"{op}: {name} is a NumPy array; copy it once with "
                             "cuda.to_device(...), or call the public op under the \"cuda\" "
                             "backend")
        if a.ndim != 4:
            raise ValueError(f"{op}: {name} must have 4 dimensions, got shape {a.shape}")
        if a.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{op}: {name} must be float32 or float64, got dtype {a.dtype}")
    check_same_dtype(op, **arrays)


class DeviceCache(NamedTuple):
    """What :func:`depthwise_conv2d_backward_device` needs: the forward's device arrays and
    arguments."""
    x: object             # numba.cuda device array (N, C, H, W)
    w: object             # numba.cuda device array (C, 1, k, k)
    stride: int
    padding: str
    method: str


def depthwise_conv2d_forward_device(x, w, stride: int = 1, padding: str = "symmetric",
                                    method: str = "tiled"):
    """Forward on device arrays: x (N, C, H, W), w (C, 1, k, k) -> ``(out, cache)``.

    Same semantics as :func:`minieffnet.ops.depthwise_conv2d_forward`, but out
    (N, C, Ho, Wo) is a new device array and the cache holds device arrays, so nothing
    leaves the GPU. method: ``"tiled"`` (shared memory; kernels up to 7x7) or ``"naive"``.
    """
    op = "depthwise_conv2d_forward_device"
    _require_gpu(op)
    _check_device(op, method, x=x, w=w)
    stride, pads, out_hw = depthwise_geometry(op, x.shape, w.shape, stride, padding)
    return (_launch_forward(x, w, stride, pads, out_hw, method),
            DeviceCache(x, w, stride, padding, method))


def depthwise_conv2d_backward_device(dout, cache: DeviceCache):
    """Gradients of :func:`depthwise_conv2d_forward_device`: dout (N, C, Ho, Wo), a device
    array of x's dtype -> ``(dx (N, C, H, W), dw (C, 1, k, k))``, both device arrays."""
    op = "depthwise_conv2d_backward_device"
    _require_gpu(op)
    x, w, stride, padding, method = cache
    _check_device(op, method, dout=dout, x=x)
    _, pads, out_hw = depthwise_geometry(op, x.shape, w.shape, stride, padding)
    check_shape(op, "dout", dout, x.shape[:2] + out_hw)
    return _launch_backward(dout, x, w, stride, pads, method)
