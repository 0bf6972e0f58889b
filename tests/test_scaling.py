"""Architecture table, compound scaling and analytic counting (minieffnet.scaling).

Reference numbers: torchvision's parameter counts (exact) and the paper's FLOPs (Tan & Le 2019,
Table 2). The torchvision cross-checks skip without torchvision; building its B0/B1 is cheap.
"""
import dataclasses
import math
import tracemalloc

import pytest

from minieffnet.errors import BadOptionError
from minieffnet.scaling import (B0_STAGES, BN_SETTINGS, COEFFICIENTS, BlockSpec,
                                EfficientNetConfig, block_layers, compound_coefficients,
                                count_flops, count_parameters, make_config, network_layers,
                                round_filters, round_repeats, stage_table)

VARIANTS = [f"b{i}" for i in range(8)]
TORCHVISION_PARAMS = [5_288_548, 7_794_184, 9_109_994, 12_233_232, 19_341_616, 30_389_784,
                      43_040_704, 66_347_960]
PAPER_FLOPS = [0.39, 0.70, 1.0, 1.8, 4.2, 9.9, 19, 37]  # billions of multiply-adds, Table 2
# B4 and B5 cannot be reproduced by any per-layer count of the released architecture: ours,
# torchvision's published "_ops" (4.394, 10.266) and fvcore/thop counts all land 4-7 % above
# the paper's 4.2 and 9.9. Every other variant is within 2 %.
PAPER_FLOPS_TOL = {"b4": 0.05, "b5": 0.05}


# --- counts against the references -----------------------------------------------------------
@pytest.mark.parametrize("variant,expected", list(zip(VARIANTS, TORCHVISION_PARAMS)))
def test_parameter_count_matches_torchvision(variant, expected):
    assert count_parameters(make_config(variant)) == expected


@pytest.mark.parametrize("variant,paper", list(zip(VARIANTS, PAPER_FLOPS)))
def test_flops_match_paper(variant, paper):
    config = make_config(variant)
    assert config.resolution == COEFFICIENTS[variant].resolution
    flops = count_flops(config) / 1e9
    assert abs(flops / paper - 1) < PAPER_FLOPS_TOL.get(variant, 0.03), (variant, flops)


def test_b0_flops_and_stage_table_reproduce_table1():
    rows = stage_table(make_config("b0"))
    assert [(r.stage, r.operator, r.resolution[0], r.channels, r.layers) for r in rows] == [
        (1, "Conv3x3", 224, 32, 1), (2, "MBConv1, k3x3", 112, 16, 1),
        (3, "MBConv6, k3x3", 112, 24, 2), (4, "MBConv6, k5x5", 56, 40, 2),
        (5, "MBConv6, k3x3", 28, 80, 3), (6, "MBConv6, k5x5", 14, 112, 3),
        (7, "MBConv6, k5x5", 14, 192, 4), (8, "MBConv6, k3x3", 7, 320, 1),
        (9, "Conv1x1 & Pooling & FC", 7, 1280, 1)]
    # The stem by hand: 112*112 outputs, each 3*3*3 multiply-adds per output channel.
    assert rows[0].flops == 112 * 112 * 27 * 32 and rows[0].params == 27 * 32 + 2 * 32
    assert sum(r.flops for r in rows) == count_flops(make_config("b0")) == 385_814_752


def test_counting_b7_allocates_nothing_to_speak_of():
    config = make_config("b7")
    tracemalloc.start()
    count_parameters(config), count_flops(config, 600)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200_000


def test_flops_scale_with_resolution_and_accept_rectangles():
    config = make_config("b0")
    # Doubling the side quadruples every conv's cost; SE and FC do not depend on resolution.
    ratio = count_flops(config, 448) / count_flops(config)
    assert 3.9 < ratio < 4.0
    assert count_flops(config, (224, 224)) == count_flops(config)
    assert count_flops(config, (224, 448)) > count_flops(config)
    # For odd kernels TF "same" and symmetric padding give the same output sizes.
    same = make_config("b0", padding="same")
    for r in (32, 224, 225, 380):
        assert count_flops(same, r) == count_flops(config, r)


