"""EfficientNet as data: the B0 block table, compound scaling, and analytic counting.

Nothing here builds a network or allocates an array. :func:`make_config` turns a variant name
("b0".."b7"), custom coefficients or a compound coefficient φ into an :class:`EfficientNetConfig`
that lists every MBConv block explicitly (already scaled and expanded over its repeats).
:func:`block_layers` turns one block into its layers in forward order, the only code that
spells out the MBConv sequence; :func:`stem_layer` and :func:`head_layers` do the same for
the ends. The model is built from these :class:`LayerSpec` records, the torchvision names
are derived from them, and :func:`network_layers` places them at an input resolution for
:func:`count_parameters`, :func:`count_flops`, :func:`stage_table` and the benchmarks, so
counting B7 costs microseconds and no memory.

The paper (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for CNNs")
------------------------------------------------------------------------------
* Table 1 is the B0 baseline: a 3×3 stride-2 stem to 32 channels, seven MBConv stages
  (:data:`B0_STAGES`), then a 1×1 conv to 1280 channels, global average pooling and a linear
  classifier. Every conv is followed by BatchNorm; every BatchNorm except the one after an
  MBConv's projection is followed by swish. Each MBConv has squeeze-and-excitation squeezing to
  ``max(1, int(0.25 * block input channels))`` (not the expanded width).
* Eq. 3, compound scaling: depth ``d = α^φ``, width ``w = β^φ``, resolution ``r = γ^φ``
  subject to ``α·β²·γ² ≈ 2`` (so FLOPs grow by about ``2^φ``), with α=1.2, β=1.1, γ=1.15 found
  by a small grid search at φ=1 (paper §3.3, Step 1).
* The released B1..B7 (:data:`COEFFICIENTS`) are **hand-picked**, not exactly ``α^φ, β^φ,
  γ^φ``: B1 has width 1.0 (β¹ = 1.1) and resolution 240 (224·γ = 258); B7 has depth 3.1 and
  width 2.0 where φ=7 would give 3.58 and 1.95. Pick the released network with
  ``make_config("b3")`` and the rule itself with ``make_config(phi=3)``.

Presets
-------
``"imagenet"`` is the paper's network. ``"cifar"`` keeps every channel count, kernel, repeat,
SE and BN of the block table but changes two strides so a 32×32 image is not squeezed to 1×1
(the ImageNet network divides the input by 32). The stem's stride 2 becomes 1, and the first
stride-2 MBConv stage (Table 1 stage 3, 16→24 channels) gets stride 1; the three later
stride-2 stages keep theirs, so the network divides by 8 and the last stages still see a 4×4
map. Input size of each Table 1 stage, B0:

=====  ==========================  ========  =========  ======
stage  operator                    channels  imagenet   cifar
=====  ==========================  ========  =========  ======
1      Conv3x3 (stem)              32        224×224    32×32
2      MBConv1, k3x3               16        112×112    32×32
3      MBConv6, k3x3               24        112×112    32×32
4      MBConv6, k5x5               40        56×56      32×32
5      MBConv6, k3x3               80        28×28      16×16
6      MBConv6, k5x5               112       14×14      8×8
7      MBConv6, k5x5               192       14×14      8×8
8      MBConv6, k3x3               320       7×7        4×4
9      Conv1x1 & Pooling & FC      1280      7×7        4×4
=====  ==========================  ========  =========  ======

The cifar preset's default resolution is ``32 · r_variant / 224`` rounded (B0: 32, B3: 43,
B7: 86), so resolution scales with the variant exactly as on ImageNet; pass ``resolution=32``
to train a scaled network on unresized CIFAR images.

Choices that are not in the paper, and why
------------------------------------------
* Channel rounding and repeats follow torchvision (``_make_divisible``, ``ceil``) so that the
  parameter counts, and later its weights, match exactly.
* The head has ``round_filters(1280, width)`` channels (the paper's and TF's rule).
  torchvision uses ``4 * stage-8 channels``; the two agree for B0..B7 (1280 … 2560) and can
  differ by 8 for unusual custom widths.
* Under the compound rule the resolution is ``round(base · γ^φ)`` with no divisor: the
  convolutions accept any size, and at CIFAR scale a multiple of 8 would be far too coarse
  (32 → 40 is already 1.56× the FLOPs).
* BatchNorm eps and momentum (PyTorch's momentum: ``running = (1 - m)·running + m·batch``)
  follow torchvision: B0..B4 use 1e-5 and 0.1, B5..B7 use TF's 1e-3 and 0.01. Configs from
  φ use B0's; explicit ``bn_eps`` / ``bn_momentum`` override either.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import BadOptionError, TooLargeError
from .ops.padding import PADDINGS, output_size
from .validate import check_count, check_positive, check_rate, check_real


# --- the architecture as data (paper Table 1) ----------------------------------------------
@dataclass(frozen=True)
class StageSpec:
    """One MBConv row of the paper's Table 1, before scaling.

    ``repeats`` blocks; the first has ``stride`` and ``in_channels``, the others stride 1 and
    ``in_channels = out_channels``. ``expand_ratio`` is the "6" of "MBConv6".
    """
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


# Table 1, stages 2..8 (stage 1 is the stem, stage 9 the head).
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(1, 3, 1, 32, 16, 1),
    StageSpec(6, 3, 2, 16, 24, 2),
    StageSpec(6, 5, 2, 24, 40, 2),
    StageSpec(6, 3, 2, 40, 80, 3),
    StageSpec(6, 5, 1, 80, 112, 3),
    StageSpec(6, 5, 2, 112, 192, 4),
    StageSpec(6, 3, 1, 192, 320, 1),
)

# The cifar preset: Table 1 stage 3 (16 -> 24 channels) keeps full resolution; see the module
# docstring for the resulting map sizes.
CIFAR_STAGES: tuple[StageSpec, ...] = (
    B0_STAGES[0], StageSpec(6, 3, 1, 16, 24, 2), *B0_STAGES[2:],
)

STEM_CHANNELS = 32      # Table 1 stage 1: Conv3x3 -> 32
HEAD_CHANNELS = 1280    # Table 1 stage 9: Conv1x1 -> 1280
SE_RATIO = 0.25         # of the block's input channels, as in the paper's and TF's code
DROP_CONNECT = 0.2      # stochastic depth rate of the last block (paper §5.2: "0.2")

# preset -> (MBConv stages, stem stride, resolution of B0)
_PRESETS: dict[str, tuple[tuple[StageSpec, ...], int, int]] = {
    "imagenet": (B0_STAGES, 2, 224),
    "cifar": (CIFAR_STAGES, 1, 32),
}
PRESETS = tuple(_PRESETS)


@dataclass(frozen=True)
class Coefficients:
    """A released network's multipliers: width and depth relative to B0, input resolution in
    pixels, and the dropout rate before the classifier."""
    width: float
    depth: float
    resolution: int
    dropout: float


# The released B0..B7 (TF's efficientnet_builder.py, torchvision): hand-picked, see above.
COEFFICIENTS: dict[str, Coefficients] = {
    "b0": Coefficients(1.0, 1.0, 224, 0.2),
    "b1": Coefficients(1.0, 1.1, 240, 0.2),
    "b2": Coefficients(1.1, 1.2, 260, 0.3),
    "b3": Coefficients(1.2, 1.4, 300, 0.3),
    "b4": Coefficients(1.4, 1.8, 380, 0.4),
    "b5": Coefficients(1.6, 2.2, 456, 0.4),
    "b6": Coefficients(1.8, 2.6, 528, 0.5),
    "b7": Coefficients(2.0, 3.1, 600, 0.5),
}

# BatchNorm (eps, momentum in PyTorch's convention) per variant, as torchvision builds them:
# its B5..B7 were ported from TF with TF's BN settings (eps 1e-3, decay 0.99 = momentum 0.01).
BN_SETTINGS: dict[str, tuple[float, float]] = {
    **{v: (1e-5, 0.1) for v in ("b0", "b1", "b2", "b3", "b4")},
    **{v: (1e-3, 0.01) for v in ("b5", "b6", "b7")},
}


# --- scaling rules -------------------------------------------------------------------------
def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round it to a multiple of ``divisor``.

    torchvision's ``_make_divisible`` (from TF's MobileNet code): round ``channels * width`` to
    the nearest multiple of ``divisor``, at least ``divisor``, and go up one multiple if
    rounding lost more than 10 %. E.g. ``round_filters(32, 1.1) == 32`` (35.2 rounds down, 9 %
    lost) but ``round_filters(16, 1.4) == 24`` (22.4 -> 24).
    """
    check_positive("width", width)
    if divisor < 1:
        raise ValueError(f"round_filters: divisor must be a positive integer, got {divisor}")
    scaled = _finite_product("width", width, channels)
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up: ``ceil(depth * repeats)``.

    Rounding up (TF, torchvision) means every depth > 1 adds at least one block to each stage.
    """
    check_positive("depth", depth)
    return int(math.ceil(_finite_product("depth", depth, repeats)))


# α, β, γ of the compound rule (Eq. 3), found by the paper's grid search at φ=1 (§3.3 Step 1).
PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)


def compound_coefficients(phi: float, alpha: float = PAPER_COEFFICIENTS[0],
                          beta: float = PAPER_COEFFICIENTS[1],
                          gamma: float = PAPER_COEFFICIENTS[2]) -> tuple[float, float, float]:
    """The paper's compound rule (Eq. 3): ``(depth, width, resolution multiplier)``
    ``= (α^φ, β^φ, γ^φ)``.

    The paper constrains ``α·β²·γ² ≈ 2`` (FLOPs scale with d·w²·r², so each unit of φ about
    doubles them) and ``α, β, γ ≥ 1``; its grid search at φ=1 found the defaults
    (1.2·1.1²·1.15² = 1.92). Here α, β, γ need only be positive, so a grid search may explore
    freely, and φ may be negative to scale *down* from B0.
    """
    phi = check_real("phi", phi)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        check_positive(name, value)
    try:
        return alpha ** phi, beta ** phi, gamma ** phi
    except OverflowError:
        raise TooLargeError(f"phi={phi!r} scales B0 beyond any float (alpha^phi overflows)") \
            from None


# --- the resolved configuration -------------------------------------------------------------
@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block, fully resolved; :func:`block_layers` lists its layers in order.

    ``se_channels`` is the squeeze-excite width, ``drop_connect_rate`` its stochastic-depth
    rate (used only when :attr:`has_residual`). ``stage`` indexes :data:`B0_STAGES` (0..6):
    paper Table 1 stage ``stage + 2``, torchvision's ``features[stage + 1]``.
    """
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    se_channels: int
    drop_connect_rate: float
    stage: int

    @property
    def expanded_channels(self) -> int:
        """Width of the depthwise conv: ``in_channels * expand_ratio`` (equal to torchvision's
        rounded value because every scaled channel count is a multiple of 8)."""
        return self.in_channels * self.expand_ratio

    @property
    def has_expansion(self) -> bool:
        """Whether the block starts with a 1×1 expansion conv (not for MBConv1)."""
        return self.expand_ratio != 1

    @property
    def has_residual(self) -> bool:
        """Identity skip (and stochastic depth) only where shapes match: stride 1, in = out."""
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class EfficientNetConfig:
    """Everything needed to build or count one EfficientNet; build it with :func:`make_config`.

    ``width``/``depth`` are the multipliers that produced ``blocks`` (kept for display; changing
    them with ``dataclasses.replace`` does not rescale ``blocks``). ``resolution`` is the input
    size the network was scaled for (what :func:`count_flops` uses by default); the network
    itself accepts any size. ``dropout`` is applied before the classifier, ``drop_connect`` is
    the stochastic-depth rate the per-block rates grow towards. ``bn_momentum`` is PyTorch's
    convention. ``padding`` is ``"symmetric"`` (torchvision) or ``"same"`` (TF).
    """
    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    drop_connect: float
    num_classes: int
    stem_channels: int
    head_channels: int
    stem_stride: int
    se_ratio: float
    bn_eps: float
    bn_momentum: float
    padding: str
    blocks: tuple[BlockSpec, ...]

    def __post_init__(self) -> None:
        # A hand-built config must still chain: stem -> blocks -> head.
        if not self.blocks:
            raise ValueError("EfficientNetConfig: blocks must not be empty")
        if self.padding not in PADDINGS:
            raise ValueError(f"EfficientNetConfig: unknown padding {self.padding!r}; "
                             f"choose one of {PADDINGS}")
        channels = self.stem_channels
        for i, b in enumerate(self.blocks):
            if b.in_channels != channels:
                raise ValueError(f"EfficientNetConfig: block {i} takes {b.in_channels} "
                                 f"channels but receives {channels}")
            channels = b.out_channels

    @property
    def stages(self) -> tuple[tuple[BlockSpec, ...], ...]:
        """``blocks`` grouped by consecutive ``stage`` (torchvision nests them the same way)."""
        groups: list[list[BlockSpec]] = []
        for b in self.blocks:
            if not groups or groups[-1][0].stage != b.stage:
                groups.append([])
            groups[-1].append(b)
        return tuple(tuple(g) for g in groups)


