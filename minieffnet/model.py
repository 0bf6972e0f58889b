"""MBConv and EfficientNet, built from an :class:`~minieffnet.scaling.EfficientNetConfig`.

The network is data: ``config.blocks`` lists every MBConv (already scaled by width and depth,
paper Eq. 3) and :func:`~minieffnet.scaling.block_layers` lists each block's layers as
:class:`~minieffnet.scaling.LayerSpec` records, so this module only turns records into
layers (:func:`build_layer`). Layer names mirror the structure::

    stem.{0: conv, 1: bn}  blocks.i.{expand, depthwise, se, project, drop_connect}
    head.{0: conv, 1: bn}  classifier

Layer order per block (paper Figure 2 / MnasNet's MBConv, torchvision's ``MBConv``)::

    [1x1 expand -> BN -> swish]   (skipped when expand_ratio == 1)
    kxk depthwise (stride s) -> BN -> swish   (each BN -> swish is one fused op; in eval
                                               the depthwise conv joins them: DepthwiseBN)
    squeeze-excite (squeeze width from the block *input* channels)
    1x1 project -> BN             (linear bottleneck: no activation; in eval every conv -> BN
                                   runs with BN folded into the conv: ConvBN)
    [stochastic depth -> + input] (only when stride == 1 and in == out)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .nn import Module, Sequential
from .nn.layers import (BatchNorm2d, Conv2d, ConvBN, DepthwiseBN, DepthwiseConv2d, DropConnect,
                        Dropout, GlobalAvgPool, Linear, SqueezeExcite)
from .errors import BadOptionError
from .ops._checks import FLOAT_DTYPES, check_finite, check_float_array
from .scaling import (BlockSpec, EfficientNetConfig, LayerSpec, block_layers, check_memory,
                      count_parameters, head_layers, make_config, stem_layer)


def _batchnorm(layer: LayerSpec, config: EfficientNetConfig, dtype) -> BatchNorm2d:
    # BN -> swish runs as one fused op (BatchNorm2d's activation): a third fewer passes over
    # the activations, and one cached array instead of two.
    return BatchNorm2d(layer.out_channels, config.bn_eps, config.bn_momentum, dtype,
                       activation=layer.activation)


# The module of each kind of layer (scaling.LAYER_KINDS):
# (layer, config, rng, dtype) -> Module, convolution and FC weights drawn from rng.
_MODULES: dict[str, Callable[..., Module]] = {
    # ConvBN folds BN into the convolution in eval mode.
    "conv_bn": lambda layer, config, rng, dtype: ConvBN(
        Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
               config.padding, rng=rng, dtype=dtype), _batchnorm(layer, config, dtype)),
    # DepthwiseBN runs conv -> BN -> swish in one pass in eval mode.
    "depthwise_bn": lambda layer, config, rng, dtype: DepthwiseBN(
        DepthwiseConv2d(layer.in_channels, layer.kernel, layer.stride, config.padding,
                        rng=rng, dtype=dtype), _batchnorm(layer, config, dtype)),
    "squeeze_excite": lambda layer, config, rng, dtype: SqueezeExcite(
        layer.in_channels, layer.squeeze, rng=rng, dtype=dtype),
    "drop_connect": lambda layer, config, rng, dtype: DropConnect(layer.rate),
    "pool": lambda layer, config, rng, dtype: GlobalAvgPool(),
    "dropout": lambda layer, config, rng, dtype: Dropout(layer.rate),
    "linear": lambda layer, config, rng, dtype: Linear(
        layer.in_channels, layer.out_channels, rng=rng, dtype=dtype),
}


def build_layer(layer: LayerSpec, config: EfficientNetConfig, *, rng: np.random.Generator,
                dtype=np.float32) -> Module:
    """The module for one :class:`~minieffnet.scaling.LayerSpec`, with ``config``'s padding
    and BatchNorm eps/momentum; convolution and FC weights are drawn from ``rng``."""
    if layer.kind not in _MODULES:
        raise ValueError(f"build_layer: unknown layer kind {layer.kind!r}")
    return _MODULES[layer.kind](layer, config, rng, dtype)


class MBConv(Module):
    """Mobile inverted bottleneck with squeeze-and-excitation.

    x: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(self, spec: BlockSpec, config: EfficientNetConfig, *,
                 rng: np.random.Generator, dtype=np.float32, zero_init_residual: bool = False):
        super().__init__()
        # Built in forward order, so a seed draws the same weights in the same order.
        built = {layer.name: build_layer(layer, config, rng=rng, dtype=dtype)
                 for layer in block_layers(spec)}
        self.expand = built.get("expand")            # None for MBConv1 (expand_ratio 1)
        self.depthwise = built["depthwise"]
        self.se = built["se"]
        self.project = built["project"]
        self.use_residual = spec.has_residual
        self.drop_connect = built.get("drop_connect")  # None without the residual
        if zero_init_residual and self.use_residual:
            # The projection BN's scale at 0: the branch outputs 0 and the block starts as the
            # identity (Goyal et al. 2017, "zero gamma"; torchvision's zero_init_residual).
            # Set after every draw, so the other weights equal the default build's.
            self.project[1].weight.data[...] = 0

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