def test_count_accepts_a_model_holding_its_config():
    class Model:
        config = make_config("b1")
    assert count_parameters(Model()) == TORCHVISION_PARAMS[1]
    with pytest.raises(TypeError, match="EfficientNetConfig"):
        count_parameters(object())


# --- rounding rules --------------------------------------------------------------------------
def _make_divisible(v, divisor=8):
    """torchvision.models._utils._make_divisible, restated so the test runs without torch."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


@pytest.mark.parametrize("channels,width,expected", [
    (32, 1.0, 32), (32, 1.1, 32), (16, 1.4, 24), (320, 1.1, 352), (320, 1.8, 576),
    (1280, 2.0, 2560), (24, 1.1, 24), (40, 1.4, 56), (4, 0.5, 8), (10, 1.0, 16)])
def test_round_filters_cases(channels, width, expected):
    assert round_filters(channels, width) == expected


def test_round_filters_is_torchvisions_make_divisible():
    widths = [0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.33, 1.4, 1.6, 1.8, 2.0, 2.5]
    for channels in (16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for w in widths:
            assert round_filters(channels, w) == _make_divisible(channels * w), (channels, w)
    assert round_filters(30, 1.0, divisor=4) == 32


@pytest.mark.parametrize("repeats,depth,expected", [
    (1, 1.0, 1), (1, 1.1, 2), (2, 1.1, 3), (3, 1.4, 5), (4, 3.1, 13), (2, 0.5, 1), (3, 0.2, 1)])
def test_round_repeats(repeats, depth, expected):
    assert round_repeats(repeats, depth) == expected


def test_block_counts_per_variant():
    # Sum of ceil(d * repeats) over Table 1's repeats (1, 2, 2, 3, 3, 4, 1).
    counts = [len(make_config(v).blocks) for v in VARIANTS]
    assert counts == [16, 23, 23, 26, 32, 39, 45, 55]
    assert [len(s) for s in make_config("b0").stages] == [s.repeats for s in B0_STAGES]


# --- the resolved config ---------------------------------------------------------------------
def test_blocks_are_expanded_and_chained():
    config = make_config("b2")
    assert config.stem_channels == 32 and config.head_channels == 1408
    prev = config.stem_channels
    for stage in config.stages:
        first, rest = stage[0], stage[1:]
        spec = B0_STAGES[first.stage]
        assert first.stride == spec.stride and first.in_channels == prev
        assert all(b.stride == 1 and b.in_channels == b.out_channels for b in rest)
        assert first.out_channels == round_filters(spec.out_channels, 1.1)
        prev = stage[-1].out_channels
    for b in config.blocks:
        assert b.se_channels == max(1, b.in_channels // 4)  # of the block input, not expanded
        assert b.expanded_channels == b.in_channels * b.expand_ratio
        assert b.has_expansion == (b.expand_ratio != 1)
        assert b.has_residual == (b.stride == 1 and b.in_channels == b.out_channels)


def test_block_layers_follow_the_mbconv_order():
    blocks = make_config("b0").blocks
    # Block 0 is MBConv1 (no expansion) 32 -> 16: no residual either.
    assert [(l.name, l.kind, l.in_channels, l.out_channels, l.activation)
            for l in block_layers(blocks[0])] == [
        ("depthwise", "depthwise_bn", 32, 32, "swish"), ("se", "squeeze_excite", 32, 32, None),
        ("project", "conv_bn", 32, 16, None)]
    # Block 2 is the second MBConv6 of stage 3: 24 -> 144 -> 24, stride 1, residual.
    b = blocks[2]
    expand, depthwise, se, project, drop = block_layers(b)
    assert (expand.name, expand.kind, expand.in_channels, expand.out_channels, expand.kernel) == (
        "expand", "conv_bn", 24, 144, 1)
    assert (depthwise.kernel, depthwise.stride, depthwise.out_channels) == (3, 1, 144)
    assert (se.squeeze, project.out_channels, project.activation) == (6, 24, None)
    assert (drop.kind, drop.rate) == ("drop_connect", b.drop_connect_rate)
    assert expand.params == 24 * 144 + 2 * 144 and se.params == 2 * 144 * 6 + 6 + 144


def test_network_layers_chain_sizes_and_channels():
    config = make_config("b0", preset="cifar")
    layers = network_layers(config, (32, 48))
    assert [p.path for p in layers[:2]] == ["stem", "blocks.0.depthwise"]
    assert [p.path for p in layers[-4:]] == ["head", "pool", "dropout", "classifier"]
    for prev, p in zip(layers, layers[1:]):
        assert p.in_size == prev.out_size and p.layer.in_channels == prev.layer.out_channels
    assert layers[-4].in_size == (4, 6) and layers[-3].out_size == (1, 1)
    assert sorted({p.stage for p in layers}) == list(range(1, 10))
    assert network_layers(config) == network_layers(config, 32)


def test_drop_connect_grows_linearly_with_block_index():
    blocks = make_config("b0").blocks
    n = len(blocks)
    assert [b.drop_connect_rate for b in blocks] == [0.2 * float(i) / n for i in range(n)]
    assert blocks[0].drop_connect_rate == 0 and blocks[-1].drop_connect_rate == 0.2 * 15 / 16
    assert all(b.drop_connect_rate == 0 for b in make_config("b0", drop_connect=0).blocks)
    assert make_config("b3", drop_connect=0.3).blocks[-1].drop_connect_rate == pytest.approx(
        0.3 * 25 / 26)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_defaults(variant):
    config = make_config(variant)
    c = COEFFICIENTS[variant]
    assert (config.width, config.depth, config.resolution, config.dropout) == (
        c.width, c.depth, c.resolution, c.dropout)
    assert (config.bn_eps, config.bn_momentum) == BN_SETTINGS[variant]
    assert config.drop_connect == 0.2 and config.se_ratio == 0.25 and config.stem_stride == 2
    assert config.padding == "symmetric" and config.num_classes == 1000
    assert config.name == variant


def test_bn_settings_follow_torchvision():
    assert make_config("b4").bn_eps == 1e-5 and make_config("b4").bn_momentum == 0.1
    assert make_config("b5").bn_eps == 1e-3 and make_config("b5").bn_momentum == 0.01
    assert make_config(phi=6).bn_eps == 1e-5  # compound-rule configs use B0's
    assert make_config("b0", bn_eps=1e-3, bn_momentum=0.01).bn_momentum == 0.01


def test_overrides_change_only_what_they_name():
    config = make_config("B3", num_classes=10, width=1.0, dropout=0.1)
    assert config.name == "b3+custom" and config.depth == 1.4 and config.resolution == 300
    assert config.width == 1.0 and config.dropout == 0.1 and config.bn_eps == 1e-5
    assert config.blocks == make_config("b0", depth=1.4).blocks
    assert count_parameters(config) == count_parameters(make_config("b0", depth=1.4)) - 1281 * 990


def test_config_is_frozen_and_checks_its_chain():
    config = make_config("b0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.width = 2.0
    bad = list(config.blocks)
    bad[3] = dataclasses.replace(bad[3], in_channels=99)
    with pytest.raises(ValueError, match="block 3 takes 99"):
        dataclasses.replace(config, blocks=tuple(bad))
    with pytest.raises(ValueError, match="empty"):
        dataclasses.replace(config, blocks=())
    assert isinstance(config, EfficientNetConfig) and isinstance(config.blocks[0], BlockSpec)


# --- compound scaling (Eq. 3) ----------------------------------------------------------------
def test_compound_coefficients():
    assert compound_coefficients(0) == (1.0, 1.0, 1.0)
    assert compound_coefficients(1) == (1.2, 1.1, 1.15)
    d, w, r = compound_coefficients(2, alpha=1.1, beta=1.2, gamma=1.3)
    assert (d, w, r) == pytest.approx((1.21, 1.44, 1.69))


def test_phi_zero_is_b0():
    phi0, b0 = make_config(phi=0), make_config("b0")
    assert phi0.blocks == b0.blocks and phi0.resolution == 224 and phi0.name == "phi=0"
    assert count_parameters(phi0) == TORCHVISION_PARAMS[0]


def test_phi_gives_the_rule_not_the_released_networks():
    config = make_config(phi=1)
    assert (config.depth, config.width, config.resolution) == (1.2, 1.1, round(224 * 1.15))
    assert make_config(phi=1).blocks != make_config("b1").blocks  # B1 is hand-picked
    assert make_config(phi=2, preset="cifar").resolution == round(32 * 1.15 ** 2)
    custom = make_config(phi=1, alpha=1.0, beta=1.0, gamma=2.0)
    assert custom.blocks == make_config("b0").blocks and custom.resolution == 448


def test_flops_grow_about_two_to_the_phi():
    """FLOPs scale with d·w²·r² (paper §3.3), so about (α·β²·γ²)^φ = 1.92^φ. Rounding (ceil of
    repeats, multiples of 8) only adds, most at small φ where ceil(1.2·1) = 2 doubles a stage."""
    growth = 1.2 * 1.1 ** 2 * 1.15 ** 2
    base = count_flops(make_config("b0"))
    flops = [count_flops(make_config(phi=phi)) for phi in range(8)]
    for phi, f in enumerate(flops):
        assert 1.0 <= f / base / growth ** phi < 1.4, phi
    assert (flops[7] / base) ** (1 / 7) == pytest.approx(growth, rel=0.02)


# --- the cifar preset ------------------------------------------------------------------------
def test_cifar_preset_keeps_32x32_from_collapsing():
    config = make_config("b0", num_classes=10, preset="cifar")
    assert config.resolution == 32 and config.stem_stride == 1 and config.name == "b0-cifar"
    sizes = [r.resolution for r in stage_table(config)]
    assert sizes == [(32, 32), (32, 32), (32, 32), (32, 32), (16, 16), (8, 8), (8, 8),
                     (4, 4), (4, 4)]
    imagenet = make_config("b0", num_classes=10)
    # Same channels, kernels, SE and repeats; only stage 3's first stride differs.
    diff = [i for i, (a, b) in enumerate(zip(config.blocks, imagenet.blocks)) if a != b]
    assert diff == [1] and config.blocks[1].stride == 1 and imagenet.blocks[1].stride == 2
    assert count_parameters(config) == count_parameters(imagenet) == 4_020_358
    assert count_flops(config) == 116_167_168


def test_cifar_resolution_scales_with_variant():
    assert [make_config(v, preset="cifar").resolution for v in VARIANTS] == [
        32, 34, 37, 43, 54, 65, 75, 86]
    assert make_config("b3", preset="cifar", resolution=32).resolution == 32


# --- bad arguments ---------------------------------------------------------------------------
BAD_ARGUMENTS = [
    (("b8",), {}, "variant"),
    ((3,), {}, "variant"),
    ((), {"preset": "mnist"}, "preset"),
    ((), {"padding": "valid"}, "padding"),
    ((), {"width": -1.0}, "width"),
    ((), {"width": float("nan")}, "width"),
    ((), {"depth": 0}, "depth"),
    ((), {"resolution": 0}, "resolution"),
    ((), {"resolution": 224.5}, "resolution"),
    ((), {"num_classes": 0}, "num_classes"),
    ((), {"num_classes": True}, "num_classes"),
    ((), {"dropout": 1.0}, "dropout"),
    ((), {"drop_connect": -0.1}, "drop_connect"),
    ((), {"bn_eps": 0}, "bn_eps"),
    ((), {"bn_momentum": 0}, "bn_momentum"),
    (("b3",), {"phi": 1}, "phi"),
    ((), {"phi": 1, "width": 1.2}, "width"),
    ((), {"phi": 1, "resolution": 256}, "resolution"),
    ((), {"phi": float("inf")}, "phi"),
    ((), {"phi": 1, "gamma": -1.15}, "gamma"),
    ((), {"alpha": 1.2}, "alpha"),
    ((), {"bn_momentum": "0.1"}, "bn_momentum"),
    ((), {"phi": -44}, "phi=-44 scales the 224 px input below one pixel"),
]


@pytest.mark.parametrize("args,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error_naming_them(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_config(*args, **kwargs)


@pytest.mark.parametrize("args,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_the_projects_own_error(args, kwargs, match):
    # what the command line reports in one line, and callers can tell from a bug's ValueError
    with pytest.raises(BadOptionError, match=match):
        make_config(*args, **kwargs)


def test_bad_rounding_and_count_arguments():
    with pytest.raises(ValueError, match="width"):
        round_filters(32, 0)
    with pytest.raises(ValueError, match="depth"):
        round_repeats(2, -1)
    with pytest.raises(ValueError, match="resolution"):
        count_flops(make_config("b0"), (224, 224, 3))
    with pytest.raises(ValueError, match="resolution"):
        count_flops(make_config("b0"), -5)


# --- torchvision cross-checks ----------------------------------------------------------------
def _torchvision_blocks(model):
    """Per MBConv block: (stage, expansion?, expanded, kernel, stride, in, out, se, p, residual)."""
    from torch import nn
    from torchvision.models.efficientnet import MBConv
    rows = []
    for s, stage in enumerate(model.features[1:-1]):
        for m in stage:
            assert isinstance(m, MBConv)
            convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
            dw = next(c for c in convs if c.groups > 1)
            se = m.block[-2]
            rows.append((s, convs[0] is not dw, dw.in_channels, dw.kernel_size[0], dw.stride[0],
                         convs[0].in_channels, convs[-1].out_channels, se.fc1.out_channels,
                         m.stochastic_depth.p, m.use_res_connect))
    return rows


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["b0", "b1"])
def test_blocks_match_torchvision(variant):
    models = pytest.importorskip("torchvision.models")
    from torch import nn
    model = getattr(models, f"efficientnet_{variant}")(num_classes=10)
    config = make_config(variant, num_classes=10)
    ours = [(b.stage, b.has_expansion, b.expanded_channels, b.kernel, b.stride, b.in_channels,
             b.out_channels, b.se_channels, b.drop_connect_rate, b.has_residual)
            for b in config.blocks]
    assert ours == _torchvision_blocks(model)
    stem, head = model.features[0][0], model.features[-1][0]
    assert (stem.out_channels, stem.kernel_size[0], stem.stride[0]) == (
        config.stem_channels, 3, config.stem_stride)
    assert head.out_channels == config.head_channels
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(config.bn_eps, config.bn_momentum)}


@pytest.mark.torch
def test_flops_equal_torchvisions_published_ops():
    """torchvision's weight metadata lists GFLOPs ("_ops") at each model's crop size; no
    download is needed to read it. Ours agree to all three published decimals."""
    models = pytest.importorskip("torchvision.models")
    for i, variant in enumerate(VARIANTS):
        weights = getattr(models, f"EfficientNet_B{i}_Weights").IMAGENET1K_V1
        crop = weights.transforms().crop_size[0]
        assert weights.meta["num_params"] == TORCHVISION_PARAMS[i]
        assert round(count_flops(make_config(variant), crop) / 1e9, 3) == weights.meta["_ops"]


def test_activation_count_grows_with_the_maps_not_with_the_flops():
    from minieffnet.scaling import count_activations
    base = make_config("b0", 10, preset="cifar", width=0.25, depth=0.25, resolution=16)
    # Every spatial map of the cifar preset quadruples from 16 to 32 px (strides divide
    # evenly); only the pooled features, dropout and logits (3 * 320 + 10 values) do not.
    tail = 2 * base.head_channels + base.num_classes
    assert count_activations(base, 32) - tail == 4 * (count_activations(base, 16) - tail)
    # Twice the width: more channels, but under twice the values, because the narrowest
    # layers are rounded up to 8 channels at both widths (round_filters).
    wide = make_config("b0", 10, preset="cifar", width=0.5, depth=0.25, resolution=16)
    assert 1.3 < count_activations(wide) / count_activations(base) < 2
