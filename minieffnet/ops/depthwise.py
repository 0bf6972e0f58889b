"""Depthwise 2-D convolution (one k×k filter per channel, no bias), forward and backward.

EfficientNet's MBConv block filters every expanded channel on its own: channel ``c`` of the
output sees only channel ``c`` of the input, through the filter ``w[c, 0]`` (PyTorch's
``groups=C`` weight layout ``(C, 1, k, k)``)::

    out[n, c, oy, ox] = sum_{ky, kx} w[c, 0, ky, kx] * xpad[n, c, oy*s + ky, ox*s + kx]

where ``xpad`` is ``x`` with zeros around it (``padding.depthwise_geometry`` says how many
on each side). Differentiating the sum, every tap ``(ky, kx)`` links one output element to one
input element, so the backward pass walks the same taps and

    dx[n, c, iy, ix]  += w[c, 0, ky, kx] * dout[n, c, oy, ox]     (scatter back along the tap)
    dw[c, 0, ky, kx]  += dout[n, c, oy, ox] * x[n, c, iy, ix]      (sum over n, oy, ox)

with ``iy = oy*s + ky - pad_top`` and ``ix = ox*s + kx - pad_left``; taps that land in the
padding contribute nothing.

Three implementations, one per backend, chosen by :func:`minieffnet.backend.pick`:

* ``"numpy"``: the reference below loops over the k×k offsets; each offset is one strided
  slice of the padded input, so every step is a whole-array multiply-add over
  ``(N, C, Ho, Wo)``;
* ``"numba"``: the kernels of :mod:`minieffnet.ops._depthwise_numba` walk the same taps, but
  over cache-resident tiles that hold a block of channels side by side (so the late stages'
  2x2 and 4x4 images still give long, vectorised loops), skip the padding by clipping each
  tap's range instead of building a padded copy, and run (image group, channel block) tasks
  in parallel. In evaluation the forward can also finish each tile with BatchNorm and swish
  before storing it (:mod:`minieffnet.ops.depthwise_bn`);
* ``"cuda"``: the GPU kernels of :mod:`minieffnet.ops.depthwise_cuda` (one thread per
  output, or shared-memory tiles with halos); the arrays are copied to the device and back.

The cache is the same plain ``(x, w, stride, padding)`` under every backend, so the backward
may run under another backend than the forward.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ._checks import check_float_array, check_same_dtype, check_shape
from ._depthwise_numba import backward_numba, forward_numba
from .padding import depthwise_geometry


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


# --- numba.cuda ----------------------------------------------------------------------------
# Imported on first use, not at the top: numba.cuda takes about 0.2 s to import, as long as
# the rest of minieffnet, and only the "cuda" backend needs it.

def _forward_cuda(x, w, stride, pads, out_hw):
    from .depthwise_cuda import forward_cuda
    return forward_cuda(x, w, stride, pads, out_hw)


def _backward_cuda(dout, x, w, stride, pads):
    from .depthwise_cuda import backward_cuda
    return backward_cuda(dout, x, w, stride, pads)


# --- Public ops ----------------------------------------------------------------------------

def check_inputs(op: str, x, w, stride, padding: str):
    """Validate the forward's arguments as NumPy arrays; returns like
    :func:`~.padding.depthwise_geometry`."""
    check_float_array(op, "x", x, ndim=4)
    check_float_array(op, "w", w, ndim=4)
    check_same_dtype(op, x=x, w=w)
    return depthwise_geometry(op, x.shape, w.shape, stride, padding)


def depthwise_conv2d_forward(x: np.ndarray, w: np.ndarray, stride: int = 1,
                             padding: str = "symmetric"):
    """Depthwise convolution: each channel convolved with its own k×k filter, no bias.

    x: (N, C, H, W) float32 or float64.
    w: (C, 1, k, k), same dtype as x (PyTorch's ``groups=C`` layout); k odd.
    stride: 1 or 2.
    padding: ``"symmetric"`` ((k-1)//2 zeros each side, torchvision) or ``"same"``
        (TensorFlow: ``Ho = ceil(H / stride)``, extra zero at the bottom/right).

    Returns ``(out, cache)`` with out: (N, C, Ho, Wo), dtype of x, under every backend.
    Raises ValueError naming the op for any malformed input.
    """
    stride, pads, out_hw = check_inputs("depthwise_conv2d_forward", x, w, stride, padding)
    # The Numba kernels index planes directly, so they need C order; copying here (not in the
    # fast path) stores the contiguous copy in the cache and the backward does not repeat it.
    x = np.ascontiguousarray(x)
    out = backend.pick(forward_ref, forward_numba, _forward_cuda)(x, w, stride, pads, out_hw)
    return out, (x, w, stride, padding)


def depthwise_conv2d_backward(dout: np.ndarray, cache):
    """Gradients of :func:`depthwise_conv2d_forward`.

    dout: (N, C, Ho, Wo), the upstream gradient (cast to the forward's dtype).
    cache: the forward's cache ``(x, w, stride, padding)``.

    Returns ``(dx, dw)``: dx (N, C, H, W) like x, dw (C, 1, k, k) like w.
    """
    op = "depthwise_conv2d_backward"
    x, w, stride, padding = cache
    _, pads, out_hw = depthwise_geometry(op, x.shape, w.shape, stride, padding)
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, x.shape[:2] + out_hw)
    dout = dout.astype(x.dtype, copy=False)
    return backend.pick(_backward_ref, backward_numba, _backward_cuda)(dout, x, w, stride, pads)