def make_config(variant: str = "b0", num_classes: int = 1000, *, preset: str = "imagenet",
                width: float | None = None, depth: float | None = None,
                resolution: int | None = None, phi: float | None = None,
                alpha: float | None = None, beta: float | None = None,
                gamma: float | None = None, dropout: float | None = None,
                drop_connect: float | None = None, padding: str = "symmetric",
                bn_eps: float | None = None, bn_momentum: float | None = None,
                ) -> EfficientNetConfig:
    """Resolve a variant, custom coefficients or a compound coefficient into a config.

    * ``make_config("b3")``: the released B3 (:data:`COEFFICIENTS`, hand-picked).
    * ``make_config("b0", width=1.4)``: a variant with some coefficients overridden (single-
      dimension scaling, paper Fig. 3). Overrides change only what they name; dropout and BN
      settings stay the variant's.
    * ``make_config(phi=2)``: B0 scaled by the compound rule (Eq. 3) with α=1.2, β=1.1, γ=1.15
      or the given ``alpha``/``beta``/``gamma``; resolution ``round(base · γ^φ)``, B0's dropout
      and BN unless given. ``phi`` cannot be combined with another variant or with explicit
      width/depth/resolution, since it determines them.

    ``preset`` is ``"imagenet"`` (base resolution 224) or ``"cifar"`` (stem and Table 1 stage 3
    at stride 1, base resolution 32; see the module docstring). ``drop_connect`` defaults to
    0.2; block ``i`` of ``n`` gets ``drop_connect * i / n`` (TF, torchvision), so the first
    block has 0. Raises :class:`~minieffnet.errors.BadOptionError` (a ValueError) naming the
    offending argument.
    """
    key = variant.lower() if isinstance(variant, str) else None
    if key not in COEFFICIENTS:
        raise BadOptionError(f"unknown variant {variant!r}; choose one of {tuple(COEFFICIENTS)}")
    if not isinstance(preset, str) or preset not in _PRESETS:
        raise BadOptionError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    if padding not in PADDINGS:
        raise BadOptionError(f"unknown padding {padding!r}; choose one of {PADDINGS}")
    stage_specs, stem_stride, base_resolution = _PRESETS[preset]
    base = COEFFICIENTS[key]
    rule = {"alpha": alpha, "beta": beta, "gamma": gamma}
    rule = {k: v for k, v in rule.items() if v is not None}

    if phi is not None:
        if key != "b0":
            raise BadOptionError(f"phi applies the compound rule to B0, but variant={variant!r} "
                                 "fixes its own coefficients; pass one or the other")
        given = [n for n, v in (("width", width), ("depth", depth), ("resolution", resolution))
                 if v is not None]
        if given:
            raise BadOptionError(f"phi determines width, depth and resolution; do not also "
                                 f"pass {', '.join(given)}")
        depth, width, multiplier = compound_coefficients(phi, **rule)
        resolution = round(base_resolution * multiplier)
        if resolution < 1:
            raise BadOptionError(f"phi={phi:g} scales the {base_resolution} px input below one "
                                 "pixel")
        name = f"phi={phi:g}"
    else:
        if rule:
            raise BadOptionError(f"{', '.join(rule)} only apply with phi (the compound rule)")
        overridden = any(v is not None for v in (width, depth, resolution))
        width = base.width if width is None else check_positive("width", width)
        depth = base.depth if depth is None else check_positive("depth", depth)
        if resolution is None:
            # The variant's resolution relative to B0's 224, applied to the preset's base.
            resolution = round(base_resolution * base.resolution / 224)
        name = f"{key}+custom" if overridden else key
    resolution = check_count("resolution", resolution)
    if preset != "imagenet":
        name = f"{name}-{preset}"

    num_classes = check_count("num_classes", num_classes)
    dropout = check_rate("dropout", base.dropout if dropout is None else dropout)
    drop_connect = check_rate("drop_connect", DROP_CONNECT if drop_connect is None
                               else drop_connect)
    default_eps, default_momentum = BN_SETTINGS[key]
    bn_eps = check_positive("bn_eps", default_eps if bn_eps is None else bn_eps)
    bn_momentum = check_real("bn_momentum", default_momentum if bn_momentum is None
                             else bn_momentum)
    if not 0 < bn_momentum <= 1:
        raise BadOptionError(f"bn_momentum must be in (0, 1] (PyTorch's convention), "
                             f"got {bn_momentum}")

    fields = dict(
        name=name, width=float(width), depth=float(depth), resolution=resolution,
        dropout=dropout, drop_connect=drop_connect, num_classes=num_classes,
        stem_channels=round_filters(STEM_CHANNELS, width),
        head_channels=round_filters(HEAD_CHANNELS, width), stem_stride=stem_stride,
        se_ratio=SE_RATIO, bn_eps=float(bn_eps), bn_momentum=float(bn_momentum),
        padding=padding)
    plan = [(spec, round_filters(spec.in_channels, width), round_filters(spec.out_channels, width),
             round_repeats(spec.repeats, depth)) for spec in stage_specs]
    # Refuse a network whose weights cannot fit before unrolling its blocks (depth 1e9 would
    # list billions): count a copy with at most two blocks per stage, then add the missing
    # repeats, which are alike (their stochastic-depth rates aside).
    short = EfficientNetConfig(**fields, blocks=_expand_blocks(plan, drop_connect, 2))
    missing = sum((repeats - 2) * sum(layer.params for layer in block_layers(blocks[-1]))
                  for (*_, repeats), blocks in zip(plan, short.stages) if repeats > 2)
    check_memory(f"EfficientNet {name}", count_parameters(short) + missing, training=False)
    return EfficientNetConfig(**fields, blocks=_expand_blocks(plan, drop_connect))


