"""EfficientNet as data: the B0 block table, compound scaling, and analytic counting.

Nothing here builds a network or allocates an array. :func:`make_config` turns a variant name
("b0".."b7"), custom coefficients or a compound coefficient φ into an :class:`EfficientNetConfig`
that lists every MBConv block explicitly (already scaled and expanded over its repeats); the
model is built from that list, and :func:`count_parameters` / :func:`count_flops` /
:func:`stage_table` read the same list, so counting B7 costs microseconds and no memory.

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

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

from .ops.padding import PADDINGS, output_size


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
    _check_positive("width", width)
    if divisor < 1:
        raise ValueError(f"round_filters: divisor must be a positive integer, got {divisor}")
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up: ``ceil(depth * repeats)``.

    Rounding up (TF, torchvision) means every depth > 1 adds at least one block to each stage.
    """
    _check_positive("depth", depth)
    return int(math.ceil(depth * repeats))


def compound_coefficients(phi: float, alpha: float = 1.2, beta: float = 1.1,
                          gamma: float = 1.15) -> tuple[float, float, float]:
    """The paper's compound rule (Eq. 3): ``(depth, width, resolution multiplier)``
    ``= (α^φ, β^φ, γ^φ)``.

    The paper constrains ``α·β²·γ² ≈ 2`` (FLOPs scale with d·w²·r², so each unit of φ about
    doubles them) and ``α, β, γ ≥ 1``; its grid search at φ=1 found the defaults
    (1.2·1.1²·1.15² = 1.92). Here α, β, γ need only be positive, so a grid search may explore
    freely, and φ may be negative to scale *down* from B0.
    """
    phi = _check_finite("phi", phi)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _check_positive(name, value)
    return alpha ** phi, beta ** phi, gamma ** phi


