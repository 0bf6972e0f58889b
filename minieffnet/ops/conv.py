"""Dense 2-D convolution (groups = 1), forward and backward, as matrix products.

A convolution mixes channels at every output pixel: with the input unfolded into columns
(*im2col*: one column per output pixel holding the ``C * k * k`` values under the kernel),

    out[n, :, p] = W2 @ cols[n, :, p]        W2 = w.reshape(O, C * k * k)

so forward and backward are one batched matrix product each (CS231n's ``conv_forward_fast``,
Caffe's im2col). BLAS is the fast path for **both** backends: a hand-written Numba loop cannot
beat a tuned GEMM, so this module has no Numba kernel and ignores :mod:`minieffnet.backend`.

The 1×1, stride-1 ("pointwise") convolution needs no unfolding at all: its columns *are* the
input pixels, ``out = W2 @ x.reshape(N, C, H * W)``. In EfficientNet every expansion and
projection conv and the head are pointwise and carry most of the multiply-adds (the paper's
MBConv, after MobileNetV2), so they take that path; the only k > 1 dense conv is the stem.

Backward of ``out = W2 @ cols`` (per sample n):

    dcols[n] = W2.T @ dout[n]          dW2 = sum_n dout[n] @ cols[n].T          db = sum dout

and ``dx`` scatters ``dcols`` back to the pixels each column was copied from (*col2im*): one
strided slice-add per kernel offset (k*k vectorised adds, no per-pixel loop).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._blas import shared_matmul, summed_outer
from ._checks import check_float_array, check_shape, check_weights
from .padding import conv_geometry


def check_inputs(op: str, x, w, b) -> None:
    """Validate x (N,C,H,W), w (O,C,k,k) and b (O,) or None: rank, dtype, channel agreement."""
    check_weights(op, x, w, b, 4, "channels")
    if w.shape[2] != w.shape[3]:
        raise ValueError(f"{op}: kernel must be square, got w of shape {w.shape}")


def _mix_backward(d3: np.ndarray, cols: np.ndarray, w2: np.ndarray):
    """Backward of ``out = w2 @ cols``: d3 (N, O, P), cols (N, K, P), w2 (O, K).

    Returns ``(dcols (N, K, P), dw2 (O, K))``, both by BLAS (:mod:`._blas`).
    """
    return shared_matmul(w2.T, d3), summed_outer(d3, cols)


def _as_dout(op: str, dout, shape: tuple, dtype) -> np.ndarray:
    """Check dout's shape; return it in the forward's dtype (a float32 op stays float32)."""
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, shape)
    return dout.astype(dtype, copy=False)


# --- Pointwise (1x1, stride 1) -------------------------------------------------------------

def pointwise_conv2d_forward(x: np.ndarray, w: np.ndarray):
    """1×1 stride-1 convolution without bias: ``out[n] = w2 @ x[n]`` over the pixels.

    x: (N, C, H, W); w: (O, C, 1, 1) (PyTorch's layout), same float dtype.
    Returns ``(out (N, O, H, W), cache)``. One batched BLAS product, no im2col.
    """
    op = "pointwise_conv2d_forward"
    check_inputs(op, x, w, None)
    if w.shape[2:] != (1, 1):
        raise ValueError(f"{op}: w must have shape (O, C, 1, 1), got {w.shape}")
    return conv_product(x, w, 1, (0, 0, 0, 0), x.shape[2:])


def pointwise_conv2d_backward(dout: np.ndarray, cache):
    """Gradients of :func:`pointwise_conv2d_forward`.

    dout: (N, O, H, W). Returns ``(dx (N, C, H, W), dw (O, C, 1, 1))``, pure BLAS.
    """
    x, w = cache
    N, C, H, W = x.shape
    O = w.shape[0]
    d = _as_dout("pointwise_conv2d_backward", dout, (N, O, H, W), x.dtype)
    dx3, dw2 = _mix_backward(d.reshape(N, O, H * W), x.reshape(N, C, H * W), w.reshape(O, C))
    return dx3.reshape(x.shape), dw2.reshape(w.shape)


# --- General k x k, stride 1/2: im2col + GEMM ---------------------------------------------

def _im2col(x: np.ndarray, k: int, stride: int, pads: tuple) -> np.ndarray:
    """Unfold the padded input into columns: returns a (N, C*k*k, Ho*Wo) array.

    ``sliding_window_view`` gives every k×k window as a view (no copy); striding it by
    ``stride`` keeps the windows that produce outputs. The one copy lays the columns out
    K-major, (C, k, k, N, Ho, Wo) in memory, so the forward's batched product reads each
    sample's (K, P) slice with unit stride and the backward's fold (:mod:`._blas`) is free.
    """
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    N, C, Ho, Wo = win.shape[:4]
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3))  # (C, k, k, N, Ho, Wo)
    return cols.reshape(C * k * k, N, Ho * Wo).transpose(1, 0, 2)


def _col2im(dcols: np.ndarray, x_shape: tuple, k: int, stride: int, pads: tuple,
            out_hw: tuple) -> np.ndarray:
    """Adjoint of :func:`_im2col`: add each column entry back onto the pixel it came from.

    dcols: (N, C*k*k, Ho*Wo). Kernel offset (i, j) read pixels ``i + stride*ho``,
    ``j + stride*wo`` of the padded input, so its gradient is one strided slice-add; windows
    overlap, hence the accumulation. Returns dx (N, C, H, W) without the padding.
    """
    N, C, H, W = x_shape
    pt, pb, pl, pr = pads
    Ho, Wo = out_hw
    d6 = dcols.reshape(N, C, k, k, Ho, Wo)
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + stride * (Ho - 1) + 1:stride,
                j:j + stride * (Wo - 1) + 1:stride] += d6[:, :, i, j]
    return np.ascontiguousarray(dxp[:, :, pt:pt + H, pl:pl + W])


# --- Public op -----------------------------------------------------------------------------

def columns(x: np.ndarray, k: int, stride: int, pads: tuple) -> np.ndarray:
    """The product's right-hand side: (N, C * k * k, Ho * Wo), x's own pixels for a pointwise
    conv (a view of a contiguous x), im2col's columns otherwise (:func:`_im2col`)."""
    N, C, H, W = x.shape
    if k == 1 and stride == 1:
        return np.ascontiguousarray(x).reshape(N, C, H * W)
    return _im2col(x, k, stride, pads)


def conv_product(x: np.ndarray, w: np.ndarray, stride: int, pads: tuple, out_hw: tuple,
                 epilogue: Callable[[np.ndarray], None] | None = None):
    """The convolution without bias or checks: x (N, C, H, W), w (O, C, k, k), padding
    ``pads`` and output size ``out_hw`` from :func:`~minieffnet.ops.padding.conv_geometry`.

    Returns ``(out (N, O, Ho, Wo), inner)``; ``inner`` is what the backward's products need:
    ``(x, w)`` for a pointwise conv, ``(cols, w)`` otherwise. ``epilogue`` finishes the output
    in place while it is in cache (:func:`~minieffnet.ops._blas.shared_matmul`), as on the
    (N, O, Ho * Wo) view of it.
    """
    N = x.shape[0]
    O, _, k, _ = w.shape
    cols = columns(x, k, stride, pads)
    out = shared_matmul(w.reshape(O, -1), cols, epilogue).reshape(N, O, *out_hw)
    if k == 1 and stride == 1:  # the backward wants x itself: cols is a view of it
        return out, (cols.reshape(x.shape), w)
    return out, (cols, w)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1,
                   padding: str = "symmetric"):
    """Dense 2-D convolution (cross-correlation, like ``torch.nn.functional.conv2d``).

    x: (N, C, H, W); w: (O, C, k, k), k odd; b: (O,) or None; all one float dtype.
    stride: 1 or 2. padding: ``"symmetric"`` ((k-1)//2 each side, torchvision) or ``"same"``
    (TensorFlow; see :mod:`minieffnet.ops.padding`).
    Returns ``(out (N, O, Ho, Wo), cache)``.

    1×1 stride-1 kernels take the pointwise path (no im2col); others are im2col + one
    batched GEMM (:func:`conv_product`). BLAS is the fast path under both backends.
    """
    op = "conv2d_forward"
    check_inputs(op, x, w, b)
    H, W = x.shape[2:]
    k = w.shape[2]
    pads, (Ho, Wo) = conv_geometry(op, H, W, k, stride, padding)
    out, inner = conv_product(x, w, stride, pads, (Ho, Wo))
    if b is not None:
        out += b[:, None, None]
    return out, (inner, x.shape, k, stride, pads, (Ho, Wo), b is not None)


def conv2d_backward(dout: np.ndarray, cache):
    """Gradients of :func:`conv2d_forward`.

    dout: (N, O, Ho, Wo). Returns ``(dx (N, C, H, W), dw (O, C, k, k), db (O,) or None)``;
    db is None when the forward had no bias.
    """
    inner, x_shape, k, stride, pads, (Ho, Wo), has_bias = cache
    w = inner[1]
    N, O = x_shape[0], w.shape[0]
    d = _as_dout("conv2d_backward", dout, (N, O, Ho, Wo), w.dtype)
    db = d.sum(axis=(0, 2, 3)) if has_bias else None
    if k == 1 and stride == 1:
        dx, dw = pointwise_conv2d_backward(d, inner)
        return dx, dw, db
    cols = inner[0]
    dcols, dw2 = _mix_backward(d.reshape(N, O, Ho * Wo), cols, w.reshape(O, -1))
    dx = _col2im(dcols, x_shape, k, stride, pads, (Ho, Wo))
    return dx, dw2.reshape(w.shape), db