def _expand_blocks(plan: list[tuple[StageSpec, int, int, int]], drop_connect: float,
                   max_repeats: int | None = None) -> tuple[BlockSpec, ...]:
    """Unroll the scaled stage table into one row per block (torchvision's loop).

    plan: per stage ``(spec, in_channels, out_channels, repeats)``, already scaled.
    max_repeats: keep at most this many blocks per stage (for counting, see make_config).
    """
    rows = []
    for s, (spec, in_ch, out_ch, repeats) in enumerate(plan):
        for j in range(repeats if max_repeats is None else min(repeats, max_repeats)):
            stride, cin = (spec.stride, in_ch) if j == 0 else (1, out_ch)
            rows.append((spec.expand_ratio, spec.kernel, stride, cin, out_ch, s))
    n = len(rows)
    # Stochastic depth grows linearly with the global block index (TF's drop_connect_rate *
    # idx / len(blocks), torchvision's stochastic_depth_prob * block_id / total): 0 first.
    return tuple(
        BlockSpec(expand_ratio=e, kernel=k, stride=st, in_channels=cin, out_channels=cout,
                  se_channels=max(1, int(SE_RATIO * cin)),
                  drop_connect_rate=drop_connect * float(i) / n, stage=s)
        for i, (e, k, st, cin, cout, s) in enumerate(rows))


