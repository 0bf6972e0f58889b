# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 06 — EfficientNet-B0
#
# **What you will learn**
#
# * how the paper's Table 1 — the B0 baseline found by neural architecture search — becomes
#   data (`stage_table`), and how a config unrolls it into 16 MBConv blocks;
# * how to count parameters and multiply-adds ("FLOPs") analytically, and that the counts
#   match torchvision's published numbers **exactly**, for B0 through B7;
# * where B0 keeps its parameters and where it spends its computation;
# * what a forward pass through B0 looks like: the feature-map shape after every stage, and
#   the feature maps of the first layer.
#
# Reference: Tan & Le, *EfficientNet: Rethinking Model Scaling for Convolutional Neural
# Networks* (ICML 2019), Table 1 (the B0 network) and Table 2 (FLOPs of B0–B7). The search
# that found B0 is MnasNet's (Tan et al., CVPR 2019), optimising accuracy × FLOPs^−0.07.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.scaling import stage_table

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Table 1 as data
#
# | stage | operator | resolution | channels | layers |
# |---|---|---|---|---|
# | 1 | Conv3×3 | 224×224 | 32 | 1 |
# | 2 | MBConv1, k3×3 | 112×112 | 16 | 1 |
# | 3 | MBConv6, k3×3 | 112×112 | 24 | 2 |
# | 4 | MBConv6, k5×5 | 56×56 | 40 | 2 |
# | 5 | MBConv6, k3×3 | 28×28 | 80 | 3 |
# | 6 | MBConv6, k5×5 | 14×14 | 112 | 3 |
# | 7 | MBConv6, k5×5 | 14×14 | 192 | 4 |
# | 8 | MBConv6, k3×3 | 7×7 | 320 | 1 |
# | 9 | Conv1×1 & Pooling & FC | 7×7 | 1280 | 1 |
#
# "Resolution" is each stage's *input* size; a stage's first block carries its stride. In
# `minieffnet/scaling.py` the MBConv rows are `StageSpec`s in `B0_STAGES`; `make_config`
# scales and unrolls them into one `BlockSpec` per block, and `stage_table` folds them back
# into Table 1, with each stage's parameters and multiply-adds.

# %%
config = me.make_config("b0")
table = stage_table(config)
print(f"{'stage':>5}  {'operator':<24}{'resolution':>11}{'channels':>9}{'layers':>7}"
      f"{'params':>11}{'MFLOPs':>9}")
for r in table:
    print(f"{r.stage:>5}  {r.operator:<24}{r.resolution[0]:>5}x{r.resolution[1]:<5}"
          f"{r.channels:>9}{r.layers:>7}{r.params:>11,}{r.flops / 1e6:>9.1f}")

paper_table1 = [  # (operator, resolution, channels, layers) from the paper
    ("Conv3x3", 224, 32, 1), ("MBConv1, k3x3", 112, 16, 1), ("MBConv6, k3x3", 112, 24, 2),
    ("MBConv6, k5x5", 56, 40, 2), ("MBConv6, k3x3", 28, 80, 3), ("MBConv6, k5x5", 14, 112, 3),
    ("MBConv6, k5x5", 14, 192, 4), ("MBConv6, k3x3", 7, 320, 1),
    ("Conv1x1 & Pooling & FC", 7, 1280, 1)]
for r, (op, res, ch, n) in zip(table, paper_table1):
    assert (r.operator, r.resolution, r.channels, r.layers) == (op, (res, res), ch, n), r
print("\nmatches the paper's Table 1;", len(config.blocks), "MBConv blocks in all")

# %% [markdown]
# ## 2. Parameters: exactly torchvision's
#
# The counting rules (no bias on convolutions, since BatchNorm follows; BN's $\gamma$ and
# $\beta$ count, its running statistics are buffers; SE's two FCs and the classifier have
# biases; channel counts rounded like torchvision's `_make_divisible`) reproduce the numbers
# torchvision publishes for its ImageNet models, to the last parameter.

# %%
torchvision_params = {"b0": 5_288_548, "b1": 7_794_184, "b2": 9_109_994, "b3": 12_233_232,
                      "b4": 19_341_616, "b5": 30_389_784, "b6": 43_040_704, "b7": 66_347_960}
for variant, published in torchvision_params.items():
    ours = me.count_parameters(me.make_config(variant))
    print(f"{variant}: {ours:>11,}   torchvision {published:>11,}   {'equal' if ours == published else 'DIFFERENT'}")
    assert ours == published

model = me.efficientnet("b0")          # 1000 classes, the ImageNet network
built = sum(p.data.size for p in model.parameters())
print(f"\nparameters of the built B0 model: {built:,}")
assert built == torchvision_params["b0"]

