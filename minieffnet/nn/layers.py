"""Layers: each owns its parameters, calls one op forward and backward, keeps the cache.

``forward(x)`` stores the op's cache; ``backward(dout)`` consumes it, sets ``p.grad`` on the
layer's parameters and returns the gradient for the input. Weight layouts match PyTorch's
(``Conv2d``: (out, in, k, k); depthwise: (C, 1, k, k); ``Linear``: (out, in)), so weights
move between minieffnet and torchvision by name alone.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from . import init
from .module import Module, Sequential
from .parameter import Parameter


class Conv2d(Module):
    """Dense convolution, no groups; a 1×1 stride-1 conv runs as a matrix product.

    x: (N, in_channels, H, W) -> (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: str = "symmetric", bias: bool = False, *,
                 rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = Parameter(init.conv_weight(
            rng, (out_channels, in_channels, kernel_size, kernel_size), dtype=dtype))
        self.bias = Parameter(np.zeros(out_channels, dtype), decay=False) if bias else None

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        out, self._cache = ops.conv2d_forward(x, self.weight.data, b, self.stride, self.padding)
        return out

    def backward(self, dout):
        dx, dw, db = ops.conv2d_backward(dout, self._saved())
        self.weight.grad = dw
        if self.bias is not None:
            self.bias.grad = db
        return dx


class DepthwiseConv2d(Module):
    """One k×k filter per channel (groups = channels), no bias.

    x: (N, C, H, W) -> (N, C, H', W').
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1,
                 padding: str = "symmetric", *, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = Parameter(init.conv_weight(
            rng, (channels, 1, kernel_size, kernel_size), groups=channels, dtype=dtype))

    def forward(self, x):
        out, self._cache = ops.depthwise_conv2d_forward(x, self.weight.data, self.stride,
                                                        self.padding)
        return out

    def backward(self, dout):
        dx, self.weight.grad = ops.depthwise_conv2d_backward(dout, self._saved())
        return dx


class BatchNorm2d(Module):
    """Batch normalisation over (N, H, W) per channel, with running statistics.

    momentum follows PyTorch: ``running = (1 - momentum) * running + momentum * batch``
    (the paper's TF momentum 0.99 is 0.01 here). activation: None or "swish", applied to the
    output in the same pass (see :func:`~minieffnet.ops.batchnorm2d_forward`).
    x: (N, C, H, W) -> same shape.
    """

    buffer_names = ("running_mean", "running_var")

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float32,
                 activation: str | None = None):
        super().__init__()
        self.eps, self.momentum, self.activation = eps, momentum, activation
        self.weight = Parameter(np.ones(channels, dtype), decay=False)
        self.bias = Parameter(np.zeros(channels, dtype), decay=False)
        self.running_mean = np.zeros(channels, dtype)
        self.running_var = np.ones(channels, dtype)

    def forward(self, x):
        out, self._cache = ops.batchnorm2d_forward(
            x, self.weight.data, self.bias.data, self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps,
            activation=self.activation)
        return out

    def backward(self, dout):
        dx, self.weight.grad, self.bias.grad = ops.batchnorm2d_backward(dout, self._saved())
        return dx


class _FusedInEval(Sequential):
    """``convolution -> BatchNorm2d`` (children 0 and 1, named as in a Sequential, so the
    state dict is unchanged). Training runs the two layers; evaluation, where BatchNorm is a
    fixed per-channel map, runs both (and BN's activation) as one op,
    ``ops.<fused_op>_forward``, whose backward still gives every gradient.
    """

    # Each subclass names its op; looked up in ``ops`` at call time, like every other
    # layer's, so that wrapping ``ops.*`` (benchmarks/profile_step.py) reaches it.
    fused_op: str

    def forward(self, x):
        self._cache = None  # the fused op's; training leaves it to the two children
        if self.training:
            return super().forward(x)
        conv, bn = self.layers
        out, self._cache = getattr(ops, f"{self.fused_op}_forward")(
            x, conv.weight.data, bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var,
            stride=conv.stride, padding=conv.padding, eps=bn.eps, activation=bn.activation)
        return out

    def backward(self, dout):
        if self._cache is None:  # trained (or never run): the children hold the caches
            return super().backward(dout)
        conv, bn = self.layers
        backward = getattr(ops, f"{self.fused_op}_backward")
        dx, conv.weight.grad, bn.weight.grad, bn.bias.grad = backward(dout, self._cache)
        return dx


class ConvBN(_FusedInEval):
    """``Conv2d -> BatchNorm2d``; in evaluation BatchNorm is folded into the convolution's
    weights and its bias and activation finish the product's output in cache
    (:func:`~minieffnet.ops.conv_bn_eval_forward`). x: (N, C, H, W) -> (N, O, H', W')."""

    fused_op = "conv_bn_eval"


class DepthwiseBN(_FusedInEval):
    """``DepthwiseConv2d -> BatchNorm2d``; in evaluation the two (and BN's activation) run in
    one pass over the output (:func:`~minieffnet.ops.depthwise_bn_eval_forward`).
    x: (N, C, H, W) -> (N, C, H', W')."""

    fused_op = "depthwise_bn_eval"


class Swish(Module):
    """``x * sigmoid(x)``, elementwise; any shape."""

    def forward(self, x):
        out, self._cache = ops.swish_forward(x)
        return out

    def backward(self, dout):
        return ops.swish_backward(dout, self._saved())


class SqueezeExcite(Module):
    """Squeeze-and-Excitation (Hu et al., 2018) as used in MBConv.

    Squeeze: mean over H, W; excite: FC(channels -> squeeze) + swish, FC(squeeze -> channels)
    + sigmoid; scale the input channels. x: (N, C, H, W) -> same shape. The FCs are the 1×1
    convolutions of torchvision's SE with their (out, in, 1, 1) weights stored as (out, in).
    """

    def __init__(self, channels: int, squeeze_channels: int, *, rng: np.random.Generator,
                 dtype=np.float32):
        super().__init__()
        self.reduce_weight = Parameter(init.conv_weight(
            rng, (squeeze_channels, channels, 1, 1), dtype=dtype).reshape(squeeze_channels, channels))
        self.reduce_bias = Parameter(np.zeros(squeeze_channels, dtype), decay=False)
        self.expand_weight = Parameter(init.conv_weight(
            rng, (channels, squeeze_channels, 1, 1), dtype=dtype).reshape(channels, squeeze_channels))
        self.expand_bias = Parameter(np.zeros(channels, dtype), decay=False)

    def forward(self, x):
        out, self._cache = ops.squeeze_excite_forward(
            x, self.reduce_weight.data, self.reduce_bias.data,
            self.expand_weight.data, self.expand_bias.data)
        return out

    def backward(self, dout):
        (dx, self.reduce_weight.grad, self.reduce_bias.grad, self.expand_weight.grad,
         self.expand_bias.grad) = ops.squeeze_excite_backward(dout, self._saved())
        return dx


class Linear(Module):
    """Fully connected layer. x: (N, in_features) -> (N, out_features)."""

    def __init__(self, in_features: int, out_features: int, *, rng: np.random.Generator,
                 dtype=np.float32):
        super().__init__()
        self.weight = Parameter(init.dense_weight(rng, (out_features, in_features), dtype))
        self.bias = Parameter(np.zeros(out_features, dtype), decay=False)

    def forward(self, x):
        out, self._cache = ops.linear_forward(x, self.weight.data, self.bias.data)
        return out

    def backward(self, dout):
        dx, self.weight.grad, self.bias.grad = ops.linear_backward(dout, self._saved())
        return dx


class GlobalAvgPool(Module):
    """Mean over the spatial axes. x: (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        out, self._cache = ops.global_avg_pool_forward(x)
        return out

    def backward(self, dout):
        return ops.global_avg_pool_backward(dout, self._saved())


class _Stochastic(Module):
    """A layer that draws random masks in training from the Generator in ``self.rng``.

    The model hands one shared Generator to all its stochastic layers (``set_rng``), so a
    checkpoint can save and restore a single random state and resume exactly.
    """

    def __init__(self, p: float, rng: np.random.Generator | None = None):
        super().__init__()
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)


class Dropout(_Stochastic):
    """Inverted dropout: zero with probability p, scale survivors by 1/(1-p); any shape."""

    def forward(self, x):
        out, self._cache = ops.dropout_forward(x, self.p, self.rng, self.training)
        return out

    def backward(self, dout):
        return ops.dropout_backward(dout, self._saved())


class DropConnect(_Stochastic):
    """Stochastic depth (Huang et al., 2016): drop a residual branch per sample.

    x: (N, ...) -> same shape; each sample is zeroed with probability p or scaled by 1/(1-p).
    """

    def forward(self, x):
        out, self._cache = ops.drop_connect_forward(x, self.p, self.rng, self.training)
        return out

    def backward(self, dout):
        return ops.drop_connect_backward(dout, self._saved())