# --- every layer, in forward order (the one description of the network) --------------------
@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One module of the network, as :mod:`minieffnet.model` builds it.

    ``name`` is the module's attribute in its parent, hence its state_dict path (``stem``,
    ``blocks.i.<name>``, ``head``, ``pool``, ``dropout``, ``classifier``). ``kind`` is a key
    of :data:`LAYER_KINDS`, which says what each kind is and how it counts.
    ``activation`` is ``"swish"`` or None (the projection's linear bottleneck).
    """
    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    activation: str | None = None
    squeeze: int = 0
    rate: float = 0.0

    @property
    def kind_info(self) -> LayerKind:
        """What this layer's ``kind`` is: its :data:`LAYER_KINDS` entry."""
        return LAYER_KINDS[self.kind]

    @property
    def weights(self) -> int:
        """Convolution or FC weights: one multiply-add each per output position."""
        return self.kind_info.weights(self)

    @property
    def params(self) -> int:
        """Trainable parameters: :attr:`weights`, BatchNorm's weight and bias (2 per channel;
        running statistics are buffers, not parameters) and the FCs' biases."""
        return self.weights + self.kind_info.biases(self)

    def flops(self, out_size: tuple[int, int]) -> int:
        """Multiply-adds to produce an ``out_size`` (H, W) output. Convolutions cost
        :attr:`weights` per output position; SE's FCs and the classifier run once, on pooled
        features. BatchNorm, activations, pooling, SE's rescale and the residual addition are
        not counted (the paper's and torchvision's convention)."""
        if self.kind_info.conv:
            return self.weights * out_size[0] * out_size[1]
        return self.weights

    def output_size(self, size: tuple[int, int], padding: str) -> tuple[int, int]:
        """Output (H, W) for an input of ``size`` (H, W) under ``padding``; (1, 1) after
        pooling."""
        if self.kind_info.conv:
            return (output_size(size[0], self.kernel, self.stride, padding),
                    output_size(size[1], self.kernel, self.stride, padding))
        return (1, 1) if self.kind_info.pool else size


@dataclass(frozen=True)
class LayerKind:
    """What one kind of :class:`LayerSpec` is, for everything that reads layers by kind.

    ``weights`` and ``biases``: ``(layer) -> count`` of its weights (one multiply-add each per
    output position) and of its other parameters (biases, BatchNorm's weight and bias).
    ``conv``: a convolution followed by BatchNorm and the layer's activation: its output size
    follows ``kernel``, ``stride`` and the padding, it costs its weights once per output
    position, and a training step keeps two values per output (the convolution's and
    BatchNorm's, whose activation is fused into it). ``pool``: its output is 1×1.
    """
    weights: Callable[[LayerSpec], int]
    biases: Callable[[LayerSpec], int]
    conv: bool = False
    pool: bool = False


def _none(layer: LayerSpec) -> int:
    return 0


def _batchnorm(layer: LayerSpec) -> int:
    return 2 * layer.out_channels


# Every kind of layer the network is made of. Adding a kind is a row here and its module in
# minieffnet.model; counting, the benchmarks and interop read its entry.
LAYER_KINDS: dict[str, LayerKind] = {
    # kernel x kernel convolution (no bias, stride) -> BatchNorm -> activation; every
    # convolution in EfficientNet is followed by BatchNorm
    "conv_bn": LayerKind(lambda s: s.out_channels * s.in_channels * s.kernel ** 2, _batchnorm,
                         conv=True),
    # the same with one filter per channel (groups = channels)
    "depthwise_bn": LayerKind(lambda s: s.out_channels * s.kernel ** 2, _batchnorm, conv=True),
    # squeeze to `squeeze` channels, excite back (two FCs with bias)
    "squeeze_excite": LayerKind(lambda s: 2 * s.in_channels * s.squeeze,
                                lambda s: s.squeeze + s.in_channels),
    # stochastic depth at `rate`; the block then adds its input
    "drop_connect": LayerKind(_none, _none),
    # global average pooling
    "pool": LayerKind(_none, _none, pool=True),
    # dropout at `rate`
    "dropout": LayerKind(_none, _none),
    # fully connected with bias (the classifier)
    "linear": LayerKind(lambda s: s.in_channels * s.out_channels, lambda s: s.out_channels),
}


def stem_layer(config: EfficientNetConfig) -> LayerSpec:
    """Table 1 stage 1: 3×3 conv (stride ``config.stem_stride``) -> BN -> swish, 3 ->
    ``stem_channels``."""
    return LayerSpec("stem", "conv_bn", 3, config.stem_channels, 3, config.stem_stride,
                     "swish")


def block_layers(block: BlockSpec) -> tuple[LayerSpec, ...]:
    """One MBConv block's layers in forward order (paper Figure 2, torchvision's ``MBConv``)::

        expand     1×1 conv -> BN -> swish, in -> expanded   (only if has_expansion)
        depthwise  k×k depthwise conv (stride s) -> BN -> swish
        se         squeeze-excite, squeezing to se_channels (from the block *input* width)
        project    1×1 conv -> BN, expanded -> out           (linear bottleneck)
        drop_connect  stochastic depth, then + input          (only if has_residual)
    """
    e = block.expanded_channels
    expand = (LayerSpec("expand", "conv_bn", block.in_channels, e, activation="swish"),)
    residual = (LayerSpec("drop_connect", "drop_connect", block.out_channels,
                          block.out_channels, rate=block.drop_connect_rate),)
    return (*(expand if block.has_expansion else ()),
            LayerSpec("depthwise", "depthwise_bn", e, e, block.kernel, block.stride, "swish"),
            LayerSpec("se", "squeeze_excite", e, e, squeeze=block.se_channels),
            LayerSpec("project", "conv_bn", e, block.out_channels),
            *(residual if block.has_residual else ()))


def head_layers(config: EfficientNetConfig) -> tuple[LayerSpec, ...]:
    """Table 1 stage 9: 1×1 conv to ``head_channels`` -> BN -> swish, global average pooling,
    dropout, the classifier."""
    c = config.head_channels
    return (LayerSpec("head", "conv_bn", config.blocks[-1].out_channels, c, activation="swish"),
            LayerSpec("pool", "pool", c, c),
            LayerSpec("dropout", "dropout", c, c, rate=config.dropout),
            LayerSpec("classifier", "linear", c, config.num_classes))


@dataclass(frozen=True, slots=True)
class PlacedLayer:
    """A :class:`LayerSpec` at its place in the network, for one input size.

    ``path`` is its state_dict prefix (``blocks.3.expand``), ``stage`` the paper's Table 1
    stage (1 stem, 2..8 MBConv stages, 9 head, pooling and classifier), ``in_size`` and
    ``out_size`` the (H, W) it reads and writes.
    """
    path: str
    stage: int
    layer: LayerSpec
    in_size: tuple[int, int]
    out_size: tuple[int, int]

    @property
    def flops(self) -> int:
        """Multiply-adds of this layer at this size (see :meth:`LayerSpec.flops`)."""
        return self.layer.flops(self.out_size)


def network_layers(config: Any, resolution: int | tuple[int, int] | None = None
                   ) -> tuple[PlacedLayer, ...]:
    """Every layer of ``config``'s network in forward order, for an input of ``resolution``
    (int or (H, W); default ``config.resolution``): stem, each block's :func:`block_layers`,
    then :func:`head_layers`. Sizes follow the config's padding.

    ``config`` is an :class:`EfficientNetConfig` or anything with one as ``.config`` (a model).
    """
    cfg = _as_config(config)
    size = _hw(cfg.resolution if resolution is None else resolution)
    layers = [("stem", 1, stem_layer(cfg))]
    layers += [(f"blocks.{i}.{layer.name}", block.stage + 2, layer)
               for i, block in enumerate(cfg.blocks) for layer in block_layers(block)]
    layers += [(layer.name, 9, layer) for layer in head_layers(cfg)]
    placed = []
    for path, stage, layer in layers:
        out = layer.output_size(size, cfg.padding)
        placed.append(PlacedLayer(path, stage, layer, size, out))
        size = out
    return tuple(placed)


# --- analytic counting ---------------------------------------------------------------------
@dataclass(frozen=True)
class StageRow:
    """One row of the paper's Table 1 for a config, plus what it costs.

    ``stage`` is the paper's number (1 = stem, 2..8 = MBConv stages, 9 = head and classifier),
    ``resolution`` the stage's *input* (H, W) as in Table 1, ``channels`` its output channels,
    ``layers`` its block count; ``params`` and ``flops`` (multiply-adds) are the stage's share.
    """
    stage: int
    operator: str
    resolution: tuple[int, int]
    channels: int
    layers: int
    params: int
    flops: int


def stage_table(config: Any, resolution: int | tuple[int, int] | None = None
                ) -> list[StageRow]:
    """Table 1 for ``config`` at ``resolution`` (default ``config.resolution``): 9 rows.

    ``config`` is an :class:`EfficientNetConfig` or anything with one as ``.config`` (a model).
    Each row sums the :func:`network_layers` of its stage.
    """
    cfg = _as_config(config)
    # Consecutive layers of one stage form a row, as consecutive blocks form config.stages.
    groups = [list(g) for _, g in itertools.groupby(network_layers(cfg, resolution),
                                                    key=lambda p: p.stage)]
    labels = [("Conv3x3", cfg.stem_channels, 1),
              *((f"MBConv{s[0].expand_ratio}, k{s[0].kernel}x{s[0].kernel}",
                 s[-1].out_channels, len(s)) for s in cfg.stages),
              ("Conv1x1 & Pooling & FC", cfg.head_channels, 1)]
    return [StageRow(group[0].stage, label, group[0].in_size, channels, n,
                     sum(p.layer.params for p in group), sum(p.flops for p in group))
            for group, (label, channels, n) in zip(groups, labels, strict=True)]


def count_parameters(config: Any) -> int:
    """Trainable parameters of the network ``config`` describes, counted analytically.

    Convs have no bias (BatchNorm follows); BatchNorm contributes weight and bias (2 per
    channel; running statistics are buffers, not parameters); SE's two FCs and the classifier
    have biases. B0..B7 at 1000 classes give torchvision's counts exactly (5,288,548 for B0).
    ``config`` may also be a model holding its config as ``.config``.
    """
    return sum(p.layer.params for p in network_layers(config))


def count_flops(config: Any, resolution: int | tuple[int, int] | None = None) -> int:
    """Multiply-adds of one forward pass at ``resolution`` (default ``config.resolution``).

    This is what the paper calls "FLOPs" (0.39 B for B0): every conv (dense, depthwise, 1×1),
    the SE FCs and the classifier, one per multiply-add; BatchNorm, activations, pooling,
    SE's rescale and the residual additions are not counted, as in torchvision's published
    numbers (element-wise work is cheap next to the convolutions). B0..B3, B6 and B7 land
    within 2 % of the paper's Table 2; B4 and B5 come out 4.6 % and 3.7 % above its 4.2 B and
    9.9 B, as every per-layer count of the released architecture does, and equal
    torchvision's published numbers.
    ``config`` may also be a model with ``.config``.
    """
    return sum(p.flops for p in network_layers(config, resolution))


def count_activations(config: Any, resolution: int | tuple[int, int] | None = None) -> int:
    """Activation values one image writes in a training forward pass at ``resolution``
    (default ``config.resolution``): the tensors a training step keeps for its backward.

    Per layer of :func:`network_layers`: two per convolution output (the convolution's and
    BatchNorm's, whose swish is fused into it), one per squeeze-excite, stochastic-depth and
    residual output, pooled feature, dropout and logit. Equal FLOPs are not equal memory:
    resolution scaling enlarges every map, width the channels, depth adds whole blocks.
    ``config`` may also be a model with ``.config``.
    """
    return sum((2 if p.layer.kind_info.conv else 1) * p.layer.out_channels * p.out_size[0]
               * p.out_size[1] for p in network_layers(config, resolution))


# --- memory --------------------------------------------------------------------------------
# Training keeps per parameter its value, its gradient and up to two more copies (momentum,
# Adam's two moments, the EMA's average).
_TRAINING_COPIES = 4


def memory_estimate(parameters: int, activations: int = 0, *, batch_size: int = 0,
                    training: bool = True, itemsize: int = 4) -> int:
    """Bytes a network needs, at least: ``parameters`` values (times 4 in training: value,
    gradient and up to two optimiser or EMA slots) plus ``batch_size`` images'
    ``activations`` (:func:`count_activations`, per image), ``itemsize`` bytes each.

    Temporaries come on top, so this is a lower bound: a network it says does not fit cannot
    run, which is what :func:`check_memory` refuses.
    """
    copies = _TRAINING_COPIES if training else 1
    return itemsize * (copies * parameters + batch_size * activations)


def physical_memory() -> int | None:
    """This machine's RAM in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(what: str, parameters: int, activations: int = 0, *, batch_size: int = 0,
                 training: bool = True, itemsize: int = 4) -> int:
    """Refuse, before anything is allocated, what cannot fit in this machine's memory.

    The one up-front check of the library (the model builder, :func:`make_config`, the
    training configuration and ``minieffnet info`` call it): :func:`memory_estimate` of the
    arguments against :func:`physical_memory`. ``what`` names the network in the message.
    Returns the estimate in bytes; raises :class:`~minieffnet.errors.TooLargeError`.
    """
    need = memory_estimate(parameters, activations, batch_size=batch_size, training=training,
                           itemsize=itemsize)
    have = physical_memory()
    if have is not None and need > have:
        per_batch = (f" and {activations:,} activation values per image for a batch of "
                     f"{batch_size}" if batch_size else "")
        raise TooLargeError(f"{what} needs at least {_gib(need)} of memory ({parameters:,} "
                            f"parameters{per_batch}{' in training' if training else ''}) but "
                            f"this machine has {_gib(have)}: choose a smaller width, "
                            "depth, resolution, num_classes or batch_size")
    return need


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _finite_product(name: str, value: float, factor: int) -> float:
    """``value * factor`` for scaling a count; TooLargeError if it overflows a float."""
    product = value * factor
    if not math.isfinite(product):
        raise TooLargeError(f"{name} {value!r} is too large: it scales {factor} beyond any "
                            "float")
    return product


def _as_config(obj: Any) -> EfficientNetConfig:
    cfg = getattr(obj, "config", obj)
    if not isinstance(cfg, EfficientNetConfig):
        raise TypeError(f"expected an EfficientNetConfig or a model with one as .config, "
                        f"got {type(obj).__name__}")
    return cfg


def _hw(resolution: int | tuple[int, int]) -> tuple[int, int]:
    sizes = resolution if isinstance(resolution, tuple) else (resolution, resolution)
    if len(sizes) != 2:
        raise ValueError(f"resolution must be an int or (H, W), got {resolution!r}")
    return check_count("resolution", sizes[0]), check_count("resolution", sizes[1])
