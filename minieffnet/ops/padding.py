"""Spatial padding and output geometry for convolutions, shared by every convolution op
(CPU and GPU alike, so no op module has to import another for it).

Two conventions exist in EfficientNet implementations:

* ``"symmetric"`` (torchvision): ``(k - 1) // 2`` zeros on every side, whatever the stride.
* ``"same"`` (TensorFlow, the paper's code): pad so that ``out = ceil(in / stride)``; when the
  total padding is odd the extra zero goes to the bottom/right. For stride 2 and even inputs
  this differs from symmetric padding (TF pads ``k//2 - 1`` on top, ``k//2`` at the bottom),
  which is why weights ported from TF need "same" to reproduce its outputs.
"""
from __future__ import annotations

import math

from ._checks import check_stride

PADDINGS = ("symmetric", "same")


def pad_amounts(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Zeros added before and after one spatial axis of length ``size``.

    Returns ``(before, after)``. Raises ValueError for an unknown padding name.
    """
    if padding == "symmetric":
        p = (k - 1) // 2
        return p, p
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + k - size, 0)
        return total // 2, total - total // 2
    raise ValueError(f"unknown padding {padding!r}; choose one of {PADDINGS}")


def output_size(size: int, k: int, stride: int, padding: str) -> int:
    """Length of the output axis: ``floor((size + before + after - k) / stride) + 1``."""
    before, after = pad_amounts(size, k, stride, padding)
    return (size + before + after - k) // stride + 1


def conv_geometry(op: str, H: int, W: int, k: int, stride: int, padding: str):
    """Validate a convolution's hyper-parameters and return its padding and output size.

    Returns ``((pad_top, pad_bottom, pad_left, pad_right), (H_out, W_out))``.
    Raises ValueError naming ``op`` for an even kernel, a stride other than the integer 1 or
    2 (:func:`~._checks.check_stride`: every convolution op validates its stride here), an
    unknown padding or an input too small for the kernel.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"{op}: kernel size must be odd and positive, got {k}")
    stride = check_stride(op, stride)
    if padding not in PADDINGS:
        raise ValueError(f"{op}: unknown padding {padding!r}; choose one of {PADDINGS}")
    pt, pb = pad_amounts(H, k, stride, padding)
    pl, pr = pad_amounts(W, k, stride, padding)
    Ho = (H + pt + pb - k) // stride + 1
    Wo = (W + pl + pr - k) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{op}: input {H}x{W} is too small for a {k}x{k} kernel")
    return (pt, pb, pl, pr), (Ho, Wo)


def depthwise_geometry(op: str, x_shape, w_shape, stride, padding: str):
    """Check a depthwise convolution's shapes and hyper-parameters (also for device arrays,
    which is why it takes shapes: the CPU and GPU ops both validate through it).

    x_shape: (N, C, H, W); w_shape: (C, 1, k, k). Returns ``(stride, pads, (Ho, Wo))`` with
    ``pads = (top, bottom, left, right)``. Raises ValueError naming ``op``.
    """
    C = x_shape[1]
    if w_shape[0] != C or w_shape[1] != 1 or w_shape[2] != w_shape[3]:
        raise ValueError(f"{op}: w must have shape (C, 1, k, k) with C = {C} (x's channels),"
                         f" got {tuple(w_shape)}")
    pads, out_hw = conv_geometry(op, x_shape[2], x_shape[3], w_shape[2], stride, padding)
    return int(stride), pads, out_hw
