"""Batch transforms: uint8 HWC images -> normalised float NCHW, augmentation, resizing.

Everything works on a whole batch at once (no Python loop over images). Randomness always
comes from an explicit ``numpy.random.Generator`` passed in, so the same seed gives the same
augmented batches. Each transform with a Numba fast path also has a NumPy reference; the
active :mod:`minieffnet.backend` picks one, and the tests hold the two equal.

Order used by the loader (as in the usual CIFAR recipe)::

    x = to_float_nchw(images, mean, std)        # (N, 3, 32, 32) float32
    x = random_crop_flip(x, rng, padding=4)     # pad with zeros, crop 32x32, flip half
    x = cutout(x, rng, size=8)                  # optional
    x = resize_bilinear(x, resolution)          # optional: the model's input resolution

Crop padding and cutout fill with 0 *after* normalisation, i.e. with the mean colour.

The Numba kernels are serial on purpose: a batch of 128 CIFAR images takes well under a
millisecond per transform (bilinear 32 -> 64 px: ~3 ms), and a thread pool here would only
compete with the model's parallel kernels (measured: launching one cost ~7 ms on 2 busy cores).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import backend
from ..ops._checks import check_float_array


def _check_nchw(op: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{op}: x must be an (N, C, H, W) numpy.ndarray, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    return x


def _check_rng(op: str, rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{op}: rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
                         f"got {type(rng).__name__}")


# --- uint8 HWC -> normalised float32 NCHW ---------------------------------------------------

def _to_float_nchw_ref(images, mean, inv_std):
    x = (images.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@njit(cache=True)
def _to_float_nchw_kernel(images, mean, inv_std, out):
    # One pass; writes run along contiguous rows of each output plane (one image's 3 KB of
    # input stays in cache while its three planes are written).
    n, h, w, c = images.shape
    for b in range(n):
        for k in range(c):
            m, s = mean[k], inv_std[k]
            for i in range(h):
                for j in range(w):
                    out[b, k, i, j] = (np.float32(images[b, i, j, k]) - m) * s


def _to_float_nchw_fast(images, mean, inv_std):
    n, h, w, c = images.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    _to_float_nchw_kernel(np.ascontiguousarray(images), mean, inv_std, out)
    return out


def to_float_nchw(images: np.ndarray, mean, std) -> np.ndarray:
    """Normalise uint8 images and move channels first: ``(images - mean) / std``.

    images: (N, H, W, 3) uint8 HWC (as stored in a :class:`~minieffnet.data.Dataset`).
    mean, std: 3 per-channel values on the 0..255 scale (e.g. ``dataset.normalization()``).
    Returns (N, 3, H, W) float32, C-contiguous.
    """
    op = "to_float_nchw"
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{op}: images must be an (N, H, W, 3) array, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    if images.dtype != np.uint8:
        raise ValueError(f"{op}: images must be uint8, got dtype {images.dtype}")
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean.shape != (3,) or std.shape != (3,):
        raise ValueError(f"{op}: mean and std must hold 3 values each, got {mean.shape} and {std.shape}")
    if not np.all(std > 0):
        raise ValueError(f"{op}: std must be positive, got {std}")
    inv_std = (np.float32(1) / std).astype(np.float32)
    return backend.pick(_to_float_nchw_ref, _to_float_nchw_fast)(images, mean, inv_std)


# --- random crop (zero padding) + horizontal flip ----------------------------------------------

def _crop_flip_ref(x, top, left, flip, padding):
    n, _, h, w = x.shape
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    rows = top[:, None] + np.arange(h)                                  # (N, H)
    cols = np.where(flip[:, None], w - 1 - np.arange(w), np.arange(w))  # (N, W), flipped per image
    cols = left[:, None] + cols
    return padded[np.arange(n)[:, None, None, None], np.arange(x.shape[1])[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


@njit(cache=True)
def _crop_flip_kernel(x, top, left, flip, padding, out):
    n, c, h, w = x.shape
    for b in range(n):
        for k in range(c):
            for i in range(h):
                si = top[b] + i - padding  # source row in the unpadded image
                for j in range(w):
                    sj = left[b] + (w - 1 - j if flip[b] else j) - padding
                    if 0 <= si < h and 0 <= sj < w:
                        out[b, k, i, j] = x[b, k, si, sj]
                    else:
                        out[b, k, i, j] = 0


def _crop_flip_fast(x, top, left, flip, padding):
    out = np.empty_like(x)
    _crop_flip_kernel(x, top, left, flip, padding, out)
    return out


def crop_flip(x: np.ndarray, top: np.ndarray, left: np.ndarray, flip: np.ndarray, padding: int) -> np.ndarray:
    """Deterministic crop-and-flip: the core of :func:`random_crop_flip`.

    Pads each image with ``padding`` zeros on every side, takes the H x W window whose
    top-left corner is ``(top[n], left[n])`` in the padded image (0 .. 2 * padding), then
    mirrors it left-right where ``flip[n]``.
    x: (N, C, H, W), any dtype; top, left: (N,) ints in 0..2*padding; flip: (N,) bool.
    Returns an array like x.
    """
    op = "crop_flip"
    _check_nchw(op, x)
    n = x.shape[0]
    if int(padding) != padding or padding < 0:
        raise ValueError(f"{op}: padding must be a non-negative integer, got {padding!r}")
    padding = int(padding)
    top = np.asarray(top)
    left = np.asarray(left)
    flip = np.asarray(flip)
    for name, a in (("top", top), ("left", left), ("flip", flip)):
        if a.shape != (n,):
            raise ValueError(f"{op}: {name} must have shape ({n},), got {a.shape}")
    for name, a in (("top", top), ("left", left)):
        if n and (a.min() < 0 or a.max() > 2 * padding):
            raise ValueError(f"{op}: {name} offsets must lie in 0..{2 * padding} for padding {padding}, "
                             f"got {a.min()}..{a.max()}")
    top, left = top.astype(np.int64), left.astype(np.int64)
    flip = flip.astype(np.bool_)
    return backend.pick(_crop_flip_ref, _crop_flip_fast)(np.ascontiguousarray(x), top, left, flip, padding)


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, padding: int = 4, flip: bool = True) -> np.ndarray:
    """Random crop with zero padding, then random horizontal flip (probability 1/2), per image.

    x: (N, C, H, W), any dtype (normally normalised float32, so the padding is the mean
    colour). Draws, in this order, ``top, left = rng.integers(0, 2 * padding + 1, (2, N))``
    and, if ``flip``, ``rng.random(N) < 0.5``. Returns an array like x.
    """
    _check_nchw("random_crop_flip", x)
    _check_rng("random_crop_flip", rng)
    if int(padding) != padding or padding < 0:
        raise ValueError(f"random_crop_flip: padding must be a non-negative integer, got {padding!r}")
    n = x.shape[0]
    top, left = rng.integers(0, 2 * int(padding) + 1, size=(2, n))
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, dtype=bool)
    return crop_flip(x, top, left, flips, padding)


# --- cutout ----------------------------------------------------------------------------------

def cutout(x: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Cutout (DeVries & Taylor, 2017): zero one ``size`` x ``size`` square per image.

    The square's centre is uniform over all pixels (``rng.integers(0, H, N)`` then
    ``rng.integers(0, W, N)``) and it is clipped at the borders, so near an edge less is cut.
    x: (N, C, H, W), any dtype; the same square covers every channel. Returns a new array.
    """
    _check_nchw("cutout", x)
    _check_rng("cutout", rng)
    if int(size) != size or size < 0:
        raise ValueError(f"cutout: size must be a non-negative integer, got {size!r}")
    n, _, h, w = x.shape
    cy = rng.integers(0, h, n)
    cx = rng.integers(0, w, n)
    y0, x0 = cy - size // 2, cx - size // 2
    rows = np.arange(h)[None, :]
    cols = np.arange(w)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < y0[:, None] + size)  # (N, H)
    in_cols = (cols >= x0[:, None]) & (cols < x0[:, None] + size)  # (N, W)
    keep = ~(in_rows[:, None, :, None] & in_cols[:, None, None, :])
    return x * keep.astype(x.dtype)


