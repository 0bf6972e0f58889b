# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 07 — Compound scaling: from B0 to B7
#
# **What you will learn**
#
# * the paper's scaling problem (Eq. 2) and its answer, the compound rule (Eq. 3):
#   depth $\alpha^\phi$, width $\beta^\phi$, resolution $\gamma^\phi$ with
#   $\alpha\beta^2\gamma^2 \approx 2$;
# * why FLOPs then grow as about $2^\phi$ — and where rounding makes them deviate;
# * how channel counts and block counts are rounded (`round_filters`, `round_repeats`);
# * that the *released* B1–B7 are hand-picked, not exactly $\alpha^\phi, \beta^\phi,
#   \gamma^\phi$.
#
# Reference: Tan & Le, *EfficientNet: Rethinking Model Scaling for Convolutional Neural
# Networks* (ICML 2019), §3 and Table 2.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.scaling import B0_STAGES, COEFFICIENTS, compound_coefficients, round_filters, round_repeats

VARIANTS = list(COEFFICIENTS)     # "b0" ... "b7"

# %% [markdown]
# ## 1. The scaling problem
#
# A ConvNet is a sequence of stages $i = 1 \dots s$, stage $i$ repeating a layer
# $\mathcal F_i$ $L_i$ times on an input of shape $\langle H_i, W_i, C_i\rangle$. Keeping
# every $\mathcal F_i$ of the baseline fixed, the paper scales all stages uniformly and asks
# (Eq. 2):
#
# $$\max_{d, w, r}\; \text{Accuracy}\bigl(\mathcal N(d, w, r)\bigr)
#   \quad\text{s.t.}\quad
#   \mathcal N(d, w, r) = \bigodot_{i=1\dots s} \hat{\mathcal F}_i^{\,d\cdot \hat L_i}
#   \bigl(X_{\langle r\cdot \hat H_i,\; r\cdot \hat W_i,\; w\cdot \hat C_i\rangle}\bigr),\quad
#   \text{Memory}(\mathcal N) \le \text{target},\quad \text{FLOPS}(\mathcal N) \le \text{target}.$$
#
# A convolution's cost is proportional to its input channels × output channels × pixels, so
# FLOPs grow as $d \cdot w^2 \cdot r^2$. The compound rule (Eq. 3) ties the three to one knob
# $\phi$:
#
# $$d = \alpha^\phi,\quad w = \beta^\phi,\quad r = \gamma^\phi,\qquad
#   \text{s.t. } \alpha\cdot\beta^2\cdot\gamma^2 \approx 2,\quad \alpha, \beta, \gamma \ge 1,$$
#
# so FLOPs grow by $(\alpha\beta^2\gamma^2)^\phi \approx 2^\phi$. A small grid search at
# $\phi = 1$ found $\alpha = 1.2$, $\beta = 1.1$, $\gamma = 1.15$.

# %%
alpha, beta, gamma = 1.2, 1.1, 1.15
print(f"alpha * beta^2 * gamma^2 = {alpha * beta**2 * gamma**2:.4f}")
d, w, r = compound_coefficients(2)
print(f"phi = 2: depth {d:.4f}, width {w:.4f}, resolution x{r:.4f}")
assert np.allclose((d, w, r), (alpha**2, beta**2, gamma**2))

# %% [markdown]
# ## 2. Rounding channels: `round_filters`
#
# $w \cdot C$ is rarely an integer. EfficientNet (and MobileNet before it) rounds to the nearest
# multiple of 8 — hardware likes it — but never below 8, and goes up one multiple if rounding
# down lost more than 10 %:
#
# $$\text{round\_filters}(C, w) = \text{nearest multiple of 8 to } wC \;(\ge 8),
#   \text{ plus 8 if that is} < 0.9\,wC.$$
#
# We write our own and compare it with the library's on a grid of channel counts and widths.

# %%
def my_round_filters(channels, width, divisor=8):
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


channel_grid = [16, 24, 32, 40, 80, 112, 192, 320, 1280]
width_grid = [0.1, 0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 3.1]
mismatches = [(c, w) for c in channel_grid for w in width_grid
              if my_round_filters(c, w) != round_filters(c, w)]
assert not mismatches, mismatches
print("round_filters(32, 1.1) =", round_filters(32, 1.1), " (35.2 -> 32: lost 9 %, allowed)")
print("round_filters(16, 1.4) =", round_filters(16, 1.4), " (22.4 -> 24)")
print("round_filters(16, 0.1) =", round_filters(16, 0.1), "  (never below 8)")
print(f"{len(channel_grid) * len(width_grid)} cases agree with the library")