# %% [markdown]
# If PyTorch and torchvision are installed, we can ask them directly (this cell does nothing
# without them; no weights are downloaded).

# %%
try:
    import torchvision
except ImportError:
    torchvision = None
    print("torchvision is not installed: skipping the live cross-check")
if torchvision is not None:
    tv_b0 = torchvision.models.efficientnet_b0()
    tv_count = sum(p.numel() for p in tv_b0.parameters())
    print(f"torchvision.models.efficientnet_b0(): {tv_count:,} parameters")
    assert tv_count == me.count_parameters(config)

# %% [markdown]
# ## 3. FLOPs: the paper's and torchvision's
#
# The paper counts **multiply-adds** and calls them FLOPs. Counted per layer: a $k\times k$
# convolution with $C_\text{in}/g$ inputs per group and $C_\text{out}$ outputs on an
# $H_o \times W_o$ map costs $C_\text{out}\,(C_\text{in}/g)\,k^2\,H_oW_o$; the SE FCs and the
# classifier cost one multiply-add per weight; BatchNorm, activations, pooling and additions
# are not counted.
#
# torchvision measures each model at the crop size its weights are evaluated with — the
# paper's resolution, except B2 at 288 instead of 260 — and publishes the result in its weight
# metadata (`meta["_ops"]`, in GFLOPs). Ours agree to the published three decimals. The
# paper's Table 2 rounds more coarsely (and its B4/B5 are about 4 % below what every
# per-layer count of the released architectures gives).

# %%
torchvision_gflops = {"b0": (224, 0.386), "b1": (240, 0.687), "b2": (288, 1.088),
                      "b3": (300, 1.827), "b4": (380, 4.394), "b5": (456, 10.266),
                      "b6": (528, 19.068), "b7": (600, 37.746)}
paper_gflops = {"b0": 0.39, "b1": 0.70, "b2": 1.0, "b3": 1.8, "b4": 4.2, "b5": 9.9, "b6": 19,
                "b7": 37}
print(f"{'':3}{'res':>5}{'ours':>9}{'tv':>9}  {'paper res':>9}{'ours':>9}{'paper':>7}")
for variant, (crop, tv) in torchvision_gflops.items():
    cfg = me.make_config(variant)
    at_crop = me.count_flops(cfg, crop) / 1e9
    at_paper = me.count_flops(cfg) / 1e9
    print(f"{variant:3}{crop:>5}{at_crop:>9.3f}{tv:>9.3f}  {cfg.resolution:>9}{at_paper:>9.3f}"
          f"{paper_gflops[variant]:>7}")
    assert round(at_crop, 3) == tv
    assert abs(at_paper / paper_gflops[variant] - 1) < 0.05

# %% [markdown]
# ## 4. Where are the parameters, where is the work?
#
# Parameters pile up at the end: a layer's weights grow with its channels, never with its
# map, so the wide late stages 7–9 hold most of them — and almost a quarter of all
# parameters sit in the final classifier alone. The multiply-adds do not follow the map
# size either. Each stage halves the side (a quarter of the positions) while its channels
# grow, and a 1×1 convolution costs $C_\text{in} C_\text{out}$ per position: the 14×14
# stages 6 and 7, with 112 and 192 channels and seven blocks between them, do the most
# work, and the large-map stages 1–2 the least. The cell checks these claims on the table.

# %%
stages = [r.stage for r in table]
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
ax[0].bar(stages, [r.params / 1e6 for r in table])
ax[0].set_title("parameters per stage (millions)")
ax[1].bar(stages, [r.flops / 1e6 for r in table], color="C1")
ax[1].set_title("multiply-adds per stage (millions) at 224×224")
for a in ax:
    a.set_xlabel("Table 1 stage")
    a.set_xticks(stages)
fig.tight_layout()
assert sum(r.flops for r in table) == me.count_flops(config)
assert sum(r.params for r in table) == me.count_parameters(config)

total_params, total_flops = me.count_parameters(config), me.count_flops(config)
late_params = sum(r.params for r in table if r.stage >= 7) / total_params
classifier_share_of_b0 = (config.head_channels + 1) * config.num_classes / total_params
by_flops = sorted(table, key=lambda r: -r.flops)
print(f"stages 7-9 hold {late_params:.0%} of the parameters, the classifier alone "
      f"{classifier_share_of_b0:.1%}")
print("stages by multiply-adds: " + ", ".join(f"{r.stage} ({r.flops / total_flops:.0%})"
                                              for r in by_flops))
assert late_params > 0.8 and 0.23 < classifier_share_of_b0 < 0.25
assert {r.stage for r in by_flops[:2]} == {6, 7}
assert {r.stage for r in by_flops[-2:]} == {1, 2}