# --- bilinear resize -------------------------------------------------------------------------

def _source_index(out_size: int, in_size: int, dtype):
    """Bilinear sampling along one axis, align_corners=False (PyTorch's convention).

    Output pixel d samples the input at ``s = (d + 0.5) * in / out - 0.5``, clamped below at
    0; it blends inputs ``i0 = floor(s)`` and ``i1 = min(i0 + 1, in - 1)`` with weight
    ``lam = s - i0`` on i1. Computed in ``dtype`` (PyTorch uses the input's precision), so
    float32 results match PyTorch's to rounding. Returns (i0, i1, lam), each (out_size,).
    """
    scale = dtype(in_size) / dtype(out_size)
    s = np.maximum((np.arange(out_size, dtype=dtype) + dtype(0.5)) * scale - dtype(0.5), dtype(0))
    i0 = np.minimum(np.floor(s).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (s - i0).astype(dtype)


def _resize_ref(x, y0, y1, ly, x0, x1, lx):
    ly = ly[:, None]
    rows = x[:, :, y0, :] * (1 - ly) + x[:, :, y1, :] * ly      # (N, C, OH, W)
    return rows[..., x0] * (1 - lx) + rows[..., x1] * lx       # (N, C, OH, OW)


@njit(cache=True)
def _resize_kernel(x, y0, y1, ly, x0, x1, lx, out):
    n, c, _, _ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for p in range(n * c):  # one (image, channel) plane at a time
        b, k = p // c, p % c
        for i in range(oh):
            wy = ly[i]
            for j in range(ow):
                wx = lx[j]
                top = x[b, k, y0[i], x0[j]] * (1 - wx) + x[b, k, y0[i], x1[j]] * wx
                bottom = x[b, k, y1[i], x0[j]] * (1 - wx) + x[b, k, y1[i], x1[j]] * wx
                out[b, k, i, j] = top * (1 - wy) + bottom * wy


def _resize_fast(x, y0, y1, ly, x0, x1, lx):
    n, c = x.shape[:2]
    out = np.empty((n, c, y0.size, x0.size), dtype=x.dtype)
    _resize_kernel(np.ascontiguousarray(x), y0, y1, ly, x0, x1, lx, out)
    return out


def resize_bilinear(x: np.ndarray, size) -> np.ndarray:
    """Bilinear resize of a float batch, like ``torch.nn.functional.interpolate(x, size,
    mode="bilinear", align_corners=False, antialias=False)``.

    x: (N, C, H, W) float32 or float64. size: an int R for R x R, or (OH, OW).
    Returns (N, C, OH, OW), dtype of x. Without antialiasing, downsampling by 2 or more
    averages only the 2 x 2 nearest pixels, so detail finer than the new grid is lost (or
    aliased) rather than blurred: the behaviour of resizing images to a lower resolution.
    """
    op = "resize_bilinear"
    check_float_array(op, "x", x, ndim=4)
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                 for v in pair):
        raise ValueError(f"{op}: size must be a positive int or a pair of them, got {size!r}")
    oh, ow = int(pair[0]), int(pair[1])
    h, w = x.shape[2:]
    if h == 0 or w == 0:
        raise ValueError(f"{op}: x has an empty spatial size {x.shape[2:]}")
    y0, y1, ly = _source_index(oh, h, x.dtype.type)
    x0, x1, lx = _source_index(ow, w, x.dtype.type)
    return backend.pick(_resize_ref, _resize_fast)(x, y0, y1, ly, x0, x1, lx)