def _float_dtype(dtype) -> np.dtype:
    """``dtype`` as a NumPy dtype if it is float32 or float64, the dtypes every op computes in;
    else BadOptionError (integer weights would initialise to zeros, and no op takes float16)."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise BadOptionError(f"EfficientNet: dtype must be float32 or float64, got {dtype!r}")
    return resolved


class EfficientNet(Module):
    """EfficientNet: stem, MBConv blocks, 1x1 head, global pooling, dropout, classifier.

    x: (N, 3, H, W) float32 or float64 (the model's dtype) -> logits (N, num_classes).
    ``backward(dlogits)`` returns dx and fills ``p.grad`` for every parameter.
    ``features(x)`` and ``classify(features)`` are the two halves of ``forward``.
    ``model(x)`` that raises leaves the model as it was (running statistics, random stream:
    see :mod:`minieffnet.nn.module`); a config too large for this machine's memory is
    refused before any weight is allocated (:func:`~minieffnet.scaling.check_memory`).
    """

    def __init__(self, config: EfficientNetConfig, *, seed: int | np.random.Generator = 0,
                 dtype=np.float32, zero_init_residual: bool = False):
        super().__init__()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.config = config
        self.dtype = dtype = _float_dtype(dtype)
        # A config from a file may describe any size (10^9 classes): refuse before allocating.
        check_memory(f"EfficientNet {config.name}", count_parameters(config),
                     itemsize=self.dtype.itemsize, training=False)
        self.stem = build_layer(stem_layer(config), config, rng=rng, dtype=dtype)
        self.blocks = Sequential(*[MBConv(b, config, rng=rng, dtype=dtype,
                                          zero_init_residual=zero_init_residual)
                                   for b in config.blocks])
        self.head, self.pool, self.dropout, self.classifier = (
            build_layer(layer, config, rng=rng, dtype=dtype) for layer in head_layers(config))
        # One Generator drives dropout and stochastic depth; checkpoints save its state.
        self.rng = np.random.default_rng(rng.integers(2**63))
        self.set_rng(self.rng)

    def _feature_layers(self) -> list[Module]:
        return [self.stem, self.blocks, self.head]

    def _classifier_layers(self) -> list[Module]:
        return [self.pool, self.dropout, self.classifier]

    def features(self, x):
        """The feature map before pooling: stem -> blocks -> head.

        x: (N, 3, H, W) in the model's dtype -> (N, head_channels, h, w), h = H/32 for the
        imagenet preset and H/8 for cifar (rounded up). ``forward(x)`` is
        ``classify(features(x))``; class activation maps (:mod:`minieffnet.cam`) read it.
        """
        check_float_array("EfficientNet", "x", x, ndim=4)
        if x.shape[1] != 3 or 0 in x.shape:
            raise ValueError(f"EfficientNet: x must be (N, 3, H, W) RGB with at least one "
                             f"image, got shape {x.shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"EfficientNet: x has dtype {x.dtype} but the model is "
                             f"{self.dtype}; convert one of them (model.astype)")
        check_finite("EfficientNet", "x", x)
        for m in self._feature_layers():
            x = m.forward(x)
        return x

    def classify(self, features):
        """Pooling -> dropout -> classifier: (N, head_channels, h, w) -> logits
        (N, num_classes)."""
        for m in self._classifier_layers():
            features = m.forward(features)
        return features

    def forward(self, x):
        return self.classify(self.features(x))

    def backward(self, dlogits):
        d = dlogits
        for m in reversed(self._feature_layers() + self._classifier_layers()):
            d = m.backward(d)
        return d

    def astype(self, dtype) -> "EfficientNet":
        dtype = _float_dtype(dtype)
        super().astype(dtype)
        self.dtype = dtype
        return self


def efficientnet(variant: str = "b0", num_classes: int = 1000, *, preset: str = "imagenet",
                 seed: int | np.random.Generator = 0, dtype=np.float32,
                 zero_init_residual: bool = False, **overrides) -> EfficientNet:
    """Build EfficientNet-B0…B7 (or a custom / compound-scaled one) with TF initialisation.

    variant: "b0".."b7"; overrides: width, depth, resolution, phi, dropout, drop_connect, ...
    (see :func:`minieffnet.scaling.make_config`). preset "imagenet" is the paper's network,
    "cifar" the 32×32 adaptation documented in :mod:`minieffnet.scaling`.
    zero_init_residual: start every residual block's projection BatchNorm with scale 0, so
    each such block begins as the identity (off by default: the paper's and torchvision's
    EfficientNet initialise it to 1).
    """
    config = make_config(variant, num_classes, preset=preset, **overrides)
    return EfficientNet(config, seed=seed, dtype=dtype, zero_init_residual=zero_init_residual)
