"""MBConv and EfficientNet, built from an :class:`~minieffnet.scaling.EfficientNetConfig`.

The network is data: ``config.blocks`` lists every MBConv (already scaled by width and depth,
paper Eq. 3), so this module only turns rows into layers. Layer names mirror the structure::

    stem.{0: conv, 1: bn}  blocks.i.{expand, depthwise, se, project, drop_connect}
    head.{0: conv, 1: bn}  classifier

Layer order per block (paper Figure 2 / MnasNet's MBConv, torchvision's ``MBConv``)::

    [1x1 expand -> BN -> swish]   (skipped when expand_ratio == 1)
    kxk depthwise (stride s) -> BN -> swish   (each BN -> swish is one fused op; in eval
                                               the depthwise conv joins them: DepthwiseBN)
    squeeze-excite (squeeze width from the block *input* channels)
    1x1 project -> BN             (linear bottleneck: no activation)
    [stochastic depth -> + input] (only when stride == 1 and in == out)
"""
from __future__ import annotations

import numpy as np

from .nn import Module, Sequential
from .nn.layers import (BatchNorm2d, Conv2d, DepthwiseBN, DepthwiseConv2d, DropConnect, Dropout,
                        GlobalAvgPool, Linear, SqueezeExcite)
from .ops._checks import check_finite, check_float_array
from .scaling import BlockSpec, EfficientNetConfig, make_config


def _conv_bn(conv: Module, channels: int, config: EfficientNetConfig, dtype, act: bool = True):
    # BN -> swish runs as one fused op (BatchNorm2d's activation): a third fewer passes over
    # the activations, and one cached array instead of two.
    return Sequential(conv, BatchNorm2d(channels, config.bn_eps, config.bn_momentum, dtype,
                                        activation="swish" if act else None))


class MBConv(Module):
    """Mobile inverted bottleneck with squeeze-and-excitation.

    x: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(self, spec: BlockSpec, config: EfficientNetConfig, *,
                 rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        hidden = spec.in_channels * spec.expand_ratio
        self.expand = (_conv_bn(Conv2d(spec.in_channels, hidden, 1, rng=rng, dtype=dtype),
                                hidden, config, dtype)
                       if spec.expand_ratio != 1 else None)
        self.depthwise = DepthwiseBN(
            DepthwiseConv2d(hidden, spec.kernel, spec.stride, config.padding, rng=rng, dtype=dtype),
            BatchNorm2d(hidden, config.bn_eps, config.bn_momentum, dtype, activation="swish"))
        self.se = SqueezeExcite(hidden, spec.se_channels, rng=rng, dtype=dtype)
        self.project = _conv_bn(Conv2d(hidden, spec.out_channels, 1, rng=rng, dtype=dtype),
                                spec.out_channels, config, dtype, act=False)
        self.use_residual = spec.stride == 1 and spec.in_channels == spec.out_channels
        self.drop_connect = DropConnect(spec.drop_connect_rate) if self.use_residual else None

    def _branch(self) -> list[Module]:
        return [m for m in (self.expand, self.depthwise, self.se, self.project) if m is not None]

    def forward(self, x):
        h = x
        for m in self._branch():
            h = m.forward(h)
        if self.use_residual:
            h = self.drop_connect.forward(h) + x
        return h

    def backward(self, dout):
        dh = self.drop_connect.backward(dout) if self.use_residual else dout
        for m in reversed(self._branch()):
            dh = m.backward(dh)
        return dh + dout if self.use_residual else dh


class EfficientNet(Module):
    """EfficientNet: stem, MBConv blocks, 1x1 head, global pooling, dropout, classifier.

    x: (N, 3, H, W) float32 or float64 (the model's dtype) -> logits (N, num_classes).
    ``backward(dlogits)`` returns dx and fills ``p.grad`` for every parameter.
    """

    def __init__(self, config: EfficientNetConfig, *, seed: int | np.random.Generator = 0,
                 dtype=np.float32):
        super().__init__()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.config = config
        self.dtype = np.dtype(dtype)
        c = config
        self.stem = _conv_bn(Conv2d(3, c.stem_channels, 3, c.stem_stride, c.padding, rng=rng,
                                    dtype=dtype), c.stem_channels, c, dtype)
        self.blocks = Sequential(*[MBConv(b, c, rng=rng, dtype=dtype) for b in c.blocks])
        last = c.blocks[-1].out_channels
        self.head = _conv_bn(Conv2d(last, c.head_channels, 1, rng=rng, dtype=dtype),
                             c.head_channels, c, dtype)
        self.pool = GlobalAvgPool()
        self.dropout = Dropout(c.dropout)
        self.classifier = Linear(c.head_channels, c.num_classes, rng=rng, dtype=dtype)
        # One Generator drives dropout and stochastic depth; checkpoints save its state.
        self.rng = np.random.default_rng(rng.integers(2**63))
        self.set_rng(self.rng)

    def _layers(self) -> list[Module]:
        return [self.stem, self.blocks, self.head, self.pool, self.dropout, self.classifier]

    def forward(self, x):
        check_float_array("EfficientNet", "x", x, ndim=4)
        if x.shape[1] != 3:
            raise ValueError(f"EfficientNet: x must be (N, 3, H, W) RGB, got shape {x.shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"EfficientNet: x has dtype {x.dtype} but the model is "
                             f"{self.dtype}; convert one of them (model.astype)")
        check_finite("EfficientNet", "x", x)
        for m in self._layers():
            x = m.forward(x)
        return x

    def backward(self, dlogits):
        d = dlogits
        for m in reversed(self._layers()):
            d = m.backward(d)
        return d

    def astype(self, dtype) -> "EfficientNet":
        super().astype(dtype)
        self.dtype = np.dtype(dtype)
        return self


def efficientnet(variant: str = "b0", num_classes: int = 1000, *, preset: str = "imagenet",
                 seed: int | np.random.Generator = 0, dtype=np.float32,
                 **overrides) -> EfficientNet:
    """Build EfficientNet-B0…B7 (or a custom / compound-scaled one) with TF initialisation.

    variant: "b0".."b7"; overrides: width, depth, resolution, phi, dropout, drop_connect, ...
    (see :func:`minieffnet.scaling.make_config`). preset "imagenet" is the paper's network,
    "cifar" the 32×32 adaptation documented in :mod:`minieffnet.scaling`.
    """
    config = make_config(variant, num_classes, preset=preset, **overrides)
    return EfficientNet(config, seed=seed, dtype=dtype)