# %% [markdown]
# ## 3. Rounding depth: `round_repeats`
#
# A stage with $L$ blocks gets $\lceil d\cdot L \rceil$. Rounding **up** means any $d > 1$
# adds a block to every stage — even to B0's one-block stages, where $1.2 \cdot 1$ becomes 2.

# %%
for variant in VARIANTS:
    depth = COEFFICIENTS[variant].depth
    repeats = [round_repeats(s.repeats, depth) for s in B0_STAGES]
    assert repeats == [math.ceil(depth * s.repeats) for s in B0_STAGES]
    assert sum(repeats) == len(me.make_config(variant).blocks)
    print(f"{variant}: depth {depth:.1f}  repeats {repeats}  = {sum(repeats)} blocks")

# %% [markdown]
# ## 4. B0 to B7
#
# The released networks' coefficients (TF's `efficientnet_builder.py`, torchvision) and what
# they cost:

# %%
f0 = me.count_flops(me.make_config("b0"))
rows = []
print(f"{'':3}{'width':>6}{'depth':>6}{'res':>5}{'stem':>5}{'head':>6}{'blocks':>7}"
      f"{'params':>12}{'GFLOPs':>8}{'xB0':>7}{'log2':>6}")
for variant in VARIANTS:
    cfg = me.make_config(variant)
    flops = me.count_flops(cfg)
    rows.append((variant, flops))
    print(f"{variant:3}{cfg.width:>6.1f}{cfg.depth:>6.1f}{cfg.resolution:>5}{cfg.stem_channels:>5}"
          f"{cfg.head_channels:>6}{len(cfg.blocks):>7}{me.count_parameters(cfg):>12,}"
          f"{flops / 1e9:>8.2f}{flops / f0:>7.1f}{math.log2(flops / f0):>6.2f}")
assert me.make_config("b7").head_channels == 2560 and me.make_config("b7").stem_channels == 64

# %% [markdown]
# ## 5. FLOPs ≈ 2^φ
#
# Now apply the rule itself, `make_config(phi=φ)`, for φ = 0 … 7, and compare the FLOPs with
# $(\alpha\beta^2\gamma^2)^\phi = 1.92^\phi$ and $2^\phi$. Rounding matters: at φ = 1 the depth
# 1.2 rounds every one-block stage up to two blocks, so the network costs 2.6× B0, not 1.9×;
# at large φ, $1.92^\phi$ falls visibly below $2^\phi$ and the counts follow it.

# %%
phis = np.arange(8)
rule_flops = np.array([me.count_flops(me.make_config(phi=int(p))) for p in phis])
released_flops = np.array([f for _, f in rows])
print(f"{'phi':>3}{'res':>5}{'FLOPs/B0':>10}{'1.92^phi':>10}{'2^phi':>7}{'log2':>7}")
for p, f in zip(phis, rule_flops):
    cfg = me.make_config(phi=int(p))
    print(f"{p:>3}{cfg.resolution:>5}{f / f0:>10.2f}{1.92**p:>10.2f}{2**p:>7}{math.log2(f / f0):>7.2f}")
    assert abs(math.log2(f / f0) - p) < 0.5

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogy(phis, rule_flops / f0, "o-", label="compound rule, counted")
ax.semilogy(phis, released_flops / f0, "s--", label="released B0–B7 (B$\\phi$)")
ax.semilogy(phis, (alpha * beta**2 * gamma**2) ** phis, ":", label=r"$(\alpha\beta^2\gamma^2)^\phi = 1.92^\phi$")
ax.semilogy(phis, 2.0 ** phis, "k-", lw=0.8, label=r"$2^\phi$")
ax.set_xlabel(r"$\phi$")
ax.set_ylabel("FLOPs relative to B0")
ax.set_title("Compound scaling: FLOPs ≈ 2^φ")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 6. The released networks are hand-picked
#
# B1 keeps width 1.0 although $\beta^1 = 1.1$, and uses 240 px although $224\gamma = 258$;
# B7 has depth 3.1 and width 2.0 where $\phi = 7$ gives 3.58 and 1.95. The paper's rule is the
# *idea*; the released coefficients round it to convenient values. In minieffnet,
# `make_config("b3")` is the released B3 and `make_config(phi=3)` the rule.

# %%
released = np.array([[COEFFICIENTS[v].depth, COEFFICIENTS[v].width, COEFFICIENTS[v].resolution]
                     for v in VARIANTS])