# %% [markdown]
# ## 5. A forward pass, stage by stage
#
# We push one 224×224 image through the network ourselves: the stem, then each block,
# recording the shape at the start of every stage. They must be Table 1's resolutions and
# channels. The input is an image of the built-in synthetic data set, scaled up to 224×224.
# (The network is untrained — the logits mean nothing yet; lesson 08 trains one.)

# %%
images, labels = me.data.make_synthetic(1, seed=0)
x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0       # (1, 3, 32, 32) in [0, 1]
x = (x - x.mean(axis=(2, 3), keepdims=True)) / x.std(axis=(2, 3), keepdims=True)
with me.use_backend("numpy"):
    x = me.data.resize_bilinear(x, 224)
model.eval()

h = model.stem(x)
seen = {1: x.shape}
for spec, block in zip(config.blocks, model.blocks):
    seen.setdefault(spec.stage + 2, h.shape)   # input to Table 1 stage spec.stage + 2
    h = block(h)
seen[9] = h.shape
channels_in = 3
for r in table:
    shape = seen[r.stage]
    print(f"stage {r.stage}: input {shape}")
    assert shape[1:] == (channels_in, *r.resolution)
    channels_in = r.channels
features = model.head(h)
pooled = model.pool(features)
logits = model.classifier(model.dropout(pooled))
print("head output", features.shape, "-> pooled", pooled.shape, "-> logits", logits.shape)
assert features.shape == (1, 1280, 7, 7) and logits.shape == (1, 1000)
print(me.compare("logits vs model(x)", logits, model(x), rtol=1e-5, atol=1e-6))
assert np.allclose(logits, model(x), rtol=1e-5, atol=1e-6)
probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
print(f"largest class probability of the untrained network: {probs.max():.4f} (1/1000 = 0.001)")

# %% [markdown]
# ## 6. The first layer's feature maps
#
# The stem is a 3×3 stride-2 convolution to 32 channels, BatchNorm and Swish. Even with random
# (TF-initialised) filters, its channels respond to colour, brightness and edges in different
# proportions — training sharpens these into edge and colour detectors.

# %%
stem_maps = model.stem(x)[0]          # (32, 112, 112)
fig, ax = plt.subplots(2, 5, figsize=(12, 5))
ax[0, 0].imshow(images[0])
ax[0, 0].set_title(f"input: {me.data.synthetic.CLASS_NAMES[labels[0]]}")
ax[1, 0].imshow(np.clip(x[0].transpose(1, 2, 0) * 0.25 + 0.5, 0, 1))
ax[1, 0].set_title("224×224 network input")
for i, a in enumerate(ax[:, 1:].ravel()):
    a.imshow(stem_maps[i], cmap="magma")
    a.set_title(f"stem channel {i}")
for a in ax.ravel():
    a.axis("off")
fig.tight_layout()
assert stem_maps.shape == (32, 112, 112)

# %% [markdown]
# ## Exercises
#
# 1. **The classifier's share.** What fraction of B0's parameters is the final fully
#    connected layer (1280 → 1000, with bias)? Count it from the built model's
#    `named_parameters()` (`classifier_params`), and compute `classifier_share`.
# 2. **What does not grow with resolution?** Doubling the input to 448×448 doubles every
#    feature map's side, so each convolution costs 4× as much. But two kinds of layers work on
#    pooled vectors and cost the same at any resolution. Which? Write the FLOPs at 448 as
#    `flops_448_predicted = 4 * (F224 - fixed) + fixed` with `fixed` the multiply-adds of
#    those layers, computed from `config.blocks` and `config.head_channels`.

# %%
# --- solution (replace with your own) ---------------------------------------------------
classifier_params = sum(p.data.size for name, p in model.named_parameters()
                        if name.startswith("classifier."))
classifier_share = classifier_params / me.count_parameters(model)

F224 = me.count_flops(config, 224)
fixed = (config.head_channels * config.num_classes                       # the classifier
         + sum(2 * b.expanded_channels * b.se_channels for b in config.blocks))  # SE's FCs
flops_448_predicted = 4 * (F224 - fixed) + fixed

# %%
# --- check ---------------------------------------------------------------------------------
print(f"classifier: {classifier_params:,} parameters = {classifier_share:.1%} of B0")
assert classifier_params == 1280 * 1000 + 1000
assert abs(classifier_share - 1_281_000 / 5_288_548) < 1e-12
print(f"FLOPs at 448: predicted {flops_448_predicted:,}, counted {me.count_flops(config, 448):,}")
assert flops_448_predicted == me.count_flops(config, 448)
print("all exercises pass")