# --- the resolved configuration -------------------------------------------------------------
@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block, fully resolved: what the model builds, in order.

    expand 1×1 (only if ``expand_ratio != 1``) -> depthwise ``kernel``×``kernel`` with
    ``stride`` -> squeeze-excite to ``se_channels`` -> project 1×1 to ``out_channels``; the
    identity is added (after stochastic depth at ``drop_connect_rate``) when
    :attr:`has_residual`. ``stage`` indexes :data:`B0_STAGES` (0..6): paper Table 1 stage
    ``stage + 2``, torchvision's ``features[stage + 1]``.
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
    block has 0. Raises ValueError naming the offending argument.
    """
    key = variant.lower() if isinstance(variant, str) else variant
    if key not in COEFFICIENTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {tuple(COEFFICIENTS)}")
    if preset not in _PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; choose one of {PADDINGS}")
    stage_specs, stem_stride, base_resolution = _PRESETS[preset]
    base = COEFFICIENTS[key]
    rule = {"alpha": alpha, "beta": beta, "gamma": gamma}
    rule = {k: v for k, v in rule.items() if v is not None}

    if phi is not None:
        if key != "b0":
            raise ValueError(f"phi applies the compound rule to B0, but variant={variant!r} "
                             "fixes its own coefficients; pass one or the other")
        given = [n for n, v in (("width", width), ("depth", depth), ("resolution", resolution))
                 if v is not None]
        if given:
            raise ValueError(f"phi determines width, depth and resolution; do not also pass "
                             f"{', '.join(given)}")
        depth, width, multiplier = compound_coefficients(phi, **rule)
        resolution = round(base_resolution * multiplier)
        name = f"phi={phi:g}"
    else:
        if rule:
            raise ValueError(f"{', '.join(rule)} only apply with phi (the compound rule)")
        overridden = any(v is not None for v in (width, depth, resolution))
        width = base.width if width is None else _check_positive("width", width)
        depth = base.depth if depth is None else _check_positive("depth", depth)
        if resolution is None:
            # The variant's resolution relative to B0's 224, applied to the preset's base.
            resolution = round(base_resolution * base.resolution / 224)
        name = f"{key}+custom" if overridden else key
    resolution = _check_count("resolution", resolution)
    if preset != "imagenet":
        name = f"{name}-{preset}"

    num_classes = _check_count("num_classes", num_classes)
    dropout = _check_rate("dropout", base.dropout if dropout is None else dropout)
    drop_connect = _check_rate("drop_connect", DROP_CONNECT if drop_connect is None
                               else drop_connect)
    default_eps, default_momentum = BN_SETTINGS[key]
    bn_eps = _check_positive("bn_eps", default_eps if bn_eps is None else bn_eps)
    bn_momentum = default_momentum if bn_momentum is None else bn_momentum
    if not 0 < bn_momentum <= 1:
        raise ValueError(f"bn_momentum must be in (0, 1] (PyTorch's convention), "
                         f"got {bn_momentum}")

    return EfficientNetConfig(
        name=name, width=float(width), depth=float(depth), resolution=resolution,
        dropout=dropout, drop_connect=drop_connect, num_classes=num_classes,
        stem_channels=round_filters(STEM_CHANNELS, width),
        head_channels=round_filters(HEAD_CHANNELS, width), stem_stride=stem_stride,
        se_ratio=SE_RATIO, bn_eps=float(bn_eps), bn_momentum=float(bn_momentum),
        padding=padding, blocks=_expand_blocks(stage_specs, width, depth, drop_connect))


def _expand_blocks(stage_specs: tuple[StageSpec, ...], width: float, depth: float,
                   drop_connect: float) -> tuple[BlockSpec, ...]:
    """Scale the stage table and unroll it into one row per block (torchvision's loop)."""
    rows = []
    for s, spec in enumerate(stage_specs):
        in_ch = round_filters(spec.in_channels, width)
        out_ch = round_filters(spec.out_channels, width)
        for j in range(round_repeats(spec.repeats, depth)):
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
    Sizes follow the config's padding through :func:`minieffnet.ops.padding.output_size`.
    """
    cfg = _as_config(config)
    h, w = _hw(cfg.resolution if resolution is None else resolution)
    pad = cfg.padding
    rows = []

    # Stage 1, the stem: conv3x3 (no bias) + BN (weight and bias; running stats are buffers).
    p, f, (h2, w2) = _conv(3, cfg.stem_channels, 3, cfg.stem_stride, 1, h, w, pad)
    rows.append(StageRow(1, "Conv3x3", (h, w), cfg.stem_channels, 1,
                         p + 2 * cfg.stem_channels, f))
    h, w = h2, w2

    for group in cfg.stages:
        first = group[0]
        params = flops = 0
        hin, win = h, w
        for b in group:
            e = b.expanded_channels
            if b.has_expansion:
                p, f, _ = _conv(b.in_channels, e, 1, 1, 1, h, w, pad)
                params, flops = params + p + 2 * e, flops + f
            p, f, (h, w) = _conv(e, e, b.kernel, b.stride, e, h, w, pad)
            params, flops = params + p + 2 * e, flops + f
            # SE: two fully connected layers with bias on the pooled (1x1) map.
            params += 2 * e * b.se_channels + b.se_channels + e
            flops += 2 * e * b.se_channels
            p, f, _ = _conv(e, b.out_channels, 1, 1, 1, h, w, pad)
            params, flops = params + p + 2 * b.out_channels, flops + f
        rows.append(StageRow(first.stage + 2, f"MBConv{first.expand_ratio}, "
                             f"k{first.kernel}x{first.kernel}", (hin, win),
                             group[-1].out_channels, len(group), params, flops))

    # Stage 9: conv1x1 + BN, global average pooling (not counted: additions only), FC.
    last = cfg.blocks[-1].out_channels
    p, f, _ = _conv(last, cfg.head_channels, 1, 1, 1, h, w, pad)
    fc = cfg.head_channels * cfg.num_classes
    rows.append(StageRow(9, "Conv1x1 & Pooling & FC", (h, w), cfg.head_channels, 1,
                         p + 2 * cfg.head_channels + fc + cfg.num_classes, f + fc))
    return rows


def count_parameters(config: Any) -> int:
    """Trainable parameters of the network ``config`` describes, counted analytically.

    Convs have no bias (BatchNorm follows); BatchNorm contributes weight and bias (2 per
    channel; running statistics are buffers, not parameters); SE's two FCs and the classifier
    have biases. B0..B7 at 1000 classes give torchvision's counts exactly (5,288,548 for B0).
    ``config`` may also be a model holding its config as ``.config``.
    """
    return sum(row.params for row in stage_table(config))


def count_flops(config: Any, resolution: int | tuple[int, int] | None = None) -> int:
    """Multiply-adds of one forward pass at ``resolution`` (default ``config.resolution``).

    This is what the paper calls "FLOPs" (0.39 B for B0): every conv (dense, depthwise, 1×1),
    the SE FCs and the classifier, one per multiply-add; BatchNorm, activations, pooling,
    SE's rescale and the residual additions are not counted, as in torchvision's published
    numbers (element-wise work is cheap next to the convolutions). B0..B3, B6 and B7 land within 2 % of the paper's
    Table 2; B4 and B5 come out 4.6 % and 3.7 % above its 4.2 B and 9.9 B, as every per-layer
    count of the released architecture does, and equal torchvision's published numbers.
    ``config`` may also be a model with ``.config``.
    """
    return sum(row.flops for row in stage_table(config, resolution))


def _conv(cin: int, cout: int, k: int, stride: int, groups: int, h: int, w: int,
          padding: str) -> tuple[int, int, tuple[int, int]]:
    """(weights, multiply-adds, output (H, W)) of a bias-free ``k``×``k`` grouped conv."""
    ho, wo = output_size(h, k, stride, padding), output_size(w, k, stride, padding)
    weights = cout * (cin // groups) * k * k
    return weights, weights * ho * wo, (ho, wo)


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
    return _check_count("resolution", sizes[0]), _check_count("resolution", sizes[1])


# --- argument checks -------------------------------------------------------------------------
def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    if _check_finite(name, value) <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


def _check_rate(name: str, value: float) -> float:
    if not 0 <= _check_finite(name, value) < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return n