rule = np.array([[alpha**p, beta**p, 224 * gamma**p] for p in phis])
print(f"{'':3}{'depth':>14}{'width':>14}{'resolution':>16}")
print(f"{'':3}{'released':>9}{'α^φ':>5}{'released':>9}{'β^φ':>5}{'released':>9}{'224γ^φ':>7}")
for v, rel, ru in zip(VARIANTS, released, rule):
    print(f"{v:3}{rel[0]:>9.1f}{ru[0]:>5.2f}{rel[1]:>9.1f}{ru[1]:>5.2f}{rel[2]:>9.0f}{ru[2]:>7.0f}")
assert COEFFICIENTS["b1"].width == 1.0 and COEFFICIENTS["b1"].resolution == 240
assert COEFFICIENTS["b7"].depth == 3.1 and COEFFICIENTS["b7"].width == 2.0

fig, ax = plt.subplots(1, 3, figsize=(12, 3.3))
for i, (name, ylabel) in enumerate((("depth", "d"), ("width", "w"), ("resolution", "pixels"))):
    ax[i].plot(phis, rule[:, i], "-", label="rule: α^φ, β^φ, 224·γ^φ")
    ax[i].plot(phis, released[:, i], "o", label="released B0–B7")
    ax[i].set_title(name)
    ax[i].set_xlabel("φ (variant number)")
    ax[i].set_ylabel(ylabel)
ax[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Exercises
#
# 1. **The grid search of Step 1.** Search $\alpha, \beta, \gamma \in \{1.00, 1.05, \dots,
#    1.50\}$ for the triples with $|\alpha\beta^2\gamma^2 - 2| \le 0.1$ (`candidates`, a list
#    of tuples). The paper then trained each candidate at φ = 1 and kept the best; check that
#    (1.2, 1.1, 1.15) is among them, and, for each candidate, count the FLOPs of
#    `make_config(phi=1, alpha=..., beta=..., gamma=...)` relative to B0
#    (`candidate_flops_ratio`, a list).
# 2. **One dimension at a time.** Double only the depth, only the width, or only the
#    resolution of B0 (`make_config("b0", depth=2.0)` etc.) and measure the exponent
#    `log2(FLOPs / FLOPs_B0)` of each (`exponents`, a dict with keys "depth", "width",
#    "resolution"). Theory says 1, 2, 2. Why is width's a little below 2?

# %%
# --- solution (replace with your own) ---------------------------------------------------
grid = np.round(np.arange(1.0, 1.5001, 0.05), 2)
candidates = [(float(a), float(b), float(g)) for a in grid for b in grid for g in grid
              if abs(a * b * b * g * g - 2) <= 0.1]
candidate_flops_ratio = [me.count_flops(me.make_config(phi=1, alpha=a, beta=b, gamma=g)) / f0
                         for a, b, g in candidates]

exponents = {
    "depth": math.log2(me.count_flops(me.make_config("b0", depth=2.0)) / f0),
    "width": math.log2(me.count_flops(me.make_config("b0", width=2.0)) / f0),
    "resolution": math.log2(me.count_flops(me.make_config("b0", resolution=448)) / f0),
}
# Width: a layer grows as w^2 only if both its input and its output channels scale. The
# depthwise convs have a single channel count (C * k^2 * H * W multiply-adds), so they grow
# only linearly in w, and they are a large share of B0's FLOPs (about a quarter of an MBConv6
# 5x5 block, lesson 03; lesson 10 splits B0 by layer kind). The stem (its 3 input channels do
# not scale) and the classifier (its 1000 outputs do not) grow linearly too. The 1x1 expand,
# project and head convs, and SE's two FCs (on pooled vectors, so no r^2), grow as w^2.

# %%
# --- check ---------------------------------------------------------------------------------
print(f"{len(candidates)} candidates; FLOPs at phi=1 from {min(candidate_flops_ratio):.2f}x "
      f"to {max(candidate_flops_ratio):.2f}x B0")
assert (1.2, 1.1, 1.15) in candidates
assert all(abs(a * b * b * g * g - 2) <= 0.1 for a, b, g in candidates)
assert len(candidate_flops_ratio) == len(candidates)
assert all(1.3 < f < 4 for f in candidate_flops_ratio)
print({k: round(v, 3) for k, v in exponents.items()})
assert abs(exponents["depth"] - 1) < 0.1
assert 1.75 < exponents["width"] < 2.0
assert abs(exponents["resolution"] - 2) < 0.05
print("all exercises pass")
